//! The whole MCP surface of plugin tools through real clients: rich results
//! (`output: json | content`, `outputSchema`), full input schemas, metadata,
//! header arguments, required client capabilities, progress and cancellation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientConfig, ClientRequest, ProgressNotificationParam,
    ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use wasimancer::events::{CallEvent, CallStatus};
use wasimancer::runtime::FailureKind;
use wasimancer::server::Settings;

use crate::common::*;

/// A 1x1 PNG, as the conformance plugin returns it.
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// faults' `echo` returns its input: its arguments object, as JSON text, so
/// a test chooses the output by choosing the arguments.
const SURFACE: &str = r##"
plugins:
  - name: faults
    path: faults.wasm
    wasi: false
    timeout_ms: 60000
    instances: 1
    functions:
      - function: spin
      - displayName: echo_json
        function: echo
        output: json
        inputSchema: { type: object }
        outputSchema:
          type: object
          properties:
            result: { type: integer }
          required: [result]
      - displayName: echo_content
        function: echo
        output: content
        inputSchema: { type: object }
      - displayName: book
        function: echo
        title: Book a visit
        description: Books a visit at an address
        output: json
        annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false }
        icons:
          - src: data:image/png;base64,iVBORw0KGgo=
            mimeType: image/png
            sizes: [48x48]
        inputSchema:
          type: object
          $defs:
            address:
              type: object
              properties:
                city: { type: string }
                street: { type: string }
              required: [city]
          properties:
            name: { type: string }
            address: { $ref: "#/$defs/address" }
            when: { type: string, enum: [morning, afternoon] }
            guests: { type: array, items: { type: integer, minimum: 1 } }
          required: [name, address]
          additionalProperties: false
      - displayName: routed
        function: echo
        arguments:
          - name: region
            type: string
            header: Region
          - name: note
            type: string
            required: false
  - name: hello
    path: hello.wasm
    wasi: false
    functions:
      - displayName: say hello
        function: say_hello
        arguments:
          - name: name
            type: string
  - name: conformance
    path: conformance.wasm
    wasi: false
    functions:
      - displayName: progress
        function: with_progress
        inputSchema:
          type: object
          properties:
            steps: { type: integer, minimum: 1 }
      - displayName: needs_sampling
        function: simple_text
        clientCapabilities: [sampling]
"##;

/// A server for [`SURFACE`], its modules copied from the repository (the
/// conformance plugin lives in examples/); the folder must outlive it.
async fn serve() -> (TestServer, TempDir) {
    serve_with(|_| {}).await
}

