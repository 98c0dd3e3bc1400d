//! Content-addressed blob store for raw messages and attachments.
//!
//! Why this shape:
//! - **Content addressing** (BLAKE3 hex names) makes writes idempotent — the
//!   same message imported twice, or copied by a journal and a mailbox, is one
//!   file — and makes tampering visible: a blob whose bytes no longer hash to
//!   its name is reported as [`StoreError::Corrupt`] on read.
//! - **Identical attachments are kept once.** A raw message is not stored as
//!   one opaque file: the encoded bodies of its large parts (the attachments,
//!   located by the MIME decoder as byte ranges) are cut out and stored as
//!   their own blobs, and the message becomes a small *skeleton* — literal
//!   bytes interleaved with references to segment blobs. Reassembly is a
//!   splice, so `show --raw` returns the original bytes exactly, and the same
//!   attachment forwarded to fifty people costs one copy.
//! - **zstd** on every blob: mail is text and compresses well.
//! - **Durability**: files are written to a temporary name and renamed; the
//!   store calls [`BlobStore::sync`] before committing the database
//!   transaction that refers to them, so a committed row never points at a
//!   blob lost in a crash.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Segments shorter than this stay inline in the skeleton.
const MIN_SEGMENT: usize = 2048;
const SKELETON_MAGIC: &[u8; 4] = b"MTS1";
const TAG_LITERAL: u8 = 0;
const TAG_SEGMENT: u8 = 1;
/// Blob paths remembered for a per-file fsync; beyond this, one `syncfs`.
const MAX_TRACKED_UNSYNCED: usize = 4096;

pub struct BlobStore {
    root: PathBuf,
    level: i32,
    unsynced: Vec<PathBuf>,
    syncfs_pending: bool,
    written: u64,
}

