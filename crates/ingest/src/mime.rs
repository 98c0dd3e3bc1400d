//! One RFC 5322 message in, one [`MessageRecord`] out.
//!
//! Why it is shaped this way:
//!
//! * `mail-parser` is used for **structure only** (where each part's headers
//!   and body start and end, addresses, dates, `Received:`). Everything whose
//!   charset matters — text bodies, the subject, attachment names — is decoded
//!   here again from the *original* bytes, because real mail carries labels
//!   that `mail-parser` does not know (`CP932`, `x-sjis`, `iso-2022-jp-ms`),
//!   labels that lie (UTF-8 bytes labelled ISO-2022-JP) and RFC 2231
//!   continuations whose multi-byte characters straddle two segments.
//! * Nested messages (`message/rfc822`, `message/global`, digest entries) are
//!   *not* left to `mail-parser`: its in-place nesting is unbounded, and both
//!   dropping and `into_owned` of the result recurse once per level (a crafted
//!   message nested a million times overflows the stack, which no
//!   `catch_unwind` can catch) and copy the decoded body once per level. We
//!   blank out those content types in a same-length copy before parsing (so
//!   every offset still points into the original) and parse each nested
//!   message ourselves, with an explicit depth limit.
//! * The whole decode runs inside `catch_unwind`: a parser bug costs one
//!   message, never the import.
//! * Every part walk is over `Message::parts` (a flat vector), never a
//!   recursive tree walk, so 10,000 parts or deep multipart nesting cost
//!   memory proportional to the input and no stack.

use std::borrow::Cow;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{
    Address, Encoding, Header, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    PartType,
};
use mailtrail_model::{
    normalize_message_id, Attachment, AuthResults, Mailbox, MessageRecord, Position, Recipient,
    RecipientKind, Reject,
};

use crate::{DecodeOptions, IngestError, Sink, QUARANTINE_EXCERPT_BYTES};

/// The most text kept in `body_text` (bytes of UTF-8).
pub const MAX_BODY_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Nested messages deeper than this are kept as plain attachments.
pub const MAX_NESTED_DEPTH: usize = 8;
/// The most attachments listed per message (nested ones included).
pub const MAX_ATTACHMENTS: usize = 10_000;
/// The most inner names listed per archive.
pub const MAX_INNER_NAMES: usize = 10_000;

/// Counts of one import (eml file, mbox, Maildir tree).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Messages handed to the sink as records.
    pub messages: u64,
    /// Messages handed to the sink as rejects.
    pub rejected: u64,
}

impl ImportSummary {
    pub fn add(&mut self, other: ImportSummary) {
        self.messages += other.messages;
        self.rejected += other.rejected;
    }
}

/// Why a message could not be decoded. [`MimeError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("empty message")]
    Empty,
    #[error("no message header found (byte {offset})")]
    Parse { offset: u64 },
    #[error("the MIME parser panicked: {message}")]
    Panic { message: String },
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

impl MimeError {
    /// Stable reason code for [`Reject::code`].
    pub fn code(&self) -> &'static str {
        match self {
            MimeError::Empty => "mime.empty",
            MimeError::Parse { .. } => "mime.parse",
            MimeError::Panic { .. } => "mime.panic",
            MimeError::TooLarge { .. } => "mime.too_large",
        }
    }

    /// Byte offset inside the message where the problem is, when meaningful.
    pub fn offset(&self) -> Option<u64> {
        match self {
            MimeError::Parse { offset } => Some(*offset),
            _ => None,
        }
    }
}

/// The checks every message decoder makes first: not blank, not over the limit.
pub(crate) fn check_size(raw: &[u8], opts: &DecodeOptions) -> Result<(), MimeError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(MimeError::Empty);
    }
    if raw.len() > opts.max_message_bytes {
        return Err(MimeError::TooLarge {
            size: raw.len() as u64,
            limit: opts.max_message_bytes as u64,
        });
    }
    Ok(())
}

/// Decode one message. Never panics; bad input gives what could be read or a [`MimeError`].
pub fn parse_message(raw: Vec<u8>, opts: &DecodeOptions) -> Result<MessageRecord, MimeError> {
    check_size(&raw, opts)?;
    let mut record = decode_guarded(&raw, false)?;
    record.size = Some(raw.len() as u64);
    if record.message_id.is_none() {
        record.keys = vec![format!("content:{}", blake3::hash(&raw).to_hex())];
    }
    record.systems = vec!["mailbox".to_string()];
    record.raw = Some(raw);
    Ok(record)
}

/// [`decode_root`], a panic in the parser turned into [`MimeError::Panic`].
fn decode_guarded(raw: &[u8], text_only: bool) -> Result<MessageRecord, MimeError> {
    Ok(decode_guarded_with(raw, text_only, false)?.0)
}

/// [`decode_guarded`], with each attachment's decoded bytes when
/// `keep_content`.
fn decode_guarded_with(
    raw: &[u8],
    text_only: bool,
    keep_content: bool,
) -> Result<(MessageRecord, Vec<Vec<u8>>), MimeError> {
    match catch_unwind(AssertUnwindSafe(|| {
        decode_root(raw, text_only, keep_content)
    })) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(MimeError::Panic { message })
        }
    }
}

