//! Authentication, the Host and Origin allow-lists, body limits, health.

use serde_json::json;
use wasimancer::http::{AllowList, Token};

use crate::common::*;

fn list_tools() -> String {
    rpc(1, "tools/list", json!({}))
}

#[tokio::test]
async fn mcp_needs_the_bearer_token() {
    let server = TestServer::start(HELLO).await;

    // A real client without a token, and with a wrong one, cannot connect.
    assert!(connect(&server.url, None).await.is_err());
    assert!(connect(&server.url, Some("wrong-token")).await.is_err());

    // What they were told.
    let missing = post_mcp(&server.url, list_tools(), &[]).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"wasimancer\""
    );
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let wrong = post_mcp(
        &server.url,
        list_tools(),
        &[("authorization", "Bearer test-token-0123456788")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let challenge = header(&wrong, "www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body = wrong.text().await.unwrap();
    assert!(!body.contains(TOKEN), "the token is never echoed");

    // The right token works, for a real client and for curl-style requests.
    let client = server.client().await;
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "Tok"})).await),
        "Hello, Tok!"
    );
    client.cancel().await.unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let right = post_mcp(&server.url, list_tools(), &[("authorization", &bearer)]).await;
    assert_eq!(right.status(), 200);
    let messages = messages(right).await;
    assert_eq!(messages[0]["result"]["tools"][0]["name"], "say_hello");
}

#[tokio::test]
async fn authentication_can_be_turned_off() {
    let server = TestServer::start_with(HELLO, |s| s.http.mcp_token = None).await;
    let client = connect(&server.url, None).await.expect("no token needed");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let server = TestServer::start(HELLO).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("authorization", bearer.as_str());

    let evil_origin = post_mcp(
        &server.url,
        list_tools(),
        &[auth, ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(evil_origin.status(), 403);
    let body = evil_origin.text().await.unwrap();
    assert!(
        body.contains("--allowed-origin http://evil.example"),
        "{body}"
    );

    let evil_host = post_mcp(&server.url, list_tools(), &[auth, ("host", "evil.example")]).await;
    assert_eq!(evil_host.status(), 403);
    assert!(
        evil_host
            .text()
            .await
            .unwrap()
            .contains("--allowed-host evil.example")
    );

    // Refused before authentication: a page cannot even probe for the token.
    let unauthenticated = post_mcp(
        &server.url,
        list_tools(),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(unauthenticated.status(), 403);

    // A local page (the MCP Inspector, say) may call.
    let local = post_mcp(
        &server.url,
        list_tools(),
        &[auth, ("origin", "http://localhost:6274")],
    )
    .await;
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn allow_lists_extend_to_named_hosts_and_origins() {
    let server = TestServer::start_with(HELLO, |s| {
        s.http.allow = AllowList {
            hosts: vec!["mcp.example.com".into()],
            origins: vec!["https://app.example.com".into()],
        };
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("authorization", bearer.as_str());
    let named = post_mcp(
        &server.url,
        list_tools(),
        &[
            auth,
            ("host", "mcp.example.com"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(named.status(), 200);
    let other = post_mcp(
        &server.url,
        list_tools(),
        &[auth, ("host", "other.example.com")],
    )
    .await;
    assert_eq!(other.status(), 403);
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let server = TestServer::start_with(HELLO, |s| {
        s.http.max_request_bytes = 4096;
        s.http.mcp_token = Some(Token::new(TOKEN));
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let big = rpc(
        1,
        "tools/call",
        json!({"name": "say_hello", "arguments": {"name": "x".repeat(10_000)}}),
    );
    let response = post_mcp(&server.url, big, &[("authorization", &bearer)]).await;
    assert_eq!(response.status(), 413);
    // The server is fine afterwards.
    let response = post_mcp(&server.url, list_tools(), &[("authorization", &bearer)]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn health_needs_no_token_and_reports_plugins() {
    let yaml = format!(
        "{HELLO}  - name: broken\n    path: missing/missing.wasm\n    functions:\n      - function: nothing\n"
    );
    let server = TestServer::start(&yaml).await;
    let health: serde_json::Value = reqwest::get(format!("http://{}/health", server.server.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["plugins"], json!({"loaded": 1, "failed": 1}));
    assert_eq!(health["tools"], 1);
}

#[tokio::test]
async fn a_host_that_is_not_text_is_refused_on_every_route() {
    let server = TestServer::start(HELLO).await;
    let host = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe.example").unwrap();
    let admin = reqwest::Client::new()
        .get(format!("{}/plugins", server.base()))
        .bearer_auth(ADMIN_TOKEN)
        .header("host", host.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 403);
    assert!(admin.text().await.unwrap().contains("not text"));
    let mcp = reqwest::Client::new()
        .post(&server.url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("host", host)
        .body(list_tools())
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 403);
}
