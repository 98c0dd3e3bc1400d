//! Unix mbox (mboxo / mboxrd): messages separated by `From ` lines.
//!
//! Why it is shaped this way: mailboxes are large (gigabytes) and untrusted,
//! so the file is streamed line by line and only the current message is held,
//! never more than `max_message_bytes` of it — a larger message is rejected
//! (its head quarantined) and skipped to the next separator, and a single
//! line without a newline cannot grow the buffer past that cap either.
//!
//! A `From ` line starts a message when it opens the file or follows an empty
//! line, or when it looks like a postmark (`From sender date-with-time`); this
//! keeps unescaped `From ` lines inside bodies of sloppy mboxo files from
//! splitting messages in most cases. Lines `>From `, `>>From `, ... lose one
//! `>` (mboxrd). The empty line that precedes a separator belongs to the mbox
//! format, not to the message, and is dropped. A truncated last message is
//! imported if it still parses. Rejects carry the byte offset of the message's
//! `From ` line.

use std::io::{self, BufRead};

use crate::mime::{deliver, Capped, ImportSummary};
use crate::{DecodeOptions, IngestError, Sink, QUARANTINE_EXCERPT_BYTES};

/// Report progress to the sink at least this often (bytes of input).
const PROGRESS_EVERY: u64 = 1 << 20;

/// The message being collected.
struct Current {
    /// Offset of its `From ` line (or 0 for text before the first separator).
    offset: u64,
    bytes: Vec<u8>,
    /// Total bytes the message has (also when it is over the limit).
    length: u64,
    too_large: bool,
    /// The previous line was empty (and was held back, as it may be the separator's).
    held_blank: Option<Vec<u8>>,
    /// Lines seen (text before the first separator with no lines is no message).
    any_line: bool,
}

impl Current {
    fn new(offset: u64) -> Current {
        Current {
            offset,
            bytes: Vec::new(),
            length: 0,
            too_large: false,
            held_blank: None,
            any_line: false,
        }
    }

    fn append(&mut self, data: &[u8], max: usize) {
        self.length += data.len() as u64;
        if self.too_large {
            return;
        }
        if self.bytes.len() + data.len() > max {
            self.too_large = true;
            let room = QUARANTINE_EXCERPT_BYTES.saturating_sub(self.bytes.len());
            self.bytes.extend_from_slice(&data[..data.len().min(room)]);
            self.bytes.truncate(QUARANTINE_EXCERPT_BYTES);
            self.bytes.shrink_to_fit();
        } else {
            self.bytes.extend_from_slice(data);
        }
    }
}

/// Import an mbox stream. `source` names it in rejects.
pub fn import_mbox<R: BufRead>(
    mut reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let io_err = |e: io::Error| IngestError::Io {
        path: source.to_string(),
        source: e,
    };
    let max = opts.max_message_bytes;
    let mut summary = ImportSummary::default();
    let mut current = Current::new(0);
    let mut offset: u64 = 0;
    let mut last_progress: u64 = 0;
    // The line being read (lines that cannot fit the message are streamed through).
    let mut line: Vec<u8> = Vec::new();
    let mut prev_blank = true; // start of file counts as after a blank line
    loop {
        line.clear();
        let line_start = offset;
        let mut line_len: u64 = 0;
        let mut ended = false;
        // Read one line; bytes beyond what the message may still hold are passed on as they come.
        let mut spilled = false;
        loop {
            let available = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let used = chunk.len();
            if !spilled
                && line.len() + chunk.len() > max.saturating_sub(current.bytes.len()).max(1024)
            {
                // A huge line: the message is over any sane size; stream it through.
                spilled = true;
                current.any_line = true;
                if let Some(blank) = current.held_blank.take() {
                    current.append(&blank, max);
                }
                current.append(&line, max);
                line.truncate(0);
            }
            if spilled {
                current.append(chunk, max);
            } else {
                line.extend_from_slice(chunk);
            }
            line_len += used as u64;
            reader.consume(used);
            offset += used as u64;
            if done {
                ended = true;
                break;
            }
        }
        if line_len == 0 {
            break;
        }
        if spilled {
            prev_blank = false;
            continue;
        }
        let content = trim_eol(&line);
        let is_separator =
            content.starts_with(b"From ") && (prev_blank || looks_like_postmark(content));
        if is_separator {
            finish(current, source, opts, sink, &mut summary)?;
            current = Current::new(line_start);
            prev_blank = false;
            if offset - last_progress >= PROGRESS_EVERY {
                sink.progress(offset);
                last_progress = offset;
            }
            continue;
        }
        let blank = content.is_empty();
        if let Some(held) = current.held_blank.take() {
            current.append(&held, max);
        }
        current.any_line = true;
        if blank && ended {
            // Might be the blank line before the next separator: hold it back.
            current.held_blank = Some(line.clone());
        } else if is_escaped_from(content) {
            current.append(&line[1..], max);
        } else {
            current.append(&line, max);
        }
        prev_blank = blank;
    }
    // A trailing blank line at the end of the file belongs to the format too.
    current.held_blank = None;
    finish(current, source, opts, sink, &mut summary)?;
    sink.progress(offset);
    Ok(summary)
}

fn finish(
    current: Current,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
    summary: &mut ImportSummary,
) -> Result<(), IngestError> {
    let mut current = current;
    current.held_blank = None;
    if !current.any_line && current.offset == 0 {
        return Ok(());
    }
    if current.offset == 0
        && !current.too_large
        && current.bytes.iter().all(u8::is_ascii_whitespace)
    {
        // Blank text before the first separator.
        return Ok(());
    }
    let capped = Capped {
        bytes: current.bytes,
        bytes_read: current.length,
        too_large: current.too_large,
    };
    deliver(capped, source, current.offset, opts, sink, summary)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `>From `, `>>From `, ... (mboxrd escaping).
fn is_escaped_from(content: &[u8]) -> bool {
    let gts = content.iter().take_while(|&&b| b == b'>').count();
    gts > 0 && content[gts..].starts_with(b"From ")
}

/// `From sender Www Mmm dd hh:mm:ss yyyy` (loosely: a sender, then a time).
fn looks_like_postmark(content: &[u8]) -> bool {
    let rest = &content[5..];
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let Some(_sender) = words.next() else {
        return false;
    };
    let mut has_time = false;
    let mut has_year = false;
    for w in words {
        if w.len() >= 5 && w.iter().filter(|&&b| b == b':').count() >= 1 && w[0].is_ascii_digit() {
            has_time = true;
        }
        if w.len() == 4 && w.iter().all(u8::is_ascii_digit) {
            has_year = true;
        }
    }
    has_time && has_year
}
