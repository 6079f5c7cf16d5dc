//! Times, durations and text fitted to a width, as the console writes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::text::Span;

use super::app::WallClock;

/// `HH:MM:SS` of `time`, in the machine's time zone or UTC.
pub fn clock_time(time: SystemTime, clock: WallClock) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (hours, minutes, seconds) = match clock {
        WallClock::Utc => ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60),
        WallClock::Local => local_hms(seconds),
    };
    format!("{hours:02}:{minutes:02}:{seconds:02}")
}

#[cfg(unix)]
fn local_hms(seconds: u64) -> (u64, u64, u64) {
    let time = libc::time_t::try_from(seconds).unwrap_or(0);
    // SAFETY: localtime_r reads `time` and writes only into `tm`, which is a
    // plain C struct for which all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { libc::localtime_r(&time, &mut tm) };
    if converted.is_null() {
        return ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    }
    (tm.tm_hour as u64, tm.tm_min as u64, tm.tm_sec as u64)
}

#[cfg(not(unix))]
fn local_hms(seconds: u64) -> (u64, u64, u64) {
    ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60)
}

/// A call's duration in a short, fixed form: `850µs`, `12.3ms`, `1.25s`.
pub fn duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 100_000 {
        format!("{:.1}ms", micros as f64 / 1_000.0)
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{:.2}s", duration.as_secs_f64())
    }
}

/// The uptime: `0:04:05`, `3d 01:02:03`.
pub fn uptime(uptime: Duration) -> String {
    let total = uptime.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        (total / 3600) % 24,
        (total / 60) % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {hours:02}:{minutes:02}:{seconds:02}")
    } else {
        format!("{hours}:{minutes:02}:{seconds:02}")
    }
}

/// How many columns `text` takes.
pub fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// `text` cut to at most `columns` columns, with `…` when cut.
pub fn fit(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_string();
    }
    if columns == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut buffer = [0u8; 4];
    for c in text.chars() {
        let w = width(c.encode_utf8(&mut buffer));
        if used + w > columns - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` fitted and padded to exactly `columns` columns.
pub fn pad(text: &str, columns: usize) -> String {
    let mut out = fit(text, columns);
    let missing = columns.saturating_sub(width(&out));
    out.extend(std::iter::repeat_n(' ', missing));
    out
}

/// `text` fitted and right-aligned in `columns` columns.
pub fn pad_left(text: &str, columns: usize) -> String {
    let out = fit(text, columns);
    let missing = columns.saturating_sub(width(&out));
    let mut padded: String = std::iter::repeat_n(' ', missing).collect();
    padded.push_str(&out);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1_250)), "1.25s");
    }

    #[test]
    fn text_is_fitted_to_columns() {
        assert_eq!(fit("rollDice", 4), "rol…");
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad_left("ab", 4), "  ab");
        assert_eq!(fit("日本語", 4), "日…");
    }

    #[test]
    fn uptime_reads_well() {
        assert_eq!(uptime(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(uptime(Duration::from_secs(90_061)), "1d 01:01:01");
    }

    #[test]
    fn utc_times() {
        let time = UNIX_EPOCH + Duration::from_secs(3600 + 120 + 3);
        assert_eq!(clock_time(time, WallClock::Utc), "01:02:03");
    }
}
