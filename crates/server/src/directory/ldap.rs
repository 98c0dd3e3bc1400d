//! `[directory.ldap]`: people from Active Directory or another LDAP
//! directory (OpenLDAP, 389 Directory Server).
//!
//! One connection, one simple bind with a read-only service account, one
//! subtree search under `base_dn` with the **paged results control**
//! (RFC 2696; Active Directory returns at most 1,000 entries per search
//! without it, OpenLDAP whatever its size limit allows), then — when groups
//! are read from the groups themselves — one more paged search for the
//! groups. Every attribute is configurable because no two directories
//! agree: the defaults fit Active Directory and OpenLDAP's `inetOrgPerson`
//! both (each takes the first of a list of attributes that an entry has).
//!
//! Why it is shaped this way:
//!
//! - **The sync client of `ldap3`** (it runs its own small runtime on the
//!   calling thread): a sync is a bounded walk that a command or a
//!   scheduled task runs on its own thread, like the pollers.
//! - **Entries are decoded here, not by `ldap3::SearchEntry`**, which
//!   panics on a malformed entry and sorts values into text and binary by
//!   whether they happen to be UTF-8 — a binary `objectGUID` can be valid
//!   UTF-8 by chance. Every value stays bytes until a mapping says what it
//!   is; `objectGUID` becomes the usual
//!   `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form (its first three fields
//!   little-endian, as Windows shows it), other binary ids hex.
//! - **Managers and groups by DN.** `manager` and `memberOf` / `member`
//!   hold DNs; they are compared in a normalised form (attribute types and
//!   values lower-cased, escapes undone), and a manager outside the
//!   searched set is looked up by its DN.
//! - **No password in clear over a network**: `ldap://` to a host other
//!   than loopback needs `starttls = true` (or `ldaps://`), unless the
//!   administrator says otherwise with `allow_cleartext_password`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::PagedResults;
use ldap3::asn1::StructureTag;
use ldap3::{LdapConn, LdapConnSettings, LdapResult, ResultEntry, Scope};
use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
use serde::Deserialize;

use super::{DirectorySyncError, SyncOptions};
use crate::poll::http::{self, Redactor};
use crate::poll::Secret;

const SECTION: &str = "directory.ldap";
const SOURCE: &str = "ldap";

/// Active Directory / LDAP: `[directory.ldap]` in mailtrail.toml.
///
/// ```toml
/// [directory.ldap]
/// url = "ldaps://dc01.example.co.jp"
/// bind_dn = "CN=mailtrail,OU=Service,DC=example,DC=co,DC=jp"
/// bind_password_file = "/etc/mailtrail/ldap-password"
/// base_dn = "OU=本社,DC=example,DC=co,DC=jp"
///
/// [directory.ldap.attributes]
/// kana = ["msDS-PhoneticDisplayName"]
/// hire_date = ["extensionAttribute1"]
/// ```
///
/// The bind account only needs to read users (and groups): in Active
/// Directory an ordinary domain user can; in OpenLDAP give it `read` access
/// to the people and groups and an unlimited (or paged) size limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapDirectoryConfig {
    /// `ldaps://host[:port]` (TLS from the start, port 636) or
    /// `ldap://host[:port]` (port 389; with `starttls = true` for TLS).
    /// Required.
    pub url: String,
    /// Upgrade an `ldap://` connection to TLS with StartTLS before binding.
    /// Default false.
    pub starttls: bool,
    /// The DN to bind as (Active Directory also accepts
    /// `mailtrail@example.co.jp`). Empty binds anonymously.
    pub bind_dn: String,
    /// The bind password. Prefer `bind_password_file`.
    pub bind_password: Option<Secret>,
    /// A file holding the bind password (surrounding white space is
    /// ignored). Relative paths are relative to the configuration file.
    pub bind_password_file: Option<PathBuf>,
    /// Where the people are searched (the whole subtree). Required.
    pub base_dn: String,
    /// Which entries are people. Default `(&(objectClass=person)(mail=*))`,
    /// which fits Active Directory and OpenLDAP alike; Active Directory
    /// users only (no contacts): `(&(objectCategory=person)(objectClass=user)(mail=*))`.
    pub filter: String,
    /// Entries per page of the paged results control. Default 500
    /// (Active Directory's MaxPageSize is 1,000).
    pub page_size: u32,
    /// Seconds to wait for a connection and for each answer. Default 60.
    pub timeout_secs: u64,
    /// A PEM file of CA certificates to trust besides the system's (the
    /// CA of the domain controllers' certificates).
    pub ca_file: Option<PathBuf>,
    /// Allow sending the bind password over `ldap://` without StartTLS to
    /// a host other than loopback. Default false: anyone on the network
    /// could read it.
    pub allow_cleartext_password: bool,
    /// Where group membership comes from: `member_of` (the people's
    /// `memberOf` attribute, Active Directory and OpenLDAP's memberof
    /// overlay; the default), `search` (the groups' `member` attribute:
    /// a second search with `group_filter`) or `none`.
    pub groups: GroupSource,
    /// Where groups are searched with `groups = "search"`. Default `base_dn`.
    pub group_base_dn: Option<String>,
    /// Which entries are groups with `groups = "search"`. Default
    /// `(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))`.
    pub group_filter: String,
    /// The attribute of a group that lists its members' DNs with
    /// `groups = "search"`. Default `member` (`uniqueMember` for
    /// `groupOfUniqueNames`).
    pub group_member_attribute: String,
    /// Which attributes hold what (see [`LdapAttributes`]).
    pub attributes: LdapAttributes,
}

