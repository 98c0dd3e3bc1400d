//! Exchange Server message tracking logs (`MSGTRK*.LOG`, also `MSGTRKMS`,
//! `MSGTRKMD`, `MSGTRKMA`): one CSV line per event of a message on one server.
//!
//! Why it is shaped this way:
//!
//! - **Columns come from the header, never from their position.** Each file
//!   starts with a W3C-style block (`#Software`, `#Version`, `#Log-type`,
//!   `#Date`, `#Fields`); Exchange 2010 (14.x) writes 26 fields, 2013 (15.00)
//!   27 (adds `network-message-id`), 2016/2019/SE (15.01+) 30. A `#Fields`
//!   line sets the column map of the lines after it, and a later `#Fields`
//!   line (the next rolled file appended to the same stream) replaces it.
//!   Input without any header (log shippers cut it off) is read with the
//!   documented layout of the same field count (30, 27 or 26) — only while
//!   no header has come, and counted in [`MsgtrkSummary::default_layout_lines`]
//!   so the caller can say so.
//! - **CSV per RFC 4180** (quoted fields with commas, `""` escapes, empty
//!   fields) with a small hand-written splitter: one borrowed slice per field
//!   unless a field holds an escaped quote. Quoted fields spanning lines do
//!   not occur in these logs (subjects are unfolded); they are rejected like
//!   any other malformed line. Malformed lines (unterminated quote, a field
//!   count other than the header's, a bad `date-time`, no `event-id`) become
//!   [`Reject`]s with file and line; nothing here panics on input.
//! - **Streaming, with the shape of the syslog dispatcher**:
//!   [`MsgtrkDecoder::line`] takes one line at a time and
//!   [`MsgtrkDecoder::finish`] flushes, so a live follower of a folder of
//!   rolling logs can drive it as [`import_msgtrk`] does for files.
//! - **Correlation.** A message's events carry the same `network-message-id`
//!   (15.00+; it survives bifurcation and group expansion) and
//!   `message-id`; an event is folded into the open message that shares
//!   either (`<>` around the Message-ID is normalised away), else — for
//!   events that carry neither — the one with the same server and
//!   `internal-message-id`. Events with no id at all (`NOTIFYMAPI`) cannot
//!   be placed and are counted as ignored.
//! - **Emission.** A message's events are spread over minutes and over
//!   files, and nothing says "this message is done". An open message is
//!   emitted once its last event is older than [`DEFAULT_WINDOW_MINUTES`] of
//!   log time behind the newest line seen, at [`MsgtrkDecoder::finish`], or,
//!   to bound memory, when more than [`DEFAULT_MAX_OPEN`] messages are open
//!   (the least recently seen goes first). Emitting early is correct, only
//!   less efficient: the store merges partial views of one message by
//!   Message-ID and by key.
//! - **A folder is one stream.** A message's events are spread over the
//!   `MSGTRK`, `MSGTRKMS` and `MSGTRKMD` logs of its servers and over the
//!   files rolled while it was in transit. [`import_msgtrk_files`] reads the
//!   files of a folder (of several servers' folders) side by side and hands
//!   their lines to one decoder in `date-time` order — each file is in time
//!   order, so this is a merge, with only the files whose time has come
//!   open — so that a message is one record, not one partial record per
//!   file for the store to fold (which cost an update and a full-text
//!   re-index per file; 7× slower on a generated 200 MB folder). Each file
//!   keeps its own `#Fields` layout; rejects name the file and line.
//! - **Records.** One [`MessageRecord`] per message: keys
//!   `exchange-nmid:<network-message-id>` (the GUID is organisation-wide, so
//!   views from several servers meet) and `exchange@<server>:<internal id>`
//!   (DESIGN.md's "Exchange internal id" local key); `message_id` from
//!   `message-id`; `from` from `sender-address` (the Sender:/From: header),
//!   `envelope_from` from `return-path` (`<>` is none; the custom-data
//!   `OriginalFromAddress` when the field is empty); subject from
//!   `message-subject`; size from `total-bytes` (a RECEIVE's when there is
//!   one); recipients from `recipient-address` (`;`-separated) as envelope
//!   recipients — except on a mailbox submission, where Exchange writes
//!   `To`, `Cc` or `Bcc` as the recipient status and the kind is kept, Bcc
//!   included; systems `exchange@<server>` (the server's short name:
//!   Exchange writes its own name now short, now as an FQDN). `first_seen`
//!   also takes the organisation-entry time Exchange writes in
//!   `message-info` of DELIVER and SEND events.
//! - **Client IP.** The record's client IP is the real client when Exchange
//!   names it (`original-client-ip`, then custom-data
//!   `ProxiedClientIPAddress`: on 2013+ the front end proxies every
//!   connection, so `client-ip` is often our own front end), else the first
//!   SMTP RECEIVE's `client-ip` (a STOREDRIVER RECEIVE's is the mailbox
//!   server itself, no client); the RECEIVE delivery keeps the connecting
//!   `client-ip` itself. IPv6 zone suffixes (`fe80::1%3`) are **removed**: the
//!   zone is the interface index on the logging server, meaningless anywhere
//!   else, and `fe80::1%3` is no valid address for search, `inet` columns or
//!   policy matching. Values that are no address once the zone is gone are
//!   left out (the line is kept). Addresses are stored in canonical form.
//!
//! Event → delivery status (one [`Delivery`] per recipient per event, or one
//! with an empty recipient when the event names none; system
//! `exchange@<server>`, `local_id` the `internal-message-id`, detail the
//! recipient status plus the server's text from `source-context`):
//!
//! | event-id | delivery |
//! |---|---|
//! | RECEIVE (SMTP, STOREDRIVER, …) | one `received` per event for the whole message (recipient empty), with the connecting client — as the Postfix, Sendmail and Exim decoders count arrivals, so `stats` means the same for every system |
//! | DELIVER (mailbox) | `delivered` |
//! | SEND, SENDEXTERNAL (next hop; relay = `server-hostname[server-ip]`, as for SMTP DEFER and FAIL) | `delivered` (the model has no separate "sent"; Postfix's relay deliveries count the same way) |
//! | FAIL | `bounced` |
//! | DEFER | `deferred`, once per recipient and server; repeats add `[deferred N times]` |
//! | EXPAND (`related-recipient-address` = the group) | `expanded` per member, `original_recipient` = group |
//! | REDIRECT (`related-recipient-address` = the original recipient) | `forwarded` per new recipient, `original_recipient` = original |
//! | RESOLVE | none; the resolved address remembers the one written |
//! | DROP, BADMAIL, DELIVERFAIL | `failed` |
//! | DSN | none: the event is the creation of the bounce message itself (its own Message-ID; `reference` names the original), and the original's `FAIL` already counts the bounce |
//! | TRANSFER, SUBMIT, AGENTINFO, NOTIFYMAPI, … | none; their fields fill the record |
//! | HA* (HARECEIVE, HAREDIRECT, HAREDIRECTFAIL, HADISCARD, …) | nothing at all: shadow-redundancy copies are not deliveries and do not make or change records; counted in [`MsgtrkSummary::shadow`] |
//!
//! Deliveries, failures and deferrals of an address that an earlier EXPAND,
//! REDIRECT or RESOLVE of the same message produced carry the address it
//! came from as `original_recipient` (so a group member is not taken for a
//! Bcc recipient).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::BufRead;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Delivery, DeliveryStatus, Mailbox,
    MessageRecord, Position, Recipient, RecipientKind, Reject,
};

use crate::lines::{Line, LineReader};
use crate::{DecodeOptions, IngestError, Sink, SinkError, QUARANTINE_EXCERPT_BYTES};

/// Open messages kept before the least recently seen is emitted as it stands.
pub const DEFAULT_MAX_OPEN: usize = 200_000;

/// Log time after a message's last event at which it is emitted.
pub const DEFAULT_WINDOW_MINUTES: i64 = 30;

/// Reject code: a line longer than `DecodeOptions::max_line_bytes`.
pub const CODE_TOO_LONG: &str = "msgtrk.too_long";
/// Reject code: a line that is not RFC 4180 CSV (unterminated quote, text after a closing quote).
pub const CODE_CSV: &str = "msgtrk.csv";
/// Reject code: a field count other than the `#Fields` header's (or no known layout).
pub const CODE_FIELD_COUNT: &str = "msgtrk.field_count";
/// Reject code: a `date-time` that is not an ISO 8601 UTC stamp.
pub const CODE_DATE: &str = "msgtrk.date";
/// Reject code: an empty `event-id`.
pub const CODE_EVENT: &str = "msgtrk.event";
/// Reject code: a `#Fields` header without `date-time` or `event-id`, and the lines after it.
pub const CODE_HEADER: &str = "msgtrk.header";

