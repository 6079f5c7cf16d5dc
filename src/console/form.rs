//! The call form: a JSON editor for the arguments of a tool (or the
//! variables of a resource template, or the arguments of a prompt), checked
//! as the operator types with the same checks the server makes, a history
//! of the arguments sent, and the outcome of the last call, read or render.

use std::borrow::Cow;

use ratatui::style::Style;
use ratatui_textarea::TextArea;
use serde_json::{Map, Value};

use crate::catalog::ParameterSpec;
use crate::control::{PromptView, Request, ResourceView, ToolView};
use crate::registry::{signature_of, skeleton_of};
use crate::runtime::FailureKind;

/// What a form sends: a tool's call, a resource's read, a prompt's render.
#[derive(Debug, Clone, PartialEq)]
pub enum FormTarget {
    Tool(ToolView),
    Resource(ResourceView),
    Prompt(PromptView),
}

/// One argument as the form lists it.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    pub name: &'a str,
    /// Its type as a reader would write it: `integer`, `enum`, `string or null`.
    pub kind: Cow<'a, str>,
    pub required: bool,
    pub description: Option<&'a str>,
}

impl FormTarget {
    /// The key its form is kept under (a tool and a prompt may share a name).
    pub fn key(&self) -> String {
        match self {
            FormTarget::Tool(tool) => format!("tool:{}", tool.name),
            FormTarget::Resource(resource) => format!("resource:{}", resource.name),
            FormTarget::Prompt(prompt) => format!("prompt:{}", prompt.name),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            FormTarget::Tool(tool) => &tool.name,
            FormTarget::Resource(resource) => &resource.name,
            FormTarget::Prompt(prompt) => &prompt.name,
        }
    }

    /// What sending does, and where: ("Call", "plugin addition").
    pub fn action(&self) -> (&'static str, String) {
        match self {
            FormTarget::Tool(tool) => ("Call", format!("plugin {}", tool.plugin)),
            FormTarget::Resource(resource) => ("Read", resource.uri.clone()),
            FormTarget::Prompt(_) => ("Render", "prompt".into()),
        }
    }

    /// What Ctrl-S does, for the hint under the editor.
    pub fn sends(&self) -> &'static str {
        match self {
            FormTarget::Tool(_) => "sends",
            FormTarget::Resource(_) => "reads",
            FormTarget::Prompt(_) => "renders",
        }
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            FormTarget::Tool(tool) => tool.description.as_deref(),
            FormTarget::Resource(resource) => resource.description.as_deref(),
            FormTarget::Prompt(prompt) => prompt.description.as_deref(),
        }
    }

    /// The arguments (or template variables) it takes, in declared order
    /// (a schema's properties by name).
    pub fn fields(&self) -> Vec<Field<'_>> {
        match self {
            FormTarget::Tool(ToolView {
                input_schema: Some(schema),
                ..
            }) => {
                let required: Vec<&str> = schema.required().collect();
                schema
                    .properties()
                    .map(|(name, property)| Field {
                        name,
                        kind: Cow::Owned(crate::schema::type_name(property)),
                        required: required.contains(&name),
                        description: property.get("description").and_then(Value::as_str),
                    })
                    .collect()
            }
            FormTarget::Tool(tool) => tool
                .arguments
                .iter()
                .map(|a| Field {
                    name: &a.name,
                    kind: Cow::Borrowed(a.kind.as_str()),
                    required: a.required,
                    description: a.description.as_deref(),
                })
                .collect(),
            FormTarget::Resource(ResourceView { parameters, .. })
            | FormTarget::Prompt(PromptView { parameters, .. }) => parameters
                .iter()
                .map(|p| Field {
                    name: &p.name,
                    kind: Cow::Borrowed(p.kind.as_str()),
                    required: p.required,
                    description: p.description.as_deref(),
                })
                .collect(),
        }
    }

    /// The declared parameters of a resource or prompt.
    fn parameters(&self) -> impl Iterator<Item = &ParameterSpec> {
        match self {
            FormTarget::Tool(_) => [].iter(),
            FormTarget::Resource(ResourceView { parameters, .. })
            | FormTarget::Prompt(PromptView { parameters, .. }) => parameters.iter(),
        }
    }

    /// The draft a new form starts from.
    pub fn skeleton(&self) -> String {
        match self {
            FormTarget::Tool(tool) => tool.skeleton(),
            _ => skeleton_of(self.parameters().map(|p| (p.name.as_str(), p.kind))),
        }
    }

    /// `{numFaces: integer, numDice: integer}`.
    pub fn signature(&self) -> String {
        match self {
            FormTarget::Tool(tool) => tool.signature(),
            _ => signature_of(
                self.parameters()
                    .map(|p| (p.name.as_str(), p.kind, p.required)),
            ),
        }
    }

    /// The request for `arguments`, or why they do not fit: the checks the
    /// server makes.
    pub fn request(&self, arguments: Map<String, Value>) -> Result<Request, String> {
        match self {
            FormTarget::Tool(tool) => {
                tool.input(&arguments)?;
                Ok(Request::Call {
                    tool: tool.name.clone(),
                    arguments,
                })
            }
            FormTarget::Resource(resource) => Ok(Request::ReadResource {
                uri: resource.uri_for(&arguments)?,
            }),
            FormTarget::Prompt(prompt) => {
                prompt.check(&arguments)?;
                Ok(Request::RenderPrompt {
                    name: prompt.name.clone(),
                    arguments,
                })
            }
        }
    }
}

/// Whether the draft can be sent, and if not, why and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// Well-formed and fits the declared arguments.
    Valid,
    /// Not JSON: the position (1-based) and what is wrong there.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but not the arguments the tool takes.
    Schema(String),
}

