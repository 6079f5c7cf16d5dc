//! Adding, replacing and removing a plugin: plugins.yml and the module file
//! change together, or not at all.
//!
//! Everything is checked before anything is written: the new entry against the
//! whole catalog (names, tool names, paths), the module compiled and its
//! functions found. Then the module is written, then plugins.yml (with a
//! `.bak`), both atomically, and the new snapshot is published. If writing
//! plugins.yml fails, the module file is put back as it was. All of it runs
//! on a blocking thread under the change lock (see `Registry::changing`), so
//! two requests at once never lose each other's change, no async worker waits
//! on the disk, and a client that goes away mid-change does not stop it half
//! way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::changes::{ChangeError, ChangeReport, PluginChange};
use super::{PluginEntry, Registry};
use crate::atomic_file;
use crate::catalog::{Catalog, CatalogError, CatalogFile, PathError, PluginSpec, RelativePath};
use crate::events::Change;
use crate::runtime::LoadedPlugin;

/// What the caller may delete: module files it owns (the admin API owns the
/// files in its upload folder, not the ones an operator put there by hand).
pub type OwnsFile = Arc<dyn Fn(&RelativePath) -> bool + Send + Sync>;

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
        let origin = origin.to_string();
        self.changing(move |registry| registry.add_plugin_now(spec, module, &origin))
            .await?
    }

    fn add_plugin_now(
        &self,
        spec: PluginSpec,
        module: Option<Vec<u8>>,
        origin: &str,
    ) -> Result<Edited, ChangeError> {
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
    }

    /// Replace an existing plugin's entry and (if given) its module. Calls
    /// running on the old version finish on it.
    pub async fn replace_plugin(
        &self,
        spec: PluginSpec,
        module: Option<Vec<u8>>,
        origin: &str,
        owns: OwnsFile,
    ) -> Result<Edited, ChangeError> {
        let origin = origin.to_string();
        self.changing(move |registry| registry.replace_plugin_now(spec, module, &origin, &*owns))
            .await?
    }

    fn replace_plugin_now(
        &self,
        spec: PluginSpec,
        module: Option<Vec<u8>>,
        origin: &str,
        owns: &dyn Fn(&RelativePath) -> bool,
    ) -> Result<Edited, ChangeError> {
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
    }

    /// Remove a plugin: from plugins.yml, from the served tools, and its
    /// module file if `owns` it and no other plugin uses it.
    pub async fn remove_plugin(
        &self,
        name: &str,
        origin: &str,
        owns: OwnsFile,
    ) -> Result<Edited, ChangeError> {
        let (name, origin) = (name.to_string(), origin.to_string());
        self.changing(move |registry| registry.remove_plugin_now(&name, &origin, &*owns))
            .await?
    }

    fn remove_plugin_now(
        &self,
        name: &str,
        origin: &str,
        owns: &dyn Fn(&RelativePath) -> bool,
    ) -> Result<Edited, ChangeError> {
        let current = self.read_catalog()?;
        let Some(index) = current.catalog.position(name) else {
            return Err(self.unknown(name));
        };
        let mut catalog = current.catalog.clone();
        let removed = catalog.plugins.remove(index);
        let module = removed.module().map_err(path_error)?;
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
        let module_deleted =
            !uses(&catalog, &module) && owns(&module) && self.delete_module(&module);
        let module_path = module.in_folder(self.plugins_dir());
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
            ..Default::default()
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

    fn plugins_dir(&self) -> &Path {
        &self.inner.options.runtime.plugins_dir
    }

    /// Check `catalog` (with `spec` in it) and the module, then write the
    /// module and plugins.yml and publish.
    #[allow(clippy::too_many_arguments)]
    fn write_and_publish(
        &self,
        current: CatalogFile,
        catalog: Catalog,
        spec: &PluginSpec,
        bytes: Option<Vec<u8>>,
        change: Change,
        origin: &str,
        owns: &dyn Fn(&RelativePath) -> bool,
    ) -> Result<Edited, ChangeError> {
        // The whole catalog must stay valid: unique names, unique tool names.
        let (file, text) = CatalogFile::render(self.catalog_path(), catalog.clone()).map_err(
            |error| match error {
                CatalogError::Invalid { .. } => ChangeError::Conflict(problems_only(&error)),
                other => ChangeError::Catalog(other),
            },
        )?;
        let module = spec.module().map_err(path_error)?;
        if let Some(other) = catalog
            .plugins
            .iter()
            .find(|p| p.name != spec.name && p.module().is_ok_and(|m| m == module))
        {
            return Err(ChangeError::Conflict(format!(
                "path `{}` is the module of plugin `{}`; choose another path",
                spec.path, other.name
            )));
        }
        // Nothing is read or written through a link that leaves the folder.
        let target = module.resolve(self.plugins_dir()).map_err(path_error)?;
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => std::fs::read(&target).map_err(|_| {
                ChangeError::Module(format!(
                    "no module was sent and {} does not exist",
                    target.display()
                ))
            })?,
        };
        // Compile and check before anything is written.
        let loaded =
            LoadedPlugin::from_bytes(spec, target.clone(), &bytes, &self.inner.options.runtime);
        self.metrics().plugin_loaded(&spec.name, loaded.is_ok());
        let loaded = loaded.map_err(|error| ChangeError::Module(error.to_string()))?;
        let previous_bytes = std::fs::read(&target).ok();
        let previous_module = current
            .catalog
            .plugins
            .iter()
            .find(|p| p.name == spec.name)
            .and_then(|p| p.module().ok());
        write_module(&target, &bytes)?;
        if let Err(error) = self.write_catalog(&text) {
            // Leave the folder as it was.
            match &previous_bytes {
                Some(old) => {
                    let _ = atomic_file::write(&target, old);
                }
                None => {
                    self.delete_module(&module);
                }
            }
            return Err(error);
        }
        // A replaced plugin that moved leaves its old module behind; delete
        // it if it is ours and nothing else uses it.
        if let Some(old) = previous_module
            && old != module
            && !uses(&catalog, &old)
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
            ..Default::default()
        };
        self.announce(&report, origin);
        Ok(Edited {
            report,
            module_path: target,
            module_deleted: false,
        })
    }

    /// Delete the file of `module`, if it resolves inside the plugins folder.
    fn delete_module(&self, module: &RelativePath) -> bool {
        module
            .resolve(self.plugins_dir())
            .is_ok_and(|path| std::fs::remove_file(path).is_ok())
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

/// Write a module at `target`, a path [`RelativePath::resolve`] checked.
fn write_module(target: &Path, bytes: &[u8]) -> Result<(), ChangeError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        atomic_file::write(target, bytes)
    };
    write().map_err(|source| ChangeError::Write {
        path: target.to_path_buf(),
        source,
    })
}

/// Whether a plugin of `catalog` has its module at `module`.
fn uses(catalog: &Catalog, module: &RelativePath) -> bool {
    catalog
        .plugins
        .iter()
        .any(|p| p.module().is_ok_and(|m| m == *module))
}

/// A module path that cannot be used: a conflict the client can fix by
/// choosing another path, or a file system error.
fn path_error(error: PathError) -> ChangeError {
    match error {
        PathError::Io { path, source } => ChangeError::Write { path, source },
        other => ChangeError::Conflict(other.to_string()),
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
