//! Line numbers for entries of a block-style YAML file (plugins.yml,
//! resources.yml, prompts.yml).
//!
//! serde_yaml reports positions only for errors it raises while parsing. Checks
//! that span several entries (a duplicate tool name) or happen later (a missing
//! `.wasm`) still have to say where the offending entry is, so this module
//! finds lines by indentation. It understands the block style every
//! plugins.yml in the wild uses; for flow style it finds nothing and the
//! messages simply carry no line.

use std::fmt;

/// One line of the file, reduced to what the locator needs.
#[derive(Debug, Clone)]
struct Line {
    /// Column of the first key on the line (after a `- ` list marker, if any).
    key_indent: usize,
    /// Column of the `-` when the line opens a list item.
    dash_indent: Option<usize>,
    /// The key on the line, if it has one (`name` in `- name: x`).
    key: Option<String>,
}

/// Where the entries of a YAML file start, by 1-based line number.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    lines: Vec<Line>,
}

/// A run of lines `[start, end)` that holds one mapping (a plugin, a function…).
#[derive(Debug, Clone, Copy)]
struct Block {
    start: usize,
    end: usize,
    indent: usize,
}

/// One step of a path into the file: a key of a mapping, or an item of the
/// list under the key before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Item(usize),
}

/// An entry of plugins.yml: the file itself, a plugin, a function of a
/// plugin, or an argument of a function, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    File,
    Plugin(usize),
    Function(usize, usize),
    Argument(usize, usize, usize),
}

impl Entry {
    /// The path of `key` in this entry, such as `plugins[0].timeout_ms`.
    pub fn key_path(self, key: &str) -> String {
        match self {
            Entry::File => key.to_string(),
            entry => format!("{entry}.{key}"),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Entry::File => Ok(()),
            Entry::Plugin(p) => write!(f, "plugins[{p}]"),
            Entry::Function(p, fu) => write!(f, "plugins[{p}].functions[{fu}]"),
            Entry::Argument(p, fu, a) => write!(f, "plugins[{p}].functions[{fu}].arguments[{a}]"),
        }
    }
}

impl SourceMap {
    pub fn new(text: &str) -> Self {
        let lines = text.lines().map(parse_line).collect();
        Self { lines }
    }

    /// Line of what `path` leads to, such as `resources` → `static` → item 2 →
    /// `uri`. A key the entry lacks points at the entry itself.
    pub fn line(&self, path: &[Step]) -> Option<usize> {
        let mut block = Block {
            start: 0,
            end: self.lines.len(),
            indent: 0,
        };
        let mut steps = path.iter().peekable();
        while let Some(step) = steps.next() {
            match (step, steps.peek()) {
                (Step::Key(key), Some(Step::Item(index))) => {
                    block = *self.items(block, key).get(*index)?;
                    steps.next();
                }
                (Step::Key(key), Some(Step::Key(_))) => block = self.mapping(block, key)?,
                (Step::Key(key), None) => {
                    return Some(self.key_in(block, key).unwrap_or(block.start) + 1);
                }
                // An item is always reached through the key of its list.
                (Step::Item(_), _) => return None,
            }
        }
        Some(block.start + 1)
    }

    /// Line of `plugins[plugin]`.
    pub fn plugin(&self, plugin: usize) -> Option<usize> {
        self.entry(Entry::Plugin(plugin))
    }

    /// Line where `entry` starts (the file starts at line 1).
    pub fn entry(&self, entry: Entry) -> Option<usize> {
        self.block(entry).map(|b| b.start + 1)
    }

    /// Line of `key` written in `entry`, if it is there in block style.
    pub fn key(&self, entry: Entry, key: &str) -> Option<usize> {
        let block = self.block(entry)?;
        self.key_in(block, key).map(|line| line + 1)
    }

    /// Line of `key` in `entry`, or of the entry when the key is not written.
    pub fn key_or_entry(&self, entry: Entry, key: &str) -> Option<usize> {
        self.key(entry, key).or_else(|| self.entry(entry))
    }

    fn block(&self, entry: Entry) -> Option<Block> {
        let root = Block {
            start: 0,
            end: self.lines.len(),
            indent: 0,
        };
        let nth =
            |block: Block, key: &str, index: usize| self.items(block, key).get(index).copied();
        match entry {
            Entry::File => Some(root),
            Entry::Plugin(p) => nth(root, "plugins", p),
            Entry::Function(p, f) => nth(self.block(Entry::Plugin(p))?, "functions", f),
            Entry::Argument(p, f, a) => nth(self.block(Entry::Function(p, f))?, "arguments", a),
        }
    }

    /// The mapping under `key` in `block`, as a block of its own.
    fn mapping(&self, block: Block, key: &str) -> Option<Block> {
        let key_line = self.key_in(block, key)?;
        let key_indent = self.lines[key_line].key_indent;
        let mut start = None;
        let mut end = block.end;
        for i in key_line + 1..block.end {
            let line = &self.lines[i];
            if line.key.is_none() && line.dash_indent.is_none() {
                continue;
            }
            if line.key_indent <= key_indent {
                end = i;
                break;
            }
            start.get_or_insert(i);
        }
        let start = start?;
        Some(Block {
            start,
            end,
            indent: self.lines[start].key_indent,
        })
    }

    /// The index of the line holding `key` at the block's own level.
    fn key_in(&self, block: Block, key: &str) -> Option<usize> {
        (block.start..block.end).find(|&i| {
            let line = &self.lines[i];
            line.key_indent == block.indent && line.key.as_deref() == Some(key)
        })
    }

