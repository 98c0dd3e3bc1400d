//! Directory sync: who the people behind the addresses are, fetched from
//! Active Directory / LDAP ([`ldap`]), Microsoft Entra ID ([`entra`]) and
//! Google Workspace ([`google`]) — `[directory]` in mailtrail.toml.
//!
//! Why it is shaped this way:
//!
//! - **One result shape.** Every source returns a complete, normalised
//!   [`DirectorySnapshot`] (the same one a CSV import produces), so the
//!   store applies a sync exactly like an import, and each client is tested
//!   by comparing snapshots.
//! - **Blocking, one call per sync.** A sync is a bounded walk over pages
//!   that a command or a scheduled task runs on its own thread; the HTTP
//!   sources reuse the pollers' blocking client ([`crate::poll::http`]):
//!   the same TLS roots and proxy, retries that honour `Retry-After`,
//!   cached tokens renewed on a 401, and errors without secrets.
//! - **Stable ids within a source.** A person is keyed by what the source
//!   never changes (`objectGUID` / `entryUUID`, the Entra object id, the
//!   Google user id) unless the configuration asks for the employee number;
//!   a manager is stored as the manager's id in the same source, resolved
//!   after the whole list is fetched.
//! - **Typed configuration with its documentation.** The doc comments of
//!   the configuration structs are the user documentation of the keys.
//! - **Progress** goes to an optional callback (`fetched N people`), log
//!   lines (retries, skipped entries) to the same kind of log function the
//!   pollers use.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::NaiveDate;
use mailtrail_model::directory::DirectorySnapshot;
use serde::Deserialize;

use crate::poll::http::{HttpClient, HttpOptions};
use crate::poll::{Log, PollError, RetryPolicy};

pub mod entra;
pub mod google;
pub mod ldap;

pub use entra::{sync_entra, sync_entra_with, EntraDirectoryConfig, EntraIdSource};
pub use google::{
    sync_google, sync_google_with, GoogleDepartment, GoogleDirectoryConfig, GoogleIdSource,
};
pub use ldap::{sync_ldap, sync_ldap_with, GroupSource, LdapAttributes, LdapDirectoryConfig};

/// `[directory]` in mailtrail.toml: where the directory comes from. Each
/// configured source is synced on its own and makes its own snapshot.
///
/// ```toml
/// [directory.ldap]
/// url = "ldaps://dc01.example.co.jp"
/// bind_dn = "CN=mailtrail,OU=Service,DC=example,DC=co,DC=jp"
/// bind_password_file = "/etc/mailtrail/ldap-password"
/// base_dn = "DC=example,DC=co,DC=jp"
///
/// [directory.entra]
/// tenant_id = "0e1dddce-0000-4000-8000-000000000001"
/// client_id = "5f0c9a4e-0000-4000-8000-000000000002"
/// client_secret_file = "/etc/mailtrail/entra-directory-secret"
///
/// [directory.google]
/// service_account_key_file = "/etc/mailtrail/google-service-account.json"
/// delegated_admin = "admin@example.co.jp"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorySyncConfig {
    /// Active Directory or another LDAP directory (OpenLDAP, 389-ds).
    pub ldap: Option<LdapDirectoryConfig>,
    /// Microsoft Entra ID (Azure AD) through Microsoft Graph.
    pub entra: Option<EntraDirectoryConfig>,
    /// Google Workspace through the Admin SDK Directory API.
    pub google: Option<GoogleDirectoryConfig>,
}

impl DirectorySyncConfig {
    /// Make the relative file names of every section relative to `base`
    /// (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut std::path::PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(l) = &mut self.ldap {
            l.bind_password_file.as_mut().map(resolve);
            l.ca_file.as_mut().map(resolve);
        }
        if let Some(e) = &mut self.entra {
            e.client_secret_file.as_mut().map(resolve);
            e.ca_file.as_mut().map(resolve);
        }
        if let Some(g) = &mut self.google {
            resolve(&mut g.service_account_key_file);
            g.ca_file.as_mut().map(resolve);
        }
    }
}

/// Why a directory sync failed. Messages say which source, which server or
/// endpoint and what to check; they never contain a password, secret or
/// token.
#[derive(Debug, thiserror::Error)]
pub enum DirectorySyncError {
    /// A setting is missing or wrong (`[directory.ldap] …`).
    #[error("[{section}] {reason}")]
    Config {
        section: &'static str,
        reason: String,
    },
    /// The LDAP server could not be reached (or TLS failed).
    #[error("cannot connect to the LDAP server {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The LDAP server refused the bind.
    #[error("LDAP bind as {bind_dn:?} at {url} failed: {reason}{hint}")]
    Bind {
        url: String,
        bind_dn: String,
        reason: String,
        /// ` — ` and what to check, or empty.
        hint: String,
    },
    /// An LDAP search failed.
    #[error("LDAP search of {base:?} at {url} failed: {reason}{hint}")]
    Search {
        url: String,
        base: String,
        reason: String,
        /// ` — ` and what to check, or empty.
        hint: String,
    },
    /// An HTTP API (Graph, the Directory API) or its token endpoint failed.
    #[error("{source_name} directory sync: {error}")]
    Api {
        source_name: &'static str,
        error: PollError,
    },
    /// The sync was asked to stop.
    #[error("stopped")]
    Stopped,
}

impl DirectorySyncError {
    fn config(section: &'static str, reason: impl Into<String>) -> DirectorySyncError {
        DirectorySyncError::Config {
            section,
            reason: reason.into(),
        }
    }

    /// A poll-layer error of an HTTP source.
    fn api(source_name: &'static str, error: PollError) -> DirectorySyncError {
        match error {
            PollError::Config { section, reason } => DirectorySyncError::Config { section, reason },
            PollError::Stopped => DirectorySyncError::Stopped,
            error => DirectorySyncError::Api { source_name, error },
        }
    }
}

