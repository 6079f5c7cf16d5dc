//! Prompts through a real MCP client: WASImancer's prompts.yml served
//! unchanged, arguments checked and inserted as plain text, completion of
//! prompt arguments and template variables, and the call records of renders.

use rmcp::model::{GetPromptRequestParams, PromptMessage, Role};
use serde_json::{Map, Value, json};
use wasimancer::events::{CallKind, CallStatus};

use crate::common::*;

/// WASImancer's own prompts/prompts.yml.
const WASIMANCER_PROMPTS: &str = include_str!("../fixtures/wasimancer/prompts.yml");

/// A prompt with what WASImancer's lack: a description, an optional
/// argument, values to complete.
const ROLL_DICE: &str = "    - name: roll-dice
      description: Ask for a roll of dice
      arguments:
        - name: numFaces
          type: integer
          values: [4, 6, 8, 10, 12, 20]
        - name: mood
          required: false
      messages:
        - text: Roll dice with ${numFaces} faces${mood}.
          role: user

";

/// A template whose variable declares values to complete.
const RESOURCES: &str = "\
resources:
  dynamic:
    - name: greeting
      uri: greeting://{name}/{language}
      arguments:
        - name: language
          values: [English, Esperanto, French]
      contents:
        - text: Hello ${name}, in ${language}
";

fn arguments(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn text(message: &PromptMessage) -> &str {
    &message.content.as_text().expect("a text message").text
}

#[tokio::test]
async fn wasimancer_prompts_are_listed_rendered_and_completed() {
    let server = TestServer::start_with_files(
        HELLO,
        &[
            (
                "prompts.yml",
                &WASIMANCER_PROMPTS.replace("# TODO", &format!("{ROLL_DICE}# TODO")),
            ),
            ("resources.yml", RESOURCES),
        ],
        |_| {},
    )
    .await;
    let mut events = server.events();
    let client = server.client().await;
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.capabilities.prompts.as_ref().unwrap().list_changed,
        Some(true)
    );
    assert!(info.capabilities.completions.is_some());

    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["greet-user", "code-analyst", "roll-dice"]);
    let roll = &prompts[2];
    assert_eq!(roll.description.as_deref(), Some("Ask for a roll of dice"));
    let required: Vec<Option<bool>> = roll
        .arguments
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.required)
        .collect();
    assert_eq!(required, [Some(true), Some(false)]);

    let get = |name: &str, given: Value| {
        client.get_prompt(GetPromptRequestParams::new(name).with_arguments(arguments(given)))
    };
    let greet = get("greet-user", json!({"nickName": "Bob"})).await.unwrap();
    assert_eq!(greet.messages[0].role, Role::User);
    assert_eq!(text(&greet.messages[0]), "Say hello to Bob!");
    let analyst = get(
        "code-analyst",
        json!({"botName": "Bot", "code": "x = ${botName}"}),
    )
    .await
    .unwrap();
    assert_eq!(analyst.messages[0].role, Role::Assistant);
    assert_eq!(
        text(&analyst.messages[1]),
        "Analyze my source code: x = ${botName}",
        "a value goes in as plain text"
    );
    let roll = get("roll-dice", json!({"numFaces": "20"})).await.unwrap();
    assert_eq!(text(&roll.messages[0]), "Roll dice with 20 faces.");

    for (name, given, says) in [
        (
            "greet-user",
            json!({}),
            "missing required argument `nickName`",
        ),
        (
            "greet-user",
            json!({"nickName": "Bob", "nickname": "typo"}),
            "unknown argument `nickname`",
        ),
        (
            "roll-dice",
            json!({"numFaces": "many"}),
            "`numFaces` must be an integer, got `many`",
        ),
        ("nowhere", json!({}), "unknown prompt `nowhere`"),
    ] {
        let (code, message) = rpc_error(get(name, given).await.unwrap_err());
        assert_eq!(code, -32602, "{message}");
        assert!(message.contains(says), "{says}: {message}");
    }

    let values = client
        .complete_prompt_simple("roll-dice", "numFaces", "1")
        .await
        .unwrap();
    assert_eq!(values, ["10", "12"]);
    let values = client
        .complete_resource_simple("greeting://{name}/{language}", "language", "e")
        .await
        .unwrap();
    assert_eq!(values, ["English", "Esperanto"]);
    let none = client
        .complete_resource_simple("greeting://{name}/{language}", "name", "")
        .await
        .unwrap();
    assert!(none.is_empty(), "no values declared for `name`");
    let (code, message) = rpc_error(
        client
            .complete_prompt_simple("roll-dice", "numDice", "")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, -32602);
    assert!(message.contains("no argument `numDice`"), "{message}");

    // Renders are recorded as calls of kind `prompt`, failures too.
    let calls = call_events(&mut events, 7).await;
    assert!(calls.iter().all(|c| c.kind == CallKind::Prompt));
    assert_eq!(&*calls[0].tool, "greet-user");
    assert_eq!(calls[0].arguments, r#"{"nickName":"Bob"}"#);
    let CallStatus::Ok { preview } = &calls[0].status else {
        panic!("the first render succeeded");
    };
    assert!(preview.contains("Say hello to Bob!"), "{preview}");
    assert!(!calls[3].status.is_ok());
    client.cancel().await.unwrap();
}
