//! The console's state and how events change it. [`App::update`] does no
//! I/O: what needs the outside world (a call, a reload, quitting) comes back
//! as an [`Action`] for the loop to perform, so every behaviour here can be
//! tested from a sequence of events.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;
use serde_json::{Map, Value};

use super::calls::{CallFilter, CallLog, CallRow};
use super::event::{ConsoleEvent, Counters};
use super::form::{CallForm, EditorStyles, FormOutcome, Validation, pretty};
use super::keymap::{self, Command, Key, Mode};
use super::theme::Theme;
use super::ui;
use crate::catalog::FunctionSpec;
use crate::events::{Change, ServerEvent};
use crate::http::Token;
use crate::registry::{CallDetail, ChangeReport, PluginEntry, Snapshot, Tool};

/// How many server log lines the log pane keeps.
const LOG_LINES_KEPT: usize = 2000;

/// What the loop must do for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop the console and the server.
    Quit,
    /// Stop the process until `fg` (Ctrl-Z).
    Suspend,
    /// Call `tool` from the console.
    Call {
        tool: String,
        request: u64,
        arguments: Map<String, Value>,
    },
    ReloadPlugin(String),
    ReloadAll,
    /// Fetch the full payloads of a call.
    FetchDetail(u64),
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

/// What the app shows about the server and never changes.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub address: SocketAddr,
    pub mcp_token: Option<Token>,
    pub admin_token: Option<Token>,
    pub started: Instant,
    pub version: &'static str,
    pub clock: WallClock,
}

/// The three panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Plugins,
    Calls,
    Log,
}

impl Pane {
    pub const ALL: [Pane; 3] = [Pane::Plugins, Pane::Calls, Pane::Log];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Plugins => "Plugins",
            Pane::Calls => "Calls",
            Pane::Log => "Server log",
        }
    }

    pub fn number(self) -> usize {
        match self {
            Pane::Plugins => 1,
            Pane::Calls => 2,
            Pane::Log => 3,
        }
    }
}

/// A row of the plugin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginRow {
    Plugin {
        plugin: usize,
    },
    /// Why the plugin failed (or why its reload failed); not selectable.
    Reason {
        plugin: usize,
    },
    Function {
        plugin: usize,
        function: usize,
    },
}

impl PluginRow {
    pub fn plugin(self) -> usize {
        match self {
            PluginRow::Plugin { plugin }
            | PluginRow::Reason { plugin }
            | PluginRow::Function { plugin, .. } => plugin,
        }
    }

    fn selectable(self) -> bool {
        !matches!(self, PluginRow::Reason { .. })
    }
}

/// The functions a plugin serves: those of the version serving calls (after
/// a failed reload, the previous one), else those plugins.yml declares.
pub fn served_functions(entry: &PluginEntry) -> &[FunctionSpec] {
    match &entry.serving {
        Some(serving) => &serving.spec().functions,
        None => &entry.spec.functions,
    }
}

/// The plugins pane.
#[derive(Default)]
pub struct PluginsPane {
    pub snapshot: Option<Arc<Snapshot>>,
    pub rows: Vec<PluginRow>,
    pub selected: usize,
    pub top: usize,
    /// Plugins being reloaded now (from the bus's lifecycle events).
    pub reloading: BTreeSet<String>,
}

/// The server log pane.
#[derive(Default)]
pub struct LogPane {
    pub lines: VecDeque<String>,
    /// The number of the first kept line among all lines received.
    first: u64,
    pub follow: bool,
    /// The first line shown when frozen (a line number).
    top: u64,
}

impl LogPane {
    fn push(&mut self, lines: Vec<String>) {
        for line in lines {
            if self.lines.len() == LOG_LINES_KEPT {
                self.lines.pop_front();
                self.first += 1;
            }
            self.lines.push_back(line);
        }
    }

    /// The index of the first line shown in a view of `height`.
    pub fn top_index(&self, height: usize) -> usize {
        let bottom = self.lines.len().saturating_sub(height.max(1));
        if self.follow {
            bottom
        } else {
            (self.top.saturating_sub(self.first) as usize).min(bottom)
        }
    }

