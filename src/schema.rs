//! JSON Schema, for tool inputs and outputs declared in plugins.yml: compiled
//! once, then used to check values, with the path of every problem.
//!
//! A [`JsonSchema`] travels as the schema itself (to MCP clients, to attached
//! consoles) and compiles the first time it checks something, so the server
//! and a console check arguments with the same code and the same messages.
//! Schemas follow JSON Schema 2020-12 unless their `$schema` names another
//! draft; `format` is checked (an `email` must look like one); references
//! stay inside the schema: nothing is fetched from the network or the disk.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// How many problems one check reports; the rest are counted.
const PROBLEMS_SHOWN: usize = 5;
/// The longest message about one problem, in bytes.
const MESSAGE_BYTES: usize = 240;

/// A JSON Schema document with its compiled validator. Cloning is cheap.
#[derive(Clone)]
pub struct JsonSchema {
    inner: Arc<Inner>,
}

struct Inner {
    document: Arc<Map<String, Value>>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

impl JsonSchema {
    /// A schema that compiles when first used (see [`JsonSchema::compile`]).
    pub fn new(document: Map<String, Value>) -> Self {
        Self {
            inner: Arc::new(Inner {
                document: Arc::new(document),
                validator: OnceLock::new(),
            }),
        }
    }

    /// The schema as written.
    pub fn document(&self) -> &Arc<Map<String, Value>> {
        &self.inner.document
    }

    /// Compile the schema (once), or say why it is not a valid one.
    pub fn compile(&self) -> Result<&jsonschema::Validator, String> {
        self.inner
            .validator
            .get_or_init(|| {
                jsonschema::options()
                    .should_validate_formats(true)
                    .offline()
                    .build(&Value::Object((*self.inner.document).clone()))
                    .map_err(|error| schema_error(&error))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Check `instance`: every problem with where it is, like
    /// ``/address/city: 5 is not of type "string"``.
    pub fn check(&self, instance: &Value) -> Result<(), Vec<String>> {
        let validator = self
            .compile()
            .map_err(|reason| vec![format!("the schema itself is invalid: {reason}")])?;
        let mut problems = Vec::new();
        let mut more = 0;
        for error in validator.iter_errors(instance) {
            if problems.len() == PROBLEMS_SHOWN {
                more += 1;
                continue;
            }
            let path = error.instance_path().as_str();
            let at = if path.is_empty() { "(root)" } else { path };
            problems.push(format!("{at}: {}", shorten(error.to_string())));
        }
        if more > 0 {
            problems.push(format!("{more} more"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The properties the schema declares at its root, by name, with their
    /// schemas: for argument signatures and skeletons.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.inner
            .document
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|properties| {
                properties
                    .iter()
                    .map(|(name, schema)| (name.as_str(), schema))
            })
    }

    /// The names listed under `required` at the root.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.inner
            .document
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// A message cut to a readable length (jsonschema quotes the whole value
/// that failed, which may be a large object).
fn shorten(mut message: String) -> String {
    if message.len() > MESSAGE_BYTES {
        message.truncate(message.floor_char_boundary(MESSAGE_BYTES));
        message.push('…');
    }
    message
}

/// A compile error in one line: what is wrong and where in the schema.
fn schema_error(error: &jsonschema::ValidationError<'_>) -> String {
    let path = error.instance_path().as_str();
    if path.is_empty() {
        shorten(error.to_string())
    } else {
        format!("at {path}: {}", shorten(error.to_string()))
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.inner.document == other.inner.document
    }
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema")
            .field(&self.inner.document)
            .finish()
    }
}

impl Serialize for JsonSchema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.document.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonSchema {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(Self::new)
    }
}

/// A placeholder value for a property with `schema`, for argument skeletons:
/// its `default`, `const`, first `enum` value or first example, else an empty
/// value of its type.
pub fn placeholder(schema: &Value) -> Value {
    let first = |key: &str| schema.get(key).and_then(Value::as_array)?.first().cloned();
    if let Some(value) = schema
        .get("default")
        .or_else(|| schema.get("const"))
        .cloned()
        .or_else(|| first("enum"))
        .or_else(|| first("examples"))
    {
        return value;
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match kind {
        "string" => Value::String(String::new()),
        "number" | "integer" => Value::from(0),
        "boolean" => Value::Bool(false),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

/// A short name for what `schema` accepts: its type (`string`, `integer or
/// null`), `enum` or `object`.
pub fn type_name(schema: &Value) -> String {
    if schema.get("enum").is_some() {
        return "enum".into();
    }
    match schema.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if schema.get("$ref").is_some() => "object".into(),
        _ => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(value: Value) -> JsonSchema {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        JsonSchema::new(map)
    }

    fn address_book() -> JsonSchema {
        schema(json!({
            "type": "object",
            "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "address": {"$ref": "#/$defs/address"},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}}
            },
            "required": ["name"],
            "additionalProperties": false
        }))
    }

    #[test]
    fn problems_say_where_they_are() {
        let problems = address_book()
            .check(&json!({"address": {"city": 5}, "tags": ["a", "c"], "email": "nope", "x": 1}))
            .unwrap_err();
        let all = problems.join("\n");
        assert!(
            all.contains("(root): \"name\" is a required property"),
            "{all}"
        );
        assert!(all.contains("/address/city: "), "{all}");
        assert!(all.contains("/tags/1: "), "{all}");
        assert!(all.contains("/email: "), "{all}");
        assert!(all.contains("Additional properties"), "{all}");
        assert!(
            address_book()
                .check(&json!({"name": "Ada", "email": "ada@example.com"}))
                .is_ok()
        );
    }

    #[test]
    fn an_invalid_schema_says_why_and_remote_references_are_not_fetched() {
        assert!(schema(json!({"type": "nonsense"})).compile().is_err());
        let remote = schema(json!({"$ref": "https://example.com/schema.json"}));
        assert!(remote.compile().is_err());
    }

    #[test]
    fn placeholders_follow_the_schema() {
        assert_eq!(
            placeholder(&json!({"type": "string", "enum": ["x", "y"]})),
            "x"
        );
        assert_eq!(placeholder(&json!({"type": "integer", "default": 3})), 3);
        assert_eq!(placeholder(&json!({"type": ["array", "null"]})), json!([]));
        assert_eq!(
            type_name(&json!({"type": ["integer", "null"]})),
            "integer or null"
        );
    }

    #[test]
    fn schemas_travel_as_themselves() {
        let book = address_book();
        let text = serde_json::to_string(&book).unwrap();
        let back: JsonSchema = serde_json::from_str(&text).unwrap();
        assert_eq!(back, book);
        assert!(back.check(&json!({})).is_err());
    }
}
