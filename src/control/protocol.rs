//! What a console and a server say to each other: one [`Frame`] type for
//! both directions, whatever carries it (the Unix socket, the admin HTTP
//! side, or a channel inside the process).
//!
//! On a byte stream each frame is JSON after a 4-byte big-endian length
//! ([`FrameCodec`]). A console opens with [`Frame::Hello`] naming the
//! protocol version it speaks; the server answers [`Frame::Welcome`] (the
//! whole picture: plugins, recent calls and log lines, counters) or
//! [`Frame::Refused`] with the reason, and closes. After the welcome the
//! server sends [`Frame::Updates`] about ten times a second while something
//! happens, and answers each [`Frame::Request`] with a [`Frame::Reply`] of the
//! same id. `Hello` and `Refused` keep their shape in every version, so a
//! console and a server of different versions always understand why they
//! cannot talk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

use crate::catalog::{ArgumentSpec, ParameterSpec, parameter_values};
use crate::events::SharedEvent;
use crate::operations::Phase;
use crate::registry::{
    Arguments, CallDetail, CallReply, ChangeReport, PluginState, RenderedPrompt, ResourceRead,
    RunningCall,
};
use crate::runtime::CallFailure;
use crate::schema::JsonSchema;
use crate::templates::UriTemplate;

/// The version of this protocol. A server refuses a console that speaks another.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame a server reads from a console: a request, whose biggest
/// part is a call's arguments.
pub const MAX_CONSOLE_FRAME: usize = 1024 * 1024;
/// The largest frame a console reads from a server: a welcome carries up to
/// a thousand calls and two thousand log lines.
pub const MAX_SERVER_FRAME: usize = 64 * 1024 * 1024;

/// One message, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// Console → server, first: the protocol it speaks and who it is.
    Hello { protocol: u32, client: String },
    /// Server → console, after a hello it accepts.
    Welcome(Box<Welcome>),
    /// Server → console, instead of a welcome: why not. The server closes.
    Refused { reason: String },
    /// Server → console: what happened since the last updates.
    Updates { updates: Vec<Update> },
    /// Console → server: something to do; answered by a reply with `id`.
    Request { id: u64, request: Request },
    /// Server → console: the answer to the request `id`.
    Reply { id: u64, reply: Reply },
}

impl Frame {
    /// The hello of this version of the console.
    pub fn hello() -> Self {
        Frame::Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("wasimancer {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Everything a console needs to draw its first screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub server: ServerSummary,
    pub plugins: Vec<PluginView>,
    /// What resources.yml serves, fixed URIs first, then templates.
    #[serde(default)]
    pub resources: Vec<ResourceView>,
    /// What prompts.yml serves.
    #[serde(default)]
    pub prompts: Vec<PromptView>,
    /// The most recent calls, oldest first.
    pub calls: Vec<SharedEvent>,
    /// The most recent lines of the server log, oldest first.
    pub log: Vec<String>,
    pub counters: Counters,
}

/// Who the server is and how it is set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// The server's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub pid: u32,
    /// Where `/mcp` is served.
    pub address: SocketAddr,
    /// The MCP bearer token, masked; `None` when authentication is off.
    pub mcp_token: Option<String>,
    /// The admin token, masked; `None` when the admin API needs none.
    pub admin_token: Option<String>,
    /// How long the server has been up, in milliseconds.
    pub uptime_ms: u64,
    /// Every request stands alone (no MCP sessions).
    pub stateless: bool,
    /// plugins.yml, as the server names it.
    pub catalog: String,
}

/// The server's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub calls: u64,
    pub errors: u64,
    pub in_flight: u64,
    /// Busy instances, by plugin (plugins with none busy are left out).
    pub busy: BTreeMap<String, usize>,
    /// Calls running now that reported progress, with the last report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<RunningCall>,
    /// MCP sessions open.
    #[serde(default)]
    pub sessions: u64,
    /// Requests the rate limit refused (429) since the start.
    #[serde(default)]
    pub rate_limited: u64,
    /// What the server is doing; a server that does not say is serving.
    #[serde(default)]
    pub phase: Phase,
}

