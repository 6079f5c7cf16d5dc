//! Starting and stopping the whole server: registry, HTTP, observers.
//! `main` builds [`Settings`] from the command line; tests build them by hand
//! and start the same server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditOptions;
use crate::catalog::{CatalogError, DefinitionError};
use crate::control::{ControlSocket, Hub, HubSettings, SocketError};
use crate::events::EventBus;
use crate::http::{self, HttpOptions, McpEndpoint, Observed};
use crate::logging::LogBuffer;
use crate::metrics::{Exposition, HttpMetrics};
use crate::operations::Operations;
use crate::registry::{DefinitionPaths, Registry, RegistryOptions};
use crate::telemetry::Tracing;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Serve `/metrics` on this address instead of beside `/mcp`.
    pub metrics_listen: Option<SocketAddr>,
    pub registry: RegistryOptions,
    /// resources.yml and prompts.yml.
    pub definitions: DefinitionPaths,
    pub http: HttpOptions,
    /// Write a JSON line per call and per plugin change to this file.
    pub audit_log: Option<AuditOptions>,
    /// Log one line per call through tracing.
    pub log_calls: bool,
    /// Reload what changes on disk.
    pub watch: bool,
    /// With `watch`: look at the files this often instead of waiting for the
    /// kernel to tell (`None`: only where it cannot, on network filesystems).
    pub watch_poll: Option<std::time::Duration>,
    /// Tell the other replicas of this one's plugin changes, and apply
    /// theirs, through this Redis (`--cluster-bus`).
    pub cluster_bus: Option<crate::cluster::RedisUrl>,
    /// Where spans go: off, or OTLP (see `telemetry`).
    pub tracing: Tracing,
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
    /// Where `/metrics` is served when it has a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub registry: Registry,
    /// What consoles attach to.
    pub hub: Hub,
    /// Where the control socket is, if there is one.
    pub control_socket: Option<PathBuf>,
    pub operations: Operations,
    /// Where spans go (sent off when the server stops).
    pub tracing: Tracing,
    drainer: Drainer,
    shutdown: CancellationToken,
    http: Vec<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every call in flight finished and was answered.
    Finished,
    /// The drain timeout passed first; what still ran was cut off.
    TimedOut,
    /// Another drain is already under way.
    AlreadyDraining,
}

impl RunningServer {
    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop gracefully; see [`Drainer::drain`].
    pub async fn drain(&self, timeout: Duration) -> Drained {
        self.drainer.drain(timeout).await
    }

    /// What drains this server, for a task of its own while the server is
    /// waited for.
    pub fn drainer(&self) -> Drainer {
        self.drainer.clone()
    }

    /// Wait until the server stops (after the shutdown token is cancelled).
    pub async fn wait(self) {
        for http in self.http {
            let _ = http.await;
        }
        // The socket file goes with the listener.
        if let Some(control) = self.control {
            let _ = control.await;
        }
        // The last spans leave before the process does.
        self.tracing.shutdown().await;
    }

