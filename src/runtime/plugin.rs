//! One version of one plugin: its module checked, compiled and served by a pool.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use extism::{Manifest, PluginBuilder, Wasm};

use super::failure::{CallFailure, LoadError};
use super::host::{CallControl, SlotSink};
use super::module::ModuleInfo;
use super::pool::{InstancePool, Limits, Slot};
use super::{CompileCache, RuntimeSettings};
use crate::catalog::{PluginSpec, RelativePath};

/// A plugin ready to serve calls. Cheap to share: calls in flight keep the
/// version they started on alive after a reload has swapped in a new one.
pub struct LoadedPlugin {
    spec: PluginSpec,
    info: ModuleInfo,
    module_path: PathBuf,
    digest: u64,
    pool: InstancePool,
    loaded_at: SystemTime,
    load_time: Duration,
}

/// The result of one call, with how many calls to this version overlapped it
/// and how long it waited for a free instance.
pub struct CallOutput {
    pub output: Result<String, CallFailure>,
    pub overlapping: u32,
    pub waited: Duration,
    /// It ran on the async thread that asked (see `pool`).
    pub inline: bool,
}

impl LoadedPlugin {
    /// Read the module `spec.path` names, check it and compile it. Blocking:
    /// compiling takes milliseconds to seconds.
    pub fn load(spec: &PluginSpec, settings: &RuntimeSettings) -> Result<Self, LoadError> {
        let path = module_path(spec, &settings.plugins_dir)?;
        let bytes = std::fs::read(&path).map_err(|source| LoadError::ModuleUnreadable {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(spec, path, &bytes, settings)
    }

    /// Check and compile `bytes` as the module of `spec`, as if it were at
    /// `module_path` (which need not exist yet: uploads are checked before
    /// they are written).
    pub fn from_bytes(
        spec: &PluginSpec,
        module_path: PathBuf,
        bytes: &[u8],
        settings: &RuntimeSettings,
    ) -> Result<Self, LoadError> {
        let started = std::time::Instant::now();
        let file = module_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.path.clone());
        let info = ModuleInfo::inspect(bytes).map_err(|reason| LoadError::NotAModule {
            path: module_path.clone(),
            reason,
        })?;
        check_module(spec, &info, &file)?;
        let manifest = manifest(spec, bytes, settings)?;
        let instances = spec.instances.unwrap_or(settings.default_instances).max(1);
        let slots = compile_slots(&manifest, spec.wasi, &settings.compile_cache, instances)
            .map_err(|reason| LoadError::Compile {
                file: file.clone(),
                reason,
            })?;
        let limits = Limits {
            plugin: spec.name.as_str().into(),
            timeout_ms: spec.timeout_ms(),
            memory_mb: spec.memory_mb(),
            max_output_bytes: settings.max_output_bytes,
        };
        Ok(Self {
            spec: spec.clone(),
            info,
            module_path,
            digest: digest(bytes),
            pool: InstancePool::new(
                slots,
                limits,
                settings.queue_timeout,
                spec.functions.iter().map(|f| f.function.as_str()),
                settings.inline_budget,
            ),
            loaded_at: SystemTime::now(),
            load_time: started.elapsed(),
        })
    }

    /// Call `function` with `input` (the arguments as a JSON string), with
    /// the caller's progress channel and cancellation.
    pub async fn call(
        &self,
        function: Arc<str>,
        input: Vec<u8>,
        control: CallControl,
    ) -> CallOutput {
        let result = self.pool.call(function, input, control).await;
        CallOutput {
            output: result.output.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }),
            overlapping: result.overlapping,
            waited: result.waited,
            inline: result.inline,
        }
    }

    /// The plugins.yml entry this version was loaded from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    pub fn module_info(&self) -> &ModuleInfo {
        &self.info
    }

    pub fn module_path(&self) -> &Path {
        &self.module_path
    }

    /// A fingerprint of the module bytes, to tell whether a file changed.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn instances(&self) -> usize {
        self.pool.size()
    }

    /// How many of the instances are serving a call now.
    pub fn busy_instances(&self) -> usize {
        self.pool.busy()
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// How long checking and compiling took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
}

