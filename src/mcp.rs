//! The MCP side: tools/list and tools/call answered from the registry, and
//! `notifications/tools/list_changed` pushed when the tools change.
//!
//! rmcp makes one handler per session (or per request when stateless), so the
//! handler is a cheap clone of the registry handle and never loads anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool as McpTool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::events::CallSource;
use crate::registry::{Registry, Tool};
use crate::runtime::FailureKind;

/// How often a session's notification task checks that its session still
/// exists when nothing changes.
const SESSION_CHECK: Duration = Duration::from_secs(30);

/// Serves the registry's tools to one MCP session.
#[derive(Clone)]
pub struct McpHandler {
    registry: Registry,
    info: Arc<ServerConfig>,
    activity: Arc<Activity>,
}

/// When the session's client last asked for something.
///
/// rmcp closes a session that has been idle for the idle timeout, but a
/// notification we send counts as activity to it: without this, a client
/// that went away while plugins kept changing would leave its session alive
/// for good. So list_changed goes only to clients heard from within the
/// timeout; after that the session falls silent and rmcp closes it.
struct Activity {
    since: Instant,
    /// Milliseconds after `since` of the last request.
    last_ms: AtomicU64,
    idle_timeout: Duration,
}

impl Activity {
    fn touch(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn client_gone(&self) -> bool {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last) >= self.idle_timeout
    }
}

impl McpHandler {
    /// A handler for one session, which rmcp closes after `idle_timeout`
    /// without a request.
    pub fn new(registry: Registry, idle_timeout: Duration) -> Self {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut implementation = Implementation::new("wasimancer", env!("CARGO_PKG_VERSION"));
        implementation.title = Some("wasimancer".into());
        let info = ServerConfig::new(capabilities)
            .with_server_info(implementation)
            .with_instructions(
                "Tools are functions of WebAssembly plugins. Pass arguments as the input schema says; \
                 a result with isError explains what went wrong and what to change.",
            );
        Self {
            registry,
            info: Arc::new(info),
            activity: Arc::new(Activity {
                since: Instant::now(),
                last_ms: AtomicU64::new(0),
                idle_timeout,
            }),
        }
    }
}

/// The MCP form of a tool.
fn mcp_tool(tool: &Tool) -> McpTool {
    let mut mcp = McpTool::new(
        tool.name.to_string(),
        tool.description.clone(),
        Arc::clone(&tool.input_schema),
    );
    if *tool.name != tool.title {
        mcp = mcp.with_title(tool.title.clone());
    }
    mcp
}

/// Who is calling: the client's name and its session, when known.
///
/// Without a session (WASImancer-style one-off requests, `--stateless`),
/// rmcp answers as if a default client had initialized, and the name it
/// reports is its own, not the caller's: it is left out.
fn call_source(context: &RequestContext<RoleServer>) -> CallSource {
    let session: Option<Arc<str>> = context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|value| value.to_str().ok())
        .map(Arc::from);
    let client = session
        .as_ref()
        .and(context.peer.peer_info())
        .map(|info| Arc::<str>::from(info.client_info.name.as_str()));
    CallSource::Mcp { client, session }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        (*self.info).clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.activity.touch();
        let snapshot = self.registry.snapshot();
        let tools = snapshot.tools.iter().map(|t| mcp_tool(t)).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.activity.touch();
        let source = call_source(&context);
        match self
            .registry
            .call(source, &request.name, request.arguments)
            .await
        {
            Ok(reply) => Ok(CallToolResult::success(vec![ContentBlock::text(reply.text)]).into()),
            // An unknown tool is a protocol error; everything else is a tool
            // result the model can read and act on.
            Err(failure) if failure.kind == FailureKind::UnknownTool => {
                Err(ErrorData::invalid_params(failure.message, None))
            }
            Err(failure) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(failure.message)]).into())
            }
        }
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.activity.touch();
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Push list_changed to this session whenever the tools change, until
        // the session ends or its client has gone quiet (see `Activity`).
        self.activity.touch();
        let peer = context.peer;
        let activity = Arc::clone(&self.activity);
        let mut changes = self.registry.watch_tools();
        changes.borrow_and_update();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() || peer.is_transport_closed() || activity.client_gone() {
                            break;
                        }
                        if peer.notify_tool_list_changed().await.is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep(SESSION_CHECK) => {
                        if peer.is_transport_closed() || activity.client_gone() {
                            break;
                        }
                    }
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// Protocol 2026-07-28 has no sessions: clients that want list_changed
    /// hold a `subscriptions/listen` request open instead.
    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.registry.watch_tools();
        changes.borrow_and_update();
        loop {
            tokio::select! {
                _ = subscription.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if subscription.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
