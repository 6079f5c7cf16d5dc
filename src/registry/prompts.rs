//! Prompts as clients see them: listed, rendered with the arguments a client
//! sends (checked against the declared ones first), completed, and added,
//! replaced or removed by the admin API. A render runs no plugin but is
//! recorded like a call (kind `prompt`), so operators see it.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::changes::ChangeError;
use super::definitions::ServedSet;
use super::resources::unknown_entry;
use super::{Finished, RecordedOutput, Registry};
use crate::catalog::{
    DefinitionFile, MessageRole, PromptCatalog, PromptSpec, Step, parameter_values,
};
use crate::content::ContentItem;
use crate::events::{CallKind, CallSource, Change};
use crate::runtime::{CallFailure, FailureKind};
use crate::templates::fill;

/// One prompt being served.
#[derive(Debug)]
pub struct ServedPrompt {
    /// The entry as prompts.yml declares it.
    pub spec: PromptSpec,
    /// Its line in prompts.yml.
    pub line: Option<usize>,
}

/// Everything prompts.yml serves, immutable once published.
#[derive(Debug, Default)]
pub struct PromptSet {
    /// prompts.yml as last read successfully; `None` when none is configured.
    pub file: Option<Arc<DefinitionFile<PromptCatalog>>>,
    /// In file order.
    pub prompts: Vec<Arc<ServedPrompt>>,
}

impl PromptSet {
    /// Whether prompts are served at all (MCP capabilities follow this).
    pub fn is_served(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.exists) || !self.prompts.is_empty()
    }

    /// The prompt called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ServedPrompt>> {
        self.prompts.iter().find(|p| p.spec.name == name)
    }

    /// Whether some argument declares `values` to complete.
    pub fn offers_completion(&self) -> bool {
        self.prompts
            .iter()
            .any(|p| p.spec.arguments.iter().any(|a| !a.values.is_empty()))
    }
}

impl ServedSet for PromptSet {
    type Document = PromptCatalog;

    fn from_file(file: Option<Arc<DefinitionFile<PromptCatalog>>>) -> Self {
        let prompts = file
            .iter()
            .flat_map(|file| {
                file.definitions
                    .prompts
                    .predefined
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| {
                        Arc::new(ServedPrompt {
                            spec: spec.clone(),
                            line: file.source.line(&[
                                Step::Key("prompts"),
                                Step::Key("predefined"),
                                Step::Item(i),
                            ]),
                        })
                    })
            })
            .collect();
        Self { file, prompts }
    }

    fn file(&self) -> Option<&Arc<DefinitionFile<PromptCatalog>>> {
        self.file.as_ref()
    }

    fn same_list(&self, other: &Self) -> bool {
        self.is_served() == other.is_served()
            && self.prompts.len() == other.prompts.len()
            && self.prompts.iter().zip(&other.prompts).all(|(a, b)| {
                let (a, b) = (&a.spec, &b.spec);
                a.name == b.name
                    && a.title == b.title
                    && a.description == b.description
                    && a.arguments == b.arguments
            })
    }

    fn describe(&self) -> String {
        let n = self.prompts.len();
        format!("{n} prompt{}", if n == 1 { "" } else { "s" })
    }
}

/// One message of a rendered prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenderedMessage {
    pub role: MessageRole,
    /// The text; for an image, audio or resource message, a label such as
    /// `[image image/png 69 B]`.
    pub text: String,
    /// The content block of an image, audio or resource message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentItem>,
}

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenderedPrompt {
    pub call_id: u64,
    pub description: Option<String>,
    pub messages: Vec<RenderedMessage>,
}

impl RecordedOutput for Vec<RenderedMessage> {
    fn record_text(&self) -> Cow<'_, str> {
        Cow::Owned(serde_json::to_string(self).unwrap_or_default())
    }
}

impl Registry {
    /// What prompts.yml serves now.
    pub fn prompts(&self) -> Arc<PromptSet> {
        self.inner.prompts.current()
    }