    /// Freeze the view where it is, or follow again.
    fn toggle_follow(&mut self, height: usize) {
        if self.follow {
            self.top = self.first + self.top_index(height) as u64;
            self.follow = false;
        } else {
            self.follow = true;
        }
    }

    /// Go to the oldest line and freeze.
    fn select_first(&mut self) {
        self.follow = false;
        self.top = self.first;
    }

    /// Forget every line (the view only) and follow.
    fn clear(&mut self) {
        self.first += self.lines.len() as u64;
        self.lines.clear();
        self.follow = true;
    }

    fn scroll(&mut self, delta: isize, height: usize) {
        let top = self.top_index(height).saturating_add_signed(delta);
        self.follow = false;
        self.top = self.first + top as u64;
        // Scrolling past the end follows again.
        if top >= self.lines.len().saturating_sub(height.max(1)) && delta > 0 {
            self.follow = true;
        }
    }
}

/// A call opened from the log.
pub struct CallDetailView {
    pub row: CallRow,
    /// The full payloads, once fetched (`None` while loading or when the
    /// server no longer has them).
    pub detail: Option<Arc<CallDetail>>,
    pub loading: bool,
    pub scroll: u16,
}

/// The outcome of a reload, shown until dismissed.
pub struct ReportView {
    pub plugin: Option<String>,
    pub result: Result<ChangeReport, String>,
    pub scroll: u16,
}

/// What is drawn over the panes or the form.
pub enum Overlay {
    Help { scroll: u16 },
    CallDetail(CallDetailView),
    PluginDetail { plugin: String, scroll: u16 },
    Report(ReportView),
    ConfirmQuit,
}

/// A short message in the hint bar, until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// The server's counters as shown in the header.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: u64,
    pub errors: u64,
    pub in_flight: u64,
    pub calls_per_second: f64,
    /// Events the console lost by falling behind the bus.
    pub dropped: u64,
    /// The start of the current rate window.
    window: Option<Counters>,
}

/// The whole state of the console.
pub struct App {
    pub info: ServerInfo,
    pub theme: Theme,
    /// The terminal's size.
    pub size: Rect,
    /// The clock, as of the last counters.
    pub now: Instant,
    pub focus: Pane,
    pub plugins: PluginsPane,
    pub calls: CallLog,
    pub log: LogPane,
    pub stats: Stats,
    /// The tool whose form is open, if one is.
    pub form: Option<String>,
    /// Every form opened so far, by tool name: drafts survive leaving.
    pub forms: HashMap<String, CallForm>,
    pub overlay: Option<Overlay>,
    /// The filter being typed after `/`.
    pub filter_input: Option<String>,
    pub reveal_tokens: bool,
    pub notice: Option<Notice>,
    /// The call whose form opens once its payloads arrive (`e` in the log).
    pending_replay: Option<u64>,
    next_request: u64,
    /// Whether something visible changed since the last frame.
    dirty: bool,
}

