//! The command line. Every setting is a flag with an environment variable
//! (WASImancer's where it has one), and `--help` shows both.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cluster::RedisUrl;
use crate::http::{PerSecond, RateKey};
use crate::registry::{DefinitionLocation, DefinitionPaths};

/// Serve the functions of Extism WebAssembly plugins as MCP tools, with a live
/// operator console.
#[derive(Debug, Parser)]
#[command(name = "wasimancer", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub plugins: PluginArgs,
    #[command(flatten)]
    pub definitions: DefinitionArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The options of `serve`, which is what runs without a subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP server, with the console when a terminal is attached (the default).
    Serve,
    /// Call one tool in-process (no server), print its output, exit non-zero on failure.
    Call {
        /// The tool name (or its displayName from plugins.yml).
        tool: String,
        /// The arguments as a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
    /// Check plugins.yml and every plugin (file, compilation, exports, WASI), print a table.
    Check,
    /// Attach the console to a server that is already running: on this
    /// machine through its control socket (found from --port, or
    /// --control-socket), or anywhere with --url and the admin token.
    /// Quitting detaches; the server keeps serving.
    Console {
        /// Attach over HTTP to the server at this address (http://HOST:PORT),
        /// with the admin token (--admin-token / WASIMANCER_ADMIN_TOKEN).
        #[arg(long, env = "WASIMANCER_URL")]
        url: Option<String>,
    },
    /// Print what a running server serves (its plugins, counters, recent
    /// calls), from its control socket or --url, and exit.
    Status {
        /// Ask the server at this address (http://HOST:PORT), with the admin token.
        #[arg(long, env = "WASIMANCER_URL")]
        url: Option<String>,
    },
}

/// Where the plugins are.
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    /// plugins.yml. Relative to the plugins folder when it comes from
    /// PLUGINS_DEFINITION_FILE or when PLUGINS_PATH is set (as in WASImancer),
    /// otherwise to the current folder.
    #[arg(
        long,
        env = "PLUGINS_DEFINITION_FILE",
        default_value = "plugins.yml",
        global = true
    )]
    pub plugins_file: PathBuf,
    /// The plugins folder: `path:` entries resolve here, nothing outside it is read or written.
    #[arg(long, env = "PLUGINS_PATH", default_value = "plugins", global = true)]
    pub plugins_dir: PathBuf,
    /// Calls that find every instance of a plugin busy wait this long, then fail as busy.
    #[arg(
        long,
        env = "WASIMANCER_QUEUE_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub queue_timeout_ms: u64,
    /// Calls of a function whose last 32 calls each took less than this many
    /// microseconds run on the thread that received them, without the hop to
    /// a blocking thread (0: never). Time and memory limits apply either way.
    #[arg(
        long,
        env = "WASIMANCER_INLINE_BUDGET_US",
        default_value_t = 500,
        global = true
    )]
    pub inline_budget_us: u64,
    /// The largest plugin output handed back to a caller.
    #[arg(long, env = "WASIMANCER_MAX_OUTPUT_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_output_bytes: usize,
    /// Instances per plugin when plugins.yml sets no `instances` [default: cores, 2 to 8].
    #[arg(long, env = "WASIMANCER_INSTANCES", global = true)]
    pub instances: Option<usize>,
    /// Where compiled modules are cached [default: $XDG_CACHE_HOME/wasimancer or ~/.cache/wasimancer].
    #[arg(long, env = "WASIMANCER_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Compile every module from scratch, keep no cache.
    #[arg(long, env = "WASIMANCER_NO_CACHE", value_parser = BoolishValueParser::new(), global = true)]
    pub no_cache: bool,
}