/// The body text of a message as [`parse_message`] reads it, without the
/// work on attachments (decoding, hashing, opening archives): what the
/// monitoring rules need of a stored message whose attachments the store
/// already describes.
pub fn body_text(raw: &[u8], opts: &DecodeOptions) -> Result<Option<String>, MimeError> {
    check_size(raw, opts)?;
    Ok(decode_guarded(raw, true)?.body_text)
}

/// The message as [`parse_message`] reads it (body text and attachments)
/// and each attachment's decoded bytes, in the order of
/// `record.attachments`: what the monitoring rules need to judge a stored
/// message's files by their content (an executable named `.pdf`, macros in
/// an Office file) rather than by name alone. Holds every attachment in
/// memory at once, so it is bounded by the size limit of `opts` like the
/// message itself.
pub fn parse_with_attachment_content(
    raw: &[u8],
    opts: &DecodeOptions,
) -> Result<(MessageRecord, Vec<Vec<u8>>), MimeError> {
    check_size(raw, opts)?;
    decode_guarded_with(raw, false, true)
}

/// Import one message file (`.eml`). A file that cannot be opened is an error;
/// one that cannot be decoded is a [`Reject`].
pub fn import_eml(
    path: &Path,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| IngestError::Io {
        path: source.clone(),
        source: e,
    })?;
    import_eml_reader(file, &source, opts, sink)
}

/// One message from a reader (a decompressing one, say), reported as `source`.
pub fn import_eml_reader<R: Read>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let raw = read_capped(reader, opts.max_message_bytes).map_err(|e| IngestError::Io {
        path: source.to_string(),
        source: e,
    })?;
    let mut summary = ImportSummary::default();
    let len = raw.bytes_read;
    deliver(raw, source, 0, opts, sink, &mut summary)?;
    sink.progress(len);
    Ok(summary)
}

/// A message read with a size cap: the bytes kept and how many the input had.
pub(crate) struct Capped {
    pub(crate) bytes: Vec<u8>,
    pub(crate) bytes_read: u64,
    pub(crate) too_large: bool,
}

/// Read at most `max` bytes (keeping only a quarantine excerpt when the input is larger).
pub(crate) fn read_capped<R: Read>(mut reader: R, max: usize) -> std::io::Result<Capped> {
    let mut bytes = Vec::new();
    let limit = (max as u64).saturating_add(1);
    (&mut reader).take(limit).read_to_end(&mut bytes)?;
    let mut bytes_read = bytes.len() as u64;
    let too_large = bytes.len() > max;
    if too_large {
        bytes.truncate(QUARANTINE_EXCERPT_BYTES);
        bytes.shrink_to_fit();
        bytes_read += std::io::copy(&mut reader, &mut std::io::sink())?;
    }
    Ok(Capped {
        bytes,
        bytes_read,
        too_large,
    })
}

