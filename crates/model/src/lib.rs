//! The unified schema every part of mailtrail speaks (DESIGN.md §2).
//!
//! Decoders know fragments of a message (a Postfix `smtp` line knows one
//! recipient's fate, a MIME file knows everything but delivery); the
//! correlator folds those fragments into one [`MessageRecord`], and the store
//! merges records that describe the same email. The types here are therefore
//! deliberately *partial*: almost every field is optional or a list, and
//! [`MessageRecord::merge`] defines once, for every backend, how two partial
//! views of one email combine — a source that does not know a fact never
//! erases it.
//!
//! Addresses are compared in their normalised form ([`normalize_address`]);
//! the display form is kept beside them. Times are UTC.

pub mod directory;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a message travelled relative to the organisation's own domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From outside to at least one of our addresses.
    Inbound,
    /// From one of our addresses to at least one outside address.
    Outbound,
    /// From one of our addresses to our addresses only.
    Internal,
    /// Neither sender nor any recipient is ours (relayed through us), or unknown.
    Relayed,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::Relayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::Relayed => "relayed",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownValue::new("direction", s))
    }
}

/// One recipient's fate at one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Accepted by a system (e.g. journal copy, inbound receive).
    Received,
    /// Handed on successfully (Postfix `status=sent`, Sendmail `stat=Sent`, Exim `=>`).
    Delivered,
    /// Temporarily failed; will be retried.
    Deferred,
    /// Permanently failed after acceptance (a bounce / DSN was generated).
    Bounced,
    /// Gave up after the maximal queue lifetime.
    Expired,
    /// Refused before acceptance (Postfix `NOQUEUE: reject`).
    Rejected,
    /// Held by a filter.
    Quarantined,
    /// A list or alias was expanded to other recipients.
    Expanded,
    /// Forwarded to another address.
    Forwarded,
    /// Failed in some other way.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 10] = [
        DeliveryStatus::Received,
        DeliveryStatus::Delivered,
        DeliveryStatus::Deferred,
        DeliveryStatus::Bounced,
        DeliveryStatus::Expired,
        DeliveryStatus::Rejected,
        DeliveryStatus::Quarantined,
        DeliveryStatus::Expanded,
        DeliveryStatus::Forwarded,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Received => "received",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Quarantined => "quarantined",
            DeliveryStatus::Expanded => "expanded",
            DeliveryStatus::Forwarded => "forwarded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `sent` is what Postfix calls a delivery; accept it as an alias.
        if s.eq_ignore_ascii_case("sent") {
            return Ok(DeliveryStatus::Delivered);
        }
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownValue::new("status", s))
    }
}

/// How a recipient was addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientKind {
    To,
    Cc,
    Bcc,
    /// Known only from the SMTP envelope or a log line; not (yet) placed in To/Cc/Bcc.
    Envelope,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::To => "to",
            RecipientKind::Cc => "cc",
            RecipientKind::Bcc => "bcc",
            RecipientKind::Envelope => "envelope",
        }
    }
}

impl FromStr for RecipientKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "to" => Ok(RecipientKind::To),
            "cc" => Ok(RecipientKind::Cc),
            "bcc" => Ok(RecipientKind::Bcc),
            "envelope" => Ok(RecipientKind::Envelope),
            _ => Err(UnknownValue::new("recipient kind", s)),
        }
    }
}

/// A value outside a closed vocabulary (status, direction, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    fn new(what: &'static str, value: &str) -> Self {
        UnknownValue {
            what,
            value: value.to_string(),
        }
    }
}

/// An address with its optional display name. `address` is normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Mailbox {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Mailbox {
    /// A mailbox from a raw address; `None` when nothing address-like is left.
    pub fn new(address: &str, display_name: Option<&str>) -> Option<Mailbox> {
        let address = normalize_address(address)?;
        let display_name = display_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        Some(Mailbox {
            address,
            display_name,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub kind: RecipientKind,
}

impl Recipient {
    pub fn new(
        address: &str,
        display_name: Option<&str>,
        kind: RecipientKind,
    ) -> Option<Recipient> {
        let mailbox = Mailbox::new(address, display_name)?;
        Some(Recipient {
            address: mailbox.address,
            display_name: mailbox.display_name,
            kind,
        })
    }
}

/// Normalise an address for storage and comparison: trimmed, angle brackets
/// and a trailing dot of the domain removed, lower-cased. The empty envelope
/// sender `<>` and strings without any address character give `None`.
pub fn normalize_address(raw: &str) -> Option<String> {
    let mut s = raw.trim();
    if let Some(inner) = s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        s = inner.trim();
    }
    let s = s.trim_end_matches('.');
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    Some(s.to_lowercase())
}

/// The domain part of a normalised address, if it has one.
pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// Normalise a Message-ID: surrounding white space and angle brackets removed.
pub fn normalize_message_id(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s).trim();
    if s.is_empty() || s.chars().any(char::is_control) {
        None
    } else {
        Some(s.to_string())
    }
}

