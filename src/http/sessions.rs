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
//! A session whose client has been quiet for `--session-hibernate-after`
//! and holds no stream open is put to sleep: rmcp's worker for it, its tasks
//! and channels (about 70 KB) are dropped and only its handshake is kept
//! ([`Handshakes`]); its next request wakes it, as rmcp restores a session
//! from a store, by replaying the handshake to a new worker. Its client sees
//! nothing of this (the session id and everything it was told stay valid).
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
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionError,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::handshakes::Handshakes;
use crate::cluster::sessions::RedisSessionStore;
use crate::operations::Operations;

/// How long a request for a session waits for that session's worker to end
/// as it is put to sleep, before the request fails (it takes microseconds).
const FALLING_ASLEEP: Duration = Duration::from_secs(5);

/// The bounds of the MCP sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// The most sessions open at once; more are refused.
    pub max_sessions: u64,
    /// A session whose client has been quiet this long is closed.
    pub idle_timeout: Duration,
    /// A session whose client has been quiet this long is put to sleep
    /// (`None`: never).
    pub hibernate_after: Option<Duration>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            idle_timeout: Duration::from_secs(300),
            hibernate_after: Some(Duration::from_secs(10)),
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
    /// Every session's handshake, to wake it up with.
    handshakes: Arc<Handshakes>,
}

struct Activity {
    last: Instant,
    open_streams: usize,
    /// When the session's life in the store was last extended.
    refreshed: Instant,
    state: Residence,
    /// The client's name, from its `initialize`.
    client: Option<Arc<str>>,
    /// Whether the client has sent `notifications/initialized`, after which
    /// its calls may be answered outside rmcp (see [`QuickCall`]).
    initialized: bool,
    /// The calls of this session answered outside rmcp now, to cancel.
    quick_calls: Vec<(RequestId, CancellationToken)>,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            last: now,
            open_streams: 0,
            refreshed: now,
            state: Residence::Awake,
            client: None,
            initialized: false,
            quick_calls: Vec::new(),
        }
    }

    /// No stream open, nothing heard from the client for `quiet`.
    fn quiet_for(&self, quiet: Duration, now: Instant) -> bool {
        self.open_streams == 0 && now.duration_since(self.last) >= quiet
    }
}

