//! What is wrong with a plugins.yml, said with its line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned};
use serde_path_to_error::Segment;
use serde_yaml::{Mapping, Value};

use super::source_map::Entry;
use super::{ArgumentSpec, Catalog, FunctionSpec, PluginSpec, SourceMap};

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

pub(super) struct ProblemList<'a>(pub(super) &'a [Problem]);

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

/// Read `text` (the content of `file`) into a catalog, or say what is wrong
/// with its shape: the YAML itself, then every unknown key, then the first
/// value of the wrong type or out of range.
///
/// Nothing here reads serde_yaml's wording: lines come from its location API
/// and from `source`, keys from the structure (serde's own list of the keys
/// each entry accepts, and the path serde_path_to_error tracks).
pub(super) fn read(file: &Path, text: &str, source: &SourceMap) -> Result<Catalog, Vec<Problem>> {
    let problem = |line, key, message| Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    };
    // YAML syntax: serde_yaml's own words (they carry the column and what the
    // parser was reading), with the line from its location.
    let value: Value = serde_yaml::from_str(text).map_err(|error| {
        vec![problem(
            line_of(text, error.location()),
            String::new(),
            error.to_string(),
        )]
    })?;
    let unknown: Vec<Problem> = unknown_keys(&value)
        .into_iter()
        .map(|(entry, key, valid)| {
            let line = source.key_or_entry(entry, &key);
            let message = match closest(&key, valid) {
                Some(hint) => format!("unknown key `{key}` (did you mean `{hint}`?)"),
                None => format!(
                    "unknown key `{key}` (valid keys here: {})",
                    valid.join(", ")
                ),
            };
            problem(line, entry.key_path(&key), message)
        })
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    // Values: read from the YAML tree, whose errors carry no position, so
    // their text is only the message; the path says where.
    serde_path_to_error::deserialize(value).map_err(|error| {
        let (entry, rest) = locate(error.path());
        let line = rest
            .first()
            .and_then(|field| match field {
                Segment::Map { key } => source.key(entry, key),
                _ => None,
            })
            .or_else(|| parser_line(text))
            .or_else(|| source.entry(entry));
        let mut key = entry.to_string();
        for segment in rest {
            match segment {
                Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                Segment::Map { key: name } if key.is_empty() => key.push_str(name),
                Segment::Map { key: name } => key.push_str(&format!(".{name}")),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        vec![problem(line, key, error.inner().to_string())]
    })
}

/// The line serde_yaml gives the first error when it reads `text` directly:
/// for a file not in block style, where the source map finds no keys.
fn parser_line(text: &str) -> Option<usize> {
    line_of(
        text,
        serde_yaml::from_str::<Catalog>(text).err()?.location(),
    )
}

/// The line of a parser location as an editor counts lines: by line feeds.
/// (YAML also breaks lines at a lone CR and at U+0085, U+2028 and U+2029, so
/// serde_yaml's own line number can be further down.)
pub(super) fn line_of(text: &str, location: Option<serde_yaml::Location>) -> Option<usize> {
    let location = location?;
    match text.get(..location.index()) {
        Some(before) => Some(before.matches('\n').count() + 1),
        None => Some(location.line()),
    }
}

/// The entry a path leads into (`plugins[1].functions[0]`), and the rest of
/// the path inside it.
fn locate(path: &serde_path_to_error::Path) -> (Entry, Vec<&Segment>) {
    let segments: Vec<&Segment> = path.iter().collect();
    let mut entry = Entry::File;
    let mut rest = &segments[..];
    while let [Segment::Map { key }, Segment::Seq { index }, tail @ ..] = rest {
        entry = match (entry, key.as_str()) {
            (Entry::File, "plugins") => Entry::Plugin(*index),
            (Entry::Plugin(p), "functions") => Entry::Function(p, *index),
            (Entry::Function(p, f), "arguments") => Entry::Argument(p, f, *index),
            _ => break,
        };
        rest = tail;
    }
    (entry, rest.to_vec())
}

/// Every key of an entry that its type does not accept: where, which, and
/// the keys it does accept. serde would stop at the first; an operator
/// fixing a file wants them all.
fn unknown_keys(value: &Value) -> Vec<(Entry, String, &'static [&'static str])> {
    let mut found = Vec::new();
    let mut check = |entry: Entry, map: &Mapping, valid: &'static [&'static str]| {
        for key in map.keys() {
            // A key that is not text is a type error, reported by serde.
            if let Some(key) = key.as_str()
                && !valid.contains(&key)
            {
                found.push((entry, key.to_string(), valid));
            }
        }
    };
    let Some(top) = value.as_mapping() else {
        return found;
    };
    check(Entry::File, top, keys_of::<Catalog>());
    for (p, plugin) in items(top, "plugins") {
        check(Entry::Plugin(p), plugin, keys_of::<PluginSpec>());
        for (f, function) in items(plugin, "functions") {
            check(Entry::Function(p, f), function, keys_of::<FunctionSpec>());
            for (a, argument) in items(function, "arguments") {
                check(
                    Entry::Argument(p, f, a),
                    argument,
                    keys_of::<ArgumentSpec>(),
                );
            }
        }
    }
    found
}

