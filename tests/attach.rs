//! Consoles attaching to a server that runs on its own: the binary started
//! with `serve --headless` as a service would run it, consoles attaching
//! through its control socket or its admin HTTP side with the same client
//! code `wasimancer console` uses, and MCP clients calling it meanwhile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio_util::codec::Framed;
use wasimancer::control::protocol::FrameCodec;
use wasimancer::control::transport::Transport;
use wasimancer::control::{ConnectError, Frame, Reply, Request, Target, Update, Welcome, connect};
use wasimancer::events::{CallSource, CallStatus, ServerEvent};

mod support;

use support::{Headless, call_text, mcp_client, wasimancer};

const TOKEN: &str = "attach-test-token-0123456789";
const ADMIN_TOKEN: &str = "attach-admin-token-0123456789";
/// How long a console waits for news it expects.
const DEADLINE: Duration = Duration::from_secs(30);

/// A headless server with its control socket in a private temp folder.
struct Server {
    process: Headless,
    address: String,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp folder");
        let socket = dir.path().join("control").join("wasimancer.sock");
        let mut process = Headless::start(
            wasimancer(&["serve", "--headless", "--port", "0"])
                .arg("--control-socket")
                .arg(&socket)
                .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
                .env("WASIMANCER_ADMIN_TOKEN", ADMIN_TOKEN),
        );
        let address = process.address();
        process.wait_for("consoles attach");
        Self {
            process,
            address,
            socket,
            _dir: dir,
        }
    }

    fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.address)
    }
}

/// A console attached through the protocol, as `wasimancer console` is.
struct Console {
    transport: Transport,
    welcome: Box<Welcome>,
    next_id: u64,
    /// Updates read but not waited for yet.
    backlog: Vec<Update>,
}

impl Console {
    async fn attach(target: &Target) -> Self {
        let (welcome, transport) = connect(target).await.expect("the console attaches");
        Self {
            transport,
            welcome,
            next_id: 1,
            backlog: Vec::new(),
        }
    }

