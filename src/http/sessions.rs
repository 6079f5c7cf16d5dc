//! MCP sessions with bounds: at most `--max-sessions` open, and a session
//! whose client has gone quiet for `--session-idle-timeout` is closed.
//!
//! rmcp keeps the sessions ([`LocalSessionManager`]); this wraps it to count
//! them, to see every message a client sends, and to close them. rmcp's own
//! idle timer is off: it counts the notifications *we* send as activity, so a
//! session whose client had gone would live on as long as plugins kept
//! changing. Here a session is idle when its client has sent nothing for the
//! timeout and holds no stream open (a request being answered, or the GET
//! stream a client listens on: a client that holds one is still there, and
//! when it goes, its connection and the stream go with it).
//!
//! With a session store (`--session-store`), rmcp saves each new session
//! there and restores, on this replica, a session opened on another; the
//! store keeps a session for the idle timeout after its client last spoke,
//! so each replica that hears the client extends it now and then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::cluster::sessions::RedisSessionStore;
use crate::operations::Operations;

/// The bounds of the MCP sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// The most sessions open at once; more are refused.
    pub max_sessions: u64,
    /// A session whose client has been quiet this long is closed.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// rmcp's sessions, counted, bounded and closed when idle.
pub struct Sessions {
    inner: LocalSessionManager,
    /// When each session's client last spoke, and the streams it holds open.
    activity: Mutex<HashMap<SessionId, Activity>>,
    /// Sessions being opened now (admitted, not yet in `activity`).
    opening: AtomicU64,
    limits: SessionLimits,
    operations: Operations,
    /// Where sessions are kept for the other replicas, if anywhere.
    store: Option<RedisSessionStore>,
}

struct Activity {
    last: Instant,
    open_streams: usize,
    /// When the session's life in the store was last extended.
    refreshed: Instant,
}

impl Sessions {
    /// Sessions under `limits`, with a sweeper that closes idle ones until
    /// `shutdown`, extended in `store` while their clients speak.
    pub fn new(
        limits: SessionLimits,
        operations: Operations,
        shutdown: CancellationToken,
        store: Option<RedisSessionStore>,
    ) -> Arc<Self> {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = None;
        let sessions = Arc::new(Self {
            inner,
            activity: Mutex::new(HashMap::new()),
            opening: AtomicU64::new(0),
            limits,
            operations,
            store,
        });
        // A few looks per timeout.
        let period =
            (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(15));
        super::every(period, &sessions, shutdown, sweep);
        sessions
    }

    /// Sessions open now.
    pub fn count(&self) -> u64 {
        self.activity().len() as u64
    }

