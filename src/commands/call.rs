//! `wasimancer call TOOL 'JSON'`: one call in-process, no server, driven by
//! plugins.yml (like `extism call`, with the limits and checks of the server).

use serde_json::{Map, Value};

use crate::catalog::{CatalogError, CatalogFile, PluginSpec};
use crate::cli::PluginArgs;
use crate::events::{CallSource, EventBus};
use crate::registry::{Registry, RegistryOptions};
use crate::runtime::{CallFailure, FailureKind};

#[derive(Debug, thiserror::Error)]
pub enum CallCommandError {
    #[error("the arguments must be a JSON object like '{{\"name\": \"Bob\"}}': {0}")]
    BadArguments(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("unknown tool `{tool}`; tools in {file}: {known}")]
    UnknownTool {
        tool: String,
        file: String,
        known: String,
    },
    #[error("plugin `{plugin}` could not be loaded: {reason}")]
    Load { plugin: String, reason: String },
    #[error("{0}")]
    Failed(CallFailure),
}

/// Load only the plugin that serves `tool`, call it, and return its output.
pub async fn run(
    args: &PluginArgs,
    tool: &str,
    arguments: &str,
) -> Result<String, CallCommandError> {
    let arguments: Map<String, Value> = serde_json::from_str(arguments)
        .map_err(|e| CallCommandError::BadArguments(e.to_string()))?;
    let file = CatalogFile::read(&args.plugins_file)?;
    let owner = file.catalog.plugins.iter().position(|plugin| {
        plugin
            .functions
            .iter()
            .any(|f| f.tool_name() == tool || f.title() == tool)
    });
    let Some(owner) = owner else {
        let mut known: Vec<String> = file
            .catalog
            .plugins
            .iter()
            .flat_map(|p| p.functions.iter().map(|f| f.tool_name()))
            .collect();
        known.sort();
        return Err(CallCommandError::UnknownTool {
            tool: tool.to_string(),
            file: file.path.display().to_string(),
            known: if known.is_empty() {
                "(none)".into()
            } else {
                known.join(", ")
            },
        });
    };
    let owner = file.catalog.plugins[owner].name.clone();
    let options = RegistryOptions {
        catalog_path: args.plugins_file.clone(),
        runtime: super::runtime_settings(args),
        keep_call_details: false,
    };
    // Load only the plugin that serves the tool, with one instance.
    let registry = Registry::with_catalog(options, EventBus::new(), file, |spec| {
        (spec.name == owner).then(|| PluginSpec {
            instances: Some(1),
            ..spec.clone()
        })
    })
    .await;
    let snapshot = registry.snapshot();
    if let Some(entry) = snapshot.plugins.first()
        && let Some(error) = &entry.error
    {
        return Err(CallCommandError::Load {
            plugin: entry.spec.name.clone(),
            reason: error.clone(),
        });
    }
    registry
        .call(CallSource::Cli, tool, Some(arguments))
        .await
        .map_err(CallCommandError::Failed)
        .and_then(|reply| match reply.output.reported_error() {
            Some(message) => Err(CallCommandError::Failed(CallFailure::new(
                FailureKind::PluginError,
                message,
            ))),
            None => Ok(reply.output.readable()),
        })
}
