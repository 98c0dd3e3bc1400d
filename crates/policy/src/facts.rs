//! What evaluation looks at: one message's facts, and two narrow questions
//! to the rest of the system.
//!
//! Evaluation is a pure function of [`MessageFacts`], a [`Directory`] and a
//! [`History`]. The facts are plain owned data (built from a
//! [`MessageRecord`] at ingest or a [`StoredMessage`] for a dry run), and the
//! two traits are the only ways out: the directory answers "who is this
//! address" and the history answers "has this happened before". Both are
//! small enough to fake in memory in tests, and the store implements them
//! with an index lookup each, so a rule never triggers a scan.

use chrono::{DateTime, NaiveDate, Utc};
use mailtrail_model::{
    domain_of, AuthResults, Direction, MessageRecord, OrgDomains, Recipient, RecipientKind,
};
use mailtrail_store::StoredMessage;

/// One attachment as the policy engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentFacts {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
    /// BLAKE3 of the content, lower-case hex (empty when only a log named it).
    pub blake3: String,
    /// A password-protected archive, as ingest found it.
    pub encrypted: bool,
    /// Names inside an archive, as ingest found them.
    pub inner_names: Vec<String>,
    /// The decoded bytes, when the caller has them at hand (ingest does, a
    /// dry run reads them from the blob store). Without them, the content
    /// conditions decide from the name, the content type and ingest's flags.
    pub content: Option<Vec<u8>>,
}

impl From<&mailtrail_model::Attachment> for AttachmentFacts {
    fn from(a: &mailtrail_model::Attachment) -> Self {
        AttachmentFacts {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            blake3: a.blake3.clone(),
            encrypted: a.encrypted,
            inner_names: a.inner_names.clone(),
            content: None,
        }
    }
}

/// Everything a rule may ask about one message. Addresses are normalised
/// (lower case, as [`mailtrail_model::normalize_address`] leaves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    /// The caller's identity for the message (the store's id), echoed in
    /// results and used to link PPAP pairs.
    pub id: Option<String>,
    /// When the message was sent or first seen (UTC).
    pub time: DateTime<Utc>,
    pub direction: Direction,
    /// Header From, else the envelope sender.
    pub sender: Option<String>,
    pub envelope_from: Option<String>,
    pub from_display_name: Option<String>,
    pub reply_to: Option<String>,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub attachments: Vec<AttachmentFacts>,
    pub auth: AuthResults,
}

impl MessageFacts {
    /// Facts of a record at ingest time. `time` falls back to the Unix epoch
    /// only when no source gave any time (then time conditions see 1970).
    pub fn from_record(record: &MessageRecord, org: &OrgDomains) -> MessageFacts {
        MessageFacts {
            id: record.message_id.clone(),
            time: record.sort_time().unwrap_or_default(),
            direction: record.direction(org),
            sender: record.sender().map(str::to_string),
            envelope_from: record.envelope_from.clone(),
            from_display_name: record.from.as_ref().and_then(|m| m.display_name.clone()),
            reply_to: record.reply_to.as_ref().map(|m| m.address.clone()),
            recipients: record.recipients.clone(),
            subject: record.subject.clone(),
            body: record.body_text.clone(),
            attachments: record
                .attachments
                .iter()
                .map(AttachmentFacts::from)
                .collect(),
            auth: record.auth.clone(),
        }
    }

    /// Facts of a stored message (a dry run over history). The stored
    /// message carries only a preview of the body: pass the full text when
    /// body conditions should see it.
    pub fn from_stored(message: &StoredMessage, body: Option<String>) -> MessageFacts {
        let sender = message
            .from
            .as_ref()
            .map(|m| m.address.clone())
            .or_else(|| message.envelope_from.clone());
        MessageFacts {
            id: Some(message.id.to_string()),
            time: message
                .first_seen
                .or(message.date)
                .or_else(|| message.deliveries.iter().map(|d| d.time).min())
                .unwrap_or_default(),
            direction: message.direction,
            sender,
            envelope_from: message.envelope_from.clone(),
            from_display_name: message.from.as_ref().and_then(|m| m.display_name.clone()),
            reply_to: message.reply_to.as_ref().map(|m| m.address.clone()),
            recipients: message.recipients.clone(),
            subject: message.subject.clone(),
            body: body.or_else(|| message.preview.clone()),
            attachments: message
                .attachments
                .iter()
                .map(AttachmentFacts::from)
                .collect(),
            auth: message.auth.clone(),
        }
    }

