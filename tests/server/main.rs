//! The server through its real interface: HTTP and MCP clients on loopback.

mod admin;
mod common;
mod definitions_admin;
mod limits;
mod prompts;
mod protocol;
mod resources;
mod security;
mod surface;
mod tools;
