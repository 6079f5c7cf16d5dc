//! Each MCP session's handshake (its `initialize` parameters), kept so that
//! rmcp can bring the session back: after it was put to sleep here (see
//! [`super::sessions`]), or when it was opened on another replica and is
//! in the shared store (`--session-store`).
//!
//! rmcp asks for this as its `SessionStore`: it saves the handshake of each
//! new session, and for a request in a session it does not hold, loads the
//! handshake and replays it to a new session worker.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use crate::cluster::sessions::RedisSessionStore;

/// The handshakes of the sessions this replica serves, in memory, and of
/// every replica's sessions in the shared store, if there is one.
pub struct Handshakes {
    /// Session id to its handshake as JSON: smaller than the parsed
    /// parameters, and read only when a session wakes up.
    here: Mutex<HashMap<Box<str>, Box<str>>>,
    shared: Option<RedisSessionStore>,
}

impl Handshakes {
    pub fn new(shared: Option<RedisSessionStore>) -> Self {
        Self {
            here: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// The store the replicas share, if any.
    pub fn shared(&self) -> Option<&RedisSessionStore> {
        self.shared.as_ref()
    }

    /// Session `id` has ended on this replica: its handshake is not needed
    /// here any more. (The shared store forgets it by itself, a session idle
    /// timeout after its client last spoke.)
    pub fn forget(&self, id: &str) {
        self.here().remove(id);
    }

    fn keep(&self, id: &str, state: &SessionState) -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(state)?;
        self.here().insert(id.into(), json.into());
        Ok(())
    }

    fn here(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Box<str>>> {
        // Every change to the map is a single insert or remove.
        self.here
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl SessionStore for Handshakes {
    async fn load(&self, id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let kept = self.here().get(id).cloned();
        if let Some(json) = kept {
            return Ok(Some(serde_json::from_str(&json)?));
        }
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let state = shared.load(id).await?;
        if let Some(state) = &state {
            // This replica serves the session from now on.
            self.keep(id, state)?;
        }
        Ok(state)
    }

    async fn store(&self, id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        self.keep(id, state)?;
        if let Some(shared) = &self.shared {
            shared.store(id, state).await?;
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), SessionStoreError> {
        self.forget(id);
        if let Some(shared) = &self.shared {
            shared.delete(id).await?;
        }
        Ok(())
    }
}
