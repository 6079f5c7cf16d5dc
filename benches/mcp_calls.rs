//! tools/call throughput and latency over HTTP on loopback, and the raw cost
//! of a call in-process. Run with:
//!
//!     cargo bench --bench mcp_calls                  # beside the floor, when it is there
//!     cargo bench --bench mcp_calls -- --rounds 3 --seconds 4
//!     cargo bench --bench mcp_calls -- --no-floor --seconds 10 --levels 1,16,64
//!     cargo bench --bench mcp_calls -- --console      # the server with its console, in tmux
//!     cargo bench --bench mcp_calls -- --compare 5    # headless vs console, 5 rounds, then idle CPU
//!     cargo bench --bench mcp_calls -- --compare 5 --same   # headless vs headless: the noise floor
//!     cargo bench --bench mcp_calls -- --attached 5   # 0, 1 and 4 consoles attached, 5 rounds
//!     cargo bench --bench mcp_calls -- --soak 30      # 30 minutes of churn; fails on a leak
//!     cargo bench --bench mcp_calls -- --soak 30 --warmup 5   # growth judged after 5 minutes
//!     cargo bench --bench mcp_calls -- --cluster      # through nginx, 1 and 3 replicas, Redis sessions
//!
//! When `../shared/bench/floor` (beside the repository) is there, the bench
//! builds it into this project's target folder and runs it beside the server
//! (see `floor`): both modes (sessions, stateless), each level, wasimancer
//! and the floor alternating, `--rounds` times, and prints wasimancer/floor.
//! `--no-floor` (or no floor) measures the server alone.
//!
//! The server is the release binary, started as `wasimancer serve --headless`
//! in its own process (with RUST_BACKTRACE unset: extism builds a backtrace
//! for every call when it is set). The load comes from this process: one
//! keep-alive connection and one MCP session per concurrent client, each
//! sending `tools/call add` back to back with its own request ids.
//! Both share the machine's cores; the figures are for the pair.
//!
//! With `--console` the server runs with its operator console attached to a
//! pseudo-terminal (a tmux window of 120x40 on a socket of its own, so tmux
//! renders every frame as a terminal would). `--compare N` alternates
//! headless and console runs of the highest level N times (the machine is
//! noisy: alternating spreads the noise over both), then measures the CPU
//! time each uses while idle over `--idle-seconds` (10 by default), from
//! /proc/<pid>/task/*/stat, for the whole process and for the console's
//! own threads.
//!
//! `--attached N` runs the highest level against one headless server with
//! 0, 1 and 4 consoles attached through its control socket, in an order that
//! turns from round to round, N rounds. The consoles are this process's
//! tasks speaking the control protocol as `wasimancer console` does,
//! decoding every frame; they draw nothing, so the figure is the server's
//! cost of feeding them. Their decoding shares the cores with the server
//! and the load, so it ends with what feeding a console costs per event,
//! measured in-process (see `feed`).
//!
//! `--soak MINUTES` (see `soak`) runs the server on a copy of the plugins
//! under moderate load with everything that changes state going on at once,
//! samples its memory, file descriptors and threads, and fails on growth or
//! on a good call that failed.
//!
//! `--cluster` starts redis-server and nginx (`contrib/nginx/wasimancer.conf`)
//! on loopback and runs the highest level through nginx against 1, then 3
//! replicas sharing sessions in Redis (after one replica alone, without nginx
//! or Redis, for reference); then it measures a session lookup in Redis, and
//! the first request of a session on a replica that must restore it from
//! there against the next one. All of it on one machine: the replicas share
//! its cores with nginx, Redis and the load, so the figures show the
//! overhead of the setup, not how it scales on several machines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

#[path = "../tests/support/cluster.rs"]
mod cluster_support;
use wasimancer::events::{CallSource, EventBus};
use wasimancer::registry::{Registry, RegistryOptions};
use wasimancer::runtime::{CallControl, CompileCache, RuntimeSettings};

#[path = "mcp_calls/feed.rs"]
mod feed;
#[path = "mcp_calls/floor.rs"]
mod floor;
#[path = "mcp_calls/soak.rs"]
mod soak;