/// Where an LDAP person's groups come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    /// The person's `memberOf` (see [`LdapAttributes::member_of`]).
    #[default]
    MemberOf,
    /// A search for groups listing the person in `group_member_attribute`.
    Search,
    /// No groups.
    None,
}

/// `[directory.ldap.attributes]`: which LDAP attributes hold what. Each
/// list is tried in order and the first attribute an entry has is used
/// (attribute names are compared without regard to case; a language tag
/// is part of the name: `displayName;lang-en`). A group or a name is the
/// value of the first component of its DN (`CN=営業部,OU=…` → `営業部`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapAttributes {
    /// The person's stable id. Default `["objectGUID", "entryUUID", "uid"]`
    /// (`entryUUID` is OpenLDAP's); `["employeeNumber", "objectGUID"]`
    /// keys people by their employee number where every entry has one.
    pub id: Vec<String>,
    /// The name as written at the company. Default `["displayName", "cn"]`.
    pub name: Vec<String>,
    /// The name's reading in kana. Default `["msDS-PhoneticDisplayName"]`.
    pub kana: Vec<String>,
    /// The name in Latin letters. Default none; e.g.
    /// `["displayName;lang-en"]` or `["displayNamePrintable"]`.
    pub romaji: Vec<String>,
    /// Mail addresses; every value is used. Default `["mail"]`.
    pub mail: Vec<String>,
    /// Exchange-style addresses: `SMTP:` marks the primary address and
    /// `smtp:` the aliases; other types (`X500:`, `SIP:`) are ignored.
    /// Default `["proxyAddresses"]`.
    pub proxy_addresses: Vec<String>,
    /// More aliases, plain addresses. Default none; e.g.
    /// `["mailAlternateAddress"]`.
    pub aliases: Vec<String>,
    /// Private addresses the company knows. Default none; e.g.
    /// `["otherMailbox"]`.
    pub private_addresses: Vec<String>,
    /// The department, `/`-separated from the top if it is a path.
    /// Default `["department"]`.
    pub department: Vec<String>,
    /// Without a department attribute, take the department from the
    /// entry's DN: its `OU`s from the top (`CN=…,OU=第一課,OU=営業部,OU=本社,DC=…`
    /// → `本社/営業部/第一課`). Default true.
    pub department_from_dn: bool,
    /// The manager's DN. Default `manager`.
    pub manager: String,
    /// An employment status as spreadsheets write it (`在籍`, `休職`,
    /// `退職`, `on-leave`, …). Default none; e.g. `["employeeType"]`.
    pub status: Vec<String>,
    /// Active Directory's account flags: bit 0x2 (ACCOUNTDISABLE) makes
    /// the person `disabled` unless `status` says otherwise. Default
    /// `userAccountControl`; empty to ignore.
    pub user_account_control: String,
    /// The hire date (`2024-04-01`, `2024/04/01`, `20240401`, a
    /// generalized time, or a file time like `accountExpires`). Default none.
    pub hire_date: Vec<String>,
    /// The leave date, same formats. Default none; e.g. `["accountExpires"]`.
    pub leave_date: Vec<String>,
    /// The groups' DNs with `groups = "member_of"`. Default `memberOf`.
    pub member_of: String,
}

impl Default for LdapDirectoryConfig {
    fn default() -> Self {
        LdapDirectoryConfig {
            url: String::new(),
            starttls: false,
            bind_dn: String::new(),
            bind_password: None,
            bind_password_file: None,
            base_dn: String::new(),
            filter: "(&(objectClass=person)(mail=*))".into(),
            page_size: 500,
            timeout_secs: 60,
            ca_file: None,
            allow_cleartext_password: false,
            groups: GroupSource::MemberOf,
            group_base_dn: None,
            group_filter:
                "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
                    .into(),
            group_member_attribute: "member".into(),
            attributes: LdapAttributes::default(),
        }
    }
}

