//! News from the server: its welcome, updates, replies to what the console
//! asked, the connection lost; and the counters and the clock.

use std::time::{Duration, Instant};

use super::{App, Connection, Notice, Pending, ServerView, Tokens};
use crate::console::calls::CallRow;
use crate::control::{Counters, Reply, Update, Welcome};
use crate::events::{Change, ServerEvent, SharedEvent};

impl App {
    pub(super) fn on_welcome(&mut self, welcome: Welcome, at: Instant) {
        let uptime = Duration::from_millis(welcome.server.uptime_ms);
        self.server = Some(ServerView {
            started: at.checked_sub(uptime).unwrap_or(at),
            summary: welcome.server,
        });
        self.connection = Connection::Attached;
        self.set_plugins(welcome.plugins);
        self.set_resources(welcome.resources);
        self.set_prompts(welcome.prompts);
        self.calls.replace(
            welcome
                .calls
                .iter()
                .filter_map(|e| CallRow::new(e.event().clone())),
        );
        self.log.replace(welcome.log);
        self.stats.window = None;
        self.set_counters(welcome.counters);
        self.now = self.now.max(at);
    }

    pub(super) fn on_update(&mut self, update: Update, at: Instant) {
        match update {
            Update::Event { event } => self.on_server_event(event),
            Update::Missed { count } => self.stats.dropped += count,
            Update::Plugins { plugins } => self.set_plugins(plugins),
            Update::Resources { resources } => self.set_resources(resources),
            Update::Prompts { prompts } => self.set_prompts(prompts),
            Update::Log { lines } => {
                for line in lines {
                    self.log.push(line);
                }
            }
            Update::Counters(counters) => self.set_counters(counters),
        }
        self.now = self.now.max(at);
    }

    pub(super) fn on_server_event(&mut self, event: SharedEvent) {
        if let ServerEvent::Lifecycle(change) = &*event {
            if let Some(plugin) = &change.plugin {
                if change.change == Change::Reloading {
                    self.plugins.reloading.insert(plugin.clone());
                } else {
                    self.plugins.reloading.remove(plugin);
                }
            }
            return;
        }
        if let Some(row) = CallRow::new(event.event().clone()) {
            self.calls.push(row);
        }
    }

    pub(super) fn on_reply(&mut self, id: u64, reply: Reply) {
        if let Some(pending) = self.pending.remove(&id) {
            if let Reply::Failed { reason } = &reply {
                self.notice = Notice::error(format!("the server did not answer: {reason}"));
            }
            self.route(id, pending, reply);
        }
    }

    /// Hand a reply to what waits for it.
    fn route(&mut self, id: u64, pending: Pending, reply: Reply) {
        match pending {
            Pending::Form { form } => self.on_form_reply(&form, id, reply),
            Pending::Reload { plugin } => self.on_reload_reply(plugin, reply),
            Pending::Detail { call, replay } => self.on_detail(call, replay, reply),
            Pending::Tokens => {
                if let Reply::Tokens { mcp, admin } = reply {
                    self.tokens = Some(Tokens { mcp, admin });
                    self.keep_plugin_selection_visible();
                }
            }
        }
    }

    /// The connection is gone: what was asked will not be answered, and
    /// the counters are as of then.
    pub(super) fn on_disconnected(&mut self, reason: String, retrying: bool) {
        let mut waiting: Vec<_> = self.pending.drain().collect();
        waiting.sort_by_key(|(id, _)| *id);
        for (id, pending) in waiting {
            let reply = Reply::Failed {
                reason: format!("the connection to the server was lost: {reason}"),
            };
            self.route(id, pending, reply);
        }
        self.stats.in_flight = 0;
        self.stats.busy.clear();
        self.stats.progress.clear();
        self.connection = Connection::Lost { reason, retrying };
    }

    // --- counters ------------------------------------------------------------

    fn set_counters(&mut self, counters: Counters) {
        let stats = &mut self.stats;
        stats.calls = counters.calls;
        stats.errors = counters.errors;
        stats.in_flight = counters.in_flight;
        stats.busy = counters.busy;
        stats.progress = counters.progress;
        stats.sessions = counters.sessions;
        stats.rate_limited = counters.rate_limited;
        stats.phase = counters.phase;
    }

    pub(super) fn on_tick(&mut self, now: Instant) {
        let stats = &mut self.stats;
        match stats.window {
            None => stats.window = Some((now, stats.calls)),
            Some((start, calls)) => {
                let elapsed = now.saturating_duration_since(start);
                if elapsed >= Duration::from_secs(1) {
                    let rate = stats.calls.saturating_sub(calls) as f64 / elapsed.as_secs_f64();
                    self.dirty |= (rate - stats.calls_per_second).abs() > f64::EPSILON;
                    stats.calls_per_second = rate;
                    stats.window = Some((now, stats.calls));
                }
            }
        }
        // The uptime shows seconds.
        let before = self.uptime().as_secs();
        self.now = self.now.max(now);
        self.dirty |= self.uptime().as_secs() != before;
    }
}
