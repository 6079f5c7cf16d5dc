//! A request in a session answered as plain JSON when its answer is all its
//! SSE stream would carry.
//!
//! rmcp answers every request in a session with an SSE stream: a priming
//! event (an event id to resume from), then the answer, then the end of the
//! stream, three writes of a chunked body. Most calls send nothing before
//! their answer, and for those the spec's other form, `application/json`,
//! says the same in one write with a `Content-Length` (rmcp does this for
//! session-less requests with `json_response`, not in sessions). So the
//! stream is read here until its first event that is not priming: the
//! answer makes a JSON response; anything else (a progress notification, a
//! keep-alive comment while a long call runs) sends the stream on as it
//! came, from its first byte.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// `response` (rmcp's answer to a request in a session), as plain JSON when
/// its stream carries nothing but the answer.
pub async fn plain_when_alone(response: Response) -> Response {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/event-stream"));
    if response.status() != StatusCode::OK || !is_stream {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut read = BytesMut::new();
    // Where the events not yet looked at start.
    let mut looked = 0;
    loop {
        if read[looked..].contains(&b'\r') {
            // Lines that end in CR LF, which rmcp does not write: not ours
            // to take apart.
            return streamed(parts, read.freeze(), stream);
        }
        while let Some(end) = find(&read[looked..], b"\n\n") {
            let event = looked..looked + end;
            looked += end + 2;
            match classify(&read[event.clone()]) {
                Event::Priming => continue,
                Event::Answer(data) => {
                    let data = data.start + event.start..data.end + event.start;
                    let answer = read.freeze().slice(data);
                    parts.headers.remove(header::CACHE_CONTROL);
                    parts.headers.remove("x-accel-buffering");
                    parts.headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    return Response::from_parts(parts, Body::from(answer));
                }
                Event::Other => return streamed(parts, read.freeze(), stream),
            }
        }
        match stream.next().await {
            Some(Ok(bytes)) => read.extend_from_slice(&bytes),
            // The stream ended or failed before the answer: pass on what came.
            Some(Err(_)) | None => return streamed(parts, read.freeze(), stream),
        }
    }
}

/// The SSE response again: what was read, then the rest.
fn streamed(
    parts: axum::http::response::Parts,
    read: Bytes,
    rest: axum::body::BodyDataStream,
) -> Response {
    let body = futures_util::stream::once(async move { Ok(read) }).chain(rest);
    Response::from_parts(parts, Body::from_stream(body))
}

/// What one SSE event (without its blank line) is to this module.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// No data: an event id and a retry time for the client to resume with.
    Priming,
    /// A JSON-RPC answer (a result or an error), at this range of the event.
    Answer(std::ops::Range<usize>),
    /// A notification, a request of the server's, a comment.
    Other,
}

fn classify(event: &[u8]) -> Event {
    let mut data = None;
    let mut at = 0;
    for line in event.split(|&byte| byte == b'\n') {
        let start = at;
        at += line.len() + 1;
        if let Some(value) = line.strip_prefix(b"data:") {
            if data.is_some() {
                // Data over several lines: rare, and left as it is.
                return Event::Other;
            }
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let offset = start + (line.len() - value.len());
            data = Some(offset..offset + value.len());
        } else if !(line.starts_with(b"id:") || line.starts_with(b"retry:")) {
            // A comment (keep-alive), a named event, or something new.
            return Event::Other;
        }
    }
    match data {
        Some(range) if !range.is_empty() => {
            if is_answer(&event[range.clone()]) {
                Event::Answer(range)
            } else {
                Event::Other
            }
        }
        _ => Event::Priming,
    }
}

/// Whether `json` is a JSON-RPC answer: an object with no `method`.
fn is_answer(json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Message {
        method: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Message>(json).is_ok_and(|message| message.method.is_none())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMING: &str = "data: \nid: 0/0\nretry: 3000\n\n";
    const ANSWER: &str =
        "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[]}}\nid: 1/0\n\n";
    const PROGRESS: &str = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\nid: 1/0\n\n";

    fn sse(chunks: &[&'static str]) -> Response {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))
            .collect();
        let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn content_type(response: &Response) -> &str {
        response.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[tokio::test]
    async fn an_answer_alone_becomes_plain_json() {
        // However the stream is cut into chunks.
        for chunks in [
            vec![PRIMING, ANSWER],
            vec![&PRIMING[..9], &PRIMING[9..], &ANSWER[..30], &ANSWER[30..]],
        ] {
            let response = plain_when_alone(sse(&chunks)).await;
            assert_eq!(content_type(&response), "application/json");
            assert!(!response.headers().contains_key(header::CACHE_CONTROL));
            assert_eq!(
                body(response).await,
                r#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#
            );
        }
    }

    #[tokio::test]
    async fn anything_before_the_answer_keeps_the_stream_whole() {
        for chunks in [
            vec![PRIMING, PROGRESS, ANSWER],
            vec![PRIMING, ": keep-alive\n\n", ANSWER],
            // Ended before an answer.
            vec![PRIMING],
            vec!["data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\r\n\r\n"],
        ] {
            let response = plain_when_alone(sse(&chunks)).await;
            assert_eq!(content_type(&response), "text/event-stream");
            assert_eq!(body(response).await, chunks.concat());
        }
    }

    #[tokio::test]
    async fn other_answers_pass_as_they_are() {
        let mut accepted = Response::new(Body::empty());
        *accepted.status_mut() = StatusCode::ACCEPTED;
        let response = plain_when_alone(accepted).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let mut error = sse(&[ANSWER]);
        *error.status_mut() = StatusCode::NOT_FOUND;
        assert_eq!(body(plain_when_alone(error).await).await, ANSWER);
    }

    #[test]
    fn events_are_told_apart() {
        let strip = |event: &str| event.trim_end_matches('\n').to_string();
        assert_eq!(classify(strip(PRIMING).as_bytes()), Event::Priming);
        assert!(matches!(
            classify(strip(ANSWER).as_bytes()),
            Event::Answer(_)
        ));
        assert_eq!(classify(strip(PROGRESS).as_bytes()), Event::Other);
        assert_eq!(classify(b": keep-alive"), Event::Other);
    }
}
