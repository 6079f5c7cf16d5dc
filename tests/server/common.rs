//! A real server on 127.0.0.1:0 and real MCP clients talking to it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use wasimancer::events::{Change, EventReader, Received, ServerEvent};
use wasimancer::http::{AdminOptions, HttpOptions, Token};
use wasimancer::logging::LogBuffer;
use wasimancer::registry::{DefinitionPaths, RegistryOptions};
use wasimancer::runtime::{CompileCache, RuntimeSettings};
use wasimancer::server::{self, RunningServer, Settings};

pub const TOKEN: &str = "test-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-9876543210";

/// The sample plugins of the repository, served by every test server.
pub fn repo_plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins")
}

/// plugins.yml with every sample plugin, the faults plugin under tight limits.
pub const ALL_PLUGINS: &str = include_str!("../fixtures/all-plugins.yml");

pub struct TestServer {
    pub server: RunningServer,
    pub url: String,
    /// Holds plugins.yml (and a copy of the plugins when the test changes them).
    pub dir: TempDir,
}

/// Settings for a test server serving `yaml` with plugins from `plugins_dir`.
pub fn settings(dir: &Path, plugins_dir: &Path) -> Settings {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache");
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        registry: RegistryOptions {
            catalog_path: dir.join("plugins.yml"),
            runtime: RuntimeSettings {
                plugins_dir: plugins_dir.to_path_buf(),
                env_config: [("WASM_GREETING".to_string(), "Howdy".to_string())].into(),
                queue_timeout: Duration::from_secs(10),
                max_output_bytes: 1024 * 1024,
                default_instances: 2,
                compile_cache: CompileCache::in_dir(&cache),
                ..RuntimeSettings::default()
            },
            keep_call_details: true,
        },
        definitions: DefinitionPaths::beside(&dir.join("plugins.yml")),
        http: HttpOptions {
            mcp_token: Some(Token::new(TOKEN)),
            admin: AdminOptions {
                token: Some(Token::new(ADMIN_TOKEN)),
                upload_dir: plugins_dir.to_path_buf(),
                max_upload_bytes: 2 * 1024 * 1024,
            },
            ..HttpOptions::default()
        },
        audit_log: None,
        log_calls: false,
        watch: false,
        watch_poll: None,
        cluster_bus: None,
        log: LogBuffer::default(),
        tracing: wasimancer::telemetry::Tracing::off(),
        control_socket: None,
    }
}

impl TestServer {
    /// A server for `yaml`, with the repository's plugins.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, |_| {}).await
    }

    /// Like [`TestServer::start`], with settings adjusted by `adjust`.
    pub async fn start_with(yaml: &str, adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with_files(yaml, &[], adjust).await
    }

    /// Like [`TestServer::start_with`], with `files` (name, content) written
    /// beside plugins.yml first: resources.yml, prompts.yml.
    pub async fn start_with_files(
        yaml: &str,
        files: &[(&str, &str)],
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugins.yml"), yaml).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut settings = settings(dir.path(), &repo_plugins());
        adjust(&mut settings);
        let server = server::start(settings).await.expect("server starts");
        let url = format!("http://{}/mcp", server.addr);
        Self { server, url, dir }
    }

    /// A server for `yaml` working on a copy of the repository's plugins in
    /// a temp folder, with uploads going to `plugins/bucket` (WASImancer's
    /// layout): for tests that change files.
    pub async fn start_in_copy(yaml: &str, adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        for name in [
            "roll-dice",
            "hello",
            "addition",
            "config-reader",
            "faults",
            "sandbox",
        ] {
            let from = repo_plugins().join(name);
            std::fs::create_dir_all(plugins.join(name)).unwrap();
            for file in std::fs::read_dir(&from).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "wasm") {
                    std::fs::copy(&file, plugins.join(name).join(file.file_name().unwrap()))
                        .unwrap();
                }
            }
        }
        std::fs::create_dir_all(plugins.join("bucket")).unwrap();
        std::fs::write(dir.path().join("plugins.yml"), yaml).unwrap();
        let mut settings = settings(dir.path(), &plugins);
        settings.http.admin.upload_dir = plugins.join("bucket");
        adjust(&mut settings);
        let server = server::start(settings).await.expect("server starts");
        let url = format!("http://{}/mcp", server.addr);
        Self { server, url, dir }
    }

    /// The folder holding plugins.yml and (for a copy) `plugins/`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The base URL, for the admin API and /health.
    pub fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// An MCP client with the right token.
    pub async fn client(&self) -> RunningService<RoleClient, ClientConfig> {
        connect(&self.url, Some(TOKEN))
            .await
            .expect("client connects")
    }

    /// Subscribe to the server's events (call records and plugin changes).
    pub fn events(&self) -> EventReader {
        self.server.registry.bus().subscribe()
    }
}