const TOKEN: &str = "bench-token-0123456789";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

struct Options {
    seconds: f64,
    levels: Vec<usize>,
    console: bool,
    compare: usize,
    /// Rounds of 0, 1 and 4 attached consoles.
    attached: usize,
    /// Compare headless with headless: the noise floor of `--compare`.
    same: bool,
    /// Through nginx and Redis, with 1 and 3 replicas.
    cluster: bool,
    idle_seconds: f64,
    /// Minutes of `--soak`.
    soak: Option<f64>,
    /// Minutes of the soak before growth counts.
    warmup: f64,
    /// Rounds beside the floor.
    rounds: usize,
    /// Measure the server alone even when the floor is there.
    no_floor: bool,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5.0,
        levels: vec![1, 16, 64],
        console: false,
        compare: 0,
        attached: 0,
        same: false,
        cluster: false,
        idle_seconds: 10.0,
        soak: None,
        warmup: 1.0,
        rounds: 2,
        no_floor: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                options.seconds = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5.0);
                i += 1;
            }
            "--levels" => {
                if let Some(levels) = args.get(i + 1) {
                    options.levels = levels.split(',').filter_map(|l| l.parse().ok()).collect();
                }
                i += 1;
            }
            "--console" => options.console = true,
            "--no-floor" => options.no_floor = true,
            "--rounds" => {
                options.rounds = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2usize)
                    .max(1);
                i += 1;
            }
            "--same" => options.same = true,
            "--cluster" => options.cluster = true,
            "--compare" => {
                options.compare = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(3);
                i += 1;
            }
            "--attached" => {
                options.attached = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(3);
                i += 1;
            }
            "--soak" => {
                options.soak = Some(args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(30.0));
                i += 1;
            }
            "--warmup" => {
                options.warmup = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1.0);
                i += 1;
            }
            "--idle-seconds" => {
                options.idle_seconds = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(10.0);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    options
}

/// The address a server just spawned (stderr piped) says it listens on, in
/// its first line with `http://`; its stderr is drained from then on, so it
/// never blocks on its per-call log.
fn listening_address(child: &mut std::process::Child, what: &str) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{what} says where it listens"))
            .expect("stderr is readable");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches("/mcp").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    address
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache")
}

/// The server process and the address it reported.
struct Server {
    process: Process,
    address: String,
}

enum Process {
    Headless(Child),
    /// The binary with its console, in a tmux window; `pid` is the binary's,
    /// `tmux` the tmux server's (the terminal that renders the console).
    Console {
        socket: String,
        pid: i32,
        tmux: i32,
    },
}

impl Server {
    fn start(console: bool) -> Self {
        if console {
            Self::start_console()
        } else {
            Self::start_headless()
        }
    }

    fn start_headless() -> Self {
        Self::headless(&[])
    }

    /// The binary headless, with `args` after the usual ones.
    fn headless(args: &[std::ffi::OsString]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasimancer"))
            .args(["serve", "--headless", "--port", "0"])
            .args(args)
            .current_dir(repo())
            .env_remove("RUST_BACKTRACE")
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
            .env("WASIMANCER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("WASIMANCER_CACHE_DIR", cache_dir())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts");
        let address = listening_address(&mut child, "the server");
        Self {
            process: Process::Headless(child),
            address,
        }
    }

