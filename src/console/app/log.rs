//! The log pane: the server's log lines in a scrollback (follow, freeze,
//! clear and move as in the calls pane; the keys are shared in `mod.rs`).

use crate::console::scrollback::Scrollback;

/// How many server log lines the log pane keeps.
pub const LOG_LINES_KEPT: usize = 2000;

/// The server log pane.
pub type LogPane = Scrollback<String>;
