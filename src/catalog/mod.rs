//! `plugins.yml`: the declared plugins, their functions and their limits.
//!
//! The shape is WASImancer's (`plugins[].name/path/version/description/
//! functions[].displayName/function/description/arguments[]`) plus our own
//! per-plugin keys for the sandbox (`wasi`, `allowed_hosts`, `allowed_paths`,
//! `config`, `timeout_ms`, `memory_mb`, `instances`) and `required` on an
//! argument. Unknown keys are errors: a typo in `timeout_ms` must not silently
//! drop a limit.
//!
//! Every use of serde_yaml lives in this module, so that moving to a
//! maintained fork is a one-file change.

mod source_map;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

pub use source_map::SourceMap;

/// How long one call may run when `timeout_ms` is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// How much memory one instance may use when `memory_mb` is not set.
pub const DEFAULT_MEMORY_MB: u32 = 64;

const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_MEMORY_MB: u32 = 4_096;
const MAX_INSTANCES: usize = 256;
const MAX_NAME_LEN: usize = 128;

/// The whole plugins.yml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Free text about this set of plugins (WASImancer keeps it; so do we).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
}

/// One plugin: a `.wasm` module and the functions of it that become tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    /// Where the module is, relative to the plugins folder.
    #[serde(deserialize_with = "relative_path")]
    pub path: String,
    #[serde(
        default,
        deserialize_with = "optional_scalar",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub functions: Vec<FunctionSpec>,
    /// WASImancer's plugins are TinyGo builds that need WASI, so it is on by default.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub wasi: bool,
    /// Hosts the plugin may reach over HTTP (`*.example.com` patterns). None by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Folders the plugin may open: folder inside the plugins folder (prefix
    /// `ro:` for read-only) mapped to the path the plugin sees. None by default.
    #[serde(
        default,
        deserialize_with = "allowed_paths",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub allowed_paths: BTreeMap<String, String>,
    /// Extism config handed to the plugin; `WASM_*` environment variables override it.
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub config: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "timeout_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
    #[serde(
        default,
        deserialize_with = "memory_mb",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_mb: Option<u32>,
    /// How many calls to this plugin may run at once (one warm instance each).
    #[serde(
        default,
        deserialize_with = "instances",
        skip_serializing_if = "Option::is_none"
    )]
    pub instances: Option<usize>,
}

/// One exported function served as an MCP tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The tool's name as written (WASImancer's tool name); the function name when absent.
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// The export called in the module.
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Vec<ArgumentSpec>,
}

/// One named argument of a function; together they make the tool's input schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ArgumentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
}

/// The JSON type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgumentType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl ArgumentType {
    const ALL: [ArgumentType; 6] = [
        ArgumentType::String,
        ArgumentType::Number,
        ArgumentType::Integer,
        ArgumentType::Boolean,
        ArgumentType::Object,
        ArgumentType::Array,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArgumentType::String => "string",
            ArgumentType::Number => "number",
            ArgumentType::Integer => "integer",
            ArgumentType::Boolean => "boolean",
            ArgumentType::Object => "object",
            ArgumentType::Array => "array",
        }
    }

    /// Whether `value` has this type. Integers are numbers too; a number with
    /// no fractional part counts as an integer, as JSON Schema says.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, value) {
            (ArgumentType::String, Value::String(_)) => true,
            (ArgumentType::Number, Value::Number(_)) => true,
            (ArgumentType::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            (ArgumentType::Boolean, Value::Bool(_)) => true,
            (ArgumentType::Object, Value::Object(_)) => true,
            (ArgumentType::Array, Value::Array(_)) => true,
            _ => false,
        }
    }

    /// A placeholder value of this type, for argument skeletons.
    pub fn placeholder(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ArgumentType::String => Value::String(String::new()),
            ArgumentType::Number | ArgumentType::Integer => Value::from(0),
            ArgumentType::Boolean => Value::Bool(false),
            ArgumentType::Object => Value::Object(Default::default()),
            ArgumentType::Array => Value::Array(Vec::new()),
        }
    }
}

impl fmt::Display for ArgumentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ArgumentType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // WASImancer lower-cases the type before looking at it.
        let lower = text.to_ascii_lowercase();
        ArgumentType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == lower)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "type `{text}` is not an argument type; valid types are: string, number, integer, boolean, object, array"
                ))
            })
    }
}

impl PluginSpec {
    /// The call timeout in force for this plugin.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// The memory cap in force for this plugin, in MiB.
    pub fn memory_mb(&self) -> u32 {
        self.memory_mb.unwrap_or(DEFAULT_MEMORY_MB)
    }

