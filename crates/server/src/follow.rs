//! Log followers: read growing mail logs (`/var/log/mail.log`, Postfix's
//! `maillog_file`) as they are written, across rotations and restarts.
//!
//! Why it is shaped this way:
//! - **Checkpoints** are `device:inode:offset` of the last line whose facts
//!   are committed, kept in the store's settings and written by the store
//!   writer *after* the records they cover. A crash between the two replays a
//!   few lines, and replaying stores nothing twice (every store write is
//!   idempotent), so a restart neither loses nor repeats a message. A first
//!   start saves one before it reads anything: a restart without any
//!   checkpoint begins afresh at the current file, which after a rotation
//!   is no longer the file the crashed follower was reading.
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
//! - **Folders of rolling files** (Exchange's `MSGTRK*.LOG`: a new file per
//!   hour or size, never renamed) are followed by a pattern with `*` and `?`
//!   in the file name. Every matching file gets its own follower and
//!   checkpoint; new files are picked up within seconds; a follower ends once
//!   its file has been quiet for a while and a newer file matches, so that a
//!   folder of thirty days of logs does not keep thirty days of threads.
//! - The line format is chosen per file ([`decoder_for`]): syslog lines go to
//!   the same dispatcher as `mailtrail import`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use mailtrail_ingest::detect::detect;
use mailtrail_ingest::msgtrk::MsgtrkDecoder;
use mailtrail_ingest::syslog::Dispatcher;
use mailtrail_ingest::{DecodeOptions, Format, Sink, SinkError, VecSink};

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

/// A follower's saved position: every file it was reading, and when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FollowState {
    pub files: Vec<Checkpoint>,
    /// Seconds since the Unix epoch when this was saved; `None` for a
    /// checkpoint saved by an older mailtrail (no unknown sibling is read then).
    pub saved_at: Option<i64>,
}

impl FollowState {
    /// `dev:ino:off[,dev:ino:off]@secs`, or the older single `dev:ino:off`.
    pub fn parse(s: &str) -> Option<FollowState> {
        let (files, saved_at) = match s.split_once('@') {
            Some((files, time)) => (files, Some(time.parse().ok()?)),
            None => (s, None),
        };
        // No file yet (a first start before the log existed): an empty list.
        let files = if files.is_empty() && saved_at.is_some() {
            Vec::new()
        } else {
            files
                .split(',')
                .map(Checkpoint::parse)
                .collect::<Option<Vec<_>>>()?
        };
        Some(FollowState { files, saved_at })
    }

    pub fn format(&self) -> String {
        let files: Vec<String> = self.files.iter().map(Checkpoint::format).collect();
        format!("{}@{}", files.join(","), self.saved_at.unwrap_or(0))
    }

    fn offset_of(&self, device: u64, inode: u64) -> Option<u64> {
        self.files
            .iter()
            .find(|c| c.device == device && c.inode == inode)
            .map(|c| c.offset)
    }
}

/// The settings key of a followed path's checkpoint.
pub fn checkpoint_key(path: &Path) -> String {
    format!("follow:{}", path.display())
}

/// Reads the lines of one log format and correlates them into records.
pub trait LineDecoder: Send {
    fn line(
        &mut self,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError>;
    /// Emit what is still open (called at every commit and at the end).
    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError>;
}

impl LineDecoder for Dispatcher {
    fn line(
        &mut self,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        Dispatcher::line(self, bytes, source, number, sink).map(|_| ())
    }

    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        Dispatcher::finish(self, sink)
    }
}

impl LineDecoder for MsgtrkDecoder {
    fn line(
        &mut self,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        MsgtrkDecoder::line(self, bytes, source, number, sink).map(|_| ())
    }

    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        MsgtrkDecoder::finish(self, sink)
    }
}

/// The decoder for a followed file: Exchange message tracking for
/// `MSGTRK*` files or content that says so (its `#Software` header), else
/// the syslog dispatcher (Postfix, Sendmail, Exim, forwarded Exchange lines).
pub fn decoder_for(path: &Path, opts: &DecodeOptions) -> Box<dyn LineDecoder> {
    let named = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_uppercase())
        .is_some_and(|n| n.starts_with("MSGTRK"));
    let mut head = vec![0u8; 4096];
    let read = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head.truncate(read);
    if named || detect(&head) == Some(Format::ExchangeMsgtrk) {
        Box::new(MsgtrkDecoder::new(opts))
    } else {
        Box::new(Dispatcher::new(opts))
    }
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
    /// For a file found by a pattern: stop following it once it has been
    /// quiet this long and a newer file matches the pattern.
    pub retire: Option<(FilePattern, Duration)>,
}

