//! A fixed set of warm instances of one plugin version.
//!
//! `extism::Plugin::call` takes `&mut self`, so an instance serves one call at
//! a time; the pool holds `instances` of them so that calls run in parallel.
//! The idle instances wait in a channel, which is the only record of what is
//! free: a call takes one, waiting at most the queue timeout before it is
//! refused as busy, so the queue never grows without bound. Plugin code runs
//! on a blocking thread, and that thread puts the instance back, so a caller
//! that goes away (a client that disconnects) never loses an instance.
//!
//! Except for functions known to be short: the hop to a blocking thread and
//! back costs two thread switches, more than a call of a few microseconds
//! itself (profiles put thread switches first in the server's CPU time).
//! Once a function has made [`INLINE_AFTER`] calls that each took less than
//! the inline budget (`--inline-budget-us`, 500 µs by default), its calls
//! run on the async thread that asked for them (see [`ShortCalls`]). The
//! sandbox is the same either way: extism's timeout and memory limit stop
//! the call; what an inline call that turns out long holds up is one async
//! worker thread, until it returns or its timeout stops it, and at most two
//! such calls in a row send the function back to blocking threads.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use extism::{CompiledPlugin, Plugin};
use tokio::sync::{Mutex, mpsc};

use super::failure::{CallFailure, FailureKind};
use super::host::{CallControl, CallSignal, CancelOnDrop, Cancelling, SlotSink};

/// How often a cancel is repeated until the call it stops has ended (a
/// cancel that arrives just before the call starts is lost).
pub(crate) const CANCEL_RETRY: Duration = Duration::from_millis(2);

/// The return code extism gives a call that ended in a wasm trap. Anything
/// else is the plugin's own error (extism-pdk returns -1 with its message).
const TRAP_EXIT_CODE: i32 = 134;

/// The limits one call runs under, kept for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub plugin: Arc<str>,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    pub max_output_bytes: usize,
}

/// One engine with its compiled module and, when warm, an instance.
pub(crate) struct Slot {
    compiled: Arc<CompiledPlugin>,
    instance: Option<Plugin>,
    /// Where the host function sends this slot's progress reports.
    sink: SlotSink,
}

impl Slot {
    /// Make a slot from a freshly compiled module whose host functions
    /// report to `sink`, with a warm instance.
    pub fn new(compiled: CompiledPlugin, sink: SlotSink) -> Result<Self, String> {
        let instance = Plugin::new_from_compiled(&compiled).map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            compiled: Arc::new(compiled),
            instance: Some(instance),
            sink,
        })
    }

    fn run(
        &mut self,
        function: &str,
        input: &[u8],
        limits: &Limits,
        signal: &CallSignal,
    ) -> Result<Vec<u8>, CallFailure> {
        let instance = match &mut self.instance {
            Some(instance) => instance,
            None => {
                let fresh = Plugin::new_from_compiled(&self.compiled).map_err(|e| {
                    CallFailure::new(
                        FailureKind::Runtime,
                        format!(
                            "plugin `{}` could not start an instance: {e:#}",
                            limits.plugin
                        ),
                    )
                })?;
                self.instance.insert(fresh)
            }
        };
        if !signal.arm(
            instance.cancel_handle(),
            Duration::from_millis(limits.timeout_ms),
        ) {
            return Err(cancelled(function));
        }
        let result = match instance.call_get_error_code::<&[u8], &[u8]>(function, input) {
            Ok(output) if output.len() > limits.max_output_bytes => Err((
                CallFailure::new(
                    FailureKind::OutputTooLarge,
                    format!(
                        "`{function}` returned {} bytes, more than the {} bytes this server hands back; ask for less output (the operator can raise --max-output-bytes)",
                        output.len(),
                        limits.max_output_bytes
                    ),
                ),
                false,
            )),
            Ok(output) => Ok(output.to_vec()),
            Err(_) if signal.was_cancelled() => Err((cancelled(function), true)),
            Err((error, code)) => Err(classify(&error, code, function, limits)),
        };
        if let Err((_, true)) = &result {
            // Guest memory survives a trap or a timeout: a plugin stopped half
            // way may carry broken state, so the next call gets a new instance.
            // Making it now keeps the next call warm.
            self.instance = Plugin::new_from_compiled(&self.compiled).ok();
        }
        // An error is as long as the plugin made it: the caller gets no more
        // of it than of an output.
        result.map_err(|(failure, _)| failure.clipped(limits.max_output_bytes))
    }
}