/// The request `text` makes of `target`, or why it cannot be sent.
pub fn validate(target: &FormTarget, text: &str) -> Result<Request, Validation> {
    let value: Value = if text.trim().is_empty() {
        // An empty editor means "no arguments".
        Value::Object(Map::new())
    } else {
        serde_json::from_str(text).map_err(|error| Validation::Syntax {
            line: error.line(),
            column: error.column(),
            message: syntax_message(&error),
        })?
    };
    let Value::Object(arguments) = value else {
        return Err(Validation::Schema(
            "the arguments must be a JSON object, like {\"name\": \"value\"}".into(),
        ));
    };
    target.request(arguments).map_err(Validation::Schema)
}

/// serde_json's message without its " at line 1 column 2" tail (the form
/// shows the position its own way).
fn syntax_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// The outcome of a call sent from the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormOutcome {
    /// Sent; waiting for the answer.
    Pending,
    /// The output (pretty-printed when it is JSON), the contents read, or
    /// the messages rendered, as text.
    Ok {
        call_id: u64,
        text: String,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
    /// The call may not have reached the server, or its answer was lost.
    Lost {
        reason: String,
    },
}

/// One tool's form. Forms are kept per tool, so a draft survives leaving
/// the form and coming back.
pub struct CallForm {
    pub target: FormTarget,
    pub editor: TextArea<'static>,
    pub validation: Validation,
    /// Arguments sent from this form, oldest first (deduplicated).
    pub history: Vec<String>,
    /// Where Ctrl-P/Ctrl-N are in the history; `None`: on the draft.
    history_position: Option<usize>,
    /// The draft set aside while browsing the history.
    set_aside: Option<String>,
    /// The last request sent and its outcome.
    pub request: Option<u64>,
    pub outcome: Option<FormOutcome>,
    /// How far the outcome is scrolled.
    pub outcome_scroll: u16,
}

/// How many argument sets a form remembers.
const HISTORY_KEPT: usize = 50;

impl CallForm {
    pub fn new(target: FormTarget, styles: EditorStyles) -> Self {
        let text = target.skeleton();
        let mut form = Self {
            editor: editor(&text, styles),
            validation: Validation::Valid,
            target,
            history: Vec::new(),
            history_position: None,
            set_aside: None,
            request: None,
            outcome: None,
            outcome_scroll: 0,
        };
        form.revalidate();
        form
    }

    /// The draft as one string.
    pub fn text(&self) -> String {
        self.editor.lines().join("\n")
    }

    /// Check the draft again (after every edit).
    pub fn revalidate(&mut self) {
        self.validation = match validate(&self.target, &self.text()) {
            Ok(_) => Validation::Valid,
            Err(problem) => problem,
        };
    }

    /// Replace the draft, keeping the editor's undo history.
    pub fn replace_text(&mut self, text: &str) {
        self.editor.select_all();
        self.editor.cut();
        self.editor.insert_str(text);
        self.editor.move_cursor(ratatui_textarea::CursorMove::Top);
        self.editor.move_cursor(ratatui_textarea::CursorMove::Head);
        self.revalidate();
    }

    /// A newer version of what the form sends to (after a reload).
    pub fn set_target(&mut self, target: FormTarget) {
        if self.target != target {
            self.target = target;
            self.revalidate();
        }
    }

    /// Remember `text` as sent.
    pub fn remember(&mut self, text: String) {
        self.history.retain(|previous| previous != &text);
        self.history.push(text);
        if self.history.len() > HISTORY_KEPT {
            self.history.remove(0);
        }
        self.history_position = None;
        self.set_aside = None;
    }

    /// Step through the history: `older` goes back in time.
    pub fn browse_history(&mut self, older: bool) -> bool {
        if self.history.is_empty() {
            return false;
        }
        let last = self.history.len() - 1;
        let next = match (self.history_position, older) {
            (None, true) => Some(last),
            (None, false) => return false,
            (Some(0), true) => return false,
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i == last => None,
            (Some(i), false) => Some(i + 1),
        };
        if self.history_position.is_none() {
            self.set_aside = Some(self.text());
        }
        self.history_position = next;
        let text = match next {
            Some(i) => self.history[i].clone(),
            None => self.set_aside.take().unwrap_or_default(),
        };
        self.replace_text(&text);
        true
    }

    /// Where the history browsing is, for the title: (position, count).
    pub fn history_place(&self) -> Option<(usize, usize)> {
        self.history_position.map(|i| (i + 1, self.history.len()))
    }

    /// Any edit leaves the history browsing.
    pub fn edited(&mut self) {
        self.history_position = None;
        self.set_aside = None;
        self.revalidate();
    }
}

/// The editor's own styles, from the theme.
#[derive(Debug, Clone, Copy)]
pub struct EditorStyles {
    pub cursor: Style,
    pub cursor_line: Style,
    pub line_number: Style,
    pub selection: Style,
}

fn editor(text: &str, styles: EditorStyles) -> TextArea<'static> {
    let mut editor = TextArea::new(text.lines().map(str::to_string).collect());
    editor.set_tab_length(2);
    editor.set_cursor_style(styles.cursor);
    editor.set_cursor_line_style(styles.cursor_line);
    editor.set_line_number_style(styles.line_number);
    editor.set_selection_style(styles.selection);
    editor.set_max_histories(200);
    editor
}

/// `text` pretty-printed if it is JSON (objects and arrays), as is otherwise.
pub fn pretty(text: &str) -> String {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(text)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return pretty;
    }
    text.to_string()
}
