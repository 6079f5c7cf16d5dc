//! The live call log: call records in a [`Scrollback`], and the filter typed
//! after `/`. Rows are the records' own `Arc`s: storing one costs a pointer.

use std::sync::Arc;

use super::scrollback::{RowFilter, Scrollback};
use crate::events::{CallEvent, CallKind, CallStatus, ServerEvent};

/// How many calls the console keeps.
pub const CALLS_KEPT: usize = 10_000;

/// A call record as the bus delivered it (always a `ServerEvent::Call`).
#[derive(Debug, Clone)]
pub struct CallRow(Arc<ServerEvent>);

impl CallRow {
    /// The row for `event`, if it is a call.
    pub fn new(event: Arc<ServerEvent>) -> Option<Self> {
        matches!(*event, ServerEvent::Call(_)).then_some(Self(event))
    }

    /// What the call was, as the log names it: the tool, `read NAME` for a
    /// resource, `prompt NAME` for a prompt.
    pub fn label(&self) -> String {
        let call = self.call();
        match call.kind {
            CallKind::Tool => call.tool.to_string(),
            CallKind::Resource => format!("read {}", call.tool),
            CallKind::Prompt => format!("prompt {}", call.tool),
        }
    }

    pub fn call(&self) -> &CallEvent {
        match &*self.0 {
            ServerEvent::Call(call) => call,
            // `new` only wraps calls.
            ServerEvent::Lifecycle(_) => unreachable!("a CallRow always holds a call"),
        }
    }
}

/// A filter typed after `/`: words that must all match. A bare word matches
/// the tool, the plugin, the source or the outcome; `tool:`, `plugin:`,
/// `source:` and `status:` (or `is:`) narrow a word to one of them.
/// Outcomes are `ok`, `error`, or an error kind like `timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    text: String,
    terms: Vec<(Field, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Any,
    Tool,
    Plugin,
    Source,
    Status,
}

impl CallFilter {
    pub fn parse(text: &str) -> Self {
        let terms = text
            .split_whitespace()
            .map(|word| {
                let lower = word.to_lowercase();
                match lower.split_once(':') {
                    Some(("tool", rest)) => (Field::Tool, rest.to_string()),
                    Some(("plugin", rest)) => (Field::Plugin, rest.to_string()),
                    Some(("source", rest)) => (Field::Source, rest.to_string()),
                    Some(("status" | "is", rest)) => (Field::Status, rest.to_string()),
                    _ => (Field::Any, lower),
                }
            })
            .filter(|(_, term)| !term.is_empty())
            .collect();
        Self {
            text: text.trim().to_string(),
            terms,
        }
    }

    /// The filter as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, call: &CallEvent) -> bool {
        self.terms.iter().all(|(field, term)| {
            let tool = || call.tool.to_lowercase().contains(term.as_str());
            let plugin = || call.plugin.to_lowercase().contains(term.as_str());
            let source = || {
                call.source
                    .to_string()
                    .to_lowercase()
                    .contains(term.as_str())
            };
            let status = || match &call.status {
                CallStatus::Ok { .. } => term == "ok",
                CallStatus::Error { kind, .. } => {
                    matches!(term.as_str(), "error" | "err" | "failed")
                        || kind.as_str().contains(term.as_str())
                }
            };
            let kind = || call.kind.as_str().contains(term.as_str());
            match field {
                Field::Any => tool() || plugin() || source() || status() || kind(),
                Field::Tool => tool(),
                Field::Plugin => plugin(),
                Field::Source => source(),
                Field::Status => status(),
            }
        })
    }
}

impl RowFilter<CallRow> for CallFilter {
    fn matches(&self, row: &CallRow) -> bool {
        CallFilter::matches(self, row.call())
    }
}

/// The calls kept, the filter, and where the view is.
pub type CallLog = Scrollback<CallRow, CallFilter>;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::CallSource;
    use crate::runtime::FailureKind;
    use std::time::{Duration, SystemTime};

    fn call(id: u64, tool: &str, ok: bool) -> CallRow {
        let status = if ok {
            CallStatus::Ok {
                preview: "11".into(),
            }
        } else {
            CallStatus::Error {
                kind: FailureKind::Timeout,
                message: "too slow".into(),
            }
        };
        CallRow::new(Arc::new(ServerEvent::Call(CallEvent {
            id,
            started: SystemTime::UNIX_EPOCH,
            source: CallSource::Console,
            kind: Default::default(),
            tool: tool.into(),
            plugin: "dice".into(),
            arguments: "{}".into(),
            status,
            duration: Duration::from_millis(1),
            overlapping: 1,
        })))
        .unwrap()
    }

    fn ids(log: &CallLog, height: usize) -> Vec<u64> {
        log.visible_rows(height).map(|(_, r)| r.call().id).collect()
    }

    #[test]
    fn filters_match_words_and_fields() {
        let mut log = CallLog::new(100);
        log.push(call(1, "rollDice", true));
        log.push(call(2, "say_hello", false));
        log.push(call(3, "rollDice", false));
        log.set_filter(CallFilter::parse("roll error"));
        assert_eq!(ids(&log, 10), [3]);
        log.set_filter(CallFilter::parse("status:ok"));
        assert_eq!(ids(&log, 10), [1]);
        log.set_filter(CallFilter::parse("timeout"));
        assert_eq!(ids(&log, 10), [2, 3]);
        log.set_filter(CallFilter::parse("source:console tool:hello"));
        assert_eq!(ids(&log, 10), [2]);
        log.push(call(4, "say_hello", true));
        assert_eq!(ids(&log, 10), [2, 4]);
        log.set_filter(CallFilter::parse(""));
        assert_eq!(ids(&log, 10), [1, 2, 3, 4]);
    }
}
