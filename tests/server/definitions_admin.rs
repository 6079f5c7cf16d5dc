//! The admin API for resources and prompts, with WASImancer's bucket scripts'
//! bodies; what it refuses; reloads and watch mode for resources.yml and
//! prompts.yml; and list_changed for sessions and `subscriptions/listen`.

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};
use wasimancer::events::Change;

use crate::common::*;

const RESOURCES: &str = "\
resources:
  static:
    - name: llm-instructions
      uri: llm://instructions
      contents:
        - text: you are a dungeon master.
";

const PROMPTS: &str = "\
prompts:
  predefined:
    - name: roll-dice
      arguments:
        - name: numFaces
          type: string
        - name: numDice
          type: string
      messages:
        - text: rool ${numDice} dice(s) of ${numFaces} sides.
          role: user
";

/// A server with one resource and one prompt, as WASImancer's samples have.
async fn start(adjust: impl FnOnce(&mut wasimancer::server::Settings)) -> TestServer {
    TestServer::start_with_files(
        HELLO,
        &[("resources.yml", RESOURCES), ("prompts.yml", PROMPTS)],
        adjust,
    )
    .await
}

/// JSON requests, as WASImancer's bucket scripts send them with curl.
impl Admin {
    /// Send `body` (raw text, as `curl -d`) with `token`.
    async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        self.request(method, path, token, |request| match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body),
            None => request,
        })
        .await
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send_as(method, path, Some(ADMIN_TOKEN), body.map(|b| b.to_string()))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::DELETE, path, None).await
    }
}

/// A request of the refusal table: method, path, token, body.
type Request<'a> = (reqwest::Method, &'a str, Option<&'a str>, Option<String>);

/// The bodies of WASImancer's bucket/*.sh scripts.
fn server_details(text: &str) -> Value {
    json!({
        "name": "server-details",
        "uri": "config://server-details",
        "contents": [{"text": text, "version": "1.0.0", "environment": "production"}]
    })
}

fn welcome_message() -> Value {
    json!({
        "name": "welcome-message",
        "uri": "message://{username}/{language}",
        "arguments": [
            {"name": "username", "type": "string"},
            {"name": "language", "type": "string"}
        ],
        "contents": [{"text": "Welcome ${username}! You selected ${language} as your preferred language."}]
    })
}

fn character_greeting(with_setting: bool) -> Value {
    let mut prompt = json!({
        "name": "character-greeting",
        "arguments": [
            {"name": "character", "type": "string"},
            {"name": "emotion", "type": "string"}
        ],
        "messages": [{"text": "Greet the user as ${character} feeling ${emotion}", "role": "user"}]
    });
    if with_setting {
        prompt["arguments"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "setting", "type": "string"}));
        prompt["messages"][0]["text"] =
            json!("Greet the user as ${character} feeling ${emotion} in a ${setting} setting");
    }
    prompt
}

