//! Log followers: read growing mail logs (`/var/log/mail.log`, Postfix's
//! `maillog_file`) as they are written, across rotations and restarts.
//!
//! Why it is shaped this way:
//! - **Checkpoints** are `device:inode:offset` of the last line whose facts
//!   are committed, kept in the store's settings and written by the store
//!   writer *after* the records they cover. A crash between the two replays a
//!   few lines, and replaying stores nothing twice (every store write is
//!   idempotent), so a restart neither loses nor repeats a message.
//! - **Open messages are flushed with the checkpoint.** A message whose
//!   lines span a checkpoint would otherwise lose the lines before it on a
//!   crash (they lived only in the correlator); instead, each flush emits the
//!   partial view of every open message, and the store joins the partial
//!   views again by source key (`postfix@host:queue-id`).
//! - **Rotation**: by rename (logrotate's default) — the old file is read to
//!   its end before the new one is opened, and for 30 s after its last growth
//!   (the writer keeps writing to it until it reopens its log); by copy-truncate — a file shorter
//!   than the offset, or whose first bytes changed (truncated and written
//!   again between two looks), is read again from the start. A checkpoint whose inode
//!   now belongs to a rotated sibling (`mail.log.1`) is finished there first.
//! - Only complete lines are consumed: a line still being written is left
//!   for the next read.
//! - Polling (a quarter second) rather than inotify: it works on every file
//!   system, including network mounts, and costs nothing measurable.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use mailtrail_ingest::syslog::Dispatcher;
use mailtrail_ingest::{DecodeOptions, VecSink};

use crate::metrics::Metrics;
use crate::writer::StoreWriter;

/// Where a follower stopped: the file's identity and the byte after the last
/// consumed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub device: u64,
    pub inode: u64,
    pub offset: u64,
}

impl Checkpoint {
    pub fn parse(s: &str) -> Option<Checkpoint> {
        let mut parts = s.split(':').map(|p| p.parse::<u64>().ok());
        let checkpoint = Checkpoint {
            device: parts.next()??,
            inode: parts.next()??,
            offset: parts.next()??,
        };
        parts.next().is_none().then_some(checkpoint)
    }

    pub fn format(&self) -> String {
        format!("{}:{}:{}", self.device, self.inode, self.offset)
    }
}

/// The settings key of a followed path's checkpoint.
pub fn checkpoint_key(path: &Path) -> String {
    format!("follow:{}", path.display())
}

/// Settings of one follower.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub path: PathBuf,
    /// How often the file is checked for new lines and rotation.
    pub poll: Duration,
    /// How often what was read is committed (and so becomes searchable).
    pub flush_every: Duration,
    pub max_line_bytes: usize,
}

impl FollowConfig {
    pub fn new(path: PathBuf) -> FollowConfig {
        FollowConfig {
            path,
            poll: Duration::from_millis(250),
            flush_every: Duration::from_secs(1),
            max_line_bytes: 64 * 1024,
        }
    }
}

struct Open {
    file: File,
    device: u64,
    inode: u64,
    /// Offset of the first byte not yet consumed.
    offset: u64,
    /// Bytes read after `offset` that do not end in a newline yet.
    partial: Vec<u8>,
    /// The file's first bytes: an append-only log never changes them.
    head: Vec<u8>,
}

/// How long a file rotated away by rename is still read after its last growth.
const RETIRE_AFTER: Duration = Duration::from_secs(30);

/// Lines read before what was read is committed.
const DRAIN_LINES: usize = 20_000;

/// How many leading bytes identify a file's content across looks.
const HEAD_BYTES: usize = 256;