/// Where resources.yml and prompts.yml are.
#[derive(Debug, Clone, Args)]
pub struct DefinitionArgs {
    /// resources.yml (static resources and URI templates, WASImancer's format).
    /// Relative to --resources-dir when that is set or when it comes from
    /// RESOURCES_DEFINITION_FILE, otherwise to the folder of plugins.yml, unless
    /// given on the command line. Served when it exists.
    #[arg(
        long,
        env = "RESOURCES_DEFINITION_FILE",
        default_value = "resources.yml",
        global = true
    )]
    pub resources_file: PathBuf,
    /// The folder of resources.yml [default: the folder of plugins.yml].
    #[arg(long, env = "RESOURCES_PATH", global = true)]
    pub resources_dir: Option<PathBuf>,
    /// prompts.yml (predefined prompts, WASImancer's format); found like resources.yml.
    #[arg(
        long,
        env = "PROMPTS_DEFINITION_FILE",
        default_value = "prompts.yml",
        global = true
    )]
    pub prompts_file: PathBuf,
    /// The folder of prompts.yml [default: the folder of plugins.yml].
    #[arg(long, env = "PROMPTS_PATH", global = true)]
    pub prompts_dir: Option<PathBuf>,
    /// Where the two files were found to be, once the command line is read.
    #[arg(skip)]
    resolved: DefinitionPaths,
}

