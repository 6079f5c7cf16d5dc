//! What an operator relies on: /metrics (scraped, parsed by promtool, counts
//! matching the calls made), /ready, the rate limit and the session cap,
//! through real HTTP and MCP clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use wasimancer::http::{MetricsAccess, RateKey, RateLimit, Token};
use wasimancer::operations::Phase;
use wasimancer::server::Drained;

use crate::common::*;
use crate::support::{GATED_PLUGINS, Gate};

fn tool_calls(tool: &str, plugin: &str, outcome: &str) -> String {
    format!(
        "wasimancer_tool_calls_total{{tool=\"{tool}\",plugin=\"{plugin}\",source=\"mcp\",outcome=\"{outcome}\"}}"
    )
}

#[tokio::test]
async fn metrics_count_every_outcome_and_parse_with_promtool() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    for (left, right) in [(1, 2), (3, 4)] {
        ok_text(&call(&client, "add", json!({"left": left, "right": right})).await);
    }
    error_text(&call(&client, "add", json!({"left": "one", "right": 2})).await);
    error_text(&call(&client, "fail", json!({"message": "no"})).await);
    error_text(&call(&client, "trap", json!({})).await);
    let unknown = client
        .call_tool(CallToolRequestParams::new("no-such-tool"))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    let scrape = Scrape::of(&server.base(), Some(ADMIN_TOKEN)).await;
    scrape.check_with_promtool();
    let expected = [
        (tool_calls("add", "addition", "ok"), 2.0),
        (tool_calls("add", "addition", "invalid_arguments"), 1.0),
        (tool_calls("fail", "faults", "plugin_error"), 1.0),
        (tool_calls("trap", "faults", "trap"), 1.0),
        (tool_calls("(unknown)", "", "unknown_tool"), 1.0),
        (
            r#"wasimancer_tool_call_duration_seconds_count{tool="add"}"#.into(),
            3.0,
        ),
        (
            r#"wasimancer_tool_call_duration_seconds_bucket{tool="add",le="+Inf"}"#.into(),
            3.0,
        ),
        // Four calls reached a plugin instance (the invalid and unknown ones did not).
        ("wasimancer_instance_wait_seconds_count".into(), 4.0),
        ("wasimancer_calls_in_flight".into(), 0.0),
        ("wasimancer_sessions".into(), 1.0),
        (
            r#"wasimancer_instances{plugin="faults",state="idle"}"#.into(),
            4.0,
        ),
        (
            r#"wasimancer_instances{plugin="faults",state="busy"}"#.into(),
            0.0,
        ),
        (
            r#"wasimancer_plugin_loads_total{plugin="addition",outcome="ok"}"#.into(),
            1.0,
        ),
        (r#"wasimancer_plugins{state="loaded"}"#.into(), 5.0),
        ("wasimancer_ready".into(), 1.0),
        (
            format!(
                r#"wasimancer_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ];
    for (sample, value) in expected {
        assert_eq!(scrape.get(&sample), value, "{sample}");
    }
    assert!(scrape.get("process_resident_memory_bytes") > 0.0);
    assert!(scrape.get("process_open_fds") > 0.0);
    // The allocator's own view (jemalloc is linked in, if idle in tests).
    let resident = scrape.get(r#"wasimancer_allocator_bytes{state="resident"}"#);
    let metadata = scrape.get(r#"wasimancer_allocator_bytes{state="metadata"}"#);
    assert!(
        resident > 0.0 && resident >= metadata,
        "{resident} {metadata}"
    );
    assert!(
        scrape.get("wasimancer_http_requests_total{route=\"/mcp\",status=\"200\"}") >= 7.0,
        "initialize and six calls went through /mcp"
    );

    // A removed plugin's tools leave no series behind.
    std::fs::write(server.root().join("plugins.yml"), HELLO).unwrap();
    server.server.registry.reload_all("test").await.unwrap();
    let scrape = Scrape::of(&server.base(), Some(ADMIN_TOKEN)).await;
    scrape.check_with_promtool();
    for gone in [
        r#"wasimancer_tool_calls_total{tool="add""#,
        r#"wasimancer_tool_call_duration_seconds_count{tool="add""#,
        r#"wasimancer_plugin_loads_total{plugin="addition""#,
        r#"wasimancer_instances{plugin="faults""#,
    ] {
        assert_eq!(scrape.matching(gone), Vec::<&str>::new());
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn metrics_need_their_token() {
    let server = TestServer::start_with(HELLO, |s| {
        s.http.metrics = MetricsAccess::Token(Token::new("metrics-token-42"));
    })
    .await;
    let get = |token: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/metrics", server.base()))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get("wrong").await.unwrap().status(), 401);
    assert_eq!(get(ADMIN_TOKEN).await.unwrap().status(), 401);
    assert_eq!(get("metrics-token-42").await.unwrap().status(), 200);
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let server = TestServer::start_with(HELLO, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr: SocketAddr = server.server.metrics_addr.expect("a metrics address");
    // Beside /mcp there are none any more.
    let beside = reqwest::Client::new()
        .get(format!("{}/metrics", server.base()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(beside.status(), 404);
    let scrape = Scrape::of(&format!("http://{addr}"), None).await;
    assert_eq!(scrape.get("wasimancer_tools"), 1.0);
}

async fn ready(base: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/ready")).await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn ready_while_serving_not_while_draining() {
    let server = TestServer::start(GATED_PLUGINS).await;
    assert_eq!(
        ready(&server.base()).await,
        (200, json!({"status": "ready"}))
    );
    let client = std::sync::Arc::new(server.client().await);
    // A call in flight when the drain starts: it lasts until the gate opens.
    let mut gate = Gate::start().await;
    let slow = tokio::spawn({
        let client = client.clone();
        let url = gate.url.clone();
        async move { call(&client, "wait_at_gate", json!({ "url": url })).await }
    });
    gate.arrival().await;
    let drainer = server.server.drainer();
    let drain =
        tokio::spawn(async move { drainer.drain(std::time::Duration::from_secs(60)).await });
    let mut phase = server.server.operations.watch_phase();
    phase
        .wait_for(|phase| *phase == Phase::Draining)
        .await
        .unwrap();

    let (status, body) = ready(&server.base()).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "draining");
    assert!(
        body["reason"].as_str().unwrap().contains("shutting down"),
        "{body}"
    );
    // New calls and new sessions are refused with a JSON-RPC error saying why.
    let bearer = format!("Bearer {TOKEN}");
    let refused = client
        .call_tool(CallToolRequestParams::new("wait_at_gate"))
        .await
        .expect_err("a new call is refused while draining");
    assert!(refused.to_string().contains("draining"), "{refused}");
    let opening = post_mcp(
        &server.url,
        rpc(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "late", "version": "1"}}),
        ),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(opening.status(), 503);
    let answer: Value = opening.json().await.unwrap();
    assert_eq!(answer["id"], 1);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("shutting down (draining)"), "{message}");

    // The call in flight finishes and is answered; then the drain ends.
    gate.open();
    assert_eq!(ok_text(&slow.await.unwrap()), "200 opened");
    assert_eq!(drain.await.unwrap(), Drained::Finished);
    assert!(server.server.operations.refused_draining() >= 2);
    // Then the server stops: nothing answers any more.
    let base = server.base();
    let TestServer { server, dir, .. } = server;
    server.wait().await;
    drop(dir);
    assert!(reqwest::get(format!("{base}/ready")).await.is_err());
}

/// The server listens while it loads: /ready says so until it is done.
/// resources.yml is a named pipe here, so loading lasts until the test
/// writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_loading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugins.yml"), HELLO).unwrap();
    let pipe = dir.path().join("resources.yml");
    let name = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid C string and creates a file.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let mut settings = settings(dir.path(), &repo_plugins());
    // A port free a moment ago: the address must be known before start returns.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.listen = SocketAddr::from(([127, 0, 0, 1], port));
    let starting = tokio::spawn(wasimancer::server::start(settings));
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = loop {
        if let Ok(response) = reqwest::get(format!("{base}/ready")).await {
            let status = response.status().as_u16();
            break (status, response.json::<Value>().await.unwrap());
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"status": "loading", "reason": "loading plugins"})
    );
    // /health answers meanwhile: the process is alive.
    assert_eq!(
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .status(),
        200
    );
    let writer = std::thread::spawn(move || {
        std::fs::write(&pipe, "resources:\n").unwrap();
    });
    let server = starting.await.unwrap().expect("the server starts");
    writer.join().unwrap();
    assert_eq!(ready(&base).await, (200, json!({"status": "ready"})));
    server.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_and_others_do_not() {
    let server = TestServer::start_with(HELLO, |s| {
        s.http.rate_limit = Some(RateLimit {
            per_second: std::num::NonZeroU32::new(1).unwrap(),
            burst: std::num::NonZeroU32::new(3).unwrap(),
            by: RateKey::Peer,
        });
    })
    .await;
    let from = |source: &'static str| {
        reqwest::Client::builder()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let ping = |client: reqwest::Client, id: u64| {
        let url = server.url.clone();
        async move {
            client
                .post(url)
                .bearer_auth(TOKEN)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2025-11-25")
                .body(rpc(id, "tools/list", json!({})))
                .send()
                .await
                .unwrap()
        }
    };
    // A burst from one client: the first three pass, then 429.
    let flooding = from("127.0.0.1");
    let mut statuses = Vec::new();
    let mut refused = None;
    for id in 1..=6 {
        let response = ping(flooding.clone(), id).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            refused = Some(response);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = refused.unwrap();
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    // Another client, from another address, is served all the while.
    let other = from("127.0.0.2");
    for id in 10..13 {
        assert_eq!(ping(other.clone(), id).await.status(), 200);
    }
    assert_eq!(server.server.operations.rate_limited(), 3);
    let scrape = Scrape::of(&server.base(), Some(ADMIN_TOKEN)).await;
    assert_eq!(
        scrape.get("wasimancer_requests_refused_total{reason=\"rate_limit\"}"),
        3.0
    );
    assert_eq!(
        scrape.get("wasimancer_http_requests_total{route=\"/mcp\",status=\"429\"}"),
        3.0
    );
}

#[tokio::test]
async fn the_session_cap_refuses_then_recovers() {
    let server = TestServer::start_with(HELLO, |s| {
        s.http.sessions.max_sessions = 2;
    })
    .await;
    let first = server.client().await;
    let second = server.client().await;
    assert_eq!(server.server.operations.sessions(), 2);
    let third = connect(&server.url, Some(TOKEN)).await;
    assert!(third.is_err(), "a third session is refused");
    let bearer = format!("Bearer {TOKEN}");
    let refused = post_mcp(
        &server.url,
        rpc(5, "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "third", "version": "1"}})),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["id"], 5);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 MCP sessions open") && message.contains("--max-sessions"));
    // Sessions already open go on working.
    ok_text(&call(&first, "say hello", json!({"name": "Ada"})).await);
    // A client that closes its session makes room for a new one.
    second.cancel().await.unwrap();
    while server.server.operations.sessions() > 1 {
        tokio::task::yield_now().await;
    }
    let third = server.client().await;
    ok_text(&call(&third, "say hello", json!({"name": "Bob"})).await);
    assert!(server.server.operations.sessions_refused() >= 2);
    first.cancel().await.unwrap();
    third.cancel().await.unwrap();
}

/// faults' `echo` hands its input back: the plugin sees every value, the
/// records of the call do not see the secret ones.
const ECHO_WITH_SECRETS: &str = r#"
plugins:
  - name: faults
    path: faults/faults.wasm
    wasi: false
    functions:
      - function: echo
        redact: [text]
        arguments:
          - name: text
            type: string
          - name: api_key
            type: string
          - name: city
            type: string
"#;

#[tokio::test]
async fn the_audit_log_has_a_redacted_line_per_call() {
    let audit = tempfile::tempdir().unwrap();
    let path = audit.path().join("audit.jsonl");
    let server = TestServer::start_with(ECHO_WITH_SECRETS, |s| {
        s.audit_log = Some(wasimancer::audit::AuditOptions::at(path.clone()));
    })
    .await;
    let mut events = server.events();
    let client = server.client().await;
    let arguments = json!({"text": "private words", "api_key": "sk-live-123", "city": "Lyon"});
    let echoed = ok_text(&call(&client, "echo", arguments).await);
    assert!(
        echoed.contains("sk-live-123") && echoed.contains("private words"),
        "the plugin gets the real values: {echoed}"
    );
    // The call's record, as consoles get it, is redacted too.
    let recorded = call_events(&mut events, 1).await.remove(0);
    assert!(!recorded.arguments.contains("sk-live-123"), "{recorded:?}");

    // The writer flushes when it has nothing left to write: wait for that.
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(line) = text.lines().find(|line| line.contains(r#""event":"call""#)) {
                break serde_json::from_str::<Value>(line).unwrap();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the call reaches the audit log");
    assert_eq!(line["source"], "mcp");
    assert_eq!(line["client"], "wasimancer-tests");
    assert!(line["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(line["kind"], "tool");
    assert_eq!(line["tool"], "echo");
    assert_eq!(line["plugin"], "faults");
    assert_eq!(line["outcome"], "ok");
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    let logged: Value = serde_json::from_str(line["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        logged,
        json!({"text": "[redacted]", "api_key": "[redacted]", "city": "Lyon"})
    );
    let everything = std::fs::read_to_string(&path).unwrap();
    assert!(!everything.contains("sk-live-123") && !everything.contains("private words"));
    client.cancel().await.unwrap();
}

/// One span as a test OTLP receiver decoded it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

/// A test OTLP/HTTP receiver (protobuf, as the exporter sends): every span
/// of every export request goes to the channel.
async fn otlp_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<ReceivedSpan>) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let (spans, received) = tokio::sync::mpsc::unbounded_channel();
    let export = move |body: axum::body::Bytes| {
        let spans = spans.clone();
        async move {
            let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
            let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        let attributes = span
                            .attributes
                            .iter()
                            .map(|kv| {
                                let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                                    Some(Any::StringValue(text)) => text,
                                    Some(Any::IntValue(n)) => n.to_string(),
                                    other => format!("{other:?}"),
                                };
                                (kv.key.clone(), value)
                            })
                            .collect();
                        let _ = spans.send(ReceivedSpan {
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            attributes,
                        });
                    }
                }
            }
            ExportTraceServiceResponse::default().encode_to_vec()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(export));
        let _ = axum::serve(listener, app).await;
    });
    (url, received)
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_under_the_callers_trace() {
    let (endpoint, mut received) = otlp_receiver().await;
    let server = TestServer::start_with(HELLO, |s| {
        s.tracing = wasimancer::telemetry::Tracing::to_endpoint(&endpoint).unwrap();
    })
    .await;
    // A caller's trace named in the request's _meta (SEP-414)…
    let meta_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let meta_parent = "00f067aa0ba902b7";
    let client = server.client().await;
    let params: CallToolRequestParams = serde_json::from_value(json!({
        "name": "say_hello",
        "arguments": {"name": "Ada"},
        "_meta": {"traceparent": format!("00-{meta_trace}-{meta_parent}-01")},
    }))
    .unwrap();
    client.call_tool(params).await.unwrap();
    client.cancel().await.unwrap();
    // …and one named in the HTTP request's headers.
    let header_trace = "0af7651916cd43dd8448eb211c80319c";
    let header_parent = "b7ad6b7169203331";
    let bearer = format!("Bearer {TOKEN}");
    let traceparent = format!("00-{header_trace}-{header_parent}-01");
    let answered = post_mcp(
        &server.url,
        rpc(
            2,
            "tools/call",
            json!({"name": "say_hello", "arguments": {"name": "Bob"}}),
        ),
        &[
            ("authorization", &bearer),
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &traceparent),
        ],
    )
    .await;
    assert_eq!(answered.status(), 200);
    messages(answered).await;

    // Stopping the server sends the spans not sent yet.
    let TestServer { server, dir, .. } = server;
    server.stop().await;
    drop(dir);
    let mut spans = Vec::new();
    while let Ok(span) = received.try_recv() {
        spans.push(span);
    }
    let find = |name: &str, trace: &str| -> ReceivedSpan {
        spans
            .iter()
            .find(|s| s.name == name && s.trace_id == trace)
            .unwrap_or_else(|| panic!("no span {name} in trace {trace}: {spans:#?}"))
            .clone()
    };

    let call = find("tools/call say_hello", meta_trace);
    assert_eq!(
        call.parent_span_id, meta_parent,
        "a child of the caller's span"
    );
    assert_eq!(call.attributes["mcp.method.name"], "tools/call");
    assert_eq!(call.attributes["gen_ai.tool.name"], "say_hello");
    assert_eq!(call.attributes["wasimancer.outcome"], "ok");
    assert!(call.attributes.contains_key("mcp.session.id"));
    let plugin = find("plugin hello", meta_trace);
    assert_eq!(plugin.parent_span_id, call.span_id);
    assert_eq!(plugin.attributes["wasimancer.function"], "say_hello");

    let http = find("POST /mcp", header_trace);
    assert_eq!(http.parent_span_id, header_parent);
    assert_eq!(http.attributes["http.response.status_code"], "200");
    let call = find("tools/call say_hello", header_trace);
    assert_eq!(call.parent_span_id, http.span_id);
    let plugin = find("plugin hello", header_trace);
    assert_eq!(plugin.parent_span_id, call.span_id);
}
