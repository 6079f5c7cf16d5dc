//! The checks every request passes before it reaches a handler: the Host and
//! Origin allow-lists (against DNS rebinding and cross-site requests from a
//! browser) and bearer tokens, compared in constant time.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Hosts served when no `--allowed-host` is given: loopback only.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A bearer token. Its `Debug` and `Display` never show it, so it cannot leak
/// into logs by accident. It has no `==`: compare with [`Token::matches`],
/// which takes the same time wherever the inputs differ.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// A fresh random token: 24 bytes from the OS, as 48 hex digits.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        ))
    }

    /// The token itself, for the one time it is shown to the operator.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The token with all but its first and last two characters hidden.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 8 {
            return "•".repeat(chars.len());
        }
        let head: String = chars[..2].iter().collect();
        let tail: String = chars[chars.len() - 2..].iter().collect();
        format!("{head}{}{tail}", "•".repeat(8))
    }

    /// Whether `given` is this token. The time taken depends only on the
    /// length of the expected token, never on where `given` differs.
    pub fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut padded = vec![0u8; expected.len()];
        let n = given.len().min(expected.len());
        padded[..n].copy_from_slice(&given[..n]);
        let same_length = (given.len() as u64).ct_eq(&(expected.len() as u64));
        (padded.ct_eq(expected) & same_length).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// Where a request may come from.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Host names or `host:port` authorities; `*` allows any.
    pub hosts: Vec<String>,
    /// Origins as `scheme://host[:port]`; `*` allows any. Loopback origins are
    /// always allowed (a browser on this machine is as trusted as curl on it).
    pub origins: Vec<String>,
}

