//! What several test binaries share: the binary started as users start it,
//! and a real MCP client. Each binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, run from the repository root, with a test cache folder and
/// none of the operator's settings.
pub fn wasimancer(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasimancer"));
    command
        .args(args)
        .current_dir(repo())
        .env(
            "WASIMANCER_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache"),
        )
        .env("RUST_BACKTRACE", "0")
        .env_remove("WASIMANCER_AUTHENTICATION_TOKEN")
        .env_remove("WASIMANCER_ADMIN_TOKEN")
        .env_remove("WASIMANCER_CONTROL_SOCKET")
        .env_remove("WASIMANCER_URL")
        .env_remove("PLUGINS_PATH")
        .env_remove("PLUGINS_DEFINITION_FILE")
        .env_remove("RESOURCES_PATH")
        .env_remove("RESOURCES_DEFINITION_FILE")
        .env_remove("PROMPTS_PATH")
        .env_remove("PROMPTS_DEFINITION_FILE")
        .env_remove("HTTP_PORT")
        .env_remove("RUST_LOG")
        .env_remove("WASM_GREETING");
    command
}

/// A plugins folder in a temp dir with `yaml` as its plugins.yml, and the
/// hello module copied in.
pub fn plugins_folder(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("hello")).unwrap();
    std::fs::copy(
        repo().join("plugins/hello/hello.wasm"),
        plugins.join("hello/hello.wasm"),
    )
    .unwrap();
    std::fs::write(plugins.join("plugins.yml"), yaml).unwrap();
    dir
}

/// A headless server: the process and its stderr lines as they come. It is
/// killed when dropped, so a failing test leaves no server behind.
pub struct Headless {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Headless {
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a line containing `needle` (the server says when it is ready).
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Where it serves: `127.0.0.1:PORT`, from its "serving" line.
    pub fn address(&mut self) -> String {
        let ready = self.wait_for("serving");
        ready
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {ready:?}"))
            .to_string()
    }

    /// Stop with SIGTERM and return everything it printed.
    pub fn stop(&mut self) -> String {
        // SIGTERM, as systemd sends it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the server exits cleanly on SIGTERM: {status}"
        );
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Send `signal` (libc::SIGTERM, SIGHUP…) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal to the process this test started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Wait for the process to end, and return its status and everything
    /// it printed.
    pub fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real MCP client (rmcp) with the bearer token, named `name`.
pub async fn mcp_client(
    url: &str,
    token: &str,
    name: &str,
) -> RunningService<RoleClient, ClientConfig> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut info = ClientConfig::default();
    info.client_info.name = name.into();
    info.serve(transport)
        .await
        .expect("the MCP client connects")
}

/// Call `tool` with `arguments` (a JSON object) and return its text.
pub async fn call_text(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    arguments: serde_json::Value,
) -> String {
    let serde_json::Value::Object(arguments) = arguments else {
        panic!("arguments are an object");
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool} answers: {error}"));
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// A web server on loopback whose one page answers only when the test opens
/// the gate: a plugin that fetches it (the sandbox plugin's `fetch`) is a
/// call in flight for exactly as long as the test wants, with no timing.
pub struct Gate {
    /// The page, for the plugin to fetch.
    pub url: String,
    arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (arrivals, arrived) = tokio::sync::mpsc::unbounded_channel();
        let (open, opened) = tokio::sync::watch::channel(false);
        let page = move || {
            let arrivals = arrivals.clone();
            let mut opened = opened.clone();
            async move {
                let _ = arrivals.send(());
                let _ = opened.wait_for(|open| *open).await;
                "opened"
            }
        };
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(page));
            let _ = axum::serve(listener, app).await;
        });
        Self { url, arrived, open }
    }

    /// Wait until a request waits at the gate.
    pub async fn arrival(&mut self) {
        tokio::time::timeout(Duration::from_secs(60), self.arrived.recv())
            .await
            .expect("a request reaches the gate")
            .expect("the gate is up");
    }

    /// Let every waiting request (and any later one) through.
    pub fn open(&self) {
        let _ = self.open.send(true);
    }
}

/// plugins.yml with the sandbox plugin allowed to fetch from loopback, as
/// `wait_at_gate` (a call that lasts until a [`Gate`] opens).
pub const GATED_PLUGINS: &str = r#"
plugins:
  - name: gatekeeper
    path: sandbox/sandbox.wasm
    allowed_hosts: [127.0.0.1]
    timeout_ms: 60000
    functions:
      - displayName: wait_at_gate
        function: fetch
        arguments:
          - name: url
            type: string
"#;