    /// Stop serving and wait for open connections to close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// What stops a server gracefully.
#[derive(Clone)]
pub struct Drainer {
    operations: Operations,
    registry: Registry,
    endpoint: McpEndpoint,
    shutdown: CancellationToken,
}

impl Drainer {
    /// Stop gracefully: `/ready` turns 503, new sessions and requests are
    /// refused, the streams clients listen on are closed, and calls in
    /// flight finish and are answered (for at most `timeout`); then every
    /// session is closed and the server stops.
    pub async fn drain(&self, timeout: Duration) -> Drained {
        if !self.operations.start_draining() {
            return Drained::AlreadyDraining;
        }
        let registry = &self.registry;
        tracing::info!(
            calls_in_flight = registry.metrics().in_flight(),
            "draining: refusing new sessions and requests, waiting up to {} s for calls in flight",
            timeout.as_secs_f64()
        );
        let sessions = self.endpoint.sessions();
        if let Some(sessions) = sessions {
            sessions.close_listening_streams().await;
        }
        let finished = self
            .operations
            .settle(timeout, || registry.metrics().in_flight() == 0)
            .await;
        if finished {
            tracing::info!("drained: every call in flight finished");
        } else {
            tracing::warn!(
                calls_in_flight = registry.metrics().in_flight(),
                "drain timeout reached: stopping with calls still in flight"
            );
        }
        if let Some(sessions) = sessions {
            sessions.close_all().await;
        }
        self.shutdown.cancel();
        if finished {
            Drained::Finished
        } else {
            Drained::TimedOut
        }
    }
}

/// Bind, load the plugins, and serve in the background. Binding comes
/// first, so a busy port fails at once rather than after every plugin has
/// compiled.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let bind = |addr: SocketAddr| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|reason| StartError::Bind { addr, reason })?;
        let local = listener
            .local_addr()
            .map_err(|reason| StartError::Bind { addr, reason })?;
        Ok::<_, StartError>((listener, local))
    };
    let (listener, addr) = bind(settings.listen).await?;
    let metrics_listener = match settings.metrics_listen {
        Some(listen) => Some(bind(listen).await?),
        None => None,
    };
    let control_socket = match &settings.control_socket {
        None => None,
        Some(ControlSocketPath::ForPort) => Some(ControlSocket::bind(
            &crate::control::socket::default_path(addr.port()),
        )?),
        Some(ControlSocketPath::At(path)) => Some(ControlSocket::bind(path)?),
    };
    let bus = EventBus::new().logging_calls(settings.log_calls);
    if let Some(options) = &settings.audit_log {
        tokio::spawn(crate::audit::write(bus.subscribe(), options.clone()));
    }
    // plugins.yml is read now (a broken one stops the start); the plugins
    // load while the server already listens, not ready until they have.
    let registry = Registry::open(settings.registry.clone(), bus)?;
    registry.trace_with(settings.tracing.clone());
    let operations = Operations::new();
    let hub = Hub::new(
        registry.clone(),
        operations.clone(),
        settings.log.clone(),
        HubSettings {
            address: addr,
            mcp_token: settings.http.mcp_token.clone(),
            admin_token: settings.http.admin.token.clone(),
            stateless: settings.http.stateless,
        },
    );
    let http_metrics = HttpMetrics::default();
    let observed = Observed {
        exposition: Exposition::new(&registry, &operations, &http_metrics),
        http: http_metrics,
        operations: operations.clone(),
        metrics_on_main: metrics_listener.is_none(),
        tracing: settings.tracing.clone(),
    };
    let shutdown = CancellationToken::new();
    let (router, endpoint) = http::router(&hub, &settings.http, &observed, shutdown.clone())?;
    let mut http = vec![tokio::spawn(http::serve(
        listener,
        router,
        shutdown.clone(),
    ))];
    let metrics_addr = metrics_listener.map(|(listener, local)| {
        let router = http::metrics_routes(
            observed.exposition.clone(),
            settings.http.metrics.token_alone(),
        );
        http.push(tokio::spawn(http::serve(
            listener,
            router,
            shutdown.clone(),
        )));
        local
    });
    let loaded = async {
        registry.load_all("startup").await;
        registry.load_definitions(&settings.definitions).await
    };
    if let Err(error) = loaded.await {
        shutdown.cancel();
        for task in http {
            let _ = task.await;
        }
        return Err(error.into());
    }
    operations.serving();
    if settings.watch {
        crate::watch::spawn(registry.clone(), settings.watch_poll, shutdown.clone());
    }
    if let Some(bus) = &settings.cluster_bus {
        crate::cluster::changes::spawn(registry.clone(), bus, shutdown.clone());
    }
    let control_path = control_socket.as_ref().map(|s| s.path().to_path_buf());
    let control =
        control_socket.map(|socket| tokio::spawn(socket.serve(hub.clone(), shutdown.clone())));
    Ok(RunningServer {
        addr,
        metrics_addr,
        registry: registry.clone(),
        hub,
        control_socket: control_path,
        drainer: Drainer {
            operations: operations.clone(),
            registry,
            endpoint,
            shutdown: shutdown.clone(),
        },
        operations,
        tracing: settings.tracing,
        shutdown,
        http,
        control,
    })
}
