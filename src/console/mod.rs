//! The operator console: a live dashboard of a server in the terminal.
//!
//! One console, wherever the server is: it talks to the server only through
//! the control protocol (see `control`), over a channel when it is the
//! console of the server's own process, over the Unix socket or HTTP when
//! it attaches to a server running on its own. The link to the server runs
//! on the async runtime; the console runs on a thread of its own (drawing is
//! blocking terminal I/O) and never holds up the server.
//!
//! The loop waits for input, news from the server, or the next tick (every
//! [`POLL`]); drains everything queued; and redraws only when something
//! visible changed, at most once per [`FRAME`].

mod app;
mod calls;
mod event;
mod form;
mod format;
mod keymap;
mod layout;
mod link;
mod scrollback;
mod terminal;
mod theme;
mod ui;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod ui_tests;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ratatui::layout::Rect;
use tokio_util::sync::CancellationToken;

pub use self::app::Role;
use self::app::{Action, App, WallClock};
use self::event::{ConsoleEvent, InputReader, Message};
use self::link::Link;
use self::terminal::{TerminalError, TerminalGuard};
use self::theme::Theme;
use crate::control::Target;

/// The shortest time between two frames: at most 10 a second. Under load
/// every frame repaints the call log, and each costs the terminal (tmux, an
/// SSH link) more than it costs us.
const FRAME: Duration = Duration::from_millis(100);
/// How often the loop looks at the clock when nothing else wakes it.
const POLL: Duration = Duration::from_millis(100);

/// How to run a console.
pub struct ConsoleOptions {
    /// Where the server is.
    pub target: Target,
    pub role: Role,
    pub no_color: bool,
    /// The runtime the link to the server runs on.
    pub runtime: tokio::runtime::Handle,
    /// Cancelled when the terminal hangs up (SIGHUP): the console stops.
    pub hangup: CancellationToken,
    /// Cancelled when the process is stopping (SIGTERM, SIGINT): the
    /// console closes too.
    pub shutdown: CancellationToken,
}

/// Why the console stopped.
#[derive(Debug)]
pub enum ConsoleExit {
    /// The operator quit (the owner console: stop the server too).
    Quit,
    /// The terminal went away (hang-up, write error).
    TerminalLost(String),
}

/// Run the console on the current thread until the operator quits or the
/// terminal goes away.
pub fn run(options: ConsoleOptions) -> ConsoleExit {
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
    let app = App::new(
        options.role,
        options.target.describe(),
        Theme::new(options.no_color),
        WallClock::Local,
        size,
    );
    let link = Link::start(options.target, &options.runtime, sender);
    let mut console = Console {
        app,
        link,
        hangup: options.hangup,
        shutdown: options.shutdown,
    };
    let exit = console.run(&mut guard, &receiver);
    drop(console);
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

struct Console {
    app: App,
    link: Link,
    hangup: CancellationToken,
    shutdown: CancellationToken,
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
            if self.hangup.is_cancelled() {
                return ConsoleExit::TerminalLost("the terminal hung up (SIGHUP)".into());
            }
            if self.shutdown.is_cancelled() {
                return ConsoleExit::Quit;
            }
            self.app.update(ConsoleEvent::Tick(Instant::now()));
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
            Action::Quit => Err(ConsoleExit::Quit),
            Action::Suspend => {
                guard
                    .suspend()
                    .map_err(|error: TerminalError| ConsoleExit::TerminalLost(error.to_string()))?;
                let size = terminal_size(guard);
                Ok(self
                    .app
                    .update(ConsoleEvent::Resize(size.width, size.height)))
            }
            Action::Request { id, request } => {
                self.link.send(id, request);
                Ok(None)
            }
        }
    }
}
