//! Starting and stopping the whole server: registry, HTTP, observers.
//! `main` builds [`Settings`] from the command line; tests build them by hand
//! and start the same server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{CatalogError, DefinitionError};
use crate::control::{ControlSocket, Hub, HubSettings, SocketError};
use crate::events::{self, EventBus};
use crate::http::{self, HttpOptions};
use crate::logging::LogBuffer;
use crate::registry::{DefinitionPaths, Registry, RegistryOptions};

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub registry: RegistryOptions,
    /// resources.yml and prompts.yml.
    pub definitions: DefinitionPaths,
    pub http: HttpOptions,
    /// Append every event as JSON to this file.
    pub audit_log: Option<PathBuf>,
    /// Log one line per call through tracing.
    pub log_calls: bool,
    /// Reload what changes on disk.
    pub watch: bool,
    /// The server log as consoles see it (the logger writes into it).
    pub log: LogBuffer,
    /// Where consoles attach (`None`: nowhere but over the admin HTTP side).
    pub control_socket: Option<ControlSocketPath>,
}

/// Where the control socket goes.
#[derive(Debug, Clone)]
pub enum ControlSocketPath {
    /// The default for the port the server gets (see `control::socket::default_path`).
    ForPort,
    At(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Definitions(#[from] DefinitionError),
    #[error(transparent)]
    Admin(#[from] http::admin::AdminSetupError),
    #[error(transparent)]
    ControlSocket(#[from] SocketError),
    #[error(
        "cannot listen on {addr}: {reason} (choose another with --port / HTTP_PORT, or --host)"
    )]
    Bind {
        addr: SocketAddr,
        /// Not a `#[source]`: the message says it already, and `{:#}`
        /// would print it twice.
        reason: std::io::Error,
    },
}

/// A server that is up: its address, its registry, and the means to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub registry: Registry,
    /// What consoles attach to.
    pub hub: Hub,
    /// Where the control socket is, if there is one.
    pub control_socket: Option<PathBuf>,
    shutdown: CancellationToken,
    http: JoinHandle<()>,
    control: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the server stops (after the shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.http.await;
        // The socket file goes with the listener.
        if let Some(control) = self.control {
            let _ = control.await;
        }
    }

    /// Stop serving and wait for open connections to close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Bind, load the plugins, and serve in the background. Binding comes
/// first, so a busy port fails at once rather than after every plugin has
/// compiled.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|reason| StartError::Bind {
            addr: settings.listen,
            reason,
        })?;
    let addr = listener.local_addr().map_err(|reason| StartError::Bind {
        addr: settings.listen,
        reason,
    })?;
    let control_socket = match &settings.control_socket {
        None => None,
        Some(ControlSocketPath::ForPort) => Some(ControlSocket::bind(
            &crate::control::socket::default_path(addr.port()),
        )?),
        Some(ControlSocketPath::At(path)) => Some(ControlSocket::bind(path)?),
    };
    let bus = EventBus::new();
    if let Some(path) = &settings.audit_log {
        tokio::spawn(events::write_audit_log(bus.subscribe(), path.clone()));
    }
    if settings.log_calls {
        tokio::spawn(events::log_calls(bus.subscribe()));
    }
    let registry = Registry::start(settings.registry.clone(), bus).await?;
    registry.load_definitions(&settings.definitions).await?;
    let hub = Hub::new(
        registry.clone(),
        settings.log.clone(),
        HubSettings {
            address: addr,
            mcp_token: settings.http.mcp_token.clone(),
            admin_token: settings.http.admin.token.clone(),
            stateless: settings.http.stateless,
        },
    );
    let shutdown = CancellationToken::new();
    let router = http::router(&hub, &settings.http, shutdown.clone())?;
    if settings.watch {
        crate::watch::spawn(registry.clone(), shutdown.clone());
    }
    let control_path = control_socket.as_ref().map(|s| s.path().to_path_buf());
    let control =
        control_socket.map(|socket| tokio::spawn(socket.serve(hub.clone(), shutdown.clone())));
    let http = tokio::spawn(http::serve(listener, router, shutdown.clone()));
    Ok(RunningServer {
        addr,
        registry,
        hub,
        control_socket: control_path,
        shutdown,
        http,
        control,
    })
}
