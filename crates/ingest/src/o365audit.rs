//! Office 365 Management Activity API, Exchange workload: exported audit
//! records (FORMATS.md c) as message facts.
//!
//! Input: a JSON array (what the API's content blobs are, and what
//! `Search-UnifiedAuditLog | Select -Expand AuditData` gives once wrapped in
//! `[` `]`), NDJSON (one record per line), single or concatenated objects,
//! UTF-8 or UTF-16 — read by the same streaming reader as the message trace
//! ([`crate::m365`]); or the audit log search CSV export (Purview /
//! `Search-UnifiedAuditLog | Export-Csv`: `CreationDate, UserIds,
//! Operations, AuditData` or `RecordId, CreationDate, RecordType, Operation,
//! UserId, AuditData, …`), whose `AuditData` column holds the record as
//! JSON.
//!
//! Why it is shaped this way:
//!
//! - **Only what is a fact about an email becomes a record.** The audit log
//!   is about mailboxes, not messages; four kinds of record say something
//!   about a message and become a [`MessageRecord`] (system `m365-audit`,
//!   key `m365-audit:<Id>`, merged with the trace, journal and log views by
//!   Message-ID):
//!
//!   | record | what it gives |
//!   |---|---|
//!   | `Send`, `SendAs`, `SendOnBehalf` (RecordType 2) | `message_id` (Item.InternetMessageId), subject, size (Item.SizeInBytes), attachment names and sizes, `from` (Send: MailboxOwnerUPN; SendAs: SendAsUserSmtp; SendOnBehalf: SendOnBehalfOfUserSmtp), client IP (ClientIPAddress / ClientIP), and one `received` delivery (recipient empty: the submission, as the Exchange tracking decoder counts a mailbox submission) whose detail names the operation, the acting user (UserId), the logon type (owner / admin / delegate) and the client — the only place the delegate behind a SendAs is kept. ResultStatus `Failed` makes it a `failed` delivery. |
//!   | `Create` of an item with an InternetMessageId | `message_id`, subject, size, attachments; the mailbox owner as `from` when the folder is Sent Items / Drafts / Outbox (also 送信済みアイテム, 下書き, 送信トレイ), else as an envelope recipient; `from` from the `Sender` object when there is one. No delivery: an item put into a mailbox is not a delivery. A Create without InternetMessageId (calendar, contact, task items) is skipped. |
//!   | DLP rule matches (RecordType 13, any record with `ExchangeMetaData`) | `message_id` (MessageID), `from`, **To, Cc and Bcc recipients of those kinds** (this is how Bcc is learned from Microsoft 365), subject, size (FileSize), `first_seen` the earlier of Sent and CreationTime. No delivery: the policy's actions are not the message's fate (rule names and actions are not kept: the model has no place for them yet). |
//!
//!   Everything else is skipped and counted by operation in
//!   [`AuditSummary::skipped_by_operation`]: `MailItemsAccessed` (and
//!   `AttachmentAccess`) are **access events, not deliveries** — someone
//!   read or synced items; the model has no access status and a delivery
//!   would turn every read into a "delivered", so they are counted, with
//!   the number of items they name in [`AuditSummary::accessed_items`];
//!   other mailbox operations (Update, Move, SoftDelete,
//!   ModifyFolderPermissions, …) and other workloads likewise.
//! - **Tolerant values.** Numbers may be strings (`"RecordType": "2"`),
//!   sizes floats (`1156492.00`); times carry no zone and are UTC;
//!   `OriginatingServer` ends in `\n`; client IPs may carry a port or
//!   brackets (removed; loopback and unspecified addresses, which Exchange
//!   writes for its own service calls, are not a client).
//! - **Attachments** come as one string, `name (599b); other (614b)`, and
//!   names may contain parentheses and semicolons: [`parse_attachments`]
//!   reads from the right, taking the `(NNNb)` at the end as the size and
//!   the name back to the previous entry's `(NNNb); `. They become
//!   attachments with a file name and size only (no content type, no hash).
//! - **UPN as address.** MailboxOwnerUPN is a user principal name; it is
//!   taken as the mailbox's address, as Microsoft recommends UPN = primary
//!   SMTP address.
//!
//! [`audit_record`] turns one parsed record into an [`AuditOutcome`]; the
//! Management Activity API poller reuses it. Detection ([`looks_like_audit`]):
//! a CSV header with AuditData, CreationDate and Operation(s), or JSON whose
//! first object has CreationTime, Operation and RecordType or Workload.

