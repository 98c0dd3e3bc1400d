//! Microsoft 365 / Exchange Online message trace exports: one record per
//! email from the per-recipient rows and per-event lines Microsoft gives out.
//!
//! What is read (FORMATS.md b):
//!
//! | input | shape | one row / object is |
//! |---|---|---|
//! | `Get-MessageTrace` / `Get-MessageTraceV2` \| `Export-Csv` | CSV with `Received, SenderAddress, RecipientAddress, Subject, Status, ToIP, FromIP, Size, MessageId, MessageTraceId, …`, with or without the `#TYPE …` first line | one message to one recipient |
//! | the same \| `ConvertTo-Json` | a JSON array, or a single object for one row | one message to one recipient |
//! | Graph (beta) `messageTraces` list response | `{"value": [{id, senderAddress, recipientAddress, messageId, receivedDateTime, subject, size, fromIP, toIP, status}], "@odata.nextLink": …}` | one message to one recipient |
//! | `Get-MessageTraceDetail(V2)` (CSV or JSON) and Graph `getDetailsByRecipient` | `Date, Event, Action, Detail, Data, MessageTraceId, RecipientAddress, …` / `{value: [{id, messageId, dateTime, event, action, description, data}]}` | one event of one message for one recipient |
//! | historical search, enhanced summary report | CSV `origin_timestamp[_utc], sender_address, recipient_status, message_subject, total_bytes, message_id, network_message_id, original_client_ip, directionality, connector_id, delivery_priority` | one message, all recipients (`addr##Receive, Deliver;addr2##…`) |
//! | historical search, extended report | CSV with the message tracking columns in `snake_case` (`date_time[_utc], client_ip, …, event_id, …, recipient_address, …`) | one event of one message |
//!
//! Why it is shaped this way:
//!
//! - **One reader for every wrapping.** Exports are made by hand, so the
//!   same rows arrive as CSV or JSON, UTF-8 with or without BOM, or UTF-16
//!   (Windows PowerShell's `>` and `Out-File` write UTF-16LE; historical
//!   search reports are UTF-16 too): [`text_input`] transcodes, then the
//!   first non-blank byte decides JSON (`{` or `[`) or CSV. JSON is split
//!   into top-level values (an array's elements, NDJSON lines, concatenated
//!   or single objects) by a small scanner that never holds more than one
//!   value, so an export of any size streams; CSV records may span lines
//!   inside quotes. Every value or row is capped ([`MAX_RECORD_BYTES`], at
//!   most `DecodeOptions::max_message_bytes`); longer ones are rejected with
//!   their head kept for quarantine.
//! - **The kind is read from the names, per object.** A CSV header must
//!   carry the documented column names of one kind (case-insensitive); a
//!   JSON object is a trace row when it has a received time and a
//!   recipient, a detail event when it has a date and an event, a Graph
//!   page when it has a `value` array of those. PowerShell's PascalCase and
//!   Graph's camelCase names are looked up the same way.
//! - **Dates.** Everything is UTC as documented; a time without a zone is
//!   UTC. Accepted: ISO 8601 / RFC 3339 (up to 9 fractional digits, with or
//!   without zone, `T` or space), `/Date(1700000000000)/` (Windows
//!   PowerShell's ConvertTo-Json, also inside its `{"value": …, "DateTime":
//!   …}` wrapper), and `Export-Csv`'s culture formats: year first
//!   (`yyyy/MM/dd H:mm:ss` ja-JP / zh-CN, `yyyy-MM-dd`, `yyyy.MM.dd`), year
//!   last with dots or dashes (day first: de-DE, ru-RU, nl-NL) and year last
//!   with slashes, where `M/d/yyyy h:mm:ss tt` (en-US) and `dd/MM/yyyy
//!   HH:mm:ss` (en-GB, fr-FR) differ. That last case is settled per file:
//!   a day above 12 in any date column of any row fixes the order for the
//!   rest of the file; before such evidence a date with an AM/PM marker is
//!   read month first (en-US), one without day first. AM/PM markers:
//!   `AM`/`PM`, `a.m.`/`p.m.`, `午前`/`午後`, `오전`/`오후`, `上午`/`下午`.
//! - **Records.** Rows of one message are folded into one record in the
//!   decoder (by MessageTraceId / network message id, else Message-ID), at
//!   most [`DEFAULT_MAX_OPEN`] open at once (the oldest is emitted early
//!   beyond that; the store merges partial views). System `m365`; keys
//!   `m365:<MessageTraceId>` (the network message id, lower case), else
//!   `m365:<Message-ID>`, else a hash of the row; `message_id` without `<>`;
//!   `envelope_from` from SenderAddress (the trace's sender is the envelope
//!   sender; `from` is left to sources that see the header); recipients as
//!   envelope recipients (the trace cannot tell To, Cc and Bcc apart);
//!   client IP from FromIP; size; subject; `first_seen` the received time.
//!   Direction is left to the store.
//! - **Deliveries.** Each message gets one `received` delivery (recipient
//!   empty, the client IP from FromIP) per received time, as the other
//!   decoders count arrivals; each recipient row one delivery with the
//!   status below at the received time (the trace has no later time), relay
//!   `[ToIP]`, `local_id` the MessageTraceId, detail the Microsoft status
//!   when it is not the same word.
//!
//! Trace status → delivery status:
//!
//! | Get-MessageTrace / Graph status | delivery | why |
//! |---|---|---|
//! | Delivered | `delivered` | |
//! | Failed | `failed` | Microsoft's Failed covers non-delivery reports, transport-rule blocks and malware drops alike; nothing says a bounce went out, so not `bounced` |
//! | Pending | `deferred` | "delivery is being attempted or re-attempted" |
//! | Expanded | `expanded` (recipient: the group) | the row is the distribution group; its members have rows of their own |
//! | Quarantined | `quarantined` | |
//! | FilteredAsSpam | `quarantined` (detail `FilteredAsSpam`) | held by the spam filter; mail moved to Junk is `Delivered` in the trace |
//! | GettingStatus | `received` (detail `GettingStatus`) | accepted, fate not known yet |
//! | Resolved | `forwarded` (detail `Resolved`) | redirected to another address by a directory lookup |
//! | None, anything else | no delivery (the recipient is kept; counted in [`TraceSummary::without_status`]) | "rejected or redirected": no telling which |
//!
//! Events (detail reports, the extended report, the events named in the
//! enhanced summary's `recipient_status`) → delivery status, with spaces
//! and case ignored: Receive → the message's `received`; Deliver, Send,
//! Send external → `delivered` (relay `server_hostname[server_ip]` when the
//! extended report names it); Fail, Drop, Badmail, DeliverFail → `failed`;
//! Defer → `deferred`; Expand → `expanded`; Redirect → `forwarded`; an
//! event naming Quarantine (not Quarantine release) → `quarantined`; HA*
//! (shadow redundancy) → nothing, the line is ignored; any other event
//! (Submit, Transfer, Resolve, Spam, Transport rule, …) → no delivery. The
//! summary report gives each recipient one delivery, the status of its
//! last such event, with the chain of events as detail. Graph's
//! `getDetailsByRecipient` response does not name the recipient: imported
//! from a file its deliveries have an empty recipient (the message as a
//! whole); the poller passes the recipient it asked about to
//! [`graph_details_page`].
//!
//! Detection ([`looks_like_trace`]): a CSV header (after an optional
//! `#TYPE` line) with Received, SenderAddress, RecipientAddress, Status and
//! MessageTraceId or MessageId; or Date, Event, RecipientAddress and
//! MessageTraceId; or origin_timestamp, sender_address, recipient_status
//! and message_id; or date_time, event_id, recipient_address and message_id
//! or network_message_id. JSON whose first object carries the same sets of
//! keys (Received/RecipientAddress/SenderAddress/Status,
//! receivedDateTime/recipientAddress/senderAddress/status,
//! dateTime/event/messageId plus description or action,
//! Date/Event/RecipientAddress/MessageTraceId).
//!
//! Nothing here panics on input; malformed values and rows are
//! [`Reject`]s with the file and line.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mailtrail_model::{
    normalize_address, normalize_message_id, Delivery, DeliveryStatus, MessageRecord, Position,
    Recipient, RecipientKind, Reject,
};
use serde_json::{Map, Value};

use crate::lines::{Line, LineReader};
use crate::{DecodeOptions, IngestError, Sink, SinkError, QUARANTINE_EXCERPT_BYTES};

/// The system name of message trace deliveries.
pub const SYSTEM: &str = "m365";

/// The largest JSON value or CSV record read (also capped by
/// `DecodeOptions::max_message_bytes`). Trace rows are small; audit records
/// carry item lists.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Messages folded at once before the oldest is emitted as it stands. Rows
/// of one message are adjacent in these exports (they share the received
/// time the exports are sorted by), so a few thousand open messages fold
/// nearly everything while memory stays a few megabytes.
pub const DEFAULT_MAX_OPEN: usize = 10_000;

/// Reject code: a JSON value that does not parse, or bytes that are no JSON value.
pub const CODE_JSON: &str = "m365.json";
/// Reject code: a CSV record that is not RFC 4180 (unterminated quote, text after a quote).
pub const CODE_CSV: &str = "m365.csv";
/// Reject code: a value or row longer than the limit.
pub const CODE_TOO_LONG: &str = "m365.too_long";
/// Reject code: a CSV header that names no known message trace layout, and the rows after it.
pub const CODE_HEADER: &str = "m365.header";
/// Reject code: a row with another number of fields than its header.
pub const CODE_FIELD_COUNT: &str = "m365.field_count";
/// Reject code: a missing or unreadable time.
pub const CODE_DATE: &str = "m365.date";
/// Reject code: an object or row without the fields of any message trace kind.
pub const CODE_FIELDS: &str = "m365.fields";

// ---------------------------------------------------------------------------
// Input: text, JSON values, CSV records (shared with `o365audit`)
// ---------------------------------------------------------------------------

