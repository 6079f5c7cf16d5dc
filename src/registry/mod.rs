//! The live set of plugins and tools, and the one way to call a tool.
//!
//! The registry holds an immutable [`Snapshot`] behind an atomic pointer.
//! A call loads the pointer once and keeps the plugin version it found, so a
//! reload, an upload or a removal that swaps in a new snapshot never fails a
//! call in flight: that call finishes on the old version, whose instances are
//! released when its last call ends. Changes take a lock so that two of them
//! never race; calls never take it.
//!
//! MCP sessions, the console and the command line all call through
//! [`Registry::call`], which validates arguments, runs the plugin and
//! publishes a [`CallEvent`] for every call.

mod changes;
mod edits;
mod tool;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use changes::{ChangeError, ChangeReport, PluginChange};
pub use edits::{Edited, OwnsFile};
pub use tool::Tool;
pub(crate) use tool::plugin_input;

use crate::catalog::{CatalogError, CatalogFile, PluginSpec};
use crate::events::{CallEvent, CallSource, CallStatus, EventBus, ServerEvent, preview};
use crate::ring::Ring;
use crate::runtime::{CallFailure, FailureKind, LoadedPlugin, RuntimeSettings};

/// How many finished calls keep their full arguments and output for the console.
const CALL_DETAILS_KEPT: usize = 1000;
/// The most of one payload kept in the call details: with the count above,
/// at most 32 MiB in all.
const CALL_DETAIL_BYTES: usize = 16 * 1024;

/// The state of one declared plugin.
#[derive(Clone)]
pub struct PluginEntry {
    /// The entry as plugins.yml declares it now.
    pub spec: PluginSpec,
    /// Its line in plugins.yml.
    pub line: Option<usize>,
    /// The version answering calls; after a failed reload, the previous one.
    pub serving: Option<Arc<LoadedPlugin>>,
    /// Why the last load failed, if it did.
    pub error: Option<String>,
}

impl PluginEntry {
    /// A one-word state for lists: loaded, failed, or stale (a reload failed and
    /// the previous version still serves).
    pub fn state(&self) -> PluginState {
        match (&self.serving, &self.error) {
            (Some(_), None) => PluginState::Loaded,
            (Some(_), Some(_)) => PluginState::Stale,
            (None, _) => PluginState::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    Loaded,
    /// The last reload failed; the previous version keeps serving.
    Stale,
    Failed,
}

impl PluginState {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Loaded => "loaded",
            PluginState::Stale => "stale",
            PluginState::Failed => "failed",
        }
    }
}

/// Everything a call or a listing needs, immutable once published.
pub struct Snapshot {
    /// Increases with every published snapshot.
    pub generation: u64,
    /// plugins.yml as last read successfully.
    pub catalog: Arc<CatalogFile>,
    pub plugins: Vec<PluginEntry>,
    /// Tools in plugins.yml order.
    pub tools: Vec<Arc<Tool>>,
    by_name: HashMap<Arc<str>, Arc<Tool>>,
}

impl Snapshot {
    fn new(generation: u64, catalog: Arc<CatalogFile>, plugins: Vec<PluginEntry>) -> Self {
        let mut tools: Vec<Arc<Tool>> = Vec::new();
        let mut by_name: HashMap<Arc<str>, Arc<Tool>> = HashMap::new();
        for entry in &plugins {
            let Some(plugin) = &entry.serving else {
                continue;
            };
            for function in &plugin.spec().functions {
                let tool = Arc::new(Tool::new(function, plugin));
                if by_name.contains_key(&tool.name) {
                    // Only possible while a stale version still serves a name a
                    // newly declared plugin also uses; the first keeps it.
                    tracing::warn!(tool = %tool.name, plugin = %tool.plugin_name, "tool name already served; skipped");
                    continue;
                }
                by_name.insert(Arc::clone(&tool.name), Arc::clone(&tool));
                tools.push(tool);
            }
        }
        Self {
            generation,
            catalog,
            plugins,
            tools,
            by_name,
        }
    }