/// One news item of an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum Update {
    /// A call finished, or a plugin changed.
    Event {
        event: SharedEvent,
    },
    /// The console looked too seldom and missed this many events.
    Missed {
        count: u64,
    },
    /// The plugins as they are now.
    Plugins {
        plugins: Vec<PluginView>,
    },
    /// The resources as they are now.
    Resources {
        resources: Vec<ResourceView>,
    },
    /// The prompts as they are now.
    Prompts {
        prompts: Vec<PromptView>,
    },
    /// New lines of the server log.
    Log {
        lines: Vec<String>,
    },
    Counters(Counters),
}

/// What a console may ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Call a tool, as the console's call form does.
    Call {
        tool: String,
        arguments: Map<String, Value>,
    },
    /// Reload one plugin with fresh instances.
    ReloadPlugin { plugin: String },
    /// Re-read plugins.yml and apply what changed.
    ReloadAll,
    /// Read a resource, as an MCP client's `resources/read` does.
    ReadResource { uri: String },
    /// Render a prompt, as an MCP client's `prompts/get` does.
    RenderPrompt {
        name: String,
        arguments: Map<String, Value>,
    },
    /// The full arguments and output of a recent call.
    CallDetail { call: u64 },
    /// The tokens themselves (the welcome has them masked).
    Tokens,
}

/// The answer to a [`Request`], variant for variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Called {
        result: Result<CallReply, CallFailure>,
    },
    Reloaded {
        result: Result<ChangeReport, String>,
    },
    Read {
        result: Result<ResourceRead, CallFailure>,
    },
    Rendered {
        result: Result<RenderedPrompt, CallFailure>,
    },
    CallDetail {
        /// `None` when the server no longer keeps that call's payloads.
        detail: Option<CallDetail>,
    },
    Tokens {
        mcp: Option<String>,
        admin: Option<String>,
    },
    /// The request never reached the server, or could not be understood.
    Failed { reason: String },
}

/// A plugin as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginView {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub state: PluginState,
    /// Why the last load failed, if it did.
    pub error: Option<String>,
    /// Its line in plugins.yml.
    pub line: Option<usize>,
    /// The module's path: the one serving, else the one declared.
    pub module: String,
    /// When the version serving was loaded.
    #[serde(default, with = "optional_unix_millis")]
    pub loaded_at: Option<SystemTime>,
    /// Instances of the version serving (0 when none serves).
    pub instances: usize,
    pub limits: Limits,
    /// The functions: those of the version serving (after a failed reload,
    /// the previous one), else those plugins.yml declares.
    pub tools: Vec<ToolView>,
}

impl PluginView {
    /// Whether some version of the plugin answers calls.
    pub fn serving(&self) -> bool {
        self.state != PluginState::Failed
    }
}

/// What a plugin may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mb: u32,
    pub wasi: bool,
    pub allowed_hosts: Vec<String>,
    /// Host folder → guest folder.
    pub allowed_paths: Vec<(String, String)>,
    /// The names of its config keys (values may be secrets and stay on the server).
    pub config_keys: Vec<String>,
}

/// A function of a plugin, as a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolView {
    /// The MCP name.
    pub name: String,
    /// The display name from plugins.yml.
    pub title: String,
    pub description: Option<String>,
    pub plugin: String,
    /// The export called.
    pub function: String,
    pub arguments: Vec<ArgumentSpec>,
    /// The arguments' JSON Schema, when plugins.yml gives one (`inputSchema`)
    /// instead of `arguments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<JsonSchema>,
}

impl ToolView {
    /// How the arguments are declared.
    pub fn declared(&self) -> Arguments<'_> {
        Arguments::of(&self.arguments, self.input_schema.as_ref())
    }

    /// The plugin input for `arguments`, or why they do not fit: the same
    /// check the server makes.
    pub fn input(&self, arguments: &Map<String, Value>) -> Result<String, String> {
        self.declared().plugin_input(&self.name, arguments)
    }

    pub fn signature(&self) -> String {
        self.declared().signature()
    }

    pub fn skeleton(&self) -> String {
        self.declared().skeleton()
    }
}

