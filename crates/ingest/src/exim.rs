//! Exim: the main log (`/var/log/exim4/mainlog`) and the same lines carried by
//! syslog (`exim[pid]: 1i7jxQ-0003Lm-Ta <= ...`).
//!
//! Why it is shaped this way:
//!
//! - Exim writes one line per event of a message, all carrying the message id
//!   (`<=` arrival, `=>`/`->`/`>>` delivery, `**` failure, `==` deferral,
//!   `Completed` at the end). A [`Core`] folds those lines into one open
//!   message per `(host, id)` and emits a [`MessageRecord`] at `Completed`
//!   (or when the input ends, or when the open set is full — the oldest open
//!   message is then emitted early rather than dropped, and the store merges
//!   the pieces again by key).
//! - The two entry points differ only in where the time and host come from:
//!   the main log has its own stamp (zone-less stamps are read in
//!   [`DecodeOptions::timezone`]) and no host (see [`import_mainlog_for_host`]),
//!   a syslog line has the syslog header's time and host. Both hand the text
//!   after the stamp to the same [`Core::handle`], so the grammar lives once.
//! - Rejections that happen before a message exists (`H=... rejected RCPT
//!   <x>: ...`, `rejected after DATA`, `rejected by local_scan()`) become a
//!   record of their own with a `Rejected` delivery, so an administrator sees
//!   refused mail beside accepted mail. Connection-level noise (authenticator
//!   failures, protocol errors, queue runs) is counted as ignored.
//! - The main log is untrusted input: it is read through the bounded
//!   [`LineReader`]; lines that are not main-log lines (no stamp) and
//!   over-long lines become [`Reject`]s with their position and first bytes.
//!   Nothing here panics or aborts on content. Test-suite logs whose sizes are
//!   munged (`S=sss`) are accepted with an unknown size.
//!
//! Keys are `exim@{host}:{id}`; both id forms are recognised: the classic
//! `1i7jxQ-0003Lm-Ta` (6-6-2) and the 4.97+ `1rAbCd-000000005Vv-0aBc` (6-11-4).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Delivery, DeliveryStatus,
    MessageRecord, Position, Recipient, RecipientKind, Reject,
};

use crate::lines::{Line, LineReader};
use crate::syslog::{LineRef, SyslogLine};
use crate::{DecodeOptions, IngestError, Sink, SinkError, QUARANTINE_EXCERPT_BYTES};

/// The most messages a correlator keeps open at once; beyond it the oldest
/// open message is emitted as it stands.
pub const DEFAULT_MAX_OPEN: usize = 200_000;

/// The host used for main-log keys when the caller names none.
pub const LOCAL_HOST: &str = "local";

/// Whether a syslog program name is Exim's (`exim`, `exim4`, `exim4-daemon-heavy`...).
pub fn is_exim_program(program: &str) -> bool {
    let p = program.rsplit('/').next().unwrap_or(program);
    p == "exim" || p.starts_with("exim4") || p.starts_with("exim-")
}

/// Counts from one main-log import: the same as a syslog import's.
pub use crate::syslog::ImportSummary;

/// Import an Exim main log. Keys use the host `local` (`exim@local:{id}`);
/// use [`import_mainlog_for_host`] when the caller knows which host wrote it.
pub fn import_mainlog<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    import_mainlog_for_host(reader, source, LOCAL_HOST, opts, sink)
}

/// Import an Exim main log written by `host` (keys `exim@{host}:{id}`,
/// system `exim@{host}`).
pub fn import_mainlog_for_host<R: BufRead>(
    reader: R,
    source: &str,
    host: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let mut lines = LineReader::new(reader, opts.max_line_bytes);
    let mut core = Core::new(DEFAULT_MAX_OPEN);
    let mut summary = ImportSummary::default();
    let mut counting = CountingSink {
        inner: sink,
        records: 0,
    };
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                return Err(IngestError::Io {
                    path: source.to_string(),
                    source: e,
                })
            }
        };
        summary.lines += 1;
        match line {
            Line::TooLong {
                number,
                head,
                length,
                ..
            } => {
                summary.rejected += 1;
                counting.reject(Reject {
                    source: source.to_string(),
                    position: Position::Line(number),
                    code: "exim.too_long".to_string(),
                    reason: format!(
                        "line of {length} bytes is longer than the limit of {} bytes",
                        opts.max_line_bytes
                    ),
                    input: excerpt(head),
                })?;
            }
            Line::Complete { number, bytes, .. } => {
                let text = String::from_utf8_lossy(bytes);
                let trimmed = text.trim_end();
                if trimmed.is_empty() {
                    summary.ignored += 1;
                    continue;
                }
                match parse_stamp(trimmed, &opts.timezone) {
                    Some((time, rest)) => {
                        let used = core.handle(time, host, rest, &mut counting)?;
                        if !used {
                            summary.ignored += 1;
                        }
                    }
                    None => {
                        summary.rejected += 1;
                        counting.reject(Reject {
                            source: source.to_string(),
                            position: Position::Line(number),
                            code: "exim.line".to_string(),
                            reason: "not an Exim main-log line (no `YYYY-MM-DD HH:MM:SS` stamp)"
                                .to_string(),
                            input: excerpt(bytes),
                        })?;
                    }
                }
            }
        }
        if summary.lines.is_multiple_of(4096) {
            counting.progress(lines.offset());
        }
    }
    core.finish(&mut counting)?;
    counting.progress(lines.offset());
    summary.records = counting.records;
    Ok(summary)
}

