//! The live call log: only the visible rows are drawn, whatever is kept.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Areas, pane_block, selected_row};
use crate::console::app::{App, Pane};
use crate::console::calls::CallRow;
use crate::console::format::{self, fit, pad, pad_left};
use crate::events::CallStatus;
use crate::registry::RunningCall;

/// The widths of the source and tool columns: as wide as the rows on
/// screen need, within a cap that grows with the pane, so that the previews
/// get what is left.
struct Columns {
    source: usize,
    tool: usize,
}

impl Columns {
    fn fitting(width: usize, rows: &[(usize, &CallRow)]) -> Self {
        let (source_cap, tool_cap) = match width {
            110.. => (24, 22),
            90.. => (18, 16),
            _ => (12, 12),
        };
        let widest = |measure: &dyn Fn(&CallRow) -> usize| {
            rows.iter().map(|(_, row)| measure(row)).max().unwrap_or(0)
        };
        Self {
            source: widest(&|row| format::width(&row.call().source.to_string()))
                .clamp("source".len(), source_cap),
            tool: widest(&|row| format::width(&row.label())).clamp("tool".len(), tool_cap),
        }
    }
}

const TIME: usize = 8;
const DURATION: usize = 6;
const OUTCOME: usize = 3;
/// The most running calls shown at the bottom of the pane.
const RUNNING_ROWS: usize = 3;

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect, areas: &Areas) {
    let theme = &app.theme;
    let (kept, shown) = app.calls.counts();
    let mut extra = vec![Span::styled("· ", theme.dim)];
    if app.calls.follow {
        extra.push(Span::styled("following ", theme.dim));
    } else {
        extra.push(Span::styled("FROZEN (f follows) ", theme.warn));
    }
    if !app.calls.filter().is_empty() {
        extra.push(Span::styled(
            format!("· filter \"{}\" {shown}/{kept} ", app.calls.filter().text()),
            theme.warn,
        ));
    }
    let block = pane_block(app, Pane::Calls, areas, extra);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let width = inner.width as usize;
    // Calls still running that reported progress take the last lines
    // (the newest of them when there are many), finished calls the rest.
    let running = &app.stats.progress;
    let running_shown = running
        .len()
        .min(RUNNING_ROWS)
        .min((inner.height as usize).saturating_sub(2));
    let height = inner.height as usize - 1 - running_shown;
    let rows: Vec<(usize, &CallRow)> = app.calls.visible_rows(height).collect();
    let columns = Columns::fitting(width, &rows);
    let heading = format!(
        "{} {} {} {} {} arguments → result",
        pad("time", TIME),
        pad("source", columns.source),
        pad("tool", columns.tool),
        pad_left("took", DURATION),
        pad("", OUTCOME),
    );
    let mut lines = vec![Line::styled(fit(&heading, width), theme.dim)];
    if kept == 0 {
        lines.push(Line::styled(
            "no calls yet: they appear here as clients (or this console) call tools",
            theme.dim,
        ));
    } else if shown == 0 {
        lines.push(Line::styled(
            "no call matches the filter (/ changes it)",
            theme.dim,
        ));
    }
    let selected = app.calls.selected_index();
    let frozen = !app.calls.follow;
    for (index, row) in rows {
        let mut line = call_line(app, row, &columns, width);
        // In follow mode the newest row is not "selected": nothing to point at.
        if frozen && Some(index) == selected {
            line = selected_row(app, Pane::Calls, line, width);
        }
        lines.push(line);
    }
    if running_shown > 0 {
        // Keep the running calls at the bottom, below blank lines if needed.
        lines.resize(1 + height.max(lines.len() - 1), Line::default());
        let newest = running.len() - running_shown;
        lines.extend(
            running[newest..]
                .iter()
                .map(|call| running_line(app, call, &columns, width)),
        );
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A call still running: when and where it came from, and how far it says
/// it is: `run 50/100 halfway`.
fn running_line<'a>(app: &App, call: &RunningCall, columns: &Columns, width: usize) -> Line<'a> {
    let theme = &app.theme;
    let progress = &call.progress;
    let amount = |value: f64| format!("{}", (value * 100.0).round() / 100.0);
    let mut status = match progress.total {
        Some(total) => format!("{}/{}", amount(progress.progress), amount(total)),
        None => amount(progress.progress),
    };
    if let Some(message) = &progress.message {
        status.push(' ');
        status.push_str(message);
    }
    let spans = vec![
        Span::styled(
            format!("{} ", format::clock_time(call.started, app.clock)),
            theme.dim,
        ),
        Span::raw(format!(
            "{} ",
            pad(&call.source.to_string(), columns.source)
        )),
        Span::styled(format!("{} ", pad(&call.tool, columns.tool)), theme.name),
        Span::styled(format!("{} ", pad_left("…", DURATION)), theme.dim),
        Span::styled(pad("run", OUTCOME), theme.warn),
        Span::raw(" "),
    ];
    let used: usize = spans.iter().map(Span::width).sum();
    let mut spans = spans;
    spans.push(Span::raw(fit(&status, width.saturating_sub(used))));
    Line::from(spans)
}

fn call_line<'a>(app: &App, row: &'a CallRow, columns: &Columns, width: usize) -> Line<'a> {
    let theme = &app.theme;
    let call = row.call();
    let (outcome, outcome_style, result) = match &call.status {
        CallStatus::Ok { preview } => ("ok", theme.ok, preview.clone()),
        CallStatus::Error { kind, message } => ("ERR", theme.error, format!("{kind}: {message}")),
    };
    let source = call.source.to_string();
    let mut spans = vec![
        Span::styled(
            format!("{} ", format::clock_time(call.started, app.clock)),
            theme.dim,
        ),
        Span::raw(format!("{} ", pad(&source, columns.source))),
        Span::styled(format!("{} ", pad(&row.label(), columns.tool)), theme.name),
        Span::raw(format!(
            "{} ",
            pad_left(&format::duration(call.duration), DURATION)
        )),
        Span::styled(pad(outcome, OUTCOME), outcome_style),
        Span::raw(" "),
    ];
    let used: usize = spans.iter().map(Span::width).sum();
    let room = width.saturating_sub(used + 3);
    // The result gets up to half the room, the arguments the rest.
    let result_width = format::width(&result).min(room / 2);
    let arguments = fit(&call.arguments, room - result_width);
    let rest = room.saturating_sub(format::width(&arguments));
    spans.push(Span::styled(arguments, theme.dim));
    spans.push(Span::styled(" → ", theme.dim));
    spans.push(Span::styled(
        fit(&result, rest),
        if call.status.is_ok() {
            ratatui::style::Style::new()
        } else {
            theme.error
        },
    ));
    Line::from(spans)
}
