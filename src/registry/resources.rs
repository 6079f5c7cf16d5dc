//! Resources as clients see them: listed, read by URI (a fixed one or one of
//! a template), computed by a plugin when resources.yml says so, completed,
//! and added, replaced or removed by the admin API.
//!
//! A read goes through [`Registry::record`] like a tool call: it counts, it
//! is published on the event bus (kind `resource`) and a computed one runs on
//! the plugin's instance pool under its limits.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::changes::ChangeError;
use super::definitions::ServedSet;
use super::{Finished, RecordedOutput, Registry};
use crate::catalog::{DefinitionFile, Problem, ResourceCatalog, ResourceKind, ResourceSpec};
use crate::content::{ContentItem, human_size};
use crate::events::{CallKind, CallSource, Change};
use crate::runtime::{CallControl, CallFailure, FailureKind};
use crate::templates::{UriTemplate, VariableValues, fill};

/// How many URIs an "unknown resource" message lists.
const LISTED_IN_ERRORS: usize = 20;

/// One resource being served.
#[derive(Debug)]
pub struct ServedResource {
    /// The entry as resources.yml declares it.
    pub spec: ResourceSpec,
    /// Static (a fixed URI, listed by `resources/list`) or dynamic (a
    /// template, listed by `resources/templates/list`).
    pub kind: ResourceKind,
    /// The URI, parsed; a static one has no variables.
    pub template: UriTemplate,
    /// Its line in resources.yml.
    pub line: Option<usize>,
}

impl ServedResource {
    /// Whether this resource is computed by a plugin function.
    pub fn is_computed(&self) -> bool {
        self.spec.computed_by().is_some()
    }
}

/// Everything resources.yml serves, immutable once published.
#[derive(Debug, Default)]
pub struct ResourceSet {
    /// resources.yml as last read successfully; `None` when none is configured.
    pub file: Option<Arc<DefinitionFile<ResourceCatalog>>>,
    /// Static resources first, then templates, each in file order.
    pub resources: Vec<Arc<ServedResource>>,
}

impl ResourceSet {
    /// Whether resources are served at all: the file exists (even empty) or
    /// something was declared. MCP capabilities follow this.
    pub fn is_served(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.exists) || !self.resources.is_empty()
    }

    /// Resources at a fixed URI.
    pub fn statics(&self) -> impl Iterator<Item = &Arc<ServedResource>> {
        self.resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Static)
    }

    /// Resources at the URIs of a template.
    pub fn templates(&self) -> impl Iterator<Item = &Arc<ServedResource>> {
        self.resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Dynamic)
    }

    /// The resource called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ServedResource>> {
        self.resources.iter().find(|r| r.spec.name == name)
    }

    /// The resource serving `uri` and the values of its variables: a static
    /// resource with exactly that URI, else the first template that fits.
    pub fn find(&self, uri: &str) -> Option<(&Arc<ServedResource>, VariableValues)> {
        self.resources
            .iter()
            .find_map(|r| Some((r, r.template.matches(uri)?)))
    }

    /// Whether some template variable declares `values` to complete.
    pub fn offers_completion(&self) -> bool {
        self.templates()
            .any(|r| r.spec.arguments.iter().any(|a| !a.values.is_empty()))
    }

    /// Problems with computed resources; see [`DefinitionFile::computed_problems`].
    pub fn computed_problems<'a>(
        &self,
        plugin: impl Fn(&str) -> Option<Option<&'a [String]>>,
    ) -> Vec<Problem> {
        self.file
            .as_ref()
            .map(|f| f.computed_problems(plugin))
            .unwrap_or_default()
    }
}

impl ServedSet for ResourceSet {
    type Document = ResourceCatalog;

    fn from_file(file: Option<Arc<DefinitionFile<ResourceCatalog>>>) -> Self {
        let resources = file
            .iter()
            .flat_map(|file| {
                file.definitions.entries().filter_map(|(kind, i, spec)| {
                    // The file was checked, so every URI parses.
                    let template = UriTemplate::parse(&spec.uri).ok()?;
                    Some(Arc::new(ServedResource {
                        spec: spec.clone(),
                        kind,
                        template,
                        line: file.source.line(&[
                            crate::catalog::Step::Key("resources"),
                            crate::catalog::Step::Key(kind.as_str()),
                            crate::catalog::Step::Item(i),
                        ]),
                    }))
                })
            })
            .collect();
        Self { file, resources }
    }

