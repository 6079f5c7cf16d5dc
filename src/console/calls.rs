//! The live call log: a bounded ring of recent call records, the filter, and
//! the view over it (follow the tail, or stay frozen where the operator
//! scrolled). Rows are the bus's own `Arc`s: storing one costs a pointer.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::events::{CallEvent, CallStatus, ServerEvent};

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
            match field {
                Field::Any => tool() || plugin() || source() || status(),
                Field::Tool => tool(),
                Field::Plugin => plugin(),
                Field::Source => source(),
                Field::Status => status(),
            }
        })
    }
}

/// The calls kept, the filter, and where the view is.
#[derive(Debug)]
pub struct CallLog {
    rows: VecDeque<CallRow>,
    /// The sequence number of `rows[0]`; every row ever kept has one.
    first_seq: u64,
    /// Sequence numbers of the rows that pass the filter, oldest first.
    visible: VecDeque<u64>,
    filter: CallFilter,
    capacity: usize,
    /// Follow mode: the view stays on the newest call.
    pub follow: bool,
    /// The selected row (a sequence number) when frozen.
    selected: Option<u64>,
    /// The top row of the view (a sequence number) when frozen.
    top: Option<u64>,
}

impl Default for CallLog {
    fn default() -> Self {
        Self::with_capacity(CALLS_KEPT)
    }
}

impl CallLog {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            rows: VecDeque::with_capacity(capacity.min(1024)),
            first_seq: 0,
            visible: VecDeque::new(),
            filter: CallFilter::default(),
            capacity: capacity.max(1),
            follow: true,
            selected: None,
            top: None,
        }
    }

    /// Keep `row`, forgetting the oldest when full.
    pub fn push(&mut self, row: CallRow) {
        if self.rows.len() == self.capacity {
            self.rows.pop_front();
            if self.visible.front() == Some(&self.first_seq) {
                self.visible.pop_front();
            }
            self.first_seq += 1;
        }
        let seq = self.first_seq + self.rows.len() as u64;
        if self.filter.matches(row.call()) {
            self.visible.push_back(seq);
        }
        self.rows.push_back(row);
    }

    /// Forget every row (the view only; the server is not affected).
    pub fn clear(&mut self) {
        self.first_seq += self.rows.len() as u64;
        self.rows.clear();
        self.visible.clear();
        self.selected = None;
        self.top = None;
        self.follow = true;
    }

    pub fn filter(&self) -> &CallFilter {
        &self.filter
    }

    pub fn set_filter(&mut self, filter: CallFilter) {
        let selected = self.selected_row().map(|row| row.call().id);
        self.filter = filter;
        self.visible = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, row)| self.filter.matches(row.call()))
            .map(|(i, _)| self.first_seq + i as u64)
            .collect();
        // Stay on the same call if it still shows, else follow.
        self.top = None;
        self.selected = selected.and_then(|id| {
            self.visible
                .iter()
                .copied()
                .find(|&seq| self.row(seq).is_some_and(|row| row.call().id == id))
        });
        if self.selected.is_none() {
            self.follow = true;
        }
    }

    /// How many rows are kept, and how many pass the filter.
    pub fn counts(&self) -> (usize, usize) {
        (self.rows.len(), self.visible.len())
    }

    fn row(&self, seq: u64) -> Option<&CallRow> {
        let index = seq.checked_sub(self.first_seq)?;
        self.rows.get(usize::try_from(index).ok()?)
    }

    /// The position in the filtered rows of `seq`, or of the first row after it.
    fn position(&self, seq: u64) -> usize {
        match self.visible.binary_search(&seq) {
            Ok(i) | Err(i) => i,
        }
    }

    /// The selected position among the filtered rows.
    pub fn selected_index(&self) -> Option<usize> {
        if self.visible.is_empty() {
            return None;
        }
        let last = self.visible.len() - 1;
        match (self.follow, self.selected) {
            (false, Some(seq)) => Some(self.position(seq).min(last)),
            _ => Some(last),
        }
    }

    pub fn selected_row(&self) -> Option<&CallRow> {
        let index = self.selected_index()?;
        self.row(*self.visible.get(index)?)
    }

    /// The first filtered position shown in a view of `height` rows.
    pub fn top_index(&self, height: usize) -> usize {
        let len = self.visible.len();
        let height = height.max(1);
        let bottom_top = len.saturating_sub(height);
        if self.follow {
            return bottom_top;
        }
        let selected = self.selected_index().unwrap_or(0);
        let top = self.top.map_or(bottom_top, |seq| self.position(seq));
        scrolled_to_show(top, selected, height).min(bottom_top)
    }

    /// The rows of a view of `height` rows: (position, row).
    pub fn visible_rows(&self, height: usize) -> impl Iterator<Item = (usize, &CallRow)> {
        let top = self.top_index(height);
        self.visible
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .filter_map(|(i, &seq)| self.row(seq).map(|row| (i, row)))
    }

    /// Move the selection by `delta` rows in a view of `height`; moving
    /// freezes the view, and reaching the newest row follows again only
    /// through `follow_tail`.
    pub fn move_selection(&mut self, delta: isize, height: usize) {
        let Some(current) = self.selected_index() else {
            return;
        };
        let top = self.top_index(height);
        let last = self.visible.len() - 1;
        let target = current.saturating_add_signed(delta).min(last);
        self.follow = false;
        self.selected = self.visible.get(target).copied();
        let top = scrolled_to_show(top, target, height.max(1));
        self.top = self.visible.get(top).copied();
    }

    /// Go to the oldest row and freeze.
    pub fn select_first(&mut self) {
        self.follow = false;
        self.selected = self.visible.front().copied();
        self.top = self.selected;
    }

    /// Go to the newest row and follow.
    pub fn follow_tail(&mut self) {
        self.follow = true;
        self.selected = None;
        self.top = None;
    }

    /// Toggle follow mode; freezing keeps the view where it is.
    pub fn toggle_follow(&mut self, height: usize) {
        if self.follow {
            let top = self.top_index(height);
            self.selected = self.visible.back().copied();
            self.top = self.visible.get(top).copied();
            self.follow = false;
        } else {
            self.follow_tail();
        }
    }
}

