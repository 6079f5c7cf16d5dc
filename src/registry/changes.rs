//! Changing the set of plugins: loading at startup, reloading from
//! plugins.yml (and, with it, resources.yml and prompts.yml). Every change goes through here, whoever asks (the console's
//! `r`/`R`, the admin API, watch mode), takes the change lock, builds the new
//! versions off to the side and publishes them in one atomic swap. A plugin
//! that fails to load keeps serving its previous version.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::definitions::DefinitionChange;
use super::{PluginEntry, Registry};
use crate::catalog::{CatalogError, CatalogFile, PluginSpec};
use crate::events::{Change, LifecycleEvent, ServerEvent};
use crate::runtime::LoadedPlugin;

/// What happened to one plugin in a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginChange {
    pub plugin: String,
    pub change: Change,
    pub message: String,
}

/// What a change did, plugin by plugin, and (for a reload of everything)
/// to resources.yml and prompts.yml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    pub changes: Vec<PluginChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<DefinitionChange>,
}

impl ChangeReport {
    /// Whether some plugin failed to load, or a definition file is invalid.
    pub fn has_failures(&self) -> bool {
        self.changes.iter().any(|c| c.change == Change::Failed)
            || self.definitions.iter().any(|c| c.change == Change::Failed)
    }

    /// One line: "1 replaced, 1 failed (hello: …), 3 unchanged".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (change, word) in [
            (Change::Added, "added"),
            (Change::Replaced, "reloaded"),
            (Change::Removed, "removed"),
            (Change::Failed, "failed"),
            (Change::Unchanged, "unchanged"),
        ] {
            let matching: Vec<&PluginChange> =
                self.changes.iter().filter(|c| c.change == change).collect();
            if matching.is_empty() {
                continue;
            }
            let mut part = format!("{} {word}", matching.len());
            if change == Change::Failed {
                let reasons: Vec<String> = matching
                    .iter()
                    .map(|c| format!("{}: {}", c.plugin, c.message))
                    .collect();
                part.push_str(&format!(" ({})", reasons.join("; ")));
            }
            parts.push(part);
        }
        let mut summary = if parts.is_empty() {
            "no plugins".to_string()
        } else {
            parts.join(", ")
        };
        // An unchanged resources.yml or prompts.yml is not news.
        for definition in self
            .definitions
            .iter()
            .filter(|d| d.change != Change::Unchanged)
        {
            summary.push_str(&format!("; {}", definition.message));
        }
        summary
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// plugins.yml could not be read, or is invalid (for a reload).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// plugins.yml on disk is invalid, so it cannot be edited safely.
    #[error("plugins.yml on disk is invalid; fix it first (nothing was changed): {0}")]
    CatalogOnDisk(String),
    #[error("plugin `{name}` is not in {file}")]
    UnknownPlugin { name: String, file: String },
    /// No resource or prompt of that name.
    #[error("{what} `{name}` is not in {file}")]
    UnknownEntry {
        what: &'static str,
        name: String,
        file: String,
    },
    /// A resource or prompt sent in a request is not valid by itself.
    #[error("{0}")]
    InvalidEntry(String),
    /// resources.yml or prompts.yml on disk is invalid, so it cannot be
    /// edited safely.
    #[error("{file} on disk is invalid; fix it first (nothing was changed): {problems}")]
    FileOnDisk { file: String, problems: String },
    /// The change would clash with another plugin (a name, a tool, a path).
    #[error("{0}")]
    Conflict(String),
    /// The module is not usable: not wasm, a function missing, does not compile.
    #[error("{0}")]
    Module(String),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The thread doing the change stopped (the server is shutting down).
    #[error(
        "the change was interrupted before it finished (is the server shutting down?); check plugins.yml and reload"
    )]
    Interrupted,
}

/// The outcome of loading one spec.
type LoadResult = Result<Arc<LoadedPlugin>, String>;

