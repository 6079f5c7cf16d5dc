//! Calls in flight that reported progress, for consoles: the calls pane
//! shows them until their record arrives. A call that never reports costs
//! nothing here but the reporter it is handed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Registry;
use crate::events::CallSource;
use crate::runtime::{Progress, ProgressReporter};

/// A call still running, with the last progress it reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningCall {
    /// Tells running calls apart (not the id its record will have).
    pub key: u64,
    #[serde(with = "crate::events::unix_millis")]
    pub started: SystemTime,
    pub source: CallSource,
    pub tool: Arc<str>,
    pub plugin: Arc<str>,
    pub progress: Progress,
}

/// The running calls that reported progress, by key.
#[derive(Default)]
pub(super) struct RunningCalls {
    calls: Mutex<BTreeMap<u64, RunningCall>>,
    next_key: AtomicU64,
}

impl RunningCalls {
    fn calls(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, RunningCall>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forgets a running call when it ends (when it ever reported).
pub(super) struct RunningGuard {
    registry: Registry,
    key: u64,
    reported: Arc<AtomicBool>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.reported.load(Ordering::Relaxed) {
            self.registry.inner.running.calls().remove(&self.key);
        }
    }
}

impl Registry {
    /// The calls running now that reported progress, oldest first.
    pub fn running_calls(&self) -> Vec<RunningCall> {
        self.inner.running.calls().values().cloned().collect()
    }

    /// A reporter for a call about to run: it keeps the call's latest
    /// progress for consoles and passes every report on to `caller`. The
    /// guard forgets the call when dropped.
    pub(super) fn track_progress(
        &self,
        source: &CallSource,
        tool: &Arc<str>,
        plugin: &Arc<str>,
        caller: Option<ProgressReporter>,
    ) -> (ProgressReporter, RunningGuard) {
        let key = self.inner.running.next_key.fetch_add(1, Ordering::Relaxed);
        let reported = Arc::new(AtomicBool::new(false));
        let guard = RunningGuard {
            registry: self.clone(),
            key,
            reported: Arc::clone(&reported),
        };
        let registry = self.clone();
        let started = SystemTime::now();
        let (source, tool, plugin) = (source.clone(), Arc::clone(tool), Arc::clone(plugin));
        let reporter: ProgressReporter = Arc::new(move |progress: Progress| {
            reported.store(true, Ordering::Relaxed);
            registry.inner.running.calls().insert(
                key,
                RunningCall {
                    key,
                    started,
                    source: source.clone(),
                    tool: Arc::clone(&tool),
                    plugin: Arc::clone(&plugin),
                    progress: progress.clone(),
                },
            );
            if let Some(caller) = &caller {
                caller(progress);
            }
        });
        (reporter, guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_shows_its_last_report_while_it_runs_and_is_forgotten_when_it_ends() {
        let path = std::path::Path::new("plugins.yml");
        let options = super::super::RegistryOptions {
            catalog_path: path.into(),
            runtime: Default::default(),
            keep_call_details: false,
        };
        let catalog = crate::catalog::CatalogFile::parse(path, "").unwrap();
        let registry =
            &Registry::with_catalog(options, Default::default(), catalog, |_| None).await;
        let (passed, mut seen) = tokio::sync::mpsc::channel(4);
        let (reporter, guard) = registry.track_progress(
            &CallSource::Cli,
            &"crunch".into(),
            &"numbers".into(),
            Some(crate::runtime::CallControl::queue(passed)),
        );
        let report = |progress| Progress {
            progress,
            total: Some(10.0),
            message: None,
        };
        reporter(report(1.0));
        reporter(report(2.0));
        let running: Vec<_> = registry
            .running_calls()
            .into_iter()
            .filter(|call| call.tool.as_ref() == "crunch")
            .collect();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].progress, report(2.0));
        assert_eq!(
            seen.try_recv().unwrap(),
            report(1.0),
            "the caller gets every report"
        );
        drop(guard);
        assert!(
            !registry
                .running_calls()
                .iter()
                .any(|call| call.key == running[0].key)
        );
    }
}
