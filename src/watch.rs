//! Watch mode (`--watch`): when plugins.yml, a module, resources.yml or
//! prompts.yml changes on disk, reload what changed.
//!
//! Events are debounced: a reload starts only after the files have been
//! quiet for a moment, so a module still being copied is not loaded half
//! way. If it is anyway (a copy that stalls), loading fails, the previous
//! version keeps serving, and the next write triggers another reload.
//! Only the folders that matter are watched: the ones holding plugins.yml,
//! resources.yml and prompts.yml, and the ones holding declared modules (not,
//! say, a `target/` full of builds).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// How long the files must stay quiet before a reload.
const QUIET: Duration = Duration::from_millis(500);

/// Watch in the background until `shutdown`.
pub fn spawn(registry: Registry, shutdown: CancellationToken) {
    tokio::spawn(async move {
        if let Err(error) = run(registry, shutdown).await {
            tracing::error!(%error, "watch mode stopped");
        }
    });
}

async fn run(registry: Registry, shutdown: CancellationToken) -> notify::Result<()> {
    let (sender, mut changes) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            )
        {
            for path in event.paths {
                let _ = sender.send(path);
            }
        }
    })?;
    let mut watched = BTreeSet::new();
    update_watches(&registry, &mut watcher, &mut watched);
    tracing::info!(
        folders = watched.len(),
        "watching plugins.yml, resources.yml, prompts.yml and the module folders"
    );
    let file_names: Vec<_> = std::iter::once(registry.catalog_path().to_path_buf())
        .chain(registry.definition_files())
        .filter_map(|path| path.file_name().map(|n| n.to_os_string()))
        .collect();
    let relevant = |path: &Path| {
        path.file_name()
            .is_some_and(|name| file_names.iter().any(|n| n == name))
            || path.extension().is_some_and(|e| e == "wasm")
    };
    loop {
        let first = tokio::select! {
            path = changes.recv() => path,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(first) = first else {
            return Ok(());
        };
        let mut matters = relevant(&first);
        loop {
            match tokio::time::timeout(QUIET, changes.recv()).await {
                Ok(Some(path)) => matters |= relevant(&path),
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        if !matters {
            continue;
        }
        match registry.reload_all("watch").await {
            Ok(report) => tracing::info!("files changed: {}", report.summary()),
            Err(error) => {
                tracing::error!(
                    "files changed but were not applied; the previous plugins keep serving: {error}"
                )
            }
        }
        update_watches(&registry, &mut watcher, &mut watched);
    }
}

/// Watch exactly the folders of plugins.yml, the definition files and the
/// declared modules.
fn update_watches(
    registry: &Registry,
    watcher: &mut impl Watcher,
    watched: &mut BTreeSet<PathBuf>,
) {
    let snapshot = registry.snapshot();
    let plugins_dir = &registry.runtime_settings().plugins_dir;
    let mut wanted = BTreeSet::new();
    let folder_of = |path: &Path| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()
    };
    wanted.extend(folder_of(registry.catalog_path()));
    for file in registry.definition_files() {
        wanted.extend(folder_of(&file));
    }
    for entry in &snapshot.plugins {
        if let Ok(module) = entry.spec.module() {
            wanted.extend(folder_of(&module.in_folder(plugins_dir)));
        }
    }
    for gone in watched.difference(&wanted).cloned().collect::<Vec<_>>() {
        let _ = watcher.unwatch(&gone);
        watched.remove(&gone);
    }
    for new in wanted
        .difference(&watched.clone())
        .cloned()
        .collect::<Vec<_>>()
    {
        match watcher.watch(&new, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(new);
            }
            Err(error) => tracing::warn!(folder = %new.display(), %error, "cannot watch"),
        }
    }
}