/// Exim lines carried by syslog, fed one at a time by the syslog dispatcher.
pub struct Correlator {
    core: Core,
}

impl Correlator {
    pub fn new(_opts: &DecodeOptions) -> Self {
        Correlator::with_capacity(DEFAULT_MAX_OPEN)
    }

    /// A correlator keeping at most `max_open` messages open.
    pub fn with_capacity(max_open: usize) -> Self {
        Correlator {
            core: Core::new(max_open),
        }
    }

    /// One syslog line whose program is Exim. The message may start with its
    /// own main-log stamp (journald setups); the syslog time is used anyway.
    pub fn feed(
        &mut self,
        line: &SyslogLine<'_>,
        _at: LineRef<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let mut text = line.message.trim_end();
        if let Some((_, rest)) = parse_stamp(text, &chrono_tz::UTC) {
            text = rest;
        }
        self.core.handle(line.time, line.host, text, sink)?;
        Ok(())
    }

    /// Emit every message still open (end of input).
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.core.finish(sink)
    }
}

struct CountingSink<'a> {
    inner: &'a mut dyn Sink,
    records: u64,
}

impl Sink for CountingSink<'_> {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records += 1;
        self.inner.record(record)
    }
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.inner.reject(reject)
    }
    fn progress(&mut self, bytes: u64) {
        self.inner.progress(bytes)
    }
}

fn excerpt(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec()
}

// ---------------------------------------------------------------------------
// Stamps and ids

/// `YYYY-MM-DD HH:MM:SS[.fff] [+ZZZZ] rest` → (UTC time, rest).
fn parse_stamp<'a>(line: &'a str, tz: &chrono_tz::Tz) -> Option<(DateTime<Utc>, &'a str)> {
    let b = line.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut n: u32 = 0;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    let mut pos = 19;
    let mut nanos: u32 = 0;
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() && end - start < 9 {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = digits(start..end)?;
        nanos = frac * 10u32.pow(9 - (end - start) as u32);
        pos = end;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second.min(59), nanos)?;
    let naive = NaiveDateTime::new(date, time);
    let mut rest = match b.get(pos) {
        None => "",
        Some(b' ') => &line[pos + 1..],
        Some(_) => return None,
    };
    // Optional zone: `+0900` / `-0500` (log_timezone).
    let rb = rest.as_bytes();
    if rb.len() >= 5
        && (rb[0] == b'+' || rb[0] == b'-')
        && rb[1..5].iter().all(u8::is_ascii_digit)
        && (rb.len() == 5 || rb[5] == b' ')
    {
        let hh = i32::from(rb[1] - b'0') * 10 + i32::from(rb[2] - b'0');
        let mm = i32::from(rb[3] - b'0') * 10 + i32::from(rb[4] - b'0');
        let mut secs = hh * 3600 + mm * 60;
        if rb[0] == b'-' {
            secs = -secs;
        }
        let offset = FixedOffset::east_opt(secs)?;
        let t = offset.from_local_datetime(&naive).single()?;
        rest = rest.get(6..).unwrap_or("");
        return Some((t.with_timezone(&Utc), rest));
    }
    Some((local_to_utc(naive, tz)?, rest))
}

/// A zone-less local time in `tz`; ambiguous times (DST fall-back) take the
/// earlier instant, times in a DST gap are moved forward by the gap.
pub(crate) fn local_to_utc(naive: NaiveDateTime, tz: &chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    let later = naive.checked_add_signed(chrono::Duration::hours(1))?;
    tz.from_local_datetime(&later)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Exim message ids: `1i7jxQ-0003Lm-Ta` (6-6-2) or `1rAbCd-000000005Vv-0aBc` (6-11-4).
pub fn is_exim_id(s: &str) -> bool {
    let b = s.as_bytes();
    let (mid, last) = match b.len() {
        16 => (6, 2),
        23 => (11, 4),
        _ => return false,
    };
    b[6] == b'-'
        && b[7 + mid] == b'-'
        && b.len() == 6 + 1 + mid + 1 + last
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 6 || i == 7 + mid || c.is_ascii_alphanumeric())
}

/// Split `[pid] id rest` (both optional).
fn split_id(rest: &str) -> (Option<&str>, &str) {
    let mut rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('[') {
        if let Some(end) = r.find(']') {
            if end > 0 && r[..end].bytes().all(|c| c.is_ascii_digit()) {
                rest = r[end + 1..].trim_start();
            }
        }
    }
    let (first, after) = match rest.find(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    if is_exim_id(first) {
        (Some(first), after)
    } else {
        (None, rest)
    }
}

// ---------------------------------------------------------------------------
// Tokens

/// `H=name (helo) [ip]:port` and its shorter forms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HostSpec<'a> {
    name: Option<&'a str>,
    helo: Option<&'a str>,
    ip: Option<&'a str>,
    port: Option<&'a str>,
}

