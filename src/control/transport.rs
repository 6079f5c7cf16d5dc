//! What carries frames: anything that is a stream of frames in and a sink
//! of frames out. A Unix socket with [`FrameCodec`](super::FrameCodec), a
//! pair of channels inside the process ([`memory_pair`]), or the admin HTTP
//! side (`client::open_http`) all become a [`Transport`], so the server's
//! session and the console's link are written once.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::protocol::{Frame, FrameError};

/// Frames in.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, FrameError>> + Send>>;
/// Frames out.
pub type FrameSink = Pin<Box<dyn Sink<Frame, Error = FrameError> + Send>>;

/// Both directions of one connection.
pub struct Transport {
    pub incoming: FrameStream,
    pub outgoing: FrameSink,
}

impl Transport {
    /// Split any duplex stream-and-sink of frames into a transport.
    pub fn new<T>(duplex: T) -> Self
    where
        T: Stream<Item = Result<Frame, FrameError>>
            + Sink<Frame, Error = FrameError>
            + Send
            + 'static,
    {
        let (outgoing, incoming) = duplex.split();
        Self {
            incoming: Box::pin(incoming),
            outgoing: Box::pin(outgoing),
        }
    }

    /// A transport from a channel of frames in and a channel of frames out.
    pub fn from_channels(
        incoming: mpsc::Receiver<Result<Frame, FrameError>>,
        outgoing: mpsc::Sender<Frame>,
    ) -> Self {
        Self {
            incoming: Box::pin(ChannelStream(incoming)),
            outgoing: Box::pin(PollSender::new(outgoing).sink_map_err(|_| FrameError::Closed)),
        }
    }

    /// The next frame; `None` when the other end closed.
    pub async fn recv(&mut self) -> Option<Result<Frame, FrameError>> {
        self.incoming.next().await
    }

    pub async fn send(&mut self, frame: Frame) -> Result<(), FrameError> {
        self.outgoing.send(frame).await
    }
}

/// Two transports joined back to back, for a console inside the server's
/// process: what one sends, the other receives, with no encoding between.
pub fn memory_pair(capacity: usize) -> (Transport, Transport) {
    let (a_out, b_in) = mpsc::channel(capacity);
    let (b_out, a_in) = mpsc::channel(capacity);
    let end = |incoming: mpsc::Receiver<Frame>, outgoing| Transport {
        incoming: Box::pin(ChannelStream(incoming).map(Ok)),
        outgoing: Box::pin(PollSender::new(outgoing).sink_map_err(|_| FrameError::Closed)),
    };
    (end(a_in, a_out), end(b_in, b_out))
}

/// A channel's receiving end as a stream.
struct ChannelStream<T>(mpsc::Receiver<T>);

impl<T> Stream for ChannelStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
