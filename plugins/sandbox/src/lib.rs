//! `sandbox` test plugin: it tries what the sandbox should refuse unless
//! plugins.yml grants it.
//!
//! - `fetch`: input `{"url": "<url>"}`; makes an HTTP GET through Extism and
//!   returns `<status> <body>`. Refused unless the host is in `allowed_hosts`.
//! - `read_file`: input `{"path": "<path>"}`; returns the file's content, read
//!   through WASI. Refused unless a folder holding it is in `allowed_paths`.

use extism_pdk::{Error, FnResult, HttpRequest, plugin_fn};
use serde::Deserialize;

#[derive(Deserialize)]
struct FetchArgs {
    url: String,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
}

fn parse<T: for<'de> Deserialize<'de>>(input: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(|e| Error::msg(format!("invalid input: {e}")))
}

#[plugin_fn]
pub fn fetch(input: Vec<u8>) -> FnResult<String> {
    let args: FetchArgs = parse(&input)?;
    let response = extism_pdk::http::request::<()>(&HttpRequest::new(&args.url), None)?;
    let body = String::from_utf8_lossy(&response.body()).into_owned();
    Ok(format!("{} {body}", response.status_code()))
}

#[plugin_fn]
pub fn read_file(input: Vec<u8>) -> FnResult<String> {
    let args: ReadArgs = parse(&input)?;
    std::fs::read_to_string(&args.path)
        .map_err(|e| Error::msg(format!("cannot read {}: {e}", args.path)).into())
}
