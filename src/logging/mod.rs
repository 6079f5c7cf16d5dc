//! Where the server log goes: stderr or a file when headless; a buffer the
//! console shows in a pane (and optionally a file) when the console is up,
//! because nothing may be printed over the console's screen.
//!
//! Writing to stderr or a file goes through a background thread that
//! writes in batches and drops lines when too much is waiting (`batched`): a
//! stalled reader (a paused pager, a stuck journal) must never block the
//! server's threads, and a line per call must not cost a thread switch.

mod batched;

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::ring::Ring;
use batched::{BatchGuard, batched};

/// How many log lines the console keeps.
const KEPT_LINES: usize = 2000;

/// Recent log lines, for the console. Cloning shares the same buffer.
#[derive(Clone)]
pub struct LogBuffer {
    /// Numbered lines, so a reader can ask for what is new.
    lines: Arc<Mutex<Ring<String>>>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogBuffer")
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self {
            lines: Arc::new(Mutex::new(Ring::new(KEPT_LINES))),
        }
    }
}

impl LogBuffer {
    pub fn push(&self, line: String) {
        self.lock().push(line);
    }

    /// The lines written after the first `seen`, and the new count to pass next time.
    pub fn since(&self, seen: u64) -> (Vec<String>, u64) {
        let lines = self.lock();
        (lines.since(seen).cloned().collect(), lines.end_seq())
    }

    /// A push or a read cannot leave the ring half-changed, so a panic
    /// elsewhere while it was locked does not make it unusable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring<String>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes whole lines into a [`LogBuffer`].
pub struct LogWriter {
    buffer: LogBuffer,
    pending: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.buffer.push(text);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            self.buffer.push(text);
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter {
            buffer: self.clone(),
            pending: Vec::new(),
        }
    }
}

/// Where log lines go besides the [`LogBuffer`] consoles read.
pub enum LogTarget<'a> {
    /// Standard error (coloured on a terminal unless NO_COLOR).
    Stderr,
    /// A file, appended to.
    File(&'a Path),
    /// Nowhere else but a file if given: the console owns the terminal.
    Console(Option<&'a Path>),
}

/// Keeps the background log writer alive; dropping it flushes what is queued.
#[must_use = "the log stops when this is dropped"]
pub struct LogGuard {
    _writer: Option<BatchGuard>,
}

/// The target of the one-line-per-call log: consoles show calls in their
/// calls pane, so these lines stay out of the buffer they read.
pub const CALLS_TARGET: &str = "wasimancer::calls";

/// Install the global logger: every line goes into `buffer` (for consoles,
/// which may attach at any time) and to `target`. `RUST_LOG` overrides
/// `default_filter`.
pub fn init(
    default_filter: &str,
    target: LogTarget<'_>,
    buffer: &LogBuffer,
) -> anyhow::Result<LogGuard> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer as _;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let most_detailed = filter.max_level_hint();
    let open = |path: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(batched)
            .with_context(|| format!("cannot open the log file {}", path.display()))
    };
    let for_consoles = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .with_writer(buffer.clone())
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() != CALLS_TARGET
        }));
    let (writer, colour) = match target {
        LogTarget::Stderr => (
            Some(batched(io::stderr()).context("cannot start the log writer thread")?),
            io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        LogTarget::File(path) | LogTarget::Console(Some(path)) => (Some(open(path)?), false),
        LogTarget::Console(None) => (None, false),
    };
    let (writer, guard) = match writer {
        Some((writer, guard)) => (Some(writer), Some(guard)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(for_consoles)
        .with(writer.map(|writer| {
            tracing_subscriber::fmt::layer()
                .with_ansi(colour)
                .with_writer(writer)
        }))
        .init();
    // The consoles' per-layer filter hides the level the subscriber wants,
    // so the `log` bridge would pass every record of crates that use `log`
    // (wasmtime traces each call) only for the filter to drop it.
    log::set_max_level(log_level(most_detailed));
    Ok(LogGuard { _writer: guard })
}

/// The `log` crate's form of the most detailed level `filter` lets through
/// (all of them when it cannot tell).
fn log_level(most_detailed: Option<tracing_subscriber::filter::LevelFilter>) -> log::LevelFilter {
    use tracing_subscriber::filter::LevelFilter;
    match most_detailed {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        Some(LevelFilter::TRACE) | None => log::LevelFilter::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_logging_with_log_are_filtered_at_the_level_rust_log_asks() {
        let level = |filter: &str| log_level(EnvFilter::new(filter).max_level_hint());
        assert_eq!(level("info"), log::LevelFilter::Info);
        assert_eq!(level("warn,wasimancer=debug"), log::LevelFilter::Debug);
        assert_eq!(level("off"), log::LevelFilter::Off);
        assert_eq!(level("wasmtime=trace"), log::LevelFilter::Trace);
    }

    #[test]
    fn readers_get_only_new_whole_lines() {
        let buffer = LogBuffer::default();
        let mut writer = buffer.make_writer();
        writer.write_all(b"first\nsec").unwrap();
        let (lines, seen) = buffer.since(0);
        assert_eq!(lines, ["first"]);
        writer.write_all(b"ond\nthird\n").unwrap();
        let (lines, seen) = buffer.since(seen);
        assert_eq!(lines, ["second", "third"]);
        assert!(buffer.since(seen).0.is_empty());
    }

    #[test]
    fn the_buffer_keeps_the_latest_lines() {
        let buffer = LogBuffer::default();
        for i in 0..KEPT_LINES + 10 {
            buffer.push(i.to_string());
        }
        let (lines, _) = buffer.since(0);
        assert_eq!(lines.len(), KEPT_LINES);
        assert_eq!(lines[0], "10");
    }
}
