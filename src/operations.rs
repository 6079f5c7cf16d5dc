//! What an operator watches the server do: its phase (loading its plugins,
//! serving, draining before it stops), its MCP sessions, the requests it
//! refused to protect itself and the MCP requests it is answering.
//!
//! One shared handle, written by the HTTP side and the server's start and
//! stop, read by `/ready`, `/metrics` and the consoles. Every count is an
//! atomic: the request path only adds and subtracts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What the server is doing.
/// The default is serving: what a console assumes of a server that does
/// not say (one older than phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listening, but the plugins are still loading: not ready for traffic.
    Loading,
    #[default]
    Serving,
    /// Stopping: no new sessions or requests, calls in flight finish.
    Draining,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
        }
    }
}

/// The server's operational state. Cloning is cheap.
#[derive(Clone)]
pub struct Operations {
    inner: Arc<Inner>,
}

struct Inner {
    phase: watch::Sender<Phase>,
    /// MCP sessions open now.
    sessions: AtomicU64,
    /// Sessions refused because `--max-sessions` were open.
    sessions_refused: AtomicU64,
    /// Sessions closed after `--session-idle-timeout` without their client.
    sessions_expired: AtomicU64,
    /// Sessions asleep now (`--session-hibernate-after`).
    sessions_asleep: AtomicU64,
    /// Sessions woken by their client.
    sessions_woken: AtomicU64,
    /// Requests answered 429 by the rate limit.
    rate_limited: AtomicU64,
    /// Requests refused because the server was draining.
    refused_draining: AtomicU64,
    /// MCP requests (POSTs to /mcp) whose answer is not complete yet.
    requests_in_flight: AtomicU64,
}

impl Default for Operations {
    fn default() -> Self {
        Self::new()
    }
}

impl Operations {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                phase: watch::channel(Phase::Loading).0,
                sessions: AtomicU64::new(0),
                sessions_refused: AtomicU64::new(0),
                sessions_expired: AtomicU64::new(0),
                sessions_asleep: AtomicU64::new(0),
                sessions_woken: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                refused_draining: AtomicU64::new(0),
                requests_in_flight: AtomicU64::new(0),
            }),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.inner.phase.borrow()
    }

    /// The plugins are loaded: ready for traffic (unless draining already).
    pub fn serving(&self) {
        self.inner.phase.send_if_modified(|phase| {
            let loading = *phase == Phase::Loading;
            if loading {
                *phase = Phase::Serving;
            }
            loading
        });
    }

    /// Start draining; `false` if the server already was.
    pub fn start_draining(&self) -> bool {
        self.inner.phase.send_if_modified(|phase| {
            let first = *phase != Phase::Draining;
            *phase = Phase::Draining;
            first
        })
    }

    pub fn is_draining(&self) -> bool {
        self.phase() == Phase::Draining
    }

    /// Why the server is not ready for traffic, or `None` when it is.
    pub fn not_ready(&self) -> Option<&'static str> {
        match self.phase() {
            Phase::Serving => None,
            Phase::Loading => Some("loading plugins"),
            Phase::Draining => Some("draining: the server is shutting down"),
        }
    }

    /// A receiver that sees every change of phase.
    pub fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    pub fn sessions(&self) -> u64 {
        self.inner.sessions.load(Ordering::Relaxed)
    }

    /// Set by the session manager, which knows how many there are.
    pub fn set_sessions(&self, count: u64) {
        self.inner.sessions.store(count, Ordering::Relaxed);
    }

    pub fn sessions_refused(&self) -> u64 {
        self.inner.sessions_refused.load(Ordering::Relaxed)
    }

    pub fn session_refused(&self) {
        self.inner.sessions_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sessions_expired(&self) -> u64 {
        self.inner.sessions_expired.load(Ordering::Relaxed)
    }

    pub fn session_expired(&self) {
        self.inner.sessions_expired.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sessions_asleep(&self) -> u64 {
        self.inner.sessions_asleep.load(Ordering::Relaxed)
    }

    pub fn sessions_woken(&self) -> u64 {
        self.inner.sessions_woken.load(Ordering::Relaxed)
    }

    pub fn session_fell_asleep(&self) {
        self.inner.sessions_asleep.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_woke(&self) {
        self.inner.sessions_asleep.fetch_sub(1, Ordering::Relaxed);
        self.inner.sessions_woken.fetch_add(1, Ordering::Relaxed);
    }

    pub fn asleep_session_closed(&self) {
        self.inner.sessions_asleep.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) -> u64 {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    pub fn was_rate_limited(&self) {
        self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_draining(&self) -> u64 {
        self.inner.refused_draining.load(Ordering::Relaxed)
    }

    pub fn was_refused_draining(&self) {
        self.inner.refused_draining.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests_in_flight(&self) -> u64 {
        self.inner.requests_in_flight.load(Ordering::Relaxed)
    }

    /// Count an MCP request until the guard is dropped (when its answer has
    /// been sent, or its client has gone).
    pub fn request(&self) -> RequestGuard {
        self.inner
            .requests_in_flight
            .fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Wait until `idle()` holds and no MCP request is in flight, or until
    /// `timeout`; whether everything finished in time. Looks every few
    /// milliseconds: the request path never pays for a drain it is not in.
    pub async fn settle(&self, timeout: Duration, idle: impl Fn() -> bool) -> bool {
        const LOOK_EVERY: Duration = Duration::from_millis(10);
        let deadline = Instant::now() + timeout;
        loop {
            if idle() && self.requests_in_flight() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
}

/// An MCP request being answered; see [`Operations::request`].
pub struct RequestGuard {
    inner: Arc<Inner>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.inner
            .requests_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_serving() {
        let operations = Operations::new();
        assert_eq!(operations.not_ready(), Some("loading plugins"));
        operations.serving();
        assert_eq!(operations.not_ready(), None);
        assert!(operations.start_draining());
        assert!(!operations.start_draining(), "a second drain is no news");
        operations.serving();
        assert_eq!(operations.phase(), Phase::Draining, "a drain is final");
        assert!(operations.not_ready().unwrap().starts_with("draining"));
    }

    #[tokio::test]
    async fn settle_waits_for_requests_in_flight() {
        let operations = Operations::new();
        let request = operations.request();
        assert_eq!(operations.requests_in_flight(), 1);
        assert!(!operations.settle(Duration::from_millis(30), || true).await);
        let waiting = tokio::spawn({
            let operations = operations.clone();
            async move { operations.settle(Duration::from_secs(60), || true).await }
        });
        drop(request);
        assert!(waiting.await.unwrap());
        assert_eq!(operations.requests_in_flight(), 0);
    }
}