/// Connect an MCP client over Streamable HTTP.
pub async fn connect(
    url: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ClientConfig>, rmcp::service::ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url).max_concurrent_requests(64);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut info = ClientConfig::default();
    info.client_info.name = "wasimancer-tests".into();
    info.serve(transport).await
}

/// plugins.yml with only the hello plugin.
pub const HELLO: &str = include_str!("../fixtures/hello.yml");

/// Close a client shared between tasks once they are done with it.
pub async fn close(client: std::sync::Arc<RunningService<RoleClient, ClientConfig>>) {
    if let Ok(client) = std::sync::Arc::try_unwrap(client) {
        let _ = client.cancel().await;
    }
}

/// Call `tool` with `arguments` and return the result.
pub async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object");
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("calling {tool}: {e}"))
}

/// The text of a result, and whether it is an error.
pub fn text(result: &CallToolResult) -> (String, bool) {
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("");
    (text, result.is_error == Some(true))
}

/// The text of a successful result; panics with the message on an error.
pub fn ok_text(result: &CallToolResult) -> String {
    let (text, is_error) = text(result);
    assert!(!is_error, "expected success, got error: {text}");
    text
}

/// The text of an error result; panics on success.
pub fn error_text(result: &CallToolResult) -> String {
    let (text, is_error) = text(result);
    assert!(is_error, "expected an error, got: {text}");
    text
}

/// Every call event queued on `reader` until `count` have arrived.
pub async fn call_events(
    reader: &mut EventReader,
    count: usize,
) -> Vec<wasimancer::events::CallEvent> {
    let mut calls = Vec::new();
    while calls.len() < count {
        match tokio::time::timeout(Duration::from_secs(30), reader.recv()).await {
            Ok(Received::Event(event)) => {
                if let ServerEvent::Call(call) = &*event {
                    calls.push(call.clone());
                }
            }
            Ok(Received::Dropped(n)) => panic!("{n} events dropped"),
            Ok(Received::Closed) | Err(_) => panic!("only {} of {count} call events", calls.len()),
        }
    }
    calls
}

/// A JSON-RPC request body.
pub fn rpc(id: u64, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The header `name` of `response` as text; a missing or non-text header
/// fails the test, naming it.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no text header `{name}` in {:?}", response.headers()))
        .to_string()
}

/// POST a JSON-RPC body to `/mcp` the way curl does, with optional extra headers.
pub async fn post_mcp(url: &str, body: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request sent")
}

/// A session opened the way a script does it over plain HTTP (no stream
/// held open): `initialize`, then `notifications/initialized`; its id.
pub async fn open_session(server: &TestServer) -> String {
    let bearer = format!("Bearer {TOKEN}");
    let initialize = rpc(
        1,
        "initialize",
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw-http", "version": "1.0"}
        }),
    );
    let response = post_mcp(&server.url, initialize, &[("authorization", &bearer)]).await;
    let session = header(&response, "mcp-session-id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(post_in(server, &session, initialized).await.status(), 202);
    session
}

/// POST `body` in `session`.
pub async fn post_in(server: &TestServer, session: &str, body: String) -> reqwest::Response {
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("mcp-session-id", session),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    post_mcp(&server.url, body, &headers).await
}

/// The JSON messages in an SSE (or plain JSON) response body.
pub async fn messages(response: reqwest::Response) -> Vec<Value> {
    let body = response.text().await.expect("body");
    if body.trim_start().starts_with('{') {
        return vec![serde_json::from_str(&body).expect("json body")];
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(data).expect("json event"))
        .collect()
}

