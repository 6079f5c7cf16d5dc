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
#[derive(Default)]
pub(crate) struct CallSignal {
    state: Mutex<SignalState>,
}

/// How long after a call starts a cancel may reach extism (see
/// [`CallSignal`]). Cancelling sooner buys nothing: calls that short end
/// on their own about as fast.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct SignalState {
    cancelled: bool,
    finished: bool,
    /// The running call's handle, and when it was armed.
    handle: Option<(CancelHandle, Instant)>,
}

impl CallSignal {
    fn state(&self) -> std::sync::MutexGuard<'_, SignalState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call is about to start on an instance with `handle`; false when it
    /// was cancelled already and must not start.
    pub fn arm(&self, handle: CancelHandle) -> bool {
        let mut state = self.state();
        state.handle = Some((handle, Instant::now()));
        !state.cancelled
    }

    #[cfg(test)]
    pub fn is_armed(&self) -> bool {
        self.state().handle.is_some()
    }

    /// The call has ended; its slot may serve another.
    pub fn finish(&self) {
        let mut state = self.state();
        state.handle = None;
        state.finished = true;
    }

    /// Stop the call; true while it has not ended (cancel again shortly: a
    /// call that started less than [`CANCEL_GRACE`] ago is only flagged).
    pub fn cancel(&self) -> bool {
        let mut state = self.state();
        state.cancelled = true;
        if let Some((handle, armed)) = &state.handle
            && armed.elapsed() >= CANCEL_GRACE
        {
            let _ = handle.cancel();
        }
        !state.finished
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
        if !signal.cancel() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                while signal.cancel() {
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
