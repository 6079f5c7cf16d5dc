//! The server's side of every console: what a console gets when it
//! attaches ([`Welcome`]), the news it gets after ([`Feed`]), and what it
//! may ask ([`Hub::handle`]). The Unix socket, the admin HTTP side and the
//! in-process console all go through here.
//!
//! A feed never makes the server wait: it looks at the server every
//! [`TICK`] and reads what is new from rings the call path writes into
//! anyway (recent events, log lines) and from atomic counters. A console
//! that looks too seldom loses the oldest events and is told how many.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::{Interval, MissedTickBehavior};

use tokio::sync::watch;

use super::protocol::{
    Counters, Limits, PluginView, PromptView, Reply, Request, ResourceView, ServerSummary,
    ToolView, Update, Welcome,
};
use crate::events::CallSource;
use crate::http::Token;
use crate::logging::LogBuffer;
use crate::operations::Operations;
use crate::registry::{PluginEntry, PromptSet, Registry, ResourceSet, Snapshot};

/// How often a feed looks at the server: a console draws at most this often.
pub const TICK: Duration = Duration::from_millis(100);
/// How many recent calls a welcome carries.
const WELCOME_CALLS: usize = 1000;
/// The most events one update carries; more wait for the next tick.
const EVENTS_PER_UPDATE: usize = 4096;

/// What a hub tells consoles about the server's set-up.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Where `/mcp` is served.
    pub address: SocketAddr,
    pub mcp_token: Option<Token>,
    pub admin_token: Option<Token>,
    pub stateless: bool,
}

/// The consoles' way into a server. Cloning is cheap.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    operations: Operations,
    log: LogBuffer,
    settings: HubSettings,
    started: Instant,
}

impl Hub {
    pub fn new(
        registry: Registry,
        operations: Operations,
        log: LogBuffer,
        settings: HubSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                operations,
                log,
                settings,
                started: Instant::now(),
            }),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The server's phase, sessions and refusals.
    pub fn operations(&self) -> &Operations {
        &self.inner.operations
    }

    /// Who the server is, as of now.
    pub fn summary(&self) -> ServerSummary {
        let settings = &self.inner.settings;
        ServerSummary {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            address: settings.address,
            mcp_token: settings.mcp_token.as_ref().map(Token::masked),
            admin_token: settings.admin_token.as_ref().map(Token::masked),
            uptime_ms: self.inner.started.elapsed().as_millis() as u64,
            stateless: settings.stateless,
            catalog: self.inner.registry.catalog_path().display().to_string(),
        }
    }

    /// Attach a console: the picture as of now, and the feed of what
    /// happens from then on (nothing missed, nothing twice).
    pub fn attach(&self) -> (Welcome, Feed) {
        let registry = &self.inner.registry;
        let (calls, events_seen) = registry.bus().last_calls(WELCOME_CALLS);
        let (log, log_seen) = self.inner.log.since(0);
        let snapshot = registry.snapshot();
        let counters = self.counters(&snapshot);
        // Watch first, then read: a change in between is sent again, not lost.
        let mut resources = registry.watch_resources();
        let mut prompts = registry.watch_prompts();
        resources.mark_unchanged();
        prompts.mark_unchanged();
        let welcome = Welcome {
            server: self.summary(),
            plugins: plugin_views(&snapshot),
            resources: resource_views(&registry.resources()),
            prompts: prompt_views(&registry.prompts()),
            calls,
            log,
            counters: counters.clone(),
        };
        let feed = Feed {
            hub: self.clone(),
            events_seen,
            log_seen,
            generation: snapshot.generation,
            resources,
            prompts,
            counters,
            ticker: None,
        };
        (welcome, feed)
    }

    /// Do what a console asks.
    pub async fn handle(&self, request: Request) -> Reply {
        let registry = &self.inner.registry;
        match request {
            Request::Call { tool, arguments } => Reply::Called {
                result: registry
                    .call(CallSource::Console, &tool, Some(arguments))
                    .await,
            },
            Request::ReloadPlugin { plugin } => Reply::Reloaded {
                result: registry
                    .reload_plugin(&plugin, "console")
                    .await
                    .map_err(|error| error.to_string()),
            },
            Request::ReloadAll => Reply::Reloaded {
                result: registry
                    .reload_all("console")
                    .await
                    .map_err(|error| error.to_string()),
            },
            Request::ReadResource { uri } => Reply::Read {
                result: registry.read_resource(CallSource::Console, &uri).await,
            },
            Request::RenderPrompt { name, arguments } => Reply::Rendered {
                result: registry
                    .render_prompt(CallSource::Console, &name, Some(arguments))
                    .await,
            },
            Request::CallDetail { call } => Reply::CallDetail {
                detail: registry.call_detail(call).map(|detail| (*detail).clone()),
            },
            Request::Tokens => {
                let reveal = |token: &Option<Token>| token.as_ref().map(|t| t.reveal().to_string());
                Reply::Tokens {
                    mcp: reveal(&self.inner.settings.mcp_token),
                    admin: reveal(&self.inner.settings.admin_token),
                }
            }
        }
    }
}

/// What one console learns after its welcome.
pub struct Feed {
    hub: Hub,
    /// The number of the next recent event to read.
    events_seen: u64,
    log_seen: u64,
    generation: u64,
    resources: watch::Receiver<u64>,
    prompts: watch::Receiver<u64>,
    counters: Counters,
    /// Made on first use: it needs the async runtime.
    ticker: Option<Interval>,
}

impl Feed {
    /// Wait for the next tick at which something changed, and say what.
    /// Cancel-safe: it only waits on a timer.
    pub async fn next(&mut self) -> Vec<Update> {
        loop {
            let ticker = self.ticker.get_or_insert_with(|| {
                let mut ticker = tokio::time::interval(TICK);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                ticker
            });
            ticker.tick().await;
            let updates = self.collect();
            if !updates.is_empty() {
                return updates;
            }
        }
    }

