//! A fixed set of warm instances of one plugin version.
//!
//! `extism::Plugin::call` takes `&mut self`, so an instance serves one call at
//! a time; the pool holds `instances` of them so that calls run in parallel.
//! The idle instances wait in a list, which is the only record of what is
//! free: a call takes one, waiting at most the queue timeout before it is
//! refused as busy, so the queue never grows without bound. Plugin code runs
//! on a blocking thread, and that thread puts the instance back, so a caller
//! that goes away (a client that disconnects) never loses an instance.
//!
//! A call takes a free instance even when others wait for one (they are
//! woken one by one as instances come back, and try again): first come,
//! first served would hand each freed instance to a waiting task, idle until
//! that task is scheduled, and under load every new call would queue behind
//! those hand-overs for good. A waiter can be overtaken, for at most the
//! queue timeout.
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
use tokio::sync::Notify;

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
    /// The idle instances; the last one put back is taken first (its memory
    /// is the most likely to be in a cache).
    idle: std::sync::Mutex<Vec<Slot>>,
    /// Wakes one waiting caller each time an instance is put back.
    freed: Notify,
    running: AtomicU32,
    limits: Limits,
    queue_timeout: Duration,
    short_calls: ShortCalls,
}

impl PoolInner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // Every change to the list is a single push or pop.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle instance, if one is free.
    fn take_idle(&self) -> Option<Slot> {
        self.idle().pop()
    }

    /// The next instance that is free, however long that takes.
    async fn wait_for_idle(&self) -> Slot {
        loop {
            // Registered before looking, so that an instance put back in
            // between wakes this caller.
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.take_idle() {
                return slot;
            }
            freed.await;
        }
    }

    fn give_back(&self, slot: Slot) {
        self.idle().push(slot);
        self.freed.notify_one();
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
        Self {
            inner: Arc::new(PoolInner {
                idle: std::sync::Mutex::new(slots),
                freed: Notify::new(),
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
        self.size - self.inner.idle().len()
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
            Some(slot) => Ok(slot),
            None => {
                tokio::select! {
                    taken = tokio::time::timeout(inner.queue_timeout, inner.wait_for_idle()) => taken,
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
            Ok(slot) => slot,
            Err(_) => {
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
                inner.give_back(slot);
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

    /// Many callers on few instances, inline and on blocking threads: each
    /// is served, with no caller left waiting by a lost wake-up (the queue
    /// timeout is far away), and every instance is back in the pool after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_callers_share_two_instances_and_every_one_is_served() {
        for inline_budget in [Duration::ZERO, Duration::from_secs(1)] {
            let (first, limits) = faults_slot(Duration::from_secs(5));
            let (second, _) = faults_slot(Duration::from_secs(5));
            let pool = Arc::new(InstancePool::new(
                vec![first, second],
                (*limits).clone(),
                Duration::from_secs(10),
                ["echo"],
                inline_budget,
            ));
            let calls = (0..256).map(|i| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    let input = i.to_string().into_bytes();
                    pool.call("echo".into(), input, CallControl::default())
                        .await
                })
            });
            for (i, call) in futures_util::future::join_all(calls)
                .await
                .into_iter()
                .enumerate()
            {
                let output = call.unwrap().output.unwrap();
                assert_eq!(output, i.to_string().into_bytes());
            }
            assert_eq!(pool.busy(), 0, "every instance is back");
        }
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
