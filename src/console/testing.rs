//! Fixed data for the console's tests: a real registry serving the sample
//! plugins (one failed, one stale after a failed reload) as a server's
//! welcome shows it, call records with fixed times, and an app attached to
//! that welcome with a fixed clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

use super::app::{App, Role, WallClock};
use super::event::ConsoleEvent;
use super::theme::Theme;
use crate::catalog::{ArgumentType, ParameterSpec};
use crate::control::{
    Counters, PluginView, PromptView, Reply, ResourceView, ServerSummary, Update, Welcome,
    plugin_views,
};
use crate::events::{CallEvent, CallSource, CallStatus, ServerEvent, SharedEvent};
use crate::registry::{CallDetail, Registry, RegistryOptions};
use crate::runtime::{CallFailure, CompileCache, FailureKind, RuntimeSettings};

const CATALOG: &str = r#"
plugins:
  - name: roll-dice
    path: roll-dice/roll-dice.wasm
    version: 1.0.0
    description: roll dice
    instances: 1
    functions:
      - displayName: rollDice
        function: rollDice
        description: Roll numDice dice with numFaces faces each and return the sum
        arguments:
          - name: numFaces
            type: integer
            description: number of faces on each die
          - name: numDice
            type: integer
            description: number of dice to roll (1 to 1000)
  - name: hello
    path: hello/hello.wasm
    version: 1.0.0
    description: greetings
    wasi: false
    instances: 1
    functions:
      - displayName: say hello
        function: say_hello
        description: Say hello to someone by name
        arguments:
          - name: name
            type: string
            description: name of the person to greet
  - name: addition
    path: addition/addition.wasm
    version: 2.1.0
    wasi: false
    timeout_ms: 1000
    memory_mb: 16
    instances: 2
    functions:
      - displayName: add
        function: add
        description: Add two numbers; returns JSON like {"result":5}
        arguments:
          - name: left
            type: number
            description: first number
          - name: right
            type: number
            description: second number
  - name: weather
    path: weather/weather.wasm
    version: 0.3.0
    allowed_hosts: [api.example.com]
    functions:
      - function: forecast
        arguments:
          - name: city
            type: string
"#;

/// The server side of the fixture, shared by every test of the process.
pub struct Fixture {
    /// Runs the registry's plugin pools for as long as the tests do.
    _runtime: tokio::runtime::Runtime,
    pub registry: Registry,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // Relative paths (tests run in the package's folder) keep the error
    // messages, and so the snapshots, the same on every machine.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = PathBuf::from("target/console-tests");
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let catalog = dir.join("plugins.yml");
    std::fs::write(&catalog, CATALOG).expect("plugins.yml written");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let options = RegistryOptions {
        catalog_path: catalog.clone(),
        runtime: RuntimeSettings {
            plugins_dir: PathBuf::from("plugins"),
            default_instances: 1,
            compile_cache: CompileCache::in_dir(&repo.join("target/tmp/wasmtime-cache")),
            ..RuntimeSettings::default()
        },
        keep_call_details: true,
    };
    let registry = runtime.block_on(async {
        let registry = Registry::start(options, Default::default())
            .await
            .expect("the fixture's plugins.yml is valid");
        // Make `hello` stale: its reload asks for an export it does not have.
        let broken = CATALOG.replace("function: say_hello", "function: say_hi");
        std::fs::write(&catalog, broken).expect("plugins.yml rewritten");
        let report = registry
            .reload_plugin("hello", "test")
            .await
            .expect("the reload runs");
        assert!(report.has_failures());
        registry
    });
    Fixture {
        _runtime: runtime,
        registry,
    }
});

pub fn fixture() -> &'static Fixture {
    &FIXTURE
}

/// The fixture's plugins as the server sends them.
pub fn plugins() -> Vec<PluginView> {
    plugin_views(&fixture().registry.snapshot())
}

/// The instant the fixed clock starts at: the server's start.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

pub fn started() -> Instant {
    *STARTED
}

/// 12:00:00 UTC on some day, plus `seconds`.
pub fn wall(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_268_800 + seconds)
}

fn mcp(client: &str, session: &str) -> CallSource {
    CallSource::Mcp {
        client: Some(client.into()),
        session: Some(session.into()),
    }
}

