//! The server log: what tracing would have printed on stderr.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Areas, pane_block, selected_row};
use crate::console::app::{App, Pane};

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect, areas: &Areas) {
    let theme = &app.theme;
    let extra = if app.log.follow {
        vec![Span::styled("· following ", theme.dim)]
    } else {
        vec![Span::styled("· FROZEN (f follows) ", theme.warn)]
    };
    let block = pane_block(app, Pane::Log, areas, extra);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let selected = (!app.log.follow)
        .then(|| app.log.selected_index())
        .flatten();
    let lines: Vec<Line<'_>> = app
        .log
        .visible_rows(inner.height as usize)
        .map(|(index, line)| {
            let trimmed = line.trim_start();
            let style = if trimmed.starts_with("ERROR") {
                theme.error
            } else if trimmed.starts_with("WARN") {
                theme.warn
            } else if trimmed.starts_with("DEBUG") || trimmed.starts_with("TRACE") {
                theme.dim
            } else {
                ratatui::style::Style::new()
            };
            let mut line = Line::styled(line.as_str(), style);
            if Some(index) == selected {
                line = selected_row(app, Pane::Log, line, width);
            }
            line
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("no log lines yet", theme.dim)),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
