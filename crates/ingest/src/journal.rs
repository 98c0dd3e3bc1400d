//! Journal copies received over SMTP: bytes + SMTP envelope in, one
//! [`MessageRecord`] out (the pure decoding half of the SMTP journal receiver).
//!
//! Why it is shaped this way:
//!
//! * **The record is always the journalled message, never the wrapper.** An
//!   Exchange / Microsoft 365 envelope journal report is a message *about*
//!   a message; what an administrator searches for is the original (its
//!   Message-ID, subject, body, attachments), so the attached original is cut
//!   out of the report byte for byte and decoded by [`mime::parse_message`]
//!   on its own. `raw` and every attachment `raw_range` therefore refer to the
//!   original's bytes, exactly as if it had been imported from a mailbox, and
//!   the blob store keeps the same content once whichever way it arrived.
//! * **A report only says what it says.** Exchange can split one message
//!   into several reports (bifurcation, distribution-group expansion). Each
//!   report is decoded to the facts it states (its recipients, its Bcc
//!   lines, its expansions) and nothing is inferred about recipients it does
//!   not list; the store's merge by Message-ID ([`MessageRecord::merge`])
//!   unions the reports into one message. The same holds for copies: the
//!   recipients we can *see* (headers added by the delivering MTA, the SMTP
//!   envelope) are classified, nothing else.
//! * **Bcc is the envelope/header difference.** Journal copies are where Bcc
//!   recipients become visible: Exchange states them (`Bcc:` lines); for a
//!   Postfix / Gmail / plain copy an envelope recipient (minus the journal
//!   mailbox itself) that is not in the header To/Cc is a Bcc recipient.
//! * **The report's outer structure is read with `mail-parser` for offsets
//!   only**, on a same-length copy in which `message/rfc822` (and friends)
//!   are renamed, so that the parser never nests into the original (its
//!   nesting is unbounded, see [`crate::mime`]) and the original stays an
//!   opaque byte range. There is no recursion of our own: the only nested
//!   decoding is [`mime::parse_message`] on the original, which is
//!   depth-limited there. The outer parse runs inside `catch_unwind`.
//! * **Nothing panics; bad input degrades.** A report whose original is
//!   missing or unreadable still yields a record from the report lines
//!   (`raw = None`); unknown lines are skipped; non-UTF-8 text is decoded by
//!   the same charset sniffing as mail bodies. Only input that is not a
//!   message at all is an error ([`MimeError`]), as for any other message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, Utc};
use mail_parser::decoders::html::html_to_text;
use mail_parser::{Encoding, HeaderName, MessageParser, MessagePart, PartType};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Delivery, DeliveryStatus, Mailbox,
    MessageRecord, Recipient, RecipientKind,
};

use crate::mime::{self, MimeError};
use crate::DecodeOptions;

/// The system name journal deliveries and records carry.
pub const JOURNAL_SYSTEM: &str = "journal";
/// The most root header fields read when classifying a message.
const MAX_ROOT_HEADERS: usize = 10_000;
/// The most recipient lines read from one journal report body.
pub const MAX_REPORT_RECIPIENTS: usize = 100_000;

/// What the SMTP receiver knows besides the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM`; `None` (or `<>`) for the null sender.
    pub mail_from: Option<String>,
    /// `RCPT TO`, in the order given.
    pub rcpt_to: Vec<String>,
    /// When the receiver accepted the message.
    pub received_at: DateTime<Utc>,
    /// The connecting client's IP address.
    pub client_ip: Option<String>,
    /// The name the client gave in `EHLO` / `HELO`.
    pub client_helo: Option<String>,
}

/// Which kind of journal copy a message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JournalKind {
    /// An Exchange / Microsoft 365 envelope journal report (`X-MS-Journal-Report`).
    ExchangeEnvelope,
    /// A Google Workspace copy carrying `X-Gm-Original-To`.
    GmailCopy,
    /// A copy carrying Postfix's `X-Original-To` (or `X-Envelope-To`).
    PostfixCopy,
    /// Any other copy (Postfix `always_bcc` / `recipient_bcc_maps`, a plain Bcc).
    PlainCopy,
}