fn cancelled(function: &str) -> CallFailure {
    CallFailure::new(
        FailureKind::Cancelled,
        format!("`{function}` was cancelled by its caller; the instance was replaced"),
    )
}

/// What went wrong, and whether the instance must be thrown away: anything
/// that stopped the guest half way (a trap, a timeout, running out of memory,
/// a refused host call) may have left its memory broken; an error the plugin
/// returned itself did not.
fn classify(
    error: &extism::Error,
    code: i32,
    function: &str,
    limits: &Limits,
) -> (CallFailure, bool) {
    let text = error.to_string();
    let plugin = &limits.plugin;
    let failure = match text.as_str() {
        "timeout" => CallFailure::new(
            FailureKind::Timeout,
            format!(
                "`{function}` was stopped after {} ms, the time limit of plugin `{plugin}`; try a smaller input (the operator can raise timeout_ms in plugins.yml)",
                limits.timeout_ms
            ),
        ),
        "oom" => CallFailure::new(
            FailureKind::OutOfMemory,
            format!(
                "`{function}` needed more than the {} MiB of memory plugin `{plugin}` may use; try a smaller input (the operator can raise memory_mb in plugins.yml)",
                limits.memory_mb
            ),
        ),
        _ if code == TRAP_EXIT_CODE => CallFailure::new(
            FailureKind::Trap,
            format!(
                "`{function}` crashed ({}); the plugin has a bug for this input, and the instance was replaced",
                first_line(&error.root_cause().to_string())
            ),
        ),
        // A host call refused by the sandbox (a host not in allowed_hosts…)
        // surfaces as an aborted execution, its reason at the root.
        _ if text.starts_with("error while executing") => CallFailure::new(
            FailureKind::PluginError,
            format!(
                "`{function}` was stopped: {}",
                first_line(&error.root_cause().to_string())
            ),
        ),
        _ => return (CallFailure::new(FailureKind::PluginError, text), false),
    };
    (failure, true)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// How many short calls let a function's calls run inline, and what one
/// long call costs of that credit.
const INLINE_AFTER: u32 = 32;

/// The most credit a function keeps: twice what running inline takes, so
/// that one slow call among many quick ones (its thread preempted on a busy
/// machine) leaves it inline, and two in a row do not.
const MOST_CREDIT: u32 = 2 * INLINE_AFTER;

/// Only where other async workers can serve requests meanwhile: never on a
/// runtime with one worker (a current-thread runtime, a one-core machine).
fn inline_allowed() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|runtime| runtime.metrics().num_workers() > 1)
}

/// For each function of the plugin, a credit of short calls: each short
/// call earns one (up to [`MOST_CREDIT`]), each long one costs
/// [`INLINE_AFTER`], and calls run inline while the credit is at least
/// [`INLINE_AFTER`]. A function that turns slow runs inline at most twice
/// more; before, any long call sent it back to blocking threads, and under
/// load a preempted call did that every few hundred calls, each time for
/// the next 32. Counted per function, not per plugin: a plugin's quick
/// `echo` must not let its slow `spin` run inline.
struct ShortCalls {
    credits: HashMap<Box<str>, AtomicU32>,
    /// The longest a short call takes; zero: none is.
    budget: Duration,
}