/// A resource of resources.yml as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    pub name: String,
    /// Its URI, or its URI template when it has variables.
    pub uri: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    /// The template's variables, as declared (none for a fixed URI).
    pub parameters: Vec<ParameterSpec>,
    /// The plugin and function that compute it, if a plugin does.
    pub computed_by: Option<(String, String)>,
    /// Its line in resources.yml.
    pub line: Option<usize>,
}

impl ResourceView {
    /// Whether its URI has variables to fill.
    pub fn is_template(&self) -> bool {
        !self.parameters.is_empty()
    }

    /// The URI to read with `values` for the variables, or what is wrong
    /// with them: the checks the server makes.
    pub fn uri_for(&self, values: &Map<String, Value>) -> Result<String, String> {
        let texts = parameter_values(&self.parameters, values).map_err(|problems| {
            format!(
                "invalid variables for `{}`: {}",
                self.uri,
                problems.join("; ")
            )
        })?;
        let template = UriTemplate::parse(&self.uri)?;
        template.expand(|name| {
            texts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, text)| text.as_str())
        })
    }
}

/// A prompt of prompts.yml as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptView {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub parameters: Vec<ParameterSpec>,
    /// How many messages it renders.
    pub messages: usize,
    /// Its line in prompts.yml.
    pub line: Option<usize>,
}

impl PromptView {
    /// Whether `values` fit the declared arguments, and if not why: the
    /// checks the server makes.
    pub fn check(&self, values: &Map<String, Value>) -> Result<(), String> {
        parameter_values(&self.parameters, values)
            .map(drop)
            .map_err(|problems| {
                format!(
                    "invalid arguments for prompt `{}`: {}",
                    self.name,
                    problems.join("; ")
                )
            })
    }
}

