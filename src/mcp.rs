//! The MCP side, answered from the registry: tools (list, call), resources
//! (list, templates, read), prompts (list, get), completion of their
//! arguments, and `notifications/*/list_changed` pushed when a list changes.
//!
//! rmcp makes one handler per session (or per request when stateless), so the
//! handler is a cheap clone of the registry handle and never loads anything.
//! Its capabilities are fixed when it is made: resources and prompts are
//! advertised only when resources.yml or prompts.yml is served.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
    CompleteRequestMethod, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
    GetPromptRequestMethod, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    Implementation, ListPromptsRequestMethod, ListPromptsResult,
    ListResourceTemplatesRequestMethod, ListResourceTemplatesResult, ListResourcesRequestMethod,
    ListResourcesResult, ListToolsResult, MetaObject, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, Prompt, PromptArgument, PromptMessage,
    PromptsCapability, ReadResourceRequestMethod, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Reference, Resource, ResourceContents, ResourceTemplate,
    ResourcesCapability, Role, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool as McpTool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::catalog::MessageRole;
use crate::events::CallSource;
use crate::registry::{CallReply, Registry, ServedPrompt, ServedResource, Tool, ToolOutput};
use crate::runtime::{CallControl, CallFailure, FailureKind, Progress};
use crate::telemetry::{self, HttpSpan};
use futures_util::future::Either;
use opentelemetry::context::FutureExt as _;

/// How often a session's notification task checks that its session still
/// exists when nothing changes.
const SESSION_CHECK: Duration = Duration::from_secs(30);
/// Progress reports waiting to be sent to one client; more are dropped.
const PROGRESS_QUEUE: usize = 64;

/// Serves the registry's tools to one MCP session.
#[derive(Clone)]
pub struct McpHandler {
    registry: Registry,
    info: Arc<ServerConfig>,
}

impl McpHandler {
    pub fn new(registry: Registry) -> Self {
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let (resources, prompts) = (registry.resources(), registry.prompts());
        if resources.is_served() {
            let mut resources = ResourcesCapability::default();
            resources.list_changed = Some(true);
            capabilities.resources = Some(resources);
        }
        if prompts.is_served() {
            let mut prompts = PromptsCapability::default();
            prompts.list_changed = Some(true);
            capabilities.prompts = Some(prompts);
        }
        if resources.offers_completion() || prompts.offers_completion() {
            capabilities.completions = Some(Default::default());
        }
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
        }
    }

    fn serves_resources(&self) -> bool {
        self.registry.resources().is_served()
    }

    fn serves_prompts(&self) -> bool {
        self.registry.prompts().is_served()
    }
}

/// The MCP form of a static resource.
fn mcp_resource(resource: &ServedResource) -> Resource {
    let spec = &resource.spec;
    let mut mcp = Resource::new(spec.uri.clone(), spec.name.clone());
    mcp.title = spec.title.clone();
    mcp.description = spec.description.clone();
    mcp.mime_type = spec.mime_type.clone();
    mcp
}

/// The MCP form of a resource template.
fn mcp_template(resource: &ServedResource) -> ResourceTemplate {
    let spec = &resource.spec;
    let mut mcp = ResourceTemplate::new(spec.uri.clone(), spec.name.clone());
    mcp.title = spec.title.clone();
    mcp.description = spec.description.clone();
    mcp.mime_type = spec.mime_type.clone();
    mcp
}

/// The MCP form of a prompt.
fn mcp_prompt(prompt: &ServedPrompt) -> Prompt {
    let spec = &prompt.spec;
    let arguments = spec
        .arguments
        .iter()
        .map(|a| {
            let mut argument = PromptArgument::new(a.name.clone()).with_required(a.required);
            argument.description = a.description.clone();
            argument
        })
        .collect::<Vec<_>>();
    let mut mcp = Prompt::new(
        spec.name.clone(),
        spec.description.clone(),
        (!arguments.is_empty()).then_some(arguments),
    );
    mcp.title = spec.title.clone();
    mcp
}

/// A failed read, render or completion as the JSON-RPC error the spec asks
/// for. rmcp turns resource-not-found (-32002) into -32602 for 2026-07-28.
fn protocol_error(failure: CallFailure, uri: Option<&str>) -> ErrorData {
    match failure.kind {
        FailureKind::UnknownResource => {
            ErrorData::resource_not_found(failure.message, uri.map(|uri| json!({ "uri": uri })))
        }
        FailureKind::UnknownPrompt | FailureKind::InvalidArguments => {
            ErrorData::invalid_params(failure.message, None)
        }
        _ => ErrorData::internal_error(failure.message, None),
    }
}

