//! wasimancer: an MCP server whose tools are functions of Extism WebAssembly
//! plugins, with an operator console. See README.md and docs/ARCHITECTURE.md.

pub mod atomic_file;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod console;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod registry;
pub mod ring;
pub mod runtime;
pub mod server;
pub mod watch;
