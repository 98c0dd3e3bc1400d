//! `[directory.entra]`: people from Microsoft Entra ID through Microsoft
//! Graph.
//!
//! `GET {graph_url}/users?$select=id,displayName,mail,otherMails,proxyAddresses,
//! userPrincipalName,department,accountEnabled,employeeId,employeeHireDate,
//! employeeLeaveDateTime&$top=999`, followed through `@odata.nextLink`
//! (only to the configured host); with `manager = true` also
//! `&$expand=manager($select=id)`, for which Graph serves at most 100 users
//! a page whatever `$top` says (so it is off by default: 50,000 people are
//! 51 requests without it, 500 with it); with
//! `groups = true` also `GET {graph_url}/groups?$select=id,displayName` and
//! each group's `members?$select=id`. The token is the client-credentials
//! token of the Microsoft 365 pollers ([`crate::poll::entra::EntraToken`]),
//! for the `.default` scope of the Graph host, and requests go through the
//! pollers' client: 429 / 503 are retried after `Retry-After`, and a 401
//! (a token expired or revoked early) fetches a new token and retries once.
//!
//! Application permissions (admin consent): `User.Read.All`; with
//! `groups = true` also `GroupMember.Read.All`; for leave dates
//! `User-LifeCycleInfo.Read.All` (or set `leave_date = false`).
//!
//! Addresses: the `SMTP:` entry of `proxyAddresses` first (Exchange's
//! primary), then `mail`, then the `smtp:` aliases; `otherMails` — the
//! alternative addresses users register, often private ones — become
//! private addresses. A user with none of them is listed with the user
//! principal name, unless it is a guest's (`#EXT#`).

use std::collections::HashMap;
use std::path::PathBuf;

use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
use serde::Deserialize;
use serde_json::Value;

use super::{non_blank, parse_date, path_text, text, DirectorySyncError, SyncOptions};
use crate::poll::entra::{check_app, EntraToken};
use crate::poll::http::{self, HttpClient, HttpOptions, PollError, TokenCache};
use crate::poll::Secret;

const SECTION: &str = "directory.entra";
const SOURCE: &str = "entra";

/// Microsoft Entra ID: `[directory.entra]` in mailtrail.toml.
///
/// ```toml
/// [directory.entra]
/// tenant_id = "0e1dddce-0000-4000-8000-000000000001"
/// client_id = "5f0c9a4e-0000-4000-8000-000000000002"
/// client_secret_file = "/etc/mailtrail/entra-directory-secret"
/// filter = "userType eq 'Member'"
/// ```
///
/// The app registration (it can be the Microsoft 365 pollers' one) needs
/// the Microsoft Graph application permission `User.Read.All` with admin
/// consent; `GroupMember.Read.All` for `groups = true`;
/// `User-LifeCycleInfo.Read.All` for leave dates.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntraDirectoryConfig {
    /// Directory (tenant) ID — a GUID — or the tenant's initial domain.
    /// Required.
    pub tenant_id: String,
    /// Application (client) ID of the app registration. Required.
    pub client_id: String,
    /// The client secret's value. Prefer `client_secret_file`.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret's value. Relative paths are
    /// relative to the configuration file.
    pub client_secret_file: Option<PathBuf>,
    /// Default `https://graph.microsoft.com/v1.0` (US Government:
    /// `https://graph.microsoft.us/v1.0`). Tokens are asked for this host's
    /// `.default` scope.
    pub graph_url: String,
    /// Default `https://login.microsoftonline.com`.
    pub login_url: String,
    /// A Graph `$filter` for the users, e.g. `userType eq 'Member'` or
    /// `accountEnabled eq true`. Default: every user.
    pub filter: Option<String>,
    /// Users per page (`$top`, 1–999). Default 999.
    pub page_size: u32,
    /// What identifies a person: `object_id` (the Entra object id; the
    /// default) or `employee_id` (the `employeeId` property, the object id
    /// for users without one).
    pub id: EntraIdSource,
    /// Read each user's manager (`$expand=manager`). Default false: Graph
    /// then returns at most 100 users per page (a documented limit of
    /// `$expand` on directory objects), so a tenant of 50,000 takes 500
    /// requests instead of 51 — minutes at Graph's usual answer times. No
    /// rule needs managers; the directory pages show them when read.
    pub manager: bool,
    /// Read `employeeLeaveDateTime` (needs `User-LifeCycleInfo.Read.All`).
    /// Default true.
    pub leave_date: bool,
    /// Read group membership (every group's members; needs
    /// `GroupMember.Read.All`). Default false.
    pub groups: bool,
    /// A Graph `$filter` for the groups read with `groups = true`, e.g.
    /// `securityEnabled eq true`. Default: every group.
    pub group_filter: Option<String>,
    /// The property holding the name's reading in kana, a dotted path
    /// (`onPremisesExtensionAttributes.extensionAttribute1`, or a directory
    /// extension `extension_<app id>_phoneticDisplayName`). Default none.
    pub kana: Option<String>,
    /// The property holding the name in Latin letters, as `kana`. Default none.
    pub romaji: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy. Default: the `HTTPS_PROXY` / `ALL_PROXY` variables.
    pub proxy: Option<String>,
}

