//! The MCP protocol on the wire: each supported version, sessions, ping, and
//! the session-less requests WASImancer's scripts send.

use std::time::Duration;

use serde_json::{Value, json};
use wasimancer::server::Settings;

use crate::common::*;

fn initialize(version: &str) -> String {
    rpc(
        1,
        "initialize",
        json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw-http", "version": "1.0"}
        }),
    )
}

#[tokio::test]
async fn every_supported_version_initializes_pings_lists_and_calls() {
    let server = TestServer::start(HELLO).await;
    let bearer = format!("Bearer {TOKEN}");
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let response = post_mcp(
            &server.url,
            initialize(version),
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(response.status(), 200, "{version}");
        let session = header(&response, "mcp-session-id");
        let init = &messages(response).await[0]["result"];
        assert_eq!(init["protocolVersion"], version);
        assert_eq!(init["serverInfo"]["name"], "wasimancer");
        assert_eq!(init["capabilities"]["tools"]["listChanged"], true);
        let text = init.to_string();
        assert!(
            !text.contains(TOKEN),
            "the token never appears in responses"
        );

        let headers = [
            ("authorization", bearer.as_str()),
            ("mcp-session-id", session.as_str()),
            ("mcp-protocol-version", version),
        ];
        let initialized =
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        assert_eq!(
            post_mcp(&server.url, initialized, &headers).await.status(),
            202
        );

        let pong = messages(post_mcp(&server.url, rpc(2, "ping", json!({})), &headers).await).await;
        assert_eq!(pong[0]["id"], 2);
        assert_eq!(pong[0]["result"], json!({}), "{version}");

        let list =
            messages(post_mcp(&server.url, rpc(3, "tools/list", json!({})), &headers).await).await;
        assert_eq!(list[0]["result"]["tools"][0]["name"], "say_hello");

        let called = messages(
            post_mcp(
                &server.url,
                rpc(
                    4,
                    "tools/call",
                    json!({"name": "say_hello", "arguments": {"name": version}}),
                ),
                &headers,
            )
            .await,
        )
        .await;
        assert_eq!(
            called[0]["result"]["content"][0]["text"],
            format!("Hello, {version}!")
        );
        assert_ne!(called[0]["result"]["isError"], true);
    }
}

#[tokio::test]
async fn protocol_2026_07_28_is_served_without_a_handshake() {
    let server = TestServer::start(HELLO).await;
    let bearer = format!("Bearer {TOKEN}");
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "1.0"}
    });
    // Every request stands alone: its version and capabilities in `_meta`,
    // its method (and tool name) repeated in headers for middleboxes.
    let send = |id: u64, method: &'static str, name: Option<&'static str>, mut params: Value| {
        params["_meta"] = meta.clone();
        let bearer = bearer.clone();
        let url = server.url.clone();
        async move {
            let mut headers = vec![
                ("authorization", bearer.as_str()),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", method),
            ];
            if let Some(name) = name {
                headers.push(("mcp-name", name));
            }
            messages(post_mcp(&url, rpc(id, method, params), &headers).await).await
        }
    };
    let discover = send(1, "server/discover", None, json!({})).await;
    let discovered = discover[0]["result"].to_string();
    assert!(discovered.contains("2026-07-28"), "{discover:?}");

    let list = send(2, "tools/list", None, json!({})).await;
    assert_eq!(
        list[0]["result"]["tools"][0]["name"], "say_hello",
        "{list:?}"
    );

    let called = send(
        3,
        "tools/call",
        Some("say_hello"),
        json!({"name": "say_hello", "arguments": {"name": "2026"}}),
    )
    .await;
    assert_eq!(
        called[0]["result"]["content"][0]["text"], "Hello, 2026!",
        "{called:?}"
    );
}

#[tokio::test]
async fn wasimancer_scripts_work_without_initialize() {
    // tests/*.sh of WASImancer: no initialize, no session, a string id,
    // `grep "^data:"` on the answer, tools called by display name.
    let server = TestServer::start(HELLO).await;
    let mut events = server.events();
    let bearer = format!("Bearer {TOKEN}");
    let body = json!({
        "jsonrpc": "2.0",
        "id": "1",
        "method": "tools/call",
        "params": {"name": "say hello", "arguments": {"name": "Bob Morane"}}
    })
    .to_string();
    let response = post_mcp(&server.url, body, &[("authorization", &bearer)]).await;
    assert_eq!(response.status(), 200);
    let raw = response.text().await.unwrap();
    let data: Vec<Value> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(data.len(), 1, "{raw}");
    assert_eq!(data[0]["id"], "1");
    assert_eq!(
        data[0]["result"]["content"][0]["text"],
        "Hello, Bob Morane!"
    );
    // No session, no client name: not the name rmcp gives its stand-in.
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(
        record.source,
        wasimancer::events::CallSource::Mcp {
            client: None,
            session: None
        }
    );
}

/// A server whose sessions close after 500 ms without a request (and fall
/// asleep after `hibernate_after`), and a session on it that its client
/// initialized and then abandoned.
async fn an_abandoned_session(hibernate_after: Option<Duration>) -> (TestServer, String) {
    a_session_on(|s| {
        s.http.sessions.idle_timeout = Duration::from_millis(500);
        s.http.sessions.hibernate_after = hibernate_after;
    })
    .await
}

/// A session on a server whose sessions fall asleep after `after`.
async fn a_session_asleep_after(after: Duration) -> (TestServer, String) {
    a_session_on(|s| s.http.sessions.hibernate_after = Some(after)).await
}

/// A server serving HELLO with its settings changed by `adjust`, and a
/// session opened on it over plain HTTP.
async fn a_session_on(adjust: impl FnOnce(&mut Settings)) -> (TestServer, String) {
    let server = TestServer::start_with(HELLO, adjust).await;
    let session = open_session(&server).await;
    (server, session)
}