impl FollowConfig {
    pub fn new(path: PathBuf) -> FollowConfig {
        FollowConfig {
            path,
            poll: Duration::from_millis(250),
            flush_every: Duration::from_secs(1),
            max_line_bytes: 64 * 1024,
            retire: None,
        }
    }
}

/// A followed path with `*` or `?` in its file name (`/logs/MSGTRK*.LOG`):
/// the folder is literal, the name a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePattern {
    pub dir: PathBuf,
    pub name: String,
}

/// How long a file found by a pattern must be quiet, with a newer file
/// beside it, before its follower ends.
pub const PATTERN_RETIRE_AFTER: Duration = Duration::from_secs(600);
/// How often a pattern's folder is listed for new files.
const PATTERN_RESCAN: Duration = Duration::from_secs(2);

impl FilePattern {
    /// `Some` when the file name has a wildcard.
    pub fn parse(path: &Path) -> Option<FilePattern> {
        let name = path.file_name()?.to_string_lossy().to_string();
        if !name.contains(['*', '?']) {
            return None;
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(FilePattern { dir, name })
    }

    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.name.chars().collect();
        let name: Vec<char> = name.chars().collect();
        wildcard(&pattern, &name)
    }

    /// Matching regular files, oldest (by modification time) first.
    pub fn files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| self.matches(&e.file_name().to_string_lossy()))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file()
                    .then(|| (meta.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Whether a file other than `path` matching the pattern is newer.
    fn has_newer_than(&self, path: &Path) -> bool {
        self.files().last().is_some_and(|newest| newest != path)
    }
}

/// `*` any run of characters, `?` one character, everything else itself.
fn wildcard(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
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
    dispatcher: Box<dyn LineDecoder>,
    pending: VecSink,
    writer: StoreWriter,
    source: String,
    line_number: u64,
    metrics: Arc<Metrics>,
    /// What every checkpoint says about files it does not list: every
    /// sibling last modified before this time (seconds) was read, or is
    /// listed. The time of the last look at the followed path that found
    /// the file being read (not the time of saving: a rotation since that
    /// look may have created a file that was written, rotated away and fell
    /// quiet before the save, and a restart must still read it).
    horizon: Option<i64>,
    /// Files to list in every checkpoint besides those being read: at
    /// start-up, the rotated siblings still waiting to be read.
    waiting: Vec<Checkpoint>,
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
    fn flush(&mut self, files: &[&Open], stop: &AtomicBool) {
        let _ = self.dispatcher.finish(&mut self.pending);
        let records = std::mem::take(&mut self.pending.records);
        let rejects = std::mem::take(&mut self.pending.rejects);
        let mut listed: Vec<Checkpoint> = files.iter().map(|f| f.checkpoint()).collect();
        for waiting in &self.waiting {
            if !listed
                .iter()
                .any(|c| c.device == waiting.device && c.inode == waiting.inode)
            {
                listed.push(*waiting);
            }
        }
        let state = FollowState {
            files: listed,
            saved_at: self.horizon,
        };
        let settings = vec![(checkpoint_key(&self.config.path), state.format())];
        self.writer
            .submit_until_stored(records, rejects, settings, &|| stop.load(Ordering::Relaxed));
    }

    /// Read `file` to its end, committing as it goes and once more at the
    /// end; the checkpoints list it beside the files `beside`.
    fn read_out(&mut self, file: &mut Open, beside: &[&Open], stop: &AtomicBool) {
        loop {
            let more = self.drain(file).unwrap_or(false);
            let files: Vec<&Open> = beside.iter().copied().chain([&*file]).collect();
            self.flush(&files, stop);
            if !more {
                return;
            }
        }
    }
}

/// Rotated siblings of a followed file that still hold unread lines, oldest
/// first, each with the offset to start at: files named in the checkpoint
/// from their offset, files unknown to it but written after it from 0.
/// Compressed rotations (`.gz` and the like) were complete before they were
/// compressed, so they are never among them.
fn unread_siblings(path: &Path, state: &FollowState) -> Vec<(PathBuf, Checkpoint)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy().to_string();
    let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf, Checkpoint)> = Vec::new();
    for entry in entries.flatten() {
        let sibling = entry.path();
        let file_name = entry.file_name().to_string_lossy().to_string();
        let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip"]
            .iter()
            .any(|ext| file_name.ends_with(ext));
        if file_name == name || !file_name.starts_with(&name) || compressed {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&sibling) else {
            continue;
        };
        if !meta.is_file() || Some((meta.dev(), meta.ino())) == current {
            continue;
        }
        let start = match state.offset_of(meta.dev(), meta.ino()) {
            Some(offset) if offset < meta.len() => offset,
            Some(_) => continue,
            None if state.saved_at.is_some_and(|t| meta.mtime() >= t) => 0,
            None => continue,
        };
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let from = Checkpoint {
            device: meta.dev(),
            inode: meta.ino(),
            offset: start,
        };
        found.push((modified, sibling, from));
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found.into_iter().map(|(_, p, from)| (p, from)).collect()
}

