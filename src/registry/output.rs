//! What a tool returns, as MCP content: a plugin's output turned into content
//! blocks and structured content according to the function's `output:` kind,
//! and checked before any client sees it.
//!
//! - `text`: the output is one text block (WASImancer's plugins).
//! - `json`: the output must be a JSON object; it becomes `structuredContent`
//!   and a text block with the same JSON, checked against `outputSchema`.
//! - `content`: the output is a result envelope (`content`,
//!   `structuredContent`, `isError`) whose every block is checked: text,
//!   image and audio (base64 with a MIME type), `resource_link`, embedded
//!   `resource`.
//!

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::OutputKind;
use crate::content::{ContentItem, describe};
use crate::runtime::{CallFailure, FailureKind};
use crate::schema::JsonSchema;

/// The most of a JSON output quoted in an error message, in bytes.
const QUOTED_BYTES: usize = 120;

/// A tool's result: content blocks, maybe structured content, maybe an
/// error the plugin reported itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    pub content: Vec<ContentItem>,
    /// `structuredContent`: a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Value>,
    /// The plugin said the call failed (`"isError": true` in its envelope).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ToolOutput {
    /// A result of one text block.
    pub fn text(text: impl Into<String>) -> Self {
        let mut block = Map::new();
        block.insert("type".into(), "text".into());
        block.insert("text".into(), Value::String(text.into()));
        Self {
            content: vec![ContentItem(block)],
            structured: None,
            is_error: false,
        }
    }

    /// Turn what `function` returned into a result, as its `kind` says,
    /// checking structured content against `schema`.
    pub fn from_plugin(
        kind: OutputKind,
        schema: Option<&JsonSchema>,
        function: &str,
        raw: String,
    ) -> Result<Self, CallFailure> {
        let invalid = |message: String| {
            CallFailure::new(
                FailureKind::InvalidOutput,
                format!("`{function}` returned {message}"),
            )
        };
        let output = match kind {
            OutputKind::Text => return Ok(Self::text(raw)),
            OutputKind::Json => {
                let value: Value = serde_json::from_str(&raw).map_err(|error| {
                    invalid(format!(
                        "text that is not JSON ({error}), but plugins.yml declares `output: json`: {}",
                        quote(&raw)
                    ))
                })?;
                if !value.is_object() {
                    return Err(invalid(format!(
                        "{}, but `output: json` must be a JSON object (MCP's structuredContent is one); wrap it, like {{\"result\": …}}",
                        describe(&value)
                    )));
                }
                let mut output = Self::text(raw);
                output.structured = Some(value);
                output
            }
            OutputKind::Content => {
                let envelope: Value = serde_json::from_str(&raw).map_err(|error| {
                    invalid(format!(
                        "text that is not JSON ({error}), but plugins.yml declares `output: content` (an object with `content`): {}",
                        quote(&raw)
                    ))
                })?;
                envelope_output(envelope).map_err(|problem| {
                    invalid(format!("a result that is not valid MCP content: {problem}"))
                })?
            }
        };
        if let Some(schema) = schema
            && !output.is_error
        {
            let Some(structured) = &output.structured else {
                return Err(invalid(
                    "no structuredContent, but plugins.yml declares an `outputSchema`".into(),
                ));
            };
            schema.check(structured).map_err(|problems| {
                invalid(format!(
                    "structured content that does not match its outputSchema: {}",
                    problems.join("; ")
                ))
            })?;
        }
        Ok(output)
    }

    /// The result as a person reads it: text blocks as they are, other
    /// blocks as a labelled summary, then the structured content when no
    /// text block already shows it.
    pub fn readable(&self) -> String {
        let mut text = String::new();
        for item in &self.content {
            if !text.is_empty() {
                text.push('\n');
            }
            match item.text() {
                Some(block) => text.push_str(block),
                None => text.push_str(&item.summary()),
            }
        }
        if let Some(structured) = &self.structured {
            let shown = self.content.iter().any(|item| {
                item.text()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .is_some_and(|v| &v == structured)
            });
            if !shown {
                if !text.is_empty() {
                    text.push('\n');
                }
                let _ = write!(text, "structured: {structured}");
            }
        }
        text
    }

    /// The text of the first text block: what an error result says.
    pub fn first_text(&self) -> Option<&str> {
        self.content.iter().find_map(ContentItem::text)
    }

    /// What the plugin says went wrong, when it reported an error itself.
    pub fn reported_error(&self) -> Option<&str> {
        self.is_error
            .then(|| self.first_text().unwrap_or("the plugin reported an error"))
    }
}

