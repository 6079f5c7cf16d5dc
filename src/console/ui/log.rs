//! The server log: what tracing would have printed on stderr.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Areas, pane_block};
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
    let height = inner.height as usize;
    let top = app.log.top_index(height);
    let lines: Vec<Line<'_>> = app
        .log
        .lines
        .iter()
        .skip(top)
        .take(height)
        .map(|line| {
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
            Line::styled(line.as_str(), style)
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