/// Follow one file until `stop` is set; commits on the way and at the end.
pub fn follow(
    config: FollowConfig,
    checkpoint: Option<FollowState>,
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
            dispatcher: decoder_for(&config.path, &opts),
            pending: VecSink::default(),
            writer,
            source,
            line_number: 0,
            metrics,
            config,
            horizon: None,
            waiting: Vec::new(),
        };
        let path = follower.config.path.clone();
        let first_start = checkpoint.is_none();
        let state = checkpoint.unwrap_or_default();
        // The followed file is opened first, so that a rotation while the
        // siblings are read is seen by the loop below (it holds the file).
        // (Seconds, one early: file times have whole-second resolution here.)
        let opened_at = Utc::now().timestamp() - 1;
        let start = std::fs::metadata(&path)
            .ok()
            .and_then(|m| state.offset_of(m.dev(), m.ino()))
            .unwrap_or(0);
        let mut open: Option<Open> = Open::at(&path, start).ok();
        // A first start says at once where reading began. Without any
        // checkpoint a restart begins afresh at the current file (history
        // before the first start is `mailtrail import`'s), so a crash before
        // the first commit would skip every file rotated since.
        if first_start {
            follower.horizon = Some(opened_at);
            let files: Vec<&Open> = open.iter().collect();
            follower.flush(&files, &stop);
        }
        // Finish files rotated away while we were down, oldest first. Until
        // they are read, checkpoints keep listing them and keep the old
        // horizon: a crash meanwhile must find them again.
        let siblings = unread_siblings(&path, &state);
        follower.horizon = state.saved_at.or(Some(opened_at));
        follower.waiting = siblings.iter().map(|(_, from)| *from).collect();
        for (rotated, from) in siblings {
            follower
                .waiting
                .retain(|w| (w.device, w.inode) != (from.device, from.inode));
            if let Ok(mut old) = Open::at(&rotated, from.offset) {
                let beside: Vec<&Open> = open.iter().collect();
                follower.read_out(&mut old, &beside, &stop);
            }
        }
        follower.waiting.clear();
        follower.horizon = Some(opened_at);
        let mut last_flush = Instant::now();
        let mut dirty = false;
        // When the followed path was last seen to be the file being read.
        let mut last_look = opened_at;
        // A file rotated away by rename, read until it has been quiet a while.
        let mut retiring: Option<(Open, Instant)> = None;
        let mut last_growth = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // The file a rotation put at the path, opened when it was seen.
            let mut next: Option<Open> = None;
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
                        follower.flush(&reading(Some(current), &retiring), &stop);
                        open = Open::at(&path, 0).ok();
                        dirty = false;
                        last_flush = Instant::now();
                        continue;
                    }
                    if follower.drain(current).unwrap_or(false) {
                        dirty = true;
                        last_growth = Instant::now();
                    }
                    if follower.pending.records.len() >= DRAIN_LINES / 4 {
                        follower.flush(&reading(Some(current), &retiring), &stop);
                        dirty = false;
                        last_flush = Instant::now();
                    }
                    let looked_at = Utc::now().timestamp() - 1;
                    // The file at the path now, held open at once when it is a
                    // new one: committing the old file below waits for the
                    // store, and a second rotation meanwhile must not make us
                    // open the file after it and skip this one.
                    let renamed = std::fs::metadata(&path).is_ok_and(|meta| {
                        meta.dev() != current.device || meta.ino() != current.inode
                    });
                    let newer = if renamed {
                        Open::at(&path, 0)
                            .ok()
                            .filter(|f| (f.device, f.inode) != (current.device, current.inode))
                    } else {
                        None
                    };
                    if let Some(newer) = newer {
                        // Renamed away: commit what the old file had, then
                        // start on the new one — and keep reading the old
                        // one for a while, since the writer may not have
                        // reopened its log yet.
                        let beside: Vec<&Open> = retiring.iter().map(|(old, _)| old).collect();
                        follower.read_out(current, &beside, &stop);
                        // Rotated more than once since the last look: the
                        // files in between were never current for us (the
                        // one held for next is not among them).
                        let known = FollowState {
                            files: reading(Some(current), &retiring)
                                .iter()
                                .map(|f| f.checkpoint())
                                .collect(),
                            saved_at: Some(last_look),
                        };
                        for (between, from) in unread_siblings(&path, &known) {
                            if (from.device, from.inode) == (newer.device, newer.inode) {
                                continue;
                            }
                            if let Ok(mut file) = Open::at(&between, from.offset) {
                                follower.read_out(&mut file, &[&*current], &stop);
                            }
                        }
                        next = Some(newer);
                    }
                    last_look = looked_at;
                    follower.horizon = Some(last_look);
                }
            }
            if let Some(newer) = next.take() {
                // A file still retiring from an earlier rotation gives what
                // it has before it is let go for the one just rotated.
                if let Some((mut older, _)) = retiring.take() {
                    let beside: Vec<&Open> = open.iter().collect();
                    follower.read_out(&mut older, &beside, &stop);
                }
                retiring = open.take().map(|old| (old, Instant::now()));
                open = Some(newer);
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
                follower.flush(&reading(open.as_ref(), &retiring), &stop);
                dirty = false;
                last_flush = Instant::now();
            }
            if let Some((pattern, quiet)) = &follower.config.retire {
                if last_growth.elapsed() >= *quiet && pattern.has_newer_than(&path) {
                    break;
                }
            }
            thread::sleep(follower.config.poll);
        }
        if let Some((mut old, since)) = retiring.take() {
            while follower.drain(&mut old).unwrap_or(false) {
                let files: Vec<&Open> = open.iter().chain([&old]).collect();
                follower.flush(&files, &stop);
            }
            retiring = Some((old, since));
        }
        if let Some(current) = open.as_mut() {
            while follower.drain(current).unwrap_or(false) {
                follower.flush(&reading(Some(current), &retiring), &stop);
            }
        }
        follower.flush(&reading(open.as_ref(), &retiring), &stop);
    })
}

