//! The HTTP server: `/mcp` (Streamable HTTP, via rmcp), `/health`,
//! `/ready`, `/metrics` and the admin API, each behind the checks it needs.

pub mod admin;
mod admin_definitions;
mod attach;
pub mod guard;
mod handshakes;
mod mcp_endpoint;
mod plain_answers;
mod quick_calls;
pub mod rate_limit;
pub mod sessions;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use guard::{AllowList, BearerAuth, Token};
pub use mcp_endpoint::McpEndpoint;
pub(crate) use mcp_endpoint::opens_session;
pub use rate_limit::{PerSecond, RateKey, RateLimit};
pub use sessions::{SessionLimits, Sessions};

use crate::cluster::RedisUrl;
use crate::control::Hub;
use crate::metrics::{Exposition, HttpMetrics};
use crate::operations::Operations;
use crate::registry::Registry;
use crate::telemetry::{HttpSpan, Tracing};

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
    /// How many sessions may be open, and how long an idle one lives:
    /// clients that go away without closing theirs must not hold memory
    /// forever.
    pub sessions: SessionLimits,
    /// Where sessions are kept for the other replicas (`--session-store`).
    pub session_store: Option<RedisUrl>,
    /// Requests per second per client on `/mcp`; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    pub admin: AdminOptions,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default)]
pub enum MetricsAccess {
    /// Whoever has the admin token (anyone when the admin API is open); on
    /// a listener of its own, anyone.
    #[default]
    AdminToken,
    /// Whoever has this token (`--metrics-token`).
    Token(Token),
    /// Anyone (`--metrics-token NO_AUTHENTICATION`).
    Open,
}

impl MetricsAccess {
    /// The token `/metrics` asks for beside `/mcp`.
    fn token_on_main(&self, admin: &Option<Token>) -> Option<Token> {
        match self {
            MetricsAccess::AdminToken => admin.clone(),
            MetricsAccess::Token(token) => Some(token.clone()),
            MetricsAccess::Open => None,
        }
    }

    /// The token `/metrics` asks for on a listener of its own.
    pub fn token_alone(&self) -> Option<Token> {
        match self {
            MetricsAccess::Token(token) => Some(token.clone()),
            MetricsAccess::AdminToken | MetricsAccess::Open => None,
        }
    }
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
            sessions: SessionLimits::default(),
            session_store: None,
            rate_limit: None,
            metrics: MetricsAccess::AdminToken,
            admin: AdminOptions::default(),
        }
    }
}

/// What the routes count and show about the server.
#[derive(Clone)]
pub struct Observed {
    pub operations: Operations,
    pub http: HttpMetrics,
    pub exposition: Exposition,
    /// Whether `/metrics` is served beside `/mcp` (not when it has a
    /// listener of its own).
    pub metrics_on_main: bool,
    /// Where spans go (off by default).
    pub tracing: Tracing,
}

/// All routes, with their guards, and the MCP endpoint (whose sessions a
/// drain closes).
pub fn router(
    hub: &Hub,
    options: &HttpOptions,
    observed: &Observed,
    shutdown: CancellationToken,
) -> Result<(Router, McpEndpoint), admin::AdminSetupError> {
    let registry = hub.registry().clone();
    let operations = &observed.operations;
    let mcp_auth = Arc::new(BearerAuth {
        token: options.mcp_token.clone(),
        realm: "wasimancer",
        hint: "The token is WASIMANCER_AUTHENTICATION_TOKEN (or --auth-token), printed once at start when generated.",
    });
    let endpoint = McpEndpoint::new(
        registry.clone(),
        options,
        operations.clone(),
        shutdown.clone(),
    );
    let mut mcp = Router::new().route(
        "/mcp",
        axum::routing::any(mcp_endpoint::handle).with_state(Arc::new(endpoint.clone())),
    );
    if observed.tracing.is_on() {
        mcp = mcp.layer(axum::middleware::from_fn_with_state(
            observed.tracing.clone(),
            trace_requests,
        ));
    }
    let mut mcp = mcp.layer(axum::middleware::from_fn_with_state(
        mcp_auth,
        guard::require_bearer,
    ));
    if let Some(limit) = options.rate_limit {
        // Outside the token check: a flood of bad tokens is limited too.
        let limiter = rate_limit::RateLimiter::new(limit, operations.clone(), shutdown.clone());
        mcp = mcp.layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::limit_rate,
        ));
    }
    let consoles = attach::routes(hub.clone(), shutdown);
    let admin = admin::routes(registry.clone(), &options.admin, consoles)?;
    let mut router = Router::new()
        .route("/health", get(health).with_state(registry))
        .route("/ready", get(ready).with_state(operations.clone()))
        .merge(mcp)
        .merge(admin);
    if observed.metrics_on_main {
        let token = options.metrics.token_on_main(&options.admin.token);
        router = router.merge(metrics_routes(observed.exposition.clone(), token));
    }
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(options.allow.clone()),
            guard::check_host_and_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            observed.http.clone(),
            count_requests,
        ));
    Ok((router, endpoint))
}

