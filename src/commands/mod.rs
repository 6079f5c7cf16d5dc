//! The subcommands other than serving: `call` and `check`, plus the settings
//! every command derives from the command line.

pub mod call;
pub mod check;

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
    }
}
