//! The terminal while the console owns it: raw mode, the alternate screen,
//! bracketed paste (no mouse capture, so the terminal's own selection and
//! copy keep working). [`TerminalGuard`] gives it back on drop, on a panic
//! of the console thread, and around a suspension (Ctrl-Z).

use std::io::{self, BufWriter, Stdout, Write};
use std::panic::PanicHookInfo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::terminal::{
    self, BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use ratatui::crossterm::{execute, queue};

/// The console's terminal: buffered, so a frame leaves in one write.
pub type ConsoleTerminal = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// What can go wrong with the terminal.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cannot set up the terminal: {0}")]
    Setup(#[source] io::Error),
    #[error("cannot write to the terminal: {0}")]
    Write(#[source] io::Error),
}

type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Owns the terminal while the console runs.
pub struct TerminalGuard {
    terminal: ConsoleTerminal,
    /// Whether the screen is the console's now (false once given back).
    active: Arc<AtomicBool>,
    /// The hook that was installed before ours, restored on drop.
    previous_hook: Option<Arc<PanicHook>>,
}

impl TerminalGuard {
    /// Take the terminal over and install the panic hook.
    pub fn enter() -> Result<Self, TerminalError> {
        let active = Arc::new(AtomicBool::new(false));
        let previous_hook = Arc::new(std::panic::take_hook());
        install_panic_hook(
            Arc::clone(&previous_hook),
            Arc::clone(&active),
            std::thread::current().id(),
        );
        let backend = CrosstermBackend::new(BufWriter::with_capacity(64 * 1024, io::stdout()));
        let mut guard = Self {
            terminal: Terminal::new(backend).map_err(TerminalError::Setup)?,
            active,
            previous_hook: Some(previous_hook),
        };
        guard.take_over().map_err(TerminalError::Setup)?;
        Ok(guard)
    }

    pub fn terminal(&mut self) -> &mut ConsoleTerminal {
        &mut self.terminal
    }

    /// Draw one frame inside a synchronized update, so that a slow link
    /// shows it whole rather than torn.
    pub fn draw(
        &mut self,
        render: impl FnOnce(&mut ratatui::Frame<'_>),
    ) -> Result<(), TerminalError> {
        let backend = self.terminal.backend_mut();
        queue!(backend, BeginSynchronizedUpdate).map_err(TerminalError::Write)?;
        self.terminal.draw(render).map_err(TerminalError::Write)?;
        let backend = self.terminal.backend_mut();
        queue!(backend, EndSynchronizedUpdate).map_err(TerminalError::Write)?;
        backend.flush().map_err(TerminalError::Write)
    }

    /// Stop the process as Ctrl-Z would without raw mode: give the terminal
    /// back, stop, and take it over again (with a full redraw) on `fg`.
    pub fn suspend(&mut self) -> Result<(), TerminalError> {
        self.give_back();
        // SAFETY: raise only sends a signal to this process; SIGTSTP's
        // default action stops it until SIGCONT.
        unsafe {
            libc::raise(libc::SIGTSTP);
        }
        self.take_over().map_err(TerminalError::Setup)?;
        self.terminal.clear().map_err(TerminalError::Write)
    }

    fn take_over(&mut self) -> io::Result<()> {
        terminal::enable_raw_mode()?;
        self.active.store(true, Ordering::SeqCst);
        execute!(
            self.terminal.backend_mut(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            Hide
        )?;
        self.terminal.clear()
    }

    /// Leave the console's screen; errors are ignored, the terminal may be gone.
    fn give_back(&mut self) {
        if self.active.swap(false, Ordering::SeqCst) {
            let _ = execute!(
                self.terminal.backend_mut(),
                DisableBracketedPaste,
                LeaveAlternateScreen,
                Show
            );
            let _ = terminal::disable_raw_mode();
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        self.give_back();
        // std refuses (with a panic, which would abort the whole process)
        // to change the hook from a panicking thread. Ours stays then: with
        // the screen given back, it only calls the previous one.
        if std::thread::panicking() {
            return;
        }
        // Put the previous hook back: ours holds the only other reference,
        // and dropping it (by taking it) releases that.
        drop(std::panic::take_hook());
        if let Some(previous) = self.previous_hook.take() {
            match Arc::try_unwrap(previous) {
                Ok(hook) => std::panic::set_hook(hook),
                Err(shared) => std::panic::set_hook(Box::new(move |info| shared(info))),
            }
        }
    }
}

/// While the console runs, a panic on its thread gives the terminal back
/// before the message is printed, so the message is readable and the shell
/// usable. A panic elsewhere (a server task) must not print over the
/// console's screen: it goes to the log, which the console shows.
fn install_panic_hook(previous: Arc<PanicHook>, active: Arc<AtomicBool>, console: ThreadId) {
    std::panic::set_hook(Box::new(move |info| {
        if !active.load(Ordering::SeqCst) {
            previous(info);
        } else if std::thread::current().id() == console {
            restore_after_panic(&active);
            previous(info);
        } else {
            tracing::error!("panic: {info}");
        }
    }));
}

fn restore_after_panic(active: &AtomicBool) {
    if active.swap(false, Ordering::SeqCst) {
        let mut stdout = io::stdout();
        let _ = execute!(stdout, DisableBracketedPaste, LeaveAlternateScreen, Show);
        let _ = terminal::disable_raw_mode();
    }
}
