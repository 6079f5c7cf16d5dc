//! The server's end of one attached console, whatever carries its frames:
//! the hello (with a timeout and the version check), the welcome, then
//! updates out and requests in until the console leaves.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::protocol::{Frame, FrameError, PROTOCOL_VERSION, Reply};
use super::transport::Transport;

/// How long a console may take to say hello before it is dropped.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one frame may take to leave before the console is dropped as
/// stalled. Until then its feed simply falls behind: the server never waits.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one console may have running at once.
const REQUESTS_AT_ONCE: usize = 16;

/// Why a console's session ended other than by the console leaving.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("it sent nothing for {} s after connecting", HELLO_TIMEOUT.as_secs())]
    Silent,
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("it sent a {0} frame, which only a server sends")]
    Unexpected(&'static str),
    #[error("it read nothing for {} s (a stalled terminal or link)", WRITE_TIMEOUT.as_secs())]
    Stalled,
}

/// The refusal a console of protocol `theirs` gets.
pub fn version_refusal(theirs: u32, client: &str) -> String {
    format!(
        "this server is wasimancer {} and speaks control protocol {PROTOCOL_VERSION}; \
         the console ({client}) speaks protocol {theirs}: attach with the wasimancer \
         binary of the server's version",
        env!("CARGO_PKG_VERSION")
    )
}

/// Serve one console until it leaves (`Ok`), misbehaves, stalls or the
/// server stops. `peer` says who it is in the log, which notes when it
/// attaches and detaches (a connection that closes before its hello, like a
/// server checking whether the socket is live, is not news).
pub async fn serve_console(
    hub: Hub,
    transport: Transport,
    peer: &str,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let mut attached = false;
    let result = serve(hub, transport, peer, &mut attached, shutdown).await;
    // A console that leaves while an update is on its way closes the
    // connection under the write: that is leaving, not failing.
    let result = match result {
        Err(SessionError::Frame(FrameError::Io(error)))
            if matches!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        other => other,
    };
    match &result {
        Ok(()) if attached => tracing::info!("console detached ({peer})"),
        Ok(()) => {}
        Err(error @ SessionError::Refused(_)) => {
            tracing::warn!("refused a console ({peer}): {error}")
        }
        Err(error) => tracing::warn!("dropped a console ({peer}): {error}"),
    }
    result
}

async fn serve(
    hub: Hub,
    mut transport: Transport,
    peer: &str,
    attached: &mut bool,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, transport.recv()).await {
        Err(_) => return Err(SessionError::Silent),
        Ok(None) => return Ok(()),
        Ok(Some(frame)) => frame?,
    };
    let refusal = match hello {
        Frame::Hello { protocol, .. } if protocol == PROTOCOL_VERSION => None,
        Frame::Hello { protocol, client } => Some(version_refusal(protocol, &client)),
        other => Some(format!(
            "a console must start with a hello frame, not {}",
            kind(&other)
        )),
    };
    if let Some(reason) = refusal {
        let refused = Frame::Refused {
            reason: reason.clone(),
        };
        let _ = send(&mut transport, refused).await;
        return Err(SessionError::Refused(reason));
    }
    let (welcome, mut feed) = hub.attach();
    send(&mut transport, Frame::Welcome(Box::new(welcome))).await?;
    *attached = true;
    tracing::info!("console attached ({peer})");

    let (replies, mut answered) = mpsc::channel::<(u64, Reply)>(REQUESTS_AT_ONCE);
    let running = Arc::new(Semaphore::new(REQUESTS_AT_ONCE));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            updates = feed.next() => send(&mut transport, Frame::Updates { updates }).await?,
            Some((id, reply)) = answered.recv() => {
                send(&mut transport, Frame::Reply { id, reply }).await?;
            }
            frame = transport.recv() => match frame {
                None => return Ok(()),
                Some(frame) => match frame? {
                    Frame::Request { id, request } => match Arc::clone(&running).try_acquire_owned() {
                        Ok(permit) => {
                            let hub = hub.clone();
                            let replies = replies.clone();
                            // A call the console started finishes even if the
                            // console leaves; only its answer is lost.
                            tokio::spawn(async move {
                                let reply = hub.handle(request).await;
                                let _ = replies.send((id, reply)).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            let reason = format!(
                                "{REQUESTS_AT_ONCE} requests of this console are still running; wait for one to finish"
                            );
                            send(&mut transport, Frame::Reply { id, reply: Reply::Failed { reason } }).await?;
                        }
                    },
                    other => return Err(SessionError::Unexpected(kind(&other))),
                },
            },
        }
    }
}