/// Parse a capped message and hand it to the sink as a record or a reject.
pub(crate) fn deliver(
    raw: Capped,
    source: &str,
    offset: u64,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
    summary: &mut ImportSummary,
) -> Result<(), IngestError> {
    let result = if raw.too_large {
        Err((
            MimeError::TooLarge {
                size: raw.bytes_read,
                limit: opts.max_message_bytes as u64,
            },
            raw.bytes,
        ))
    } else {
        // The head is kept for quarantine in case the parse fails.
        let head = raw.bytes[..raw.bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec();
        parse_message(raw.bytes, opts).map_err(|e| (e, head))
    };
    match result {
        Ok(record) => {
            sink.record(record)?;
            summary.messages += 1;
        }
        Err((error, head)) => {
            sink.reject(Reject {
                source: source.to_string(),
                position: Position::Offset(offset + error.offset().unwrap_or(0)),
                code: error.code().to_string(),
                reason: error.to_string(),
                input: head,
            })?;
            summary.rejected += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Decoding proper
// ---------------------------------------------------------------------------

/// What the walk over one message (and its nested messages) collects.
#[derive(Default)]
struct Collected {
    attachments: Vec<Attachment>,
    body: String,
    /// Only the body text is wanted ([`body_text`]): attachments are not
    /// decoded, hashed or opened.
    text_only: bool,
    /// Keep each attachment's decoded bytes in `contents`
    /// ([`parse_with_attachment_content`]).
    keep_content: bool,
    contents: Vec<Vec<u8>>,
}

impl Collected {
    fn push_text(&mut self, text: &str) {
        let text = text.trim_end();
        if text.is_empty() || self.body.len() >= MAX_BODY_TEXT_BYTES {
            return;
        }
        if !self.body.is_empty() {
            self.body.push('\n');
        }
        let room = MAX_BODY_TEXT_BYTES.saturating_sub(self.body.len());
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.body.push_str(&text[..cut]);
    }
}

fn decode_root(
    raw: &[u8],
    text_only: bool,
    keep_content: bool,
) -> Result<(MessageRecord, Vec<Vec<u8>>), MimeError> {
    let patched = neutralise_nesting(raw);
    let data: &[u8] = patched.as_deref().unwrap_or(raw);
    let message = MessageParser::default()
        .parse(data)
        .ok_or(MimeError::Parse { offset: 0 })?;
    let root_headers = message
        .parts
        .first()
        .map(|p| p.headers.as_slice())
        .unwrap_or(&[]);
    if !root_headers.iter().any(is_message_header) {
        return Err(MimeError::Parse { offset: 0 });
    }

    let mut record = MessageRecord {
        message_id: message.message_id().and_then(normalize_message_id),
        date: message.date().and_then(to_utc),
        ..Default::default()
    };
    record.from = first_mailbox(message.from());
    record.reply_to = first_mailbox(message.reply_to());
    for (addresses, kind) in [
        (message.to(), RecipientKind::To),
        (message.cc(), RecipientKind::Cc),
        (message.bcc(), RecipientKind::Bcc),
    ] {
        for addr in addresses.into_iter().flat_map(|a| a.iter()) {
            let Some(address) = addr.address() else {
                continue;
            };
            if let Some(r) = Recipient::new(address, addr.name(), kind) {
                if !record.recipients.contains(&r) {
                    record.recipients.push(r);
                }
            }
        }
    }
    record.subject = header_raw(raw, root_headers, &HeaderName::Subject)
        .map(|v| decode_header_text(v).trim().to_string())
        .or_else(|| message.subject().map(|s| s.trim().to_string()));
    record.auth = auth_results(raw, root_headers);
    let mut earliest: Option<DateTime<Utc>> = None;
    for h in root_headers {
        if let HeaderValue::Received(received) = &h.value {
            // The bottom-most Received header names the first hop; a
            // loopback, link-local or unspecified address there (Exchange
            // Online's MAPI submission writes `[fe80::…]`) names no client.
            if let Some(ip) = received.from_ip().filter(|ip| is_client_address(*ip)) {
                record.client_ip = Some(ip.to_string());
            }
            if let Some(t) = received.date().and_then(|d| to_utc(&d)) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
    }
    record.first_seen = earliest.or(record.date);

    let mut collected = Collected {
        text_only,
        keep_content,
        ..Collected::default()
    };
    walk_parts(raw, &message, Some(0), 0, &mut collected);
    record.attachments = collected.attachments;
    if !collected.body.is_empty() {
        record.body_text = Some(collected.body);
    }
    Ok((record, collected.contents))
}

/// A header that only a mail message carries (so that random text is not taken for one).
fn is_message_header(h: &Header<'_>) -> bool {
    match &h.name {
        HeaderName::Other(name) => {
            let n = name.as_ref();
            n.len() > 2 && n.as_bytes()[..2].eq_ignore_ascii_case(b"x-")
                || [
                    "delivered-to",
                    "received-spf",
                    "dkim-signature",
                    "thread-index",
                ]
                .iter()
                .any(|k| n.eq_ignore_ascii_case(k))
        }
        _ => true,
    }
}

/// Walk one message's parts: body text and attachments into `out`.
/// `base` is the offset of `raw` inside the record's raw message, when it is a slice of it.
fn walk_parts(
    raw: &[u8],
    message: &Message<'_>,
    base: Option<usize>,
    depth: usize,
    out: &mut Collected,
) {
    // Parts mail-parser chose as body (text, HTML) — flags by index, no quadratic lookups.
    let mut in_text = vec![false; message.parts.len()];
    let mut in_html = vec![false; message.parts.len()];
    for &id in &message.text_body {
        if let Some(flag) = in_text.get_mut(id as usize) {
            *flag = true;
        }
    }
    for &id in &message.html_body {
        if let Some(flag) = in_html.get_mut(id as usize) {
            *flag = true;
        }
    }

    for (index, part) in message.parts.iter().enumerate() {
        if out.attachments.len() >= MAX_ATTACHMENTS {
            return;
        }
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let filename = part_filename(raw, part);
        let nested = is_nested_message(part);
        let is_textual = matches!(part.body, PartType::Text(_) | PartType::Html(_));
        // A text part cut short (truncated mailbox, missing boundary) is still body text.
        let recovered = part.is_encoding_problem
            && matches!(part.body, PartType::Text(_))
            && !is_attachment_disposition(part);
        if is_textual && filename.is_none() && !nested {
            if in_text[index] || recovered {
                let text = decode_text(&part_bytes(raw, part), part_charset(part));
                match part.body {
                    PartType::Html(_) => out.push_text(&html_to_text(&text)),
                    _ => out.push_text(&text),
                }
                continue;
            }
            if in_html[index] {
                continue;
            }
        }
        if out.text_only && !nested {
            continue;
        }
        let bytes = part_bytes(raw, part);
        let content_type = part_content_type(part);
        let mut attachment = Attachment {
            filename,
            size: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
            raw_range: base.and_then(|b| {
                let (start, end) = (part.offset_body as usize, part.offset_end as usize);
                (start <= end && end <= raw.len()).then_some((b + start, b + end))
            }),
            ..Default::default()
        };
        if looks_like_zip(&content_type, attachment.filename.as_deref(), &bytes) {
            let (names, encrypted) = zip_inner_names(&bytes);
            attachment.inner_names = names;
            attachment.encrypted = encrypted;
        }
        attachment.content_type = content_type;
        out.attachments.push(attachment);
        if out.keep_content {
            out.contents.push(bytes.to_vec());
        }

        if nested && depth < MAX_NESTED_DEPTH {
            let nested_base = match part.encoding {
                Encoding::None => base.map(|b| b + part.offset_body as usize),
                _ => None,
            };
            walk_nested(&bytes, nested_base, depth + 1, out);
        }
    }
}

/// A nested message: its subject and text go to the body text, its attachments to the list.
fn walk_nested(raw: &[u8], base: Option<usize>, depth: usize, out: &mut Collected) {
    let patched = neutralise_nesting(raw);
    let data: &[u8] = patched.as_deref().unwrap_or(raw);
    let Some(message) = MessageParser::default().parse(data) else {
        return;
    };
    let headers = message
        .parts
        .first()
        .map(|p| p.headers.as_slice())
        .unwrap_or(&[]);
    if let Some(subject) = header_raw(raw, headers, &HeaderName::Subject) {
        out.push_text(decode_header_text(subject).trim());
    }
    walk_parts(raw, &message, base, depth, out);
}

fn is_attachment_disposition(part: &MessagePart<'_>) -> bool {
    part.headers
        .iter()
        .find(|h| h.name == HeaderName::ContentDisposition)
        .and_then(|h| h.value.as_content_type())
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("attachment"))
}

fn is_nested_message(part: &MessagePart<'_>) -> bool {
    content_type_of(part).is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(NESTED_MARK)
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
            })
    })
}

