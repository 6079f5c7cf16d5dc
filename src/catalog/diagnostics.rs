//! What is wrong with a plugins.yml, said with its line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use super::SourceMap;

/// A problem found in plugins.yml, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key path, such as `plugins[2].timeout_ms`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ", {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "cannot read {}: {source} (set --plugins-file, or PLUGINS_PATH and PLUGINS_DEFINITION_FILE as for WASImancer)",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", ProblemList(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The catalog could not be turned into plugins.yml text that reads back
    /// as the same catalog.
    #[error("cannot write {}: {reason}; nothing was written", path.display())]
    Serialize { path: PathBuf, reason: String },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Turn a serde_yaml error into a problem with a line and, for an unknown
/// key, the closest valid one.
pub(super) fn syntax_problem(file: &Path, text: &str, error: &serde_yaml::Error) -> Problem {
    let mut message = error.to_string();
    // serde_yaml appends " at line L column C"; we print the line ourselves.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let (key, mut message) = match message.split_once(": ") {
        Some((path, rest)) if looks_like_key_path(path) => (path.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    if let Some(hint) = did_you_mean(&message) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    }
    let mut line = error.location().map(|l| l.line());
    let mut key = key;
    // Our own checks of a value start their message with its key; serde_yaml
    // places them at the start of the enclosing entry, so find the key's line.
    let field = message
        .split([' ', ':'])
        .next()
        .filter(|word| VALUE_CHECKED_KEYS.contains(word));
    if let (Some(field), Some(indexes)) = (field, entry_indexes(&key)) {
        let source = SourceMap::new(text);
        let refined = match indexes {
            (p, None, _) => source.plugin_key(p, field),
            (p, Some(f), None) => source.function_key(p, f, field),
            (p, Some(f), Some(a)) => source.argument_key(p, f, a, field),
        };
        if refined.is_some() {
            line = refined;
        }
        key = format!("{key}.{field}");
    }
    Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}

/// Keys whose values we check while parsing; their messages start with the key.
const VALUE_CHECKED_KEYS: [&str; 6] = [
    "path",
    "timeout_ms",
    "memory_mb",
    "instances",
    "allowed_paths",
    "type",
];

/// `(plugin, function, argument)` from `plugins[1].functions[0].arguments[2]`.
fn entry_indexes(key: &str) -> Option<(usize, Option<usize>, Option<usize>)> {
    let index = |part: &str, name: &str| -> Option<usize> {
        part.strip_prefix(name)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    let mut parts = key.split('.');
    let plugin = index(parts.next()?, "plugins")?;
    let function = match parts.next() {
        Some(part) => Some(index(part, "functions")?),
        None => None,
    };
    let argument = match parts.next() {
        Some(part) => Some(index(part, "arguments")?),
        None => None,
    };
    Some((plugin, function, argument))
}

fn looks_like_key_path(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(' ')
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "_[].".contains(c))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", the closest expected field.
fn did_you_mean(message: &str) -> Option<String> {
    let unknown = message.strip_prefix("unknown field `")?.split('`').next()?;
    let expected = message.split_once("expected ")?.1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(3) / 3 + 1)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WASIMANCER, problems};

    #[test]
    fn a_typo_in_a_limit_is_an_error_with_line_and_suggestion() {
        let text = WASIMANCER.replace(
            "    description: roll dice\n",
            "    description: roll dice\n    timeout_sm: 100\n",
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(problem.line, Some(7), "{problem}");
        assert_eq!(problem.key, "plugins[0]");
        assert!(problem.message.contains("unknown field `timeout_sm`"));
        assert!(
            problem.message.contains("did you mean `timeout_ms`?"),
            "{problem}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let problem = &problems("plugins:\n  - name: [unclosed\n")[0];
        assert!(problem.line.is_some(), "{problem}");
    }
}
