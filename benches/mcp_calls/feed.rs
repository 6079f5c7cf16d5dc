//! What feeding consoles costs, in this process and away from the noise of
//! the cores the load shares: a tick's worth of call events (like those of
//! the `add` load) encoded for the first console (each event's JSON is made
//! then), framed for each further console (the JSON is copied), and decoded
//! by a console.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use wasimancer::control::protocol::{Frame, FrameCodec, Update};
use wasimancer::events::{CallEvent, CallKind, CallSource, CallStatus, ServerEvent, SharedEvent};

/// Events in one update: a tick (100 ms) at about 4,000 calls/s.
const EVENTS: u64 = 400;
const ROUNDS: u32 = 200;

fn event(id: u64) -> Arc<ServerEvent> {
    Arc::new(ServerEvent::Call(CallEvent {
        id,
        started: SystemTime::now(),
        source: CallSource::Mcp {
            client: Some("bench".into()),
            session: Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
        },
        kind: CallKind::Tool,
        tool: "add".into(),
        plugin: "calc".into(),
        arguments: format!(r#"{{"left":{id},"right":1}}"#),
        status: CallStatus::Ok {
            preview: (id + 1).to_string(),
        },
        duration: Duration::from_micros(83),
        overlapping: 2,
    }))
}

fn frame(events: &[SharedEvent]) -> BytesMut {
    let updates = events
        .iter()
        .map(|event| Update::Event {
            event: event.clone(),
        })
        .collect();
    let mut bytes = BytesMut::new();
    FrameCodec::server()
        .encode(Frame::Updates { updates }, &mut bytes)
        .expect("an updates frame");
    bytes
}

/// Prints µs per event: the first console's frame, each further console's,
/// and a console's decoding of one.
pub fn print_feed_cost() {
    let events: Vec<_> = (0..EVENTS).map(event).collect();
    let (mut first, mut further, mut decode) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut size = 0;
    for _ in 0..ROUNDS {
        let shared: Vec<_> = events.iter().cloned().map(SharedEvent::new).collect();
        let started = Instant::now();
        black_box(frame(&shared));
        first += started.elapsed();
        let started = Instant::now();
        let mut bytes = frame(&shared);
        further += started.elapsed();
        size = bytes.len();
        let started = Instant::now();
        black_box(
            FrameCodec::console()
                .decode(&mut bytes)
                .expect("it reads back"),
        );
        decode += started.elapsed();
    }
    let per_event = |total: Duration| total.as_secs_f64() * 1e6 / (EVENTS * ROUNDS as u64) as f64;
    println!(
        "feeding consoles, in-process, {EVENTS} call events per frame ({} bytes each): \
         server {:.2} µs per event for the first console (its JSON made), {:.2} for each further one; \
         a console decodes {:.2} µs per event",
        size as u64 / EVENTS,
        per_event(first),
        per_event(further),
        per_event(decode)
    );
}