    /// The module path below the plugins folder, without WASImancer's leading `/` or `./`.
    pub fn relative_path(&self) -> PathBuf {
        normalize_relative(&self.path).unwrap_or_default()
    }
}

impl FunctionSpec {
    /// The name written in plugins.yml: the display name, or the function.
    pub fn title(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.function)
    }

    /// The tool name clients use: the title with every character MCP does not
    /// allow in a name (letters, digits, `_`, `-`, `.`) replaced by `_`.
    pub fn tool_name(&self) -> String {
        tool_name(self.title())
    }
}

/// Make `title` a valid MCP tool name.
pub fn tool_name(title: &str) -> String {
    title
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect()
}

/// A problem found in plugins.yml, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key path, such as `plugins[2].timeout_ms`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ", {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "cannot read {}: {source} (set --plugins-file, or PLUGINS_PATH and PLUGINS_DEFINITION_FILE as for WASImancer)",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", ProblemList(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The catalog could not be turned into plugins.yml text that reads back
    /// as the same catalog.
    #[error("cannot write {}: {reason}; nothing was written", path.display())]
    Serialize { path: PathBuf, reason: String },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A parsed and validated plugins.yml with what is needed to point at its lines.
#[derive(Debug, Clone)]
pub struct CatalogFile {
    pub path: PathBuf,
    pub catalog: Catalog,
    pub source: SourceMap,
}

impl CatalogFile {
    /// Read and validate the file at `path`.
    pub fn read(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate `text` as the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, CatalogError> {
        let source = SourceMap::new(text);
        let catalog: Catalog = if text.trim().is_empty() {
            Catalog::default()
        } else {
            serde_yaml::from_str(text).map_err(|error| CatalogError::Invalid {
                problems: vec![syntax_problem(path, text, &error)],
            })?
        };
        let file = Self {
            path: path.to_path_buf(),
            catalog,
            source,
        };
        let problems = file.problems();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(CatalogError::Invalid { problems })
        }
    }

    /// `catalog` as the content of `path`: validated, with the text to write.
    /// The text is read back before anything is written, so a serialisation
    /// that loses something is refused instead of saved.
    pub fn render(path: &Path, catalog: Catalog) -> Result<(Self, String), CatalogError> {
        let text = catalog
            .to_yaml()
            .map_err(|reason| CatalogError::Serialize {
                path: path.to_path_buf(),
                reason,
            })?;
        let file = Self::read_back(path, &catalog, &text)?;
        Ok((file, text))
    }

    /// `text` parsed as `path`, if it is exactly `catalog`.
    fn read_back(path: &Path, catalog: &Catalog, text: &str) -> Result<Self, CatalogError> {
        let file = Self::parse(path, text)?;
        if file.catalog != *catalog {
            return Err(CatalogError::Serialize {
                path: path.to_path_buf(),
                reason: "the new content does not read back as the catalog it was made from".into(),
            });
        }
        Ok(file)
    }