/// The organisation's own mail domains; decides [`Direction`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgDomains {
    domains: Vec<String>,
}

impl OrgDomains {
    pub fn new<I, S>(domains: I) -> OrgDomains
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains: Vec<String> = domains
            .into_iter()
            .map(|d| {
                d.as_ref()
                    .trim()
                    .trim_start_matches('@')
                    .trim_end_matches('.')
                    .to_lowercase()
            })
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort();
        domains.dedup();
        OrgDomains { domains }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether a normalised address belongs to one of our domains or their subdomains.
    pub fn is_internal(&self, address: &str) -> bool {
        let Some(domain) = domain_of(address) else {
            // A bare local part (`root`, `MAILER-DAEMON`) is a local account.
            return !address.is_empty();
        };
        self.domains.iter().any(|d| {
            domain == d
                || (domain.len() > d.len()
                    && domain.ends_with(d.as_str())
                    && domain.as_bytes()[domain.len() - d.len() - 1] == b'.')
        })
    }

    /// Direction of a message from its sender and recipients.
    pub fn direction<'a, I>(&self, sender: Option<&str>, recipients: I) -> Direction
    where
        I: IntoIterator<Item = &'a str>,
    {
        let sender_internal = sender.is_some_and(|s| self.is_internal(s));
        let (mut any_internal, mut any_external) = (false, false);
        for r in recipients {
            if self.is_internal(r) {
                any_internal = true;
            } else {
                any_external = true;
            }
        }
        match (sender_internal, any_internal, any_external) {
            (true, _, true) => Direction::Outbound,
            (true, _, false) => Direction::Internal,
            (false, true, _) => Direction::Inbound,
            (false, false, _) => Direction::Relayed,
        }
    }
}

/// An attachment (or inline part with a file name) of a captured message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Attachment {
    /// Decoded file name (RFC 2047 / RFC 2231), if the part has one.
    pub filename: Option<String>,
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// BLAKE3 of the decoded content, lower-case hex.
    pub blake3: String,
    /// Password-protected archive (or an encrypted document container).
    pub encrypted: bool,
    /// Names of the files inside an archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner_names: Vec<String>,
    /// Byte range of the part's encoded body inside the raw message, used by
    /// the blob store to keep identical attachments once. Not part of the
    /// message's public shape.
    #[serde(skip)]
    pub raw_range: Option<(usize, usize)>,
}

/// SPF / DKIM / DMARC verdicts as a source reported them (`pass`, `fail`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuthResults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmarc: Option<String>,
}

impl AuthResults {
    pub fn is_empty(&self) -> bool {
        self.spf.is_none() && self.dkim.is_none() && self.dmarc.is_none()
    }

    fn merge(&mut self, other: AuthResults) {
        fill(&mut self.spf, other.spf);
        fill(&mut self.dkim, other.dkim);
        fill(&mut self.dmarc, other.dmarc);
    }
}

/// One recipient's fate at one system at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub time: DateTime<Utc>,
    pub recipient: String,
    pub status: DeliveryStatus,
    /// DSN code and server text, e.g. `2.0.0 (250 2.0.0 Ok: queued as 4F9D1)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The system that reported it: `postfix@mx1`, `sendmail@host`, `exim@host`, `journal`, `m365` ...
    pub system: String,
    /// Next hop (`relay=` in Postfix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_host: Option<String>,
    /// The system's own id for the message (Postfix queue id, Exim message id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    /// The recipient as originally addressed before rewriting (`orig_to=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_recipient: Option<String>,
}

impl Delivery {
    /// The fields that make a delivery the same event when it is seen again
    /// (re-import, overlapping exports).
    pub fn identity(&self) -> (i64, &str, DeliveryStatus, &str, Option<&str>) {
        (
            self.time.timestamp_micros(),
            self.recipient.as_str(),
            self.status,
            self.system.as_str(),
            self.local_id.as_deref(),
        )
    }
}

