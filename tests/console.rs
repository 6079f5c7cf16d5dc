//! The console end to end: the real binary in a real terminal (tmux), driven
//! by keys and read from the screen, while an MCP client calls the same server.
//!
//! Needs tmux (CI installs it). The tmux server gets a socket of its own, so
//! the test never touches the operator's sessions.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;

use support::{Headless, call_text, mcp_client, repo, wasimancer};

const TOKEN: &str = "console-test-token-0123456789";
/// Generous: a debug build compiles the sample plugins at start.
const DEADLINE: Duration = Duration::from_secs(90);

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

    /// Start the server with its console in a 100x30 window, from the
    /// repository root.
    fn start(&mut self) {
        self.start_with(&["--port", "0"], &[]);
    }

    /// Start `wasimancer ARGS` in a 100x30 window, from the repository
    /// root, with `env` set.
    fn start_with(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let mut command = vec![env!("CARGO_BIN_EXE_wasimancer")];
        command.extend_from_slice(args);
        self.start_program(&command, env);
    }

    /// Start `program` (with its arguments) in a 100x30 window, from the
    /// repository root, with `env` set.
    fn start_program(&mut self, program: &[&str], env: &[(&str, &str)]) {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache");
        let mut command = self.command();
        for (name, value) in env {
            command.env(name, value);
        }
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
            .env_remove("WASIMANCER_CONTROL_SOCKET")
            .env("RUST_BACKTRACE", "0")
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
            .args(program);
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

    /// Wait until the program in the window has ended.
    fn wait_until_dead(&self, why: &str) {
        let started = Instant::now();
        while !self.pane_dead() {
            assert!(
                started.elapsed() < DEADLINE,
                "{why}; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
    let client = runtime.block_on(mcp_client(&url, TOKEN, "e2e"));
    let text = runtime.block_on(call_text(&client, "add", json!({"left": 20, "right": 22})));
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
        s.contains("Reload of plugins.yml") && s.contains("6 unchanged")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the report closed", |s| {
        !s.contains("Reload of plugins.yml")
    });

    // Nothing in flight: `q` quits at once, and the server stops with it.
    runtime.block_on(async { drop(client) });
    assert!(screen.contains("owner"), "{screen}");
    tmux.keys(&["q"]);
    tmux.wait_until_dead("q did not stop the process");
}

#[test]
fn the_console_reads_a_resource_a_plugin_computes_and_renders_a_prompt() {
    let mut tmux = Tmux::new();
    tmux.start();
    tmux.wait_for("the console with its resources", |s| {
        s.contains("plugins 4 loaded") && s.contains("dice  dice://")
    });
    // The resources-and-prompts pane: llm-instructions, greet-user, dice.
    tmux.keys(&["4", "j", "j", "Enter"]);
    tmux.wait_for("the read form", |s| s.contains("Read dice"));
    // Three dice of one face: numDice on line 2, numFaces on line 3.
    tmux.keys(&[
        "Down", "End", "Left", "BSpace", "3", "Down", "End", "BSpace", "1",
    ]);
    tmux.wait_for("valid variables", |s| s.contains("✓ valid"));
    tmux.keys(&["C-s"]);
    tmux.wait_for("the contents the plugin computed", |s| {
        s.contains("Result · ok") && s.lines().any(|line| line.contains("│3 "))
    });
    // The prompt renders with its arguments filled in.
    tmux.keys(&["Escape", "G", "Enter"]);
    tmux.wait_for("the render form", |s| s.contains("Render roll-dice"));
    tmux.keys(&[
        "Down", "End", "Left", "BSpace", "2", "Down", "End", "BSpace", "2", "0",
    ]);
    tmux.keys(&["C-s"]);
    tmux.wait_for("the rendered prompt", |s| {
        s.contains("Roll 2 dice with 20 faces each")
    });
    // Both are in the call log, by kind.
    tmux.keys(&["Escape", "2"]);
    let screen = tmux.wait_for("the read and the render in the calls pane", |s| {
        row_with(s, "read dice", "console").is_some()
            && row_with(s, "prompt roll", "console").is_some()
    });
    assert!(
        row_with(&screen, "read dice", "console").is_some_and(|row| row.contains("ok")),
        "{screen}"
    );
}

/// A server running on its own (as under systemd), with its control socket
/// in a private folder.
fn headless_server(socket: &Path) -> (Headless, String) {
    let mut server = Headless::start(
        wasimancer(&["serve", "--headless", "--port", "0", "--control-socket"])
            .arg(socket)
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN),
    );
    let address = server.address();
    server.wait_for("consoles attach");
    (server, address)
}

