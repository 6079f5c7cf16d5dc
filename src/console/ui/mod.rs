//! Drawing: one `render` per pane, all reading `&App`, into the areas
//! `layout` gives.

mod calls;
mod form;
mod header;
mod hints;
mod library;
mod log;
mod overlays;
mod plugins;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

use super::app::{App, Pane};
use super::layout::{Areas, MIN_COLUMNS, MIN_ROWS};

/// Draw the whole console.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.width < MIN_COLUMNS || area.height < MIN_ROWS {
        render_too_small(app, frame, area);
        return;
    }
    let areas = super::layout::areas(area, app.header_rows(), app.focus);
    header::render(app, frame, areas.header);
    match app.open_form() {
        Some(form) => form::render(app, form, frame, areas.body),
        None => {
            for (pane, area) in &areas.panes {
                match pane {
                    Pane::Plugins => plugins::render(app, frame, *area, &areas),
                    Pane::Calls => calls::render(app, frame, *area, &areas),
                    Pane::Log => log::render(app, frame, *area, &areas),
                    Pane::Library => library::render(app, frame, *area, &areas),
                }
            }
        }
    }
    hints::render(app, frame, areas.hints);
    overlays::render(app, frame, areas.body);
}

fn render_too_small(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let text = vec![
        Line::styled("terminal too small", app.theme.error),
        Line::raw(format!(
            "{}x{}; the console needs at least {MIN_COLUMNS}x{MIN_ROWS}",
            area.width, area.height
        )),
        Line::styled("q quits, the server keeps serving meanwhile", app.theme.dim),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let area = Rect::new(area.x, area.y + top, area.width, area.height - top);
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        area,
    );
}

/// A pane's block: its number and title, the focus shown by the border and
/// the title (bold/reverse in monochrome). When only one pane shows at a
/// time, the title lists all four (shortly) so the operator knows where the
/// others are.
fn pane_block<'a>(app: &App, pane: Pane, areas: &Areas, extra: Vec<Span<'a>>) -> Block<'a> {
    let focused = app.focus == pane && app.open_form().is_none();
    let theme = &app.theme;
    let mut title: Vec<Span<'a>> = Vec::new();
    if areas.side_by_side {
        let style = if focused {
            theme.title_focused
        } else {
            theme.name
        };
        title.push(Span::styled(
            format!(" {} {} ", pane.number(), pane.title()),
            style,
        ));
    } else {
        title.push(Span::raw(" "));
        for other in Pane::ALL {
            let style = if other == pane {
                theme.title_focused
            } else {
                theme.dim
            };
            title.push(Span::styled(
                format!("{} {}", other.number(), other.short_title()),
                style,
            ));
            title.push(Span::raw(" "));
        }
    }
    title.extend(extra);
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(Line::from(title))
}

/// `line` drawn as the selected row of `pane`: in the selection's style,
/// across the whole width, so it shows in monochrome too.
fn selected_row<'a>(app: &App, pane: Pane, line: Line<'a>, width: usize) -> Line<'a> {
    let style = selection_style(app, pane);
    let mut line = line.patch_style(style);
    let used = line.width();
    if used < width {
        line.push_span(Span::styled(" ".repeat(width - used), style));
    }
    line
}

/// The style of a selected row in `pane`.
fn selection_style(app: &App, pane: Pane) -> Style {
    if app.focus == pane && app.overlay.is_none() {
        app.theme.selected
    } else {
        app.theme.selected_unfocused
    }
}

/// A rectangle of `width` x `height` centred in `area` (clipped to it).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}
