//! The quick path: a plain `tools/call` answered on its connection's own
//! task, in a session or, on a `--stateless` server, without one.
//!
//! rmcp serves a request in a session by handing it to the session's
//! worker over channels, which spawns a task for it and sends the answer
//! back as an SSE stream; a stateless request becomes an MCP service of one
//! message (a new handler, a task, channels both ways, a peer, a
//! cancellation tree). That machinery made a call cost the server half as
//! much again as the call itself (see README, "Performance"), and most
//! requests need none of it: a `tools/call` of a tool the server has,
//! without `_meta` (no progress token, no per-request protocol version),
//! from a revision before 2026-07-28 (whose checks of `Mcp-*` headers and
//! `_meta` do not apply), for a tool that asks nothing of the client. Those
//! are answered here with rmcp's own message types, so the answer is the
//! one rmcp would give; everything else goes to rmcp, which checks it and
//! answers as before.
//!
//! In a session, a call is answered here only once the session's handshake
//! is done, and it stays the session's: it is logged with the client's
//! name, keeps the session from being closed or put to sleep while it
//! runs, and `notifications/cancelled` or the end of the session stop it
//! (see [`Sessions::quick_call`]). A session put to sleep is not woken for
//! it.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientNotification, ClientRequest, GetMeta,
    ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerResult,
};

use super::sessions::{QuickCall, Sessions};
use crate::events::CallSource;
use crate::mcp::tool_answer;
use crate::registry::Registry;
use crate::runtime::CallControl;

/// What became of a request.
pub(super) enum Quick {
    /// Answered here.
    Answered(Response),
    /// Not a plain call: for rmcp, as it came.
    ForRmcp(Request),
}

/// Answer `request` here if it is a plain call (module docs), or hand it
/// back whole. `sessions` are the server's, for a request in a session
/// (`Mcp-Session-Id`); `None` for a request without one.
pub(super) async fn answer(
    registry: &Registry,
    parts: Parts,
    body: Bytes,
    sessions: Option<&Arc<Sessions>>,
) -> Quick {
    let plain_headers = headers_are_plain(&parts.headers);
    // In a session every message is read: a cancel is heard whatever its
    // headers, as long as rmcp accepts them.
    let message = (plain_headers || sessions.is_some())
        .then(|| serde_json::from_slice::<ClientJsonRpcMessage>(&body).ok())
        .flatten();
    let session = match sessions {
        Some(sessions) => match parts
            .headers
            .get("mcp-session-id")
            .and_then(|id| id.to_str().ok())
        {
            Some(id) => Some((sessions, id)),
            None => return Quick::ForRmcp(Request::from_parts(parts, Body::from(body))),
        },
        None => None,
    };
    if let (Some(message), Some((sessions, id))) = (&message, session)
        && let Some(request) = cancelled_request(message)
    {
        // rmcp hears of it too, for the calls it runs itself.
        sessions.cancel_quick_call(id, request);
    }
    let plain = message
        .filter(|_| plain_headers)
        .and_then(plain_call)
        .filter(|(_, call)| is_simple_tool(registry, &call.name));
    let started = match (plain, session) {
        (Some((request, call)), Some((sessions, id))) => sessions
            .quick_call(id, &request)
            .map(|quick| (request, call, Some(quick))),
        (Some((request, call)), None) => Some((request, call, None)),
        (None, _) => None,
    };
    let Some((id, call, quick)) = started else {
        return Quick::ForRmcp(Request::from_parts(parts, Body::from(body)));
    };
    Quick::Answered(run(registry, id, call, quick).await)
}