impl App {
    pub fn new(info: ServerInfo, theme: Theme, size: Rect) -> Self {
        let now = info.started;
        Self {
            info,
            theme,
            size,
            now,
            focus: Pane::Plugins,
            plugins: PluginsPane::default(),
            calls: CallLog::default(),
            log: LogPane {
                follow: true,
                ..LogPane::default()
            },
            stats: Stats::default(),
            form: None,
            forms: HashMap::new(),
            overlay: None,
            filter_input: None,
            reveal_tokens: false,
            notice: None,
            pending_replay: None,
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
        match (&self.overlay, &self.form, &self.filter_input) {
            (Some(Overlay::ConfirmQuit), _, _) => &[Mode::ConfirmQuit, Mode::Always],
            (Some(Overlay::Help { .. }), _, _) => &[Mode::Help, Mode::Lists, Mode::Always],
            (Some(Overlay::CallDetail(_)), _, _) => &[Mode::CallDetail, Mode::Lists, Mode::Always],
            (Some(Overlay::PluginDetail { .. }), _, _) => {
                &[Mode::PluginDetail, Mode::Lists, Mode::Always]
            }
            (Some(Overlay::Report(_)), _, _) => &[Mode::Report, Mode::Lists, Mode::Always],
            (None, Some(_), _) => &[Mode::Form, Mode::Always],
            (None, None, Some(_)) => &[Mode::Filter, Mode::Always],
            (None, None, None) => match self.focus {
                Pane::Plugins => &[Mode::Plugins, Mode::Lists, Mode::Global, Mode::Always],
                Pane::Calls => &[Mode::Calls, Mode::Lists, Mode::Global, Mode::Always],
                Pane::Log => &[Mode::Log, Mode::Lists, Mode::Global, Mode::Always],
            },
        }
    }

    /// The open form, if any.
    pub fn open_form(&self) -> Option<&CallForm> {
        self.form.as_ref().and_then(|tool| self.forms.get(tool))
    }

    fn open_form_mut(&mut self) -> Option<&mut CallForm> {
        let tool = self.form.as_ref()?;
        self.forms.get_mut(tool)
    }

    /// Handle one event.
    pub fn update(&mut self, event: ConsoleEvent) -> Option<Action> {
        // Log lines and counters redraw only when they show a change; every
        // other event changes what is on screen.
        self.dirty |= !matches!(event, ConsoleEvent::LogLines(_) | ConsoleEvent::Counters(_));
        match event {
            ConsoleEvent::Key(key) => self.on_key(key),
            ConsoleEvent::Paste(text) => {
                self.on_paste(&text);
                None
            }
            ConsoleEvent::Resize(columns, rows) => {
                self.size = Rect::new(0, 0, columns, rows);
                None
            }
            ConsoleEvent::Server(event) => {
                self.on_server_event(event);
                None
            }
            ConsoleEvent::Dropped(count) => {
                self.stats.dropped += count;
                None
            }
            ConsoleEvent::Snapshot(snapshot) => {
                self.set_snapshot(snapshot);
                None
            }
            ConsoleEvent::LogLines(lines) => {
                self.dirty |= !lines.is_empty();
                self.log.push(lines);
                None
            }
            ConsoleEvent::Counters(counters) => {
                self.on_counters(counters);
                None
            }
            ConsoleEvent::CallFinished {
                tool,
                request,
                result,
            } => {
                if let Some(form) = self.forms.get_mut(&tool)
                    && form.request == Some(request)
                {
                    form.outcome_scroll = 0;
                    form.outcome = Some(match result {
                        Ok(reply) => FormOutcome::Ok {
                            call_id: reply.call_id,
                            text: pretty(&reply.text),
                        },
                        Err(failure) => FormOutcome::Failed {
                            kind: failure.kind,
                            message: failure.message,
                        },
                    });
                }
                None
            }
            ConsoleEvent::ReloadFinished { plugin, result } => {
                if let Some(name) = &plugin {
                    self.plugins.reloading.remove(name);
                } else if result.is_err() {
                    self.plugins.reloading.clear();
                }
                self.notice = None;
                self.overlay = Some(Overlay::Report(ReportView {
                    plugin,
                    result,
                    scroll: 0,
                }));
                None
            }
            ConsoleEvent::Detail { call_id, detail } => {
                self.on_detail(call_id, detail);
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
        if let Some(filter) = &mut self.filter_input {
            match key {
                Key::Char(c) => filter.push(c),
                Key::Backspace => {
                    filter.pop();
                }
                _ => {}
            }
            return;
        }
        if let Some(form) = self.open_form_mut()
            && form.editor.input(event)
        {
            form.edited();
        }
    }

    fn on_paste(&mut self, text: &str) {
        if self.overlay.is_some() {
            return;
        }
        // Terminals send line breaks in a paste as CR.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        if let Some(filter) = &mut self.filter_input {
            filter.push_str(text.lines().next().unwrap_or_default());
        } else if let Some(form) = self.open_form_mut() {
            form.editor.insert_str(&text);
            form.edited();
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
                let step = if command == Command::NextPane { 1 } else { 2 };
                self.focus = Pane::ALL[(index + step) % Pane::ALL.len()];
            }
            Command::FocusPlugins => self.focus = Pane::Plugins,
            Command::FocusCalls => self.focus = Pane::Calls,
            Command::FocusLog => self.focus = Pane::Log,
            Command::RevealTokens => self.reveal_tokens = !self.reveal_tokens,
            Command::Up => self.move_by(-1),
            Command::Down => self.move_by(1),
            Command::PageUp => self.move_by(-(self.page() as isize)),
            Command::PageDown => self.move_by(self.page() as isize),
            Command::Top => self.move_to_end(false),
            Command::Bottom => self.move_to_end(true),
            Command::Open => return self.open(),
            Command::Back => self.back(),
            Command::Filter => {
                self.filter_input = Some(self.calls.filter().text().to_string());
            }
            Command::ApplyFilter => {
                if let Some(text) = self.filter_input.take() {
                    self.calls.set_filter(CallFilter::parse(&text));
                }
            }
            Command::ClearFilter => self.filter_input = Some(String::new()),
            Command::ReloadPlugin => return self.reload_selected(),
            Command::ReloadAll => {
                self.notice = Some(Notice {
                    text: "re-reading plugins.yml…".into(),
                    is_error: false,
                });
                return Some(Action::ReloadAll);
            }
            Command::ToggleFollow => match self.focus {
                Pane::Calls => self.calls.toggle_follow(self.calls_height()),
                Pane::Log => self.log.toggle_follow(self.log_height()),
                Pane::Plugins => {}
            },
            Command::Clear => match self.focus {
                Pane::Calls => self.calls.clear(),
                Pane::Log => self.log.clear(),
                Pane::Plugins => {}
            },
            Command::Replay => return self.replay(),
            Command::Send => return self.send(),
            Command::HistoryPrevious | Command::HistoryNext => {
                let older = command == Command::HistoryPrevious;
                if let Some(form) = self.open_form_mut()
                    && !form.browse_history(older)
                {
                    let text = if form.history.is_empty() {
                        "nothing sent from this form yet"
                    } else if older {
                        "no older arguments"
                    } else {
                        "back at the draft"
                    };
                    self.notice = Some(Notice {
                        text: text.into(),
                        is_error: false,
                    });
                }
            }
            Command::ResetDraft => {
                if let Some(form) = self.open_form_mut() {
                    let skeleton = form.tool.skeleton();
                    form.replace_text(&skeleton);
                    form.edited();
                }
            }
        }
        None
    }

    fn quit(&mut self, command: Command) -> Option<Action> {
        let confirming = matches!(self.overlay, Some(Overlay::ConfirmQuit));
        if confirming || command == Command::Confirm || self.stats.in_flight == 0 {
            return Some(Action::Quit);
        }
        self.overlay = Some(Overlay::ConfirmQuit);
        None
    }

    /// Esc: close what is on top, never destroying anything.
    fn back(&mut self) {
        if self.overlay.take().is_some() {
            return;
        }
        if self.form.take().is_some() {
            return;
        }
        self.filter_input = None;
    }

    fn page(&self) -> usize {
        match self.focus {
            Pane::Plugins => self.plugins_height(),
            Pane::Calls => self.calls_height(),
            Pane::Log => self.log_height(),
        }
        .saturating_sub(1)
        .max(1)
    }

    fn move_by(&mut self, delta: isize) {
        if let Some(scroll) = self.overlay_scroll() {
            *scroll = scroll.saturating_add_signed(delta.clamp(-1000, 1000) as i16);
            return;
        }
        if let Some(form) = self.open_form_mut() {
            form.outcome_scroll = form
                .outcome_scroll
                .saturating_add_signed(delta.clamp(-1000, 1000) as i16);
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
                self.log.scroll(delta, height);
            }
        }
    }

