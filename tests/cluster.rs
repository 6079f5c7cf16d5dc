//! Several replicas as one service, with the real components: redis-server
//! and nginx (the Debian packages; `.ci/run` installs them) on free loopback
//! ports, nginx running `contrib/nginx/wasimancer.conf` in front of three
//! replicas of the real binary that share one plugins folder. A real MCP
//! client (rmcp) talks to nginx only.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster::{Nginx, PATIENCE, Redis};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use serde_json::{Value, json};
use support::{Headless, mcp_client, plugins_folder, repo, wasimancer};

const TOKEN: &str = "cluster-token-0123";
const ADMIN_TOKEN: &str = "cluster-admin-0123";

const PLUGINS: &str = r#"
plugins:
  - name: hello
    path: hello/hello.wasm
    wasi: false
    functions:
      - displayName: say hello
        function: say_hello
        arguments:
          - name: name
            type: string
"#;

async fn wait_until_async<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !ready().await {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One replica on the shared folder and Redis; its address once it serves.
fn replica(plugins: &Path, redis: &str) -> (Headless, String) {
    let mut server = Headless::start(
        wasimancer(&["serve", "--headless", "--port", "0", "--no-control-socket"])
            .arg("--plugins-dir")
            .arg(plugins)
            .arg("--plugins-file")
            .arg(plugins.join("plugins.yml"))
            .args(["--auth-token", TOKEN, "--admin-token", ADMIN_TOKEN])
            .args(["--session-store", redis]),
    );
    let address = server.address();
    (server, address)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// An admin request (with the admin token) to `url`.
async fn admin(method: reqwest::Method, url: String) -> reqwest::Response {
    http()
        .request(method, url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// The tool calls a replica has answered (its /metrics).
async fn calls_answered(address: &str) -> u64 {
    let text = admin(reqwest::Method::GET, format!("http://{address}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("wasimancer_tool_calls_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The plugins a replica (or nginx) lists: name and digest.
async fn plugins_listed(base: &str) -> Vec<(String, String)> {
    let body: Value = admin(reqwest::Method::GET, format!("{base}/plugins"))
        .await
        .json()
        .await
        .unwrap();
    body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// One `say hello` call; whether it was answered as it should be.
async fn greet(client: &RunningService<RoleClient, ClientConfig>, tool: &str) -> bool {
    let Value::Object(arguments) = json!({ "name": "cluster" }) else {
        unreachable!()
    };
    match client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
    {
        Ok(result) => result
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .any(|t| t.text.contains("cluster")),
        Err(_) => false,
    }
}

/// Open a session with a bare `initialize` on one replica; its id.
async fn raw_initialize(address: &str) -> (u16, Option<String>) {
    let response = raw_post(
        address,
        None,
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "raw", "version": "1" }
            }
        }),
    )
    .await;
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status().as_u16();
    let _ = response.text().await;
    (status, id)
}

async fn raw_post(address: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = http()
        .post(format!("http://{address}/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_nginx_serve_as_one() {
    // The shared plugins folder is dir/plugins.
    let dir = plugins_folder(PLUGINS);
    let mut redis = Redis::start(dir.path());
    let plugins = dir.path().join("plugins");
    let mut replicas: Vec<(Headless, String)> =
        (0..3).map(|_| replica(&plugins, &redis.url())).collect();
    let addresses: Vec<String> = replicas.iter().map(|(_, a)| a.clone()).collect();
    let nginx = Nginx::start(dir.path(), &addresses);

    // A client initialized on one replica keeps working wherever its
    // requests land: 100 calls, every one answered, on every replica.
    let client = mcp_client(&format!("{}/mcp", nginx.url()), TOKEN, "cluster-test").await;
    let mut failures = 0;
    for _ in 0..100 {
        if !greet(&client, "say hello").await {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "calls through nginx that failed");
    for address in &addresses {
        assert!(
            calls_answered(address).await > 0,
            "replica {address} answered none of the calls"
        );
    }

    // An upload through nginx reaches every replica.
    let hello = std::fs::read(plugins.join("hello/hello.wasm")).unwrap();
    let greeter = json!({
        "name": "greeter",
        "path": "bucket/greeter.wasm",
        "wasi": false,
        "functions": [{
            "displayName": "greet",
            "function": "say_hello",
            "arguments": [{ "name": "name", "type": "string" }]
        }]
    });
    let form = reqwest::multipart::Form::new()
        .part(
            "wasmFile",
            reqwest::multipart::Part::bytes(hello).file_name("greeter.wasm"),
        )
        .text("pluginData", greeter.to_string());
    let uploaded = Instant::now();
    let response = http()
        .post(format!("{}/upload-plugin", nginx.url()))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    for address in &addresses {
        let base = format!("http://{address}");
        wait_until_async(&format!("{address} lists the upload"), || async {
            plugins_listed(&base)
                .await
                .iter()
                .any(|(name, _)| name == "greeter")
        })
        .await;
    }
    eprintln!(
        "the upload was listed by all replicas after {:?}",
        uploaded.elapsed()
    );
    let mut digests = Vec::new();
    for address in &addresses {
        digests.push(plugins_listed(&format!("http://{address}")).await);
    }
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "replicas agree on plugins and digests: {digests:?}"
    );
    assert!(digests[0].iter().all(|(_, digest)| digest.len() == 16));
    for _ in 0..6 {
        assert!(greet(&client, "greet").await, "the uploaded tool answers");
    }

    // Redis stops: the sessions every replica holds keep working, and a new
    // session works on the replica that opened it; one opened elsewhere
    // cannot be restored, and the answer says why.
    redis.stop();
    for _ in 0..10 {
        assert!(greet(&client, "say hello").await, "known sessions go on");
    }
    let (status, session) = raw_initialize(&addresses[0]).await;
    assert_eq!(status, 200, "a new session opens without Redis");
    let session = session.expect("a session id");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let accepted = raw_post(&addresses[0], Some(&session), initialized).await;
    assert_eq!(accepted.status(), 202);
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let here = raw_post(&addresses[0], Some(&session), list.clone()).await;
    assert_eq!(
        here.status(),
        200,
        "the new session works where it was opened"
    );
    assert!(here.text().await.unwrap().contains("say hello"));
    let elsewhere = raw_post(&addresses[1], Some(&session), list).await;
    assert_eq!(elsewhere.status(), 500);
    let said = elsewhere.text().await.unwrap();
    assert!(
        said.contains("session store is unreachable") && said.contains("Redis"),
        "{said}"
    );

    // Redis is back: new sessions work on every replica again, and plugin
    // changes travel again.
    redis.restart();
    wait_until_async("a new client works through nginx again", || async {
        let fresh = mcp_client(&format!("{}/mcp", nginx.url()), TOKEN, "after-redis").await;
        let mut ok = true;
        for _ in 0..6 {
            ok &= greet(&fresh, "say hello").await;
        }
        let _ = fresh.cancel().await;
        ok
    })
    .await;
    let response = admin(
        reqwest::Method::DELETE,
        format!("{}/remove-plugin/greeter", nginx.url()),
    )
    .await;
    assert_eq!(response.status(), 200);
    for address in &addresses {
        let base = format!("http://{address}");
        wait_until_async(&format!("{address} drops the removed plugin"), || async {
            !plugins_listed(&base)
                .await
                .iter()
                .any(|(name, _)| name == "greeter")
        })
        .await;
    }

    // A replica killed under load costs only the calls it had in flight.
    let concurrency = 4;
    let client = Arc::new(client);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..concurrency {
        let (client, stop, failed, answered) = (
            Arc::clone(&client),
            Arc::clone(&stop),
            Arc::clone(&failed),
            Arc::clone(&answered),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let counter = if greet(&client, "say hello").await {
                    &answered
                } else {
                    &failed
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    wait_until_async("the load runs", || async {
        answered.load(Ordering::SeqCst) >= 20
    })
    .await;
    let (mut victim, _) = replicas.remove(2);
    victim.signal(libc::SIGKILL);
    let _ = victim.exit();
    let at_kill = answered.load(Ordering::SeqCst);
    wait_until_async("the others keep serving", || async {
        answered.load(Ordering::SeqCst) >= at_kill + 60
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    // A call that was in flight on the killed replica never gets its answer
    // (rmcp's client waits on the cut stream): it is one of the lost calls.
    let mut lost = 0;
    for mut task in load {
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(finished) => finished.unwrap(),
            Err(_) => {
                task.abort();
                lost += 1;
            }
        }
    }
    let failed = failed.load(Ordering::SeqCst) + lost;
    assert!(
        failed <= concurrency,
        "{failed} calls failed: more than the {concurrency} that could be in flight"
    );
    for _ in 0..20 {
        assert!(
            greet(&client, "say hello").await,
            "after the kill, every call is answered"
        );
    }

    // A replica started now reads the folder as it is.
    let (_late, late) = replica(&plugins, &redis.url());
    let listed = plugins_listed(&format!("http://{late}")).await;
    assert_eq!(
        listed,
        digests[0]
            .iter()
            .filter(|(n, _)| n != "greeter")
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_kubernetes_example_is_valid_yaml_with_what_it_promises() {
    let text = std::fs::read_to_string(repo().join("contrib/k8s/wasimancer.yaml")).unwrap();
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("valid YAML"))
        .filter(|document: &Value| !document.is_null())
        .collect();
    let kind = |kind: &str, name: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("a {kind} named {name}"))
    };
    let deployment = kind("Deployment", "wasimancer");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    let env = container["env"].as_array().unwrap();
    let variable = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"))
    };
    assert!(
        variable("WASIMANCER_SESSION_STORE")["value"]
            .as_str()
            .unwrap()
            .starts_with("redis://wasimancer-redis:")
    );
    assert_eq!(
        variable("WASIMANCER_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"]["name"],
        "wasimancer-tokens"
    );
    let claim = &pod["volumes"][0]["persistentVolumeClaim"]["claimName"];
    assert_eq!(
        kind("PersistentVolumeClaim", claim.as_str().unwrap())["spec"]["accessModes"][0],
        "ReadWriteMany"
    );
    kind("Service", "wasimancer");
    kind("Service", "wasimancer-redis");
    kind("Deployment", "wasimancer-redis");
}
