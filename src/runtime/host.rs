//! What the host gives plugins and callers beyond input and output: progress
//! reports from a running call (the host function `wasimancer_progress`) and
//! cancellation of a running call.
//!
//! A plugin reports progress by calling the host function with a JSON object
//! `{"progress": 50, "total": 100, "message": "…"}` (total and message are
//! optional). Each instance slot has its own sink: the pool points it at the
//! caller's channel for the length of one call, so a report always reaches
//! the call that made it. Reports never block the plugin: when the caller
//! reads slowly, or a report does not increase the progress (MCP requires
//! that it increases), it is dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use extism::{CancelHandle, CurrentPlugin, Function, PTR, UserData, Val};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The name of the progress host function, in extism's user namespace
/// (`extism:host/user`, what extism-pdk's `extern "ExtismHost"` imports).
pub const PROGRESS_FUNCTION: &str = "wasimancer_progress";

/// One progress report from a running call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// How far the call is; increases with every report.
    pub progress: f64,
    /// How far it will go, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Takes a call's progress reports, on the thread running the plugin: it
/// must not block.
pub type ProgressReporter = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a caller can do with a call while it runs.
#[derive(Clone, Default)]
pub struct CallControl {
    /// Where the plugin's progress reports go.
    pub progress: Option<ProgressReporter>,
    /// Cancelled when the caller no longer wants the result: the running
    /// plugin is stopped and its instance replaced.
    pub cancel: Option<CancellationToken>,
}

impl CallControl {
    /// A reporter that queues reports on `sender`, dropping them when the
    /// reader is slow (never blocking the plugin).
    pub fn queue(sender: mpsc::Sender<Progress>) -> ProgressReporter {
        Arc::new(move |report| {
            let _ = sender.try_send(report);
        })
    }
}

/// Where one slot's progress reports go during a call.
#[derive(Default)]
pub(crate) struct ProgressSink {
    reporter: Option<ProgressReporter>,
    last: Option<f64>,
}

impl ProgressSink {
    fn report(&mut self, report: Progress) {
        let Some(reporter) = &self.reporter else {
            return;
        };
        if !report.progress.is_finite() || self.last.is_some_and(|last| report.progress <= last) {
            return;
        }
        self.last = Some(report.progress);
        reporter(report);
    }
}

/// A slot's sink, shared with its host function.
#[derive(Clone, Default)]
pub(crate) struct SlotSink(UserData<ProgressSink>);

impl SlotSink {
    /// Send this slot's reports to `reporter` until [`SlotSink::clear`].
    pub fn point_to(&self, reporter: Option<ProgressReporter>) {
        if let Ok(sink) = self.0.get() {
            let mut sink = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *sink = ProgressSink {
                reporter,
                last: None,
            };
        }
    }

    pub fn clear(&self) {
        self.point_to(None);
    }

    /// The host functions every plugin instance of this slot links.
    pub fn functions(&self) -> Vec<Function> {
        vec![Function::new(
            PROGRESS_FUNCTION,
            [PTR],
            [],
            self.0.clone(),
            report_progress,
        )]
    }
}

fn report_progress(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    _outputs: &mut [Val],
    sink: UserData<ProgressSink>,
) -> Result<(), extism::Error> {
    let Some(input) = inputs.first() else {
        return Err(extism::Error::msg(format!(
            "{PROGRESS_FUNCTION} takes one argument, a JSON object"
        )));
    };
    let text: String = plugin.memory_get_val(input)?;
    let report: Progress = serde_json::from_str(&text).map_err(|error| {
        extism::Error::msg(format!(
            "{PROGRESS_FUNCTION}: the report must be JSON like {{\"progress\": 50, \"total\": 100}} ({error})"
        ))
    })?;
    sink.get()?
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .report(report);
    Ok(())
}

/// The link between a running call and whoever may cancel it.
///
/// extism stops a call through its instance's `CancelHandle`, which only
/// works once the call has started: a cancel that arrives a moment earlier
/// is lost. So the canceller repeats it until the call has ended, and the
/// call checks the flag before it starts. The handle is dropped (under the
/// lock) before the slot goes back to the pool, so a late cancel never
/// reaches the slot's next call.
///
/// A cancel that arrives a moment *later* is worse: extism tells its timer
/// thread the call started (with its time limit) before it arms the
/// engine's epoch deadline, and a cancel the timer handles in between
/// bumps the epoch too early and also forgets the time limit. The call then
/// runs with no limit at all, an endless loop for ever (reproduced in
/// `a_cancel_as_the_call_starts_never_outlasts_its_time_limit`). So the
/// handle is not used until the call has been armed for [`CANCEL_GRACE`]:
/// by then extism has long passed those two statements, short of this
/// thread being kept off its core for all of that time at exactly that
/// point.
pub(crate) struct CallSignal {
    state: Mutex<SignalState>,
    /// What runs, for the error logged if it outlives its time limit.
    function: Arc<str>,
    plugin: Arc<str>,
}