use std::collections::BTreeMap;
use std::io::BufRead;

use chrono::{DateTime, Utc};
use mailtrail_model::{
    merge_recipient, normalize_message_id, Attachment, Delivery, DeliveryStatus, Mailbox,
    MessageRecord, Recipient, RecipientKind,
};
use serde_json::{Map, Value};

use crate::m365::{
    clean_ip, drive, field, head_shape, json_time, number, text, At, Codes, CountingSink,
    DateOrder, FieldError, HeadShape, Units,
};
use crate::{DecodeOptions, IngestError, Sink, SinkError};

/// The system name of audit-derived records and deliveries.
pub const SYSTEM: &str = "m365-audit";

/// Reject code: an audit record (or AuditData column) that is not JSON.
pub const CODE_JSON: &str = "o365audit.json";
/// Reject code: a CSV record that is not RFC 4180.
pub const CODE_CSV: &str = "o365audit.csv";
/// Reject code: a record longer than the limit.
pub const CODE_TOO_LONG: &str = "o365audit.too_long";
/// Reject code: a CSV header without AuditData, and the rows after it.
pub const CODE_HEADER: &str = "o365audit.header";
/// Reject code: a row with another number of fields than its header.
pub const CODE_FIELD_COUNT: &str = "o365audit.field_count";
/// Reject code: no readable CreationTime.
pub const CODE_TIME: &str = "o365audit.time";
/// Reject code: not an audit record (no Operation, not an object).
pub const CODE_FIELDS: &str = "o365audit.fields";

/// Why an audit record gives no message record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// MailItemsAccessed, AttachmentAccess: someone read items.
    Access,
    /// A Create of an item that is no mail (no InternetMessageId).
    NotMail,
    /// Another mailbox operation.
    OtherOperation,
    /// Another workload (SharePoint, AzureActiveDirectory, …).
    OtherWorkload,
}

/// An audit record that is not a message fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub operation: String,
    pub reason: SkipReason,
    /// Items the record names (MailItemsAccessed folders' items).
    pub items: u64,
}

/// What one audit record gives.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditOutcome {
    Message(Box<MessageRecord>),
    Skipped(Skip),
}

/// One audit record (a parsed JSON object) as a message fact or a skip (see
/// the module doc).
pub fn audit_record(value: &Value) -> Result<AuditOutcome, FieldError> {
    let obj = value
        .as_object()
        .ok_or_else(|| FieldError::new(CODE_FIELDS, "not a JSON object"))?;
    let operation = text(field(obj, &["Operation"]))
        .ok_or_else(|| FieldError::new(CODE_FIELDS, "no Operation: not an audit record"))?;
    let time_value = field(obj, &["CreationTime"])
        .ok_or_else(|| FieldError::new(CODE_TIME, "no CreationTime"))?;
    let time = json_time(Some(time_value), &mut DateOrder::Unknown).ok_or_else(|| {
        FieldError::new(
            CODE_TIME,
            format!("CreationTime {time_value} is no time we can read"),
        )
    })?;
    let skip = |reason: SkipReason, items: u64| {
        Ok(AuditOutcome::Skipped(Skip {
            operation: operation.clone(),
            reason,
            items,
        }))
    };
    if text(field(obj, &["Workload"])).is_some_and(|w| !w.eq_ignore_ascii_case("Exchange")) {
        return skip(SkipReason::OtherWorkload, 0);
    }
    let key = match text(field(obj, &["Id"])) {
        Some(id) => format!("{SYSTEM}:{}", id.to_ascii_lowercase()),
        None => {
            let hex = blake3::hash(value.to_string().as_bytes()).to_hex();
            format!("{SYSTEM}:{}", &hex.as_str()[..32])
        }
    };
    if let Some(Value::Object(meta)) = field(obj, &["ExchangeMetaData"]) {
        return Ok(AuditOutcome::Message(Box::new(dlp_record(meta, key, time))));
    }
    let op = operation.to_ascii_lowercase();
    match op.as_str() {
        "send" | "sendas" | "sendonbehalf" => Ok(AuditOutcome::Message(Box::new(send_record(
            obj, &operation, &op, key, time,
        )))),
        "create" => match create_record(obj, key, time) {
            Some(r) => Ok(AuditOutcome::Message(Box::new(r))),
            None => skip(SkipReason::NotMail, 0),
        },
        "mailitemsaccessed" | "attachmentaccess" => skip(SkipReason::Access, accessed_items(obj)),
        _ => skip(SkipReason::OtherOperation, 0),
    }
}

