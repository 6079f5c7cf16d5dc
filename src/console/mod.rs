//! The operator console: a live dashboard of the server in the terminal.

use std::net::SocketAddr;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::http::Token;
use crate::logging::LogBuffer;
use crate::registry::Registry;

/// Everything the console needs from the running server.
pub struct ConsoleContext {
    pub registry: Registry,
    /// Where the server listens.
    pub address: SocketAddr,
    /// The MCP bearer token (`None`: authentication is off).
    pub mcp_token: Option<Token>,
    /// The admin API token (`None`: the admin API is off).
    pub admin_token: Option<Token>,
    /// The server log, shown in a pane.
    pub log: LogBuffer,
    pub no_color: bool,
    /// When the server started, for the uptime.
    pub started: Instant,
    /// The server's runtime, to run calls and reloads from the console.
    pub runtime: tokio::runtime::Handle,
    /// Cancelled when the terminal hangs up (SIGHUP): the console stops and
    /// the server keeps serving.
    pub hangup: CancellationToken,
}

/// Why the console stopped.
#[derive(Debug)]
pub enum ConsoleExit {
    /// The operator quit: stop the server too.
    Quit,
    /// The terminal went away (hang-up, write error): keep serving.
    TerminalLost(String),
}

/// Run the console on the current thread until the operator quits or the
/// terminal goes away.
pub fn run(context: ConsoleContext) -> ConsoleExit {
    let _ = context;
    ConsoleExit::TerminalLost("the console is not built yet".into())
}