#[tokio::test]
async fn wasimancer_bucket_scripts_work_unchanged_and_clients_are_told() {
    let server = start(|_| {}).await;
    let admin = Admin::new(&server);
    let (client, mut changes) = server.listening_client().await;
    let client = &client;
    let read = |uri: &'static str| async move {
        let read = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await?;
        Ok::<_, rmcp::service::ServiceError>(serde_json::to_value(read).unwrap())
    };

    // add-resource.sh
    let (status, body) = admin
        .post(
            "/add-resource",
            server_details("Server configuration details"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "Resource server-details added successfully"
    );
    assert_eq!(body["resource"]["name"], "server-details");
    assert_eq!(next_list_change(&mut changes).await, Changed::Resources);
    let details = read("config://server-details").await.unwrap();
    assert_eq!(
        details["contents"][0]["text"],
        "Server configuration details"
    );
    assert_eq!(details["contents"][0]["_meta"]["environment"], "production");
    let resources_yml = server.root().join("resources.yml");
    assert_eq!(
        std::fs::read_to_string(server.root().join("resources.yml.bak")).unwrap(),
        RESOURCES,
        "the previous resources.yml is kept"
    );

    // add-dynamic-resource.sh
    let (status, body) = admin.post("/add-resource", welcome_message()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "dynamic");
    assert_eq!(next_list_change(&mut changes).await, Changed::Resources);
    let welcome = read("message://Bob/French").await.unwrap();
    assert_eq!(
        welcome["contents"][0]["text"],
        "Welcome Bob! You selected French as your preferred language."
    );

    // update-resource.sh
    let mut updated = server_details("Updated server configuration details");
    updated["contents"][0]["updatedAt"] = json!("2025-03-12");
    let (status, body) = admin.put("/update-resource/server-details", updated).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["oldType"], &body["newType"]),
        (&json!("static"), &json!("static"))
    );
    let details = read("config://server-details").await.unwrap();
    assert_eq!(
        details["contents"][0]["text"],
        "Updated server configuration details"
    );

    // remove-resource.sh, remove-dynamic-resource.sh
    let (status, body) = admin.delete("/remove-resource/server-details").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "Resource server-details removed successfully"
    );
    assert_eq!(body["type"], "static");
    assert_eq!(next_list_change(&mut changes).await, Changed::Resources);
    let (status, _) = admin.delete("/remove-resource/welcome-message").await;
    assert_eq!(status, 200);
    let (code, _) = rpc_error(read("config://server-details").await.unwrap_err());
    assert_eq!(code, -32002);
    let yaml = std::fs::read_to_string(&resources_yml).unwrap();
    assert!(
        yaml.contains("llm-instructions") && !yaml.contains("server-details"),
        "{yaml}"
    );

    // add-prompt.sh, update-prompt.sh, remove-prompt.sh
    let (status, body) = admin.post("/add-prompt", character_greeting(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "Prompt character-greeting added successfully"
    );
    assert_eq!(body["prompt"]["name"], "character-greeting");
    let next = next_list_change(&mut changes).await;
    let next = if next == Changed::Resources {
        next_list_change(&mut changes).await
    } else {
        next
    };
    assert_eq!(next, Changed::Prompts);
    let (status, body) = admin
        .put(
            "/update-prompt/character-greeting",
            character_greeting(true),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "Prompt character-greeting updated successfully"
    );
    let arguments = json!({"character": "a knight", "emotion": "brave", "setting": "castle"});
    let rendered = client
        .get_prompt(
            GetPromptRequestParams::new("character-greeting")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        rendered.messages[0].content.as_text().unwrap().text,
        "Greet the user as a knight feeling brave in a castle setting"
    );
    let (status, body) = admin.delete("/remove-prompt/character-greeting").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "Prompt character-greeting removed successfully"
    );
    let prompts = client.list_all_prompts().await.unwrap();
    assert_eq!(prompts.len(), 1);

    let (status, list) = admin.json(reqwest::Method::GET, "/resources", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["resources"][0]["entry"]["name"], "llm-instructions");
    assert_eq!(list["resources"][0]["line"], 3);
}

#[tokio::test]
async fn refused_definition_requests_change_nothing() {
    let server = start(|_| {}).await;
    let admin = Admin::new(&server);
    let before = files(server.root());
    use reqwest::Method;

    let good = server_details("details").to_string();
    let with = |key: &str, value: Value| {
        let mut body = server_details("details");
        body[key] = value;
        body
    };
    let prompt_with = |key: &str, value: Value| {
        let mut body = character_greeting(false);
        body[key] = value;
        body
    };
    let cases: Vec<(&str, u16, &str, Request)> = vec![
        (
            "no token",
            401,
            "Authorization: Bearer",
            (Method::POST, "/add-resource", None, Some(good.clone())),
        ),
        (
            "wrong token",
            401,
            "not valid",
            (
                Method::POST,
                "/add-prompt",
                Some("nope"),
                Some(good.clone()),
            ),
        ),
        (
            "not JSON",
            400,
            "as JSON",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some("{name: x".into()),
            ),
        ),
        (
            "no uri",
            400,
            "missing field `uri`",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(json!({"name": "x", "contents": [{"text": "t"}]}).to_string()),
            ),
        ),
        (
            "unknown key",
            400,
            "unknown field `content`",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(json!({"name": "x", "uri": "a://b", "content": []}).to_string()),
            ),
        ),
        (
            "no contents",
            400,
            "needs `contents`",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(with("contents", json!([])).to_string()),
            ),
        ),
        (
            "template beyond level 1",
            400,
            "operator `?`",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(with("uri", json!("search://{?q}")).to_string()),
            ),
        ),
        (
            "argument not in the template",
            400,
            "arguments[1]: argument `lang` is not a variable",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some({
                    let mut body = welcome_message();
                    body["arguments"][1]["name"] = json!("lang");
                    body.to_string()
                }),
            ),
        ),
        (
            "duplicate name",
            409,
            "already exists",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(with("name", json!("llm-instructions")).to_string()),
            ),
        ),
        (
            "duplicate URI",
            409,
            "is already served by",
            (
                Method::POST,
                "/add-resource",
                Some(ADMIN_TOKEN),
                Some(with("uri", json!("llm://instructions")).to_string()),
            ),
        ),
        (
            "name in URL and body differ",
            400,
            "they must match",
            (
                Method::PUT,
                "/update-resource/other",
                Some(ADMIN_TOKEN),
                Some(good.clone()),
            ),
        ),
        (
            "update of an unknown resource",
            404,
            "`server-details` is not in",
            (
                Method::PUT,
                "/update-resource/server-details",
                Some(ADMIN_TOKEN),
                Some(good.clone()),
            ),
        ),
        (
            "remove of an unknown resource",
            404,
            "resource `nothing` is not in",
            (
                Method::DELETE,
                "/remove-resource/nothing",
                Some(ADMIN_TOKEN),
                None,
            ),
        ),
        (
            "prompt without messages",
            400,
            "at least one message",
            (
                Method::POST,
                "/add-prompt",
                Some(ADMIN_TOKEN),
                Some(prompt_with("messages", json!([])).to_string()),
            ),
        ),
        (
            "prompt with a system message",
            400,
            "`user` or `assistant`",
            (
                Method::POST,
                "/add-prompt",
                Some(ADMIN_TOKEN),
                Some(prompt_with("messages", json!([{"text": "t", "role": "system"}])).to_string()),
            ),
        ),
        (
            "duplicate prompt",
            409,
            "already exists",
            (
                Method::POST,
                "/add-prompt",
                Some(ADMIN_TOKEN),
                Some(prompt_with("name", json!("roll-dice")).to_string()),
            ),
        ),
        (
            "update of an unknown prompt",
            404,
            "prompt `character-greeting` is not in",
            (
                Method::PUT,
                "/update-prompt/character-greeting",
                Some(ADMIN_TOKEN),
                Some(character_greeting(false).to_string()),
            ),
        ),
        (
            "remove of an unknown prompt",
            404,
            "`nothing` is not in",
            (
                Method::DELETE,
                "/remove-prompt/nothing",
                Some(ADMIN_TOKEN),
                None,
            ),
        ),
    ];
    let count = cases.len();
    for (what, status, says, (method, path, token, body)) in cases {
        let (got, answer) = admin.send_as(method, path, token, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert!(answer.to_string().contains(says), "{what}: {answer}");
        assert_eq!(files(server.root()), before, "{what}: files changed");
    }
    assert_eq!(count, 18);

    // resources.yml broken on disk: no edit is made on top of it.
    std::fs::write(server.root().join("resources.yml"), "resources: [\n").unwrap();
    let broken = files(server.root());
    let (status, answer) = admin.post("/add-resource", server_details("x")).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("on disk is invalid"),
        "{answer}"
    );
    assert_eq!(files(server.root()), broken);
    assert_eq!(server.server.registry.resources().resources.len(), 1);
}

