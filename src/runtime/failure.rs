//! What can go wrong loading a plugin or calling one, in words a user (or a
//! model) can act on.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use crate::catalog::PathError;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("module file {} does not exist (paths are relative to the plugins folder)", path.display())]
    ModuleMissing { path: PathBuf },
    #[error("cannot read module file {}: {source}", path.display())]
    ModuleUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    NotAModule { path: PathBuf, reason: String },
    #[error(
        "{} is not exported by {}; exports are: {}",
        quoted_list(missing),
        file,
        list_or_none(exports)
    )]
    MissingFunctions {
        file: String,
        missing: Vec<String>,
        exports: Vec<String>,
    },
    #[error(
        "{file} imports WASI but plugins.yml sets `wasi: false`; remove that line or rebuild the plugin without WASI"
    )]
    NeedsWasi { file: String },
    #[error("`allowed_paths` needs WASI; remove `wasi: false` or the paths")]
    PathsNeedWasi,
    #[error("allowed path {} does not exist or is not a folder", path.display())]
    AllowedPathMissing { path: PathBuf },
    #[error("allowed path: {0}")]
    AllowedPath(PathError),
    #[error("module file: {0}")]
    ModulePath(PathError),
    #[error("extism could not compile {file}: {reason}")]
    Compile { file: String, reason: String },
}

fn quoted_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        1 => format!("function {}", quoted[0]),
        _ => format!("functions {}", quoted.join(", ")),
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// The kinds of failed calls, so that callers and the console can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No tool of that name.
    UnknownTool,
    /// No resource at that URI.
    UnknownResource,
    /// No prompt of that name.
    UnknownPrompt,
    /// The arguments do not fit the declared schema (or a prompt's
    /// arguments, or the variables in a resource URI, do not fit theirs).
    InvalidArguments,
    /// Every instance stayed busy for the whole queue timeout.
    Busy,
    /// The call ran past the plugin's `timeout_ms`.
    Timeout,
    /// The call tried to grow memory past `memory_mb`.
    OutOfMemory,
    /// The plugin trapped (a panic, `unreachable`, a bad memory access).
    Trap,
    /// The plugin returned an error of its own.
    PluginError,
    /// The output is larger than the server hands back.
    OutputTooLarge,
    /// The output is not what plugins.yml declares (`output: json` or
    /// `content`, `outputSchema`).
    InvalidOutput,
    /// The client cancelled the call (or went away) while it ran.
    Cancelled,
    /// Anything else from the runtime (instantiation failed, WASI exit…).
    Runtime,
}

impl FailureKind {
    /// Every kind, for whoever must name them all (metric labels).
    pub const ALL: [FailureKind; 13] = [
        FailureKind::UnknownTool,
        FailureKind::UnknownResource,
        FailureKind::UnknownPrompt,
        FailureKind::InvalidArguments,
        FailureKind::Busy,
        FailureKind::Timeout,
        FailureKind::OutOfMemory,
        FailureKind::Trap,
        FailureKind::PluginError,
        FailureKind::OutputTooLarge,
        FailureKind::InvalidOutput,
        FailureKind::Cancelled,
        FailureKind::Runtime,
    ];

    /// The kind as one word, as in JSON: `unknown_tool`, `timeout`…
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::UnknownTool => "unknown_tool",
            FailureKind::UnknownResource => "unknown_resource",
            FailureKind::UnknownPrompt => "unknown_prompt",
            FailureKind::InvalidArguments => "invalid_arguments",
            FailureKind::Busy => "busy",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::Trap => "trap",
            FailureKind::PluginError => "plugin_error",
            FailureKind::OutputTooLarge => "output_too_large",
            FailureKind::InvalidOutput => "invalid_output",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Runtime => "runtime",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::UnknownTool => "unknown tool",
            FailureKind::UnknownResource => "unknown resource",
            FailureKind::UnknownPrompt => "unknown prompt",
            FailureKind::InvalidArguments => "invalid arguments",
            FailureKind::Busy => "busy",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out of memory",
            FailureKind::Trap => "trap",
            FailureKind::PluginError => "plugin error",
            FailureKind::OutputTooLarge => "output too large",
            FailureKind::InvalidOutput => "invalid output",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Runtime => "runtime error",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: its kind and a message that says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl CallFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The same failure with its message cut to `limit` bytes (see [`clip`]).
    pub fn clipped(self, limit: usize) -> Self {
        Self {
            kind: self.kind,
            message: clip(self.message, limit),
        }
    }
}

/// `text` cut to at most `limit` bytes on a character boundary, followed by
/// how long it was, when it is longer. A plugin's error message is its own
/// text, as long as it likes: every copy the server keeps or hands on is cut.
/// An owned text is cut where it lies; of a borrowed one, only what is kept
/// is copied.
pub fn clip<'a>(text: impl Into<Cow<'a, str>>, limit: usize) -> String {
    let text = text.into();
    if text.len() <= limit {
        return text.into_owned();
    }
    let total = text.len();
    let end = text.floor_char_boundary(limit);
    let mut kept = match text {
        Cow::Owned(mut owned) => {
            owned.truncate(end);
            owned
        }
        Cow::Borrowed(borrowed) => borrowed[..end].to_owned(),
    };
    kept.push_str(&format!("\n… ({total} bytes in all)"));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_cuts_on_a_character_boundary_and_says_how_long_the_text_was() {
        assert_eq!(clip("short", 5), "short");
        // `é` is two bytes: a cut at 2 bytes would split it.
        assert_eq!(clip("aéz", 2), "a\n… (4 bytes in all)");
        let failure = CallFailure::new(FailureKind::PluginError, "x".repeat(100)).clipped(10);
        assert_eq!(failure.kind, FailureKind::PluginError);
        assert_eq!(
            failure.message,
            format!("{}\n… (100 bytes in all)", "x".repeat(10))
        );
    }

    #[test]
    fn codes_are_the_json_names() {
        for kind in FailureKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.code().into())
            );
        }
    }
}
