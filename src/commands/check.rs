//! `wasimancer check`: validate plugins.yml and every plugin in it, and
//! resources.yml and prompts.yml, without serving anything, and print what
//! was found.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::catalog::{
    CatalogFile, DefinitionFile, Definitions, PluginSpec, PromptCatalog, ResourceCatalog,
};
use crate::cli::PluginArgs;
use crate::registry::{DefinitionPaths, PromptSet, ResourceSet, ServedSet};
use crate::runtime::LoadedPlugin;

/// What `check` found for one plugin.
pub struct PluginCheck {
    pub name: String,
    pub version: String,
    pub path: String,
    pub functions: String,
    /// `Ok` with a short note, or the problem.
    pub result: Result<String, String>,
    /// The module's exports, when it loaded.
    pub exports: Option<Vec<String>>,
}

/// What `check` found for resources.yml or prompts.yml.
pub struct DefinitionCheck {
    pub file: String,
    /// `Ok` with what it serves, or the problems.
    pub result: Result<String, String>,
}

/// The whole report: problems with plugins.yml itself, or one row per
/// plugin; then a line per definition file.
pub struct CheckReport {
    pub file: String,
    pub catalog_problem: Option<String>,
    pub plugins: Vec<PluginCheck>,
    pub definitions: Vec<DefinitionCheck>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.catalog_problem.is_none()
            && self.plugins.iter().all(|p| p.result.is_ok())
            && self.definitions.iter().all(|d| d.result.is_ok())
    }

    /// The report as a table followed by the problems in full, then the
    /// definition files.
    pub fn render(&self) -> String {
        let mut out = self.render_plugins();
        for definition in &self.definitions {
            let _ = match &definition.result {
                Ok(note) => writeln!(out, "{}: {note}", definition.file),
                Err(problems) => writeln!(out, "{}: FAILED\n{problems}", definition.file),
            };
        }
        out
    }

    fn render_plugins(&self) -> String {
        let mut out = String::new();
        if let Some(problem) = &self.catalog_problem {
            let _ = writeln!(out, "{problem}");
            return out;
        }
        if self.plugins.is_empty() {
            let _ = writeln!(out, "{}: no plugins declared", self.file);
            return out;
        }
        let header = ["PLUGIN", "VERSION", "MODULE", "FUNCTIONS", "STATUS"];
        let rows: Vec<[String; 5]> = self
            .plugins
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.version.clone(),
                    p.path.clone(),
                    p.functions.clone(),
                    match &p.result {
                        Ok(note) => format!("ok, {note}"),
                        Err(_) => "FAILED (see below)".into(),
                    },
                ]
            })
            .collect();
        out.push_str(&super::table(header, &rows));
        let failures: Vec<&PluginCheck> =
            self.plugins.iter().filter(|p| p.result.is_err()).collect();
        if failures.is_empty() {
            let _ = writeln!(
                out,
                "\nall {} plugins are ready to serve",
                self.plugins.len()
            );
        } else {
            let _ = writeln!(out, "\nproblems:");
            for plugin in failures {
                if let Err(problem) = &plugin.result {
                    let _ = writeln!(out, "- {}: {problem}", plugin.name);
                }
            }
        }
        out
    }
}