    /// Room for one more session: held while it is opened, `None` when
    /// `max_sessions` are open (or being opened) already.
    pub fn admit(self: &Arc<Self>) -> Option<Admission> {
        let opening = self.opening.fetch_add(1, Ordering::SeqCst) + 1;
        if self.count() + opening > self.limits.max_sessions {
            self.opening.fetch_sub(1, Ordering::SeqCst);
            self.operations.session_refused();
            return None;
        }
        Some(Admission {
            sessions: Arc::clone(self),
        })
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// End the streams clients listen on (their GET streams): the server is
    /// draining. Requests being answered keep their streams.
    pub async fn close_listening_streams(&self) {
        let handles: Vec<_> = self.inner.sessions.read().await.values().cloned().collect();
        for handle in handles {
            let _ = handle.close_standalone_sse_stream(None).await;
        }
    }

    /// Close every session (their streams end): the server is stopping.
    pub async fn close_all(&self) {
        let ids: Vec<SessionId> = self.activity().keys().cloned().collect();
        for id in ids {
            let _ = self.close_session(&id).await;
        }
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Activity>> {
        // Every change to the map is a single insert, remove or field write.
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_count(&self, count: usize) {
        self.operations.set_sessions(count as u64);
    }

    /// The client of `id` spoke.
    fn touch(&self, id: &SessionId) {
        let now = Instant::now();
        let refresh = match self.activity().get_mut(id) {
            Some(activity) => {
                activity.last = now;
                self.store.as_ref().filter(|store| {
                    // A few times per lifetime is enough, and costs the
                    // requests in between nothing.
                    let due = now.duration_since(activity.refreshed) >= store.ttl() / 4;
                    if due {
                        activity.refreshed = now;
                    }
                    due
                })
            }
            None => None,
        };
        if let Some(store) = refresh.cloned() {
            let id = id.clone();
            tokio::spawn(async move {
                if let Err(error) = store.refresh(&id).await {
                    tracing::debug!(session = %id, "{error}");
                }
            });
        }
    }

    /// Session `id` is open here now (new, or restored from the store).
    fn opened(&self, id: &SessionId) {
        let now = Instant::now();
        let count = {
            let mut activity = self.activity();
            activity.insert(
                id.clone(),
                Activity {
                    last: now,
                    open_streams: 0,
                    refreshed: now,
                },
            );
            activity.len()
        };
        self.publish_count(count);
    }

    /// `stream`, counted as open for `id` until it ends or is dropped.
    fn track<S>(
        self: &Arc<Self>,
        id: &SessionId,
        stream: S,
    ) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static + use<S>
    where
        S: Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    {
        if let Some(activity) = self.activity().get_mut(id) {
            activity.open_streams += 1;
            activity.last = Instant::now();
        }
        let guard = OpenStream {
            sessions: Arc::downgrade(self),
            id: id.clone(),
        };
        stream.map(move |message| {
            let _open = &guard;
            message
        })
    }

    /// The sessions idle for the timeout: no stream open, nothing heard.
    fn idle(&self, now: Instant) -> Vec<SessionId> {
        self.activity()
            .iter()
            .filter(|(_, a)| {
                a.open_streams == 0 && now.duration_since(a.last) >= self.limits.idle_timeout
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Close the idle sessions.
async fn sweep(sessions: Arc<Sessions>) {
    for id in sessions.idle(Instant::now()) {
        tracing::debug!(session = %id, "MCP session idle for the timeout: closed");
        if sessions.close_session(&id).await.is_ok() {
            sessions.operations.session_expired();
        }
    }
}

/// A session being opened; see [`Sessions::admit`].
pub struct Admission {
    sessions: Arc<Sessions>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.sessions.opening.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream a session holds open; see [`Sessions::track`].
struct OpenStream {
    sessions: Weak<Sessions>,
    id: SessionId,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(sessions) = self.sessions.upgrade()
            && let Some(activity) = sessions.activity().get_mut(&self.id)
        {
            activity.open_streams = activity.open_streams.saturating_sub(1);
            activity.last = Instant::now();
        }
    }
}

/// The manager rmcp drives, around the shared [`Sessions`].
#[derive(Clone)]
pub struct CountedSessions(pub Arc<Sessions>);

type Error = <LocalSessionManager as SessionManager>::Error;
type Transport = <LocalSessionManager as SessionManager>::Transport;

impl SessionManager for CountedSessions {
    type Error = Error;
    type Transport = Transport;

    async fn create_session(&self) -> Result<(SessionId, Transport), Error> {
        let (id, transport) = self.0.inner.create_session().await?;
        self.0.opened(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Error> {
        self.0.touch(id);
        self.0.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Error> {
        self.0.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Error> {
        self.0.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
        let stream = self.0.inner.create_stream(id, message).await?;
        Ok(self.0.track(id, stream))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Error> {
        self.0.touch(id);
        self.0.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
        let stream = self.0.inner.create_standalone_stream(id).await?;
        Ok(self.0.track(id, stream))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
        let stream = self.0.inner.resume(id, last_event_id).await?;
        Ok(self.0.track(id, stream))
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Transport>, Error> {
        // Asked with a session store, for a session opened on another replica.
        let outcome = self.0.inner.restore_session(id.clone()).await?;
        if matches!(outcome, RestoreOutcome::Restored(_)) {
            tracing::debug!(session = %id, "MCP session restored from the session store");
            self.0.opened(&id);
        }
        Ok(outcome)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.0.inner.event_store()
    }
}

impl Sessions {
    async fn close_session(&self, id: &SessionId) -> Result<(), Error> {
        let result = self.inner.close_session(id).await;
        let count = {
            let mut activity = self.activity();
            activity.remove(id);
            activity.len()
        };
        self.publish_count(count);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_idle_only_without_word_or_open_stream() {
        let limits = SessionLimits {
            max_sessions: 2,
            idle_timeout: Duration::from_secs(60),
        };
        let shutdown = CancellationToken::new();
        let sessions = Sessions::new(limits, Operations::new(), shutdown.clone(), None);
        let manager = CountedSessions(Arc::clone(&sessions));
        let (quiet, _) = manager.create_session().await.unwrap();
        let (listening, _) = manager.create_session().await.unwrap();
        assert_eq!(sessions.count(), 2);
        assert!(sessions.admit().is_none(), "the cap is reached");
        let stream = sessions.track(&listening, futures_util::stream::pending());
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(sessions.idle(later), vec![quiet.clone()]);
        // The stream ends: its session is idle a timeout after that.
        drop(stream);
        let soon = Instant::now() + Duration::from_secs(30);
        assert_eq!(sessions.idle(soon), Vec::<SessionId>::new());
        let mut idle = sessions.idle(Instant::now() + Duration::from_secs(61));
        idle.sort();
        let mut both = vec![quiet, listening];
        both.sort();
        assert_eq!(idle, both);
        sessions.close_all().await;
        assert_eq!(sessions.count(), 0);
        assert!(sessions.admit().is_some(), "room again");
        shutdown.cancel();
    }
}
