//! Plugin changes that reach every replica. The replicas share one plugins
//! folder; the one that makes a change (admin API, console, SIGHUP) writes it
//! there as always, then publishes a [`ChangeNotice`] on Redis. Every other
//! replica re-reads the folder when a notice comes: a reload applies only
//! what differs from what it serves (the named plugins, the definition
//! files), so a notice repeated or crossed by another costs almost nothing.
//!
//! Redis pub/sub keeps nothing for a replica that is not listening: one that
//! was disconnected re-reads the folder when it listens again, and one that
//! was down reads it at start like any server.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{KEY_PREFIX, Redis, RedisUrl};
use crate::events::{Change, Received, ServerEvent};
use crate::registry::Registry;

/// The origin of the reloads a notice causes (in the log and the audit
/// log); changes of this origin are not announced again.
pub const ORIGIN: &str = "cluster";

/// Changes of these origins are not announced: every replica makes them by
/// itself (start, its own watch) or they came from the bus.
const LOCAL_ORIGINS: [&str; 3] = ["startup", "watch", ORIGIN];

/// Events that come this close together are one change (an upload is a
/// plugin event and, with resources, definition events).
const GATHER: Duration = Duration::from_millis(50);

/// Waits between attempts to reach Redis, growing to the last.
const RETRY: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

fn channel() -> String {
    format!("{KEY_PREFIX}changes")
}

/// What one replica tells the others: it changed these plugins or the
/// definition files in the shared folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeNotice {
    /// The replica that made the change (it ignores its own notices).
    pub replica: String,
    /// Who asked it ("admin API", "console", "SIGHUP").
    pub origin: String,
    /// The plugins added, replaced or removed.
    pub plugins: Vec<String>,
    /// Whether resources.yml or prompts.yml changed.
    pub definitions: bool,
}

impl ChangeNotice {
    /// What it names, for the log.
    fn describe(&self) -> String {
        let mut named = self.plugins.join(", ");
        if self.definitions {
            if !named.is_empty() {
                named.push_str(", ");
            }
            named.push_str("resources/prompts");
        }
        if named.is_empty() {
            named.push_str("the plugins folder");
        }
        named
    }
}

/// Announce this replica's changes on the bus at `url` and apply the other
/// replicas' changes, until `shutdown`.
pub fn spawn(registry: Registry, url: &RedisUrl, shutdown: CancellationToken) {
    let replica = replica_id();
    tracing::info!(
        replica,
        bus = %url,
        "plugin changes are shared with the other replicas through Redis"
    );
    let reload = Arc::new(Notify::new());
    match Redis::new(url) {
        Ok(redis) => {
            tokio::spawn(announce(
                registry.clone(),
                redis,
                replica.clone(),
                shutdown.clone(),
            ));
        }
        Err(error) => tracing::error!("plugin changes made here will not be announced: {error}"),
    }
    tokio::spawn(listen(
        url.clone(),
        replica,
        Arc::clone(&reload),
        shutdown.clone(),
    ));
    tokio::spawn(apply(registry, reload, shutdown));
}

/// A name for this replica that no other has: the host name and a random part.
fn replica_id() -> String {
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_string());
    format!("{host}-{:08x}", u32::from_le_bytes(random))
}

/// Publish a notice for every change this replica makes.
async fn announce(registry: Registry, redis: Redis, replica: String, shutdown: CancellationToken) {
    let mut events = registry.bus().subscribe();
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = shutdown.cancelled() => return,
        };
        let mut notice = ChangeNotice {
            replica: replica.clone(),
            origin: String::new(),
            plugins: Vec::new(),
            definitions: false,
        };
        match received {
            Received::Closed => return,
            // Whatever was missed may have been a change: say so.
            Received::Dropped(_) => notice.origin = "unknown (events were missed)".into(),
            Received::Event(event) => {
                if !gather(&event, &mut notice) {
                    continue;
                }
            }
        }
        // The rest of the same change.
        let until = tokio::time::Instant::now() + GATHER;
        while let Ok(received) = tokio::time::timeout_at(until, events.recv()).await {
            match received {
                Received::Event(event) => {
                    gather(&event, &mut notice);
                }
                Received::Dropped(_) => {}
                Received::Closed => break,
            }
        }
        publish(&redis, &notice).await;
    }
}

/// Add `event` to `notice` if it is a change this replica made; whether it was.
fn gather(event: &ServerEvent, notice: &mut ChangeNotice) -> bool {
    let ServerEvent::Lifecycle(event) = event else {
        return false;
    };
    if !matches!(
        event.change,
        Change::Added | Change::Replaced | Change::Removed
    ) || LOCAL_ORIGINS.contains(&event.origin.as_str())
    {
        return false;
    }
    if notice.origin.is_empty() {
        notice.origin = event.origin.clone();
    }
    match &event.plugin {
        Some(plugin) if !notice.plugins.contains(plugin) => notice.plugins.push(plugin.clone()),
        Some(_) => {}
        None => notice.definitions = true,
    }
    true
}