/// A decoded journal copy: what it was and the message it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalMessage {
    pub kind: JournalKind,
    pub record: MessageRecord,
}

/// The field a recipient line of a journal report names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportField {
    To,
    Cc,
    Bcc,
    /// Exchange could not tell how the recipient was addressed.
    Recipient,
}

impl ReportField {
    /// The recipient kind a line of this field gives its address.
    pub fn recipient_kind(self) -> RecipientKind {
        match self {
            ReportField::To => RecipientKind::To,
            ReportField::Cc => RecipientKind::Cc,
            ReportField::Bcc => RecipientKind::Bcc,
            ReportField::Recipient => RecipientKind::Envelope,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ReportField::To => "To",
            ReportField::Cc => "Cc",
            ReportField::Bcc => "Bcc",
            ReportField::Recipient => "Recipient",
        }
    }
}

/// How Exchange's categorizer redirected a journalled recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectionKind {
    /// The source was a distribution group expanded to the recipient.
    Expanded,
    /// The source was a recipient whose mail is forwarded (alternate recipient).
    Forwarded,
}

/// `Expanded: group@x` / `Forwarded: orig@x` after a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirection {
    pub kind: RedirectionKind,
    /// Normalised address of the group or the originally addressed recipient.
    pub source: String,
}

/// One `To: | Cc: | Bcc: | Recipient:` line of a journal report body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecipient {
    pub field: ReportField,
    /// Normalised address of the journalled recipient.
    pub address: String,
    /// Redirections named on the line (the format allows one; more are kept).
    pub redirections: Vec<Redirection>,
}

/// What the text of an Exchange envelope journal report states.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportBody {
    /// `Sender:` — the SMTP (envelope) sender, normalised.
    pub sender: Option<String>,
    /// `On-Behalf-Of:` — the principal a delegate sent for, normalised.
    pub on_behalf_of: Option<String>,
    /// `Subject:` as written in the report.
    pub subject: Option<String>,
    /// `Message-ID:`, normalised (no angle brackets).
    pub message_id: Option<String>,
    pub recipients: Vec<ReportRecipient>,
}

/// Decode one message received by the SMTP journal receiver.
///
/// `journal_addresses` are the receiver's own mailboxes (where journal
/// copies are sent); envelope recipients equal to one of them are not
/// recipients of the message. Never panics: input that is not a message at
/// all gives the same [`MimeError`] as [`mime::parse_message`]; anything
/// else gives a record with what could be read.
pub fn decode_journal(
    raw: Vec<u8>,
    envelope: &Envelope,
    journal_addresses: &[String],
    opts: &DecodeOptions,
) -> Result<JournalMessage, MimeError> {
    crate::mime::check_size(&raw, opts)?;
    let headers = root_headers(&raw);
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let (kind, mut record) = if has("X-MS-Journal-Report") {
        (
            JournalKind::ExchangeEnvelope,
            decode_exchange(raw, &headers, envelope, opts)?,
        )
    } else {
        let kind = if has("X-Gm-Original-To") {
            JournalKind::GmailCopy
        } else if has("X-Original-To") || has("X-Envelope-To") {
            JournalKind::PostfixCopy
        } else {
            JournalKind::PlainCopy
        };
        let seen = seen_recipients(&raw, &headers);
        let mut record = mime::parse_message(raw, opts)?;
        apply_copy(&mut record, seen, envelope, journal_addresses);
        (kind, record)
    };
    record.systems = vec![JOURNAL_SYSTEM.to_string()];
    // The journal's deliveries carry the message's own time (its earliest
    // Received:/Date:), not the moment this copy arrived: a copy sent again
    // (an MTA retrying after a lost `250`) must describe the same events, or
    // the store would count its deliveries twice. Journaling happens as the
    // message passes, so the two times differ by seconds.
    if let Some(own_time) = record.first_seen {
        for d in record
            .deliveries
            .iter_mut()
            .filter(|d| d.system == JOURNAL_SYSTEM)
        {
            d.time = own_time;
        }
    }
    record.first_seen = Some(match record.first_seen {
        Some(t) => t.min(envelope.received_at),
        None => envelope.received_at,
    });
    Ok(JournalMessage { kind, record })
}

