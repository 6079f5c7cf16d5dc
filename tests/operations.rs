//! The server's signals, through the real binary: SIGTERM drains (the call
//! in flight finishes and is answered, then the process exits 0), a second
//! signal stops at once, SIGHUP re-reads plugins.yml.

mod support;

use std::path::Path;

use serde_json::json;
use support::{GATED_PLUGINS, Gate, Headless, call_text, mcp_client, repo, wasimancer};

const TOKEN: &str = "operations-token-0123";

/// A headless server for the plugins.yml at `catalog`, with the repository's plugins.
fn headless(catalog: &Path) -> (Headless, String) {
    let catalog = catalog.to_str().unwrap();
    let plugins = repo().join("plugins");
    let mut server = Headless::start(&mut wasimancer(&[
        "serve",
        "--headless",
        "--port",
        "0",
        "--no-control-socket",
        "--plugins-dir",
        plugins.to_str().unwrap(),
        "--plugins-file",
        catalog,
        "--auth-token",
        TOKEN,
        "--admin-token",
        "NO_AUTHENTICATION",
    ]));
    let address = server.address();
    (server, format!("http://{address}"))
}

async fn ready_status(base: &str) -> u16 {
    reqwest::get(format!("{base}/ready"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugins.yml"), GATED_PLUGINS).unwrap();
    let (mut server, base) = headless(&dir.path().join("plugins.yml"));
    assert_eq!(ready_status(&base).await, 200);
    let client = mcp_client(&format!("{base}/mcp"), TOKEN, "drain-test").await;
    let mut gate = Gate::start().await;
    let url = gate.url.clone();
    let slow = tokio::spawn(async move {
        let text = call_text(&client, "wait_at_gate", json!({ "url": url })).await;
        let _ = client.cancel().await;
        text
    });
    gate.arrival().await;

    server.signal(libc::SIGTERM);
    server.wait_for("draining");
    assert_eq!(ready_status(&base).await, 503, "not ready while draining");
    assert!(server.running(), "the call in flight holds the server up");

    gate.open();
    assert_eq!(slow.await.unwrap(), "200 opened");
    let (status, output) = tokio::task::spawn_blocking(move || server.exit())
        .await
        .unwrap();
    assert!(status.success(), "exit 0 after a drain: {status}\n{output}");
    assert!(output.contains("every call in flight finished"), "{output}");
}

#[tokio::test]
async fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugins.yml"), GATED_PLUGINS).unwrap();
    let (mut server, base) = headless(&dir.path().join("plugins.yml"));
    let client = mcp_client(&format!("{base}/mcp"), TOKEN, "impatient").await;
    let mut gate = Gate::start().await;
    let url = gate.url.clone();
    let stuck = tokio::spawn(async move {
        let arguments = json!({ "url": url });
        let serde_json::Value::Object(arguments) = arguments else {
            unreachable!()
        };
        client
            .call_tool(
                rmcp::model::CallToolRequestParams::new("wait_at_gate").with_arguments(arguments),
            )
            .await
    });
    gate.arrival().await;
    server.signal(libc::SIGTERM);
    server.wait_for("draining");
    server.signal(libc::SIGINT);
    let (status, output) = tokio::task::spawn_blocking(move || server.exit())
        .await
        .unwrap();
    assert!(!status.success(), "a forced stop says so: {status}");
    assert!(output.contains("second stop signal"), "{output}");
    // The call at the gate never got an answer; its client would retry
    // its stream for a while, so it is not waited for.
    stuck.abort();
    gate.open();
}

#[tokio::test]
async fn sighup_rereads_plugins_yml() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("plugins.yml");
    std::fs::write(&catalog, "plugins: []\n").unwrap();
    let (mut server, base) = headless(&catalog);
    let client = mcp_client(&format!("{base}/mcp"), TOKEN, "hup").await;
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.into_iter().map(|t| t.name.to_string()).collect()
    };
    assert_eq!(
        names(client.list_all_tools().await.unwrap()),
        Vec::<String>::new()
    );
    std::fs::write(&catalog, GATED_PLUGINS).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for("reloaded on SIGHUP");
    assert_eq!(
        names(client.list_all_tools().await.unwrap()),
        ["wait_at_gate"]
    );
    client.cancel().await.unwrap();
    let output = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(output.contains("reloaded on SIGHUP"));
}