    /// The server with its console in a 120x40 tmux window; the address is
    /// read from the console's header.
    fn start_console() -> Self {
        // A socket path of our own (removed on drop), not a name under /tmp.
        let socket = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tmux-bench-{}-{}", std::process::id(), unique()))
            .display()
            .to_string();
        let tmux = |args: &[&str]| {
            Command::new("tmux")
                .args(["-S", &socket, "-f", "/dev/null"])
                .args(args)
                .output()
                .expect("tmux runs (install it for --console)")
        };
        let started = Command::new("tmux")
            .args(["-S", &socket, "-f", "/dev/null"])
            .args(["new-session", "-d", "-x", "120", "-y", "40", "-s", "bench"])
            .arg(env!("CARGO_BIN_EXE_wasimancer"))
            .args(["serve", "--port", "0"])
            .current_dir(repo())
            .env_remove("RUST_BACKTRACE")
            .env_remove("NO_COLOR")
            .env("TERM", "xterm-256color")
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
            .env("WASIMANCER_CACHE_DIR", cache_dir())
            .status()
            .expect("tmux runs (install it for --console)");
        assert!(started.success(), "tmux new-session failed");
        let pid = String::from_utf8_lossy(
            &tmux(&["display-message", "-p", "-t", "bench", "#{pane_pid}"]).stdout,
        )
        .trim()
        .parse()
        .expect("the pane's pid");
        let tmux_pid = String::from_utf8_lossy(
            &tmux(&["display-message", "-p", "-t", "bench", "#{pid}"]).stdout,
        )
        .trim()
        .parse()
        .expect("the tmux server's pid");
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            let screen =
                String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "bench"]).stdout)
                    .into_owned();
            if screen.contains("plugins 4 loaded")
                && let Some(rest) = screen.split("http://").nth(1)
                && let Some(address) = rest.split("/mcp").next()
            {
                break address.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the console did not come up:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            process: Process::Console {
                socket,
                pid,
                tmux: tmux_pid,
            },
            address,
        }
    }

    fn pid(&self) -> i32 {
        match &self.process {
            Process::Headless(child) => child.id() as i32,
            Process::Console { pid, .. } => *pid,
        }
    }

    /// The tmux server's pid, when the console runs in one.
    fn tmux_pid(&self) -> Option<i32> {
        match &self.process {
            Process::Headless(_) => None,
            Process::Console { tmux, .. } => Some(*tmux),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Headless(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Console { socket, pid, .. } => {
                // SAFETY: kill only sends a signal to the process tmux started for us.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
                let _ = Command::new("tmux")
                    .args(["-S", socket.as_str(), "kill-server"])
                    .output();
                let _ = std::fs::remove_file(socket.as_str());
            }
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// CPU time (user + system) used so far by the threads of `pid` whose name
/// `keep` accepts.
fn cpu_time(pid: i32, keep: impl Fn(&str) -> bool) -> Duration {
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !keep(name.trim()) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15, so 12 and 13 after the name.
        for index in [11, 12] {
            ticks += fields
                .get(index)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

fn is_console_thread(name: &str) -> bool {
    name.starts_with("console")
}

/// The share of one core `server` uses while nothing calls it: the whole
/// process, its console's threads, and the tmux server that renders it.
fn idle_cpu(server: &Server, seconds: f64) -> (f64, f64, f64) {
    // Let the last frames and the call log settle.
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.pid();
    let tmux = || {
        server
            .tmux_pid()
            .map_or(Duration::ZERO, |pid| cpu_time(pid, |_| true))
    };
    let before = (
        cpu_time(pid, |_| true),
        cpu_time(pid, is_console_thread),
        tmux(),
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let elapsed = started.elapsed().as_secs_f64();
    let share = |before: Duration, after: Duration| {
        after.saturating_sub(before).as_secs_f64() / elapsed * 100.0
    };
    (
        share(before.0, cpu_time(pid, |_| true)),
        share(before.1, cpu_time(pid, is_console_thread)),
        share(before.2, tmux()),
    )
}

/// One client: a connection and a session (none from a stateless server).
struct Session {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Session {
    async fn open(address: &str) -> Self {
        Self::try_open(address).await.expect("initialize")
    }

    async fn try_open(address: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .tcp_nodelay(true)
            .build()
            .expect("http client");
        let url = format!("http://{address}/mcp");
        let response = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}})
                .to_string(),
            )
            .send()
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("initialize: HTTP {}", response.status()));
        }
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|id| id.to_str().ok())
            .map(str::to_string);
        let _ = response.bytes().await;
        let this = Self { http, url, session };
        this.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await?;
        Ok(this)
    }

    async fn post(&self, body: String) -> Result<String, String> {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.body(body).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    }

    /// One `add` call; whether its answer was right.
    async fn add(&self, id: u64) -> bool {
        self.checked_add(id).await.is_ok()
    }

    /// One `add` call, and what was wrong with its answer.
    async fn checked_add(&self, id: u64) -> Result<(), String> {
        let expected = format!(r#"{{\"result\":{}}}"#, id + 1);
        let text = self
            .call(id, "add", json!({"left": id, "right": 1}))
            .await?;
        if text.contains(&expected) {
            Ok(())
        } else {
            Err(text)
        }
    }

    /// `tools/call`: the text of a successful result, or what went wrong.
    async fn call(&self, id: u64, tool: &str, arguments: Value) -> Result<String, String> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}})
        .to_string();
        let text = self.post(body).await?;
        if text.contains("\"isError\":true") || !text.contains("\"result\"") {
            return Err(text);
        }
        Ok(text)
    }
}

