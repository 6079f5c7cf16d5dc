//! `--audit-log`: one JSON line per call (when, who, what, how it ended, how
//! long it took) and per change to the plugins, in a file that rotates by
//! size: at `max_bytes` it becomes `FILE.1` (the older ones `FILE.2`…),
//! `keep` of them are kept, and a new `FILE` starts.
//!
//! The writer reads the event bus like any observer: it never holds up a
//! call, and if it falls behind it writes how many events it lost. Argument
//! values were redacted before the record was made (see `redaction`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::events::{
    CallEvent, CallSource, CallStatus, EventReader, LifecycleEvent, Received, ServerEvent,
};

/// Where the audit log goes and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    pub path: PathBuf,
    /// The size at which the file is rotated.
    pub max_bytes: u64,
    /// How many rotated files are kept beside the current one.
    pub keep: usize,
}

impl AuditOptions {
    /// The defaults for `path`: 64 MiB per file, 4 kept.
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            max_bytes: 64 * 1024 * 1024,
            keep: 4,
        }
    }
}

/// Write every event `reader` gets as a line of the audit log, until the
/// bus closes.
pub async fn write(mut reader: EventReader, options: AuditOptions) {
    let mut log = match Log::open(options).await {
        Ok(log) => log,
        Err((path, error)) => {
            tracing::error!(path = %path.display(), %error, "cannot open the audit log");
            return;
        }
    };
    loop {
        let line = match reader.recv().await {
            Received::Event(event) => line(&event),
            Received::Dropped(count) => json!({
                "time": rfc3339(SystemTime::now()),
                "event": "dropped",
                "count": count,
            }),
            Received::Closed => break,
        };
        if let Err(error) = log.append(&line).await {
            tracing::error!(path = %log.options.path.display(), %error, "the audit log stopped");
            return;
        }
        // Flush whenever nothing waits, so the file is current when idle.
        if reader.is_empty() && log.flush().await.is_err() {
            return;
        }
    }
    let _ = log.flush().await;
}

/// The open file and its size.
struct Log {
    options: AuditOptions,
    file: BufWriter<File>,
    size: u64,
}

impl Log {
    async fn open(options: AuditOptions) -> Result<Self, (PathBuf, std::io::Error)> {
        let (file, size) = open_append(&options.path)
            .await
            .map_err(|error| (options.path.clone(), error))?;
        Ok(Self {
            options,
            file,
            size,
        })
    }

    async fn append(&mut self, line: &Value) -> std::io::Result<()> {
        let mut text = line.to_string();
        text.push('\n');
        let length = text.len() as u64;
        if self.size > 0 && self.size + length > self.options.max_bytes {
            self.rotate().await?;
        }
        self.file.write_all(text.as_bytes()).await?;
        self.size += length;
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().await
    }

    /// FILE → FILE.1 → FILE.2 …, the oldest beyond `keep` removed, and a
    /// new FILE.
    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let path = &self.options.path;
        let keep = self.options.keep;
        if keep == 0 {
            tokio::fs::remove_file(path).await?;
        } else {
            let _ = tokio::fs::remove_file(numbered(path, keep)).await;
            for n in (1..keep).rev() {
                match tokio::fs::rename(numbered(path, n), numbered(path, n + 1)).await {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(error);
                    }
                    _ => {}
                }
            }
            tokio::fs::rename(path, numbered(path, 1)).await?;
        }
        let (file, size) = open_append(path).await?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

async fn open_append(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let size = file.metadata().await?.len();
    Ok((BufWriter::new(file), size))
}

/// `FILE.n`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The audit line of one event.
fn line(event: &ServerEvent) -> Value {
    match event {
        ServerEvent::Call(call) => call_line(call),
        ServerEvent::Lifecycle(change) => change_line(change),
    }
}

fn call_line(call: &CallEvent) -> Value {
    let (client, session) = match &call.source {
        CallSource::Mcp { client, session } => (client.as_deref(), session.as_deref()),
        CallSource::Console | CallSource::Cli => (None, None),
    };
    let mut line = json!({
        "time": rfc3339(call.started),
        "event": "call",
        "call": call.id,
        "source": call.source.kind(),
        "client": client,
        "session": session,
        "kind": call.kind.as_str(),
        "tool": &*call.tool,
        "plugin": (!call.plugin.is_empty()).then_some(&*call.plugin),
        "outcome": match &call.status {
            CallStatus::Ok { .. } => "ok",
            CallStatus::Error { kind, .. } => kind.code(),
        },
        "duration_ms": call.duration.as_secs_f64() * 1000.0,
        "arguments": &call.arguments,
    });
    if let CallStatus::Error { message, .. } = &call.status {
        line["error"] = Value::String(message.clone());
    }
    line
}

fn change_line(change: &LifecycleEvent) -> Value {
    json!({
        "time": rfc3339(change.at),
        "event": "plugin_change",
        "origin": change.origin,
        "plugin": change.plugin,
        "change": change.change,
        "message": change.message,
    })
}

/// `time` in UTC as RFC 3339 with milliseconds: `2026-12-01T20:15:03.042Z`.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_796_156_840_042);
        assert_eq!(rfc3339(time), "2026-12-01T20:27:20.042Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[tokio::test]
    async fn the_log_rotates_by_size_and_keeps_so_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = Log::open(AuditOptions {
            path: path.clone(),
            max_bytes: 100,
            keep: 2,
        })
        .await
        .unwrap();
        // Each line is 41 bytes: two fit in a file, the third rotates it.
        for n in 0..7 {
            log.append(&json!({ "n": n, "pad": "x".repeat(24) }))
                .await
                .unwrap();
        }
        log.flush().await.unwrap();
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
        let numbers = |text: String| -> Vec<u64> {
            text.lines()
                .map(|line| {
                    serde_json::from_str::<Value>(line).unwrap()["n"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        assert_eq!(numbers(read(path.clone())), [6]);
        assert_eq!(numbers(read(numbered(&path, 1))), [4, 5]);
        assert_eq!(numbers(read(numbered(&path, 2))), [2, 3]);
        assert!(
            !numbered(&path, 3).exists(),
            "only two rotated files are kept"
        );
    }
}
