//! `--rate-limit`: at most N requests a second to `/mcp` per client, with a
//! burst, so that one client that floods the server cannot starve the
//! others. A request over the limit is answered 429 with `Retry-After`.
//!
//! A client is its peer address, or the bearer token it sends
//! (`--rate-limit-by token`, for deployments behind a proxy that gives each
//! client a token of its own). The limiter (governor's GCRA) keeps one small
//! state per client; clients not seen for a while are forgotten.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;

use crate::operations::Operations;

/// How often clients that have not been seen for a while are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// What tells clients apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RateKey {
    /// The address the request comes from.
    #[default]
    Peer,
    /// The bearer token the request carries (its peer address when it has none).
    Token,
}

/// A rate: requests per second, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    /// How many requests may come at once after a quiet spell.
    pub burst: NonZeroU32,
    pub by: RateKey,
}

/// `20` or `20/s`: requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerSecond(pub NonZeroU32);

impl FromStr for PerSecond {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
        number.parse::<NonZeroU32>().map(PerSecond).map_err(|_| {
            format!("`{text}` is not a rate: give requests per second, like 20 or 20/s")
        })
    }
}

/// One key per client; never the token itself, only a hash of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Peer(IpAddr),
    Token(u64),
}

/// The limiter and what it needs to answer.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    by: RateKey,
    operations: Operations,
}

impl RateLimiter {
    /// A limiter at `limit`, forgetting quiet clients until `shutdown`.
    pub fn new(limit: RateLimit, operations: Operations, shutdown: CancellationToken) -> Arc<Self> {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        let limiter = Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            by: limit.by,
            operations,
        });
        super::every(FORGET_EVERY, &limiter, shutdown, |limiter| async move {
            limiter.limiter.retain_recent();
            limiter.limiter.shrink_to_fit();
        });
        limiter
    }

    fn key(&self, request: &Request) -> Option<ClientKey> {
        if self.by == RateKey::Token
            && let Some(token) = super::guard::bearer_token(request.headers())
        {
            let mut hasher = std::hash::DefaultHasher::new();
            token.hash(&mut hasher);
            return Some(ClientKey::Token(hasher.finish()));
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| ClientKey::Peer(peer.ip()))
    }
}

/// Answer 429 to a client over its rate; let everything else through.
pub async fn limit_rate(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    // A request whose peer is unknown (not over TCP) is not limited.
    let Some(key) = limiter.key(&request) else {
        return next.run(request).await;
    };
    match limiter.limiter.check_key(&key) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            limiter.operations.was_rate_limited();
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many_requests(wait)
        }
    }
}

/// 429 with `Retry-After` (whole seconds, at least 1) and a JSON-RPC error
/// body an MCP client can show.
fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let message = format!(
        "Too Many Requests: this client is over the server's rate limit (--rate-limit); retry in {seconds} s"
    );
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        super::mcp_endpoint::json_rpc_error(None, &message),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_or_without_per_second() {
        assert_eq!("20".parse::<PerSecond>().unwrap().0.get(), 20);
        assert_eq!("5/s".parse::<PerSecond>().unwrap().0.get(), 5);
        let error = "0".parse::<PerSecond>().unwrap_err();
        assert!(error.contains("requests per second"), "{error}");
        assert!("fast".parse::<PerSecond>().is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let response = too_many_requests(Duration::from_millis(1200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = too_many_requests(Duration::ZERO);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