/// Whether rmcp holds a worker for a session.
enum Residence {
    Awake,
    /// Its worker was told to close; the sender says `true` once the worker
    /// has ended (rmcp then calls `close_session`, which is not the end of
    /// the session here).
    FallingAsleep(watch::Sender<bool>),
    /// Only its handshake is kept.
    Asleep,
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
            handshakes: Arc::new(Handshakes::new(store)),
        });
        // A few looks per timeout.
        let shortest = limits
            .hibernate_after
            .map_or(limits.idle_timeout, |after| after.min(limits.idle_timeout));
        let period = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(15));
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

    /// Where rmcp saves each session's handshake and finds it again.
    pub fn handshakes(&self) -> Arc<Handshakes> {
        Arc::clone(&self.handshakes)
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
        let refresh = self
            .activity()
            .get_mut(id)
            .and_then(|activity| self.heard(activity, now).cloned());
        self.refresh(id, refresh);
    }

    /// Note that a session's client spoke at `now`; the store to extend the
    /// session in, when that is due.
    fn heard(&self, activity: &mut Activity, now: Instant) -> Option<&RedisSessionStore> {
        activity.last = now;
        self.handshakes.shared().filter(|store| {
            // A few times per lifetime is enough, and costs the requests in
            // between nothing.
            let due = now.duration_since(activity.refreshed) >= store.ttl() / 4;
            if due {
                activity.refreshed = now;
            }
            due
        })
    }

    /// Extend session `id`'s life in `store`, in the background.
    fn refresh(&self, id: &SessionId, store: Option<RedisSessionStore>) {
        if let Some(store) = store {
            let id = id.clone();
            tokio::spawn(async move {
                if let Err(error) = store.refresh(&id).await {
                    tracing::debug!(session = %id, "{error}");
                }
            });
        }
    }

    /// Session `id` is open here now (new, restored from the store, or
    /// woken); where it was before, if it was known.
    ///
    /// A woken session keeps what it had: calls answered outside rmcp may
    /// still run, and the handshake replayed to its new worker is the one
    /// it had.
    fn opened(&self, id: &SessionId) -> Option<Residence> {
        let now = Instant::now();
        let (before, count) = {
            let mut activity = self.activity();
            let before = match activity.get_mut(id) {
                Some(known) => {
                    known.last = now;
                    known.refreshed = now;
                    Some(std::mem::replace(&mut known.state, Residence::Awake))
                }
                None => {
                    activity.insert(id.clone(), Activity::new(now));
                    None
                }
            };
            (before, activity.len())
        };
        self.publish_count(count);
        before
    }

    /// Start a call in session `id` that is answered outside rmcp (see
    /// [`super::quick_calls`]), counted as a stream the session holds open
    /// until the [`QuickCall`] is dropped. `None` when the session is not
    /// held here, its handshake is not done, or a call with the same id is
    /// running: rmcp then serves the request, as it does any other.
    pub fn quick_call(self: &Arc<Self>, id: &str, request: &RequestId) -> Option<QuickCall> {
        let now = Instant::now();
        let mut activity = self.activity();
        let (id, known) = activity.get_key_value(id)?;
        let id = id.clone();
        let client = known.client.clone().filter(|_| known.initialized)?;
        if known
            .quick_calls
            .iter()
            .any(|(running, _)| running == request)
        {
            return None;
        }
        let known = activity.get_mut(&id)?;
        let cancel = CancellationToken::new();
        known.quick_calls.push((request.clone(), cancel.clone()));
        known.open_streams += 1;
        let refresh = self.heard(known, now).cloned();
        drop(activity);
        self.refresh(&id, refresh);
        Some(QuickCall {
            session: id.clone(),
            client,
            cancel,
            _open: OpenStream {
                sessions: Arc::downgrade(self),
                id,
                call: Some(request.clone()),
            },
        })
    }

    /// The client of session `id` cancelled its request `request`: if that
    /// is a call answered outside rmcp, stop it.
    pub fn cancel_quick_call(&self, id: &str, request: &RequestId) {
        if let Some(known) = self.activity().get(id)
            && let Some((_, cancel)) = known.quick_calls.iter().find(|(r, _)| r == request)
        {
            cancel.cancel();
        }
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
            call: None,
        };
        stream.map(move |message| {
            let _open = &guard;
            message
        })
    }

    /// The sessions idle for the timeout: no stream open, nothing heard.
    fn idle(&self, now: Instant) -> Vec<SessionId> {
        self.quiet_for(self.limits.idle_timeout, now, |_| true)
    }

    /// The sessions awake and quiet long enough to be put to sleep.
    fn drowsy(&self, now: Instant) -> Vec<SessionId> {
        let Some(after) = self.limits.hibernate_after else {
            return Vec::new();
        };
        self.quiet_for(after, now, |a| matches!(a.state, Residence::Awake))
    }

    /// The sessions with no stream open that have heard nothing from their
    /// client for `quiet`, and are `also`.
    fn quiet_for(
        &self,
        quiet: Duration,
        now: Instant,
        also: impl Fn(&Activity) -> bool,
    ) -> Vec<SessionId> {
        self.activity()
            .iter()
            .filter(|(_, a)| a.quiet_for(quiet, now) && also(a))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Put session `id` to sleep if it is still quiet: drop rmcp's worker
    /// for it, keep its handshake.
    async fn hibernate(&self, id: &SessionId) {
        let Some(after) = self.limits.hibernate_after else {
            return;
        };
        let handle = {
            // Under rmcp's lock on its sessions: a request that found this
            // session awake (`has_session`) marked it heard before it looked,
            // so it is either not quiet here or finds the session gone and
            // wakes it once it is asleep.
            let mut workers = self.inner.sessions.write().await;
            let now = Instant::now();
            {
                let mut activity = self.activity();
                let Some(a) = activity.get_mut(id) else {
                    return;
                };
                if !a.quiet_for(after, now) || !matches!(a.state, Residence::Awake) {
                    return;
                }
                a.state = Residence::FallingAsleep(watch::Sender::new(false));
            }
            self.operations.session_fell_asleep();
            workers.remove(id)
        };
        tracing::debug!(session = %id, "MCP session quiet: put to sleep");
        match handle {
            // rmcp calls `close_session` once the worker has ended (or has
            // already, if it ended on its own and `close` fails).
            Some(handle) => {
                let _ = handle.close().await;
            }
            // No worker, so no word from rmcp to wait for.
            None => {
                self.worker_ended(id);
            }
        }
    }

    /// rmcp's worker for session `id` has ended. `false` if the session was
    /// falling asleep: it lives on, asleep; `true` if it is to be closed.
    fn worker_ended(&self, id: &SessionId) -> bool {
        let mut activity = self.activity();
        let Some(a) = activity.get_mut(id) else {
            return true;
        };
        match std::mem::replace(&mut a.state, Residence::Asleep) {
            Residence::FallingAsleep(asleep) => {
                asleep.send_replace(true);
                false
            }
            state => {
                a.state = state;
                true
            }
        }
    }

    /// Session `id` is being woken: wait for its old worker to be gone.
    async fn wait_until_asleep(&self, id: &SessionId) -> Result<(), Error> {
        let mut falling = match self.activity().get(id).map(|a| &a.state) {
            Some(Residence::FallingAsleep(asleep)) => asleep.subscribe(),
            _ => return Ok(()),
        };
        match tokio::time::timeout(FALLING_ASLEEP, falling.wait_for(|asleep| *asleep)).await {
            // Ended, or the session was closed meanwhile (the sender went).
            Ok(_) => Ok(()),
            Err(_) => Err(LocalSessionManagerError::SessionError(SessionError::Io(
                std::io::Error::other(format!(
                    "session {id} was being put to sleep and its worker did not end within {FALLING_ASLEEP:?}"
                )),
            ))),
        }
    }

    /// Session `id`, asleep or not, is served by a new worker of rmcp's.
    fn woken(&self, id: &SessionId) {
        // Looked up and replaced at once: a close in between would count
        // the session out of the asleep ones twice.
        let was_asleep = self
            .opened(id)
            .is_some_and(|state| !matches!(state, Residence::Awake));
        if was_asleep {
            tracing::debug!(session = %id, "MCP session woken by its client");
            self.operations.session_woke();
        } else {
            tracing::debug!(session = %id, "MCP session restored from the session store");
        }
    }
}