/// The columns we read. Others in a header are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    DateTime,
    ClientIp,
    ClientHostname,
    ServerIp,
    ServerHostname,
    SourceContext,
    ConnectorId,
    Source,
    EventId,
    InternalMessageId,
    MessageId,
    NetworkMessageId,
    RecipientAddress,
    RecipientStatus,
    TotalBytes,
    RelatedRecipientAddress,
    MessageSubject,
    SenderAddress,
    ReturnPath,
    MessageInfo,
    OriginalClientIp,
    CustomData,
}

const N_COLS: usize = 22;

const COLUMN_NAMES: [(&str, Col); N_COLS] = [
    ("date-time", Col::DateTime),
    ("client-ip", Col::ClientIp),
    ("client-hostname", Col::ClientHostname),
    ("server-ip", Col::ServerIp),
    ("server-hostname", Col::ServerHostname),
    ("source-context", Col::SourceContext),
    ("connector-id", Col::ConnectorId),
    ("source", Col::Source),
    ("event-id", Col::EventId),
    ("internal-message-id", Col::InternalMessageId),
    ("message-id", Col::MessageId),
    ("network-message-id", Col::NetworkMessageId),
    ("recipient-address", Col::RecipientAddress),
    ("recipient-status", Col::RecipientStatus),
    ("total-bytes", Col::TotalBytes),
    ("related-recipient-address", Col::RelatedRecipientAddress),
    ("message-subject", Col::MessageSubject),
    ("sender-address", Col::SenderAddress),
    ("return-path", Col::ReturnPath),
    ("message-info", Col::MessageInfo),
    ("original-client-ip", Col::OriginalClientIp),
    ("custom-data", Col::CustomData),
];

/// Exchange 2010 (14.x): 26 fields.
const FIELDS_14: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data";
/// Exchange 2013 (15.00): 27 fields.
const FIELDS_15_00: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data";
/// Exchange 2016 / 2019 / SE (15.01+): 30 fields.
const FIELDS_15_01: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version";

/// Where each column we read sits in a line, and how many fields a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    index: [Option<u16>; N_COLS],
    count: usize,
}

impl Layout {
    fn from_names<'a>(names: impl Iterator<Item = &'a str>) -> Layout {
        let mut index = [None; N_COLS];
        let mut count = 0;
        for (i, name) in names.enumerate() {
            count = i + 1;
            let name = name.trim();
            if let Some((_, col)) = COLUMN_NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                let slot = &mut index[*col as usize];
                if slot.is_none() {
                    *slot = u16::try_from(i).ok();
                }
            }
        }
        Layout { index, count }
    }

    fn has(&self, col: Col) -> bool {
        self.index[col as usize].is_some()
    }

    /// The documented layout with `count` fields, for header-less input.
    fn default_for(count: usize) -> Option<Layout> {
        let names = match count {
            30 => FIELDS_15_01,
            27 => FIELDS_15_00,
            26 => FIELDS_14,
            _ => return None,
        };
        Some(Layout::from_names(names.split(',')))
    }
}

/// One data line, split, with its layout.
struct Row<'a> {
    layout: Layout,
    line: &'a str,
    spans: &'a [Span],
    /// Text of fields that held an escaped quote.
    unescaped: &'a str,
}

impl Row<'_> {
    /// The trimmed value of a column; empty when the layout lacks it.
    fn get(&self, col: Col) -> &str {
        self.layout.index[col as usize]
            .and_then(|i| self.spans.get(usize::from(i)))
            .map_or("", |f| f.text(self.line, self.unescaped).trim())
    }

    fn opt(&self, col: Col) -> Option<&str> {
        Some(self.get(col)).filter(|v| !v.is_empty())
    }
}

/// A line that is not RFC 4180 CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvError {
    /// A quoted field (1-based column) is not closed before the end of the line.
    UnterminatedQuote { column: usize },
    /// Something other than `,` follows the closing quote of a field.
    TextAfterQuote { column: usize },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::UnterminatedQuote { column } => {
                write!(f, "field {column}: quoted field not closed on this line")
            }
            CsvError::TextAfterQuote { column } => {
                write!(f, "field {column}: text after the closing quote")
            }
        }
    }
}

impl std::error::Error for CsvError {}

/// Split one CSV line (RFC 4180: `,` separated, `"` quoted, `""` an escaped
/// quote). Fields are borrowed unless they hold an escaped quote. A quote
/// inside an unquoted field is kept as text.
pub fn split_csv(line: &str) -> Result<Vec<Cow<'_, str>>, CsvError> {
    let mut spans = Vec::with_capacity(32);
    let mut unescaped = String::new();
    split_spans(line, &mut spans, &mut unescaped)?;
    Ok(spans
        .iter()
        .map(|s| {
            if s.unescaped {
                Cow::Owned(s.text(line, &unescaped).to_string())
            } else {
                Cow::Borrowed(line.get(s.start..s.end).unwrap_or_default())
            }
        })
        .collect())
}

/// Where a field's text is: a range of the line, or (a field that held an
/// escaped quote) of the side buffer with the quotes unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    unescaped: bool,
}

impl Span {
    pub(crate) fn text<'a>(&self, line: &'a str, unescaped: &'a str) -> &'a str {
        let source = if self.unescaped { unescaped } else { line };
        source.get(self.start..self.end).unwrap_or_default()
    }
}

/// [`split_csv`] into reusable buffers: no allocation per line once they
/// have grown.
pub(crate) fn split_spans(
    line: &str,
    out: &mut Vec<Span>,
    unescaped: &mut String,
) -> Result<(), CsvError> {
    out.clear();
    unescaped.clear();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        let column = out.len() + 1;
        if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut from = start;
            let mut owned: Option<usize> = None;
            loop {
                let Some(k) = b.get(from..).and_then(|rest| memchr::memchr(b'"', rest)) else {
                    return Err(CsvError::UnterminatedQuote { column });
                };
                let q = from + k;
                if b.get(q + 1) == Some(&b'"') {
                    // `""`: keep one quote, go on after the pair.
                    owned.get_or_insert(unescaped.len());
                    unescaped.push_str(&line[from..=q]);
                    from = q + 2;
                } else {
                    let span = match owned.take() {
                        Some(begin) => {
                            unescaped.push_str(&line[from..q]);
                            Span {
                                start: begin,
                                end: unescaped.len(),
                                unescaped: true,
                            }
                        }
                        None => Span {
                            start,
                            end: q,
                            unescaped: false,
                        },
                    };
                    out.push(span);
                    i = q + 1;
                    break;
                }
            }
            match b.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(_) => return Err(CsvError::TextAfterQuote { column }),
            }
        } else {
            let rest = b.get(i..).unwrap_or_default();
            match memchr::memchr(b',', rest) {
                Some(k) => {
                    out.push(Span {
                        start: i,
                        end: i + k,
                        unescaped: false,
                    });
                    i += k + 1;
                }
                None => {
                    out.push(Span {
                        start: i,
                        end: b.len(),
                        unescaped: false,
                    });
                    return Ok(());
                }
            }
        }
    }
}

