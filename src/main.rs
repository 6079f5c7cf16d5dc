//! Wiring only: parse the command line, set up logging, run the command.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wasimancer::audit::AuditOptions;
use wasimancer::cli::{Cli, Command};
use wasimancer::commands::status;
use wasimancer::commands::{self, call, check};
use wasimancer::console::{self, ConsoleExit, ConsoleOptions, Role};
use wasimancer::control::{self, Target};
use wasimancer::http::{
    AdminOptions, AllowList, HttpOptions, MetricsAccess, PerSecond, RateLimit, SessionLimits, Token,
};
use wasimancer::logging::{self, LogBuffer, LogTarget};
use wasimancer::registry::RegistryOptions;
use wasimancer::server::{self, ControlSocketPath, Drainer, RunningServer, Settings, StartError};
use wasimancer::telemetry::Tracing;

/// The token value that turns a check off (WASImancer's).
const NO_AUTHENTICATION: &str = "NO_AUTHENTICATION";

/// Without RUST_LOG: our own news, and only problems from the libraries.
/// extism logs every failed plugin call as an error; we report those ourselves.
const DEFAULT_LOG_FILTER: &str = "info,extism=off,wasmtime=warn,cranelift=warn,rmcp=warn";
const QUIET_LOG_FILTER: &str = "warn,extism=off";

/// jemalloc rather than the system's malloc: under session churn (sessions
/// opened from many connections, served on whichever worker thread, and
/// freed on another when they expire) glibc's per-thread arenas fragment and
/// the server's RSS keeps creeping up although nothing leaks: 1,000
/// abandoned sessions left 1.5 to 2 MiB behind after they expired, every
/// round, under glibc, and nothing measurable under jemalloc (README,
/// "Fuzzing and soak").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (a C string it finds by this
/// name; `_RJEM_MALLOC_CONF` in the environment still overrides them): a
/// background thread returns freed pages to the system after a second,
/// instead of whenever the allocating threads next pass by. Without it the
/// soak's RSS wandered 10 % above its first minutes (README, "Fuzzing and
/// soak").
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_OPTIONS: &u8 =
    &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    one_glibc_arena();
    no_error_backtraces();
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

/// The C code linked in still allocates with glibc's malloc: zstd above
/// all, which unpacks a module from wasmtime's compile cache on every load
/// (a 34 MB window buffer and smaller ones), on whichever blocking thread
/// loads it. glibc gives such threads arenas of their own, up to 8 per core,
/// and each keeps its freed pages: the soak's RSS crept up for its first
/// 15 minutes, an arena at a time (README, "Fuzzing and soak"). One arena is
/// plenty for what little C code allocates. `MALLOC_ARENA_MAX` still rules
/// when it is set. Called before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_glibc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, and no
        // other thread exists yet to allocate concurrently.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// extism asks wasmtime for the fuel left after every call, and without
/// fuel metering that answer is an error, which captures a backtrace when
/// `RUST_BACKTRACE` is set: 8 % of a call's CPU in a profile of the floor
/// (README, Performance). Panics keep their backtraces (`RUST_BACKTRACE`);
/// errors get theirs back with `RUST_LIB_BACKTRACE=1`. Called before any
/// thread starts.
fn no_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let log = LogBuffer::default();
    match &cli.command {
        Some(Command::Call { tool, arguments }) => {
            let _log = logging::init(QUIET_LOG_FILTER, LogTarget::Stderr, &log)?;
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
            let _log = logging::init(QUIET_LOG_FILTER, LogTarget::Stderr, &log)?;
            let report = check::run(&cli.plugins, &cli.definitions.paths()).await;
            print!("{}", report.render());
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Console { url }) => {
            let target = console_target(&cli, url.as_deref());
            if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "the console needs a terminal (with ssh, use `ssh -t`); `wasimancer status` prints the same facts without one"
                );
            }
            let _log = logging::init(
                QUIET_LOG_FILTER,
                LogTarget::Console(cli.serve.log_file.as_deref()),
                &log,
            )?;
            attach(target, cli.serve.no_color).await
        }
        Some(Command::Status { url }) => {
            let _log = logging::init(QUIET_LOG_FILTER, LogTarget::Stderr, &log)?;
            let target = console_target(&cli, url.as_deref());
            match control::connect(&target).await {
                Ok((welcome, _)) => {
                    print!("{}", status::render(&welcome));
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::Serve) | None => serve(&cli, log).await,
    }
}