/// Items named by an access record: `Folders[].FolderItems[]`, `Messages[].MessageItems[]`, or one `Item`.
fn accessed_items(obj: &Map<String, Value>) -> u64 {
    let mut n = 0u64;
    for (outer, inner) in [("Folders", "FolderItems"), ("Messages", "MessageItems")] {
        if let Some(Value::Array(groups)) = field(obj, &[outer]) {
            for g in groups {
                if let Some(Value::Array(items)) = g.as_object().and_then(|g| field(g, &[inner])) {
                    n += items.len() as u64;
                }
            }
        }
    }
    if n == 0 && matches!(field(obj, &["Item"]), Some(Value::Object(_))) {
        n = 1;
    }
    n
}

/// The item's message facts.
struct ItemFacts {
    message_id: Option<String>,
    subject: Option<String>,
    size: Option<u64>,
    attachments: Vec<Attachment>,
    folder: Option<String>,
}

fn item_facts(obj: &Map<String, Value>) -> ItemFacts {
    let item = match field(obj, &["Item"]) {
        Some(Value::Object(i)) => Some(i),
        _ => None,
    };
    let get = |names: &[&str]| item.and_then(|i| field(i, names));
    let attachments = text(get(&["Attachments"]))
        .map(|s| {
            parse_attachments(&s)
                .into_iter()
                .map(|(name, size)| Attachment {
                    filename: Some(name),
                    size: size.unwrap_or(0),
                    ..Attachment::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let folder = match get(&["ParentFolder"]) {
        Some(Value::Object(f)) => text(field(f, &["Path"])),
        _ => None,
    };
    ItemFacts {
        message_id: text(get(&["InternetMessageId"])).and_then(|m| normalize_message_id(&m)),
        subject: text(get(&["Subject"])),
        size: number(get(&["SizeInBytes"])),
        attachments,
        folder,
    }
}

/// A client IP as stored; loopback and unspecified addresses are Exchange's own service calls.
fn client_ip(obj: &Map<String, Value>) -> Option<String> {
    ["ClientIPAddress", "ClientIP"].iter().find_map(|name| {
        let ip = clean_ip(&text(field(obj, &[name]))?)?;
        let parsed: std::net::IpAddr = ip.parse().ok()?;
        (!parsed.is_loopback() && !parsed.is_unspecified()).then_some(ip)
    })
}

fn logon_type(obj: &Map<String, Value>) -> Option<&'static str> {
    match number(field(obj, &["LogonType"]))? {
        0 => Some("owner"),
        1 => Some("admin"),
        2 => Some("delegate"),
        _ => None,
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}…")
    }
}

fn send_record(
    obj: &Map<String, Value>,
    operation: &str,
    op: &str,
    key: String,
    time: DateTime<Utc>,
) -> MessageRecord {
    let item = item_facts(obj);
    let owner = text(field(obj, &["MailboxOwnerUPN"]));
    let actor = text(field(obj, &["UserId"]));
    let from = match op {
        "sendas" => text(field(obj, &["SendAsUserSmtp"])),
        "sendonbehalf" => text(field(obj, &["SendOnBehalfOfUserSmtp"])),
        _ => None,
    }
    .or_else(|| owner.clone())
    .or_else(|| actor.clone().filter(|a| a.contains('@')))
    .and_then(|a| Mailbox::new(&a, None));
    let client = client_ip(obj);
    let mut detail = operation.to_string();
    if let Some(f) = &from {
        match op {
            "sendas" => detail.push_str(&format!(" as {}", f.address)),
            "sendonbehalf" => detail.push_str(&format!(" on behalf of {}", f.address)),
            _ => {}
        }
    }
    if let Some(a) = &actor {
        if from
            .as_ref()
            .is_none_or(|f| !f.address.eq_ignore_ascii_case(a))
        {
            detail.push_str(&format!(" by {a}"));
        }
    }
    if let Some(l) = logon_type(obj) {
        detail.push_str(&format!(" ({l})"));
    }
    if let Some(c) = text(field(obj, &["ClientInfoString"])) {
        detail.push_str(&format!(" via {}", cut(&c, 160)));
    }
    let result = text(field(obj, &["ResultStatus"]));
    let failed = result
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("Failed"));
    if let Some(r) = result.filter(|r| !r.eq_ignore_ascii_case("Succeeded")) {
        detail.push_str(&format!(" [{r}]"));
    }
    let submission = Delivery {
        time,
        recipient: String::new(),
        status: if failed {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Received
        },
        detail: Some(detail),
        system: SYSTEM.to_string(),
        relay: None,
        client_ip: client.clone(),
        client_host: None,
        local_id: None,
        original_recipient: None,
    };
    MessageRecord {
        keys: vec![key],
        message_id: item.message_id,
        first_seen: Some(time),
        from,
        subject: item.subject,
        size: item.size,
        attachments: item.attachments,
        client_ip: client,
        systems: vec![SYSTEM.to_string()],
        deliveries: vec![submission],
        ..MessageRecord::default()
    }
}

/// Folders whose items the mailbox owner wrote (English and Japanese names).
const OWN_FOLDERS: [&str; 6] = [
    "sent items",
    "drafts",
    "outbox",
    "送信済みアイテム",
    "下書き",
    "送信トレイ",
];

fn create_record(
    obj: &Map<String, Value>,
    key: String,
    time: DateTime<Utc>,
) -> Option<MessageRecord> {
    let item = item_facts(obj);
    item.message_id.as_ref()?;
    let owner = text(field(obj, &["MailboxOwnerUPN"]));
    let own_folder = item.folder.as_deref().is_some_and(|p| {
        let last = p.trim_end_matches('\\').rsplit('\\').next().unwrap_or(p);
        OWN_FOLDERS.iter().any(|f| last.trim().to_lowercase() == *f)
    });
    let mut from = match field(obj, &["Sender"]) {
        Some(Value::Object(s)) => text(field(s, &["UPN", "SmtpAddress", "Address"]))
            .and_then(|a| Mailbox::new(&a, text(field(s, &["DisplayName"])).as_deref())),
        _ => None,
    };
    let mut recipients = Vec::new();
    if own_folder {
        if from.is_none() {
            from = owner.and_then(|o| Mailbox::new(&o, None));
        }
    } else if let Some(r) = owner.and_then(|o| Recipient::new(&o, None, RecipientKind::Envelope)) {
        recipients.push(r);
    }
    Some(MessageRecord {
        keys: vec![key],
        message_id: item.message_id,
        first_seen: Some(time),
        from,
        recipients,
        subject: item.subject,
        size: item.size,
        attachments: item.attachments,
        systems: vec![SYSTEM.to_string()],
        ..MessageRecord::default()
    })
}

/// Addresses of a To / CC / BCC value: an array of strings, or one string with `;` or `,` between.
fn addresses(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(|i| text(Some(i))).collect(),
        Some(Value::String(s)) => s
            .split([';', ','])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn dlp_record(meta: &Map<String, Value>, key: String, time: DateTime<Utc>) -> MessageRecord {
    let mut recipients = Vec::new();
    for (name, kind) in [
        ("To", RecipientKind::To),
        ("CC", RecipientKind::Cc),
        ("BCC", RecipientKind::Bcc),
    ] {
        for a in addresses(field(meta, &[name])) {
            if let Some(r) = Recipient::new(&a, None, kind) {
                merge_recipient(&mut recipients, r);
            }
        }
    }
    let sent = json_time(field(meta, &["Sent"]), &mut DateOrder::Unknown);
    MessageRecord {
        keys: vec![key],
        message_id: text(field(meta, &["MessageID", "InternetMessageId"]))
            .and_then(|m| normalize_message_id(&m)),
        first_seen: Some(sent.map_or(time, |s| s.min(time))),
        from: text(field(meta, &["From"])).and_then(|a| Mailbox::new(&a, None)),
        recipients,
        subject: text(field(meta, &["Subject"])),
        size: number(field(meta, &["FileSize"])),
        systems: vec![SYSTEM.to_string()],
        ..MessageRecord::default()
    }
}

/// `(NNNb)` at the end of `s`: the text before it and the size.
fn size_suffix(s: &str) -> Option<(&str, u64)> {
    let body = s.strip_suffix(')')?;
    let open = body.rfind('(')?;
    let inner = &body[open + 1..];
    let digits = inner.strip_suffix(['b', 'B'])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&s[..open], digits.parse().ok()?))
}