    /// The tool called `name`, or whose display name is `name` (WASImancer
    /// clients call tools by display name, spaces and all).
    pub fn tool(&self, name: &str) -> Option<&Arc<Tool>> {
        self.by_name
            .get(name)
            .or_else(|| self.tools.iter().find(|t| t.title == name))
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginEntry> {
        self.plugins.iter().find(|p| p.spec.name == name)
    }

    /// Counts for a status line: (loaded, failed).
    pub fn plugin_counts(&self) -> (usize, usize) {
        let loaded = self.plugins.iter().filter(|p| p.serving.is_some()).count();
        (loaded, self.plugins.len() - loaded)
    }

    /// Whether the tool list a client sees differs from `other`'s.
    fn same_tools(&self, other: &Snapshot) -> bool {
        self.tools.len() == other.tools.len()
            && self.tools.iter().zip(&other.tools).all(|(a, b)| {
                a.name == b.name
                    && a.title == b.title
                    && a.description == b.description
                    && a.input_schema == b.input_schema
            })
    }
}

/// Counters for the console header and for metrics.
#[derive(Default)]
pub struct Metrics {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
}

/// Counts a call in flight for as long as it lives, so that a caller that
/// drops the call's future half way (a client that went away) uncounts it too.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The full arguments and output of a recent call, for the console's detail view.
#[derive(Debug, Clone)]
pub struct CallDetail {
    pub id: u64,
    pub arguments: String,
    pub output: Result<String, CallFailure>,
}

/// A successful call's output.
#[derive(Debug, Clone)]
pub struct CallReply {
    pub call_id: u64,
    pub text: String,
}

/// How the registry is set up.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub catalog_path: PathBuf,
    pub runtime: RuntimeSettings,
    /// Keep full payloads of recent calls (the console shows them).
    pub keep_call_details: bool,
}

/// The handle everyone shares. Cloning is cheap.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    live: ArcSwap<Snapshot>,
    options: RegistryOptions,
    bus: EventBus,
    metrics: Metrics,
    /// Bumped when the tool list changes; MCP sessions watch it.
    tools_changed: watch::Sender<u64>,
    /// One change to plugins at a time (held by the thread doing it).
    change_lock: Arc<tokio::sync::Mutex<()>>,
    details: Option<Mutex<Ring<Arc<CallDetail>>>>,
}

impl Registry {
    /// Read plugins.yml and load every plugin in it. A plugin that fails to
    /// load is reported and skipped; a plugins.yml that cannot be read or is
    /// invalid is an error.
    pub async fn start(options: RegistryOptions, bus: EventBus) -> Result<Self, CatalogError> {
        let path = options.catalog_path.clone();
        let catalog = tokio::task::spawn_blocking(move || CatalogFile::read(&path))
            .await
            .unwrap_or_else(|_| {
                Err(CatalogError::Read {
                    path: options.catalog_path.clone(),
                    source: std::io::Error::other("the reading thread stopped"),
                })
            })?;
        Ok(Self::with_catalog(options, bus, catalog, |spec| Some(spec.clone())).await)
    }

    /// Load the plugins of `catalog` that `select` keeps (possibly adjusted).
    pub async fn with_catalog(
        options: RegistryOptions,
        bus: EventBus,
        catalog: CatalogFile,
        select: impl Fn(&PluginSpec) -> Option<PluginSpec>,
    ) -> Self {
        let catalog = Arc::new(catalog);
        let plugins = catalog
            .catalog
            .plugins
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| {
                Some(PluginEntry {
                    spec: select(spec)?,
                    line: catalog.source.plugin(i),
                    serving: None,
                    error: Some("not loaded yet".into()),
                })
            })
            .collect();
        let snapshot = Snapshot::new(0, catalog, plugins);
        let details = options
            .keep_call_details
            .then(|| Mutex::new(Ring::new(CALL_DETAILS_KEPT)));
        let registry = Self {
            inner: Arc::new(Inner {
                live: ArcSwap::from_pointee(snapshot),
                options,
                bus,
                metrics: Metrics::default(),
                tools_changed: watch::channel(0).0,
                change_lock: Arc::new(tokio::sync::Mutex::new(())),
                details,
            }),
        };
        if let Err(error) = registry.load_all("startup").await {
            tracing::error!(%error, "plugins not loaded");
        }
        registry
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.live.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    pub fn catalog_path(&self) -> &Path {
        &self.inner.options.catalog_path
    }

    pub fn runtime_settings(&self) -> &RuntimeSettings {
        &self.inner.options.runtime
    }