    /// A problem about `plugins[index]`, pointing at `key` in it.
    pub fn plugin_problem(&self, index: usize, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.path.clone(),
            line: self.source.plugin_key(index, key),
            key: format!("plugins[{index}].{key}"),
            message: message.into(),
        }
    }

    /// A problem about `plugins[plugin].functions[function]`, pointing at `key` in it.
    pub fn function_problem(
        &self,
        plugin: usize,
        function: usize,
        key: &str,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: self.path.clone(),
            line: self.source.function_key(plugin, function, key),
            key: format!("plugins[{plugin}].functions[{function}].{key}"),
            message: message.into(),
        }
    }

    /// Checks that need more than one value at a time.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut plugin_names: HashMap<&str, usize> = HashMap::new();
        let mut tool_names: HashMap<String, (usize, String)> = HashMap::new();
        for (p, plugin) in self.catalog.plugins.iter().enumerate() {
            if let Err(message) = check_name(&plugin.name) {
                problems.push(self.plugin_problem(p, "name", message));
            } else if let Some(first) = plugin_names.insert(&plugin.name, p) {
                problems.push(self.plugin_problem(
                    p,
                    "name",
                    format!(
                        "plugin name `{}` is already used by plugins[{first}]; plugin names must be unique",
                        plugin.name
                    ),
                ));
            }
            if plugin.functions.is_empty() {
                problems.push(self.plugin_problem(
                    p,
                    "functions",
                    "a plugin needs at least one function to serve as a tool",
                ));
            }
            for (f, function) in plugin.functions.iter().enumerate() {
                self.check_function(p, f, function, &mut tool_names, &mut problems);
            }
        }
        problems
    }

    fn check_function(
        &self,
        p: usize,
        f: usize,
        function: &FunctionSpec,
        tool_names: &mut HashMap<String, (usize, String)>,
        problems: &mut Vec<Problem>,
    ) {
        if function.function.trim().is_empty() {
            problems.push(self.function_problem(
                p,
                f,
                "function",
                "the exported function name is empty",
            ));
        }
        let tool = function.tool_name();
        if tool.is_empty() || tool.chars().all(|c| c == '_') {
            problems.push(self.function_problem(
                p,
                f,
                "displayName",
                format!(
                    "`{}` gives no usable tool name; use letters, digits, `_`, `-` or `.`",
                    function.title()
                ),
            ));
        } else if let Some((other, other_title)) =
            tool_names.insert(tool.clone(), (p, function.title().to_string()))
        {
            problems.push(self.function_problem(
                p,
                f,
                "displayName",
                format!(
                    "tool name `{tool}` is already taken by `{other_title}` in plugin `{}`; give one of them another displayName",
                    self.catalog.plugins[other].name
                ),
            ));
        }
        let mut seen = HashMap::new();
        for (a, argument) in function.arguments.iter().enumerate() {
            let key = format!("plugins[{p}].functions[{f}].arguments[{a}].name");
            let line = self.source.argument(p, f, a);
            let message = if argument.name.is_empty() {
                Some("an argument needs a name".to_string())
            } else {
                seen.insert(argument.name.as_str(), a).map(|first| {
                    format!(
                        "argument `{}` is declared twice (also arguments[{first}])",
                        argument.name
                    )
                })
            };
            if let Some(message) = message {
                problems.push(Problem {
                    file: self.path.clone(),
                    line,
                    key,
                    message,
                });
            }
        }
    }
}

impl Catalog {
    /// The catalog as plugins.yml text. To write it, use
    /// [`CatalogFile::render`], which also checks that it reads back.
    pub fn to_yaml(&self) -> Result<String, String> {
        serde_yaml::to_string(self).map_err(|error| error.to_string())
    }

    /// Index of the plugin called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.plugins.iter().position(|p| p.name == name)
    }
}

impl PluginSpec {
    /// Parse one entry written as JSON (the admin API's `pluginData`) or YAML.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|error| error.to_string())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the plugin name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the plugin name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "plugin name `{}` contains `/`, `\\` or a control character",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// `path` as a path below the plugins folder, or why it is not one.
///
/// WASImancer joins `path` onto its plugins folder as a string, so a leading
/// `/` means "at the top of the plugins folder", not the filesystem root.
pub fn normalize_relative(path: &str) -> Result<PathBuf, String> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err("the path is empty".into());
    }
    let mut clean = PathBuf::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "path `{path}` uses `..`; paths must stay inside the plugins folder"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "path `{path}` is absolute; write it relative to the plugins folder"
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("path `{path}` names the plugins folder itself"));
    }
    Ok(clean)
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A YAML scalar of any kind as text (`version: 1.0` is a float to YAML).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(value: Scalar) -> Self {
        match value {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, Scalar>>::deserialize(d)?.unwrap_or_default();
    Ok(map.into_iter().map(|(k, v)| (k, v.into())).collect())
}

fn relative_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    normalize_relative(&path).map_err(de::Error::custom)?;
    Ok(path)
}

fn allowed_paths<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
    for (host, guest) in &map {
        let folder = host.strip_prefix("ro:").unwrap_or(host);
        normalize_relative(folder).map_err(|e| {
            de::Error::custom(format!(
                "allowed_paths: {e} (host folders are relative to the plugins folder)"
            ))
        })?;
        if !guest.starts_with('/') {
            return Err(de::Error::custom(format!(
                "allowed_paths: `{host}` maps to `{guest}`; the path the plugin sees must be absolute, like `/data`"
            )));
        }
    }
    Ok(map)
}

fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ArgumentSpec>, D::Error> {
    // `arguments:` with nothing after it is null in YAML; WASImancer accepts it.
    Ok(Option::<Vec<ArgumentSpec>>::deserialize(d)?.unwrap_or_default())
}

fn bounded<'de, D, T>(d: D, key: &str, min: T, max: T, unit: &str) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display + Copy,
{
    let value = Option::<T>::deserialize(d)?;
    if let Some(v) = value
        && (v < min || v > max)
    {
        return Err(de::Error::custom(format!(
            "{key} is {v}; it must be between {min} and {max}{unit}"
        )));
    }
    Ok(value)
}