/// Refuse requests whose Host or Origin is not allowed.
pub async fn check_host_and_origin(
    State(allow): State<Arc<AllowList>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(reason) = allow.check(request.headers(), request.uri()) {
        tracing::warn!(%reason, path = %request.uri().path(), "request refused");
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    next.run(request).await
}

impl AllowList {
    fn check(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), String> {
        // A Host we cannot read is refused like one we do not serve: skipping
        // the check would let any name through.
        let host = match headers.get(header::HOST) {
            Some(value) => Some(value.to_str().map_err(|_| {
                "Forbidden: the Host header is not text (protection against DNS rebinding); \
                 send the server's name in ASCII"
                    .to_string()
            })?),
            None => uri.authority().map(|a| a.as_str()),
        };
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            return Err(format!(
                "Forbidden: Host `{host}` is not served here (protection against DNS rebinding). \
                 If this server should answer to it, start wasimancer with --allowed-host {}",
                host_name(host)
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            if !self.origin_allowed(origin) {
                return Err(format!(
                    "Forbidden: Origin `{origin}` may not call this server. \
                     To allow a web page from there, start wasimancer with --allowed-origin {origin}"
                ));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let name = host_name(authority);
        let loopback = LOOPBACK_HOSTS.iter().any(|h| name.eq_ignore_ascii_case(h));
        loopback
            || self.hosts.iter().any(|allowed| {
                allowed == "*"
                    || allowed.eq_ignore_ascii_case(authority)
                    || allowed.eq_ignore_ascii_case(name)
            })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self
            .origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
        {
            return true;
        }
        // `null` (a sandboxed page or a file://) is never a loopback origin.
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https")
            && LOOPBACK_HOSTS
                .iter()
                .any(|h| host_name(authority).eq_ignore_ascii_case(h))
    }
}

/// `example.com` from `example.com:8080`, `::1` from `[::1]:3001`.
fn host_name(authority: &str) -> &str {
    let authority = authority.trim_end_matches('/');
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    }
}

/// What a token check needs: the token (none means the check is off) and
/// what the 401 should name.
#[derive(Clone)]
pub struct BearerAuth {
    pub token: Option<Token>,
    pub realm: &'static str,
    /// How to get the token, for the error message.
    pub hint: &'static str,
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Refuse requests without the right `Authorization: Bearer` token. Runs
/// before the body is read.
pub async fn require_bearer(
    State(auth): State<Arc<BearerAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &auth.token else {
        return next.run(request).await;
    };
    match bearer_token(request.headers()) {
        Some(given) if token.matches(given.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized(&auth, true),
        None => unauthorized(&auth, false),
    }
}

fn unauthorized(auth: &BearerAuth, wrong: bool) -> Response {
    let (challenge, message) = if wrong {
        (
            format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"the token is not valid\"",
                auth.realm
            ),
            format!("Unauthorized: the bearer token is not valid. {}", auth.hint),
        )
    } else {
        (
            format!("Bearer realm=\"{}\"", auth.realm),
            format!(
                "Unauthorized: send the header `Authorization: Bearer <token>`. {}",
                auth.hint
            ),
        )
    };
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let token = Token::new("s3cret-token");
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-tokem"));
        assert!(!token.matches(b"s3cret-token-and-more"));
        assert!(!token.matches(b"s3cret"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn tokens_never_print() {
        let token = Token::new("abcdefghijkl");
        assert_eq!(format!("{token:?}"), "Token(hidden)");
        assert_eq!(token.masked(), "ab••••••••kl");
        let generated = Token::generate().unwrap();
        assert_eq!(generated.reveal().len(), 48);
        assert_ne!(generated.reveal(), Token::generate().unwrap().reveal());
    }

    /// `==` on tokens would compare in variable time beside the careful
    /// [`Token::matches`]: the type must not have it. This does not compile
    /// if `Token: PartialEq` (the two impls below then overlap for `Token`
    /// and the call is ambiguous).
    #[test]
    fn tokens_have_no_equality_operator() {
        trait NoEquality<Which> {
            fn check() {}
        }
        impl<T: ?Sized> NoEquality<()> for T {}
        struct HasEquality;
        impl<T: ?Sized + PartialEq> NoEquality<HasEquality> for T {}
        <Token as NoEquality<_>>::check();
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn loopback_is_allowed_and_other_hosts_are_not() {
        let allow = AllowList::default();
        let uri = axum::http::Uri::from_static("/mcp");
        for host in ["localhost:3001", "127.0.0.1", "[::1]:3001", "LOCALHOST"] {
            assert!(
                allow.check(&headers(&[("host", host)]), &uri).is_ok(),
                "{host}"
            );
        }
        let refused = allow
            .check(&headers(&[("host", "evil.example:3001")]), &uri)
            .unwrap_err();
        assert!(refused.contains("--allowed-host evil.example"), "{refused}");

        let allow = AllowList {
            hosts: vec!["mcp.example.com".into()],
            origins: vec![],
        };
        assert!(
            allow
                .check(&headers(&[("host", "mcp.example.com:443")]), &uri)
                .is_ok()
        );
    }

    #[test]
    fn a_host_that_is_not_text_is_refused() {
        let mut map = HeaderMap::new();
        map.insert(
            header::HOST,
            HeaderValue::from_bytes(b"\xff\xfe.example").unwrap(),
        );
        let uri = axum::http::Uri::from_static("/plugins");
        let refused = AllowList::default().check(&map, &uri).unwrap_err();
        assert!(refused.contains("not text"), "{refused}");
        let everyone = AllowList {
            hosts: vec!["*".into()],
            origins: vec![],
        };
        assert!(everyone.check(&map, &uri).is_err());
    }

    #[test]
    fn foreign_origins_are_refused() {
        let allow = AllowList::default();
        let uri = axum::http::Uri::from_static("/mcp");
        let check =
            |origin| allow.check(&headers(&[("host", "localhost"), ("origin", origin)]), &uri);
        assert!(check("http://localhost:6274").is_ok());
        assert!(check("https://127.0.0.1").is_ok());
        assert!(check("http://evil.example").is_err());
        assert!(check("null").is_err());
        assert!(check("http://localhost.evil.example").is_err());
    }
}