mod optional_unix_millis {
    use std::time::{Duration, SystemTime};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match time.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
            Some(since) => s.serialize_some(&(since.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?
            .map(|millis| SystemTime::UNIX_EPOCH + Duration::from_millis(millis)))
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {length} bytes is over the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error("a frame is not a message of the control protocol: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("the other end went away")]
    Closed,
}

/// Frames on a byte stream: a 4-byte big-endian length, then JSON. Each end
/// reads frames up to its own limit: a server takes small requests, a
/// console takes large welcomes.
pub struct FrameCodec {
    read_limit: usize,
}

/// The bytes of a frame's length.
const LENGTH: usize = 4;

impl FrameCodec {
    /// A codec that refuses to read frames over `read_limit` bytes.
    pub fn new(read_limit: usize) -> Self {
        Self { read_limit }
    }

    /// The codec of a server's end: it reads console frames.
    pub fn server() -> Self {
        Self::new(MAX_CONSOLE_FRAME)
    }

    /// The codec of a console's end: it reads server frames.
    pub fn console() -> Self {
        Self::new(MAX_SERVER_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    /// A frame stays in `source`, length and all, until the whole of it is
    /// there; its length is checked as soon as it is known, so an oversized
    /// frame is refused before any of it is buffered.
    fn decode(&mut self, source: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = source.get(..LENGTH) else {
            return Ok(None);
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if length > self.read_limit {
            return Err(FrameError::TooLarge {
                length,
                limit: self.read_limit,
            });
        }
        if source.len() < LENGTH + length {
            source.reserve(LENGTH + length - source.len());
            return Ok(None);
        }
        let frame = source.split_to(LENGTH + length);
        serde_json::from_slice(&frame[LENGTH..])
            .map(Some)
            .map_err(FrameError::Malformed)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// The JSON is written straight into `destination` after room for its
    /// length, which is filled in once known: a frame of a few thousand
    /// events is not made twice (and grown twice) per console on its way out.
    fn encode(&mut self, frame: Frame, destination: &mut BytesMut) -> Result<(), FrameError> {
        let start = destination.len();
        destination.extend_from_slice(&[0; LENGTH]);
        let written = serde_json::to_writer((&mut *destination).writer(), &frame)
            .map_err(FrameError::Malformed)
            .map(|()| destination.len() - start - LENGTH)
            .and_then(|length| match u32::try_from(length) {
                Ok(fits) if length <= MAX_SERVER_FRAME => Ok(fits),
                _ => Err(FrameError::TooLarge {
                    length,
                    limit: MAX_SERVER_FRAME,
                }),
            });
        match written {
            Ok(length) => {
                destination[start..start + LENGTH].copy_from_slice(&length.to_be_bytes());
                Ok(())
            }
            Err(error) => {
                // Nothing of a frame that cannot be sent stays in the buffer.
                destination.truncate(start);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::catalog::{ArgumentType, MessageRole, OutputKind};
    use crate::events::{CallEvent, CallSource, CallStatus, Change, LifecycleEvent, ServerEvent};
    use crate::registry::{PluginChange, RenderedMessage, ResourceContent, ToolOutput};
    use crate::runtime::FailureKind;
    use std::sync::Arc;

    fn call(id: u64, status: CallStatus) -> SharedEvent {
        SharedEvent::new(Arc::new(ServerEvent::Call(CallEvent {
            id,
            started: SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_268_800_123),
            source: CallSource::Mcp {
                client: Some("claude".into()),
                session: Some("5f3a".into()),
            },
            kind: Default::default(),
            tool: "rollDice".into(),
            plugin: "roll-dice".into(),
            arguments: r#"{"numDice":2}"#.into(),
            status,
            duration: Duration::from_micros(812),
            overlapping: 2,
        })))
    }

    fn plugin() -> PluginView {
        PluginView {
            name: "roll-dice".into(),
            version: Some("1.0.0".into()),
            description: None,
            state: PluginState::Stale,
            error: Some("plugins.yml line 4: no such export".into()),
            line: Some(3),
            module: "plugins/roll-dice.wasm".into(),
            loaded_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(42)),
            instances: 2,
            limits: Limits {
                timeout_ms: 10_000,
                memory_mb: 64,
                wasi: true,
                allowed_hosts: vec!["api.example.com".into()],
                allowed_paths: vec![("data".into(), "/data".into())],
                config_keys: vec!["WASM_KEY".into()],
            },
            tools: vec![ToolView {
                name: "rollDice".into(),
                title: "roll dice".into(),
                description: Some("Roll dice".into()),
                plugin: "roll-dice".into(),
                function: "rollDice".into(),
                arguments: vec![ArgumentSpec {
                    name: "numDice".into(),
                    kind: ArgumentType::Integer,
                    description: None,
                    required: false,
                    header: Some("Dice".into()),
                }],
                input_schema: None,
            }, ToolView {
                name: "book".into(),
                title: "book".into(),
                description: None,
                plugin: "roll-dice".into(),
                function: "book".into(),
                arguments: Vec::new(),
                input_schema: serde_json::from_str(
                    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
                )
                .ok(),
            }],
        }
    }

    fn resource() -> ResourceView {
        ResourceView {
            name: "dice".into(),
            uri: "dice://{count}d{faces}".into(),
            title: Some("Dice".into()),
            description: None,
            mime_type: Some("application/json".into()),
            parameters: vec![ParameterSpec::text("count"), ParameterSpec::text("faces")],
            computed_by: Some(("roll-dice".into(), "rollDice".into())),
            line: Some(7),
        }
    }

    fn prompt() -> PromptView {
        PromptView {
            name: "greet".into(),
            title: None,
            description: Some("Greet".into()),
            parameters: vec![ParameterSpec {
                required: false,
                ..ParameterSpec::text("nickName")
            }],
            messages: 2,
            line: None,
        }
    }

    /// One frame of every kind, with every kind of update, request and reply.
    fn every_frame() -> Vec<Frame> {
        let counters = Counters {
            calls: 7,
            errors: 1,
            in_flight: 2,
            busy: [("roll-dice".to_string(), 2)].into(),
            progress: vec![RunningCall {
                key: 4,
                started: SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_268_800_000),
                source: CallSource::Console,
                tool: "crunch".into(),
                plugin: "numbers".into(),
                progress: crate::runtime::Progress {
                    progress: 50.0,
                    total: Some(100.0),
                    message: Some("halfway".into()),
                },
            }],
            sessions: 3,
            rate_limited: 4,
            phase: Phase::Draining,
        };
        let failure = CallFailure::new(FailureKind::Timeout, "too slow");
        let mut frames = vec![
            Frame::hello(),
            Frame::Welcome(Box::new(Welcome {
                server: ServerSummary {
                    version: "0.1.0".into(),
                    pid: 42,
                    address: "127.0.0.1:3001".parse().unwrap(),
                    mcp_token: Some("ab••••••••yz".into()),
                    admin_token: None,
                    uptime_ms: 1234,
                    stateless: true,
                    catalog: "plugins.yml".into(),
                },
                plugins: vec![plugin()],
                resources: vec![resource()],
                prompts: vec![prompt()],
                calls: vec![call(
                    1,
                    CallStatus::Ok {
                        preview: "7".into(),
                    },
                )],
                log: vec!["INFO ready".into()],
                counters: counters.clone(),
            })),
            Frame::Refused {
                reason: "no".into(),
            },
            Frame::Updates {
                updates: vec![
                    Update::Event {
                        event: call(
                            2,
                            CallStatus::Error {
                                kind: FailureKind::Trap,
                                message: "boom".into(),
                            },
                        ),
                    },
                    Update::Event {
                        event: SharedEvent::new(Arc::new(ServerEvent::Lifecycle(LifecycleEvent {
                            at: SystemTime::UNIX_EPOCH + Duration::from_millis(5),
                            origin: "console".into(),
                            plugin: Some("hello".into()),
                            change: Change::Reloading,
                            message: String::new(),
                        }))),
                    },
                    Update::Missed { count: 3 },
                    Update::Plugins {
                        plugins: vec![plugin()],
                    },
                    Update::Resources {
                        resources: vec![resource()],
                    },
                    Update::Prompts {
                        prompts: vec![prompt()],
                    },
                    Update::Log {
                        lines: vec!["WARN x".into()],
                    },
                    Update::Counters(counters),
                ],
            },
        ];
        let requests = [
            Request::Call {
                tool: "add".into(),
                arguments: serde_json::from_str(r#"{"left":1,"right":2.5}"#).unwrap(),
            },
            Request::ReloadPlugin {
                plugin: "hello".into(),
            },
            Request::ReloadAll,
            Request::ReadResource {
                uri: "dice://3d6".into(),
            },
            Request::RenderPrompt {
                name: "greet".into(),
                arguments: serde_json::from_str(r#"{"nickName":"Bob"}"#).unwrap(),
            },
            Request::CallDetail { call: 9 },
            Request::Tokens,
        ];
        frames.extend(
            requests
                .into_iter()
                .enumerate()
                .map(|(id, request)| Frame::Request {
                    id: id as u64,
                    request,
                }),
        );
        let replies = [
            Reply::Called {
                result: Ok(CallReply {
                    call_id: 3,
                    output: ToolOutput::text("3.5"),
                }),
            },
            Reply::Called {
                result: Ok(CallReply {
                    call_id: 4,
                    output: ToolOutput::from_plugin(
                        OutputKind::Content,
                        None,
                        "picture",
                        r#"{"content":[{"type":"image","data":"aGk=","mimeType":"image/png"}],"structuredContent":{"ok":true}}"#.into(),
                    )
                    .unwrap(),
                }),
            },
            Reply::Called {
                result: Err(failure.clone()),
            },
            Reply::Reloaded {
                result: Ok(ChangeReport {
                    changes: vec![PluginChange {
                        plugin: "hello".into(),
                        change: Change::Failed,
                        message: "bad".into(),
                    }],
                    ..Default::default()
                }),
            },
            Reply::Reloaded {
                result: Err("plugins.yml is gone".into()),
            },
            Reply::Read {
                result: Ok(ResourceRead {
                    call_id: 4,
                    contents: vec![ResourceContent {
                        uri: "dice://3d6".into(),
                        mime_type: Some("application/json".into()),
                        text: "11".into(),
                        blob: None,
                        meta: serde_json::from_str(r#"{"firstName":"Bob"}"#).unwrap(),
                    }],
                }),
            },
            Reply::Rendered {
                result: Ok(RenderedPrompt {
                    call_id: 5,
                    description: Some("Greet".into()),
                    messages: vec![RenderedMessage {
                        role: MessageRole::User,
                        text: "Hello Bob".into(),
                        content: None,
                    }],
                }),
            },
            Reply::Rendered {
                result: Err(CallFailure::new(
                    FailureKind::UnknownPrompt,
                    "no such prompt",
                )),
            },
            Reply::CallDetail {
                detail: Some(CallDetail {
                    id: 9,
                    arguments: "{}".into(),
                    output: Err(failure),
                }),
            },
            Reply::CallDetail { detail: None },
            Reply::Tokens {
                mcp: Some("secret".into()),
                admin: None,
            },
            Reply::Failed {
                reason: "not connected".into(),
            },
        ];
        frames.extend(
            replies
                .into_iter()
                .enumerate()
                .map(|(id, reply)| Frame::Reply {
                    id: id as u64,
                    reply,
                }),
        );
        frames
    }

    #[test]
    fn every_frame_round_trips_through_the_codec() {
        let mut bytes = BytesMut::new();
        let mut writer = FrameCodec::server();
        let frames = every_frame();
        for frame in frames.clone() {
            writer.encode(frame, &mut bytes).unwrap();
        }
        let mut reader = FrameCodec::console();
        let mut decoded = Vec::new();
        while let Some(frame) = reader.decode(&mut bytes).unwrap() {
            decoded.push(frame);
        }
        assert_eq!(decoded, frames);
    }

    #[test]
    fn a_frame_that_arrives_in_pieces_is_read_whole() {
        let frame = Frame::Refused {
            reason: "x".repeat(100),
        };
        let mut whole = BytesMut::new();
        FrameCodec::server()
            .encode(frame.clone(), &mut whole)
            .unwrap();
        // Cut anywhere: in the length, at its end, in the body.
        for cut in [1, 3, 4, 5, 10, whole.len() - 1] {
            let mut reader = FrameCodec::console();
            let mut bytes = BytesMut::from(&whole[..cut]);
            assert!(reader.decode(&mut bytes).unwrap().is_none(), "cut at {cut}");
            bytes.extend_from_slice(&whole[cut..]);
            assert_eq!(reader.decode(&mut bytes).unwrap(), Some(frame.clone()));
            assert!(bytes.is_empty());
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let mut codec = FrameCodec::server();
        let mut bytes = BytesMut::from(&((MAX_CONSOLE_FRAME as u32 + 1).to_be_bytes())[..]);
        match codec.decode(&mut bytes) {
            Err(FrameError::TooLarge { length, limit }) => {
                assert_eq!((length, limit), (MAX_CONSOLE_FRAME + 1, MAX_CONSOLE_FRAME))
            }
            other => panic!("expected too large, got {other:?}"),
        }
    }

    #[test]
    fn a_frame_that_is_not_the_protocol_is_named_malformed() {
        let mut codec = FrameCodec::server();
        let body = br#"{"type":"launch_missiles"}"#;
        let mut bytes = BytesMut::from(&(body.len() as u32).to_be_bytes()[..]);
        bytes.extend_from_slice(body);
        assert!(matches!(
            codec.decode(&mut bytes),
            Err(FrameError::Malformed(_))
        ));
    }

    /// The hello and refused frames keep their shape in every version: a
    /// newer console's hello still reads, and so does a refusal.
    #[test]
    fn hello_and_refused_read_whatever_else_a_version_adds() {
        let hello: Frame = serde_json::from_str(
            r#"{"type":"hello","protocol":7,"client":"x","compression":"zstd"}"#,
        )
        .unwrap();
        assert!(matches!(hello, Frame::Hello { protocol: 7, .. }));
        let refused: Frame =
            serde_json::from_str(r#"{"type":"refused","reason":"old","retry_after":5}"#).unwrap();
        assert_eq!(
            refused,
            Frame::Refused {
                reason: "old".into()
            }
        );
    }
}