fn timeout_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    bounded(d, "timeout_ms", 1, MAX_TIMEOUT_MS, " milliseconds")
}

fn memory_mb<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    bounded(d, "memory_mb", 1, MAX_MEMORY_MB, " MiB")
}

fn instances<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    bounded(d, "instances", 1, MAX_INSTANCES, "")
}

/// Turn a serde_yaml error into a problem with a line and, for an unknown
/// key, the closest valid one.
fn syntax_problem(file: &Path, text: &str, error: &serde_yaml::Error) -> Problem {
    let mut message = error.to_string();
    // serde_yaml appends " at line L column C"; we print the line ourselves.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let (key, mut message) = match message.split_once(": ") {
        Some((path, rest)) if looks_like_key_path(path) => (path.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    if let Some(hint) = did_you_mean(&message) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    }
    let mut line = error.location().map(|l| l.line());
    let mut key = key;
    // Our own checks of a value start their message with its key; serde_yaml
    // places them at the start of the enclosing entry, so find the key's line.
    let field = message
        .split([' ', ':'])
        .next()
        .filter(|word| VALUE_CHECKED_KEYS.contains(word));
    if let (Some(field), Some(indexes)) = (field, entry_indexes(&key)) {
        let source = SourceMap::new(text);
        let refined = match indexes {
            (p, None, _) => source.plugin_key(p, field),
            (p, Some(f), None) => source.function_key(p, f, field),
            (p, Some(f), Some(a)) => source.argument_key(p, f, a, field),
        };
        if refined.is_some() {
            line = refined;
        }
        key = format!("{key}.{field}");
    }
    Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}

/// Keys whose values we check while parsing; their messages start with the key.
const VALUE_CHECKED_KEYS: [&str; 6] = [
    "path",
    "timeout_ms",
    "memory_mb",
    "instances",
    "allowed_paths",
    "type",
];