impl Open {
    fn at(path: &Path, offset: u64) -> std::io::Result<Open> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let offset = if offset > meta.len() { 0 } else { offset };
        file.seek(SeekFrom::Start(offset))?;
        let mut open = Open {
            file,
            device: meta.dev(),
            inode: meta.ino(),
            offset,
            partial: Vec::new(),
            head: Vec::new(),
        };
        open.head = open.read_head()?;
        Ok(open)
    }

    fn read_head(&self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut head = vec![0u8; HEAD_BYTES];
        let n = self.file.read_at(&mut head, 0)?;
        head.truncate(n);
        Ok(head)
    }

    /// Whether the file was truncated (and perhaps written again) since it
    /// was opened: shorter than what was read, or different first bytes.
    fn truncated(&mut self, len: u64) -> bool {
        if len < self.offset {
            return true;
        }
        match self.read_head() {
            Ok(now) if now.len() >= self.head.len() && now.starts_with(&self.head) => {
                if now.len() > self.head.len() {
                    self.head = now;
                }
                false
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            device: self.device,
            inode: self.inode,
            offset: self.offset,
        }
    }
}

struct Follower {
    config: FollowConfig,
    dispatcher: Dispatcher,
    pending: VecSink,
    writer: StoreWriter,
    source: String,
    line_number: u64,
    metrics: Arc<Metrics>,
}

impl Follower {
    /// Read the complete lines now available, at most [`DRAIN_LINES`] of
    /// them (a cold start on a large log is committed in slices, not held
    /// whole); returns whether any was read.
    fn drain(&mut self, open: &mut Open) -> std::io::Result<bool> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut any = false;
        let mut lines = 0usize;
        loop {
            if lines >= DRAIN_LINES {
                return Ok(any);
            }
            let n = open.file.read(&mut buf)?;
            if n == 0 {
                return Ok(any);
            }
            any = true;
            open.partial.extend_from_slice(&buf[..n]);
            let mut consumed = 0;
            while let Some(end) = open.partial[consumed..].iter().position(|&b| b == b'\n') {
                let line = &open.partial[consumed..consumed + end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.line_number += 1;
                Metrics::add(&self.metrics.follow_lines, 1);
                let line = &line[..line.len().min(self.config.max_line_bytes)];
                let _ =
                    self.dispatcher
                        .line(line, &self.source, self.line_number, &mut self.pending);
                consumed += end + 1;
                lines += 1;
            }
            open.offset += consumed as u64;
            open.partial.drain(..consumed);
            if open.partial.len() > self.config.max_line_bytes {
                // A "line" longer than any log line: consume it as one.
                open.offset += open.partial.len() as u64;
                open.partial.clear();
            }
        }
    }

    /// Commit what was read, open messages included, with the checkpoint.
    /// A failing store is retried here, and reading waits meanwhile: the
    /// records exist nowhere else.
    fn flush(&mut self, checkpoint: Checkpoint, stop: &AtomicBool) {
        let _ = self.dispatcher.finish(&mut self.pending);
        let records = std::mem::take(&mut self.pending.records);
        let rejects = std::mem::take(&mut self.pending.rejects);
        let settings = vec![(checkpoint_key(&self.config.path), checkpoint.format())];
        self.writer
            .submit_until_stored(records, rejects, settings, &|| stop.load(Ordering::Relaxed));
    }
}

/// A file in the same folder with the given identity (a rotated log), if any.
fn find_by_identity(path: &Path, device: u64, inode: u64) -> Option<PathBuf> {
    let same = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.dev() == device && m.ino() == inode);
    if same(path) {
        return Some(path.to_path_buf());
    }
    let dir = path.parent()?;
    let name = path.file_name()?.to_string_lossy().to_string();
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&name))
        })
        .find(|p| same(p))
}

