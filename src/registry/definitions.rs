//! resources.yml and prompts.yml, live. Each is served from an immutable set
//! behind an atomic pointer, like the plugins' snapshot, and changes only
//! under a lock of its own: from the file (startup, reload, watch) or by an
//! admin edit that is checked in full, written atomically with a `.bak`, and
//! only then published. Reads never take the lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Registry;
use super::changes::ChangeError;
use crate::atomic_file;
use crate::catalog::{DefinitionError, DefinitionFile, Definitions};
use crate::events::{Change, LifecycleEvent, ServerEvent};

/// Where a definition file is, and whether the operator named it (then a
/// missing file is worth a warning; the default place may well be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionLocation {
    pub path: PathBuf,
    pub configured: bool,
}

/// Where resources.yml and prompts.yml are; `None` serves none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinitionPaths {
    pub resources: Option<DefinitionLocation>,
    pub prompts: Option<DefinitionLocation>,
}

impl DefinitionPaths {
    /// resources.yml and prompts.yml in the folder of `plugins_file`, unnamed.
    pub fn beside(plugins_file: &Path) -> Self {
        let folder = plugins_file.parent().unwrap_or(Path::new(""));
        let at = |name: &str| {
            Some(DefinitionLocation {
                path: folder.join(name),
                configured: false,
            })
        };
        Self {
            resources: at("resources.yml"),
            prompts: at("prompts.yml"),
        }
    }
}

/// What a reload did to one definition file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionChange {
    pub file: String,
    /// Added (the file appeared), replaced, removed (it is gone), unchanged,
    /// or failed (it is invalid; what was served keeps serving).
    pub change: Change,
    pub message: String,
}

/// What is served from one definition file.
pub trait ServedSet: Sized + Send + Sync + 'static {
    type Document: Definitions;

    /// The set for `file`, or an empty one when no file is configured.
    fn from_file(file: Option<Arc<DefinitionFile<Self::Document>>>) -> Self;

    /// The file as last read successfully.
    fn file(&self) -> Option<&Arc<DefinitionFile<Self::Document>>>;

    /// Whether a client listing this set would see the same as in `other`.
    fn same_list(&self, other: &Self) -> bool;

    /// What is served, in a few words: "2 resources and 1 template".
    fn describe(&self) -> String;
}

/// One live set, its lock and the counter sessions watch for list changes.
pub(super) struct Store<S> {
    live: ArcSwap<S>,
    changed: watch::Sender<u64>,
    lock: tokio::sync::Mutex<()>,
}

impl<S: ServedSet> Store<S> {
    pub(super) fn new() -> Self {
        Self {
            live: ArcSwap::from_pointee(S::from_file(None)),
            changed: watch::channel(0).0,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn current(&self) -> Arc<S> {
        self.live.load_full()
    }

    pub(super) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn path(&self) -> Option<PathBuf> {
        self.current().file().map(|f| f.path.clone())
    }

    fn publish(&self, file: DefinitionFile<S::Document>) -> Arc<S> {
        let set = Arc::new(S::from_file(Some(Arc::new(file))));
        let previous = self.live.swap(Arc::clone(&set));
        if !set.same_list(&previous) {
            self.changed.send_modify(|g| *g += 1);
        }
        set
    }

    /// Serve the file at `path` (startup). An invalid file is an error.
    async fn load(&self, path: &Path) -> Result<Arc<S>, DefinitionError> {
        let _guard = self.lock.lock().await;
        let file = DefinitionFile::read(path)?;
        Ok(self.publish(file))
    }

    /// Read the file again. `None` when there is nothing to say: no file is
    /// configured, or it was absent and still is.
    async fn reload(&self) -> Option<DefinitionChange> {
        let _guard = self.lock.lock().await;
        let current = self.current();
        let previous = current.file()?;
        let name = previous.path.display().to_string();
        match DefinitionFile::<S::Document>::read(&previous.path) {
            Ok(file) => {
                let change = match (previous.exists, file.exists) {
                    (false, false) => return None,
                    (false, true) => Change::Added,
                    (true, false) => Change::Removed,
                    (true, true) if file.definitions == previous.definitions => Change::Unchanged,
                    (true, true) => Change::Replaced,
                };
                let set = self.publish(file);
                let message = match change {
                    Change::Removed => format!("{name} is gone: no {} served", S::Document::WHAT),
                    _ => format!("{name}: {}", set.describe()),
                };
                Some(DefinitionChange {
                    file: name,
                    change,
                    message,
                })
            }
            Err(error) => Some(DefinitionChange {
                file: name,
                change: Change::Failed,
                message: format!(
                    "not applied, the previous {} keep serving: {error}",
                    S::Document::WHAT
                ),
            }),
        }
    }

    /// Change the definitions with `edit`: on the file as it is on disk, the
    /// result checked in full, written atomically (the previous file kept as
    /// `.bak`), then served. Nothing is written when anything fails.
    pub(super) async fn edit<R>(
        &self,
        edit: impl FnOnce(&mut S::Document, &Path) -> Result<R, ChangeError>,
    ) -> Result<(R, Arc<S>), ChangeError> {
        let _guard = self.lock.lock().await;
        let Some(path) = self.path() else {
            return Err(ChangeError::Conflict(format!(
                "no {} file is configured",
                S::Document::WHAT
            )));
        };
        let file = path.display().to_string();
        let on_disk = DefinitionFile::<S::Document>::read(&path).map_err(|error| match error {
            DefinitionError::Invalid { .. } => ChangeError::FileOnDisk {
                file: file.clone(),
                problems: error.to_string(),
            },
            DefinitionError::Read { path, source } => ChangeError::Write { path, source },
        })?;
        let mut definitions = on_disk.definitions;
        let result = edit(&mut definitions, &path)?;
        let checked = DefinitionFile::in_memory(&path, &definitions)
            .map_err(|error| ChangeError::Conflict(error.messages()))?;
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            atomic_file::write_with_backup(&path, checked.to_yaml().as_bytes())
        };
        write().map_err(|source| ChangeError::Write {
            path: path.clone(),
            source,
        })?;
        Ok((result, self.publish(checked)))
    }

    /// Check `alone` (the definitions of one entry sent in a request) by itself,
    /// so that a malformed entry is told apart from one that clashes.
    pub(super) fn check_entry(&self, alone: &S::Document) -> Result<(), ChangeError> {
        let path = self.path().unwrap_or_default();
        DefinitionFile::in_memory(&path, alone)
            .map(|_| ())
            .map_err(|error| ChangeError::InvalidEntry(error.entry_messages()))
    }
}

impl Registry {
    /// Serve resources.yml and prompts.yml from `paths` (at startup). A file
    /// that is absent serves nothing until it appears; an invalid one is an
    /// error.
    pub async fn load_definitions(&self, paths: &DefinitionPaths) -> Result<(), DefinitionError> {
        if let Some(location) = &paths.resources {
            let set = self.inner.resources.load(&location.path).await?;
            self.announce_loaded(location, &*set);
            self.warn_about_computed_resources("startup");
        }
        if let Some(location) = &paths.prompts {
            let set = self.inner.prompts.load(&location.path).await?;
            self.announce_loaded(location, &*set);
        }
        Ok(())
    }