/// An IP address as stored: the IPv6 zone (`%3`) removed, brackets removed,
/// canonical form; `None` when what is left is not an address.
pub fn clean_ip(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.split('%').next().unwrap_or(s);
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// A value of the `custom-data` field (`S:Key=value;S:Other=…`), by key
/// (case-insensitive).
pub fn custom_value<'a>(data: &'a str, key: &str) -> Option<&'a str> {
    data.split(';').find_map(|item| {
        let item = item.trim();
        // A one-letter type tag (`S:`, `I:`) precedes the key.
        let body = match item.split_once(':') {
            Some((tag, body)) if tag.len() == 1 && tag.as_bytes()[0].is_ascii_alphabetic() => body,
            _ => item,
        };
        let (k, v) = body.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// The `date-time` field: ISO 8601 with a zone (Exchange writes UTC, `…Z`).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = parse_utc_stamp(s) {
        return Some(t);
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The stamp Exchange writes, `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (up to 9
/// fractional digits), read without the general RFC 3339 parser (it is on
/// every line). `None` for any other shape (leap seconds included): the
/// general parser then decides, so the result is the same either way.
pub(crate) fn parse_utc_stamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 30 || b[b.len() - 1] != b'Z' {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = digits(0, 4)?;
    let (month, day) = (digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if second > 59 {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    let mut nanos = 0u32;
    if let Some((&dot, frac)) = fraction.split_first() {
        if dot != b'.' || frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let mut scale = 100_000_000;
        for &c in frac {
            if !c.is_ascii_digit() {
                return None;
            }
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(chrono::NaiveDateTime::new(date, time).and_utc())
}

/// Whether a status segment starts here: an SMTP code (`550 …`), a
/// recipient type (`To`, `Cc`, `Bcc`) or nothing (an empty status).
fn starts_status(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b';' {
        return true;
    }
    if b.len() >= 3
        && b[..3].iter().all(u8::is_ascii_digit)
        && (b.len() == 3 || b[3] == b' ' || b[3] == b';')
    {
        return true;
    }
    let token = s.split(';').next().unwrap_or(s).trim();
    ["To", "Cc", "Bcc"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// Split `recipient-status` into one status per recipient. Statuses are `;`
/// separated, but a status text may itself contain `;` (`550 4.4.7
/// QUEUE.Expired;text`): a `;` separates only where a new status starts.
/// When the count does not match, every recipient gets the whole text (a
/// plain split would cut `…Expanded; distribution list expanded` in two).
fn split_statuses(status: &str, n: usize) -> Vec<&str> {
    if n <= 1 {
        return vec![status.trim(); n.max(1)];
    }
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for (i, _) in status.match_indices(';') {
        if starts_status(&status[i + 1..]) {
            parts.push(status[start..i].trim());
            start = i + 1;
        }
    }
    parts.push(status[start..].trim());
    if parts.len() == n {
        return parts;
    }
    // One status for all (`250 2.1.5 RESOLVER.GRP.Expanded; distribution
    // list expanded` on an EXPAND of many members), or no telling.
    vec![status.trim(); n]
}

/// The `;`-separated addresses of a field, as written (empty items dropped).
fn split_addresses(field: &str) -> Vec<&str> {
    field
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

/// What an event means for deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Receive,
    Deliver,
    Send,
    Fail,
    Defer,
    Expand,
    Redirect,
    Resolve,
    Failed,
    /// HA* shadow-redundancy events: not used at all.
    Shadow,
    /// Fills fields, makes no delivery (DSN, TRANSFER, SUBMIT, AGENTINFO, …).
    Other,
}

fn classify(event_id: &str) -> Kind {
    let is = |name: &str| event_id.eq_ignore_ascii_case(name);
    if event_id
        .as_bytes()
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"HA"))
    {
        Kind::Shadow
    } else if is("RECEIVE") {
        Kind::Receive
    } else if is("DELIVER") {
        Kind::Deliver
    } else if is("SEND") || is("SENDEXTERNAL") {
        Kind::Send
    } else if is("FAIL") {
        Kind::Fail
    } else if is("DEFER") {
        Kind::Defer
    } else if is("EXPAND") {
        Kind::Expand
    } else if is("REDIRECT") {
        Kind::Redirect
    } else if is("RESOLVE") {
        Kind::Resolve
    } else if is("DROP") || is("BADMAIL") || is("DELIVERFAIL") {
        Kind::Failed
    } else {
        Kind::Other
    }
}

/// Whether the event is this server talking SMTP to the next hop, so that
/// `server-*` names the remote side: SEND, and SMTP deferrals and failures.
fn outgoing(row: &Row<'_>, kind: Kind) -> bool {
    match kind {
        Kind::Send => true,
        Kind::Defer | Kind::Fail | Kind::Failed => {
            row.get(Col::Source).eq_ignore_ascii_case("SMTP")
        }
        _ => false,
    }
}

/// The server that wrote the event: the sending side (`client-hostname`) of
/// an outgoing event, else the receiving side (`server-hostname`), falling
/// back to the other. Exchange writes its own name short in some events and
/// as an FQDN in others (`EX01` / `EX01.example.co.jp`), so the name is cut
/// to its first label (an IP literal stays whole).
fn local_host<'r>(row: &'r Row<'_>, kind: Kind) -> &'r str {
    let (first, second) = if outgoing(row, kind) {
        (Col::ClientHostname, Col::ServerHostname)
    } else {
        (Col::ServerHostname, Col::ClientHostname)
    };
    let host = row
        .opt(first)
        .or_else(|| row.opt(second))
        .unwrap_or("local");
    if host.parse::<IpAddr>().is_ok() {
        return host;
    }
    host.split('.')
        .next()
        .filter(|h| !h.is_empty())
        .unwrap_or(host)
}

/// `host[ip]`, `host` or `[ip]`.
fn relay_of(host: Option<&str>, ip: Option<String>) -> Option<String> {
    match (host, ip) {
        (Some(h), Some(ip)) => Some(format!("{h}[{ip}]")),
        (Some(h), None) => Some(h.to_string()),
        (None, Some(ip)) => Some(format!("[{ip}]")),
        (None, None) => None,
    }
}

/// The organisation-entry time at the start of `message-info` (DELIVER, SEND).
fn origination_time(info: &str) -> Option<DateTime<Utc>> {
    let stamp = info.split(';').next().unwrap_or(info);
    if stamp.len() < 20 || !stamp.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    parse_time(stamp)
}

/// One message being assembled.
struct Entry {
    /// Creation order (emission order at `finish`).
    id: u64,
    /// Last touch, to find stale pairs in the order queue.
    seq: u64,
    aliases: Vec<String>,
    nmid: Option<String>,
    message_id: Option<String>,
    /// `(system, internal-message-id)` of the first event that had one.
    internal: Option<(String, String)>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    from: Option<Mailbox>,
    envelope_from: Option<String>,
    subject: Option<String>,
    size: Option<u64>,
    size_from_receive: bool,
    client_ip: Option<String>,
    /// 3 original-client-ip, 2 ProxiedClientIPAddress, 1 a RECEIVE's client-ip.
    client_ip_rank: u8,
    recipients: Vec<Recipient>,
    deliveries: Vec<Delivery>,
    systems: Vec<String>,
    /// Address → the address it came from (EXPAND, REDIRECT, RESOLVE).
    rewrites: Vec<(String, String)>,
    /// Delivery index of a deferral → how many DEFER events it stands for.
    deferrals: Vec<(usize, u32)>,
}

impl Entry {
    fn new(id: u64, time: DateTime<Utc>) -> Entry {
        Entry {
            id,
            seq: 0,
            aliases: Vec::new(),
            nmid: None,
            message_id: None,
            internal: None,
            first_seen: time,
            last_seen: time,
            from: None,
            envelope_from: None,
            subject: None,
            size: None,
            size_from_receive: false,
            client_ip: None,
            client_ip_rank: 0,
            recipients: Vec::new(),
            deliveries: Vec::new(),
            systems: Vec::new(),
            rewrites: Vec::new(),
            deferrals: Vec::new(),
        }
    }

    fn offer_client_ip(&mut self, ip: Option<String>, rank: u8) {
        if let Some(ip) = ip {
            if rank > self.client_ip_rank {
                self.client_ip = Some(ip);
                self.client_ip_rank = rank;
            }
        }
    }

    fn add_recipient(&mut self, address: &str, kind: RecipientKind) {
        if let Some(r) = Recipient::new(address, None, kind) {
            merge_recipient(&mut self.recipients, r);
        }
    }