/// The `Attachments` string of an audit item (`name (599b); other (614b)`)
/// as names and sizes, read from the right so that names may hold
/// parentheses and `;`. Without any size, entries are split at `;`.
pub fn parse_attachments(s: &str) -> Vec<(String, Option<u64>)> {
    let s = s.trim();
    if s.is_empty() {
        return Vec::new();
    }
    if size_suffix(s).is_none() && !s.contains("b);") && !s.contains("B);") {
        return s
            .split(';')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| (n.to_string(), None))
            .collect();
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (body, size) = match size_suffix(rest) {
            Some((before, n)) => (before.trim_end(), Some(n)),
            None => (rest, None),
        };
        // The name starts after the last `;` that follows a `(NNNb)`.
        let mut split = None;
        for (p, _) in body.rmatch_indices(';') {
            let left = body[..p].trim_end();
            if size_suffix(left).is_some() {
                split = Some((left, &body[p + 1..]));
                break;
            }
        }
        let (prev, name) = split.unwrap_or(("", body));
        let name = name.trim();
        if !name.is_empty() {
            out.push((name.to_string(), size));
        }
        rest = prev.trim_end();
    }
    out.reverse();
    out
}

/// Whether the head of an input is an audit export (see the module doc).
pub fn looks_like_audit(head: &[u8]) -> bool {
    match head_shape(head) {
        HeadShape::Csv(names) => audit_csv_column(&names).is_some(),
        HeadShape::Json(keys) => {
            keys.contains("CreationTime")
                && keys.contains("Operation")
                && (keys.contains("RecordType") || keys.contains("Workload"))
        }
        HeadShape::None => false,
    }
}