/// Close the idle sessions, put the quiet ones to sleep.
async fn sweep(sessions: Arc<Sessions>) {
    let now = Instant::now();
    for id in sessions.idle(now) {
        tracing::debug!(session = %id, "MCP session idle for the timeout: closed");
        if sessions.close_session(&id).await.is_ok() {
            sessions.operations.session_expired();
        }
    }
    for id in sessions.drowsy(now) {
        sessions.hibernate(&id).await;
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

/// A stream a session holds open; see [`Sessions::track`] and
/// [`Sessions::quick_call`].
struct OpenStream {
    sessions: Weak<Sessions>,
    id: SessionId,
    /// The request of a call answered outside rmcp, which ends with this.
    call: Option<RequestId>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(sessions) = self.sessions.upgrade()
            && let Some(activity) = sessions.activity().get_mut(&self.id)
        {
            activity.open_streams = activity.open_streams.saturating_sub(1);
            activity.last = Instant::now();
            if let Some(call) = &self.call {
                activity.quick_calls.retain(|(running, _)| running != call);
            }
        }
    }
}

/// A call in a session answered outside rmcp; see [`Sessions::quick_call`].
pub struct QuickCall {
    pub session: SessionId,
    /// The client's name, from its handshake.
    pub client: Arc<str>,
    /// Cancelled when the client cancels the call or its session ends.
    pub cancel: CancellationToken,
    _open: OpenStream,
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
        if let ClientJsonRpcMessage::Request(request) = &message
            && let ClientRequest::InitializeRequest(initialize) = &request.request
            && let Some(known) = self.0.activity().get_mut(id)
        {
            known.client = Some(initialize.params.client_info.name.as_str().into());
        }
        self.0.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Error> {
        // Heard before looking: see `Sessions::hibernate`.
        self.0.touch(id);
        self.0.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Error> {
        // rmcp calls this when a DELETE ends the session, and when a
        // session's worker has ended, which for one put to sleep is not the
        // end of the session.
        if !self.0.worker_ended(id) {
            return Ok(());
        }
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
        if let ClientJsonRpcMessage::Notification(notification) = &message
            && let ClientNotification::InitializedNotification(_) = &notification.notification
            && let Some(known) = self.0.activity().get_mut(id)
        {
            known.initialized = true;
        }
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
        // Asked for a session put to sleep here, or opened on another
        // replica; rmcp then replays its handshake to the new worker.
        self.0.wait_until_asleep(&id).await?;
        let outcome = self.0.inner.restore_session(id.clone()).await?;
        if matches!(outcome, RestoreOutcome::Restored(_)) {
            self.0.woken(&id);
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
        let (count, was_asleep) = {
            let mut activity = self.activity();
            let removed = activity.remove(id);
            // Its calls answered outside rmcp end with it, as rmcp's do.
            for (_, cancel) in removed.iter().flat_map(|a| &a.quick_calls) {
                cancel.cancel();
            }
            let was_asleep = removed.is_some_and(|a| !matches!(a.state, Residence::Awake));
            (activity.len(), was_asleep)
        };
        self.handshakes.forget(id);
        if was_asleep {
            self.operations.asleep_session_closed();
        }
        self.publish_count(count);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore};

    #[tokio::test]
    async fn a_session_is_idle_only_without_word_or_open_stream() {
        let limits = SessionLimits {
            max_sessions: 2,
            idle_timeout: Duration::from_secs(60),
            hibernate_after: Some(Duration::from_secs(10)),
        };
        let shutdown = CancellationToken::new();
        let sessions = Sessions::new(limits, Operations::new(), shutdown.clone(), None);
        let manager = CountedSessions(Arc::clone(&sessions));
        let (quiet, _) = manager.create_session().await.unwrap();
        let (listening, _) = manager.create_session().await.unwrap();
        assert_eq!(sessions.count(), 2);
        assert!(sessions.admit().is_none(), "the cap is reached");
        let stream = sessions.track(&listening, futures_util::stream::pending());
        let later = Instant::now() + Duration::from_secs(11);
        assert_eq!(
            sessions.drowsy(later),
            vec![quiet.clone()],
            "a stream keeps it awake"
        );
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

    fn hibernating(
        hibernate_after: Duration,
    ) -> (Arc<Sessions>, CountedSessions, CancellationToken) {
        let limits = SessionLimits {
            max_sessions: 10,
            idle_timeout: Duration::from_secs(3600),
            hibernate_after: Some(hibernate_after),
        };
        let shutdown = CancellationToken::new();
        // The first sweep comes after 2.5 s: the tests, done long before,
        // call `hibernate` themselves.
        let sessions = Sessions::new(limits, Operations::new(), shutdown.clone(), None);
        let manager = CountedSessions(Arc::clone(&sessions));
        (sessions, manager, shutdown)
    }

    /// Make session `id` look quiet for `quiet` already.
    fn quiet(sessions: &Sessions, id: &SessionId, quiet: Duration) {
        let mut activity = sessions.activity();
        let a = activity.get_mut(id).unwrap();
        a.last = Instant::now().checked_sub(quiet).unwrap();
    }

    #[tokio::test]
    async fn a_session_a_request_just_found_is_not_put_to_sleep() {
        let after = Duration::from_secs(10);
        let (sessions, manager, shutdown) = hibernating(after);
        let (id, _transport) = manager.create_session().await.unwrap();
        quiet(&sessions, &id, Duration::from_secs(11));
        // rmcp found the session for a request, which is on its way in.
        assert!(manager.has_session(&id).await.unwrap());
        sessions.hibernate(&id).await;
        assert!(manager.has_session(&id).await.unwrap(), "still awake");
        assert_eq!(sessions.operations.sessions_asleep(), 0);
        // Without a request, it falls asleep.
        quiet(&sessions, &id, Duration::from_secs(11));
        sessions.hibernate(&id).await;
        assert!(!manager.has_session(&id).await.unwrap(), "asleep");
        assert_eq!(sessions.operations.sessions_asleep(), 1);
        shutdown.cancel();
    }

    /// Make session `id`'s handshake done, as `initialize` and
    /// `notifications/initialized` passing through the manager do.
    fn shake_hands(sessions: &Sessions, id: &SessionId) {
        let mut activity = sessions.activity();
        let known = activity.get_mut(id).unwrap();
        known.client = Some("test".into());
        known.initialized = true;
    }

    #[tokio::test]
    async fn a_quick_call_waits_for_the_handshake_holds_its_session_and_ends_with_it() {
        let after = Duration::from_secs(10);
        let (sessions, manager, shutdown) = hibernating(after);
        let (id, _transport) = manager.create_session().await.unwrap();
        let (first, second) = (RequestId::Number(1), RequestId::String("2".into()));
        assert!(
            sessions.quick_call(&id, &first).is_none(),
            "no handshake yet"
        );
        assert!(sessions.quick_call("no such session", &first).is_none());
        shake_hands(&sessions, &id);

        let one = sessions.quick_call(&id, &first).expect("a quick call");
        assert_eq!((&*one.session, &*one.client), (&*id, "test"));
        assert!(
            sessions.quick_call(&id, &first).is_none(),
            "the same id twice at once is for rmcp to refuse"
        );
        let two = sessions.quick_call(&id, &second).expect("another call");
        // A running call keeps the session from sleep and from expiring.
        quiet(&sessions, &id, Duration::from_secs(11));
        let later = Instant::now() + Duration::from_secs(3601);
        assert!(sessions.drowsy(later).is_empty());
        assert!(sessions.idle(later).is_empty());

        sessions.cancel_quick_call(&id, &second);
        assert!(two.cancel.is_cancelled() && !one.cancel.is_cancelled());
        drop(two);
        assert!(
            sessions.quick_call(&id, &second).is_some(),
            "its id is free"
        );
        // The session ends: its calls are stopped.
        manager.close_session(&id).await.unwrap();
        assert!(one.cancel.is_cancelled());
        drop(one);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn the_end_of_a_sleeping_sessions_worker_does_not_close_it() {
        let after = Duration::from_secs(10);
        let (sessions, manager, shutdown) = hibernating(after);
        let (id, _transport) = manager.create_session().await.unwrap();
        let state: SessionState = serde_json::from_value(serde_json::json!({
            "initialize_params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}
            }
        }))
        .unwrap();
        sessions.handshakes.store(&id, &state).await.unwrap();
        quiet(&sessions, &id, Duration::from_secs(11));
        sessions.hibernate(&id).await;
        // rmcp says the worker has ended, as it does for every worker.
        manager.close_session(&id).await.unwrap();
        assert_eq!(sessions.count(), 1, "asleep, not closed");
        assert!(sessions.handshakes.load(&id).await.unwrap().is_some());
        // A request wakes it.
        let woken = manager.restore_session(id.clone()).await.unwrap();
        assert!(matches!(woken, RestoreOutcome::Restored(_)));
        let operations = &sessions.operations;
        assert_eq!(
            (operations.sessions_asleep(), operations.sessions_woken()),
            (0, 1)
        );
        // A DELETE, or the end of an awake session's worker, closes it.
        manager.close_session(&id).await.unwrap();
        assert_eq!(sessions.count(), 0);
        assert!(sessions.handshakes.load(&id).await.unwrap().is_none());
        shutdown.cancel();
    }
}