    fn move_to_end(&mut self, bottom: bool) {
        if let Some(scroll) = self.overlay_scroll() {
            *scroll = if bottom { u16::MAX / 2 } else { 0 };
            return;
        }
        match (self.focus, bottom) {
            (Pane::Plugins, false) => self.move_plugin_selection(isize::MIN / 2),
            (Pane::Plugins, true) => self.move_plugin_selection(isize::MAX / 2),
            (Pane::Calls, false) => self.calls.select_first(),
            (Pane::Calls, true) => self.calls.follow_tail(),
            (Pane::Log, false) => self.log.select_first(),
            (Pane::Log, true) => self.log.follow = true,
        }
    }

    fn overlay_scroll(&mut self) -> Option<&mut u16> {
        match self.overlay.as_mut()? {
            Overlay::Help { scroll }
            | Overlay::PluginDetail { scroll, .. }
            | Overlay::CallDetail(CallDetailView { scroll, .. })
            | Overlay::Report(ReportView { scroll, .. }) => Some(scroll),
            Overlay::ConfirmQuit => None,
        }
    }

    /// Inner heights of the panes in the current layout.
    pub fn plugins_height(&self) -> usize {
        ui::pane_height(self, Pane::Plugins)
    }

    pub fn calls_height(&self) -> usize {
        // One row for the column headings.
        ui::pane_height(self, Pane::Calls).saturating_sub(1)
    }

