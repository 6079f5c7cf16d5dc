//! The server through its real interface: HTTP and MCP clients on loopback.

mod admin;
mod common;
mod definitions_admin;
mod limits;
mod operations;
mod prompts;
mod protocol;
mod resources;
mod security;
#[path = "../support/mod.rs"]
mod support;
mod surface;
mod tools;