    fn announce_loaded<S: ServedSet>(&self, location: &DefinitionLocation, set: &S) {
        let exists = set.file().is_some_and(|f| f.exists);
        let file = location.path.display();
        if exists {
            self.announce_definitions(
                "startup",
                Change::Added,
                format!("{file}: {}", set.describe()),
            );
        } else if location.configured {
            tracing::warn!(
                "{file} does not exist: no {} served until it does (the admin API creates it)",
                S::Document::WHAT
            );
        }
    }

    /// The definition files being served or watched for.
    pub fn definition_files(&self) -> Vec<PathBuf> {
        [self.inner.resources.path(), self.inner.prompts.path()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Read resources.yml and prompts.yml again (part of every reload).
    pub(super) async fn reload_definitions(&self, origin: &str) -> Vec<DefinitionChange> {
        let changes: Vec<DefinitionChange> = [
            self.inner.resources.reload().await,
            self.inner.prompts.reload().await,
        ]
        .into_iter()
        .flatten()
        .collect();
        for change in changes.iter().filter(|c| c.change != Change::Unchanged) {
            self.announce_definitions(origin, change.change, change.message.clone());
        }
        if changes
            .iter()
            .any(|c| matches!(c.change, Change::Added | Change::Replaced))
        {
            self.warn_about_computed_resources(origin);
        }
        changes
    }

    /// Announce an edit of `set`'s file: "resource `x` added to resources.yml".
    pub(super) fn announce_edit<S: ServedSet>(
        &self,
        set: &S,
        origin: &str,
        change: Change,
        entry: &str,
    ) {
        let file = set
            .file()
            .map(|f| f.path.display().to_string())
            .unwrap_or_default();
        let how = match change {
            Change::Added => "added to",
            Change::Removed => "removed from",
            _ => "replaced in",
        };
        self.announce_definitions(origin, change, format!("{entry} {how} {file}"));
    }

    /// Tell the bus and the log about a change to resources or prompts.
    pub(super) fn announce_definitions(&self, origin: &str, change: Change, message: String) {
        match change {
            Change::Failed => tracing::warn!(origin, "{message}"),
            _ => tracing::info!(origin, ?change, "{message}"),
        }
        self.inner
            .bus
            .publish(ServerEvent::Lifecycle(LifecycleEvent {
                at: SystemTime::now(),
                origin: origin.to_string(),
                plugin: None,
                change,
                message,
            }));
    }

    /// Computed resources whose plugin is not declared, or does not export
    /// their function, read as errors; say so when the files are read, not
    /// only when a client asks.
    fn warn_about_computed_resources(&self, origin: &str) {
        let snapshot = self.snapshot();
        let resources = self.resources();
        let problems = resources.computed_problems(|name| {
            let entry = snapshot.plugin(name)?;
            Some(
                entry
                    .serving
                    .as_ref()
                    .map(|loaded| loaded.module_info().exports.as_slice()),
            )
        });
        for problem in problems {
            tracing::warn!(origin, "{problem}");
        }
    }
}
