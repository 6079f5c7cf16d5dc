//! What is drawn over the panes or the form: the help, a call's details, a
//! plugin's details, the outcome of a reload, the quit confirmation.

use crate::console::calls::CallRow;
use crate::console::keymap::Mode;
use crate::registry::{CallDetail, ChangeReport};

/// A call opened from the log.
#[derive(Debug)]
pub struct CallDetailView {
    pub row: CallRow,
    /// The full payloads, once fetched (`None` while loading or when the
    /// server no longer has them).
    pub detail: Option<CallDetail>,
    pub loading: bool,
    pub scroll: u16,
}

/// The outcome of a reload, shown until dismissed.
#[derive(Debug)]
pub struct ReportView {
    pub plugin: Option<String>,
    pub result: Result<ChangeReport, String>,
    pub scroll: u16,
}

/// What is drawn on top.
#[derive(Debug)]
pub enum Overlay {
    Help { scroll: u16 },
    CallDetail(CallDetailView),
    PluginDetail { plugin: String, scroll: u16 },
    Report(ReportView),
    ConfirmQuit,
}

impl Overlay {
    /// The keys that apply while it shows, most specific first.
    pub fn modes(&self) -> &'static [Mode] {
        match self {
            Overlay::ConfirmQuit => &[Mode::ConfirmQuit, Mode::Always],
            Overlay::Help { .. } => &[Mode::Help, Mode::Lists, Mode::Always],
            Overlay::CallDetail(_) => &[Mode::CallDetail, Mode::Lists, Mode::Always],
            Overlay::PluginDetail { .. } => &[Mode::PluginDetail, Mode::Lists, Mode::Always],
            Overlay::Report(_) => &[Mode::Report, Mode::Lists, Mode::Always],
        }
    }

    /// How far its text is scrolled, if it scrolls.
    pub fn scroll(&mut self) -> Option<&mut u16> {
        match self {
            Overlay::Help { scroll }
            | Overlay::PluginDetail { scroll, .. }
            | Overlay::CallDetail(CallDetailView { scroll, .. })
            | Overlay::Report(ReportView { scroll, .. }) => Some(scroll),
            Overlay::ConfirmQuit => None,
        }
    }
}