/// Everything one source knows about one email, after correlation.
///
/// Records are merged by the store: first by `message_id`, else by any of the
/// `keys` (source-local identities such as `postfix@mx1:4F9D1@1700000000`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Source-local identities. Never empty for records from logs; a record
    /// with neither keys nor Message-ID gets one from its content hash.
    pub keys: Vec<String>,
    pub message_id: Option<String>,
    /// The `Date:` header.
    pub date: Option<DateTime<Utc>>,
    /// Earliest time any source saw the message.
    pub first_seen: Option<DateTime<Utc>>,
    pub envelope_from: Option<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub size: Option<u64>,
    pub attachments: Vec<Attachment>,
    /// Decoded plain text of the body (HTML converted to text), when content was captured.
    pub body_text: Option<String>,
    /// The original message bytes, when content was captured.
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
    pub auth: AuthResults,
    /// First-hop client IP address.
    pub client_ip: Option<String>,
    /// Systems that saw the message, including content sources (`mailbox`).
    pub systems: Vec<String>,
    pub deliveries: Vec<Delivery>,
}

impl MessageRecord {
    /// The sender used for direction: header From, else envelope sender.
    pub fn sender(&self) -> Option<&str> {
        self.from
            .as_ref()
            .map(|m| m.address.as_str())
            .or(self.envelope_from.as_deref())
    }

    /// Every distinct recipient address: addressed ones and delivery targets.
    pub fn recipient_addresses(&self) -> BTreeSet<&str> {
        self.recipients
            .iter()
            .map(|r| r.address.as_str())
            .chain(self.deliveries.iter().map(|d| d.recipient.as_str()))
            .filter(|a| !a.is_empty())
            .collect()
    }

    /// Direction relative to the organisation's domains.
    pub fn direction(&self, org: &OrgDomains) -> Direction {
        org.direction(self.sender(), self.recipient_addresses())
    }

    /// The time used to order results and for `after:`/`before:`: when a
    /// system first saw the message (a `Date:` header can be anything the
    /// sender's client claims), else the header date, else the earliest delivery.
    pub fn sort_time(&self) -> Option<DateTime<Utc>> {
        self.first_seen
            .or(self.date)
            .or_else(|| self.deliveries.iter().map(|d| d.time).min())
    }

    /// Fold `other` (a later or different view of the same email) into `self`.
    ///
    /// Scalars keep the first known value (a source that does not know a fact
    /// never erases it); lists are unioned. A recipient seen only in an
    /// envelope is upgraded when another view places it in To/Cc/Bcc.
    pub fn merge(&mut self, other: MessageRecord) {
        let other_arrival = other.arrival();
        for key in other.keys {
            if !self.keys.contains(&key) {
                self.keys.push(key);
            }
        }
        fill(&mut self.message_id, other.message_id);
        fill(&mut self.date, other.date);
        self.first_seen = match (self.first_seen, other.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        fill(&mut self.envelope_from, other.envelope_from);
        fill(&mut self.from, other.from);
        fill(&mut self.reply_to, other.reply_to);
        for r in other.recipients {
            merge_recipient(&mut self.recipients, r);
        }
        fill(&mut self.subject, other.subject);
        fill(&mut self.size, other.size);
        // A list seen in the content (with hashes) describes the attachments
        // better than one a log reported (names, sizes only): it replaces it.
        let hashed = |list: &[Attachment]| list.iter().any(|a| !a.blake3.is_empty());
        if self.attachments.is_empty() || (!hashed(&self.attachments) && hashed(&other.attachments))
        {
            self.attachments = other.attachments;
        }
        fill(&mut self.body_text, other.body_text);
        fill(&mut self.raw, other.raw);
        self.auth.merge(other.auth);
        // The first hop's client is what the source that saw the message
        // arrive first says, whichever source was stored first (each
        // decoder knows which of its addresses is the client's).
        let theirs_first = match (self.arrival(), other_arrival) {
            (Some(mine), Some(theirs)) => theirs < mine,
            (None, Some(_)) => true,
            _ => false,
        };
        if other.client_ip.is_some() && (self.client_ip.is_none() || theirs_first) {
            self.client_ip = other.client_ip;
        }
        for s in other.systems {
            if !self.systems.contains(&s) {
                self.systems.push(s);
            }
        }
        for d in other.deliveries {
            if !self.deliveries.iter().any(|e| e.identity() == d.identity()) {
                self.deliveries.push(d);
            }
        }
    }

    /// When the earliest system saw the message arrive. The journal
    /// receiver's own arrivals are not counted: they are the arrival of a
    /// copy, after the message itself.
    pub fn arrival(&self) -> Option<DateTime<Utc>> {
        self.deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Received && d.system != "journal")
            .map(|d| d.time)
            .min()
    }
}