/// What identifies an Entra person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntraIdSource {
    #[default]
    ObjectId,
    EmployeeId,
}

impl Default for EntraDirectoryConfig {
    fn default() -> Self {
        EntraDirectoryConfig {
            tenant_id: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            graph_url: "https://graph.microsoft.com/v1.0".into(),
            login_url: "https://login.microsoftonline.com".into(),
            filter: None,
            page_size: 999,
            id: EntraIdSource::ObjectId,
            manager: false,
            leave_date: true,
            groups: false,
            group_filter: None,
            kana: None,
            romaji: None,
            ca_file: None,
            proxy: None,
        }
    }
}

/// Fetch every user of the tenant (see the module doc), with the default
/// [`SyncOptions`].
pub fn sync_entra(config: &EntraDirectoryConfig) -> Result<DirectorySnapshot, DirectorySyncError> {
    sync_entra_with(config, &SyncOptions::default())
}

/// Fetch every user of the tenant, reporting progress and logging through
/// `options`.
pub fn sync_entra_with(
    config: &EntraDirectoryConfig,
    options: &SyncOptions,
) -> Result<DirectorySnapshot, DirectorySyncError> {
    let api = |e: PollError| DirectorySyncError::api(SOURCE, e);
    let (tenant_id, client_id) =
        check_app(SECTION, &config.tenant_id, &config.client_id).map_err(api)?;
    let secret = http::read_secret(
        SECTION,
        "client_secret",
        "client secret",
        config.client_secret.as_ref(),
        config.client_secret_file.as_ref(),
    )
    .map_err(api)?;
    let graph = http::check_base_url(SECTION, "graph_url", &config.graph_url).map_err(api)?;
    let login = http::check_base_url(SECTION, "login_url", &config.login_url).map_err(api)?;
    if !(1..=999).contains(&config.page_size) {
        return Err(DirectorySyncError::config(
            SECTION,
            "page_size must be 1 to 999",
        ));
    }
    let origin = http::origin(&graph).unwrap_or_default();
    let options_http = HttpOptions {
        ca_file: config.ca_file.clone(),
        proxy: config.proxy.clone(),
        https: graph.starts_with("https://") || login.starts_with("https://"),
    };
    let client = options
        .http_client("directory-entra", SECTION, &options_http)
        .map_err(api)?;
    client.redactor.add(secret.expose());
    let scope = format!("{origin}/.default");
    let mut tokens = TokenCache::new(Box::new(EntraToken::new(
        &login, &tenant_id, &client_id, secret, &scope,
    )));
    let walker = Walker {
        http: &client,
        origin: origin.clone(),
        options,
    };

    let mut select = vec![
        "id",
        "displayName",
        "mail",
        "otherMails",
        "proxyAddresses",
        "userPrincipalName",
        "department",
        "accountEnabled",
        "employeeId",
        "employeeHireDate",
    ];
    if config.leave_date {
        select.push("employeeLeaveDateTime");
    }
    let extra: Vec<String> = [&config.kana, &config.romaji]
        .into_iter()
        .flatten()
        .filter_map(|p| p.split('.').next().map(str::to_string))
        .filter(|p| !p.is_empty())
        .collect();
    for p in &extra {
        if !select.contains(&p.as_str()) {
            select.push(p);
        }
    }
    let mut url = format!(
        "{graph}/users?$select={}&$top={}",
        http::encode(&select.join(",")),
        config.page_size
    );
    if config.manager {
        url.push_str(&format!("&$expand={}", http::encode("manager($select=id)")));
    }
    if let Some(f) = non_blank(&config.filter) {
        url.push_str(&format!("&$filter={}", http::encode(f)));
    }

    let mut people: Vec<Person> = Vec::new();
    let mut object_ids: Vec<String> = Vec::new();
    let mut managers: Vec<Option<String>> = Vec::new();
    let mut skipped = 0usize;
    walker
        .walk(&url, &mut tokens, &users_hint, |user| {
            match person(user, config) {
                Some((object_id, p, manager)) => {
                    object_ids.push(object_id);
                    people.push(p);
                    managers.push(manager);
                }
                None => skipped += 1,
            }
            Some(people.len())
        })
        .map_err(api)?;
    if skipped > 0 {
        (options.log)(&format!("entra: {skipped} user(s) without an id skipped"));
    }
    let by_object: HashMap<String, usize> = object_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();
    for (i, manager) in managers.into_iter().enumerate() {
        people[i].manager = manager.map(|m| match by_object.get(&m) {
            Some(&j) => people[j].id.clone(),
            None => m,
        });
    }

    if config.groups {
        let mut url = format!(
            "{graph}/groups?$select={}&$top=999",
            http::encode("id,displayName")
        );
        if let Some(f) = non_blank(&config.group_filter) {
            url.push_str(&format!("&$filter={}", http::encode(f)));
        }
        let mut groups: Vec<(String, String)> = Vec::new();
        walker
            .walk(&url, &mut tokens, &groups_hint, |g| {
                let id = g.get("id").and_then(Value::as_str).unwrap_or("");
                let name = g.get("displayName").and_then(Value::as_str).unwrap_or("");
                if !id.is_empty() && !name.trim().is_empty() {
                    groups.push((id.to_string(), name.to_string()));
                }
                None
            })
            .map_err(api)?;
        for (group_id, name) in groups {
            let url = format!(
                "{graph}/groups/{}/members?$select=id&$top=999",
                http::encode(&group_id)
            );
            let mut members = Vec::new();
            walker
                .walk(&url, &mut tokens, &groups_hint, |m| {
                    let user = m
                        .get("@odata.type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "#microsoft.graph.user");
                    if let (true, Some(id)) = (user, m.get("id").and_then(Value::as_str)) {
                        if let Some(&i) = by_object.get(id) {
                            members.push(i);
                        }
                    }
                    None
                })
                .map_err(api)?;
            for i in members {
                people[i].groups.push(name.clone());
            }
        }
    }

    Ok(super::finish(DirectorySnapshot {
        people,
        devices: Vec::new(),
    }))
}

/// Walks a Graph list through its pages.
struct Walker<'a> {
    http: &'a HttpClient,
    origin: String,
    options: &'a SyncOptions,
}