    /// The list items under `key` in `block`, each as a block of its own.
    fn items(&self, block: Block, key: &str) -> Vec<Block> {
        let Some(key_line) = self.key_in(block, key) else {
            return Vec::new();
        };
        let key_indent = self.lines[key_line].key_indent;
        // YAML allows a sequence at the same indentation as its key, so the
        // list lasts until a line that is neither deeper nor a list item.
        let mut starts = Vec::new();
        let mut item_dash = None;
        let mut end = block.end;
        for i in key_line + 1..block.end {
            let line = &self.lines[i];
            if line.key.is_none() && line.dash_indent.is_none() {
                continue; // blank, comment, or continuation of a folded scalar
            }
            let deeper = line.key_indent > key_indent;
            let sibling_item = line.dash_indent == Some(key_indent);
            if !deeper && !sibling_item {
                end = i;
                break;
            }
            if let Some(dash) = line.dash_indent {
                let dash_level = *item_dash.get_or_insert(dash);
                if dash == dash_level {
                    starts.push(i);
                }
            }
        }
        let mut blocks = Vec::with_capacity(starts.len());
        for (n, &start) in starts.iter().enumerate() {
            let stop = starts.get(n + 1).copied().unwrap_or(end);
            blocks.push(Block {
                start,
                end: stop,
                indent: self.lines[start].key_indent,
            });
        }
        blocks
    }
}

fn parse_line(raw: &str) -> Line {
    let indent = raw.len() - raw.trim_start_matches(' ').len();
    let rest = &raw[indent..];
    if rest.is_empty() || rest.starts_with('#') {
        return Line {
            key_indent: indent,
            dash_indent: None,
            key: None,
        };
    }
    let (dash_indent, key_indent, body) = match rest.strip_prefix('-') {
        Some(after) if after.is_empty() || after.starts_with(' ') => {
            let spaces = after.len() - after.trim_start_matches(' ').len();
            (
                Some(indent),
                indent + 1 + spaces,
                after.trim_start_matches(' '),
            )
        }
        _ => (None, indent, rest),
    };
    let key = body.split_once(':').and_then(|(key, after)| {
        let plain = !key.is_empty()
            && !key.contains(['"', '\'', '{', '[', '#'])
            && (after.is_empty() || after.starts_with(' '));
        plain.then(|| key.trim().to_string())
    });
    Line {
        key_indent,
        dash_indent,
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
about: >
  text with: a colon
plugins:
  # the first one
  - name: roll dice
    path: ./roll-dice/roll.wasm
    functions:
      - displayName: rollDice
        function: rollDice
        arguments:
          - name: numFaces
            type: number
          - name: numDice
            type: number
  - name: hello
    path: hello.wasm
    functions:
    - displayName: say hello
      function: say_hello
";

    #[test]
    fn finds_plugins_functions_and_arguments() {
        let map = SourceMap::new(SAMPLE);
        assert_eq!(map.plugin(0), Some(5));
        assert_eq!(map.plugin(1), Some(15));
        assert_eq!(map.plugin(2), None);
        assert_eq!(map.key(Entry::Plugin(0), "path"), Some(6));
        assert_eq!(map.key(Entry::Plugin(1), "path"), Some(16));
        // A key the entry lacks is not found, or points at the entry itself.
        assert_eq!(map.key(Entry::Plugin(1), "version"), None);
        assert_eq!(map.key_or_entry(Entry::Plugin(1), "version"), Some(15));
        assert_eq!(map.entry(Entry::Function(0, 0)), Some(8));
        assert_eq!(map.key(Entry::Function(0, 0), "function"), Some(9));
        assert_eq!(map.entry(Entry::Argument(0, 0, 1)), Some(13));
        assert_eq!(map.key(Entry::Argument(0, 0, 1), "type"), Some(14));
        // A sequence indented like its key.
        assert_eq!(map.entry(Entry::Function(1, 0)), Some(18));
        assert_eq!(map.key(Entry::Function(1, 0), "function"), Some(19));
        // Keys of the file itself.
        assert_eq!(map.key(Entry::File, "plugins"), Some(3));
    }

    #[test]
    fn nested_names_are_not_mistaken_for_the_plugin_name() {
        let map = SourceMap::new(SAMPLE);
        // `name:` of an argument is deeper than the plugin's own keys.
        assert_eq!(map.key(Entry::Plugin(0), "name"), Some(5));
    }

    #[test]
    fn flow_style_yields_no_lines() {
        let map = SourceMap::new("plugins: [{name: a, path: a.wasm, functions: []}]");
        assert_eq!(map.plugin(0), None);
    }

    #[test]
    fn paths_lead_through_nested_mappings_and_lists() {
        let text = "\
about: |
  free text: with a colon
resources:
  static:
    - name: server-info
      uri: config://server
      contents:
        - text: hello
          extra: 1

# a comment at the left margin
  dynamic:
  - name: echo
    uri: echo://{message}
";
        let map = SourceMap::new(text);
        let at = |path: &[Step]| map.line(path);
        use Step::{Item, Key};
        assert_eq!(at(&[Key("resources"), Key("static"), Item(0)]), Some(5));
        assert_eq!(
            at(&[Key("resources"), Key("static"), Item(0), Key("uri")]),
            Some(6)
        );
        assert_eq!(
            at(&[
                Key("resources"),
                Key("static"),
                Item(0),
                Key("contents"),
                Item(0),
                Key("extra")
            ]),
            Some(9)
        );
        assert_eq!(
            at(&[Key("resources"), Key("dynamic"), Item(0), Key("uri")]),
            Some(14)
        );
        assert_eq!(at(&[Key("resources"), Key("dynamic"), Item(1)]), None);
        assert_eq!(at(&[Key("prompts"), Key("predefined"), Item(0)]), None);
    }
}