impl BlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StoreError::Blob {
            path: root.clone(),
            source,
        })?;
        Ok(BlobStore {
            root,
            level: 3,
            unsynced: Vec::new(),
            syncfs_pending: false,
            written: 0,
        })
    }

    /// A blob store for reading: the folder is not created (a missing one
    /// just holds no blobs).
    pub fn open_existing(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore {
            root: root.into(),
            level: 3,
            unsynced: Vec::new(),
            syncfs_pending: false,
            written: 0,
        }
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        let shard = hash.get(..2).unwrap_or("00");
        self.root.join(shard).join(format!("{hash}.zst"))
    }

    pub fn contains(&self, hash: &str) -> bool {
        is_hash(hash) && self.path_of(hash).exists()
    }

    /// Present and not empty (a file renamed into place but not synced
    /// before a power failure can come back empty).
    pub fn looks_intact(&self, hash: &str) -> bool {
        is_hash(hash)
            && std::fs::metadata(self.path_of(hash)).is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    /// Blobs written since the store was opened.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Store bytes under their BLAKE3 name (no-op when present). Returns the hash.
    pub fn put(&mut self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = blake3::hash(bytes).to_hex().to_string();
        self.put_named(&hash, bytes)?;
        Ok(hash)
    }

    fn put_named(&mut self, hash: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(hash);
        if path.exists() {
            return Ok(());
        }
        let err = |source: io::Error| StoreError::Blob {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(err)?;
        let compressed = zstd::bulk::compress(bytes, self.level).map_err(err)?;
        let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&compressed).map_err(err)?;
        drop(file);
        fs::rename(&tmp, &path).map_err(err)?;
        if self.unsynced.len() < MAX_TRACKED_UNSYNCED {
            self.unsynced.push(path);
        } else {
            // Too many to fsync one by one (a bulk import): sync the whole
            // file system instead, at the next sync.
            self.syncfs_pending = true;
        }
        self.written += 1;
        Ok(())
    }

    /// Read a blob and check it against its name.
    pub fn get(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_hash(hash) {
            return Err(StoreError::Invalid(format!("not a blob hash: {hash:?}")));
        }
        let path = self.path_of(hash);
        let compressed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Blob { path, source }),
        };
        let bytes = decompress(&compressed).map_err(|e| StoreError::Corrupt {
            hash: hash.to_string(),
            reason: format!("cannot decompress: {e}"),
        })?;
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(StoreError::Corrupt {
                hash: hash.to_string(),
                reason: "content does not match its hash".into(),
            });
        }
        Ok(Some(bytes))
    }

    /// Store a raw message, cutting the given byte ranges (encoded attachment
    /// bodies) into shared segment blobs. Returns the message's content hash
    /// (BLAKE3 of `raw`).
    pub fn put_message(
        &mut self,
        raw: &[u8],
        ranges: &[(usize, usize)],
    ) -> Result<String, StoreError> {
        let hash = blake3::hash(raw).to_hex().to_string();
        if self.path_of(&hash).exists() {
            return Ok(hash);
        }
        let mut ranges: Vec<(usize, usize)> = ranges
            .iter()
            .copied()
            .filter(|(s, e)| s < e && *e <= raw.len() && e - s >= MIN_SEGMENT)
            .collect();
        ranges.sort_unstable();
        let mut skeleton = Vec::with_capacity(raw.len().min(64 * 1024));
        skeleton.extend_from_slice(SKELETON_MAGIC);
        let mut at = 0usize;
        for (start, end) in ranges {
            if start < at {
                continue; // overlapping (nested) range: already covered
            }
            push_literal(&mut skeleton, &raw[at..start]);
            let segment_hash = self.put(&raw[start..end])?;
            skeleton.push(TAG_SEGMENT);
            skeleton.extend_from_slice(segment_hash.as_bytes());
            skeleton.extend_from_slice(&((end - start) as u64).to_le_bytes());
            at = end;
        }
        push_literal(&mut skeleton, &raw[at..]);
        // The skeleton is stored under the hash of the reassembled message, so
        // `get` cannot verify it directly; `get_message` verifies after splicing.
        self.put_named(&hash, &skeleton)?;
        Ok(hash)
    }

    /// Reassemble a raw message stored by [`BlobStore::put_message`], verified against its hash.
    pub fn get_message(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_hash(hash) {
            return Err(StoreError::Invalid(format!("not a content hash: {hash:?}")));
        }
        let path = self.path_of(hash);
        let compressed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Blob { path, source }),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            hash: hash.to_string(),
            reason,
        };
        let skeleton =
            decompress(&compressed).map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        let body = skeleton
            .strip_prefix(SKELETON_MAGIC)
            .ok_or_else(|| corrupt("not a message skeleton".into()))?;
        let mut out = Vec::new();
        let mut rest = body;
        while let Some((&tag, tail)) = rest.split_first() {
            match tag {
                TAG_LITERAL => {
                    let (len, tail) = take_u64(tail).ok_or_else(|| corrupt("truncated".into()))?;
                    let len = usize::try_from(len).map_err(|_| corrupt("bad length".into()))?;
                    if tail.len() < len {
                        return Err(corrupt("truncated literal".into()));
                    }
                    out.extend_from_slice(&tail[..len]);
                    rest = &tail[len..];
                }
                TAG_SEGMENT => {
                    if tail.len() < 64 {
                        return Err(corrupt("truncated segment reference".into()));
                    }
                    let seg_hash = std::str::from_utf8(&tail[..64])
                        .map_err(|_| corrupt("bad segment name".into()))?;
                    let (len, tail) =
                        take_u64(&tail[64..]).ok_or_else(|| corrupt("truncated".into()))?;
                    let segment = self
                        .get(seg_hash)?
                        .ok_or_else(|| corrupt(format!("segment {seg_hash} is missing")))?;
                    if segment.len() as u64 != len {
                        return Err(corrupt(format!("segment {seg_hash} has the wrong length")));
                    }
                    out.extend_from_slice(&segment);
                    rest = tail;
                }
                other => return Err(corrupt(format!("unknown skeleton tag {other}"))),
            }
        }
        if blake3::hash(&out).to_hex().as_str() != hash {
            return Err(corrupt("content does not match its hash".into()));
        }
        Ok(Some(out))
    }

    /// Make every blob written since the last call durable (file data and
    /// directory entries). Called before the database commit that refers to them.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.syncfs_pending {
            return self.sync_all();
        }
        if self.unsynced.is_empty() {
            return Ok(());
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for path in self.unsynced.drain(..) {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|source| StoreError::Blob {
                    path: path.clone(),
                    source,
                })?;
            if let Some(dir) = path.parent() {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
            }
        }
        dirs.push(self.root.clone());
        for dir in dirs {
            sync_dir(&dir).map_err(|source| StoreError::Blob { path: dir, source })?;
        }
        Ok(())
    }

    /// Make every blob written so far durable with one `syncfs` of the
    /// blob store's file system, instead of one fsync per file.
    pub fn sync_all(&mut self) -> Result<(), StoreError> {
        if self.unsynced.is_empty() && !self.syncfs_pending {
            return Ok(());
        }
        let root = File::open(&self.root).map_err(|source| StoreError::Blob {
            path: self.root.clone(),
            source,
        })?;
        // SAFETY: syncfs takes a valid, open file descriptor and nothing else.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)) };
        if rc != 0 {
            return Err(StoreError::Blob {
                path: self.root.clone(),
                source: io::Error::last_os_error(),
            });
        }
        self.unsynced.clear();
        self.syncfs_pending = false;
        Ok(())
    }

    /// Number of blob files (for statistics).
    pub fn count(&self) -> u64 {
        let Ok(shards) = fs::read_dir(&self.root) else {
            return 0;
        };
        shards
            .flatten()
            .filter_map(|s| fs::read_dir(s.path()).ok())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".zst"))
                    .count() as u64
            })
            .sum()
    }
}

