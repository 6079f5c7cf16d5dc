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
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::plain_answers::plain_when_alone;
use super::quick_calls::{self, Quick};
use super::sessions::{CountedSessions, Sessions};
use super::{HttpOptions, hold_until_sent};
use crate::cluster::Redis;
use crate::cluster::sessions::RedisSessionStore;
use crate::mcp::McpHandler;
use crate::operations::Operations;
use crate::registry::Registry;

/// The JSON-RPC error code of a request the server refuses for now (too many
/// sessions, draining, over the rate): a server error, worth a retry later.
const UNAVAILABLE: i64 = -32000;

#[derive(Clone)]
pub struct McpEndpoint {
    sessions: Option<(
        StreamableHttpService<McpHandler, CountedSessions>,
        Arc<Sessions>,
    )>,
    stateless: StreamableHttpService<McpHandler, NeverSessionManager>,
    /// The registry whose plain calls are answered without rmcp (see
    /// [`quick_calls`](super::quick_calls)): in sessions, and without one on
    /// a `--stateless` server.
    registry: Registry,
    max_request_bytes: usize,
    operations: Operations,
}

impl McpEndpoint {
    pub fn new(
        registry: Registry,
        options: &HttpOptions,
        operations: Operations,
        shutdown: CancellationToken,
    ) -> Self {
        // Host and Origin are checked by our own guard, for every route alike.
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(options.max_request_bytes)
            .with_sse_keep_alive(Some(Duration::from_secs(15)))
            .with_cancellation_token(shutdown.clone());
        let handlers = registry.clone();
        let factory = move || Ok(McpHandler::new(handlers.clone()));
        let sessions = (!options.stateless).then(|| {
            let store = options.session_store.as_ref().and_then(|url| {
                Redis::new(url)
                    .inspect_err(|error| {
                        tracing::error!("sessions stay on the replica that opened them: {error}")
                    })
                    .ok()
                    .map(|redis| RedisSessionStore::new(redis, options.sessions.idle_timeout))
            });
            let sessions = Sessions::new(options.sessions, operations.clone(), shutdown, store);
            let mut config = config.clone();
            // rmcp saves every new session's handshake there and, for a
            // session it does not hold (asleep, or opened on another
            // replica), loads it and replays it.
            config.session_store = Some(sessions.handshakes());
            let service = StreamableHttpService::new(
                factory.clone(),
                Arc::new(CountedSessions(Arc::clone(&sessions))),
                config,
            );
            (service, sessions)
        });
        // A `--stateless` server answers plain JSON, and an SSE stream only
        // when a notification (progress) comes before the answer: a stream
        // costs the floor's stateless mode a third of its calls. With
        // sessions, the session-less requests keep SSE answers: WASImancer's
        // scripts read them with `grep "^data:"`.
        let stateless = StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            config
                .with_legacy_session_mode(false)
                .with_json_response(options.stateless),
        );
        Self {
            sessions,
            stateless,
            registry,
            max_request_bytes: options.max_request_bytes,
            operations,
        }
    }

    /// A POST: a plain call answered here (on a `--stateless` server, or in
    /// a session when `sessions` are given), anything else by `rmcp`.
    async fn answer_quick_or<F, Fut>(
        &self,
        request: Request,
        sessions: Option<&Arc<Sessions>>,
        rmcp: F,
    ) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let (parts, body) = match read_body(request, self.max_request_bytes).await {
            Ok(read) => read,
            Err(response) => return response,
        };
        match quick_calls::answer(&self.registry, parts, body, sessions).await {
            Quick::Answered(response) => response,
            Quick::ForRmcp(request) => rmcp(request).await,
        }
    }

    /// The sessions, when the server keeps any.
    pub fn sessions(&self) -> Option<&Arc<Sessions>> {
        self.sessions.as_ref().map(|(_, sessions)| sessions)
    }
}

