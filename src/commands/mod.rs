//! The subcommands other than serving: `call`, `check` and `status`, plus
//! the settings every command derives from the command line.

pub mod call;
pub mod check;
pub mod status;

use std::fmt::Write as _;

use crate::cli::PluginArgs;
use crate::runtime::{self, CompileCache, RuntimeSettings};

/// Runtime settings from the plugin flags.
pub fn runtime_settings(args: &PluginArgs) -> RuntimeSettings {
    let compile_cache = if args.no_cache {
        CompileCache::Disabled
    } else {
        args.cache_dir
            .clone()
            .or_else(CompileCache::default_dir)
            .map(|dir| CompileCache::in_dir(&dir))
            .unwrap_or(CompileCache::Disabled)
    };
    RuntimeSettings {
        plugins_dir: args.plugins_dir.clone(),
        env_config: runtime::wasm_env_config(std::env::vars()),
        queue_timeout: std::time::Duration::from_millis(args.queue_timeout_ms),
        max_output_bytes: args.max_output_bytes,
        default_instances: args
            .instances
            .unwrap_or_else(runtime::default_instances)
            .max(1),
        compile_cache,
        inline_budget: std::time::Duration::from_micros(args.inline_budget_us),
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces
/// apart; the last column is not padded.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        text.trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
    out
}
