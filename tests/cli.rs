//! The binary as users run it: `check`, `call`, `serve --headless`, `--help`.

use std::process::{Command, Output};

mod support;

use support::{Headless, plugins_folder, repo, wasimancer};

fn run(command: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// plugins.yml with only the hello plugin.
const HELLO: &str = include_str!("fixtures/hello.yml");

#[test]
fn switches_in_the_environment_take_1_and_yes_as_systemd_units_write_them() {
    for (value, ok) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("0", true),
        ("maybe", false),
    ] {
        let (passed, stdout, stderr) = run(wasimancer(&["check"])
            .env("WASIMANCER_NO_CACHE", value)
            .env("WASIMANCER_NO_CONTROL_SOCKET", value));
        assert_eq!(passed, ok, "{value}: {stdout}{stderr}");
        if !ok {
            assert!(stderr.contains("invalid value 'maybe'"), "{stderr}");
        }
    }
}

#[test]
fn check_reports_every_sample_plugin_ready() {
    let (ok, stdout, stderr) = run(&mut wasimancer(&["check"]));
    assert!(ok, "{stdout}{stderr}");
    for plugin in ["roll-dice", "hello", "addition", "config-reader"] {
        assert!(stdout.contains(plugin), "{stdout}");
    }
    assert!(
        stdout.contains("all 4 plugins are ready to serve"),
        "{stdout}"
    );
    assert!(
        stdout.contains("resources.yml: 1 resource and 2 templates, ok"),
        "{stdout}"
    );
    assert!(stdout.contains("prompts.yml: 1 prompt, ok"), "{stdout}");
}

#[test]
fn check_reports_resources_and_prompts_with_their_lines() {
    let folder = plugins_folder(HELLO);
    let plugins = folder.path().join("plugins");
    std::fs::write(
        plugins.join("resources.yml"),
        "resources:
  dynamic:
    - name: greeting
      uri: hello://{name}
      plugin: hello
      function: say_hi
",
    )
    .unwrap();
    std::fs::write(
        plugins.join("prompts.yml"),
        "prompts:
  predefined:
    - name: greet
      messages:
        - text: hi
          role: system
",
    )
    .unwrap();
    let (ok, stdout, _) = run(wasimancer(&["check"]).env("PLUGINS_PATH", &plugins));
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("resources.yml line 6, resources.dynamic[0].function: resource `greeting` is computed by `say_hi`, which plugin `hello` does not export; exports are: say_hello"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("prompts.yml line 6, prompts.predefined[0].messages[0].role: role `system`"),
        "{stdout}"
    );
}

#[test]
fn check_names_the_line_and_key_of_a_typo() {
    let folder =
        plugins_folder(&HELLO.replace("    wasi: false\n", "    wasi: false\n    timeout: 100\n"));
    let (ok, stdout, _) =
        run(wasimancer(&["check"]).env("PLUGINS_PATH", folder.path().join("plugins")));
    assert!(!ok);
    assert!(stdout.contains("plugins.yml line 5"), "{stdout}");
    assert!(stdout.contains("unknown key `timeout`"), "{stdout}");
    assert!(stdout.contains("did you mean `timeout_ms`?"), "{stdout}");
}

#[test]
fn check_reports_a_missing_module_and_a_missing_export_with_their_lines() {
    let yaml = format!(
        "{HELLO}  - name: gone
    path: gone/gone.wasm
    functions:
      - function: nothing
  - name: wrong-export
    path: hello/hello.wasm
    functions:
      - function: sayHello
"
    );
    let folder = plugins_folder(&yaml);
    let (ok, stdout, _) =
        run(wasimancer(&["check"]).env("PLUGINS_PATH", folder.path().join("plugins")));
    assert!(!ok);
    assert!(
        stdout.contains("plugins.yml line 11: module file"),
        "{stdout}"
    );
    assert!(stdout.contains("gone/gone.wasm does not exist"), "{stdout}");
    assert!(
        stdout.contains("plugins.yml line 15: function `sayHello` is not exported by hello.wasm; exports are: say_hello"),
        "{stdout}"
    );
    // The good plugin is still reported ready.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains("ok")),
        "{stdout}"
    );
}

