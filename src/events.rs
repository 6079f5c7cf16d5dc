//! What happened, for whoever watches: one small record per call and per
//! change to the plugins, published on a bus that never blocks the server.
//!
//! The bus is a tokio broadcast channel: sending is a short lock and a slot
//! write, whatever the readers do. A reader that falls behind loses the
//! oldest records and is told how many; the call path never waits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::ring::Ring;
use crate::runtime::FailureKind;

/// How many events a slow reader may lag before it starts losing them.
const BUS_CAPACITY: usize = 8192;
/// How many recent events the bus keeps for readers that look now and then
/// (the consoles, every 100 ms) and for a console that attaches later.
const RECENT_EVENTS: usize = 4096;
/// Longest argument or result preview carried by an event, in bytes.
pub const PREVIEW_BYTES: usize = 200;
/// Longest failure message carried by an event (the console's line, the
/// audit log, a frame to consoles), in bytes: with [`RECENT_EVENTS`], the
/// recent events stay a few MiB whatever the plugins say.
pub const EVENT_MESSAGE_BYTES: usize = 1024;

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallSource {
    /// An MCP client, by the name it gave and its session.
    Mcp {
        client: Option<Arc<str>>,
        session: Option<Arc<str>>,
    },
    /// The operator, from the console's call form.
    Console,
    /// `wasimancer call` on the command line.
    Cli,
}

impl CallSource {
    /// Short label: "mcp", "console" or "cli".
    pub fn kind(&self) -> &'static str {
        match self {
            CallSource::Mcp { .. } => "mcp",
            CallSource::Console => "console",
            CallSource::Cli => "cli",
        }
    }
}

impl fmt::Display for CallSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallSource::Mcp { client, session } => {
                write!(f, "mcp")?;
                if let Some(client) = client {
                    write!(f, ":{client}")?;
                }
                if let Some(session) = session {
                    let short: String = session.chars().take(6).collect();
                    write!(f, "#{short}")?;
                }
                Ok(())
            }
            CallSource::Console => f.write_str("console"),
            CallSource::Cli => f.write_str("cli"),
        }
    }
}

/// What a call was: a tool call, a resource read or a prompt rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    #[default]
    Tool,
    /// `resources/read`; a plugin ran when the resource is computed by one.
    Resource,
    /// `prompts/get`; no plugin runs.
    Prompt,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Tool => "tool",
            CallKind::Resource => "resource",
            CallKind::Prompt => "prompt",
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallStatus {
    Ok {
        /// The start of the output.
        preview: String,
    },
    Error {
        kind: FailureKind,
        message: String,
    },
}

impl CallStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, CallStatus::Ok { .. })
    }
}

/// One finished call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Unique within this server process, increasing.
    pub id: u64,
    /// When the call arrived.
    #[serde(with = "unix_millis")]
    pub started: SystemTime,
    pub source: CallSource,
    /// A tool call, a resource read or a prompt rendered. (`call_kind` in
    /// JSON: a failed call's status already has a `kind`, its failure's.)
    #[serde(rename = "call_kind", default)]
    pub kind: CallKind,
    /// The tool called, the resource read (its name in resources.yml, or the
    /// URI asked for when no resource has it) or the prompt rendered.
    pub tool: Arc<str>,
    /// The plugin that ran; empty when none did (an unknown tool, a resource
    /// that is not computed, a prompt).
    pub plugin: Arc<str>,
    /// The start of the arguments, as JSON: a tool's arguments, a prompt's
    /// arguments, or `{"uri": …, "variables": {…}}` for a resource read.
    pub arguments: String,
    #[serde(flatten)]
    pub status: CallStatus,
    #[serde(with = "micros")]
    pub duration: Duration,
    /// How many calls to the same plugin version were running when this one
    /// ran, itself included: above 1 means calls overlapped.
    pub overlapping: u32,
}

/// A change to the set of plugins, from a reload, the admin API or watch mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    #[serde(with = "unix_millis")]
    pub at: SystemTime,
    /// What asked for the change ("console", "admin API", "watch", "startup").
    pub origin: String,
    /// The plugin concerned, if one.
    pub plugin: Option<String>,
    pub change: Change,
    /// One line for the log: what changed, or what failed and why.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A reload of this plugin has started.
    Reloading,
    Added,
    Replaced,
    Removed,
    Unchanged,
    /// Loading failed; a previous version, if any, keeps serving.
    Failed,
}

/// Anything published on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    Call(CallEvent),
    Lifecycle(LifecycleEvent),
}

/// The publishing side of the bus, shared by everything that makes events.
///
/// Events go two ways: to the broadcast channel, for readers that wait for
/// every event (the audit log), and into a ring of
/// recent events, for readers that look now and then and must never cost the
/// call path a wake-up (consoles). The ring also gives a console that
/// attaches later the calls it missed.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<ServerEvent>>,
    next_call_id: Arc<AtomicU64>,
    recent: Arc<Mutex<Ring<SharedEvent>>>,
    /// Log a line per call as it is published (headless mode).
    log_calls: bool,
}

