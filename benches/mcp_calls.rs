//! tools/call throughput and latency over HTTP on loopback, and the raw cost
//! of a call in-process. Run with:
//!
//!     cargo bench --bench mcp_calls
//!     cargo bench --bench mcp_calls -- --seconds 10 --levels 1,16,64
//!
//! The server is the release binary, started as `wasimancer serve --headless`
//! in its own process (with RUST_BACKTRACE unset: extism builds a backtrace
//! for every call when it is set). The load comes from this process: one
//! keep-alive connection and one MCP session per concurrent client, each
//! sending `tools/call add` back to back with its own request ids.
//! Both share the machine's cores; the figures are for the pair.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use wasimancer::events::{CallSource, EventBus};
use wasimancer::registry::{Registry, RegistryOptions};
use wasimancer::runtime::{CompileCache, RuntimeSettings};

const TOKEN: &str = "bench-token-0123456789";

struct Options {
    seconds: f64,
    levels: Vec<usize>,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5.0,
        levels: vec![1, 16, 64],
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
            _ => {}
        }
        i += 1;
    }
    options
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache")
}

/// The server process and the address it reported.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasimancer"))
            .args(["serve", "--headless", "--port", "0"])
            .current_dir(repo())
            .env_remove("RUST_BACKTRACE")
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
            .env("WASIMANCER_CACHE_DIR", cache_dir())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("the server says where it listens")
                .expect("stderr is readable");
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.trim_end_matches("/mcp").to_string();
            }
        };
        // Keep draining the per-call log so the server never blocks on it.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self { child, address }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client: a connection and a session.
struct Session {
    http: reqwest::Client,
    url: String,
    session: String,
}

impl Session {
    async fn open(address: &str) -> Self {
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
            .expect("initialize");
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .expect("session id")
            .to_string();
        let _ = response.bytes().await;
        let this = Self { http, url, session };
        let _ = this
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await;
        this
    }

    async fn post(&self, body: String) -> Result<String, String> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    }

    /// One `add` call; whether its answer was right.
    async fn add(&self, id: u64) -> bool {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "add", "arguments": {"left": id, "right": 1}}})
        .to_string();
        let expected = format!(r#"{{\"result\":{}}}"#, id + 1);
        match self.post(body).await {
            Ok(text) => text.contains(&expected) && !text.contains("\"isError\":true"),
            Err(_) => false,
        }
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
        assert_eq!(reply.text, r#"{"result":3}"#);
    }
    let per_call = started.elapsed() / rounds;
    println!(
        "in-process Registry::call(add), sequential: {:.1} µs per call ({rounds} calls; includes argument checks, the hop to a blocking thread, the wasm call and the call record)",
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
            .call(Arc::clone(&function), br#"{"left":1,"right":2}"#.to_vec())
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
    let server = Server::start();
    println!(
        "tools/call `add` over HTTP on loopback, {} s per level, server: {}",
        options.seconds, server.address
    );
    println!("connections    calls/s   p50 µs    p99 µs  failures     calls");
    let mut previous = 0.0;
    for &connections in &options.levels {
        let result = runtime.block_on(run_level(&server.address, connections, options.seconds));
        result.print();
        let rate = result.calls as f64 / result.seconds;
        if previous > 0.0 && rate < previous {
            println!("             (less throughput than the level before)");
        }
        previous = rate;
    }
    drop(server);
    runtime.block_on(in_process_cost());
}
