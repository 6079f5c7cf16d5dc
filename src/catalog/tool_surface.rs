//! What a function declares beyond WASImancer's flat `arguments:` list: a
//! full `inputSchema`, the kind of output it returns (`output`,
//! `outputSchema`), how clients should present it (`title`, `annotations`,
//! `icons`), the client capabilities it needs, and arguments that travel as
//! HTTP headers (SEP-2243). Every key is optional: WASImancer's entries are
//! unchanged.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ArgumentSpec, ArgumentType, CatalogFile, Entry, FunctionSpec, Problem};
use crate::schema::JsonSchema;

/// What a function's output is, and so what a client receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Text, returned as one text block (WASImancer's plugins).
    #[default]
    Text,
    /// A JSON object, returned as `structuredContent` and as a text block
    /// with the same JSON.
    Json,
    /// An MCP result envelope: `{"content": [...], "structuredContent": ...,
    /// "isError": ...}`, checked before it is passed on.
    Content,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Text => "text",
            OutputKind::Json => "json",
            OutputKind::Content => "content",
        }
    }

    pub fn is_text(&self) -> bool {
        *self == OutputKind::Text
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MCP's tool annotations: hints for clients, never guarantees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolHints {
    /// The tool does not change its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may destroy or overwrite things (when not read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling it again with the same arguments changes nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool reaches outside systems (the web, other services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// An icon a client may show beside the tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IconSpec {
    /// An `https:` or `data:` URI.
    pub src: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Sizes like `48x48`, or `any` for scalable images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<IconTheme>,
}

/// The background an icon is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IconTheme {
    Light,
    Dark,
}

/// A capability of the MCP client that a tool needs; a client that did not
/// declare it is refused with MissingRequiredClientCapability (-32021).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCapability {
    Sampling,
    Elicitation,
    Roots,
}

impl ClientCapability {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientCapability::Sampling => "sampling",
            ClientCapability::Elicitation => "elicitation",
            ClientCapability::Roots => "roots",
        }
    }
}

/// The HTTP header an argument is mirrored in: `Mcp-Param-<name>`.
pub const HEADER_PREFIX: &str = "Mcp-Param-";

/// Problems with the `x-mcp-header` annotations of an input schema, each with
/// the property it is on. The rules are SEP-2243's (and rmcp's client drops
/// a tool whose annotations break them): a non-empty HTTP token, unique
/// whatever the case, on a `string`, `integer` or `boolean` property reached
/// from the root through `properties` alone.
pub fn header_problems(schema: &JsonSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let document = schema.document();
    if document.contains_key("x-mcp-header") {
        problems.push("x-mcp-header must be on a property, not on the schema itself".into());
    }
    let mut annotated = Vec::new();
    collect_headers(document.get("properties"), &mut Vec::new(), &mut annotated);
    for (path, property) in annotated {
        let header = &property["x-mcp-header"];
        let kind = property.get("type").and_then(Value::as_str);
        let problem = match header.as_str() {
            None => Some("x-mcp-header must be a string".to_string()),
            Some(name) => header_name_problem(name, kind).or_else(|| {
                seen.insert(name.to_ascii_lowercase(), path.clone())
                    .map(|first| format!("header `{name}` is also used by `{first}`"))
            }),
        };
        if let Some(problem) = problem {
            problems.push(format!("property `{path}`: {problem}"));
        }
    }
    let mut stray = Vec::new();
    find_stray_headers(&Value::Object((**document).clone()), true, "", &mut stray);
    for place in stray {
        problems.push(format!(
            "x-mcp-header at `{place}` is not on a property reached through `properties` alone; clients would ignore the tool"
        ));
    }
    problems
}