    pub fn log_height(&self) -> usize {
        ui::pane_height(self, Pane::Log)
    }

    // --- plugins -----------------------------------------------------------

    fn set_snapshot(&mut self, snapshot: Arc<Snapshot>) {
        let selected = self.selected_plugin_row_key();
        let mut rows = Vec::new();
        for (p, entry) in snapshot.plugins.iter().enumerate() {
            rows.push(PluginRow::Plugin { plugin: p });
            if entry.error.is_some() {
                rows.push(PluginRow::Reason { plugin: p });
            }
            for f in 0..served_functions(entry).len() {
                rows.push(PluginRow::Function {
                    plugin: p,
                    function: f,
                });
            }
        }
        // Forms follow the tools to their new versions.
        for (name, form) in &mut self.forms {
            if let Some(tool) = snapshot.tool(name) {
                form.set_tool(Arc::clone(tool));
            }
        }
        self.plugins.rows = rows;
        self.plugins.snapshot = Some(snapshot);
        self.plugins.selected = selected
            .and_then(|key| {
                self.plugins
                    .rows
                    .iter()
                    .position(|row| self.plugin_row_key(*row).as_ref() == Some(&key))
            })
            .unwrap_or(0)
            .min(self.plugins.rows.len().saturating_sub(1));
        self.keep_plugin_selection_visible();
    }

    /// A row's identity that survives a new snapshot: (plugin, function).
    fn plugin_row_key(&self, row: PluginRow) -> Option<(String, Option<String>)> {
        let snapshot = self.plugins.snapshot.as_ref()?;
        let entry = snapshot.plugins.get(row.plugin())?;
        let function = match row {
            PluginRow::Function { function, .. } => {
                Some(served_functions(entry).get(function)?.function.clone())
            }
            _ => None,
        };
        Some((entry.spec.name.clone(), function))
    }

    fn selected_plugin_row_key(&self) -> Option<(String, Option<String>)> {
        let row = *self.plugins.rows.get(self.plugins.selected)?;
        self.plugin_row_key(row)
    }

    fn move_plugin_selection(&mut self, delta: isize) {
        let rows = &self.plugins.rows;
        if rows.is_empty() {
            return;
        }
        let last = rows.len() - 1;
        let mut target = self.plugins.selected.saturating_add_signed(delta).min(last);
        // Skip the rows that cannot be selected, in the direction of travel.
        while !rows[target].selectable() {
            match (delta > 0, target) {
                (true, t) if t < last => target += 1,
                (false, t) if t > 0 => target -= 1,
                _ => {
                    target = self.plugins.selected;
                    break;
                }
            }
        }
        self.plugins.selected = target;
        self.keep_plugin_selection_visible();
    }

