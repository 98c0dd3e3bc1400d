//! The JSON shapes of a message, its trail and an alert, shared by the JSON
//! API and the command line (`mailtrail search --format json`, `mailtrail
//! trace --format json`, `mailtrail alerts --format json`).
//!
//! Why it is shaped this way:
//! - **One contract in one place**: scripts move between the CLI on the
//!   server and the API over HTTP; the same message has the same fields with
//!   the same meaning in both, because both serialise these structs.
//! - **The OpenAPI schemas come from these types** (`utoipa::ToSchema`), so
//!   the document cannot drift from what is served.
//! - **Times are RFC 3339 in the configured zone, with their offset**:
//!   readable by an administrator in Tokyo and unambiguous for a program.
//!   Alert times are the exception: UTC (`…Z`), as `mailtrail alerts` has
//!   printed them from the start.
//! - **Absent means unknown**: optional fields are `null` when no source
//!   told us, never an empty string that looks like a value.

use chrono::{DateTime, Utc};
use mailtrail_model::{Delivery, RecipientKind};
use mailtrail_store::alerts::{AlertEvent, AlertState, StoredAlert};
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

/// Where an alert stands, as the JSON shapes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AlertStateJson {
    /// Raised, nobody has looked yet (未対応).
    Open,
    /// Someone is on it (対応中).
    Acknowledged,
    /// Dealt with (解決済み).
    Resolved,
    /// The rule matched, but it was nothing (誤検知).
    FalsePositive,
}

impl From<AlertState> for AlertStateJson {
    fn from(state: AlertState) -> Self {
        match state {
            AlertState::Open => AlertStateJson::Open,
            AlertState::Acknowledged => AlertStateJson::Acknowledged,
            AlertState::Resolved => AlertStateJson::Resolved,
            AlertState::FalsePositive => AlertStateJson::FalsePositive,
        }
    }
}

impl From<AlertStateJson> for AlertState {
    fn from(state: AlertStateJson) -> Self {
        match state {
            AlertStateJson::Open => AlertState::Open,
            AlertStateJson::Acknowledged => AlertState::Acknowledged,
            AlertStateJson::Resolved => AlertState::Resolved,
            AlertStateJson::FalsePositive => AlertState::FalsePositive,
        }
    }
}

/// Where a match is (`location.at`) that is mail content rather than
/// metadata: the body, or an attachment's content. Viewers see that a
/// condition matched there, never the matched text.
pub fn is_content_location(at: &str) -> bool {
    matches!(at, "body" | "attachment")
}

