//! Consoles and servers apart: the control channel.
//!
//! A server publishes what a console shows (plugins, calls, log lines,
//! counters) and takes what a console asks (call a tool, reload, show the
//! tokens) through one [`Hub`]. Consoles reach it through one protocol
//! ([`protocol::Frame`]) over three carriers: a channel inside the process
//! (the console of the server that started it), the Unix control socket
//! (`wasimancer console` on the same machine), and the admin HTTP side
//! (`wasimancer console --url`, for a server in a container or elsewhere).
//! So there is one console, wherever it runs.

pub mod client;
mod hub;
pub mod protocol;
pub mod session;
pub mod socket;
pub mod transport;

pub use client::{ConnectError, Target, connect};
pub use hub::{Feed, Hub, HubSettings, TICK, plugin_views, prompt_views, resource_views};
pub use protocol::{
    Counters, Frame, PROTOCOL_VERSION, PluginView, PromptView, Reply, Request, ResourceView,
    ServerSummary, ToolView, Update, Welcome,
};
pub use socket::{ControlSocket, SocketError};
