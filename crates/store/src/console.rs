//! What the web console keeps besides mail: accounts, sign-in sessions and
//! the audit log of every look at mail.
//!
//! Why it is shaped this way:
//! - **A trait of its own** ([`ConsoleStore`]), beside [`crate::Store`]: the
//!   mail store is written by one writer thread in group commits, while
//!   accounts, sessions and audit entries are written by web requests one at
//!   a time on their own connection. A PostgreSQL backend implements both.
//! - **Sessions are kept by the hash of their token**: the cookie's value
//!   never reaches the database, so a copy of the data directory signs no
//!   one in.
//! - **API tokens likewise** ([`ApiToken`]): kept by hash, shown once.
//! - **The audit log is a hash chain**: every entry's `chain` is BLAKE3 over
//!   the previous entry's `chain` and this entry's fields. Removing or
//!   editing an entry breaks every `chain` after it, which
//!   [`ConsoleStore::verify_audit_chain`] finds — tamper evidence without a
//!   second system. What a chain alone cannot show is the removal of the
//!   newest entries, or a chain recomputed by someone with write access to
//!   the database; sending each entry's `chain` on to a log the console's
//!   administrators cannot rewrite (syslog, a SIEM) anchors it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Page, StoreError};

/// What an account may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: search, read messages and attachments, downloads, the audit log.
    Administrator,
    /// Metadata search only: no message content, no downloads.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "administrator" | "admin" => Some(Role::Administrator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// A console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// argon2 PHC string; the password itself is never stored.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created: DateTime<Utc>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// BLAKE3 of the cookie's token, hex.
    pub token_hash: String,
    pub user: String,
    /// The token every form of this session must carry back.
    pub csrf: String,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub ip: Option<String>,
}

/// A bearer token for scripts using the JSON API (`mailtrail token create`).
/// It acts with its own role and is audited under `token:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// What the token is for, unique: `siem-export`, `nightly-report`.
    pub name: String,
    /// BLAKE3 of the token, hex: like a session's, the token itself is
    /// shown once when created and never stored.
    pub token_hash: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    /// Last request made with it (minute resolution).
    pub last_used: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked: Option<DateTime<Utc>>,
}

/// One audited action, as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub time: DateTime<Utc>,
    pub user: String,
    pub ip: Option<String>,
    /// `search`, `view`, `download-raw`, `download-attachment`, `export`, `sign-in`, ...
    pub action: String,
    /// The message id, query or file concerned.
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// One audited action, as it is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub user: String,
    pub ip: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub action: Option<String>,
    /// Part of the target or detail (a message id, a word of a query).
    pub text: Option<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

/// Where the audit chain first fails to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub id: i64,
    pub reason: String,
}

pub trait ConsoleStore {
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Create the account or replace its hash, role and state.
    fn put_user(&mut self, user: &User) -> Result<(), StoreError>;

    fn create_session(&mut self, session: &Session) -> Result<(), StoreError>;
    /// The session with this token hash, if it has not expired at `now`.
    fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>, StoreError>;
    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError>;
    /// Remove expired sessions and every session of a user (sign-out
    /// everywhere, a disabled account); returns how many went.
    fn delete_sessions(
        &mut self,
        expired_at: DateTime<Utc>,
        of_user: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// Store a new token; `false` (and nothing changed) when a token of that
    /// name exists, revoked or not — names stay unique in the audit log.
    fn create_api_token(&mut self, token: &ApiToken) -> Result<bool, StoreError>;
    /// Every token, revoked ones included, by name.
    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// The live (not revoked) token with this hash; notes its use at `now`.
    fn api_token(
        &mut self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Revoke a live token; `false` when there is none of that name.
    fn revoke_api_token(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Append to the audit log (in its own transaction: an audited action is
    /// recorded before its answer is sent).
    fn audit(&mut self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        self.audit_all(std::slice::from_ref(entry))
    }
    /// Append several entries, in this order, in one transaction: the
    /// actions of requests that arrived together share one commit (and one
    /// `fsync`) instead of queueing for one each.
    fn audit_all(&mut self, entries: &[NewAuditEntry]) -> Result<(), StoreError>;
    /// Newest first.
    fn audit_log(&self, filter: &AuditFilter, page: Page) -> Result<Vec<AuditEntry>, StoreError>;
    /// Recompute the chain over every entry: `None` when intact.
    fn verify_audit_chain(&self) -> Result<Option<ChainBreak>, StoreError>;
}

/// The chain value of an entry that follows `previous`.
pub fn chain_hash(previous: &str, id: i64, entry: &NewAuditEntry) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        previous,
        &id.to_string(),
        &entry.time.timestamp_micros().to_string(),
        &entry.user,
        entry.ip.as_deref().unwrap_or(""),
        &entry.action,
        entry.target.as_deref().unwrap_or(""),
        entry.detail.as_deref().unwrap_or(""),
    ] {
        // Length-prefixed so that no two different entries hash alike.
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex().to_string()
}