    fn file(&self) -> Option<&Arc<DefinitionFile<ResourceCatalog>>> {
        self.file.as_ref()
    }

    fn same_list(&self, other: &Self) -> bool {
        self.is_served() == other.is_served()
            && self.resources.len() == other.resources.len()
            && self.resources.iter().zip(&other.resources).all(|(a, b)| {
                let (a, b) = (&a.spec, &b.spec);
                a.name == b.name
                    && a.uri == b.uri
                    && a.title == b.title
                    && a.description == b.description
                    && a.mime_type == b.mime_type
            })
    }

    fn describe(&self) -> String {
        let count = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} and {}",
            count(self.statics().count(), "resource"),
            count(self.templates().count(), "template")
        )
    }
}

/// One content item of a read, ready to serve.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceContent {
    /// The URI that was read.
    pub uri: String,
    pub mime_type: Option<String>,
    /// The text; empty when the content is binary.
    pub text: String,
    /// Binary content, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// The item's other keys from resources.yml (WASImancer serves them
    /// beside `text`; MCP content has a fixed shape, so they go in `_meta`).
    pub meta: Map<String, Value>,
}

/// A successful read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceRead {
    pub call_id: u64,
    pub contents: Vec<ResourceContent>,
}

impl ResourceContent {
    /// The content as a person reads it: the text, or a label for binary
    /// content (`[blob image/png 69 B]`).
    pub fn readable(&self) -> Cow<'_, str> {
        match &self.blob {
            None => Cow::Borrowed(&self.text),
            Some(blob) => {
                let mime = self
                    .mime_type
                    .as_deref()
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default();
                let size = ContentItem::blob_size(blob);
                Cow::Owned(format!("[blob{mime} {}]", human_size(size)))
            }
        }
    }
}

impl RecordedOutput for Vec<ResourceContent> {
    fn record_text(&self) -> Cow<'_, str> {
        match self.as_slice() {
            [one] => one.readable(),
            many => Cow::Owned(
                many.iter()
                    .map(|c| c.readable())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }
}

/// Which list an edit moved a resource out of and into (WASImancer answers both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceEdit {
    pub old_kind: Option<ResourceKind>,
    pub new_kind: Option<ResourceKind>,
}

impl Registry {
    /// What resources.yml serves now.
    pub fn resources(&self) -> Arc<ResourceSet> {
        self.inner.resources.current()
    }

    /// A receiver that changes whenever the resource list does.
    pub fn watch_resources(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.resources.watch()
    }

    /// Read `uri` on behalf of `source`.
    pub async fn read_resource(
        &self,
        source: CallSource,
        uri: &str,
    ) -> Result<ResourceRead, CallFailure> {
        let set = self.resources();
        let (call_id, output) = self.record(source, self.read(&set, uri)).await;
        output.map(|contents| ResourceRead { call_id, contents })
    }

