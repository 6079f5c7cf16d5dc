//! The console end to end: the real binary in a real terminal (tmux), driven
//! by keys and read from the screen, while an MCP client calls the same server.
//!
//! Needs tmux (CI installs it). The tmux server gets a socket of its own, so
//! the test never touches the operator's sessions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt, service::RunningService};

const TOKEN: &str = "console-test-token-0123456789";
/// Generous: a debug build compiles the sample plugins at start.
const DEADLINE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Tests run in parallel: each gets a tmux server of its own.
static NEXT_SOCKET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A tmux server of our own, killed (with the console's process) on drop.
struct Tmux {
    socket: String,
    pane_pid: Option<i32>,
}

impl Tmux {
    fn new() -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(output) if output.status.success() => {}
            _ => panic!(
                "this test drives the console in tmux, and tmux is not installed: \
                 install it (apt-get install tmux, brew install tmux) and run again"
            ),
        }
        Self {
            socket: Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!(
                    "tmux-{}-{}",
                    std::process::id(),
                    NEXT_SOCKET.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ))
                .display()
                .to_string(),
            pane_pid: None,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-S", &self.socket, "-f", "/dev/null"]);
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command().args(args).output().expect("tmux runs");
        assert!(
            status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&stderr)
        );
        String::from_utf8_lossy(&stdout).into_owned()
    }

    /// Start the binary in a 100x30 window, from the repository root.
    fn start(&mut self) {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache");
        let mut command = self.command();
        command
            .current_dir(repo())
            // The tmux server starts here: its panes inherit this environment.
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
            .env("WASIMANCER_CACHE_DIR", &cache)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("PLUGINS_PATH")
            .env_remove("PLUGINS_DEFINITION_FILE")
            .env_remove("HTTP_PORT")
            .env_remove("RUST_LOG")
            .env_remove("WASIMANCER_HEADLESS")
            .args([
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
                "-s",
                "console",
            ])
            .arg(env!("CARGO_BIN_EXE_wasimancer"))
            .args(["--port", "0"]);
        let output = command.output().expect("tmux runs");
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Keep the window when the binary exits, to read why and to see it end.
        self.run(&["set-option", "-t", "console", "remain-on-exit", "on"]);
        let pid = self.run(&["display-message", "-p", "-t", "console", "#{pane_pid}"]);
        self.pane_pid = pid.trim().parse().ok();
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "console"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Paste `text` the way a terminal does: bracketed, since the console asks for it.
    fn paste(&self, text: &str) {
        self.run(&["set-buffer", "-b", "test", "--", text]);
        self.run(&["paste-buffer", "-p", "-d", "-b", "test", "-t", "console"]);
    }

    /// Kill the tmux server: the console's terminal goes away, as when an
    /// SSH connection drops (the process gets SIGHUP, its tty hangs up).
    fn drop_terminal(&mut self) {
        self.run(&["kill-server"]);
    }

    fn pane_dead(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "console", "#{pane_dead}"])
            .trim()
            == "1"
    }

    /// Poll the screen until `ready` holds, or fail with the last screen.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if started.elapsed() > DEADLINE {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // SIGTERM stops the server, and with it the console; then the terminal goes.
        if let Some(pid) = self.pane_pid
            && running(pid)
        {
            stop(pid);
        }
        let _ = self.command().arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Whether `pid` is still running (not exited, not a zombie waiting for a
/// parent that is gone).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// SIGTERM, then SIGKILL if it has not ended within 5 s.
fn stop(pid: i32) {
    // SAFETY: kill only sends a signal to the process tmux started for us.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    while running(pid) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if running(pid) {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The address in the console's header.
fn address(screen: &str) -> String {
    screen
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split("/mcp").next())
        .unwrap_or_else(|| panic!("no address in the header:\n{screen}"))
        .to_string()
}

async fn connect(url: &str) -> RunningService<RoleClient, ClientConfig> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(TOKEN);
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut info = ClientConfig::default();
    info.client_info.name = "e2e".into();
    info.serve(transport)
        .await
        .expect("the MCP client connects")
}

