//! Starting and stopping the whole server: registry, HTTP, observers.
//! `main` builds [`Settings`] from the command line; tests build them by hand
//! and start the same server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{CatalogError, DefinitionError};
use crate::events::{self, EventBus};
use crate::http::{self, HttpOptions};
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
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Definitions(#[from] DefinitionError),
    #[error(transparent)]
    Admin(#[from] http::admin::AdminSetupError),
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
    shutdown: CancellationToken,
    http: JoinHandle<()>,
}

impl RunningServer {
    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the server stops (after the shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.http.await;
    }

    /// Stop serving and wait for open connections to close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Load the plugins, bind, and serve in the background.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let bus = EventBus::new();
    if let Some(path) = &settings.audit_log {
        tokio::spawn(events::write_audit_log(bus.subscribe(), path.clone()));
    }
    if settings.log_calls {
        tokio::spawn(events::log_calls(bus.subscribe()));
    }
    let registry = Registry::start(settings.registry.clone(), bus).await?;
    registry.load_definitions(&settings.definitions).await?;
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
    let shutdown = CancellationToken::new();
    let router = http::router(registry.clone(), &settings.http, shutdown.clone())?;
    if settings.watch {
        crate::watch::spawn(registry.clone(), shutdown.clone());
    }
    let http = tokio::spawn(http::serve(listener, router, shutdown.clone()));
    Ok(RunningServer {
        addr,
        registry,
        shutdown,
        http,
    })
}
