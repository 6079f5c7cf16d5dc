//! The console's state and how events change it. [`App::update`] does no
//! I/O: what needs the outside world (a request to the server, quitting,
//! suspending) comes back as an [`Action`] for the loop to perform, so every
//! behaviour here can be tested from a sequence of events.
//!
//! What the operator sees is one [`Screen`] (the panes, the filter prompt
//! over them, or a call form) with at most one [`Overlay`] on top. Each
//! pane's keys are handled in a file of its own: `plugins.rs`, `calls.rs`,
//! `log.rs`, `library.rs` (resources and prompts), and `form.rs` for the
//! form that calls, reads or renders; `overlays.rs` for what is drawn on top.

mod calls;
mod form;
mod library;
mod log;
mod news;
mod overlays;
mod plugins;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

pub use self::library::{LibraryPane, LibraryRow, Section};
pub use self::log::{LOG_LINES_KEPT, LogPane};
pub use self::overlays::{CallDetailView, Overlay, ReportView};
pub use self::plugins::{PluginRow, PluginsPane};
use super::calls::{CALLS_KEPT, CallLog};
use super::event::ConsoleEvent;
use super::form::CallForm;
use super::keymap::{self, Binding, Command, Key, Mode};
use super::layout::{self, Areas};
use super::theme::Theme;
use crate::control::{Request, ServerSummary};
use crate::operations::Phase;
use crate::registry::RunningCall;

/// What the loop must do for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop the console (and, for the owner console, the server).
    Quit,
    /// Stop the process until `fg` (Ctrl-Z).
    Suspend,
    /// Send `request` to the server; its reply comes back with `id`.
    Request { id: u64, request: Request },
}

/// Whose console this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The console of the process that runs the server: quitting stops it.
    Owner,
    /// A console attached to a server that runs on its own: quitting detaches.
    Attached,
}

/// How the console stands with its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Before the first welcome.
    Connecting,
    Attached,
    /// The connection is gone; what is on screen is as it was then.
    Lost {
        reason: String,
        retrying: bool,
    },
}

/// How the call log writes times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WallClock {
    /// The machine's time zone.
    Local,
    /// UTC: the same on every machine, for the snapshot tests.
    #[cfg_attr(not(test), expect(dead_code))]
    Utc,
}

/// The server as last heard of.
#[derive(Debug, Clone)]
pub struct ServerView {
    pub summary: ServerSummary,
    /// When the server started, on this machine's clock.
    pub started: Instant,
}

/// The four panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Plugins,
    Calls,
    Log,
    /// Resources and prompts.
    Library,
}

impl Pane {
    /// In the order of their numbers (and of Tab).
    pub const ALL: [Pane; 4] = [Pane::Plugins, Pane::Calls, Pane::Log, Pane::Library];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Plugins => "Plugins",
            Pane::Calls => "Calls",
            Pane::Log => "Server log",
            Pane::Library => "Resources & prompts",
        }
    }

    /// A short title, where four must fit on one line.
    pub fn short_title(self) -> &'static str {
        match self {
            Pane::Plugins => "Plugins",
            Pane::Calls => "Calls",
            Pane::Log => "Log",
            Pane::Library => "Resources",
        }
    }

    pub fn number(self) -> usize {
        match self {
            Pane::Plugins => 1,
            Pane::Calls => 2,
            Pane::Log => 3,
            Pane::Library => 4,
        }
    }
}

/// What fills the body of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// The panes, the focused one taking the keys.
    Panes,
    /// The panes, with a call-log filter being typed in the hint bar.
    Filter(String),
    /// The form of a tool, resource or prompt (by `FormTarget::key`).
    Form(String),
}

/// A short message in the hint bar, until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

impl Notice {
    pub fn info(text: impl Into<String>) -> Option<Self> {
        Some(Self {
            text: text.into(),
            is_error: false,
        })
    }

    pub fn error(text: impl Into<String>) -> Option<Self> {
        Some(Self {
            text: text.into(),
            is_error: true,
        })
    }
}

/// The server's counters as shown in the header.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: u64,
    pub errors: u64,
    pub in_flight: u64,
    /// Busy instances by plugin.
    pub busy: BTreeMap<String, usize>,
    /// Calls running now that reported progress (the calls pane shows them).
    pub progress: Vec<RunningCall>,
    /// MCP sessions open.
    pub sessions: u64,
    /// Requests the rate limit refused since the server started.
    pub rate_limited: u64,
    /// What the server is doing: serving, loading, draining.
    pub phase: Phase,
    pub calls_per_second: f64,
    /// Events the console lost by falling behind.
    pub dropped: u64,
    /// The start of the current rate window: (when, calls then).
    window: Option<(Instant, u64)>,
}