/// Which list changed.
#[derive(Debug, Clone, Copy)]
enum List {
    Tools,
    Resources,
    Prompts,
}

/// Waits for any of the lists a client follows to change.
struct ListChanges {
    tools: Option<watch::Receiver<u64>>,
    resources: Option<watch::Receiver<u64>>,
    prompts: Option<watch::Receiver<u64>>,
}

impl ListChanges {
    fn new(registry: &Registry, tools: bool, resources: bool, prompts: bool) -> Self {
        let follow = |wanted: bool, mut receiver: watch::Receiver<u64>| {
            wanted.then(|| {
                receiver.borrow_and_update();
                receiver
            })
        };
        Self {
            tools: follow(tools, registry.watch_tools()),
            resources: follow(resources, registry.watch_resources()),
            prompts: follow(prompts, registry.watch_prompts()),
        }
    }

    /// The next list to change; `None` once the registry is gone.
    async fn next(&mut self) -> Option<List> {
        async fn changed(receiver: &mut Option<watch::Receiver<u64>>) -> bool {
            match receiver {
                Some(receiver) => receiver.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        }
        let (list, alive) = tokio::select! {
            alive = changed(&mut self.tools) => (List::Tools, alive),
            alive = changed(&mut self.resources) => (List::Resources, alive),
            alive = changed(&mut self.prompts) => (List::Prompts, alive),
        };
        alive.then_some(list)
    }
}

/// The MCP form of a tool.
fn mcp_tool(tool: &Tool) -> McpTool {
    let mut mcp = McpTool::new(
        tool.name.to_string(),
        tool.description.clone(),
        Arc::clone(&tool.input_schema),
    );
    if let Some(title) = tool.listed_title() {
        mcp = mcp.with_title(title.to_string());
    }
    let declared = &tool.declared;
    mcp.output_schema = declared
        .output_schema
        .as_ref()
        .map(|schema| Arc::clone(schema.document()));
    // Our metadata types serialise to MCP's field names; rmcp's are
    // non-exhaustive, so they are built through serde.
    mcp.annotations = declared
        .annotations
        .as_ref()
        .and_then(|hints| serde_json::from_value(serde_json::to_value(hints).ok()?).ok());
    if !declared.icons.is_empty() {
        mcp.icons =
            serde_json::from_value(serde_json::to_value(&declared.icons).unwrap_or_default()).ok();
    }
    mcp
}

/// The MCP result of a tool call. Content blocks were checked when the
/// plugin returned them; one rmcp cannot read becomes a text block that says so.
fn call_result(output: ToolOutput) -> CallToolResult {
    let content = output
        .content
        .into_iter()
        .map(|item| {
            serde_json::from_value::<ContentBlock>(Value::Object(item.0)).unwrap_or_else(|error| {
                ContentBlock::text(format!(
                    "(a content block the server could not pass on: {error})"
                ))
            })
        })
        .collect();
    let mut result = if output.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = output.structured;
    result
}

/// A tool call's outcome as MCP answers it: an unknown tool is a protocol
/// error; every other failure is a tool result the model can read and act on.
pub(crate) fn tool_answer(
    result: Result<CallReply, CallFailure>,
) -> Result<CallToolResponse, ErrorData> {
    match result {
        Ok(reply) => Ok(call_result(reply.output).into()),
        Err(failure) if failure.kind == FailureKind::UnknownTool => {
            Err(ErrorData::invalid_params(failure.message, None))
        }
        Err(failure) => Ok(CallToolResult::error(vec![ContentBlock::text(failure.message)]).into()),
    }
}

/// The client capabilities `tool` needs that the caller did not declare, as
/// MCP's `requiredCapabilities` object (`{"sampling": {}}`), when some are missing.
fn missing_capabilities(
    tool: &Tool,
    context: &RequestContext<RoleServer>,
) -> Option<ClientCapabilities> {
    let declared = context.client_capabilities().unwrap_or_default();
    let declared = serde_json::to_value(declared).unwrap_or_default();
    let missing: Map<String, Value> = tool
        .declared
        .client_capabilities
        .iter()
        .map(|capability| capability.as_str())
        .filter(|name| declared.get(*name).is_none_or(Value::is_null))
        .map(|name| (name.to_string(), json!({})))
        .collect();
    if missing.is_empty() {
        return None;
    }
    serde_json::from_value(Value::Object(missing)).ok()
}

/// Send one progress report to the client as `notifications/progress` for
/// `token`. A client that cannot take it loses it; the call goes on.
async fn notify_progress(peer: &rmcp::Peer<RoleServer>, token: &ProgressToken, report: Progress) {
    let mut param = ProgressNotificationParam::new(token.clone(), report.progress);
    if let Some(total) = report.total {
        param = param.with_total(total);
    }
    if let Some(message) = report.message {
        param = param.with_message(message);
    }
    let _ = peer.notify_progress(param).await;
}

/// Who is calling: the client's name and its session, when known.
///
/// Without a session (WASImancer-style one-off requests, `--stateless`),
/// rmcp answers as if a default client had initialized, and the name it
/// reports is its own, not the caller's: it is left out.
impl McpHandler {
    /// The span of a `tools/call` when tracing is on: a child of the span
    /// `_meta.traceparent` names, else of the HTTP request's.
    fn tool_call_span(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<opentelemetry::Context> {
        let tracing = self.registry.tracing();
        if !tracing.is_on() {
            return None;
        }
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let http = parts.and_then(|parts| parts.extensions.get::<HttpSpan>());
        let session = parts
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|value| value.to_str().ok());
        let meta = match &request.meta {
            Some(meta) if !meta.0.0.is_empty() => &meta.0.0,
            _ => &context.meta.0.0,
        };
        tracing.mcp_request(
            "tools/call",
            Some(&request.name),
            meta,
            http.map(|span| &span.0),
            session,
        )
    }
}

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