#[test]
fn call_prints_the_output_and_fails_clearly() {
    let (ok, stdout, stderr) = run(&mut wasimancer(&["call", "say hello", r#"{"name":"CLI"}"#]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "Hello, CLI!\n");

    let (ok, stdout, _) = run(&mut wasimancer(&[
        "call",
        "rollDice",
        r#"{"numFaces":6,"numDice":2}"#,
    ]));
    assert!(ok);
    let sum: u32 = stdout.trim().parse().unwrap();
    assert!((2..=12).contains(&sum));

    let (ok, _, stderr) = run(&mut wasimancer(&["call", "nope", "{}"]));
    assert!(!ok);
    assert!(stderr.contains("unknown tool `nope`"), "{stderr}");
    assert!(stderr.contains("rollDice"), "{stderr}");

    let (ok, _, stderr) = run(&mut wasimancer(&["call", "add", "{left: 1}"]));
    assert!(!ok);
    assert!(stderr.contains("must be a JSON object"), "{stderr}");

    let (ok, _, stderr) = run(&mut wasimancer(&["call", "add", r#"{"left": 1}"#]));
    assert!(!ok);
    assert!(
        stderr.contains("missing required argument `right`"),
        "{stderr}"
    );
}

#[test]
fn wasm_variables_reach_plugins_as_config() {
    let (ok, stdout, stderr) =
        run(wasimancer(&["call", "greet", r#"{"name":"Env"}"#]).env("WASM_GREETING", "Salut"));
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "Salut, Env!");
}

#[test]
fn wasimancer_variables_locate_plugins_yml_in_the_plugins_folder() {
    let folder = plugins_folder(HELLO);
    std::fs::rename(
        folder.path().join("plugins/plugins.yml"),
        folder.path().join("plugins/tools.yml"),
    )
    .unwrap();
    let (ok, stdout, stderr) = run(wasimancer(&["call", "say_hello", r#"{"name":"W"}"#])
        .env("PLUGINS_PATH", folder.path().join("plugins"))
        .env("PLUGINS_DEFINITION_FILE", "tools.yml"));
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "Hello, W!");
}

/// The binary allocates with jemalloc, with the options that keep its RSS
/// from wandering (src/main.rs): jemalloc prints them when asked to.
#[cfg(not(target_env = "msvc"))]
#[test]
fn the_allocator_returns_freed_memory_from_a_background_thread() {
    let (ok, _, stderr) =
        run(wasimancer(&["--version"]).env("_RJEM_MALLOC_CONF", "stats_print:true"));
    assert!(ok, "{stderr}");
    for option in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(stderr.contains(option), "no `{option}` in\n{stderr}");
    }
}

#[test]
fn help_shows_every_setting_with_its_variable() {
    let (ok, stdout, _) = run(&mut wasimancer(&["--help"]));
    assert!(ok);
    for variable in [
        "HTTP_PORT",
        "PLUGINS_PATH",
        "PLUGINS_DEFINITION_FILE",
        "WASIMANCER_AUTHENTICATION_TOKEN",
        "WASIMANCER_ALLOWED_HOSTS",
        "NO_COLOR",
    ] {
        assert!(
            stdout.contains(variable),
            "--help does not mention {variable}"
        );
    }
}

#[test]
fn headless_server_shows_a_generated_token_once_and_logs_each_call() {
    let mut server = Headless::start(&mut wasimancer(&["serve", "--headless", "--port", "0"]));
    let address = server.address();
    let token_line = server.wait_for("bearer token");
    let token = token_line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(token.len(), 48, "{token_line}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let call = |token: &str| {
        runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("http://{address}/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .bearer_auth(token)
                .body(r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"say_hello","arguments":{"name":"Log"}}}"#)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(call(&token), 200);
    assert_eq!(call("wrong"), 401);
    server.wait_for("tool=say_hello");
    let everything = server.stop();
    assert_eq!(
        everything.matches(&token).count(),
        1,
        "the token is shown once and never logged:\n{everything}"
    );
}

#[test]
fn serve_refuses_a_malformed_plugins_yml_with_its_line() {
    let folder = plugins_folder("plugins:\n  - name: hello\n    path: [oops\n");
    let (ok, _, stderr) = run(wasimancer(&["serve", "--headless", "--port", "0"])
        .env("PLUGINS_PATH", folder.path().join("plugins")));
    assert!(!ok);
    assert!(stderr.contains("plugins.yml line"), "{stderr}");
}

/// contrib/wasimancer.service is a valid unit (for this binary), as
/// `systemd-analyze verify` reads it. Skipped where systemd is not installed.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(probe.status.success());
    let unit = std::fs::read_to_string(repo().join("contrib/wasimancer.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/wasimancer serve --headless"));
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "RuntimeDirectory=wasimancer",
        "StateDirectory=wasimancer",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasimancer.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/wasimancer",
            env!("CARGO_BIN_EXE_wasimancer"),
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(ok, "systemd-analyze verify: {stdout}{stderr}");
    assert!(
        !stderr.contains(&path.display().to_string()),
        "warnings about the unit: {stderr}"
    );
}