/// POST `body` in `session`; the status.
async fn ping_in(server: &TestServer, session: &str, body: String) -> u16 {
    post_in(server, session, body).await.status().as_u16()
}

/// How a call in a session is served.
#[derive(Clone, Copy)]
enum Route {
    /// A plain call: on the quick path, outside rmcp's session worker.
    Quick,
    /// With `_meta`: by the session's worker in rmcp.
    Rmcp,
}

/// Call `say_hello` for `name` in `session`, served by `route`: the greeting,
/// or a description of what came back instead.
async fn hello_in(
    server: &TestServer,
    session: &str,
    id: u64,
    name: &str,
    route: Route,
) -> Result<String, String> {
    let mut params = json!({"name": "say_hello", "arguments": {"name": name}});
    if let Route::Rmcp = route {
        params["_meta"] = json!({"note": "an unknown key sends the call through rmcp"});
    }
    let body = rpc(id, "tools/call", params);
    let response = post_in(server, session, body).await;
    let status = response.status();
    if status != 200 {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("status {status}: {text}"));
    }
    let answer = messages(response).await;
    answer
        .last()
        .and_then(|message| message["result"]["content"][0]["text"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no greeting in {answer:?}"))
}

/// Wait until `count` sessions of `server` are asleep.
async fn until_asleep(server: &TestServer, count: u64) {
    let operations = &server.server.operations;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while operations.sessions_asleep() != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} sessions never were asleep (now {})",
            operations.sessions_asleep()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_quiet_session_falls_asleep_and_a_request_for_rmcp_wakes_it() {
    let (server, session) = a_session_asleep_after(Duration::from_millis(50)).await;
    let operations = &server.server.operations;
    until_asleep(&server, 1).await;
    assert_eq!(operations.sessions(), 1, "asleep, still open");
    let mut events = server.events();
    let its_clients = wasimancer::events::CallSource::Mcp {
        client: Some("raw-http".into()),
        session: Some(session.as_str().into()),
    };

    // A plain call needs no worker: it is answered, the session sleeps on.
    assert_eq!(
        hello_in(&server, &session, 2, "Ada", Route::Quick).await,
        Ok("Hello, Ada!".to_string())
    );
    assert_eq!(
        (operations.sessions_asleep(), operations.sessions_woken()),
        (1, 0)
    );
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(record.source, its_clients);

    assert_eq!(
        hello_in(&server, &session, 3, "Bob Morane", Route::Rmcp).await,
        Ok("Hello, Bob Morane!".to_string())
    );
    assert_eq!(operations.sessions_woken(), 1);
    // Woken with its handshake: the call is still its client's.
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(record.source, its_clients);

    // Asleep again, a DELETE ends it for good.
    until_asleep(&server, 1).await;
    let bearer = format!("Bearer {TOKEN}");
    let deleted = reqwest::Client::new()
        .delete(&server.url)
        .header("authorization", &bearer)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        ping_in(&server, &session, rpc(3, "ping", json!({}))).await,
        404
    );
    assert_eq!(
        (operations.sessions(), operations.sessions_asleep()),
        (0, 0)
    );
}

/// Requests that come as their session falls asleep, several at once, are
/// answered like any other: the session wakes once, for all of those rmcp
/// serves, and the plain calls among them are answered asleep or awake.
#[tokio::test]
async fn calls_racing_their_session_falling_asleep_are_all_answered() {
    let (server, session) = a_session_asleep_after(Duration::from_millis(1)).await;
    let operations = &server.server.operations;
    let mut id = 1;
    for round in 0..400u64 {
        if operations.sessions_woken() >= 20 {
            break;
        }
        let calls = [Route::Quick, Route::Rmcp, Route::Quick, Route::Rmcp].map(|route| {
            id += 1;
            hello_in(&server, &session, id, "Bob", route)
        });
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(answer, Ok("Hello, Bob!".to_string()), "round {round}");
        }
        // Quiet for 0 to 15 ms: the sweep (every 10 ms) puts the session to
        // sleep now before, now during the next calls.
        tokio::time::sleep(Duration::from_millis(round % 16)).await;
    }
    assert!(
        operations.sessions_woken() >= 20,
        "the session fell asleep between calls {} times only",
        operations.sessions_woken()
    );
    assert_eq!(operations.sessions(), 1);
}

#[tokio::test]
async fn an_abandoned_session_is_closed_after_the_idle_timeout() {
    // Asleep by then: closing it forgets its handshake, or it would wake.
    let (server, session) = an_abandoned_session(Some(Duration::from_millis(100))).await;
    until_asleep(&server, 1).await;
    // Time passing is what is tested here: nothing to wait for but the timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ping = rpc(2, "ping", json!({}));
    assert_eq!(
        ping_in(&server, &session, ping).await,
        404,
        "the idle session is gone"
    );
    let operations = &server.server.operations;
    assert_eq!(
        (operations.sessions(), operations.sessions_asleep()),
        (0, 0)
    );
}

/// Notifications the server sends do not keep a session alive: only its
/// client does. A client that went away while plugins keep changing must
/// not leave its session (and everything it holds) behind for good.
#[tokio::test]
async fn an_abandoned_session_is_closed_even_while_tools_keep_changing() {
    let (server, session) = an_abandoned_session(None).await;
    // Tools change every 100 ms for 2 s: each change notifies the session.
    for _ in 0..20 {
        server
            .server
            .registry
            .reload_plugin("hello", "test")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ping = rpc(2, "ping", json!({}));
    assert_eq!(
        ping_in(&server, &session, ping).await,
        404,
        "the abandoned session is gone"
    );
}