#[test]
fn wasimancer_console_attaches_to_a_headless_server_and_q_leaves_it_serving() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let socket = dir.path().join("control.sock");
    let (mut server, address) = headless_server(&socket);
    let socket = socket.display().to_string();

    let mut tmux = Tmux::new();
    tmux.start_with(&["console", "--control-socket", &socket], &[]);
    let attached = format!("attached to pid {}", server.child.id());
    tmux.wait_for("the attached console", |s| {
        s.contains(&attached) && s.contains("plugins 4 loaded")
    });

    // A call from an MCP client shows up in the attached console.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let url = format!("http://{address}/mcp");
    let client = runtime.block_on(mcp_client(&url, TOKEN, "e2e"));
    let text = runtime.block_on(call_text(&client, "add", json!({"left": 1, "right": 2})));
    assert_eq!(text, r#"{"result":3}"#);
    tmux.keys(&["2"]);
    tmux.wait_for("the MCP call in the calls pane", |s| {
        row_with(s, "mcp:e2e", "add").is_some_and(|row| row.contains("ok"))
    });

    // `q` detaches at once, and the server keeps serving.
    tmux.keys(&["q"]);
    tmux.wait_until_dead("q did not end the attached console");
    assert!(server.running(), "detaching stopped the server");
    let text = runtime.block_on(call_text(&client, "say_hello", json!({"name": "still"})));
    assert_eq!(text, "Hello, still!");
    runtime.block_on(async { drop(client) });
    server.stop();
}

#[test]
fn an_attached_console_says_when_the_server_is_gone_and_comes_back_by_itself() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let socket = dir.path().join("control.sock");
    let (mut first, _) = headless_server(&socket);
    let mut tmux = Tmux::new();
    tmux.start_with(
        &["console", "--control-socket", &socket.display().to_string()],
        &[],
    );
    tmux.wait_for("the attached console", |s| {
        s.contains(&format!("attached to pid {}", first.child.id()))
    });

    first.stop();
    tmux.wait_for("the console noticing", |s| {
        s.contains("disconnected, retrying")
    });

    // A new server on the same socket: the console finds it by itself.
    let (second, _) = headless_server(&socket);
    tmux.wait_for("the console attached to the new server", |s| {
        s.contains(&format!("attached to pid {}", second.child.id()))
            && s.contains("plugins 4 loaded")
    });
    tmux.keys(&["q"]);
    tmux.wait_until_dead("q did not end the attached console");
}

#[test]
fn plain_wasimancer_on_the_port_of_a_running_server_offers_to_attach() {
    // The running server has its socket where `wasimancer --port P` looks.
    let mut server = Headless::start(
        wasimancer(&["serve", "--headless", "--port", "0"])
            .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN),
    );
    let address = server.address();
    server.wait_for("consoles attach");
    let port = address.rsplit(':').next().expect("a port").to_string();

    let mut tmux = Tmux::new();
    tmux.start_with(&["--port", &port], &[]);
    let question = format!("pid {}) already serves", server.child.id());
    tmux.wait_for("the offer to attach", |s| {
        s.contains(&question) && s.contains("Attach this console to it? [Y/n]")
    });
    tmux.keys(&["Enter"]);
    let attached = format!("attached to pid {}", server.child.id());
    tmux.wait_for("the attached console", |s| s.contains(&attached));
    tmux.keys(&["q"]);
    tmux.wait_until_dead("q did not end the attached console");
    assert!(server.running(), "the running server was not disturbed");
    server.stop();
}

/// A debug build panics its console on F12 when WASIMANCER_DEBUG_PANIC is
/// set: the terminal must come back usable, and the server keep serving.
#[test]
fn a_panicking_console_gives_the_terminal_back_and_the_server_keeps_serving() {
    let mut tmux = Tmux::new();
    tmux.start_program(&["sh"], &[("WASIMANCER_DEBUG_PANIC", "1"), ("PS1", "$ ")]);
    let command = format!(
        "{} --port 0; echo exit=$?",
        env!("CARGO_BIN_EXE_wasimancer")
    );
    tmux.keys(&[&command, "Enter"]);
    let screen = tmux.wait_for("the console", |s| s.contains("plugins 4 loaded"));
    let url = format!("http://{}/mcp", address(&screen));

    tmux.keys(&["F12"]);
    let screen = tmux.wait_for("the panic, printed on the restored terminal", |s| {
        s.contains("panicked") && s.contains("the server keeps serving")
    });
    assert!(
        !screen.contains("┏"),
        "the console's screen is gone:\n{screen}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let text = runtime.block_on(async {
        let client = mcp_client(&url, TOKEN, "e2e").await;
        call_text(&client, "say_hello", json!({"name": "after the panic"})).await
    });
    assert_eq!(text, "Hello, after the panic!");

    // The terminal is cooked again: Ctrl-C reaches the server as SIGINT,
    // and the shell reads whole lines.
    tmux.keys(&["C-c"]);
    tmux.wait_for("the server's exit", |s| s.contains("exit=0"));
    tmux.keys(&["echo shell-ok", "Enter"]);
    tmux.wait_for("the shell's answer", |s| {
        s.lines().any(|line| line.trim() == "shell-ok")
    });
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
        let client = mcp_client(&url, TOKEN, "e2e").await;
        call_text(&client, "say_hello", json!({"name": "after the hang-up"})).await
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