impl HostSpec<'_> {
    /// `name[ip]:port`, in the style of Postfix's `relay=`.
    fn relay(&self) -> Option<String> {
        let mut s = String::new();
        if let Some(n) = self.name {
            s.push_str(n);
        }
        if let Some(ip) = self.ip {
            s.push('[');
            s.push_str(ip);
            s.push(']');
            if let Some(p) = self.port {
                s.push(':');
                s.push_str(p);
            }
        }
        if s.is_empty() {
            self.helo.map(|h| format!("({h})"))
        } else {
            Some(s)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// `KEY=value` (quoted values unescaped lazily).
    Kv(&'a str, Value<'a>),
    Host(&'a str, HostSpec<'a>),
    Word(&'a str),
    /// Free text after `: ` (error text of `**` / `==` lines).
    Tail(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value<'a> {
    Plain(&'a str),
    /// The text between the quotes, still escaped.
    Quoted(&'a str),
}

impl<'a> Value<'a> {
    fn raw(&self) -> &'a str {
        match self {
            Value::Plain(s) | Value::Quoted(s) => s,
        }
    }
}

struct Tokens<'a> {
    s: &'a str,
    pos: usize,
    /// Free text to hand out after a `word:` token.
    pending_tail: Option<&'a str>,
}

/// Split a line's fields: `KEY=value`, `KEY="quoted"`, `H=name (helo) [ip]:port`,
/// bare words, and the free text after `: ` or after a `word:`.
fn tokenize(s: &str) -> Vec<Tok<'_>> {
    Tokens {
        s,
        pos: 0,
        pending_tail: None,
    }
    .collect()
}

fn key_len(b: &[u8]) -> Option<usize> {
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (n > 0 && b.get(n) == Some(&b'=')).then_some(n)
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        if let Some(tail) = self.pending_tail.take() {
            self.pos = self.s.len();
            return Some(Tok::Tail(tail));
        }
        let s = self.s;
        let b = s.as_bytes();
        while self.pos < b.len() && b[self.pos] == b' ' {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return None;
        }
        let start = self.pos;
        if b[start] == b':' && (start + 1 == b.len() || b[start + 1] == b' ') {
            self.pos = s.len();
            return Some(Tok::Tail(s[start + 1..].trim()));
        }
        if let Some(k) = key_len(&b[start..]) {
            let key = &s[start..start + k];
            let vstart = start + k + 1;
            if key == "H" || key == "I" {
                let (spec, end) = parse_host(s, vstart);
                self.pos = end;
                return Some(Tok::Host(key, spec));
            }
            if b.get(vstart) == Some(&b'"') {
                let (inner, end) = quoted(s, vstart);
                self.pos = end;
                return Some(Tok::Kv(key, Value::Quoted(inner)));
            }
            let end = s[vstart..].find(' ').map_or(s.len(), |i| vstart + i);
            self.pos = end;
            return Some(Tok::Kv(key, Value::Plain(&s[vstart..end])));
        }
        let end = s[start..].find(' ').map_or(s.len(), |i| start + i);
        self.pos = end;
        let word = &s[start..end];
        if word.len() > 1 && word.ends_with(':') {
            // `addr:` / `(-9):` — the rest of the line is free text.
            let tail = s[end..].trim();
            self.pos = s.len();
            if !tail.is_empty() {
                self.pending_tail = Some(tail);
            }
            return Some(Tok::Word(&word[..word.len() - 1]));
        }
        Some(Tok::Word(word))
    }
}

/// The quoted value starting at `open` (a `"`): the closing quote is the
/// first unescaped `"` followed by the end of the line or by ` KEY=`, ` from `
/// or ` for ` (Exim does not always escape quotes inside subjects); failing
/// that the last unescaped quote. Returns the inner text and the end position.
fn quoted(s: &str, open: usize) -> (&str, usize) {
    let b = s.as_bytes();
    let mut i = open + 1;
    let mut last_quote = None;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => {
                last_quote = Some(i);
                let after = &b[i + 1..];
                let closes = after.is_empty()
                    || (after[0] == b' '
                        && (key_len(&after[1..]).is_some()
                            || after[1..].starts_with(b"from ")
                            || after[1..].starts_with(b"for ")
                            || after[1..].starts_with(b": ")));
                if closes {
                    return (&s[open + 1..i], i + 1);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    match last_quote {
        Some(q) => (&s[open + 1..q], q + 1),
        None => (&s[(open + 1).min(s.len())..], s.len()),
    }
}

/// Parse `name (helo) [ip]:port*` starting at `start`; returns the spec and
/// the position after it.
fn parse_host(s: &str, start: usize) -> (HostSpec<'_>, usize) {
    let b = s.as_bytes();
    let mut spec = HostSpec::default();
    let mut pos = start;
    // name
    if pos < b.len() && b[pos] != b'(' && b[pos] != b'[' && b[pos] != b' ' {
        let end = s[pos..].find(' ').map_or(s.len(), |i| pos + i);
        spec.name = Some(&s[pos..end]);
        pos = end;
    }
    // ` (helo)` — at the start, or after one space
    let at_piece = |pos: usize, c: u8| -> Option<usize> {
        if pos < b.len() && b[pos] == c && pos == start {
            Some(pos)
        } else if pos + 1 < b.len() && b[pos] == b' ' && b[pos + 1] == c {
            Some(pos + 1)
        } else {
            None
        }
    };
    if let Some(open) = at_piece(pos, b'(') {
        if let Some(close) = s[open..].find(')') {
            spec.helo = Some(&s[open + 1..open + close]);
            pos = open + close + 1;
        }
    }
    if let Some(open) = at_piece(pos, b'[') {
        if let Some(close) = s[open..].find(']') {
            spec.ip = Some(&s[open + 1..open + close]);
            pos = open + close + 1;
            if pos + 1 < b.len() && b[pos] == b':' && b[pos + 1].is_ascii_digit() {
                let pstart = pos + 1;
                let mut pend = pstart;
                while pend < b.len() && b[pend].is_ascii_digit() {
                    pend += 1;
                }
                spec.port = Some(&s[pstart..pend]);
                pos = pend;
            }
            if pos < b.len() && b[pos] == b'*' {
                pos += 1;
            }
        }
    }
    // Anything glued to the spec (e.g. `DS`, a quote) up to the next space is skipped.
    if pos < b.len() && b[pos] != b' ' && b[pos] != b':' {
        pos = s[pos..].find(' ').map_or(s.len(), |i| pos + i);
    }
    (spec, pos)
}

/// Undo Exim's string_printing escapes (`\"`, `\\`, `\n`, `\t`, `\r`,
/// `\ooo`). The result is kept only if it is valid UTF-8 (octal escapes are
/// the bytes of UTF-8 text when `print_topbitchars` is off); otherwise the
/// escaped text is returned unchanged.
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            match c {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'0'..=b'7'
                    if i + 3 < b.len()
                        && (b'0'..=b'7').contains(&b[i + 2])
                        && (b'0'..=b'7').contains(&b[i + 3]) =>
                {
                    let v = u32::from(c - b'0') * 64
                        + u32::from(b[i + 2] - b'0') * 8
                        + u32::from(b[i + 3] - b'0');
                    match u8::try_from(v) {
                        Ok(v) => out.push(v),
                        Err(_) => return Cow::Borrowed(s),
                    }
                    i += 4;
                    continue;
                }
                other => out.push(other),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(_) => Cow::Borrowed(s),
    }
}

/// A subject from `T="..."`: unescaped, and RFC 2047 encoded-words decoded
/// through mail-parser when there are any.
fn decode_subject(raw: &str) -> String {
    let text = unescape(raw).into_owned();
    if !(text.contains("=?") && text.contains("?=")) {
        return text;
    }
    let mut header = Vec::with_capacity(text.len() + 16);
    header.extend_from_slice(b"Subject: ");
    header.extend_from_slice(text.replace(['\r', '\n'], " ").as_bytes());
    header.extend_from_slice(b"\r\n\r\n");
    let decoded = std::panic::catch_unwind(|| {
        mail_parser::MessageParser::default()
            .parse_headers(&header)
            .and_then(|m| m.subject().map(str::to_string))
    });
    match decoded {
        Ok(Some(s)) if !s.is_empty() => s,
        _ => text,
    }
}

/// An address as a delivery recipient: normalised when possible, else the
/// trimmed raw text (pipes, files, `:blackhole:` keep their form).
pub(crate) fn recipient_text(raw: &str) -> String {
    normalize_address(raw).unwrap_or_else(|| {
        let t = raw.trim();
        let t = t
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .unwrap_or(t);
        t.trim().to_lowercase()
    })
}

/// A stable key for a record that has no id of its own (a rejection): time
/// and a hash of the text, plus an occurrence number among identical lines.
pub(crate) struct NoIdKeys {
    second: i64,
    seen: HashMap<[u8; 8], u32>,
}

impl NoIdKeys {
    pub(crate) fn new() -> Self {
        NoIdKeys {
            second: i64::MIN,
            seen: HashMap::new(),
        }
    }

    pub(crate) fn key(&mut self, prefix: &str, time: DateTime<Utc>, text: &str) -> String {
        let second = time.timestamp();
        if second != self.second {
            self.second = second;
            self.seen.clear();
        }
        let hash = blake3::hash(text.as_bytes());
        let mut short = [0u8; 8];
        short.copy_from_slice(&hash.as_bytes()[..8]);
        let n = self.seen.entry(short).or_insert(0);
        *n += 1;
        let hex: String = short.iter().map(|b| format!("{b:02x}")).collect();
        let stamp = time.format("%Y%m%dT%H%M%S%.fZ");
        if *n == 1 {
            format!("{prefix}:reject@{stamp}:{hex}")
        } else {
            format!("{prefix}:reject@{stamp}:{hex}:{n}")
        }
    }
}

// ---------------------------------------------------------------------------
// Open messages (shared with sendmail.rs)

/// Open messages by key, with a bound: inserting into a full map evicts
/// (returns) the oldest entry. Insertion order is kept in a deque that is
/// compacted when stale slots pile up, so memory follows the open set.
pub(crate) struct OpenMap<V> {
    map: HashMap<String, (u64, V)>,
    order: VecDeque<(u64, String)>,
    seq: u64,
    cap: usize,
}

impl<V> OpenMap<V> {
    pub(crate) fn new(cap: usize) -> Self {
        OpenMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let v = self.map.remove(key).map(|(_, v)| v);
        self.compact();
        v
    }

    /// Insert (replacing any entry under the same key, which is returned
    /// first); when full, the oldest entry is evicted and returned too.
    pub(crate) fn insert(&mut self, key: String, value: V) -> Vec<V> {
        let mut out = Vec::new();
        if let Some((_, old)) = self.map.remove(&key) {
            out.push(old);
        }
        while self.map.len() >= self.cap {
            match self.pop_oldest() {
                Some(v) => out.push(v),
                None => break,
            }
        }
        self.seq += 1;
        self.order.push_back((self.seq, key.clone()));
        self.map.insert(key, (self.seq, value));
        self.compact();
        out
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<V> {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|(s, _)| *s == seq) {
                return self.map.remove(&key).map(|(_, v)| v);
            }
        }
        None
    }

    /// Every entry, oldest first.
    pub(crate) fn drain(&mut self) -> Vec<V> {
        let mut out = Vec::with_capacity(self.map.len());
        while let Some(v) = self.pop_oldest() {
            out.push(v);
        }
        self.map.clear();
        self.order.clear();
        out
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(seq, key)| map.get(key).is_some_and(|(s, _)| s == seq));
        }
    }
}