/// Run `call` and answer it: JSON, or, for a call cancelled in its
/// session, an event stream that ends without an answer (as rmcp ends a
/// cancelled request's stream; the client wants none).
async fn run(
    registry: &Registry,
    id: RequestId,
    call: CallToolRequestParams,
    quick: Option<QuickCall>,
) -> Response {
    let source = CallSource::Mcp {
        client: quick.as_ref().map(|quick| Arc::clone(&quick.client)),
        session: quick.as_ref().map(|quick| Arc::clone(&quick.session)),
    };
    // A client that goes away drops this future; the pool then stops the
    // plugin if it still runs on a thread of its own.
    let control = CallControl {
        progress: None,
        cancel: quick.as_ref().map(|quick| quick.cancel.clone()),
    };
    let result = Box::pin(registry.call_with(source, &call.name, call.arguments, control)).await;
    if quick.is_some_and(|quick| quick.cancel.is_cancelled()) {
        return no_answer();
    }
    let message = match tool_answer(result) {
        Ok(response) => {
            // The shape of results before 2026-07-28 (every session's, as
            // sessions are opened with `initialize`), as rmcp gives them.
            let mut result = ServerResult::from(response);
            result.strip_result_type_for_legacy_peer();
            result.strip_non_object_output_for_legacy_peer();
            ServerJsonRpcMessage::response(result, id)
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    };
    json_response(&message)
}

/// The request a `notifications/cancelled` names.
fn cancelled_request(message: &ClientJsonRpcMessage) -> Option<&RequestId> {
    match message {
        ClientJsonRpcMessage::Notification(notification) => match &notification.notification {
            ClientNotification::CancelledNotification(cancelled) => {
                cancelled.params.request_id.as_ref()
            }
            _ => None,
        },
        _ => None,
    }
}

/// The call in `message` when it is a plain `tools/call`: no `_meta`, and
/// none of the fields of a retried or task-augmented request.
fn plain_call(message: ClientJsonRpcMessage) -> Option<(RequestId, CallToolRequestParams)> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    // rmcp keeps `_meta` beside the params, as an extension.
    let no_meta = request.request.get_meta().0.0.is_empty();
    let ClientRequest::CallToolRequest(call) = request.request else {
        return None;
    };
    let params = call.params;
    let plain = no_meta
        && params.meta.as_ref().is_none_or(|meta| meta.0.0.is_empty())
        && params.input_responses.is_none()
        && params.request_state.is_none();
    plain.then_some((request.id, params))
}

/// Whether rmcp would serve `tool` with nothing but the call: the server
/// has it, it needs no client capability (rmcp's context tells which the
/// client has), and no span is to be recorded (its parent comes from the
/// request context).
fn is_simple_tool(registry: &Registry, tool: &str) -> bool {
    !registry.tracing().is_on()
        && registry
            .snapshot()
            .tool(tool)
            .is_some_and(|tool| tool.declared.client_capabilities.is_empty())
}

/// Revisions whose stateless requests rmcp checks against nothing but the
/// body: from 2026-07-28 on, `Mcp-*` headers and `_meta` must agree with it.
const PLAIN_REVISIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// Whether the headers are what rmcp accepts without a second look: JSON
/// sent, JSON and SSE both accepted (by name, without parameters, which rmcp
/// weighs), and no protocol version or one of [`PLAIN_REVISIONS`]. Anything
/// else is for rmcp to accept or refuse.
fn headers_are_plain(headers: &HeaderMap) -> bool {
    let sends_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        });
    let (mut json, mut sse, mut other) = (false, false, false);
    for value in headers.get_all(header::ACCEPT) {
        match value.to_str() {
            Ok(value) if !value.contains(['"', ';']) => {
                for media in value.split(',').map(str::trim) {
                    json |= media.eq_ignore_ascii_case("application/json");
                    sse |= media.eq_ignore_ascii_case("text/event-stream");
                }
            }
            _ => other = true,
        }
    }
    let revision = match headers.get("mcp-protocol-version") {
        None => true,
        Some(value) => value
            .to_str()
            .is_ok_and(|value| PLAIN_REVISIONS.iter().any(|known| known.as_str() == value)),
    };
    sends_json && json && sse && !other && revision
}

/// An event stream with no event in it.
fn no_answer() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        )],
        Body::empty(),
    )
        .into_response()
}

