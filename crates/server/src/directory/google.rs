//! `[directory.google]`: people from Google Workspace through the Admin SDK
//! Directory API.
//!
//! `GET {directory_url}/admin/directory/v1/users?customer=my_customer
//! &maxResults=500&projection=full&pageToken=…`, followed through
//! `nextPageToken`. Authentication is the Gmail poller's: a service account
//! with domain-wide delegation signs a JWT for `delegated_admin`
//! ([`crate::poll::gmail::JwtToken`]), here with the scope
//! `https://www.googleapis.com/auth/admin.directory.user.readonly`; requests
//! go through the pollers' client (429 / 503 retried after `Retry-After`,
//! a 401 fetches a new token and retries once).
//!
//! Mapping: `primaryEmail` first, then `aliases` and `nonEditableAliases`,
//! then `emails[]` of type `work`; `emails[]` of type `home` are private
//! addresses. The name is `name.fullName` (or family and given name). The
//! department is the primary `organizations[].department`, or the
//! organisational unit path (`/本社/営業部` → `本社/営業部`) — see
//! [`GoogleDepartment`]. The manager is the user whose address is the
//! `relations[]` entry of type `manager`. `suspended` or `archived` users
//! are `disabled`. The employee number is the `externalIds[]` entry of type
//! `organization`. Dates and kana, which Workspace has no fields for, come
//! from custom schema fields named by dotted paths
//! (`customSchemas.社員情報.入社日`).

use std::collections::HashMap;
use std::path::PathBuf;

use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
use serde::Deserialize;
use serde_json::Value;

use super::{non_blank, parse_date, path_text, text, DirectorySyncError, SyncOptions};
use crate::poll::gmail::{JwtToken, ServiceAccount};
use crate::poll::http::{self, HttpOptions, PollError, TokenCache};

/// The only scope asked for: reading users.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";

const SECTION: &str = "directory.google";
const SOURCE: &str = "google";

/// Google Workspace: `[directory.google]` in mailtrail.toml.
///
/// ```toml
/// [directory.google]
/// service_account_key_file = "/etc/mailtrail/google-service-account.json"
/// delegated_admin = "admin@example.co.jp"
/// ```
///
/// The service account (it can be the Gmail poller's) needs domain-wide
/// delegation for the scope
/// `https://www.googleapis.com/auth/admin.directory.user.readonly` (Google
/// Admin console → Security → Access and data control → API controls →
/// Domain-wide delegation), the Admin SDK API enabled in its project, and
/// `delegated_admin` must be allowed to read users.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleDirectoryConfig {
    /// The service account's JSON key file. Relative paths are relative to
    /// the configuration file. Required.
    pub service_account_key_file: PathBuf,
    /// The administrator the service account acts for. Required.
    pub delegated_admin: String,
    /// The account whose users are read: `my_customer` (the default: the
    /// delegated administrator's) or a customer ID (`C01abcde2`).
    pub customer: String,
    /// Read one domain's users only (`example.co.jp`) instead of the whole
    /// customer's. Default none.
    pub domain: Option<String>,
    /// A Directory API search query, e.g. `isSuspended=false` or
    /// `orgUnitPath='/本社'`. Default: every user.
    pub query: Option<String>,
    /// Users per page (`maxResults`, 1–500). Default 500.
    pub page_size: u32,
    /// What identifies a person: `user_id` (Google's user id; the default)
    /// or `employee_id` (the `externalIds` entry of type `organization`;
    /// the user id for users without one).
    pub id: GoogleIdSource,
    /// Where the department comes from (see [`GoogleDepartment`]). Default
    /// `organization`.
    pub department: GoogleDepartment,
    /// A dotted path to the name's reading in kana, usually a custom
    /// schema field (`customSchemas.社員情報.kana`). Default none.
    pub kana: Option<String>,
    /// A dotted path to the name in Latin letters. Default none.
    pub romaji: Option<String>,
    /// A dotted path to the hire date. Default none.
    pub hire_date: Option<String>,
    /// A dotted path to the leave date. Default none.
    pub leave_date: Option<String>,
    /// Default `https://admin.googleapis.com`.
    pub directory_url: String,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy. Default: the `HTTPS_PROXY` / `ALL_PROXY` variables.
    pub proxy: Option<String>,
}

/// What identifies a Google person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoogleIdSource {
    #[default]
    UserId,
    EmployeeId,
}