impl Default for LdapAttributes {
    fn default() -> Self {
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        LdapAttributes {
            id: list(&["objectGUID", "entryUUID", "uid"]),
            name: list(&["displayName", "cn"]),
            kana: list(&["msDS-PhoneticDisplayName"]),
            romaji: Vec::new(),
            mail: list(&["mail"]),
            proxy_addresses: list(&["proxyAddresses"]),
            aliases: Vec::new(),
            private_addresses: Vec::new(),
            department: list(&["department"]),
            department_from_dn: true,
            manager: "manager".into(),
            status: Vec::new(),
            user_account_control: "userAccountControl".into(),
            hire_date: Vec::new(),
            leave_date: Vec::new(),
            member_of: "memberOf".into(),
        }
    }
}

/// Fetch every person of the directory (see the module doc), with the
/// default [`SyncOptions`].
pub fn sync_ldap(config: &LdapDirectoryConfig) -> Result<DirectorySnapshot, DirectorySyncError> {
    sync_ldap_with(config, &SyncOptions::default())
}

/// Fetch every person of the directory, reporting progress and logging
/// through `options`.
pub fn sync_ldap_with(
    config: &LdapDirectoryConfig,
    options: &SyncOptions,
) -> Result<DirectorySnapshot, DirectorySyncError> {
    let ready = Ready::check(config)?;
    let mut session = Session::open(ready)?;
    let result = session.sync(options);
    session.close();
    result
}

/// The settings checked, the password read.
struct Ready<'a> {
    config: &'a LdapDirectoryConfig,
    url: String,
    password: Secret,
    timeout: Duration,
    redactor: Redactor,
}

impl<'a> Ready<'a> {
    fn check(config: &'a LdapDirectoryConfig) -> Result<Ready<'a>, DirectorySyncError> {
        let err = |reason: String| DirectorySyncError::config(SECTION, reason);
        let url = config.url.trim().trim_end_matches('/').to_string();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(err(format!(
                "url = {:?} is not an LDAP URL (ldaps://host or ldap://host)",
                config.url
            )));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "ldap" && scheme != "ldaps" {
            return Err(err(format!(
                "url = {:?}: use ldaps:// or ldap:// (with starttls = true)",
                config.url
            )));
        }
        let host = host_of(rest);
        if host.is_empty() {
            return Err(err(format!("url = {:?} names no host", config.url)));
        }
        if scheme == "ldaps" && config.starttls {
            return Err(err(
                "starttls = true is for ldap:// URLs; ldaps:// is TLS already".into(),
            ));
        }
        if config.base_dn.trim().is_empty() {
            return Err(err(
                "base_dn is required: where the people are (e.g. DC=example,DC=co,DC=jp)".into(),
            ));
        }
        if config.filter.trim().is_empty() {
            return Err(err("filter is empty".into()));
        }
        if !(1..=100_000).contains(&config.page_size) {
            return Err(err("page_size must be 1 to 100000".into()));
        }
        if config.timeout_secs == 0 {
            return Err(err("timeout_secs must be at least 1".into()));
        }
        if config.attributes.id.is_empty() {
            return Err(err("attributes.id is empty: name the attribute that identifies a person (objectGUID, entryUUID, employeeNumber)".into()));
        }
        if config.groups == GroupSource::Search && config.group_member_attribute.trim().is_empty() {
            return Err(err("group_member_attribute is empty".into()));
        }
        let password = if config.bind_dn.trim().is_empty() {
            if config.bind_password.is_some() || config.bind_password_file.is_some() {
                return Err(err("a bind password is set but bind_dn is empty".into()));
            }
            Secret::default()
        } else {
            // An empty password would be an unauthenticated bind, which
            // servers accept as anonymous: refused by read_secret.
            http::read_secret(
                SECTION,
                "bind_password",
                "bind password",
                config.bind_password.as_ref(),
                config.bind_password_file.as_ref(),
            )
            .map_err(|e| DirectorySyncError::api(SOURCE, e))?
        };
        let tls = scheme == "ldaps" || config.starttls;
        if !tls && !password.is_empty() && !is_loopback(&host) && !config.allow_cleartext_password {
            return Err(err(format!(
                "url = {:?} would send the bind password in clear: use ldaps:// or starttls = true (or, knowingly, allow_cleartext_password = true)",
                config.url
            )));
        }
        if let Some(ca) = &config.ca_file {
            std::fs::metadata(ca)
                .map_err(|e| err(format!("cannot read ca_file {}: {e}", ca.display())))?;
        }
        let redactor = Redactor::default();
        redactor.add(password.expose());
        Ok(Ready {
            config,
            url,
            password,
            timeout: Duration::from_secs(config.timeout_secs),
            redactor,
        })
    }

    fn tls(&self) -> bool {
        self.url.to_ascii_lowercase().starts_with("ldaps://") || self.config.starttls
    }

    /// rustls with the ring provider and the system's roots plus `ca_file`.
    fn tls_config(&self) -> Result<tokio_rustls::rustls::ClientConfig, DirectorySyncError> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        let certs = http::root_cert_ders(SECTION, self.config.ca_file.as_ref())
            .map_err(|e| DirectorySyncError::api(SOURCE, e))?;
        for cert in certs {
            // A certificate the store cannot use is skipped, as in the
            // HTTP clients.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(DirectorySyncError::config(
                SECTION,
                "no CA certificates found: install the system's CA bundle (Debian: ca-certificates) or name one with ca_file",
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DirectorySyncError::config(SECTION, format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

/// The host of `host[:port][/…]` (brackets of an IPv6 address removed).
fn host_of(rest: &str) -> String {
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    authority
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An LDAP result code's name.
fn code_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    }
}

/// `invalidCredentials (49): the server's text`.
fn result_text(result: &LdapResult, redactor: &Redactor) -> String {
    let text = redactor.clean(result.text.trim());
    let mut out = format!("{} ({})", code_name(result.rc), result.rc);
    if !text.is_empty() {
        out.push_str(": ");
        out.push_str(&text);
    }
    out
}

/// What to check when a bind is refused.
fn bind_hint(result: &LdapResult) -> &'static str {
    let text = result.text.to_ascii_lowercase();
    // Active Directory's sub-codes ("…, data 52e, v4563").
    if text.contains("data 52e") {
        "wrong password (or bind_dn names no user: Active Directory accepts a DN or user@domain)"
    } else if text.contains("data 525") {
        "bind_dn names no user"
    } else if text.contains("data 533") {
        "the bind account is disabled"
    } else if text.contains("data 532") || text.contains("data 773") {
        "the bind account's password has expired"
    } else if text.contains("data 701") {
        "the bind account has expired"
    } else if text.contains("data 775") {
        "the bind account is locked out"
    } else {
        match result.rc {
            49 => "check bind_dn and the password",
            8 | 13 => "the server wants TLS: use ldaps:// or starttls = true",
            48 | 53 => "the server refuses this kind of bind (anonymous or cleartext)",
            _ => "",
        }
    }
}

/// What to check when a search fails.
fn search_hint(rc: u32) -> &'static str {
    match rc {
        32 => "check base_dn (it does not exist on this server)",
        50 => "the bind account may not read these entries",
        4 | 11 => "the server limits how many entries one search returns: give the bind account a higher size limit (OpenLDAP: limits … size.prtotal=unlimited)",
        3 => "the server's time limit for a search was reached",
        12 => "the server does not support the paged results control",
        87 => "check filter (it is not a valid LDAP filter)",
        _ => "",
    }
}

fn with_hint(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" — {hint}")
    }
}