/// Where `console` and `status` find the server.
fn console_target(cli: &Cli, url: Option<&str>) -> Target {
    match url {
        Some(url) => Target::Http {
            url: url.to_string(),
            token: cli
                .serve
                .admin_token
                .clone()
                .filter(|token| token != NO_AUTHENTICATION),
        },
        None => Target::Socket(
            cli.serve
                .control_socket
                .clone()
                .unwrap_or_else(|| control::socket::default_path(cli.serve.port)),
        ),
    }
}

async fn serve(cli: &Cli, log: LogBuffer) -> anyhow::Result<ExitCode> {
    let args = &cli.serve;
    let with_console =
        !args.headless && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let log_file = args.log_file.as_deref();
    let _log = logging::init(
        DEFAULT_LOG_FILTER,
        match (with_console, log_file) {
            (true, file) => LogTarget::Console(file),
            (false, Some(file)) => LogTarget::File(file),
            (false, None) => LogTarget::Stderr,
        },
        &log,
    )?;
    let mcp_token = token(args.auth_token.as_deref(), "MCP bearer token")?;
    let admin_token = token(args.admin_token.as_deref(), "admin token")?;
    let settings = settings(cli, &mcp_token, &admin_token, with_console, log)?;
    let server = match server::start(settings).await {
        Ok(server) => server,
        Err(error) => {
            if with_console && let Some(target) = running_server(cli, &error).await {
                return attach(target, args.no_color).await;
            }
            return Err(error.into());
        }
    };

    if with_console {
        return serve_with_console(server, args.no_color, args.drain_timeout).await;
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
    if let Some(addr) = server.metrics_addr {
        eprintln!("metrics at http://{addr}/metrics");
    }
    if server.tracing.is_on() {
        eprintln!("traces: sent over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
    match &server.control_socket {
        Some(path) => eprintln!(
            "consoles attach with `wasimancer console --port {}` (control socket {})",
            server.addr.port(),
            path.display()
        ),
        None => eprintln!("control socket: OFF (--no-control-socket)"),
    }
    let forced = CancellationToken::new();
    tokio::spawn(drain_on_signal(
        server.drainer(),
        server.shutdown_token(),
        args.drain_timeout,
        forced.clone(),
    ));
    reload_on_hangup(&server);
    tokio::select! {
        biased;
        _ = forced.cancelled() => Ok(ExitCode::FAILURE),
        _ = server.wait() => Ok(ExitCode::SUCCESS),
    }
}

/// When the port is taken by another wasimancer (its control socket
/// answers), ask the operator whether to attach to it instead.
async fn running_server(cli: &Cli, error: &StartError) -> Option<Target> {
    let StartError::Bind { addr, reason } = error else {
        return None;
    };
    if reason.kind() != std::io::ErrorKind::AddrInUse {
        return None;
    }
    let target = console_target(cli, None);
    let (welcome, _) = control::connect(&target).await.ok()?;
    let question = format!(
        "A wasimancer server (version {}, pid {}) already serves {addr}.\nAttach this console to it? [Y/n] ",
        welcome.server.version, welcome.server.pid
    );
    let yes = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, "{question}");
        let _ = stdout.flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_lowercase().as_str(), "" | "y" | "yes")
    })
    .await
    .unwrap_or(false);
    yes.then_some(target)
}