/// The tokens, once asked for with `t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub mcp: Option<String>,
    pub admin: Option<String>,
}

/// What a request in flight was for, to route its reply.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    /// A call, read or render from the form kept under `form`.
    Form {
        form: String,
    },
    /// A reload of one plugin, or (`None`) of plugins.yml.
    Reload {
        plugin: Option<String>,
    },
    /// A call's payloads, to show it (`replay`: to replay it in its form).
    Detail {
        call: u64,
        replay: bool,
    },
    Tokens,
}

/// The whole state of the console.
pub struct App {
    pub role: Role,
    /// Where the server is, for the operator (a socket path, a URL…).
    pub target: String,
    pub connection: Connection,
    /// The server, once its welcome arrived.
    pub server: Option<ServerView>,
    pub theme: Theme,
    pub clock: WallClock,
    /// The terminal's size.
    pub size: Rect,
    /// The clock, as of the last tick.
    pub now: Instant,
    pub focus: Pane,
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub plugins: PluginsPane,
    pub library: LibraryPane,
    pub calls: CallLog,
    pub log: LogPane,
    pub stats: Stats,
    /// Every form opened so far, by `FormTarget::key`: drafts survive leaving.
    pub forms: HashMap<String, CallForm>,
    /// The tokens while shown (`t`).
    pub tokens: Option<Tokens>,
    pub notice: Option<Notice>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    /// Whether something visible changed since the last frame.
    dirty: bool,
}

impl App {
    pub fn new(role: Role, target: String, theme: Theme, clock: WallClock, size: Rect) -> Self {
        Self {
            role,
            target,
            connection: Connection::Connecting,
            server: None,
            theme,
            clock,
            size,
            now: Instant::now(),
            focus: Pane::Plugins,
            screen: Screen::Panes,
            overlay: None,
            plugins: PluginsPane::default(),
            library: LibraryPane::default(),
            calls: CallLog::new(CALLS_KEPT),
            log: LogPane::new(LOG_LINES_KEPT),
            stats: Stats::default(),
            forms: HashMap::new(),
            tokens: None,
            notice: None,
            pending: HashMap::new(),
            next_request: 1,
            dirty: true,
        }
    }