/// One entry: its DN and every attribute's values as bytes.
struct Entry {
    dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// Decode a search result entry; `None` when it is not well-formed.
    fn decode(tag: StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs = Vec::new();
        for attribute in parts.next()?.expect_constructed()? {
            let mut attribute = attribute.expect_constructed()?.into_iter();
            let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?;
            let values = attribute
                .next()?
                .expect_constructed()?
                .into_iter()
                .map(StructureTag::expect_primitive)
                .collect::<Option<Vec<_>>>()?;
            attrs.push((name, values));
        }
        Some(Entry { dn, attrs })
    }

    fn values(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.attrs
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.as_slice())
    }

    fn texts(&self, name: &str) -> Vec<String> {
        self.values(name)
            .unwrap_or_default()
            .iter()
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The values of `name`, also when the server sends them in ranges
    /// (`member;range=0-1499`), and where the next range starts if this
    /// one is not the last (`…;range=1500-*` is).
    fn ranged(&self, name: &str) -> (Vec<String>, Option<u64>) {
        let prefix = format!("{};range=", name.to_ascii_lowercase());
        for (n, values) in &self.attrs {
            let lower = n.to_ascii_lowercase();
            let Some(range) = lower.strip_prefix(&prefix) else {
                continue;
            };
            let texts = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            let next = range
                .split_once('-')
                .and_then(|(_, hi)| hi.parse::<u64>().ok())
                .map(|hi| hi + 1);
            return (texts, next);
        }
        (self.texts(name), None)
    }

    /// The first value of the first attribute of `names` that has one.
    fn first(&self, names: &[String]) -> Option<String> {
        names.iter().find_map(|n| self.texts(n).into_iter().next())
    }

    /// The person's id from the first id attribute the entry has.
    fn id(&self, names: &[String]) -> Option<String> {
        names.iter().find_map(|name| {
            let value = self.values(name)?.first()?;
            Some(binary_id(name, value)).filter(|s| !s.trim().is_empty())
        })
    }
}

