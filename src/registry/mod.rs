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
//! publishes a [`CallEvent`] for every call. Resources and prompts (from
//! resources.yml and prompts.yml) live beside the plugins, each in a set of
//! its own, and their reads and renders are recorded the same way.

mod changes;
mod definitions;
mod edits;
mod output;
mod prompts;
mod resources;
mod running;
mod tool;

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use changes::{ChangeError, ChangeReport, PluginChange};
pub use definitions::{DefinitionChange, DefinitionLocation, DefinitionPaths, ServedSet};
pub use edits::{Edited, OwnsFile};
pub use output::ToolOutput;
pub use prompts::{PromptSet, RenderedMessage, RenderedPrompt, ServedPrompt};
pub use resources::{ResourceContent, ResourceEdit, ResourceRead, ResourceSet, ServedResource};
pub use running::RunningCall;
pub use tool::{Arguments, Tool, plugin_input, signature, signature_of, skeleton, skeleton_of};

use crate::catalog::{CatalogError, CatalogFile, PluginSpec};
use crate::events::{
    CallEvent, CallKind, CallSource, CallStatus, EVENT_MESSAGE_BYTES, EventBus, ServerEvent,
    preview,
};
use crate::metrics::{CallMetrics, FinishedCall};
use crate::redaction::redact;
use crate::ring::Ring;
use crate::runtime::{CallControl, CallFailure, FailureKind, LoadedPlugin, RuntimeSettings, clip};
use crate::telemetry::{self, Tracing};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// The full arguments and output of a recent call, for the console's detail view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallDetail {
    pub id: u64,
    pub arguments: String,
    pub output: Result<String, CallFailure>,
}

/// A successful call's output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallReply {
    pub call_id: u64,
    pub output: ToolOutput,
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
    metrics: CallMetrics,
    /// Bumped when the tool list changes; MCP sessions watch it.
    tools_changed: watch::Sender<u64>,
    /// One change to plugins at a time (held by the thread doing it).
    change_lock: Arc<tokio::sync::Mutex<()>>,
    details: Option<Mutex<Ring<Arc<CallDetail>>>>,
    /// What resources.yml serves.
    resources: definitions::Store<ResourceSet>,
    /// What prompts.yml serves.
    prompts: definitions::Store<PromptSet>,
    /// Calls in flight that reported progress.
    running: running::RunningCalls,
    /// Where spans go; off unless the server turns it on.
    tracing: std::sync::OnceLock<Tracing>,
}

/// What a finished call reports, whatever it was (a tool call, a resource
/// read, a prompt rendered).
struct Finished<T> {
    kind: CallKind,
    name: Arc<str>,
    plugin: Arc<str>,
    /// The arguments as JSON.
    arguments: String,
    output: Result<T, CallFailure>,
    overlapping: u32,
}

/// How a call's output reads in its record (the preview and the details).
trait RecordedOutput {
    fn record_text(&self) -> Cow<'_, str>;

    /// The error an output reports itself (a plugin's `isError` result): the
    /// call is recorded as failed with this message.
    fn reported_error(&self) -> Option<&str> {
        None
    }
}

impl RecordedOutput for ToolOutput {
    fn record_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.readable())
    }

    fn reported_error(&self) -> Option<&str> {
        ToolOutput::reported_error(self)
    }
}