    /// Whether adding `raw` as `kind` would change nothing: it is written
    /// as stored (lower case, no brackets, spaces or trailing dot) and
    /// already there with that kind (or at all, for an envelope recipient).
    /// Saves normalising the same addresses event after event.
    fn has_recipient(&self, raw: &str, kind: RecipientKind) -> bool {
        let stored_form = !raw.is_empty()
            && !raw.ends_with('.')
            && raw
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b'<' && b != b'>');
        stored_form
            && self
                .recipients
                .iter()
                .any(|r| r.address == raw && (r.kind == kind || kind == RecipientKind::Envelope))
    }

    fn rewrite(&mut self, to: &str, from: &str) {
        if to == from || to.is_empty() || from.is_empty() {
            return;
        }
        if !self.rewrites.iter().any(|(t, _)| t == to) {
            self.rewrites.push((to.to_string(), from.to_string()));
        }
    }

    fn original_of(&self, address: &str) -> Option<String> {
        self.rewrites
            .iter()
            .find(|(t, _)| t == address)
            .map(|(_, f)| f.clone())
    }

    fn push_delivery(&mut self, d: Delivery) {
        if !self.deliveries.iter().any(|e| e.identity() == d.identity()) {
            self.deliveries.push(d);
        }
    }

    /// A DEFER: the first per recipient and server is a delivery, repeats count.
    fn push_deferral(&mut self, d: Delivery) {
        let same = self.deliveries.iter().position(|e| {
            e.status == DeliveryStatus::Deferred
                && e.recipient == d.recipient
                && e.system == d.system
        });
        match same {
            Some(i) => match self.deferrals.iter_mut().find(|(j, _)| *j == i) {
                Some((_, n)) => *n += 1,
                None => self.deferrals.push((i, 2)),
            },
            None => self.deliveries.push(d),
        }
    }

    /// Fold one event in (`mid`: its normalised Message-ID).
    fn absorb(&mut self, row: &Row<'_>, time: DateTime<Utc>, kind: Kind, mid: Option<String>) {
        if time < self.first_seen {
            self.first_seen = time;
        }
        if time > self.last_seen {
            self.last_seen = time;
        }
        let host = local_host(row, kind);
        let known = self
            .systems
            .iter()
            .position(|s| s.strip_prefix("exchange@") == Some(host));
        let system_index = match known {
            Some(i) => i,
            None => {
                self.systems.push(format!("exchange@{host}"));
                self.systems.len() - 1
            }
        };
        if self.nmid.is_none() {
            self.nmid = row.opt(Col::NetworkMessageId).map(str::to_ascii_lowercase);
        }
        if self.message_id.is_none() {
            self.message_id = mid;
        }
        let internal = row.opt(Col::InternalMessageId);
        if self.internal.is_none() {
            self.internal = internal.map(|i| (self.systems[system_index].clone(), i.to_string()));
        }
        if self.from.is_none() {
            self.from = Mailbox::new(row.get(Col::SenderAddress), None);
        }
        let custom = row.get(Col::CustomData);
        if self.envelope_from.is_none() {
            self.envelope_from = match row.opt(Col::ReturnPath) {
                Some(rp) => normalize_address(rp),
                None => custom_value(custom, "OriginalFromAddress").and_then(normalize_address),
            };
        }
        if self.subject.is_none() {
            self.subject = row.opt(Col::MessageSubject).map(str::to_string);
        }
        if let Ok(size) = row.get(Col::TotalBytes).parse::<u64>() {
            if self.size.is_none() || (kind == Kind::Receive && !self.size_from_receive) {
                self.size = Some(size);
                self.size_from_receive = kind == Kind::Receive;
            }
        }
        if matches!(kind, Kind::Deliver | Kind::Send) {
            if let Some(t) = origination_time(row.get(Col::MessageInfo)) {
                if t < self.first_seen {
                    self.first_seen = t;
                }
            }
        }
        // Ranks only go up: an address of the rank held or below changes nothing.
        if self.client_ip_rank < 3 {
            self.offer_client_ip(clean_ip(row.get(Col::OriginalClientIp)), 3);
        }
        if self.client_ip_rank < 2 {
            self.offer_client_ip(
                custom_value(custom, "ProxiedClientIPAddress").and_then(clean_ip),
                2,
            );
        }

        let written = split_addresses(row.get(Col::RecipientAddress));
        let statuses = split_statuses(row.get(Col::RecipientStatus), written.len());
        let related: Vec<String> = split_addresses(row.get(Col::RelatedRecipientAddress))
            .into_iter()
            .filter_map(normalize_address)
            .collect();
        // Events that make no delivery only add recipients.
        let per_recipient = !matches!(kind, Kind::Receive | Kind::Shadow | Kind::Other);
        let mut recipients: Vec<(String, &str, Option<String>)> = Vec::with_capacity(written.len());
        for (i, raw) in written.iter().enumerate() {
            let status = statuses.get(i).copied().unwrap_or("");
            let kind_written = match status {
                s if s.eq_ignore_ascii_case("To") => RecipientKind::To,
                s if s.eq_ignore_ascii_case("Cc") => RecipientKind::Cc,
                s if s.eq_ignore_ascii_case("Bcc") => RecipientKind::Bcc,
                _ => RecipientKind::Envelope,
            };
            if !per_recipient && self.has_recipient(raw, kind_written) {
                continue;
            }
            let Some(address) = normalize_address(raw) else {
                continue;
            };
            self.add_recipient(&address, kind_written);
            // The address this one came from: paired by position, or the one related address.
            let source = match related.len() {
                0 => None,
                1 => Some(related[0].clone()),
                n if n == written.len() => Some(related[i].clone()),
                _ => None,
            };
            recipients.push((address, status, source));
        }
        for r in &related {
            self.add_recipient(r, RecipientKind::Envelope);
        }

        if !per_recipient {
            if kind == Kind::Receive {
                self.receive(row, time, system_index, internal);
            }
            return;
        }
        let system = self.systems[system_index].clone();
        let local_id = internal.map(str::to_string);
        let delivery =
            |recipient: String, status: DeliveryStatus, detail: Option<String>| Delivery {
                time,
                recipient,
                status,
                detail,
                system: system.clone(),
                relay: None,
                client_ip: None,
                client_host: None,
                local_id: local_id.clone(),
                original_recipient: None,
            };
        let context = row.opt(Col::SourceContext);
        let with_context = |status: &str| -> Option<String> {
            let context = context
                .map(|c| c.trim_matches(';').trim())
                .filter(|c| !c.is_empty());
            match (status.is_empty(), context) {
                (false, Some(c)) => Some(format!("{status} ({c})")),
                (false, None) => Some(status.to_string()),
                (true, Some(c)) => Some(c.to_string()),
                (true, None) => None,
            }
        };
        match kind {
            Kind::Deliver | Kind::Send | Kind::Fail | Kind::Defer | Kind::Failed => {
                let status = match kind {
                    Kind::Deliver | Kind::Send => DeliveryStatus::Delivered,
                    Kind::Fail => DeliveryStatus::Bounced,
                    Kind::Defer => DeliveryStatus::Deferred,
                    _ => DeliveryStatus::Failed,
                };
                let relay = if outgoing(row, kind) {
                    relay_of(
                        row.opt(Col::ServerHostname),
                        clean_ip(row.get(Col::ServerIp)),
                    )
                } else {
                    None
                };
                let event = row.get(Col::EventId).to_ascii_uppercase();
                if recipients.is_empty() {
                    recipients.push((String::new(), row.get(Col::RecipientStatus), None));
                }
                for (address, text, _) in recipients {
                    let mut detail = match kind {
                        Kind::Deliver => (!text.is_empty()).then(|| text.to_string()),
                        _ => with_context(text),
                    };
                    if kind == Kind::Failed {
                        detail = Some(match detail {
                            Some(d) => format!("{event}: {d}"),
                            None => event.clone(),
                        });
                    }
                    let original = self.original_of(&address);
                    let mut d = delivery(address, status, detail);
                    d.relay = relay.clone();
                    d.original_recipient = original;
                    if kind == Kind::Defer {
                        self.push_deferral(d);
                    } else {
                        self.push_delivery(d);
                    }
                }
            }
            Kind::Expand | Kind::Redirect => {
                let (status, verb) = if kind == Kind::Expand {
                    (DeliveryStatus::Expanded, "expanded from group")
                } else {
                    (DeliveryStatus::Forwarded, "redirected from")
                };
                for (address, text, source) in recipients {
                    let Some(source) = source else { continue };
                    self.rewrite(&address, &source);
                    let detail = if text.is_empty() {
                        format!("{verb} {source}")
                    } else {
                        format!("{verb} {source}: {text}")
                    };
                    let mut d = delivery(address, status, Some(detail));
                    d.original_recipient = Some(source);
                    self.push_delivery(d);
                }
            }
            Kind::Resolve => {
                for (address, _, source) in recipients {
                    if let Some(source) = source {
                        self.rewrite(&address, &source);
                    }
                }
            }
            Kind::Receive | Kind::Shadow | Kind::Other => {}
        }
    }

    /// A RECEIVE: the message's `received` delivery, with the connecting client.
    fn receive(
        &mut self,
        row: &Row<'_>,
        time: DateTime<Utc>,
        system_index: usize,
        internal: Option<&str>,
    ) {
        let client_ip = clean_ip(row.get(Col::ClientIp));
        // A mailbox submission's client-ip is the mailbox server itself.
        if !row.get(Col::Source).eq_ignore_ascii_case("STOREDRIVER") {
            self.offer_client_ip(client_ip.clone(), 1);
        }
        let mut detail: Vec<String> = Vec::new();
        if let Some(source) = row.opt(Col::Source) {
            detail.push(source.to_string());
        }
        if let Some(connector) = row.opt(Col::ConnectorId) {
            detail.push(format!("connector {connector}"));
        }
        if let Some(original) = clean_ip(row.get(Col::OriginalClientIp)) {
            if Some(&original) != client_ip.as_ref() {
                detail.push(format!("original client {original}"));
            }
        }
        let d = Delivery {
            time,
            recipient: String::new(),
            status: DeliveryStatus::Received,
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
            system: self.systems[system_index].clone(),
            relay: None,
            client_ip,
            client_host: row.opt(Col::ClientHostname).map(str::to_string),
            local_id: internal.map(str::to_string),
            original_recipient: None,
        };
        self.push_delivery(d);
    }

    fn into_record(mut self) -> MessageRecord {
        let mut keys = Vec::with_capacity(2);
        if let Some(nmid) = &self.nmid {
            keys.push(format!("exchange-nmid:{nmid}"));
        }
        if let Some((system, internal)) = &self.internal {
            keys.push(format!("{system}:{internal}"));
        }
        if keys.is_empty() {
            let system = self
                .systems
                .first()
                .map_or("exchange@local", String::as_str);
            keys.push(format!(
                "{system}:{}",
                self.message_id.as_deref().unwrap_or("unknown")
            ));
        }
        for (i, n) in std::mem::take(&mut self.deferrals) {
            if let Some(d) = self.deliveries.get_mut(i) {
                let base = d.detail.take().unwrap_or_default();
                d.detail = Some(format!("{base} [deferred {n} times]").trim().to_string());
            }
        }
        MessageRecord {
            keys,
            message_id: self.message_id,
            first_seen: Some(self.first_seen),
            envelope_from: self.envelope_from,
            from: self.from,
            recipients: self.recipients,
            subject: self.subject,
            size: self.size,
            client_ip: self.client_ip,
            systems: self.systems,
            deliveries: self.deliveries,
            ..MessageRecord::default()
        }
    }
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    /// An event folded into a message.
    Event,
    /// An HA* shadow-redundancy event: skipped on purpose.
    Shadow,
    /// A `#` header line.
    Header,
    /// Blank, or an event with no id to place it by (`NOTIFYMAPI`).
    Ignored,
    /// Malformed: reported to the sink as a reject.
    Rejected,
}

