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
//!
//! The kernel tells of changes made on this machine only: on a network
//! filesystem (NFS, SMB, CephFS, a FUSE mount), where replicas share one
//! plugins folder, a change made elsewhere is never reported. There the
//! watcher looks at the files every second instead (notify's polling
//! watcher), and `--watch-poll` asks for that anywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// How long the files must stay quiet before a reload.
const QUIET: Duration = Duration::from_millis(500);

/// How often the files are looked at on a network filesystem.
const NETWORK_POLL: Duration = Duration::from_secs(1);

/// Watch in the background until `shutdown`: with the kernel's
/// notifications, or by looking every `poll` when given (or every second
/// when the plugins are on a network filesystem).
///
/// The watches are in place when this returns, so a change made right after
/// the server has started is seen (a poll watcher's first look is the
/// baseline: a change made before it would go unnoticed).
pub fn spawn(registry: Registry, poll: Option<Duration>, shutdown: CancellationToken) {
    let started = match start(&registry, poll) {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "watch mode did not start");
            return;
        }
    };
    tokio::spawn(run(registry, started, shutdown));
}

/// A watcher with its watches in place, and where it sends changed paths.
struct Started {
    watcher: Box<dyn Watcher + Send>,
    watched: BTreeSet<PathBuf>,
    changes: mpsc::UnboundedReceiver<PathBuf>,
}

fn start(registry: &Registry, poll: Option<Duration>) -> notify::Result<Started> {
    let (sender, changes) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |event: notify::Result<notify::Event>| {
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
    };
    let network = network_filesystem(registry.catalog_path());
    let poll = poll.or(network.map(|_| NETWORK_POLL));
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(every) => Box::new(notify::PollWatcher::new(
            handler,
            // notify's poller keeps modification times in whole seconds, so
            // a second write within the same second would go unseen: it
            // compares contents instead (the watched files are small YAML
            // files and the modules).
            notify::Config::default()
                .with_poll_interval(every)
                .with_compare_contents(true),
        )?),
        None => Box::new(notify::recommended_watcher(handler)?),
    };
    let mut watched = BTreeSet::new();
    update_watches(registry, watcher.as_mut(), &mut watched);
    let how = match (poll, network) {
        (Some(every), Some(kind)) => {
            format!("looking every {every:?} ({kind} tells no changes made elsewhere)")
        }
        (Some(every), None) => format!("looking every {every:?}"),
        (None, _) => "with the kernel's notifications".to_string(),
    };
    tracing::info!(
        folders = watched.len(),
        "watching plugins.yml, resources.yml, prompts.yml and the module folders, {how}"
    );
    Ok(Started {
        watcher,
        watched,
        changes,
    })
}

async fn run(registry: Registry, started: Started, shutdown: CancellationToken) {
    let Started {
        mut watcher,
        mut watched,
        mut changes,
    } = started;
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
            _ = shutdown.cancelled() => return,
        };
        let Some(first) = first else {
            return;
        };
        let mut matters = relevant(&first);
        loop {
            match tokio::time::timeout(QUIET, changes.recv()).await {
                Ok(Some(path)) => matters |= relevant(&path),
                Ok(None) => return,
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
        update_watches(&registry, watcher.as_mut(), &mut watched);
    }
}

/// The kind of network filesystem `path` (or its folder) is on, if it is.
fn network_filesystem(path: &Path) -> Option<&'static str> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    filesystem_kind(folder.unwrap_or(Path::new(".")))
}

#[cfg(target_os = "linux")]
fn filesystem_kind(folder: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(folder.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; the path is a
    // valid C string that outlives the call.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    // The magic numbers of linux/magic.h (and fuse's).
    #[allow(clippy::unnecessary_cast)]
    match stats.f_type as i64 {
        0x6969 => Some("NFS"),
        0x517B | 0xFE53_4D42 | 0xFF53_4D42 => Some("SMB/CIFS"),
        0x00C3_6400 => Some("CephFS"),
        0x0102_1997 => Some("9P"),
        0x6573_5546 => Some("FUSE"),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn filesystem_kind(_folder: &Path) -> Option<&'static str> {
    None
}

/// Watch exactly the folders of plugins.yml, the definition files and the
/// declared modules.
fn update_watches(registry: &Registry, watcher: &mut dyn Watcher, watched: &mut BTreeSet<PathBuf>) {
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