    /// Everything new since the last look.
    pub fn collect(&mut self) -> Vec<Update> {
        let inner = &self.hub.inner;
        let registry = &inner.registry;
        let mut updates = Vec::new();
        let recent = registry
            .bus()
            .recent_since(self.events_seen, EVENTS_PER_UPDATE);
        self.events_seen = recent.next;
        if recent.missed > 0 {
            updates.push(Update::Missed {
                count: recent.missed,
            });
        }
        updates.extend(
            recent
                .events
                .into_iter()
                .map(|event| Update::Event { event }),
        );
        let snapshot = registry.snapshot();
        if snapshot.generation != self.generation {
            self.generation = snapshot.generation;
            updates.push(Update::Plugins {
                plugins: plugin_views(&snapshot),
            });
        }
        if self.resources.has_changed().unwrap_or(false) {
            self.resources.mark_unchanged();
            updates.push(Update::Resources {
                resources: resource_views(&registry.resources()),
            });
        }
        if self.prompts.has_changed().unwrap_or(false) {
            self.prompts.mark_unchanged();
            updates.push(Update::Prompts {
                prompts: prompt_views(&registry.prompts()),
            });
        }
        let (lines, seen) = inner.log.since(self.log_seen);
        self.log_seen = seen;
        if !lines.is_empty() {
            updates.push(Update::Log { lines });
        }
        let counters = self.hub.counters(&snapshot);
        if counters != self.counters {
            self.counters = counters.clone();
            updates.push(Update::Counters(counters));
        }
        updates
    }
}

impl Hub {
    fn counters(&self, snapshot: &Snapshot) -> Counters {
        let metrics = self.inner.registry.metrics();
        let operations = &self.inner.operations;
        Counters {
            calls: metrics.calls(),
            errors: metrics.errors(),
            in_flight: metrics.in_flight(),
            busy: snapshot
                .plugins
                .iter()
                .filter_map(|entry| {
                    let busy = entry.serving.as_ref()?.busy_instances();
                    (busy > 0).then(|| (entry.spec.name.clone(), busy))
                })
                .collect(),
            sessions: operations.sessions(),
            rate_limited: operations.rate_limited(),
            phase: operations.phase(),
            progress: self.inner.registry.running_calls(),
        }
    }
}

/// The plugins of `snapshot` as consoles show them.
pub fn plugin_views(snapshot: &Snapshot) -> Vec<PluginView> {
    snapshot
        .plugins
        .iter()
        .map(|entry| plugin_view(snapshot, entry))
        .collect()
}

fn plugin_view(snapshot: &Snapshot, entry: &PluginEntry) -> PluginView {
    let spec = &entry.spec;
    let serving = entry.serving.as_ref();
    let functions = match serving {
        Some(serving) => &serving.spec().functions,
        None => &spec.functions,
    };
    let tools = functions
        .iter()
        .map(|function| {
            let name = function.tool_name();
            // A served tool has a description even when plugins.yml gives none.
            let description = match snapshot.tool(&name) {
                Some(tool) if serving.is_some() => Some(tool.description.clone()),
                _ => function.description.clone(),
            };
            ToolView {
                title: function.title().to_string(),
                name,
                description,
                plugin: spec.name.clone(),
                function: function.function.clone(),
                arguments: function.arguments.clone(),
                input_schema: function.input_schema.clone(),
            }
        })
        .collect();
    PluginView {
        name: spec.name.clone(),
        version: spec.version.clone(),
        description: spec.description.clone(),
        state: entry.state(),
        error: entry.error.clone(),
        line: entry.line,
        module: match serving {
            Some(serving) => serving.module_path().display().to_string(),
            None => spec.path.clone(),
        },
        loaded_at: serving.map(|serving| serving.loaded_at()),
        instances: serving.map_or(0, |serving| serving.instances()),
        limits: Limits {
            timeout_ms: spec.timeout_ms(),
            memory_mb: spec.memory_mb(),
            wasi: spec.wasi,
            allowed_hosts: spec.allowed_hosts.clone(),
            allowed_paths: spec
                .allowed_paths
                .iter()
                .map(|(host, guest)| (host.clone(), guest.clone()))
                .collect(),
            config_keys: spec.config.keys().cloned().collect(),
        },
        tools,
    }
}

/// What resources.yml serves, as consoles show it: fixed URIs, then templates.
pub fn resource_views(set: &ResourceSet) -> Vec<ResourceView> {
    set.statics()
        .chain(set.templates())
        .map(|resource| {
            let spec = &resource.spec;
            ResourceView {
                name: spec.name.clone(),
                uri: spec.uri.clone(),
                title: spec.title.clone(),
                description: spec.description.clone(),
                mime_type: spec.mime_type.clone(),
                parameters: resource
                    .template
                    .variables()
                    .map(|variable| spec.parameter(variable))
                    .collect(),
                computed_by: spec
                    .computed_by()
                    .map(|(plugin, function)| (plugin.to_string(), function.to_string())),
                line: resource.line,
            }
        })
        .collect()
}

/// What prompts.yml serves, as consoles show it.
pub fn prompt_views(set: &PromptSet) -> Vec<PromptView> {
    set.prompts
        .iter()
        .map(|prompt| {
            let spec = &prompt.spec;
            PromptView {
                name: spec.name.clone(),
                title: spec.title.clone(),
                description: spec.description.clone(),
                parameters: spec.arguments.clone(),
                messages: spec.messages.len(),
                line: prompt.line,
            }
        })
        .collect()
}