/// How far a sync is: sent to [`SyncOptions::progress`] after every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    /// `ldap`, `entra` or `google`.
    pub source: &'static str,
    /// People fetched so far.
    pub people: usize,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(SyncProgress) + Send + Sync>;

/// How a sync runs: where it logs, how it retries, when it stops.
#[derive(Clone)]
pub struct SyncOptions {
    /// Log lines (retries, skipped entries), one per call.
    pub log: Log,
    /// Called after every page with the number of people fetched so far.
    pub progress: Option<ProgressFn>,
    /// Retries of the HTTP sources (see [`RetryPolicy`]).
    pub retry: RetryPolicy,
    /// Set to stop a running sync (checked between requests and pages).
    pub stop: Arc<AtomicBool>,
}

impl Default for SyncOptions {
    /// Log to standard error, no progress callback, the pollers' retries.
    fn default() -> Self {
        SyncOptions {
            log: Arc::new(|line: &str| eprintln!("directory {line}")),
            progress: None,
            retry: RetryPolicy::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl SyncOptions {
    fn progress(&self, source: &'static str, people: usize) {
        if let Some(p) = &self.progress {
            p(SyncProgress { source, people });
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The pollers' HTTP client for an HTTP source, retrying, stopping and
    /// logging as these options say.
    fn http_client(
        &self,
        name: &'static str,
        section: &'static str,
        http: &HttpOptions,
    ) -> Result<HttpClient, PollError> {
        HttpClient::standalone(
            name,
            section,
            http,
            self.retry.clone(),
            self.stop.clone(),
            self.log.clone(),
        )
    }
}

/// Finish a snapshot: normalised, people in id order (sources list them in
/// no stable order).
fn finish(mut snapshot: DirectorySnapshot) -> DirectorySnapshot {
    snapshot.normalize();
    snapshot.people.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot
}

/// A date as directories write it: `2024-04-01`, `2024/4/1`, `20240401`,
/// an LDAP generalized time (`20240401000000Z`, `20240401090000.0+0900`),
/// an ISO timestamp (`2024-04-01T00:00:00Z`: its date part), or an Active
/// Directory file time (100 ns units since 1601, as `accountExpires`; `0`
/// and the largest value mean "never"). `None` for anything else.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) && t.len() > 8 {
        // A file time.
        let ticks: i64 = t.parse().ok()?;
        if ticks <= 0 || ticks == i64::MAX {
            return None;
        }
        let unix = ticks / 10_000_000 - 11_644_473_600;
        return chrono::DateTime::from_timestamp(unix, 0).map(|d| d.date_naive());
    }
    if t.len() >= 8 && t.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        // YYYYMMDD, or a generalized time starting with it.
        return NaiveDate::parse_from_str(&t[..8], "%Y%m%d").ok();
    }
    let day = t.split(['T', ' ']).next().unwrap_or(t);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%Y/%m/%d"))
        .ok()
}

/// A configured text, trimmed; `None` when it is unset or blank.
fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A text property of a JSON object, trimmed; `None` when missing, not a
/// string, or blank.
fn text(value: &serde_json::Value, name: &str) -> Option<String> {
    value
        .get(name)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The text at a configured dotted path (see [`json_path`]), if one is
/// configured.
fn path_text(value: &serde_json::Value, path: &Option<String>) -> Option<String> {
    path.as_deref()
        .and_then(|p| json_path(value, p))
        .and_then(json_text)
}

/// A value inside a JSON document by a dotted path
/// (`onPremisesExtensionAttributes.extensionAttribute1`,
/// `customSchemas.社員情報.kana`); arrays are looked through to their first
/// element that has the rest of the path.
fn json_path<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut parts = path.splitn(2, '.');
    let head = parts.next()?;
    let rest = parts.next();
    let next = match value {
        serde_json::Value::Array(items) => {
            return items.iter().find_map(|item| json_path(item, path));
        }
        _ => value.get(head)?,
    };
    match rest {
        None => (!next.is_null()).then_some(next),
        Some(rest) => json_path(next, rest),
    }
}

/// A JSON value as text: strings as they are, numbers and booleans written.
fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Array(items) => items.iter().find_map(json_text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_directories_write_them() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        assert_eq!(parse_date("2024-04-01"), d(2024, 4, 1));
        assert_eq!(parse_date(" 2024/4/1 "), d(2024, 4, 1));
        assert_eq!(parse_date("20240401"), d(2024, 4, 1));
        assert_eq!(parse_date("20240401000000Z"), d(2024, 4, 1));
        assert_eq!(parse_date("20240401090000.0+0900"), d(2024, 4, 1));
        assert_eq!(parse_date("2026-03-31T15:00:00Z"), d(2026, 3, 31));
        // accountExpires of 2026-04-01T00:00:00Z.
        assert_eq!(parse_date("134194752000000000"), d(2026, 4, 1));
        assert_eq!(parse_date("0"), None);
        assert_eq!(parse_date("9223372036854775807"), None);
        assert_eq!(parse_date("soon"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn json_paths() {
        let v = serde_json::json!({
            "a": {"b": "x"},
            "list": [{"k": 1}, {"k": 2, "m": "y"}],
            "n": null
        });
        assert_eq!(
            json_path(&v, "a.b").and_then(json_text).as_deref(),
            Some("x")
        );
        assert_eq!(
            json_path(&v, "list.m").and_then(json_text).as_deref(),
            Some("y")
        );
        assert_eq!(
            json_path(&v, "list.k").and_then(json_text).as_deref(),
            Some("1")
        );
        assert_eq!(json_path(&v, "n"), None);
        assert_eq!(json_path(&v, "a.c"), None);
    }
}