    /// A receiver that changes whenever the tool list does.
    pub fn watch_tools(&self) -> watch::Receiver<u64> {
        self.inner.tools_changed.subscribe()
    }

    /// The full payloads of call `id`, if it is recent and details are kept.
    pub fn call_detail(&self, id: u64) -> Option<Arc<CallDetail>> {
        let details = self.inner.details.as_ref()?;
        let details = details.lock().ok()?;
        details.iter().rev().find(|d| d.id == id).cloned()
    }

    /// Call `tool` with `arguments` on behalf of `source`.
    pub async fn call(
        &self,
        source: CallSource,
        tool: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallReply, CallFailure> {
        let started = SystemTime::now();
        let clock = Instant::now();
        let metrics = &self.inner.metrics;
        metrics.calls.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::enter(&metrics.in_flight);
        let arguments = arguments.unwrap_or_default();
        let snapshot = self.inner.live.load();
        let found = snapshot.tool(tool).cloned();
        drop(snapshot);
        // Record the tool by its MCP name, whichever name the caller used.
        let tool_name: Arc<str> = found
            .as_ref()
            .map_or_else(|| tool.into(), |t| Arc::clone(&t.name));
        let (plugin_name, output, overlapping) = match found {
            None => (Arc::<str>::from(""), Err(self.unknown_tool(tool)), 0),
            Some(found) => match found.input(&arguments) {
                Err(message) => (
                    Arc::clone(&found.plugin_name),
                    Err(CallFailure::new(FailureKind::InvalidArguments, message)),
                    0,
                ),
                Ok(input) => {
                    let result = found
                        .plugin
                        .call(Arc::clone(&found.function), input.into_bytes())
                        .await;
                    (
                        Arc::clone(&found.plugin_name),
                        result.output,
                        result.overlapping,
                    )
                }
            },
        };
        drop(in_flight);
        if output.is_err() {
            metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.inner.bus.next_call_id();
        let arguments_json = Value::Object(arguments).to_string();
        let status = match &output {
            Ok(text) => CallStatus::Ok {
                preview: preview(text),
            },
            Err(failure) => CallStatus::Error {
                kind: failure.kind,
                message: failure.message.clone(),
            },
        };
        self.inner.bus.publish(ServerEvent::Call(CallEvent {
            id,
            started,
            source,
            tool: tool_name,
            plugin: plugin_name,
            arguments: preview(&arguments_json),
            status,
            duration: clock.elapsed(),
            overlapping,
        }));
        self.keep_detail(id, arguments_json, &output);
        output.map(|text| CallReply { call_id: id, text })
    }

    fn unknown_tool(&self, tool: &str) -> CallFailure {
        let snapshot = self.inner.live.load();
        let mut names: Vec<&str> = snapshot.tools.iter().map(|t| &*t.name).collect();
        names.sort_unstable();
        let known = if names.is_empty() {
            "none are loaded".to_string()
        } else {
            format!("available tools: {}", names.join(", "))
        };
        CallFailure::new(
            FailureKind::UnknownTool,
            format!("unknown tool `{tool}`; {known}"),
        )
    }

    fn keep_detail(&self, id: u64, arguments: String, output: &Result<String, CallFailure>) {
        let Some(details) = &self.inner.details else {
            return;
        };
        let detail = Arc::new(CallDetail {
            id,
            arguments: truncate(arguments),
            output: output.clone().map(truncate),
        });
        if let Ok(mut details) = details.lock() {
            details.push(detail);
        }
    }

    /// Publish `plugins` (with `catalog`) as the new snapshot, and tell MCP
    /// sessions when their tools changed: their list, or (`changed`) the
    /// plugin behind them.
    fn publish(
        &self,
        catalog: Arc<CatalogFile>,
        plugins: Vec<PluginEntry>,
        changed: bool,
    ) -> Arc<Snapshot> {
        let previous = self.inner.live.load_full();
        let snapshot = Arc::new(Snapshot::new(previous.generation + 1, catalog, plugins));
        self.inner.live.store(Arc::clone(&snapshot));
        if changed || !snapshot.same_tools(&previous) {
            self.inner.tools_changed.send_modify(|g| *g += 1);
        }
        snapshot
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > CALL_DETAIL_BYTES {
        let end = text.floor_char_boundary(CALL_DETAIL_BYTES);
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("\n… ({total} bytes in all)"));
    }
    text
}
