//! What the risk view (`mailtrail risk`, `mailtrail_policy::risk`) reads
//! from the store: the mail people of the organisation sent, one message
//! at a time, and which outside domains an address had mailed before.
//!
//! Why it is shaped this way:
//! - **One pass, streamed.** The view looks at every message sent in a
//!   period and the baseline before it (two months by default, a million
//!   messages in a large organisation). [`RiskStore::visit_sent`] runs one
//!   query in time order and hands each message to a callback, with the
//!   per-message facts (outside recipients, attachment bytes, unresolved
//!   alerts) already gathered by index lookups, so nothing of the period
//!   is held in memory by the store and the caller keeps only its
//!   per-person, per-day counters.
//! - **Facts, not judgements.** The store says who sent what to whom and
//!   when; what counts as after hours, private or unusual is the policy
//!   crate's (`mailtrail_policy::risk`), which is tested without a
//!   database.
//! - **First contact per sender** ([`RiskStore::domains_mailed_before`]) is
//!   asked only for the people who sent something in the window, through
//!   the sender indexes, so "a domain this person never wrote to before"
//!   does not cost a scan of all history.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::StoreError;

/// One message sent by someone of the organisation (direction `outbound`
/// or `internal`), as the risk view needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentMessage {
    /// mailtrail's number of the message.
    pub id: i64,
    /// The message time (what searches sort and filter by).
    pub time: DateTime<Utc>,
    /// The header From address, if known.
    pub from: Option<String>,
    /// The envelope sender, if known.
    pub envelope_from: Option<String>,
    /// Distinct recipient addresses outside the organisation domains,
    /// sorted; empty for mail that stayed inside.
    pub external_recipients: Vec<String>,
    /// Total decoded size of the attachments, in bytes.
    pub attachment_bytes: u64,
    /// Attachments that are encrypted (password-protected ZIP, PDF, Office).
    pub encrypted_attachments: u32,
    /// Alerts on this message that are open or acknowledged.
    pub unresolved_alerts: u32,
}

impl SentMessage {
    /// The addresses the message may be attributed to, header From first.
    pub fn senders(&self) -> impl Iterator<Item = &str> {
        self.from.as_deref().into_iter().chain(
            self.envelope_from
                .as_deref()
                .filter(|e| Some(*e) != self.from.as_deref()),
        )
    }
}

/// The part of a store the risk view reads.
pub trait RiskStore {
    /// Every message sent by the organisation (`outbound` or `internal`)
    /// with a message time in `[from, to)`, in time order (then number),
    /// handed to `visit` one at a time. An error from `visit` stops the
    /// pass and is returned.
    fn visit_sent(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut dyn FnMut(SentMessage) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The domains (lower case) of outside recipients that mail from any of
    /// `senders` (header From or envelope sender) went to before `before`.
    fn domains_mailed_before(
        &self,
        senders: &[String],
        before: DateTime<Utc>,
    ) -> Result<BTreeSet<String>, StoreError>;
}