/// An id value as text: `objectGUID` in its usual form, other binary
/// values in hex, text as it is.
fn binary_id(attribute: &str, value: &[u8]) -> String {
    if attribute.eq_ignore_ascii_case("objectGUID") && value.len() == 16 {
        return guid(value);
    }
    match std::str::from_utf8(value) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => value.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A GUID's 16 bytes as Windows writes them: the first three fields are
/// little-endian.
pub fn guid(b: &[u8]) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let rev = |bytes: &[u8]| {
        bytes
            .iter()
            .rev()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    if b.len() != 16 {
        return hex(b);
    }
    format!(
        "{}-{}-{}-{}-{}",
        rev(&b[0..4]),
        rev(&b[4..6]),
        rev(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

/// A DN's components, leaf first, as (attribute type in lower case, value
/// with escapes undone). `\,`, `\+`, `\"`… and `\XX` hex escapes (UTF-8
/// bytes) are understood; `,` `;` and `+` separate components.
pub fn dn_components(dn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = dn.as_bytes();
    let mut current: Vec<u8> = Vec::new();
    let mut kind: Option<String> = None;
    let mut i = 0;
    let mut push = |kind: &mut Option<String>, current: &mut Vec<u8>| {
        let value = String::from_utf8_lossy(current).trim().to_string();
        if let Some(k) = kind.take() {
            out.push((k, value));
        }
        current.clear();
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' if i + 1 < bytes.len() => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        current.push(byte);
                        i += 3;
                    }
                    None => {
                        current.push(bytes[i + 1]);
                        i += 2;
                    }
                }
                continue;
            }
            b'=' if kind.is_none() => {
                kind = Some(
                    String::from_utf8_lossy(&current)
                        .trim()
                        .to_ascii_lowercase(),
                );
                current.clear();
            }
            b',' | b';' | b'+' => push(&mut kind, &mut current),
            _ => current.push(b),
        }
        i += 1;
    }
    push(&mut kind, &mut current);
    out
}

/// A DN in a form that compares equal however a server wrote it.
fn dn_key(dn: &str) -> String {
    dn_components(dn)
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of a DN's first component (a group's or person's name).
fn dn_name(dn: &str) -> Option<String> {
    dn_components(dn)
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The `OU`s of a DN from the top, `/`-separated.
fn dn_department(dn: &str) -> Option<String> {
    let ous: Vec<String> = dn_components(dn)
        .into_iter()
        .filter(|(k, _)| k == "ou" || k == "2.5.4.11")
        .map(|(_, v)| v.replace('/', "／"))
        .collect();
    (!ous.is_empty()).then(|| ous.into_iter().rev().collect::<Vec<_>>().join("/"))
}

/// Addresses of an entry: the `SMTP:` primary first, then `mail`, then the
/// `smtp:` aliases and the alias attributes.
fn addresses(entry: &Entry, a: &LdapAttributes) -> Vec<String> {
    let mut primary = Vec::new();
    let mut secondary = Vec::new();
    for name in &a.proxy_addresses {
        for value in entry.texts(name) {
            if let Some(address) = value.strip_prefix("SMTP:") {
                primary.push(address.to_string());
            } else if value
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("smtp:"))
            {
                secondary.push(value[5..].to_string());
            }
        }
    }
    let mut out = primary;
    for name in &a.mail {
        out.extend(entry.texts(name));
    }
    out.extend(secondary);
    for name in &a.aliases {
        out.extend(entry.texts(name));
    }
    out
}

/// A bound connection.
struct Session<'a> {
    ready: Ready<'a>,
    conn: LdapConn,
}

impl<'a> Session<'a> {
    fn open(ready: Ready<'a>) -> Result<Session<'a>, DirectorySyncError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(ready.timeout)
            .set_starttls(ready.config.starttls);
        if ready.tls() {
            settings = settings.set_config(Arc::new(ready.tls_config()?));
        }
        let connect_error = |e: ldap3::LdapError| DirectorySyncError::Connect {
            url: ready.url.clone(),
            reason: ready.redactor.clean(&e.to_string()),
        };
        let mut conn = LdapConn::with_settings(settings, &ready.url).map_err(connect_error)?;
        if !ready.config.bind_dn.trim().is_empty() {
            let result = conn
                .with_timeout(ready.timeout)
                .simple_bind(ready.config.bind_dn.trim(), ready.password.expose())
                .map_err(connect_error)?;
            if result.rc != 0 {
                return Err(DirectorySyncError::Bind {
                    url: ready.url.clone(),
                    bind_dn: ready.config.bind_dn.trim().to_string(),
                    reason: result_text(&result, &ready.redactor),
                    hint: with_hint(bind_hint(&result)),
                });
            }
        }
        Ok(Session { ready, conn })
    }