    /// A receiver that changes whenever the prompt list does.
    pub fn watch_prompts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.prompts.watch()
    }

    /// Render the prompt `name` with `arguments` on behalf of `source`.
    pub async fn render_prompt(
        &self,
        source: CallSource,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<RenderedPrompt, CallFailure> {
        let set = self.prompts();
        let prompt = set.get(name);
        let arguments = arguments.unwrap_or_default();
        let work = async {
            let name: Arc<str> = name.into();
            let mut recorded = arguments.clone();
            crate::redaction::redact(&mut recorded, &[]);
            let arguments_json = Value::Object(recorded).to_string();
            let output = match prompt {
                None => Err(unknown_prompt(&set, &name)),
                Some(prompt) => render(&prompt.spec, &arguments),
            };
            Finished {
                kind: CallKind::Prompt,
                name,
                plugin: "".into(),
                arguments: arguments_json,
                output,
                overlapping: 0,
            }
        };
        let (call_id, output) = self.record(source, work).await;
        output.map(|messages| RenderedPrompt {
            call_id,
            description: prompt.and_then(|p| p.spec.description.clone()),
            messages,
        })
    }

    /// Values to complete `argument` of prompt `name` with, from its declared
    /// `values`, starting with `prefix`.
    pub fn complete_prompt(
        &self,
        name: &str,
        argument: &str,
        prefix: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let set = self.prompts();
        let prompt = set.get(name).ok_or_else(|| unknown_prompt(&set, name))?;
        let parameter = prompt.spec.argument(argument).ok_or_else(|| {
            CallFailure::new(
                FailureKind::InvalidArguments,
                format!(
                    "prompt `{name}` has no argument `{argument}`; expected {}",
                    signature(&prompt.spec)
                ),
            )
        })?;
        Ok(parameter.complete(prefix))
    }

    /// Add a prompt to prompts.yml.
    pub async fn add_prompt(&self, spec: PromptSpec, origin: &str) -> Result<(), ChangeError> {
        self.check_prompt(&spec)?;
        let name = spec.name.clone();
        let (_, set) = self
            .inner
            .prompts
            .edit(|catalog, _| {
                if catalog.position(&spec.name).is_some() {
                    return Err(ChangeError::Conflict(format!(
                        "prompt `{}` already exists; use PUT /update-prompt/{} to replace it",
                        spec.name, spec.name
                    )));
                }
                catalog.prompts.predefined.push(spec);
                Ok(())
            })
            .await?;
        self.announce_edit(&*set, origin, Change::Added, &format!("prompt `{name}`"));
        Ok(())
    }

    /// Replace the prompt called `name` with `spec` (which must keep the name).
    pub async fn replace_prompt(
        &self,
        name: &str,
        spec: PromptSpec,
        origin: &str,
    ) -> Result<(), ChangeError> {
        if spec.name != name {
            return Err(ChangeError::InvalidEntry(format!(
                "the prompt in the body is called `{}`, the URL names `{name}`; they must match",
                spec.name
            )));
        }
        self.check_prompt(&spec)?;
        let (_, set) = self
            .inner
            .prompts
            .edit(|catalog, path| {
                let index = existing(catalog, name, path)?;
                catalog.prompts.predefined[index] = spec;
                Ok(())
            })
            .await?;
        self.announce_edit(&*set, origin, Change::Replaced, &format!("prompt `{name}`"));
        Ok(())
    }

    /// Remove the prompt called `name` from prompts.yml.
    pub async fn remove_prompt(&self, name: &str, origin: &str) -> Result<(), ChangeError> {
        let (_, set) = self
            .inner
            .prompts
            .edit(|catalog, path| {
                catalog
                    .prompts
                    .predefined
                    .remove(existing(catalog, name, path)?);
                Ok(())
            })
            .await?;
        self.announce_edit(&*set, origin, Change::Removed, &format!("prompt `{name}`"));
        Ok(())
    }

    fn check_prompt(&self, spec: &PromptSpec) -> Result<(), ChangeError> {
        let mut alone = PromptCatalog::default();
        alone.prompts.predefined.push(spec.clone());
        self.inner.prompts.check_entry(&alone)
    }
}

