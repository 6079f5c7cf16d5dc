//! The operator console: a live dashboard of the server in the terminal.
//!
//! It runs on a thread of its own (drawing is blocking terminal I/O) and
//! only reads from the server: the event bus without waiting on it (a reader
//! that polls registers no waker, so publishing a call record costs the
//! server nothing more when the console is up), the registry's snapshot and
//! counters, and the log buffer. Calls and reloads it starts run on the
//! server's runtime and report back through a channel.
//!
//! The loop waits for input, a message, or the next look at the server
//! (every [`POLL`]); drains everything queued; and redraws only when
//! something visible changed, at most once per [`FRAME`].

mod app;
mod calls;
mod event;
mod form;
mod format;
mod keymap;
mod terminal;
mod theme;
mod ui;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod ui_tests;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::layout::Rect;
use tokio_util::sync::CancellationToken;

use self::app::{Action, App, ServerInfo, WallClock};
use self::event::{ConsoleEvent, Counters, InputReader, Message};
use self::terminal::{TerminalError, TerminalGuard};
use self::theme::Theme;
use crate::events::{CallSource, EventReader, Received};
use crate::http::Token;
use crate::logging::LogBuffer;
use crate::registry::Registry;

/// The shortest time between two frames: at most 10 a second. Under load
/// every frame repaints the call log, and each costs the terminal (tmux, an
/// SSH link) more than it costs us.
const FRAME: Duration = Duration::from_millis(100);
/// How often the console looks at the server when nothing else wakes it.
const POLL: Duration = Duration::from_millis(100);
/// The most bus events handled before a frame may be drawn; the rest wait
/// for the next turn, so a flood never starves the screen.
const EVENTS_PER_TURN: usize = 50_000;

/// Everything the console needs from the running server.
pub struct ConsoleContext {
    pub registry: Registry,
    /// Where the server listens.
    pub address: SocketAddr,
    /// The MCP bearer token (`None`: authentication is off).
    pub mcp_token: Option<Token>,
    /// The admin API token (`None`: the admin API is off).
    pub admin_token: Option<Token>,
    /// The server log, shown in a pane.
    pub log: LogBuffer,
    pub no_color: bool,
    /// When the server started, for the uptime.
    pub started: Instant,
    /// The server's runtime, to run calls and reloads from the console.
    pub runtime: tokio::runtime::Handle,
    /// Cancelled when the terminal hangs up (SIGHUP): the console stops and
    /// the server keeps serving.
    pub hangup: CancellationToken,
    /// Cancelled when the server is stopping for another reason (SIGTERM,
    /// SIGINT): the console closes too.
    pub shutdown: CancellationToken,
}

/// Why the console stopped.
#[derive(Debug)]
pub enum ConsoleExit {
    /// The operator quit: stop the server too.
    Quit,
    /// The terminal went away (hang-up, write error): keep serving.
    TerminalLost(String),
}

/// Run the console on the current thread until the operator quits or the
/// terminal goes away.
pub fn run(context: ConsoleContext) -> ConsoleExit {
    let mut guard = match TerminalGuard::enter() {
        Ok(guard) => guard,
        Err(error) => return ConsoleExit::TerminalLost(error.to_string()),
    };
    let (sender, receiver) = mpsc::channel();
    let input = match InputReader::spawn(sender.clone()) {
        Ok(input) => input,
        Err(error) => {
            return ConsoleExit::TerminalLost(format!(
                "cannot start reading the terminal: {error}"
            ));
        }
    };
    let size = terminal_size(&mut guard);
    let info = ServerInfo {
        address: context.address,
        mcp_token: context.mcp_token.clone(),
        admin_token: context.admin_token.clone(),
        started: context.started,
        version: env!("CARGO_PKG_VERSION"),
        clock: WallClock::Local,
    };
    let app = App::new(info, Theme::new(context.no_color), size);
    let feed = ServerFeed::new(&context.registry, context.log.clone());
    let mut console = Console {
        app,
        feed,
        context,
        sender,
    };
    let exit = console.run(&mut guard, &receiver);
    drop(input);
    drop(guard);
    exit
}

fn terminal_size(guard: &mut TerminalGuard) -> Rect {
    guard
        .terminal()
        .size()
        .map(|size| Rect::new(0, 0, size.width, size.height))
        .unwrap_or_else(|_| Rect::new(0, 0, 80, 24))
}

/// What the console reads from the server, without ever waiting on it.
struct ServerFeed {
    registry: Registry,
    events: Option<EventReader>,
    log: LogBuffer,
    log_seen: u64,
    generation: Option<u64>,
}

impl ServerFeed {
    fn new(registry: &Registry, log: LogBuffer) -> Self {
        Self {
            registry: registry.clone(),
            events: Some(registry.bus().subscribe()),
            log,
            log_seen: 0,
            generation: None,
        }
    }

