//! Colours and text attributes. The colour theme uses only the 16 ANSI
//! colours (the terminal's own palette, so it suits dark and light
//! backgrounds and every SSH client); the monochrome theme (`NO_COLOR`,
//! `--no-color`) uses bold, reverse, underline and dim alone and still shows
//! focus and selection.

use ratatui::style::{Color, Modifier, Style};

/// Every style the console draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether this is the monochrome theme.
    pub monochrome: bool,
    /// The product name and the header's labels.
    pub title: Style,
    /// Secondary text: labels, previews, hints' descriptions.
    pub dim: Style,
    /// A border of a pane without the focus.
    pub border: Style,
    /// The border of the pane with the focus.
    pub border_focused: Style,
    /// The title of the pane with the focus.
    pub title_focused: Style,
    /// The selected row in the pane with the focus.
    pub selected: Style,
    /// The selected row in a pane without the focus.
    pub selected_unfocused: Style,
    /// Success: "ok", "loaded", valid JSON.
    pub ok: Style,
    /// Failure: "error", "failed", invalid JSON.
    pub error: Style,
    /// Attention: "stale", "reloading", dropped events, frozen follow.
    pub warn: Style,
    /// Keys in the hint bar and the help.
    pub key: Style,
    /// Names that matter in a row: plugin and tool names.
    pub name: Style,
}

impl Theme {
    /// The 16-colour theme.
    pub fn colour() -> Self {
        let plain = Style::new();
        Self {
            monochrome: false,
            title: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            dim: plain.fg(Color::DarkGray),
            border: plain.fg(Color::DarkGray),
            border_focused: plain.fg(Color::Cyan),
            title_focused: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            selected_unfocused: plain.add_modifier(Modifier::UNDERLINED),
            ok: plain.fg(Color::Green),
            error: plain.fg(Color::Red).add_modifier(Modifier::BOLD),
            warn: plain.fg(Color::Yellow),
            key: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            name: plain.add_modifier(Modifier::BOLD),
        }
    }

    /// The theme without colours.
    pub fn monochrome() -> Self {
        let plain = Style::new();
        Self {
            monochrome: true,
            title: plain.add_modifier(Modifier::BOLD),
            dim: plain.add_modifier(Modifier::DIM),
            border: plain,
            border_focused: plain.add_modifier(Modifier::BOLD),
            title_focused: plain.add_modifier(Modifier::BOLD | Modifier::REVERSED),
            selected: plain.add_modifier(Modifier::REVERSED),
            selected_unfocused: plain.add_modifier(Modifier::UNDERLINED),
            ok: plain,
            error: plain.add_modifier(Modifier::BOLD),
            warn: plain.add_modifier(Modifier::BOLD),
            key: plain.add_modifier(Modifier::BOLD),
            name: plain.add_modifier(Modifier::BOLD),
        }
    }

    /// The theme for `no_color`.
    pub fn new(no_color: bool) -> Self {
        if no_color {
            Self::monochrome()
        } else {
            Self::colour()
        }
    }
}