/// Where a Google person's department comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoogleDepartment {
    /// `organizations[].department` (the primary entry first), else the
    /// organisational unit path.
    #[default]
    Organization,
    /// The organisational unit path only (`/本社/営業部`).
    OrgUnit,
}

impl Default for GoogleDirectoryConfig {
    fn default() -> Self {
        GoogleDirectoryConfig {
            service_account_key_file: PathBuf::new(),
            delegated_admin: String::new(),
            customer: "my_customer".into(),
            domain: None,
            query: None,
            page_size: 500,
            id: GoogleIdSource::UserId,
            department: GoogleDepartment::Organization,
            kana: None,
            romaji: None,
            hire_date: None,
            leave_date: None,
            directory_url: "https://admin.googleapis.com".into(),
            ca_file: None,
            proxy: None,
        }
    }
}

/// Fetch every user (see the module doc), with the default [`SyncOptions`].
pub fn sync_google(
    config: &GoogleDirectoryConfig,
) -> Result<DirectorySnapshot, DirectorySyncError> {
    sync_google_with(config, &SyncOptions::default())
}

/// Fetch every user, reporting progress and logging through `options`.
pub fn sync_google_with(
    config: &GoogleDirectoryConfig,
    options: &SyncOptions,
) -> Result<DirectorySnapshot, DirectorySyncError> {
    let api = |e: PollError| DirectorySyncError::api(SOURCE, e);
    let account = ServiceAccount::load(SECTION, &config.service_account_key_file).map_err(api)?;
    let admin = config.delegated_admin.trim().to_string();
    if mailtrail_model::normalize_address(&admin).is_none() {
        return Err(DirectorySyncError::config(
            SECTION,
            "delegated_admin is required: the address of an administrator allowed to read users",
        ));
    }
    let base =
        http::check_base_url(SECTION, "directory_url", &config.directory_url).map_err(api)?;
    if !(1..=500).contains(&config.page_size) {
        return Err(DirectorySyncError::config(
            SECTION,
            "page_size must be 1 to 500",
        ));
    }
    let customer = config.customer.trim();
    if customer.is_empty() && config.domain.is_none() {
        return Err(DirectorySyncError::config(
            SECTION,
            "customer is empty (my_customer reads the administrator's account)",
        ));
    }
    let http_options = HttpOptions {
        ca_file: config.ca_file.clone(),
        proxy: config.proxy.clone(),
        https: base.starts_with("https://") || account.token_uri.starts_with("https://"),
    };
    let client = options
        .http_client("directory-google", SECTION, &http_options)
        .map_err(api)?;
    let mut tokens = TokenCache::new(Box::new(JwtToken {
        account,
        subject: admin,
        scope: SCOPE.to_string(),
        section: SECTION,
        hint: token_hint,
    }));

    let mut first = format!(
        "{base}/admin/directory/v1/users?maxResults={}&projection=full",
        config.page_size
    );
    match non_blank(&config.domain) {
        Some(domain) => first.push_str(&format!("&domain={}", http::encode(domain))),
        None => first.push_str(&format!("&customer={}", http::encode(customer))),
    }
    if let Some(q) = non_blank(&config.query) {
        first.push_str(&format!("&query={}", http::encode(q)));
    }

    let mut people: Vec<Person> = Vec::new();
    let mut managers: Vec<Option<String>> = Vec::new();
    let mut skipped = 0usize;
    let mut page_token: Option<String> = None;
    loop {
        if options.stopped() {
            return Err(DirectorySyncError::Stopped);
        }
        let url = match &page_token {
            Some(t) => format!("{first}&pageToken={}", http::encode(t)),
            None => first.clone(),
        };
        let (page, _) = client.get_json(&url, &mut tokens, &hint).map_err(api)?;
        // A customer without users answers without a `users` list.
        if let Some(users) = page.get("users") {
            let Value::Array(users) = users else {
                return Err(api(PollError::Response {
                    endpoint: http::endpoint_name("GET", &url),
                    reason: "\"users\" is not a list".into(),
                }));
            };
            for user in users {
                match person(user, config) {
                    Some((p, manager)) => {
                        people.push(p);
                        managers.push(manager);
                    }
                    None => skipped += 1,
                }
            }
        }
        options.progress(SOURCE, people.len());
        page_token = page
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if page_token.is_none() {
            break;
        }
    }
    if skipped > 0 {
        (options.log)(&format!("google: {skipped} user(s) without an id skipped"));
    }
    // Managers are named by address: any address of a person.
    let mut by_address: HashMap<String, usize> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        for a in &p.addresses {
            if let Some(a) = mailtrail_model::normalize_address(a) {
                by_address.entry(a).or_insert(i);
            }
        }
    }
    for (i, manager) in managers.into_iter().enumerate() {
        people[i].manager = manager
            .and_then(|m| mailtrail_model::normalize_address(&m))
            .and_then(|m| by_address.get(&m))
            .map(|&j| people[j].id.clone());
    }
    Ok(super::finish(DirectorySnapshot {
        people,
        devices: Vec::new(),
    }))
}