    /// The first update, already read or still to come, that satisfies
    /// `wanted`; fail after [`DEADLINE`].
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&Update) -> bool) -> Update {
        let read = async {
            loop {
                if let Some(found) = self.backlog.iter().position(&wanted) {
                    return self.backlog.remove(found);
                }
                match self.transport.recv().await {
                    Some(Ok(Frame::Updates { updates })) => self.backlog.extend(updates),
                    Some(Ok(_)) => {}
                    other => panic!("the connection ended while waiting for {what}: {other:?}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }

    /// Ask the server and wait for the reply (updates meanwhile are skipped).
    async fn ask(&mut self, request: Request) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        self.transport
            .send(Frame::Request { id, request })
            .await
            .expect("the request leaves");
        let read = async {
            loop {
                match self.transport.recv().await {
                    Some(Ok(Frame::Reply {
                        id: answered,
                        reply,
                    })) if answered == id => {
                        return reply;
                    }
                    Some(Ok(Frame::Updates { updates })) => self.backlog.extend(updates),
                    Some(Ok(_)) => {}
                    other => panic!("the connection ended before the reply: {other:?}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("a reply within the deadline")
    }
}

/// An update that is a call of `tool` from a source of kind `source`.
fn is_call(update: &Update, tool: &str, source: &str) -> bool {
    matches!(update, Update::Event { event } if matches!(&**event,
        ServerEvent::Call(call) if &*call.tool == tool && call.source.kind() == source))
}

#[test]
fn two_consoles_see_every_call_call_and_reload_and_one_leaves_without_harm() {
    let mut server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let target = Target::Socket(server.socket.clone());
        let mut first = Console::attach(&target).await;
        let mut second = Console::attach(&target).await;
        for console in [&first, &second] {
            let names: Vec<&str> = console.welcome.plugins.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["roll-dice", "hello", "addition", "config-reader"]);
            assert_eq!(console.welcome.server.pid, server.process.child.id());
            assert!(console.welcome.server.mcp_token.as_deref().is_some_and(|m| m.contains('•')));
        }

        // An MCP client's call shows in both consoles.
        let client = mcp_client(&server.mcp_url(), TOKEN, "attach-test").await;
        let text = call_text(&client, "say_hello", json!({"name": "both"})).await;
        assert_eq!(text, "Hello, both!");
        for console in [&mut first, &mut second] {
            let update = console
                .wait_for("the MCP call", |u| is_call(u, "say_hello", "mcp"))
                .await;
            let Update::Event { event } = update else { unreachable!() };
            let ServerEvent::Call(call) = &*event else { unreachable!() };
            assert_eq!(call.status, CallStatus::Ok { preview: "Hello, both!".into() });
            assert!(matches!(&call.source, CallSource::Mcp { client: Some(name), .. } if &**name == "attach-test"));
        }

        // The first console calls a tool; both see it, as a console call.
        let reply = first
            .ask(Request::Call {
                tool: "add".into(),
                arguments: json!({"left": 40, "right": 2}).as_object().cloned().unwrap(),
            })
            .await;
        let Reply::Called { result: Ok(called) } = reply else {
            panic!("expected a call's output, got {reply:?}");
        };
        assert_eq!(called.output.readable(), r#"{"result":42}"#);
        second
            .wait_for("the console's call", |u| is_call(u, "add", "console"))
            .await;
        let detail = second.ask(Request::CallDetail { call: called.call_id }).await;
        assert!(
            matches!(&detail, Reply::CallDetail { detail: Some(d) } if d.arguments.contains("40")),
            "{detail:?}"
        );

        // A reload from the first console: nothing changed, and it says so.
        let reply = first.ask(Request::ReloadAll).await;
        let Reply::Reloaded { result: Ok(report) } = reply else {
            panic!("expected a reload report, got {reply:?}");
        };
        assert_eq!(report.summary(), "4 unchanged");
        let reply = first.ask(Request::ReloadPlugin { plugin: "hello".into() }).await;
        assert!(matches!(reply, Reply::Reloaded { result: Ok(_) }), "{reply:?}");
        second
            .wait_for("the new plugins after reloading hello", |u| matches!(u, Update::Plugins { .. }))
            .await;

        // The first console leaves; the server keeps serving the client and the other console.
        drop(first);
        let text = call_text(&client, "say_hello", json!({"name": "after"})).await;
        assert_eq!(text, "Hello, after!");
        second
            .wait_for("the call after the first console left", |u| {
                matches!(u, Update::Event { event } if matches!(&**event,
                    ServerEvent::Call(call) if call.status == CallStatus::Ok { preview: "Hello, after!".into() }))
            })
            .await;
        second
            .wait_for("the server's note that a console detached", |u| {
                matches!(u, Update::Log { lines } if lines.iter().any(|l| l.contains("console detached")))
            })
            .await;
        client.cancel().await.expect("the MCP client closes");
    });
    assert!(server.process.running(), "detaching never stops the server");
    let log = server.process.stop();
    assert!(
        !server.socket.exists(),
        "the socket goes with the server:\n{log}"
    );
}

/// A console reads resources and renders prompts as an MCP client would,
/// and sees them in the call log by kind.
#[test]
fn a_console_reads_a_computed_resource_and_renders_a_prompt() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut console = Console::attach(&Target::Socket(server.socket.clone())).await;
        // The repository's sample resources.yml and prompts.yml, beside plugins.yml.
        let resources: Vec<&str> = console.welcome.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(resources, ["llm-instructions", "greet-user", "dice"]);
        let dice = console.welcome.resources[2].clone();
        assert_eq!(dice.computed_by, Some(("roll-dice".into(), "rollDice".into())));
        assert_eq!(console.welcome.prompts[0].name, "roll-dice");

        let uri = dice
            .uri_for(json!({"numDice": 3, "numFaces": 1}).as_object().unwrap())
            .expect("the variables fit");
        assert_eq!(uri, "dice://3d1");
        let reply = console.ask(Request::ReadResource { uri }).await;
        let Reply::Read { result: Ok(read) } = reply else {
            panic!("expected the contents, got {reply:?}");
        };
        // Three dice of one face: always 3.
        assert_eq!(read.contents[0].text, "3");
        console
            .wait_for("the read in the call log", |u| {
                matches!(u, Update::Event { event } if matches!(&**event,
                    ServerEvent::Call(call) if call.kind == wasimancer::events::CallKind::Resource
                        && &*call.tool == "dice" && &*call.plugin == "roll-dice"))
            })
            .await;

        let reply = console
            .ask(Request::RenderPrompt {
                name: "roll-dice".into(),
                arguments: json!({"numDice": 2, "numFaces": 20}).as_object().cloned().unwrap(),
            })
            .await;
        let Reply::Rendered { result: Ok(rendered) } = reply else {
            panic!("expected the messages, got {reply:?}");
        };
        assert_eq!(
            rendered.messages[0].text,
            "Roll 2 dice with 20 faces each and tell me the total."
        );
        let reply = console
            .ask(Request::RenderPrompt {
                name: "roll-dice".into(),
                arguments: json!({"numDice": "many"}).as_object().cloned().unwrap(),
            })
            .await;
        assert!(
            matches!(&reply, Reply::Rendered { result: Err(failure) } if failure.message.contains("`numDice` must be an integer")),
            "{reply:?}"
        );
    });
}

#[test]
fn over_http_a_console_needs_the_admin_token() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("http://{}", server.address);
        for token in [
            None,
            Some("wrong-token".to_string()),
            Some(TOKEN.to_string()),
        ] {
            let target = Target::Http {
                url: url.clone(),
                token,
            };
            match connect(&target).await {
                Err(ConnectError::Refused(reason)) => {
                    assert!(reason.contains("401"), "{reason}")
                }
                other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
            }
        }
        // The events stream itself answers 401 to a plain request too.
        let status = reqwest::Client::new()
            .get(format!("{url}/admin/events?protocol=1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);

        // With the admin token: the same console, over HTTP.
        let target = Target::Http {
            url: format!("{url}/mcp"),
            token: Some(ADMIN_TOKEN.into()),
        };
        let mut console = Console::attach(&target).await;
        assert_eq!(console.welcome.plugins.len(), 4);
        let client = mcp_client(&server.mcp_url(), TOKEN, "over-http").await;
        call_text(&client, "say_hello", json!({"name": "http"})).await;
        console
            .wait_for("the MCP call over HTTP", |u| is_call(u, "say_hello", "mcp"))
            .await;
        let reply = console.ask(Request::Tokens).await;
        assert_eq!(
            reply,
            Reply::Tokens {
                mcp: Some(TOKEN.into()),
                admin: Some(ADMIN_TOKEN.into())
            }
        );
        client.cancel().await.expect("the MCP client closes");
    });
}

#[test]
fn a_console_of_another_protocol_version_is_refused_with_the_reason() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(&server.socket)
            .await
            .unwrap();
        let mut transport = Transport::new(Framed::new(stream, FrameCodec::console()));
        transport
            .send(Frame::Hello {
                protocol: 2,
                client: "wasimancer 9.9.9".into(),
            })
            .await
            .unwrap();
        let Some(Ok(Frame::Refused { reason })) = transport.recv().await else {
            panic!("expected a refusal");
        };
        assert!(
            reason.contains("protocol 2") && reason.contains("protocol 1"),
            "{reason}"
        );
        assert!(transport.recv().await.is_none(), "then the server closes");

        // Over HTTP the same refusal comes as 409 with the reason.
        let response = reqwest::Client::new()
            .get(format!("http://{}/admin/events?protocol=2", server.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("protocol 2"),
            "{body}"
        );
    });
}