/// Where the module of `spec` is, refusing anything outside the plugins folder.
fn module_path(spec: &PluginSpec, plugins_dir: &Path) -> Result<PathBuf, LoadError> {
    let path = spec
        .module()
        .and_then(|module| module.resolve(plugins_dir))
        .map_err(LoadError::ModulePath)?;
    if !path.is_file() {
        return Err(LoadError::ModuleMissing { path });
    }
    Ok(path)
}

/// A fingerprint of module bytes (not cryptographic: it detects changes).
pub fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn check_module(spec: &PluginSpec, info: &ModuleInfo, file: &str) -> Result<(), LoadError> {
    let missing: Vec<String> = spec
        .functions
        .iter()
        .filter(|f| !info.exports(&f.function))
        .map(|f| f.function.clone())
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::MissingFunctions {
            file: file.to_string(),
            missing,
            exports: info
                .callable_exports()
                .into_iter()
                .map(String::from)
                .collect(),
        });
    }
    if info.needs_wasi && !spec.wasi {
        return Err(LoadError::NeedsWasi {
            file: file.to_string(),
        });
    }
    if !spec.allowed_paths.is_empty() && !spec.wasi {
        return Err(LoadError::PathsNeedWasi);
    }
    Ok(())
}

fn manifest(
    spec: &PluginSpec,
    bytes: &[u8],
    settings: &RuntimeSettings,
) -> Result<Manifest, LoadError> {
    let mut manifest = Manifest::new([Wasm::data(bytes.to_vec())])
        .with_timeout(Duration::from_millis(spec.timeout_ms()))
        .with_memory_max(spec.memory_mb() * 16); // 64 KiB pages
    // plugins.yml gives defaults; the environment of this deployment
    // overrides them, as WASM_* variables configure plugins in WASImancer.
    manifest.config = spec.config.clone();
    manifest.config.extend(settings.env_config.clone());
    manifest.allowed_hosts = Some(spec.allowed_hosts.clone());
    if !spec.allowed_paths.is_empty() {
        let mut paths = std::collections::BTreeMap::new();
        for (host, guest) in &spec.allowed_paths {
            let (prefix, folder) = match host.strip_prefix("ro:") {
                Some(folder) => ("ro:", folder),
                None => ("", host.as_str()),
            };
            let absolute = RelativePath::new(folder)
                .and_then(|folder| folder.resolve(&settings.plugins_dir))
                .map_err(LoadError::AllowedPath)?;
            if !absolute.is_dir() {
                return Err(LoadError::AllowedPathMissing { path: absolute });
            }
            let absolute = std::fs::canonicalize(&absolute).unwrap_or(absolute);
            paths.insert(
                format!("{prefix}{}", absolute.display()),
                PathBuf::from(guest),
            );
        }
        manifest.allowed_paths = Some(paths);
    }
    Ok(manifest)
}

/// Compile the module once per slot: each slot needs an engine of its own
/// (see the module docs). The first compile checks the module; with the
/// compile cache the others are a quick load of the cached code.
fn compile_slots(
    manifest: &Manifest,
    wasi: bool,
    cache: &CompileCache,
    count: usize,
) -> Result<Vec<Slot>, String> {
    let compile = || {
        // Each slot's host functions report to that slot's sink.
        let sink = SlotSink::default();
        let builder = PluginBuilder::new(manifest)
            .with_wasi(wasi)
            .with_functions(sink.functions());
        let builder = match cache {
            CompileCache::Disabled => builder.with_cache_disabled(),
            CompileCache::Config(path) => builder.with_cache_config(path),
        };
        builder
            .compile()
            .map_err(|e| format!("{e:#}"))
            .and_then(|compiled| Slot::new(compiled, sink))
    };
    let mut slots = vec![compile()?];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..count).map(|_| scope.spawn(compile)).collect();
        for handle in handles {
            let slot = handle
                .join()
                .map_err(|_| "the compiler thread panicked".to_string())??;
            slots.push(slot);
        }
        Ok(slots)
    })
}
