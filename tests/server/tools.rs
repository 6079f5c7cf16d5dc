//! Every sample tool through a real MCP client, and what clients see of them.

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn tools_are_listed_with_names_titles_descriptions_and_schemas() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    assert_eq!(
        names,
        [
            "rollDice",
            "say_hello",
            "add",
            "read_config",
            "greet",
            "spin",
            "trap",
            "allocate",
            "huge_output",
            "fail",
            "work",
            "echo"
        ]
    );
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            !description.trim().is_empty(),
            "{} has no description",
            tool.name
        );
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
    }
    // The display name with a space becomes a valid name, kept as the title.
    let hello = tools.iter().find(|t| t.name == "say_hello").unwrap();
    assert_eq!(hello.title.as_deref(), Some("say hello"));
    let schema = Value::Object((*hello.input_schema).clone());
    assert_eq!(schema["properties"]["name"]["type"], "string");
    assert_eq!(schema["properties"]["name"]["description"], "who to greet");
    assert_eq!(schema["required"], json!(["name"]));
    // A function without a description gets one that says where it comes from.
    let spin = tools.iter().find(|t| t.name == "spin").unwrap();
    assert!(spin.description.as_deref().unwrap().contains("`faults`"));
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert!(
        echo.input_schema.get("required").is_none(),
        "text is optional"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn each_sample_tool_answers() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;

    let sum: u32 = ok_text(&call(&client, "rollDice", json!({"numFaces": 6, "numDice": 3})).await)
        .parse()
        .expect("rollDice returns a number");
    assert!((3..=18).contains(&sum), "3d6 gave {sum}");

    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "Bob"})).await),
        "Hello, Bob!"
    );
    // WASImancer clients call tools by display name.
    assert_eq!(
        ok_text(&call(&client, "say hello", json!({"name": "Ada"})).await),
        "Hello, Ada!"
    );

    let sum: Value = serde_json::from_str(&ok_text(
        &call(&client, "add", json!({"left": 40, "right": 2})).await,
    ))
    .unwrap();
    assert_eq!(sum, json!({"result": 42}));
    let sum: Value = serde_json::from_str(&ok_text(
        &call(&client, "add", json!({"left": 1.5, "right": 2})).await,
    ))
    .unwrap();
    assert_eq!(sum, json!({"result": 3.5}));

    // Config from plugins.yml, overridden by a WASM_* variable.
    assert_eq!(
        ok_text(&call(&client, "read_config", json!({"key": "answer"})).await),
        "42"
    );
    assert_eq!(
        ok_text(&call(&client, "greet", json!({"name": "Eve"})).await),
        "Howdy, Eve!"
    );
    let missing = error_text(&call(&client, "read_config", json!({"key": "nope"})).await);
    assert_eq!(missing, "config key `nope` is not set");

    // The plugin gets the arguments as a JSON string, declared keys in order.
    assert_eq!(
        ok_text(&call(&client, "echo", json!({"text": "hi"})).await),
        r#"{"text":"hi"}"#
    );
    assert_eq!(ok_text(&call(&client, "echo", json!({})).await), "{}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_arguments_are_refused_before_the_plugin_runs() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let mut events = server.events();
    let client = server.client().await;
    let message = error_text(&call(&client, "add", json!({"left": "one", "extra": true})).await);
    assert!(message.contains("`left` must be a number"), "{message}");
    assert!(
        message.contains("missing required argument `right`"),
        "{message}"
    );
    assert!(message.contains("unknown argument `extra`"), "{message}");
    assert!(
        message.contains("Expected {left: number, right: number}"),
        "{message}"
    );
    let message =
        error_text(&call(&client, "rollDice", json!({"numFaces": 6.5, "numDice": 1})).await);
    assert!(message.contains("must be an integer"), "{message}");
    // A call without arguments at all is checked the same way.
    let result = client
        .call_tool(CallToolRequestParams::new("say_hello"))
        .await
        .unwrap();
    assert!(error_text(&result).contains("missing required argument `name`"));

    let records = call_events(&mut events, 3).await;
    for record in records {
        assert!(matches!(
            record.status,
            wasimancer::events::CallStatus::Error {
                kind: wasimancer::runtime::FailureKind::InvalidArguments,
                ..
            }
        ));
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_unknown_tool_is_a_json_rpc_error() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    let error = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .expect_err("unknown tool");
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("expected a JSON-RPC error, got {error}");
    };
    assert_eq!(error.code.0, -32602);
    assert!(error.message.contains("unknown tool `no_such_tool`"));
    assert!(
        error.message.contains("rollDice"),
        "lists the tools: {}",
        error.message
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn plugin_errors_come_back_as_tool_errors() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    assert_eq!(
        error_text(&call(&client, "fail", json!({"message": "the input was odd"})).await),
        "the input was odd"
    );
    let dice = error_text(&call(&client, "rollDice", json!({"numFaces": 0, "numDice": 1})).await);
    assert!(
        dice.contains("numFaces must be an integer between 1"),
        "{dice}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn calls_are_recorded_with_source_tool_plugin_and_previews() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let mut events = server.events();
    let client = server.client().await;
    ok_text(&call(&client, "say hello", json!({"name": "Rec"})).await);
    let record = call_events(&mut events, 1).await.remove(0);
    assert_eq!(&*record.tool, "say_hello");
    assert_eq!(&*record.plugin, "hello");
    assert_eq!(record.arguments, r#"{"name":"Rec"}"#);
    let wasimancer::events::CallSource::Mcp {
        client: name,
        session,
    } = &record.source
    else {
        panic!("expected an MCP source, got {:?}", record.source);
    };
    assert_eq!(name.as_deref(), Some("wasimancer-tests"));
    assert!(session.is_some(), "the session is recorded");
    assert_eq!(
        record.status,
        wasimancer::events::CallStatus::Ok {
            preview: "Hello, Rec!".into()
        }
    );
    // The console can fetch the full payloads of a recent call.
    let detail = server.server.registry.call_detail(record.id).unwrap();
    assert_eq!(detail.output.as_deref(), Ok("Hello, Rec!"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn only_the_latest_call_details_are_kept() {
    use wasimancer::events::CallSource;

    let server = TestServer::start(HELLO).await;
    let registry = &server.server.registry;
    let arguments = json!({"name": "x"}).as_object().cloned();
    let mut ids = Vec::new();
    for _ in 0..1001 {
        let reply = registry
            .call(CallSource::Cli, "say_hello", arguments.clone())
            .await
            .unwrap();
        ids.push(reply.call_id);
    }
    assert!(
        registry.call_detail(ids[0]).is_none(),
        "the oldest is forgotten"
    );
    for id in [ids[1], ids[1000]] {
        let detail = registry.call_detail(id).expect("a recent call's details");
        assert_eq!(detail.id, id);
        assert_eq!(detail.output.as_deref(), Ok("Hello, x!"));
    }
}
