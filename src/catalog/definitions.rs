//! What resources.yml and prompts.yml have in common: a file that may be
//! absent, read and checked with line numbers like plugins.yml, rewritten
//! whole by the admin API; and the declared parameters (template variables,
//! prompt arguments) whose values come from clients as text.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::source_map::Step;
use super::{ArgumentType, Problem, ProblemList, Scalar, SourceMap};

/// The longest name of a resource or prompt (they appear in admin URLs).
const MAX_NAME_LEN: usize = 128;

/// The content of a definition file: what it holds and the checks that span
/// several of its entries.
pub trait Definitions:
    Default + Clone + PartialEq + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// What the file holds, for messages ("resources", "prompts").
    const WHAT: &'static str;

    /// Everything wrong that parsing alone does not catch.
    fn problems(&self, at: &Locator<'_>) -> Vec<Problem>;
}

/// A parsed and checked definition file, with what is needed to point at its lines.
#[derive(Debug, Clone)]
pub struct DefinitionFile<T> {
    pub path: PathBuf,
    pub definitions: T,
    pub source: SourceMap,
    /// Whether the file is on disk (an absent file defines nothing).
    pub exists: bool,
}

/// Why a definition file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", ProblemList(problems))]
    Invalid { problems: Vec<Problem> },
}

impl DefinitionError {
    /// The problems without their file name, joined: for definitions built
    /// from a request rather than read from the file.
    pub fn messages(&self) -> String {
        self.joined(|key| key)
    }

    /// Like [`DefinitionError::messages`], for the definitions of a single
    /// entry: keys are given within the entry (`uri`, not `resources.static[0].uri`).
    pub fn entry_messages(&self) -> String {
        self.joined(|key| match key.split_once("].") {
            Some((_, within)) => within,
            None if key.ends_with(']') => "",
            None => key,
        })
    }

    fn joined(&self, key: impl Fn(&str) -> &str) -> String {
        match self {
            DefinitionError::Invalid { problems } => problems
                .iter()
                .map(|p| match key(&p.key) {
                    "" => p.message.clone(),
                    key => format!("{key}: {}", p.message),
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
}

impl<T: Definitions> DefinitionFile<T> {
    /// Read and check the file at `path`. A missing file is an empty one.
    pub fn read(path: &Path) -> Result<Self, DefinitionError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path: path.to_path_buf(),
                definitions: T::default(),
                source: SourceMap::default(),
                exists: false,
            }),
            Err(source) => Err(DefinitionError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Check `text` as the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DefinitionError> {
        let source = SourceMap::new(text);
        let definitions: T = if text.trim().is_empty() {
            T::default()
        } else {
            read(path, text, &source).map_err(|problem| DefinitionError::Invalid {
                problems: vec![problem],
            })?
        };
        let file = Self {
            path: path.to_path_buf(),
            definitions,
            source,
            exists: true,
        };
        let problems = file.definitions.problems(&Locator {
            file: &file.path,
            source: &file.source,
        });
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(DefinitionError::Invalid { problems })
        }
    }

    /// Check `definitions` as the new content of `path`, as it would be written.
    pub fn in_memory(path: &Path, definitions: &T) -> Result<Self, DefinitionError> {
        Self::parse(path, &to_yaml(definitions))
    }

    /// The text to write for this file.
    pub fn to_yaml(&self) -> String {
        to_yaml(&self.definitions)
    }
}

fn to_yaml<T: Serialize>(definitions: &T) -> String {
    // Plain structs of strings, numbers and JSON values always serialise.
    serde_yaml::to_string(definitions).unwrap_or_default()
}

/// Makes problems that point at a place in a definition file.
pub struct Locator<'a> {
    pub file: &'a Path,
    pub source: &'a SourceMap,
}

impl Locator<'_> {
    /// A problem at `path` (keys and list items), such as
    /// `resources.static[2].uri`.
    pub fn problem(&self, path: &[Step], message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line: self.source.line(path),
            key: key_path(path),
            message: message.into(),
        }
    }
}

