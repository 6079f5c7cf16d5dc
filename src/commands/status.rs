//! `wasimancer status`: what a running server serves, as text, from the
//! welcome a console gets when it attaches.

use std::fmt::Write as _;
use std::time::Duration;

use crate::control::Welcome;
use crate::events::{CallStatus, ServerEvent};
use crate::operations::Phase;

/// How many recent calls the status shows.
const CALLS_SHOWN: usize = 10;

/// The server, its plugins, its counters and its last calls.
pub fn render(welcome: &Welcome) -> String {
    let server = &welcome.server;
    let uptime = Duration::from_millis(server.uptime_ms).as_secs();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wasimancer {} (pid {}) {} http://{}/mcp, up {}:{:02}:{:02}",
        server.version,
        server.pid,
        match welcome.counters.phase {
            Phase::Serving => "serving",
            Phase::Loading => "loading its plugins at",
            Phase::Draining => "DRAINING (shutting down) at",
        },
        server.address,
        uptime / 3600,
        (uptime / 60) % 60,
        uptime % 60
    );
    let _ = writeln!(
        out,
        "auth {} · admin token {} · {} · {}",
        server.mcp_token.as_deref().unwrap_or("OFF"),
        if server.admin_token.is_some() {
            "set"
        } else {
            "OFF"
        },
        if server.stateless {
            "stateless"
        } else {
            "sessions"
        },
        server.catalog
    );
    let counters = &welcome.counters;
    let _ = writeln!(
        out,
        "calls {} · errors {} · in flight {} · sessions {} · rate-limited {}\n",
        counters.calls,
        counters.errors,
        counters.in_flight,
        counters.sessions,
        counters.rate_limited
    );
    let rows: Vec<[String; 4]> = welcome
        .plugins
        .iter()
        .map(|plugin| {
            let state = match &plugin.error {
                Some(error) => format!("{}: {error}", plugin.state.as_str()),
                None => plugin.state.as_str().to_string(),
            };
            [
                plugin.name.clone(),
                plugin.version.clone().unwrap_or_else(|| "-".into()),
                plugin
                    .tools
                    .iter()
                    .map(|tool| tool.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                state,
            ]
        })
        .collect();
    out.push_str(&super::table(
        ["PLUGIN", "VERSION", "TOOLS", "STATE"],
        &rows,
    ));
    let calls: Vec<_> = welcome
        .calls
        .iter()
        .rev()
        .take(CALLS_SHOWN)
        .filter_map(|event| match &**event {
            ServerEvent::Call(call) => Some(call),
            _ => None,
        })
        .collect();
    if !calls.is_empty() {
        let _ = writeln!(out, "\nlast calls (newest first):");
        for call in calls {
            let outcome = match &call.status {
                CallStatus::Ok { .. } => "ok".to_string(),
                CallStatus::Error { kind, .. } => format!("ERR {kind}"),
            };
            let _ = writeln!(
                out,
                "#{} {} {} {} µs {outcome}",
                call.id,
                call.source,
                call.tool,
                call.duration.as_micros()
            );
        }
    }
    out
}
