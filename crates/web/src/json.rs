//! The JSON shapes of a message and its trail, shared by the JSON API and
//! the command line (`mailtrail search --format json`, `mailtrail trace
//! --format json`).
//!
//! Why it is shaped this way:
//! - **One contract in one place**: scripts move between the CLI on the
//!   server and the API over HTTP; the same message has the same fields with
//!   the same meaning in both, because both serialise these structs.
//! - **The OpenAPI schemas come from these types** (`utoipa::ToSchema`), so
//!   the document cannot drift from what is served.
//! - **Times are RFC 3339 in the configured zone, with their offset**:
//!   readable by an administrator in Tokyo and unambiguous for a program.
//! - **Absent means unknown**: optional fields are `null` when no source
//!   told us, never an empty string that looks like a value.

use chrono::{DateTime, Utc};
use mailtrail_model::{Delivery, RecipientKind};
use mailtrail_store::StoredMessage;
use serde::Serialize;
use utoipa::ToSchema;

/// A time as the JSON shapes print it: RFC 3339 in `tz`, with the offset.
pub fn local_time(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The time a message is listed, ordered and filtered (`after:`) by: when a
/// system first saw it, else its `Date:` header (which the sender's client
/// sets and can be anything), else its first delivery.
pub fn display_time(m: &StoredMessage) -> Option<DateTime<Utc>> {
    m.first_seen
        .or(m.date)
        .or_else(|| m.deliveries.iter().map(|d| d.time).min())
}

pub fn addresses(m: &StoredMessage, kind: RecipientKind) -> Vec<String> {
    m.recipients
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.address.clone())
        .collect()
}

/// Recipients for the `to` field: the To header, or — for a message known
/// only from logs, which have no headers — the envelope recipients.
pub fn to_addresses(m: &StoredMessage) -> Vec<String> {
    let addressed = m
        .recipients
        .iter()
        .any(|r| r.kind != RecipientKind::Envelope);
    addresses(
        m,
        if addressed {
            RecipientKind::To
        } else {
            RecipientKind::Envelope
        },
    )
}

/// The deliveries of a message in time order (stable for equal times: ties
/// keep the order the sources reported them in, which is the order of
/// events within one system).
pub fn trail(m: &StoredMessage) -> Vec<&Delivery> {
    let mut events: Vec<&Delivery> = m.deliveries.iter().collect();
    events.sort_by_key(|d| d.time);
    events
}

/// An attachment as listed; its position in `attachments` is the index of
/// its download (`/api/v1/messages/{id}/attachments/{index}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentJson {
    /// The file name as the sender gave it (decoded), if any.
    pub filename: Option<String>,
    /// Bytes, decoded.
    pub size: u64,
    /// The declared MIME type.
    pub content_type: String,
    /// BLAKE3 of the decoded bytes, hex: equal files have equal hashes.
    pub blake3: String,
    /// An encrypted archive or document.
    pub encrypted: bool,
    /// Names of the files inside an archive.
    pub inner_names: Vec<String>,
}

/// SPF / DKIM / DMARC verdicts as a source reported them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmarc: Option<String>,
}

/// One delivery event of a message, as listed with the message.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryJson {
    pub recipient: String,
    /// `received`, `sent`, `delivered`, `deferred`, `bounced`, `rejected`,
    /// `expired`, `failed`, `quarantined`, ...
    pub status: &'static str,
    /// RFC 3339 with the configured zone's offset.
    #[schema(format = DateTime)]
    pub time: String,
    /// The system that logged it: `postfix`, `exchange`, `m365`, `gmail`,
    /// `journal`, ... (with `@host` for a log's host).
    pub system: String,
    pub detail: Option<String>,
    /// The next hop it was handed to.
    pub relay: Option<String>,
    /// The system's own id for the message (a Postfix queue id, ...).
    pub local_id: Option<String>,
}

/// A message as search lists it and as `mailtrail search --format json`
/// prints it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageJson {
    /// mailtrail's number for the message (the `ID` column).
    pub id: i64,
    /// The Message-ID header, without angle brackets.
    pub message_id: Option<String>,
    /// The time it is listed by: first seen by a system, else the Date
    /// header, else its earliest delivery.
    #[schema(format = DateTime)]
    pub date: Option<String>,
    /// The Date header as the sender's client wrote it.
    #[schema(format = DateTime)]
    pub header_date: Option<String>,
    /// When a system first saw it.
    #[schema(format = DateTime)]
    pub first_seen: Option<String>,
    /// `inbound`, `outbound`, `internal` or `unknown`.
    pub direction: &'static str,
    /// The header sender, else the envelope sender.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub envelope_from: Option<String>,
    /// The To header, or the envelope recipients of a message known only
    /// from logs.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Recipients the headers do not name (from a journal report, a DLP
    /// record or the envelope of a captured copy).
    pub bcc: Vec<String>,
    pub envelope_recipients: Vec<String>,
    pub subject: Option<String>,
    pub attachments: Vec<AttachmentJson>,
    /// Bytes of the whole message, when a source reported it.
    pub size: Option<u64>,
    /// Every system that saw it.
    pub systems: Vec<String>,
    /// The client that first handed it to one of our systems.
    pub client_ip: Option<String>,
    pub auth: AuthJson,
    /// The raw message was captured (administrators can download it).
    pub content: bool,
    /// Its most telling delivery status: `delivered`, `deferred`,
    /// `bounced`, ... (`none` without deliveries).
    pub status: &'static str,
    /// Every delivery event, oldest first.
    pub deliveries: Vec<DeliveryJson>,
}