/// A published event as the recent-events ring keeps it: shared by every
/// console it is sent to, with its JSON made once for all of them (a call
/// record is serialised once, however many consoles are attached).
#[derive(Clone)]
pub struct SharedEvent(Arc<Shared>);

struct Shared {
    event: Arc<ServerEvent>,
    json: OnceLock<Box<serde_json::value::RawValue>>,
}

impl SharedEvent {
    pub fn new(event: Arc<ServerEvent>) -> Self {
        Self(Arc::new(Shared {
            event,
            json: OnceLock::new(),
        }))
    }

    pub fn event(&self) -> &Arc<ServerEvent> {
        &self.0.event
    }

    /// The JSON made for consoles, once one has been sent this event.
    #[cfg(test)]
    pub(crate) fn encoded(&self) -> Option<&str> {
        self.0.json.get().map(|raw| raw.get())
    }
}

impl std::ops::Deref for SharedEvent {
    type Target = ServerEvent;

    fn deref(&self) -> &ServerEvent {
        &self.0.event
    }
}

impl fmt::Debug for SharedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.event.fmt(f)
    }
}

impl PartialEq for SharedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.0.event == other.0.event
    }
}

impl Serialize for SharedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // JSON is what consoles are sent; anything else is made each time.
        match self
            .0
            .json
            .get_or_init(|| serde_json::value::to_raw_value(&*self.0.event).unwrap_or_default())
        {
            raw if raw.get() != "null" => raw.serialize(serializer),
            _ => self.0.event.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SharedEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ServerEvent::deserialize(deserializer).map(|event| Self::new(Arc::new(event)))
    }
}

