//! The checks that need more than one entry at a time: unique plugin names,
//! unique tool names, unique argument names.

use std::collections::HashMap;

use super::types::MAX_NAME_LEN;
use super::{CatalogFile, Entry, FunctionSpec, Problem};

impl CatalogFile {
    /// Checks that need more than one value at a time.
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut plugin_names: HashMap<&str, usize> = HashMap::new();
        let mut tool_names: HashMap<String, (usize, String)> = HashMap::new();
        for (p, plugin) in self.catalog.plugins.iter().enumerate() {
            if let Err(message) = check_name(&plugin.name) {
                problems.push(self.problem(Entry::Plugin(p), "name", message));
            } else if let Some(first) = plugin_names.insert(&plugin.name, p) {
                problems.push(self.problem(
                    Entry::Plugin(p),
                    "name",
                    format!(
                        "plugin name `{}` is already used by plugins[{first}]; plugin names must be unique",
                        plugin.name
                    ),
                ));
            }
            if plugin.functions.is_empty() {
                problems.push(self.problem(
                    Entry::Plugin(p),
                    "functions",
                    "a plugin needs at least one function to serve as a tool",
                ));
            }
            for (f, function) in plugin.functions.iter().enumerate() {
                self.check_function(p, f, function, &mut tool_names, &mut problems);
            }
        }
        problems
    }

    fn check_function(
        &self,
        p: usize,
        f: usize,
        function: &FunctionSpec,
        tool_names: &mut HashMap<String, (usize, String)>,
        problems: &mut Vec<Problem>,
    ) {
        if function.function.trim().is_empty() {
            problems.push(self.problem(
                Entry::Function(p, f),
                "function",
                "the exported function name is empty",
            ));
        }
        let tool = function.tool_name();
        if tool.is_empty() || tool.chars().all(|c| c == '_') {
            problems.push(self.problem(
                Entry::Function(p, f),
                "displayName",
                format!(
                    "`{}` gives no usable tool name; use letters, digits, `_`, `-` or `.`",
                    function.title()
                ),
            ));
        } else if let Some((other, other_title)) =
            tool_names.insert(tool.clone(), (p, function.title().to_string()))
        {
            problems.push(self.problem(
                Entry::Function(p, f),
                "displayName",
                format!(
                    "tool name `{tool}` is already taken by `{other_title}` in plugin `{}`; give one of them another displayName",
                    self.catalog.plugins[other].name
                ),
            ));
        }
        self.surface_problems(p, f, function, problems);
        let mut seen = HashMap::new();
        for (a, argument) in function.arguments.iter().enumerate() {
            let key = format!("plugins[{p}].functions[{f}].arguments[{a}].name");
            let line = self.source.entry(Entry::Argument(p, f, a));
            let message = if argument.name.is_empty() {
                Some("an argument needs a name".to_string())
            } else {
                seen.insert(argument.name.as_str(), a).map(|first| {
                    format!(
                        "argument `{}` is declared twice (also arguments[{first}])",
                        argument.name
                    )
                })
            };
            if let Some(message) = message {
                problems.push(Problem {
                    file: self.path.clone(),
                    line,
                    key,
                    message,
                });
            }
        }
        // A misspelt name in `redact:` would leave a secret in the records.
        for name in &function.redact {
            if !seen.contains_key(name.as_str()) {
                let declared: Vec<&str> =
                    function.arguments.iter().map(|a| a.name.as_str()).collect();
                problems.push(self.problem(
                    Entry::Function(p, f),
                    "redact",
                    format!(
                        "`{name}` is not an argument of `{}`, so it cannot be redacted; arguments are: {}",
                        function.title(),
                        if declared.is_empty() { "(none)".to_string() } else { declared.join(", ") }
                    ),
                ));
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the plugin name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the plugin name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "plugin name `{}` contains `/`, `\\` or a control character",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WASIMANCER, parse, problems};

    #[test]
    fn redact_names_only_declared_arguments() {
        let listed = format!("{WASIMANCER}        redact: [numDice]\n");
        assert!(parse(&listed).is_ok());
        let misspelt = format!("{WASIMANCER}        redact: [numDices]\n");
        let problem = &problems(&misspelt)[0];
        assert_eq!(problem.key, "plugins[0].functions[0].redact");
        assert_eq!(problem.line, Some(18));
        let message = &problem.message;
        assert!(
            message.contains("`numDices` is not an argument of `rollDice`"),
            "{message}"
        );
        assert!(
            message.contains("arguments are: numFaces, numDice"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_plugins_and_tools_are_reported_with_their_lines() {
        let text = format!(
            "{WASIMANCER}  - name: roll dice\n    path: other.wasm\n    functions:\n      - displayName: roll Dice\n        function: x\n      - displayName: rollDice\n        function: y\n"
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(18));
        assert!(problems[0].message.contains("already used"));
        assert_eq!(problems[1].line, Some(23));
        assert_eq!(problems[1].key, "plugins[1].functions[1].displayName");
        assert!(problems[1].message.contains("already taken"));
    }
}
