//! Several replicas as one service: MCP sessions that any replica can pick
//! up (`--session-store`), and plugin changes that reach every replica
//! (`--cluster-bus`), both on Redis.
//!
//! rmcp does the session work: it saves each session's `initialize`
//! parameters in a [`rmcp`] `SessionStore` and, when a request names a session
//! this replica does not hold, loads them and replays the handshake to make
//! the session here too. [`sessions::RedisSessionStore`] is that store.
//! The plugins folder is shared (a volume); [`changes`] tells the other
//! replicas when an admin change was written there, and they re-read it.
//!
//! Redis is optional at every moment: when it is down, new sessions still
//! open (on the replica that got them), lookups of sessions opened elsewhere
//! fail with a clear error, and the connection comes back by itself.

pub mod changes;
pub mod sessions;

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Every key and channel this server uses starts with this.
pub const KEY_PREFIX: &str = "wasimancer:";

/// How long a Redis command (or a connection attempt) may take before it
/// counts as failed: a replica must not hang its clients on a dead Redis.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis server address, `redis://HOST:PORT/DB` (or `rediss://`, or
/// `redis+unix:///path`), checked when read.
#[derive(Clone)]
pub struct RedisUrl {
    url: String,
    client: redis::Client,
}

impl RedisUrl {
    /// The client for this address (connections are made later).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|error| {
            format!("not a Redis address ({error}); write it like redis://127.0.0.1:6379/0")
        })?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }
}

/// The address without its password, for logs and errors.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.url.split_once("://"), self.url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => write!(f, "{scheme}://…{}", &self.url[at..]),
            _ => f.write_str(&self.url),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// Something Redis could not do.
#[derive(Debug, thiserror::Error)]
#[error("Redis at {url} could not {action}: {source}")]
pub struct RedisError {
    pub url: String,
    pub action: &'static str,
    #[source]
    pub source: redis::RedisError,
}

/// One shared connection to a Redis server, made on first use and made
/// again after it breaks (the client crate's connection manager).
#[derive(Clone)]
pub struct Redis {
    url: RedisUrl,
    connection: ConnectionManager,
}

impl Redis {
    /// A connection to `url`, opened lazily: this never waits for Redis, so a
    /// replica starts (and serves) while Redis is down.
    pub fn new(url: &RedisUrl) -> Result<Self, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            // One quick retry: a client waits for the answer.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(url.client.clone(), config)
            .map_err(|source| RedisError {
                url: url.to_string(),
                action: "be set up",
                source,
            })?;
        Ok(Self {
            url: url.clone(),
            connection,
        })
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Run `command`, naming `action` in the error. A connection found
    /// broken (Redis restarted since the last command) is made again and the
    /// command sent once more: the first command after a restart would
    /// otherwise fail although Redis is there.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
        action: &'static str,
    ) -> Result<T, RedisError> {
        let mut connection = self.connection.clone();
        let result = match command.query_async(&mut connection).await {
            Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                command.query_async(&mut connection).await
            }
            other => other,
        };
        result.map_err(|source| RedisError {
            url: self.url.to_string(),
            action,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_shown_without_password() {
        let url: RedisUrl = "redis://user:secret@10.0.0.5:6380/2".parse().unwrap();
        assert_eq!(url.to_string(), "redis://…@10.0.0.5:6380/2");
        let plain: RedisUrl = "redis://127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379/0");
        let error = "http://127.0.0.1:6379".parse::<RedisUrl>().unwrap_err();
        assert!(error.contains("redis://127.0.0.1:6379/0"), "{error}");
    }
}