impl CatalogFile {
    /// Problems with what `plugins[p].functions[f]` declares beyond its name:
    /// its schemas, its output, its headers.
    pub(super) fn surface_problems(
        &self,
        p: usize,
        f: usize,
        function: &FunctionSpec,
        problems: &mut Vec<Problem>,
    ) {
        let mut problem = |key: &str, message: String| {
            problems.push(self.problem(Entry::Function(p, f), key, message));
        };
        if let Some(schema) = &function.input_schema {
            if !function.arguments.is_empty() {
                problem(
                    "inputSchema",
                    "a function declares `arguments` or an `inputSchema`, not both; move the arguments into the schema's `properties`".into(),
                );
            }
            for message in object_schema_problems(schema, "inputSchema") {
                problem("inputSchema", message);
            }
            for message in header_problems(schema) {
                problem("inputSchema", message);
            }
        }
        if let Some(schema) = &function.output_schema {
            if function.output.is_text() {
                problem(
                    "outputSchema",
                    "`outputSchema` describes structured output; add `output: json` (or `output: content`)".into(),
                );
            }
            for message in object_schema_problems(schema, "outputSchema") {
                problem("outputSchema", message);
            }
        }
        for icon in &function.icons {
            if !(icon.src.starts_with("https:") || icon.src.starts_with("data:")) {
                problem(
                    "icons",
                    format!("icon `{}` must be an https: or data: URI", icon.src),
                );
            }
        }
        for (a, message) in argument_header_problems(&function.arguments) {
            problems.push(Problem {
                file: self.path.clone(),
                line: self.source.key_or_entry(Entry::Argument(p, f, a), "header"),
                key: format!("plugins[{p}].functions[{f}].arguments[{a}].header"),
                message,
            });
        }
    }
}

/// Why `schema` cannot describe an arguments object or a structured result:
/// MCP wants an object schema, and the schema must compile.
fn object_schema_problems(schema: &JsonSchema, key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if schema.document().get("type") != Some(&Value::String("object".into())) {
        problems.push(format!(
            "`{key}` must describe a JSON object: add `type: object` at its top"
        ));
    }
    if let Err(reason) = schema.compile() {
        problems.push(format!("`{key}` is not a valid JSON Schema: {reason}"));
    }
    problems
}