impl Walker<'_> {
    /// GET `url` and every `@odata.nextLink` after it; `each` gets every
    /// element of `value` and returns the people count to report as
    /// progress after the page, if any.
    fn walk(
        &self,
        url: &str,
        tokens: &mut TokenCache,
        hint: &dyn Fn(u16, &str) -> &'static str,
        mut each: impl FnMut(&Value) -> Option<usize>,
    ) -> Result<(), PollError> {
        let mut next = Some(url.to_string());
        while let Some(url) = next.take() {
            if self.options.stopped() {
                return Err(PollError::Stopped);
            }
            let (page, _) = self.http.get_json(&url, tokens, hint)?;
            let endpoint = http::endpoint_name("GET", &url);
            let Some(Value::Array(items)) = page.get("value") else {
                return Err(PollError::Response {
                    endpoint,
                    reason: "no \"value\" list in the page".into(),
                });
            };
            let mut count = None;
            for item in items {
                count = each(item).or(count);
            }
            if let Some(people) = count {
                self.options.progress(SOURCE, people);
            }
            if let Some(link) = page.get("@odata.nextLink").and_then(Value::as_str) {
                if http::origin(link).as_deref() != Some(self.origin.as_str()) {
                    return Err(PollError::Response {
                        endpoint,
                        reason:
                            "@odata.nextLink points to another host than graph_url; not followed"
                                .into(),
                    });
                }
                next = Some(link.to_string());
            }
        }
        Ok(())
    }
}