impl DefinitionArgs {
    /// Where resources.yml and prompts.yml are.
    pub fn paths(&self) -> DefinitionPaths {
        self.resolved.clone()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Run the server alone, without the console (also when no terminal is attached).
    #[arg(long, env = "WASIMANCER_HEADLESS", value_parser = BoolishValueParser::new(), global = true)]
    pub headless: bool,
    /// Address to listen on. Anything but loopback also needs --allowed-host.
    #[arg(
        long,
        env = "WASIMANCER_HOST",
        default_value = "127.0.0.1",
        global = true
    )]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "HTTP_PORT", default_value_t = 3001, global = true)]
    pub port: u16,
    /// Bearer token MCP clients must send. NO_AUTHENTICATION turns the check off;
    /// when unset, a token is generated and shown once.
    #[arg(
        long,
        env = "WASIMANCER_AUTHENTICATION_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub auth_token: Option<String>,
    /// Another Host name this server answers to (repeat or separate with commas; `*` for any).
    #[arg(
        long = "allowed-host",
        env = "WASIMANCER_ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_hosts: Vec<String>,
    /// A browser Origin allowed to call, like https://app.example.com (loopback origins always are).
    #[arg(
        long = "allowed-origin",
        env = "WASIMANCER_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,
    /// Bearer token of the admin API (upload, update, remove, reload); generated
    /// and shown once when unset. NO_AUTHENTICATION turns the check off.
    #[arg(
        long,
        env = "WASIMANCER_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// Where uploaded modules are stored; must be inside the plugins folder [default: the plugins folder].
    #[arg(long, env = "UPLOAD_PATH", global = true)]
    pub upload_dir: Option<PathBuf>,
    /// Largest admin API request (an upload), in bytes.
    #[arg(long, env = "WASIMANCER_MAX_UPLOAD_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub max_upload_bytes: usize,
    /// Reload what changed when plugins.yml or a module changes on disk.
    #[arg(long, env = "WASIMANCER_WATCH", value_parser = BoolishValueParser::new(), global = true)]
    pub watch: bool,
    /// With --watch: look at the files this often instead of waiting for the
    /// kernel to tell (it already does every 1s on NFS, SMB, CephFS, FUSE): 2s, 500ms.
    #[arg(long, env = "WASIMANCER_WATCH_POLL", value_parser = parse_duration, requires = "watch", global = true)]
    pub watch_poll: Option<Duration>,
    /// Largest request body on /mcp, in bytes.
    #[arg(long, env = "WASIMANCER_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024, global = true)]
    pub max_request_bytes: usize,
    /// The most MCP sessions open at once; a client that would open one more
    /// is refused (503) until one closes or expires.
    #[arg(
        long,
        env = "WASIMANCER_MAX_SESSIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub max_sessions: u64,
    /// An MCP session whose client has sent nothing and holds no stream open
    /// for this long is closed (its client then starts a new one): 300, 300s, 5m.
    #[arg(
        long,
        env = "WASIMANCER_SESSION_IDLE_TIMEOUT",
        default_value = "5m",
        value_parser = parse_duration,
        global = true
    )]
    pub session_idle_timeout: Duration,
    /// An MCP session whose client has sent nothing and holds no stream open
    /// for this long is put to sleep: it keeps its handshake only (about 6 KB
    /// instead of 70) until its next request wakes it, which the client does
    /// not notice. `never` keeps every session awake.
    #[arg(
        long,
        env = "WASIMANCER_SESSION_HIBERNATE_AFTER",
        default_value = "10s",
        value_parser = parse_duration_or_never,
        global = true
    )]
    pub session_hibernate_after: OrNever,
    /// At most this many requests a second to /mcp per client (20 or 20/s);
    /// more are answered 429 with Retry-After [default: no limit].
    #[arg(long, env = "WASIMANCER_RATE_LIMIT", global = true)]
    pub rate_limit: Option<PerSecond>,
    /// How many requests a client may send at once within --rate-limit [default: the rate].
    #[arg(long, env = "WASIMANCER_RATE_LIMIT_BURST", global = true)]
    pub rate_limit_burst: Option<NonZeroU32>,
    /// What a client is to --rate-limit: its peer address, or its bearer token.
    #[arg(
        long,
        env = "WASIMANCER_RATE_LIMIT_BY",
        value_enum,
        default_value_t = RateKey::Peer,
        global = true
    )]
    pub rate_limit_by: RateKey,
    /// On SIGTERM or SIGINT, how long calls in flight may take to finish
    /// before the server stops anyway (a second signal stops it at once): 30, 30s, 2m.
    #[arg(
        long,
        env = "WASIMANCER_DRAIN_TIMEOUT",
        default_value = "30s",
        value_parser = parse_duration,
        global = true
    )]
    pub drain_timeout: Duration,
    /// Bearer token of /metrics [default: the admin token].
    #[arg(
        long,
        env = "WASIMANCER_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<String>,
    /// Serve /metrics on this address (like 127.0.0.1:9464) instead of beside
    /// /mcp; there it needs --metrics-token only when one is set.
    #[arg(long, env = "WASIMANCER_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// No MCP sessions: every request stands alone (for several instances behind a load balancer).
    #[arg(long, env = "WASIMANCER_STATELESS", value_parser = BoolishValueParser::new(), global = true)]
    pub stateless: bool,
    /// Keep MCP sessions in this Redis (redis://HOST:PORT/DB), so that any
    /// replica behind a load balancer serves any session; it also carries
    /// plugin changes between replicas unless --cluster-bus says otherwise.
    #[arg(
        long,
        env = "WASIMANCER_SESSION_STORE",
        hide_env_values = true,
        global = true
    )]
    pub session_store: Option<RedisUrl>,
    /// Tell the other replicas of plugin changes made here (they share the
    /// plugins folder) and apply theirs, through this Redis [default: --session-store].
    #[arg(
        long,
        env = "WASIMANCER_CLUSTER_BUS",
        hide_env_values = true,
        global = true
    )]
    pub cluster_bus: Option<RedisUrl>,
    /// Append a JSON line per call (time, client, session, tool, outcome,
    /// duration, redacted arguments) and per plugin change to this file.
    #[arg(long, env = "WASIMANCER_AUDIT_LOG", global = true)]
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log when it reaches this many bytes (FILE becomes FILE.1).
    #[arg(long, env = "WASIMANCER_AUDIT_LOG_MAX_BYTES", default_value_t = 64 * 1024 * 1024, global = true)]
    pub audit_log_max_bytes: u64,
    /// How many rotated audit logs (FILE.1, FILE.2…) are kept.
    #[arg(
        long,
        env = "WASIMANCER_AUDIT_LOG_KEEP",
        default_value_t = 4,
        global = true
    )]
    pub audit_log_keep: usize,
    /// Write the server log to this file (with the console, the log otherwise only shows in it).
    #[arg(long, env = "WASIMANCER_LOG_FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Where consoles attach to this server: a Unix socket, made 0600 in a
    /// folder only its owner may enter [default:
    /// $XDG_RUNTIME_DIR/wasimancer/PORT.sock, /run/wasimancer/PORT.sock for root].
    #[arg(long, env = "WASIMANCER_CONTROL_SOCKET", global = true)]
    pub control_socket: Option<PathBuf>,
    /// Open no control socket: `wasimancer console` cannot attach (over
    /// HTTP it still can, with the admin token).
    #[arg(
        long,
        env = "WASIMANCER_NO_CONTROL_SOCKET",
        conflicts_with = "control_socket",
        value_parser = BoolishValueParser::new(),
        global = true
    )]
    pub no_control_socket: bool,
    /// Monochrome console (also when NO_COLOR is set to anything).
    #[arg(long, env = "NO_COLOR", value_parser = non_empty_is_true, global = true)]
    pub no_color: bool,
}

