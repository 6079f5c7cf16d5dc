//! `config-reader` sample plugin.
//!
//! Reads Extism config values (wasimancer passes `WASM_*` environment
//! variables and the plugin's `config:` map as Extism config).
//!
//! - `read_config`: input `{"key": "<string>"}`; output is the value as text,
//!   or an error ``config key `<key>` is not set``.
//! - `greet`: input `{"name": "<string>"}`; output `<greeting>, <name>!` where
//!   the greeting is config key `WASM_GREETING`, or `Hello` if it is not set.

use extism_pdk::{Error, FnResult, config, plugin_fn};
use serde::Deserialize;
use serde::de::DeserializeOwned;

const GREETING_KEY: &str = "WASM_GREETING";
const DEFAULT_GREETING: &str = "Hello";

#[derive(Deserialize)]
struct KeyArgs {
    key: String,
}

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}

fn parse_args<T: DeserializeOwned>(input: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(|e| Error::msg(format!("invalid input: {e}")))
}

#[plugin_fn]
pub fn read_config(input: Vec<u8>) -> FnResult<String> {
    let args: KeyArgs = parse_args(&input)?;
    match config::get(&args.key)? {
        Some(value) => Ok(value),
        None => Err(Error::msg(format!("config key `{}` is not set", args.key)).into()),
    }
}

#[plugin_fn]
pub fn greet(input: Vec<u8>) -> FnResult<String> {
    let args: NameArgs = parse_args(&input)?;
    let greeting = config::get(GREETING_KEY)?.unwrap_or_else(|| DEFAULT_GREETING.to_string());
    Ok(format!("{greeting}, {}!", args.name))
}
