//! resources.yml: WASImancer's static resources (`resources.static[]`) and URI
//! templates (`resources.dynamic[]`), plus ours: a resource computed by a
//! plugin function (`plugin:` and `function:` instead of `contents:`).
//!
//! WASImancer copies every key of a content item into what it serves; the
//! keys besides `text` (and `mimeType`) are kept here in [`ContentSpec::extra`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Problem;
use super::definitions::{
    DefinitionFile, Definitions, Locator, ParameterSpec, check_entry_name, check_mime_type,
    null_is_default, optional_scalar, parameter_problems,
};
use super::source_map::Step;
use crate::templates::UriTemplate;

/// The whole resources.yml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceCatalog {
    /// Free text about these resources, kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub resources: ResourceSections,
}

/// `resources:`, with WASImancer's two lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSections {
    /// Resources at a fixed URI.
    #[serde(
        rename = "static",
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub statics: Vec<ResourceSpec>,
    /// Resources at the URIs of a template.
    #[serde(
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dynamic: Vec<ResourceSpec>,
}

/// Which list a resource is in (WASImancer's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Static,
    Dynamic,
}

impl ResourceKind {
    /// The list's key in resources.yml, and WASImancer's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Static => "static",
            ResourceKind::Dynamic => "dynamic",
        }
    }
}

/// One resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    /// A URI (static) or an RFC 6570 level-1 URI template (dynamic).
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "mimeType", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The template's variables (dynamic resources).
    #[serde(
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arguments: Vec<ParameterSpec>,
    /// What is served, with `${variable}` filled in.
    #[serde(
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub contents: Vec<ContentSpec>,
    /// The plugin whose function computes the content (instead of `contents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// One content item: its text (or, ours, binary content as base64 in
/// `blob`), and whatever else WASImancer would copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentSpec {
    #[serde(
        default,
        deserialize_with = "optional_scalar",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// Binary content, base64-encoded (served as a `blob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    #[serde(rename = "mimeType", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The item's other keys (`firstName`, `version`…), served under `_meta`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceSpec {
    /// Parse one entry sent as JSON (the admin API's body).
    pub fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    /// Where the entry belongs: a URI with `{…}` is a template (dynamic).
    pub fn kind(&self) -> ResourceKind {
        if self.uri.contains(['{', '}']) {
            ResourceKind::Dynamic
        } else {
            ResourceKind::Static
        }
    }

    /// The plugin and function computing this resource, when it is computed.
    pub fn computed_by(&self) -> Option<(&str, &str)> {
        Some((self.plugin.as_deref()?, self.function.as_deref()?))
    }

    /// The declared parameter for `variable`, or a string one.
    pub fn parameter(&self, variable: &str) -> ParameterSpec {
        self.arguments
            .iter()
            .find(|a| a.name == variable)
            .cloned()
            .unwrap_or_else(|| ParameterSpec::text(variable))
    }
}

impl ResourceCatalog {
    /// Every entry with its list and index, static ones first.
    pub fn entries(&self) -> impl Iterator<Item = (ResourceKind, usize, &ResourceSpec)> {
        let statics = self.resources.statics.iter().enumerate();
        let dynamic = self.resources.dynamic.iter().enumerate();
        statics
            .map(|(i, r)| (ResourceKind::Static, i, r))
            .chain(dynamic.map(|(i, r)| (ResourceKind::Dynamic, i, r)))
    }

    /// Where the resource called `name` is.
    pub fn position(&self, name: &str) -> Option<(ResourceKind, usize)> {
        self.entries()
            .find(|(_, _, r)| r.name == name)
            .map(|(kind, i, _)| (kind, i))
    }

    fn list_mut(&mut self, kind: ResourceKind) -> &mut Vec<ResourceSpec> {
        match kind {
            ResourceKind::Static => &mut self.resources.statics,
            ResourceKind::Dynamic => &mut self.resources.dynamic,
        }
    }

    /// Append `spec` to the list its URI calls for.
    pub fn insert(&mut self, spec: ResourceSpec) {
        self.list_mut(spec.kind()).push(spec);
    }