/// Counts from one import (or the decoder's life so far).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgtrkSummary {
    /// Lines read.
    pub lines: u64,
    /// Event lines folded into messages.
    pub events: u64,
    /// HA* shadow-redundancy lines skipped.
    pub shadow: u64,
    /// Header lines, blank lines and events without any message id.
    pub ignored: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Message records emitted.
    pub records: u64,
    /// Data lines read with the documented default layout because no
    /// `#Fields` header had come (header-less input). Non-zero means the
    /// column map was assumed, not read.
    pub default_layout_lines: u64,
}

impl MsgtrkSummary {
    fn count(&mut self, outcome: LineOutcome) {
        match outcome {
            LineOutcome::Event => self.events += 1,
            LineOutcome::Shadow => self.shadow += 1,
            LineOutcome::Header | LineOutcome::Ignored => self.ignored += 1,
            LineOutcome::Rejected => self.rejected += 1,
        }
    }
}

/// The header state of the stream.
#[derive(Debug, Clone, Copy)]
enum Columns {
    /// No `#Fields` yet: header-less lines use the documented layout of their field count.
    NoHeader,
    Header(Layout),
    /// The last `#Fields` (at this line) named no `date-time` or `event-id`.
    Unusable(u64),
}

/// Streaming decoder of message tracking lines; see the module doc.
pub struct MsgtrkDecoder {
    columns: Columns,
    window: Duration,
    max_open: usize,
    open: HashMap<u64, Entry>,
    /// `n:<nmid>`, `m:<message-id>`, `i:<system>:<internal id>` → entry.
    aliases: HashMap<String, u64>,
    /// Touch order of entries `(id, seq)`; stale pairs are skipped.
    order: VecDeque<(u64, u64)>,
    next_id: u64,
    seq: u64,
    newest: Option<DateTime<Utc>>,
    default_layout_lines: u64,
    /// Buffers reused from line to line: field spans, unescaped field text,
    /// an alias being looked up.
    spans: Vec<Span>,
    unescaped: String,
    key: String,
}

impl MsgtrkDecoder {
    pub fn new(_opts: &DecodeOptions) -> MsgtrkDecoder {
        MsgtrkDecoder::with_limits(Duration::minutes(DEFAULT_WINDOW_MINUTES), DEFAULT_MAX_OPEN)
    }

    /// A decoder that emits a message `window` of log time after its last
    /// event, and keeps at most `max_open` messages open.
    pub fn with_limits(window: Duration, max_open: usize) -> MsgtrkDecoder {
        MsgtrkDecoder {
            columns: Columns::NoHeader,
            window,
            max_open: max_open.max(1),
            open: HashMap::new(),
            aliases: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            seq: 0,
            newest: None,
            default_layout_lines: 0,
            spans: Vec::with_capacity(32),
            unescaped: String::new(),
            key: String::new(),
        }
    }

    /// Messages currently open.
    pub fn open_messages(&self) -> usize {
        self.open.len()
    }

    /// Data lines so far read with an assumed layout (no `#Fields` header).
    pub fn default_layout_lines(&self) -> u64 {
        self.default_layout_lines
    }