impl Registry {
    /// Run `change` on a blocking thread, holding the change lock until it
    /// ends, even if the caller stops waiting for it: changes read and write
    /// files (fsync'd), resolve paths and compile modules, and none of that
    /// may hold an async worker.
    pub(super) async fn changing<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Registry) -> T + Send + 'static,
    ) -> Result<T, ChangeError> {
        let lock = Arc::clone(&self.inner.change_lock).lock_owned().await;
        let registry = self.clone();
        tokio::task::spawn_blocking(move || {
            let _lock = lock;
            change(&registry)
        })
        .await
        .map_err(|_| ChangeError::Interrupted)
    }

    /// Load every plugin of the current catalog (at startup).
    pub async fn load_all(&self, origin: &str) -> ChangeReport {
        let origin = origin.to_string();
        match self
            .changing(move |registry| registry.load_all_now(&origin))
            .await
        {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "plugins not loaded");
                ChangeReport::default()
            }
        }
    }

    fn load_all_now(&self, origin: &str) -> ChangeReport {
        let current = self.snapshot();
        let specs: Vec<PluginSpec> = current.plugins.iter().map(|p| p.spec.clone()).collect();
        let results = self.load_specs(&specs, origin);
        let mut report = ChangeReport::default();
        let mut entries = Vec::new();
        for (entry, result) in current.plugins.iter().zip(results) {
            let (entry, change) = settle(
                entry.clone(),
                None,
                result,
                Change::Added,
                self.catalog_path(),
            );
            report.changes.push(change);
            entries.push(entry);
        }
        self.publish(Arc::clone(&current.catalog), entries, false);
        self.announce(&report, origin);
        report
    }

    /// Re-read plugins.yml and apply what changed: new plugins are loaded,
    /// changed entries and modules reloaded, removed ones dropped. An invalid
    /// plugins.yml changes nothing. resources.yml and prompts.yml are read
    /// again too, each on its own: an invalid one keeps what it served.
    pub async fn reload_all(&self, origin: &str) -> Result<ChangeReport, ChangeError> {
        let definitions = self.reload_definitions(origin).await;
        let mut report = self.reload_plugins(origin).await?;
        report.definitions = definitions;
        Ok(report)
    }

    async fn reload_plugins(&self, origin: &str) -> Result<ChangeReport, ChangeError> {
        let origin = origin.to_string();
        self.changing(move |registry| registry.reload_plugins_now(&origin))
            .await?
    }

    fn reload_plugins_now(&self, origin: &str) -> Result<ChangeReport, ChangeError> {
        let catalog = match CatalogFile::read(self.catalog_path()) {
            Ok(catalog) => Arc::new(catalog),
            Err(error) => {
                self.announce_problem(origin, None, &format!("plugins.yml not applied: {error}"));
                return Err(error.into());
            }
        };
        let current = self.snapshot();
        let mut to_load = Vec::new();
        let mut kept = Vec::new();
        for (i, spec) in catalog.catalog.plugins.iter().enumerate() {
            let existing = current.plugin(&spec.name).cloned();
            let unchanged = existing
                .as_ref()
                .and_then(|e| e.serving.as_ref())
                .is_some_and(|serving| serving.spec() == spec && self.module_unchanged(serving));
            let line = catalog.source.plugin(i);
            if unchanged {
                if let Some(mut entry) = existing {
                    entry.spec = spec.clone();
                    entry.line = line;
                    entry.error = None;
                    kept.push((i, entry));
                }
            } else {
                to_load.push((i, spec.clone(), line, existing));
            }
        }
        let specs: Vec<PluginSpec> = to_load.iter().map(|(_, s, _, _)| s.clone()).collect();
        let results = self.load_specs(&specs, origin);

        let mut report = ChangeReport::default();
        let mut entries: Vec<(usize, PluginEntry)> = Vec::new();
        for (i, entry) in kept {
            report.changes.push(PluginChange {
                plugin: entry.spec.name.clone(),
                change: Change::Unchanged,
                message: "same module and settings: nothing to reload".into(),
            });
            entries.push((i, entry));
        }
        for ((i, spec, line, existing), result) in to_load.into_iter().zip(results) {
            let fresh = PluginEntry {
                spec,
                line,
                serving: None,
                error: None,
            };
            let previous = existing.and_then(|e| e.serving);
            let change = if previous.is_some() {
                Change::Replaced
            } else {
                Change::Added
            };
            let (entry, plugin_change) =
                settle(fresh, previous, result, change, self.catalog_path());
            report.changes.push(plugin_change);
            entries.push((i, entry));
        }
        for gone in current
            .plugins
            .iter()
            .filter(|p| catalog.catalog.position(&p.spec.name).is_none())
        {
            report.changes.push(PluginChange {
                plugin: gone.spec.name.clone(),
                change: Change::Removed,
                message: format!("no longer in {}", catalog.path.display()),
            });
        }
        entries.sort_by_key(|(i, _)| *i);
        let changed = report
            .changes
            .iter()
            .any(|c| matches!(c.change, Change::Added | Change::Replaced | Change::Removed));
        self.publish(
            catalog,
            entries.into_iter().map(|(_, e)| e).collect(),
            changed,
        );
        self.announce(&report, origin);
        Ok(report)
    }

    /// Load `name` again from its plugins.yml entry, with fresh instances even
    /// if nothing changed. On failure the previous version keeps serving.
    pub async fn reload_plugin(
        &self,
        name: &str,
        origin: &str,
    ) -> Result<ChangeReport, ChangeError> {
        let (name, origin) = (name.to_string(), origin.to_string());
        self.changing(move |registry| registry.reload_plugin_now(&name, &origin))
            .await?
    }

    fn reload_plugin_now(&self, name: &str, origin: &str) -> Result<ChangeReport, ChangeError> {
        let catalog = CatalogFile::read(self.catalog_path())?;
        let Some(index) = catalog.catalog.position(name) else {
            return Err(ChangeError::UnknownPlugin {
                name: name.to_string(),
                file: catalog.path.display().to_string(),
            });
        };
        let spec = catalog.catalog.plugins[index].clone();
        let current = self.snapshot();
        let previous = current.plugin(name).and_then(|e| e.serving.clone());
        self.announce_one(origin, &spec.name, Change::Reloading, "loading".into());
        let result = self.load_spec(&spec);
        let fresh = PluginEntry {
            spec,
            line: catalog.source.plugin(index),
            serving: None,
            error: None,
        };
        let change = if previous.is_some() {
            Change::Replaced
        } else {
            Change::Added
        };
        let (entry, plugin_change) = settle(fresh, previous, result, change, self.catalog_path());
        let mut entries = current.plugins.clone();
        match entries.iter_mut().find(|e| e.spec.name == name) {
            Some(slot) => *slot = entry,
            None => entries.push(entry),
        }
        let changed = plugin_change.change != Change::Failed;
        self.publish(Arc::clone(&current.catalog), entries, changed);
        let report = ChangeReport {
            changes: vec![plugin_change],
            ..Default::default()
        };
        self.announce(&report, origin);
        Ok(report)
    }

    /// Load `specs` in parallel, announcing each start.
    fn load_specs(&self, specs: &[PluginSpec], origin: &str) -> Vec<LoadResult> {
        for spec in specs {
            self.announce_one(origin, &spec.name, Change::Reloading, "loading".into());
        }
        std::thread::scope(|scope| {
            let loads: Vec<_> = specs
                .iter()
                .map(|spec| scope.spawn(|| self.load_spec(spec)))
                .collect();
            loads
                .into_iter()
                .map(|load| {
                    load.join()
                        .unwrap_or_else(|_| Err("the loader thread panicked".into()))
                })
                .collect()
        })
    }

    fn load_spec(&self, spec: &PluginSpec) -> LoadResult {
        let result = LoadedPlugin::load(spec, &self.inner.options.runtime)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        self.metrics().plugin_loaded(&spec.name, result.is_ok());
        result
    }

    /// Whether the module file of `serving` still has the same content.
    fn module_unchanged(&self, serving: &LoadedPlugin) -> bool {
        std::fs::read(serving.module_path())
            .is_ok_and(|bytes| crate::runtime::digest(&bytes) == serving.digest())
    }

    /// Tell the bus and the server log about every plugin in `report`.
    pub(super) fn announce(&self, report: &ChangeReport, origin: &str) {
        // "Unchanged" is news to the one who asked (it is in the report), not
        // to the log.
        for change in report
            .changes
            .iter()
            .filter(|c| c.change != Change::Unchanged)
        {
            self.announce_one(
                origin,
                &change.plugin,
                change.change,
                change.message.clone(),
            );
        }
    }

    /// Tell the bus and the log about a change that could not be made.
    pub(super) fn announce_problem(&self, origin: &str, plugin: Option<&str>, message: &str) {
        tracing::warn!(origin, plugin, "{message}");
        self.inner
            .bus
            .publish(ServerEvent::Lifecycle(LifecycleEvent {
                at: SystemTime::now(),
                origin: origin.to_string(),
                plugin: plugin.map(str::to_string),
                change: Change::Failed,
                message: message.to_string(),
            }));
    }

    fn announce_one(&self, origin: &str, plugin: &str, change: Change, message: String) {
        match change {
            Change::Failed => tracing::warn!(origin, plugin, "{message}"),
            Change::Reloading => tracing::debug!(origin, plugin, "{message}"),
            _ => tracing::info!(origin, plugin, ?change, "{message}"),
        }
        self.inner
            .bus
            .publish(ServerEvent::Lifecycle(LifecycleEvent {
                at: SystemTime::now(),
                origin: origin.to_string(),
                plugin: Some(plugin.to_string()),
                change,
                message,
            }));
    }
}

