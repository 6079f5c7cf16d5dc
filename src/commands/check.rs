//! `wasimancer check`: validate plugins.yml and every plugin in it, without
//! serving anything, and print what was found.

use std::fmt::Write as _;

use crate::catalog::{CatalogFile, PluginSpec};
use crate::cli::PluginArgs;
use crate::runtime::LoadedPlugin;

/// What `check` found for one plugin.
pub struct PluginCheck {
    pub name: String,
    pub version: String,
    pub path: String,
    pub functions: String,
    /// `Ok` with a short note, or the problem.
    pub result: Result<String, String>,
}

/// The whole report: problems with plugins.yml itself, or one row per plugin.
pub struct CheckReport {
    pub file: String,
    pub catalog_problem: Option<String>,
    pub plugins: Vec<PluginCheck>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.catalog_problem.is_none() && self.plugins.iter().all(|p| p.result.is_ok())
    }

    /// The report as a table followed by the problems in full.
    pub fn render(&self) -> String {
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
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i == 4 {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ");
                }
            }
            text.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(header));
        for row in &rows {
            let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
        }
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

/// Check plugins.yml and every plugin, loading each with one instance.
pub async fn run(args: &PluginArgs) -> CheckReport {
    let file_name = args.plugins_file.display().to_string();
    let file = match CatalogFile::read(&args.plugins_file) {
        Ok(file) => file,
        Err(error) => {
            return CheckReport {
                file: file_name,
                catalog_problem: Some(error.to_string()),
                plugins: Vec::new(),
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
            let result = LoadedPlugin::load(&spec, &settings)
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
        }));
    }
    CheckReport {
        file: file_name,
        catalog_problem: None,
        plugins,
    }
}
