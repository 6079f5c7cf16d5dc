//! The admin API and watch mode: plugins uploaded, replaced, removed and
//! reloaded while clients use the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use wasimancer::events::Change;

use crate::common::*;

/// HELLO plus the addition plugin, as an operator would add it by hand.
fn with_addition() -> String {
    format!(
        "{HELLO}  - name: addition
    path: addition/addition.wasm
    wasi: false
    functions:
      - function: add
        arguments:
          - name: left
            type: number
          - name: right
            type: number
"
    )
}

fn hello_wasm() -> Vec<u8> {
    std::fs::read(repo_plugins().join("hello/hello.wasm")).unwrap()
}

fn hello_v2_wasm() -> Vec<u8> {
    std::fs::read(repo_plugins().join("hello/hello-v2.wasm")).unwrap()
}

/// A plugins.yml entry as the admin API takes it.
fn greeter(path: &str) -> Value {
    json!({
        "name": "greeter",
        "path": path,
        "version": "1.0.0",
        "description": "greets",
        "wasi": false,
        "functions": [{
            "displayName": "greet someone",
            "function": "say_hello",
            "arguments": [{"name": "name", "type": "string", "description": "who"}]
        }]
    })
}

/// Multipart uploads, as WASImancer's scripts send them.
impl Admin {
    fn form(module: Option<(&str, Vec<u8>)>, data: Option<String>) -> reqwest::multipart::Form {
        let mut form = reqwest::multipart::Form::new();
        if let Some((name, bytes)) = module {
            form = form.part(
                "wasmFile",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        if let Some(data) = data {
            form = form.text("pluginData", data);
        }
        form
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        form: Option<reqwest::multipart::Form>,
    ) -> (u16, Value) {
        self.request(method, path, token, |request| match form {
            Some(form) => request.multipart(form),
            None => request,
        })
        .await
    }

    async fn upload(
        &self,
        path: &str,
        module: Option<(&str, Vec<u8>)>,
        data: Option<String>,
    ) -> (u16, Value) {
        let form = Self::form(module, data);
        self.send(reqwest::Method::POST, path, Some(ADMIN_TOKEN), Some(form))
            .await
    }

    async fn update(&self, module: Option<(&str, Vec<u8>)>, data: Value) -> (u16, Value) {
        let form = Self::form(module, Some(data.to_string()));
        self.send(
            reqwest::Method::PUT,
            "/update-plugin",
            Some(ADMIN_TOKEN),
            Some(form),
        )
        .await
    }

    async fn remove(&self, name: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/remove-plugin/{name}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn upload_call_and_remove_with_clients_told_each_time() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let (client, mut changes) = server.listening_client().await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);

    let data = greeter("bucket/greeter.wasm").to_string();
    let (status, body) = admin
        .upload(
            "/upload-plugin",
            Some(("greeter.wasm", hello_wasm())),
            Some(data),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "File uploaded successfully");
    assert!(
        body["filePath"]
            .as_str()
            .unwrap()
            .ends_with("plugins/bucket/greeter.wasm")
    );
    assert_eq!(body["metadata"]["name"], "greeter");
    assert_eq!(body["plugin"]["state"], "loaded");
    assert_eq!(next_list_change(&mut changes).await, Changed::Tools);

    let module = server.root().join("plugins/bucket/greeter.wasm");
    assert_eq!(std::fs::read(&module).unwrap(), hello_wasm());
    let yaml = std::fs::read_to_string(server.root().join("plugins.yml")).unwrap();
    assert!(yaml.contains("name: greeter"), "{yaml}");
    assert_eq!(
        std::fs::read_to_string(server.root().join("plugins.yml.bak")).unwrap(),
        HELLO,
        "the previous plugins.yml is kept"
    );
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "greet_someone"));
    let result = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("greet_someone")
                .with_arguments(json!({"name": "Up"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(ok_text(&result), "Hello, Up!");

    let (status, body) = admin.remove("greeter").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Plugin removed successfully");
    assert_eq!(body["moduleDeleted"], true);
    assert_eq!(next_list_change(&mut changes).await, Changed::Tools);
    assert!(!module.exists(), "the uploaded module is deleted");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().all(|t| t.name != "greet_someone"));
    let yaml = std::fs::read_to_string(server.root().join("plugins.yml")).unwrap();
    assert!(!yaml.contains("greeter"), "{yaml}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn wasimancer_publish_scripts_work_unchanged() {
    // bucket/calc/publish.sh: path ./bucket/…, ?dir= named from the working
    // directory, pretty-printed JSON in pluginData.
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let data = serde_json::to_string_pretty(&json!({
        "name": "calc",
        "path": "./bucket/calc.wasm",
        "version": "1.0.0",
        "description": "calculator",
        "functions": [{
            "displayName": "add numbers",
            "function": "add",
            "arguments": [
                {"name": "left", "type": "number", "description": "first number"},
                {"name": "right", "type": "number", "description": "second number"}
            ],
            "description": "add two numbers"
        }]
    }))
    .unwrap();
    let addition = std::fs::read(repo_plugins().join("addition/addition.wasm")).unwrap();
    let (status, body) = admin
        .upload(
            "/upload-plugin?dir=./plugins/bucket",
            Some(("calc.wasm", addition)),
            Some(data),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(server.root().join("plugins/bucket/calc.wasm").is_file());
    let client = server.client().await;
    assert_eq!(
        ok_text(&call(&client, "add numbers", json!({"left": 2, "right": 3})).await),
        r#"{"result":5}"#
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refused_requests_change_nothing_on_disk_or_in_the_server() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let before = files(server.root());
    let tools_before = server.server.registry.snapshot().tools.len();
    let good = greeter("bucket/greeter.wasm").to_string();
    let faults = std::fs::read(repo_plugins().join("faults/faults.wasm")).unwrap();

    struct Case {
        what: &'static str,
        status: u16,
        says: &'static str,
    }
    let mut checked = 0;
    let mut check = |case: Case, (status, body): (u16, Value)| {
        assert_eq!(status, case.status, "{}: {body}", case.what);
        let text = body.to_string();
        assert!(text.contains(case.says), "{}: {text}", case.what);
        assert_eq!(files(server.root()), before, "{}: files changed", case.what);
        checked += 1;
    };

    let form = || Admin::form(Some(("greeter.wasm", hello_wasm())), Some(good.clone()));
    check(
        Case {
            what: "no token",
            status: 401,
            says: "Authorization: Bearer",
        },
        admin
            .send(reqwest::Method::POST, "/upload-plugin", None, Some(form()))
            .await,
    );
    check(
        Case {
            what: "wrong token",
            status: 401,
            says: "not valid",
        },
        admin
            .send(
                reqwest::Method::POST,
                "/upload-plugin",
                Some("nope"),
                Some(form()),
            )
            .await,
    );
    check(
        Case {
            what: "pluginData not JSON",
            status: 400,
            says: "not JSON",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some("{name: greeter".into()),
            )
            .await,
    );
    check(
        Case {
            what: "pluginData without functions",
            status: 400,
            says: "missing field `functions`",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some(json!({"name": "greeter", "path": "bucket/g.wasm"}).to_string()),
            )
            .await,
    );
    check(
        Case {
            what: "pluginData with a typo",
            status: 400,
            says: "timeout_sm",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some({
                    let mut data = greeter("bucket/greeter.wasm");
                    data["timeout_sm"] = json!(10);
                    data.to_string()
                }),
            )
            .await,
    );
    check(
        Case {
            what: "no pluginData",
            status: 400,
            says: "pluginData",
        },
        admin
            .upload("/upload-plugin", Some(("greeter.wasm", hello_wasm())), None)
            .await,
    );
    check(
        Case {
            what: "no file",
            status: 400,
            says: "wasmFile",
        },
        admin
            .upload("/upload-plugin", None, Some(good.clone()))
            .await,
    );
    check(
        Case {
            what: "not wasm",
            status: 422,
            says: "not a WebAssembly module",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", b"#!/bin/sh\necho hi\n".to_vec())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "declared function missing",
            status: 422,
            says: "exports are: allocate",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", faults.clone())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "duplicate name",
            status: 409,
            says: "already exists",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("hello.wasm", hello_wasm())),
                Some({
                    let mut data = greeter("bucket/hello.wasm");
                    data["name"] = json!("hello");
                    data.to_string()
                }),
            )
            .await,
    );
    check(
        Case {
            what: "duplicate tool name",
            status: 409,
            says: "already taken",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some({
                    let mut data = greeter("bucket/greeter.wasm");
                    data["functions"][0]["displayName"] = json!("say hello");
                    data.to_string()
                }),
            )
            .await,
    );
    check(
        Case {
            what: "path with ..",
            status: 400,
            says: "plugins folder",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some(greeter("../../evil.wasm").to_string()),
            )
            .await,
    );
    check(
        Case {
            what: "path outside the upload folder",
            status: 400,
            says: "outside the upload folder",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some(greeter("hello/greeter.wasm").to_string()),
            )
            .await,
    );
    check(
        Case {
            what: "path not ending in .wasm",
            status: 400,
            says: "end it with .wasm",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", hello_wasm())),
                Some(greeter("bucket/greeter.sh").to_string()),
            )
            .await,
    );
    check(
        Case {
            what: "dir escaping",
            status: 400,
            says: "`dir`",
        },
        admin
            .upload(
                "/upload-plugin?dir=../../etc",
                Some(("greeter.wasm", hello_wasm())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "dir outside the upload folder",
            status: 400,
            says: "outside the upload folder",
        },
        admin
            .upload(
                "/upload-plugin?dir=hello",
                Some(("greeter.wasm", hello_wasm())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "file name escaping",
            status: 400,
            says: "plain file name",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("../../evil.wasm", hello_wasm())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "file name not .wasm",
            status: 400,
            says: "plain file name",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.exe", hello_wasm())),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "oversize",
            status: 413,
            says: "too large",
        },
        admin
            .upload(
                "/upload-plugin",
                Some(("greeter.wasm", vec![0u8; 3 * 1024 * 1024])),
                Some(good.clone()),
            )
            .await,
    );
    check(
        Case {
            what: "update of an unknown plugin",
            status: 404,
            says: "not in",
        },
        admin
            .update(
                Some(("greeter.wasm", hello_wasm())),
                greeter("bucket/greeter.wasm"),
            )
            .await,
    );
    check(
        Case {
            what: "update with a bad module",
            status: 422,
            says: "not a WebAssembly module",
        },
        admin
            .update(
                Some(("hello.wasm", b"nope".to_vec())),
                json!({
                    "name": "hello", "path": "bucket/hello.wasm", "wasi": false,
                    "functions": [{"displayName": "say hello", "function": "say_hello",
                        "arguments": [{"name": "name", "type": "string"}]}]
                }),
            )
            .await,
    );
    check(
        Case {
            what: "remove of an unknown plugin",
            status: 404,
            says: "`nobody` is not in",
        },
        admin.remove("nobody").await,
    );
    check(
        Case {
            what: "remove with a path in the name",
            status: 404,
            says: "is not in",
        },
        admin.remove("..%2F..%2Fplugins.yml").await,
    );
    assert_eq!(checked, 23);
    assert_eq!(server.server.registry.snapshot().tools.len(), tools_before);
}

#[tokio::test]
async fn nothing_is_written_through_a_link_that_leaves_the_plugins_folder() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let outside = tempfile::tempdir().unwrap();
    let bucket = server.root().join("plugins/bucket");
    std::os::unix::fs::symlink(outside.path(), bucket.join("escape")).unwrap();
    let admin = Admin::new(&server);
    let (status, body) = admin
        .upload(
            "/upload-plugin",
            Some(("greeter.wasm", hello_wasm())),
            Some(greeter("bucket/escape/sub/greeter.wasm").to_string()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("outside the plugins folder"),
        "{body}"
    );
    let created: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(created.is_empty(), "written outside: {created:?}");
}

#[tokio::test]
async fn update_replaces_the_module_and_list_shows_the_state() {
    let yaml = format!(
        "{HELLO}  - name: broken\n    path: gone/gone.wasm\n    functions:\n      - function: nothing\n"
    );
    let server = TestServer::start_in_copy(&yaml, |_| {}).await;
    let admin = Admin::new(&server);
    let (status, body) = admin
        .upload(
            "/upload-plugin",
            Some(("greeter.wasm", hello_wasm())),
            Some(greeter("bucket/greeter.wasm").to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let client = server.client().await;
    assert_eq!(
        ok_text(&call(&client, "greet_someone", json!({"name": "A"})).await),
        "Hello, A!"
    );
    let (status, body) = admin
        .update(
            Some(("greeter.wasm", hello_v2_wasm())),
            greeter("bucket/greeter.wasm"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ok_text(&call(&client, "greet_someone", json!({"name": "B"})).await),
        "Bonjour, B!"
    );
    // Metadata only: a new description, the module kept.
    let mut data = greeter("bucket/greeter.wasm");
    data["functions"][0]["description"] = json!("greets in French");
    let (status, body) = admin.update(None, data).await;
    assert_eq!(status, 200, "{body}");
    let tools = client.list_all_tools().await.unwrap();
    let tool = tools.iter().find(|t| t.name == "greet_someone").unwrap();
    assert_eq!(tool.description.as_deref(), Some("greets in French"));

    let (status, list) = admin
        .send(reqwest::Method::GET, "/plugins", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 200);
    let plugins = list["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "broken", "greeter"]);
    assert_eq!(plugins[0]["state"], "loaded");
    assert_eq!(plugins[0]["functions"][0]["tool"], "say_hello");
    assert_eq!(plugins[0]["limits"]["timeout_ms"], 10000);
    assert_eq!(plugins[1]["state"], "failed");
    let error = plugins[1]["error"].as_str().unwrap();
    assert!(
        error.contains("line 11") && error.contains("does not exist"),
        "{error}"
    );
    assert_eq!(plugins[2]["version"], "1.0.0");
    client.cancel().await.unwrap();
}

/// An HTTP request made from a thread and runtime of its own, so that it
/// answers even while the server's only async worker is stuck.
fn request_from_a_thread(method: reqwest::Method, url: String) -> std::sync::mpsc::Receiver<u16> {
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = runtime.block_on(async {
            let response = reqwest::Client::new()
                .request(method, url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        });
        let _ = sender.send(status);
    });
    answer
}

/// plugins.yml as a named pipe: reading it blocks until this test writes it.
/// The server has one async worker; if it read the file on that worker, it
/// could serve nothing else until the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_slow_plugins_yml_never_holds_up_the_async_worker() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let server = TestServer::start(HELLO).await;
    let catalog = server.root().join("plugins.yml");
    std::fs::remove_file(&catalog).unwrap();
    let c_path = std::ffi::CString::new(catalog.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let reload = request_from_a_thread(reqwest::Method::POST, format!("{}/reload", server.base()));
    // Opening the pipe to write without blocking succeeds once the reload
    // has it open to read: from then on the reload waits for our write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pipe = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&catalog)
        {
            Ok(pipe) => break pipe,
            Err(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the reload never read plugins.yml"
                );
                std::thread::yield_now();
            }
        }
    };
    let health = request_from_a_thread(reqwest::Method::GET, format!("{}/health", server.base()));
    let answered = health.recv_timeout(std::time::Duration::from_secs(20));
    // Let the reload finish whatever happened.
    pipe.write_all(HELLO.as_bytes()).unwrap();
    drop(pipe);
    assert_eq!(answered, Ok(200), "/health waited for the reload's read");
    assert_eq!(
        reload.recv_timeout(std::time::Duration::from_secs(30)),
        Ok(200)
    );
}

#[tokio::test]
async fn reload_applies_plugins_yml_edits_and_keeps_serving_on_failure() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let catalog = server.root().join("plugins.yml");
    // Add a plugin by editing the file, then ask for a reload.
    let added = with_addition();
    std::fs::write(&catalog, &added).unwrap();
    let (status, body) = admin
        .send(reqwest::Method::POST, "/reload", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["summary"], "1 added, 1 unchanged");
    // A broken module for hello: the old version keeps serving.
    std::fs::write(server.root().join("plugins/hello/hello.wasm"), b"broken").unwrap();
    let (_, body) = admin
        .send(reqwest::Method::POST, "/reload", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(body["ok"], false, "{body}");
    assert!(
        body["summary"].as_str().unwrap().contains("keeps serving"),
        "{body}"
    );
    let client = server.client().await;
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "Old"})).await),
        "Hello, Old!"
    );
    // An invalid plugins.yml is refused whole.
    std::fs::write(&catalog, "plugins:\n  - name: [\n").unwrap();
    let (status, body) = admin
        .send(reqwest::Method::POST, "/reload", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line"), "{body}");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 2);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn two_uploads_at_once_both_land_in_plugins_yml() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Arc::new(Admin::new(&server));
    let mut uploads = Vec::new();
    for name in ["one", "two", "three", "four"] {
        let admin = Arc::clone(&admin);
        uploads.push(tokio::spawn(async move {
            let mut data = greeter(&format!("bucket/{name}.wasm"));
            data["name"] = json!(name);
            data["functions"][0]["displayName"] = json!(format!("greet {name}"));
            admin
                .upload(
                    "/upload-plugin",
                    Some((&format!("{name}.wasm"), hello_wasm())),
                    Some(data.to_string()),
                )
                .await
        }));
    }
    for upload in uploads {
        let (status, body) = upload.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let yaml = std::fs::read_to_string(server.root().join("plugins.yml")).unwrap();
    for name in ["one", "two", "three", "four"] {
        assert!(
            yaml.contains(&format!("name: {name}")),
            "{name} lost:\n{yaml}"
        );
    }
    assert_eq!(server.server.registry.snapshot().tools.len(), 5);
}

#[tokio::test]
async fn twenty_replacements_under_load_fail_no_call() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let (status, body) = admin
        .upload(
            "/upload-plugin",
            Some(("greeter.wasm", hello_wasm())),
            Some(greeter("bucket/greeter.wasm").to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for caller in 0..8 {
        let client = server.client().await;
        let stop = Arc::clone(&stop);
        callers.push(tokio::spawn(async move {
            let (mut english, mut french) = (0, 0);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let name = format!("c{caller}n{i}");
                let text = ok_text(&call(&client, "greet_someone", json!({ "name": name })).await);
                if text == format!("Hello, {name}!") {
                    english += 1;
                } else if text == format!("Bonjour, {name}!") {
                    french += 1;
                } else {
                    panic!("wrong answer: {text}");
                }
            }
            client.cancel().await.unwrap();
            (english, french)
        }));
    }
    for round in 0..20 {
        let module = if round % 2 == 0 {
            hello_v2_wasm()
        } else {
            hello_wasm()
        };
        let (status, body) = admin
            .update(
                Some(("greeter.wasm", module)),
                greeter("bucket/greeter.wasm"),
            )
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    stop.store(true, Ordering::SeqCst);
    let (mut english, mut french) = (0, 0);
    for caller in callers {
        let (e, f) = caller.await.expect("every call was answered correctly");
        english += e;
        french += f;
    }
    assert!(
        english > 0 && french > 0,
        "both versions answered: {english} / {french}"
    );
}

#[tokio::test]
async fn subscriptions_listen_delivers_list_changed_for_2026_07_28() {
    let server = TestServer::start_in_copy(HELLO, |_| {}).await;
    let admin = Admin::new(&server);
    let mut subscription = Subscription::open(&server, json!({"toolsListChanged": true})).await;
    subscription
        .wait_for("notifications/subscriptions/acknowledged")
        .await;
    let (status, body) = admin
        .upload(
            "/upload-plugin",
            Some(("greeter.wasm", hello_wasm())),
            Some(greeter("bucket/greeter.wasm").to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    subscription
        .wait_for("notifications/tools/list_changed")
        .await;
}

#[tokio::test]
async fn watch_mode_reloads_what_changes_on_disk() {
    let server = TestServer::start_in_copy(HELLO, |s| s.watch = true).await;
    let mut events = server.events();
    let client = server.client().await;
    // A new module copied over the old one.
    let module = server.root().join("plugins/hello/hello.wasm");
    std::fs::write(&module, hello_v2_wasm()).unwrap();
    wait_for_change(&mut events, Change::Replaced).await;
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "W"})).await),
        "Bonjour, W!"
    );
    // A half-written module: refused, the previous version keeps serving.
    std::fs::write(&module, &hello_wasm()[..1000]).unwrap();
    let message = wait_for_change(&mut events, Change::Failed).await;
    assert!(message.contains("keeps serving"), "{message}");
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "X"})).await),
        "Bonjour, X!"
    );
    // plugins.yml edited: a plugin added.
    let catalog = server.root().join("plugins.yml");
    std::fs::write(&module, hello_wasm()).unwrap();
    wait_for_change(&mut events, Change::Replaced).await;
    let added = with_addition();
    std::fs::write(&catalog, added).unwrap();
    wait_for_change(&mut events, Change::Added).await;
    assert_eq!(
        ok_text(&call(&client, "add", json!({"left": 1, "right": 1})).await),
        r#"{"result":2}"#
    );
    // An invalid plugins.yml changes nothing.
    std::fs::write(&catalog, "plugins: [oops\n").unwrap();
    let message = wait_for_change(&mut events, Change::Failed).await;
    assert!(message.contains("not applied"), "{message}");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 2);
    client.cancel().await.unwrap();
}

/// On a network filesystem the kernel does not report changes, so watch mode
/// polls; `watch_poll` forces that here, on a local folder.
#[tokio::test]
async fn watch_mode_by_polling_reloads_what_changes_on_disk() {
    let server = TestServer::start_in_copy(HELLO, |s| {
        s.watch = true;
        s.watch_poll = Some(std::time::Duration::from_millis(100));
    })
    .await;
    let mut events = server.events();
    let client = server.client().await;
    let module = server.root().join("plugins/hello/hello.wasm");
    std::fs::write(&module, hello_v2_wasm()).unwrap();
    wait_for_change(&mut events, Change::Replaced).await;
    assert_eq!(
        ok_text(&call(&client, "say_hello", json!({"name": "P"})).await),
        "Bonjour, P!"
    );
    std::fs::write(server.root().join("plugins.yml"), with_addition()).unwrap();
    wait_for_change(&mut events, Change::Added).await;
    assert_eq!(
        ok_text(&call(&client, "add", json!({"left": 2, "right": 3})).await),
        r#"{"result":5}"#
    );
    client.cancel().await.unwrap();
}