/// The top of a view of `height` rows starting at `top`, moved as little as
/// possible so that row `index` shows.
fn scrolled_to_show(top: usize, index: usize, height: usize) -> usize {
    if index < top {
        index
    } else if index >= top + height {
        index + 1 - height
    } else {
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::CallSource;
    use crate::runtime::FailureKind;
    use std::time::{Duration, SystemTime};

    pub(crate) fn call(id: u64, tool: &str, ok: bool) -> CallRow {
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
    fn the_ring_forgets_the_oldest_calls() {
        let mut log = CallLog::with_capacity(3);
        for id in 1..=5 {
            log.push(call(id, "roll", true));
        }
        assert_eq!(ids(&log, 10), [3, 4, 5]);
        assert_eq!(log.counts(), (3, 3));
    }

    #[test]
    fn following_shows_the_tail_and_freezing_stays_put() {
        let mut log = CallLog::with_capacity(100);
        for id in 1..=10 {
            log.push(call(id, "roll", true));
        }
        assert_eq!(ids(&log, 3), [8, 9, 10]);
        log.move_selection(-1, 3);
        assert!(!log.follow);
        assert_eq!(log.selected_row().unwrap().call().id, 9);
        log.push(call(11, "roll", true));
        assert_eq!(ids(&log, 3), [8, 9, 10]);
        log.follow_tail();
        assert_eq!(ids(&log, 3), [9, 10, 11]);
    }

    #[test]
    fn a_frozen_view_survives_the_ring_moving_under_it() {
        let mut log = CallLog::with_capacity(5);
        for id in 1..=5 {
            log.push(call(id, "roll", true));
        }
        log.select_first();
        for id in 6..=8 {
            log.push(call(id, "roll", true));
        }
        // Call 1 is gone; the selection lands on the oldest kept.
        assert_eq!(log.selected_row().unwrap().call().id, 4);
    }

    #[test]
    fn filters_match_words_and_fields() {
        let mut log = CallLog::with_capacity(100);
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