/// The input as UTF-8 text: a UTF-8 byte-order mark is dropped and UTF-16
/// (little or big endian, with its byte-order mark) is transcoded.
pub fn text_input<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn BufRead + 'a>> {
    let mut prefix = [0u8; 3];
    let mut n = 0;
    while n < prefix.len() {
        match reader.read(&mut prefix[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let prefix = &prefix[..n];
    if prefix.starts_with(b"\xEF\xBB\xBF") {
        return Ok(Box::new(reader));
    }
    for (bom, little) in [(b"\xFF\xFE", true), (b"\xFE\xFF", false)] {
        if prefix.starts_with(bom) {
            let rest = Cursor::new(prefix[2..].to_vec()).chain(reader);
            return Ok(Box::new(BufReader::with_capacity(
                64 * 1024,
                Utf16Reader::new(rest, little),
            )));
        }
    }
    Ok(Box::new(Cursor::new(prefix.to_vec()).chain(reader)))
}

/// UTF-16 bytes in, UTF-8 bytes out; unpaired surrogates and a dangling
/// odd byte become U+FFFD.
struct Utf16Reader<R> {
    inner: R,
    little: bool,
    carry: Option<u8>,
    high: Option<u16>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> Utf16Reader<R> {
    fn new(inner: R, little: bool) -> Self {
        Utf16Reader {
            inner,
            little,
            carry: None,
            high: None,
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn push(&mut self, c: char) {
        let mut b = [0u8; 4];
        self.out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }

    fn unit(&mut self, u: u16) {
        if let Some(h) = self.high.take() {
            if (0xDC00..=0xDFFF).contains(&u) {
                let c = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(u) - 0xDC00);
                self.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                return;
            }
            self.push('\u{FFFD}');
        }
        match u {
            0xD800..=0xDBFF => self.high = Some(u),
            0xDC00..=0xDFFF => self.push('\u{FFFD}'),
            _ => self.push(char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')),
        }
    }

    fn pair(&self, a: u8, b: u8) -> u16 {
        if self.little {
            u16::from_le_bytes([a, b])
        } else {
            u16::from_be_bytes([a, b])
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let mut raw = [0u8; 16 * 1024];
        let n = loop {
            match self.inner.read(&mut raw) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.done = true;
            for dangling in [self.high.take().is_some(), self.carry.take().is_some()] {
                if dangling {
                    self.push('\u{FFFD}');
                }
            }
            return Ok(());
        }
        let mut bytes = &raw[..n];
        if let Some(c) = self.carry.take() {
            let u = self.pair(c, bytes[0]);
            self.unit(u);
            bytes = &bytes[1..];
        }
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            let u = self.pair(c[0], c[1]);
            self.unit(u);
        }
        if let [last] = chunks.remainder() {
            self.carry = Some(*last);
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = (self.out.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The head of an input as text, for detection: BOMs handled as [`text_input`] does.
pub(crate) fn head_text(head: &[u8]) -> String {
    if let Some(rest) = head.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    for (bom, little) in [(b"\xFF\xFE", true), (b"\xFE\xFF", false)] {
        if let Some(rest) = head.strip_prefix(bom) {
            let mut r = Utf16Reader::new(rest, little);
            let mut out = Vec::new();
            if r.read_to_end(&mut out).is_err() {
                return String::new();
            }
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    String::from_utf8_lossy(head).into_owned()
}

/// What the head of an input shows: a CSV header or the keys of JSON.
pub(crate) enum HeadShape {
    /// The header's names, trimmed and lower-cased.
    Csv(Vec<String>),
    /// Object keys seen in the head (up to four levels deep), as written.
    Json(HashSet<String>),
    None,
}

/// Read the shape of an input's head (see [`HeadShape`]).
pub(crate) fn head_shape(head: &[u8]) -> HeadShape {
    let text = head_text(head);
    let trimmed = text.trim_start();
    match trimmed.as_bytes().first() {
        None => HeadShape::None,
        Some(b'{') | Some(b'[') => HeadShape::Json(json_head_keys(trimmed)),
        Some(_) => {
            let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines.next().unwrap_or("");
            if first.starts_with("#TYPE") {
                first = lines.next().unwrap_or("");
            }
            match crate::msgtrk::split_csv(first) {
                Ok(names) if names.len() >= 3 => HeadShape::Csv(
                    names
                        .iter()
                        .map(|n| n.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
                        .collect(),
                ),
                _ => HeadShape::None,
            }
        }
    }
}

/// The object keys in (a possibly cut) JSON text, up to four levels deep.
fn json_head_keys(text: &str) -> HashSet<String> {
    let b = text.as_bytes();
    let mut keys = HashSet::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                while j < b.len() {
                    match b[j] {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => break,
                        _ => {}
                    }
                    j += 1;
                }
                if j >= b.len() {
                    break;
                }
                let mut k = j + 1;
                while k < b.len() && b[k].is_ascii_whitespace() {
                    k += 1;
                }
                if depth <= 4 && b.get(k) == Some(&b':') {
                    if let Some(key) = text.get(start..j) {
                        keys.insert(key.to_string());
                    }
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// One unit of JSON input.
pub(crate) enum JsonItem {
    /// A complete top-level value, or an element of a top-level array.
    Value {
        bytes: Vec<u8>,
        line: u64,
        offset: u64,
    },
    /// A value longer than the limit: its head and its full length.
    TooLong {
        head: Vec<u8>,
        line: u64,
        offset: u64,
        length: u64,
    },
    /// A line that starts no JSON value, or a value cut off by the end of the input.
    Broken {
        bytes: Vec<u8>,
        line: u64,
        offset: u64,
        reason: &'static str,
    },
}

/// Splits JSON text into top-level values (and the elements of top-level
/// arrays) without parsing them, holding at most one value (up to `limit`
/// bytes) at a time.
pub(crate) struct JsonValues<R> {
    inner: R,
    limit: usize,
    line: u64,
    offset: u64,
    in_array: bool,
}

impl<R: BufRead> JsonValues<R> {
    pub(crate) fn new(inner: R, limit: usize, first_line: u64) -> Self {
        JsonValues {
            inner,
            limit: limit.max(1),
            line: first_line.max(1),
            offset: 0,
            in_array: false,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.inner.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn bump(&mut self, b: u8) {
        self.inner.consume(1);
        self.offset += 1;
        if b == b'\n' {
            self.line += 1;
        }
    }

    pub(crate) fn next_item(&mut self) -> io::Result<Option<JsonItem>> {
        loop {
            let Some(b) = self.peek()? else {
                return Ok(None);
            };
            if b.is_ascii_whitespace() || (self.in_array && b == b',') {
                self.bump(b);
                continue;
            }
            if self.in_array && b == b']' {
                self.bump(b);
                self.in_array = false;
                continue;
            }
            if !self.in_array && b == b'[' {
                self.bump(b);
                self.in_array = true;
                continue;
            }
            if !self.in_array && b != b'{' {
                return self.junk_line().map(Some);
            }
            return self.value().map(Some);
        }
    }

    /// Skip to the end of the line: text outside any JSON value.
    fn junk_line(&mut self) -> io::Result<JsonItem> {
        let (line, offset) = (self.line, self.offset);
        let mut kept = Vec::new();
        loop {
            let (used, done) = {
                let buf = loop {
                    match self.inner.fill_buf() {
                        Ok(b) => break b,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if buf.is_empty() {
                    break;
                }
                let (used, done) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                let room = QUARANTINE_EXCERPT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..used.min(room)]);
                (used, done)
            };
            self.inner.consume(used);
            self.offset += used as u64;
            if done {
                self.line += 1;
                break;
            }
        }
        Ok(JsonItem::Broken {
            bytes: kept,
            line,
            offset,
            reason: "text outside any JSON object or array",
        })
    }

    /// One value, from its first byte to its end.
    fn value(&mut self) -> io::Result<JsonItem> {
        let (line, offset) = (self.line, self.offset);
        let mut kept: Vec<u8> = Vec::new();
        let mut length: u64 = 0;
        let mut depth: u32 = 0;
        let mut in_str = false;
        let mut escaped = false;
        let mut started = false;
        let mut scalar = false;
        let mut string_scalar = false;
        loop {
            let (used, newlines, done, eof) = {
                let buf = loop {
                    match self.inner.fill_buf() {
                        Ok(b) => break b,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if buf.is_empty() {
                    (0, 0, false, true)
                } else {
                    let mut used = 0;
                    let mut done = false;
                    for &c in buf {
                        if !started {
                            started = true;
                            used += 1;
                            match c {
                                b'{' | b'[' => depth = 1,
                                b'"' => {
                                    in_str = true;
                                    scalar = true;
                                    string_scalar = true;
                                }
                                _ => scalar = true,
                            }
                            continue;
                        }
                        if scalar
                            && !string_scalar
                            && (c.is_ascii_whitespace() || matches!(c, b',' | b']' | b'}'))
                        {
                            done = true;
                            break;
                        }
                        used += 1;
                        if in_str {
                            if escaped {
                                escaped = false;
                            } else if c == b'\\' {
                                escaped = true;
                            } else if c == b'"' {
                                in_str = false;
                                if string_scalar {
                                    done = true;
                                    break;
                                }
                            }
                        } else {
                            match c {
                                b'"' => in_str = true,
                                b'{' | b'[' => depth = depth.saturating_add(1),
                                b'}' | b']' => {
                                    depth = depth.saturating_sub(1);
                                    if depth == 0 && !scalar {
                                        done = true;
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    let chunk = &buf[..used];
                    let newlines = memchr::memchr_iter(b'\n', chunk).count() as u64;
                    let room = self.limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..used.min(room)]);
                    (used, newlines, done, false)
                }
            };
            self.inner.consume(used);
            self.offset += used as u64;
            self.line += newlines;
            length += used as u64;
            if eof {
                if scalar && !string_scalar {
                    break;
                }
                kept.truncate(QUARANTINE_EXCERPT_BYTES);
                return Ok(JsonItem::Broken {
                    bytes: kept,
                    line,
                    offset,
                    reason: "the input ends inside a JSON value",
                });
            }
            if done {
                break;
            }
        }
        if length > self.limit as u64 {
            kept.truncate(QUARANTINE_EXCERPT_BYTES);
            return Ok(JsonItem::TooLong {
                head: kept,
                line,
                offset,
                length,
            });
        }
        Ok(JsonItem::Value {
            bytes: kept,
            line,
            offset,
        })
    }
}

/// One unit of CSV input.
pub(crate) enum CsvItem {
    /// A record: its text and where its fields are in it.
    Record {
        text: String,
        spans: Vec<crate::msgtrk::Span>,
        unescaped: String,
        line: u64,
    },
    Broken {
        line: u64,
        raw: Vec<u8>,
        too_long: bool,
        reason: String,
    },
}

/// RFC 4180 records over lines: a quoted field may span lines; blank lines are skipped.
pub(crate) struct CsvRecords<R> {
    lines: LineReader<R>,
    limit: usize,
    line_base: u64,
}

fn decode_line(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(_) => crate::mime::sniff_decode(bytes),
    };
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Whether CSV text ends inside a quoted field (a quote opens one only at a
/// field's start; inside one, `""` is a quote). Jumps from quote to quote.
fn open_quote(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_quotes = false;
    while let Some(k) = b.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let q = i + k;
        if in_quotes {
            if b.get(q + 1) == Some(&b'"') {
                i = q + 2;
                continue;
            }
            in_quotes = false;
        } else if q == 0 || b[q - 1] == b',' {
            in_quotes = true;
        }
        i = q + 1;
    }
    in_quotes
}

impl<R: BufRead> CsvRecords<R> {
    pub(crate) fn new(inner: R, limit: usize, first_line: u64) -> Self {
        CsvRecords {
            lines: LineReader::new(inner, limit),
            limit: limit.max(1),
            line_base: first_line.max(1) - 1,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.lines.offset()
    }

    pub(crate) fn next_item(&mut self) -> io::Result<Option<CsvItem>> {
        loop {
            let (start, mut text) = match self.lines.next_line()? {
                None => return Ok(None),
                Some(Line::TooLong {
                    number,
                    head,
                    length,
                    ..
                }) => {
                    return Ok(Some(CsvItem::Broken {
                        line: number + self.line_base,
                        raw: head[..head.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
                        too_long: true,
                        reason: format!(
                            "line of {length} bytes exceeds the limit of {} bytes",
                            self.limit
                        ),
                    }))
                }
                Some(Line::Complete { number, bytes, .. }) => {
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    (number + self.line_base, decode_line(bytes))
                }
            };
            while open_quote(&text) {
                let next = match self.lines.next_line()? {
                    None => {
                        return Ok(Some(CsvItem::Broken {
                            line: start,
                            raw: cap(text.as_bytes()),
                            too_long: false,
                            reason: "a quoted field is not closed before the end of the input"
                                .to_string(),
                        }))
                    }
                    Some(Line::TooLong { length, .. }) => {
                        return Ok(Some(CsvItem::Broken {
                            line: start,
                            raw: cap(text.as_bytes()),
                            too_long: true,
                            reason: format!(
                                "a quoted field runs into a line of {length} bytes (limit {})",
                                self.limit
                            ),
                        }))
                    }
                    Some(Line::Complete { bytes, .. }) => decode_line(bytes),
                };
                text.push('\n');
                text.push_str(&next);
                if text.len() > self.limit {
                    return Ok(Some(CsvItem::Broken {
                        line: start,
                        raw: cap(text.as_bytes()),
                        too_long: true,
                        reason: format!(
                            "a record of more than {} bytes (a quoted field not closed?)",
                            self.limit
                        ),
                    }));
                }
            }
            let mut spans = Vec::with_capacity(32);
            let mut unescaped = String::new();
            return Ok(Some(
                match crate::msgtrk::split_spans(&text, &mut spans, &mut unescaped) {
                    Ok(()) => CsvItem::Record {
                        text,
                        spans,
                        unescaped,
                        line: start,
                    },
                    Err(e) => CsvItem::Broken {
                        line: start,
                        raw: cap(text.as_bytes()),
                        too_long: false,
                        reason: e.to_string(),
                    },
                },
            ));
        }
    }
}

fn cap(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec()
}

/// Where a unit of input came from, for rejects.
pub(crate) struct At<'a> {
    pub(crate) source: &'a str,
    pub(crate) line: u64,
    pub(crate) raw: &'a [u8],
}

impl At<'_> {
    pub(crate) fn reject(
        &self,
        sink: &mut dyn Sink,
        code: &str,
        reason: impl Into<String>,
    ) -> Result<(), SinkError> {
        sink.reject(Reject {
            source: self.source.to_string(),
            position: Position::Line(self.line),
            code: code.to_string(),
            reason: reason.into(),
            input: cap(self.raw),
        })
    }
}

/// What an importer does with the units the driver reads.
pub(crate) trait Units {
    /// The first CSV record: whether this importer reads this header.
    fn csv_header(&mut self, names: &[String]) -> bool;
    /// A CSV record after the header, with as many fields as the header.
    fn csv_row(
        &mut self,
        fields: &[&str],
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError>;
    /// A parsed JSON value (a top-level value or an element of a top-level array).
    fn json_value(
        &mut self,
        value: Value,
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError>;
    /// End of input.
    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError>;
}

/// Reject code prefix and the messages of an importer's input-level rejects.
pub(crate) struct Codes {
    pub(crate) json: &'static str,
    pub(crate) csv: &'static str,
    pub(crate) too_long: &'static str,
    pub(crate) header: &'static str,
    pub(crate) field_count: &'static str,
    /// What the CSV header should have been, for the reject reason.
    pub(crate) header_hint: &'static str,
}

/// Whether the input was read as JSON or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrapping {
    Json,
    Csv,
    Empty,
}

/// Counts records and rejects on their way to the real sink.
pub(crate) struct CountingSink<'s> {
    pub(crate) inner: &'s mut dyn Sink,
    pub(crate) records: u64,
    pub(crate) rejects: u64,
}

impl Sink for CountingSink<'_> {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records += 1;
        self.inner.record(record)
    }
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.rejects += 1;
        self.inner.reject(reject)
    }
    fn progress(&mut self, bytes: u64) {
        self.inner.progress(bytes)
    }
}

const PROGRESS_EVERY: u64 = 256 * 1024;

/// The limit of one JSON value or CSV record.
pub(crate) fn record_limit(opts: &DecodeOptions) -> usize {
    opts.max_message_bytes.clamp(1, MAX_RECORD_BYTES)
}

/// Read an input as JSON or CSV and hand its units to `units`.
pub(crate) fn drive<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    codes: &Codes,
    units: &mut dyn Units,
    sink: &mut dyn Sink,
) -> Result<Wrapping, IngestError> {
    let io_err = |e: io::Error| IngestError::Io {
        path: source.to_string(),
        source: e,
    };
    let mut input = text_input(reader).map_err(io_err)?;
    // Leading blank space, counting lines, decides the wrapping.
    let mut line = 1u64;
    let first = loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        let Some(&b) = buf.first() else {
            break None;
        };
        if b.is_ascii_whitespace() {
            if b == b'\n' {
                line += 1;
            }
            input.consume(1);
            continue;
        }
        break Some(b);
    };
    let limit = record_limit(opts);
    let mut next_progress = PROGRESS_EVERY;
    match first {
        None => {
            units.finish(sink)?;
            Ok(Wrapping::Empty)
        }
        Some(b'{') | Some(b'[') => {
            let mut values = JsonValues::new(input, limit, line);
            while let Some(item) = values.next_item().map_err(io_err)? {
                match item {
                    JsonItem::Value {
                        bytes,
                        line,
                        offset,
                    } => {
                        let at = At {
                            source,
                            line,
                            raw: &bytes,
                        };
                        match serde_json::from_slice::<Value>(&bytes) {
                            Ok(v) => units.json_value(v, &at, sink)?,
                            Err(e) => at.reject(
                                sink,
                                codes.json,
                                format!("not JSON: {e} (in the value at byte {offset})"),
                            )?,
                        }
                    }
                    JsonItem::TooLong {
                        head,
                        line,
                        offset,
                        length,
                    } => At {
                        source,
                        line,
                        raw: &head,
                    }
                    .reject(
                        sink,
                        codes.too_long,
                        format!(
                            "a JSON value of {length} bytes at byte {offset} exceeds the limit of {limit} bytes"
                        ),
                    )?,
                    JsonItem::Broken {
                        bytes,
                        line,
                        offset,
                        reason,
                    } => At {
                        source,
                        line,
                        raw: &bytes,
                    }
                    .reject(sink, codes.json, format!("{reason} (byte {offset})"))?,
                }
                if values.offset() >= next_progress {
                    sink.progress(values.offset());
                    next_progress = values.offset() + PROGRESS_EVERY;
                }
            }
            units.finish(sink)?;
            sink.progress(values.offset());
            Ok(Wrapping::Json)
        }
        Some(_) => {
            let mut records = CsvRecords::new(input, limit, line);
            let mut header: Option<(usize, bool, u64)> = None;
            while let Some(item) = records.next_item().map_err(io_err)? {
                match item {
                    CsvItem::Broken {
                        line,
                        raw,
                        too_long,
                        reason,
                    } => {
                        let code = if too_long { codes.too_long } else { codes.csv };
                        At {
                            source,
                            line,
                            raw: &raw,
                        }
                        .reject(sink, code, reason)?;
                    }
                    CsvItem::Record {
                        text,
                        spans,
                        unescaped,
                        line,
                    } => {
                        let fields: Vec<&str> =
                            spans.iter().map(|s| s.text(&text, &unescaped)).collect();
                        let at = At {
                            source,
                            line,
                            raw: text.as_bytes(),
                        };
                        match header {
                            None => {
                                // Windows PowerShell's Export-Csv type line.
                                if fields
                                    .first()
                                    .is_some_and(|f| f.trim_start().starts_with("#TYPE"))
                                {
                                    continue;
                                }
                                let names: Vec<String> = fields
                                    .iter()
                                    .map(|n| n.trim().trim_start_matches('\u{feff}').to_string())
                                    .collect();
                                let known = units.csv_header(&names);
                                header = Some((names.len(), known, line));
                                if !known {
                                    at.reject(
                                        sink,
                                        codes.header,
                                        format!("not a known header: {}", codes.header_hint),
                                    )?;
                                }
                            }
                            Some((count, known, header_line)) => {
                                if !known {
                                    at.reject(
                                        sink,
                                        codes.header,
                                        format!(
                                            "the header at line {header_line} is not a known layout"
                                        ),
                                    )?;
                                } else if fields.len() != count {
                                    at.reject(
                                        sink,
                                        codes.field_count,
                                        format!(
                                            "{} fields where the header at line {header_line} names {count}",
                                            fields.len()
                                        ),
                                    )?;
                                } else {
                                    units.csv_row(&fields, &at, sink)?;
                                }
                            }
                        }
                    }
                }
                if records.offset() >= next_progress {
                    sink.progress(records.offset());
                    next_progress = records.offset() + PROGRESS_EVERY;
                }
            }
            units.finish(sink)?;
            sink.progress(records.offset());
            Ok(Wrapping::Csv)
        }
    }
}

// ---------------------------------------------------------------------------
// Values: dates, numbers, addresses
// ---------------------------------------------------------------------------

/// Day/month order of `n/n/yyyy` dates, settled per file (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateOrder {
    #[default]
    Unknown,
    DayFirst,
    MonthFirst,
}

/// A time as Microsoft 365 exports write it (see the module doc), as UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    parse_time_with(s, &mut DateOrder::Unknown)
}

/// [`parse_time`], learning and using the day/month order of the file.
pub fn parse_time_with(s: &str, order: &mut DateOrder) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    // The report's own stamps (`2025-11-10T00:05:03.123Z`), without the general parser.
    if let Some(t) = crate::msgtrk::parse_utc_stamp(s) {
        return Some(t);
    }
    if let Some(t) = ms_date(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // `2023-11-16 14:13:20Z`, `…+09:00`: RFC 3339 with a space.
    if s.len() > 10 && s.as_bytes()[10] == b' ' && s.is_char_boundary(10) {
        let t = format!("{}T{}", &s[..10], &s[11..]);
        if let Ok(t) = DateTime::parse_from_rfc3339(&t) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    culture_time(s, order)
}

/// `/Date(1700000000000)/`, `/Date(1700000000000+0900)/` (milliseconds since the epoch, UTC).
fn ms_date(s: &str) -> Option<DateTime<Utc>> {
    let inner = s
        .strip_prefix("/Date(")
        .or_else(|| s.strip_prefix("\\/Date("))?;
    let inner = inner.split(')').next()?;
    let (sign, digits) = match inner.strip_prefix('-') {
        Some(rest) => (-1i64, rest),
        None => (1, inner),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let rest = &digits[end..];
    if end == 0 || !(rest.is_empty() || rest.starts_with(['+', '-'])) {
        return None;
    }
    let ms: i64 = digits[..end].parse().ok()?;
    DateTime::from_timestamp_millis(sign.checked_mul(ms)?)
}

const AM: [&str; 5] = ["am", "a.m.", "午前", "오전", "上午"];
const PM: [&str; 5] = ["pm", "p.m.", "午後", "오후", "下午"];

fn marker(token: &str) -> Option<bool> {
    let t = token.to_lowercase();
    if AM.contains(&t.as_str()) {
        Some(false)
    } else if PM.contains(&t.as_str()) {
        Some(true)
    } else {
        None
    }
}

/// A culture-formatted date and time (`11/16/2023 2:13:20 PM`, `2023/11/16 14:13:20`, …).
fn culture_time(s: &str, order: &mut DateOrder) -> Option<DateTime<Utc>> {
    let mut date: Option<&str> = None;
    let mut time: Option<&str> = None;
    let mut pm: Option<bool> = None;
    for token in s.split_whitespace() {
        if let Some(p) = marker(token) {
            pm = Some(p);
            continue;
        }
        if token.contains(':') {
            // A marker may be glued to the time (`午後2:13:20`).
            let mut t = token;
            for (list, p) in [(&AM, false), (&PM, true)] {
                for m in list.iter() {
                    if let Some(rest) = t.strip_prefix(m).or_else(|| t.strip_suffix(m)) {
                        pm = Some(p);
                        t = rest;
                    }
                }
            }
            if time.replace(t).is_some() {
                return None;
            }
        } else if date.is_none() {
            date = Some(token);
        } else {
            return None;
        }
    }
    let date = date?;
    let sep = date.chars().find(|c| matches!(c, '/' | '-' | '.'))?;
    let parts: Vec<&str> = date.split(sep).filter(|p| !p.is_empty()).collect();
    if parts.len() != 3 || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let num = |p: &str| p.parse::<u32>().ok();
    let (y, m, d) = if parts[0].len() == 4 {
        (num(parts[0])?, num(parts[1])?, num(parts[2])?)
    } else if parts[2].len() == 4 {
        let (a, b, y) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
        let day_first = if sep != '/' {
            true
        } else if a > 12 {
            if *order == DateOrder::Unknown {
                *order = DateOrder::DayFirst;
            }
            true
        } else if b > 12 {
            if *order == DateOrder::Unknown {
                *order = DateOrder::MonthFirst;
            }
            false
        } else {
            match *order {
                DateOrder::DayFirst => true,
                DateOrder::MonthFirst => false,
                DateOrder::Unknown => pm.is_none(),
            }
        };
        if day_first {
            (y, b, a)
        } else {
            (y, a, b)
        }
    } else {
        return None;
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(t) => {
            let mut parts = t.split(':');
            let h: u32 = parts.next()?.parse().ok()?;
            let min: u32 = parts.next()?.parse().ok()?;
            let (sec, nano) = match parts.next() {
                None => (0, 0),
                Some(sec) => {
                    let (whole, frac) = match sec.split_once(['.', ',']) {
                        Some((w, f)) => (w, f),
                        None => (sec, ""),
                    };
                    let whole: u32 = whole.parse().ok()?;
                    let frac: String = frac.chars().take(9).collect();
                    if !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let nano = if frac.is_empty() {
                        0
                    } else {
                        format!("{frac:0<9}").parse().ok()?
                    };
                    (whole, nano)
                }
            };
            if parts.next().is_some() {
                return None;
            }
            let h = match pm {
                None => h,
                Some(_) if h == 0 || h > 12 => return None,
                Some(false) => h % 12,
                Some(true) => h % 12 + 12,
            };
            NaiveTime::from_hms_nano_opt(h, min, sec, nano)?
        }
    };
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// A field by name: exact, else ignoring case.
pub(crate) fn field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    for name in names {
        if let Some(v) = obj.get(*name) {
            if !v.is_null() {
                return Some(v);
            }
        }
    }
    for name in names {
        if let Some((_, v)) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            if !v.is_null() {
                return Some(v);
            }
        }
    }
    None
}

/// A value as trimmed, non-empty text (numbers and booleans as written).
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A non-negative size or count: a JSON number (float too: `1156492.00`) or such a number as text.
pub(crate) fn number(v: Option<&Value>) -> Option<u64> {
    let f = match v? {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Some(u);
            }
            n.as_f64()?
        }
        Value::String(s) => {
            let s = s.trim().replace(',', "");
            if let Ok(u) = s.parse::<u64>() {
                return Some(u);
            }
            s.parse::<f64>().ok()?
        }
        _ => return None,
    };
    (0.0..1.8e19).contains(&f).then_some(f as u64)
}

/// A time value: text, or PowerShell 5.1's `{"value": "/Date(…)/", "DateTime": "…"}`.
pub(crate) fn json_time(v: Option<&Value>, order: &mut DateOrder) -> Option<DateTime<Utc>> {
    match v? {
        Value::String(s) => parse_time_with(s, order),
        Value::Object(o) => json_time(field(o, &["value"]), order)
            .or_else(|| json_time(field(o, &["DateTime"]), order)),
        _ => None,
    }
}

/// An IP address as stored: brackets, a port and an IPv6 zone removed,
/// canonical form; `None` when no address is left.
pub fn clean_ip(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return crate::msgtrk::clean_ip(inner);
    }
    if let Some(ip) = crate::msgtrk::clean_ip(s) {
        return Some(ip);
    }
    // `192.0.2.1:51234`
    let (host, port) = s.rsplit_once(':')?;
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(IpAddr::V4(v4)) = host.parse::<IpAddr>() {
            return Some(v4.to_string());
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Statuses and events
// ---------------------------------------------------------------------------

/// The delivery status of a Get-MessageTrace / Graph status (table in the
/// module doc); `None` for `None` and unknown values.
pub fn trace_status(status: &str) -> Option<DeliveryStatus> {
    let s = status.trim().to_ascii_lowercase().replace([' ', '_'], "");
    Some(match s.as_str() {
        "delivered" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        "pending" => DeliveryStatus::Deferred,
        "expanded" => DeliveryStatus::Expanded,
        "quarantined" => DeliveryStatus::Quarantined,
        "filteredasspam" => DeliveryStatus::Quarantined,
        "gettingstatus" => DeliveryStatus::Received,
        "resolved" => DeliveryStatus::Forwarded,
        _ => return None,
    })
}

/// What a message trace event means (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMeaning {
    /// The message arrived: the message's `received` delivery.
    Received,
    /// A recipient's fate.
    Status(DeliveryStatus),
    /// Shadow redundancy (HA*): not a delivery, the line is ignored.
    Shadow,
    /// No delivery (Submit, Transfer, Resolve, Spam, Transport rule, …).
    Other,
}

/// The meaning of an event name (`Receive`, `DELIVER`, `Send external`, …).
pub fn event_meaning(event: &str) -> EventMeaning {
    // Upper-case letters only (as the extended report writes them): no copy needed.
    let plain = event.bytes().all(|b| b.is_ascii_uppercase());
    let e: Cow<'_, str> = if plain {
        Cow::Borrowed(event)
    } else {
        Cow::Owned(
            event
                .chars()
                .filter(|c| !matches!(c, ' ' | '_' | '-'))
                .collect::<String>()
                .to_ascii_uppercase(),
        )
    };
    match &*e {
        "RECEIVE" => EventMeaning::Received,
        "DELIVER" | "SEND" | "SENDEXTERNAL" => EventMeaning::Status(DeliveryStatus::Delivered),
        "FAIL" | "DROP" | "BADMAIL" | "DELIVERFAIL" => EventMeaning::Status(DeliveryStatus::Failed),
        "DEFER" => EventMeaning::Status(DeliveryStatus::Deferred),
        "EXPAND" => EventMeaning::Status(DeliveryStatus::Expanded),
        "REDIRECT" => EventMeaning::Status(DeliveryStatus::Forwarded),
        _ if e.starts_with("HA") => EventMeaning::Shadow,
        _ if e.contains("QUARANTINE") && !e.contains("RELEASE") => {
            EventMeaning::Status(DeliveryStatus::Quarantined)
        }
        _ => EventMeaning::Other,
    }
}

// ---------------------------------------------------------------------------
// Trace rows (Get-MessageTrace(V2), Graph messageTraces)
// ---------------------------------------------------------------------------

/// Why an object or row gives no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Reject code ([`CODE_DATE`], [`CODE_FIELDS`], …).
    pub code: &'static str,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(code: &'static str, reason: impl Into<String>) -> FieldError {
        FieldError {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for FieldError {}

/// One message to one recipient, as Get-MessageTrace(V2) and Graph's
/// `messageTraces` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRow {
    pub received: DateTime<Utc>,
    /// Normalised envelope sender.
    pub sender: Option<String>,
    /// Normalised recipient.
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// The status as Microsoft wrote it.
    pub status: Option<String>,
    pub to_ip: Option<String>,
    pub from_ip: Option<String>,
    pub size: Option<u64>,
    /// Without `<>`.
    pub message_id: Option<String>,
    /// MessageTraceId (Graph: `id`), lower case: the network message id.
    pub trace_id: Option<String>,
}

const RECEIVED: [&str; 2] = ["Received", "receivedDateTime"];
const RECIPIENT: [&str; 1] = ["RecipientAddress"];
const SENDER: [&str; 1] = ["SenderAddress"];
const TRACE_ID: [&str; 2] = ["MessageTraceId", "id"];

fn lower(v: Option<String>) -> Option<String> {
    v.map(|s| s.to_ascii_lowercase())
}

/// A trace row from a PowerShell object (JSON or a CSV row as an object) or
/// a Graph `exchangeMessageTrace`. Names are looked up ignoring case.
pub fn trace_row(obj: &Map<String, Value>) -> Result<TraceRow, FieldError> {
    trace_row_with(obj, &mut DateOrder::Unknown)
}

pub(crate) fn trace_row_with(
    obj: &Map<String, Value>,
    order: &mut DateOrder,
) -> Result<TraceRow, FieldError> {
    // Let the other date columns of the row teach the day/month order first.
    for name in ["StartDate", "EndDate"] {
        let _ = json_time(field(obj, &[name]), order);
    }
    let received = field(obj, &RECEIVED)
        .ok_or_else(|| FieldError::new(CODE_DATE, "no Received (receivedDateTime) time"))?;
    let received = json_time(Some(received), order).ok_or_else(|| {
        FieldError::new(
            CODE_DATE,
            format!("Received {} is no time we can read", short(received)),
        )
    })?;
    let row = TraceRow {
        received,
        sender: text(field(obj, &SENDER)).and_then(|s| normalize_address(&s)),
        recipient: text(field(obj, &RECIPIENT)).and_then(|s| normalize_address(&s)),
        subject: text(field(obj, &["Subject"])),
        status: text(field(obj, &["Status"])),
        to_ip: text(field(obj, &["ToIP"])).and_then(|s| clean_ip(&s)),
        from_ip: text(field(obj, &["FromIP"])).and_then(|s| clean_ip(&s)),
        size: number(field(obj, &["Size"])),
        message_id: text(field(obj, &["MessageId"])).and_then(|s| normalize_message_id(&s)),
        trace_id: lower(text(field(obj, &TRACE_ID))),
    };
    if row.sender.is_none()
        && row.recipient.is_none()
        && row.message_id.is_none()
        && row.trace_id.is_none()
    {
        return Err(FieldError::new(
            CODE_FIELDS,
            "no sender, recipient, MessageId or MessageTraceId",
        ));
    }
    Ok(row)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let head: String = s.chars().take(80).collect();
        format!("{head}…")
    } else {
        s
    }
}

fn row_key(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\x00");
    }
    let hex = h.finalize().to_hex();
    format!("{SYSTEM}:row:{}", &hex.as_str()[..20])
}

fn keys_for(trace_id: Option<&str>, message_id: Option<&str>, fallback: &[&str]) -> Vec<String> {
    match (trace_id, message_id) {
        (Some(t), _) => vec![format!("{SYSTEM}:{t}")],
        (None, Some(m)) => vec![format!("{SYSTEM}:{m}")],
        (None, None) => vec![row_key(fallback)],
    }
}

fn delivery(time: DateTime<Utc>, recipient: String, status: DeliveryStatus) -> Delivery {
    Delivery {
        time,
        recipient,
        status,
        detail: None,
        system: SYSTEM.to_string(),
        relay: None,
        client_ip: None,
        client_host: None,
        local_id: None,
        original_recipient: None,
    }
}

impl TraceRow {
    /// The delivery status of the row, if its status makes one.
    pub fn delivery_status(&self) -> Option<DeliveryStatus> {
        self.status.as_deref().and_then(trace_status)
    }

    /// The row as a record (see the module doc).
    pub fn record(&self) -> MessageRecord {
        let received_ts = self.received.to_rfc3339();
        let keys = keys_for(
            self.trace_id.as_deref(),
            self.message_id.as_deref(),
            &[
                &received_ts,
                self.sender.as_deref().unwrap_or(""),
                self.recipient.as_deref().unwrap_or(""),
                self.subject.as_deref().unwrap_or(""),
            ],
        );
        let mut received = delivery(self.received, String::new(), DeliveryStatus::Received);
        received.client_ip = self.from_ip.clone();
        received.local_id = self.trace_id.clone();
        let mut deliveries = vec![received];
        let mut recipients = Vec::new();
        if let Some(r) = &self.recipient {
            if let Some(rc) = Recipient::new(r, None, RecipientKind::Envelope) {
                recipients.push(rc);
            }
            if let Some(status) = self.delivery_status() {
                let mut d = delivery(self.received, r.clone(), status);
                d.detail = self
                    .status
                    .as_ref()
                    .filter(|s| !s.eq_ignore_ascii_case(status.as_str()))
                    .cloned();
                d.relay = self.to_ip.as_ref().map(|ip| format!("[{ip}]"));
                d.local_id = self.trace_id.clone();
                deliveries.push(d);
            }
        }
        MessageRecord {
            keys,
            message_id: self.message_id.clone(),
            first_seen: Some(self.received),
            envelope_from: self.sender.clone(),
            recipients,
            subject: self.subject.clone(),
            size: self.size,
            client_ip: self.from_ip.clone(),
            systems: vec![SYSTEM.to_string()],
            deliveries,
            ..MessageRecord::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Detail events (Get-MessageTraceDetail, Graph getDetailsByRecipient)
// ---------------------------------------------------------------------------

const DETAIL_TIME: [&str; 2] = ["Date", "dateTime"];

/// A record from one trace detail event: PowerShell's
/// `Get-MessageTraceDetail(V2)` object (which names the recipient) or
/// Graph's `exchangeMessageTraceDetail` (which does not: pass the recipient
/// the request was made for, or `None` for the message as a whole).
pub fn detail_record(
    obj: &Map<String, Value>,
    recipient: Option<&str>,
) -> Result<MessageRecord, FieldError> {
    detail_record_with(obj, recipient, &mut DateOrder::Unknown).map(|(r, _)| r)
}

fn detail_record_with(
    obj: &Map<String, Value>,
    recipient: Option<&str>,
    order: &mut DateOrder,
) -> Result<(MessageRecord, EventMeaning), FieldError> {
    let time_value = field(obj, &DETAIL_TIME)
        .ok_or_else(|| FieldError::new(CODE_DATE, "no Date (dateTime) time"))?;
    let time = json_time(Some(time_value), order).ok_or_else(|| {
        FieldError::new(
            CODE_DATE,
            format!("Date {} is no time we can read", short(time_value)),
        )
    })?;
    let event =
        text(field(obj, &["Event"])).ok_or_else(|| FieldError::new(CODE_FIELDS, "no Event"))?;
    let meaning = event_meaning(&event);
    let message_id = text(field(obj, &["MessageId"])).and_then(|s| normalize_message_id(&s));
    let trace_id = lower(text(field(obj, &TRACE_ID)));
    let recipient = text(field(obj, &RECIPIENT))
        .and_then(|s| normalize_address(&s))
        .or_else(|| recipient.and_then(normalize_address));
    let sender = text(field(obj, &SENDER)).and_then(|s| normalize_address(&s));
    let action = text(field(obj, &["Action"]));
    let description = text(field(obj, &["Detail", "description"]));
    let detail = match (action, description) {
        (Some(a), Some(d)) => Some(format!("{event}: {a}: {d}")),
        (Some(a), None) => Some(format!("{event}: {a}")),
        (None, Some(d)) => Some(format!("{event}: {d}")),
        (None, None) => Some(event.clone()),
    };
    let time_ts = time.to_rfc3339();
    let keys = keys_for(
        trace_id.as_deref(),
        message_id.as_deref(),
        &[&time_ts, &event, recipient.as_deref().unwrap_or("")],
    );
    let mut deliveries = Vec::new();
    match meaning {
        EventMeaning::Received => {
            let mut d = delivery(time, String::new(), DeliveryStatus::Received);
            d.detail = detail;
            d.local_id = trace_id.clone();
            deliveries.push(d);
        }
        EventMeaning::Status(status) => {
            let mut d = delivery(time, recipient.clone().unwrap_or_default(), status);
            d.detail = detail;
            d.local_id = trace_id.clone();
            deliveries.push(d);
        }
        EventMeaning::Shadow | EventMeaning::Other => {}
    }
    let recipients = recipient
        .as_deref()
        .and_then(|r| Recipient::new(r, None, RecipientKind::Envelope))
        .into_iter()
        .collect();
    Ok((
        MessageRecord {
            keys,
            message_id,
            first_seen: Some(time),
            envelope_from: sender,
            recipients,
            systems: vec![SYSTEM.to_string()],
            deliveries,
            ..MessageRecord::default()
        },
        meaning,
    ))
}

// ---------------------------------------------------------------------------
// Graph pages (for the poller)
// ---------------------------------------------------------------------------

/// The records of one Graph response page.
#[derive(Debug, Clone, Default)]
pub struct GraphPage {
    pub records: Vec<MessageRecord>,
    /// Elements of `value` that gave no record, by index.
    pub errors: Vec<(usize, FieldError)>,
    /// `@odata.nextLink`: the next page to fetch.
    pub next_link: Option<String>,
}

fn page_items(page: &Value) -> (Vec<&Value>, Option<String>) {
    let next_link = page
        .get("@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_string);
    let items = match page {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => match o.get("value") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => vec![page],
        },
        _ => vec![page],
    };
    (items, next_link)
}

/// Records of a Graph `messageTraces` list response (or a single
/// `exchangeMessageTrace`): one per trace (message and recipient).
pub fn graph_trace_page(page: &Value) -> GraphPage {
    let (items, next_link) = page_items(page);
    let mut out = GraphPage {
        next_link,
        ..GraphPage::default()
    };
    for (i, item) in items.into_iter().enumerate() {
        let result = match item.as_object() {
            Some(o) => trace_row(o).map(|r| r.record()),
            None => Err(FieldError::new(CODE_FIELDS, "not a JSON object")),
        };
        match result {
            Ok(r) => out.records.push(r),
            Err(e) => out.errors.push((i, e)),
        }
    }
    out
}

/// Records of a Graph `getDetailsByRecipient` response for `recipient`:
/// the events of one message are folded into one record.
pub fn graph_details_page(page: &Value, recipient: Option<&str>) -> GraphPage {
    let (items, next_link) = page_items(page);
    let mut out = GraphPage {
        next_link,
        ..GraphPage::default()
    };
    let mut folded: Vec<MessageRecord> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let result = match item.as_object() {
            Some(o) => detail_record(o, recipient),
            None => Err(FieldError::new(CODE_FIELDS, "not a JSON object")),
        };
        match result {
            Ok(r) => match folded.iter_mut().find(|f| f.keys == r.keys) {
                Some(f) => f.merge(r),
                None => folded.push(r),
            },
            Err(e) => out.errors.push((i, e)),
        }
    }
    out.records = folded;
    out
}

// ---------------------------------------------------------------------------
// Historical search reports
// ---------------------------------------------------------------------------

/// The columns of the historical search reports that are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rc {
    OriginTimestampUtc,
    OriginTimestamp,
    SenderAddress,
    RecipientStatus,
    MessageSubject,
    TotalBytes,
    MessageId,
    NetworkMessageId,
    OriginalClientIp,
    ConnectorId,
    DateTimeUtc,
    DateTime,
    EventId,
    RecipientAddress,
    RelatedRecipientAddress,
    ClientIp,
    ClientHostname,
    ServerIp,
    ServerHostname,
    Source,
    SourceContext,
    ReturnPath,
}

const RC_NAMES: [(&str, Rc); 22] = [
    ("origin_timestamp_utc", Rc::OriginTimestampUtc),
    ("origin_timestamp", Rc::OriginTimestamp),
    ("sender_address", Rc::SenderAddress),
    ("recipient_status", Rc::RecipientStatus),
    ("message_subject", Rc::MessageSubject),
    ("total_bytes", Rc::TotalBytes),
    ("message_id", Rc::MessageId),
    ("network_message_id", Rc::NetworkMessageId),
    ("original_client_ip", Rc::OriginalClientIp),
    ("connector_id", Rc::ConnectorId),
    ("date_time_utc", Rc::DateTimeUtc),
    ("date_time", Rc::DateTime),
    ("event_id", Rc::EventId),
    ("recipient_address", Rc::RecipientAddress),
    ("related_recipient_address", Rc::RelatedRecipientAddress),
    ("client_ip", Rc::ClientIp),
    ("client_hostname", Rc::ClientHostname),
    ("server_ip", Rc::ServerIp),
    ("server_hostname", Rc::ServerHostname),
    ("source", Rc::Source),
    ("source_context", Rc::SourceContext),
    ("return_path", Rc::ReturnPath),
];

/// Where each column that is read sits in a report's rows (the first
/// column of that name), found once from the header.
#[derive(Debug, Clone, Default)]
struct ReportColumns {
    position: [Option<usize>; RC_NAMES.len()],
}

impl ReportColumns {
    fn new(lower_names: &[String]) -> ReportColumns {
        let mut position = [None; RC_NAMES.len()];
        for (name, rc) in RC_NAMES {
            position[rc as usize] = lower_names.iter().position(|h| h == name);
        }
        ReportColumns { position }
    }
}

/// A row of a historical search report.
struct Row<'a> {
    columns: &'a ReportColumns,
    fields: &'a [&'a str],
}

impl Row<'_> {
    /// The first non-empty value among the columns named.
    fn get(&self, names: &[Rc]) -> Option<&str> {
        names.iter().find_map(|&n| {
            let i = self.columns.position[n as usize]?;
            let v = self.fields.get(i)?.trim();
            (!v.is_empty()).then_some(v)
        })
    }
}

/// `addr##Receive, Deliver;addr2##Receive, Fail` → `(address, events)` pairs.
pub fn parse_recipient_status(s: &str) -> Vec<(String, Vec<String>)> {
    s.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (addr, events) = item.split_once("##").unwrap_or((item, ""));
            let events = events
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
            (addr.trim().to_string(), events)
        })
        .collect()
}

const SUMMARY_TIME: [&str; 2] = ["origin_timestamp_utc", "origin_timestamp"];
const EXTENDED_TIME: [&str; 2] = ["date_time_utc", "date_time"];
const SUMMARY_TIME_RC: [Rc; 2] = [Rc::OriginTimestampUtc, Rc::OriginTimestamp];
const EXTENDED_TIME_RC: [Rc; 2] = [Rc::DateTimeUtc, Rc::DateTime];

fn summary_record(row: &Row<'_>, order: &mut DateOrder) -> Result<MessageRecord, FieldError> {
    let raw_time = row
        .get(&SUMMARY_TIME_RC)
        .ok_or_else(|| FieldError::new(CODE_DATE, "no origin_timestamp"))?;
    let time = parse_time_with(raw_time, order).ok_or_else(|| {
        FieldError::new(
            CODE_DATE,
            format!("origin_timestamp {raw_time:?} is no time we can read"),
        )
    })?;
    let message_id = row.get(&[Rc::MessageId]).and_then(normalize_message_id);
    let nmid = row
        .get(&[Rc::NetworkMessageId])
        .map(str::to_ascii_lowercase);
    let sender = row.get(&[Rc::SenderAddress]).and_then(normalize_address);
    let client_ip = row.get(&[Rc::OriginalClientIp]).and_then(clean_ip);
    let time_ts = time.to_rfc3339();
    let status_text = row.get(&[Rc::RecipientStatus]).unwrap_or("");
    let keys = keys_for(
        nmid.as_deref(),
        message_id.as_deref(),
        &[&time_ts, sender.as_deref().unwrap_or(""), status_text],
    );
    let mut recipients = Vec::new();
    let mut deliveries = Vec::new();
    let mut received = false;
    for (address, events) in parse_recipient_status(status_text) {
        let Some(address) = normalize_address(&address) else {
            continue;
        };
        if let Some(r) = Recipient::new(&address, None, RecipientKind::Envelope) {
            mailtrail_model::merge_recipient(&mut recipients, r);
        }
        let mut last = None;
        for e in &events {
            match event_meaning(e) {
                EventMeaning::Received => received = true,
                EventMeaning::Status(s) => last = Some(s),
                EventMeaning::Shadow | EventMeaning::Other => {}
            }
        }
        if let Some(status) = last {
            let mut d = delivery(time, address, status);
            d.detail = Some(events.join(", "));
            d.local_id = nmid.clone();
            deliveries.push(d);
        }
    }
    if received {
        let mut d = delivery(time, String::new(), DeliveryStatus::Received);
        d.client_ip = client_ip.clone();
        d.local_id = nmid.clone();
        d.detail = row
            .get(&[Rc::ConnectorId])
            .map(|c| format!("connector {c}"));
        deliveries.insert(0, d);
    }
    Ok(MessageRecord {
        keys,
        message_id,
        first_seen: Some(time),
        envelope_from: sender,
        recipients,
        subject: row.get(&[Rc::MessageSubject]).map(str::to_string),
        size: row.get(&[Rc::TotalBytes]).and_then(|s| s.parse().ok()),
        client_ip,
        systems: vec![SYSTEM.to_string()],
        deliveries,
        ..MessageRecord::default()
    })
}

/// One event of the extended report; `Ok(None)` for a shadow (HA*) event.
fn extended_record(
    row: &Row<'_>,
    order: &mut DateOrder,
) -> Result<Option<MessageRecord>, FieldError> {
    let raw_time = row
        .get(&EXTENDED_TIME_RC)
        .ok_or_else(|| FieldError::new(CODE_DATE, "no date_time"))?;
    let time = parse_time_with(raw_time, order).ok_or_else(|| {
        FieldError::new(
            CODE_DATE,
            format!("date_time {raw_time:?} is no time we can read"),
        )
    })?;
    let event = row
        .get(&[Rc::EventId])
        .ok_or_else(|| FieldError::new(CODE_FIELDS, "no event_id"))?;
    let meaning = event_meaning(event);
    if meaning == EventMeaning::Shadow {
        return Ok(None);
    }
    let message_id = row.get(&[Rc::MessageId]).and_then(normalize_message_id);
    let nmid = row
        .get(&[Rc::NetworkMessageId])
        .map(str::to_ascii_lowercase);
    let written: Vec<&str> = row
        .get(&[Rc::RecipientAddress])
        .unwrap_or("")
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    // The row hash (time, event, recipients) only when there is no id at all.
    let keys = match (&nmid, &message_id) {
        (None, None) => vec![row_key(&[&time.to_rfc3339(), event, &written.join(";")])],
        _ => keys_for(nmid.as_deref(), message_id.as_deref(), &[]),
    };
    let status_text = row.get(&[Rc::RecipientStatus]).unwrap_or("");
    let statuses: Vec<&str> = status_text.split(';').map(str::trim).collect();
    let related = row
        .get(&[Rc::RelatedRecipientAddress])
        .and_then(normalize_address);
    let mut recipients = Vec::new();
    let mut targets = Vec::new();
    for (i, raw) in written.iter().enumerate() {
        let Some(address) = normalize_address(raw) else {
            continue;
        };
        // `Recipient::new` of an address already normalised.
        let r = Recipient {
            address: address.clone(),
            display_name: None,
            kind: RecipientKind::Envelope,
        };
        mailtrail_model::merge_recipient(&mut recipients, r);
        let status = if statuses.len() == written.len() {
            statuses.get(i).copied().unwrap_or("")
        } else {
            status_text.trim()
        };
        targets.push((address, status));
    }
    let original_client = row.get(&[Rc::OriginalClientIp]).and_then(clean_ip);
    let mut client_ip = original_client.clone();
    let mut deliveries = Vec::new();
    match meaning {
        EventMeaning::Received => {
            let ip = row.get(&[Rc::ClientIp]).and_then(clean_ip);
            if client_ip.is_none()
                && !row
                    .get(&[Rc::Source])
                    .is_some_and(|s| s.eq_ignore_ascii_case("STOREDRIVER"))
            {
                client_ip = ip.clone();
            }
            let mut d = delivery(time, String::new(), DeliveryStatus::Received);
            d.client_ip = ip;
            d.client_host = row.get(&[Rc::ClientHostname]).map(str::to_string);
            d.local_id = nmid.clone();
            let detail: Vec<String> = row
                .get(&[Rc::Source])
                .map(str::to_string)
                .into_iter()
                .chain(
                    row.get(&[Rc::ConnectorId])
                        .map(|c| format!("connector {c}")),
                )
                .collect();
            d.detail = (!detail.is_empty()).then(|| detail.join("; "));
            deliveries.push(d);
        }
        EventMeaning::Status(status) => {
            // SEND / SENDEXTERNAL: the server side is the next hop.
            let sent =
                status == DeliveryStatus::Delivered && !event.eq_ignore_ascii_case("DELIVER");
            let relay = match (
                row.get(&[Rc::ServerHostname]).filter(|_| sent),
                row.get(&[Rc::ServerIp]).filter(|_| sent).and_then(clean_ip),
            ) {
                (Some(h), Some(ip)) => Some(format!("{h}[{ip}]")),
                (Some(h), None) => Some(h.to_string()),
                (None, Some(ip)) => Some(format!("[{ip}]")),
                (None, None) => None,
            };
            if targets.is_empty() {
                targets.push((String::new(), status_text.trim()));
            }
            let context = row.get(&[Rc::SourceContext]);
            for (address, text) in targets {
                let mut d = delivery(time, address, status);
                d.detail = match (text.is_empty(), context) {
                    (false, Some(c)) => Some(format!("{event}: {text} ({c})")),
                    (false, None) => Some(format!("{event}: {text}")),
                    (true, Some(c)) => Some(format!("{event}: {c}")),
                    (true, None) => Some(event.to_string()),
                };
                d.relay = relay.clone();
                d.local_id = nmid.clone();
                if matches!(status, DeliveryStatus::Expanded | DeliveryStatus::Forwarded) {
                    d.original_recipient = related.clone();
                }
                deliveries.push(d);
            }
        }
        EventMeaning::Shadow | EventMeaning::Other => {}
    }
    if let Some(r) = &related {
        if let Some(rc) = Recipient::new(r, None, RecipientKind::Envelope) {
            mailtrail_model::merge_recipient(&mut recipients, rc);
        }
    }
    let envelope_from = row
        .get(&[Rc::ReturnPath])
        .and_then(normalize_address)
        .or_else(|| row.get(&[Rc::SenderAddress]).and_then(normalize_address));
    Ok(Some(MessageRecord {
        keys,
        message_id,
        first_seen: Some(time),
        envelope_from,
        recipients,
        subject: row.get(&[Rc::MessageSubject]).map(str::to_string),
        size: row.get(&[Rc::TotalBytes]).and_then(|s| s.parse().ok()),
        client_ip,
        systems: vec![SYSTEM.to_string()],
        deliveries,
        ..MessageRecord::default()
    }))
}

// ---------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------

/// The kind of a message trace CSV, from its header's names (lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceCsv {
    /// Get-MessageTrace(V2) | Export-Csv.
    MessageTrace,
    /// Get-MessageTraceDetail(V2) | Export-Csv.
    MessageTraceDetail,
    /// Historical search, enhanced summary report.
    EnhancedSummary,
    /// Historical search, extended report.
    Extended,
}

/// Which message trace CSV a header (names in any case) is, if any.
pub fn trace_csv_kind(names: &[String]) -> Option<TraceCsv> {
    let lower: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let has = |n: &str| lower.iter().any(|h| h == n);
    let any = |ns: &[&str]| ns.iter().any(|n| has(n));
    if has("received")
        && has("senderaddress")
        && has("recipientaddress")
        && has("status")
        && any(&["messagetraceid", "messageid"])
    {
        Some(TraceCsv::MessageTrace)
    } else if has("date") && has("event") && has("recipientaddress") && has("messagetraceid") {
        Some(TraceCsv::MessageTraceDetail)
    } else if any(&SUMMARY_TIME)
        && has("sender_address")
        && has("recipient_status")
        && has("message_id")
    {
        Some(TraceCsv::EnhancedSummary)
    } else if any(&EXTENDED_TIME)
        && has("event_id")
        && has("recipient_address")
        && any(&["message_id", "network_message_id"])
    {
        Some(TraceCsv::Extended)
    } else {
        None
    }
}

/// Which kind a JSON object's keys say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    Trace,
    Detail,
    Page,
    Audit,
    Unknown,
}

fn has_key(keys: &dyn Fn(&str) -> bool, names: &[&str]) -> bool {
    names.iter().all(|n| keys(n))
}

fn kind_of_keys(keys: &dyn Fn(&str) -> bool) -> ObjectKind {
    if has_key(
        keys,
        &["Received", "RecipientAddress", "SenderAddress", "Status"],
    ) || has_key(
        keys,
        &[
            "receivedDateTime",
            "recipientAddress",
            "senderAddress",
            "status",
        ],
    ) {
        ObjectKind::Trace
    } else if has_key(
        keys,
        &["Date", "Event", "RecipientAddress", "MessageTraceId"],
    ) || (has_key(keys, &["dateTime", "event", "messageId"])
        && (keys("description") || keys("action")))
    {
        ObjectKind::Detail
    } else if has_key(keys, &["CreationTime", "Operation"])
        && (keys("RecordType") || keys("Workload"))
    {
        ObjectKind::Audit
    } else {
        ObjectKind::Unknown
    }
}

fn object_kind(obj: &Map<String, Value>) -> ObjectKind {
    if matches!(obj.get("value"), Some(Value::Array(_))) {
        return ObjectKind::Page;
    }
    let keys = |n: &str| obj.keys().any(|k| k.eq_ignore_ascii_case(n));
    let mut kind = kind_of_keys(&keys);
    if kind == ObjectKind::Unknown {
        // A trace row with only some columns (Select-Object): a received time and a recipient.
        if (keys("Received") || keys("receivedDateTime")) && keys("RecipientAddress") {
            kind = ObjectKind::Trace;
        }
    }
    kind
}

/// Whether the head of an input is a message trace export (see the module doc).
pub fn looks_like_trace(head: &[u8]) -> bool {
    match head_shape(head) {
        HeadShape::Csv(names) => trace_csv_kind(&names).is_some(),
        HeadShape::Json(keys) => {
            let has = |n: &str| keys.contains(n);
            matches!(kind_of_keys(&has), ObjectKind::Trace | ObjectKind::Detail)
        }
        HeadShape::None => false,
    }
}

// ---------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------

/// How a trace input was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceInput {
    Json,
    Csv(TraceCsv),
}

/// Counts from one import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSummary {
    /// What the input was read as (`None`: empty, or an unknown CSV header).
    pub input: Option<TraceInput>,
    /// Rows and JSON objects (trace rows, detail events) decoded.
    pub rows: u64,
    /// Message records emitted.
    pub records: u64,
    /// Rejects reported.
    pub rejected: u64,
    /// Trace rows whose status makes no delivery (`None`, unknown values).
    pub without_status: u64,
    /// Events that make no delivery (HA* shadow copies and events such as Submit).
    pub ignored_events: u64,
}

/// Folds the rows of one message into one record, in a bounded map.
struct Grouper {
    open: HashMap<String, MessageRecord>,
    order: VecDeque<String>,
    max_open: usize,
}

impl Grouper {
    fn new(max_open: usize) -> Grouper {
        Grouper {
            open: HashMap::new(),
            order: VecDeque::new(),
            max_open: max_open.max(1),
        }
    }

    fn add(&mut self, record: MessageRecord, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let key = record
            .keys
            .first()
            .or(record.message_id.as_ref())
            .map_or("", String::as_str);
        match self.open.get_mut(key) {
            Some(open) => open.merge(record),
            None => {
                let key = key.to_string();
                self.open.insert(key.clone(), record);
                self.order.push_back(key);
            }
        }
        while self.open.len() > self.max_open {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(r) = self.open.remove(&oldest) {
                sink.record(r)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        while let Some(key) = self.order.pop_front() {
            if let Some(r) = self.open.remove(&key) {
                sink.record(r)?;
            }
        }
        Ok(())
    }
}

struct TraceUnits {
    csv: Option<TraceCsv>,
    names: Vec<String>,
    columns: ReportColumns,
    order: DateOrder,
    grouper: Grouper,
    summary: TraceSummary,
}

impl TraceUnits {
    fn object(
        &mut self,
        obj: &Map<String, Value>,
        at: &At<'_>,
        what: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let result = match object_kind(obj) {
            ObjectKind::Trace => trace_row_with(obj, &mut self.order).map(|row| {
                if row.delivery_status().is_none() && row.recipient.is_some() {
                    self.summary.without_status += 1;
                }
                row.record()
            }),
            ObjectKind::Detail => detail_record_with(obj, None, &mut self.order).map(|(r, m)| {
                if matches!(m, EventMeaning::Shadow | EventMeaning::Other) {
                    self.summary.ignored_events += 1;
                }
                r
            }),
            ObjectKind::Audit => Err(FieldError::new(
                CODE_FIELDS,
                "an Office 365 audit record, not a message trace: import it as o365-audit",
            )),
            ObjectKind::Page | ObjectKind::Unknown => Err(FieldError::new(
                CODE_FIELDS,
                "no message trace fields (Received/RecipientAddress, receivedDateTime/recipientAddress, Date/Event)",
            )),
        };
        match result {
            Ok(record) => {
                self.summary.rows += 1;
                self.grouper.add(record, sink)
            }
            Err(e) => at.reject(sink, e.code, format!("{what}{}", e.reason)),
        }
    }
}

impl Units for TraceUnits {
    fn csv_header(&mut self, names: &[String]) -> bool {
        self.csv = trace_csv_kind(names);
        self.names = names.to_vec();
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        self.columns = ReportColumns::new(&lower);
        if let Some(kind) = self.csv {
            self.summary.input = Some(TraceInput::Csv(kind));
        }
        self.csv.is_some()
    }

    fn csv_row(
        &mut self,
        fields: &[&str],
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        match self.csv {
            Some(TraceCsv::MessageTrace) | Some(TraceCsv::MessageTraceDetail) => {
                let obj: Map<String, Value> = self
                    .names
                    .iter()
                    .cloned()
                    .zip(fields.iter().map(|f| Value::String(f.to_string())))
                    .collect();
                self.object(&obj, at, "", sink)
            }
            Some(TraceCsv::EnhancedSummary) => {
                let row = Row {
                    columns: &self.columns,
                    fields,
                };
                match summary_record(&row, &mut self.order) {
                    Ok(r) => {
                        self.summary.rows += 1;
                        self.grouper.add(r, sink)
                    }
                    Err(e) => at.reject(sink, e.code, e.reason),
                }
            }
            Some(TraceCsv::Extended) => {
                let row = Row {
                    columns: &self.columns,
                    fields,
                };
                match extended_record(&row, &mut self.order) {
                    Ok(Some(r)) => {
                        self.summary.rows += 1;
                        if r.deliveries.is_empty() {
                            self.summary.ignored_events += 1;
                        }
                        self.grouper.add(r, sink)
                    }
                    Ok(None) => {
                        self.summary.ignored_events += 1;
                        Ok(())
                    }
                    Err(e) => at.reject(sink, e.code, e.reason),
                }
            }
            None => Ok(()),
        }
    }

    fn json_value(
        &mut self,
        value: Value,
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        self.summary.input = Some(TraceInput::Json);
        match value {
            Value::Object(obj) => match obj.get("value") {
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let what = format!("value[{i}]: ");
                        match item {
                            Value::Object(o) => self.object(o, at, &what, sink)?,
                            _ => {
                                at.reject(sink, CODE_FIELDS, format!("{what}not a JSON object"))?
                            }
                        }
                    }
                    Ok(())
                }
                _ => self.object(&obj, at, "", sink),
            },
            // An array inside the top-level array (ConvertTo-Json of nested pipelines).
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let what = format!("[{i}]: ");
                    match item {
                        Value::Object(o) => self.object(o, at, &what, sink)?,
                        _ => at.reject(sink, CODE_FIELDS, format!("{what}not a JSON object"))?,
                    }
                }
                Ok(())
            }
            _ => at.reject(sink, CODE_FIELDS, "not a JSON object"),
        }
    }

    fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.grouper.finish(sink)
    }
}