async fn send(transport: &mut Transport, frame: Frame) -> Result<(), SessionError> {
    match tokio::time::timeout(WRITE_TIMEOUT, transport.send(frame)).await {
        Ok(sent) => Ok(sent?),
        Err(_) => Err(SessionError::Stalled),
    }
}

/// A frame's name, for messages.
pub fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "hello",
        Frame::Welcome(_) => "welcome",
        Frame::Refused { .. } => "refused",
        Frame::Updates { .. } => "updates",
        Frame::Request { .. } => "request",
        Frame::Reply { .. } => "reply",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::io::AsyncWriteExt;
    use tokio::task::JoinHandle;
    use tokio_util::codec::Framed;

    use super::*;
    use crate::catalog::CatalogFile;
    use crate::control::hub::{HubSettings, TICK};
    use crate::control::protocol::{FrameCodec, Request};
    use crate::control::transport::memory_pair;
    use crate::events::EventBus;
    use crate::http::Token;
    use crate::logging::LogBuffer;
    use crate::registry::{Registry, RegistryOptions};
    use crate::runtime::RuntimeSettings;

    /// A hub over a server with no plugins.
    async fn hub(log: LogBuffer) -> Hub {
        let path = Path::new("plugins.yml");
        let catalog = CatalogFile::parse(path, "plugins: []\n").expect("an empty catalog");
        let options = RegistryOptions {
            catalog_path: path.into(),
            runtime: RuntimeSettings::default(),
            keep_call_details: true,
        };
        let registry =
            Registry::with_catalog(options, EventBus::new(), catalog, |spec| Some(spec.clone()))
                .await;
        Hub::new(
            registry,
            crate::operations::Operations::new(),
            log,
            HubSettings {
                address: "127.0.0.1:3001".parse().expect("an address"),
                mcp_token: Some(Token::new("mcp-secret-0123")),
                admin_token: None,
                stateless: false,
            },
        )
    }

    /// A server session on one end of a channel pair; the other end is the console's.
    async fn session(log: LogBuffer) -> (Transport, JoinHandle<Result<(), SessionError>>) {
        let (console, server) = memory_pair(4);
        let hub = hub(log).await;
        let running = tokio::spawn(async move {
            serve_console(hub, server, "test", CancellationToken::new()).await
        });
        (console, running)
    }

    #[tokio::test]
    async fn a_console_of_another_version_is_refused_with_both_versions_named() {
        let (mut console, running) = session(LogBuffer::default()).await;
        console
            .send(Frame::Hello {
                protocol: 99,
                client: "wasimancer 9.0.0".into(),
            })
            .await
            .unwrap();
        let Some(Ok(Frame::Refused { reason })) = console.recv().await else {
            panic!("expected a refusal");
        };
        assert!(reason.contains("protocol 1"), "{reason}");
        assert!(reason.contains("protocol 99"), "{reason}");
        assert!(reason.contains("wasimancer 9.0.0"), "{reason}");
        assert!(matches!(
            running.await.unwrap(),
            Err(SessionError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_console_must_say_hello_first() {
        let (mut console, running) = session(LogBuffer::default()).await;
        console
            .send(Frame::Request {
                id: 1,
                request: Request::Tokens,
            })
            .await
            .unwrap();
        assert!(matches!(
            console.recv().await,
            Some(Ok(Frame::Refused { .. }))
        ));
        assert!(running.await.unwrap().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_console_that_says_nothing_is_dropped() {
        let (_console, running) = session(LogBuffer::default()).await;
        assert!(matches!(running.await.unwrap(), Err(SessionError::Silent)));
    }

    #[tokio::test]
    async fn a_welcome_then_updates_and_replies() {
        let log = LogBuffer::default();
        log.push("INFO before".into());
        let (mut console, running) = session(log.clone()).await;
        console.send(Frame::hello()).await.unwrap();
        let Some(Ok(Frame::Welcome(welcome))) = console.recv().await else {
            panic!("expected a welcome");
        };
        assert_eq!(welcome.log, ["INFO before"]);
        assert_eq!(welcome.server.mcp_token.as_deref(), Some("mc••••••••23"));
        log.push("INFO after".into());
        console
            .send(Frame::Request {
                id: 7,
                request: Request::Tokens,
            })
            .await
            .unwrap();
        let (mut lines, mut tokens) = (None, None);
        while lines.is_none() || tokens.is_none() {
            match console.recv().await {
                Some(Ok(Frame::Updates { updates })) => {
                    for update in updates {
                        if let crate::control::Update::Log { lines: new } = update {
                            lines = Some(new);
                        }
                    }
                }
                Some(Ok(Frame::Reply { id, reply })) => tokens = Some((id, reply)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(lines.unwrap(), ["INFO after"]);
        assert_eq!(
            tokens.unwrap(),
            (
                7,
                Reply::Tokens {
                    mcp: Some("mcp-secret-0123".into()),
                    admin: None,
                }
            )
        );
        drop(console);
        assert!(running.await.unwrap().is_ok(), "leaving is not an error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_console_that_stops_reading_is_dropped_and_the_server_never_waits() {
        let log = LogBuffer::default();
        let (mut console, running) = session(log.clone()).await;
        console.send(Frame::hello()).await.unwrap();
        assert!(matches!(console.recv().await, Some(Ok(Frame::Welcome(_)))));
        // News every tick, and the console reads none of it: its queue fills,
        // then the session gives up on it. Pushing the log never blocks.
        for i in 0.. {
            log.push(format!("line {i}"));
            tokio::time::sleep(TICK).await;
            if running.is_finished() {
                break;
            }
            assert!(i < 1000, "the session should have dropped the console");
        }
        assert!(matches!(running.await.unwrap(), Err(SessionError::Stalled)));
    }

    /// Every console attached gets a call's event as the same shared record,
    /// whose JSON is made for the first and copied for the others: the
    /// frames are byte for byte the same and read back as the event.
    #[tokio::test]
    async fn consoles_share_one_encoding_of_each_event() {
        use bytes::BytesMut;
        use tokio_util::codec::{Decoder, Encoder};

        use crate::control::Update;
        use crate::events::{CallEvent, CallSource, CallStatus, ServerEvent};

        let hub = hub(LogBuffer::default()).await;
        let (_, mut first) = hub.attach();
        let (_, mut second) = hub.attach();
        let event = ServerEvent::Call(CallEvent {
            id: 1,
            started: std::time::SystemTime::UNIX_EPOCH,
            source: CallSource::Mcp {
                client: Some("claude \"desktop\"".into()),
                session: Some("5f3a".into()),
            },
            kind: Default::default(),
            tool: "add".into(),
            plugin: "calc".into(),
            arguments: r#"{"left":1,"right":2}"#.into(),
            status: CallStatus::Ok {
                preview: "3".into(),
            },
            duration: Duration::from_micros(80),
            overlapping: 1,
        });
        hub.registry().bus().publish(event.clone());
        let events = |updates: &[Update]| -> Vec<crate::events::SharedEvent> {
            updates
                .iter()
                .filter_map(|update| match update {
                    Update::Event { event } => Some(event.clone()),
                    _ => None,
                })
                .collect()
        };
        let (first, second) = (first.collect(), second.collect());
        let (mine, theirs) = (events(&first), events(&second));
        assert_eq!((mine.len(), theirs.len()), (1, 1));
        assert!(Arc::ptr_eq(mine[0].event(), theirs[0].event()));
        assert_eq!(mine[0].encoded(), None, "nothing is made before it is sent");

        let encode = |updates| {
            let mut bytes = BytesMut::new();
            FrameCodec::server()
                .encode(Frame::Updates { updates }, &mut bytes)
                .unwrap();
            bytes
        };
        let mut sent = encode(first);
        let made = mine[0].encoded().expect("made for the first console");
        assert_eq!(made, serde_json::to_string(&event).unwrap());
        let mut again = encode(second);
        assert_eq!(sent, again, "the second console gets the same bytes");
        assert_eq!(theirs[0].encoded().map(str::as_ptr), Some(made.as_ptr()));
        for bytes in [&mut sent, &mut again] {
            let Some(Frame::Updates { updates }) = FrameCodec::console().decode(bytes).unwrap()
            else {
                panic!("an updates frame");
            };
            assert_eq!(*events(&updates)[0].event().as_ref(), event);
        }
    }

    /// Over a real socket: a frame that announces more than a request may
    /// be, or bytes that are not the protocol, end that console's session.
    #[tokio::test]
    async fn oversized_and_malformed_frames_drop_the_console() {
        for bytes in [
            (2u32 * 1024 * 1024).to_be_bytes().to_vec(),
            [&5u32.to_be_bytes()[..], b"hello"].concat(),
        ] {
            let (mut client, server) = tokio::net::UnixStream::pair().unwrap();
            let hub = hub(LogBuffer::default()).await;
            let running = tokio::spawn(async move {
                let transport = Transport::new(Framed::new(server, FrameCodec::server()));
                serve_console(hub, transport, "test", CancellationToken::new()).await
            });
            client.write_all(&bytes).await.unwrap();
            match running.await.unwrap() {
                Err(SessionError::Frame(error)) => assert!(
                    matches!(
                        error,
                        crate::control::protocol::FrameError::TooLarge { .. }
                            | crate::control::protocol::FrameError::Malformed(_)
                    ),
                    "{error}"
                ),
                other => panic!("expected a frame error, got {other:?}"),
            }
        }
    }
}
