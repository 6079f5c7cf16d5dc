//! The server through its real interface: HTTP and MCP clients on loopback.

mod admin;
mod common;
mod limits;
mod protocol;
mod security;
mod tools;