fn content_type_of<'a>(part: &'a MessagePart<'_>) -> Option<&'a mail_parser::ContentType<'a>> {
    part.headers
        .iter()
        .find(|h| h.name == HeaderName::ContentType)
        .and_then(|h| h.value.as_content_type())
}

fn part_content_type(part: &MessagePart<'_>) -> String {
    match content_type_of(part) {
        Some(ct) => {
            let ctype = if ct.ctype().eq_ignore_ascii_case(NESTED_MARK) {
                "message".to_string()
            } else {
                ct.ctype().to_ascii_lowercase()
            };
            match ct.subtype() {
                Some(sub) => {
                    let sub = sub.to_ascii_lowercase();
                    let sub = if ctype == "multipart" && sub == DIGEST_MARK {
                        "digest".to_string()
                    } else {
                        sub
                    };
                    format!("{ctype}/{sub}")
                }
                None => ctype,
            }
        }
        None => match part.body {
            PartType::Text(_) => "text/plain".to_string(),
            PartType::Html(_) => "text/html".to_string(),
            _ => "application/octet-stream".to_string(),
        },
    }
}

fn part_charset<'a>(part: &'a MessagePart<'_>) -> Option<&'a str> {
    content_type_of(part).and_then(|ct| ct.attribute("charset"))
}

/// The transfer-decoded bytes of a leaf part, from the original message bytes.
fn part_bytes<'a>(raw: &'a [u8], part: &MessagePart<'_>) -> Cow<'a, [u8]> {
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let Some(body) = raw.get(start..end.max(start)) else {
        return Cow::Borrowed(&[]);
    };
    match part.encoding {
        Encoding::None => Cow::Borrowed(body),
        Encoding::Base64 => Cow::Owned(base64_decode_lenient(body)),
        Encoding::QuotedPrintable => Cow::Owned(qp_decode_lenient(body)),
    }
}

fn header_raw<'a>(
    raw: &'a [u8],
    headers: &[Header<'_>],
    name: &HeaderName<'_>,
) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| &h.name == name)
        .and_then(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
}

fn first_mailbox(address: Option<&Address<'_>>) -> Option<Mailbox> {
    address?
        .iter()
        .find_map(|a| a.address().and_then(|addr| Mailbox::new(addr, a.name())))
}

fn to_utc(d: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    if !d.is_valid() {
        return None;
    }
    Utc.timestamp_opt(d.to_timestamp(), 0).single()
}

// ---------------------------------------------------------------------------
// Nesting neutraliser
// ---------------------------------------------------------------------------

/// Same length as `message`: `message/rfc822` becomes `x-mtmsg/rfc822`.
pub const NESTED_MARK: &str = "x-mtmsg";
/// Same length as `digest`: entries of `multipart/digest` default to text, not to messages.
const DIGEST_MARK: &str = "digesx";

