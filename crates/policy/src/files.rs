//! Rule files on disk: the paths of `[policy] rules` (files, or folders of
//! `*.toml` files) read and compiled into a [`Policy`] — the one loader
//! `mailtrail serve`, `mailtrail rules run` and the console's rules page
//! share, so all three see the same rules and the same errors.

use std::path::{Path, PathBuf};

use crate::{Policy, PolicyError};

/// Why rule files did not load: a file or folder that cannot be read, or
/// rules that do not compile (with file, line and reason).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(#[from] PolicyError),
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Rule files as given: files, or folders of `*.toml` files in name order.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_error(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Read and compile the rule files of `paths` (see [`rule_files`]); no
/// files at all is an empty policy.
pub fn load_rule_paths(paths: &[PathBuf]) -> Result<Policy, LoadError> {
    let files = rule_files(paths)?;
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| (f.display().to_string(), t))
                .map_err(read_error(f))
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Ok(Policy::compile(&refs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_read_in_name_order_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let rule = |id: &str| {
            format!(
                "[[rule]]\nid = \"{id}\"\n[[rule.condition]]\ntype = \"keywords\"\nwords = [\"x\"]\n\
                 [[rule.action]]\ntype = \"alert\"\nseverity = \"low\"\n"
            )
        };
        std::fs::write(dir.path().join("b.toml"), rule("second")).unwrap();
        std::fs::write(dir.path().join("a.toml"), rule("first")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a rule file").unwrap();
        let policy = load_rule_paths(&[dir.path().to_path_buf()]).unwrap();
        let ids: Vec<&str> = policy.rules.iter().map(|r| r.rule.id.as_str()).collect();
        assert_eq!(ids, ["first", "second"]);

        std::fs::write(dir.path().join("c.toml"), "[[rule]]\nid = 5\n").unwrap();
        match load_rule_paths(&[dir.path().to_path_buf()]) {
            Err(LoadError::Policy(PolicyError::Syntax {
                source_name, line, ..
            })) => {
                assert!(source_name.ends_with("c.toml"), "{source_name}");
                assert_eq!(line, 2);
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            load_rule_paths(&[missing]),
            Err(LoadError::Read { .. })
        ));
        assert!(load_rule_paths(&[]).unwrap().rules.is_empty());
    }
}