    /// Distinct recipient addresses, in order of first appearance.
    pub fn recipient_addresses(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.recipients {
            if !r.address.is_empty() && !out.contains(&r.address.as_str()) {
                out.push(&r.address);
            }
        }
        out
    }

    /// Distinct recipients outside our domains.
    pub fn external_recipients<'s>(&'s self, directory: &dyn Directory) -> Vec<&'s str> {
        self.recipient_addresses()
            .into_iter()
            .filter(|a| !directory.is_ours(a))
            .collect()
    }

    /// Blind-copied recipients.
    pub fn bcc(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::Bcc)
    }
}

/// An employee's standing in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmployeeStatus {
    #[default]
    Active,
    /// On leave (休職): still an employee.
    OnLeave,
    /// Has left or resigned (退職): on the automatic `leavers` list.
    Resigned,
}

/// One person, as the directory (社員情報) knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Employee {
    /// The primary (work) address, normalised.
    pub address: String,
    /// Name as written at the company (山田 太郎): compared with display names.
    pub name: Option<String>,
    /// The name in romaji, given name first or family name first, words
    /// separated by spaces (`Taro Yamada`): compared with local parts.
    pub romaji: Option<String>,
    /// Department path from the top (`本社/営業部/第一課`).
    pub department: Option<String>,
    pub status: EmployeeStatus,
    /// Last working day, when known (退職予定日).
    pub leave_date: Option<NaiveDate>,
    /// Private addresses the company knows (registered for emergencies).
    pub private_addresses: Vec<String>,
}

/// Who is who. Implemented by the store over the directory tables; tests use
/// an in-memory fake.
pub trait Directory {
    /// Our own mail domains (for look-alike checks and what counts as external).
    fn our_domains(&self) -> &[String];

    /// The employee an address (primary or alias) belongs to.
    fn employee(&self, address: &str) -> Option<Employee>;

    /// Whether some employee's name, normalised with
    /// [`crate::normalize_person_name`] (NFKC, lower case, spaces removed:
    /// `山田　太郎` = `山田太郎`), equals `name`, which arrives normalised so.
    fn has_employee_named(&self, name: &str) -> bool;

    /// Whether an address is one of ours (our domains or their subdomains).
    fn is_ours(&self, address: &str) -> bool {
        let Some(domain) = domain_of(address) else {
            return !address.is_empty();
        };
        self.our_domains()
            .iter()
            .any(|d| crate::checks::domain_within(domain, d))
    }
}

/// A message seen earlier, as far as the PPAP check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorMessage {
    pub id: String,
    pub time: DateTime<Utc>,
    pub recipients: Vec<String>,
    /// It carried a password-protected archive.
    pub encrypted_archive: bool,
}

/// What happened before. Implemented by the store with an index lookup each.
pub trait History {
    /// Whether anyone of ours sent mail to `domain` before `before`.
    fn has_mailed_domain(&self, domain: &str, before: DateTime<Utc>) -> bool;

    /// Messages from `sender` with a time in `since..until` (exclusive end).
    fn messages_from(
        &self,
        sender: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<PriorMessage>;
}

/// A history that knows nothing: every domain counts as known (first contact
/// never fires) and nothing came before (no PPAP pairs).
/// For callers that only evaluate content conditions.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl History for NoHistory {
    fn has_mailed_domain(&self, _domain: &str, _before: DateTime<Utc>) -> bool {
        true
    }
    fn messages_from(&self, _: &str, _: DateTime<Utc>, _: DateTime<Utc>) -> Vec<PriorMessage> {
        Vec::new()
    }
}
