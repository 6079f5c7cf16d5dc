//! The numbers of the call path: counted where calls are made, at the cost
//! of a few atomic additions and one lookup of a label set per call.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::events::{CallKind, CallSource};
use crate::runtime::FailureKind;

/// The tool label of a call to a tool that is not loaded: a client may send
/// any name, and labels must stay bounded. Not a valid MCP tool name, so it
/// never clashes with one.
pub const UNKNOWN_TOOL: &str = "(unknown)";

/// Bounds of the call duration buckets, in seconds: a warm call takes
/// microseconds, a plugin's time limit may be a minute.
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bounds of the instance wait buckets, in seconds: no wait at all when an
/// instance is free, up to the queue timeout when none is.
const WAIT_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every source label a call can have.
const SOURCES: [&str; 3] = ["mcp", "console", "cli"];

/// A label value shared with the registry's own names (no copy per call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ToolCallLabels {
    tool: Label,
    plugin: Label,
    source: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ToolLabels {
    tool: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct PluginLoadLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct KindOutcomeLabels {
    outcome: &'static str,
}

/// The counters of calls: totals for the consoles, labelled series for
/// `/metrics`. Owned by the registry, which makes every call.
pub struct CallMetrics {
    calls: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
    pub(super) tool_calls: Family<ToolCallLabels, Counter>,
    pub(super) durations: Family<ToolLabels, Histogram, fn() -> Histogram>,
    pub(super) instance_wait: Histogram,
    pub(super) inline_calls: Counter,
    pub(super) plugin_loads: Family<PluginLoadLabels, Counter>,
    pub(super) resource_reads: Family<KindOutcomeLabels, Counter>,
    pub(super) prompt_renders: Family<KindOutcomeLabels, Counter>,
}

impl fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallMetrics")
            .field("calls", &self.calls())
            .field("errors", &self.errors())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            tool_calls: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            instance_wait: Histogram::new(WAIT_BUCKETS),
            inline_calls: Counter::default(),
            plugin_loads: Family::default(),
            resource_reads: Family::default(),
            prompt_renders: Family::default(),
        }
    }
}

/// What [`CallMetrics::finished`] records of one call.
pub struct FinishedCall<'a> {
    pub kind: CallKind,
    pub source: &'a CallSource,
    /// The tool and its plugin, when the tool is loaded.
    pub tool: Option<(&'a Arc<str>, &'a Arc<str>)>,
    pub failure: Option<FailureKind>,
    pub duration: Duration,
}

impl CallMetrics {
    /// Calls made since the start, of every kind.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls that failed, of every kind.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Calls running now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count a call from now until the guard is dropped: a caller that drops
    /// the call half way (a client that went away) uncounts it too.
    pub fn enter(&self) -> InFlight<'_> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Record a finished call.
    pub fn finished(&self, call: FinishedCall<'_>) {
        let outcome = call.failure.map_or("ok", FailureKind::code);
        if call.failure.is_some() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        match call.kind {
            CallKind::Tool => {
                let (tool, plugin) = match call.tool {
                    Some((tool, plugin)) => (Label(Arc::clone(tool)), Label(Arc::clone(plugin))),
                    None => (Label(UNKNOWN_TOOL.into()), Label("".into())),
                };
                self.durations
                    .get_or_create(&ToolLabels { tool: tool.clone() })
                    .observe(call.duration.as_secs_f64());
                self.tool_calls
                    .get_or_create(&ToolCallLabels {
                        tool,
                        plugin,
                        source: call.source.kind(),
                        outcome,
                    })
                    .inc();
            }
            CallKind::Resource => {
                self.resource_reads
                    .get_or_create(&KindOutcomeLabels { outcome })
                    .inc();
            }
            CallKind::Prompt => {
                self.prompt_renders
                    .get_or_create(&KindOutcomeLabels { outcome })
                    .inc();
            }
        }
    }

    /// A plugin ran a call: how long the call waited for a free instance,
    /// and whether it ran on the async thread (a known-short function).
    pub fn plugin_ran(&self, wait: Duration, inline: bool) {
        self.instance_wait.observe(wait.as_secs_f64());
        if inline {
            self.inline_calls.inc();
        }
    }

    /// A plugin version was loaded (or failed to).
    pub fn plugin_loaded(&self, plugin: &str, ok: bool) {
        self.plugin_loads
            .get_or_create(&PluginLoadLabels {
                plugin: plugin.to_string(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Drop the series of a tool that is no longer served (by this plugin),
    /// so that labels stay bounded by what is loaded.
    pub fn forget_tool(&self, tool: &Arc<str>, plugin: &Arc<str>, name_gone: bool) {
        let outcomes = std::iter::once("ok").chain(FailureKind::ALL.iter().map(|k| k.code()));
        for outcome in outcomes {
            for source in SOURCES {
                self.tool_calls.remove(&ToolCallLabels {
                    tool: Label(Arc::clone(tool)),
                    plugin: Label(Arc::clone(plugin)),
                    source,
                    outcome,
                });
            }
        }
        if name_gone {
            self.durations.remove(&ToolLabels {
                tool: Label(Arc::clone(tool)),
            });
        }
    }

    /// Drop the load counts of a plugin no longer in plugins.yml.
    pub fn forget_plugin(&self, plugin: &str) {
        for outcome in ["ok", "failed"] {
            self.plugin_loads.remove(&PluginLoadLabels {
                plugin: plugin.to_string(),
                outcome,
            });
        }
    }
}

/// A call being counted in flight; see [`CallMetrics::enter`].
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
