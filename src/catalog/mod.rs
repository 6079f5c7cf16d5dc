//! `plugins.yml`: the declared plugins, their functions and their limits.
//!
//! The shape is WASImancer's (`plugins[].name/path/version/description/
//! functions[].displayName/function/description/arguments[]`) plus our own
//! per-plugin keys for the sandbox (`wasi`, `allowed_hosts`, `allowed_paths`,
//! `config`, `timeout_ms`, `memory_mb`, `instances`) and `required` on an
//! argument. Unknown keys are errors: a typo in `timeout_ms` must not silently
//! drop a limit.
//!
//! - `types`: the entries as serde reads and writes them, with the checks of
//!   single values (ranges, argument types);
//! - `path`: paths below the plugins folder;
//! - `validation`: the checks that need several entries at once (unique
//!   names and tool names);
//! - `diagnostics`: problems with their line and key, from serde_yaml's
//!   errors and from the checks;
//! - `source_map`: the lines of entries, for problems found after parsing.
//!
//! Every use of serde_yaml lives in this module, so that moving to a
//! maintained fork is a change inside it.

mod definitions;
mod diagnostics;
mod path;
mod prompts;
mod resources;
mod source_map;
mod tool_surface;
mod types;
mod validation;

use std::path::{Path, PathBuf};

pub use definitions::{
    DefinitionError, DefinitionFile, Definitions, ParameterSpec, parameter_values,
};
use diagnostics::ProblemList;
pub use diagnostics::{CatalogError, Problem};
pub use path::{PathError, RelativePath};
pub use prompts::{MessageRole, MessageSpec, PromptCatalog, PromptSections, PromptSpec};
pub use resources::{ContentSpec, ResourceCatalog, ResourceKind, ResourceSections, ResourceSpec};
pub use source_map::{Entry, SourceMap, Step};
pub use tool_surface::{
    ClientCapability, HEADER_PREFIX, IconSpec, IconTheme, OutputKind, ToolHints, header_problems,
};
use types::Scalar;
pub use types::{
    ArgumentSpec, ArgumentType, Catalog, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS, FunctionSpec,
    PluginSpec, tool_name,
};

/// A parsed and validated plugins.yml with what is needed to point at its lines.
#[derive(Debug, Clone)]
pub struct CatalogFile {
    pub path: PathBuf,
    pub catalog: Catalog,
    pub source: SourceMap,
}

impl CatalogFile {
    /// Read and validate the file at `path`.
    pub fn read(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate `text` as the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, CatalogError> {
        let source = SourceMap::new(text);
        let catalog: Catalog = if text.trim().is_empty() {
            Catalog::default()
        } else {
            diagnostics::read(path, text, &source)
                .map_err(|problems| CatalogError::Invalid { problems })?
        };
        let file = Self {
            path: path.to_path_buf(),
            catalog,
            source,
        };
        let problems = file.problems();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(CatalogError::Invalid { problems })
        }
    }

    /// `catalog` as the content of `path`: validated, with the text to write.
    /// The text is read back before anything is written, so a serialisation
    /// that loses something is refused instead of saved.
    pub fn render(path: &Path, catalog: Catalog) -> Result<(Self, String), CatalogError> {
        let text = catalog
            .to_yaml()
            .map_err(|reason| CatalogError::Serialize {
                path: path.to_path_buf(),
                reason,
            })?;
        let file = Self::read_back(path, &catalog, &text)?;
        Ok((file, text))
    }

    /// `text` parsed as `path`, if it is exactly `catalog`.
    fn read_back(path: &Path, catalog: &Catalog, text: &str) -> Result<Self, CatalogError> {
        let file = Self::parse(path, text)?;
        if file.catalog != *catalog {
            return Err(CatalogError::Serialize {
                path: path.to_path_buf(),
                reason: "the new content does not read back as the catalog it was made from".into(),
            });
        }
        Ok(file)
    }

    /// A problem about `key` in `entry`, at the key's line (or the entry's).
    fn problem(&self, entry: Entry, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.path.clone(),
            line: self.source.key_or_entry(entry, key),
            key: entry.key_path(key),
            message: message.into(),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::{WASIMANCER, parse};
    use super::*;

    #[test]
    fn reads_a_wasimancer_file_unchanged() {
        let file = parse(WASIMANCER).unwrap();
        let plugin = &file.catalog.plugins[0];
        assert_eq!(plugin.name, "roll dice");
        assert_eq!(
            plugin.module().unwrap().as_path(),
            Path::new("roll-dice/wasimancer-plugin-roll-dice.wasm")
        );
        assert_eq!(plugin.version.as_deref(), Some("1.0.0"));
        assert!(plugin.wasi, "WASI is on by default");
        assert_eq!(plugin.timeout_ms(), DEFAULT_TIMEOUT_MS);
        assert!(plugin.allowed_hosts.is_empty());
        let function = &plugin.functions[0];
        assert_eq!(function.tool_name(), "rollDice");
        assert_eq!(function.arguments[1].kind, ArgumentType::Number);
        assert!(function.arguments[1].required);
    }

    #[test]
    fn saving_and_reading_back_gives_the_same_catalog() {
        let text = WASIMANCER.replace(
            "    description: roll dice\n",
            "    description: roll dice\n    wasi: false\n    timeout_ms: 250\n    config:\n      answer: 42\n",
        );
        let file = parse(&text).unwrap();
        let (again, written) =
            CatalogFile::render(Path::new("plugins.yml"), file.catalog.clone()).unwrap();
        assert_eq!(file.catalog, again.catalog);
        assert_eq!(again.catalog.plugins[0].config["answer"], "42");
        assert_eq!(parse(&written).unwrap().catalog, file.catalog);
    }

    #[test]
    fn text_that_does_not_read_back_as_the_catalog_is_never_written() {
        // An empty plugins.yml is a valid empty catalog: if serialising ever
        // gave nothing, writing it would wipe every plugin.
        let file = parse(WASIMANCER).unwrap();
        let error =
            CatalogFile::read_back(Path::new("plugins.yml"), &file.catalog, "").unwrap_err();
        assert!(matches!(error, CatalogError::Serialize { .. }), "{error}");
        assert!(error.to_string().contains("nothing was written"), "{error}");
    }
}