// ---------------------------------------------------------------------------
// Root header fields (classification and copy headers)
// ---------------------------------------------------------------------------

/// One root header field: its name and the byte range of its (folded) value.
struct RawHeader {
    name: String,
    start: usize,
    end: usize,
}

/// The root header fields of a message, read without a MIME parser: enough
/// to classify it and to read the few single-valued fields copies carry.
/// Stops at the first line that is neither a field nor a continuation.
fn root_headers(raw: &[u8]) -> Vec<RawHeader> {
    let mut headers: Vec<RawHeader> = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < raw.len() && headers.len() < MAX_ROOT_HEADERS {
        let line_end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..line_end];
        let content = trim_newline(line);
        if content.is_empty() {
            break;
        }
        if first && content.starts_with(b"From ") {
            // An mbox separator left in front of the message.
            first = false;
            pos = line_end;
            continue;
        }
        first = false;
        if content[0] == b' ' || content[0] == b'\t' {
            match headers.last_mut() {
                Some(h) => h.end = pos + content.len(),
                None => break,
            }
        } else {
            let Some(colon) = memchr::memchr(b':', content) else {
                break;
            };
            let name = &content[..colon];
            let name_trimmed = trim_end_ws(name);
            if name_trimmed.is_empty()
                || !name_trimmed
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && b != b':')
            {
                break;
            }
            headers.push(RawHeader {
                name: String::from_utf8_lossy(name_trimmed).into_owned(),
                start: pos + colon + 1,
                end: pos + content.len(),
            });
        }
        pos = line_end;
    }
    headers
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && s[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    &s[..end]
}

fn header_text(raw: &[u8], h: &RawHeader) -> String {
    raw.get(h.start..h.end)
        .map(mime::decode_header_text)
        .unwrap_or_default()
}

/// Addresses in a header value such as `<a@x>`, `a@x`, `Name <a@x>, b@y`.
fn addresses_in(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let inner = match (item.rfind('<'), item.rfind('>')) {
                (Some(open), Some(close)) if open < close => &item[open + 1..close],
                _ => item,
            };
            normalize_address(inner)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Copies: X-Gm-Original-To, X-Original-To, Delivered-To, plain Bcc copies
// ---------------------------------------------------------------------------

/// Headers that name an envelope recipient of the copy, added by the MTA that
/// delivered it (most specific first).
const RECIPIENT_HEADERS: [&str; 4] = [
    "X-Gm-Original-To",
    "X-Original-To",
    "X-Envelope-To",
    "Delivered-To",
];

/// Envelope recipients named in the copy's root headers, with the header naming each.
fn seen_recipients(raw: &[u8], headers: &[RawHeader]) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for name in RECIPIENT_HEADERS {
        for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
            for address in addresses_in(&header_text(raw, h)) {
                out.push((address, name));
            }
        }
    }
    out
}

