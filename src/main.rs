//! Wiring only: parse the command line, set up logging, run the command.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wasimancer::cli::{Cli, Command};
use wasimancer::commands::{self, call, check};
use wasimancer::console::{self, ConsoleContext, ConsoleExit};
use wasimancer::http::{AdminOptions, AllowList, HttpOptions, Token};
use wasimancer::logging::{self, LogBuffer, LogTarget};
use wasimancer::registry::RegistryOptions;
use wasimancer::server::{self, RunningServer, Settings};

/// The token value that turns a check off (WASImancer's).
const NO_AUTHENTICATION: &str = "NO_AUTHENTICATION";

/// Without RUST_LOG: our own news, and only problems from the libraries.
/// extism logs every failed plugin call as an error; we report those ourselves.
const DEFAULT_LOG_FILTER: &str = "info,extism=off,wasmtime=warn,cranelift=warn,rmcp=warn";
const QUIET_LOG_FILTER: &str = "warn,extism=off";

fn main() -> ExitCode {
    let cli = Cli::parse_resolved();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Plugin calls still running (a client went away mid-call) must not keep
    // the process alive past their timeout.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Some(Command::Call { tool, arguments }) => {
            let _log = logging::init(QUIET_LOG_FILTER, LogTarget::Stderr)?;
            match call::run(&cli.plugins, tool, arguments).await {
                Ok(output) => {
                    println!("{output}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::Check) => {
            let _log = logging::init(QUIET_LOG_FILTER, LogTarget::Stderr)?;
            let report = check::run(&cli.plugins).await;
            print!("{}", report.render());
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Serve) | None => serve(&cli).await,
    }
}

async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let args = &cli.serve;
    let with_console =
        !args.headless && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let log = LogBuffer::default();
    let log_file = args.log_file.as_deref();
    let _log = logging::init(
        DEFAULT_LOG_FILTER,
        match (with_console, log_file) {
            (true, file) => LogTarget::Console(log.clone(), file),
            (false, Some(file)) => LogTarget::File(file),
            (false, None) => LogTarget::Stderr,
        },
    )?;
    let mcp_token = token(args.auth_token.as_deref(), "MCP bearer token")?;
    let admin_token = token(args.admin_token.as_deref(), "admin token")?;
    let settings = settings(cli, &mcp_token, &admin_token, with_console)?;
    let started = Instant::now();
    let server = server::start(settings).await?;

    if with_console {
        return serve_with_console(server, mcp_token, admin_token, log, args.no_color, started)
            .await;
    }
    let snapshot = server.registry.snapshot();
    let (loaded, failed) = snapshot.plugin_counts();
    eprintln!(
        "wasimancer {} serving {} tools from {loaded} plugins ({failed} failed) at http://{}/mcp",
        env!("CARGO_PKG_VERSION"),
        snapshot.tools.len(),
        server.addr
    );
    announce_token(
        &mcp_token,
        "MCP bearer token",
        "WASIMANCER_AUTHENTICATION_TOKEN",
    );
    announce_token(&admin_token, "admin token", "WASIMANCER_ADMIN_TOKEN");
    tokio::spawn(stop_on_signal(server.shutdown_token()));
    reload_on_hangup(&server);
    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// The console runs on a thread of its own: drawing is blocking terminal I/O
/// and must never hold up the server.
async fn serve_with_console(
    server: RunningServer,
    mcp_token: (Option<Token>, bool),
    admin_token: (Option<Token>, bool),
    log: LogBuffer,
    no_color: bool,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let hangup = CancellationToken::new();
    watch_hangup(hangup.clone());
    let context = ConsoleContext {
        registry: server.registry.clone(),
        address: server.addr,
        mcp_token: mcp_token.0,
        admin_token: admin_token.0,
        log,
        no_color,
        started,
        runtime: tokio::runtime::Handle::current(),
        hangup,
        shutdown: server.shutdown_token(),
    };
    let shutdown = server.shutdown_token();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let console = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || console::run(context))
        .context("cannot start the console thread")?;
    let exit = tokio::task::spawn_blocking(move || console.join())
        .await
        .ok()
        .and_then(Result::ok);
    match exit {
        Some(ConsoleExit::Quit) => shutdown.cancel(),
        Some(ConsoleExit::TerminalLost(reason)) => {
            tracing::warn!("console stopped ({reason}); the server keeps serving until SIGTERM");
        }
        None => tracing::error!("the console stopped unexpectedly; the server keeps serving"),
    }
    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// A token from its setting: `NO_AUTHENTICATION` is none, empty or unset is
/// generated. The flag says whether it was generated.
fn token(value: Option<&str>, what: &str) -> anyhow::Result<(Option<Token>, bool)> {
    match value.map(str::trim) {
        Some(NO_AUTHENTICATION) => Ok((None, false)),
        Some(token) if !token.is_empty() => Ok((Some(Token::new(token)), false)),
        _ => Ok((
            Some(Token::generate().with_context(|| format!("cannot generate the {what}"))?),
            true,
        )),
    }
}

/// Show a generated token once, on stderr, never through the log.
fn announce_token(token: &(Option<Token>, bool), what: &str, variable: &str) {
    match token {
        (Some(token), true) => eprintln!(
            "{what} (generated, shown only now; set {variable} to choose one): {}",
            token.reveal()
        ),
        (Some(_), false) => eprintln!("{what}: from {variable}"),
        (None, _) => eprintln!("{what}: OFF ({variable}={NO_AUTHENTICATION})"),
    }
}

fn settings(
    cli: &Cli,
    mcp_token: &(Option<Token>, bool),
    admin_token: &(Option<Token>, bool),
    with_console: bool,
) -> anyhow::Result<Settings> {
    let args = &cli.serve;
    let listen = SocketAddr::new(args.host, args.port);
    let mut hosts = args.allowed_hosts.clone();
    // Serving on a specific address means answering to it.
    if !args.host.is_loopback() && !args.host.is_unspecified() {
        hosts.push(args.host.to_string());
    }
    let plugins_dir = cli.plugins.plugins_dir.clone();
    let upload_dir = args
        .upload_dir
        .clone()
        .unwrap_or_else(|| plugins_dir.clone());
    Ok(Settings {
        listen,
        registry: RegistryOptions {
            catalog_path: cli.plugins.plugins_file.clone(),
            runtime: commands::runtime_settings(&cli.plugins),
            keep_call_details: with_console,
        },
        http: HttpOptions {
            mcp_token: mcp_token.0.clone(),
            allow: AllowList {
                hosts,
                origins: args.allowed_origins.clone(),
            },
            max_request_bytes: args.max_request_bytes,
            stateless: args.stateless,
            session_idle_timeout: std::time::Duration::from_secs(args.session_idle_secs),
            admin: AdminOptions {
                token: admin_token.0.clone(),
                upload_dir,
                max_upload_bytes: args.max_upload_bytes,
            },
        },
        audit_log: args.audit_log.clone(),
        // The console's calls pane is the call log: a line per call in its
        // log pane too would only bury the server's own messages. With a log
        // file, the file gets them.
        log_calls: !with_console || args.log_file.is_some(),
        watch: args.watch,
    })
}

/// Stop serving on Ctrl-C or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            shutdown.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// With the console, a hang-up (SSH dropped) must not kill the server: it
/// stops the console only.
fn watch_hangup(hangup: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut signals) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    hangup.cancel();
                }
            });
        }
    }
    #[cfg(not(unix))]
    let _ = hangup;
}

/// Headless, SIGHUP re-reads plugins.yml, as daemons do.
fn reload_on_hangup(server: &RunningServer) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let registry = server.registry.clone();
        if let Ok(mut signals) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    match registry.reload_all("SIGHUP").await {
                        Ok(report) => tracing::info!("reloaded on SIGHUP: {}", report.summary()),
                        Err(error) => tracing::error!("reload on SIGHUP failed: {error}"),
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    let _ = server;
}
