//! A log writer that hands lines to a background thread in batches.
//!
//! The server writes a line per tool call. Handing each line to a writer
//! thread on its own (as `tracing_appender::non_blocking` does) wakes that
//! thread once per call: under load that is a thread switch per call, which
//! profiles showed among the server's largest costs. Here a line is appended
//! to a shared buffer, and the writer thread, woken by the first line of a
//! batch, waits [`BATCH_WINDOW`] before it writes everything that came in
//! the meantime: at most a few dozen wake-ups a second whatever the load,
//! none when idle.
//!
//! A stalled reader (a paused pager, a stuck journal) never blocks the
//! server: past [`MAX_PENDING`] bytes waiting, lines are dropped and counted,
//! and the count is written once the reader moves again.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread lets lines gather before it writes them.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// The most bytes that wait for the writer; lines beyond are dropped.
const MAX_PENDING: usize = 4 << 20;

/// What the server's threads and the writer thread share.
struct Shared {
    state: Mutex<Pending>,
    /// Wakes the writer thread: the first line of a batch, or the close.
    wake: Condvar,
    limit: usize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Writes dropped since the last batch, because too much was waiting.
    dropped: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Every change is a single append or swap: a panic elsewhere cannot
        // leave the buffer half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the log layer writes: cheap to clone, never blocks on the output.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Keeps the writer thread alive; dropping it writes what is waiting and
/// stops the thread.
pub struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer to `output` through a background thread.
pub fn batched(output: impl Write + Send + 'static) -> io::Result<(BatchedWriter, BatchGuard)> {
    batched_with_limit(output, MAX_PENDING)
}

fn batched_with_limit(
    mut output: impl Write + Send + 'static,
    limit: usize,
) -> io::Result<(BatchedWriter, BatchGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        limit,
    });
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&shared, &mut output))?
    };
    Ok((
        BatchedWriter {
            shared: Arc::clone(&shared),
        },
        BatchGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: wait for a line, let the batch gather, write it.
fn write_batches(shared: &Shared, output: &mut impl Write) {
    // Two buffers swapped in turn, so a batch costs no allocation.
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.bytes.is_empty() && pending.dropped == 0 && !pending.closed {
            pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
        if !pending.closed {
            pending = shared
                .wake
                .wait_timeout_while(pending, BATCH_WINDOW, |pending| !pending.closed)
                .map(|(pending, _)| pending)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        std::mem::swap(&mut batch, &mut pending.bytes);
        let dropped = std::mem::take(&mut pending.dropped);
        let closed = pending.closed;
        drop(pending);
        // Nowhere to report a failing log output: the lines are lost.
        let _ = output.write_all(&batch);
        if dropped > 0 {
            let _ = writeln!(
                output,
                "wasimancer: {dropped} log lines were dropped: the log's reader fell behind"
            );
        }
        let _ = output.flush();
        batch.clear();
        if closed {
            return;
        }
    }
}

impl Write for BatchedWriter {
    /// The log layer writes each line with one call, so a line is never
    /// split between batches or mixed with another thread's.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut pending = shared.lock();
        let first = pending.bytes.is_empty();
        if pending.bytes.len() + bytes.len() > shared.limit {
            pending.dropped += 1;
        } else {
            pending.bytes.extend_from_slice(bytes);
            if first {
                shared.wake.notify_one();
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_whole_and_in_order() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        writer
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 2000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&format!("thread {t} line ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..500).collect::<Vec<_>>(), "thread {t}");
        }
    }

    /// An output that blocks until the test lets it go.
    struct Stalled {
        go: mpsc::Receiver<()>,
        sink: Sink,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.go.recv();
            self.sink.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_lines_beyond_the_limit_and_says_how_many() {
        let sink = Sink::default();
        let (go, wait) = mpsc::channel();
        let (mut writer, guard) = batched_with_limit(
            Stalled {
                go: wait,
                sink: sink.clone(),
            },
            100,
        )
        .unwrap();
        // The first line is taken by the writer thread, which then stalls.
        writer.write_all(b"first\n").unwrap();
        while !writer.shared.lock().bytes.is_empty() {
            std::thread::yield_now();
        }
        // 10 lines of 20 bytes fit the 100-byte limit 5 times.
        for i in 0..10 {
            writer
                .write_all(format!("waiting line {i:>6}\n").as_bytes())
                .unwrap();
        }
        for _ in 0..10 {
            go.send(()).unwrap();
        }
        drop(go);
        drop(guard);
        let text = sink.text();
        assert!(text.starts_with("first\n"), "{text}");
        assert_eq!(text.matches("waiting line").count(), 5, "{text}");
        assert!(
            text.contains("5 log lines were dropped: the log's reader fell behind"),
            "{text}"
        );
    }
}