/// Add what a copy tells besides its content: the envelope sender and the
/// real recipients (from the delivering MTA's headers and the SMTP envelope,
/// minus the journal mailboxes). One of those not in the header To/Cc is a
/// Bcc recipient; each gets a `received` delivery at the journal.
fn apply_copy(
    record: &mut MessageRecord,
    seen: Vec<(String, &'static str)>,
    envelope: &Envelope,
    journal_addresses: &[String],
) {
    if record.envelope_from.is_none() {
        record.envelope_from = envelope.mail_from.as_deref().and_then(normalize_address);
    }
    let journal: Vec<String> = journal_addresses
        .iter()
        .filter_map(|a| normalize_address(a))
        .collect();
    let from_envelope = envelope
        .rcpt_to
        .iter()
        .filter_map(|a| normalize_address(a))
        .map(|a| (a, "RCPT TO"));
    let mut done: Vec<String> = Vec::new();
    for (address, source) in seen.into_iter().chain(from_envelope) {
        if journal.contains(&address) || done.contains(&address) {
            continue;
        }
        let addressed = record.recipients.iter().any(|r| {
            r.address == address && matches!(r.kind, RecipientKind::To | RecipientKind::Cc)
        });
        if !addressed {
            if let Some(r) = Recipient::new(&address, None, RecipientKind::Bcc) {
                merge_recipient(&mut record.recipients, r);
            }
        }
        push_delivery(
            record,
            received(envelope, &address, format!("journal copy ({source})")),
        );
        done.push(address);
    }
}

// ---------------------------------------------------------------------------
// Exchange / Microsoft 365 envelope journal reports
// ---------------------------------------------------------------------------

fn decode_exchange(
    raw: Vec<u8>,
    headers: &[RawHeader],
    envelope: &Envelope,
    opts: &DecodeOptions,
) -> Result<MessageRecord, MimeError> {
    let parts = catch_unwind(AssertUnwindSafe(|| report_parts(&raw))).unwrap_or_default();
    let body = parts
        .text
        .as_deref()
        .map(parse_report_body)
        .unwrap_or_default();
    let original = parts
        .original
        .and_then(|bytes| mime::parse_message(bytes, opts).ok());
    let mut record = match original {
        Some(record) => record,
        None => report_only_record(&raw, headers, &body),
    };
    if let Some(id) = &body.message_id {
        // The report states the Message-ID Exchange's transport knew the
        // message by (it assigns one when the client sent none). Message
        // trace and the other reports of a bifurcated message carry that
        // one, so it is the identity under which they must merge; it wins
        // over the attached original's header when the two differ.
        record.message_id = Some(id.clone());
    }
    if let Some(sender) = &body.sender {
        // `Sender:` is the envelope (P1) sender; the SMTP envelope of the
        // report itself names the journaling agent, not the author.
        record.envelope_from = Some(sender.clone());
    }
    if record.subject.is_none() {
        record.subject = body.subject.clone();
    }
    apply_report_recipients(&mut record, &body, envelope);
    Ok(record)
}

/// A record from the report lines alone (no usable original attached).
fn report_only_record(raw: &[u8], headers: &[RawHeader], body: &ReportBody) -> MessageRecord {
    let mut record = MessageRecord {
        message_id: body.message_id.clone(),
        subject: body.subject.clone().or_else(|| {
            // Exchange gives the report the original's subject.
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("Subject"))
                .map(|h| header_text(raw, h).trim().to_string())
                .filter(|s| !s.is_empty())
        }),
        ..Default::default()
    };
    record.from = body
        .on_behalf_of
        .as_deref()
        .or(body.sender.as_deref())
        .and_then(|a| Mailbox::new(a, None));
    if record.message_id.is_none() {
        record.keys = vec![format!("content:{}", blake3::hash(raw).to_hex())];
    }
    record
}