#[test]
fn a_second_server_on_the_same_socket_names_the_first_ones_pid() {
    let mut first = Server::start();
    let output = wasimancer(&["serve", "--headless", "--port", "0", "--control-socket"])
        .arg(&first.socket)
        .env("WASIMANCER_AUTHENTICATION_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("(pid {})", first.process.child.id())),
        "{stderr}"
    );
    assert!(first.process.running(), "the first server is not disturbed");

    // `status` reads the running one through the same socket.
    let output = wasimancer(&["status", "--control-socket"])
        .arg(&first.socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("pid {}", first.process.child.id())),
        "{stdout}"
    );
    assert!(stdout.contains("say_hello"), "{stdout}");
}

/// Only the server's user and root may attach; the socket's folder and
/// mode keep others out, and the server checks the peer's uid as well.
/// Needs root (to run a client as another user); CI runs as root.
#[test]
fn a_user_other_than_the_owner_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: run as root to check that another user is refused");
        return;
    }
    let server = Server::start();
    let nobody = 65534;
    let run_as_nobody = || {
        use std::os::unix::process::CommandExt;
        wasimancer(&["status", "--control-socket"])
            .arg(&server.socket)
            .uid(nobody)
            .gid(nobody)
            .output()
            .unwrap()
    };
    // The filesystem refuses first: the folder is the owner's alone.
    let output = run_as_nobody();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");

    // With the folder and socket opened up, the server itself refuses.
    open_up(&server.socket);
    let output = run_as_nobody();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("uid {nobody} may not attach")),
        "{stderr}"
    );
}

/// Let every user reach `socket` (and the binary it runs), as a careless
/// operator might.
fn open_up(socket: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let open = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(socket, 0o777);
    let mut folder = socket.parent();
    while let Some(path) =
        folder.filter(|p| p.starts_with(std::env::temp_dir()) && *p != std::env::temp_dir())
    {
        open(path, 0o755);
        folder = path.parent();
    }
}