/// A copy of `raw` in which the content types that make mail-parser nest
/// (`message/rfc822`, `message/global`, `multipart/digest`) are renamed to
/// same-length private ones, or `None` when there are none. Offsets into
/// the copy are offsets into `raw`; an attached message is then one part
/// (of type [`NESTED_MARK`]) that the caller may parse in turn, to a depth
/// it chooses, instead of mail-parser recursing without limit.
pub fn neutralise_nesting(raw: &[u8]) -> Option<Vec<u8>> {
    let mut copy: Option<Vec<u8>> = None;
    for slash in memchr::memchr_iter(b'/', raw) {
        let before = slash.checked_sub(7).and_then(|s| raw.get(s..slash));
        let after = raw.get(slash + 1..);
        let (Some(before), Some(after)) = (before, after) else {
            continue;
        };
        let starts =
            |s: &[u8], p: &[u8]| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p);
        if before.eq_ignore_ascii_case(b"message")
            && (starts(after, b"rfc822") || starts(after, b"global"))
        {
            let c = copy.get_or_insert_with(|| raw.to_vec());
            c[slash - 7..slash].copy_from_slice(NESTED_MARK.as_bytes());
        } else if starts(after, b"digest")
            && slash >= 9
            && raw[slash - 9..slash].eq_ignore_ascii_case(b"multipart")
        {
            let c = copy.get_or_insert_with(|| raw.to_vec());
            c[slash + 1..slash + 7].copy_from_slice(DIGEST_MARK.as_bytes());
        }
    }
    copy
}

// ---------------------------------------------------------------------------
// Transfer decoding (lenient: bad input gives what could be read)
// ---------------------------------------------------------------------------

fn base64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some((b - b'A') as u32),
        b'a'..=b'z' => Some((b - b'a' + 26) as u32),
        b'0'..=b'9' => Some((b - b'0' + 52) as u32),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Whether an address can be a mail client's: not loopback, link-local or
/// unspecified (those are the logging host itself or one of its links).
pub fn is_client_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified())
        }
        std::net::IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || link_local)
        }
    }
}

/// Base64 that skips anything outside the alphabet and stops at padding.
pub fn base64_decode_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let (mut acc, mut n) = (0u32, 0u8);
    for &b in input {
        if b == b'=' {
            // Padding ends a quantum; keep going (concatenated base64 exists).
            push_partial_quantum(acc, n, &mut out);
            acc = 0;
            n = 0;
            continue;
        }
        let Some(v) = base64_value(b) else {
            continue;
        };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    push_partial_quantum(acc, n, &mut out);
    out
}

/// The bytes of an incomplete base64 quantum of `n` sextets held in `acc`.
fn push_partial_quantum(acc: u32, n: u8, out: &mut Vec<u8>) {
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => {
            out.push((acc >> 10) as u8);
            out.push((acc >> 2) as u8);
        }
        _ => {}
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable body decoding; invalid escapes are kept literally.
pub fn qp_decode_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'=' {
            // Soft line break: `=` then optional white space then (CR)LF.
            let mut j = i + 1;
            while j < input.len() && (input[j] == b' ' || input[j] == b'\t') {
                j += 1;
            }
            if j < input.len() && input[j] == b'\n' {
                i = j + 1;
                continue;
            }
            if j + 1 < input.len() && input[j] == b'\r' && input[j + 1] == b'\n' {
                i = j + 2;
                continue;
            }
            if j == input.len() {
                break;
            }
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex_value),
                input.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Charsets
// ---------------------------------------------------------------------------

/// Map a charset label to a name mail-parser decodes, including aliases it does
/// not know (`CP932`, `x-sjis`, `iso-2022-jp-ms`, ...) and mangled labels.
/// Returns `None` for labels that say nothing useful.
pub fn canonical_charset(label: &str) -> Option<Cow<'static, str>> {
    let l: String = label
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .map(|c| match c.to_ascii_lowercase() {
            '_' => '-',
            c => c,
        })
        .collect();
    if l.is_empty() {
        return None;
    }
    let direct: &[(&str, &str)] = &[
        ("utf-8", "utf-8"),
        ("utf8", "utf-8"),
        ("x-utf8", "utf-8"),
        ("unicode-1-1-utf-8", "utf-8"),
        ("us-ascii", "us-ascii"),
        ("ascii", "us-ascii"),
        ("cp932", "windows-31j"),
        ("ms932", "windows-31j"),
        ("ms-932", "windows-31j"),
        ("windows-932", "windows-31j"),
        ("x-ms-cp932", "windows-31j"),
        ("ibm-943", "windows-31j"),
        ("ibm943", "windows-31j"),
        ("cswindows31j", "windows-31j"),
        ("windows-31j", "windows-31j"),
        ("shift-jis", "windows-31j"),
        ("shiftjis", "windows-31j"),
        ("sjis", "windows-31j"),
        ("x-sjis", "windows-31j"),
        ("x-shift-jis", "windows-31j"),
        ("shift-jisx0213", "windows-31j"),
        ("shift-jis-2004", "windows-31j"),
        ("sjis-open", "windows-31j"),
        ("sjis-win", "windows-31j"),
        ("iso-2022-jp", "iso-2022-jp"),
        ("iso2022jp", "iso-2022-jp"),
        ("iso-2022-jp-ms", "iso-2022-jp"),
        ("iso-2022-jp-1", "iso-2022-jp"),
        ("iso-2022-jp-2", "iso-2022-jp"),
        ("iso-2022-jp-3", "iso-2022-jp"),
        ("iso-2022-jp-2004", "iso-2022-jp"),
        ("cp50220", "iso-2022-jp"),
        ("cp50221", "iso-2022-jp"),
        ("cp50222", "iso-2022-jp"),
        ("csiso2022jp2", "iso-2022-jp"),
        ("x-windows-iso2022jp", "iso-2022-jp"),
        ("jis", "iso-2022-jp"),
        ("euc-jp", "euc-jp"),
        ("eucjp", "euc-jp"),
        ("x-euc-jp", "euc-jp"),
        ("euc-jp-ms", "euc-jp"),
        ("eucjp-ms", "euc-jp"),
        ("eucjp-win", "euc-jp"),
        ("cp51932", "euc-jp"),
        ("euc-jis-2004", "euc-jp"),
        ("euc-jisx0213", "euc-jp"),
        ("euc-cn", "gbk"),
        ("x-gbk", "gbk"),
        ("cp949", "euc-kr"),
        ("ks-c-5601-1987", "euc-kr"),
    ];
    if let Some((_, c)) = direct.iter().find(|(k, _)| *k == l) {
        return Some(Cow::Borrowed(c));
    }
    if l == "utf-7" || charset_decoder(l.as_bytes()).is_some() {
        return Some(Cow::Owned(l));
    }
    // Mangled labels (`"_iso-2022-jp$ESC"`, `x-unknown-shift_jis`): look for the family.
    let family = if l.contains("2022-jp") || l.contains("2022jp") {
        "iso-2022-jp"
    } else if l.contains("shift") || l.contains("sjis") || l.contains("932") {
        "windows-31j"
    } else if l.contains("euc-jp") || l.contains("eucjp") {
        "euc-jp"
    } else if l.contains("utf-8") || l.contains("utf8") {
        "utf-8"
    } else {
        return None;
    };
    Some(Cow::Borrowed(family))
}