impl ShortCalls {
    fn new<'a>(functions: impl IntoIterator<Item = &'a str>, budget: Duration) -> Self {
        let credits = if budget.is_zero() {
            HashMap::new()
        } else {
            functions
                .into_iter()
                .map(|function| (function.into(), AtomicU32::new(0)))
                .collect()
        };
        Self { credits, budget }
    }

    fn runs_inline(&self, function: &str) -> bool {
        self.credits
            .get(function)
            .is_some_and(|credit| credit.load(Ordering::Relaxed) >= INLINE_AFTER)
    }

    fn record(&self, function: &str, took: Duration) {
        let Some(credit) = self.credits.get(function) else {
            return;
        };
        if took > self.budget {
            let _ = credit.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |credit| {
                Some(credit.saturating_sub(INLINE_AFTER))
            });
        } else if credit.load(Ordering::Relaxed) < MOST_CREDIT {
            // Racing increments may overshoot a little: harmless.
            credit.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The output of a call, how many calls to the same plugin version ran at
/// that moment (the call included) and how long it waited for an instance.
pub(crate) struct PoolOutput {
    pub output: Result<Vec<u8>, CallFailure>,
    pub overlapping: u32,
    pub waited: Duration,
    /// It ran on the caller's thread, not a blocking one.
    pub inline: bool,
}

pub(crate) struct InstancePool {
    inner: Arc<PoolInner>,
    size: usize,
}

struct PoolInner {
    /// Where idle instances wait. The channel holds room for every instance,
    /// so putting one back never waits or fails while the pool exists.
    give_back: mpsc::Sender<Slot>,
    /// Callers wait for the receiver in turn (the mutex is fair), then for
    /// an instance.
    idle: Mutex<mpsc::Receiver<Slot>>,
    running: AtomicU32,
    limits: Limits,
    queue_timeout: Duration,
    short_calls: ShortCalls,
}

impl PoolInner {
    /// An idle instance, when one is free and no caller waits for one
    /// already (a waiter holds the receiver, and comes first).
    fn take_idle(&self) -> Option<Slot> {
        self.idle.try_lock().ok()?.try_recv().ok()
    }
}

impl InstancePool {
    /// A pool of `slots` serving `functions` (the exports plugins.yml
    /// declares), running those known to be short inline (`inline_budget`).
    pub fn new<'a>(
        slots: Vec<Slot>,
        limits: Limits,
        queue_timeout: Duration,
        functions: impl IntoIterator<Item = &'a str>,
        inline_budget: Duration,
    ) -> Self {
        let size = slots.len();
        let (give_back, idle) = mpsc::channel(size.max(1));
        for slot in slots {
            // Room for every slot: the channel was made for them.
            let _ = give_back.try_send(slot);
        }
        Self {
            inner: Arc::new(PoolInner {
                give_back,
                idle: Mutex::new(idle),
                running: AtomicU32::new(0),
                limits,
                queue_timeout,
                short_calls: ShortCalls::new(functions, inline_budget),
            }),
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// How many instances are out of the pool: running a call, or about to.
    pub fn busy(&self) -> usize {
        // The channel's free room is exactly the instances not in it.
        self.inner.give_back.capacity()
    }

    /// Run `function` with `input` on a free instance, with the caller's
    /// progress channel and cancellation.
    pub async fn call(
        &self,
        function: Arc<str>,
        input: Vec<u8>,
        control: CallControl,
    ) -> PoolOutput {
        let inner = &self.inner;
        let cancel = control.cancel.clone().unwrap_or_default();
        let asked = Instant::now();
        let taken = match inner.take_idle() {
            // Most calls find an instance free: no timer to set and clear.
            Some(slot) => Ok(Some(slot)),
            None => {
                let take = async { inner.idle.lock().await.recv().await };
                tokio::select! {
                    taken = tokio::time::timeout(inner.queue_timeout, take) => taken,
                    _ = cancel.cancelled() => {
                        return PoolOutput {
                            output: Err(cancelled(&function)),
                            overlapping: 0,
                            waited: asked.elapsed(),
                            inline: false,
                        };
                    }
                }
            }
        };
        let waited = asked.elapsed();
        let mut slot = match taken {
            Ok(Some(slot)) => slot,
            _ => {
                return PoolOutput {
                    output: Err(CallFailure::new(
                        FailureKind::Busy,
                        format!(
                            "all {} instances of plugin `{}` stayed busy for {} ms; retry in a moment (the operator can raise `instances` in plugins.yml)",
                            self.size,
                            inner.limits.plugin,
                            inner.queue_timeout.as_millis()
                        ),
                    )),
                    overlapping: 0,
                    waited,
                    inline: false,
                };
            }
        };
        let signal = Arc::new(CallSignal::new(
            Arc::clone(&function),
            Arc::clone(&inner.limits.plugin),
        ));
        let function_name = Arc::clone(&function);
        let job = {
            let inner = Arc::clone(inner);
            let signal = Arc::clone(&signal);
            move || {
                slot.sink.point_to(control.progress);
                let overlapping = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
                let started = Instant::now();
                let output = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    slot.run(&function, &input, &inner.limits, &signal)
                }))
                .unwrap_or_else(|_| {
                    slot.instance = None;
                    Err(CallFailure::new(
                        FailureKind::Runtime,
                        format!(
                            "the runtime failed while running `{function}`; the instance was replaced, retry the call"
                        ),
                    ))
                });
                inner.short_calls.record(&function, started.elapsed());
                // No cancel may reach this slot once it serves another call.
                signal.finish();
                slot.sink.clear();
                inner.running.fetch_sub(1, Ordering::SeqCst);
                // Back in the channel, which has room for it.
                let _ = inner.give_back.try_send(slot);
                PoolOutput {
                    output,
                    overlapping,
                    waited,
                    inline: false,
                }
            }
        };
        if inline_allowed()
            && inner.short_calls.runs_inline(&function_name)
            && !cancel.is_cancelled()
        {
            // Short enough not to hold this thread up: no hop (module docs).
            return PoolOutput {
                inline: true,
                ..job()
            };
        }
        let mut guard = CancelOnDrop(Some(Arc::clone(&signal)));
        let mut running = tokio::task::spawn_blocking(job);
        let joined = tokio::select! {
            joined = &mut running => joined,
            _ = cancel.cancelled() => loop {
                if signal.cancel() == Cancelling::Outlived {
                    // Its thread gives the instance back if it ever ends.
                    break Ok(PoolOutput {
                        output: Err(cancelled(&function_name)),
                        overlapping: 0,
                        waited,
                        inline: false,
                    });
                }
                tokio::select! {
                    joined = &mut running => break joined,
                    _ = tokio::time::sleep(CANCEL_RETRY) => {}
                }
            },
        };
        guard.0 = None;
        joined.unwrap_or_else(|_| PoolOutput {
            output: Err(CallFailure::new(
                FailureKind::Runtime,
                "internal error: the call's thread stopped",
            )),
            overlapping: 0,
            waited,
            inline: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_runs_inline_after_short_calls_and_leaves_after_two_long_ones() {
        let budget = Duration::from_micros(500);
        let (short, long) = (budget / 2, budget * 2);
        let calls = ShortCalls::new(["quick", "other"], budget);
        for _ in 1..INLINE_AFTER {
            calls.record("quick", short);
        }
        assert!(!calls.runs_inline("quick"), "one short call too few");
        calls.record("quick", short);
        assert!(calls.runs_inline("quick"));
        assert!(!calls.runs_inline("other"), "counted per function");
        // Straight after turning inline, one long call is enough to leave.
        calls.record("quick", long);
        assert!(!calls.runs_inline("quick"));
        // After a long run of short calls, it takes two.
        for _ in 0..3 * INLINE_AFTER {
            calls.record("quick", short);
        }
        calls.record("quick", long);
        assert!(calls.runs_inline("quick"), "one slow call among many");
        calls.record("quick", long);
        assert!(!calls.runs_inline("quick"), "two in a row");
    }

    #[test]
    fn no_function_runs_inline_without_a_budget() {
        let calls = ShortCalls::new(["quick"], Duration::ZERO);
        for _ in 0..MOST_CREDIT {
            calls.record("quick", Duration::ZERO);
        }
        assert!(!calls.runs_inline("quick"));
        assert!(!calls.runs_inline("unknown"));
    }

    /// A slot of the sample `faults` plugin, with calls stopped at `limit`.
    fn faults_slot(limit: Duration) -> (Slot, Arc<Limits>) {
        let wasm =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/faults/faults.wasm");
        let manifest = extism::Manifest::new([extism::Wasm::file(wasm)]).with_timeout(limit);
        let sink = SlotSink::default();
        let compiled = extism::PluginBuilder::new(manifest)
            .with_wasi(false)
            .with_functions(sink.functions())
            .compile()
            .unwrap();
        let limits = Arc::new(Limits {
            plugin: "faults".into(),
            timeout_ms: limit.as_millis() as u64,
            memory_mb: 32,
            max_output_bytes: 1 << 20,
        });
        (Slot::new(compiled, sink).unwrap(), limits)
    }

    /// The cancellers' bound: a call still running past its time limit has
    /// escaped it, and they stop (instead of retrying for ever).
    #[test]
    fn cancellers_give_up_on_a_call_past_its_time_limit() {
        use super::super::host::{CANCEL_GRACE, OUTLIVED_AFTER};
        let (slot, _) = faults_slot(Duration::from_millis(200));
        let handle = slot.instance.as_ref().unwrap().cancel_handle();
        let signal = CallSignal::new("spin".into(), "faults".into());
        // Armed as if its call had started, with no time limit left.
        assert!(signal.arm(handle, Duration::ZERO));
        assert_eq!(signal.cancel(), Cancelling::Pending);
        std::thread::sleep(CANCEL_GRACE + OUTLIVED_AFTER + Duration::from_millis(10));
        assert_eq!(signal.cancel(), Cancelling::Outlived);
        assert_eq!(signal.cancel(), Cancelling::Outlived);
        signal.finish();
        assert_eq!(signal.cancel(), Cancelling::Ended);
    }

    /// extism's race (see [`CallSignal`]): without the grace, cancelling as
    /// fast as possible while the call starts left an endless loop running
    /// with no time limit within a few tries.
    #[test]
    fn a_cancel_as_the_call_starts_never_outlasts_its_time_limit() {
        use super::super::host::CANCEL_GRACE;
        let limit = Duration::from_millis(200);
        let (slot, limits) = faults_slot(limit);
        let mut slot = Some(slot);
        for run in 0..20 {
            let signal = Arc::new(CallSignal::new("spin".into(), "faults".into()));
            let (ended, end) = std::sync::mpsc::channel();
            std::thread::spawn({
                let (mut slot, signal, limits) = (
                    slot.take().unwrap(),
                    Arc::clone(&signal),
                    Arc::clone(&limits),
                );
                move || {
                    let output = slot.run("spin", b"", &limits, &signal);
                    signal.finish();
                    let _ = ended.send((slot, output));
                }
            });
            // From the moment the call is armed, as a cancel arriving then would.
            while !signal.is_armed() {
                std::hint::spin_loop();
            }
            let started = Instant::now();
            while signal.cancel() == Cancelling::Pending && started.elapsed() < limit + CANCEL_GRACE
            {
                std::hint::spin_loop();
            }
            let (back, output) = end
                .recv_timeout(limit + Duration::from_secs(5))
                .unwrap_or_else(|_| {
                    panic!("run {run}: the cancelled call outlived its time limit")
                });
            let kind = output.err().map(|failure| failure.kind);
            assert_eq!(kind, Some(FailureKind::Cancelled), "run {run}");
            slot = Some(back);
        }
    }
}
