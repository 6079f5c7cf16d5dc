//! prompts.yml: WASImancer's predefined prompts (`prompts.predefined[]`):
//! messages whose `${argument}` placeholders are filled with the values a
//! client sends. WASImancer's `with-completion:` key is kept and unused.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Problem;
use super::definitions::{
    Definitions, Locator, ParameterSpec, check_entry_name, null_is_default, optional_scalar,
    parameter_problems,
};
use super::source_map::Step;
use crate::content::ContentItem;

/// The whole prompts.yml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptCatalog {
    /// Free text about these prompts, kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub prompts: PromptSections,
}

/// `prompts:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSections {
    #[serde(
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub predefined: Vec<PromptSpec>,
    /// WASImancer's placeholder for a future feature ("work in progress");
    /// accepted, kept, and otherwise ignored.
    #[serde(
        rename = "with-completion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub with_completion: Option<Value>,
}

/// One prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arguments: Vec<ParameterSpec>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub messages: Vec<MessageSpec>,
}

/// One message of a prompt: text (WASImancer's), or, ours, an image, an
/// audio clip or an embedded resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// The text, with `${argument}` placeholders.
    #[serde(
        default,
        deserialize_with = "optional_scalar",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// `{data: <base64>, mimeType: image/png}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Map<String, Value>>,
    /// `{data: <base64>, mimeType: audio/wav}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Map<String, Value>>,
    /// An embedded resource: `{uri, mimeType, text}` or `{uri, mimeType,
    /// blob}`; `${argument}` placeholders are filled in its strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Map<String, Value>>,
    pub role: MessageRole,
}

impl MessageSpec {
    /// A text message.
    pub fn text(role: MessageRole, text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            image: None,
            audio: None,
            resource: None,
            role,
        }
    }

    /// The message as an MCP content block, its placeholders filled by
    /// `fill`; `None` for a text message. Checked: what is wrong, if anything.
    pub fn media_block(
        &self,
        fill: impl Fn(&str) -> String,
    ) -> Option<Result<ContentItem, String>> {
        let (kind, fields) = match (&self.image, &self.audio, &self.resource) {
            (Some(image), _, _) => ("image", image),
            (_, Some(audio), _) => ("audio", audio),
            (_, _, Some(resource)) => ("resource", resource),
            _ => return None,
        };
        let fields: Map<String, Value> = fields
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(text) => Value::String(fill(text)),
                    other => other.clone(),
                };
                (key.clone(), value)
            })
            .collect();
        let mut block = Map::new();
        block.insert("type".into(), kind.into());
        if kind == "resource" {
            block.insert("resource".into(), Value::Object(fields));
        } else {
            block.extend(fields);
        }
        Some(ContentItem::check(Value::Object(block)))
    }

    /// What is wrong with the message's content, if anything: one kind of
    /// content, well formed.
    fn problem(&self) -> Option<String> {
        let given = [
            self.text.is_some(),
            self.image.is_some(),
            self.audio.is_some(),
            self.resource.is_some(),
        ]
        .iter()
        .filter(|given| **given)
        .count();
        match given {
            0 => Some("a message needs `text` (or `image`, `audio` or `resource`)".into()),
            1 => self.media_block(str::to_string)?.err(),
            _ => Some("a message has one of `text`, `image`, `audio` or `resource`".into()),
        }
    }
}

/// Who a prompt message is from; MCP knows two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
}

impl fmt::Display for MessageRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "user" => Ok(MessageRole::User),
            "assistant" => Ok(MessageRole::Assistant),
            _ => Err(de::Error::custom(format!(
                "role `{text}` is not a message role; MCP prompt messages come from `user` or `assistant`"
            ))),
        }
    }
}

impl PromptSpec {
    /// Parse one entry sent as JSON (the admin API's body).
    pub fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    /// The argument called `name`.
    pub fn argument(&self, name: &str) -> Option<&ParameterSpec> {
        self.arguments.iter().find(|a| a.name == name)
    }
}

impl PromptCatalog {
    /// Index of the prompt called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.prompts.predefined.iter().position(|p| p.name == name)
    }
}

impl Definitions for PromptCatalog {
    const WHAT: &'static str = "prompts";

