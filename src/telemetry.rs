//! Traces over OTLP: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, every MCP request becomes a
//! span (`POST /mcp`), every `tools/call` a child of it (or of the caller's
//! span named by `traceparent` in the request's `_meta`, SEP-414), and the
//! plugin's run a child of that, with the MCP semantic-convention
//! attributes (`mcp.method.name`, `gen_ai.tool.name`…). A W3C `traceparent`
//! header joins the request to the caller's trace.
//!
//! Off by default, and then free: [`Tracing::off`] holds no tracer, and
//! every place that makes a span looks at that `Option` first.
//!
//! Spans leave in batches over OTLP/HTTP (protobuf) through the server's own
//! HTTP client; stopping the server sends what is left.

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde_json::{Map, Value};

/// The variables that turn tracing on (either of them).
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TracingError(String);

/// Tracing off, for whoever needs one to lend (a constant, not state).
pub static OFF: Tracing = Tracing { inner: None };

/// The tracer, or nothing when tracing is off. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Tracing {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tracer: SdkTracer,
    /// Taken when the server stops, to send what is left.
    provider: Mutex<Option<SdkTracerProvider>>,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.inner.is_some() {
            "Tracing(on)"
        } else {
            "Tracing(off)"
        })
    }
}

impl Tracing {
    /// No traces, at no cost.
    pub fn off() -> Self {
        Self::default()
    }

    /// On when the OTLP endpoint variables say where to send spans; the
    /// exporter then reads the other `OTEL_EXPORTER_OTLP_*` variables
    /// (headers, timeout) itself.
    pub fn from_env() -> Result<Self, TracingError> {
        let set = ENDPOINT_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        if !set {
            return Ok(Self::off());
        }
        Self::build(None)
    }

    /// Send spans to `url` (the full URL, like `http://host:4318/v1/traces`).
    pub fn to_endpoint(url: &str) -> Result<Self, TracingError> {
        Self::build(Some(url))
    }

    fn build(url: Option<&str>) -> Result<Self, TracingError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| TracingError("no async runtime".into()))?;
        let client = OtlpClient {
            client: reqwest::Client::new(),
            runtime,
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client);
        if let Some(url) = url {
            exporter = exporter.with_endpoint(url);
        }
        let exporter = exporter
            .build()
            .map_err(|error| TracingError(error.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("wasimancer")
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("wasimancer");
        Ok(Self {
            inner: Some(Arc::new(Inner {
                tracer,
                provider: Mutex::new(Some(provider)),
            })),
        })
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Send the spans not sent yet and stop exporting. The exporter waits
    /// for the async runtime, so this waits on a thread of its own.
    pub async fn shutdown(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let provider = inner
            .provider
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(provider) = provider {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }

    /// A span for an HTTP request, joined to the caller's trace by its
    /// `traceparent` header; `None` when tracing is off.
    pub fn http_request(&self, method: &str, route: &str, headers: &HeaderMap) -> Option<Context> {
        let inner = self.inner.as_ref()?;
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let span = inner
            .tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("http.route", route.to_string()),
            ])
            .start_with_context(&inner.tracer, &parent);
        Some(parent.with_span(span))
    }

    /// A span for an MCP request (`tools/call` of `tool`), a child of the
    /// caller's span named in `_meta` if it names one, else of `http` (the
    /// HTTP request's span).
    pub fn mcp_request(
        &self,
        method: &str,
        tool: Option<&str>,
        meta: &Map<String, Value>,
        http: Option<&Context>,
        session: Option<&str>,
    ) -> Option<Context> {
        let inner = self.inner.as_ref()?;
        let from_meta = TraceContextPropagator::new().extract(&MetaExtractor(meta));
        let parent = if from_meta.span().span_context().is_valid() {
            from_meta
        } else {
            http.cloned().unwrap_or_default()
        };
        let mut attributes = vec![KeyValue::new("mcp.method.name", method.to_string())];
        if let Some(tool) = tool {
            attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
            attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        if let Some(session) = session {
            attributes.push(KeyValue::new("mcp.session.id", session.to_string()));
        }
        let name = match tool {
            Some(tool) => format!("{method} {tool}"),
            None => method.to_string(),
        };
        let span = inner
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&inner.tracer, &parent);
        Some(parent.with_span(span))
    }

    /// A span for a plugin running `function`, a child of the current
    /// context (the MCP request's span, when there is one).
    pub fn plugin_call(&self, plugin: &str, function: &str) -> Option<Context> {
        let inner = self.inner.as_ref()?;
        let parent = Context::current();
        let span = inner
            .tracer
            .span_builder(format!("plugin {plugin}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("wasimancer.plugin", plugin.to_string()),
                KeyValue::new("wasimancer.function", function.to_string()),
            ])
            .start_with_context(&inner.tracer, &parent);
        Some(parent.with_span(span))
    }
}

/// End the span of `context` with its outcome: `None` for success, or the
/// kind of failure (`error.type`) and its message.
pub fn finish(context: &Context, failure: Option<(&str, &str)>) {
    let span = context.span();
    match failure {
        None => {
            span.set_attribute(KeyValue::new("wasimancer.outcome", "ok"));
        }
        Some((kind, message)) => {
            span.set_attribute(KeyValue::new("wasimancer.outcome", kind.to_string()));
            span.set_attribute(KeyValue::new("error.type", kind.to_string()));
            span.set_status(Status::error(message.to_string()));
        }
    }
    span.end();
}

/// End an HTTP request's span with its status code.
pub fn finish_http(context: &Context, status: u16) {
    let span = context.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 500 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
    span.end();
}

/// The span of the HTTP request, kept in the request's extensions for the
/// MCP handler (rmcp hands the handler the request's parts).
#[derive(Clone)]
pub struct HttpSpan(pub Context);

/// `traceparent` and `tracestate` from a request's `_meta`.
struct MetaExtractor<'a>(&'a Map<String, Value>);

impl Extractor for MetaExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The exporter's HTTP client: the server's reqwest, run on the server's
/// runtime (the exporter calls from a thread of its own).
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_makes_no_spans() {
        let tracing = Tracing::off();
        assert!(!tracing.is_on());
        assert!(
            tracing
                .http_request("POST", "/mcp", &HeaderMap::new())
                .is_none()
        );
        assert!(
            tracing
                .mcp_request("tools/call", Some("add"), &Map::new(), None, None)
                .is_none()
        );
        assert!(tracing.plugin_call("addition", "add").is_none());
    }
}
