//! The bottom line: a notice or the filter prompt, then the keys that work
//! where the focus is, straight from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::{App, Screen};
use crate::console::format;
use crate::console::keymap;

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    if let Screen::Filter(filter) = &app.screen {
        spans.push(Span::styled(" filter: ", theme.key));
        spans.push(Span::raw(filter.clone()));
        // A visible cursor without moving the terminal's.
        spans.push(Span::styled(" ", theme.selected));
        spans.push(Span::raw(" "));
    } else if let Some(notice) = &app.notice {
        spans.push(Span::styled(
            format!(" {} ", notice.text),
            if notice.is_error {
                theme.error
            } else {
                theme.warn
            },
        ));
        spans.push(Span::styled("│", theme.dim));
    }
    let mut used: usize = spans.iter().map(Span::width).sum();
    for binding in keymap::hints(app.modes()) {
        let key = binding.keys.first().map(|k| k.label()).unwrap_or_default();
        let word = app.hint(binding);
        let width = format::width(&key) + format::width(word) + 3;
        if used + width > area.width as usize {
            break;
        }
        used += width;
        spans.push(Span::raw(" "));
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(word, theme.dim));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