impl MessageRecord {
    /// Place envelope-only recipients once the message's own header view is
    /// known, and forget the journal mailbox.
    ///
    /// A journal copy (or a mailbox copy) tells To and Cc; the sending MTA's
    /// log tells every envelope recipient. Together they answer who was
    /// blind-copied: an envelope recipient that the headers do not name is a
    /// Bcc recipient, unless it is the expansion of an addressed alias or list
    /// (its delivery's `orig_to` is in To/Cc). Until the headers are known
    /// nothing can be said, and envelope recipients stay as they are.
    ///
    /// Journal addresses (where the journal copies are sent) are not
    /// recipients of the email: they are dropped from recipients and from
    /// deliveries, so that they neither show as Bcc nor turn an internal
    /// email into an outbound one.
    pub fn settle_recipients(&mut self, headers_known: bool, journal_addresses: &[String]) {
        if !journal_addresses.is_empty() {
            self.recipients
                .retain(|r| !journal_addresses.contains(&r.address));
            self.deliveries
                .retain(|d| !journal_addresses.contains(&d.recipient));
        }
        if !headers_known {
            return;
        }
        let addressed: BTreeSet<String> = self
            .recipients
            .iter()
            .filter(|r| matches!(r.kind, RecipientKind::To | RecipientKind::Cc))
            .map(|r| r.address.clone())
            .collect();
        let expanded: BTreeSet<&str> = self
            .deliveries
            .iter()
            .filter(|d| {
                d.original_recipient
                    .as_ref()
                    .is_some_and(|o| addressed.contains(o))
            })
            .map(|d| d.recipient.as_str())
            .collect();
        for r in &mut self.recipients {
            if r.kind == RecipientKind::Envelope && !expanded.contains(r.address.as_str()) {
                r.kind = RecipientKind::Bcc;
            }
        }
    }
}

/// Add a recipient to a list. The same address may stand in several kinds
/// (To and Cc) when the sources say so; an envelope-only entry (known from a
/// log or an SMTP envelope) is upgraded when another view places the address
/// in To, Cc or Bcc, and an envelope-only view of an address already placed
/// adds nothing.
pub fn merge_recipient(list: &mut Vec<Recipient>, r: Recipient) {
    if let Some(same) = list
        .iter_mut()
        .find(|e| e.address == r.address && e.kind == r.kind)
    {
        if same.display_name.is_none() {
            same.display_name = r.display_name;
        }
        return;
    }
    if r.kind == RecipientKind::Envelope {
        if list.iter().any(|e| e.address == r.address) {
            return;
        }
    } else if let Some(envelope) = list
        .iter_mut()
        .find(|e| e.address == r.address && e.kind == RecipientKind::Envelope)
    {
        envelope.kind = r.kind;
        if r.display_name.is_some() {
            envelope.display_name = r.display_name;
        }
        return;
    }
    list.push(r);
}

fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// A position in an input: a line for line-oriented formats, a byte offset otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Line(u64),
    Offset(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Offset(n) => write!(f, "byte {n}"),
        }
    }
}

