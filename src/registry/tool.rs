//! A tool: one function of one loaded plugin, with its name, schema and the
//! checks its arguments must pass before the plugin runs.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::catalog::{ArgumentSpec, FunctionSpec};
use crate::runtime::LoadedPlugin;

/// A callable tool, bound to the plugin version that serves it.
pub struct Tool {
    /// The MCP name: the display name made valid for MCP.
    pub name: Arc<str>,
    /// The display name as written in plugins.yml.
    pub title: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Arc<Map<String, Value>>,
    pub plugin_name: Arc<str>,
    pub function: Arc<str>,
    pub arguments: Vec<ArgumentSpec>,
    pub plugin: Arc<LoadedPlugin>,
}

impl Tool {
    pub fn new(function: &FunctionSpec, plugin: &Arc<LoadedPlugin>) -> Self {
        let spec = plugin.spec();
        let description = function
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| {
                // Clients require a description; say at least where the tool comes from.
                let about = spec
                    .description
                    .as_deref()
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                format!(
                    "Calls `{}` of the WebAssembly plugin `{}`{about}",
                    function.function, spec.name
                )
            });
        Self {
            name: function.tool_name().into(),
            title: function.title().to_string(),
            description,
            input_schema: Arc::new(input_schema(&function.arguments)),
            plugin_name: spec.name.as_str().into(),
            function: function.function.as_str().into(),
            arguments: function.arguments.clone(),
            plugin: Arc::clone(plugin),
        }
    }

    /// Check `arguments` against the declared ones and turn them into the
    /// plugin's input: a JSON object with the declared keys in declared order,
    /// and whole numbers written without a fraction (plugins built with Go
    /// decode `3.0` into an int field as an error).
    pub fn input(&self, arguments: &Map<String, Value>) -> Result<String, String> {
        plugin_input(&self.name, &self.arguments, arguments)
    }

    /// The arguments as a reader would write them: `{numFaces: number, numDice: number}`.
    pub fn signature(&self) -> String {
        signature(&self.arguments)
    }

    /// A skeleton of the arguments object, pretty-printed, with a placeholder
    /// for each argument in the declared order (serde_json's map would sort
    /// them, and the order is the one the plugin author chose to explain).
    pub fn skeleton(&self) -> String {
        if self.arguments.is_empty() {
            return "{}".into();
        }
        let fields: Vec<String> = self
            .arguments
            .iter()
            .map(|argument| {
                format!(
                    "  {}: {}",
                    Value::String(argument.name.clone()),
                    argument.kind.placeholder()
                )
            })
            .collect();
        format!("{{\n{}\n}}", fields.join(",\n"))
    }
}

/// See [`Tool::input`].
pub(crate) fn plugin_input(
    tool: &str,
    declared: &[ArgumentSpec],
    arguments: &Map<String, Value>,
) -> Result<String, String> {
    let mut problems = Vec::new();
    for key in arguments.keys() {
        if !declared.iter().any(|a| &a.name == key) {
            problems.push(format!("unknown argument `{key}`"));
        }
    }
    let mut input = String::from("{");
    for argument in declared {
        match arguments.get(&argument.name) {
            Some(value) if argument.kind.accepts(value) => {
                if input.len() > 1 {
                    input.push(',');
                }
                // Writing JSON to a String cannot fail.
                let _ = write!(
                    input,
                    "{}:{}",
                    Value::String(argument.name.clone()),
                    normalize_number(value)
                );
            }
            Some(Value::Null) if !argument.required => {}
            Some(value) => problems.push(format!(
                "`{}` must be {} {}, got {}",
                argument.name,
                article(argument.kind.as_str()),
                argument.kind,
                describe(value)
            )),
            None if argument.required => {
                problems.push(format!("missing required argument `{}`", argument.name))
            }
            None => {}
        }
    }
    input.push('}');
    if problems.is_empty() {
        Ok(input)
    } else {
        Err(format!(
            "invalid arguments for `{tool}`: {}. Expected {}",
            problems.join("; "),
            signature(declared)
        ))
    }
}

fn signature(declared: &[ArgumentSpec]) -> String {
    if declared.is_empty() {
        return "no arguments ({})".into();
    }
    let parts: Vec<String> = declared
        .iter()
        .map(|a| {
            let optional = if a.required { "" } else { " (optional)" };
            format!("{}: {}{optional}", a.name, a.kind)
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// JSON Schema for an object with the declared arguments.
fn input_schema(arguments: &[ArgumentSpec]) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for argument in arguments {
        let mut property = Map::new();
        property.insert("type".into(), argument.kind.as_str().into());
        if let Some(description) = &argument.description {
            property.insert("description".into(), description.as_str().into());
        }
        properties.insert(argument.name.clone(), Value::Object(property));
        if argument.required {
            required.push(Value::String(argument.name.clone()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), Value::Bool(false));
    schema
}

fn normalize_number(value: &Value) -> Value {
    if let Value::Number(n) = value
        && !n.is_i64()
        && !n.is_u64()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        return Value::from(f as i64);
    }
    value.clone()
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = value.to_string();
    if text.len() <= 40 {
        format!("{kind} ({text})")
    } else {
        kind.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ArgumentType;

    fn declared() -> Vec<ArgumentSpec> {
        let argument = |name: &str, kind, required| ArgumentSpec {
            name: name.into(),
            kind,
            description: None,
            required,
        };
        vec![
            argument("numFaces", ArgumentType::Integer, true),
            argument("numDice", ArgumentType::Number, true),
            argument("label", ArgumentType::String, false),
        ]
    }

    fn input(json: &str) -> Result<String, String> {
        let given: Map<String, Value> = serde_json::from_str(json).unwrap();
        plugin_input("rollDice", &declared(), &given)
    }

    #[test]
    fn keys_come_in_declared_order_with_whole_numbers_as_integers() {
        assert_eq!(
            input(r#"{"numDice": 3.0, "numFaces": 6}"#).unwrap(),
            r#"{"numFaces":6,"numDice":3}"#
        );
        assert_eq!(
            input(r#"{"numDice": 2.5, "numFaces": 6, "label": "x"}"#).unwrap(),
            r#"{"numFaces":6,"numDice":2.5,"label":"x"}"#
        );
    }

    #[test]
    fn every_problem_is_named_with_the_expected_shape() {
        let error = input(r#"{"numFaces": "six", "extra": 1}"#).unwrap_err();
        assert!(error.contains("unknown argument `extra`"), "{error}");
        assert!(
            error.contains("`numFaces` must be an integer, got a string (\"six\")"),
            "{error}"
        );
        assert!(
            error.contains("missing required argument `numDice`"),
            "{error}"
        );
        assert!(
            error.contains(
                "Expected {numFaces: integer, numDice: number, label: string (optional)}"
            ),
            "{error}"
        );
        assert!(input(r#"{"numFaces": 1.5, "numDice": 1}"#).is_err());
    }

    #[test]
    fn optional_arguments_may_be_left_out_or_null() {
        assert!(input(r#"{"numFaces": 6, "numDice": 1, "label": null}"#).is_ok());
        assert!(input(r#"{"numFaces": 6, "numDice": 1}"#).is_ok());
    }

    #[test]
    fn schemas_list_required_arguments_and_refuse_others() {
        let schema = Value::Object(input_schema(&declared()));
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["numFaces"]["type"], "integer");
        assert_eq!(
            schema["required"],
            serde_json::json!(["numFaces", "numDice"])
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