    /// The tool as listed; rmcp checks a request's `Mcp-Param-*` headers
    /// (SEP-2243) against its input schema's `x-mcp-header` annotations.
    fn get_tool(&self, name: &str) -> Option<McpTool> {
        self.registry
            .snapshot()
            .tool(name)
            .map(|tool| mcp_tool(tool))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snapshot = self.registry.snapshot();
        let tools = snapshot.tools.iter().map(|t| mcp_tool(t)).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let source = call_source(&context);
        if let Some(tool) = self.registry.snapshot().tool(&request.name)
            && let Some(required) = missing_capabilities(tool, &context)
        {
            return Err(ErrorData::missing_required_client_capability(required));
        }
        // Progress reports go out while the plugin runs, all of them before
        // the result: the call ends by dropping the sending side, and what
        // is left in the channel is sent before the answer.
        let token = context.meta.get_progress_token();
        let (progress, mut reports) = match token {
            Some(_) => {
                let (sender, receiver) = mpsc::channel(PROGRESS_QUEUE);
                (Some(CallControl::queue(sender)), Some(receiver))
            }
            None => (None, None),
        };
        let control = CallControl {
            progress,
            cancel: Some(context.ct.clone()),
        };
        let span = self.tool_call_span(&request, &context);
        // Boxed, as the reads and renders below: rmcp's request future is as
        // large as its largest handler's, and tokio copies it whole into
        // each request's task (memcpy of 6 to 11 KB per call in profiles).
        let call =
            Box::pin(
                self.registry
                    .call_with(source, &request.name, request.arguments, control),
            );
        // The plugin's span is a child of this one; without tracing the
        // call is polled as it is.
        let call = match &span {
            Some(span) => Either::Left(call.with_context(span.clone())),
            None => Either::Right(call),
        };
        let result = match (token, reports.as_mut()) {
            (Some(token), Some(reports)) => {
                let peer = &context.peer;
                tokio::pin!(call);
                let result = loop {
                    tokio::select! {
                        biased;
                        Some(report) = reports.recv() => notify_progress(peer, &token, report).await,
                        result = &mut call => break result,
                    }
                };
                while let Ok(report) = reports.try_recv() {
                    notify_progress(peer, &token, report).await;
                }
                result
            }
            _ => call.await,
        };
        if let Some(span) = &span {
            let failure = result.as_ref().err();
            telemetry::finish(span, failure.map(|f| (f.kind.code(), f.message.as_str())));
        }
        tool_answer(result)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if !self.serves_resources() {
            return Err(ErrorData::method_not_found::<ListResourcesRequestMethod>());
        }
        let set = self.registry.resources();
        let resources = set.statics().map(|r| mcp_resource(r)).collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        if !self.serves_resources() {
            return Err(ErrorData::method_not_found::<
                ListResourceTemplatesRequestMethod,
            >());
        }
        let set = self.registry.resources();
        let templates = set.templates().map(|r| mcp_template(r)).collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if !self.serves_resources() {
            return Err(ErrorData::method_not_found::<ReadResourceRequestMethod>());
        }
        let read = Box::pin(
            self.registry
                .read_resource(call_source(&context), &request.uri),
        )
        .await
        .map_err(|failure| protocol_error(failure, Some(&request.uri)))?;
        let contents = read
            .contents
            .into_iter()
            .map(|content| {
                let mut served = match content.blob {
                    Some(blob) => ResourceContents::blob(blob, content.uri),
                    None => ResourceContents::text(content.text, content.uri),
                };
                if let ResourceContents::TextResourceContents {
                    mime_type, meta, ..
                }
                | ResourceContents::BlobResourceContents {
                    mime_type, meta, ..
                } = &mut served
                {
                    *mime_type = content.mime_type;
                    *meta = (!content.meta.is_empty()).then_some(MetaObject(content.meta));
                }
                served
            })
            .collect();
        Ok(ReadResourceResult::new(contents).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        if !self.serves_prompts() {
            return Err(ErrorData::method_not_found::<ListPromptsRequestMethod>());
        }
        let set = self.registry.prompts();
        let prompts = set.prompts.iter().map(|p| mcp_prompt(p)).collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if !self.serves_prompts() {
            return Err(ErrorData::method_not_found::<GetPromptRequestMethod>());
        }
        let rendered = Box::pin(self.registry.render_prompt(
            call_source(&context),
            &request.name,
            request.arguments,
        ))
        .await
        .map_err(|failure| protocol_error(failure, None))?;
        let messages = rendered
            .messages
            .into_iter()
            .map(|message| {
                let role = match message.role {
                    MessageRole::User => Role::User,
                    MessageRole::Assistant => Role::Assistant,
                };
                match message.content {
                    None => PromptMessage::new_text(role, message.text),
                    // Checked when the prompt was rendered; a block rmcp
                    // cannot read is sent as its label.
                    Some(block) => {
                        let content = serde_json::from_value(Value::Object(block.0))
                            .unwrap_or_else(|_| ContentBlock::text(message.text));
                        PromptMessage::new(role, content)
                    }
                }
            })
            .collect();
        let mut result = GetPromptResult::new(messages);
        result.description = rendered.description;
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        if !self.serves_resources() && !self.serves_prompts() {
            return Err(ErrorData::method_not_found::<CompleteRequestMethod>());
        }
        let argument = &request.argument;
        let values = match &request.r#ref {
            Reference::Prompt(prompt) => {
                self.registry
                    .complete_prompt(&prompt.name, &argument.name, &argument.value)
            }
            Reference::Resource(resource) => {
                self.registry
                    .complete_resource(&resource.uri, &argument.name, &argument.value)
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("cannot complete a `{}`", other.reference_type()),
                    None,
                ));
            }
        }
        .map_err(|failure| ErrorData::invalid_params(failure.message, None))?;
        let total = values.len();
        let shown: Vec<String> = values
            .into_iter()
            .take(CompletionInfo::MAX_VALUES)
            .collect();
        let has_more = shown.len() < total;
        let completion = CompletionInfo::with_pagination(shown, Some(total as u32), has_more)
            .map_err(|message| ErrorData::internal_error(message, None))?;
        Ok(CompleteResult::new(completion))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Push list_changed to this session whenever a list it was told about
        // changes, until the session ends.
        let peer = context.peer;
        let capabilities = &self.info.capabilities;
        let mut changes = ListChanges::new(
            &self.registry,
            true,
            capabilities.resources.is_some(),
            capabilities.prompts.is_some(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    list = changes.next() => {
                        let Some(list) = list else { break };
                        if peer.is_transport_closed() {
                            break;
                        }
                        let sent = match list {
                            List::Tools => peer.notify_tool_list_changed().await,
                            List::Resources => peer.notify_resource_list_changed().await,
                            List::Prompts => peer.notify_prompt_list_changed().await,
                        };
                        if sent.is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep(SESSION_CHECK) => {
                        if peer.is_transport_closed() {
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
        // rmcp keeps only what the client asked for and what get_info advertises.
        Some(
            SubscriptionFilter::builder()
                .tools_list_changed()
                .resources_list_changed()
                .prompts_list_changed()
                .build(),
        )
    }

    /// Protocol 2026-07-28 has no sessions: clients that want list_changed
    /// hold a `subscriptions/listen` request open instead.
    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        let accepted = subscription.accepted();
        let mut changes = ListChanges::new(
            &self.registry,
            accepted.tools_list_changed == Some(true),
            accepted.resources_list_changed == Some(true),
            accepted.prompts_list_changed == Some(true),
        );
        loop {
            let list = tokio::select! {
                _ = subscription.cancelled() => return Ok(()),
                list = changes.next() => list,
            };
            let sink = subscription.sink();
            let sent = match list {
                None => return Ok(()),
                Some(List::Tools) => sink.notify_tool_list_changed().await,
                Some(List::Resources) => sink.notify_resource_list_changed().await,
                Some(List::Prompts) => sink.notify_prompt_list_changed().await,
            };
            if sent.is_err() {
                return Ok(());
            }
        }
    }
}
