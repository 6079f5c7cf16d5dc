//! What the console reacts to: the operator's input, the passing of time,
//! and news from the server (its welcome, updates, answers to what the
//! console asked, the connection lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self as terminal_event, Event, KeyEvent};

use crate::control::{Reply, Update, Welcome};

/// Everything `App::update` handles.
#[derive(Debug)]
pub enum ConsoleEvent {
    /// A key press.
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste).
    Paste(String),
    /// The terminal's new size, in columns and rows.
    Resize(u16, u16),
    /// The loop looked at the clock: the uptime and the call rate move on.
    Tick(Instant),
    /// The console reached the server (again): its whole picture.
    Attached { welcome: Box<Welcome>, at: Instant },
    /// News from the server, received at `at`.
    Updates { updates: Vec<Update>, at: Instant },
    /// The answer to the request `id`.
    Reply { id: u64, reply: Reply },
    /// The connection to the server is gone, and why; `retrying` when the
    /// console tries again by itself.
    Disconnected { reason: String, retrying: bool },
}

/// What reaches the console's loop through its channel: events from the
/// input thread and from the tasks the console started, or news that the
/// terminal is gone.
#[derive(Debug)]
pub enum Message {
    Event(ConsoleEvent),
    /// Reading the terminal failed: it is gone.
    TerminalLost(String),
}

/// How long the input thread waits for a key before it checks whether it
/// should stop; short enough for a prompt exit, long enough to cost nothing.
const INPUT_POLL_MS: i32 = 250;

/// Reads the terminal on a thread of its own and forwards what it reads.
pub struct InputReader {
    stop: Arc<AtomicBool>,
}

impl InputReader {
    /// Start reading; every input goes to `sender`.
    pub fn spawn(sender: Sender<Message>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("console-input".into())
            .spawn(move || read_input(&sender, &thread_stop))?;
        Ok(Self { stop })
    }
}

impl Drop for InputReader {
    /// The thread sees the flag within [`INPUT_POLL_MS`] and ends. It is not
    /// joined: nothing it holds needs cleaning up, and waiting would put the
    /// console's exit at the mercy of the terminal.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the terminal's input looks like now.
enum Readiness {
    Idle,
    Readable,
    /// Hung up, or not a terminal any more.
    Gone(String),
}

/// Wait up to `timeout_ms` for input on stdin (the terminal crossterm reads).
///
/// crossterm (0.29) spins forever inside `event::poll`/`event::read` once
/// the terminal is gone, because a hung-up tty stays readable while reads
/// return nothing (crossterm issue #793). So the console only calls into
/// crossterm when the terminal has input, and tells a hang-up apart first.
fn wait_for_input(timeout_ms: i32) -> Readiness {
    let mut descriptor = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut descriptor, 1, timeout_ms) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        return match error.kind() {
            std::io::ErrorKind::Interrupted => Readiness::Idle,
            _ => Readiness::Gone(format!("cannot wait for the terminal: {error}")),
        };
    }
    if ready == 0 {
        return Readiness::Idle;
    }
    if descriptor.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Readiness::Gone("the terminal hung up".into());
    }
    Readiness::Readable
}

fn read_input(sender: &Sender<Message>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match wait_for_input(INPUT_POLL_MS) {
            Readiness::Idle => continue,
            Readiness::Gone(reason) => {
                let _ = sender.send(Message::TerminalLost(reason));
                return;
            }
            Readiness::Readable => {}
        }
        // Take every event the input holds without ever blocking in crossterm.
        loop {
            let message = match terminal_event::poll(Duration::ZERO) {
                Ok(false) => break,
                Ok(true) => match terminal_event::read() {
                    Ok(event) => match translate(event) {
                        Some(event) => Message::Event(event),
                        None => continue,
                    },
                    Err(error) => {
                        Message::TerminalLost(format!("cannot read the terminal: {error}"))
                    }
                },
                Err(error) => Message::TerminalLost(format!("cannot read the terminal: {error}")),
            };
            let lost = matches!(message, Message::TerminalLost(_));
            if sender.send(message).is_err() || lost {
                return;
            }
        }
    }
}

/// The terminal's size (columns, rows), straight from the kernel: the input
/// thread only reads when there are keys, so resizes are noticed here.
pub fn window_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (status == 0 && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// The terminal events the console uses.
fn translate(event: Event) -> Option<ConsoleEvent> {
    match event {
        Event::Key(key) => Some(ConsoleEvent::Key(key)),
        Event::Paste(text) => Some(ConsoleEvent::Paste(text)),
        Event::Resize(columns, rows) => Some(ConsoleEvent::Resize(columns, rows)),
        _ => None,
    }
}