/// Decode text bytes given the part's (possibly wrong) charset label.
pub fn decode_text(bytes: &[u8], label: Option<&str>) -> String {
    let Some(lower) = label.and_then(canonical_charset) else {
        return sniff_decode(bytes);
    };
    let lower = lower.as_ref();
    if lower == "utf-8" {
        return match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => sniff_decode(bytes),
        };
    }
    let seven_bit = lower == "us-ascii" || lower.starts_with("iso-2022") || lower == "utf-7";
    if seven_bit && !bytes.is_ascii() {
        // A 7-bit label on 8-bit bytes lies: the bytes say what they are.
        return sniff_decode(bytes);
    }
    if lower == "us-ascii" {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let Some(decoder) = charset_decoder(lower.as_bytes()) else {
        return sniff_decode(bytes);
    };
    let text = decoder(bytes);
    if text.contains('\u{FFFD}') {
        if let Ok(s) = std::str::from_utf8(bytes) {
            if !s.contains('\u{FFFD}') {
                return s.to_string();
            }
        }
    }
    text
}

/// Decode bytes whose charset is unknown: UTF-8 if valid, else ISO-2022-JP by its
/// escapes, else Shift_JIS or EUC-JP if they decode cleanly, else lossy UTF-8.
pub fn sniff_decode(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.contains('\u{1b}') {
            return s.to_string();
        }
    }
    if memchr::memmem::find(bytes, b"\x1b$B").is_some()
        || memchr::memmem::find(bytes, b"\x1b$@").is_some()
        || memchr::memmem::find(bytes, b"\x1b(J").is_some()
    {
        if let Some(d) = charset_decoder(b"iso-2022-jp") {
            let s = d(bytes);
            if !s.contains('\u{FFFD}') {
                return s;
            }
        }
    }
    for label in [&b"windows-31j"[..], b"euc-jp"] {
        if let Some(d) = charset_decoder(label) {
            let s = d(bytes);
            if !s.contains('\u{FFFD}') {
                return s;
            }
        }
    }
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// RFC 2047 encoded words
// ---------------------------------------------------------------------------

/// Decode an unstructured header value (folded, with RFC 2047 encoded words and
/// possibly raw 8-bit text) to UTF-8. Adjacent encoded words in the same charset
/// are joined before charset decoding, so a character split across two words survives.
pub fn decode_header_text(value: &[u8]) -> String {
    // Unfold.
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let mut out = String::new();
    let mut literal: Vec<u8> = Vec::new();
    let mut pending: Option<(String, Vec<u8>)> = None; // charset, bytes
    let mut gap: Vec<u8> = Vec::new(); // white space after an encoded word
    let mut i = 0;
    while i < unfolded.len() {
        if unfolded[i] == b'=' && unfolded.get(i + 1) == Some(&b'?') {
            if let Some((charset, bytes, next)) = encoded_word(&unfolded, i) {
                if !literal.is_empty() {
                    flush_pending(&mut out, &mut pending);
                    out.push_str(&sniff_decode(&literal));
                    literal.clear();
                }
                gap.clear();
                match &mut pending {
                    Some((c, b)) if c.eq_ignore_ascii_case(&charset) => b.extend_from_slice(&bytes),
                    _ => {
                        flush_pending(&mut out, &mut pending);
                        pending = Some((charset, bytes));
                    }
                }
                i = next;
                continue;
            }
        }
        let b = unfolded[i];
        if pending.is_some() && literal.is_empty() && (b == b' ' || b == b'\t') {
            gap.push(b);
        } else {
            if literal.is_empty() && !gap.is_empty() {
                literal.append(&mut gap);
            }
            literal.push(b);
        }
        i += 1;
    }
    flush_pending(&mut out, &mut pending);
    literal.append(&mut gap);
    if !literal.is_empty() {
        out.push_str(&sniff_decode(&literal));
    }
    out
}

