//! Consoles over HTTP, behind the admin token: `GET /admin/events` is the
//! server's side of the control protocol as Server-Sent Events (a welcome,
//! then updates), and `POST /admin/console` takes one request and answers
//! its reply. `wasimancer console --url` uses both; so can any HTTP client.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::control::session::version_refusal;
use crate::control::{Frame, Hub, PROTOCOL_VERSION, Request};

#[derive(Clone)]
struct ConsoleState {
    hub: Hub,
    shutdown: CancellationToken,
}

/// The console routes; the caller puts them behind the admin token.
pub fn routes(hub: Hub, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/admin/events", get(events))
        .route("/admin/console", post(request))
        .with_state(ConsoleState { hub, shutdown })
}

/// The console's hello, as a query: `?protocol=1&client=wasimancer%200.1.0`.
#[derive(Debug, Deserialize)]
struct Attach {
    protocol: Option<u32>,
    client: Option<String>,
}

async fn events(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(attach): Query<Attach>,
) -> Response {
    let client = attach.client.as_deref().unwrap_or("an unnamed client");
    let Some(protocol) = attach.protocol else {
        return refuse(format!(
            "say which control protocol the console speaks: /admin/events?protocol={PROTOCOL_VERSION}"
        ));
    };
    if protocol != PROTOCOL_VERSION {
        let reason = version_refusal(protocol, client);
        tracing::warn!("refused a console over HTTP ({peer}): {reason}");
        return refuse(reason);
    }
    let (welcome, feed) = state.hub.attach();
    tracing::info!("console attached over HTTP ({peer}, {client})");
    let welcome = stream::once(async move { Frame::Welcome(Box::new(welcome)) });
    let updates = stream::unfold(feed, |mut feed| async move {
        let updates = feed.next().await;
        Some((Frame::Updates { updates }, feed))
    });
    // Streams end when the server stops, or graceful shutdown would wait
    // for them forever.
    let frames = welcome
        .chain(updates)
        .take_until(state.shutdown.cancelled_owned());
    Sse::new(Detached {
        frames: Box::pin(frames),
        peer,
    })
    .keep_alive(KeepAlive::default())
    .into_response()
}

/// The stream of one HTTP console; notes in the log when it ends.
struct Detached {
    frames: std::pin::Pin<Box<dyn Stream<Item = Frame> + Send>>,
    peer: SocketAddr,
}

impl Stream for Detached {
    type Item = Result<Event, axum::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.frames
            .poll_next_unpin(cx)
            .map(|frame| frame.map(|frame| Event::default().json_data(frame)))
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        tracing::info!("console detached over HTTP ({})", self.peer);
    }
}

async fn request(
    State(state): State<ConsoleState>,
    body: Result<Json<Request>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(request)) => Json(state.hub.handle(request).await).into_response(),
        Err(rejection) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": format!("not a console request: {}", rejection.body_text())
            })),
        )
            .into_response(),
    }
}

fn refuse(reason: String) -> Response {
    (StatusCode::CONFLICT, Json(json!({ "error": reason }))).into_response()
}