/// What to check when Graph refuses the users list.
fn users_hint(status: u16, text: &str) -> &'static str {
    match status {
        401 | 403 if text.contains("employeeLeaveDateTime") || text.to_ascii_lowercase().contains("lifecycle") => {
            "reading leave dates needs the application permission User-LifeCycleInfo.Read.All (or set leave_date = false)"
        }
        401 | 403 => "the app registration needs the Microsoft Graph application permission User.Read.All, with admin consent",
        400 => "the query was refused: check filter (and kana / romaji, which must name user properties)",
        404 => "check graph_url (e.g. https://graph.microsoft.com/v1.0) and tenant_id",
        _ => "",
    }
}

/// What to check when Graph refuses the groups.
fn groups_hint(status: u16, _text: &str) -> &'static str {
    match status {
        401 | 403 => "reading groups needs the Microsoft Graph application permission GroupMember.Read.All, with admin consent (or set groups = false)",
        400 => "the query was refused: check group_filter",
        _ => "",
    }
}

fn strings(user: &Value, name: &str) -> Vec<String> {
    match user.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A person from a Graph user: (object id, person, manager's object id).
fn person(user: &Value, config: &EntraDirectoryConfig) -> Option<(String, Person, Option<String>)> {
    let object_id = text(user, "id")?;
    let id = match config.id {
        EntraIdSource::ObjectId => object_id.clone(),
        EntraIdSource::EmployeeId => text(user, "employeeId").unwrap_or_else(|| object_id.clone()),
    };
    let proxies = strings(user, "proxyAddresses");
    let mut addresses: Vec<String> = proxies
        .iter()
        .filter_map(|p| p.strip_prefix("SMTP:"))
        .map(str::to_string)
        .collect();
    addresses.extend(text(user, "mail"));
    addresses.extend(
        proxies
            .iter()
            .filter(|p| p.starts_with("smtp:"))
            .map(|p| p[5..].to_string()),
    );
    if addresses.is_empty() {
        addresses.extend(text(user, "userPrincipalName").filter(|u| !u.contains('#')));
    }
    let status = if user.get("accountEnabled").and_then(Value::as_bool) == Some(false) {
        EmploymentStatus::Disabled
    } else {
        EmploymentStatus::Active
    };
    let manager = user
        .get("manager")
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let person = Person {
        id,
        name: text(user, "displayName"),
        kana: path_text(user, &config.kana),
        romaji: path_text(user, &config.romaji),
        addresses,
        department: text(user, "department"),
        manager: None,
        status,
        hire_date: text(user, "employeeHireDate").and_then(|d| parse_date(&d)),
        leave_date: text(user, "employeeLeaveDateTime").and_then(|d| parse_date(&d)),
        private_addresses: strings(user, "otherMails"),
        groups: Vec::new(),
    };
    Some((object_id, person, manager))
}