/// `(plugin, function, argument)` from `plugins[1].functions[0].arguments[2]`.
fn entry_indexes(key: &str) -> Option<(usize, Option<usize>, Option<usize>)> {
    let index = |part: &str, name: &str| -> Option<usize> {
        part.strip_prefix(name)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    let mut parts = key.split('.');
    let plugin = index(parts.next()?, "plugins")?;
    let function = match parts.next() {
        Some(part) => Some(index(part, "functions")?),
        None => None,
    };
    let argument = match parts.next() {
        Some(part) => Some(index(part, "arguments")?),
        None => None,
    };
    Some((plugin, function, argument))
}

fn looks_like_key_path(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(' ')
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "_[].".contains(c))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", the closest expected field.
fn did_you_mean(message: &str) -> Option<String> {
    let unknown = message.strip_prefix("unknown field `")?.split('`').next()?;
    let expected = message.split_once("expected ")?.1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(3) / 3 + 1)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CatalogFile, CatalogError> {
        CatalogFile::parse(Path::new("plugins.yml"), text)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(CatalogError::Invalid { problems }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const WASIMANCER: &str = "\
plugins:

  - name: roll dice
    path: ./roll-dice/wasimancer-plugin-roll-dice.wasm
    version: 1.0.0
    description: roll dice
    functions:
      - displayName: rollDice
        function: rollDice
        arguments:
          - name: numFaces
            type: number
            description: number of faces on the dice
          - name: numDice
            type: number
            description: number of dice to roll
        description: a function to roll dice
";

    #[test]
    fn reads_a_wasimancer_file_unchanged() {
        let file = parse(WASIMANCER).unwrap();
        let plugin = &file.catalog.plugins[0];
        assert_eq!(plugin.name, "roll dice");
        assert_eq!(
            plugin.relative_path(),
            Path::new("roll-dice/wasimancer-plugin-roll-dice.wasm")
        );
        assert_eq!(plugin.version.as_deref(), Some("1.0.0"));
        assert!(plugin.wasi, "WASI is on by default");
        assert_eq!(plugin.timeout_ms(), DEFAULT_TIMEOUT_MS);
        assert!(plugin.allowed_hosts.is_empty());
        let function = &plugin.functions[0];
        assert_eq!(function.tool_name(), "rollDice");
        assert_eq!(function.arguments[1].kind, ArgumentType::Number);
        assert!(function.arguments[1].required);
    }

    #[test]
    fn a_typo_in_a_limit_is_an_error_with_line_and_suggestion() {
        let text = WASIMANCER.replace(
            "    description: roll dice\n",
            "    description: roll dice\n    timeout_sm: 100\n",
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(problem.line, Some(7), "{problem}");
        assert_eq!(problem.key, "plugins[0]");
        assert!(problem.message.contains("unknown field `timeout_sm`"));
        assert!(
            problem.message.contains("did you mean `timeout_ms`?"),
            "{problem}"
        );
    }

    #[test]
    fn out_of_range_limits_say_what_is_valid() {
        let text = WASIMANCER.replace(
            "    description: roll dice\n",
            "    description: roll dice\n    memory_mb: 0\n",
        );
        let problem = &problems(&text)[0];
        assert_eq!(problem.line, Some(7));
        assert_eq!(problem.key, "plugins[0].memory_mb");
        assert!(problem.message.contains("between 1 and 4096"), "{problem}");
    }

    #[test]
    fn paths_may_not_leave_the_plugins_folder() {
        for bad in ["../etc/passwd.wasm", "a/../../b.wasm", "/.."] {
            let text = WASIMANCER.replace(
                "./roll-dice/wasimancer-plugin-roll-dice.wasm",
                &format!("\"{bad}\""),
            );
            let problem = &problems(&text)[0];
            assert_eq!(problem.line, Some(4), "{bad}: {problem}");
            assert!(problem.message.contains("plugins folder"), "{problem}");
        }
        // WASImancer's leading `/` is relative to the plugins folder.
        assert_eq!(
            normalize_relative("/hello/x.wasm").unwrap(),
            Path::new("hello/x.wasm")
        );
    }

    #[test]
    fn unknown_argument_types_list_the_valid_ones() {
        let text = WASIMANCER.replacen("type: number", "type: nubmer", 1);
        let problem = &problems(&text)[0];
        assert_eq!(problem.line, Some(12));
        assert!(problem.message.contains("valid types are"), "{problem}");
        // Case does not matter, as in WASImancer.
        assert!(parse(&WASIMANCER.replacen("type: number", "type: Number", 1)).is_ok());
    }

    #[test]
    fn duplicate_plugins_and_tools_are_reported_with_their_lines() {
        let text = format!(
            "{WASIMANCER}  - name: roll dice\n    path: other.wasm\n    functions:\n      - displayName: roll Dice\n        function: x\n      - displayName: rollDice\n        function: y\n"
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(18));
        assert!(problems[0].message.contains("already used"));
        assert_eq!(problems[1].line, Some(23));
        assert_eq!(problems[1].key, "plugins[1].functions[1].displayName");
        assert!(problems[1].message.contains("already taken"));
    }

    #[test]
    fn tool_names_are_made_valid_for_mcp() {
        assert_eq!(tool_name("say hello"), "say_hello");
        assert_eq!(tool_name("add with rust"), "add_with_rust");
        assert_eq!(tool_name("über.tool-1"), "_ber.tool-1");
        assert_eq!(tool_name(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let problem = &problems("plugins:\n  - name: [unclosed\n")[0];
        assert!(problem.line.is_some(), "{problem}");
    }

    #[test]
    fn saving_and_reading_back_gives_the_same_catalog() {
        let text = WASIMANCER.replace(
            "    description: roll dice\n",
            "    description: roll dice\n    wasi: false\n    timeout_ms: 250\n    config:\n      answer: 42\n",
        );
        let file = parse(&text).unwrap();
        let (again, written) =
            CatalogFile::render(Path::new("plugins.yml"), file.catalog.clone()).unwrap();
        assert_eq!(file.catalog, again.catalog);
        assert_eq!(again.catalog.plugins[0].config["answer"], "42");
        assert_eq!(parse(&written).unwrap().catalog, file.catalog);
    }

    #[test]
    fn text_that_does_not_read_back_as_the_catalog_is_never_written() {
        // An empty plugins.yml is a valid empty catalog: if serialising ever
        // gave nothing, writing it would wipe every plugin.
        let file = parse(WASIMANCER).unwrap();
        let error =
            CatalogFile::read_back(Path::new("plugins.yml"), &file.catalog, "").unwrap_err();
        assert!(matches!(error, CatalogError::Serialize { .. }), "{error}");
        assert!(error.to_string().contains("nothing was written"), "{error}");
    }

    #[test]
    fn plugin_entries_from_json() {
        let spec = PluginSpec::from_json(
            r#"{"name":"calc","path":"./bucket/calc.wasm","functions":[{"displayName":"add","function":"addNumbers","arguments":[]}]}"#,
        )
        .unwrap();
        assert_eq!(spec.functions[0].function, "addNumbers");
        let error = PluginSpec::from_json(r#"{"name":"calc","path":"../x.wasm","functions":[]}"#)
            .unwrap_err();
        assert!(error.contains("plugins folder"), "{error}");
    }
}