/// The index of the AuditData column of an audit log search CSV header.
fn audit_csv_column(names: &[String]) -> Option<usize> {
    let lower: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let has = |n: &str| lower.iter().any(|h| h == n);
    let data = lower.iter().position(|h| h == "auditdata")?;
    ((has("creationdate") || has("creationtime")) && (has("operation") || has("operations")))
        .then_some(data)
}

/// Counts from one import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Audit records read (turned into records or skipped).
    pub audit_records: u64,
    /// Message records emitted.
    pub records: u64,
    /// Rejects reported.
    pub rejected: u64,
    /// Audit records that are no message fact.
    pub skipped: u64,
    /// Skipped records by operation (`MailItemsAccessed`, `Update`, …).
    pub skipped_by_operation: BTreeMap<String, u64>,
    /// Items named by the skipped access records (MailItemsAccessed, AttachmentAccess).
    pub accessed_items: u64,
}

struct AuditUnits {
    data_column: Option<usize>,
    summary: AuditSummary,
}

impl AuditUnits {
    fn one(
        &mut self,
        value: &Value,
        at: &At<'_>,
        what: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        match audit_record(value) {
            Ok(AuditOutcome::Message(r)) => {
                self.summary.audit_records += 1;
                sink.record(*r)
            }
            Ok(AuditOutcome::Skipped(s)) => {
                self.summary.audit_records += 1;
                self.summary.skipped += 1;
                self.summary.accessed_items += s.items;
                *self
                    .summary
                    .skipped_by_operation
                    .entry(s.operation)
                    .or_insert(0) += 1;
                Ok(())
            }
            Err(e) => at.reject(sink, e.code, format!("{what}{}", e.reason)),
        }
    }
}