/// Check plugins.yml and every plugin, loading each with one instance, then
/// resources.yml and prompts.yml.
pub async fn run(args: &PluginArgs, definitions: &DefinitionPaths) -> CheckReport {
    let mut report = check_plugins(args).await;
    let declared = CatalogFile::read(&args.plugins_file).ok();
    if let Some(location) = &definitions.resources {
        let file = check_definitions::<ResourceCatalog>(&location.path, location.configured);
        report.definitions.push(match file {
            Ok(Some(file)) => {
                let problems = file.computed_problems(|name| {
                    declared.as_ref()?.catalog.position(name)?;
                    Some(
                        report
                            .plugins
                            .iter()
                            .find(|p| p.name == name)
                            .and_then(|p| p.exports.as_deref()),
                    )
                });
                let note = ResourceSet::from_file(Some(Arc::new(file))).describe();
                definition_check(&location.path, note, problems)
            }
            Ok(None) => absent(&location.path),
            Err(problems) => DefinitionCheck {
                file: location.path.display().to_string(),
                result: Err(problems),
            },
        });
    }
    if let Some(location) = &definitions.prompts {
        let file = check_definitions::<PromptCatalog>(&location.path, location.configured);
        report.definitions.push(match file {
            Ok(Some(file)) => {
                let note = PromptSet::from_file(Some(Arc::new(file))).describe();
                definition_check(&location.path, note, Vec::new())
            }
            Ok(None) => absent(&location.path),
            Err(problems) => DefinitionCheck {
                file: location.path.display().to_string(),
                result: Err(problems),
            },
        });
    }
    report
}

/// The file at `path` checked; `None` when it is absent and was not named.
fn check_definitions<T: Definitions>(
    path: &Path,
    configured: bool,
) -> Result<Option<DefinitionFile<T>>, String> {
    match DefinitionFile::<T>::read(path) {
        Ok(file) if file.exists => Ok(Some(file)),
        Ok(_) if configured => Err(format!(
            "{} does not exist (no {} would be served)",
            path.display(),
            T::WHAT
        )),
        Ok(_) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

fn definition_check(
    path: &Path,
    note: String,
    problems: Vec<crate::catalog::Problem>,
) -> DefinitionCheck {
    let result = if problems.is_empty() {
        Ok(format!("{note}, ok"))
    } else {
        Err(problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    DefinitionCheck {
        file: path.display().to_string(),
        result,
    }
}

fn absent(path: &Path) -> DefinitionCheck {
    DefinitionCheck {
        file: path.display().to_string(),
        result: Ok("not there, none served".into()),
    }
}

async fn check_plugins(args: &PluginArgs) -> CheckReport {
    let file_name = args.plugins_file.display().to_string();
    let file = match CatalogFile::read(&args.plugins_file) {
        Ok(file) => file,
        Err(error) => {
            return CheckReport {
                file: file_name,
                catalog_problem: Some(error.to_string()),
                plugins: Vec::new(),
                definitions: Vec::new(),
            };
        }
    };
    let settings = super::runtime_settings(args);
    let mut tasks = Vec::new();
    let mut names = Vec::new();
    for (index, spec) in file.catalog.plugins.iter().enumerate() {
        names.push(spec.name.clone());
        let spec = PluginSpec {
            instances: Some(1),
            ..spec.clone()
        };
        let settings = settings.clone();
        let location = match file.source.plugin(index) {
            Some(line) => format!("{file_name} line {line}: "),
            None => format!("{file_name}: "),
        };
        tasks.push(tokio::task::spawn_blocking(move || {
            let loaded = LoadedPlugin::load(&spec, &settings);
            let exports = loaded
                .as_ref()
                .ok()
                .map(|loaded| loaded.module_info().exports.clone());
            let result = loaded
                .map(|loaded| format!("compiled in {} ms", loaded.load_time().as_millis()))
                .map_err(|error| format!("{location}{error}"));
            PluginCheck {
                name: spec.name.clone(),
                version: spec.version.clone().unwrap_or_else(|| "-".into()),
                path: spec
                    .module()
                    .map_or_else(|_| spec.path.clone(), |module| module.to_string()),
                functions: spec
                    .functions
                    .iter()
                    .map(|f| f.tool_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                result,
                exports,
            }
        }));
    }
    let mut plugins = Vec::new();
    for (task, name) in tasks.into_iter().zip(names) {
        plugins.push(task.await.unwrap_or_else(|_| PluginCheck {
            name,
            version: "-".into(),
            path: "-".into(),
            functions: "-".into(),
            result: Err("the check itself failed (the loader thread panicked)".into()),
            exports: None,
        }));
    }
    CheckReport {
        file: file_name,
        catalog_problem: None,
        plugins,
        definitions: Vec::new(),
    }
}