/// Follow every file matching `pattern`, and each new one as it appears,
/// until `stop` is set. `known` are the files that matched at start-up with
/// their checkpoints; a file already read to its end, quiet, and not the
/// newest is not followed again.
pub fn follow_pattern(
    pattern: FilePattern,
    known: Vec<(PathBuf, Option<FollowState>)>,
    writer: StoreWriter,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    decode: DecodeOptions,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        let mut followers = Vec::new();
        let newest = pattern.files().last().cloned();
        let start = |path: PathBuf, state: Option<FollowState>| {
            let mut config = FollowConfig::new(path);
            config.retire = Some((pattern.clone(), PATTERN_RETIRE_AFTER));
            follow(
                config,
                state,
                writer.clone(),
                stop.clone(),
                metrics.clone(),
                decode.clone(),
            )
        };
        for (path, state) in known {
            seen.insert(path.clone());
            let finished = std::fs::metadata(&path).is_ok_and(|meta| {
                let read_to_end = state
                    .as_ref()
                    .and_then(|s| s.offset_of(meta.dev(), meta.ino()))
                    == Some(meta.len());
                let quiet = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age >= PATTERN_RETIRE_AFTER);
                read_to_end && quiet && newest.as_ref() != Some(&path)
            });
            if !finished {
                followers.push(start(path, state));
            }
        }
        let mut last_scan = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_scan.elapsed() >= PATTERN_RESCAN {
                last_scan = Instant::now();
                for path in pattern.files() {
                    if seen.insert(path.clone()) {
                        followers.push(start(path, None));
                    }
                }
                followers.retain(|f: &thread::JoinHandle<()>| !f.is_finished());
            }
            thread::sleep(Duration::from_millis(200));
        }
        for follower in followers {
            let _ = follower.join();
        }
    })
}