impl Units for AuditUnits {
    fn csv_header(&mut self, names: &[String]) -> bool {
        self.data_column = audit_csv_column(names);
        self.data_column.is_some()
    }

    fn csv_row(
        &mut self,
        fields: &[&str],
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let Some(data) = self.data_column.and_then(|i| fields.get(i).copied()) else {
            return Ok(());
        };
        match serde_json::from_str::<Value>(data) {
            Ok(v) => self.one(&v, at, "", sink),
            Err(e) => at.reject(sink, CODE_JSON, format!("AuditData is not JSON: {e}")),
        }
    }

    fn json_value(
        &mut self,
        value: Value,
        at: &At<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        match &value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.one(item, at, &format!("[{i}]: "), sink)?;
                }
                Ok(())
            }
            _ => self.one(&value, at, "", sink),
        }
    }

    fn finish(&mut self, _sink: &mut dyn Sink) -> Result<(), SinkError> {
        Ok(())
    }
}

const AUDIT_CODES: Codes = Codes {
    json: CODE_JSON,
    csv: CODE_CSV,
    too_long: CODE_TOO_LONG,
    header: CODE_HEADER,
    field_count: CODE_FIELD_COUNT,
    header_hint: "expected an audit log search export (CreationDate, Operation(s), AuditData)",
};

/// Decode one audit export: a record per message fact to `sink`, malformed
/// records as rejects, other records counted as skipped. Only I/O and sink
/// failures stop it.
pub fn import_audit<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<AuditSummary, IngestError> {
    let mut counting = CountingSink {
        inner: sink,
        records: 0,
        rejects: 0,
    };
    let mut units = AuditUnits {
        data_column: None,
        summary: AuditSummary::default(),
    };
    drive(
        reader,
        source,
        opts,
        &AUDIT_CODES,
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

    fn names(v: &[(String, Option<u64>)]) -> Vec<(&str, Option<u64>)> {
        v.iter().map(|(n, s)| (n.as_str(), *s)).collect()
    }

    #[test]
    fn attachments_are_read_from_the_right() {
        let a = parse_attachments(
            "logo.png (8192b); Contract (Draft 04_04_2024)(100112233.7).docx (73728b); a; b (c).txt (5b)",
        );
        assert_eq!(
            names(&a),
            [
                ("logo.png", Some(8192)),
                ("Contract (Draft 04_04_2024)(100112233.7).docx", Some(73728)),
                ("a; b (c).txt", Some(5)),
            ]
        );
        assert_eq!(
            names(&parse_attachments("x.pdf (1b)")),
            [("x.pdf", Some(1))]
        );
        assert_eq!(
            names(&parse_attachments("x.pdf; y.pdf")),
            [("x.pdf", None), ("y.pdf", None)]
        );
        assert_eq!(names(&parse_attachments("x (12kb)")), [("x (12kb)", None)]);
        assert!(parse_attachments("  ").is_empty());
        assert_eq!(names(&parse_attachments("(1b)")), []);
        assert_eq!(parse_attachments("; (1b); ;").len(), 2);
    }
}