    fn keep_plugin_selection_visible(&mut self) {
        let height = self.plugins_height().max(1);
        let selected = self.plugins.selected;
        if selected < self.plugins.top {
            self.plugins.top = selected;
        } else if selected >= self.plugins.top + height {
            self.plugins.top = selected + 1 - height;
        }
        let bottom = self.plugins.rows.len().saturating_sub(height);
        self.plugins.top = self.plugins.top.min(bottom);
    }

    /// The name of the plugin of the selected row.
    pub fn selected_plugin(&self) -> Option<&str> {
        let snapshot = self.plugins.snapshot.as_ref()?;
        let row = self.plugins.rows.get(self.plugins.selected)?;
        snapshot
            .plugins
            .get(row.plugin())
            .map(|entry| entry.spec.name.as_str())
    }

    fn reload_selected(&mut self) -> Option<Action> {
        let name = match &self.overlay {
            Some(Overlay::PluginDetail { plugin, .. }) => plugin.clone(),
            _ => self.selected_plugin()?.to_string(),
        };
        self.overlay = None;
        self.plugins.reloading.insert(name.clone());
        self.notice = Some(Notice {
            text: format!("reloading {name}…"),
            is_error: false,
        });
        Some(Action::ReloadPlugin(name))
    }

    fn open(&mut self) -> Option<Action> {
        match self.focus {
            Pane::Plugins => {
                let snapshot = Arc::clone(self.plugins.snapshot.as_ref()?);
                let row = *self.plugins.rows.get(self.plugins.selected)?;
                let entry = snapshot.plugins.get(row.plugin())?;
                match row {
                    PluginRow::Function { function, .. } => {
                        let spec = served_functions(entry).get(function)?;
                        let name = spec.tool_name();
                        match snapshot.tool(&name) {
                            Some(tool) => self.open_form_for(Arc::clone(tool)),
                            None => {
                                self.notice = Some(Notice {
                                    text: format!(
                                        "`{name}` is not served: plugin {} failed to load (Enter on the plugin tells why)",
                                        entry.spec.name
                                    ),
                                    is_error: true,
                                })
                            }
                        }
                    }
                    PluginRow::Plugin { .. } | PluginRow::Reason { .. } => {
                        self.overlay = Some(Overlay::PluginDetail {
                            plugin: entry.spec.name.clone(),
                            scroll: 0,
                        });
                    }
                }
                None
            }
            Pane::Calls => {
                let row = self.calls.selected_row()?.clone();
                let id = row.call().id;
                self.overlay = Some(Overlay::CallDetail(CallDetailView {
                    row,
                    detail: None,
                    loading: true,
                    scroll: 0,
                }));
                Some(Action::FetchDetail(id))
            }
            Pane::Log => None,
        }
    }

    fn open_form_for(&mut self, tool: Arc<Tool>) {
        let name = tool.name.to_string();
        let styles = self.editor_styles();
        self.forms
            .entry(name.clone())
            .or_insert_with(|| CallForm::new(tool, styles));
        self.form = Some(name);
        self.filter_input = None;
    }

    fn editor_styles(&self) -> EditorStyles {
        EditorStyles {
            cursor: self.theme.selected,
            cursor_line: ratatui::style::Style::new(),
            line_number: self.theme.dim,
            selection: self.theme.selected,
        }
    }

    // --- calls -------------------------------------------------------------

    fn on_server_event(&mut self, event: Arc<ServerEvent>) {
        if let ServerEvent::Lifecycle(change) = &*event {
            if let Some(plugin) = &change.plugin {
                if change.change == Change::Reloading {
                    self.plugins.reloading.insert(plugin.clone());
                } else {
                    self.plugins.reloading.remove(plugin);
                }
            }
            return;
        }
        if let Some(row) = CallRow::new(event) {
            self.calls.push(row);
        }
    }

    fn replay(&mut self) -> Option<Action> {
        if let Some(Overlay::CallDetail(view)) = &self.overlay {
            let arguments = match &view.detail {
                Some(detail) => detail.arguments.clone(),
                None => view.row.call().arguments.clone(),
            };
            let tool = view.row.call().tool.to_string();
            self.overlay = None;
            self.replay_in_form(&tool, &arguments);
            return None;
        }
        let id = self.calls.selected_row()?.call().id;
        self.pending_replay = Some(id);
        Some(Action::FetchDetail(id))
    }