/// The report's recipient lines: recipients by field, an `expanded` /
/// `forwarded` delivery per redirection and a `received` delivery per
/// listed recipient.
fn apply_report_recipients(record: &mut MessageRecord, body: &ReportBody, envelope: &Envelope) {
    let mut listed: Vec<&str> = Vec::new();
    for line in &body.recipients {
        let kind = line.field.recipient_kind();
        if let Some(r) = Recipient::new(&line.address, None, kind) {
            merge_recipient(&mut record.recipients, r);
        }
        for redirection in &line.redirections {
            // The report says the client addressed the group (or the
            // forwarding recipient) in this field.
            if let Some(r) = Recipient::new(&redirection.source, None, kind) {
                merge_recipient(&mut record.recipients, r);
            }
            let (status, detail) = match redirection.kind {
                RedirectionKind::Expanded => (
                    DeliveryStatus::Expanded,
                    format!("expanded from group {}", redirection.source),
                ),
                RedirectionKind::Forwarded => (
                    DeliveryStatus::Forwarded,
                    format!("forwarded from {}", redirection.source),
                ),
            };
            let mut delivery = received(envelope, &line.address, detail);
            delivery.status = status;
            delivery.original_recipient = Some(redirection.source.clone());
            push_delivery(record, delivery);
        }
        if !listed.contains(&line.address.as_str()) {
            listed.push(&line.address);
            push_delivery(
                record,
                received(
                    envelope,
                    &line.address,
                    format!("journal report ({})", line.field.as_str()),
                ),
            );
        }
    }
}

fn received(envelope: &Envelope, recipient: &str, detail: String) -> Delivery {
    Delivery {
        time: envelope.received_at,
        recipient: recipient.to_string(),
        status: DeliveryStatus::Received,
        detail: Some(detail),
        system: JOURNAL_SYSTEM.to_string(),
        relay: None,
        client_ip: envelope.client_ip.clone(),
        client_host: envelope.client_helo.clone(),
        local_id: None,
        original_recipient: None,
    }
}

fn push_delivery(record: &mut MessageRecord, delivery: Delivery) {
    if !record.deliveries.contains(&delivery) {
        record.deliveries.push(delivery);
    }
}

/// The two things a journal report carries: its text and the original.
#[derive(Default)]
struct ReportParts {
    /// Decoded text of the first text part (the report lines).
    text: Option<String>,
    /// The attached original's bytes, exactly as attached.
    original: Option<Vec<u8>>,
}

/// Same length as `message`: the renamed type of nested messages.
const NESTED_MARK: &[u8] = b"x-mtjnl";

/// Find the report text and the attached original. The outer structure is
/// parsed on a copy in which nested-message types are renamed (same length,
/// so offsets still point into `raw`).
fn report_parts(raw: &[u8]) -> ReportParts {
    let patched = neutralise_nesting(raw);
    let data: &[u8] = patched.as_deref().unwrap_or(raw);
    let Some(message) = MessageParser::default().parse(data) else {
        return ReportParts::default();
    };
    let mut out = ReportParts::default();
    let mut html: Option<String> = None;
    for part in &message.parts {
        match &part.body {
            PartType::Text(_) if out.text.is_none() && !is_nested(part) => {
                out.text = Some(part_text(raw, part));
            }
            PartType::Html(_) if html.is_none() => {
                html = Some(html_to_text(&part_text(raw, part)));
            }
            PartType::Binary(_) | PartType::InlineBinary(_)
                if out.original.is_none() && is_nested(part) =>
            {
                out.original = original_bytes(raw, part);
            }
            _ => {}
        }
    }
    if out.text.is_none() {
        out.text = html;
    }
    out
}

fn is_nested(part: &MessagePart<'_>) -> bool {
    content_type(part).is_some_and(|ct| ct.ctype().as_bytes().eq_ignore_ascii_case(NESTED_MARK))
}

fn content_type<'a>(part: &'a MessagePart<'_>) -> Option<&'a mail_parser::ContentType<'a>> {
    part.headers
        .iter()
        .find(|h| h.name == HeaderName::ContentType)
        .and_then(|h| h.value.as_content_type())
}

/// Transfer-decoded bytes of a part, read from the original (unpatched) bytes.
fn part_bytes(raw: &[u8], part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let body = raw.get(start..end.max(start))?;
    Some(match part.encoding {
        Encoding::None => body.to_vec(),
        Encoding::Base64 => mime::base64_decode_lenient(body),
        Encoding::QuotedPrintable => mime::qp_decode_lenient(body),
    })
}

