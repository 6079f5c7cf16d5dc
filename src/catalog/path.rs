//! Paths below the plugins folder, as plugins.yml and the admin API write them.

use std::path::{Component, Path, PathBuf};

/// `path` as a path below the plugins folder, or why it is not one.
///
/// WASImancer joins `path` onto its plugins folder as a string, so a leading
/// `/` means "at the top of the plugins folder", not the filesystem root.
pub fn normalize_relative(path: &str) -> Result<PathBuf, String> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err("the path is empty".into());
    }
    let mut clean = PathBuf::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "path `{path}` uses `..`; paths must stay inside the plugins folder"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "path `{path}` is absolute; write it relative to the plugins folder"
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("path `{path}` names the plugins folder itself"));
    }
    Ok(clean)
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
        // WASImancer's leading `/` is relative to the plugins folder.
        assert_eq!(
            normalize_relative("/hello/x.wasm").unwrap(),
            Path::new("hello/x.wasm")
        );
    }
}
