//! MCP content blocks (text, image, audio, resource_link, embedded
//! resource): their shapes, checked before any client sees one, and how they
//! read in a call log or a console (`[image image/png 12 KiB]`).
//!
//! A block is kept as the JSON object it was written as (with its
//! `annotations` and `_meta`) once it is known to be valid: tool results
//! from plugins and prompt messages from prompts.yml are both made of them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One MCP content block, checked: a JSON object with a known `type` and the
/// fields that type needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentItem(pub Map<String, Value>);

impl ContentItem {
    /// The block's `type`: text, image, audio, resource_link or resource.
    pub fn kind(&self) -> &str {
        self.0.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// The text of a text block.
    pub fn text(&self) -> Option<&str> {
        match self.kind() {
            "text" => self.0.get("text").and_then(Value::as_str),
            _ => None,
        }
    }

    /// A field of the block, or of its embedded resource.
    fn field(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .or_else(|| self.0.get("resource").and_then(|r| r.get(key)))
            .and_then(Value::as_str)
    }

    pub fn mime_type(&self) -> Option<&str> {
        self.field("mimeType")
    }

    pub fn uri(&self) -> Option<&str> {
        self.field("uri")
    }

    /// The text of an embedded resource.
    pub fn embedded_text(&self) -> Option<&str> {
        match self.kind() {
            "resource" => self.field("text"),
            _ => None,
        }
    }

    /// How many bytes the block carries: decoded base64 for images, audio and
    /// blobs, UTF-8 bytes for text.
    pub fn size(&self) -> usize {
        match (
            self.field("data").or(self.field("blob")),
            self.field("text"),
        ) {
            (Some(base64), _) => decoded_len(base64),
            (None, Some(text)) => text.len(),
            (None, None) => 0,
        }
    }

    /// A one-line label: `[image image/png 12 KiB]`, `[link file:///a.txt]`,
    /// `[resource test://x text/plain 30 B]`.
    pub fn summary(&self) -> String {
        let mime = self
            .mime_type()
            .map(|m| format!(" {m}"))
            .unwrap_or_default();
        match self.kind() {
            "text" => self.text().unwrap_or_default().to_string(),
            "image" | "audio" => format!("[{}{mime} {}]", self.kind(), human_size(self.size())),
            "resource_link" => format!("[link {}{mime}]", self.uri().unwrap_or_default()),
            "resource" => format!(
                "[resource {}{mime} {}]",
                self.uri().unwrap_or_default(),
                human_size(self.size())
            ),
            other => format!("[{other}]"),
        }
    }
}

/// `12 B`, `3.4 KiB`, `2.0 MiB`.
pub fn human_size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let bytes_f = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes_f < KIB * KIB {
        format!("{:.1} KiB", bytes_f / KIB)
    } else {
        format!("{:.1} MiB", bytes_f / (KIB * KIB))
    }
}

impl ContentItem {
    /// How many bytes base64 text decodes to.
    pub fn blob_size(base64: &str) -> usize {
        decoded_len(base64)
    }
}

/// The decoded length of valid base64 text.
fn decoded_len(base64: &str) -> usize {
    let padding = base64.bytes().rev().take_while(|b| *b == b'=').count();
    (base64.len() / 4 * 3).saturating_sub(padding)
}

impl ContentItem {
    /// Check the shape of one content block: what is wrong, if anything.
    pub fn check(item: Value) -> Result<ContentItem, String> {
        let Value::Object(block) = item else {
            return Err(format!(
                "{}, not a content block (an object with `type`)",
                describe(&item)
            ));
        };
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let string = |key: &str| match block.get(key) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.as_str()),
            Some(other) => Err(format!(
                "`{key}` is {}, not a non-empty string",
                describe(other)
            )),
            None => Err(format!("the `{kind}` block needs `{key}`")),
        };
        match kind {
            "text" => match block.get("text") {
                Some(Value::String(_)) => {}
                _ => return Err("a `text` block needs `text`, a string".into()),
            },
            "image" | "audio" => {
                check_base64(string("data")?, "data")?;
                let mime = string("mimeType")?;
                if !mime.starts_with(&format!("{kind}/")) {
                    return Err(format!(
                        "`mimeType` of an {kind} block must be {kind}/…, not `{mime}`"
                    ));
                }
            }
            "resource_link" => {
                string("uri")?;
                string("name")?;
                if let Some(size) = block.get("size")
                    && size.as_u64().is_none()
                {
                    return Err(format!(
                        "`size` is {}, not a whole number of bytes",
                        describe(size)
                    ));
                }
            }
            "resource" => {
                let Some(Value::Object(resource)) = block.get("resource") else {
                    return Err("a `resource` block needs `resource`, an object with `uri` and `text` or `blob`".into());
                };
                if !matches!(resource.get("uri"), Some(Value::String(uri)) if !uri.is_empty()) {
                    return Err("the embedded resource needs `uri`".into());
                }
                match (resource.get("text"), resource.get("blob")) {
                    (Some(Value::String(_)), None) => {}
                    (None, Some(Value::String(blob))) => check_base64(blob, "resource.blob")?,
                    _ => {
                        return Err(
                        "the embedded resource needs either `text` (a string) or `blob` (base64)"
                            .into(),
                    );
                    }
                }
            }
            "" => return Err("the block has no `type`".into()),
            other => {
                return Err(format!(
                    "unknown type `{other}`; content blocks are text, image, audio, resource_link or resource"
                ));
            }
        }
        Ok(ContentItem(block))
    }
}

fn check_base64(text: &str, key: &str) -> Result<(), String> {
    BASE64
        .decode(text)
        .map(|_| ())
        .map_err(|error| format!("`{key}` is not base64 ({error})"))
}

/// `an array`, `a number (3)`, for messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
