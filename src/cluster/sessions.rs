//! rmcp's `SessionStore` on Redis: a session's `initialize` parameters under
//! `wasimancer:session:ID`, living for the session idle timeout after its
//! client last spoke (any replica that hears the client extends it).

use std::time::Duration;

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use super::{KEY_PREFIX, Redis};

/// Sessions in Redis, for every replica to restore.
#[derive(Clone)]
pub struct RedisSessionStore {
    redis: Redis,
    /// How long a session lives in Redis without a word from its client.
    ttl: Duration,
}

/// Why a session could not be saved, found or removed: said so that the
/// client (it gets this in the 500 answer) and the operator know what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the session store is unreachable ({0}); this session was opened on another replica and \
         cannot be restored here until Redis is back: retry, or initialize a new session"
    )]
    Unreachable(#[source] super::RedisError),
    #[error("the session store holds something unreadable for session {id}: {reason}")]
    Unreadable { id: String, reason: String },
}

impl RedisSessionStore {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    /// How long a session lives in Redis after its client last spoke.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(id: &str) -> String {
        format!("{KEY_PREFIX}session:{id}")
    }

    fn ttl_seconds(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// The client of session `id` spoke: it lives another TTL in Redis.
    pub async fn refresh(&self, id: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("EXPIRE");
        command.arg(Self::key(id)).arg(self.ttl_seconds());
        self.redis
            .run::<i64>(&command, "extend a session")
            .await
            .map(drop)
            .map_err(StoreError::Unreachable)
    }

    /// One session lookup as rmcp makes it on a replica that does not hold
    /// the session (for the benchmark's cost of a lookup).
    pub async fn lookup(&self, id: &str) -> Result<Option<SessionState>, StoreError> {
        let mut command = redis::cmd("GET");
        command.arg(Self::key(id));
        let Some(json) = self
            .redis
            .run::<Option<String>>(&command, "look up a session")
            .await
            .map_err(StoreError::Unreachable)?
        else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|error| StoreError::Unreadable {
                id: id.to_string(),
                reason: error.to_string(),
            })
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        self.lookup(session_id).await.map_err(|error| {
            tracing::warn!(session = session_id, "cannot restore the session: {error}");
            error.into()
        })
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let json = serde_json::to_string(state)?;
        let mut command = redis::cmd("SET");
        command
            .arg(Self::key(session_id))
            .arg(json)
            .arg("EX")
            .arg(self.ttl_seconds());
        self.redis
            .run::<()>(&command, "save a session")
            .await
            .map_err(|error| {
                // rmcp logs it too, tersely; this says what it means.
                tracing::warn!(
                    session = session_id,
                    "the session works on this replica only: {error}"
                );
                StoreError::Unreachable(error).into()
            })
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(Self::key(session_id));
        self.redis
            .run::<i64>(&command, "remove a session")
            .await
            .map(drop)
            .map_err(|error| StoreError::Unreachable(error).into())
    }
}
