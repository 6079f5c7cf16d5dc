//! The command line. Every setting is a flag with an environment variable
//! (WASImancer's where it has one), and `--help` shows both.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Serve the functions of Extism WebAssembly plugins as MCP tools, with a live
/// operator console.
#[derive(Debug, Parser)]
#[command(name = "wasimancer", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub plugins: PluginArgs,
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
    #[arg(long, env = "WASIMANCER_NO_CACHE", global = true)]
    pub no_cache: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Run the server alone, without the console (also when no terminal is attached).
    #[arg(long, env = "WASIMANCER_HEADLESS", global = true)]
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
    #[arg(long, env = "WASIMANCER_WATCH", global = true)]
    pub watch: bool,
    /// Largest request body on /mcp, in bytes.
    #[arg(long, env = "WASIMANCER_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024, global = true)]
    pub max_request_bytes: usize,
    /// An MCP session with no request for this many seconds is closed (its
    /// client then starts a new one).
    #[arg(
        long,
        env = "WASIMANCER_SESSION_IDLE_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub session_idle_secs: u64,
    /// No MCP sessions: every request stands alone (for several instances behind a load balancer).
    #[arg(long, env = "WASIMANCER_STATELESS", global = true)]
    pub stateless: bool,
    /// Append every call and plugin change as a JSON line to this file.
    #[arg(long, env = "WASIMANCER_AUDIT_LOG", global = true)]
    pub audit_log: Option<PathBuf>,
    /// Write the server log to this file (with the console, the log otherwise only shows in it).
    #[arg(long, env = "WASIMANCER_LOG_FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Monochrome console (also when NO_COLOR is set to anything).
    #[arg(long, env = "NO_COLOR", value_parser = non_empty_is_true, global = true)]
    pub no_color: bool,
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
        cli
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