    /// Hand everything new to `app`.
    fn drain(&mut self, app: &mut App) {
        let snapshot = self.registry.snapshot();
        if self.generation != Some(snapshot.generation) {
            self.generation = Some(snapshot.generation);
            app.update(ConsoleEvent::Snapshot(snapshot));
        }
        if let Some(events) = &mut self.events {
            for _ in 0..EVENTS_PER_TURN {
                match events.try_recv() {
                    None => break,
                    Some(Received::Event(event)) => {
                        app.update(ConsoleEvent::Server(event));
                    }
                    Some(Received::Dropped(count)) => {
                        app.update(ConsoleEvent::Dropped(count));
                    }
                    Some(Received::Closed) => {
                        self.events = None;
                        break;
                    }
                }
            }
        }
        let (lines, seen) = self.log.since(self.log_seen);
        self.log_seen = seen;
        if !lines.is_empty() {
            app.update(ConsoleEvent::LogLines(lines));
        }
        let metrics = self.registry.metrics();
        use std::sync::atomic::Ordering::Relaxed;
        app.update(ConsoleEvent::Counters(Counters {
            at: Instant::now(),
            calls: metrics.calls.load(Relaxed),
            errors: metrics.errors.load(Relaxed),
            in_flight: metrics.in_flight.load(Relaxed),
        }));
    }
}

struct Console {
    app: App,
    feed: ServerFeed,
    context: ConsoleContext,
    /// For the tasks the console starts to report back.
    sender: Sender<Message>,
}

impl Console {
    fn run(&mut self, guard: &mut TerminalGuard, receiver: &Receiver<Message>) -> ConsoleExit {
        let mut last_frame: Option<Instant> = None;
        let mut redraw = true;
        loop {
            let wait = match (redraw, last_frame) {
                (true, Some(last)) => (last + FRAME).saturating_duration_since(Instant::now()),
                (true, None) => Duration::ZERO,
                (false, _) => POLL,
            };
            let first = match receiver.recv_timeout(wait) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                // The console holds a sender: this cannot happen, but if it
                // did, there would be no more input.
                Err(RecvTimeoutError::Disconnected) => {
                    return ConsoleExit::TerminalLost("the input reader stopped".into());
                }
            };
            for message in first.into_iter().chain(receiver.try_iter()) {
                if let Some(exit) = self.handle(message, guard) {
                    return exit;
                }
            }
            if self.context.hangup.is_cancelled() {
                return ConsoleExit::TerminalLost("the terminal hung up (SIGHUP)".into());
            }
            if self.context.shutdown.is_cancelled() {
                return ConsoleExit::Quit;
            }
            self.feed.drain(&mut self.app);
            if let Some((columns, rows)) = event::window_size()
                && (columns, rows) != (self.app.size.width, self.app.size.height)
            {
                self.app.update(ConsoleEvent::Resize(columns, rows));
            }
            redraw |= self.app.take_dirty();
            let due = last_frame.is_none_or(|last| last.elapsed() >= FRAME);
            if redraw && due {
                if let Err(error) = guard.draw(|frame| ui::render(&self.app, frame)) {
                    return ConsoleExit::TerminalLost(error.to_string());
                }
                last_frame = Some(Instant::now());
                redraw = false;
            }
        }
    }

    /// Handle one message; `Some` ends the console.
    fn handle(&mut self, message: Message, guard: &mut TerminalGuard) -> Option<ConsoleExit> {
        let event = match message {
            Message::Event(event) => event,
            Message::TerminalLost(reason) => return Some(ConsoleExit::TerminalLost(reason)),
        };
        let mut next = self.app.update(event);
        while let Some(action) = next.take() {
            next = match self.perform(action, guard) {
                Ok(next) => next,
                Err(exit) => return Some(exit),
            };
        }
        None
    }

    /// Do what the app asked; an action may lead to an event straight away.
    fn perform(
        &mut self,
        action: Action,
        guard: &mut TerminalGuard,
    ) -> Result<Option<Action>, ConsoleExit> {
        match action {
            Action::Quit => return Err(ConsoleExit::Quit),
            Action::Suspend => {
                guard
                    .suspend()
                    .map_err(|error: TerminalError| ConsoleExit::TerminalLost(error.to_string()))?;
                let size = terminal_size(guard);
                return Ok(self
                    .app
                    .update(ConsoleEvent::Resize(size.width, size.height)));
            }
            Action::Call {
                tool,
                request,
                arguments,
            } => {
                let registry = self.context.registry.clone();
                let sender = self.sender.clone();
                self.context.runtime.spawn(async move {
                    let result = registry
                        .call(CallSource::Console, &tool, Some(arguments))
                        .await;
                    let _ = sender.send(Message::Event(ConsoleEvent::CallFinished {
                        tool,
                        request,
                        result,
                    }));
                });
            }
            Action::ReloadPlugin(plugin) => {
                let registry = self.context.registry.clone();
                let sender = self.sender.clone();
                self.context.runtime.spawn(async move {
                    let result = registry
                        .reload_plugin(&plugin, "console")
                        .await
                        .map_err(|error| error.to_string());
                    let _ = sender.send(Message::Event(ConsoleEvent::ReloadFinished {
                        plugin: Some(plugin),
                        result,
                    }));
                });
            }
            Action::ReloadAll => {
                let registry = self.context.registry.clone();
                let sender = self.sender.clone();
                self.context.runtime.spawn(async move {
                    let result = registry
                        .reload_all("console")
                        .await
                        .map_err(|error| error.to_string());
                    let _ = sender.send(Message::Event(ConsoleEvent::ReloadFinished {
                        plugin: None,
                        result,
                    }));
                });
            }
            Action::FetchDetail(call_id) => {
                // A short lock on a small side store: fine on this thread.
                let detail = self.context.registry.call_detail(call_id);
                return Ok(self.app.update(ConsoleEvent::Detail { call_id, detail }));
            }
        }
        Ok(None)
    }
}
