//! Maildir trees: one message per file under `cur/` and `new/`.
//!
//! Why it is shaped this way: a Maildir is a directory of folders, each with
//! `cur/`, `new/` and `tmp/`. Maildir++ keeps sub-folders as dot-directories
//! beside them (`.Sent`, `.Archive.2024`); other servers nest plain
//! directories. We walk every directory below the root that has `cur/` or
//! `new/`, never follow symbolic links (a link loop must not hang an
//! import), skip `tmp/` (files there are still being written), and sort
//! folders and file names so that two imports of the same tree see the same
//! order. Flags in file names (`:2,S`) are ignored. A file that cannot be read
//! is a [`Reject`](mailtrail_model::Reject) naming its path; the walk goes on.

use std::fs;
use std::path::{Path, PathBuf};

use mailtrail_model::{Position, Reject};

use crate::mime::{deliver, read_capped, ImportSummary};
use crate::{DecodeOptions, IngestError, Sink};

/// Folders nested deeper than this below the root are not walked.
const MAX_FOLDER_DEPTH: usize = 32;

/// Whether `dir` is a Maildir folder (has `cur/` and `new/`, or `cur/` and `tmp/`).
pub fn is_maildir(dir: &Path) -> bool {
    let has = |name: &str| is_real_dir(&dir.join(name));
    has("cur") && (has("new") || has("tmp"))
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Import every message of the Maildir tree at `dir` (sub-folders included).
pub fn import_maildir(
    dir: &Path,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let mut summary = ImportSummary::default();
    let mut folders = Vec::new();
    collect_folders(dir, 0, &mut folders, sink, &mut summary)?;
    let mut bytes_done: u64 = 0;
    for folder in folders {
        for sub in ["cur", "new"] {
            let sub_dir = folder.join(sub);
            if !is_real_dir(&sub_dir) {
                continue;
            }
            let mut files = match list_dir(&sub_dir) {
                Ok(entries) => entries,
                Err(e) => {
                    reject_path(&sub_dir, "maildir.read", &e.to_string(), sink, &mut summary)?;
                    continue;
                }
            };
            files.sort();
            for path in files {
                let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !is_file || hidden {
                    continue;
                }
                let source = path.display().to_string();
                let read =
                    fs::File::open(&path).and_then(|f| read_capped(f, opts.max_message_bytes));
                match read {
                    Ok(capped) => {
                        bytes_done += capped.bytes_read;
                        deliver(capped, &source, 0, opts, sink, &mut summary)?;
                    }
                    Err(e) => {
                        reject_path(&path, "maildir.read", &e.to_string(), sink, &mut summary)?
                    }
                }
                sink.progress(bytes_done);
            }
        }
    }
    Ok(summary)
}

/// Folders below `dir` (itself first) that hold mail, sorted by path.
fn collect_folders(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    sink: &mut dyn Sink,
    summary: &mut ImportSummary,
) -> Result<(), IngestError> {
    if is_real_dir(&dir.join("cur")) || is_real_dir(&dir.join("new")) {
        out.push(dir.to_path_buf());
    }
    if depth >= MAX_FOLDER_DEPTH {
        return Ok(());
    }
    let mut children = match list_dir(dir) {
        Ok(c) => c,
        Err(e) => {
            if depth == 0 {
                return Err(IngestError::Io {
                    path: dir.display().to_string(),
                    source: e,
                });
            }
            return reject_path(dir, "maildir.read", &e.to_string(), sink, summary);
        }
    };
    children.sort();
    for child in children {
        let name = child
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if matches!(name.as_str(), "cur" | "new" | "tmp") || !is_real_dir(&child) {
            continue;
        }
        collect_folders(&child, depth + 1, out, sink, summary)?;
    }
    Ok(())
}

fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect()
}

fn reject_path(
    path: &Path,
    code: &str,
    reason: &str,
    sink: &mut dyn Sink,
    summary: &mut ImportSummary,
) -> Result<(), IngestError> {
    sink.reject(Reject {
        source: path.display().to_string(),
        position: Position::Offset(0),
        code: code.to_string(),
        reason: reason.to_string(),
        input: Vec::new(),
    })?;
    summary.rejected += 1;
    Ok(())
}