/// Follow one file until `stop` is set; commits on the way and at the end.
pub fn follow(
    config: FollowConfig,
    checkpoint: Option<Checkpoint>,
    writer: StoreWriter,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    decode: DecodeOptions,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let opts = DecodeOptions {
            reference_time: Utc::now(),
            ..decode
        };
        let source = config.path.display().to_string();
        let mut follower = Follower {
            dispatcher: Dispatcher::new(&opts),
            pending: VecSink::default(),
            writer,
            source,
            line_number: 0,
            metrics,
            config,
        };
        let path = follower.config.path.clone();
        // Finish a file rotated away while we were down.
        if let Some(cp) = checkpoint {
            if let Some(rotated) = find_by_identity(&path, cp.device, cp.inode) {
                if rotated != path {
                    if let Ok(mut old) = Open::at(&rotated, cp.offset) {
                        while follower.drain(&mut old).unwrap_or(false) {
                            follower.flush(old.checkpoint(), &stop);
                        }
                        follower.flush(old.checkpoint(), &stop);
                    }
                }
            }
        }
        let start = checkpoint
            .filter(|cp| find_by_identity(&path, cp.device, cp.inode).as_deref() == Some(&path))
            .map_or(0, |cp| cp.offset);
        let mut open: Option<Open> = Open::at(&path, start).ok();
        let mut last_flush = Instant::now();
        let mut dirty = false;
        let mut rotated = false;
        // A file rotated away by rename, read until it has been quiet a while.
        let mut retiring: Option<(Open, Instant)> = None;
        while !stop.load(Ordering::Relaxed) {
            match open.as_mut() {
                None => open = Open::at(&path, 0).ok(),
                Some(current) => {
                    // Truncation first: reading at the old offset of a file
                    // that started again would begin mid-line.
                    let truncated = std::fs::metadata(&path).is_ok_and(|meta| {
                        meta.dev() == current.device
                            && meta.ino() == current.inode
                            && current.truncated(meta.len())
                    });
                    if truncated {
                        follower.flush(current.checkpoint(), &stop);
                        open = Open::at(&path, 0).ok();
                        dirty = false;
                        last_flush = Instant::now();
                        continue;
                    }
                    dirty |= follower.drain(current).unwrap_or(false);
                    if follower.pending.records.len() >= DRAIN_LINES / 4 {
                        follower.flush(current.checkpoint(), &stop);
                        dirty = false;
                        last_flush = Instant::now();
                    }
                    match std::fs::metadata(&path) {
                        Ok(meta) if meta.dev() != current.device || meta.ino() != current.inode => {
                            // Renamed away: commit what the old file had, then
                            // start on the new one — and keep reading the old
                            // one for a while, since the writer may not have
                            // reopened its log yet.
                            while follower.drain(current).unwrap_or(false) {
                                follower.flush(current.checkpoint(), &stop);
                            }
                            follower.flush(current.checkpoint(), &stop);
                            rotated = true;
                        }
                        _ => {}
                    }
                }
            }
            if rotated {
                rotated = false;
                retiring = open.take().map(|old| (old, Instant::now()));
                open = Open::at(&path, 0).ok();
                dirty = false;
                last_flush = Instant::now();
            }
            if let Some((old, quiet_since)) = retiring.as_mut() {
                if follower.drain(old).unwrap_or(false) {
                    *quiet_since = Instant::now();
                    dirty = true;
                }
                if quiet_since.elapsed() >= RETIRE_AFTER {
                    retiring = None;
                }
            }
            if dirty && last_flush.elapsed() >= follower.config.flush_every {
                if let Some(current) = open.as_ref() {
                    follower.flush(current.checkpoint(), &stop);
                }
                dirty = false;
                last_flush = Instant::now();
            }
            thread::sleep(follower.config.poll);
        }
        if let Some((old, _)) = retiring.as_mut() {
            let _ = follower.drain(old);
        }
        if let Some(current) = open.as_mut() {
            while follower.drain(current).unwrap_or(false) {
                follower.flush(current.checkpoint(), &stop);
            }
            follower.flush(current.checkpoint(), &stop);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_reject_garbage() {
        let cp = Checkpoint {
            device: 2049,
            inode: 123_456,
            offset: 987,
        };
        assert_eq!(Checkpoint::parse(&cp.format()), Some(cp));
        assert_eq!(Checkpoint::parse("1:2"), None);
        assert_eq!(Checkpoint::parse("1:2:3:4"), None);
        assert_eq!(Checkpoint::parse("a:b:c"), None);
    }
}