/// A result envelope, checked block by block.
fn envelope_output(envelope: Value) -> Result<ToolOutput, String> {
    let Value::Object(mut envelope) = envelope else {
        return Err(format!(
            "{}; expected an object like {{\"content\": [{{\"type\": \"text\", \"text\": \"…\"}}]}}",
            describe(&envelope)
        ));
    };
    for key in envelope.keys() {
        if !matches!(
            key.as_str(),
            "content" | "structuredContent" | "isError" | "_meta"
        ) {
            return Err(format!(
                "unknown key `{key}`; a result has `content`, `structuredContent` and `isError`"
            ));
        }
    }
    let content = match envelope.remove("content") {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("`content` is {}, not an array", describe(&other))),
        None => return Err("`content` is missing; give at least `\"content\": []`".into()),
    };
    let content = content
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            ContentItem::check(item).map_err(|problem| format!("content[{i}]: {problem}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let structured = match envelope.remove("structuredContent") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value),
        Some(other) => {
            return Err(format!(
                "`structuredContent` is {}, not an object",
                describe(&other)
            ));
        }
    };
    let is_error = match envelope.remove("isError") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => flag,
        Some(other) => return Err(format!("`isError` is {}, not a boolean", describe(&other))),
    };
    Ok(ToolOutput {
        content,
        structured,
        is_error,
    })
}

/// The start of `text`, quoted, for messages.
fn quote(text: &str) -> String {
    if text.len() <= QUOTED_BYTES {
        format!("{text:?}")
    } else {
        format!("{:?}…", &text[..text.floor_char_boundary(QUOTED_BYTES)])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

    fn content(value: Value) -> Result<ToolOutput, CallFailure> {
        ToolOutput::from_plugin(OutputKind::Content, None, "f", value.to_string())
    }

    #[test]
    fn json_output_is_structured_and_text() {
        let output =
            ToolOutput::from_plugin(OutputKind::Json, None, "add", r#"{"result":5}"#.into())
                .unwrap();
        assert_eq!(output.structured, Some(json!({"result": 5})));
        assert_eq!(output.first_text(), Some(r#"{"result":5}"#));
        assert_eq!(output.readable(), r#"{"result":5}"#);
        let error =
            ToolOutput::from_plugin(OutputKind::Json, None, "add", "[1]".into()).unwrap_err();
        assert_eq!(error.kind, FailureKind::InvalidOutput);
        assert!(
            error.message.contains("must be a JSON object"),
            "{}",
            error.message
        );
        let error =
            ToolOutput::from_plugin(OutputKind::Json, None, "add", "5 apples".into()).unwrap_err();
        assert!(error.message.contains("not JSON"), "{}", error.message);
    }

    #[test]
    fn the_output_schema_is_checked_with_the_path() {
        let schema = JsonSchema::new(
            json!({"type": "object", "properties": {"result": {"type": "integer"}}, "required": ["result"]})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let error = ToolOutput::from_plugin(
            OutputKind::Json,
            Some(&schema),
            "add",
            r#"{"result":"five"}"#.into(),
        )
        .unwrap_err();
        assert!(error.message.contains("/result: "), "{}", error.message);
        assert!(
            ToolOutput::from_plugin(
                OutputKind::Json,
                Some(&schema),
                "add",
                r#"{"result":5}"#.into()
            )
            .is_ok()
        );
    }

    #[test]
    fn envelopes_are_checked_block_by_block() {
        let output = content(json!({"content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "data": PIXEL, "mimeType": "image/png"},
            {"type": "resource_link", "uri": "file:///a.txt", "name": "a"},
            {"type": "resource", "resource": {"uri": "test://x", "mimeType": "text/plain", "text": "body"}}
        ]}))
        .unwrap();
        assert_eq!(
            output.readable(),
            "hi\n[image image/png 70 B]\n[link file:///a.txt]\n[resource test://x text/plain 4 B]"
        );
        let problem = |value: Value| content(value).unwrap_err().message;
        assert!(
            problem(json!({"content": [{"type": "image", "data": PIXEL}]}))
                .contains("content[0]: the `image` block needs `mimeType`")
        );
        assert!(
            problem(json!({"content": [{"type": "audio", "data": "!!", "mimeType": "audio/wav"}]}))
                .contains("`data` is not base64")
        );
        assert!(problem(json!({"content": [{"type": "video"}]})).contains("unknown type `video`"));
        assert!(problem(json!({"content": "hi"})).contains("not an array"));
        assert!(problem(json!({"contents": []})).contains("unknown key `contents`"));
        let error =
            content(json!({"content": [{"type": "text", "text": "no"}], "isError": true})).unwrap();
        assert!(error.is_error);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(crate::content::human_size(12), "12 B");
        assert_eq!(crate::content::human_size(12 * 1024 + 100), "12.1 KiB");
    }
}