/// How long after a call starts a cancel may reach extism (see
/// [`CallSignal`]). Cancelling sooner buys nothing: calls that short end
/// on their own about as fast.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(50);

/// How long past its time limit (and the grace) a cancelled call may run
/// before its cancellers stop trying: extism's timer ends any call at its
/// limit, so one still running then escaped it, and no cancel can reach it.
pub(crate) const OUTLIVED_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct SignalState {
    cancelled: bool,
    finished: bool,
    /// Logged already that the call outlived its limit.
    outlived: bool,
    armed: Option<Armed>,
}

/// A call that has reached its instance.
struct Armed {
    handle: CancelHandle,
    at: Instant,
    limit: Duration,
}

/// Where a cancel left the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelling {
    /// Still running (or about to start): cancel again shortly.
    Pending,
    Ended,
    /// Still running past its time limit: no cancel can stop it (logged once).
    Outlived,
}

impl CallSignal {
    pub fn new(function: Arc<str>, plugin: Arc<str>) -> Self {
        Self {
            state: Mutex::default(),
            function,
            plugin,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SignalState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call is about to start on an instance with `handle`, stopped by
    /// its time `limit`; false when it was cancelled already and must not
    /// start.
    pub fn arm(&self, handle: CancelHandle, limit: Duration) -> bool {
        let mut state = self.state();
        state.armed = Some(Armed {
            handle,
            at: Instant::now(),
            limit,
        });
        !state.cancelled
    }

    #[cfg(test)]
    pub fn is_armed(&self) -> bool {
        self.state().armed.is_some()
    }

    /// The call has ended; its slot may serve another.
    pub fn finish(&self) {
        let mut state = self.state();
        state.armed = None;
        state.finished = true;
    }

    /// Stop the call (a call that started less than [`CANCEL_GRACE`] ago is
    /// only flagged), and say whether to cancel again.
    pub fn cancel(&self) -> Cancelling {
        let mut state = self.state();
        state.cancelled = true;
        if state.finished {
            return Cancelling::Ended;
        }
        let Some(armed) = &state.armed else {
            return Cancelling::Pending;
        };
        let running = armed.at.elapsed();
        if running > armed.limit + CANCEL_GRACE + OUTLIVED_AFTER {
            if !std::mem::replace(&mut state.outlived, true) {
                tracing::error!(
                    "`{}` of plugin `{}` still runs {} ms after it started, past its time limit, \
                     and no cancel reaches it (probably a race in extism's timer); its thread and \
                     instance stay busy until it ends: reload the plugin to serve with fresh \
                     instances, restart the server to stop it",
                    self.function,
                    self.plugin,
                    running.as_millis()
                );
            }
            return Cancelling::Outlived;
        }
        if running >= CANCEL_GRACE {
            let _ = armed.handle.cancel();
        }
        Cancelling::Pending
    }

    pub fn was_cancelled(&self) -> bool {
        self.state().cancelled
    }
}

/// Cancels a call whose caller went away (its future was dropped) before it
/// ended, so that the instance is freed soon after [`CANCEL_GRACE`], not at
/// the plugin's timeout.
pub(crate) struct CancelOnDrop(pub Option<Arc<CallSignal>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(signal) = self.0.take() else {
            return;
        };
        if signal.cancel() != Cancelling::Pending {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                while signal.cancel() == Cancelling::Pending {
                    tokio::time::sleep(super::pool::CANCEL_RETRY).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_increasing_progress_goes_through() {
        let (sender, mut receiver) = mpsc::channel(8);
        let mut sink = ProgressSink {
            reporter: Some(CallControl::queue(sender)),
            last: None,
        };
        for progress in [0.0, 50.0, 50.0, 40.0, f64::NAN, 100.0] {
            sink.report(Progress {
                progress,
                total: Some(100.0),
                message: None,
            });
        }
        let mut seen = Vec::new();
        while let Ok(report) = receiver.try_recv() {
            seen.push(report.progress);
        }
        assert_eq!(seen, [0.0, 50.0, 100.0]);
    }
}
