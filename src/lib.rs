//! wasimancer: an MCP server whose tools are functions of Extism WebAssembly
//! plugins, with an operator console. See README.md and docs/ARCHITECTURE.md.

pub mod atomic_file;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod console;
pub mod content;
pub mod control;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod operations;
pub mod redaction;
pub mod registry;
pub mod ring;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod telemetry;
pub mod templates;
pub mod watch;