fn flush_pending(out: &mut String, pending: &mut Option<(String, Vec<u8>)>) {
    if let Some((charset, bytes)) = pending.take() {
        out.push_str(&decode_text(&bytes, Some(&charset)));
    }
}

/// Parse `=?charset?enc?text?=` at `start`: (charset, decoded bytes, index after it).
fn encoded_word(s: &[u8], start: usize) -> Option<(String, Vec<u8>, usize)> {
    let rest = s.get(start + 2..)?;
    let q1 = memchr::memchr(b'?', rest)?;
    let charset_raw = &rest[..q1];
    if charset_raw.is_empty() || charset_raw.len() > 64 || charset_raw.contains(&b' ') {
        return None;
    }
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = memchr::memmem::find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + end];
    let bytes = match enc {
        b'B' | b'b' => base64_decode_lenient(text),
        b'Q' | b'q' => {
            let mut out = Vec::with_capacity(text.len());
            let mut i = 0;
            while i < text.len() {
                match text[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        if let (Some(h), Some(l)) = (
                            text.get(i + 1).copied().and_then(hex_value),
                            text.get(i + 2).copied().and_then(hex_value),
                        ) {
                            out.push(h << 4 | l);
                            i += 3;
                            continue;
                        }
                        out.push(b'=');
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    let charset = String::from_utf8_lossy(charset_raw);
    // RFC 2231 language suffix: `utf-8*ja`.
    let charset = charset.split('*').next().unwrap_or("").to_string();
    Some((charset, bytes, start + 2 + text_start + end + 2))
}

// ---------------------------------------------------------------------------
// Attachment names (RFC 2231 parameters, RFC 2047 in quoted values)
// ---------------------------------------------------------------------------

/// The decoded file name of a part: Content-Disposition `filename`, else Content-Type `name`.
fn part_filename(raw: &[u8], part: &MessagePart<'_>) -> Option<String> {
    for (header, param) in [
        (HeaderName::ContentDisposition, "filename"),
        (HeaderName::ContentType, "name"),
    ] {
        if let Some(value) = header_raw(raw, &part.headers, &header) {
            if let Some(name) = param_value(value, param) {
                let name = name.trim().to_string();
                if !name.is_empty() {
                    return Some(name);
                }
            }
        }
    }
    None
}

struct Param {
    name: String,
    value: Vec<u8>,
}

/// Split a structured header value into its `;`-separated parameters.
fn split_params(value: &[u8]) -> Vec<Param> {
    let mut params = Vec::new();
    let mut i = match memchr::memchr(b';', value) {
        Some(p) => p + 1,
        None => return params,
    };
    while i < value.len() && params.len() < 256 {
        while i < value.len() && (value[i].is_ascii_whitespace() || value[i] == b';') {
            i += 1;
        }
        let name_start = i;
        while i < value.len() && value[i] != b'=' && value[i] != b';' {
            i += 1;
        }
        let name = String::from_utf8_lossy(&value[name_start..i])
            .trim()
            .to_ascii_lowercase();
        if i >= value.len() || value[i] == b';' {
            continue;
        }
        i += 1; // '='
        while i < value.len()
            && (value[i] == b' ' || value[i] == b'\t' || value[i] == b'\r' || value[i] == b'\n')
        {
            i += 1;
        }
        let mut v = Vec::new();
        if value.get(i) == Some(&b'"') {
            i += 1;
            while i < value.len() && value[i] != b'"' {
                match value[i] {
                    b'\\' if i + 1 < value.len() => {
                        v.push(value[i + 1]);
                        i += 2;
                        continue;
                    }
                    b'\r' | b'\n' => {}
                    b => v.push(b),
                }
                i += 1;
            }
            i += 1; // closing quote
            while i < value.len() && value[i] != b';' {
                i += 1;
            }
        } else {
            while i < value.len() && value[i] != b';' {
                if value[i] != b'\r' && value[i] != b'\n' {
                    v.push(value[i]);
                }
                i += 1;
            }
            while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
                v.pop();
            }
        }
        if !name.is_empty() {
            params.push(Param { name, value: v });
        }
    }
    params
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex_value),
                s.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Split `charset'lang'value` of an RFC 2231 extended value.
fn split_extended(v: &[u8]) -> (Option<String>, &[u8]) {
    let mut quotes = memchr::memchr_iter(b'\'', v);
    match (quotes.next(), quotes.next()) {
        (Some(a), Some(b)) => {
            let charset = String::from_utf8_lossy(&v[..a]).to_string();
            (Some(charset).filter(|c| !c.is_empty()), &v[b + 1..])
        }
        _ => (None, v),
    }
}

/// The decoded value of parameter `wanted` (RFC 2231 with continuations, RFC 2047, raw 8-bit).
fn param_value(header_value: &[u8], wanted: &str) -> Option<String> {
    let params = split_params(header_value);
    // RFC 2231: `name*` or `name*N` / `name*N*`.
    let mut sections: Vec<(u32, bool, &[u8])> = Vec::new();
    let mut single_extended: Option<&[u8]> = None;
    let mut plain: Option<&[u8]> = None;
    for p in &params {
        let Some(rest) = p.name.strip_prefix(wanted) else {
            continue;
        };
        if rest.is_empty() {
            plain.get_or_insert(&p.value);
        } else if rest == "*" {
            single_extended.get_or_insert(&p.value);
        } else if let Some(section) = rest.strip_prefix('*') {
            let (num, extended) = match section.strip_suffix('*') {
                Some(n) => (n, true),
                None => (section, false),
            };
            if let Ok(n) = num.parse::<u32>() {
                if !sections.iter().any(|(m, _, _)| *m == n) {
                    sections.push((n, extended, &p.value));
                }
            }
        }
    }
    if let Some(v) = single_extended {
        let (charset, data) = split_extended(v);
        return Some(decode_text(&percent_decode(data), charset.as_deref()));
    }
    if !sections.is_empty() {
        sections.sort_by_key(|(n, _, _)| *n);
        let mut charset = None;
        let mut bytes = Vec::new();
        for (i, (_, extended, v)) in sections.iter().enumerate() {
            if *extended {
                let data = if i == 0 {
                    let (c, d) = split_extended(v);
                    charset = c;
                    d
                } else {
                    v
                };
                bytes.extend_from_slice(&percent_decode(data));
            } else {
                bytes.extend_from_slice(v);
            }
        }
        let text = decode_text(&bytes, charset.as_deref());
        return Some(if text.contains("=?") {
            decode_header_text(text.as_bytes())
        } else {
            text
        });
    }
    plain.map(decode_header_text)
}

// ---------------------------------------------------------------------------
// Authentication results
// ---------------------------------------------------------------------------

fn auth_results(raw: &[u8], headers: &[Header<'_>]) -> AuthResults {
    let mut auth = AuthResults::default();
    for h in headers {
        let name = h.name.as_str();
        let is_ar = name.eq_ignore_ascii_case("Authentication-Results");
        let is_spf = name.eq_ignore_ascii_case("Received-SPF");
        if !is_ar && !is_spf {
            continue;
        }
        let Some(value) = raw.get(h.offset_start as usize..h.offset_end as usize) else {
            continue;
        };
        let text = strip_comments(&String::from_utf8_lossy(value));
        if is_spf {
            if auth.spf.is_none() {
                auth.spf = text
                    .split_whitespace()
                    .next()
                    .map(|v| v.trim_end_matches(';').to_ascii_lowercase())
                    .filter(|v| !v.is_empty());
            }
            continue;
        }
        for token in text.split(|c: char| c == ';' || c.is_whitespace()) {
            let Some((method, result)) = token.split_once('=') else {
                continue;
            };
            let result = result.trim().to_ascii_lowercase();
            if result.is_empty() {
                continue;
            }
            let slot = match method.trim().to_ascii_lowercase().as_str() {
                "spf" => &mut auth.spf,
                "dkim" => &mut auth.dkim,
                "dmarc" => &mut auth.dmarc,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(result);
            }
        }
    }
    auth
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Zip archives (central directory only)
// ---------------------------------------------------------------------------

fn looks_like_zip(content_type: &str, filename: Option<&str>, bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || content_type.contains("zip")
        || filename.is_some_and(|f| f.to_ascii_lowercase().ends_with(".zip"))
}

/// Inner names of a zip and whether any entry is encrypted; an unreadable zip gives none.
fn zip_inner_names(bytes: &[u8]) -> (Vec<String>, bool) {
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return (Vec::new(), false);
    };
    let mut names = Vec::new();
    let mut encrypted = false;
    for i in 0..archive.len().min(MAX_INNER_NAMES) {
        let from_entry = archive
            .by_index_raw(i)
            .map(|entry| (entry.encrypted(), zip_name(entry.name_raw(), entry.name())));
        match from_entry {
            Ok((entry_encrypted, name)) => {
                encrypted |= entry_encrypted;
                names.push(name);
            }
            Err(_) => {
                if let Some(name) = archive.name_for_index(i) {
                    names.push(name.to_string());
                }
            }
        }
    }
    (names, encrypted)
}

/// A zip entry name: UTF-8 when valid, else Shift_JIS (CP932, what Japanese
/// Windows writes without the UTF-8 flag) when it decodes cleanly, else the
/// crate's CP437 reading.
fn zip_name(raw: &[u8], decoded: &str) -> String {
    if let Ok(s) = std::str::from_utf8(raw) {
        return s.to_string();
    }
    if let Some(d) = charset_decoder(b"windows-31j") {
        let s = d(raw);
        if !s.contains('\u{FFFD}') {
            return s;
        }
    }
    decoded.to_string()
}