    /// Remove the resource called `name`; its list and entry.
    pub fn remove(&mut self, name: &str) -> Option<(ResourceKind, ResourceSpec)> {
        let (kind, index) = self.position(name)?;
        Some((kind, self.list_mut(kind).remove(index)))
    }

    /// Replace the resource called `spec.name`, in place when it stays in its
    /// list, moved when its URI makes it the other kind. Returns the old kind.
    pub fn replace(&mut self, spec: ResourceSpec) -> Option<ResourceKind> {
        let (kind, index) = self.position(&spec.name)?;
        if kind == spec.kind() {
            self.list_mut(kind)[index] = spec;
        } else {
            self.list_mut(kind).remove(index);
            self.insert(spec);
        }
        Some(kind)
    }
}

impl DefinitionFile<ResourceCatalog> {
    /// Problems with resources computed by a plugin, given what `plugin` knows
    /// of each: `None` when plugins.yml does not declare it, else its exports
    /// when they are known (the plugin loaded).
    pub fn computed_problems<'a>(
        &self,
        plugin: impl Fn(&str) -> Option<Option<&'a [String]>>,
    ) -> Vec<Problem> {
        let at = Locator {
            file: &self.path,
            source: &self.source,
        };
        self.definitions
            .entries()
            .filter_map(|(kind, i, spec)| {
                let (name, function) = spec.computed_by()?;
                let (key, message) = match plugin(name) {
                    None => (
                        "plugin",
                        format!(
                            "resource `{}` is computed by plugin `{name}`, which plugins.yml does not declare; reading it fails until it does",
                            spec.name
                        ),
                    ),
                    Some(Some(exports)) if !exports.iter().any(|e| e == function) => (
                        "function",
                        format!(
                            "resource `{}` is computed by `{function}`, which plugin `{name}` does not export; exports are: {}",
                            spec.name,
                            exports.join(", ")
                        ),
                    ),
                    Some(_) => return None,
                };
                Some(at.problem(
                    &[
                        Step::Key("resources"),
                        Step::Key(kind.as_str()),
                        Step::Item(i),
                        Step::Key(key),
                    ],
                    message,
                ))
            })
            .collect()
    }
}

impl Definitions for ResourceCatalog {
    const WHAT: &'static str = "resources";

    fn problems(&self, at: &Locator<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut uris: HashMap<&str, String> = HashMap::new();
        for (kind, i, spec) in self.entries() {
            let entry = [
                Step::Key("resources"),
                Step::Key(kind.as_str()),
                Step::Item(i),
            ];
            let here = format!("resources.{}[{i}]", kind.as_str());
            let mut problem = |key: &str, message: String| {
                let mut path = entry.to_vec();
                if !key.is_empty() {
                    path.push(Step::Key(key));
                }
                problems.push(at.problem(&path, message));
            };
            if let Err(message) = check_entry_name("resource", &spec.name) {
                problem("name", message);
            } else if let Some(first) = names.insert(&spec.name, here.clone()) {
                problem(
                    "name",
                    format!(
                        "resource name `{}` is already used by {first}; names must be unique",
                        spec.name
                    ),
                );
            }
            if let Err(message) = check_uri(kind, spec) {
                problem("uri", message);
            } else if let Some(first) = uris.insert(&spec.uri, here.clone()) {
                problem(
                    "uri",
                    format!("`{}` is already served by {first}", spec.uri),
                );
            }
            if let Err(message) = check_body(spec) {
                problem("", message);
            }
            if let Some(Err(message)) = spec.mime_type.as_deref().map(check_mime_type) {
                problem("mimeType", message);
            }
            if let Ok(template) = UriTemplate::parse(&spec.uri) {
                for (a, argument) in spec.arguments.iter().enumerate() {
                    let message = if kind == ResourceKind::Static {
                        Some(
                            "a static resource takes no arguments; put it under `dynamic` with `{name}` in its uri"
                                .to_string(),
                        )
                    } else if !template.variables().any(|v| v == argument.name) {
                        Some(format!(
                            "argument `{}` is not a variable of `{}`",
                            argument.name, spec.uri
                        ))
                    } else if !argument.required {
                        Some("URI variables are always required; remove `required: false`".into())
                    } else {
                        None
                    };
                    if let Some(message) = message {
                        let mut path = entry.to_vec();
                        path.extend([Step::Key("arguments"), Step::Item(a)]);
                        problems.push(at.problem(&path, message));
                    }
                }
            }
            parameter_problems(at, &entry, &spec.arguments, &mut problems);
            for (c, content) in spec.contents.iter().enumerate() {
                let mut path = entry.to_vec();
                path.extend([Step::Key("contents"), Step::Item(c)]);
                if let Some(Err(message)) = content.mime_type.as_deref().map(check_mime_type) {
                    path.push(Step::Key("mimeType"));
                    problems.push(at.problem(&path, message));
                } else if let Err(message) = check_content(content) {
                    problems.push(at.problem(&path, message));
                }
            }
        }
        problems
    }
}

