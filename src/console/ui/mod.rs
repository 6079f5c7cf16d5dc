//! Drawing: one `render` per pane, all reading `&App`. The layout is a pure
//! function of the app's size and state, so `App::update` can ask it how
//! tall a pane is (to page and to keep the selection in view).

mod calls;
mod form;
mod header;
mod hints;
mod log;
mod overlays;
mod plugins;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

use super::app::{App, Pane};

/// Below this the console only says the terminal is too small.
pub const MIN_COLUMNS: u16 = 60;
pub const MIN_ROWS: u16 = 16;
/// From this width on, panes are shown side by side.
pub const WIDE_COLUMNS: u16 = 100;

/// Where everything goes.
#[derive(Debug, Clone, Default)]
pub struct Areas {
    pub header: Rect,
    pub body: Rect,
    pub hints: Rect,
    /// The panes shown, with their areas (borders included).
    pub panes: Vec<(Pane, Rect)>,
    /// Whether all panes show at once (or only the focused one).
    pub side_by_side: bool,
}

/// The layout of the console in `area` for `app`'s state.
pub fn layout(app: &App, area: Rect) -> Areas {
    let [header, body, hints] = Layout::vertical([
        Constraint::Length(header::height(app)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut areas = Areas {
        header,
        body,
        hints,
        panes: Vec::new(),
        side_by_side: false,
    };
    if area.width >= WIDE_COLUMNS {
        areas.side_by_side = true;
        let show_log = body.height >= 24 || app.focus == Pane::Log;
        let (top, log) = if body.height >= 24 {
            let log_height = (body.height / 4).clamp(5, 12);
            let [top, log] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(log_height)]).areas(body);
            (top, Some(log))
        } else {
            (body, None)
        };
        let plugins_width = (area.width / 3).clamp(34, 60);
        let [plugins, right] =
            Layout::horizontal([Constraint::Length(plugins_width), Constraint::Min(0)]).areas(top);
        areas.panes.push((Pane::Plugins, plugins));
        match log {
            Some(log) => {
                areas.panes.push((Pane::Calls, right));
                areas.panes.push((Pane::Log, log));
            }
            // Short and wide: the log takes the calls' place when focused.
            None if show_log => areas.panes.push((Pane::Log, right)),
            None => areas.panes.push((Pane::Calls, right)),
        }
    } else {
        areas.panes.push((app.focus, body));
    }
    areas
}

/// The inner height of `pane` (borders off), as shown now or as it would
/// be when focused.
pub fn pane_height(app: &App, pane: Pane) -> usize {
    let areas = layout(app, app.size);
    let area = areas
        .panes
        .iter()
        .find(|(p, _)| *p == pane)
        .map_or(areas.body, |(_, area)| *area);
    area.height.saturating_sub(2) as usize
}

/// Draw the whole console.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.width < MIN_COLUMNS || area.height < MIN_ROWS {
        render_too_small(app, frame, area);
        return;
    }
    let areas = layout(app, area);
    header::render(app, frame, areas.header);
    match app.open_form() {
        Some(form) => form::render(app, form, frame, areas.body),
        None => {
            for (pane, area) in &areas.panes {
                match pane {
                    Pane::Plugins => plugins::render(app, frame, *area, &areas),
                    Pane::Calls => calls::render(app, frame, *area, &areas),
                    Pane::Log => log::render(app, frame, *area, &areas),
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
/// time, the title lists all three so the operator knows where the others are.
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
                format!("{} {}", other.number(), other.title()),
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
