//! wasimancer beside the floor: `../shared/bench/floor` (next to the
//! repository), the least an rmcp + extism server does per `tools/call` (one
//! instance behind a mutex, called inline, nothing else). Both serve
//! `plugins/addition/addition.wasm`'s `add` under the same load, servers
//! alternating within each round so that the machine's drift hits both
//! alike; the figure that means something is the ratio, wasimancer / floor.
//!
//! Two modes: `sessions` (wasimancer's default against the floor with
//! sessions) and `stateless` (`serve --stateless` against the floor without
//! sessions, answering JSON).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{LevelResult, Options, Server, listening_address, repo, run_level};

/// Where the floor's sources are, when they are there.
pub fn sources() -> Option<PathBuf> {
    let floor = repo().join("../shared/bench/floor");
    floor.join("Cargo.toml").is_file().then_some(floor)
}

/// Build the floor into the project's target folder; its binary.
pub fn build(sources: &Path) -> Result<PathBuf, String> {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("no target folder")?
        .to_path_buf();
    println!(
        "building the floor ({}) into {}",
        sources.display(),
        target.display()
    );
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(sources)
        .env("CARGO_TARGET_DIR", &target)
        // Whatever cargo bench set for this package is not the floor's.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_MANIFEST_DIR")
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the floor failed ({status})"));
    }
    Ok(target.join("release/mcp-floor"))
}

/// The floor, running until dropped.
struct Floor {
    child: Child,
    address: String,
}

impl Floor {
    fn start(binary: &Path, stateless: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(binary);
        command
            .current_dir(repo())
            .env("FLOOR_WASM", "plugins/addition/addition.wasm")
            .env("FLOOR_FN", "add")
            .env("FLOOR_PORT", port.to_string())
            // wasimancer always sets an extism timeout (this plugin's: 1 s).
            .env("FLOOR_TIMEOUT_MS", "1000")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if stateless {
            command.env("FLOOR_STATELESS", "1").env("FLOOR_JSON", "1");
        }
        let mut child = command.spawn().expect("the floor starts");
        let address = listening_address(&mut child, "the floor");
        Self { child, address }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each mode at each level, `rounds` times, wasimancer and the floor in
/// turn; the median ratio per mode and level at the end.
pub fn side_by_side(runtime: &tokio::runtime::Runtime, options: &Options, binary: &Path) {
    println!(
        "tools/call `add` over HTTP on loopback, {} s per run, {} round(s), wasimancer and the floor alternating (odd rounds start with wasimancer)",
        options.seconds, options.rounds
    );
    println!(
        "round  mode        conns   wasimancer/s  p50 µs  p99 µs    floor/s  p50 µs  p99 µs   ratio"
    );
    let mut medians = Vec::new();
    for stateless in [false, true] {
        let mode = if stateless { "stateless" } else { "sessions" };
        let ours = if stateless {
            Server::headless(&["--stateless".into()])
        } else {
            Server::headless(&[])
        };
        let floor = Floor::start(binary, stateless);
        let mut ratios = vec![Vec::new(); options.levels.len()];
        for round in 1..=options.rounds {
            for (level, &connections) in options.levels.iter().enumerate() {
                let run = |address: &str| {
                    let result = runtime.block_on(run_level(address, connections, options.seconds));
                    assert_eq!(result.failures, 0, "{mode}: calls to {address} failed");
                    result
                };
                let (w, f) = if round % 2 == 1 {
                    let w = run(&ours.address);
                    (w, run(&floor.address))
                } else {
                    let f = run(&floor.address);
                    (run(&ours.address), f)
                };
                let ratio = rate(&w) / rate(&f).max(1.0);
                ratios[level].push(ratio);
                println!(
                    "{round:>5}  {mode:<10}  {connections:>5}   {:>12.0}  {:>6.0}  {:>6.0}  {:>9.0}  {:>6.0}  {:>6.0}   {ratio:.2}",
                    rate(&w),
                    micros(&w, 0.5),
                    micros(&w, 0.99),
                    rate(&f),
                    micros(&f, 0.5),
                    micros(&f, 0.99),
                );
            }
        }
        for (level, mut ratios) in ratios.into_iter().enumerate() {
            ratios.sort_by(f64::total_cmp);
            medians.push((mode, options.levels[level], ratios));
        }
    }
    println!("wasimancer / floor, median over the rounds (range):");
    for (mode, connections, ratios) in medians {
        println!(
            "  {mode:<10} {connections:>3} connections: {:.2} ({:.2} to {:.2})",
            median(&ratios),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

fn rate(result: &LevelResult) -> f64 {
    result.calls as f64 / result.seconds
}

fn micros(result: &LevelResult, p: f64) -> f64 {
    result.percentile(p).as_secs_f64() * 1e6
}

/// The median of sorted `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