/// Input that could not be decoded: counted, reported and kept in quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// File (or source) the input came from.
    pub source: String,
    pub position: Position,
    /// Stable reason code, e.g. `syslog.header`, `mime.parse`.
    pub code: String,
    /// Human explanation.
    pub reason: String,
    /// The rejected bytes (capped by the decoder).
    #[serde(skip)]
    pub input: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_normalisation() {
        assert_eq!(
            normalize_address(" <Taro.Yamada@Example.CO.JP> ").as_deref(),
            Some("taro.yamada@example.co.jp")
        );
        assert_eq!(normalize_address("<>"), None);
        assert_eq!(normalize_address("   "), None);
        assert_eq!(normalize_address("a b@c"), None);
    }

    #[test]
    fn message_id_normalisation() {
        assert_eq!(normalize_message_id(" <abc@x> ").as_deref(), Some("abc@x"));
        assert_eq!(normalize_message_id("<>"), None);
    }

    #[test]
    fn direction_from_domains() {
        let org = OrgDomains::new(["example.co.jp"]);
        assert!(org.is_internal("a@example.co.jp"));
        assert!(org.is_internal("a@mail.example.co.jp"));
        assert!(!org.is_internal("a@badexample.co.jp"));
        assert_eq!(
            org.direction(Some("a@example.co.jp"), ["b@gmail.com"]),
            Direction::Outbound
        );
        assert_eq!(
            org.direction(Some("a@example.co.jp"), ["b@example.co.jp"]),
            Direction::Internal
        );
        assert_eq!(
            org.direction(Some("x@partner.com"), ["b@example.co.jp"]),
            Direction::Inbound
        );
        assert_eq!(
            org.direction(Some("x@partner.com"), ["y@other.com"]),
            Direction::Relayed
        );
    }

    #[test]
    fn the_first_hop_is_the_earliest_arrival_whatever_the_order_of_sources() {
        let arrival = |system: &str, secs: i64, ip: &str| Delivery {
            time: DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap(),
            recipient: String::new(),
            status: DeliveryStatus::Received,
            detail: None,
            system: system.into(),
            relay: None,
            client_ip: Some(ip.into()),
            client_host: None,
            local_id: None,
            original_recipient: None,
        };
        let cloud = MessageRecord {
            client_ip: Some("203.0.113.50".into()),
            deliveries: vec![arrival("m365", 0, "203.0.113.50")],
            ..Default::default()
        };
        let relay = MessageRecord {
            client_ip: Some("192.0.2.101".into()),
            deliveries: vec![arrival("postfix@relay", 2, "192.0.2.101")],
            ..Default::default()
        };
        let journal = MessageRecord {
            client_ip: Some("198.51.100.7".into()),
            deliveries: vec![arrival("journal", 1, "198.51.100.7")],
            ..Default::default()
        };
        for order in [
            [&relay, &cloud, &journal],
            [&journal, &relay, &cloud],
            [&cloud, &journal, &relay],
        ] {
            let mut merged = order[0].clone();
            merged.merge(order[1].clone());
            merged.merge(order[2].clone());
            assert_eq!(merged.client_ip.as_deref(), Some("203.0.113.50"));
        }
    }

    #[test]
    fn attachments_seen_in_the_content_replace_those_a_log_named() {
        let named = |name: &str, hash: &str| Attachment {
            filename: Some(name.into()),
            content_type: "application/pdf".into(),
            size: 10,
            blake3: hash.into(),
            encrypted: false,
            inner_names: Vec::new(),
            raw_range: None,
        };
        let mut from_log = MessageRecord {
            attachments: vec![named("見積書.pdf", "")],
            ..Default::default()
        };
        let from_copy = MessageRecord {
            attachments: vec![named("見積書.pdf", "ab12"), named("図面.zip", "cd34")],
            ..Default::default()
        };
        from_log.merge(from_copy.clone());
        assert_eq!(from_log.attachments, from_copy.attachments);
        // The other way round the content's list stays.
        let mut copy = from_copy.clone();
        copy.merge(MessageRecord {
            attachments: vec![named("見積書.pdf", "")],
            ..Default::default()
        });
        assert_eq!(copy.attachments, from_copy.attachments);
    }

    #[test]
    fn merge_keeps_known_facts_and_upgrades_envelope_recipients() {
        let mut a = MessageRecord {
            keys: vec!["postfix@mx:1".into()],
            subject: Some("件名".into()),
            recipients: vec![Recipient::new("b@x", None, RecipientKind::Envelope).unwrap()],
            ..Default::default()
        };
        let b = MessageRecord {
            keys: vec!["mailbox:1".into()],
            subject: None,
            message_id: Some("m@x".into()),
            recipients: vec![Recipient::new("b@x", Some("B"), RecipientKind::Bcc).unwrap()],
            ..Default::default()
        };
        a.merge(b);
        assert_eq!(a.subject.as_deref(), Some("件名"));
        assert_eq!(a.message_id.as_deref(), Some("m@x"));
        assert_eq!(a.keys.len(), 2);
        assert_eq!(a.recipients.len(), 1);
        assert_eq!(a.recipients[0].kind, RecipientKind::Bcc);
        assert_eq!(a.recipients[0].display_name.as_deref(), Some("B"));
    }

    #[test]
    fn an_address_in_to_and_cc_merges_idempotently() {
        let to = Recipient::new("bob@x", None, RecipientKind::To).unwrap();
        let cc = Recipient::new("bob@x", None, RecipientKind::Cc).unwrap();
        let mut list = vec![to.clone(), cc.clone()];
        let before = list.clone();
        merge_recipient(&mut list, to);
        merge_recipient(&mut list, cc);
        merge_recipient(
            &mut list,
            Recipient::new("bob@x", None, RecipientKind::Envelope).unwrap(),
        );
        assert_eq!(list, before);
    }

    #[test]
    fn status_aliases() {
        assert_eq!(
            "sent".parse::<DeliveryStatus>(),
            Ok(DeliveryStatus::Delivered)
        );
        assert_eq!(
            "BOUNCED".parse::<DeliveryStatus>(),
            Ok(DeliveryStatus::Bounced)
        );
        assert!("nope".parse::<DeliveryStatus>().is_err());
    }
}
