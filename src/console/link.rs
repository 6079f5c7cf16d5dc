//! The console's line to its server: a task on the async runtime that
//! attaches (and attaches again when the server comes back), turns what
//! the server sends into console events, and carries the console's
//! requests. The same code serves the console of the server's own process,
//! `wasimancer console` on the Unix socket, and a console over HTTP: only
//! the [`Target`] differs.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::event::{ConsoleEvent, Message};
use crate::control::session::kind;
use crate::control::transport::Transport;
use crate::control::{ConnectError, Frame, Reply, Request, Target, connect};

/// The first wait before trying again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The console's end of the link. Dropping it detaches.
pub struct Link {
    requests: mpsc::UnboundedSender<(u64, Request)>,
    stop: CancellationToken,
}

impl Link {
    /// Start attaching to `target` on `runtime`; what happens reaches the
    /// console through `console`.
    pub fn start(
        target: Target,
        runtime: &tokio::runtime::Handle,
        console: Sender<Message>,
    ) -> Self {
        let (requests, queued) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        runtime.spawn(run(target, Events(console), queued, stop.clone()));
        Self { requests, stop }
    }

    /// Send `request`; its reply comes back as `ConsoleEvent::Reply` with `id`.
    pub fn send(&self, id: u64, request: Request) {
        // The task ends only when the link is dropped.
        let _ = self.requests.send((id, request));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The console's channel, as the link uses it.
struct Events(Sender<Message>);

impl Events {
    /// Hand `event` to the console; false when the console is gone.
    fn send(&self, event: ConsoleEvent) -> bool {
        self.0.send(Message::Event(event)).is_ok()
    }

    fn failed(&self, id: u64, reason: &str) -> bool {
        self.send(ConsoleEvent::Reply {
            id,
            reply: Reply::Failed {
                reason: reason.to_string(),
            },
        })
    }
}

async fn run(
    target: Target,
    console: Events,
    mut requests: mpsc::UnboundedReceiver<(u64, Request)>,
    stop: CancellationToken,
) {
    let mut wait = FIRST_RETRY;
    loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            attempt = connect(&target) => attempt,
        };
        let (reason, retrying) = match attempt {
            Ok((welcome, transport)) => {
                wait = FIRST_RETRY;
                if !console.send(ConsoleEvent::Attached {
                    welcome,
                    at: Instant::now(),
                }) {
                    return;
                }
                match carry(transport, &console, &mut requests, &stop).await {
                    Some(reason) => (reason, true),
                    None => return,
                }
            }
            Err(ConnectError::Unreachable(reason)) => (reason, true),
            Err(ConnectError::Refused(reason)) => (reason, false),
        };
        if !console.send(ConsoleEvent::Disconnected {
            reason: reason.clone(),
            retrying,
        }) {
            return;
        }
        // Until the next try (or for good, if the server refused), what the
        // console asks cannot reach the server.
        let not_connected = format!("not connected to the server: {reason}");
        let pause = tokio::time::sleep(if retrying { wait } else { Duration::MAX });
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut pause => break,
                Some((id, _)) = requests.recv() => {
                    if !console.failed(id, &not_connected) {
                        return;
                    }
                }
            }
        }
        wait = (wait * 2).min(MAX_RETRY);
    }
}

/// Carry frames both ways until the connection ends: `Some(reason)` when
/// it was lost, `None` when the console is gone or detached.
async fn carry(
    mut transport: Transport,
    console: &Events,
    requests: &mut mpsc::UnboundedReceiver<(u64, Request)>,
    stop: &CancellationToken,
) -> Option<String> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            frame = transport.recv() => {
                let event = match frame {
                    None => return Some("the server closed the connection".into()),
                    Some(Err(error)) => return Some(error.to_string()),
                    Some(Ok(Frame::Updates { updates })) => ConsoleEvent::Updates {
                        updates,
                        at: Instant::now(),
                    },
                    Some(Ok(Frame::Reply { id, reply })) => ConsoleEvent::Reply { id, reply },
                    Some(Ok(other)) => {
                        return Some(format!("the server sent a {} frame, out of turn", kind(&other)));
                    }
                };
                if !console.send(event) {
                    return None;
                }
            }
            Some((id, request)) = requests.recv() => {
                if let Err(error) = transport.send(Frame::Request { id, request }).await {
                    let reason = error.to_string();
                    console.failed(id, &reason);
                    return Some(reason);
                }
            }
        }
    }
}
