//! The form: opening it for a tool, a resource or a prompt, typing and
//! pasting into its editor, sending, the history of arguments sent, and the
//! outcome.

use ratatui::crossterm::event::KeyEvent;
use serde_json::Value;

use super::{Action, App, Notice, Pending, Screen};
use crate::console::form::{CallForm, EditorStyles, FormOutcome, FormTarget, Validation, pretty};
use crate::control::Reply;
use crate::events::CallKind;
use crate::registry::{RenderedPrompt, ResourceRead, ToolOutput};
use crate::runtime::{CallFailure, FailureKind};

impl App {
    /// The open form, if any.
    pub fn open_form(&self) -> Option<&CallForm> {
        match &self.screen {
            Screen::Form(tool) => self.forms.get(tool),
            _ => None,
        }
    }

    fn open_form_mut(&mut self) -> Option<&mut CallForm> {
        match &self.screen {
            Screen::Form(tool) => self.forms.get_mut(tool),
            _ => None,
        }
    }

    pub(super) fn open_form_for(&mut self, target: FormTarget) {
        let key = target.key();
        let styles = self.editor_styles();
        self.forms
            .entry(key.clone())
            .or_insert_with(|| CallForm::new(target, styles));
        self.screen = Screen::Form(key);
    }

    fn editor_styles(&self) -> EditorStyles {
        EditorStyles {
            cursor: self.theme.selected,
            cursor_line: ratatui::style::Style::new(),
            line_number: self.theme.dim,
            selection: self.theme.selected,
        }
    }

    pub(super) fn type_in_form(&mut self, event: KeyEvent) {
        if let Some(form) = self.open_form_mut()
            && form.editor.input(event)
        {
            form.edited();
        }
    }

    pub(super) fn paste_in_form(&mut self, text: &str) {
        if let Some(form) = self.open_form_mut() {
            form.editor.insert_str(text);
            form.edited();
        }
    }

    /// Scroll the outcome under the editor; false when no form is open.
    pub(super) fn scroll_form(&mut self, delta: isize) -> bool {
        let Some(form) = self.open_form_mut() else {
            return false;
        };
        form.outcome_scroll = form
            .outcome_scroll
            .saturating_add_signed(delta.clamp(-1000, 1000) as i16);
        true
    }

    /// Open the form of what call `kind` of `name` went to, with the
    /// `arguments` it was sent (as the call record has them), to send them
    /// again.
    pub(super) fn replay_in_form(&mut self, kind: CallKind, name: &str, arguments: &str) {
        let target = match kind {
            CallKind::Tool => self.plugins.tool(name).cloned().map(FormTarget::Tool),
            CallKind::Resource => self
                .library
                .resource(name)
                .cloned()
                .map(FormTarget::Resource),
            CallKind::Prompt => self.library.prompt(name).cloned().map(FormTarget::Prompt),
        };
        let Some(target) = target else {
            self.notice =
                Notice::error(format!("{kind} `{name}` is not served now; cannot replay"));
            return;
        };
        // A read is recorded as {"uri": …, "variables": {…}}: the form takes the variables.
        let arguments = match kind {
            CallKind::Resource => serde_json::from_str::<Value>(arguments)
                .ok()
                .and_then(|mut record| record.get_mut("variables").map(Value::take))
                .map_or_else(|| "{}".to_string(), |variables| variables.to_string()),
            CallKind::Tool | CallKind::Prompt => arguments.to_string(),
        };
        self.open_form_for(target);
        if let Some(form) = self.open_form_mut() {
            form.replace_text(&pretty(&arguments));
            form.edited();
        }
    }

    /// Ctrl-S: send the draft if it is valid, else say why not.
    pub(super) fn send(&mut self) -> Option<Action> {
        let id = self.next_request;
        let form = self.open_form_mut()?;
        let text = form.text();
        match crate::console::form::validate(&form.target, &text) {
            Ok(request) => {
                form.request = Some(id);
                form.outcome = Some(FormOutcome::Pending);
                form.outcome_scroll = 0;
                form.remember(text);
                let key = form.target.key();
                self.request(request, Pending::Form { form: key })
            }
            Err(problem) => {
                let text = match &problem {
                    Validation::Syntax { line, column, .. } => {
                        format!("not sent: the JSON has an error at line {line}, column {column}")
                    }
                    Validation::Schema(_) => {
                        "not sent: the arguments do not fit the tool (see below the editor)".into()
                    }
                    Validation::Valid => String::new(),
                };
                form.validation = problem;
                self.notice = Notice::error(text);
                None
            }
        }
    }