/// A duration, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrNever(pub Option<Duration>);

fn parse_duration_or_never(text: &str) -> Result<OrNever, String> {
    if text.trim() == "never" {
        return Ok(OrNever(None));
    }
    parse_duration(text)
        .map(|duration| OrNever(Some(duration)))
        .map_err(|error| format!("{error}, or never"))
}

/// A duration: seconds (`30`), or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write 30, 30s, 500ms, 5m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h"
            ));
        }
    };
    if seconds <= 0.0 {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// NO_COLOR is on when set to any non-empty value.
fn non_empty_is_true(value: &str) -> Result<bool, String> {
    Ok(!value.is_empty() && value != "false")
}

impl Cli {
    /// Parse the command line, resolving plugins.yml the way WASImancer does.
    pub fn parse_resolved() -> Self {
        let matches = Self::command().get_matches();
        Self::from_matches(&matches)
    }

    /// Like [`Cli::parse_resolved`], from given arguments (for tests).
    pub fn try_parse_resolved<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        Ok(Self::from_matches(&matches))
    }

    fn from_matches(matches: &ArgMatches) -> Self {
        let mut cli = match Self::from_arg_matches(matches) {
            Ok(cli) => cli,
            Err(error) => error.exit(),
        };
        // WASImancer reads `$PLUGINS_PATH/$PLUGINS_DEFINITION_FILE`.
        let file_source = source(matches, "plugins_file");
        let dir_source = source(matches, "plugins_dir");
        let file_from_command_line = file_source == Some(ValueSource::CommandLine);
        let wasimancer_layout = file_source == Some(ValueSource::EnvVariable)
            || dir_source == Some(ValueSource::EnvVariable);
        if !file_from_command_line && wasimancer_layout && cli.plugins.plugins_file.is_relative() {
            cli.plugins.plugins_file = cli.plugins.plugins_dir.join(&cli.plugins.plugins_file);
        }
        let plugins_file = &cli.plugins.plugins_file;
        let definitions = &mut cli.definitions;
        definitions.resolved = DefinitionPaths {
            resources: Some(locate(
                matches,
                "resources_file",
                &definitions.resources_file,
                definitions.resources_dir.as_deref(),
                plugins_file,
            )),
            prompts: Some(locate(
                matches,
                "prompts_file",
                &definitions.prompts_file,
                definitions.prompts_dir.as_deref(),
                plugins_file,
            )),
        };
        cli
    }
}

