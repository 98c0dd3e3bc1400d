//! Alerts: what the monitoring rules raised, what administrators did about
//! them, and the notifications still to deliver.
//!
//! Why it is shaped this way:
//! - **A queue in the store, not in memory.** The transaction that stores a
//!   message (or adds facts to one: a Bcc recipient from a journal report,
//!   the body after the log line) also queues it for the rules
//!   (`eval_pending`). The evaluator takes messages from the queue and, in
//!   one transaction, records their alerts, queues the alerts'
//!   notifications and removes them from the queue
//!   ([`AlertStore::record_evaluations`]). A crash at any moment therefore
//!   loses no evaluation and sends no notification twice for one alert.
//! - **One alert per rule and message.** `UNIQUE (rule, message)`: a message
//!   evaluated again — because a later source added a fact — refreshes the
//!   alert's matches instead of raising a second one, and notifies nobody
//!   again.
//! - **Notifications are rows with a schedule**: pending with the time of
//!   the next attempt, delivered, or dead (given up on after the retries,
//!   listed in the console and retried by hand). Delivery itself is
//!   `mailtrail-notify`'s; this keeps only the bookkeeping.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Page, StoreError};

/// Where an alert stands (対応状況).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertState {
    /// 未対応: raised, nobody has looked yet.
    Open,
    /// 対応中: someone is on it.
    Acknowledged,
    /// 解決済: dealt with.
    Resolved,
    /// 誤検知: the rule matched, but it was nothing.
    FalsePositive,
}

impl AlertState {
    pub const ALL: [AlertState; 4] = [
        AlertState::Open,
        AlertState::Acknowledged,
        AlertState::Resolved,
        AlertState::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
            AlertState::FalsePositive => "false-positive",
        }
    }

    pub fn parse(text: &str) -> Option<AlertState> {
        AlertState::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim().to_ascii_lowercase())
    }

    /// Resolved and false positives are closed; the inbox shows the others.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertState::Resolved | AlertState::FalsePositive)
    }
}

/// An alert to record, as evaluation produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub rule: String,
    pub rule_name: Option<String>,
    pub message: i64,
    /// `low`, `medium`, `high`.
    pub severity: String,
    /// The matches: condition, location, text, span, detail (JSON array).
    pub hits: serde_json::Value,
    pub assignee: Option<String>,
    /// Notification channels to tell when the alert is new.
    pub channels: Vec<String>,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAlert {
    pub id: i64,
    pub rule: String,
    pub rule_name: Option<String>,
    pub message: i64,
    pub severity: String,
    pub hits: serde_json::Value,
    pub state: AlertState,
    pub assignee: Option<String>,
    pub raised: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One thing done to an alert (state change, assignment, comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEvent {
    pub time: DateTime<Utc>,
    pub user: String,
    pub state: Option<AlertState>,
    pub assignee: Option<String>,
    pub comment: Option<String>,
}

/// Which alerts to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub rule: Option<String>,
    pub state: Option<AlertState>,
    /// Only open and acknowledged (the inbox).
    pub unresolved: bool,
    pub message: Option<i64>,
    pub page: Page,
}

/// What recording one alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub id: i64,
    /// First time this rule matched this message (notifications queued).
    pub new: bool,
    /// An existing alert whose matches changed.
    pub refreshed: bool,
}

/// A change an administrator makes to an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertUpdate {
    pub state: Option<AlertState>,
    /// `Some(None)` takes the assignment away.
    pub assignee: Option<Option<String>>,
    pub comment: Option<String>,
}

/// Delivery state of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Pending,
    Delivered,
    /// Given up after the retries: the dead-letter list.
    Dead,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Dead => "dead",
        }
    }

    fn parse(text: &str) -> NotificationState {
        match text {
            "delivered" => NotificationState::Delivered,
            "dead" => NotificationState::Dead,
            _ => NotificationState::Pending,
        }
    }
}

/// A notification row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub alert: i64,
    pub channel: String,
    pub state: NotificationState,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    pub done: Option<DateTime<Utc>>,
}

pub(crate) fn notification_state(text: &str) -> NotificationState {
    NotificationState::parse(text)
}

/// A message someone sent, as the PPAP check asks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub recipients: Vec<String>,
    /// It carried a password-protected archive.
    pub encrypted_archive: bool,
}

/// The alert part of a store, and what the rules ask about the past.
pub trait AlertStore {
    /// When mail from us first went to `domain` (outbound messages), if ever.
    fn first_contact(&self, domain: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Messages from `sender` (header or envelope) with a time in
    /// `since..until`, oldest first.
    fn sent_by(
        &self,
        sender: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SentMessage>, StoreError>;

    /// Messages waiting for the rules, oldest first.
    fn pending_evaluations(&self, limit: u32) -> Result<Vec<i64>, StoreError>;

    /// How many messages wait for the rules.
    fn pending_evaluation_count(&self) -> Result<u64, StoreError>;

    /// In one transaction: record `alerts` (new ones with their
    /// notifications queued; existing ones refreshed when their matches
    /// differ) and take `evaluated` off the queue.
    fn record_evaluations(
        &mut self,
        evaluated: &[i64],
        alerts: &[NewAlert],
    ) -> Result<Vec<Raised>, StoreError>;

    /// Alerts matching `filter`, newest first, and how many match in all.
    fn alerts(&self, filter: &AlertFilter) -> Result<(u64, Vec<StoredAlert>), StoreError>;

    /// One alert and its history, oldest first.
    fn alert(&self, id: i64) -> Result<Option<(StoredAlert, Vec<AlertEvent>)>, StoreError>;

    /// Change an alert's state or assignee or comment on it, as `user`.
    /// `None` when there is no such alert.
    fn update_alert(
        &mut self,
        id: i64,
        user: &str,
        update: &AlertUpdate,
    ) -> Result<Option<StoredAlert>, StoreError>;

    /// Pending notifications due at `now`, oldest first.
    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// A notification reached its channel.
    fn notification_delivered(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// A delivery attempt failed: try again at `retry_at`, or, when `None`,
    /// give up (dead letter).
    fn notification_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// Notifications in a state (all when `None`), newest first.
    fn notifications(
        &self,
        state: Option<NotificationState>,
        page: Page,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Put a dead notification back in the queue, due now. False when it is
    /// not dead (or does not exist).
    fn retry_notification(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
}
