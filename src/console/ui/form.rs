//! The call form: the JSON editor, the argument descriptions beside it
//! (below it when narrow), the validation, and the outcome.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

use crate::console::app::App;
use crate::console::form::{CallForm, FormOutcome, Validation};
use crate::console::layout::WIDE_COLUMNS;

pub fn render(app: &App, form: &CallForm, frame: &mut Frame<'_>, area: Rect) {
    let wide = area.width >= WIDE_COLUMNS;
    let editor_rows = (form.editor.lines().len() as u16 + 2).clamp(5, area.height / 2);
    if wide {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
        let [editor, status, outcome] = Layout::vertical([
            Constraint::Length(editor_rows.max(area.height / 2)),
            Constraint::Length(3),
            Constraint::Min(3),
        ])
        .areas(left);
        render_editor(app, form, frame, editor);
        render_validation(app, form, frame, status);
        render_outcome(app, form, frame, outcome);
        render_arguments(app, form, frame, right, true);
    } else {
        let argument_rows = (form.target.fields().len() as u16 + 1).min(5);
        let [editor, status, arguments, outcome] = Layout::vertical([
            Constraint::Length(editor_rows),
            Constraint::Length(2),
            Constraint::Length(argument_rows),
            Constraint::Min(3),
        ])
        .areas(area);
        render_editor(app, form, frame, editor);
        render_validation(app, form, frame, status);
        render_arguments(app, form, frame, arguments, false);
        render_outcome(app, form, frame, outcome);
    }
}

fn render_editor(app: &App, form: &CallForm, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let (verb, place) = form.target.action();
    let mut title = vec![
        Span::styled(
            format!(" {verb} {} ", form.target.name()),
            theme.title_focused,
        ),
        Span::styled(format!("· {place} · JSON arguments "), theme.dim),
    ];
    if let Some((position, count)) = form.history_place() {
        title.push(Span::styled(
            format!("· history {position}/{count} "),
            theme.warn,
        ));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Thick)
        .border_style(theme.border_focused)
        .title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(&form.editor, inner);
}

fn render_validation(app: &App, form: &CallForm, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let line = match &form.validation {
        Validation::Valid => Line::from(vec![
            Span::styled(" ✓ valid ", theme.ok),
            Span::styled(
                format!(
                    "· {} · Ctrl-S {}",
                    form.target.signature(),
                    form.target.sends()
                ),
                theme.dim,
            ),
        ]),
        Validation::Syntax {
            line,
            column,
            message,
        } => Line::from(vec![
            Span::styled(format!(" ✗ line {line}, column {column}: "), theme.error),
            Span::raw(message.clone()),
        ]),
        Validation::Schema(message) => Line::from(vec![
            Span::styled(" ✗ ", theme.error),
            Span::raw(message.clone()),
        ]),
    };
    frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: false }), area);
}

fn render_arguments(app: &App, form: &CallForm, frame: &mut Frame<'_>, area: Rect, wide: bool) {
    let theme = &app.theme;
    if !wide {
        let mut lines = vec![Line::styled(" Arguments", theme.name)];
        lines.extend(argument_lines(app, form));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    }
    let fields = form.target.fields();
    let mut lines = vec![
        Line::styled(
            form.target.description().unwrap_or_default().to_string(),
            theme.dim,
        ),
        Line::default(),
    ];
    if fields.is_empty() {
        lines.push(Line::styled(
            format!("no arguments: Ctrl-S {} with {{}}", form.target.sends()),
            theme.dim,
        ));
    }
    for field in fields {
        let requirement = if field.required {
            "required"
        } else {
            "optional"
        };
        lines.push(Line::from(vec![
            Span::styled(field.name.to_string(), theme.name),
            Span::styled(format!("  {}, {requirement}", field.kind), theme.dim),
        ]));
        if let Some(description) = field.description {
            lines.push(Line::raw(format!("  {description}")));
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::styled(" Arguments ", theme.name));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}

/// The narrow form's argument lines (one per argument).
fn argument_lines(app: &App, form: &CallForm) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let fields = form.target.fields();
    if fields.is_empty() {
        return vec![Line::styled(" none: send {}", theme.dim)];
    }
    fields
        .into_iter()
        .map(|field| {
            let requirement = if field.required { "" } else { ", optional" };
            let mut spans = vec![
                Span::raw(" "),
                Span::styled(field.name.to_string(), theme.name),
                Span::styled(format!(": {}{requirement}", field.kind), theme.dim),
            ];
            if let Some(description) = field.description {
                spans.push(Span::styled(" · ", theme.dim));
                spans.push(Span::raw(description.to_string()));
            }
            Line::from(spans)
        })
        .collect()
}

fn render_outcome(app: &App, form: &CallForm, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let (title, body) = match &form.outcome {
        None => (
            Line::styled(" Result ", theme.name),
            vec![Line::styled(
                format!(
                    "Ctrl-S {}; the outcome shows here and in the calls pane.",
                    form.target.sends()
                ),
                theme.dim,
            )],
        ),
        Some(FormOutcome::Pending) => (
            Line::from(vec![
                Span::styled(" Result ", theme.name),
                Span::styled("· running… ", theme.warn),
            ]),
            Vec::new(),
        ),
        Some(FormOutcome::Ok { call_id, text }) => (
            Line::from(vec![
                Span::styled(" Result ", theme.name),
                Span::styled("· ok ", theme.ok),
                Span::styled(format!("· call #{call_id} "), theme.dim),
            ]),
            text.lines()
                .map(|line| Line::raw(line.to_string()))
                .collect(),
        ),
        Some(FormOutcome::Lost { reason }) => (
            Line::from(vec![
                Span::styled(" Result ", theme.name),
                Span::styled("· no answer ", theme.error),
            ]),
            vec![Line::styled(reason.clone(), theme.error)],
        ),
        Some(FormOutcome::Failed { kind, message }) => (
            Line::from(vec![
                Span::styled(" Result ", theme.name),
                Span::styled(format!("· error: {kind} "), theme.error),
            ]),
            message
                .lines()
                .map(|line| Line::styled(line.to_string(), theme.error))
                .collect(),
        ),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title);
    frame.render_widget(
        Paragraph::new(body)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((form.outcome_scroll, 0)),
        area,
    );
}