    fn on_detail(&mut self, call_id: u64, detail: Option<Arc<CallDetail>>) {
        if self.pending_replay == Some(call_id) {
            self.pending_replay = None;
            let row = self
                .calls
                .selected_row()
                .filter(|row| row.call().id == call_id)
                .cloned();
            let arguments = match (&detail, &row) {
                (Some(detail), _) => Some(detail.arguments.clone()),
                (None, Some(row)) => Some(row.call().arguments.clone()),
                (None, None) => None,
            };
            if let (Some(arguments), Some(row)) = (arguments, row) {
                let tool = row.call().tool.to_string();
                self.replay_in_form(&tool, &arguments);
            }
            return;
        }
        if let Some(Overlay::CallDetail(view)) = &mut self.overlay
            && view.row.call().id == call_id
        {
            view.detail = detail;
            view.loading = false;
        }
    }

    fn replay_in_form(&mut self, tool_name: &str, arguments: &str) {
        let tool = self
            .plugins
            .snapshot
            .as_ref()
            .and_then(|snapshot| snapshot.tool(tool_name))
            .cloned();
        let Some(tool) = tool else {
            self.notice = Some(Notice {
                text: format!("`{tool_name}` is not served now; cannot replay"),
                is_error: true,
            });
            return;
        };
        self.open_form_for(tool);
        if let Some(form) = self.open_form_mut() {
            form.replace_text(&pretty(arguments));
            form.edited();
        }
    }

    // --- the form ----------------------------------------------------------

    fn send(&mut self) -> Option<Action> {
        let request = self.next_request;
        let form = self.open_form_mut()?;
        let text = form.text();
        match super::form::validate(&form.tool, &text) {
            Ok(arguments) => {
                form.request = Some(request);
                form.outcome = Some(FormOutcome::Pending);
                form.outcome_scroll = 0;
                form.remember(text);
                let tool = form.tool.name.to_string();
                self.next_request += 1;
                Some(Action::Call {
                    tool,
                    request,
                    arguments,
                })
            }
            Err(problem) => {
                let text = match &problem {
                    Validation::Syntax { line, column, .. } => {
                        format!("not sent: the JSON has an error at line {line}, column {column}")
                    }
                    Validation::Schema(_) => {
                        "not sent: the arguments do not fit the tool (see below the editor)".into()
                    }
                    Validation::Valid => String::new(),
                };
                form.validation = problem;
                self.notice = Some(Notice {
                    text,
                    is_error: true,
                });
                None
            }
        }
    }

    // --- counters ----------------------------------------------------------

    fn on_counters(&mut self, counters: Counters) {
        let stats = &mut self.stats;
        let before = (stats.calls, stats.errors, stats.in_flight);
        stats.calls = counters.calls;
        stats.errors = counters.errors;
        stats.in_flight = counters.in_flight;
        let mut changed = before != (stats.calls, stats.errors, stats.in_flight);
        match stats.window {
            None => stats.window = Some(counters),
            Some(start) => {
                let elapsed = counters.at.saturating_duration_since(start.at);
                if elapsed >= Duration::from_secs(1) {
                    let rate =
                        counters.calls.saturating_sub(start.calls) as f64 / elapsed.as_secs_f64();
                    changed |= (rate - stats.calls_per_second).abs() > f64::EPSILON;
                    stats.calls_per_second = rate;
                    stats.window = Some(counters);
                }
            }
        }
        // The uptime shows seconds.
        let seconds = |at: Instant| at.saturating_duration_since(self.info.started).as_secs();
        changed |= seconds(counters.at) != seconds(self.now);
        self.now = counters.at;
        self.dirty |= changed;
    }

    /// How long the server has been up.
    pub fn uptime(&self) -> Duration {
        self.now.saturating_duration_since(self.info.started)
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