fn ok(preview: &str) -> CallStatus {
    CallStatus::Ok {
        preview: preview.into(),
    }
}

fn failed(kind: FailureKind, message: &str) -> CallStatus {
    CallStatus::Error {
        kind,
        message: message.into(),
    }
}

/// Call records as the bus delivers them.
pub fn calls() -> Vec<Arc<ServerEvent>> {
    let rows = [
        (
            mcp("claude-code", "5f3a9c21d0"),
            "rollDice",
            "roll-dice",
            r#"{"numFaces":6,"numDice":3}"#,
            ok("11"),
            812,
        ),
        (
            CallSource::Console,
            "say_hello",
            "hello",
            r#"{"name":"Ada"}"#,
            ok("Hello, Ada!"),
            1_420,
        ),
        (
            CallSource::Cli,
            "add",
            "addition",
            r#"{"left":"one","right":2}"#,
            failed(
                FailureKind::InvalidArguments,
                "invalid arguments for `add`: `left` must be a number, got a string (\"one\"). Expected {left: number, right: number}",
            ),
            95,
        ),
        (
            mcp("inspector", "91bc02ee77"),
            "rollDice",
            "roll-dice",
            r#"{"numFaces":6,"numDice":0}"#,
            failed(
                FailureKind::PluginError,
                "numDice must be an integer between 1 and 1000 (got 0)",
            ),
            2_310,
        ),
        (
            mcp("claude-code", "5f3a9c21d0"),
            "add",
            "addition",
            r#"{"left":2,"right":3}"#,
            ok(r#"{"result":5}"#),
            640,
        ),
        (
            mcp("claude-code", "5f3a9c21d0"),
            "add",
            "addition",
            r#"{"left":1e308,"right":1e308}"#,
            failed(
                FailureKind::Timeout,
                "the call ran past the plugin's 1000 ms timeout and was stopped",
            ),
            1_000_412,
        ),
    ];
    rows.into_iter()
        .enumerate()
        .map(|(i, (source, tool, plugin, arguments, status, micros))| {
            Arc::new(ServerEvent::Call(CallEvent {
                id: i as u64 + 1,
                started: wall(i as u64 * 7),
                source,
                kind: Default::default(),
                tool: tool.into(),
                plugin: plugin.into(),
                arguments: arguments.into(),
                status,
                duration: Duration::from_micros(micros),
                overlapping: 1,
            }))
        })
        .collect()
}

/// The full payloads of a fixture call, as the server answers a request for them.
pub fn detail(call_id: u64, arguments: &str, output: Result<&str, CallFailure>) -> Reply {
    Reply::CallDetail {
        detail: Some(CallDetail {
            id: call_id,
            arguments: arguments.into(),
            output: output.map(Into::into),
        }),
    }
}

pub fn log_lines() -> Vec<String> {
    [
        " INFO loaded with 1 instance in 12 ms origin=\"startup\" plugin=\"roll-dice\" change=Added",
        " INFO loaded with 1 instance in 9 ms origin=\"startup\" plugin=\"hello\" change=Added",
        " WARN plugins.yml line 57: module file weather/weather.wasm does not exist origin=\"startup\" plugin=\"weather\"",
        " INFO ok id=1 source=mcp:claude-code#5f3a9c tool=rollDice plugin=roll-dice micros=812",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// `seconds` after the server's start, on the fixed clock.
pub fn at(seconds: u64) -> Instant {
    started() + Duration::from_secs(seconds)
}

/// News from the server, received `seconds` after its start.
pub fn updates(seconds: u64, updates: Vec<Update>) -> ConsoleEvent {
    ConsoleEvent::Updates {
        updates,
        at: at(seconds),
    }
}

/// The server's counters, received `seconds` after its start.
pub fn counters(seconds: u64, calls: u64, errors: u64, in_flight: u64) -> ConsoleEvent {
    updates(
        seconds,
        vec![Update::Counters(Counters {
            calls,
            errors,
            in_flight,
            ..Counters::default()
        })],
    )
}

/// The loop's tick `seconds` after the server's start.
pub fn tick(seconds: u64) -> ConsoleEvent {
    ConsoleEvent::Tick(at(seconds))
}

/// What the fixture server says to a console that attaches.
pub fn welcome() -> Welcome {
    Welcome {
        server: ServerSummary {
            version: "0.1.0".into(),
            pid: 4242,
            address: "127.0.0.1:3001".parse().expect("an address"),
            mcp_token: Some("te••••••••89".into()),
            admin_token: Some("ad••••••••89".into()),
            uptime_ms: 0,
            stateless: false,
            catalog: "plugins.yml".into(),
        },
        plugins: plugins(),
        resources: resources(),
        prompts: prompts(),
        calls: calls().into_iter().map(SharedEvent::new).collect(),
        log: log_lines(),
        counters: Counters::default(),
    }
}

fn parameter(name: &str, kind: ArgumentType, required: bool, description: &str) -> ParameterSpec {
    ParameterSpec {
        name: name.into(),
        kind,
        description: Some(description.into()).filter(|d: &String| !d.is_empty()),
        required,
        values: Vec::new(),
    }
}

/// A fixed resource, a template, and a template a plugin computes.
pub fn resources() -> Vec<ResourceView> {
    let resource =
        |name: &str, uri: &str, parameters, computed_by: Option<(&str, &str)>| ResourceView {
            name: name.into(),
            uri: uri.into(),
            title: None,
            description: Some(format!("the {name} resource")),
            mime_type: Some("text/plain".into()),
            parameters,
            computed_by: computed_by.map(|(p, f)| (p.into(), f.into())),
            line: Some(3),
        };
    vec![
        resource("info", "wasimancer://info", Vec::new(), None),
        resource(
            "echo",
            "echo://{message}",
            vec![parameter(
                "message",
                ArgumentType::String,
                true,
                "what to echo",
            )],
            None,
        ),
        resource(
            "dice",
            "dice://{count}d{faces}",
            vec![
                parameter("count", ArgumentType::Integer, true, "how many dice"),
                parameter("faces", ArgumentType::Integer, true, ""),
            ],
            Some(("roll-dice", "rollDice")),
        ),
    ]
}

/// A prompt with a required and an optional argument.
pub fn prompts() -> Vec<PromptView> {
    vec![PromptView {
        name: "greet".into(),
        title: None,
        description: Some("Greet someone".into()),
        parameters: vec![
            parameter("nickName", ArgumentType::String, true, "who"),
            parameter("mood", ArgumentType::String, false, ""),
        ],
        messages: 1,
        line: Some(4),
    }]
}

/// An app of `columns` x `rows`, the owner's console, attached to the
/// fixture: plugins, six calls, a few log lines, and counters one hour in.
pub fn app(columns: u16, rows: u16, no_color: bool) -> App {
    app_as(Role::Owner, columns, rows, no_color)
}

/// The same, as `role`.
pub fn app_as(role: Role, columns: u16, rows: u16, no_color: bool) -> App {
    let mut app = App::new(
        role,
        "/run/wasimancer/3001.sock".into(),
        Theme::new(no_color),
        WallClock::Utc,
        Rect::new(0, 0, columns, rows),
    );
    app.update(ConsoleEvent::Attached {
        welcome: Box::new(welcome()),
        at: started(),
    });
    app.update(tick(3720));
    app.update(counters(3725, 6, 3, 0));
    app.update(tick(3725));
    app
}

/// A key press.
pub fn key(code: KeyCode) -> ConsoleEvent {
    ConsoleEvent::Key(press(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> ConsoleEvent {
    ConsoleEvent::Key(press(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
    let mut event = KeyEvent::new(code, modifiers);
    event.kind = KeyEventKind::Press;
    event
}

/// Type `text` key by key (Enter for a newline).
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        let code = if c == '\n' {
            KeyCode::Enter
        } else {
            KeyCode::Char(c)
        };
        app.update(key(code));
    }
}

/// Feed `keys` (characters; see `key` for others) to `app`, returning the
/// actions asked for.
pub fn keys(app: &mut App, keys: &str) -> Vec<super::app::Action> {
    keys.chars()
        .filter_map(|c| app.update(key(KeyCode::Char(c))))
        .collect()
}