/// What a reader of the recent events gets: the events after the number it
/// passed, how many it missed by looking too seldom, and the number to pass
/// next time.
#[derive(Debug, Default)]
pub struct RecentEvents {
    pub events: Vec<SharedEvent>,
    pub missed: u64,
    pub next: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            sender,
            next_call_id: Arc::new(AtomicU64::new(1)),
            recent: Arc::new(Mutex::new(Ring::new(RECENT_EVENTS))),
            log_calls: false,
        }
    }

    /// Whether the bus logs one line per call through tracing as the call
    /// is published. On the caller's thread, not in a task of its own: a task
    /// would be woken by every call, a thread switch per call under load.
    pub fn logging_calls(mut self, on: bool) -> Self {
        self.log_calls = on;
        self
    }

    /// A fresh call id.
    pub fn next_call_id(&self) -> u64 {
        self.next_call_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Publish without waiting; nobody listening is fine.
    pub fn publish(&self, event: ServerEvent) {
        if self.log_calls
            && let ServerEvent::Call(call) = &event
        {
            log_call(call);
        }
        let event = Arc::new(event);
        self.recent().push(SharedEvent::new(Arc::clone(&event)));
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(event);
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Ring<SharedEvent>> {
        // A panic while pushing cannot leave the ring half-changed.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The recent events from number `seen` on (0 for all), at most `limit`.
    pub fn recent_since(&self, seen: u64, limit: usize) -> RecentEvents {
        let recent = self.recent();
        let missed = recent.first_seq().saturating_sub(seen);
        let events: Vec<_> = recent.since(seen).take(limit).cloned().collect();
        let next = seen.max(recent.first_seq()) + events.len() as u64;
        RecentEvents {
            events,
            missed,
            next,
        }
    }

    /// The last `count` calls kept (oldest first), and the number from
    /// which `recent_since` gives what comes after them.
    pub fn last_calls(&self, count: usize) -> (Vec<SharedEvent>, u64) {
        let recent = self.recent();
        let mut calls: Vec<_> = recent
            .iter()
            .rev()
            .filter(|event| matches!(***event, ServerEvent::Call(_)))
            .take(count)
            .cloned()
            .collect();
        calls.reverse();
        (calls, recent.end_seq())
    }

    /// A new reader that sees events published from now on.
    pub fn subscribe(&self) -> EventReader {
        EventReader {
            receiver: self.sender.subscribe(),
        }
    }
}

/// The reading side of the bus.
pub struct EventReader {
    receiver: broadcast::Receiver<Arc<ServerEvent>>,
}

/// What a reader gets: an event, or how many it missed by falling behind.
#[derive(Debug)]
pub enum Received {
    Event(Arc<ServerEvent>),
    Dropped(u64),
    Closed,
}

impl EventReader {
    /// Wait for the next event.
    pub async fn recv(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Dropped(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }

    /// Whether no event waits to be read.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }
}

/// The start of `text`, at most [`PREVIEW_BYTES`], cut on a character boundary,
/// on one line.
pub fn preview(text: &str) -> String {
    let end = text.floor_char_boundary(PREVIEW_BYTES);
    let mut short: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < text.len() {
        short.push('…');
    }
    short
}

/// A time as milliseconds since the Unix epoch.
pub(crate) mod unix_millis {
    use std::time::{Duration, SystemTime};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let millis = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(millis)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A duration as microseconds.
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(duration.as_micros() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// One line per call, through tracing (headless mode).
fn log_call(call: &CallEvent) {
    // The name goes under a field saying what it names: `tool=` (which
    // scripts look for), `resource=` or `prompt=`.
    macro_rules! line {
        ($name:ident) => {
            match &call.status {
                CallStatus::Ok { .. } => tracing::info!(
                    target: crate::logging::CALLS_TARGET,
                    id = call.id,
                    source = %call.source,
                    $name = %call.tool,
                    plugin = %call.plugin,
                    micros = call.duration.as_micros() as u64,
                    "ok"
                ),
                CallStatus::Error { kind, message } => tracing::warn!(
                    target: crate::logging::CALLS_TARGET,
                    id = call.id,
                    source = %call.source,
                    $name = %call.tool,
                    plugin = %call.plugin,
                    micros = call.duration.as_micros() as u64,
                    %kind,
                    "{message}"
                ),
            }
        };
    }
    match call.kind {
        CallKind::Tool => line!(tool),
        CallKind::Resource => line!(resource),
        CallKind::Prompt => line!(prompt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_short_single_lines() {
        assert_eq!(preview("a\nb"), "a b");
        let long = "é".repeat(300);
        let short = preview(&long);
        assert!(short.len() <= PREVIEW_BYTES + '…'.len_utf8());
        assert!(short.ends_with('…'));
    }

    #[tokio::test]
    async fn a_slow_reader_is_told_what_it_missed() {
        let bus = EventBus::new();
        let mut reader = bus.subscribe();
        for _ in 0..BUS_CAPACITY + 5 {
            bus.publish(ServerEvent::Lifecycle(LifecycleEvent {
                at: SystemTime::now(),
                origin: "test".into(),
                plugin: None,
                change: Change::Unchanged,
                message: String::new(),
            }));
        }
        assert!(matches!(reader.recv().await, Received::Dropped(5)));
        assert!(matches!(reader.recv().await, Received::Event(_)));
    }

    fn lifecycle(message: &str) -> ServerEvent {
        ServerEvent::Lifecycle(LifecycleEvent {
            at: SystemTime::UNIX_EPOCH,
            origin: "test".into(),
            plugin: None,
            change: Change::Unchanged,
            message: message.into(),
        })
    }

    #[test]
    fn readers_of_the_recent_events_get_what_is_new_and_what_they_missed() {
        let bus = EventBus::new();
        bus.publish(lifecycle("first"));
        let all = bus.recent_since(0, usize::MAX);
        assert_eq!((all.events.len(), all.missed, all.next), (1, 0, 1));
        for i in 0..RECENT_EVENTS + 2 {
            bus.publish(lifecycle(&i.to_string()));
        }
        let late = bus.recent_since(all.next, 10);
        // Two of the events after the first were pushed out before we looked.
        assert_eq!(late.missed, 2);
        assert_eq!(late.events.len(), 10);
        assert_eq!(*late.events[0], lifecycle("2"));
        assert_eq!(late.next, 3 + 10);
        let rest = bus.recent_since(late.next, usize::MAX);
        assert_eq!(rest.missed, 0);
        assert_eq!(rest.next, RECENT_EVENTS as u64 + 3);
        assert!(bus.recent_since(rest.next, 10).events.is_empty());
    }

    #[test]
    fn a_failed_resource_read_travels_as_json_and_back() {
        let event = ServerEvent::Call(CallEvent {
            id: 3,
            started: SystemTime::UNIX_EPOCH,
            source: CallSource::Console,
            kind: CallKind::Resource,
            tool: "dice".into(),
            plugin: "roll-dice".into(),
            arguments: r#"{"uri":"dice://3d6"}"#.into(),
            status: CallStatus::Error {
                kind: FailureKind::Timeout,
                message: "too slow".into(),
            },
            duration: Duration::from_micros(5),
            overlapping: 1,
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["call_kind"], "resource");
        assert_eq!(json["kind"], "timeout", "the failure keeps its own `kind`");
        let back: ServerEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, event);
        // Records from before resources default to tool calls.
        let mut old = json;
        old.as_object_mut().unwrap().remove("call_kind");
        let ServerEvent::Call(old) = serde_json::from_value(old).unwrap() else {
            panic!("a call record");
        };
        assert_eq!(old.kind, CallKind::Tool);
    }

    #[test]
    fn a_shared_event_reads_and_writes_as_the_event_itself() {
        let event = lifecycle("made once");
        let plain = serde_json::to_string(&event).unwrap();
        let shared = SharedEvent::new(Arc::new(event));
        // Made once, then the same bytes for every reader.
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        let back: SharedEvent = serde_json::from_str(&plain).unwrap();
        assert_eq!(back, shared);
    }

    #[test]
    fn sources_read_well() {
        let source = CallSource::Mcp {
            client: Some("claude".into()),
            session: Some("0123456789".into()),
        };
        assert_eq!(source.to_string(), "mcp:claude#012345");
        assert_eq!(CallSource::Console.to_string(), "console");
    }
}