/// Where the prompt called `name` is in prompts.yml (at `path`).
fn existing(catalog: &PromptCatalog, name: &str, path: &Path) -> Result<usize, ChangeError> {
    catalog
        .position(name)
        .ok_or_else(|| unknown_entry("prompt", name, path))
}

/// Check `given` against the declared arguments and fill the messages.
/// Missing optional arguments are empty; values go in as plain text.
fn render(
    spec: &PromptSpec,
    given: &Map<String, Value>,
) -> Result<Vec<RenderedMessage>, CallFailure> {
    let values = parameter_values(&spec.arguments, given).map_err(|problems| {
        CallFailure::new(
            FailureKind::InvalidArguments,
            format!(
                "invalid arguments for prompt `{}`: {}. Expected {}",
                spec.name,
                problems.join("; "),
                signature(spec)
            ),
        )
    })?;
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    spec.messages
        .iter()
        .map(|message| {
            let filled = |text: &str| fill(text, value);
            match message.media_block(filled) {
                None => Ok(RenderedMessage {
                    role: message.role,
                    text: filled(message.text.as_deref().unwrap_or_default()),
                    content: None,
                }),
                Some(Ok(block)) => Ok(RenderedMessage {
                    role: message.role,
                    text: block.summary(),
                    content: Some(block),
                }),
                Some(Err(problem)) => Err(CallFailure::new(
                    FailureKind::InvalidArguments,
                    format!(
                        "prompt `{}` cannot be rendered with these arguments: {problem}",
                        spec.name
                    ),
                )),
            }
        })
        .collect()
}

/// `{nickName: string, mood: string (optional)}`.
fn signature(spec: &PromptSpec) -> String {
    super::tool::signature_of(
        spec.arguments
            .iter()
            .map(|a| (a.name.as_str(), a.kind, a.required)),
    )
}

fn unknown_prompt(set: &PromptSet, name: &str) -> CallFailure {
    let names: Vec<&str> = set.prompts.iter().map(|p| p.spec.name.as_str()).collect();
    let known = if names.is_empty() {
        "none are served".to_string()
    } else {
        format!("available prompts: {}", names.join(", "))
    };
    CallFailure::new(
        FailureKind::UnknownPrompt,
        format!("unknown prompt `{name}`; {known}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ArgumentType, MessageSpec, ParameterSpec};
    use serde_json::json;

    fn greet() -> PromptSpec {
        PromptSpec {
            name: "greet".into(),
            title: None,
            description: None,
            arguments: vec![
                ParameterSpec::text("nickName"),
                ParameterSpec {
                    required: false,
                    ..ParameterSpec::text("mood")
                },
                ParameterSpec {
                    kind: ArgumentType::Integer,
                    required: false,
                    ..ParameterSpec::text("times")
                },
            ],
            messages: vec![MessageSpec::text(
                MessageRole::User,
                "Say hello to ${nickName} ${times} times${mood}!",
            )],
        }
    }

    fn given(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn arguments_fill_the_messages_as_plain_text() {
        let messages = render(
            &greet(),
            &given(json!({"nickName": "${mood}", "times": "3"})),
        )
        .unwrap();
        assert_eq!(messages[0].text, "Say hello to ${mood} 3 times!");
    }

    #[test]
    fn every_problem_with_the_arguments_is_named() {
        let error = render(&greet(), &given(json!({"times": "x", "extra": 1}))).unwrap_err();
        assert_eq!(error.kind, FailureKind::InvalidArguments);
        for says in [
            "unknown argument `extra`",
            "missing required argument `nickName`",
            "`times` must be an integer, got `x`",
            "Expected {nickName: string, mood: string (optional), times: integer (optional)}",
        ] {
            assert!(error.message.contains(says), "{says}: {}", error.message);
        }
    }
}