async fn serve_with(adjust: impl FnOnce(&mut Settings)) -> (TestServer, TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules: [(PathBuf, &str); 3] = [
        (repo_plugins().join("faults/faults.wasm"), "faults.wasm"),
        (repo_plugins().join("hello/hello.wasm"), "hello.wasm"),
        (
            root.join("examples/conformance/plugins/conformance.wasm"),
            "conformance.wasm",
        ),
    ];
    for (from, name) in modules {
        std::fs::copy(from, plugins.path().join(name)).unwrap();
    }
    let folder = plugins.path().to_path_buf();
    let server = TestServer::start_with(SURFACE, |settings| {
        settings.registry.runtime.plugins_dir = folder.clone();
        settings.http.admin.upload_dir = folder;
        adjust(settings);
    })
    .await;
    (server, plugins)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The error a call was recorded with.
fn failure(event: &CallEvent) -> (FailureKind, &str) {
    match &event.status {
        CallStatus::Error { kind, message } => (*kind, message),
        CallStatus::Ok { preview } => panic!("call {} succeeded: {preview}", event.tool),
    }
}

#[tokio::test]
async fn rich_results_reach_the_client_as_declared_and_bad_ones_say_where() {
    let (server, _plugins) = serve().await;
    let client = server.client().await;
    let mut events = server.events();

    // output: json, checked against outputSchema: structured and as text.
    let result = call(&client, "echo_json", json!({"result": 5})).await;
    assert_eq!(ok_text(&result), r#"{"result":5}"#);
    assert_eq!(result.structured_content, Some(json!({"result": 5})));
    let wrong = error_text(&call(&client, "echo_json", json!({"result": "five"})).await);
    assert!(wrong.contains("outputSchema"), "{wrong}");
    assert!(wrong.contains("/result: "), "{wrong}");

    // output: content: every kind of block, as the plugin wrote it.
    let envelope = json!({
        "content": [
            {"type": "text", "text": "a picture:"},
            {"type": "image", "data": PNG, "mimeType": "image/png"},
            {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
            {"type": "resource_link", "uri": "file:///notes.txt", "name": "notes"},
            {"type": "resource", "resource": {"uri": "test://x", "mimeType": "text/plain", "text": "body"}}
        ],
        "structuredContent": {"pictures": 1}
    });
    let result = call(&client, "echo_content", envelope).await;
    let sent: Vec<Value> = result
        .content
        .iter()
        .map(|block| serde_json::to_value(block).unwrap())
        .collect();
    let kinds: Vec<&str> = sent.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["text", "image", "audio", "resource_link", "resource"]
    );
    assert_eq!(sent[1]["data"], PNG);
    assert_eq!(sent[4]["resource"]["text"], "body");
    assert_eq!(result.structured_content, Some(json!({"pictures": 1})));
    assert_ne!(result.is_error, Some(true));

    // The plugin's own error result, and an envelope that is not valid.
    let reported =
        json!({"content": [{"type": "text", "text": "no pictures today"}], "isError": true});
    assert_eq!(
        error_text(&call(&client, "echo_content", reported).await),
        "no pictures today"
    );
    let invalid = json!({"content": [{"type": "image", "data": PNG}]});
    let message = error_text(&call(&client, "echo_content", invalid).await);
    assert!(
        message.contains("content[0]: the `image` block needs `mimeType`"),
        "{message}"
    );

    // The call log says what each call returned, binary content as a label.
    let calls = call_events(&mut events, 5).await;
    assert!(calls[0].status.is_ok());
    assert_eq!(failure(&calls[1]).0, FailureKind::InvalidOutput);
    let CallStatus::Ok { preview } = &calls[2].status else {
        panic!("{:?}", calls[2].status)
    };
    assert!(
        preview.starts_with(
            "a picture: [image image/png 69 B] [audio audio/wav 4 B] [link file:///notes.txt]"
        ),
        "{preview}"
    );
    assert_eq!(
        failure(&calls[3]),
        (FailureKind::PluginError, "no pictures today")
    );
    assert_eq!(failure(&calls[4]).0, FailureKind::InvalidOutput);
    let detail = server.server.registry.call_detail(calls[2].id).unwrap();
    assert!(
        detail
            .output
            .as_ref()
            .unwrap()
            .ends_with("structured: {\"pictures\":1}"),
        "{:?}",
        detail.output
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn schemas_and_metadata_are_listed_and_arguments_are_checked_with_their_path() {
    let (server, _plugins) = serve().await;
    let client = server.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let tool = |name: &str| {
        let found = tools.iter().find(|t| t.name == name).unwrap();
        serde_json::to_value(found).unwrap()
    };

    let book = tool("book");
    assert_eq!(book["title"], "Book a visit");
    assert_eq!(
        book["inputSchema"]["$defs"]["address"]["required"],
        json!(["city"])
    );
    assert_eq!(book["inputSchema"]["additionalProperties"], false);
    assert_eq!(
        book["annotations"],
        json!({"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false})
    );
    assert_eq!(book["icons"][0]["sizes"], json!(["48x48"]));
    assert_eq!(
        tool("echo_json")["outputSchema"]["required"],
        json!(["result"])
    );
    let routed = tool("routed");
    assert_eq!(
        routed["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );
    assert!(tool("spin").get("annotations").is_none());

    // Nested objects, enums and arrays: every problem with its path.
    let wrong = json!({"name": "Ada", "address": {"street": 5}, "when": "evening", "guests": [0]});
    let message = error_text(&call(&client, "book", wrong).await);
    for expected in [
        "invalid arguments for `book`",
        "/address: \"city\" is a required property",
        "/address/street: 5 is not of type \"string\"",
        "/when: ",
        "/guests/0: ",
        "Expected {address: object, guests: array (optional), name: string, when: enum (optional)}",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let good = json!({"name": "Ada", "address": {"city": "Paris"}, "guests": [2.0]});
    let result = call(&client, "book", good).await;
    // Whole numbers reach the plugin without a fraction.
    assert_eq!(
        result.structured_content,
        Some(json!({"address": {"city": "Paris"}, "guests": [2], "name": "Ada"}))
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn header_arguments_must_match_their_mcp_param_header() {
    let (server, _plugins) = serve().await;
    let bearer = format!("Bearer {TOKEN}");
    let params = json!({
        "name": "routed",
        "arguments": {"region": "eu-west"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }
    });
    let send = |region: Option<&'static str>| {
        let (url, bearer, params) = (server.url.clone(), bearer.clone(), params.clone());
        async move {
            let mut headers = vec![
                ("authorization", bearer.as_str()),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "routed"),
            ];
            if let Some(region) = region {
                headers.push(("mcp-param-region", region));
            }
            let response = post_mcp(&url, rpc(1, "tools/call", params), &headers).await;
            let status = response.status().as_u16();
            (status, messages(response).await.remove(0))
        }
    };
    let (status, answer) = send(Some("eu-west")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"],
        r#"{"region":"eu-west"}"#
    );
    for header in [Some("us-east"), None, Some("=?base64?!!?=")] {
        let (status, answer) = send(header).await;
        assert_eq!(status, 400, "{header:?}: {answer}");
        assert_eq!(answer["error"]["code"], -32020, "{header:?}: {answer}");
    }
}

#[tokio::test]
async fn a_tool_that_needs_sampling_refuses_clients_that_do_not_offer_it() {
    let (server, _plugins) = serve().await;
    let client = server.client().await;
    let refused = client
        .call_tool(CallToolRequestParams::new("needs_sampling"))
        .await
        .unwrap_err();
    let rmcp::service::ServiceError::McpError(error) = refused else {
        panic!("expected a JSON-RPC error, got {refused}");
    };
    assert_eq!(error.code.0, -32021);
    assert_eq!(
        error.data.unwrap()["requiredCapabilities"],
        json!({"sampling": {}})
    );
    client.cancel().await.unwrap();
}

/// An MCP client that reports every `notifications/progress`.
#[derive(Clone)]
struct ProgressListener(mpsc::UnboundedSender<ProgressNotificationParam>);

impl ClientHandler for ProgressListener {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

#[tokio::test]
async fn a_stateless_server_answers_json_and_streams_only_when_progress_comes_first() {
    let (server, _plugins) = serve_with(|settings| settings.http.stateless = true).await;
    let bearer = format!("Bearer {TOKEN}");
    let headers = [("authorization", bearer.as_str())];
    answers_json_unless_progress_comes_first(|body| post_mcp(&server.url, body, &headers)).await;
}

/// A `--stateless` server answers a plain call on its quick path, and one
/// with `_meta` through rmcp: both must read the same.
#[tokio::test]
async fn a_stateless_server_answers_plain_calls_as_rmcp_does() {
    let (server, _plugins) = serve_with(|settings| settings.http.stateless = true).await;
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    answers_plain_calls_as_rmcp_does(|body| post_mcp(&server.url, body, &headers)).await;
}

/// In a session, a plain call is answered on the quick path, and one with
/// `_meta` by the session's worker in rmcp: both must read the same.
#[tokio::test]
async fn a_session_answers_plain_calls_as_rmcp_does() {
    let (server, _plugins) = serve().await;
    let session = open_session(&server).await;
    answers_plain_calls_as_rmcp_does(|body| post_in(&server, &session, body)).await;
}

/// Calls sent by `post` plain and with `_meta` (which sends them through
/// rmcp) read the same, whatever the call gives: a result, structured
/// output, a tool error, refused arguments, an unknown tool, a tool that
/// needs sampling.
async fn answers_plain_calls_as_rmcp_does<F, Fut>(post: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let calls = [
        json!({"name": "echo_content", "arguments": {"text": "hi"}}),
        json!({"name": "echo_json", "arguments": {"result": 4}}),
        json!({"name": "echo_json", "arguments": {"result": "not a number"}}),
        json!({"name": "book", "arguments": {"name": "Ada"}}),
        json!({"name": "say hello", "arguments": {"name": "Ada"}}),
        json!({"name": "no such tool"}),
        json!({"name": "needs_sampling"}),
    ];
    for (id, call) in (10..).zip(calls) {
        let mut through_rmcp = call.clone();
        through_rmcp["_meta"] = json!({"note": "an unknown key sends the call through rmcp"});
        let mut answers = Vec::new();
        for params in [call.clone(), through_rmcp] {
            let response = post(rpc(id, "tools/call", params)).await;
            let status = response.status();
            let content_type = header(&response, "content-type");
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            answers.push((status, content_type, body));
        }
        assert_eq!(answers[0], answers[1], "{call}");
        assert_eq!(answers[0].0, 200, "{call}");
    }
}

#[tokio::test]
async fn a_call_in_a_session_is_answered_json_and_streamed_only_when_progress_comes_first() {
    let (server, _plugins) = serve().await;
    let session = open_session(&server).await;
    answers_json_unless_progress_comes_first(|body| post_in(&server, &session, body)).await;
}

/// A call of `progress` sent by `post` is answered as plain JSON, unless
/// the client asked for progress: then as an SSE stream, the reports before
/// the result.
async fn answers_json_unless_progress_comes_first<F, Fut>(post: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let call = |meta: Value| {
        rpc(
            1,
            "tools/call",
            json!({"name": "progress", "arguments": {"steps": 2}, "_meta": meta}),
        )
    };
    let plain = post(call(json!({}))).await;
    let content_type = header(&plain, "content-type");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    // Sized like any JSON answer, not chunked like a stream.
    let length: usize = header(&plain, "content-length").parse().unwrap();
    let text = plain.text().await.unwrap();
    assert_eq!(length, text.len());
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "Progress reported in 3 steps",
        "{answer}"
    );

    let watched = post(call(json!({"progressToken": "p1"}))).await;
    let content_type = header(&watched, "content-type");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let messages = messages(watched).await;
    let last = messages.last().expect("messages");
    assert_eq!(
        last["result"]["content"][0]["text"],
        "Progress reported in 3 steps"
    );
    assert!(
        messages[..messages.len() - 1].iter().all(
            |m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p1"
        ),
        "{messages:?}"
    );
    assert!(messages.len() > 1, "progress came first: {messages:?}");
}

#[tokio::test]
async fn progress_reports_reach_the_client_before_the_result() {
    let (server, _plugins) = serve().await;
    let (sender, mut reports) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(TOKEN),
    );
    let client = ProgressListener(sender).serve(transport).await.unwrap();
    // rmcp gives every request a progress token.
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("progress").with_arguments(object(json!({"steps": 4}))),
    ));
    let handle = client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let ServerResult::CallToolResult(result) = handle.await_response().await.unwrap() else {
        panic!("not a tool result");
    };
    assert_eq!(ok_text(&result), "Progress reported in 5 steps");
    let mut seen = Vec::new();
    while let Ok(report) = reports.try_recv() {
        assert_eq!(report.progress_token, token);
        assert_eq!(report.total, Some(4.0));
        seen.push((report.progress, report.message.unwrap_or_default()));
    }
    let expected: Vec<(f64, String)> = (0..=4)
        .map(|step| (f64::from(step), format!("step {step} of 4")))
        .collect();
    assert_eq!(seen, expected, "every report arrives before the result");
    client.cancel().await.unwrap();
}

/// Wait until `plugin` has `busy` instances serving calls.
async fn until_busy(server: &TestServer, plugin: &str, busy: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot = server.server.registry.snapshot();
        let serving = snapshot.plugin(plugin).and_then(|p| p.serving.clone());
        if serving.is_some_and(|p| p.busy_instances() == busy) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{plugin} never had {busy} busy instances"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Start `spin` (it never returns; the plugin's timeout is a minute) on
/// `client` without waiting for it.
async fn start_spin(
    client: &RunningService<RoleClient, ClientConfig>,
) -> rmcp::service::RequestHandle<RoleClient> {
    let request =
        ClientRequest::CallToolRequest(CallToolRequest::new(CallToolRequestParams::new("spin")));
    client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_call_stops_frees_its_only_instance_and_is_logged_while_others_go_on() {
    let (server, _plugins) = serve().await;
    let client = Arc::new(server.client().await);
    let mut events = server.events();

    // notifications/cancelled stops the running plugin.
    let running = start_spin(&client).await;
    until_busy(&server, "faults", 1).await;
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "Ada"})).await),
        "Hello, Ada!"
    );
    running
        .cancel(Some("changed my mind".into()))
        .await
        .unwrap();
    let calls = call_events(&mut events, 2).await;
    assert_eq!(calls[0].tool.as_ref(), "say_hello");
    let (kind, message) = failure(&calls[1]);
    assert_eq!(kind, FailureKind::Cancelled);
    assert!(message.contains("`spin` was cancelled"), "{message}");
    // faults has one instance: this call would wait for a minute (and fail
    // as busy after the queue timeout) if the cancelled one still held it.
    assert_eq!(
        ok_text(&call(&client, "echo_json", json!({"result": 1})).await),
        r#"{"result":1}"#
    );

    // A client that goes away (its session closed) cancels its call too.
    let leaving = server.client().await;
    let _abandoned = start_spin(&leaving).await;
    until_busy(&server, "faults", 1).await;
    leaving.cancel().await.unwrap();
    let calls = call_events(&mut events, 2).await;
    assert_eq!(failure(&calls[1]).0, FailureKind::Cancelled);
    assert_eq!(
        ok_text(&call(&client, "echo_json", json!({"result": 2})).await),
        r#"{"result":2}"#
    );

    // So does a one-off HTTP request (no session) whose connection drops,
    // like curl stopped with Ctrl-C.
    let body = rpc(9, "tools/call", json!({"name": "spin", "arguments": {}}));
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        server.server.addr,
        body.len()
    );
    let mut connection = tokio::net::TcpStream::connect(server.server.addr)
        .await
        .unwrap();
    connection.write_all(request.as_bytes()).await.unwrap();
    until_busy(&server, "faults", 1).await;
    drop(connection);
    let calls = call_events(&mut events, 2).await;
    assert_eq!(failure(&calls[1]).0, FailureKind::Cancelled);
    until_busy(&server, "faults", 0).await;
    close(client).await;
}

/// A plain call in a session (answered outside rmcp's worker) is stopped
/// by `notifications/cancelled` for its id, and by the end of its session;
/// its stream then ends without an answer, as rmcp ends a cancelled one.
#[tokio::test]
async fn a_plain_call_in_a_session_stops_when_cancelled_or_when_its_session_ends() {
    let (server, _plugins) = serve().await;
    let session = open_session(&server).await;
    let mut events = server.events();
    let spin = |id| rpc(id, "tools/call", json!({"name": "spin", "arguments": {}}));

    let cancel = async {
        until_busy(&server, "faults", 1).await;
        let cancelled = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 5, "reason": "changed my mind"}
        });
        // Headers rmcp accepts but the quick path does not take as plain:
        // the cancel is heard all the same.
        let bearer = format!("Bearer {TOKEN}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("mcp-session-id", session.as_str()),
            ("accept", "text/event-stream;q=0.9"),
        ];
        post_mcp(&server.url, cancelled.to_string(), &headers).await
    };
    let (running, cancelled) = tokio::join!(post_in(&server, &session, spin(5)), cancel);
    assert_eq!(cancelled.status(), 202);
    assert_no_answer(running).await;
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(failure(&record).0, FailureKind::Cancelled);
    assert_eq!(
        record.source,
        wasimancer::events::CallSource::Mcp {
            client: Some("raw-http".into()),
            session: Some(session.as_str().into())
        }
    );
    until_busy(&server, "faults", 0).await;

    let end_session = async {
        until_busy(&server, "faults", 1).await;
        reqwest::Client::new()
            .delete(&server.url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap()
    };
    let (running, ended) = tokio::join!(post_in(&server, &session, spin(6)), end_session);
    assert_eq!(ended.status(), 204);
    assert_no_answer(running).await;
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(failure(&record).0, FailureKind::Cancelled);
    until_busy(&server, "faults", 0).await;
}