/// What is wrong with `name` as the header of a property of type `kind`.
fn header_name_problem(name: &str, kind: Option<&str>) -> Option<String> {
    if name.is_empty() {
        return Some("the header name is empty".into());
    }
    if !name.chars().all(is_token_char) {
        return Some(format!(
            "header `{name}` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    match kind {
        Some("string" | "integer" | "boolean") => None,
        other => Some(format!(
            "header `{name}` needs a string, integer or boolean value, not {}",
            other.unwrap_or("a value of no declared type")
        )),
    }
}

/// Problems with the `header:` keys of flat arguments, by argument index.
pub fn argument_header_problems(arguments: &[ArgumentSpec]) -> Vec<(usize, String)> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut problems = Vec::new();
    for (index, argument) in arguments.iter().enumerate() {
        let Some(name) = &argument.header else {
            continue;
        };
        let kind = match argument.kind {
            ArgumentType::String => Some("string"),
            ArgumentType::Integer => Some("integer"),
            ArgumentType::Boolean => Some("boolean"),
            other => Some(other.as_str()),
        };
        let problem = header_name_problem(name, kind).or_else(|| {
            seen.insert(name.to_ascii_lowercase(), &argument.name)
                .map(|first| format!("header `{name}` is also used by argument `{first}`"))
        });
        if let Some(problem) = problem {
            problems.push((index, problem));
        }
    }
    problems
}

/// RFC 9110 token characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn collect_headers<'a>(
    properties: Option<&'a Value>,
    path: &mut Vec<&'a str>,
    out: &mut Vec<(String, &'a Value)>,
) {
    let Some(Value::Object(properties)) = properties else {
        return;
    };
    for (name, property) in properties {
        path.push(name);
        if property.get("x-mcp-header").is_some() {
            out.push((path.join("."), property));
        }
        collect_headers(property.get("properties"), path, out);
        path.pop();
    }
}

/// Every `x-mcp-header` that is not on a `properties`-only path from the root.
fn find_stray_headers(value: &Value, on_chain: bool, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let place = format!("{at}/{key}");
                match key.as_str() {
                    "x-mcp-header" if !on_chain => out.push(at.to_string()),
                    "x-mcp-header" => {}
                    // Instance data and names, not schemas.
                    "default" | "const" | "enum" | "examples" | "required" => {}
                    "properties" if on_chain => {
                        if let Value::Object(properties) = child {
                            for (name, property) in properties {
                                find_stray_headers(property, true, &format!("{place}/{name}"), out);
                            }
                        }
                    }
                    _ => find_stray_headers(child, false, &place, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_stray_headers(item, false, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::catalog::CatalogError;

    fn problems(text: &str) -> Vec<Problem> {
        match CatalogFile::parse(Path::new("plugins.yml"), text) {
            Err(CatalogError::Invalid { problems }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const RICH: &str = "\
plugins:
  - name: shop
    path: shop.wasm
    functions:
      - function: order
        title: Order something
        output: json
        annotations:
          readOnlyHint: false
        icons:
          - src: https://example.com/cart.png
            sizes: [48x48]
        clientCapabilities: [elicitation]
        inputSchema:
          type: object
          properties:
            item: { type: string, x-mcp-header: Item }
          required: [item]
        outputSchema:
          type: object
      - function: track
        arguments:
          - name: id
            type: string
            header: Order-Id
";

    #[test]
    fn every_key_of_a_rich_function_is_read() {
        let file = CatalogFile::parse(Path::new("plugins.yml"), RICH).unwrap();
        let order = &file.catalog.plugins[0].functions[0];
        assert_eq!(order.output, OutputKind::Json);
        assert_eq!(order.title.as_deref(), Some("Order something"));
        assert_eq!(
            order.annotations.as_ref().unwrap().read_only_hint,
            Some(false)
        );
        assert_eq!(order.icons[0].sizes, ["48x48"]);
        assert_eq!(order.client_capabilities, [ClientCapability::Elicitation]);
        assert!(
            order
                .input_schema
                .as_ref()
                .unwrap()
                .check(&json!({"item": "tea"}))
                .is_ok()
        );
        let track = &file.catalog.plugins[0].functions[1];
        assert_eq!(track.arguments[0].header.as_deref(), Some("Order-Id"));
        // Written back and read again, nothing is lost.
        let again =
            CatalogFile::parse(Path::new("plugins.yml"), &file.catalog.to_yaml().unwrap()).unwrap();
        assert_eq!(again.catalog, file.catalog);
    }

    #[test]
    fn mistakes_are_reported_on_their_lines() {
        let text = RICH
            .replace("        output: json\n", "")
            .replace(
                "            item: { type: string, x-mcp-header: Item }",
                "            item: { type: strin }",
            )
            .replace(
                "            header: Order-Id",
                "            header: Order Id",
            )
            .replace(
                "      - function: track\n",
                "      - function: track\n        inputSchema: { type: object }\n",
            );
        let found = problems(&text);
        let lines: Vec<(Option<usize>, &str)> =
            found.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(found.len(), 4, "{lines:?}");
        assert_eq!(found[0].line, Some(13), "{lines:?}");
        assert!(
            found[0]
                .message
                .contains("`inputSchema` is not a valid JSON Schema"),
            "{lines:?}"
        );
        assert_eq!(found[1].line, Some(18), "{lines:?}");
        assert!(found[1].message.contains("add `output: json`"), "{lines:?}");
        assert_eq!(found[2].line, Some(21), "{lines:?}");
        assert!(
            found[2]
                .message
                .contains("`arguments` or an `inputSchema`, not both"),
            "{lines:?}"
        );
        assert_eq!(found[3].line, Some(25), "{lines:?}");
        assert!(
            found[3].message.contains("not a valid HTTP header name"),
            "{lines:?}"
        );
        let wrong_kind = RICH.replace("output: json", "output: jsn");
        assert!(
            problems(&wrong_kind)[0]
                .message
                .contains("expected one of `text`, `json`, `content`")
        );
    }

    fn schema(value: Value) -> JsonSchema {
        JsonSchema::new(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn header_annotations_follow_sep_2243() {
        let good = schema(json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "nested": {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}}
        }}));
        assert!(header_problems(&good).is_empty());
        let bad = schema(json!({"type": "object", "properties": {
            "a": {"type": "string", "x-mcp-header": "Same"},
            "b": {"type": "string", "x-mcp-header": "same"},
            "c": {"type": "number", "x-mcp-header": "C"},
            "d": {"type": "string", "x-mcp-header": "bad:name"},
            "e": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}}
        }}));
        let problems = header_problems(&bad).join("\n");
        assert!(
            problems.contains("property `b`: header `same` is also used by `a`"),
            "{problems}"
        );
        assert!(
            problems.contains("property `c`: header `C` needs a string"),
            "{problems}"
        );
        assert!(
            problems.contains("not a valid HTTP header name"),
            "{problems}"
        );
        assert!(problems.contains("/properties/e/items"), "{problems}");
    }
}