/// Where a definition file is: as given on the command line, else in its
/// folder (WASImancer's `$RESOURCES_PATH/$RESOURCES_DEFINITION_FILE`), else
/// beside plugins.yml.
fn locate(
    matches: &ArgMatches,
    file_id: &str,
    file: &Path,
    dir: Option<&Path>,
    plugins_file: &Path,
) -> DefinitionLocation {
    let file_source = source(matches, file_id);
    let named = matches!(
        file_source,
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let path = if file_source == Some(ValueSource::CommandLine) || file.is_absolute() {
        file.to_path_buf()
    } else {
        let folder = dir.unwrap_or_else(|| plugins_file.parent().unwrap_or(Path::new("")));
        folder.join(file)
    };
    DefinitionLocation {
        path,
        configured: named || dir.is_some(),
    }
}

/// Where a value came from; global args may be recorded on the subcommand.
fn source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    let own = matches.value_source(id);
    let sub = matches
        .subcommand()
        .and_then(|(_, sub)| sub.value_source(id));
    match (own, sub) {
        (Some(ValueSource::CommandLine), _) | (_, Some(ValueSource::CommandLine)) => {
            Some(ValueSource::CommandLine)
        }
        (Some(ValueSource::EnvVariable), _) | (_, Some(ValueSource::EnvVariable)) => {
            Some(ValueSource::EnvVariable)
        }
        (own, sub) => own.or(sub),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_serve_the_current_folder_on_loopback() {
        let cli = Cli::try_parse_resolved(["wasimancer"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.plugins.plugins_file, PathBuf::from("plugins.yml"));
        assert_eq!(cli.plugins.plugins_dir, PathBuf::from("plugins"));
        assert_eq!(cli.serve.port, 3001);
        assert!(cli.serve.host.is_loopback());
    }

    #[test]
    fn sessions_sleep_after_ten_seconds_a_given_time_or_never() {
        let sleep = |args: &[&str]| {
            let args = std::iter::once("wasimancer").chain(args.iter().copied());
            Cli::try_parse_resolved(args).map(|cli| cli.serve.session_hibernate_after)
        };
        assert_eq!(sleep(&[]).unwrap(), OrNever(Some(Duration::from_secs(10))));
        assert_eq!(
            sleep(&["--session-hibernate-after", "500ms"]).unwrap(),
            OrNever(Some(Duration::from_millis(500)))
        );
        assert_eq!(
            sleep(&["--session-hibernate-after", "never"]).unwrap(),
            OrNever(None)
        );
        let wrong = sleep(&["--session-hibernate-after", "soon"]).unwrap_err();
        assert!(wrong.to_string().contains("or never"), "{wrong}");
    }

    #[test]
    fn a_plugins_file_given_on_the_command_line_is_taken_as_is() {
        let cli = Cli::try_parse_resolved([
            "wasimancer",
            "--plugins-dir",
            "/srv/p",
            "--plugins-file",
            "conf/plugins.yml",
            "check",
        ])
        .unwrap();
        assert_eq!(cli.plugins.plugins_file, PathBuf::from("conf/plugins.yml"));
        assert!(matches!(cli.command, Some(Command::Check)));
    }

    #[test]
    fn definition_files_sit_beside_plugins_yml_or_where_they_are_named() {
        let cli =
            Cli::try_parse_resolved(["wasimancer", "--plugins-file", "conf/plugins.yml"]).unwrap();
        let paths = cli.definitions.paths();
        let resources = paths.resources.unwrap();
        assert_eq!(resources.path, PathBuf::from("conf/resources.yml"));
        assert!(!resources.configured);
        assert_eq!(
            paths.prompts.unwrap().path,
            PathBuf::from("conf/prompts.yml")
        );

        let cli = Cli::try_parse_resolved([
            "wasimancer",
            "--resources-dir",
            "/srv/resources",
            "--prompts-file",
            "my/prompts.yml",
        ])
        .unwrap();
        let paths = cli.definitions.paths();
        let resources = paths.resources.unwrap();
        assert_eq!(
            resources.path,
            PathBuf::from("/srv/resources/resources.yml")
        );
        assert!(resources.configured);
        let prompts = paths.prompts.unwrap();
        assert_eq!(prompts.path, PathBuf::from("my/prompts.yml"));
        assert!(prompts.configured);
    }

    #[test]
    fn console_attaches_by_port_socket_or_url() {
        let cli = Cli::try_parse_resolved(["wasimancer", "console", "--port", "4000"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Console { url: None })));
        assert_eq!(cli.serve.port, 4000);
        let cli =
            Cli::try_parse_resolved(["wasimancer", "console", "--url", "http://10.0.0.5:3001"])
                .unwrap();
        assert!(
            matches!(cli.command, Some(Command::Console { url: Some(ref url) }) if url == "http://10.0.0.5:3001")
        );
        assert!(
            Cli::try_parse_resolved([
                "wasimancer",
                "--no-control-socket",
                "--control-socket",
                "/tmp/x.sock"
            ])
            .is_err()
        );
    }

    #[test]
    fn call_takes_a_tool_and_json() {
        let cli = Cli::try_parse_resolved(["wasimancer", "call", "rollDice", r#"{"numDice":2}"#])
            .unwrap();
        let Some(Command::Call { tool, arguments }) = cli.command else {
            panic!("expected call");
        };
        assert_eq!(tool, "rollDice");
        assert_eq!(arguments, r#"{"numDice":2}"#);
    }
}