/// `response` is an event stream that ended with nothing in it.
async fn assert_no_answer(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn binary_resources_and_image_and_resource_prompt_messages_are_served() {
    let resources = format!(
        "resources:\n  static:\n    - name: pixel\n      uri: test://pixel\n      mimeType: image/png\n      contents:\n        - blob: {PNG}\n"
    );
    let prompts = format!(
        "prompts:\n  predefined:\n    - name: look\n      arguments:\n        - name: uri\n      messages:\n        - role: user\n          image: {{ data: '{PNG}', mimeType: image/png }}\n        - role: user\n          resource: {{ uri: '${{uri}}', mimeType: text/plain, text: 'about ${{uri}}' }}\n        - role: assistant\n          text: I see it.\n"
    );
    let server = TestServer::start_with_files(
        HELLO,
        &[("resources.yml", &resources), ("prompts.yml", &prompts)],
        |_| {},
    )
    .await;
    let client = server.client().await;
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new("test://pixel"))
        .await
        .unwrap();
    let content = serde_json::to_value(&read.contents[0]).unwrap();
    assert_eq!(content["blob"], PNG);
    assert_eq!(content["mimeType"], "image/png");
    assert!(content.get("text").is_none(), "{content}");

    let prompt = client
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("look")
                .with_arguments(object(json!({"uri": "test://notes"}))),
        )
        .await
        .unwrap();
    let messages = serde_json::to_value(&prompt.messages).unwrap();
    assert_eq!(messages[0]["content"]["type"], "image");
    assert_eq!(messages[0]["content"]["data"], PNG);
    assert_eq!(
        messages[1]["content"]["resource"],
        json!({"uri": "test://notes", "mimeType": "text/plain", "text": "about test://notes"})
    );
    assert_eq!(messages[2]["content"]["text"], "I see it.");
    client.cancel().await.unwrap();
}