fn part_text(raw: &[u8], part: &MessagePart<'_>) -> String {
    let bytes = part_bytes(raw, part).unwrap_or_default();
    let charset = content_type(part).and_then(|ct| ct.attribute("charset"));
    mime::decode_text(&bytes, charset)
}

/// The attached original, unaltered. Its bytes are the part body, which ends
/// where the line break that belongs to the next boundary delimiter begins
/// (RFC 2046 §5.1.1).
fn original_bytes(raw: &[u8], part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let bytes = part_bytes(raw, part)?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(bytes)
}

/// A copy of `raw` with `message/rfc822`, `message/global` and
/// `multipart/digest` (whose entries default to messages) renamed to private
/// same-length types, or `None` when there are none.
fn neutralise_nesting(raw: &[u8]) -> Option<Vec<u8>> {
    let mut copy: Option<Vec<u8>> = None;
    let starts = |s: &[u8], p: &[u8]| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p);
    for slash in memchr::memchr_iter(b'/', raw) {
        let after = &raw[slash + 1..];
        if slash >= 7
            && raw[slash - 7..slash].eq_ignore_ascii_case(b"message")
            && (starts(after, b"rfc822") || starts(after, b"global"))
        {
            let c = copy.get_or_insert_with(|| raw.to_vec());
            c[slash - 7..slash].copy_from_slice(NESTED_MARK);
        } else if slash >= 9
            && raw[slash - 9..slash].eq_ignore_ascii_case(b"multipart")
            && starts(after, b"digest")
        {
            let c = copy.get_or_insert_with(|| raw.to_vec());
            c[slash + 1..slash + 7].copy_from_slice(b"digesx");
        }
    }
    copy
}

/// Parse the text of an Exchange envelope journal report (one field per
/// line: `Sender:`, `Subject:`, `Message-ID:`, `On-Behalf-Of:`, then
/// `To: | Cc: | Bcc: | Recipient: addr[, Expanded: group | , Forwarded: orig]`).
/// Field names are matched without regard to case; lines that are none of
/// these, and recipient lines without an address, are skipped.
pub fn parse_report_body(text: &str) -> ReportBody {
    let mut body = ReportBody::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        let field = match name.to_ascii_lowercase().as_str() {
            "sender" => {
                if body.sender.is_none() {
                    body.sender = addresses_in(value).into_iter().next();
                }
                continue;
            }
            "on-behalf-of" => {
                if body.on_behalf_of.is_none() {
                    body.on_behalf_of = addresses_in(value).into_iter().next();
                }
                continue;
            }
            "subject" => {
                if body.subject.is_none() && !value.is_empty() {
                    body.subject = Some(value.to_string());
                }
                continue;
            }
            "message-id" => {
                if body.message_id.is_none() {
                    body.message_id = normalize_message_id(value);
                }
                continue;
            }
            "to" => ReportField::To,
            "cc" => ReportField::Cc,
            "bcc" => ReportField::Bcc,
            "recipient" => ReportField::Recipient,
            _ => continue,
        };
        if body.recipients.len() >= MAX_REPORT_RECIPIENTS {
            continue;
        }
        if let Some(recipient) = parse_recipient_line(field, value) {
            body.recipients.push(recipient);
        }
    }
    body
}

/// `addr[, Expanded: group][, Forwarded: orig]` after the field name.
fn parse_recipient_line(field: ReportField, value: &str) -> Option<ReportRecipient> {
    let mut items = value.split(',');
    let address = addresses_in(items.next()?).into_iter().next()?;
    let redirections = items
        .filter_map(|item| {
            let (kind, source) = item.split_once(':')?;
            let kind = match kind.trim().to_ascii_lowercase().as_str() {
                "expanded" => RedirectionKind::Expanded,
                "forwarded" => RedirectionKind::Forwarded,
                _ => return None,
            };
            let source = addresses_in(source).into_iter().next()?;
            Some(Redirection { kind, source })
        })
        .collect();
    Some(ReportRecipient {
        field,
        address,
        redirections,
    })
}