/// A URI needs a scheme (`config://server`); a template may only be dynamic.
fn check_uri(kind: ResourceKind, spec: &ResourceSpec) -> Result<(), String> {
    let uri = &spec.uri;
    let scheme = uri.split_once(':').map(|(scheme, _)| scheme);
    let valid_scheme = scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !valid_scheme {
        return Err(format!(
            "`{uri}` is not a URI: start it with a scheme such as `config://` or `info://`"
        ));
    }
    if uri.chars().any(char::is_whitespace) {
        return Err(format!("`{uri}` contains a space; encode it as `%20`"));
    }
    let template = UriTemplate::parse(uri)?;
    if kind == ResourceKind::Static && !template.is_literal() {
        return Err(format!(
            "`{uri}` is a URI template; put this resource under `dynamic`"
        ));
    }
    Ok(())
}

/// Text or base64 content: one of the two.
fn check_content(content: &ContentSpec) -> Result<(), String> {
    match (&content.text, &content.blob) {
        (Some(_), None) => Ok(()),
        (None, Some(blob)) => {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob)
                .map(|_| ())
                .map_err(|error| format!("`blob` is not base64 ({error})"))
        }
        (None, None) => {
            Err("a content item needs `text` (or `blob`, base64 for binary content)".into())
        }
        (Some(_), Some(_)) => Err("a content item has `text` or `blob`, not both".into()),
    }
}

