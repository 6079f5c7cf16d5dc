//! Adding, replacing and removing a plugin: plugins.yml and the module file
//! change together, or not at all.
//!
//! Everything is checked before anything is written: the new entry against the
//! whole catalog (names, tool names, paths), the module compiled and its
//! functions found. Then the module is written, then plugins.yml (with a
//! `.bak`), both atomically, and the new snapshot is published. If writing
//! plugins.yml fails, the module file is put back as it was. All of it runs
//! under the change lock, so two requests at once never lose each other's
//! change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::changes::{ChangeError, ChangeReport, PluginChange};
use super::{PluginEntry, Registry};
use crate::atomic_file;
use crate::catalog::{Catalog, CatalogError, CatalogFile, PluginSpec};
use crate::events::Change;
use crate::runtime::{LoadedPlugin, module_path_of};

/// What the caller may delete: module files it owns (the admin API owns the
/// files in its upload folder, not the ones an operator put there by hand).
pub type OwnsFile<'a> = &'a (dyn Fn(&Path) -> bool + Sync);

/// The result of an edit: the report, and where the module is.
#[derive(Debug)]
pub struct Edited {
    pub report: ChangeReport,
    pub module_path: PathBuf,
    /// For a removal: whether the module file was deleted.
    pub module_deleted: bool,
}

impl Registry {
    /// Add a new plugin. `module` is the new module's content; `None` uses
    /// the file already at `spec.path`.
    pub async fn add_plugin(
        &self,
        spec: PluginSpec,
        module: Option<Vec<u8>>,
        origin: &str,
    ) -> Result<Edited, ChangeError> {
        let _guard = self.inner.change_lock.lock().await;
        let current = self.read_catalog()?;
        if current.catalog.position(&spec.name).is_some() {
            return Err(ChangeError::Conflict(format!(
                "plugin `{}` already exists; use PUT /update-plugin to replace it",
                spec.name
            )));
        }
        let mut catalog = current.catalog.clone();
        catalog.plugins.push(spec.clone());
        self.write_and_publish(
            current,
            catalog,
            &spec,
            module,
            Change::Added,
            origin,
            &|_| false,
        )
        .await
    }

    /// Replace an existing plugin's entry and (if given) its module. Calls
    /// running on the old version finish on it.
    pub async fn replace_plugin(
        &self,
        spec: PluginSpec,
        module: Option<Vec<u8>>,
        origin: &str,
        owns: OwnsFile<'_>,
    ) -> Result<Edited, ChangeError> {
        let _guard = self.inner.change_lock.lock().await;
        let current = self.read_catalog()?;
        let Some(index) = current.catalog.position(&spec.name) else {
            return Err(self.unknown(&spec.name));
        };
        let mut catalog = current.catalog.clone();
        catalog.plugins[index] = spec.clone();
        self.write_and_publish(
            current,
            catalog,
            &spec,
            module,
            Change::Replaced,
            origin,
            owns,
        )
        .await
    }

    /// Remove a plugin: from plugins.yml, from the served tools, and its
    /// module file if `owns` it and no other plugin uses it.
    pub async fn remove_plugin(
        &self,
        name: &str,
        origin: &str,
        owns: OwnsFile<'_>,
    ) -> Result<Edited, ChangeError> {
        let _guard = self.inner.change_lock.lock().await;
        let current = self.read_catalog()?;
        let Some(index) = current.catalog.position(name) else {
            return Err(self.unknown(name));
        };
        let mut catalog = current.catalog.clone();
        let removed = catalog.plugins.remove(index);
        let module_path = self.module_path(&removed);
        let (file, text) = CatalogFile::render(self.catalog_path(), catalog.clone())
            .map_err(ChangeError::Catalog)?;
        self.write_catalog(&text)?;
        let snapshot = self.snapshot();
        let entries: Vec<PluginEntry> = snapshot
            .plugins
            .iter()
            .filter(|p| p.spec.name != name)
            .cloned()
            .collect();
        self.publish(Arc::new(file), entries, true);
        let still_used = catalog
            .plugins
            .iter()
            .any(|p| self.module_path(p) == module_path);
        let module_deleted = !still_used && owns(&module_path) && self.delete_module(&module_path);
        let report = ChangeReport {
            changes: vec![PluginChange {
                plugin: name.to_string(),
                change: Change::Removed,
                message: if module_deleted {
                    format!("removed, with its module {}", module_path.display())
                } else {
                    "removed".into()
                },
            }],
        };
        self.announce(&report, origin);
        Ok(Edited {
            report,
            module_path,
            module_deleted,
        })
    }

    fn read_catalog(&self) -> Result<CatalogFile, ChangeError> {
        CatalogFile::read(self.catalog_path()).map_err(|error| match error {
            CatalogError::Invalid { .. } => ChangeError::CatalogOnDisk(error.to_string()),
            other => ChangeError::Catalog(other),
        })
    }

    fn unknown(&self, name: &str) -> ChangeError {
        ChangeError::UnknownPlugin {
            name: name.to_string(),
            file: self.catalog_path().display().to_string(),
        }
    }

    fn module_path(&self, spec: &PluginSpec) -> PathBuf {
        module_path_of(spec, &self.inner.options.runtime.plugins_dir)
    }

