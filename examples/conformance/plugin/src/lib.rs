//! `conformance` plugin: what the official MCP conformance suite's server
//! scenarios call, written as an ordinary Extism plugin. plugins.yml
//! (beside this folder) gives each function its tool name and its output
//! kind; the function only returns text, JSON, or an MCP result envelope.
//!
//! Exports (inputs are JSON objects as text):
//! - `simple_text`: a fixed sentence (`output: text`).
//! - `image_content`, `audio_content`, `embedded_resource`, `mixed_content`:
//!   MCP content envelopes (`output: content`): a 1x1 PNG, a short WAV, an
//!   embedded text resource, and all three kinds together.
//! - `error_handling`: always fails with a fixed message.
//! - `with_progress`: reports progress 0, 50 and 100 of 100 through the host
//!   function `wasimancer_progress`, then says so. `{"steps": n}` reports
//!   0..=n of n instead.
//! - `echo_arguments`: the arguments it was called with, as
//!   `{"arguments": …}` (JSON, for `output: json`).

use extism_pdk::{Error, FnResult, Json, host_fn, plugin_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A 1x1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// One millisecond of silence: 8 samples, 8 kHz, 8-bit mono WAV.
const WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

// --- The progress helper (the README's extism-pdk snippet) ---------------

/// A progress report, as wasimancer's host function reads it.
#[derive(Serialize)]
struct Progress<'a> {
    progress: f64,
    total: Option<f64>,
    message: Option<&'a str>,
}

#[host_fn]
extern "ExtismHost" {
    fn wasimancer_progress(report: Json<Progress>);
}

/// Tell the MCP client how far the call is (when it asked to know).
/// `progress` must increase from one report to the next.
fn report_progress(progress: f64, total: Option<f64>, message: Option<&str>) -> Result<(), Error> {
    unsafe {
        wasimancer_progress(Json(Progress {
            progress,
            total,
            message,
        }))
    }
}

// --- Tools -----------------------------------------------------------------

#[plugin_fn]
pub fn simple_text() -> FnResult<String> {
    Ok("This is a simple text response for testing.".into())
}

#[plugin_fn]
pub fn image_content() -> FnResult<String> {
    Ok(json!({"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]}).to_string())
}

#[plugin_fn]
pub fn audio_content() -> FnResult<String> {
    Ok(json!({"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]}).to_string())
}

#[plugin_fn]
pub fn embedded_resource() -> FnResult<String> {
    Ok(json!({"content": [{
        "type": "resource",
        "resource": {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content."
        }
    }]})
    .to_string())
}

#[plugin_fn]
pub fn mixed_content() -> FnResult<String> {
    Ok(json!({"content": [
        {"type": "text", "text": "Multiple content types test:"},
        {"type": "image", "data": PNG, "mimeType": "image/png"},
        {"type": "resource", "resource": {
            "uri": "test://mixed-content-resource",
            "mimeType": "application/json",
            "text": "{\"test\":\"data\",\"value\":123}"
        }}
    ]})
    .to_string())
}

#[plugin_fn]
pub fn error_handling() -> FnResult<String> {
    Err(Error::msg("This tool intentionally returns an error for testing").into())
}

#[derive(Deserialize)]
struct Steps {
    steps: Option<u32>,
}

#[plugin_fn]
pub fn with_progress(input: String) -> FnResult<String> {
    let steps = serde_json::from_str::<Steps>(&input)
        .ok()
        .and_then(|s| s.steps)
        .unwrap_or(2)
        .max(1);
    let total = if steps == 2 { 100.0 } else { f64::from(steps) };
    for step in 0..=steps {
        let progress = total * f64::from(step) / f64::from(steps);
        report_progress(progress, Some(total), Some(&format!("step {step} of {steps}")))?;
    }
    Ok(format!("Progress reported in {} steps", steps + 1))
}

#[plugin_fn]
pub fn echo_arguments(input: String) -> FnResult<String> {
    let arguments: Value = serde_json::from_str(&input).unwrap_or(Value::String(input));
    Ok(json!({ "arguments": arguments }).to_string())
}