/// What to check when Google refuses a token.
fn token_hint(_status: u16, text: &str) -> &'static str {
    let lower = text.to_ascii_lowercase();
    if lower.contains("unauthorized_client") {
        "domain-wide delegation is missing: in the Google Admin console (Security → API controls → Domain-wide delegation) add the service account's client ID with the scope https://www.googleapis.com/auth/admin.directory.user.readonly"
    } else {
        crate::poll::gmail::token_hint(_status, text)
    }
}

/// What to check when the Directory API refuses a request.
fn hint(status: u16, text: &str) -> &'static str {
    let lower = text.to_ascii_lowercase();
    if lower.contains("has not been used") || lower.contains("disabled") {
        "enable the Admin SDK API in the service account's Google Cloud project"
    } else {
        match status {
            401 | 403 => "delegated_admin must be an administrator allowed to read users, and the delegation must include the scope https://www.googleapis.com/auth/admin.directory.user.readonly",
            400 => "the query was refused: check customer, domain and query",
            404 => "check customer or domain, and directory_url",
            _ => "",
        }
    }
}

/// The elements of a list property.
fn list<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The value of the first `{type, value}` entry of `kind` in a list.
fn typed(v: &Value, name: &str, kind: &str) -> Option<String> {
    list(v, name)
        .iter()
        .find(|e| e.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|e| text(e, "value"))
}

/// A person from a Directory API user, and the manager's address.
fn person(user: &Value, config: &GoogleDirectoryConfig) -> Option<(Person, Option<String>)> {
    let user_id = text(user, "id")?;
    let id = match config.id {
        GoogleIdSource::UserId => user_id,
        GoogleIdSource::EmployeeId => typed(user, "externalIds", "organization").unwrap_or(user_id),
    };
    let name = user.get("name");
    let full = name.and_then(|n| text(n, "fullName")).or_else(|| {
        let family = name.and_then(|n| text(n, "familyName"));
        let given = name.and_then(|n| text(n, "givenName"));
        match (family, given) {
            (Some(f), Some(g)) => Some(format!("{f} {g}")),
            (f, g) => f.or(g),
        }
    });
    let mut addresses: Vec<String> = text(user, "primaryEmail").into_iter().collect();
    for field in ["aliases", "nonEditableAliases"] {
        addresses.extend(
            list(user, field)
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
    }
    let mut private = Vec::new();
    for e in list(user, "emails") {
        let Some(address) = text(e, "address") else {
            continue;
        };
        match e.get("type").and_then(Value::as_str) {
            Some("home") => private.push(address),
            Some("work") | None => addresses.push(address),
            _ => {}
        }
    }
    let orgs = list(user, "organizations");
    let org_department = orgs
        .iter()
        .filter(|o| o.get("primary").and_then(Value::as_bool) == Some(true))
        .chain(orgs.iter())
        .find_map(|o| text(o, "department"));
    let unit = text(user, "orgUnitPath").filter(|p| p != "/");
    let department = match config.department {
        GoogleDepartment::Organization => org_department.or(unit),
        GoogleDepartment::OrgUnit => unit,
    };
    let flag = |name: &str| user.get(name).and_then(Value::as_bool) == Some(true);
    let status = if flag("suspended") || flag("archived") {
        EmploymentStatus::Disabled
    } else {
        EmploymentStatus::Active
    };
    let person = Person {
        id,
        name: full,
        kana: path_text(user, &config.kana),
        romaji: path_text(user, &config.romaji),
        addresses,
        department,
        manager: None,
        status,
        hire_date: path_text(user, &config.hire_date).and_then(|d| parse_date(&d)),
        leave_date: path_text(user, &config.leave_date).and_then(|d| parse_date(&d)),
        private_addresses: private,
        groups: Vec::new(),
    };
    Some((person, typed(user, "relations", "manager")))
}
