//! Paths below the plugins folder: module paths and allowed folders in
//! plugins.yml, and where the admin API puts uploads. Every such path goes
//! through [`RelativePath`]: checked once as text when it is read, and
//! resolved against the filesystem (links followed) before anything is read,
//! written or deleted through it.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

/// A path below the plugins folder: relative, without `..`, naming
/// something inside the folder rather than the folder itself.
///
/// WASImancer joins `path` onto its plugins folder as a string, so a leading
/// `/` means "at the top of the plugins folder", not the filesystem root;
/// `./` and `/` prefixes are accepted and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelativePath(PathBuf);

/// Why a path cannot be used below the plugins folder.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("path `{0}` uses `..`; paths must stay inside the plugins folder")]
    Parent(String),
    #[error("path `{0}` is absolute; write it relative to the plugins folder")]
    Absolute(String),
    #[error("path `{0}` names the plugins folder itself")]
    Root(String),
    #[error(
        "{} leads outside the plugins folder (through a symbolic link); choose a path that stays inside it",
        path.display()
    )]
    Outside { path: PathBuf },
    #[error("cannot look at {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl RelativePath {
    /// `text` as a path below the plugins folder, or why it is not one.
    pub fn new(text: &str) -> Result<Self, PathError> {
        let trimmed = text.trim_start_matches('/');
        if trimmed.is_empty() {
            return Err(PathError::Empty);
        }
        let mut clean = PathBuf::new();
        for component in Path::new(trimmed).components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => return Err(PathError::Parent(text.to_string())),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(PathError::Absolute(text.to_string()));
                }
            }
        }
        if clean.as_os_str().is_empty() {
            return Err(PathError::Root(text.to_string()));
        }
        Ok(Self(clean))
    }

    /// The path, without WASImancer's leading `/` or `./`.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The last part of the path (the file's name).
    pub fn file_name(&self) -> &std::ffi::OsStr {
        // A RelativePath has at least one normal component.
        self.0.file_name().unwrap_or_default()
    }

    /// What follows the folder `prefix` in this path, if anything does.
    pub fn strip_prefix(&self, prefix: &Path) -> Option<Self> {
        let rest = self.0.strip_prefix(prefix).ok()?;
        (!rest.as_os_str().is_empty()).then(|| Self(rest.to_path_buf()))
    }

    /// This path's file name in `folder` (`None`: at the top).
    pub fn file_in(&self, folder: Option<&RelativePath>) -> Self {
        let name = Path::new(self.file_name());
        Self(folder.map_or_else(|| name.to_path_buf(), |folder| folder.0.join(name)))
    }

    /// This path inside `root`, as text joined, without looking at the disk.
    pub fn in_folder(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// This path inside `root`, checked on the disk to stay there with
    /// symbolic links followed: the deepest part of it that exists must
    /// resolve inside `root`. What does not exist yet (a file about to be
    /// written, the folders to create for it) will then be created inside.
    /// Blocking: it asks the filesystem.
    pub fn resolve(&self, root: &Path) -> Result<PathBuf, PathError> {
        let real_root = std::fs::canonicalize(root).map_err(|source| PathError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let full = self.in_folder(root);
        for candidate in full.ancestors() {
            match std::fs::canonicalize(candidate) {
                Ok(real) if real.starts_with(&real_root) => return Ok(full),
                Ok(_) => break,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(PathError::Io {
                        path: candidate.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Err(PathError::Outside { path: full })
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WASIMANCER, problems};
    use super::*;

    #[test]
    fn paths_may_not_leave_the_plugins_folder() {
        for bad in ["../etc/passwd.wasm", "a/../../b.wasm", "/.."] {
            let text = WASIMANCER.replace(
                "./roll-dice/wasimancer-plugin-roll-dice.wasm",
                &format!("\"{bad}\""),
            );
            let problem = &problems(&text)[0];
            assert_eq!(problem.line, Some(4), "{bad}: {problem}");
            assert!(problem.message.contains("plugins folder"), "{problem}");
        }
    }

    #[test]
    fn leading_slashes_and_dots_mean_the_plugins_folder() {
        for written in ["/hello/x.wasm", "./hello/x.wasm", "hello//./x.wasm"] {
            let path = RelativePath::new(written).unwrap();
            assert_eq!(path.as_path(), Path::new("hello/x.wasm"), "{written}");
        }
        for bad in ["", "/", "./", "..", "a/../b", "/a/.."] {
            assert!(RelativePath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolving_follows_links_and_refuses_what_leaves_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("inside")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("inside"), root.path().join("alias")).unwrap();
        let resolve = |text: &str| RelativePath::new(text).unwrap().resolve(root.path());
        // What does not exist yet resolves through its deepest existing folder.
        assert_eq!(
            resolve("inside/new/x.wasm").unwrap(),
            root.path().join("inside/new/x.wasm")
        );
        assert!(resolve("alias/x.wasm").is_ok(), "a link that stays inside");
        for escaping in ["link", "link/x.wasm", "link/deeper/x.wasm"] {
            let error = resolve(escaping).unwrap_err();
            assert!(
                matches!(error, PathError::Outside { .. }),
                "{escaping}: {error}"
            );
        }
    }
}
