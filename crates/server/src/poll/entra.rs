//! `[m365]`: the Microsoft 365 pollers' settings, and the OAuth 2.0
//! client-credentials token from Microsoft Entra ID that both use.
//!
//! One app registration serves both feeds: the message trace poller asks
//! for a token for Microsoft Graph (`https://graph.microsoft.com/.default`,
//! application permission `ExchangeMessageTrace.Read.All`), the audit
//! poller for the Office 365 Management APIs
//! (`https://manage.office.com/.default`, `ActivityFeed.Read`). The secret
//! is read once at start-up (from the file, preferably), kept in a type that
//! never prints it, and sent only in the token request's body.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::http::{self, HttpClient, HttpOptions, PollError, Request, Secret, TokenSource};

/// The Microsoft 365 pollers: `[m365]` in mailtrail.toml.
///
/// ```toml
/// [m365]
/// tenant_id = "0e1dddce-0000-4000-8000-000000000001"   # Directory (tenant) ID
/// client_id = "5f0c9a4e-0000-4000-8000-000000000002"   # Application (client) ID
/// client_secret_file = "/etc/mailtrail/m365-client-secret"   # the secret's Value, one line
/// feeds = ["message_traces", "audit"]
/// ```
///
/// Register an application in Microsoft Entra ID (App registrations → New
/// registration), add a client secret, and grant with admin consent the
/// application permissions `ExchangeMessageTrace.Read.All` (Microsoft
/// Graph; message traces) and `ActivityFeed.Read` (Office 365 Management
/// APIs; audit records — plus `ActivityFeed.ReadDlp` for the sensitive-data
/// details of `DLP.All`). The audit feed also needs unified audit logging
/// turned on (Microsoft Purview → Audit).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct M365Config {
    /// Directory (tenant) ID — a GUID — or the tenant's initial domain
    /// (`contoso.onmicrosoft.com`). Required.
    pub tenant_id: String,
    /// Application (client) ID of the app registration. Required.
    pub client_id: String,
    /// The client secret's value. Prefer `client_secret_file`: a secret in
    /// the configuration file is one more place to protect.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret's value (surrounding white space is
    /// ignored). Relative paths are relative to the configuration file.
    pub client_secret_file: Option<PathBuf>,
    /// What to poll: `message_traces` (Graph message trace), `audit`
    /// (Management Activity API). Default both.
    pub feeds: Vec<M365Feed>,
    /// Which message traces also get their per-recipient event details
    /// (`getDetailsByRecipient`, which Microsoft limits to 100 requests per
    /// 5 minutes): `none`, `problems` (traces not delivered: failed,
    /// pending, quarantined, filtered as spam; the default) or `all` (small
    /// tenants only: at most ~25,000 details a day).
    pub trace_details: TraceDetails,
    /// Management Activity API content types to subscribe to and read.
    /// Default `["Audit.Exchange", "DLP.All"]` (DLP rule matches are the only
    /// place Microsoft 365 tells Bcc recipients).
    pub audit_content_types: Vec<String>,
    /// Seconds between polls. Default 300.
    #[serde(rename = "poll_interval_secs", with = "crate::seconds")]
    pub poll_interval: Duration,
    /// Each poll starts this many minutes before where the last one ended,
    /// because trace rows and audit records appear late; what is fetched
    /// twice is stored once. Default 30.
    #[serde(rename = "overlap_minutes", with = "super::minutes")]
    pub overlap: Duration,
    /// How many days back the first poll reaches (without a saved cursor).
    /// Default 1; at most 90 for message traces and 7 for audit records
    /// (what the APIs keep).
    pub backfill_days: u32,
    /// Default `https://graph.microsoft.com/beta`.
    pub graph_url: String,
    /// Default `https://login.microsoftonline.com`.
    pub login_url: String,
    /// Default `https://manage.office.com` (GCC High: `https://manage.office365.us`).
    pub manage_url: String,
    /// Message traces requested per page (1–5000). Default 1000.
    pub page_size: u32,
    /// A PEM file of CA certificates to trust besides the system's (the CA
    /// of a TLS-inspecting proxy). The system store is `/etc/ssl/certs`
    /// (or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy (`http://proxy.example:8080`). Default: the
    /// `HTTPS_PROXY` / `ALL_PROXY` variables, `NO_PROXY` respected.
    pub proxy: Option<String>,
}

/// A feed of `[m365]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum M365Feed {
    MessageTraces,
    Audit,
}

/// Which traces get per-recipient details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceDetails {
    None,
    #[default]
    Problems,
    All,
}

impl Default for M365Config {
    fn default() -> Self {
        M365Config {
            tenant_id: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            feeds: vec![M365Feed::MessageTraces, M365Feed::Audit],
            trace_details: TraceDetails::Problems,
            audit_content_types: vec!["Audit.Exchange".into(), "DLP.All".into()],
            poll_interval: Duration::from_secs(300),
            overlap: Duration::from_secs(30 * 60),
            backfill_days: 1,
            graph_url: "https://graph.microsoft.com/beta".into(),
            login_url: "https://login.microsoftonline.com".into(),
            manage_url: "https://manage.office.com".into(),
            page_size: 1000,
            ca_file: None,
            proxy: None,
        }
    }
}

/// `[m365]` checked, with the secret read and URLs normalised.
#[derive(Debug, Clone)]
pub struct M365Ready {
    pub config: M365Config,
    pub secret: Secret,
}

const SECTION: &str = "m365";