impl MessageJson {
    pub fn new(m: &StoredMessage, tz: chrono_tz::Tz) -> Self {
        MessageJson {
            id: m.id,
            message_id: m.message_id.clone(),
            date: display_time(m).map(|t| local_time(t, tz)),
            header_date: m.date.map(|t| local_time(t, tz)),
            first_seen: m.first_seen.map(|t| local_time(t, tz)),
            direction: m.direction.as_str(),
            from: m
                .from
                .as_ref()
                .map(|f| f.address.clone())
                .or_else(|| m.envelope_from.clone()),
            from_name: m.from.as_ref().and_then(|f| f.display_name.clone()),
            envelope_from: m.envelope_from.clone(),
            to: to_addresses(m),
            cc: addresses(m, RecipientKind::Cc),
            bcc: addresses(m, RecipientKind::Bcc),
            envelope_recipients: addresses(m, RecipientKind::Envelope),
            subject: m.subject.clone(),
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentJson {
                    filename: a.filename.clone(),
                    size: a.size,
                    content_type: a.content_type.clone(),
                    blake3: a.blake3.clone(),
                    encrypted: a.encrypted,
                    inner_names: a.inner_names.clone(),
                })
                .collect(),
            size: m.size,
            systems: m.systems.clone(),
            client_ip: m.client_ip.clone(),
            auth: AuthJson {
                spf: m.auth.spf.clone(),
                dkim: m.auth.dkim.clone(),
                dmarc: m.auth.dmarc.clone(),
            },
            content: m.content_hash.is_some(),
            status: summary_status(m),
            deliveries: trail(m)
                .into_iter()
                .map(|d| DeliveryJson {
                    recipient: d.recipient.clone(),
                    status: d.status.as_str(),
                    time: local_time(d.time, tz),
                    system: d.system.clone(),
                    detail: d.detail.clone(),
                    relay: d.relay.clone(),
                    local_id: d.local_id.clone(),
                })
                .collect(),
        }
    }
}

/// The most telling delivery status of a message, for one-line views: a
/// failure if any recipient failed, else deferred if one is still waiting,
/// else the latest status.
pub fn summary_status(m: &StoredMessage) -> &'static str {
    let key = crate::status_key(m);
    key.strip_prefix("status-").unwrap_or(key)
}

/// One event of a message's trail across systems.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailEventJson {
    #[schema(format = DateTime)]
    pub time: String,
    pub system: String,
    /// What happened: the delivery status the system reported.
    pub event: &'static str,
    pub recipient: String,
    /// The address it was sent to before an alias or list expanded it.
    pub original_recipient: Option<String>,
    pub relay: Option<String>,
    pub client_ip: Option<String>,
    pub client_host: Option<String>,
    pub local_id: Option<String>,
    pub detail: Option<String>,
}

/// A message's trail, as `mailtrail trace --format json` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailJson {
    pub id: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub direction: &'static str,
    pub systems: Vec<String>,
    /// Every event, oldest first.
    pub trail: Vec<TrailEventJson>,
}

impl TrailJson {
    pub fn new(m: &StoredMessage, tz: chrono_tz::Tz) -> Self {
        TrailJson {
            id: m.id,
            message_id: m.message_id.clone(),
            subject: m.subject.clone(),
            from: m
                .from
                .as_ref()
                .map(|f| f.address.clone())
                .or_else(|| m.envelope_from.clone()),
            direction: m.direction.as_str(),
            systems: m.systems.clone(),
            trail: trail(m)
                .into_iter()
                .map(|d| TrailEventJson {
                    time: local_time(d.time, tz),
                    system: d.system.clone(),
                    event: d.status.as_str(),
                    recipient: d.recipient.clone(),
                    original_recipient: d.original_recipient.clone(),
                    relay: d.relay.clone(),
                    client_ip: d.client_ip.clone(),
                    client_host: d.client_host.clone(),
                    local_id: d.local_id.clone(),
                    detail: d.detail.clone(),
                })
                .collect(),
        }
    }
}