/// The `location.at` of a hit (`subject`, `body`, `attachment_name`, …).
pub fn hit_location(hit: &serde_json::Value) -> &str {
    hit.get("location")
        .and_then(|l| l.get("at"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// A time of an alert: RFC 3339 in UTC, to the second.
fn alert_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One reason a rule matched (documentation of the `hits` items; the
/// objects are the policy engine's own).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertHitJson {
    /// Index of the condition in the rule.
    pub condition: u32,
    /// The condition's type: `keywords`, `pattern`, `recipient_domain`, ….
    pub condition_type: String,
    /// Where it matched: `{"at": "subject" | "body" | "attachment_name" |
    /// "inner_name" | "attachment" | "sender" | "from_display_name" |
    /// "reply_to" | "recipient" | "message", …}` (`attachment`: the
    /// attachment's index in the message).
    #[schema(value_type = Object)]
    pub location: serde_json::Value,
    /// The matched text as it appears in the message (or the fact matched).
    /// Absent for viewers when the match is in mail content (the body or an
    /// attachment's content).
    pub text: Option<String>,
    /// Where `text` is in the located field (`byte_start`, `byte_end`,
    /// `char_start`, `char_end`), for highlighting.
    #[schema(value_type = Option<Object>)]
    pub span: Option<serde_json::Value>,
    /// Further explanation (the keyword that matched, the domain imitated).
    pub detail: Option<String>,
    /// Another message this match depends on (PPAP: the archive's message).
    pub related_message: Option<String>,
}

/// An alert as `mailtrail alerts --format json` prints it and
/// `/api/v1/alerts` lists it: the rule, the message (mailtrail's number and
/// its Message-ID), the first matched condition and text, every match,
/// severity and state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertJson {
    /// The alert's number.
    pub id: i64,
    /// The rule's id.
    pub rule: String,
    pub rule_name: Option<String>,
    /// mailtrail's number for the message (`id` of `/api/v1/messages/{id}`).
    pub message: i64,
    /// The message's Message-ID header, without angle brackets.
    pub message_id: Option<String>,
    /// `low`, `medium` or `high`.
    pub severity: String,
    pub state: AlertStateJson,
    /// The console user handling it.
    pub assignee: Option<String>,
    /// The first match's condition type.
    pub condition: Option<String>,
    /// The first match's location.
    #[schema(value_type = Option<Object>)]
    pub location: Option<serde_json::Value>,
    /// The first match's text (absent for viewers when it is mail content).
    pub matched: Option<String>,
    /// Every match.
    #[schema(value_type = Vec<AlertHitJson>)]
    pub hits: serde_json::Value,
    /// When the rule first matched the message (UTC).
    #[schema(format = DateTime)]
    pub raised: String,
    /// When the alert last changed (UTC).
    #[schema(format = DateTime)]
    pub updated: String,
}

impl AlertJson {
    pub fn new(a: &StoredAlert, message_id: Option<&str>) -> Self {
        let first = a.hits.as_array().and_then(|h| h.first());
        let text = |key: &str| {
            first
                .and_then(|h| h.get(key))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        AlertJson {
            id: a.id,
            rule: a.rule.clone(),
            rule_name: a.rule_name.clone(),
            message: a.message,
            message_id: message_id.map(str::to_string),
            severity: a.severity.clone(),
            state: a.state.into(),
            assignee: a.assignee.clone(),
            condition: text("condition_type"),
            location: first.and_then(|h| h.get("location")).cloned(),
            matched: text("text"),
            hits: a.hits.clone(),
            raised: alert_time(a.raised),
            updated: alert_time(a.updated),
        }
    }

    /// What a viewer may see: matches in mail content keep their condition
    /// and location, not their text.
    pub fn for_viewer(mut self) -> Self {
        if let Some(hits) = self.hits.as_array_mut() {
            for hit in hits.iter_mut() {
                if is_content_location(hit_location(hit)) {
                    if let Some(fields) = hit.as_object_mut() {
                        for key in ["text", "span", "detail"] {
                            fields.remove(key);
                        }
                    }
                }
            }
        }
        let first_is_content = self
            .location
            .as_ref()
            .and_then(|l| l.get("at"))
            .and_then(serde_json::Value::as_str)
            .is_some_and(is_content_location);
        if first_is_content {
            self.matched = None;
        }
        self
    }
}

/// One thing done to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertEventJson {
    /// RFC 3339 in UTC.
    #[schema(format = DateTime)]
    pub time: String,
    /// Who did it (a console user, `token:NAME`, or the command line's user).
    pub user: String,
    /// The state it was set to, if the state changed.
    pub state: Option<AlertStateJson>,
    /// The assignee set, if the assignment changed.
    pub assignee: Option<String>,
    pub comment: Option<String>,
}

/// An alert with its history, oldest first: what `mailtrail alert ID
/// --format json` prints and `/api/v1/alerts/{id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertDetailJson {
    #[serde(flatten)]
    pub alert: AlertJson,
    pub history: Vec<AlertEventJson>,
}

impl AlertDetailJson {
    pub fn new(a: &StoredAlert, message_id: Option<&str>, events: &[AlertEvent]) -> Self {
        AlertDetailJson {
            alert: AlertJson::new(a, message_id),
            history: events
                .iter()
                .map(|e| AlertEventJson {
                    time: alert_time(e.time),
                    user: e.user.clone(),
                    state: e.state.map(Into::into),
                    assignee: e.assignee.clone(),
                    comment: e.comment.clone(),
                })
                .collect(),
        }
    }
}