struct LevelResult {
    connections: usize,
    calls: usize,
    failures: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl LevelResult {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self) {
        println!(
            "{:>11}  {:>9.0}  {:>8.0}  {:>8.0}  {:>8}  {:>8}",
            self.connections,
            self.calls as f64 / self.seconds,
            self.percentile(0.50).as_secs_f64() * 1e6,
            self.percentile(0.99).as_secs_f64() * 1e6,
            self.failures,
            self.calls,
        );
    }
}

async fn run_level(address: &str, connections: usize, seconds: f64) -> LevelResult {
    let mut sessions = Vec::new();
    for _ in 0..connections {
        sessions.push(Session::open(address).await);
    }
    // Warm up every connection and instance before measuring.
    for (i, session) in sessions.iter().enumerate() {
        for j in 0..20 {
            session.add((i * 1000 + j) as u64).await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            let mut id = (i as u64 + 1) << 32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let sent = Instant::now();
                if session.add(id).await {
                    latencies.push(sent.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut result = LevelResult {
        connections,
        calls: 0,
        failures: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, failures) = task.await.expect("client task");
        result.failures += failures;
        result.latencies.extend(latencies);
    }
    result.seconds = started.elapsed().as_secs_f64();
    result.calls = result.latencies.len() + result.failures;
    result.latencies.sort_unstable();
    result
}

/// The cost of a call without HTTP: the registry's call path, and below it.
async fn in_process_cost() {
    let options = RegistryOptions {
        catalog_path: repo().join("plugins.yml"),
        runtime: RuntimeSettings {
            plugins_dir: repo().join("plugins"),
            compile_cache: CompileCache::in_dir(&cache_dir()),
            ..RuntimeSettings::default()
        },
        keep_call_details: false,
    };
    let registry = Registry::start(options, EventBus::new())
        .await
        .expect("plugins.yml loads");
    let arguments: Map<String, Value> = serde_json::from_str(r#"{"left": 1, "right": 2}"#).unwrap();
    for _ in 0..2_000 {
        let _ = registry
            .call(CallSource::Cli, "add", Some(arguments.clone()))
            .await;
    }
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let reply = registry
            .call(CallSource::Cli, "add", Some(arguments.clone()))
            .await
            .expect("add works");
        assert_eq!(reply.output.readable(), r#"{"result":3}"#);
    }
    let per_call = started.elapsed() / rounds;
    println!(
        "in-process Registry::call(add), sequential: {:.1} µs per call ({rounds} calls; includes argument checks, the pool (inline once the function proves short), the wasm call and the call record)",
        per_call.as_secs_f64() * 1e6
    );

    let snapshot = registry.snapshot();
    let plugin = snapshot
        .plugin("addition")
        .and_then(|p| p.serving.clone())
        .expect("addition loaded");
    let function: Arc<str> = "add".into();
    let started = Instant::now();
    for _ in 0..rounds {
        let output = plugin
            .call(
                Arc::clone(&function),
                br#"{"left":1,"right":2}"#.to_vec(),
                CallControl::default(),
            )
            .await;
        assert!(output.output.is_ok());
    }
    let per_call = started.elapsed() / rounds;
    println!(
        "in-process LoadedPlugin::call(add), sequential: {:.1} µs per call (the pool and the wasm call only)",
        per_call.as_secs_f64() * 1e6
    );
}

fn main() {
    let options = options();
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        // SAFETY: single-threaded here, before any runtime or thread starts.
        unsafe { std::env::remove_var("RUST_BACKTRACE") };
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if let Some(minutes) = options.soak {
        if !soak::run(&runtime, minutes, options.warmup) {
            std::process::exit(1);
        }
        return;
    }
    if options.compare > 0 {
        compare(&runtime, &options);
        return;
    }
    if options.attached > 0 {
        attached(&runtime, &options);
        return;
    }
    if options.cluster {
        cluster(&runtime, &options);
        return;
    }
    if !options.console
        && !options.no_floor
        && let Some(sources) = floor::sources()
    {
        match floor::build(&sources) {
            Ok(binary) => {
                floor::side_by_side(&runtime, &options, &binary);
                runtime.block_on(in_process_cost());
                return;
            }
            Err(error) => println!("{error}; measuring the server alone"),
        }
    }
    let server = Server::start(options.console);
    println!(
        "tools/call `add` over HTTP on loopback, {} s per level, server: {} ({})",
        options.seconds,
        server.address,
        if options.console {
            "with the console, in tmux"
        } else {
            "headless"
        }
    );
    println!("connections    calls/s   p50 µs    p99 µs  failures     calls");
    let mut previous = 0.0;
    for &connections in &options.levels {
        let console_before = cpu_time(server.pid(), is_console_thread);
        let result = runtime.block_on(run_level(&server.address, connections, options.seconds));
        result.print();
        if options.console {
            let used = cpu_time(server.pid(), is_console_thread).saturating_sub(console_before);
            println!(
                "             (the console's threads used {:.1}% of a core)",
                used.as_secs_f64() / result.seconds * 100.0
            );
        }
        let rate = result.calls as f64 / result.seconds;
        if previous > 0.0 && rate < previous {
            println!("             (less throughput than the level before)");
        }
        previous = rate;
    }
    if options.console {
        let (all, console, tmux) = idle_cpu(&server, options.idle_seconds);
        println!(
            "idle over {} s: the process used {all:.2}% of a core, the console's threads {console:.2}%, tmux {tmux:.2}%",
            options.idle_seconds
        );
        return;
    }
    drop(server);
    runtime.block_on(in_process_cost());
}

/// Headless against console at the highest level, alternating, then idle CPU.
fn compare(runtime: &tokio::runtime::Runtime, options: &Options) {
    let connections = options.levels.iter().copied().max().unwrap_or(64);
    println!(
        "tools/call `add`, {connections} connections, {} s per run, headless and console alternating (odd rounds start headless)",
        options.seconds
    );
    println!(
        "round   headless calls/s   console calls/s   console/headless   console threads % core   tmux % core   server µs CPU/call (headless, console)"
    );
    if options.same {
        println!("(--same: both sides run headless; the spread is the noise floor)");
    }
    let mut ratios = Vec::new();
    for round in 1..=options.compare {
        let mut rates = [0.0; 2];
        let mut console_share = 0.0;
        let mut tmux_share = 0.0;
        // Server CPU per call (µs), the console's threads left out.
        let mut per_call = [0.0; 2];
        // Odd rounds start headless, even rounds with the console, so that a
        // drift in the machine's load does not favour one side.
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for console in order {
            let index = usize::from(console);
            let server = Server::start(console && !options.same);
            let before = cpu_time(server.pid(), is_console_thread);
            let serving_before = cpu_time(server.pid(), |name| !is_console_thread(name));
            let tmux_before = server.tmux_pid().map(|pid| cpu_time(pid, |_| true));
            let result = runtime.block_on(run_level(&server.address, connections, options.seconds));
            assert_eq!(result.failures, 0, "calls failed");
            rates[index] = result.calls as f64 / result.seconds;
            let serving = cpu_time(server.pid(), |name| !is_console_thread(name))
                .saturating_sub(serving_before);
            per_call[index] = serving.as_secs_f64() * 1e6 / result.calls.max(1) as f64;
            if console {
                console_share = cpu_time(server.pid(), is_console_thread)
                    .saturating_sub(before)
                    .as_secs_f64()
                    / result.seconds
                    * 100.0;
            }
            if let (Some(pid), Some(before)) = (server.tmux_pid(), tmux_before) {
                tmux_share = cpu_time(pid, |_| true).saturating_sub(before).as_secs_f64()
                    / result.seconds
                    * 100.0;
            }
        }
        let ratio = rates[1] / rates[0];
        ratios.push(ratio);
        println!(
            "{round:>5}   {:>16.0}   {:>15.0}   {:>16.3}   {console_share:>21.1}   {tmux_share:>11.1}   {:>6.1}, {:.1}",
            rates[0], rates[1], ratio, per_call[0], per_call[1]
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "console/headless: median {:.3}, range {:.3} to {:.3}",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    for console in [false, true] {
        let server = Server::start(console);
        let (all, console_threads, tmux) = idle_cpu(&server, options.idle_seconds);
        println!(
            "idle over {} s, {}: the process used {all:.2}% of a core{}",
            options.idle_seconds,
            if console { "console" } else { "headless" },
            if console {
                format!(", the console's threads {console_threads:.2}%, tmux {tmux:.2}%")
            } else {
                String::new()
            }
        );
    }
}

/// `count` consoles attached to the server at `address` through its control
/// socket, each decoding every frame it gets until aborted.
async fn attach_consoles(address: &str, count: usize) -> Vec<tokio::task::JoinHandle<()>> {
    use wasimancer::control::{Target, connect, socket::default_path};
    let port = address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the server's port");
    let target = Target::Socket(default_path(port));
    let mut consoles = Vec::new();
    for _ in 0..count {
        let (_, mut transport) = connect(&target).await.expect("a console attaches");
        consoles.push(tokio::spawn(async move {
            while let Some(Ok(_)) = transport.recv().await {}
        }));
    }
    consoles
}

/// 0, 1 and 4 consoles attached, at the highest level, rounds alternating.
fn attached(runtime: &tokio::runtime::Runtime, options: &Options) {
    const COUNTS: [usize; 3] = [0, 1, 4];
    let connections = options.levels.iter().copied().max().unwrap_or(64);
    println!(
        "tools/call `add`, {connections} connections, {} s per run, one headless server, 0/1/4 consoles attached (order turns each round)",
        options.seconds
    );
    println!(
        "round   0 consoles calls/s   1 console calls/s   4 consoles calls/s   1/0     4/0     server µs CPU/call (0, 1, 4)"
    );
    let mut ratios = [Vec::new(), Vec::new()];
    for round in 0..options.attached {
        let server = Server::start(false);
        let mut rates = [0.0; 3];
        let mut per_call = [0.0; 3];
        for step in 0..COUNTS.len() {
            let index = (step + round) % COUNTS.len();
            let consoles = runtime.block_on(attach_consoles(&server.address, COUNTS[index]));
            let before = cpu_time(server.pid(), |_| true);
            let result = runtime.block_on(run_level(&server.address, connections, options.seconds));
            let used = cpu_time(server.pid(), |_| true).saturating_sub(before);
            per_call[index] = used.as_secs_f64() * 1e6 / result.calls.max(1) as f64;
            assert_eq!(result.failures, 0, "calls failed");
            for console in &consoles {
                assert!(
                    !console.is_finished(),
                    "a console was dropped during the run"
                );
                console.abort();
            }
            rates[index] = result.calls as f64 / result.seconds;
        }
        let (one, four) = (rates[1] / rates[0], rates[2] / rates[0]);
        ratios[0].push(one);
        ratios[1].push(four);
        println!(
            "{:>5}   {:>18.0}   {:>17.0}   {:>18.0}   {one:.3}   {four:.3}   {:.1}, {:.1}, {:.1}",
            round + 1,
            rates[0],
            rates[1],
            rates[2],
            per_call[0],
            per_call[1],
            per_call[2]
        );
    }
    for (ratios, what) in ratios
        .iter_mut()
        .zip(["1 console / none", "4 consoles / none"])
    {
        ratios.sort_by(f64::total_cmp);
        println!(
            "{what}: median {:.3}, range {:.3} to {:.3}",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    feed::print_feed_cost();
}

/// `--cluster`: see the top of this file.
fn cluster(runtime: &tokio::runtime::Runtime, options: &Options) {
    let connections = options.levels.iter().copied().max().unwrap_or(64);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let redis = cluster_support::Redis::start(dir.path());
    let store = redis.url();
    println!(
        "tools/call `add`, {connections} connections, {} s per run; one machine: this shows overhead, not scaling",
        options.seconds
    );
    println!(
        "setup                                 calls/s   p50 µs    p99 µs  failures     calls"
    );
    let alone = Server::start_headless();
    let result = runtime.block_on(run_level(&alone.address, connections, options.seconds));
    print!("{:<30}", "1 replica, direct, no Redis");
    result.print();
    drop(alone);
    for replicas in [1, 3] {
        let servers: Vec<Server> = (0..replicas)
            .map(|_| {
                Server::headless(&[
                    "--no-control-socket".into(),
                    "--session-store".into(),
                    store.clone().into(),
                ])
            })
            .collect();
        let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
        let folder = dir.path().join(format!("nginx-{replicas}"));
        std::fs::create_dir_all(&folder).expect("nginx's folder");
        let nginx = cluster_support::Nginx::start(&folder, &addresses);
        let through = format!("127.0.0.1:{}", nginx.port);
        let result = runtime.block_on(run_level(&through, connections, options.seconds));
        print!(
            "{:<30}",
            format!(
                "{replicas} replica{}, nginx, Redis",
                if replicas == 1 { "" } else { "s" }
            )
        );
        result.print();
        if replicas == 3 {
            runtime.block_on(restore_cost(&addresses));
        }
    }
    runtime.block_on(lookup_cost(&store));
}

/// A session lookup in Redis, as a replica makes it for a session it does
/// not hold: sequential, and 64 at once.
async fn lookup_cost(url: &str) {
    use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore};
    use wasimancer::cluster::sessions::RedisSessionStore;
    let url: wasimancer::cluster::RedisUrl = url.parse().expect("a Redis address");
    let redis = wasimancer::cluster::Redis::new(&url).expect("a Redis connection");
    let store = RedisSessionStore::new(redis, Duration::from_secs(300));
    let state = SessionState::new(rmcp::model::InitializeRequestParams::default());
    store
        .store("bench", &state)
        .await
        .expect("Redis takes a session");
    let rounds = 10_000;
    let started = Instant::now();
    for _ in 0..rounds {
        store.lookup("bench").await.expect("Redis answers");
    }
    let sequential = started.elapsed() / rounds;
    let store = Arc::new(store);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds / 64 {
                store.lookup("bench").await.expect("Redis answers");
            }
        }));
    }
    for task in tasks {
        task.await.expect("lookup task");
    }
    let parallel = (rounds / 64 * 64) as f64 / started.elapsed().as_secs_f64();
    println!(
        "session lookup in Redis (GET + JSON): {:.1} µs sequential, {parallel:.0}/s with 64 at once; \
         a replica makes one per session it has not seen, not one per request",
        sequential.as_secs_f64() * 1e6
    );
}

/// A session's first request on a replica that must restore it (a lookup
/// and the handshake replayed) against its next request there.
async fn restore_cost(addresses: &[String]) {
    let sessions = 200;
    let (mut first, mut next) = (Duration::ZERO, Duration::ZERO);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    for _ in 0..sessions {
        let opened = Session::open(&addresses[0]).await;
        let elsewhere = Session {
            http: opened.http.clone(),
            url: format!("http://{}/mcp", addresses[1]),
            session: opened.session.clone(),
        };
        let started = Instant::now();
        elsewhere.post(list.clone()).await.expect("restored");
        first += started.elapsed();
        let started = Instant::now();
        elsewhere.post(list.clone()).await.expect("held");
        next += started.elapsed();
    }
    println!(
        "tools/list of a session on another replica: first {:.0} µs (restored from Redis), next {:.0} µs (held)",
        first.as_secs_f64() * 1e6 / sessions as f64,
        next.as_secs_f64() * 1e6 / sessions as f64
    );
}
