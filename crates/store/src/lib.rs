//! mailtrail storage: the [`Store`] trait and its embedded SQLite backend.
//!
//! All SQL of mailtrail lives in this crate, behind [`Store`], so that the
//! PostgreSQL backend (DESIGN.md §3) can follow without touching callers. The
//! pieces every backend shares are backend-neutral modules here:
//!
//! - [`tokenize`]: the one tokenizer (NFKC, case folding, CJK bigrams) whose
//!   output every backend's full-text index is fed;
//! - [`query`]: the query language, parsed to an AST that each backend
//!   compiles to its own SQL;
//! - [`blob`]: the content-addressed blob store for raw messages and
//!   attachments (BLAKE3 names, zstd, identical attachments kept once).
//!
//! Records are merged here, not in the decoders: a record finds its message by
//! Message-ID and by a source-local key (e.g. `postfix@mx1:4F9D1`) seen
//! recently enough (queue ids are reused over time) whose message does not
//! carry a different Message-ID; it is folded in with [`MessageRecord::merge`],
//! and a content-less partial view found by key is folded into the message
//! found by Message-ID. Every write is idempotent, which is what makes
//! re-imports and restarts after `kill -9` safe: the same input produces the
//! same rows, never new ones.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use mailtrail_model::{
    Attachment, AuthResults, Delivery, DeliveryStatus, Direction, Mailbox, MessageRecord,
    Recipient, Reject,
};
use serde::Serialize;

pub mod alerts;
pub mod blob;
pub mod console;
pub mod directory;
pub mod query;
pub mod risk;
pub mod sqlite;
pub mod tokenize;

pub use sqlite::SqliteStore;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] rusqlite::Error),
    #[error("blob store {path}")]
    Blob {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {hash} is damaged: {reason}")]
    Corrupt { hash: String, reason: String },
    #[error("the data directory {path} was written by a newer mailtrail (schema {found}, this build knows up to {known})")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no mailtrail data in {path}: import something first (`mailtrail import PATH`) or name the data directory with --data-dir")]
    Missing { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

/// A page of results: newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 50,
            offset: 0,
        }
    }
}

/// A message as stored, with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    pub message_id: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub first_seen: Option<DateTime<Utc>>,
    pub direction: Direction,
    pub envelope_from: Option<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub size: Option<u64>,
    pub attachments: Vec<Attachment>,
    pub auth: AuthResults,
    pub client_ip: Option<String>,
    pub systems: Vec<String>,
    pub deliveries: Vec<Delivery>,
    /// BLAKE3 of the raw message, when content was captured.
    pub content_hash: Option<String>,
    /// The first characters of the body text, when content was captured.
    pub preview: Option<String>,
}

/// What one batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    pub new_messages: u64,
    pub updated_messages: u64,
    /// Records that added nothing (already stored).
    pub unchanged: u64,
    /// Newly stored deliveries, by status.
    pub new_deliveries: Vec<(DeliveryStatus, u64)>,
    /// Rejects newly quarantined (a reject already quarantined is not counted again).
    pub new_rejects: u64,
}

impl BatchOutcome {
    pub fn add(&mut self, other: &BatchOutcome) {
        self.new_messages += other.new_messages;
        self.updated_messages += other.updated_messages;
        self.unchanged += other.unchanged;
        self.new_rejects += other.new_rejects;
        for (status, n) in &other.new_deliveries {
            add_count(&mut self.new_deliveries, *status, *n);
        }
    }
}

pub(crate) fn add_count(list: &mut Vec<(DeliveryStatus, u64)>, status: DeliveryStatus, n: u64) {
    match list.iter_mut().find(|(s, _)| *s == status) {
        Some((_, c)) => *c += n,
        None => {
            list.push((status, n));
            list.sort();
        }
    }
}

/// Totals for `mailtrail stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub messages: u64,
    pub deliveries: Vec<(DeliveryStatus, u64)>,
    pub by_direction: Vec<(Direction, u64)>,
    pub by_system: Vec<(String, u64)>,
    pub rejects: u64,
    pub blobs: u64,
}

/// A quarantined reject as listed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineEntry {
    pub source: String,
    pub position: String,
    pub code: String,
    pub reason: String,
    pub file: String,
}

