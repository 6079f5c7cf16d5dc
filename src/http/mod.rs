//! The HTTP server: `/mcp` (Streamable HTTP, via rmcp), `/health`, and the
//! admin API, each behind the checks it needs.

pub mod admin;
pub mod guard;
mod mcp_endpoint;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use guard::{AllowList, BearerAuth, Token};
pub use mcp_endpoint::McpEndpoint;
pub(crate) use mcp_endpoint::opens_session;

use crate::registry::Registry;

/// How the HTTP side is set up.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bearer token for `/mcp`; `None` turns authentication off.
    pub mcp_token: Option<Token>,
    pub allow: AllowList,
    /// Largest `/mcp` request body.
    pub max_request_bytes: usize,
    /// Serve every request without sessions (for load-balanced deployments).
    pub stateless: bool,
    /// A session with no request for this long is closed: clients that go
    /// away without closing theirs must not hold memory forever.
    pub session_idle_timeout: std::time::Duration,
    pub admin: AdminOptions,
}

/// The admin API's settings.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Bearer token; `None` turns the check off.
    pub token: Option<Token>,
    /// Where uploaded modules go; inside the plugins folder.
    pub upload_dir: PathBuf,
    /// Largest admin request body.
    pub max_upload_bytes: usize,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            token: None,
            upload_dir: PathBuf::from("plugins"),
            max_upload_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            mcp_token: None,
            allow: AllowList::default(),
            max_request_bytes: 4 * 1024 * 1024,
            stateless: false,
            session_idle_timeout: std::time::Duration::from_secs(300),
            admin: AdminOptions::default(),
        }
    }
}

/// All routes, with their guards.
pub fn router(
    registry: Registry,
    options: &HttpOptions,
    shutdown: CancellationToken,
) -> Result<Router, admin::AdminSetupError> {
    let mcp_auth = Arc::new(BearerAuth {
        token: options.mcp_token.clone(),
        realm: "wasimancer",
        hint: "The token is WASIMANCER_AUTHENTICATION_TOKEN (or --auth-token), printed once at start when generated.",
    });
    let endpoint = McpEndpoint::new(registry.clone(), options, shutdown);
    let mcp = Router::new()
        .route(
            "/mcp",
            axum::routing::any(mcp_endpoint::handle).with_state(endpoint),
        )
        .layer(axum::middleware::from_fn_with_state(
            mcp_auth,
            guard::require_bearer,
        ));
    let admin = admin::routes(registry.clone(), &options.admin)?;
    Ok(Router::new()
        .route("/health", get(health).with_state(registry))
        .merge(mcp)
        .merge(admin)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(options.allow.clone()),
            guard::check_host_and_origin,
        )))
}

/// For probes: 200 with a one-line summary while the server runs.
async fn health(
    axum::extract::State(registry): axum::extract::State<Registry>,
) -> axum::Json<serde_json::Value> {
    let snapshot = registry.snapshot();
    let (loaded, failed) = snapshot.plugin_counts();
    axum::Json(serde_json::json!({
        "status": "ok",
        "plugins": { "loaded": loaded, "failed": failed },
        "tools": snapshot.tools.len(),
    }))
}

/// Serve `router` on `listener` until `shutdown` is cancelled, with
/// TCP_NODELAY on every connection: without it, Nagle's algorithm and delayed
/// ACKs hold each streamed response for ~40 ms.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server stopped");
    }
}