/// The mappings in the list under `key`, numbered as in the list.
fn items<'a>(map: &'a Mapping, key: &str) -> impl Iterator<Item = (usize, &'a Mapping)> {
    map.get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, item)| Some((i, item.as_mapping()?)))
}

/// The keys serde accepts for the struct `T`, as its derived code lists them
/// (with their renames), so the list can never drift from the types.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    /// A deserializer that only records the keys a struct asks for.
    struct Keys<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Stop;

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("keys recorded")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> de::Deserializer<'de> for Keys<'_> {
        type Error = Stop;

        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut keys: &'static [&'static str] = &[];
    // The error is the point: the struct stops as soon as it has asked.
    let _ = T::deserialize(Keys(&mut keys));
    keys
}

/// The valid key closest to `unknown`, if it is close enough to be a typo.
fn closest(unknown: &str, valid: &[&'static str]) -> Option<&'static str> {
    valid
        .iter()
        .map(|candidate| (edit_distance(unknown, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(3) / 3 + 1)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
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
    fn every_unknown_key_is_reported_at_its_line_with_the_closest_valid_one() {
        let text = WASIMANCER
            .replace(
                "    description: roll dice\n",
                "    description: roll dice\n    timeout_sm: 100\n    memroy_mb: 8\n",
            )
            .replace(
                "            description: number of dice to roll\n",
                "            description: number of dice to roll\n            requird: false\n",
            );
        let problems = problems(&text);
        let found: Vec<(Option<usize>, &str)> =
            problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(7), "plugins[0].timeout_sm"),
                (Some(8), "plugins[0].memroy_mb"),
                (Some(19), "plugins[0].functions[0].arguments[1].requird"),
            ]
        );
        for (problem, hint) in problems.iter().zip(["timeout_ms", "memory_mb", "required"]) {
            assert!(problem.message.contains("unknown key"), "{problem}");
            assert!(
                problem.message.contains(&format!("did you mean `{hint}`?")),
                "{problem}"
            );
        }
    }

    #[test]
    fn an_unknown_key_like_no_valid_one_lists_the_valid_keys() {
        let problem = &problems(&format!("colour: red\n{WASIMANCER}"))[0];
        assert_eq!((problem.line, problem.key.as_str()), (Some(1), "colour"));
        assert!(
            problem
                .message
                .ends_with("(valid keys here: about, plugins)"),
            "{problem}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_reported_at_its_key() {
        for (insert, key) in [
            ("    version: [1, 2]\n", "plugins[0].version"),
            ("    wasi: maybe\n", "plugins[0].wasi"),
            ("    config: [1]\n", "plugins[0].config"),
        ] {
            let text = WASIMANCER.replace("    version: 1.0.0\n", "").replace(
                "    description: roll dice\n",
                &format!("    description: roll dice\n{insert}"),
            );
            let problem = &problems(&text)[0];
            assert_eq!(
                (problem.line, problem.key.as_str()),
                (Some(6), key),
                "{problem}"
            );
            assert!(!problem.message.contains(" at line "), "{problem}");
            assert!(problem.message.starts_with("invalid type"), "{problem}");
        }
    }

    #[test]
    fn a_missing_key_is_reported_at_its_entry() {
        let text = WASIMANCER.replace("        function: rollDice\n", "");
        let problem = &problems(&text)[0];
        assert_eq!(
            (problem.line, problem.key.as_str()),
            (Some(8), "plugins[0].functions[0]"),
            "{problem}"
        );
        assert!(problem.message.contains("`function`"), "{problem}");
    }

    #[test]
    fn flow_style_still_gets_lines_from_the_parser() {
        let problem =
            &problems("plugins:\n  - {name: a, path: a.wasm,\n     functions: [], wasi: maybe}\n")
                [0];
        assert_eq!(problem.key, "plugins[0].wasi", "{problem}");
        assert_eq!(problem.line, Some(3), "{problem}");
    }

    /// YAML also breaks lines at a lone CR and at U+2028; editors and the
    /// source map count line feeds only, and so must problems.
    #[test]
    fn lines_are_counted_as_editors_count_them() {
        // The error is found at the end, after the last line feed.
        for (text, end) in [
            ("about: \"a\u{2028}b\"\nplugins: [unclosed\n", 3),
            ("about: a\rplugins: [unclosed\n", 2),
        ] {
            let problem = &problems(text)[0];
            assert_eq!(problem.line, Some(end), "{text:?}: {problem}");
        }
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let problem = &problems("plugins:\n  - name: [unclosed\n")[0];
        assert!(problem.line.is_some(), "{problem}");
    }
}