impl M365Config {
    /// Check the settings and read the secret (before anything starts).
    pub fn prepare(&self) -> Result<M365Ready, PollError> {
        let mut config = self.clone();
        let (tenant_id, client_id) = check_app(SECTION, &config.tenant_id, &config.client_id)?;
        config.tenant_id = tenant_id;
        config.client_id = client_id;
        let secret = http::read_secret(
            SECTION,
            "client_secret",
            "client secret",
            config.client_secret.as_ref(),
            config.client_secret_file.as_ref(),
        )?;
        if config.feeds.is_empty() {
            return Err(PollError::config(
                SECTION,
                "feeds is empty: name message_traces, audit or both",
            ));
        }
        if config.feeds.contains(&M365Feed::Audit) && config.audit_content_types.is_empty() {
            return Err(PollError::config(
                SECTION,
                "audit_content_types is empty (e.g. [\"Audit.Exchange\", \"DLP.All\"])",
            ));
        }
        for ct in &config.audit_content_types {
            if ct.is_empty() || !ct.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(PollError::config(
                    SECTION,
                    format!("audit_content_types: {ct:?} is not a content type (Audit.Exchange, DLP.All, …)"),
                ));
            }
        }
        if !(1..=5000).contains(&config.page_size) {
            return Err(PollError::config(SECTION, "page_size must be 1 to 5000"));
        }
        if config.poll_interval < Duration::from_secs(1) {
            return Err(PollError::config(
                SECTION,
                "poll_interval_secs must be at least 1",
            ));
        }
        config.graph_url = http::check_base_url(SECTION, "graph_url", &config.graph_url)?;
        config.login_url = http::check_base_url(SECTION, "login_url", &config.login_url)?;
        config.manage_url = http::check_base_url(SECTION, "manage_url", &config.manage_url)?;
        if let Some(ca) = &config.ca_file {
            std::fs::metadata(ca).map_err(|e| {
                PollError::config(
                    SECTION,
                    format!("cannot read ca_file {}: {e}", ca.display()),
                )
            })?;
        }
        Ok(M365Ready { config, secret })
    }
}

impl M365Ready {
    pub fn http_options(&self) -> HttpOptions {
        let c = &self.config;
        HttpOptions {
            ca_file: c.ca_file.clone(),
            proxy: c.proxy.clone(),
            https: [&c.graph_url, &c.login_url, &c.manage_url]
                .iter()
                .any(|u| u.starts_with("https://")),
        }
    }

    /// A token source for `scope` (`https://graph.microsoft.com/.default`, …).
    pub fn token_source(&self, scope: &str) -> EntraToken {
        EntraToken::new(
            &self.config.login_url,
            &self.config.tenant_id,
            &self.config.client_id,
            self.secret.clone(),
            scope,
        )
    }
}

/// Check an app registration's `tenant_id` and `client_id` (trimmed).
pub fn check_app(
    section: &'static str,
    tenant_id: &str,
    client_id: &str,
) -> Result<(String, String), PollError> {
    let tenant_id = tenant_id.trim();
    let client_id = client_id.trim();
    let tenant_ok = !tenant_id.is_empty()
        && tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !tenant_ok {
        return Err(PollError::config(
            section,
            "tenant_id is required: the Directory (tenant) ID (a GUID) or the tenant's domain, e.g. contoso.onmicrosoft.com",
        ));
    }
    if client_id.is_empty() {
        return Err(PollError::config(
            section,
            "client_id is required: the Application (client) ID of the app registration",
        ));
    }
    Ok((tenant_id.to_string(), client_id.to_string()))
}

/// Client-credentials tokens from Entra ID.
pub struct EntraToken {
    url: String,
    client_id: String,
    secret: Secret,
    scope: String,
}

impl EntraToken {
    /// Tokens for `scope` from `{login_url}/{tenant_id}/oauth2/v2.0/token`
    /// (`login_url` checked, without a trailing `/`).
    pub fn new(
        login_url: &str,
        tenant_id: &str,
        client_id: &str,
        secret: Secret,
        scope: &str,
    ) -> EntraToken {
        EntraToken {
            url: format!("{login_url}/{}/oauth2/v2.0/token", http::encode(tenant_id)),
            client_id: client_id.to_string(),
            secret,
            scope: scope.to_string(),
        }
    }
}

impl TokenSource for EntraToken {
    fn fetch(&mut self, http: &HttpClient) -> Result<(Secret, Duration), PollError> {
        http.redactor.add(self.secret.expose());
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let response = http.send(Request::PostForm {
            url: &self.url,
            form: &form,
        })?;
        let endpoint = http::endpoint_name("POST", &self.url);
        if !response.ok() {
            return Err(http.status_error(&endpoint, &response, &token_hint));
        }
        let v = response.json(&endpoint)?;
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PollError::Response {
                endpoint: endpoint.clone(),
                reason: "no access_token in the token response".into(),
            })?;
        Ok((Secret::new(token), http::expires_in(&v)))
    }
}

/// What to check when Entra refuses a token.
fn token_hint(status: u16, text: &str) -> &'static str {
    let has = |code: &str| text.contains(code);
    if has("AADSTS90002") || has("AADSTS900023") || has("AADSTS90013") {
        "check tenant_id: use the Directory (tenant) ID from the Entra admin center"
    } else if has("AADSTS700016") {
        "check client_id and tenant_id: the application is not registered in that tenant"
    } else if has("AADSTS7000222") {
        "the client secret has expired: create a new one under Certificates & secrets"
    } else if has("AADSTS7000215") {
        "the client secret is wrong: use the secret's Value, not its Secret ID"
    } else if has("AADSTS70011") || has("invalid_scope") {
        "the scope was refused: check graph_url / manage_url point at the tenant's cloud"
    } else if has("AADSTS700027") || has("AADSTS50034") {
        "check client_id"
    } else if status == 400 || status == 401 {
        "check tenant_id, client_id and the client secret"
    } else {
        ""
    }
}