/// The first row of the focused pane (drawn with heavy borders, `┃`) that
/// mentions both `needle` and `also`.
fn row_with<'a>(screen: &'a str, needle: &str, also: &str) -> Option<&'a str> {
    screen
        .lines()
        .filter_map(|line| line.split('┃').nth(1))
        .find(|row| row.contains(needle) && row.contains(also))
}

#[test]
fn the_console_calls_a_tool_from_its_form_and_shows_every_call_live() {
    let mut tmux = Tmux::new();
    tmux.start();

    // Ready when the plugins are listed; the header says where it listens.
    let screen = tmux.wait_for("the console with its plugins", |s| {
        s.contains("plugins 4 loaded") && s.contains("say_hello")
    });
    let address = address(&screen);
    assert!(screen.contains("auth co••••••••89"), "{screen}");

    // An MCP client calls the same server.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let url = format!("http://{address}/mcp");
    let client = runtime.block_on(connect(&url));
    let mut arguments = serde_json::Map::new();
    arguments.insert("left".into(), 20.into());
    arguments.insert("right".into(), 22.into());
    let result = runtime
        .block_on(client.call_tool(CallToolRequestParams::new("add").with_arguments(arguments)))
        .expect("add answers");
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(text, r#"{"result":42}"#);

    // The form of `say_hello`: the fourth row of the plugins pane.
    tmux.keys(&["j", "j", "j"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the call form", |s| s.contains("Call say_hello"));
    // Between the quotes of `"name": ""`, paste the name, then send.
    tmux.keys(&["Down", "End", "Left"]);
    tmux.paste("tmux");
    tmux.wait_for("the pasted argument, valid", |s| {
        s.contains(r#""name": "tmux""#) && s.contains("✓ valid")
    });
    tmux.keys(&["C-s"]);
    tmux.wait_for("the result under the editor", |s| {
        s.contains("Hello, tmux!") && s.contains("Result · ok")
    });

    // Both calls are in the log, each with its source.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the panes again", |s| !s.contains("Call say_hello"));
    tmux.keys(&["2"]);
    let screen = tmux.wait_for("both calls in the log", |s| {
        row_with(s, "say_hello", "console").is_some() && row_with(s, "mcp:", "add").is_some()
    });
    let console_row = row_with(&screen, "say_hello", "console").unwrap_or_default();
    assert!(console_row.contains("ok"), "{screen}");
    assert!(console_row.contains("Hel"), "{screen}");
    let mcp_row = row_with(&screen, "mcp:", "add").unwrap_or_default();
    assert!(mcp_row.contains("ok"), "{screen}");
    assert!(screen.contains("│ 2 calls │"), "{screen}");

    // R re-reads plugins.yml on the server; nothing changed, and it says so.
    tmux.keys(&["R"]);
    tmux.wait_for("the reload report", |s| {
        s.contains("Reload of plugins.yml") && s.contains("4 unchanged")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the report closed", |s| {
        !s.contains("Reload of plugins.yml")
    });

    // Nothing in flight: `q` quits at once, and the server stops with it.
    runtime.block_on(async { drop(client) });
    tmux.keys(&["q"]);
    let started = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            started.elapsed() < DEADLINE,
            "q did not stop the process; the screen:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dropped_terminal_stops_the_console_and_the_server_keeps_serving() {
    let mut tmux = Tmux::new();
    tmux.start();
    let screen = tmux.wait_for("the console with its plugins", |s| {
        s.contains("plugins 4 loaded")
    });
    let url = format!("http://{}/mcp", address(&screen));
    let pid = tmux.pane_pid.expect("the console's pid");

    tmux.drop_terminal();

    // The server still answers MCP calls, from a client that connects now.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let text = runtime.block_on(async {
        let client = connect(&url).await;
        let mut arguments = serde_json::Map::new();
        arguments.insert("name".into(), "after the hang-up".into());
        let result = client
            .call_tool(CallToolRequestParams::new("say_hello").with_arguments(arguments))
            .await
            .expect("say_hello answers after the terminal went away");
        result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<String>()
    });
    assert_eq!(text, "Hello, after the hang-up!");
    assert!(running(pid), "the process stopped with its terminal");

    // And SIGTERM still stops it.
    // SAFETY: kill only sends a signal to the process tmux started for us.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    while running(pid) {
        assert!(
            started.elapsed() < DEADLINE,
            "SIGTERM did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
