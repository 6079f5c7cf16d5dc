//! What a `.wasm` module exports and imports, read without compiling it.
//!
//! Compiling takes tens of milliseconds; reading the export and import
//! sections takes microseconds and gives better messages ("exports are: …")
//! than a failed call would.

use wasmparser::{ExternalKind, Parser, Payload};

/// The module namespaces WASI preview 1 functions are imported from.
const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// Facts about a module that decide whether it can serve its declared functions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Exported functions, in the order the module lists them.
    pub exports: Vec<String>,
    /// Whether the module imports WASI and so cannot run with `wasi: false`.
    pub needs_wasi: bool,
}

impl ModuleInfo {
    /// Read the sections of `bytes`, or say why they are not a module.
    pub fn inspect(bytes: &[u8]) -> Result<Self, String> {
        if !bytes.starts_with(b"\0asm") {
            return Err(
                "the file is not a WebAssembly module (it does not start with `\\0asm`)".into(),
            );
        }
        let mut info = ModuleInfo::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| format!("the module is malformed: {e}"))? {
                Payload::Version {
                    encoding: wasmparser::Encoding::Component,
                    ..
                } => {
                    return Err(
                        "the file is a WebAssembly component; Extism plugins are core modules"
                            .into(),
                    );
                }
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import.map_err(|e| format!("the module is malformed: {e}"))?;
                        if WASI_MODULES.contains(&import.module) {
                            info.needs_wasi = true;
                        }
                    }
                }
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export.map_err(|e| format!("the module is malformed: {e}"))?;
                        if export.kind == ExternalKind::Func {
                            info.exports.push(export.name.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }

    pub fn exports(&self, function: &str) -> bool {
        self.exports.iter().any(|e| e == function)
    }

    /// The exports worth listing to a user: without the runtime's own entry points.
    pub fn callable_exports(&self) -> Vec<&str> {
        self.exports
            .iter()
            .map(String::as_str)
            .filter(|name| !matches!(*name, "_start" | "_initialize" | "memory" | "__main_void"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_that_are_not_modules() {
        assert!(
            ModuleInfo::inspect(b"hello")
                .unwrap_err()
                .contains("not a WebAssembly")
        );
        // The right magic but a broken body.
        let error = ModuleInfo::inspect(b"\0asm\x01\0\0\0\x07\xff").unwrap_err();
        assert!(error.contains("malformed"), "{error}");
    }

    #[test]
    fn an_empty_module_exports_nothing() {
        let info = ModuleInfo::inspect(b"\0asm\x01\0\0\0").unwrap();
        assert!(info.exports.is_empty());
        assert!(!info.needs_wasi);
    }
}