/// The console of this process's server, on a thread of its own: drawing
/// is blocking terminal I/O and must never hold up the server.
async fn serve_with_console(
    server: RunningServer,
    no_color: bool,
    drain_timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let shutdown = server.shutdown_token();
    tokio::spawn(drain_on_signal(
        server.drainer(),
        shutdown.clone(),
        drain_timeout,
        CancellationToken::new(),
    ));
    let target = Target::InProcess {
        hub: server.hub.clone(),
        shutdown: shutdown.clone(),
    };
    let stopped = match run_console(target, Role::Owner, no_color, shutdown.clone()).await? {
        Some(ConsoleExit::Quit) => None,
        Some(ConsoleExit::TerminalLost(reason)) => Some(format!("the console stopped ({reason})")),
        None => Some("the console stopped unexpectedly".to_string()),
    };
    match stopped {
        None => shutdown.cancel(),
        Some(why) => {
            let what = format!(
                "{why}; the server keeps serving at http://{}/mcp: stop it with Ctrl-C or SIGTERM, \
                 or attach a console with `wasimancer console --port {}`",
                server.addr,
                server.addr.port()
            );
            tracing::warn!("{what}");
            // The terminal, if it is still there, is the operator's again.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{what}");
        }
    }
    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// `wasimancer console`: attach, and detach on quit.
async fn attach(target: Target, no_color: bool) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    match run_console(target, Role::Attached, no_color, stop).await? {
        Some(ConsoleExit::Quit) => Ok(ExitCode::SUCCESS),
        Some(ConsoleExit::TerminalLost(reason)) => {
            tracing::warn!("console stopped: {reason}");
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

/// Run a console on its own thread until it ends; `None` if it panicked.
async fn run_console(
    target: Target,
    role: Role,
    no_color: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<ConsoleExit>> {
    let hangup = CancellationToken::new();
    watch_hangup(hangup.clone());
    let options = ConsoleOptions {
        target,
        role,
        no_color,
        runtime: tokio::runtime::Handle::current(),
        hangup,
        shutdown,
    };
    let console = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || console::run(options))
        .context("cannot start the console thread")?;
    Ok(tokio::task::spawn_blocking(move || console.join())
        .await
        .ok()
        .and_then(Result::ok))
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
    log: LogBuffer,
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
        metrics_listen: args.metrics_listen,
        registry: RegistryOptions {
            catalog_path: cli.plugins.plugins_file.clone(),
            runtime: commands::runtime_settings(&cli.plugins),
            // A console may attach at any time and open a call.
            keep_call_details: true,
        },
        definitions: cli.definitions.paths(),
        http: HttpOptions {
            mcp_token: mcp_token.0.clone(),
            allow: AllowList {
                hosts,
                origins: args.allowed_origins.clone(),
            },
            max_request_bytes: args.max_request_bytes,
            stateless: args.stateless,
            sessions: SessionLimits {
                max_sessions: args.max_sessions,
                idle_timeout: args.session_idle_timeout,
                hibernate_after: args.session_hibernate_after.0,
            },
            session_store: args.session_store.clone(),
            rate_limit: args.rate_limit.map(|PerSecond(per_second)| RateLimit {
                per_second,
                burst: args.rate_limit_burst.unwrap_or(per_second),
                by: args.rate_limit_by,
            }),
            metrics: match args.metrics_token.as_deref().map(str::trim) {
                None | Some("") => MetricsAccess::AdminToken,
                Some(NO_AUTHENTICATION) => MetricsAccess::Open,
                Some(token) => MetricsAccess::Token(Token::new(token)),
            },
            admin: AdminOptions {
                token: admin_token.0.clone(),
                upload_dir,
                max_upload_bytes: args.max_upload_bytes,
            },
        },
        audit_log: args.audit_log.clone().map(|path| AuditOptions {
            path,
            max_bytes: args.audit_log_max_bytes,
            keep: args.audit_log_keep,
        }),
        // The console's calls pane is the call log: a line per call in its
        // log pane too would only bury the server's own messages. With a log
        // file, the file gets them.
        log_calls: !with_console || args.log_file.is_some(),
        watch: args.watch,
        watch_poll: args.watch_poll,
        cluster_bus: args.cluster_bus.clone().or(args.session_store.clone()),
        log,
        tracing: Tracing::from_env()?,
        control_socket: match (&args.control_socket, args.no_control_socket) {
            (_, true) => None,
            (Some(path), false) => Some(ControlSocketPath::At(path.clone())),
            (None, false) => Some(ControlSocketPath::ForPort),
        },
    })
}

/// On Ctrl-C or SIGTERM, drain: refuse new work, let calls in flight finish
/// for at most `timeout`, then stop. A second signal stops at once (and
/// cancels `forced`).
async fn drain_on_signal(
    drainer: Drainer,
    shutdown: CancellationToken,
    timeout: std::time::Duration,
    forced: CancellationToken,
) {
    wait_for_stop_signal().await;
    tracing::info!("stop signal: draining (a second signal stops at once)");
    tokio::spawn(async move { drainer.drain(timeout).await });
    // Also after the drain: closing connections could still hang.
    wait_for_stop_signal().await;
    tracing::warn!("second stop signal: stopping now");
    // `forced` first: whoever waits for both sees that the stop was forced.
    forced.cancel();
    shutdown.cancel();
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Stop the console on Ctrl-C or SIGTERM.
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

/// Headless, SIGHUP re-reads plugins.yml (and resources.yml, prompts.yml), as daemons do.
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