/// Combine a fresh entry with the load result: on success the new version
/// serves; on failure the previous one (if any) keeps serving, with the error.
fn settle(
    mut entry: PluginEntry,
    previous: Option<Arc<LoadedPlugin>>,
    result: LoadResult,
    on_success: Change,
    file: &Path,
) -> (PluginEntry, PluginChange) {
    let plugin = entry.spec.name.clone();
    let location = match entry.line {
        Some(line) => format!("{} line {line}: ", file.display()),
        None => format!("{}: ", file.display()),
    };
    match result {
        Ok(loaded) => {
            let message = format!(
                "{} with {} instance{} in {} ms",
                if on_success == Change::Added {
                    "loaded"
                } else {
                    "reloaded"
                },
                loaded.instances(),
                if loaded.instances() == 1 { "" } else { "s" },
                loaded.load_time().as_millis()
            );
            entry.serving = Some(loaded);
            entry.error = None;
            (
                entry,
                PluginChange {
                    plugin,
                    change: on_success,
                    message,
                },
            )
        }
        Err(reason) => {
            let keeps = if previous.is_some() {
                "; the previous version keeps serving"
            } else {
                ""
            };
            let message = format!("{location}{reason}{keeps}");
            entry.serving = previous;
            entry.error = Some(format!("{location}{reason}"));
            (
                entry,
                PluginChange {
                    plugin,
                    change: Change::Failed,
                    message,
                },
            )
        }
    }
}
