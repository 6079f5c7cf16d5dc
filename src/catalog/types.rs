//! The entries of plugins.yml as serde reads and writes them. Values that
//! can be checked alone (a range, a path, an argument type) are checked while
//! reading, so a bad one is reported at its key.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::path::{PathError, RelativePath};
use super::tool_surface::{ClientCapability, IconSpec, OutputKind, ToolHints};
use crate::schema::JsonSchema;

/// How long one call may run when `timeout_ms` is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// How much memory one instance may use when `memory_mb` is not set.
pub const DEFAULT_MEMORY_MB: u32 = 64;

const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_MEMORY_MB: u32 = 4_096;
const MAX_INSTANCES: usize = 256;
pub(super) const MAX_NAME_LEN: usize = 128;

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
    /// The arguments, each a scalar or a plain object or array (WASImancer's
    /// list). A function declares these or an `inputSchema`, not both.
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Vec<ArgumentSpec>,
    /// Any JSON Schema for the arguments object, instead of `arguments`.
    #[serde(
        rename = "inputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_schema: Option<JsonSchema>,
    /// What the function returns: text (the default), JSON or MCP content.
    #[serde(default, skip_serializing_if = "OutputKind::is_text")]
    pub output: OutputKind,
    /// The JSON Schema the structured output must satisfy (`output: json`
    /// or `content`); listed with the tool.
    #[serde(
        rename = "outputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_schema: Option<JsonSchema>,
    /// A human-readable name for clients to show (MCP's `title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolHints>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub icons: Vec<IconSpec>,
    /// Client capabilities the tool needs; other clients are refused.
    #[serde(
        rename = "clientCapabilities",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub client_capabilities: Vec<ClientCapability>,
    /// Arguments whose values are never recorded (call log, consoles, audit
    /// log): they show as "[redacted]". Names that look like secrets
    /// (token, password, api_key…) are redacted without being listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
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
    /// Mirror the argument in the HTTP header `Mcp-Param-<header>` (SEP-2243),
    /// so that proxies can route on it without reading the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
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
    /// Every type, in the order the docs list them.
    pub const ALL: [ArgumentType; 6] = [
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

    /// The module's path below the plugins folder (checked when the entry
    /// was read; an entry built in code may still hold a bad one).
    pub fn module(&self) -> Result<RelativePath, PathError> {
        RelativePath::new(&self.path)
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

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A YAML scalar of any kind as text (`version: 1.0` is a float to YAML).
pub(super) struct Scalar(String);

impl From<Scalar> for String {
    fn from(value: Scalar) -> Self {
        value.0
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;

        impl de::Visitor<'_> for Text {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text, a number or a boolean")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(text.to_string()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Scalar, E> {
                Ok(Scalar(text))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar(n.to_string()))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar, E> {
                Ok(Scalar(n.to_string()))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scalar, E> {
                Ok(Scalar(n.to_string()))
            }

            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar(b.to_string()))
            }
        }

        deserializer.deserialize_any(Text)
    }
}

fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|scalar| scalar.0))
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, Scalar>>::deserialize(d)?.unwrap_or_default();
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn relative_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    RelativePath::new(&path).map_err(de::Error::custom)?;
    Ok(path)
}

fn allowed_paths<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
    for (host, guest) in &map {
        let folder = host.strip_prefix("ro:").unwrap_or(host);
        RelativePath::new(folder).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WASIMANCER, parse, problems};
    use super::*;

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
    fn unknown_argument_types_list_the_valid_ones() {
        let text = WASIMANCER.replacen("type: number", "type: nubmer", 1);
        let problem = &problems(&text)[0];
        assert_eq!(problem.line, Some(12));
        assert!(problem.message.contains("valid types are"), "{problem}");
        // Case does not matter, as in WASImancer.
        assert!(parse(&WASIMANCER.replacen("type: number", "type: Number", 1)).is_ok());
    }

    #[test]
    fn tool_names_are_made_valid_for_mcp() {
        assert_eq!(tool_name("say hello"), "say_hello");
        assert_eq!(tool_name("add with rust"), "add_with_rust");
        assert_eq!(tool_name("über.tool-1"), "_ber.tool-1");
        assert_eq!(tool_name(&"x".repeat(300)).len(), 128);
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