/// The JSON-RPC error code and message of a failed request.
pub fn rpc_error(error: ServiceError) -> (i32, String) {
    match error {
        ServiceError::McpError(error) => (error.code.0, error.message.to_string()),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Every file below `root`, with its content: to show nothing changed.
pub fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// A list an MCP client was told changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Tools,
    Resources,
    Prompts,
}

/// An MCP client that reports every `notifications/*/list_changed`.
#[derive(Clone)]
pub struct ListListener {
    changes: mpsc::UnboundedSender<Changed>,
}

impl ClientHandler for ListListener {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changes.send(Changed::Tools);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changes.send(Changed::Resources);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changes.send(Changed::Prompts);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

impl TestServer {
    /// An MCP client that reports list changes on the returned receiver.
    pub async fn listening_client(
        &self,
    ) -> (
        RunningService<RoleClient, ListListener>,
        mpsc::UnboundedReceiver<Changed>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.url.clone()).auth_header(TOKEN),
        );
        let client = ListListener { changes: sender }
            .serve(transport)
            .await
            .expect("client connects");
        (client, receiver)
    }
}

/// Wait for the next list change a listening client is told about.
pub async fn next_list_change(changes: &mut mpsc::UnboundedReceiver<Changed>) -> Changed {
    tokio::time::timeout(Duration::from_secs(20), changes.recv())
        .await
        .expect("list_changed arrives")
        .expect("client alive")
}

/// Wait for a change of `kind` (to a plugin, resources or prompts) on the bus;
/// its message.
pub async fn wait_for_change(events: &mut EventReader, kind: Change) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Received::Event(event)) => {
                if let ServerEvent::Lifecycle(change) = &*event
                    && change.change == kind
                {
                    return change.message.clone();
                }
            }
            Ok(Received::Dropped(_)) => {}
            Ok(Received::Closed) | Err(_) => panic!("no {kind:?} change came"),
        }
    }
}

/// A `subscriptions/listen` request of protocol 2026-07-28, held open.
pub struct Subscription {
    response: reqwest::Response,
    seen: String,
    /// Where the next wait starts looking in `seen`.
    read_to: usize,
    deadline: tokio::time::Instant,
}

impl Subscription {
    /// Subscribe to `notifications` (such as `{"toolsListChanged": true}`).
    pub async fn open(server: &TestServer, notifications: Value) -> Self {
        let body = rpc(
            7,
            "subscriptions/listen",
            json!({
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}
                },
                "notifications": notifications
            }),
        );
        let bearer = format!("Bearer {TOKEN}");
        let response = post_mcp(
            &server.url,
            body,
            &[
                ("authorization", &bearer),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "subscriptions/listen"),
            ],
        )
        .await;
        assert_eq!(response.status(), 200);
        Self {
            response,
            seen: String::new(),
            read_to: 0,
            deadline: tokio::time::Instant::now() + Duration::from_secs(20),
        }
    }

    /// Read the stream until `text` comes after what earlier waits found;
    /// everything read since then.
    pub async fn wait_for(&mut self, text: &str) -> &str {
        let start = self.read_to;
        loop {
            if let Some(at) = self.seen[start..].find(text) {
                self.read_to = start + at + text.len();
                return &self.seen[start..self.read_to];
            }
            let chunk = tokio::time::timeout_at(self.deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {text}; got: {}", self.seen))
                .unwrap()
                .unwrap_or_else(|| panic!("stream ended before {text}; got: {}", self.seen));
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Requests to the admin API; each area adds the helpers it needs.
pub struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    pub fn new(server: &TestServer) -> Self {
        Self {
            base: server.base(),
            http: reqwest::Client::new(),
        }
    }

    /// Send `method path` with `token`, the request finished by `build`;
    /// the status and the answer (JSON, or the text as a JSON string).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = build(request).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }
}

/// A scrape of `/metrics`: every sample, by name with its labels, as
/// Prometheus writes them (`name{a="b",c="d"}`).
pub struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    pub async fn of(base: &str, token: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_string(), value.parse().unwrap())
            })
            .collect();
        Self { text, samples }
    }

    pub fn value(&self, sample: &str) -> Option<f64> {
        self.samples.get(sample).copied()
    }

    /// The value of `sample`, which must be there.
    pub fn get(&self, sample: &str) -> f64 {
        self.value(sample)
            .unwrap_or_else(|| panic!("no sample {sample} in\n{}", self.text))
    }

    /// Every sample whose name and labels start with `prefix`.
    pub fn matching(&self, prefix: &str) -> Vec<&str> {
        self.samples
            .keys()
            .filter(|name| name.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// promtool, Prometheus's own tool, must read the scrape and find no
    /// problem in it.
    pub fn check_with_promtool(&self) {
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs (Debian package `prometheus`; .ci/run installs it)");
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(self.text.as_bytes())
            .unwrap();
        let output = promtool.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.text
        );
    }
}