// ---------------------------------------------------------------------------
// The correlating core

#[derive(Debug)]
struct Msg {
    host: String,
    id: String,
    arrived: bool,
    first_seen: Option<DateTime<Utc>>,
    envelope_from: Option<String>,
    message_id: Option<String>,
    subject: Option<String>,
    size: Option<u64>,
    client_ip: Option<String>,
    recipients: Vec<Recipient>,
    deliveries: Vec<Delivery>,
}

impl Msg {
    fn new(host: &str, id: &str) -> Msg {
        Msg {
            host: host.to_string(),
            id: id.to_string(),
            arrived: false,
            first_seen: None,
            envelope_from: None,
            message_id: None,
            subject: None,
            size: None,
            client_ip: None,
            recipients: Vec::new(),
            deliveries: Vec::new(),
        }
    }

    fn system(&self) -> String {
        format!("exim@{}", self.host)
    }

    fn seen(&mut self, time: DateTime<Utc>) {
        self.first_seen = Some(self.first_seen.map_or(time, |t| t.min(time)));
    }

    fn add_recipient(&mut self, address: &str) {
        if let Some(r) = Recipient::new(address, None, RecipientKind::Envelope) {
            merge_recipient(&mut self.recipients, r);
        }
    }

    fn into_record(self) -> MessageRecord {
        let system = self.system();
        MessageRecord {
            keys: vec![format!("exim@{}:{}", self.host, self.id)],
            message_id: self.message_id,
            first_seen: self.first_seen,
            envelope_from: self.envelope_from,
            recipients: self.recipients,
            subject: self.subject,
            size: self.size,
            client_ip: self.client_ip,
            systems: vec![system],
            deliveries: self.deliveries,
            ..Default::default()
        }
    }
}