fn push_literal(skeleton: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    skeleton.push(TAG_LITERAL);
    skeleton.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    skeleton.extend_from_slice(bytes);
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_le_bytes(head), &bytes[8..]))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A BLAKE3 hex name: 64 lower-case hex digits (also what keeps identifiers
/// from the outside from naming paths: no `/`, no `..`).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Largest blob decompressed in one piece by the reused context; larger
/// (or of unknown size) ones are streamed.
const MAX_BULK_BYTES: u64 = 256 * 1024 * 1024;

thread_local! {
    /// One decompression context per thread, reused: creating a context for
    /// every blob cost more than decompressing a typical message.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompress a blob: with the thread's reused context when the frame
/// states its size (as every frame this store writes does), else streamed.
fn decompress(compressed: &[u8]) -> io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(compressed)
        .ok()
        .flatten()
        .filter(|&n| n <= MAX_BULK_BYTES);
    let Some(size) = size else {
        return zstd::stream::decode_all(compressed);
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(compressed, size as usize),
            None => zstd::stream::decode_all(compressed),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips_and_attachments_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let mut blobs = BlobStore::open(dir.path()).unwrap();
        let attachment = "QUJD".repeat(2000); // 8000 bytes of base64
        let m1 = format!("Subject: one\r\n\r\n--b\r\n\r\n{attachment}\r\n--b--\r\n");
        let m2 = format!("Subject: two, longer\r\n\r\n--b\r\n\r\n{attachment}\r\n--b--\r\n");
        let r1 = m1.find(&attachment).unwrap();
        let r2 = m2.find(&attachment).unwrap();
        let h1 = blobs
            .put_message(m1.as_bytes(), &[(r1, r1 + attachment.len())])
            .unwrap();
        let h2 = blobs
            .put_message(m2.as_bytes(), &[(r2, r2 + attachment.len())])
            .unwrap();
        blobs.sync().unwrap();
        assert_eq!(blobs.get_message(&h1).unwrap().unwrap(), m1.as_bytes());
        assert_eq!(blobs.get_message(&h2).unwrap().unwrap(), m2.as_bytes());
        // two skeletons + one shared segment
        assert_eq!(blobs.count(), 3);
        // storing again writes nothing
        let before = blobs.written();
        blobs
            .put_message(m1.as_bytes(), &[(r1, r1 + attachment.len())])
            .unwrap();
        assert_eq!(blobs.written(), before);
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut blobs = BlobStore::open(dir.path()).unwrap();
        let h = blobs.put(b"hello").unwrap();
        let path = blobs.path_of(&h);
        fs::write(&path, zstd::bulk::compress(b"jello", 3).unwrap()).unwrap();
        assert!(matches!(blobs.get(&h), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn identifiers_cannot_name_paths() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        assert!(blobs.get("../../etc/passwd").is_err());
        assert!(blobs.get_message(&"A".repeat(64)).is_err());
        assert!(!blobs.contains("../x"));
    }
}