    /// Decode one line (without its terminator). `number` is its position in
    /// `source`, for rejects.
    pub fn line(
        &mut self,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<LineOutcome, SinkError> {
        let decoded = match std::str::from_utf8(bytes) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => Cow::Owned(crate::mime::sniff_decode(bytes)),
        };
        // A BOM starts every file; files appended to one stream put it mid-stream.
        let text = decoded.strip_prefix('\u{feff}').unwrap_or(&decoded);
        if text.trim().is_empty() {
            return Ok(LineOutcome::Ignored);
        }
        let reject = |sink: &mut dyn Sink, code: &str, reason: String| {
            sink.reject(Reject {
                source: source.to_string(),
                position: Position::Line(number),
                code: code.to_string(),
                reason,
                input: bytes[..bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
            })
            .map(|()| LineOutcome::Rejected)
        };
        if let Some(header) = text.strip_prefix('#') {
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.trim().eq_ignore_ascii_case("Fields") {
                let layout = Layout::from_names(value.split(','));
                if layout.has(Col::DateTime) && layout.has(Col::EventId) {
                    self.columns = Columns::Header(layout);
                } else {
                    self.columns = Columns::Unusable(number);
                    return reject(
                        sink,
                        CODE_HEADER,
                        "#Fields names no date-time or no event-id column: not a message tracking log"
                            .to_string(),
                    );
                }
            }
            return Ok(LineOutcome::Header);
        }
        let mut spans = std::mem::take(&mut self.spans);
        let mut unescaped = std::mem::take(&mut self.unescaped);
        let outcome = self.data_line(
            text,
            &mut spans,
            &mut unescaped,
            bytes,
            source,
            number,
            sink,
        );
        self.spans = spans;
        self.unescaped = unescaped;
        outcome
    }

    /// A line that is not a header: split, checked, placed.
    #[allow(clippy::too_many_arguments)]
    fn data_line(
        &mut self,
        text: &str,
        spans: &mut Vec<Span>,
        unescaped: &mut String,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<LineOutcome, SinkError> {
        let reject = |sink: &mut dyn Sink, code: &str, reason: String| {
            sink.reject(Reject {
                source: source.to_string(),
                position: Position::Line(number),
                code: code.to_string(),
                reason,
                input: bytes[..bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
            })
            .map(|()| LineOutcome::Rejected)
        };
        if let Err(e) = split_spans(text, spans, unescaped) {
            return reject(sink, CODE_CSV, e.to_string());
        }
        let fields = &*spans;
        let layout = match self.columns {
            Columns::Header(layout) => layout,
            Columns::Unusable(at) => {
                return reject(
                    sink,
                    CODE_HEADER,
                    format!("the #Fields header at line {at} is not a message tracking layout"),
                )
            }
            Columns::NoHeader => match Layout::default_for(fields.len()) {
                Some(layout) => {
                    self.default_layout_lines += 1;
                    layout
                }
                None => {
                    return reject(
                        sink,
                        CODE_FIELD_COUNT,
                        format!(
                            "{} fields and no #Fields header (the documented layouts have 26, 27 or 30)",
                            fields.len()
                        ),
                    )
                }
            },
        };
        if fields.len() != layout.count {
            return reject(
                sink,
                CODE_FIELD_COUNT,
                format!(
                    "{} fields where the #Fields header names {}",
                    fields.len(),
                    layout.count
                ),
            );
        }
        let row = Row {
            layout,
            line: text,
            spans: fields,
            unescaped,
        };
        let Some(time) = parse_time(row.get(Col::DateTime)) else {
            return reject(
                sink,
                CODE_DATE,
                format!(
                    "date-time {:?} is not an ISO 8601 UTC time",
                    row.get(Col::DateTime)
                ),
            );
        };
        let Some(event_id) = row.opt(Col::EventId) else {
            return reject(sink, CODE_EVENT, "empty event-id".to_string());
        };
        let kind = classify(event_id);
        if kind == Kind::Shadow {
            return Ok(LineOutcome::Shadow);
        }
        if self.newest.is_none_or(|n| time > n) {
            self.newest = Some(time);
        }
        let mid = normalize_message_id(row.get(Col::MessageId));
        let outcome = match self.place(&row, kind, time, mid.as_deref()) {
            Some(id) => {
                self.seq += 1;
                let seq = self.seq;
                if let Some(e) = self.open.get_mut(&id) {
                    e.absorb(&row, time, kind, mid);
                    e.seq = seq;
                }
                self.order.push_back((id, seq));
                LineOutcome::Event
            }
            None => LineOutcome::Ignored,
        };
        self.sweep(sink)?;
        self.enforce_cap(sink)?;
        Ok(outcome)
    }

    /// The open entry an event belongs to (created when new); `None` when
    /// the event carries no id at all. Aliases are built in a reused buffer
    /// and allocated only when they are new.
    fn place(
        &mut self,
        row: &Row<'_>,
        kind: Kind,
        time: DateTime<Utc>,
        mid: Option<&str>,
    ) -> Option<u64> {
        let nmid = row.opt(Col::NetworkMessageId);
        let internal = row.opt(Col::InternalMessageId);
        let mut key = std::mem::take(&mut self.key);
        let alias = |key: &mut String, which: u8| -> bool {
            key.clear();
            match which {
                b'n' => match nmid {
                    Some(n) => {
                        key.push_str("n:");
                        key.extend(n.chars().map(|c| c.to_ascii_lowercase()));
                    }
                    None => return false,
                },
                b'm' => match mid {
                    Some(m) => {
                        key.push_str("m:");
                        key.push_str(m);
                    }
                    None => return false,
                },
                _ => match internal {
                    Some(i) => {
                        key.push_str("i:");
                        key.push_str(local_host(row, kind));
                        key.push(':');
                        key.push_str(i);
                    }
                    None => return false,
                },
            }
            true
        };
        let mut found = None;
        for which in [b'n', b'm'] {
            if found.is_none() && alias(&mut key, which) {
                found = self.aliases.get(key.as_str()).copied();
            }
        }
        if found.is_none() && nmid.is_none() && mid.is_none() && alias(&mut key, b'i') {
            // Only an event with no message id at all is placed by its server's internal id.
            found = self.aliases.get(key.as_str()).copied();
        }
        let id = match found {
            Some(id) => id,
            None if nmid.is_none() && mid.is_none() && internal.is_none() => {
                self.key = key;
                return None;
            }
            None => {
                self.next_id += 1;
                let id = self.next_id;
                self.open.insert(id, Entry::new(id, time));
                id
            }
        };
        for which in [b'n', b'm', b'i'] {
            if alias(&mut key, which) && !self.aliases.contains_key(key.as_str()) {
                self.aliases.insert(key.clone(), id);
                if let Some(e) = self.open.get_mut(&id) {
                    e.aliases.push(key.clone());
                }
            }
        }
        self.key = key;
        Some(id)
    }

    fn emit(&mut self, id: u64, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let Some(entry) = self.open.remove(&id) else {
            return Ok(());
        };
        for alias in &entry.aliases {
            if self.aliases.get(alias) == Some(&id) {
                self.aliases.remove(alias);
            }
        }
        sink.record(entry.into_record())
    }

    /// Emit messages whose last event is a window older than the newest line.
    fn sweep(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let Some(limit) = self.newest.and_then(|n| n.checked_sub_signed(self.window)) else {
            return Ok(());
        };
        while let Some(&(id, seq)) = self.order.front() {
            match self.open.get(&id) {
                Some(e) if e.seq == seq => {
                    if e.last_seen >= limit {
                        break;
                    }
                    self.order.pop_front();
                    self.emit(id, sink)?;
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        Ok(())
    }

    fn enforce_cap(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        while self.open.len() > self.max_open {
            let Some((id, seq)) = self.order.pop_front() else {
                break;
            };
            if self.open.get(&id).is_some_and(|e| e.seq == seq) {
                self.emit(id, sink)?;
            }
        }
        if self.order.len() > 2 * self.open.len() + 4096 {
            let open = &self.open;
            self.order
                .retain(|(id, seq)| open.get(id).is_some_and(|e| e.seq == *seq));
        }
        Ok(())
    }

    /// Emit every message still open (end of input, or shutdown), oldest first.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let mut entries: Vec<Entry> = self.open.drain().map(|(_, e)| e).collect();
        entries.sort_by_key(|e| e.id);
        self.aliases.clear();
        self.order.clear();
        for e in entries {
            sink.record(e.into_record())?;
        }
        Ok(())
    }
}

/// Whether the head of an input is a message tracking log: a header block
/// naming the Message Tracking Log (or a `#Fields` line with its columns), or
/// a first line that parses as one of the documented header-less layouts
/// with a UTC stamp, an upper-case source and event, and a numeric internal id.
pub fn looks_like_msgtrk(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(first) = lines.next() else {
        return false;
    };
    if first.starts_with(b"#") {
        for line in std::iter::once(first).chain(lines) {
            let Some(header) = line.strip_prefix(b"#") else {
                break;
            };
            let text = String::from_utf8_lossy(header);
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("Log-type") {
                return value.trim().eq_ignore_ascii_case("Message Tracking Log");
            }
            if name.eq_ignore_ascii_case("Fields") {
                let layout = Layout::from_names(value.split(','));
                return layout.has(Col::DateTime)
                    && layout.has(Col::EventId)
                    && layout.has(Col::InternalMessageId);
            }
        }
        return false;
    }
    let Ok(text) = std::str::from_utf8(first) else {
        return false;
    };
    let (mut spans, mut unescaped) = (Vec::new(), String::new());
    if split_spans(text, &mut spans, &mut unescaped).is_err() {
        return false;
    }
    let Some(layout) = Layout::default_for(spans.len()) else {
        return false;
    };
    let row = Row {
        layout,
        line: text,
        spans: &spans,
        unescaped: &unescaped,
    };
    let upper = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    parse_time(row.get(Col::DateTime)).is_some()
        && row
            .spans
            .first()
            .is_some_and(|f| f.text(text, &unescaped).len() >= 20)
        && upper(row.get(Col::EventId))
        && upper(row.get(Col::Source))
        && row
            .get(Col::InternalMessageId)
            .bytes()
            .all(|b| b.is_ascii_digit())
}

/// Counts records on their way to the real sink.
struct CountingSink<'s> {
    inner: &'s mut dyn Sink,
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

const PROGRESS_EVERY: u64 = 64 * 1024;

/// Decode one message tracking log file (or several appended): one record
/// per message to `sink`, malformed lines as rejects. Only I/O and sink
/// failures stop it.
pub fn import_msgtrk<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<MsgtrkSummary, IngestError> {
    let mut sink = CountingSink {
        inner: sink,
        records: 0,
    };
    let mut reader = LineReader::new(reader, opts.max_line_bytes);
    let mut decoder = MsgtrkDecoder::new(opts);
    let mut summary = MsgtrkSummary::default();
    let mut next_progress = PROGRESS_EVERY;
    loop {
        let line = reader.next_line().map_err(|e| IngestError::Io {
            path: source.to_string(),
            source: e,
        })?;
        let Some(line) = line else { break };
        summary.lines += 1;
        match line {
            Line::TooLong {
                number,
                head,
                length,
                ..
            } => {
                summary.rejected += 1;
                sink.reject(Reject {
                    source: source.to_string(),
                    position: Position::Line(number),
                    code: CODE_TOO_LONG.to_string(),
                    reason: format!(
                        "line of {length} bytes exceeds the limit of {} bytes",
                        opts.max_line_bytes
                    ),
                    input: head[..head.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
                })?;
            }
            Line::Complete { number, bytes, .. } => {
                let outcome = decoder.line(bytes, source, number, &mut sink)?;
                summary.count(outcome);
            }
        }
        if reader.offset() >= next_progress {
            sink.progress(reader.offset());
            next_progress = reader.offset() + PROGRESS_EVERY;
        }
    }
    decoder.finish(&mut sink)?;
    sink.progress(reader.offset());
    summary.records = sink.records;
    summary.default_layout_lines = decoder.default_layout_lines();
    Ok(summary)
}

/// Opens one input of [`import_msgtrk_files`]. Called once to read the time
/// of the input's first event, and again when its turn comes.
pub type MsgtrkOpener<'a> = Box<dyn Fn() -> std::io::Result<Box<dyn BufRead + 'a>> + 'a>;

/// One file of a folder of message tracking logs.
pub struct MsgtrkInput<'a> {
    /// Its name in rejects and errors.
    pub name: String,
    pub open: MsgtrkOpener<'a>,
}

/// One input being read.
struct MergeCursor<'a> {
    name: String,
    open: MsgtrkOpener<'a>,
    reader: Option<LineReader<Box<dyn BufRead + 'a>>>,
    /// The header state of this file.
    columns: Columns,
    /// A line read but not decoded yet: another file has earlier events.
    pending: Option<(u64, Vec<u8>)>,
    /// Reader offset already counted for progress.
    counted: u64,
}

/// The time (ms since the epoch) of a data line, for ordering the lines of
/// several files; `None` for header, blank and unreadable lines, which are
/// decoded where they stand.
fn line_millis(bytes: &[u8], columns: Columns) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with('#') || text.trim().is_empty() {
        return None;
    }
    let col = match columns {
        Columns::Header(layout) => usize::from(layout.index[Col::DateTime as usize]?),
        Columns::NoHeader => 0,
        Columns::Unusable(_) => return None,
    };
    let time = if col == 0 && !text.starts_with('"') {
        parse_time(text.split(',').next().unwrap_or(text))
    } else {
        let fields = split_csv(text).ok()?;
        parse_time(fields.get(col)?)
    };
    time.map(|t| t.timestamp_millis())
}

/// The time of the first event of an input (`i64::MIN` when it has none
/// that can be read: it is then decoded first, and quickly).
fn first_event_millis(open: &MsgtrkOpener<'_>, max_line: usize) -> std::io::Result<i64> {
    let mut reader = LineReader::new(open()?, max_line);
    let mut columns = Columns::NoHeader;
    for _ in 0..1000 {
        let Some(line) = reader.next_line()? else {
            break;
        };
        let Line::Complete { bytes, .. } = line else {
            break;
        };
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if let Some(header) = text.strip_prefix('#') {
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.trim().eq_ignore_ascii_case("Fields") {
                let layout = Layout::from_names(value.split(','));
                columns = if layout.has(Col::DateTime) {
                    Columns::Header(layout)
                } else {
                    Columns::Unusable(0)
                };
            }
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        return Ok(line_millis(bytes, columns).unwrap_or(i64::MIN));
    }
    Ok(i64::MIN)
}

/// Decode a folder of message tracking logs as the one stream of events it
/// is: the lines of all inputs in the order of their `date-time` (each
/// file is in time order; files are read side by side, as a merge), through
/// one decoder. A message's events are spread over the `MSGTRK`,
/// `MSGTRKMS` and `MSGTRKMD` logs of its servers and over files rolled
/// while it was in transit; decoded file by file it would become one
/// partial record per file for the store to fold together, decoded as one
/// stream it is one record. Each file keeps its own `#Fields` layout, and
/// rejects name the file and line they come from. Only the files whose
/// time has come are open (a bounded number, however large the folder).
pub fn import_msgtrk_files(
    inputs: Vec<MsgtrkInput<'_>>,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<MsgtrkSummary, IngestError> {
    let mut sink = CountingSink {
        inner: sink,
        records: 0,
    };
    let mut decoder = MsgtrkDecoder::new(opts);
    let mut summary = MsgtrkSummary::default();
    let io_error = |name: &str, e: std::io::Error| IngestError::Io {
        path: name.to_string(),
        source: e,
    };
    let mut heap = std::collections::BinaryHeap::new();
    let mut cursors = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let first = first_event_millis(&input.open, opts.max_line_bytes)
            .map_err(|e| io_error(&input.name, e))?;
        heap.push(std::cmp::Reverse((first, i)));
        cursors.push(MergeCursor {
            name: input.name,
            open: input.open,
            reader: None,
            columns: Columns::NoHeader,
            pending: None,
            counted: 0,
        });
    }
    let mut consumed = 0u64;
    let mut next_progress = PROGRESS_EVERY;
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        // Decode this input until one of its lines is later than the next input's.
        let bound = heap.peek().map_or(i64::MAX, |std::cmp::Reverse((t, _))| *t);
        let MergeCursor {
            name,
            open,
            reader,
            columns,
            pending,
            counted,
        } = &mut cursors[i];
        if reader.is_none() {
            *reader = Some(LineReader::new(
                open().map_err(|e| io_error(name, e))?,
                opts.max_line_bytes,
            ));
        }
        let Some(lines) = reader.as_mut() else {
            continue;
        };
        if let Some((number, bytes)) = pending.take() {
            decoder.columns = *columns;
            let outcome = decoder.line(&bytes, name, number, &mut sink)?;
            *columns = decoder.columns;
            summary.count(outcome);
        }
        loop {
            let line = lines.next_line().map_err(|e| io_error(name, e))?;
            let Some(line) = line else {
                *reader = None;
                break;
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
                    sink.reject(Reject {
                        source: name.to_string(),
                        position: Position::Line(number),
                        code: CODE_TOO_LONG.to_string(),
                        reason: format!(
                            "line of {length} bytes exceeds the limit of {} bytes",
                            opts.max_line_bytes
                        ),
                        input: head[..head.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
                    })?;
                }
                Line::Complete { number, bytes, .. } => {
                    if let Some(t) = line_millis(bytes, *columns).filter(|&t| t > bound) {
                        *pending = Some((number, bytes.to_vec()));
                        heap.push(std::cmp::Reverse((t, i)));
                        break;
                    }
                    decoder.columns = *columns;
                    let outcome = decoder.line(bytes, name, number, &mut sink)?;
                    *columns = decoder.columns;
                    summary.count(outcome);
                }
            }
            consumed += lines.offset() - *counted;
            *counted = lines.offset();
            if consumed >= next_progress {
                sink.progress(consumed);
                next_progress = consumed + PROGRESS_EVERY;
            }
        }
    }
    decoder.finish(&mut sink)?;
    sink.progress(consumed);
    summary.records = sink.records;
    summary.default_layout_lines = decoder.default_layout_lines();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_escapes_and_empty_fields() {
        let f = split_csv(r#"a,"b,c",,"say ""hi""","",x"#).unwrap();
        assert_eq!(f, ["a", "b,c", "", "say \"hi\"", "", "x"]);
        assert!(matches!(f[1], Cow::Borrowed(_)));
        assert!(matches!(f[3], Cow::Owned(_)));
        assert_eq!(split_csv("").unwrap(), [""]);
        assert_eq!(split_csv("a,").unwrap(), ["a", ""]);
        assert_eq!(split_csv(r#""a""#).unwrap(), ["a"]);
        assert_eq!(split_csv(r#"x"y,z"#).unwrap(), ["x\"y", "z"]);
        assert_eq!(
            split_csv(r#"a,"open"#),
            Err(CsvError::UnterminatedQuote { column: 2 })
        );
        assert_eq!(
            split_csv(r#""a"b,c"#),
            Err(CsvError::TextAfterQuote { column: 1 })
        );
        assert_eq!(
            split_csv(r#"a,"x"""#),
            Err(CsvError::UnterminatedQuote { column: 2 })
        );
        assert_eq!(split_csv("\"日本,語\",件名").unwrap(), ["日本,語", "件名"]);
    }

    #[test]
    fn ips_lose_their_zone_and_junk_is_dropped() {
        assert_eq!(
            clean_ip("fe80::1234:5678:4321:1010%3").as_deref(),
            Some("fe80::1234:5678:4321:1010")
        );
        assert_eq!(
            clean_ip("2a02:cf40::0000:1234:5678:9abc").as_deref(),
            Some("2a02:cf40::1234:5678:9abc")
        );
        assert_eq!(clean_ip(" 10.0.0.1 ").as_deref(), Some("10.0.0.1"));
        assert_eq!(clean_ip("[::1]").as_deref(), Some("::1"));
        assert_eq!(clean_ip("fe80::1234:4545:3214:1010e%3"), None);
        assert_eq!(clean_ip(""), None);
        assert_eq!(clean_ip("%"), None);
    }

    #[test]
    fn custom_data_values() {
        let d = "S:ProxyHop1=fe.example(10.0.0.1);S:FromEntity=Internet;S:OriginalFromAddress=<>;S:AMA=SUM|action=p|error=";
        assert_eq!(custom_value(d, "fromentity"), Some("Internet"));
        assert_eq!(custom_value(d, "OriginalFromAddress"), Some("<>"));
        assert_eq!(custom_value(d, "AMA"), Some("SUM|action=p|error="));
        assert_eq!(custom_value(d, "ToEntity"), None);
        assert_eq!(custom_value("", "x"), None);
        assert_eq!(custom_value("Key=v", "key"), Some("v"));
    }

    #[test]
    fn statuses_pair_with_recipients() {
        assert_eq!(
            split_statuses(
                "250 2.1.5 OK;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
                2
            ),
            [
                "250 2.1.5 OK",
                "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
            ]
        );
        assert_eq!(
            split_statuses(
                "550 4.4.7 QUEUE.Expired;gone;550 4.4.7 QUEUE.Expired;gone",
                2
            ),
            [
                "550 4.4.7 QUEUE.Expired;gone",
                "550 4.4.7 QUEUE.Expired;gone"
            ]
        );
        assert_eq!(split_statuses("To;Cc;Bcc", 3), ["To", "Cc", "Bcc"]);
        assert_eq!(split_statuses(";;", 3), ["", "", ""]);
        assert_eq!(split_statuses("", 2), ["", ""]);
        assert_eq!(split_statuses("whatever; x", 3), ["whatever; x"; 3]);
        assert_eq!(
            split_statuses(
                "250 2.1.5 RESOLVER.GRP.Expanded; distribution list expanded",
                2
            ),
            ["250 2.1.5 RESOLVER.GRP.Expanded; distribution list expanded"; 2]
        );
        assert_eq!(split_statuses("550 a; b", 1), ["550 a; b"]);
        assert_eq!(split_statuses("", 0), [""]);
    }

    #[test]
    fn events_are_classified() {
        assert_eq!(classify("HAREDIRECTFAIL"), Kind::Shadow);
        assert_eq!(classify("hadiscard"), Kind::Shadow);
        assert_eq!(classify("SENDEXTERNAL"), Kind::Send);
        assert_eq!(classify("DROP"), Kind::Failed);
        assert_eq!(classify("DSN"), Kind::Other);
        assert_eq!(classify("H"), Kind::Other);
        assert_eq!(classify("é"), Kind::Other);
        assert_eq!(classify("aé"), Kind::Other);
    }

    #[test]
    fn detection_is_conservative() {
        let header = b"\xEF\xBB\xBF#Software: Microsoft Exchange Server\r\n#Version: 15.01.2375.007\r\n#Log-type: Message Tracking Log\r\n#Date: x\r\n";
        assert!(looks_like_msgtrk(header));
        assert!(!looks_like_msgtrk(
            b"#Software: Microsoft Exchange Server\r\n#Log-type: SMTP Receive Protocol Log\r\n#Fields: date-time,connector-id,session-id\r\n"
        ));
        let mut fields_only = b"#Fields: ".to_vec();
        fields_only.extend_from_slice(FIELDS_15_00.as_bytes());
        assert!(looks_like_msgtrk(&fields_only));
        let line = "2024-01-25T15:16:09.949Z,10.1.1.1,fe,10.1.1.2,mbx,ctx,conn,SMTP,RECEIVE,70912345566403,<a@b>,1e6eb197-c6b4-1234-1b69-56dc1db88f50,u@x,,7229,1,,,subj,s@x,s@x,0cA: ,Incoming,,,,,Email,05503123,15.02.0330.005\n";
        assert!(looks_like_msgtrk(line.as_bytes()));
        // The same line with 29 fields, a lower-case event or a syslog line: no.
        assert!(!looks_like_msgtrk(
            line.replacen(",Email", "", 1).as_bytes()
        ));
        assert!(!looks_like_msgtrk(
            line.replacen("RECEIVE", "receive", 1).as_bytes()
        ));
        assert!(!looks_like_msgtrk(
            b"2024-08-26T01:33:38.572449+00:00 mx1 postfix/smtpd[1]: connect from x\n"
        ));
        assert!(!looks_like_msgtrk(
            b"2022-07-20T21:12:06.270Z,EXCHANGE-1\\Default Frontend EXCHANGE-1,08DA4F7C11473A60,9,192.168.9.241:25,192.168.9.212:53722,>,535 5.7.3 Authentication unsuccessful,\n"
        ));
        assert!(!looks_like_msgtrk(b""));
    }

    #[test]
    fn exchange_stamps_parse_as_rfc3339_does() {
        let chrono_parse = |s: &str| {
            DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for s in [
            "2025-11-10T00:00:01.100Z",
            "2025-11-10T00:00:01Z",
            "2025-11-10T23:59:59.9Z",
            "2025-11-10T23:59:59.123456789Z",
            "2025-11-10T23:59:59.1234567891Z",
            "2024-02-29T12:00:00.000Z",
            "2025-02-29T12:00:00.000Z",
            "2025-13-01T00:00:00.000Z",
            "2025-11-10T24:00:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2025-11-10t00:00:01.100z",
            "2025-11-10T09:00:01.100+09:00",
            "2025-11-10 00:00:01.100Z",
            "2025-11-10T00:00:01.Z",
            "2025-11-10T00:00:01,1Z",
            "+2025-11-10T00:00:01Z",
            " 2025-11-10T00:00:01.100Z ",
            "２０２５-11-10T00:00:01Z",
            "",
        ] {
            assert_eq!(parse_time(s), chrono_parse(s), "{s:?}");
        }
    }

    /// The fixture's lines dealt over three files (each with its header),
    /// the way a server's MSGTRK, MSGTRKMS and MSGTRKMD logs split one
    /// stream: the merged import gives the records of the single stream,
    /// and rejects name the file and line they come from.
    #[test]
    fn files_merged_by_time_decode_as_the_one_stream() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/msgtrk");
        let text = std::fs::read_to_string(dir.join("ex2019.LOG")).unwrap();
        let (header, data): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| l.trim_start_matches('\u{feff}').starts_with('#'));
        let mut data: Vec<&str> = data.into_iter().filter(|l| !l.is_empty()).collect();
        data.sort_by_key(|l| l.split(',').next().unwrap_or_default().to_string());
        let single = format!("{}\r\n{}\r\n", header.join("\r\n"), data.join("\r\n"));
        let mut files = vec![format!("{}\r\n", header.join("\r\n")); 3];
        for (i, l) in data.iter().enumerate() {
            files[i * 7 % 3].push_str(l);
            files[i * 7 % 3].push_str("\r\n");
        }
        files[2].push_str("2025-11-10T23:00:00.000Z,broken\r\n");
        let opts = DecodeOptions::default();
        let mut one = crate::VecSink::default();
        import_msgtrk(single.as_bytes(), "one", &opts, &mut one).unwrap();
        let inputs: Vec<MsgtrkInput<'_>> = files
            .iter()
            .enumerate()
            .map(|(i, f)| MsgtrkInput {
                name: format!("file{i}"),
                open: Box::new(move || {
                    Ok(Box::new(std::io::Cursor::new(f.clone().into_bytes())) as Box<dyn BufRead>)
                }),
            })
            .collect();
        let mut merged = crate::VecSink::default();
        let summary = import_msgtrk_files(inputs, &opts, &mut merged).unwrap();
        let sorted = |v: &[MessageRecord]| {
            let mut v: Vec<String> = v.iter().map(|r| format!("{r:?}")).collect();
            v.sort();
            v
        };
        assert!(one.records.len() >= 5);
        assert_eq!(sorted(&merged.records), sorted(&one.records));
        assert_eq!(summary.records, one.records.len() as u64);
        assert_eq!(summary.lines, (header.len() * 3 + data.len() + 1) as u64);
        // the fixture's own malformed lines, and the one added
        let codes = |v: &[Reject]| {
            let mut c: Vec<String> = v
                .iter()
                .map(|r| format!("{} {}", r.code, r.reason))
                .collect();
            c.sort();
            c
        };
        let mut expected = codes(&one.rejects);
        expected.push(format!(
            "{CODE_FIELD_COUNT} 2 fields where the #Fields header names 30"
        ));
        expected.sort();
        assert_eq!(codes(&merged.rejects), expected);
        let r = merged
            .rejects
            .iter()
            .find(|r| r.reason.starts_with("2 fields"))
            .unwrap();
        let broken_line = files[2].lines().count() as u64;
        assert_eq!(
            (r.source.as_str(), &r.position, r.code.as_str()),
            ("file2", &Position::Line(broken_line), CODE_FIELD_COUNT)
        );
    }
}