/// The grammar and the open-message state shared by both entry points.
pub(crate) struct Core {
    open: OpenMap<Msg>,
    noid: NoIdKeys,
}

impl Core {
    pub(crate) fn new(max_open: usize) -> Self {
        Core {
            open: OpenMap::new(max_open),
            noid: NoIdKeys::new(),
        }
    }

    /// One line's text after the stamp (`[pid] id FLAG ...` or an id-less
    /// event). Returns whether the line contributed to a record.
    pub(crate) fn handle(
        &mut self,
        time: DateTime<Utc>,
        host: &str,
        text: &str,
        sink: &mut dyn Sink,
    ) -> Result<bool, SinkError> {
        let (id, rest) = split_id(text);
        let Some(id) = id else {
            return self.reject_without_id(time, host, rest, sink);
        };
        let key = format!("{host}:{id}");
        let (flag, body) = match rest.find(' ') {
            Some(i) => (&rest[..i], rest[i + 1..].trim_start()),
            None => (rest, ""),
        };
        match flag {
            "<=" => self.arrival(time, host, id, &key, body, sink),
            "=>" | "->" | ">>" | "*>" | "**" | "==" => {
                self.delivery(time, host, id, &key, flag, body, sink)
            }
            "Completed" => match self.open.remove(&key) {
                Some(msg) => {
                    sink.record(msg.into_record())?;
                    Ok(true)
                }
                None => Ok(false),
            },
            _ => {
                if let Some(kind) = rejection_kind(rest) {
                    self.reject_with_id(time, host, id, &key, rest, kind, sink)
                } else {
                    Ok(false)
                }
            }
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        for msg in self.open.drain() {
            sink.record(msg.into_record())?;
        }
        Ok(())
    }

    /// The open message under `key`, created if needed; evicted entries are emitted.
    fn entry(
        &mut self,
        host: &str,
        id: &str,
        key: &str,
        sink: &mut dyn Sink,
    ) -> Result<&mut Msg, SinkError> {
        if !self.open.contains(key) {
            for old in self.open.insert(key.to_string(), Msg::new(host, id)) {
                sink.record(old.into_record())?;
            }
        }
        match self.open.get_mut(key) {
            Some(m) => Ok(m),
            None => Err(SinkError(format!("exim: open message {key} vanished"))),
        }
    }

    fn arrival(
        &mut self,
        time: DateTime<Utc>,
        host: &str,
        id: &str,
        key: &str,
        body: &str,
        sink: &mut dyn Sink,
    ) -> Result<bool, SinkError> {
        // An id seen arriving twice is a new message (concatenated logs, id reuse).
        if self.open.get(key).is_some_and(|m| m.arrived) {
            if let Some(old) = self.open.remove(key) {
                sink.record(old.into_record())?;
            }
        }
        let msg = self.entry(host, id, key, sink)?;
        msg.arrived = true;
        msg.seen(time);
        let mut client: Option<HostSpec<'_>> = None;
        let mut detail: Vec<String> = Vec::new();
        let mut sender_seen = false;
        let mut in_for = false;
        let mut after_from = false;
        for tok in tokenize(body) {
            match tok {
                Tok::Word(w) if !sender_seen => {
                    sender_seen = true;
                    msg.envelope_from = normalize_address(w);
                }
                Tok::Word("for") => in_for = true,
                Tok::Word("from") => after_from = true,
                Tok::Word(w) if in_for => msg.add_recipient(w),
                Tok::Word(w) if after_from => {
                    after_from = false;
                    if msg.envelope_from.is_none() {
                        msg.envelope_from = normalize_address(w);
                    }
                }
                Tok::Host("H", spec) => client = Some(spec),
                Tok::Kv("S", v) => msg.size = v.raw().parse().ok(),
                Tok::Kv("id", v) => msg.message_id = normalize_message_id(&unescape(v.raw())),
                Tok::Kv("T", v) => msg.subject = Some(decode_subject(v.raw())),
                Tok::Kv(k @ ("P" | "U" | "A" | "R" | "X"), v) => {
                    detail.push(format!("{k}={}", v.raw()))
                }
                _ => {}
            }
        }
        let (client_ip, client_host) = match &client {
            Some(h) => (h.ip.map(str::to_string), h.name.map(str::to_string)),
            None => (None, None),
        };
        if msg.client_ip.is_none() {
            msg.client_ip = client_ip.clone();
        }
        let delivery = Delivery {
            time,
            recipient: String::new(),
            status: DeliveryStatus::Received,
            detail: (!detail.is_empty()).then(|| detail.join(" ")),
            system: msg.system(),
            relay: None,
            client_ip,
            client_host,
            local_id: Some(id.to_string()),
            original_recipient: None,
        };
        msg.deliveries.push(delivery);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn delivery(
        &mut self,
        time: DateTime<Utc>,
        host: &str,
        id: &str,
        key: &str,
        flag: &str,
        body: &str,
        sink: &mut dyn Sink,
    ) -> Result<bool, SinkError> {
        let mut target: Option<&str> = None;
        let mut original: Option<&str> = None;
        let mut parent: Option<&str> = None;
        let mut remote: Option<HostSpec<'_>> = None;
        let mut transport: Option<&str> = None;
        let mut confirmation: Option<String> = None;
        let mut tail: Option<&str> = None;
        for tok in tokenize(body) {
            match tok {
                Tok::Word(w) if target.is_none() => target = Some(w),
                Tok::Word(w) if w.starts_with('<') && w.ends_with('>') && original.is_none() => {
                    original = Some(w)
                }
                Tok::Word(w) if w.starts_with('(') && w.ends_with(')') && parent.is_none() => {
                    parent = Some(&w[1..w.len() - 1])
                }
                Tok::Host("H", spec) => remote = Some(spec),
                Tok::Kv("T", v) => transport = Some(v.raw()),
                Tok::Kv("C", v) => confirmation = Some(unescape(v.raw()).into_owned()),
                Tok::Tail(t) => tail = Some(t),
                _ => {}
            }
        }
        let Some(target) = target else {
            return Ok(false);
        };
        let status = match flag {
            "**" => DeliveryStatus::Bounced,
            "==" => DeliveryStatus::Deferred,
            "*>" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Delivered,
        };
        // The recipient is the delivered address when it is one; a local
        // part, pipe, file or `:blackhole:` stands for the address it came from.
        let original_addr = original.map(recipient_text);
        let recipient = if target.contains('@') {
            recipient_text(target)
        } else if let Some(p) = parent.filter(|p| p.contains('@')) {
            recipient_text(p)
        } else if let Some(o) = &original_addr {
            o.clone()
        } else {
            recipient_text(target)
        };
        let mut detail_parts: Vec<String> = Vec::new();
        if let Some(c) = confirmation {
            detail_parts.push(c);
        }
        if let Some(t) = tail {
            detail_parts.push(t.to_string());
        }
        if !target.contains('@') && recipient != recipient_text(target) {
            detail_parts.push(format!("local target {target}"));
        }
        if flag == "*>" {
            detail_parts.push("delivery suppressed (*>)".to_string());
        }
        let relay = remote
            .as_ref()
            .and_then(HostSpec::relay)
            .or_else(|| transport.map(str::to_string));
        let msg = self.entry(host, id, key, sink)?;
        msg.seen(time);
        if recipient.contains('@') {
            msg.add_recipient(&recipient);
        }
        let system = msg.system();
        msg.deliveries.push(Delivery {
            time,
            original_recipient: original_addr.filter(|o| *o != recipient),
            recipient,
            status,
            detail: (!detail_parts.is_empty()).then(|| detail_parts.join("; ")),
            system,
            relay,
            client_ip: None,
            client_host: None,
            local_id: Some(id.to_string()),
        });
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn reject_with_id(
        &mut self,
        time: DateTime<Utc>,
        host: &str,
        id: &str,
        key: &str,
        rest: &str,
        kind: RejectKind,
        sink: &mut dyn Sink,
    ) -> Result<bool, SinkError> {
        let facts = RejectFacts::parse(rest, kind);
        let msg = self.entry(host, id, key, sink)?;
        msg.seen(time);
        facts.apply(msg, time, Some(id));
        if let Some(msg) = self.open.remove(key) {
            sink.record(msg.into_record())?;
        }
        Ok(true)
    }

    fn reject_without_id(
        &mut self,
        time: DateTime<Utc>,
        host: &str,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<bool, SinkError> {
        let Some(kind) = rejection_kind(rest) else {
            return Ok(false);
        };
        let facts = RejectFacts::parse(rest, kind);
        let key = self.noid.key(&format!("exim@{host}"), time, rest);
        let id = key
            .split_once(':')
            .map_or(key.as_str(), |(_, id)| id)
            .to_string();
        let mut msg = Msg::new(host, &id);
        msg.seen(time);
        facts.apply(&mut msg, time, None);
        sink.record(msg.into_record())?;
        Ok(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RejectKind {
    Rcpt,
    Mail,
    Data,
}

/// Which message-level rejection a line reports, if any. Connection-level
/// refusals (`rejected connection`, `rejected EHLO`, protocol errors) are not
/// messages and are left to the caller to ignore.
fn rejection_kind(rest: &str) -> Option<RejectKind> {
    let at = rest
        .find(" rejected ")
        .map(|i| i + 1)
        .or_else(|| rest.starts_with("rejected ").then_some(0))?;
    let after = &rest[at + "rejected ".len()..];
    if after.starts_with("RCPT") {
        Some(RejectKind::Rcpt)
    } else if after.starts_with("MAIL") {
        Some(RejectKind::Mail)
    } else if after.starts_with("after DATA")
        || after.starts_with("DATA")
        || after.starts_with("by local_scan")
        || after.starts_with("by non-SMTP ACL")
        || after.starts_with("after BDAT")
    {
        Some(RejectKind::Data)
    } else {
        None
    }
}

struct RejectFacts<'a> {
    sender: Option<String>,
    recipient: String,
    client: Option<HostSpec<'a>>,
    detail: &'a str,
}

impl<'a> RejectFacts<'a> {
    fn parse(rest: &'a str, kind: RejectKind) -> RejectFacts<'a> {
        let cut = rest
            .find("temporarily rejected ")
            .or_else(|| rest.find("rejected "))
            .unwrap_or(0);
        let (fields, detail) = rest.split_at(cut);
        let mut facts = RejectFacts {
            sender: None,
            recipient: String::new(),
            client: None,
            detail: detail.trim(),
        };
        for tok in tokenize(fields) {
            match tok {
                Tok::Host("H", spec) => facts.client = Some(spec),
                Tok::Kv("F", v) => facts.sender = normalize_address(v.raw()),
                _ => {}
            }
        }
        let after = detail
            .trim_start_matches("temporarily ")
            .trim_start_matches("rejected ");
        match kind {
            RejectKind::Rcpt => {
                let addr = after.strip_prefix("RCPT").unwrap_or(after).trim_start();
                let addr = addr.split(' ').next().unwrap_or("").trim_end_matches(':');
                facts.recipient = recipient_text(addr);
            }
            RejectKind::Mail => {
                let addr = after.strip_prefix("MAIL").unwrap_or(after).trim_start();
                let addr = addr.split(' ').next().unwrap_or("").trim_end_matches(':');
                if facts.sender.is_none() {
                    facts.sender = normalize_address(addr);
                }
            }
            RejectKind::Data => {}
        }
        facts
    }

    fn apply(self, msg: &mut Msg, time: DateTime<Utc>, id: Option<&str>) {
        if msg.envelope_from.is_none() {
            msg.envelope_from = self.sender;
        }
        let (client_ip, client_host) = match &self.client {
            Some(h) => (h.ip.map(str::to_string), h.name.map(str::to_string)),
            None => (None, None),
        };
        if msg.client_ip.is_none() {
            msg.client_ip = client_ip.clone();
        }
        if self.recipient.contains('@') {
            msg.add_recipient(&self.recipient);
        }
        let system = msg.system();
        msg.deliveries.push(Delivery {
            time,
            recipient: self.recipient,
            status: DeliveryStatus::Rejected,
            detail: Some(self.detail.to_string()),
            system,
            relay: None,
            client_ip,
            client_host,
            local_id: id.map(str::to_string),
            original_recipient: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::VecSink;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn recognises_both_id_forms() {
        assert!(is_exim_id("1i7jxQ-0003Lm-Ta"));
        assert!(is_exim_id("1rAbCd-000000005Vv-0aBc"));
        assert!(is_exim_id("10HmaX-000000005vi-0000"));
        assert!(!is_exim_id("1i7jxQ-0003Lm-T"));
        assert!(!is_exim_id("1i7jxQ_0003Lm-Ta"));
        assert!(!is_exim_id("Completed"));
    }

    #[test]
    fn stamps_with_millis_and_zone() {
        let tz = chrono_tz::Asia::Tokyo;
        let (time, rest) = parse_stamp("2023-05-30 06:10:13.345 x y", &tz).unwrap();
        assert_eq!(time, t("2023-05-29T21:10:13.345Z"));
        assert_eq!(rest, "x y");
        let (time, rest) =
            parse_stamp("2023-05-30 06:10:13 +0200 1i7jxQ-0003Lm-Ta <= a", &tz).unwrap();
        assert_eq!(time, t("2023-05-30T04:10:13Z"));
        assert_eq!(rest, "1i7jxQ-0003Lm-Ta <= a");
        assert!(parse_stamp("2023-05-30T06:10:13 x", &tz).is_none());
        assert!(parse_stamp("2023-13-30 06:10:13 x", &tz).is_none());
        assert!(parse_stamp("******** SERVER ********", &tz).is_none());
    }

    #[test]
    fn host_spec_forms() {
        let toks = tokenize("H=name.example (helo.example) [192.0.2.1]:25 P=esmtp");
        assert_eq!(
            toks[0],
            Tok::Host(
                "H",
                HostSpec {
                    name: Some("name.example"),
                    helo: Some("helo.example"),
                    ip: Some("192.0.2.1"),
                    port: Some("25"),
                }
            )
        );
        assert_eq!(toks[1], Tok::Kv("P", Value::Plain("esmtp")));
        let toks = tokenize("H=([2.181.148.95]) [2.181.148.95]:52391 I=[1.2.3.4]:25 F=a@b");
        match &toks[0] {
            Tok::Host(_, h) => {
                assert_eq!(h.name, None);
                assert_eq!(h.helo, Some("[2.181.148.95]"));
                assert_eq!(h.ip, Some("2.181.148.95"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(toks[2], Tok::Kv("F", Value::Plain("a@b")));
    }

    #[test]
    fn failure_tail_after_host_star() {
        let toks = tokenize(
            "c@test.ex R=all T=smtp H=127.0.0.1 [127.0.0.1]* : SMTP error from remote mail server after RCPT TO:<c@test.ex>: 550 Recipient not OK",
        );
        assert_eq!(
            toks.last(),
            Some(&Tok::Tail(
                "SMTP error from remote mail server after RCPT TO:<c@test.ex>: 550 Recipient not OK"
            ))
        );
        let toks = tokenize("userx@test.ex R=smart T=local_delivery defer (-9): failed to lock");
        assert_eq!(toks.last(), Some(&Tok::Tail("failed to lock")));
        assert!(toks.contains(&Tok::Word("(-9)")));
    }

    #[test]
    fn quoted_subject_with_inner_quotes_and_escapes() {
        let toks = tokenize(r#"a@b S=12 T="Re: \"x\" and "y" here" from <a@b> for c@d"#);
        assert_eq!(
            toks[2],
            Tok::Kv("T", Value::Quoted(r#"Re: \"x\" and "y" here"#))
        );
        assert_eq!(decode_subject(r#"Re: \"x\""#), r#"Re: "x""#);
        assert_eq!(decode_subject(r"\346\227\245\346\234\254"), "日本");
        assert_eq!(decode_subject("=?UTF-8?B?5pel5pys?="), "日本");
    }

    #[test]
    fn syslog_feed_builds_one_message() {
        let mut c = Correlator::with_capacity(10);
        let mut sink = VecSink::default();
        let raw = b"";
        let at = LineRef {
            source: "x",
            line: 1,
            raw,
        };
        let lines = [
            "1i7jxQ-0003Lm-Ta <= a@example.org H=mx.example.org [192.0.2.7] P=esmtp S=1234 id=m1@example.org T=\"Hi\"",
            "1i7jxQ-0003Lm-Ta => b@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.2] C=\"250 OK\"",
            "1i7jxQ-0003Lm-Ta Completed",
        ];
        for m in lines {
            let line = SyslogLine {
                time: t("2024-01-02T03:04:05Z"),
                host: "mx1",
                program: "exim",
                pid: Some(1),
                message: m,
            };
            c.feed(&line, at, &mut sink).unwrap();
        }
        assert_eq!(sink.records.len(), 1);
        let r = &sink.records[0];
        assert_eq!(r.keys, vec!["exim@mx1:1i7jxQ-0003Lm-Ta".to_string()]);
        assert_eq!(r.message_id.as_deref(), Some("m1@example.org"));
        assert_eq!(r.size, Some(1234));
        assert_eq!(r.deliveries.len(), 2);
        assert_eq!(
            r.deliveries[1].relay.as_deref(),
            Some("mx.example.net[198.51.100.2]")
        );
        c.finish(&mut sink).unwrap();
        assert_eq!(sink.records.len(), 1);
    }

    #[test]
    fn open_map_evicts_oldest_and_stays_compact() {
        let mut m = OpenMap::new(3);
        for i in 0..3 {
            assert!(m.insert(format!("k{i}"), i).is_empty());
        }
        assert_eq!(m.insert("k3".into(), 3), vec![0]);
        assert_eq!(m.remove("k2"), Some(2));
        for i in 10..5000 {
            m.insert(format!("k{i}"), i);
            m.remove(&format!("k{i}"));
        }
        assert!(m.order.len() <= 2 * m.len() + 1024 + 1);
        assert_eq!(m.drain(), vec![1, 3]);
    }
}