/// `resources.static[2].uri` for a path of steps.
fn key_path(path: &[Step]) -> String {
    let mut key = String::new();
    for step in path {
        match step {
            Step::Key(name) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Step::Item(index) => key.push_str(&format!("[{index}]")),
        }
    }
    key
}

/// Read `text` as plugins.yml is read: YAML into a tree first (syntax
/// errors in serde_yaml's words, at the line an editor shows), then the
/// values, whose errors carry the path of keys and items they were found at,
/// so the problem points at that key's line.
fn read<T: DeserializeOwned>(file: &Path, text: &str, source: &SourceMap) -> Result<T, Problem> {
    let problem = |line, key, message| Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|error| {
        problem(
            super::diagnostics::line_of(text, error.location()),
            String::new(),
            error.to_string(),
        )
    })?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        use serde_path_to_error::Segment;
        let path: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(Step::Key(key)),
                Segment::Seq { index } => Some(Step::Item(*index)),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        problem(
            source.line(&path),
            key_path(&path),
            error.inner().to_string(),
        )
    })
}

/// A declared parameter: a variable of a URI template, or an argument of a
/// prompt. Clients send values as text; the type says what text is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    pub name: String,
    /// WASImancer writes it "for informational purposes"; here it is checked.
    #[serde(rename = "type", default = "string_type")]
    pub kind: ArgumentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
    /// Values offered by `completion/complete` (ours).
    #[serde(
        default,
        deserialize_with = "scalar_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

impl ParameterSpec {
    /// A string parameter with nothing else declared (a template variable
    /// without an `arguments` entry).
    pub fn text(name: &str) -> Self {
        Self {
            name: name.to_string(),
            kind: ArgumentType::String,
            description: None,
            required: true,
            values: Vec::new(),
        }
    }

    /// Check a value a client sent and return it as text (to fill `${…}`)
    /// and as JSON (for a plugin's input). A JSON value of the right type is
    /// taken as is; text is parsed for numbers, booleans, objects and arrays.
    pub fn parse_value(&self, given: &Value) -> Result<(String, Value), String> {
        let parsed = match given {
            Value::String(text) => match self.kind {
                ArgumentType::String => Some(given.clone()),
                ArgumentType::Boolean => match text.trim() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                _ => serde_json::from_str::<Value>(text.trim()).ok(),
            }
            .filter(|value| self.kind.accepts(value)),
            other => Some(other.clone()).filter(|value| self.kind.accepts(value)),
        };
        match parsed {
            Some(Value::String(text)) => Ok((text.clone(), Value::String(text))),
            Some(value) => Ok((value.to_string(), value)),
            None => Err(format!(
                "`{}` must be {} {}, got {}",
                self.name,
                if self.kind.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                self.kind,
                match given {
                    Value::String(text) => format!("`{text}`"),
                    other => other.to_string(),
                }
            )),
        }
    }

    /// The declared values that start with `prefix` (case-insensitively).
    pub fn complete(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.to_lowercase();
        self.values
            .iter()
            .filter(|value| value.to_lowercase().starts_with(&prefix))
            .cloned()
            .collect()
    }
}