    fn close(mut self) {
        // The server notices a dropped connection too; unbind is courtesy.
        let _ = self.conn.unbind();
    }

    fn search_error(&self, base: &str, reason: String, rc: u32) -> DirectorySyncError {
        DirectorySyncError::Search {
            url: self.ready.url.clone(),
            base: base.to_string(),
            reason,
            hint: with_hint(search_hint(rc)),
        }
    }

    /// A paged subtree search; `each` gets every entry.
    fn paged(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        options: &SyncOptions,
        mut each: impl FnMut(Entry),
    ) -> Result<usize, DirectorySyncError> {
        let page = i32::try_from(self.ready.config.page_size).unwrap_or(i32::MAX);
        let timeout = self.ready.timeout;
        let redactor = self.ready.redactor.clone();
        let transport = |e: ldap3::LdapError| redactor.clean(&e.to_string());
        let mut stream = match self.conn.with_timeout(timeout).streaming_search_with(
            PagedResults::new(page),
            base,
            Scope::Subtree,
            filter,
            attrs,
        ) {
            Ok(s) => s,
            Err(e) => {
                let (reason, rc) = ldap_error(&e, &redactor);
                let reason = if rc == 0 { transport(e) } else { reason };
                return Err(self.search_error(base, reason, rc));
            }
        };
        let mut n = 0usize;
        let mut malformed = 0usize;
        let failure = loop {
            if options.stopped() {
                return Err(DirectorySyncError::Stopped);
            }
            match stream.next() {
                Ok(Some(entry)) => {
                    let tag = entry.0;
                    // Referrals (Active Directory's other naming contexts)
                    // and intermediate responses carry no entry.
                    if tag.id != 4 {
                        continue;
                    }
                    match Entry::decode(tag) {
                        Some(entry) => {
                            n += 1;
                            each(entry);
                        }
                        None => malformed += 1,
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if malformed > 0 {
            (options.log)(&format!(
                "ldap: {malformed} malformed entr{} under {base:?} skipped",
                if malformed == 1 { "y" } else { "ies" }
            ));
        }
        if let Some(e) = failure {
            // The stream is dropped unfinished: the connection is not
            // used again.
            drop(stream);
            let (reason, rc) = ldap_error(&e, &redactor);
            return Err(self.search_error(base, reason, rc));
        }
        let result = stream.result();
        if result.rc != 0 {
            return Err(self.search_error(
                base,
                result_text(&result, &self.ready.redactor),
                result.rc,
            ));
        }
        Ok(n)
    }

    fn sync(&mut self, options: &SyncOptions) -> Result<DirectorySnapshot, DirectorySyncError> {
        let config = self.ready.config;
        let a = &config.attributes;
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for list in [
            &a.id,
            &a.name,
            &a.kana,
            &a.romaji,
            &a.mail,
            &a.proxy_addresses,
            &a.aliases,
            &a.private_addresses,
            &a.department,
            &a.status,
            &a.hire_date,
            &a.leave_date,
        ] {
            wanted.extend(list.iter().map(|s| s.trim().to_string()));
        }
        wanted.insert(a.manager.trim().to_string());
        wanted.insert(a.user_account_control.trim().to_string());
        if config.groups == GroupSource::MemberOf {
            wanted.insert(a.member_of.trim().to_string());
        }
        wanted.retain(|s| !s.is_empty());
        let attrs: Vec<String> = wanted.into_iter().collect();

        let base = config.base_dn.trim().to_string();
        let mut people: Vec<(String, Person, Option<String>)> = Vec::new();
        let mut no_id = 0usize;
        let page = config.page_size as usize;
        self.paged(
            &base,
            config.filter.trim(),
            attrs,
            options,
            |entry| match person(&entry, a, config.groups) {
                Some((person, manager)) => {
                    people.push((dn_key(&entry.dn), person, manager));
                    if people.len().is_multiple_of(page) {
                        options.progress(SOURCE, people.len());
                    }
                }
                None => no_id += 1,
            },
        )?;
        if no_id > 0 {
            (options.log)(&format!(
                "ldap: {no_id} entr{} without any of the id attributes {:?} skipped",
                if no_id == 1 { "y" } else { "ies" },
                a.id
            ));
        }
        options.progress(SOURCE, people.len());

        let mut by_dn: HashMap<String, usize> = HashMap::new();
        for (i, (key, _, _)) in people.iter().enumerate() {
            by_dn.insert(key.clone(), i);
        }

        if config.groups == GroupSource::Search {
            let group_base = config
                .group_base_dn
                .as_deref()
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .unwrap_or(&base)
                .to_string();
            let member = config.group_member_attribute.trim().to_string();
            let mut memberships: Vec<(usize, String)> = Vec::new();
            let mut ranged: Vec<(String, String, u64)> = Vec::new();
            let mut add = |name: &str, members: Vec<String>| {
                for m in members {
                    if let Some(&i) = by_dn.get(&dn_key(&m)) {
                        memberships.push((i, name.to_string()));
                    }
                }
            };
            self.paged(
                &group_base,
                config.group_filter.trim(),
                vec![member.clone()],
                options,
                |group| {
                    let Some(name) = dn_name(&group.dn) else {
                        return;
                    };
                    let (members, more) = group.ranged(&member);
                    add(&name, members);
                    if let Some(next) = more {
                        ranged.push((group.dn.clone(), name, next));
                    }
                },
            )?;
            // Active Directory hands out large member lists in ranges
            // (`member;range=0-1499`): the rest is asked for group by group.
            for (dn, name, mut next) in ranged {
                loop {
                    let attr = format!("{member};range={next}-*");
                    let Some(entry) = self.base_entry(&dn, vec![attr])? else {
                        break;
                    };
                    let (members, more) = entry.ranged(&member);
                    add(&name, members);
                    match more {
                        Some(n) if n > next => next = n,
                        _ => break,
                    }
                }
            }
            for (i, name) in memberships {
                people[i].1.groups.push(name);
            }
        }

        // Managers: by DN among the people, else looked up.
        let mut looked_up: HashMap<String, Option<String>> = HashMap::new();
        let mut manager_ids = Vec::with_capacity(people.len());
        for (_, _, manager) in &people {
            let id = match manager {
                None => None,
                Some(dn) => {
                    let key = dn_key(dn);
                    match by_dn.get(&key) {
                        Some(&i) => Some(people[i].1.id.clone()),
                        None => {
                            if !looked_up.contains_key(&key) {
                                let found = self.lookup_id(dn, options)?;
                                looked_up.insert(key.clone(), found);
                            }
                            looked_up.get(&key).cloned().flatten()
                        }
                    }
                }
            };
            manager_ids.push(id);
        }
        let snapshot = DirectorySnapshot {
            people: people
                .into_iter()
                .zip(manager_ids)
                .map(|((_, mut p, _), manager)| {
                    p.manager = manager;
                    p
                })
                .collect(),
            devices: Vec::new(),
        };
        Ok(super::finish(snapshot))
    }

    /// The entry at `dn` with `attrs`; `None` when there is none.
    fn base_entry(
        &mut self,
        dn: &str,
        attrs: Vec<String>,
    ) -> Result<Option<Entry>, DirectorySyncError> {
        let timeout = self.ready.timeout;
        let result =
            self.conn
                .with_timeout(timeout)
                .search(dn, Scope::Base, "(objectClass=*)", attrs);
        match result {
            Ok(ldap3::SearchResult(entries, res)) if res.rc == 0 => Ok(entries
                .into_iter()
                .find_map(|entry: ResultEntry| Entry::decode(entry.0))),
            Ok(_) => Ok(None),
            Err(e) => {
                let (reason, rc) = ldap_error(&e, &self.ready.redactor);
                Err(self.search_error(dn, reason, rc))
            }
        }
    }

    /// The id of the entry at `dn` (a manager outside the searched set).
    fn lookup_id(
        &mut self,
        dn: &str,
        options: &SyncOptions,
    ) -> Result<Option<String>, DirectorySyncError> {
        let ids = self.ready.config.attributes.id.clone();
        let found = self.base_entry(dn, ids.clone())?.and_then(|e| e.id(&ids));
        if found.is_none() {
            (options.log)(&format!("ldap: manager {dn:?} was not found; left empty"));
        }
        Ok(found)
    }
}

/// An `ldap3` error as text and its LDAP result code (0 for transport errors).
fn ldap_error(e: &ldap3::LdapError, redactor: &Redactor) -> (String, u32) {
    match e {
        ldap3::LdapError::LdapResult { result } => (result_text(result, redactor), result.rc),
        other => (redactor.clean(&other.to_string()), 0),
    }
}

/// A person from an entry, and the manager's DN; `None` without an id.
fn person(
    entry: &Entry,
    a: &LdapAttributes,
    groups: GroupSource,
) -> Option<(Person, Option<String>)> {
    let id = entry.id(&a.id)?;
    let disabled = entry
        .texts(&a.user_account_control)
        .first()
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|flags| flags & 0x2 != 0);
    let stated = entry
        .first(&a.status)
        .and_then(|s| EmploymentStatus::parse(&s))
        .filter(|s| *s != EmploymentStatus::Active);
    let status = stated.unwrap_or(if disabled {
        EmploymentStatus::Disabled
    } else {
        EmploymentStatus::Active
    });
    let department = entry.first(&a.department).or_else(|| {
        a.department_from_dn
            .then(|| dn_department(&entry.dn))
            .flatten()
    });
    let groups = match groups {
        GroupSource::MemberOf => entry
            .texts(&a.member_of)
            .iter()
            .filter_map(|dn| dn_name(dn))
            .collect(),
        _ => Vec::new(),
    };
    let person = Person {
        id,
        name: entry.first(&a.name),
        kana: entry.first(&a.kana),
        romaji: entry.first(&a.romaji),
        addresses: addresses(entry, a),
        department,
        manager: None,
        status,
        hire_date: entry
            .first(&a.hire_date)
            .and_then(|d| super::parse_date(&d)),
        leave_date: entry
            .first(&a.leave_date)
            .and_then(|d| super::parse_date(&d)),
        private_addresses: a
            .private_addresses
            .iter()
            .flat_map(|n| entry.texts(n))
            .collect(),
        groups,
    };
    let manager = entry.texts(&a.manager).into_iter().next();
    Some((person, manager))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_are_split_unescaped_and_compared_loosely() {
        let dn = r"CN=Yamada\, Taro,OU=第一課,OU=営業部, OU=本社,DC=example,DC=co,DC=jp";
        let parts = dn_components(dn);
        assert_eq!(parts[0], ("cn".to_string(), "Yamada, Taro".to_string()));
        assert_eq!(parts.len(), 7);
        assert_eq!(dn_department(dn).as_deref(), Some("本社/営業部/第一課"));
        assert_eq!(
            dn_key(r"cn=yamada\2c taro,ou=第一課,ou=営業部,ou=本社,dc=EXAMPLE,dc=co,dc=jp"),
            dn_key(dn)
        );
        // Hex escapes of UTF-8 bytes (how some servers write non-ASCII).
        assert_eq!(
            dn_name(r"CN=\E5\96\B6\E6\A5\AD\E9\83\A8,OU=Groups").as_deref(),
            Some("営業部")
        );
        assert_eq!(dn_department("CN=x,DC=example,DC=jp"), None);
    }

    #[test]
    fn ranged_member_lists() {
        let entry = |name: &str| Entry {
            dn: "CN=g".into(),
            attrs: vec![(name.to_string(), vec![b"CN=a".to_vec(), b"CN=b".to_vec()])],
        };
        assert_eq!(
            entry("member;range=0-1499").ranged("member"),
            (vec!["CN=a".to_string(), "CN=b".to_string()], Some(1500))
        );
        assert_eq!(entry("Member;Range=1500-*").ranged("member").1, None);
        assert_eq!(entry("member").ranged("member").1, None);
        assert_eq!(entry("member").ranged("member").0.len(), 2);
        assert_eq!(entry("uniqueMember").ranged("member").0.len(), 0);
    }

    #[test]
    fn object_guids_read_as_windows_writes_them() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(guid(&bytes), "03020100-0504-0706-0809-0a0b0c0d0e0f");
        assert_eq!(
            binary_id("objectGUID", &bytes),
            "03020100-0504-0706-0809-0a0b0c0d0e0f"
        );
        assert_eq!(binary_id("entryUUID", b"5a1e0b9c-0000"), "5a1e0b9c-0000");
        assert_eq!(binary_id("objectSid", &[1, 5, 0]), "010500");
    }

    #[test]
    fn cleartext_passwords_stay_on_loopback() {
        let dir = std::env::temp_dir().join(format!("mt-ldap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "secret-pw\n").unwrap();
        let mut c = LdapDirectoryConfig {
            url: "ldap://dc01.example.co.jp".into(),
            bind_dn: "cn=reader".into(),
            bind_password_file: Some(pw.clone()),
            base_dn: "dc=example".into(),
            ..LdapDirectoryConfig::default()
        };
        let e = Ready::check(&c).err().unwrap().to_string();
        assert!(
            e.contains("in clear") && e.contains("[directory.ldap]"),
            "{e}"
        );
        c.starttls = true;
        assert!(Ready::check(&c).is_ok());
        c.starttls = false;
        c.url = "ldap://127.0.0.1:3890".into();
        assert!(Ready::check(&c).is_ok());
        c.url = "ldaps://dc01.example.co.jp".into();
        assert!(Ready::check(&c).is_ok());
        c.url = "http://dc01".into();
        assert!(Ready::check(&c).is_err());
        std::fs::write(&pw, "  \n").unwrap();
        c.url = "ldaps://dc01".into();
        let e = Ready::check(&c).err().unwrap().to_string();
        assert!(e.contains("bind password is empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