const TRACE_CODES: Codes = Codes {
    json: CODE_JSON,
    csv: CODE_CSV,
    too_long: CODE_TOO_LONG,
    header: CODE_HEADER,
    field_count: CODE_FIELD_COUNT,
    header_hint: "expected Get-MessageTrace columns (Received, SenderAddress, RecipientAddress, Status, MessageTraceId), Get-MessageTraceDetail columns (Date, Event, RecipientAddress, MessageTraceId) or a historical search report (origin_timestamp, sender_address, recipient_status, message_id / date_time, event_id, recipient_address, message_id)",
};

/// Decode one message trace export (any kind in the module doc): one record
/// per message to `sink`, malformed values and rows as rejects. Only I/O and
/// sink failures stop it.
pub fn import_trace<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<TraceSummary, IngestError> {
    import_trace_with(reader, source, opts, DEFAULT_MAX_OPEN, sink)
}

/// [`import_trace`] with at most `max_open` messages folded at once.
pub fn import_trace_with<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    max_open: usize,
    sink: &mut dyn Sink,
) -> Result<TraceSummary, IngestError> {
    let mut counting = CountingSink {
        inner: sink,
        records: 0,
        rejects: 0,
    };
    let mut units = TraceUnits {
        csv: None,
        names: Vec::new(),
        columns: ReportColumns::default(),
        order: DateOrder::Unknown,
        grouper: Grouper::new(max_open),
        summary: TraceSummary::default(),
    };
    drive(
        reader,
        source,
        opts,
        &TRACE_CODES,
        &mut units,
        &mut counting,
    )?;
    let mut summary = units.summary;
    summary.records = counting.records;
    summary.rejected = counting.rejects;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dates_in_every_documented_shape() {
        let want = t("2023-11-16T14:13:20Z");
        for s in [
            "2023-11-16T14:13:20Z",
            "2023-11-16T14:13:20.0000000",
            "2023-11-16T14:13:20",
            "2023-11-16 14:13:20",
            "2023-11-16 14:13:20Z",
            "2023-11-16T23:13:20+09:00",
            "/Date(1700144000000)/",
            "\\/Date(1700144000000)\\/",
            "/Date(1700144000000+0900)/",
            "11/16/2023 2:13:20 PM",
            "2023/11/16 14:13:20",
            "16.11.2023 14:13:20",
            "16/11/2023 14:13:20",
            "2023/11/16 午後 2:13:20",
            "2023-11-16 2:13:20 p.m.",
        ] {
            assert_eq!(parse_time(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_time("2022-09-05T18:10:13.4907658"),
            Some(t("2022-09-05T18:10:13.490765800Z"))
        );
        assert_eq!(
            parse_time("12/1/2023 12:00:01 AM"),
            Some(t("2023-12-01T00:00:01Z"))
        );
        assert_eq!(
            parse_time("12/1/2023 12:00:01 PM"),
            Some(t("2023-12-01T12:00:01Z"))
        );
        for bad in [
            "",
            "yesterday",
            "13/13/2023 1:00:00",
            "2023/11/16 25:00:00",
            "/Date(x)/",
            "11/16/23 1:00 PM",
            "1/2/2023 13:00:00 PM",
            "Thursday, 16 November 2023",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn day_month_order_is_learned_per_file() {
        let mut order = DateOrder::Unknown;
        // Ambiguous without evidence: AM/PM reads month first.
        assert_eq!(
            parse_time_with("3/4/2024 1:00:00 PM", &mut order),
            Some(t("2024-03-04T13:00:00Z"))
        );
        assert_eq!(order, DateOrder::Unknown);
        // A day above 12 settles it (en-AU writes AM/PM day first).
        assert_eq!(
            parse_time_with("16/4/2024 1:00:00 PM", &mut order),
            Some(t("2024-04-16T13:00:00Z"))
        );
        assert_eq!(order, DateOrder::DayFirst);
        assert_eq!(
            parse_time_with("3/4/2024 1:00:00 PM", &mut order),
            Some(t("2024-04-03T13:00:00Z"))
        );
        let mut us = DateOrder::Unknown;
        parse_time_with("4/16/2024 1:00:00 PM", &mut us).unwrap();
        assert_eq!(us, DateOrder::MonthFirst);
        assert_eq!(
            parse_time_with("3/4/2024 13:00:00", &mut us),
            Some(t("2024-03-04T13:00:00Z"))
        );
    }

    #[test]
    fn statuses_and_events() {
        assert_eq!(trace_status("Delivered"), Some(DeliveryStatus::Delivered));
        assert_eq!(
            trace_status("filteredAsSpam"),
            Some(DeliveryStatus::Quarantined)
        );
        assert_eq!(
            trace_status("gettingStatus"),
            Some(DeliveryStatus::Received)
        );
        assert_eq!(trace_status("Pending"), Some(DeliveryStatus::Deferred));
        assert_eq!(trace_status("None"), None);
        assert_eq!(trace_status("unknownFutureValue"), None);
        assert_eq!(
            event_meaning("Send external"),
            EventMeaning::Status(DeliveryStatus::Delivered)
        );
        assert_eq!(event_meaning("HAREDIRECT"), EventMeaning::Shadow);
        assert_eq!(event_meaning("Quarantine release"), EventMeaning::Other);
        assert_eq!(
            event_meaning("Quarantine"),
            EventMeaning::Status(DeliveryStatus::Quarantined)
        );
        assert_eq!(event_meaning("Receive"), EventMeaning::Received);
        assert_eq!(event_meaning("Submit"), EventMeaning::Other);
    }

    #[test]
    fn ips_lose_ports_brackets_and_zones() {
        assert_eq!(clean_ip("192.0.2.1:51234").as_deref(), Some("192.0.2.1"));
        assert_eq!(
            clean_ip("[2001:db8::1]:443").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(clean_ip("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(clean_ip("fe80::1%3").as_deref(), Some("fe80::1"));
        assert_eq!(clean_ip(""), None);
        assert_eq!(clean_ip("host:25"), None);
    }

    /// The quote-to-quote scan gives what a byte-by-byte scan gives.
    #[test]
    fn quote_state_matches_a_byte_scan() {
        fn byte_scan(text: &str) -> bool {
            let b = text.as_bytes();
            let (mut i, mut field_start, mut in_quotes) = (0, true, false);
            while i < b.len() {
                let c = b[i];
                if in_quotes {
                    if c == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        in_quotes = false;
                    }
                } else if c == b',' {
                    field_start = true;
                    i += 1;
                    continue;
                } else if c == b'"' && field_start {
                    in_quotes = true;
                }
                field_start = false;
                i += 1;
            }
            in_quotes
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let text: String = (0..len)
                .map(|i| [b'"', b',', b'a', b'\n', b' '][((x >> (i * 3 + 5)) % 5) as usize] as char)
                .collect();
            assert_eq!(open_quote(&text), byte_scan(&text), "{text:?}");
        }
    }

    #[test]
    fn csv_quote_state() {
        assert!(!open_quote(r#"a,"b,c",d"#));
        assert!(open_quote(r#"a,"b"#));
        assert!(!open_quote(r#"a,x"y,z"#));
        assert!(open_quote("a,\"line one\nline \"\"two"));
        assert!(!open_quote("a,\"line one\nline \"\"two\"\"\""));
    }

    #[test]
    fn recipient_status_pairs() {
        assert_eq!(
            parse_recipient_status("a@x##Receive, Deliver;b@y##Receive, Fail;;c@z"),
            [
                (
                    "a@x".to_string(),
                    vec!["Receive".to_string(), "Deliver".to_string()]
                ),
                (
                    "b@y".to_string(),
                    vec!["Receive".to_string(), "Fail".to_string()]
                ),
                ("c@z".to_string(), vec![]),
            ]
        );
    }

    #[test]
    fn json_values_split_arrays_ndjson_and_junk() {
        let input =
            b"[{\"a\":\"]}\\\"\"},\n {\"b\":[1,{}]}, 7 ,\"s\"]\n{\"c\":1}\ngarbage line\n{\"d\":";
        let mut v = JsonValues::new(&input[..], 1000, 1);
        let mut got = Vec::new();
        while let Some(item) = v.next_item().unwrap() {
            got.push(match item {
                JsonItem::Value { bytes, line, .. } => {
                    format!("V{line}:{}", String::from_utf8_lossy(&bytes))
                }
                JsonItem::TooLong { line, .. } => format!("L{line}"),
                JsonItem::Broken { line, reason, .. } => format!("B{line}:{reason}"),
            });
        }
        assert_eq!(
            got,
            [
                "V1:{\"a\":\"]}\\\"\"}",
                "V2:{\"b\":[1,{}]}",
                "V2:7",
                "V2:\"s\"",
                "V3:{\"c\":1}",
                "B4:text outside any JSON object or array",
                "B5:the input ends inside a JSON value",
            ]
        );
        let mut v = JsonValues::new(&b"[{\"long\":\"0123456789\"},{}]"[..], 8, 1);
        assert!(matches!(
            v.next_item().unwrap(),
            Some(JsonItem::TooLong { length: 21, .. })
        ));
        assert!(matches!(
            v.next_item().unwrap(),
            Some(JsonItem::Value { .. })
        ));
        assert!(v.next_item().unwrap().is_none());
    }

    #[test]
    fn utf16_is_transcoded() {
        let text = "[{\"Subject\":\"見積 😀\"}]";
        for little in [true, false] {
            let mut bytes: Vec<u8> = if little {
                vec![0xFF, 0xFE]
            } else {
                vec![0xFE, 0xFF]
            };
            for u in text.encode_utf16() {
                bytes.extend_from_slice(&if little {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                });
            }
            let mut out = String::new();
            text_input(&bytes[..])
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, text);
            assert_eq!(head_text(&bytes), text);
        }
        let mut out = Vec::new();
        text_input(&b"\xFF\xFE\x00\xD8A"[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\u{FFFD}\u{FFFD}");
    }
}
