//! `/metrics`: what the server counts, in the Prometheus text format.
//!
//! Counters and histograms are kept by whoever makes the event: the registry
//! counts calls and plugin loads ([`CallMetrics`]), the HTTP side counts
//! requests ([`HttpMetrics`]). Gauges (calls in flight, instances, sessions,
//! plugins) are read from the live state at each scrape, so they cost the
//! server nothing between scrapes. Labels stay bounded: tools and plugins
//! are those loaded (the registry drops the series of removed ones), routes
//! are the router's patterns.

mod allocator;
mod calls;
mod process;

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;

pub use allocator::{AllocatorCollector, AllocatorStats};
pub use calls::{CallMetrics, FinishedCall, InFlight, UNKNOWN_TOOL};
pub use process::ProcessCollector;

use crate::operations::{Operations, Phase};
use crate::registry::{PluginState, Registry};

/// The content type of what [`Exposition::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    /// The route's pattern (`/mcp`, `/remove-plugin/{name}`), never the path
    /// asked for; `unmatched` for paths no route serves.
    route: String,
    status: u16,
}

/// What the HTTP side counts.
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
}

impl HttpMetrics {
    /// A request to `route` (a pattern) was answered with `status`.
    pub fn answered(&self, route: Option<&str>, status: u16) {
        self.requests
            .get_or_create(&HttpLabels {
                route: route.unwrap_or("unmatched").to_string(),
                status,
            })
            .inc();
    }
}

/// Everything `/metrics` shows, ready to render.
#[derive(Clone)]
pub struct Exposition {
    registry: Arc<prometheus_client::registry::Registry>,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exposition")
    }
}

impl Exposition {
    pub fn new(registry: &Registry, operations: &Operations, http: &HttpMetrics) -> Self {
        let mut metrics = prometheus_client::registry::Registry::default();
        let calls = registry.metrics();
        metrics.register(
            "wasimancer_tool_calls",
            "Tool calls, by tool, plugin, source (mcp, console, cli) and outcome (ok or the failure kind)",
            calls.tool_calls.clone(),
        );
        metrics.register(
            "wasimancer_tool_call_duration_seconds",
            "How long tool calls took, from arrival to answer, by tool",
            calls.durations.clone(),
        );
        metrics.register(
            "wasimancer_instance_wait_seconds",
            "How long calls waited for a free plugin instance",
            calls.instance_wait.clone(),
        );
        metrics.register(
            "wasimancer_plugin_calls_inline",
            "Plugin calls run on the thread that received them (functions whose recent calls were all short) instead of a blocking thread",
            calls.inline_calls.clone(),
        );
        metrics.register(
            "wasimancer_plugin_loads",
            "Plugin loads (startup, reloads, uploads), by plugin and outcome (ok, failed)",
            calls.plugin_loads.clone(),
        );
        metrics.register(
            "wasimancer_resource_reads",
            "resources/read requests, by outcome",
            calls.resource_reads.clone(),
        );
        metrics.register(
            "wasimancer_prompt_renders",
            "prompts/get requests, by outcome",
            calls.prompt_renders.clone(),
        );
        metrics.register(
            "wasimancer_http_requests",
            "HTTP requests answered, by route pattern and status code",
            http.requests.clone(),
        );
        metrics.register(
            "wasimancer_build",
            "The version of this server",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        metrics.register_collector(Box::new(LiveState {
            registry: registry.clone(),
            operations: operations.clone(),
        }));
        metrics.register_collector(Box::new(ProcessCollector));
        metrics.register_collector(Box::new(AllocatorCollector));
        Self {
            registry: Arc::new(metrics),
        }
    }

    /// The metrics as of now, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The gauges and counters read from the live state at each scrape.
struct LiveState {
    registry: Registry,
    operations: Operations,
}

impl fmt::Debug for LiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveState")
    }
}

impl Collector for LiveState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let operations = &self.operations;
        let snapshot = self.registry.snapshot();
        gauge(
            &mut encoder,
            "wasimancer_calls_in_flight",
            "Calls running now (tools, computed resources, prompts).",
            self.registry.metrics().in_flight(),
        )?;
        let instances = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "wasimancer_instances",
            "Warm plugin instances, by plugin and state (busy: running a call).",
            None,
            instances.metric_type(),
        )?;
        for entry in &snapshot.plugins {
            let Some(serving) = &entry.serving else {
                continue;
            };
            let busy = serving.busy_instances();
            let idle = serving.instances().saturating_sub(busy);
            for (state, count) in [("busy", busy), ("idle", idle)] {
                let labels = [("plugin", entry.spec.name.as_str()), ("state", state)];
                ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let plugins = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "wasimancer_plugins",
            "Plugins declared in plugins.yml, by state (stale: a reload failed, the previous version serves).",
            None,
            plugins.metric_type(),
        )?;
        for state in [PluginState::Loaded, PluginState::Stale, PluginState::Failed] {
            let count = snapshot
                .plugins
                .iter()
                .filter(|p| p.state() == state)
                .count();
            ConstGauge::new(count as i64)
                .encode(family.encode_family(&[("state", state.as_str())])?)?;
        }
        gauge(
            &mut encoder,
            "wasimancer_tools",
            "Tools served.",
            snapshot.tools.len() as u64,
        )?;
        gauge(
            &mut encoder,
            "wasimancer_sessions",
            "MCP sessions open.",
            operations.sessions(),
        )?;
        counter(
            &mut encoder,
            "wasimancer_sessions_expired",
            "MCP sessions closed after --session-idle-timeout without a word from their client.",
            operations.sessions_expired(),
        )?;
        gauge(
            &mut encoder,
            "wasimancer_sessions_asleep",
            "MCP sessions asleep: quiet for --session-hibernate-after, kept as their handshake only (counted in wasimancer_sessions).",
            operations.sessions_asleep(),
        )?;
        counter(
            &mut encoder,
            "wasimancer_sessions_woken",
            "MCP sessions woken from sleep by a request of their client.",
            operations.sessions_woken(),
        )?;
        let refused = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "wasimancer_requests_refused",
            "MCP requests refused to protect the server, by reason (rate_limit: 429; max_sessions, draining: 503).",
            None,
            refused.metric_type(),
        )?;
        for (reason, count) in [
            ("rate_limit", operations.rate_limited()),
            ("max_sessions", operations.sessions_refused()),
            ("draining", operations.refused_draining()),
        ] {
            ConstCounter::new(count).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        gauge(
            &mut encoder,
            "wasimancer_ready",
            "1 when the server takes traffic (plugins loaded, not draining), as /ready says.",
            u64::from(operations.not_ready().is_none()),
        )?;
        gauge(
            &mut encoder,
            "wasimancer_draining",
            "1 while the server drains before it stops.",
            u64::from(operations.phase() == Phase::Draining),
        )?;
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let gauge = ConstGauge::new(value as i64);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}