/// The files being read, for the checkpoint: the current one and the one
/// rotated away that is still read.
fn reading<'a>(current: Option<&'a Open>, retiring: &'a Option<(Open, Instant)>) -> Vec<&'a Open> {
    current
        .into_iter()
        .chain(retiring.as_ref().map(|(old, _)| old))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        let p = FilePattern::parse(Path::new("/logs/MSGTRK*.LOG")).unwrap();
        assert_eq!(p.dir, PathBuf::from("/logs"));
        assert!(p.matches("MSGTRK2026112701-1.LOG"));
        assert!(p.matches("MSGTRK.LOG"));
        assert!(!p.matches("MSGTRKMS2026112701-1.log"));
        assert!(!p.matches("XMSGTRK1.LOG"));
        let q = FilePattern::parse(Path::new("mail.log.?")).unwrap();
        assert_eq!(q.dir, PathBuf::from("."));
        assert!(q.matches("mail.log.1") && !q.matches("mail.log.10"));
        assert!(FilePattern::parse(Path::new("/var/log/mail.log")).is_none());
        let r = FilePattern::parse(Path::new("a*b*c")).unwrap();
        assert!(r.matches("abc") && r.matches("aXbYbZc") && !r.matches("aXbYbZ"));
    }

    #[test]
    fn states_round_trip_and_read_the_older_form() {
        let state = FollowState {
            files: vec![
                Checkpoint {
                    device: 1,
                    inode: 2,
                    offset: 3,
                },
                Checkpoint {
                    device: 1,
                    inode: 9,
                    offset: 4096,
                },
            ],
            saved_at: Some(1_790_000_000),
        };
        assert_eq!(FollowState::parse(&state.format()), Some(state));
        let old = FollowState::parse("1:2:3").unwrap();
        assert_eq!((old.files.len(), old.saved_at), (1, None));
        assert_eq!(FollowState::parse("1:2:3@soon"), None);
        assert_eq!(FollowState::parse("1:2:3,x@5"), None);
        // A first start before the log existed: no file, a time.
        let none_yet = FollowState {
            files: Vec::new(),
            saved_at: Some(1_790_000_000),
        };
        assert_eq!(FollowState::parse(&none_yet.format()), Some(none_yet));
        assert_eq!(FollowState::parse(""), None);
    }

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

#[cfg(test)]
mod restart_tests {
    //! A restart after a rotation the follower never saw (regression: the
    //! checkpoint's time was the time of saving, so a file created after
    //! the follower's last look, written, rotated away and quiet by the
    //! time of saving was taken for old history and never read).

    use super::*;
    use mailtrail_model::OrgDomains;
    use mailtrail_store::sqlite::SqliteOptions;
    use mailtrail_store::{SqliteStore, Store};

    fn flow(n: u32) -> String {
        let stamp = Utc::now().format("%b %e %H:%M:%S");
        let qid = format!("{:010X}", 0xB0000 + n);
        format!(
            "{stamp} mx1 postfix/smtpd[10]: {qid}: client=pc.example.co.jp[10.1.0.7]\n\
             {stamp} mx1 postfix/cleanup[11]: {qid}: message-id=<restart-{n}@example.co.jp>\n\
             {stamp} mx1 postfix/qmgr[12]: {qid}: from=<taro@example.co.jp>, size=900, nrcpt=1 (queue active)\n\
             {stamp} mx1 postfix/smtp[13]: {qid}: to=<r{n}@partner.example>, relay=mx.partner.example[192.0.2.25]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)\n\
             {stamp} mx1 postfix/qmgr[12]: {qid}: removed\n"
        )
    }

    fn write(path: &Path, flows: std::ops::RangeInclusive<u32>) {
        let text: String = flows.map(flow).collect();
        std::fs::write(path, text).unwrap();
    }

    fn open(data: &Path, read_only: bool) -> SqliteStore {
        SqliteStore::open(
            data,
            SqliteOptions {
                org_domains: OrgDomains::new(["example.co.jp"]),
                read_only,
                ..SqliteOptions::default()
            },
        )
        .unwrap()
    }

    fn stored(data: &Path) -> u64 {
        open(data, true).stats().unwrap().messages
    }

    fn wait_for(data: &Path, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && stored(data) < n {
            thread::sleep(Duration::from_millis(50));
        }
        stored(data)
    }

    /// Follow `log` from `checkpoint` until `stop`, looking every `poll` and
    /// committing at most every `flush_every`; returns the thread and the
    /// writer's thread.
    fn run(
        data: &Path,
        log: &Path,
        (poll, flush_every): (Duration, Duration),
        checkpoint: Option<FollowState>,
        stop: Arc<AtomicBool>,
    ) -> (thread::JoinHandle<()>, thread::JoinHandle<()>) {
        let metrics = Arc::new(Metrics::default());
        let (writer, writer_thread) = StoreWriter::start(open(data, false), 16, metrics.clone());
        let config = FollowConfig {
            poll,
            flush_every,
            ..FollowConfig::new(log.to_path_buf())
        };
        (
            follow(
                config,
                checkpoint,
                writer,
                stop,
                metrics,
                DecodeOptions::default(),
            ),
            writer_thread,
        )
    }