/// Check the parameters of one entry: names present and unique.
/// Check the values a client sent for `parameters`: every one declared,
/// every required one there, each of its type. The values as text (for
/// `${…}` and URIs), in declared order, or every problem found. The server
/// and the console's form check with this one function.
pub fn parameter_values(
    parameters: &[ParameterSpec],
    given: &Map<String, Value>,
) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut problems: Vec<String> = given
        .keys()
        .filter(|key| !parameters.iter().any(|p| &p.name == *key))
        .map(|key| format!("unknown argument `{key}`"))
        .collect();
    let mut values = Vec::new();
    for parameter in parameters {
        match given.get(&parameter.name) {
            Some(Value::Null) | None if parameter.required => {
                problems.push(format!("missing required argument `{}`", parameter.name))
            }
            Some(Value::Null) | None => values.push((parameter.name.clone(), String::new())),
            Some(value) => match parameter.parse_value(value) {
                Ok((text, _)) => values.push((parameter.name.clone(), text)),
                Err(problem) => problems.push(problem),
            },
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

pub fn parameter_problems(
    at: &Locator<'_>,
    entry: &[Step],
    parameters: &[ParameterSpec],
    problems: &mut Vec<Problem>,
) {
    let mut seen = std::collections::HashMap::new();
    for (i, parameter) in parameters.iter().enumerate() {
        let mut path = entry.to_vec();
        path.extend([Step::Key("arguments"), Step::Item(i), Step::Key("name")]);
        if parameter.name.trim().is_empty() {
            problems.push(at.problem(&path, "an argument needs a name"));
        } else if let Some(first) = seen.insert(parameter.name.as_str(), i) {
            problems.push(at.problem(
                &path,
                format!(
                    "argument `{}` is declared twice (also arguments[{first}])",
                    parameter.name
                ),
            ));
        }
    }
}

/// Whether `name` can name a resource or a prompt; `what` is "resource" or "prompt".
pub fn check_entry_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("the {what} name is empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "the {what} name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "{what} name `{}` contains `/`, `\\` or a control character (it is used in admin URLs)",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Whether `mime` looks like a media type (`text/markdown`).
pub fn check_mime_type(mime: &str) -> Result<(), String> {
    match mime.split_once('/') {
        Some((kind, sub)) if !kind.is_empty() && !sub.is_empty() && !mime.contains(' ') => Ok(()),
        _ => Err(format!(
            "mimeType `{mime}` is not a media type such as `text/plain` or `application/json`"
        )),
    }
}

/// An optional YAML scalar of any kind, as text.
pub(super) fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

fn scalar_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Option::<Vec<Scalar>>::deserialize(d)?.unwrap_or_default();
    Ok(list.into_iter().map(String::from).collect())
}

/// A key written with nothing after it (`dynamic:`) is null in YAML; WASImancer
/// reads it as empty.
pub(super) fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn string_type() -> ArgumentType {
    ArgumentType::String
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parameter(kind: ArgumentType) -> ParameterSpec {
        ParameterSpec {
            kind,
            ..ParameterSpec::text("n")
        }
    }

    #[test]
    fn text_values_are_checked_against_the_declared_type() {
        let integer = parameter(ArgumentType::Integer);
        assert_eq!(
            integer.parse_value(&json!("12")).unwrap(),
            ("12".into(), json!(12))
        );
        assert_eq!(
            integer.parse_value(&json!(3)).unwrap(),
            ("3".into(), json!(3))
        );
        let error = integer.parse_value(&json!("twelve")).unwrap_err();
        assert_eq!(error, "`n` must be an integer, got `twelve`");
        let text = parameter(ArgumentType::String);
        assert_eq!(
            text.parse_value(&json!("12")).unwrap(),
            ("12".into(), json!("12"))
        );
        assert!(text.parse_value(&json!(12)).is_err());
        let flag = parameter(ArgumentType::Boolean);
        assert_eq!(flag.parse_value(&json!("true")).unwrap().1, json!(true));
        let list = parameter(ArgumentType::Array);
        assert_eq!(list.parse_value(&json!("[1,2]")).unwrap().1, json!([1, 2]));
    }

    #[test]
    fn completion_offers_declared_values_by_prefix() {
        let mut language = ParameterSpec::text("language");
        language.values = vec!["English".into(), "Esperanto".into(), "French".into()];
        assert_eq!(language.complete("e"), ["English", "Esperanto"]);
        assert_eq!(language.complete(""), ["English", "Esperanto", "French"]);
        assert!(language.complete("x").is_empty());
    }

    #[test]
    fn names_must_fit_in_a_url() {
        assert!(check_entry_name("resource", "server-info").is_ok());
        assert!(
            check_entry_name("prompt", "")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            check_entry_name("prompt", "a/b")
                .unwrap_err()
                .contains("`/`")
        );
        assert!(check_mime_type("application/json").is_ok());
        assert!(check_mime_type("json").is_err());
    }
}