/// The dashboard's figures over a period of local days ([`Store::dashboard`]).
///
/// Every figure is a number of messages (not of recipients or deliveries),
/// counted over the message time the query language's `after:`/`before:`
/// use, so that each one equals the count of the search it links to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dashboard {
    /// One entry per day of the period, in order, with the messages of that
    /// day by direction (directions without mail left out).
    pub days: Vec<(NaiveDate, Vec<(Direction, u64)>)>,
    /// Messages of the whole period by direction.
    pub by_direction: Vec<(Direction, u64)>,
    pub total: u64,
    /// Sender (header From, else envelope sender) and their messages.
    pub top_senders: Vec<(String, u64)>,
    /// Recipient (To, Cc, Bcc, envelope or delivery) and the messages to them.
    pub top_recipients: Vec<(String, u64)>,
    /// External domains among senders and recipients, and the messages
    /// exchanged with each.
    pub top_domains: Vec<(String, u64)>,
    pub largest_attachments: Vec<LargeAttachment>,
    /// Messages with at least one delivery of each failure status
    /// ([`FAILURE_STATUSES`]).
    pub failures: Vec<(DeliveryStatus, u64)>,
    /// Recipients whose delivery failed for good, and in how many messages.
    pub failing_recipients: Vec<(String, u64)>,
    /// The domains of those recipients.
    pub failing_domains: Vec<(String, u64)>,
}

/// One attachment among the period's largest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LargeAttachment {
    pub message: i64,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub blake3: String,
}

/// The statuses the dashboard counts as delivery failures, worst first.
pub const FAILURE_STATUSES: &[DeliveryStatus] = &[
    DeliveryStatus::Bounced,
    DeliveryStatus::Rejected,
    DeliveryStatus::Failed,
    DeliveryStatus::Expired,
    DeliveryStatus::Deferred,
];

/// Of [`FAILURE_STATUSES`], those that are final (not `deferred`): what
/// "failing recipients" are counted by.
pub const FINAL_FAILURES: &[DeliveryStatus] = &[
    DeliveryStatus::Bounced,
    DeliveryStatus::Rejected,
    DeliveryStatus::Failed,
    DeliveryStatus::Expired,
];

/// The storage contract every backend fulfils.
pub trait Store {
    /// Store a batch of records and rejects atomically: after a crash either
    /// the whole batch is there (searchable) or none of it is.
    fn write_batch(
        &mut self,
        records: Vec<MessageRecord>,
        rejects: Vec<Reject>,
    ) -> Result<BatchOutcome, StoreError>;

    /// A value the store keeps about itself (e.g. `timezone`, the zone its
    /// zone-less log stamps were read in).
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Make everything written so far durable (after batches written with
    /// durability off, e.g. at the end of an import).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Exact number of messages matching a query.
    fn count(&self, query: &query::Expr) -> Result<u64, StoreError>;

    /// Messages matching a query, newest first, stable order (time, then id).
    fn search(&self, query: &query::Expr, page: Page) -> Result<Vec<StoredMessage>, StoreError>;

    /// [`Store::search`] when the caller has just counted the matches (a
    /// results page shows the count anyway): the backend may use the count
    /// to choose its plan instead of estimating it again.
    fn search_counted(
        &self,
        query: &query::Expr,
        page: Page,
        count: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let _ = count;
        self.search(query, page)
    }

    /// The exact count and one page of a query, as a results page shows
    /// them. Both come from one view of the store where the backend can
    /// give it: a message committed in between cannot make the page
    /// disagree with its count, and work the two share is done once.
    fn count_and_search(
        &self,
        query: &query::Expr,
        page: Page,
    ) -> Result<(u64, Vec<StoredMessage>), StoreError> {
        let count = self.count(query)?;
        Ok((count, self.search_counted(query, page, count)?))
    }

    /// One message by internal id.
    /// The numbers of every message `query` matches, ascending: for work
    /// that visits all of them (a rule's retro-hunt), without paging.
    fn matching_ids(&self, query: &query::Expr) -> Result<Vec<i64>, StoreError>;

    fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError>;

    /// Several messages by number, in the order asked, missing ones left
    /// out (a backend loads them together: a retro-hunt reads millions).
    fn messages(&self, ids: &[i64]) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(m) = self.message(id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// One message by its (normalised) Message-ID.
    fn message_by_message_id(&self, message_id: &str) -> Result<Option<StoredMessage>, StoreError>;

    /// The original bytes of a captured message.
    fn raw_message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError>;

    fn stats(&self) -> Result<Stats, StoreError>;

    /// Messages carrying an attachment whose decoded content has this BLAKE3
    /// hash (lower-case hex), newest first, and how many there are: "who else
    /// got this file?". The query language has no operator for it (a hash is
    /// not text to tokenise), so it is a question of its own.
    fn attachment_messages(
        &self,
        blake3: &str,
        page: Page,
    ) -> Result<(u64, Vec<StoredMessage>), StoreError>;

    /// Every system name messages were seen by (`journal`, `postfix@mx1`),
    /// sorted: the values `system:` can take. Reads every message row; callers
    /// showing it on every page keep it for a while.
    fn systems(&self) -> Result<Vec<String>, StoreError>;

    fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineEntry>, StoreError>;

    /// The dashboard over the local days `from` to `to` (both included) in
    /// `tz`, with `top` rows in each list. External domains are those
    /// outside the organisation domains the store was opened with.
    fn dashboard(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        tz: chrono_tz::Tz,
        top: u32,
    ) -> Result<Dashboard, StoreError>;
}