    /// The checkpoint of `log` saved in the store at `data`.
    fn saved(data: &Path, log: &Path) -> Option<FollowState> {
        open(data, true)
            .setting(&checkpoint_key(log))
            .unwrap()
            .and_then(|s| FollowState::parse(&s))
    }

    /// Restart a follower from `checkpoint`, wait until `n` messages are
    /// stored, stop it; how many are stored.
    fn restart(data: &Path, log: &Path, checkpoint: Option<FollowState>, n: u64) -> u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let often = (Duration::from_millis(50), Duration::ZERO);
        let (follower, writer) = run(data, log, often, checkpoint, stop.clone());
        let found = wait_for(data, n);
        stop.store(true, Ordering::Relaxed);
        follower.join().unwrap();
        writer.join().unwrap();
        found
    }

    /// A crash before a first start's first commit (regression: a first
    /// start wrote no checkpoint until it committed mail, and a restart
    /// without one begins afresh at the current file, so the file it had
    /// been reading, rotated away meanwhile, was never read).
    #[test]
    fn a_crash_before_the_first_commit_still_reads_the_file_rotated_since() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("mail.log");
        write(&log, 1..=3);
        let stop = Arc::new(AtomicBool::new(false));
        // No commit of mail while the test looks.
        let seldom = (Duration::from_millis(50), Duration::from_secs(3600));
        let (follower, writer) = run(&data, &log, seldom, None, stop.clone());
        // The checkpoint of the first start is there before any mail.
        let deadline = Instant::now() + Duration::from_secs(20);
        while saved(&data, &log).is_none() {
            assert!(
                Instant::now() < deadline,
                "no checkpoint from the first start"
            );
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(300));
        assert_eq!(stored(&data), 0, "mail is not committed yet");
        // What a kill -9 now would leave: a copy of the store as it is.
        let crashed = dir.path().join("crashed");
        std::fs::create_dir(&crashed).unwrap();
        for entry in std::fs::read_dir(&data).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), crashed.join(entry.file_name())).unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        follower.join().unwrap();
        writer.join().unwrap();
        // Rotated while down, then restarted from the crashed store.
        std::fs::rename(&log, dir.path().join("mail.log.1")).unwrap();
        write(&log, 4..=5);
        let checkpoint = saved(&crashed, &log);
        assert!(
            checkpoint.is_some(),
            "the crashed store has the first start's checkpoint"
        );
        let found = restart(&crashed, &log, checkpoint, 5);
        assert_eq!(
            found, 5,
            "the file being read at the crash is read after the restart"
        );
    }

    #[test]
    fn a_file_rotated_in_and_out_between_two_looks_is_read_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("mail.log");
        let rotated = |n: u32| dir.path().join(format!("mail.log.{n}"));
        write(&log, 1..=3);

        // A follower that looks at the log every 6 s: it reads the first
        // file, then sleeps while the log is rotated twice.
        let stop = Arc::new(AtomicBool::new(false));
        let sleepy = (Duration::from_secs(6), Duration::ZERO);
        let (follower, writer) = run(&data, &log, sleepy, None, stop.clone());
        assert_eq!(wait_for(&data, 3), 3);
        std::fs::rename(&log, rotated(1)).unwrap();
        write(&log, 4..=6);
        // Quiet for more than a second (file times have whole seconds)...
        thread::sleep(Duration::from_millis(2100));
        std::fs::rename(rotated(1), rotated(2)).unwrap();
        std::fs::rename(&log, rotated(1)).unwrap();
        write(&log, 7..=7);
        // ...then stopped before its next look: it saves a checkpoint that
        // lists only the first file.
        stop.store(true, Ordering::Relaxed);
        follower.join().unwrap();
        writer.join().unwrap();
        assert_eq!(stored(&data), 3, "the stopped follower never looked again");

        let checkpoint = saved(&data, &log).expect("a checkpoint");
        let found = restart(&data, &log, Some(checkpoint), 7);
        assert_eq!(
            found, 7,
            "after the restart, the file that came and went while the follower slept is read"
        );
    }
}