pub async fn handle(State(endpoint): State<Arc<McpEndpoint>>, request: Request) -> Response {
    let draining = endpoint.operations.is_draining();
    if draining && request.method() == Method::GET {
        endpoint.operations.was_refused_draining();
        return unavailable(None, &draining_message(), None);
    }
    let Some((sessions, counted)) = &endpoint.sessions else {
        if request.method() == Method::POST {
            return answer_post(&endpoint, request, |request| {
                endpoint.answer_quick_or(request, None, |request| async {
                    into_axum(endpoint.stateless.handle(request).await)
                })
            })
            .await;
        }
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
    if request.method() != Method::POST {
        return into_axum(sessions.handle(request).await);
    }
    if request.headers().contains_key("mcp-session-id") {
        return answer_post(&endpoint, request, |request| {
            endpoint.answer_quick_or(request, Some(counted), |request| async {
                plain_when_alone(into_axum(sessions.handle(request).await)).await
            })
        })
        .await;
    }
    // Peek at the body to tell `initialize` (which opens a session) from a
    // one-off request.
    let (request, peek) = match peek(request, endpoint.max_request_bytes).await {
        Ok(peeked) => peeked,
        Err(response) => return response,
    };
    if !peek.opens_session() {
        return answer_post(&endpoint, request, |request| {
            endpoint.stateless.handle(request)
        })
        .await;
    }
    if draining {
        endpoint.operations.was_refused_draining();
        return unavailable(peek.id, &draining_message(), None);
    }
    let Some(admission) = counted.admit() else {
        let limit = counted.limits().max_sessions;
        let message = format!(
            "Service Unavailable: this server has {limit} MCP sessions open, its limit (--max-sessions); \
             retry later, or close sessions you no longer use"
        );
        return unavailable(peek.id, &message, Some(1));
    };
    let guard = endpoint.operations.request();
    let response = into_axum(sessions.handle(request).await);
    // The session exists (or failed to open) once rmcp has answered.
    drop(admission);
    hold_until_sent(response, guard)
}

/// Answer a POST with `serve`, counted as in flight until its answer is
/// sent; while draining, a request (not a notification or a response) is
/// refused instead.
async fn answer_post<F, Fut, B>(endpoint: &McpEndpoint, request: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = axum::http::Response<B>>,
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let request = if endpoint.operations.is_draining() {
        let (request, peek) = match peek(request, endpoint.max_request_bytes).await {
            Ok(peeked) => peeked,
            Err(response) => return response,
        };
        if peek.is_request() {
            endpoint.operations.was_refused_draining();
            return unavailable(peek.id, &draining_message(), None);
        }
        request
    } else {
        request
    };
    let guard = endpoint.operations.request();
    hold_until_sent(into_axum(serve(request).await), guard)
}

fn draining_message() -> String {
    "Service Unavailable: this server is shutting down (draining); \
     send the request to another instance or retry after it restarts"
        .to_string()
}

/// 503 with a JSON-RPC error answering `id`, and `Retry-After` when known.
fn unavailable(id: Option<Value>, message: &str, retry_after: Option<u64>) -> Response {
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, json_rpc_error(id, message)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Whether a session-less POST body starts a session (the fuzz facade's
/// view of [`Peek::opens_session`]).
pub(crate) fn opens_session(body: &Bytes) -> bool {
    Peek::of(body).opens_session()
}

/// A JSON-RPC error answering `id` (null when unknown).
pub(super) fn json_rpc_error(id: Option<Value>, message: &str) -> axum::Json<Value> {
    axum::Json(json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": { "code": UNAVAILABLE, "message": message },
    }))
}

/// Read the whole body of `request` to look at it, and put it back.
async fn peek(request: Request, limit: usize) -> Result<(Request, Peek), Response> {
    let (parts, bytes) = read_body(request, limit).await?;
    let peek = Peek::of(&bytes);
    Ok((Request::from_parts(parts, Body::from(bytes)), peek))
}

/// The whole body of `request`, up to `limit` bytes, beside its head.
async fn read_body(request: Request, limit: usize) -> Result<(Parts, Bytes), Response> {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(_) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload Too Large: requests to /mcp are limited to {limit} bytes (--max-request-bytes)"
            ),
        )
            .into_response()),
    }
}

/// What a POST body says of itself, as far as routing and refusing go.
#[derive(Debug, Default)]
struct Peek {
    /// Whether the body is a JSON object at all.
    readable: bool,
    method: Option<String>,
    id: Option<Value>,
}

impl Peek {
    fn of(body: &Bytes) -> Self {
        #[derive(serde::Deserialize)]
        struct Fields {
            method: Option<String>,
            id: Option<Value>,
        }
        match serde_json::from_slice::<Fields>(body) {
            Ok(fields) => Peek {
                readable: true,
                method: fields.method,
                id: fields.id,
            },
            Err(_) => Peek::default(),
        }
    }

    /// Whether a session-less POST starts a session: an `initialize`
    /// request, or anything we cannot read (rmcp then answers with the error).
    fn opens_session(&self) -> bool {
        !self.readable || self.method.as_deref() == Some("initialize")
    }

    /// A request, which expects an answer (not a notification or a response).
    fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
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

    fn peek(text: &'static str) -> Peek {
        Peek::of(&Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn only_initialize_opens_a_session() {
        assert!(
            peek(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).opens_session()
        );
        assert!(
            !peek(r#"{"jsonrpc":"2.0","id":"1","method":"tools/list","params":{}}"#)
                .opens_session()
        );
        assert!(peek("not json").opens_session());
    }

    #[test]
    fn requests_are_told_from_notifications_and_responses() {
        let call = peek(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#);
        assert!(call.is_request());
        assert_eq!(call.id, Some(json!(7)));
        assert!(!peek(r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#).is_request());
        assert!(!peek(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_request());
        assert!(!peek("[1, 2]").is_request());
    }
}
