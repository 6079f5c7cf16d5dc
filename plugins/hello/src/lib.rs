//! `hello` sample plugin.
//!
//! Export `say_hello`: input `{"name": "<string>"}`, output `Hello, <name>!`
//! (or `Bonjour, <name>!` when built with the `v2` feature).

use extism_pdk::{Error, FnResult, plugin_fn};
use serde::Deserialize;

#[cfg(not(feature = "v2"))]
const GREETING: &str = "Hello";
#[cfg(feature = "v2")]
const GREETING: &str = "Bonjour";

#[derive(Deserialize)]
struct Args {
    name: String,
}

fn parse_args(input: &[u8]) -> Result<Args, Error> {
    serde_json::from_slice(input).map_err(|e| Error::msg(format!("invalid input: {e}")))
}

#[plugin_fn]
pub fn say_hello(input: Vec<u8>) -> FnResult<String> {
    let args = parse_args(&input)?;
    Ok(format!("{GREETING}, {}!", args.name))
}
