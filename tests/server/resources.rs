//! Resources through a real MCP client: WASImancer's resources.yml served
//! unchanged, templates, errors by protocol version, resources computed by
//! plugins under their limits, and the call records of every read.

use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};
use wasimancer::events::{CallKind, CallStatus};
use wasimancer::runtime::FailureKind;

use crate::common::*;

/// WASImancer's own resources/resources.yml, shape for shape.
const WASIMANCER_RESOURCES: &str = include_str!("../fixtures/wasimancer/resources.yml");

/// The texts of a read.
fn texts(contents: &[ResourceContents]) -> Vec<String> {
    contents
        .iter()
        .map(|c| match c {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn wasimancer_resources_are_listed_and_read() {
    let server =
        TestServer::start_with_files(HELLO, &[("resources.yml", WASIMANCER_RESOURCES)], |_| {})
            .await;
    let mut events = server.events();
    let client = server.client().await;
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.capabilities.resources.as_ref().unwrap().list_changed,
        Some(true)
    );
    assert!(info.capabilities.prompts.is_none(), "no prompts.yml");

    let resources = client.list_all_resources().await.unwrap();
    let listed: Vec<(&str, &str)> = resources
        .iter()
        .map(|r| (r.name.as_str(), r.uri.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("server-info", "config://server"),
            ("k33g-org-info", "info://k33g-org")
        ]
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    let listed: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        listed,
        ["echo://{message}", "greet-user://{firstName}/{lastName}"]
    );

    let read = |uri: &str| client.read_resource(ReadResourceRequestParams::new(uri));
    let server_info = read("config://server").await.unwrap();
    assert_eq!(
        texts(&server_info.contents),
        ["🚀 This is WASImancer [preview], running on MCP!"]
    );
    // WASImancer copies an item's other keys beside its text; MCP content has
    // a fixed shape, so they come in `_meta`.
    let k33g = serde_json::to_value(read("info://k33g-org").await.unwrap()).unwrap();
    assert_eq!(k33g["contents"][0]["uri"], "info://k33g-org");
    assert_eq!(k33g["contents"][0]["_meta"]["lastName"], "Charrière");
    assert_eq!(k33g["contents"][1]["text"], "🎉 tada!");

    let echo = read("echo://hello%20world").await.unwrap();
    assert_eq!(texts(&echo.contents), ["Resource echo: hello world"]);
    // A value is inserted as plain text: `${lastName}` in it stays as sent.
    let greet = read("greet-user://%24%7BlastName%7D/Lovelace")
        .await
        .unwrap();
    assert_eq!(
        texts(&greet.contents),
        [
            "Say 👋 to ${lastName}!",
            "Say 🖖 to Lovelace!",
            "🤗 hello ${lastName} Lovelace!"
        ]
    );

    let (code, message) = rpc_error(read("echo://a/b").await.unwrap_err());
    assert_eq!(code, -32002, "resource not found before 2026-07-28");
    assert!(message.contains("no resource at `echo://a/b`"), "{message}");
    assert!(message.contains("echo://{message}"), "{message}");

    // Every read is a call record of kind `resource`.
    let calls = call_events(&mut events, 5).await;
    assert!(calls.iter().all(|c| c.kind == CallKind::Resource));
    let names: Vec<&str> = calls.iter().map(|c| &*c.tool).collect();
    assert_eq!(
        names,
        [
            "server-info",
            "k33g-org-info",
            "echo",
            "greet-user",
            "echo://a/b"
        ]
    );
    let arguments: Value = serde_json::from_str(&calls[2].arguments).unwrap();
    assert_eq!(
        arguments,
        json!({"uri": "echo://hello%20world", "variables": {"message": "hello world"}})
    );
    assert!(matches!(
        &calls[4].status,
        CallStatus::Error {
            kind: FailureKind::UnknownResource,
            ..
        }
    ));
    assert!(
        calls[0]
            .source
            .to_string()
            .starts_with("mcp:wasimancer-tests")
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn without_resources_yml_nothing_is_advertised_or_served() {
    let server = TestServer::start(HELLO).await;
    let client = server.client().await;
    let info = client.peer_info().unwrap();
    assert!(info.capabilities.resources.is_none());
    assert!(info.capabilities.prompts.is_none());
    assert!(info.capabilities.completions.is_none());
    let (code, _) = rpc_error(client.list_resources(None).await.unwrap_err());
    assert_eq!(code, -32601, "method not found");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_unknown_uri_is_invalid_params_for_2026_07_28() {
    let server =
        TestServer::start_with_files(HELLO, &[("resources.yml", WASIMANCER_RESOURCES)], |_| {})
            .await;
    let bearer = format!("Bearer {TOKEN}");
    let read = |id: u64, uri: &'static str| {
        let body = rpc(
            id,
            "resources/read",
            json!({
                "uri": uri,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "1.0"}
                }
            }),
        );
        let bearer = bearer.clone();
        let url = server.url.clone();
        async move {
            let headers = [
                ("authorization", bearer.as_str()),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "resources/read"),
                ("mcp-name", uri),
            ];
            messages(post_mcp(&url, body, &headers).await).await
        }
    };
    let found = read(1, "echo://hi").await;
    assert_eq!(
        found[0]["result"]["contents"][0]["text"], "Resource echo: hi",
        "{found:?}"
    );
    let missing = read(2, "nowhere://x").await;
    assert_eq!(missing[0]["error"]["code"], -32602, "{missing:?}");
    assert_eq!(missing[0]["error"]["data"]["uri"], "nowhere://x");
}

/// Resources computed by plugin functions, beside the hello and faults plugins.
const COMPUTED: &str = "\
resources:
  dynamic:
    - name: greeting
      uri: hello://{name}
      description: computed by the hello plugin
      plugin: hello
      function: say_hello
    - name: echo
      uri: echo://{text}/{count}
      mimeType: application/json
      arguments:
        - name: count
          type: integer
      plugin: faults
      function: echo
    - name: endless
      uri: spin://{anything}
      plugin: faults
      function: spin
    - name: not-json
      uri: not-json://{name}
      mimeType: application/json
      plugin: hello
      function: say_hello
    - name: orphan
      uri: orphan://{x}
      plugin: nobody
      function: nothing
";

fn hello_and_faults() -> String {
    format!(
        "{HELLO}  - name: faults
    path: faults/faults.wasm
    wasi: false
    timeout_ms: 300
    instances: 2
    functions:
      - function: spin
"
    )
}

#[tokio::test]
async fn computed_resources_run_the_plugin_under_its_limits() {
    let server =
        TestServer::start_with_files(&hello_and_faults(), &[("resources.yml", COMPUTED)], |_| {})
            .await;
    let mut events = server.events();
    let client = server.client().await;
    let read = |uri: &str| client.read_resource(ReadResourceRequestParams::new(uri));

    let greeting = read("hello://Ada").await.unwrap();
    assert_eq!(texts(&greeting.contents), ["Hello, Ada!"]);

    // The template variables reach the plugin as a JSON object, typed as declared.
    let echo = serde_json::to_value(read("echo://hi/3").await.unwrap()).unwrap();
    let content = &echo["contents"][0];
    assert_eq!(content["mimeType"], "application/json");
    let input: Value = serde_json::from_str(content["text"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"text": "hi", "count": 3}));

    let (code, message) = rpc_error(read("echo://hi/three").await.unwrap_err());
    assert_eq!(code, -32602);
    assert!(
        message.contains("`count` must be an integer, got `three`"),
        "{message}"
    );

    let (code, message) = rpc_error(read("spin://x").await.unwrap_err());
    assert_eq!(code, -32603);
    assert!(message.contains("300"), "the timeout is named: {message}");
    // The instance that timed out is replaced: the next read works.
    assert_eq!(
        texts(&read("echo://again/1").await.unwrap().contents),
        [r#"{"count":1,"text":"again"}"#]
    );

    let (_, message) = rpc_error(read("not-json://x").await.unwrap_err());
    assert!(message.contains("not JSON"), "{message}");
    let (_, message) = rpc_error(read("orphan://x").await.unwrap_err());
    assert!(
        message.contains("plugin `nobody`, which is not loaded"),
        "{message}"
    );

    let calls = call_events(&mut events, 7).await;
    let spin = &calls[3];
    assert_eq!(
        (spin.kind, &*spin.tool, &*spin.plugin),
        (CallKind::Resource, "endless", "faults")
    );
    assert!(matches!(
        &spin.status,
        CallStatus::Error {
            kind: FailureKind::Timeout,
            ..
        }
    ));
    assert_eq!(&*calls[0].plugin, "hello");
    assert!(calls[0].status.is_ok());
    assert!(matches!(
        &calls[2].status,
        CallStatus::Error {
            kind: FailureKind::InvalidArguments,
            ..
        }
    ));
    client.cancel().await.unwrap();
}