/// `message` as rmcp answers a stateless request in JSON.
fn json_response(message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: the answer could not be written as JSON: {error}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    const PLAIN: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];

    #[test]
    fn only_plain_headers_take_the_quick_path() {
        assert!(headers_are_plain(&headers(&PLAIN)));
        assert!(headers_are_plain(&headers(&PLAIN[..2])), "no version");
        assert!(headers_are_plain(&headers(&[
            ("content-type", "Application/JSON; charset=utf-8"),
            ("accept", "text/event-stream"),
            ("accept", "application/json"),
        ])));
        let with = |name, value| {
            let mut all = headers(&PLAIN);
            all.insert(name, HeaderValue::from_static(value));
            all
        };
        for (name, value) in [
            ("content-type", "text/plain"),
            ("accept", "application/json"),
            ("accept", "application/json;q=0, text/event-stream"),
            (
                "accept",
                r#"text/plain;x="application/json, text/event-stream""#,
            ),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-protocol-version", "1999-01-01"),
        ] {
            assert!(!headers_are_plain(&with(name, value)), "{name}: {value}");
        }
    }

    fn call(body: &str) -> Option<(RequestId, CallToolRequestParams)> {
        plain_call(serde_json::from_str(body).expect("a JSON-RPC message"))
    }

    #[test]
    fn only_a_tools_call_without_meta_is_plain() {
        let (id, params) =
            call(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"left":1}}}"#)
                .expect("plain");
        assert_eq!(id, RequestId::Number(7));
        assert_eq!(params.name, "add");
        assert!(
            call(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","_meta":{}}}"#)
                .is_some(),
            "an empty _meta asks for nothing"
        );
        for body in [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","_meta":{"progressToken":1}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","requestState":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ] {
            assert!(call(body).is_none(), "{body}");
        }
    }

    /// A registry serving the sample `addition` plugin's `add`.
    async fn addition() -> (Registry, tempfile::TempDir) {
        use crate::registry::RegistryOptions;
        use crate::runtime::{CompileCache, RuntimeSettings};
        let folder = tempfile::tempdir().expect("a temporary folder");
        let catalog = folder.path().join("plugins.yml");
        let yaml = "plugins:
  - name: addition
    path: addition/addition.wasm
    functions:
      - function: add
        arguments:
          - { name: left, type: number }
          - { name: right, type: number }
";
        std::fs::write(&catalog, yaml).expect("plugins.yml written");
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let options = RegistryOptions {
            catalog_path: catalog,
            runtime: RuntimeSettings {
                plugins_dir: repo.join("plugins"),
                compile_cache: CompileCache::in_dir(&repo.join("target/tmp/wasmtime-cache")),
                ..RuntimeSettings::default()
            },
            keep_call_details: false,
        };
        let registry = Registry::start(options, Default::default())
            .await
            .expect("a valid plugins.yml");
        (registry, folder)
    }

    fn request(pairs: &[(&'static str, &'static str)], body: &'static str) -> (Parts, Bytes) {
        let mut request = Request::new(());
        *request.headers_mut() = headers(pairs);
        (request.into_parts().0, Bytes::from_static(body.as_bytes()))
    }

    #[tokio::test]
    async fn a_plain_call_is_answered_here_and_anything_else_goes_to_rmcp_untouched() {
        let (registry, _folder) = addition().await;
        let plain = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"add","arguments":{"left":2,"right":3}}}"#;
        let (parts, body) = request(&PLAIN, plain);
        let Quick::Answered(response) = answer(&registry, parts, body, None).await else {
            panic!("a plain call goes to rmcp");
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["id"], "a");
        assert_eq!(json["result"]["content"][0]["text"], r#"{"result":5}"#);
        assert_eq!(json["result"]["isError"], false);

        let unknown = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}"#;
        let progress = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","_meta":{"progressToken":1}}}"#;
        let newest = [PLAIN[0], PLAIN[1], ("mcp-protocol-version", "2026-07-28")];
        for (headers, body) in [
            (&PLAIN[..], unknown),
            (&PLAIN[..], progress),
            (&newest[..], plain),
        ] {
            let (parts, bytes) = request(headers, body);
            let Quick::ForRmcp(request) = answer(&registry, parts, bytes, None).await else {
                panic!("answered here: {body} with {headers:?}");
            };
            assert_eq!(request.headers(), &self::headers(headers));
            let handed = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .expect("a body");
            assert_eq!(handed, body.as_bytes());
        }
    }
}
