//! Wiring only: parse the command line, set up logging, run the command.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use wasimancer::cli::{Cli, Command, ServeArgs};
use wasimancer::commands::{self, call, check};
use wasimancer::http::{AllowList, HttpOptions, Token};
use wasimancer::registry::RegistryOptions;
use wasimancer::server::{self, Settings};

/// The value of WASIMANCER_AUTHENTICATION_TOKEN that turns authentication off (WASImancer's).
const NO_AUTHENTICATION: &str = "NO_AUTHENTICATION";

/// Without RUST_LOG: our own news, and only problems from the libraries.
/// extism logs every failed plugin call as an error; we report those ourselves.
const DEFAULT_LOG_FILTER: &str = "info,extism=off,wasmtime=warn,cranelift=warn,rmcp=warn";

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
            init_logging("warn,extism=off", None)?;
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
            init_logging("warn,extism=off", None)?;
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
    init_logging(DEFAULT_LOG_FILTER, cli.serve.log_file.as_deref())?;
    let (token, generated) = mcp_token(&cli.serve)?;
    let settings = settings(cli, token.clone());
    let server = server::start(settings).await?;
    let snapshot = server.registry.snapshot();
    let (loaded, failed) = snapshot.plugin_counts();
    eprintln!(
        "wasimancer {} serving {} tools from {loaded} plugins ({failed} failed) at http://{}/mcp",
        env!("CARGO_PKG_VERSION"),
        snapshot.tools.len(),
        server.addr
    );
    match (&token, generated) {
        (Some(token), true) => eprintln!(
            "MCP bearer token (generated, shown only now; set WASIMANCER_AUTHENTICATION_TOKEN to choose one): {}",
            token.reveal()
        ),
        (Some(_), false) => {
            eprintln!("MCP clients must send the bearer token from WASIMANCER_AUTHENTICATION_TOKEN")
        }
        (None, _) => eprintln!("MCP authentication is OFF (NO_AUTHENTICATION)"),
    }
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// The MCP token, and whether we generated it.
fn mcp_token(args: &ServeArgs) -> anyhow::Result<(Option<Token>, bool)> {
    match args.auth_token.as_deref().map(str::trim) {
        Some(NO_AUTHENTICATION) => Ok((None, false)),
        Some(token) if !token.is_empty() => Ok((Some(Token::new(token)), false)),
        _ => Ok((
            Some(Token::generate().context("cannot generate a bearer token")?),
            true,
        )),
    }
}

fn settings(cli: &Cli, mcp_token: Option<Token>) -> Settings {
    let args = &cli.serve;
    let listen = SocketAddr::new(args.host, args.port);
    let mut hosts = args.allowed_hosts.clone();
    // Serving on a specific address means answering to it.
    if !args.host.is_loopback() && !args.host.is_unspecified() {
        hosts.push(args.host.to_string());
    }
    Settings {
        listen,
        registry: RegistryOptions {
            catalog_path: cli.plugins.plugins_file.clone(),
            runtime: commands::runtime_settings(&cli.plugins),
            keep_call_details: false,
        },
        http: HttpOptions {
            mcp_token,
            allow: AllowList {
                hosts,
                origins: args.allowed_origins.clone(),
            },
            max_request_bytes: args.max_request_bytes,
            stateless: args.stateless,
        },
        audit_log: args.audit_log.clone(),
        log_calls: true,
    }
}

fn init_logging(default: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            use std::io::IsTerminal;
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder
                .with_ansi(colour)
                .with_writer(std::io::stderr)
                .init()
        }
    }
    Ok(())
}

async fn wait_for_signal() {
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