    fn problems(&self, at: &Locator<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, prompt) in self.prompts.predefined.iter().enumerate() {
            let entry = [Step::Key("prompts"), Step::Key("predefined"), Step::Item(i)];
            let at_key = |key: &'static str| {
                let mut path = entry.to_vec();
                path.push(Step::Key(key));
                path
            };
            if let Err(message) = check_entry_name("prompt", &prompt.name) {
                problems.push(at.problem(&at_key("name"), message));
            } else if let Some(first) = names.insert(&prompt.name, i) {
                problems.push(at.problem(
                    &at_key("name"),
                    format!(
                        "prompt name `{}` is already used by prompts.predefined[{first}]; names must be unique",
                        prompt.name
                    ),
                ));
            }
            if prompt.messages.is_empty() {
                problems.push(at.problem(
                    &at_key("messages"),
                    "a prompt needs at least one message (`text` and `role`)",
                ));
            }
            for (m, message) in prompt.messages.iter().enumerate() {
                if let Some(problem) = message.problem() {
                    let mut path = entry.to_vec();
                    path.extend([Step::Key("messages"), Step::Item(m)]);
                    problems.push(at.problem(&path, problem));
                }
            }
            parameter_problems(at, &entry, &prompt.arguments, &mut problems);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::catalog::{ArgumentType, DefinitionError, DefinitionFile};

    /// WASImancer's own prompts/prompts.yml, shape for shape.
    const WASIMANCER: &str = include_str!("../../tests/fixtures/wasimancer/prompts.yml");

    fn parse(text: &str) -> Result<DefinitionFile<PromptCatalog>, DefinitionError> {
        DefinitionFile::parse(Path::new("prompts.yml"), text)
    }

    #[test]
    fn reads_wasimancer_files_unchanged() {
        let file = parse(WASIMANCER).unwrap();
        let prompts = &file.definitions.prompts.predefined;
        assert_eq!(prompts.len(), 2);
        assert_eq!(prompts[1].messages[0].role, MessageRole::Assistant);
        assert_eq!(prompts[1].arguments[1].kind, ArgumentType::String);
        assert!(prompts[0].arguments[0].required, "required by default");
        assert_eq!(file.definitions.prompts.with_completion, None);
    }

    #[test]
    fn a_system_role_is_refused_on_its_line() {
        let text = WASIMANCER.replace("role: 'assistant'", "role: system");
        let Err(DefinitionError::Invalid { problems }) = parse(&text) else {
            panic!("a system role must be refused");
        };
        assert_eq!(problems[0].line, Some(19), "{}", problems[0]);
        assert!(problems[0].message.contains("`user` or `assistant`"));
    }

    #[test]
    fn messages_may_be_images_audio_or_resources_checked_on_their_lines() {
        let text = "\
prompts:
  predefined:
    - name: look
      messages:
        - role: user
          image: { data: aGk=, mimeType: image/png }
        - role: user
          resource: { uri: '${uri}', mimeType: text/plain, text: hello }
        - role: user
          audio: { data: aGk=, mimeType: image/png }
        - role: user
          text: both
          image: { data: aGk=, mimeType: image/png }
";
        let Err(DefinitionError::Invalid { problems }) = parse(text) else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(9), "{}", problems[0]);
        assert!(
            problems[0].message.contains("must be audio/"),
            "{}",
            problems[0]
        );
        assert_eq!(problems[1].line, Some(11), "{}", problems[1]);
        assert!(
            problems[1].message.contains("one of `text`, `image`"),
            "{}",
            problems[1]
        );
        let good = text
            .replace(
                "audio: { data: aGk=, mimeType: image/png }",
                "audio: { data: aGk=, mimeType: audio/wav }",
            )
            .replace(
                "          text: both\n          image: { data: aGk=, mimeType: image/png }\n",
                "          text: both\n",
            );
        let file = parse(&good).unwrap();
        let messages = &file.definitions.prompts.predefined[0].messages;
        let block = messages[1]
            .media_block(|t| t.replace("${uri}", "test://r"))
            .unwrap()
            .unwrap();
        assert_eq!(block.uri(), Some("test://r"));
        assert_eq!(messages[3].text.as_deref(), Some("both"));
    }

    #[test]
    fn duplicates_and_empty_prompts_are_reported() {
        let text = format!(
            "{}    - name: greet-user\n      messages: []\n",
            WASIMANCER.replace("  with-completion: # 🚧 work in progress\n", "")
        );
        let Err(DefinitionError::Invalid { problems }) = parse(&text) else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("already used"));
        assert_eq!(problems[0].line, Some(25));
        assert!(problems[1].message.contains("at least one message"));
    }
}
