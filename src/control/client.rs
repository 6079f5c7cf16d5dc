//! The console's end: reach a server (in this process, on its Unix socket,
//! or over the admin HTTP side), say hello, and get its welcome.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::protocol::{Frame, FrameCodec, FrameError, PROTOCOL_VERSION, Reply, Request, Welcome};
use super::session::{self, kind};
use super::transport::{Transport, memory_pair};

/// How long a server may take to send its welcome (it can be large, and
/// the link slow).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a console waits to reach a server over HTTP.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server is.
#[derive(Clone)]
pub enum Target {
    /// In this process: the console of the server it started.
    InProcess {
        hub: Hub,
        shutdown: CancellationToken,
    },
    /// The server's control socket.
    Socket(PathBuf),
    /// The admin HTTP side of a server (`http://host:port`), with the admin token.
    Http { url: String, token: Option<String> },
}

impl Target {
    /// Where, for a reader.
    pub fn describe(&self) -> String {
        match self {
            Target::InProcess { .. } => "this process".into(),
            Target::Socket(path) => path.display().to_string(),
            Target::Http { url, .. } => url.clone(),
        }
    }
}

/// Why a console could not attach.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// Nothing answers there now; it may later (the server is restarting).
    #[error("{0}")]
    Unreachable(String),
    /// The server answered no, or cannot be used as asked: trying again
    /// the same way will not help.
    #[error("{0}")]
    Refused(String),
}

/// Reach the server and get its welcome; the transport then carries the
/// updates and the requests.
pub async fn connect(target: &Target) -> Result<(Box<Welcome>, Transport), ConnectError> {
    let mut transport = open(target).await?;
    // A server that refuses may close before it reads the hello: its reason
    // is still there to read, so a failed send matters only without one.
    let sent = transport.send(Frame::hello()).await;
    let answer = tokio::time::timeout(WELCOME_TIMEOUT, transport.recv()).await;
    let unreachable = |reason: String| Err(ConnectError::Unreachable(reason));
    match answer {
        Ok(Some(Ok(Frame::Welcome(welcome)))) => Ok((welcome, transport)),
        Ok(Some(Ok(Frame::Refused { reason }))) => Err(ConnectError::Refused(reason)),
        _ if sent.is_err() => unreachable(sent.err().map(|e| e.to_string()).unwrap_or_default()),
        Err(_) => unreachable(format!(
            "the server did not answer within {} s",
            WELCOME_TIMEOUT.as_secs()
        )),
        Ok(None) => unreachable("the server closed the connection before its welcome".into()),
        Ok(Some(Err(error))) => unreachable(error.to_string()),
        Ok(Some(Ok(other))) => unreachable(format!(
            "the server sent a {} frame before its welcome",
            kind(&other)
        )),
    }
}

async fn open(target: &Target) -> Result<Transport, ConnectError> {
    match target {
        Target::InProcess { hub, shutdown } => {
            let (console, server) = memory_pair(64);
            let hub = hub.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _ = session::serve_console(hub, server, "in-process console", shutdown).await;
            });
            Ok(console)
        }
        Target::Socket(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|error| socket_error(path, error))?;
            Ok(Transport::new(Framed::new(stream, FrameCodec::console())))
        }
        Target::Http { url, token } => open_http(url, token.as_deref()).await,
    }
}

fn socket_error(path: &std::path::Path, error: std::io::Error) -> ConnectError {
    let path = path.display();
    match error.kind() {
        std::io::ErrorKind::NotFound => ConnectError::Unreachable(format!(
            "no server has its control socket at {path}: is it running, on this --port? (or give its --control-socket)"
        )),
        std::io::ErrorKind::ConnectionRefused => ConnectError::Unreachable(format!(
            "nobody listens on {path}: the server that made it has stopped"
        )),
        std::io::ErrorKind::PermissionDenied => ConnectError::Refused(format!(
            "permission denied on {path}: attach as the server's user, or as root"
        )),
        _ => ConnectError::Unreachable(format!("cannot reach {path}: {error}")),
    }
}

/// The base of a server's URL: `http://host:port`, whatever path was given.
pub fn base_url(url: &str) -> Result<String, ConnectError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed.strip_prefix("http://").ok_or_else(|| {
        ConnectError::Refused(format!(
            "`{url}` is not an http:// URL: give http://HOST:PORT (for TLS, attach through an SSH tunnel or `kubectl port-forward`)"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(ConnectError::Refused(format!(
            "`{url}` names no host: give http://HOST:PORT"
        )));
    }
    Ok(format!("http://{authority}"))
}

/// The admin HTTP side as a transport: frames come as Server-Sent Events
/// from `GET /admin/events`; each request is a `POST /admin/console` whose
/// answer becomes a reply frame. The hello is the query's protocol version.
async fn open_http(url: &str, token: Option<&str>) -> Result<Transport, ConnectError> {
    let base = base_url(url)?;
    let client = reqwest::Client::builder()
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .build()
        .map_err(|error| ConnectError::Refused(format!("cannot make an HTTP client: {error}")))?;
    let authorized = |request: reqwest::RequestBuilder| match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    // The version is digits and dots: nothing to escape.
    let attach = format!(
        "{base}/admin/events?protocol={PROTOCOL_VERSION}&client=wasimancer%20{}",
        env!("CARGO_PKG_VERSION")
    );
    let response = authorized(client.get(attach))
        .send()
        .await
        .map_err(|error| ConnectError::Unreachable(format!("cannot reach {base}: {error}")))?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let reason = body["error"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_string);
        return Err(if status.is_server_error() {
            ConnectError::Unreachable(format!("{base} answered {status}: {reason}"))
        } else {
            ConnectError::Refused(format!("{base} answered {status}: {reason}"))
        });
    }

    let (frames, incoming) = mpsc::channel(64);
    let events = frames.clone();
    tokio::spawn(async move {
        let mut stream = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
        while let Some(event) = stream.next().await {
            let frame = match event {
                Ok(event) => match event.data {
                    Some(data) => {
                        serde_json::from_str::<Frame>(&data).map_err(FrameError::Malformed)
                    }
                    // A keep-alive.
                    None => continue,
                },
                Err(error) => Err(FrameError::Io(std::io::Error::other(error.to_string()))),
            };
            let failed = frame.is_err();
            if events.send(frame).await.is_err() || failed {
                return;
            }
        }
    });

    let (outgoing, mut requests) = mpsc::channel::<Frame>(64);
    let token = token.map(str::to_string);
    tokio::spawn(async move {
        while let Some(frame) = requests.recv().await {
            let Frame::Request { id, request } = frame else {
                continue;
            };
            let client = client.clone();
            let frames = frames.clone();
            let url = format!("{base}/admin/console");
            let token = token.clone();
            tokio::spawn(async move {
                let reply = post_request(&client, &url, token.as_deref(), &request).await;
                let _ = frames.send(Ok(Frame::Reply { id, reply })).await;
            });
        }
    });
    Ok(Transport::from_channels(incoming, outgoing))
}

async fn post_request(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    request: &Request,
) -> Reply {
    let mut post = client.post(url).json(request);
    if let Some(token) = token {
        post = post.bearer_auth(token);
    }
    let failed = |reason: String| Reply::Failed { reason };
    match post.send().await {
        Err(error) => failed(format!("the request did not reach the server: {error}")),
        Ok(response) if response.status().is_success() => response
            .json()
            .await
            .unwrap_or_else(|error| failed(format!("the server's answer is unreadable: {error}"))),
        Ok(response) => {
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            failed(format!(
                "the server answered {status}: {}",
                body["error"].as_str().unwrap_or("no reason given")
            ))
        }
    }
}
