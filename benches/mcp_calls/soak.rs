//! `--soak MINUTES`: the release server under moderate load for a long time,
//! with everything that changes its state going on at once, watched from
//! /proc for anything that grows.
//!
//! - **Clients** (8): each opens a session, makes 20 to 220 `add` calls
//!   10 ms apart, checks every answer, then abandons the session (no DELETE,
//!   a new connection for the next one). The server closes idle sessions
//!   after 20 s (`--session-idle-timeout`), so abandoned ones must be freed.
//! - **Reloads**, every 5 s: the description of `addition` flips in
//!   plugins.yml and `POST /reload` replaces the plugin while it is called.
//! - **Uploads**, every minute: `POST /upload-plugin` once, then
//!   `PUT /update-plugin` alternating two modules, and a call to the result.
//! - **Traps**, every 3 s: `trap` of the faults plugin (an error, the
//!   instance replaced), then `echo` on the same plugin, which must work.
//! - **Samples**, every 10 s: resident memory, open file descriptors and
//!   threads of the server process, and what its allocator holds (live
//!   objects, pages kept; from /metrics, printed, not judged).
//!
//! It fails if a good call (an `add`, an `echo`, a call to the uploaded
//! plugin), a reload or an upload failed, if a trap did not come back as
//! an error, or if the mean of the last minute's samples of any figure is
//! more than 10 % above the mean of the minute after the warm-up (the first
//! minute by default, `--warmup MINUTES` to change it: caches, pools, the
//! first abandoned sessions, and the allocator's per-thread arenas reaching
//! their working size).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{ADMIN_TOKEN, Server, Session, repo};

const CLIENTS: usize = 8;
const CALL_PAUSE: Duration = Duration::from_millis(10);
const RELOAD_EVERY: Duration = Duration::from_secs(5);
const UPLOAD_EVERY: Duration = Duration::from_secs(60);
const TRAP_EVERY: Duration = Duration::from_secs(3);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SESSION_IDLE_SECS: &str = "20";
/// Most growth allowed from the second minute to the last.
const GROWTH_LIMIT: f64 = 0.10;

/// What happened, counted by every task.
#[derive(Default)]
struct Tally {
    good_calls: AtomicU64,
    failed_calls: AtomicU64,
    sessions: AtomicU64,
    reloads: AtomicU64,
    uploads: AtomicU64,
    traps: AtomicU64,
    /// Failures of anything: reloads, uploads, traps that did not trap.
    other_failures: AtomicU64,
    /// The first few failure messages, to say what went wrong.
    messages: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn failed(&self, counter: &AtomicU64, message: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        if messages.len() < 10 {
            messages.push(message);
        }
    }
}

/// One reading of the server process.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: f64,
    fds: f64,
    threads: f64,
}

impl Sample {
    fn read(pid: i32, at: Duration) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<f64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        Some(Self {
            at,
            rss_kib: field("VmRSS:")?,
            fds: fds as f64,
            threads: field("Threads:")?,
        })
    }

    fn mean(samples: &[Sample]) -> Option<Self> {
        let n = samples.len() as f64;
        (n > 0.0).then(|| Self {
            at: Duration::ZERO,
            rss_kib: samples.iter().map(|s| s.rss_kib).sum::<f64>() / n,
            fds: samples.iter().map(|s| s.fds).sum::<f64>() / n,
            threads: samples.iter().map(|s| s.threads).sum::<f64>() / n,
        })
    }
}

/// The folder the soak's server works in: a copy of the sample plugins, an
/// upload folder and plugins.yml, removed afterwards.
struct Folder(PathBuf);