#[tokio::test]
async fn reload_and_watch_read_the_files_again() {
    let server = start(|s| s.watch = true).await;
    let admin = Admin::new(&server);
    let mut events = server.events();
    let (client, mut changes) = server.listening_client().await;

    // An edit by hand, applied by watch mode.
    let resources_yml = server.root().join("resources.yml");
    std::fs::write(
        &resources_yml,
        RESOURCES.replace("you are a dungeon master.", "you are a bard."),
    )
    .unwrap();
    let message = wait_for_change(&mut events, Change::Replaced).await;
    assert!(message.contains("1 resource and 0 templates"), "{message}");
    let read = client
        .read_resource(ReadResourceRequestParams::new("llm://instructions"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(read).unwrap()["contents"][0]["text"],
        "you are a bard."
    );

    // An invalid prompts.yml is refused whole; the previous prompts keep serving.
    std::fs::write(
        server.root().join("prompts.yml"),
        PROMPTS.replace("role: user", "role: system"),
    )
    .unwrap();
    let message = wait_for_change(&mut events, Change::Failed).await;
    assert!(message.contains("line 11"), "{message}");
    let (status, body) = admin.json(reqwest::Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["definitions"][1]["change"], "failed", "{body}");
    assert_eq!(client.list_all_prompts().await.unwrap().len(), 1);

    // A new resource by hand, then POST /reload: clients are told.
    std::fs::write(
        &resources_yml,
        format!(
            "{RESOURCES}  dynamic:\n    - name: echo\n      uri: echo://{{message}}\n      contents:\n        - text: ${{message}}\n"
        ),
    )
    .unwrap();
    // Watch mode may apply it first; either way clients are told once.
    let (status, body) = admin.json(reqwest::Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{body}");
    loop {
        if next_list_change(&mut changes).await == Changed::Resources
            && client.list_all_resource_templates().await.unwrap().len() == 1
        {
            break;
        }
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn subscriptions_listen_delivers_resource_and_prompt_changes_for_2026_07_28() {
    let server = start(|_| {}).await;
    let admin = Admin::new(&server);
    let mut subscription = Subscription::open(
        &server,
        json!({"resourcesListChanged": true, "promptsListChanged": true}),
    )
    .await;
    subscription
        .wait_for("notifications/subscriptions/acknowledged")
        .await;
    let (status, body) = admin.post("/add-resource", welcome_message()).await;
    assert_eq!(status, 200, "{body}");
    subscription
        .wait_for("notifications/resources/list_changed")
        .await;
    let (status, body) = admin.post("/add-prompt", character_greeting(false)).await;
    assert_eq!(status, 200, "{body}");
    subscription
        .wait_for("notifications/prompts/list_changed")
        .await;
}