    /// Whether a redraw is due, clearing the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The groups of keys that apply now, most specific first.
    pub fn modes(&self) -> &'static [Mode] {
        if let Some(overlay) = &self.overlay {
            return overlay.modes();
        }
        match self.screen {
            Screen::Form(_) => &[Mode::Form, Mode::Always],
            Screen::Filter(_) => &[Mode::Filter, Mode::Always],
            Screen::Panes => match self.focus {
                Pane::Plugins => &[Mode::Plugins, Mode::Lists, Mode::Global, Mode::Always],
                Pane::Calls => &[Mode::Calls, Mode::Lists, Mode::Global, Mode::Always],
                Pane::Log => &[Mode::Log, Mode::Lists, Mode::Global, Mode::Always],
                Pane::Library => &[Mode::Library, Mode::Lists, Mode::Global, Mode::Always],
            },
        }
    }

    /// The word a key shows in the hint bar here: quitting an attached
    /// console only detaches it, and it says so.
    pub fn hint(&self, binding: &Binding) -> &'static str {
        match (binding.command, self.role) {
            (Command::Quit, Role::Attached) => "detach",
            _ => binding.hint.unwrap_or_default(),
        }
    }

    /// The layout of the screen now.
    pub fn areas(&self) -> Areas {
        layout::areas(self.size, self.header_rows(), self.focus)
    }

    /// Rows the header takes: two, plus one per token shown.
    pub fn header_rows(&self) -> u16 {
        let shown = self.tokens.as_ref().map_or(0, |tokens| {
            u16::from(tokens.mcp.is_some()) + u16::from(tokens.admin.is_some())
        });
        2 + shown
    }

    /// Inner heights of the panes in the current layout.
    pub fn plugins_height(&self) -> usize {
        self.areas().pane_height(Pane::Plugins)
    }

    pub fn calls_height(&self) -> usize {
        // One row for the column headings.
        self.areas().pane_height(Pane::Calls).saturating_sub(1)
    }

    pub fn log_height(&self) -> usize {
        self.areas().pane_height(Pane::Log)
    }

    pub fn library_height(&self) -> usize {
        self.areas().pane_height(Pane::Library)
    }

    /// How long the server has been up.
    pub fn uptime(&self) -> Duration {
        self.server.as_ref().map_or(Duration::ZERO, |server| {
            self.now.saturating_duration_since(server.started)
        })
    }

    /// Handle one event.
    pub fn update(&mut self, event: ConsoleEvent) -> Option<Action> {
        // Ticks redraw only when they show a change; every other event
        // changes what is on screen.
        self.dirty |= !matches!(event, ConsoleEvent::Tick(_));
        match event {
            ConsoleEvent::Key(key) => self.on_key(key),
            ConsoleEvent::Paste(text) => {
                self.on_paste(&text);
                None
            }
            ConsoleEvent::Resize(columns, rows) => {
                self.size = Rect::new(0, 0, columns, rows);
                self.keep_plugin_selection_visible();
                self.keep_library_selection_visible();
                None
            }
            ConsoleEvent::Tick(now) => {
                self.on_tick(now);
                None
            }
            ConsoleEvent::Attached { welcome, at } => {
                self.on_welcome(*welcome, at);
                None
            }
            ConsoleEvent::Updates { updates, at } => {
                for update in updates {
                    self.on_update(update, at);
                }
                None
            }
            ConsoleEvent::Reply { id, reply } => {
                self.on_reply(id, reply);
                None
            }
            ConsoleEvent::Disconnected { reason, retrying } => {
                self.on_disconnected(reason, retrying);
                None
            }
        }
    }

    fn on_key(&mut self, event: KeyEvent) -> Option<Action> {
        if event.kind != KeyEventKind::Press {
            return None;
        }
        // Esc and a key typed quickly after it arrive as one Alt chord (tmux
        // turns them into one within its escape-time). The console binds no
        // Alt chord, so take it for what the operator typed: Esc, then the key.
        if let KeyCode::Char(_) = event.code
            && event.modifiers.contains(KeyModifiers::ALT)
            && !event.modifiers.contains(KeyModifiers::CONTROL)
        {
            let escape = self.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            let mut key = event;
            key.modifiers.remove(KeyModifiers::ALT);
            let typed = self.on_key(key);
            return escape.or(typed);
        }
        self.notice = None;
        let key = Key::from_event(&event);
        #[cfg(debug_assertions)]
        if key == keymap::DEBUG_PANIC_KEY && std::env::var_os("WASIMANCER_DEBUG_PANIC").is_some() {
            panic!("the console panicked on purpose (debug builds, WASIMANCER_DEBUG_PANIC)");
        }
        match keymap::lookup(self.modes(), key) {
            Some(command) => self.run(command),
            None => {
                self.type_key(event, key);
                None
            }
        }
    }

    /// A key no binding claims: text for the filter prompt or the editor.
    fn type_key(&mut self, event: KeyEvent, key: Key) {
        if self.overlay.is_some() {
            return;
        }
        match &mut self.screen {
            Screen::Filter(text) => match key {
                Key::Char(c) => text.push(c),
                Key::Backspace => {
                    text.pop();
                }
                _ => {}
            },
            Screen::Form(_) => self.type_in_form(event),
            Screen::Panes => {}
        }
    }

    fn on_paste(&mut self, text: &str) {
        if self.overlay.is_some() {
            return;
        }
        // Terminals send line breaks in a paste as CR.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        match &mut self.screen {
            Screen::Filter(filter) => filter.push_str(text.lines().next().unwrap_or_default()),
            Screen::Form(_) => self.paste_in_form(&text),
            Screen::Panes => {}
        }
    }

    fn run(&mut self, command: Command) -> Option<Action> {
        match command {
            Command::Quit | Command::Confirm => return self.quit(command),
            Command::Help => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help { .. }) => None,
                    _ => Some(Overlay::Help { scroll: 0 }),
                };
            }
            Command::Suspend => return Some(Action::Suspend),
            Command::NextPane | Command::PreviousPane => {
                let index = Pane::ALL.iter().position(|p| *p == self.focus).unwrap_or(0);
                let step = if command == Command::NextPane {
                    1
                } else {
                    Pane::ALL.len() - 1
                };
                self.focus = Pane::ALL[(index + step) % Pane::ALL.len()];
            }
            Command::FocusPlugins => self.focus = Pane::Plugins,
            Command::FocusCalls => self.focus = Pane::Calls,
            Command::FocusLog => self.focus = Pane::Log,
            Command::FocusLibrary => self.focus = Pane::Library,
            Command::RevealTokens => return self.toggle_tokens(),
            Command::Up => self.move_by(-1),
            Command::Down => self.move_by(1),
            Command::PageUp => self.move_by(-(self.page() as isize)),
            Command::PageDown => self.move_by(self.page() as isize),
            Command::Top => self.move_to_end(false),
            Command::Bottom => self.move_to_end(true),
            Command::Open => {
                return match self.focus {
                    Pane::Plugins => self.open_plugin_row(),
                    Pane::Calls => self.open_call(),
                    Pane::Log => None,
                    Pane::Library => self.open_library_row(),
                };
            }
            Command::Back => self.back(),
            Command::Filter => self.start_filter(),
            Command::ApplyFilter => self.apply_filter(),
            Command::ClearFilter => self.screen = Screen::Filter(String::new()),
            Command::ReloadPlugin => return self.reload_selected(),
            Command::ReloadAll => {
                self.notice = Notice::info("re-reading plugins.yml…");
                return self.request(Request::ReloadAll, Pending::Reload { plugin: None });
            }
            Command::ToggleFollow => match self.focus {
                Pane::Calls => self.calls.toggle_follow(self.calls_height()),
                Pane::Log => self.log.toggle_follow(self.log_height()),
                Pane::Plugins | Pane::Library => {}
            },
            Command::Clear => match self.focus {
                Pane::Calls => self.calls.clear(),
                Pane::Log => self.log.clear(),
                Pane::Plugins | Pane::Library => {}
            },
            Command::Replay => return self.replay(),
            Command::Send => return self.send(),
            Command::HistoryPrevious | Command::HistoryNext => {
                self.browse_history(command == Command::HistoryPrevious)
            }
            Command::ResetDraft => self.reset_draft(),
        }
        None
    }

    /// Ask the server for something; the reply is routed by `pending`.
    fn request(&mut self, request: Request, pending: Pending) -> Option<Action> {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, pending);
        Some(Action::Request { id, request })
    }

    fn quit(&mut self, command: Command) -> Option<Action> {
        // Detaching costs the server nothing; stopping it fails its calls.
        let confirming = matches!(self.overlay, Some(Overlay::ConfirmQuit));
        if self.role == Role::Attached
            || confirming
            || command == Command::Confirm
            || self.stats.in_flight == 0
        {
            return Some(Action::Quit);
        }
        self.overlay = Some(Overlay::ConfirmQuit);
        None
    }

    /// Esc: close what is on top, never destroying anything.
    fn back(&mut self) {
        if self.overlay.take().is_none() {
            self.screen = Screen::Panes;
        }
    }

    fn toggle_tokens(&mut self) -> Option<Action> {
        if self.tokens.take().is_some() {
            return None;
        }
        self.request(Request::Tokens, Pending::Tokens)
    }

    fn page(&self) -> usize {
        match self.focus {
            Pane::Plugins => self.plugins_height(),
            Pane::Calls => self.calls_height(),
            Pane::Log => self.log_height(),
            Pane::Library => self.library_height(),
        }
        .saturating_sub(1)
        .max(1)
    }

    fn move_by(&mut self, delta: isize) {
        if let Some(scroll) = self.overlay.as_mut().and_then(Overlay::scroll) {
            *scroll = scroll.saturating_add_signed(delta.clamp(-1000, 1000) as i16);
            return;
        }
        if self.scroll_form(delta) {
            return;
        }
        match self.focus {
            Pane::Plugins => self.move_plugin_selection(delta),
            Pane::Calls => {
                let height = self.calls_height();
                self.calls.move_selection(delta, height);
            }
            Pane::Log => {
                let height = self.log_height();
                self.log.move_selection(delta, height);
            }
            Pane::Library => self.move_library_selection(delta),
        }
    }

    fn move_to_end(&mut self, bottom: bool) {
        if let Some(scroll) = self.overlay.as_mut().and_then(Overlay::scroll) {
            *scroll = if bottom { u16::MAX / 2 } else { 0 };
            return;
        }
        match (self.focus, bottom) {
            (Pane::Plugins, false) => self.move_plugin_selection(isize::MIN / 2),
            (Pane::Plugins, true) => self.move_plugin_selection(isize::MAX / 2),
            (Pane::Calls, false) => self.calls.select_first(),
            (Pane::Calls, true) => self.calls.follow_tail(),
            (Pane::Log, false) => self.log.select_first(),
            (Pane::Log, true) => self.log.follow_tail(),
            (Pane::Library, false) => self.move_library_selection(isize::MIN / 2),
            (Pane::Library, true) => self.move_library_selection(isize::MAX / 2),
        }
    }
}

#[cfg(test)]
mod tests;