impl Folder {
    fn new() -> Self {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for plugin in ["roll-dice", "hello", "addition", "config-reader", "faults"] {
            let from = repo().join("plugins").join(plugin);
            let to = root.join("plugins").join(plugin);
            std::fs::create_dir_all(&to).expect("soak folder");
            for file in std::fs::read_dir(&from).expect("sample plugins").flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "wasm") {
                    std::fs::copy(&path, to.join(file.file_name())).expect("copy a module");
                }
            }
        }
        std::fs::create_dir_all(root.join("plugins/bucket")).expect("upload folder");
        let catalog = include_str!("../../tests/fixtures/all-plugins.yml");
        std::fs::write(root.join("plugins.yml"), catalog).expect("plugins.yml");
        Self(root)
    }

    fn catalog(&self) -> PathBuf {
        self.0.join("plugins.yml")
    }

    fn module(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.0.join("plugins").join(path)).expect("a sample module")
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the soak for `minutes`, judging growth after `warmup` minutes;
/// whether it passed.
pub fn run(runtime: &tokio::runtime::Runtime, minutes: f64, warmup: f64) -> bool {
    let folder = Folder::new();
    let plugins = folder.0.join("plugins");
    let server = Server::headless(&[
        "--plugins-dir".into(),
        plugins.clone().into(),
        "--plugins-file".into(),
        folder.catalog().into(),
        "--upload-dir".into(),
        plugins.join("bucket").into(),
        "--session-idle-timeout".into(),
        SESSION_IDLE_SECS.into(),
    ]);
    let duration = Duration::from_secs_f64(minutes * 60.0);
    println!(
        "soak: {minutes} min against {} (pid {}): {CLIENTS} clients abandoning sessions, a reload every {} s, an upload or replacement every {} s, a trap every {} s",
        server.address,
        server.pid(),
        RELOAD_EVERY.as_secs(),
        UPLOAD_EVERY.as_secs(),
        TRAP_EVERY.as_secs()
    );
    println!(
        " minute   RSS MiB  heap live  heap kept   fds  threads   good calls  failed   sessions  reloads  uploads  traps"
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let samples = runtime.block_on(async {
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            tasks.push(tokio::spawn(churn(
                server.address.clone(),
                client as u64,
                Arc::clone(&tally),
                Arc::clone(&stop),
            )));
        }
        tasks.push(tokio::spawn(change(
            server.address.clone(),
            folder.catalog(),
            [
                folder.module("hello/hello.wasm"),
                folder.module("hello/hello-v2.wasm"),
            ],
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
        tasks.push(tokio::spawn(trap(
            server.address.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
        let samples = watch(server.pid(), &server.address, duration, &tally).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        samples
    });
    drop(server);
    verdict(&samples, &tally, Duration::from_secs_f64(warmup * 60.0))
}

/// jemalloc's `allocated` (live objects) and `resident` bytes, from the
/// server's /metrics: beside the RSS, they tell a leak (allocated grows)
/// from pages kept by an allocator (resident grows) or kept elsewhere.
async fn allocator(http: &reqwest::Client, address: &str) -> Option<(f64, f64)> {
    let text = http
        .get(format!("http://{address}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |state: &str| -> Option<f64> {
        let name = format!("wasimancer_allocator_bytes{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&name))?
            .trim()
            .parse()
            .ok()
    };
    Some((value("allocated")?, value("resident")?))
}

/// Sample the server every 10 s until `duration` is over.
async fn watch(pid: i32, address: &str, duration: Duration, tally: &Tally) -> Vec<Sample> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.tick().await;
    while started.elapsed() < duration {
        ticks.tick().await;
        let Some(sample) = Sample::read(pid, started.elapsed()) else {
            println!("the server is gone");
            break;
        };
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mib = |bytes: f64| format!("{:.1}", bytes / (1024.0 * 1024.0));
        let (live, kept) = allocator(&http, address)
            .await
            .map_or(("-".into(), "-".into()), |(a, r)| (mib(a), mib(r)));
        println!(
            "{:>7.1}  {:>8.1}  {:>9}  {:>9}  {:>4}  {:>7}  {:>11}  {:>6}  {:>9}  {:>7}  {:>7}  {:>5}",
            sample.at.as_secs_f64() / 60.0,
            sample.rss_kib / 1024.0,
            live,
            kept,
            sample.fds,
            sample.threads,
            count(&tally.good_calls),
            count(&tally.failed_calls) + count(&tally.other_failures),
            count(&tally.sessions),
            count(&tally.reloads),
            count(&tally.uploads),
            count(&tally.traps),
        );
        samples.push(sample);
    }
    samples
}

/// A small generator for session lengths: no need for a random crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A client that keeps opening sessions, calling `add` on each a while,
/// and abandoning it.
async fn churn(address: String, client: u64, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut state = 0x9e37_79b9_7f4a_7c15 ^ (client + 1);
    let mut id = (client + 1) << 40;
    while !stop.load(Ordering::Relaxed) {
        let session = match Session::try_open(&address).await {
            Ok(session) => session,
            Err(error) => {
                tally.failed(&tally.failed_calls, format!("client {client}: {error}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tally.sessions.fetch_add(1, Ordering::Relaxed);
        let calls = 20 + next(&mut state) % 200;
        for _ in 0..calls {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            id += 1;
            match session.checked_add(id).await {
                Ok(()) => tally.good_calls.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    tally.failed(&tally.failed_calls, format!("add {id}: {error}"));
                    0
                }
            };
            tokio::time::sleep(CALL_PAUSE).await;
        }
        // Abandoned: no DELETE; the connection closes with the client.
    }
}

/// Reloads every 5 s, uploads or replacements every minute, one after the
/// other (both write plugins.yml).
async fn change(
    address: String,
    catalog: PathBuf,
    modules: [Vec<u8>; 2],
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let started = Instant::now();
    let mut uploads_done = 0u64;
    let mut ticks = tokio::time::interval(RELOAD_EVERY);
    ticks.tick().await;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        if started.elapsed() >= UPLOAD_EVERY * (uploads_done as u32 + 1) {
            uploads_done += 1;
            match upload(&http, &base, &address, &modules, uploads_done).await {
                Ok(()) => tally.uploads.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    tally.failed(
                        &tally.other_failures,
                        format!("upload {uploads_done}: {error}"),
                    );
                    0
                }
            };
        }
        match reload(&http, &base, &catalog).await {
            Ok(()) => tally.reloads.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                tally.failed(&tally.other_failures, format!("reload: {error}"));
                0
            }
        };
    }
}

/// Flip the description of `addition` and ask for a reload.
async fn reload(http: &reqwest::Client, base: &str, catalog: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(catalog).map_err(|e| e.to_string())?;
    let flipped = if text.contains("add two numbers.") {
        text.replace("add two numbers.", "add two numbers")
    } else {
        text.replace("add two numbers", "add two numbers.")
    };
    // Atomically, as an editor that saves through a temporary file does.
    let temp = catalog.with_extension("yml.soak");
    std::fs::write(&temp, flipped).map_err(|e| e.to_string())?;
    std::fs::rename(&temp, catalog).map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{base}/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_success() && body.contains("\"ok\":true") && body.contains("1 reloaded") {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {body}"))
    }
}

/// The first time an upload, then a replacement alternating the modules;
/// then a call to the plugin's tool through a new session.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    address: &str,
    modules: &[Vec<u8>; 2],
    round: u64,
) -> Result<(), String> {
    let data = json!({
        "name": "churn", "path": "bucket/churn.wasm", "wasi": false,
        "functions": [{"displayName": "churn_hello", "function": "say_hello",
            "arguments": [{"name": "name", "type": "string"}]}]
    });
    let module = modules[(round % 2) as usize].clone();
    let form = reqwest::multipart::Form::new()
        .part(
            "wasmFile",
            reqwest::multipart::Part::bytes(module).file_name("churn.wasm"),
        )
        .text("pluginData", data.to_string());
    let request = if round == 1 {
        http.post(format!("{base}/upload-plugin"))
    } else {
        http.put(format!("{base}/update-plugin"))
    };
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        ));
    }
    let session = Session::try_open(address).await?;
    let text = session
        .call(1, "churn_hello", json!({"name": "soak"}))
        .await?;
    if text.contains(", soak!") {
        Ok(())
    } else {
        Err(text)
    }
}

/// Every 3 s, a trap (an error that replaces the instance) and then a call
/// that must work on the same plugin.
async fn trap(address: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(TRAP_EVERY);
    let mut id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        // A session per round: the idle timeout is shorter than some gaps.
        let session = match Session::try_open(&address).await {
            Ok(session) => session,
            Err(error) => {
                tally.failed(&tally.other_failures, format!("trap session: {error}"));
                continue;
            }
        };
        id += 2;
        match session.call(id, "trap", json!({})).await {
            Err(text) if text.contains("crashed") => {
                tally.traps.fetch_add(1, Ordering::Relaxed);
            }
            other => tally.failed(
                &tally.other_failures,
                format!("trap did not come back as a crash: {other:?}"),
            ),
        }
        match session.call(id + 1, "echo", json!({"text": "after"})).await {
            Ok(_) => tally.good_calls.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                tally.failed(&tally.failed_calls, format!("echo after a trap: {error}"));
                0
            }
        };
    }
}

/// Print the summary; whether the soak passed.
fn verdict(samples: &[Sample], tally: &Tally, warmup: Duration) -> bool {
    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let failures = count(&tally.failed_calls) + count(&tally.other_failures);
    println!(
        "{} good calls, {} failed; {} sessions; {} reloads; {} uploads; {} traps; other failures {}",
        count(&tally.good_calls),
        count(&tally.failed_calls),
        count(&tally.sessions),
        count(&tally.reloads),
        count(&tally.uploads),
        count(&tally.traps),
        count(&tally.other_failures),
    );
    for message in tally
        .messages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  failure: {message}");
    }
    let minute = |from: Duration| -> Vec<Sample> {
        let to = from + Duration::from_secs(60);
        samples
            .iter()
            .filter(|s| s.at > from && s.at <= to)
            .copied()
            .collect()
    };
    let last = samples.last().map_or(Duration::ZERO, |s| s.at);
    let minute_after = last.saturating_sub(Duration::from_secs(60));
    let (Some(start), Some(end)) = (
        Sample::mean(&minute(warmup)).filter(|_| minute_after >= warmup + Duration::from_secs(60)),
        Sample::mean(&minute(minute_after)),
    ) else {
        println!("too short to judge growth (needs the warm-up and two minutes more)");
        return failures == 0;
    };
    let after = warmup.as_secs_f64() / 60.0;
    let mut grew = false;
    for (name, from, to) in [
        ("RSS MiB", start.rss_kib / 1024.0, end.rss_kib / 1024.0),
        ("open fds", start.fds, end.fds),
        ("threads", start.threads, end.threads),
    ] {
        let growth = to / from - 1.0;
        let over = growth > GROWTH_LIMIT;
        grew |= over;
        println!(
            "{name}: {from:.1} in minute {after} to {}, {to:.1} in the last: {:+.1}%{}",
            after + 1.0,
            growth * 100.0,
            if over { "  ← more than 10%" } else { "" }
        );
    }
    let passed = failures == 0 && !grew;
    println!("soak {}", if passed { "passed" } else { "FAILED" });
    passed
}
