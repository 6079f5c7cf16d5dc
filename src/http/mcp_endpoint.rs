//! `/mcp`: rmcp's Streamable HTTP service, in session mode for MCP clients,
//! and stateless for requests that come without a session.
//!
//! MCP clients open a session with `initialize` and send its id on every
//! request after. WASImancer served `/mcp` statelessly, and the scripts written
//! for it send `tools/list` or `tools/call` with no `initialize` and no
//! session; those requests go to a stateless twin of the service instead of
//! being refused, so the scripts keep working.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::HttpOptions;
use crate::mcp::McpHandler;
use crate::registry::Registry;

#[derive(Clone)]
pub struct McpEndpoint {
    sessions: Option<StreamableHttpService<McpHandler, LocalSessionManager>>,
    stateless: StreamableHttpService<McpHandler, NeverSessionManager>,
    max_request_bytes: usize,
}

impl McpEndpoint {
    pub fn new(registry: Registry, options: &HttpOptions, shutdown: CancellationToken) -> Self {
        // Host and Origin are checked by our own guard, for every route alike.
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(options.max_request_bytes)
            .with_sse_keep_alive(Some(Duration::from_secs(15)))
            .with_cancellation_token(shutdown);
        let idle = options.session_idle_timeout;
        let factory = move || Ok(McpHandler::new(registry.clone(), idle));
        let sessions = (!options.stateless).then(|| {
            let mut manager = LocalSessionManager::default();
            manager.session_config.keep_alive = Some(options.session_idle_timeout);
            StreamableHttpService::new(factory.clone(), Arc::new(manager), config.clone())
        });
        let stateless = StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            config.with_legacy_session_mode(false),
        );
        Self {
            sessions,
            stateless,
            max_request_bytes: options.max_request_bytes,
        }
    }
}

pub async fn handle(State(endpoint): State<McpEndpoint>, request: Request) -> Response {
    let Some(sessions) = &endpoint.sessions else {
        return into_axum(endpoint.stateless.handle(request).await);
    };
    if request.method() == Method::DELETE {
        // rmcp ends the session with 202 Accepted; the Python SDK reports
        // anything but 200 or 204 as a failed termination.
        let mut response = into_axum(sessions.handle(request).await);
        if response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        return response;
    }
    let sessionless_post =
        request.method() == Method::POST && !request.headers().contains_key("mcp-session-id");
    if !sessionless_post {
        return into_axum(sessions.handle(request).await);
    }
    // Peek at the body to tell `initialize` (which opens a session) from a
    // one-off request.
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, endpoint.max_request_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Payload Too Large: requests to /mcp are limited to {} bytes (--max-request-bytes)",
                    endpoint.max_request_bytes
                ),
            )
                .into_response();
        }
    };
    let opens_session = opens_session(&bytes);
    let request = Request::from_parts(parts, Body::from(bytes));
    if opens_session {
        into_axum(sessions.handle(request).await)
    } else {
        into_axum(endpoint.stateless.handle(request).await)
    }
}

/// Whether a session-less POST body starts a session: an `initialize`
/// request, or anything we cannot read (rmcp then answers with the error).
pub(crate) fn opens_session(body: &Bytes) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<String>,
    }
    match serde_json::from_slice::<Peek>(body) {
        Ok(peek) => peek.method.as_deref() == Some("initialize"),
        Err(_) => true,
    }
}

fn into_axum<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    response.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_initialize_opens_a_session() {
        let body = |text: &'static str| Bytes::from_static(text.as_bytes());
        assert!(opens_session(&body(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        )));
        assert!(!opens_session(&body(
            r#"{"jsonrpc":"2.0","id":"1","method":"tools/list","params":{}}"#
        )));
        assert!(opens_session(&body("not json")));
    }
}