/// Content to serve, or a plugin to compute it: one of the two.
fn check_body(spec: &ResourceSpec) -> Result<(), String> {
    let blank = |value: &Option<String>| value.as_deref().is_some_and(|v| v.trim().is_empty());
    match (&spec.plugin, &spec.function, spec.contents.is_empty()) {
        (None, None, true) => {
            Err("a resource needs `contents`, or `plugin` and `function` to compute them".into())
        }
        (None, None, false) => Ok(()),
        (Some(_), Some(_), false) => {
            Err("a resource has either `contents` or `plugin` and `function`, not both".into())
        }
        (Some(_), Some(_), true) if blank(&spec.plugin) || blank(&spec.function) => {
            Err("`plugin` and `function` must not be empty".into())
        }
        (Some(_), Some(_), true) => Ok(()),
        _ => Err("`plugin` and `function` go together: name both".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::catalog::DefinitionError;

    /// WASImancer's own resources/resources.yml, shape for shape.
    const WASIMANCER: &str = include_str!("../../tests/fixtures/wasimancer/resources.yml");

    fn parse(text: &str) -> Result<DefinitionFile<ResourceCatalog>, DefinitionError> {
        DefinitionFile::parse(Path::new("resources.yml"), text)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(DefinitionError::Invalid { problems }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn reads_wasimancer_files_unchanged() {
        let file = parse(WASIMANCER).unwrap();
        let sections = &file.definitions.resources;
        assert_eq!(sections.statics.len(), 2);
        assert_eq!(sections.dynamic.len(), 2);
        let info = &sections.statics[1];
        assert_eq!(info.contents[0].extra["firstName"], "Philippe");
        assert_eq!(sections.dynamic[1].arguments[1].name, "lastName");
        // The sample of the roll-dice project, and a bare `dynamic:`.
        let sample = "resources:\n  static:\n    - name: llm-instructions\n      uri: llm://instructions\n      contents:\n        - text: you are a dungeon master.\n\n  dynamic:\n";
        assert_eq!(
            parse(sample).unwrap().definitions.resources.statics.len(),
            1
        );
        assert!(!parse("").unwrap().definitions.entries().any(|_| true));
    }

    #[test]
    fn mistakes_are_reported_with_their_lines() {
        let text = WASIMANCER
            .replace("uri: echo://{message}", "uri: echo://{+message}")
            .replace("- name: k33g-org-info", "- name: server-info")
            .replacen(
                "          type: 'string' # for",
                "          type: strnig # for",
                1,
            );
        let found = problems(&text);
        // serde stops at the first value it cannot read.
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("valid types are"), "{}", found[0]);
        assert_eq!(found[0].line, Some(26), "{}", found[0]);
        assert_eq!(found[0].key, "resources.dynamic[0].arguments[0].type");

        let text = WASIMANCER
            .replace("uri: echo://{message}", "uri: echo://{+message}")
            .replace("- name: k33g-org-info", "- name: server-info");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].line, Some(12));
        assert!(
            found[0]
                .message
                .contains("already used by resources.static[0]")
        );
        assert_eq!(found[1].line, Some(23));
        assert!(found[1].message.contains("operator `+`"), "{}", found[1]);
    }

    #[test]
    fn entries_need_content_or_a_plugin_and_fitting_arguments() {
        let cases = [
            ("  - name: a\n    uri: a://x\n", "needs `contents`"),
            (
                "  - name: a\n    uri: a://x\n    plugin: p\n",
                "go together",
            ),
            (
                "  - name: a\n    uri: a://x\n    plugin: p\n    function: f\n    contents:\n      - text: t\n",
                "not both",
            ),
            (
                "  - name: a\n    uri: a://{x}\n    contents:\n      - text: t\n",
                "put this resource under `dynamic`",
            ),
            (
                "  - name: a\n    uri: no scheme\n    contents:\n      - text: t\n",
                "not a URI",
            ),
            (
                "  - name: a\n    uri: a://x\n    mimeType: json\n    contents:\n      - text: t\n",
                "not a media type",
            ),
            (
                "  - name: a\n    uri: a://x\n    contents:\n      - blob: not base64!\n",
                "`blob` is not base64",
            ),
            (
                "  - name: a\n    uri: a://x\n    contents:\n      - text: t\n        blob: aGk=\n",
                "`text` or `blob`, not both",
            ),
            (
                "  - name: a\n    uri: a://x\n    contents:\n      - mimeType: text/plain\n",
                "needs `text` (or `blob`",
            ),
        ];
        for (entry, says) in cases {
            let found = problems(&format!("resources:\n  static:\n{entry}"));
            assert!(
                found.iter().any(|p| p.message.contains(says)),
                "{entry}: {found:?}"
            );
            assert_eq!(found[0].line.map(|l| l >= 3), Some(true), "{found:?}");
        }
        let found = problems(
            "resources:\n  dynamic:\n  - name: a\n    uri: a://{x}\n    arguments:\n      - name: y\n    contents:\n      - text: t\n",
        );
        assert_eq!(found[0].line, Some(6));
        assert!(found[0].message.contains("not a variable of `a://{x}`"));
    }

    #[test]
    fn entries_go_to_the_list_their_uri_calls_for() {
        let mut catalog = parse(WASIMANCER).unwrap().definitions;
        let mut spec = catalog.resources.statics[0].clone();
        spec.uri = "config://{part}".into();
        assert_eq!(catalog.replace(spec), Some(ResourceKind::Static));
        assert_eq!(
            catalog.position("server-info"),
            Some((ResourceKind::Dynamic, 2))
        );
        let (kind, removed) = catalog.remove("echo").unwrap();
        assert_eq!(
            (kind, removed.name.as_str()),
            (ResourceKind::Dynamic, "echo")
        );
        // What is written reads back the same.
        let again = parse(&serde_yaml::to_string(&catalog).unwrap()).unwrap();
        assert_eq!(again.definitions, catalog);
    }
}
