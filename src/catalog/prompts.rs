//! prompts.yml: WASImancer's predefined prompts (`prompts.predefined[]`):
//! messages whose `${argument}` placeholders are filled with the values a
//! client sends. WASImancer's `with-completion:` key is kept and unused.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Problem;
use super::definitions::{
    Definitions, Locator, ParameterSpec, check_entry_name, null_is_default, parameter_problems,
    scalar,
};
use super::source_map::Step;

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

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// The text, with `${argument}` placeholders.
    #[serde(deserialize_with = "scalar")]
    pub text: String,
    pub role: MessageRole,
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