async fn publish(redis: &Redis, notice: &ChangeNotice) {
    let Ok(json) = serde_json::to_string(notice) else {
        return;
    };
    let mut command = redis::cmd("PUBLISH");
    command.arg(channel()).arg(json);
    match redis.run::<i64>(&command, "announce a plugin change").await {
        Ok(listeners) => tracing::debug!(
            listeners,
            "announced to the other replicas: {}",
            notice.describe()
        ),
        // They re-read the folder when they reach Redis again.
        Err(error) => tracing::warn!(
            "the other replicas were not told of this change ({}): {error}",
            notice.describe()
        ),
    }
}

/// Listen for the other replicas' notices, reconnecting as long as it takes;
/// each notice (and each reconnection, which may have missed some) asks
/// for a reload.
async fn listen(url: RedisUrl, replica: String, reload: Arc<Notify>, shutdown: CancellationToken) {
    let mut failures = 0usize;
    let mut connected_before = false;
    loop {
        let subscribed = async {
            let mut pubsub = url.client().get_async_pubsub().await?;
            pubsub.subscribe(channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(super::REDIS_TIMEOUT, subscribed) => attempt,
            _ = shutdown.cancelled() => return,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                if connected_before || failures > 0 {
                    tracing::info!(bus = %url, "listening for plugin changes again; re-reading the plugins folder");
                    reload.notify_one();
                }
                connected_before = true;
                failures = 0;
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = shutdown.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    let notice = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|json| serde_json::from_str::<ChangeNotice>(&json).ok());
                    match notice {
                        Some(notice) if notice.replica == replica => {}
                        Some(notice) => {
                            tracing::info!(
                                from = notice.replica,
                                origin = notice.origin,
                                "another replica changed {}: re-reading the plugins folder",
                                notice.describe()
                            );
                            reload.notify_one();
                        }
                        None => {
                            tracing::warn!("an unreadable message on the change bus was ignored")
                        }
                    }
                }
                tracing::warn!(bus = %url, "lost the connection to the change bus; reconnecting");
            }
            Ok(Err(error)) => {
                if failures == 0 {
                    tracing::warn!(bus = %url, %error, "cannot listen for plugin changes of the other replicas; retrying");
                }
                failures += 1;
            }
            Err(_) => {
                if failures == 0 {
                    tracing::warn!(bus = %url, "cannot listen for plugin changes of the other replicas (no answer); retrying");
                }
                failures += 1;
            }
        }
        let wait = RETRY[failures.min(RETRY.len() - 1)];
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Re-read the shared folder each time a reload is asked for; requests that
/// come during a reload make one more after it, not one each.
async fn apply(registry: Registry, reload: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = reload.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        match registry.reload_all(ORIGIN).await {
            Ok(report) => tracing::info!("plugins folder re-read: {}", report.summary()),
            Err(error) => tracing::error!(
                "the plugins folder changed but was not applied; the previous plugins keep serving: {error}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::events::LifecycleEvent;

    fn event(origin: &str, plugin: Option<&str>, change: Change) -> ServerEvent {
        ServerEvent::Lifecycle(LifecycleEvent {
            at: SystemTime::now(),
            origin: origin.into(),
            plugin: plugin.map(str::to_string),
            change,
            message: String::new(),
        })
    }

    #[test]
    fn a_notice_names_the_changes_made_here_and_nothing_else() {
        let mut notice = ChangeNotice {
            replica: "a".into(),
            origin: String::new(),
            plugins: Vec::new(),
            definitions: false,
        };
        assert!(!gather(
            &event("startup", Some("x"), Change::Added),
            &mut notice
        ));
        assert!(!gather(
            &event(ORIGIN, Some("x"), Change::Replaced),
            &mut notice
        ));
        assert!(!gather(
            &event("admin API", Some("x"), Change::Failed),
            &mut notice
        ));
        assert!(!gather(
            &event("admin API", Some("x"), Change::Reloading),
            &mut notice
        ));
        assert!(gather(
            &event("admin API", Some("hello"), Change::Added),
            &mut notice
        ));
        assert!(gather(
            &event("admin API", Some("hello"), Change::Replaced),
            &mut notice
        ));
        assert!(gather(
            &event("admin API", None, Change::Added),
            &mut notice
        ));
        assert_eq!(notice.origin, "admin API");
        assert_eq!(notice.plugins, vec!["hello".to_string()]);
        assert!(notice.definitions);
        assert_eq!(notice.describe(), "hello, resources/prompts");
    }
}