impl RecordedOutput for String {
    fn record_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl Registry {
    /// Read plugins.yml and load every plugin in it. A plugin that fails to
    /// load is reported and skipped; a plugins.yml that cannot be read or is
    /// invalid is an error.
    pub async fn start(options: RegistryOptions, bus: EventBus) -> Result<Self, CatalogError> {
        let registry = Self::open(options, bus)?;
        registry.load_all("startup").await;
        Ok(registry)
    }

    /// Read plugins.yml, loading nothing yet: every plugin is "not loaded
    /// yet" until [`Registry::load_all`]. The server listens meanwhile.
    pub fn open(options: RegistryOptions, bus: EventBus) -> Result<Self, CatalogError> {
        let catalog = CatalogFile::read(&options.catalog_path)?;
        Ok(Self::unloaded(options, bus, catalog, |spec| {
            Some(spec.clone())
        }))
    }

    /// Load the plugins of `catalog` that `select` keeps (possibly adjusted).
    pub async fn with_catalog(
        options: RegistryOptions,
        bus: EventBus,
        catalog: CatalogFile,
        select: impl Fn(&PluginSpec) -> Option<PluginSpec>,
    ) -> Self {
        let registry = Self::unloaded(options, bus, catalog, select);
        registry.load_all("startup").await;
        registry
    }

    fn unloaded(
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
        Self {
            inner: Arc::new(Inner {
                live: ArcSwap::from_pointee(snapshot),
                options,
                bus,
                metrics: CallMetrics::default(),
                tools_changed: watch::channel(0).0,
                change_lock: Arc::new(tokio::sync::Mutex::new(())),
                details,
                resources: definitions::Store::new(),
                prompts: definitions::Store::new(),
                running: Default::default(),
                tracing: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.live.load_full()
    }

    /// Make spans for plugin calls with `tracing` (once, at the start).
    pub fn trace_with(&self, tracing: Tracing) {
        let _ = self.inner.tracing.set(tracing);
    }

    /// Where spans go (off unless [`Registry::trace_with`] said otherwise).
    pub fn tracing(&self) -> &Tracing {
        self.inner.tracing.get().unwrap_or(&telemetry::OFF)
    }

    /// The counts of calls and plugin loads.
    pub fn metrics(&self) -> &CallMetrics {
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
        self.call_with(source, tool, arguments, CallControl::default())
            .await
    }

    /// Call `tool` with `arguments` on behalf of `source`, with a channel
    /// for the plugin's progress reports and a token that cancels the call.
    pub async fn call_with(
        &self,
        source: CallSource,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        control: CallControl,
    ) -> Result<CallReply, CallFailure> {
        let mut arguments = arguments.unwrap_or_default();
        let mut control = control;
        let caller = source.clone();
        let work = async move {
            let found = self.inner.live.load().tool(tool).cloned();
            let (output, overlapping) = match &found {
                None => (Err(self.unknown_tool(tool)), 0),
                Some(found) => match found.input(&arguments) {
                    Err(message) => (
                        Err(CallFailure::new(FailureKind::InvalidArguments, message)),
                        0,
                    ),
                    Ok(input) => {
                        let (reporter, _running) = self.track_progress(
                            &caller,
                            &found.name,
                            &found.plugin_name,
                            control.progress.take(),
                        );
                        control.progress = Some(reporter);
                        let span = self
                            .tracing()
                            .plugin_call(&found.plugin_name, &found.function);
                        let result = found
                            .plugin
                            .call(Arc::clone(&found.function), input.into_bytes(), control)
                            .await;
                        if let Some(span) = &span {
                            let failure = result.output.as_ref().err();
                            telemetry::finish(
                                span,
                                failure.map(|f| (f.kind.code(), f.message.as_str())),
                            );
                        }
                        self.inner.metrics.plugin_ran(result.waited, result.inline);
                        let declared = &found.declared;
                        let output = result.output.and_then(|raw| {
                            ToolOutput::from_plugin(
                                declared.output,
                                declared.output_schema.as_ref(),
                                &found.function,
                                raw,
                            )
                        });
                        (output, result.overlapping)
                    }
                },
            };
            // The plugin had the values; the record never shows secrets.
            let listed = found
                .as_ref()
                .map_or(&[][..], |tool| &tool.declared.redact[..]);
            redact(&mut arguments, listed);
            Finished {
                kind: CallKind::Tool,
                // Record the tool by its MCP name, whichever name the caller used.
                name: found
                    .as_ref()
                    .map_or_else(|| tool.into(), |t| Arc::clone(&t.name)),
                plugin: found
                    .as_ref()
                    .map_or_else(|| "".into(), |t| Arc::clone(&t.plugin_name)),
                arguments: Value::Object(arguments).to_string(),
                output,
                overlapping,
            }
        };
        let (call_id, output) = self.record(source, work).await;
        output.map(|output| CallReply { call_id, output })
    }

    /// Run `work` as a call of `source`: count it, time it, and publish its
    /// record (and keep its details for the console) when it ends.
    async fn record<T: RecordedOutput>(
        &self,
        source: CallSource,
        work: impl Future<Output = Finished<T>>,
    ) -> (u64, Result<T, CallFailure>) {
        let started = SystemTime::now();
        let clock = Instant::now();
        let metrics = &self.inner.metrics;
        let in_flight = metrics.enter();
        let finished = work.await;
        drop(in_flight);
        let duration = clock.elapsed();
        let reported = finished
            .output
            .as_ref()
            .ok()
            .and_then(|o| o.reported_error());
        let failure = match &finished.output {
            Err(failure) => Some(failure.kind),
            Ok(_) => reported.is_some().then_some(FailureKind::PluginError),
        };
        metrics.finished(FinishedCall {
            kind: finished.kind,
            source: &source,
            // Only a tool that is loaded has a plugin.
            tool: (!finished.plugin.is_empty()).then_some((&finished.name, &finished.plugin)),
            failure,
            duration,
        });
        let id = self.inner.bus.next_call_id();
        let text = finished.output.as_ref().map(|output| output.record_text());
        let status = match (&text, reported) {
            (Ok(_), Some(message)) => CallStatus::Error {
                kind: FailureKind::PluginError,
                message: clip(message, EVENT_MESSAGE_BYTES),
            },
            (Ok(text), None) => CallStatus::Ok {
                preview: preview(text),
            },
            (Err(failure), _) => CallStatus::Error {
                kind: failure.kind,
                message: clip(failure.message.as_str(), EVENT_MESSAGE_BYTES),
            },
        };
        self.inner.bus.publish(ServerEvent::Call(CallEvent {
            id,
            started,
            source,
            kind: finished.kind,
            tool: finished.name,
            plugin: finished.plugin,
            arguments: preview(&finished.arguments),
            status,
            duration,
            overlapping: finished.overlapping,
        }));
        self.keep_detail(id, finished.arguments, text.as_deref().map_err(|f| *f));
        (id, finished.output)
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

    fn keep_detail(&self, id: u64, arguments: String, output: Result<&str, &CallFailure>) {
        let Some(details) = &self.inner.details else {
            return;
        };
        let detail = Arc::new(CallDetail {
            id,
            arguments: clip(arguments, CALL_DETAIL_BYTES),
            output: output
                .map(|text| clip(text, CALL_DETAIL_BYTES))
                .map_err(|failure| {
                    CallFailure::new(
                        failure.kind,
                        clip(failure.message.as_str(), CALL_DETAIL_BYTES),
                    )
                }),
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
        self.forget_removed(&previous, &snapshot);
        if changed || !snapshot.same_tools(&previous) {
            self.inner.tools_changed.send_modify(|g| *g += 1);
        }
        snapshot
    }
}

impl Registry {
    /// Drop the metric series of tools and plugins `current` no longer
    /// serves, so that labels stay bounded by what is loaded.
    fn forget_removed(&self, previous: &Snapshot, current: &Snapshot) {
        let metrics = &self.inner.metrics;
        for tool in &previous.tools {
            let still = current.by_name.get(&tool.name);
            if still.is_none_or(|t| t.plugin_name != tool.plugin_name) {
                metrics.forget_tool(&tool.name, &tool.plugin_name, still.is_none());
            }
        }
        for plugin in &previous.plugins {
            if current.plugin(&plugin.spec.name).is_none() {
                metrics.forget_plugin(&plugin.spec.name);
            }
        }
    }
}