    pub(super) fn on_form_reply(&mut self, key: &str, id: u64, reply: Reply) {
        let Some(form) = self.forms.get_mut(key) else {
            return;
        };
        // An answer to an older call than the last sent is stale.
        if form.request != Some(id) {
            return;
        }
        form.outcome_scroll = 0;
        let result = match reply {
            // A result the plugin marked as an error fails like any other.
            Reply::Called { result: Ok(reply) } if reply.output.is_error => Err(CallFailure::new(
                FailureKind::PluginError,
                call_text(&reply.output),
            )),
            Reply::Called { result } => {
                result.map(|reply| (reply.call_id, call_text(&reply.output)))
            }
            Reply::Read { result } => result.map(|read| (read.call_id, read_text(&read))),
            Reply::Rendered { result } => {
                result.map(|render| (render.call_id, render_text(&render)))
            }
            Reply::Failed { reason } => {
                form.outcome = Some(FormOutcome::Lost { reason });
                return;
            }
            other => {
                form.outcome = Some(FormOutcome::Lost {
                    reason: format!("the server answered something else: {other:?}"),
                });
                return;
            }
        };
        form.outcome = Some(match result {
            Ok((call_id, text)) => FormOutcome::Ok { call_id, text },
            Err(failure) => FormOutcome::Failed {
                kind: failure.kind,
                message: failure.message,
            },
        });
    }

    pub(super) fn browse_history(&mut self, older: bool) {
        let Some(form) = self.open_form_mut() else {
            return;
        };
        if form.browse_history(older) {
            return;
        }
        let text = if form.history.is_empty() {
            "nothing sent from this form yet"
        } else if older {
            "no older arguments"
        } else {
            "back at the draft"
        };
        self.notice = Notice::info(text);
    }

    pub(super) fn reset_draft(&mut self) {
        if let Some(form) = self.open_form_mut() {
            let skeleton = form.target.skeleton();
            form.replace_text(&skeleton);
            form.edited();
        }
    }
}

/// What a call returned, as the form shows it: text blocks as they are
/// (pretty when JSON); images and audio as a label with their type and size;
/// links with their URI; embedded resources under a label, with their text;
/// then the structured content, unless a text block already shows it.
fn call_text(output: &ToolOutput) -> String {
    let mut parts: Vec<String> = output
        .content
        .iter()
        .map(|block| match (block.text(), block.embedded_text()) {
            (Some(text), _) => pretty(text),
            (None, Some(text)) => format!("{}\n{}", block.summary(), pretty(text)),
            (None, None) => block.summary(),
        })
        .collect();
    if let Some(structured) = &output.structured {
        let shown = output.content.iter().any(|block| {
            block
                .text()
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
                .is_some_and(|value| &value == structured)
        });
        if !shown {
            parts.push(format!(
                "structured content:\n{}",
                pretty(&structured.to_string())
            ));
        }
    }
    parts.join("\n")
}

/// What a read returned, as the form shows it: one content's text as is
/// (pretty when JSON), binary content as a label; several, each under its
/// URI and type.
fn read_text(read: &ResourceRead) -> String {
    match read.contents.as_slice() {
        [one] => pretty(&one.readable()),
        many => many
            .iter()
            .map(|content| {
                let kind = content.mime_type.as_deref().unwrap_or("text");
                format!(
                    "── {} ({kind})\n{}",
                    content.uri,
                    pretty(&content.readable())
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A rendered prompt as the form shows it: each message under its role.
fn render_text(render: &RenderedPrompt) -> String {
    let mut text = render
        .description
        .as_deref()
        .map(|d| format!("{d}\n\n"))
        .unwrap_or_default();
    let messages: Vec<String> = render
        .messages
        .iter()
        .map(|message| format!("{}:\n{}", message.role.as_str(), message.text))
        .collect();
    text.push_str(&messages.join("\n\n"));
    text
}
