//! Where each part of the console goes for a size of terminal: a pure
//! function of the size, the header's height and the focus. Drawing uses it
//! to place the panes; the app uses it to know how tall a pane is, to page
//! and to keep a selection in view.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::Pane;

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

impl Areas {
    /// The inner height of `pane` (borders off), as shown now or as it
    /// would be when focused.
    pub fn pane_height(&self, pane: Pane) -> usize {
        let area = self
            .panes
            .iter()
            .find(|(p, _)| *p == pane)
            .map_or(self.body, |(_, area)| *area);
        area.height.saturating_sub(2) as usize
    }
}

/// The layout of a console of `area` with a header of `header_rows` and
/// the focus on `focus`.
pub fn areas(area: Rect, header_rows: u16, focus: Pane) -> Areas {
    let [header, body, hints] = Layout::vertical([
        Constraint::Length(header_rows),
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
        let show_log = body.height >= 24 || focus == Pane::Log;
        let (top, log) = if body.height >= 24 {
            let log_height = (body.height / 4).clamp(5, 12);
            let [top, log] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(log_height)]).areas(body);
            (top, Some(log))
        } else {
            (body, None)
        };
        let plugins_width = (area.width / 3).clamp(34, 60);
        let [left, right] =
            Layout::horizontal([Constraint::Length(plugins_width), Constraint::Min(0)]).areas(top);
        // The left column: plugins over resources and prompts; when short,
        // one of them, the library only when focused.
        if left.height >= 14 {
            let library_height = (left.height * 2 / 5).clamp(4, 14);
            let [plugins, library] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(library_height)])
                    .areas(left);
            areas.panes.push((Pane::Plugins, plugins));
            areas.panes.push((Pane::Library, library));
        } else if focus == Pane::Library {
            areas.panes.push((Pane::Library, left));
        } else {
            areas.panes.push((Pane::Plugins, left));
        }
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
        areas.panes.push((focus, body));
    }
    areas
}
