//! Running plugin code: compiling modules, pools of warm instances, limits.
//!
//! A [`LoadedPlugin`] is one version of one plugin, compiled and ready. Calls
//! borrow an instance from its [`pool`], run on a blocking thread (never on an
//! async worker) and give it back. Every instance has a wasmtime engine of its
//! own: extism stops a call that times out by bumping its engine's epoch,
//! which would also stop every other call running on the same engine.

mod failure;
mod host;
mod module;
mod plugin;
mod pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use failure::{CallFailure, FailureKind, LoadError, clip};
pub use host::{CallControl, PROGRESS_FUNCTION, Progress, ProgressReporter};
pub use module::ModuleInfo;
pub use plugin::{CallOutput, LoadedPlugin, digest};

/// The longest a call may take and still count as short: well under what
/// an async worker may be held up without other requests noticing.
pub const DEFAULT_INLINE_BUDGET: Duration = Duration::from_micros(500);

/// Settings that apply to every plugin, from the command line.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Where `path:` entries of plugins.yml resolve.
    pub plugins_dir: PathBuf,
    /// Extism config every plugin gets: the `WASM_*` environment variables.
    pub env_config: BTreeMap<String, String>,
    /// How long a call waits for a free instance before it is refused as busy.
    pub queue_timeout: Duration,
    /// The largest output handed back to a caller.
    pub max_output_bytes: usize,
    /// Instances per plugin when plugins.yml does not say.
    pub default_instances: usize,
    /// The compiled-code cache: reusing compiled modules makes one engine per
    /// instance affordable.
    pub compile_cache: CompileCache,
    /// How short a function's calls must all have been for its calls to run
    /// on the async thread that receives them (see `pool`); zero: never.
    pub inline_budget: Duration,
}

/// Where wasmtime keeps compiled modules between compilations and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCache {
    Disabled,
    /// A wasmtime cache configuration file that we wrote.
    Config(PathBuf),
}

impl CompileCache {
    /// Use `dir` as the cache (creating it and its configuration file), or no
    /// cache if that fails: the cache only saves time.
    pub fn in_dir(dir: &Path) -> Self {
        match Self::try_in_dir(dir) {
            Ok(cache) => cache,
            Err(error) => {
                tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "compile cache unavailable; every instance compiles its module"
                );
                Self::Disabled
            }
        }
    }

    fn try_in_dir(dir: &Path) -> std::io::Result<Self> {
        let modules = dir.join("modules");
        std::fs::create_dir_all(&modules)?;
        let modules = std::fs::canonicalize(modules)?;
        let escaped = modules
            .to_string_lossy()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let config = dir.join("wasmtime-cache.toml");
        crate::atomic_file::write(
            &config,
            format!("[cache]\ndirectory = \"{escaped}\"\n").as_bytes(),
        )?;
        Ok(Self::Config(config))
    }

    /// The default place: `$XDG_CACHE_HOME/wasimancer` or `~/.cache/wasimancer`.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        non_empty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .map(|base| base.join("wasimancer"))
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from("plugins"),
            env_config: wasm_env_config(std::env::vars()),
            queue_timeout: Duration::from_secs(5),
            max_output_bytes: 1024 * 1024,
            default_instances: default_instances(),
            compile_cache: CompileCache::Disabled,
            inline_budget: DEFAULT_INLINE_BUDGET,
        }
    }
}

/// One warm instance per core, at least two so one slow call never blocks
/// the next, at most eight so idle plugins stay cheap.
pub fn default_instances() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(2, 8)
}

/// The `WASM_*` variables with a value, named as they are (WASImancer keeps the prefix).
pub fn wasm_env_config(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.filter(|(name, value)| name.starts_with("WASM_") && !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_variables_with_a_value_become_config() {
        let vars = [
            ("WASM_VERSION", "0.2.0"),
            ("WASM_EMPTY", ""),
            ("HOME", "/root"),
            ("XWASM_NOT", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = wasm_env_config(vars.into_iter());
        assert_eq!(config.len(), 1);
        assert_eq!(config["WASM_VERSION"], "0.2.0");
    }

    #[test]
    fn the_cache_config_names_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let CompileCache::Config(path) = CompileCache::in_dir(dir.path()) else {
            panic!("cache should be available in a fresh temp dir");
        };
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("[cache]\ndirectory = \""), "{text}");
        assert!(dir.path().join("modules").is_dir());
    }
}
