//! The call form: opening it, typing and pasting into its editor, sending
//! the call, the history of arguments sent, and the outcome.

use ratatui::crossterm::event::KeyEvent;

use super::{Action, App, Notice, Pending, Screen};
use crate::console::form::{CallForm, EditorStyles, FormOutcome, Validation, pretty};
use crate::control::{Reply, Request, ToolView};

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

    pub(super) fn open_form_for(&mut self, tool: ToolView) {
        let name = tool.name.clone();
        let styles = self.editor_styles();
        self.forms
            .entry(name.clone())
            .or_insert_with(|| CallForm::new(tool, styles));
        self.screen = Screen::Form(name);
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

    /// Open `tool`'s form with `arguments` in it, to send them again.
    pub(super) fn replay_in_form(&mut self, tool: &str, arguments: &str) {
        let Some(found) = self.plugins.tool(tool).cloned() else {
            self.notice = Notice::error(format!("`{tool}` is not served now; cannot replay"));
            return;
        };
        self.open_form_for(found);
        if let Some(form) = self.open_form_mut() {
            form.replace_text(&pretty(arguments));
            form.edited();
        }
    }

    /// Ctrl-S: send the draft if it is valid, else say why not.
    pub(super) fn send(&mut self) -> Option<Action> {
        let id = self.next_request;
        let form = self.open_form_mut()?;
        let text = form.text();
        match crate::console::form::validate(&form.tool, &text) {
            Ok(arguments) => {
                form.request = Some(id);
                form.outcome = Some(FormOutcome::Pending);
                form.outcome_scroll = 0;
                form.remember(text);
                let tool = form.tool.name.clone();
                self.request(
                    Request::Call {
                        tool: tool.clone(),
                        arguments,
                    },
                    Pending::Call { tool },
                )
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

    pub(super) fn on_call_reply(&mut self, tool: &str, id: u64, reply: Reply) {
        let Some(form) = self.forms.get_mut(tool) else {
            return;
        };
        // An answer to an older call than the last sent is stale.
        if form.request != Some(id) {
            return;
        }
        form.outcome_scroll = 0;
        form.outcome = Some(match reply {
            Reply::Called { result: Ok(reply) } => FormOutcome::Ok {
                call_id: reply.call_id,
                text: pretty(&reply.output.readable()),
            },
            Reply::Called {
                result: Err(failure),
            } => FormOutcome::Failed {
                kind: failure.kind,
                message: failure.message,
            },
            Reply::Failed { reason } => FormOutcome::Lost { reason },
            other => FormOutcome::Lost {
                reason: format!("the server answered something else: {other:?}"),
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
            let skeleton = form.tool.skeleton();
            form.replace_text(&skeleton);
            form.edited();
        }
    }
}