    async fn read(&self, set: &ResourceSet, uri: &str) -> Finished<Vec<ResourceContent>> {
        let Some((resource, found)) = set.find(uri) else {
            return Finished {
                kind: CallKind::Resource,
                name: uri.into(),
                plugin: "".into(),
                arguments: json!({ "uri": uri }).to_string(),
                output: Err(unknown_resource(set, uri)),
                overlapping: 0,
            };
        };
        let spec = &resource.spec;
        let mut variables = Map::new();
        let mut texts = Vec::new();
        let mut problems = Vec::new();
        for (name, raw) in found {
            match spec.parameter(&name).parse_value(&Value::String(raw)) {
                Ok((text, value)) => {
                    texts.push((name.clone(), text));
                    variables.insert(name, value);
                }
                Err(problem) => problems.push(problem),
            }
        }
        let arguments = match resource.kind {
            ResourceKind::Static => json!({ "uri": uri }),
            ResourceKind::Dynamic => json!({ "uri": uri, "variables": variables }),
        }
        .to_string();
        let mut finished = Finished {
            kind: CallKind::Resource,
            name: spec.name.as_str().into(),
            plugin: "".into(),
            arguments,
            output: Ok(Vec::new()),
            overlapping: 0,
        };
        if !problems.is_empty() {
            finished.output = Err(CallFailure::new(
                FailureKind::InvalidArguments,
                format!(
                    "`{uri}` does not fit resource `{}` ({}): {}",
                    spec.name,
                    spec.uri,
                    problems.join("; ")
                ),
            ));
            return finished;
        }
        match spec.computed_by() {
            None => {
                let value = |name: &str| {
                    texts
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| t.as_str())
                };
                finished.output = Ok(spec
                    .contents
                    .iter()
                    .map(|content| ResourceContent {
                        uri: uri.to_string(),
                        mime_type: content.mime_type.clone().or_else(|| spec.mime_type.clone()),
                        text: content
                            .text
                            .as_deref()
                            .map(|text| fill(text, value))
                            .unwrap_or_default(),
                        blob: content.blob.clone(),
                        meta: content.extra.clone(),
                    })
                    .collect());
            }
            Some((plugin, function)) => {
                finished.plugin = plugin.into();
                let (output, overlapping) = self.compute(spec, plugin, function, variables).await;
                finished.overlapping = overlapping;
                finished.output = output.map(|text| {
                    vec![ResourceContent {
                        uri: uri.to_string(),
                        mime_type: spec.mime_type.clone(),
                        text,
                        blob: None,
                        meta: Map::new(),
                    }]
                });
            }
        }
        finished
    }

    /// Run the function computing `spec` with the template variables as a
    /// JSON object, on the plugin's pool, under its limits.
    async fn compute(
        &self,
        spec: &ResourceSpec,
        plugin: &str,
        function: &str,
        variables: Map<String, Value>,
    ) -> (Result<String, CallFailure>, u32) {
        let snapshot = self.snapshot();
        let entry = snapshot.plugin(plugin);
        let Some(loaded) = entry.and_then(|e| e.serving.clone()) else {
            let why = match entry.and_then(|e| e.error.as_deref()) {
                Some(error) => format!("it failed to load: {error}"),
                None => format!("{} does not declare it", self.catalog_path().display()),
            };
            let message = format!(
                "resource `{}` is computed by plugin `{plugin}`, which is not loaded: {why}",
                spec.name
            );
            return (Err(CallFailure::new(FailureKind::Runtime, message)), 0);
        };
        drop(snapshot);
        let exports = &loaded.module_info().exports;
        if !exports.iter().any(|e| e == function) {
            let message = format!(
                "resource `{}` is computed by `{function}`, which plugin `{plugin}` does not export; exports are: {}",
                spec.name,
                exports.join(", ")
            );
            return (Err(CallFailure::new(FailureKind::Runtime, message)), 0);
        }
        let input = Value::Object(variables).to_string();
        let result = loaded
            .call(function.into(), input.into_bytes(), CallControl::default())
            .await;
        self.metrics().plugin_ran(result.waited, result.inline);
        let output = result.output.and_then(|text| {
            let json = spec
                .mime_type
                .as_deref()
                .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
            match json.then(|| serde_json::from_str::<serde::de::IgnoredAny>(&text)) {
                Some(Err(error)) => Err(CallFailure::new(
                    FailureKind::PluginError,
                    format!(
                        "`{function}` of plugin `{plugin}` returned text that is not JSON ({error}), but resource `{}` declares mimeType {}",
                        spec.name,
                        spec.mime_type.as_deref().unwrap_or_default()
                    ),
                )),
                _ => Ok(text),
            }
        });
        (output, result.overlapping)
    }

    /// Values to complete `variable` of the template `template` with, from
    /// its declared `values`, starting with `prefix`.
    pub fn complete_resource(
        &self,
        template: &str,
        variable: &str,
        prefix: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let set = self.resources();
        let resource = set
            .resources
            .iter()
            .find(|r| r.spec.uri == template)
            .ok_or_else(|| unknown_resource(&set, template))?;
        if !resource.template.variables().any(|v| v == variable) {
            return Err(CallFailure::new(
                FailureKind::InvalidArguments,
                format!(
                    "`{template}` has no variable `{variable}`; its variables are: {}",
                    resource.template.variables().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(resource.spec.parameter(variable).complete(prefix))
    }

    /// Add a resource to resources.yml (static or dynamic by its URI).
    pub async fn add_resource(
        &self,
        spec: ResourceSpec,
        origin: &str,
    ) -> Result<ResourceEdit, ChangeError> {
        self.check_resource(&spec)?;
        let name = spec.name.clone();
        let kind = spec.kind();
        let (_, set) = self
            .inner
            .resources
            .edit(|catalog, _| {
                if catalog.position(&spec.name).is_some() {
                    return Err(ChangeError::Conflict(format!(
                        "resource `{}` already exists; use PUT /update-resource/{} to replace it",
                        spec.name, spec.name
                    )));
                }
                catalog.insert(spec);
                Ok(())
            })
            .await?;
        self.announce_edit(&*set, origin, Change::Added, &format!("resource `{name}`"));
        Ok(ResourceEdit {
            old_kind: None,
            new_kind: Some(kind),
        })
    }

    /// Replace the resource called `name` with `spec` (which must keep the name).
    pub async fn replace_resource(
        &self,
        name: &str,
        spec: ResourceSpec,
        origin: &str,
    ) -> Result<ResourceEdit, ChangeError> {
        if spec.name != name {
            return Err(ChangeError::InvalidEntry(format!(
                "the resource in the body is called `{}`, the URL names `{name}`; they must match",
                spec.name
            )));
        }
        self.check_resource(&spec)?;
        let new_kind = spec.kind();
        let (old_kind, set) = self
            .inner
            .resources
            .edit(|catalog, path| {
                catalog
                    .replace(spec)
                    .ok_or_else(|| unknown_entry("resource", name, path))
            })
            .await?;
        self.announce_edit(
            &*set,
            origin,
            Change::Replaced,
            &format!("resource `{name}`"),
        );
        Ok(ResourceEdit {
            old_kind: Some(old_kind),
            new_kind: Some(new_kind),
        })
    }

    /// Remove the resource called `name` from resources.yml.
    pub async fn remove_resource(
        &self,
        name: &str,
        origin: &str,
    ) -> Result<ResourceEdit, ChangeError> {
        let ((old_kind, _), set) = self
            .inner
            .resources
            .edit(|catalog, path| {
                catalog
                    .remove(name)
                    .ok_or_else(|| unknown_entry("resource", name, path))
            })
            .await?;
        self.announce_edit(
            &*set,
            origin,
            Change::Removed,
            &format!("resource `{name}`"),
        );
        Ok(ResourceEdit {
            old_kind: Some(old_kind),
            new_kind: None,
        })
    }

    fn check_resource(&self, spec: &ResourceSpec) -> Result<(), ChangeError> {
        let mut alone = ResourceCatalog::default();
        alone.insert(spec.clone());
        self.inner.resources.check_entry(&alone)
    }
}

/// "resource `x` is not in resources.yml".
pub(super) fn unknown_entry(what: &'static str, name: &str, path: &std::path::Path) -> ChangeError {
    ChangeError::UnknownEntry {
        what,
        name: name.to_string(),
        file: path.display().to_string(),
    }
}

fn unknown_resource(set: &ResourceSet, uri: &str) -> CallFailure {
    let mut known: Vec<&str> = set.resources.iter().map(|r| r.spec.uri.as_str()).collect();
    let more = known.len().saturating_sub(LISTED_IN_ERRORS);
    known.truncate(LISTED_IN_ERRORS);
    let mut list = if known.is_empty() {
        "none are served".to_string()
    } else {
        format!("served: {}", known.join(", "))
    };
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    CallFailure::new(
        FailureKind::UnknownResource,
        format!("no resource at `{uri}`; {list}"),
    )
}