    /// Check `catalog` (with `spec` in it) and the module, then write the
    /// module and plugins.yml and publish.
    #[allow(clippy::too_many_arguments)]
    async fn write_and_publish(
        &self,
        current: CatalogFile,
        catalog: Catalog,
        spec: &PluginSpec,
        module: Option<Vec<u8>>,
        change: Change,
        origin: &str,
        owns: OwnsFile<'_>,
    ) -> Result<Edited, ChangeError> {
        // The whole catalog must stay valid: unique names, unique tool names.
        let (file, text) = CatalogFile::render(self.catalog_path(), catalog.clone()).map_err(
            |error| match error {
                CatalogError::Invalid { .. } => ChangeError::Conflict(problems_only(&error)),
                other => ChangeError::Catalog(other),
            },
        )?;
        let target = self.module_path(spec);
        if let Some(other) = catalog
            .plugins
            .iter()
            .find(|p| p.name != spec.name && self.module_path(p) == target)
        {
            return Err(ChangeError::Conflict(format!(
                "path `{}` is the module of plugin `{}`; choose another path",
                spec.path, other.name
            )));
        }
        let bytes = match module {
            Some(bytes) => bytes,
            None => std::fs::read(&target).map_err(|_| {
                ChangeError::Module(format!(
                    "no module was sent and {} does not exist",
                    target.display()
                ))
            })?,
        };
        // Compile and check before anything is written.
        let loaded = {
            let spec = spec.clone();
            let target = target.clone();
            let settings = self.inner.options.runtime.clone();
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || {
                LoadedPlugin::from_bytes(&spec, target, &bytes, &settings)
            })
            .await
            .map_err(|_| ChangeError::Module("the loader thread panicked".into()))?
            .map_err(|error| ChangeError::Module(error.to_string()))?
        };
        let previous_bytes = std::fs::read(&target).ok();
        let previous_path = current
            .catalog
            .plugins
            .iter()
            .find(|p| p.name == spec.name)
            .map(|p| self.module_path(p));
        self.write_module(&target, &bytes)?;
        if let Err(error) = self.write_catalog(&text) {
            {
                // Leave the folder as it was.
                match &previous_bytes {
                    Some(old) => {
                        let _ = atomic_file::write(&target, old);
                    }
                    None => {
                        self.delete_module(&target);
                    }
                }
                return Err(error);
            }
        }
        // A replaced plugin that moved leaves its old module behind; delete
        // it if it is ours and nothing else uses it.
        if let Some(old) = previous_path
            && old != target
            && !catalog.plugins.iter().any(|p| self.module_path(p) == old)
            && owns(&old)
        {
            self.delete_module(&old);
        }
        let index = catalog.position(&spec.name).unwrap_or(0);
        let entry = PluginEntry {
            spec: spec.clone(),
            line: file.source.plugin(index),
            serving: Some(Arc::new(loaded)),
            error: None,
        };
        let snapshot = self.snapshot();
        let mut entries = snapshot.plugins.clone();
        match entries.iter_mut().find(|e| e.spec.name == spec.name) {
            Some(slot) => *slot = entry,
            None => entries.push(entry),
        }
        // Keep plugins.yml order.
        entries.sort_by_key(|e| catalog.position(&e.spec.name).unwrap_or(usize::MAX));
        self.publish(Arc::new(file), entries, true);
        let report = ChangeReport {
            changes: vec![PluginChange {
                plugin: spec.name.clone(),
                change,
                message: format!(
                    "{} from {}",
                    if change == Change::Added {
                        "added"
                    } else {
                        "replaced"
                    },
                    target.display()
                ),
            }],
        };
        self.announce(&report, origin);
        Ok(Edited {
            report,
            module_path: target,
            module_deleted: false,
        })
    }

    /// Whether the folder `path` is in resolves (links followed) inside the
    /// plugins folder: nothing is written or deleted anywhere else.
    fn in_plugins_folder(&self, path: &Path) -> bool {
        let plugins_dir = &self.inner.options.runtime.plugins_dir;
        match (
            path.parent().map(std::fs::canonicalize),
            std::fs::canonicalize(plugins_dir),
        ) {
            (Some(Ok(parent)), Ok(root)) => parent.starts_with(root),
            _ => false,
        }
    }

    fn delete_module(&self, path: &Path) -> bool {
        self.in_plugins_folder(path) && std::fs::remove_file(path).is_ok()
    }

    fn write_module(&self, target: &Path, bytes: &[u8]) -> Result<(), ChangeError> {
        let write = || -> std::io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if !self.in_plugins_folder(target) {
                return Err(std::io::Error::other(
                    "the folder leads outside the plugins folder (a symbolic link?)",
                ));
            }
            atomic_file::write(target, bytes)
        };
        write().map_err(|source| ChangeError::Write {
            path: target.to_path_buf(),
            source,
        })
    }

    /// Write `text`, made by [`CatalogFile::render`], as plugins.yml.
    fn write_catalog(&self, text: &str) -> Result<(), ChangeError> {
        let path = self.catalog_path();
        atomic_file::write_with_backup(path, text.as_bytes()).map_err(|source| ChangeError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The problems of a catalog error, without the file name of each (the
/// catalog was built in memory from a request).
fn problems_only(error: &CatalogError) -> String {
    match error {
        CatalogError::Invalid { problems } => problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