/// `/metrics` alone, behind `token` if there is one: for the main listener,
/// or a listener of its own (`--metrics-listen`).
pub fn metrics_routes(exposition: Exposition, token: Option<Token>) -> Router {
    let auth = Arc::new(BearerAuth {
        token,
        realm: "wasimancer-metrics",
        hint: "The token is --metrics-token (WASIMANCER_METRICS_TOKEN), or else the admin token.",
    });
    Router::new()
        .route("/metrics", get(metrics).with_state(exposition))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            guard::require_bearer,
        ))
}

/// The metrics, in the Prometheus text format.
async fn metrics(State(exposition): State<Exposition>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        exposition.render(),
    )
        .into_response()
}

/// Do `work` on `target` every `period`, until `shutdown` or until `target`
/// is dropped: the housekeeping of the limits (forgetting quiet clients,
/// closing idle sessions).
fn every<T, F, Fut>(period: Duration, target: &Arc<T>, shutdown: CancellationToken, work: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let target = Arc::downgrade(target);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let Some(target) = target.upgrade() else {
                return;
            };
            work(target).await;
        }
    });
}

/// `response`, holding `held` until its body has been sent (or dropped,
/// when the client goes away): an answer streamed over SSE lasts until its
/// last event. The body keeps its size, so a plain JSON answer still goes out
/// with a Content-Length rather than chunked (one write instead of two).
fn hold_until_sent<T: Send + Unpin + 'static>(response: Response, held: T) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, axum::body::Body::new(Holding { body, _held: held }))
}

/// A response body that keeps something alive for as long as it lasts.
struct Holding<T> {
    body: axum::body::Body,
    _held: T,
}

impl<T: Unpin> axum::body::HttpBody for Holding<T> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A span for every MCP request (tracing on only), ended when its answer
/// has been sent.
async fn trace_requests(
    State(tracing): State<Tracing>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let Some(span) = tracing.http_request(&method, "/mcp", request.headers()) else {
        return next.run(request).await;
    };
    request.extensions_mut().insert(HttpSpan(span.clone()));
    let response = next.run(request).await;
    let ends = SpanEnd {
        span,
        status: response.status().as_u16(),
    };
    hold_until_sent(response, ends)
}

/// Ends an HTTP request's span when dropped.
struct SpanEnd {
    span: opentelemetry::Context,
    status: u16,
}

impl Drop for SpanEnd {
    fn drop(&mut self) {
        crate::telemetry::finish_http(&self.span, self.status);
    }
}

/// Count every answer by route pattern and status.
async fn count_requests(State(http): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    http.answered(route.as_deref(), response.status().as_u16());
    response
}

/// For load balancers: 200 while the server takes traffic, 503 with the
/// reason while it loads its plugins or drains.
async fn ready(State(operations): State<Operations>) -> Response {
    match operations.not_ready() {
        None => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": operations.phase().as_str(),
                "reason": reason,
            })),
        )
            .into_response(),
    }
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
        "resources": registry.resources().resources.len(),
        "prompts": registry.prompts().prompts.len(),
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
