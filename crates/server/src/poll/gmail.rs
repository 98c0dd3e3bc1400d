//! The Google Workspace Reports API poller (`gmail`).
//!
//! `GET {reports_url}/admin/reports/v1/activity/users/all/applications/gmail
//! ?startTime=…&endTime=…&maxResults=1000&pageToken=…`, windows of at most
//! 30 days no older than 180 days, each followed through `nextPageToken`;
//! every activity goes through
//! [`mailtrail_ingest::gmail::records_from_activity`].
//!
//! Authentication is Google's service-account flow with domain-wide
//! delegation: a JWT (`iss` the service account, `sub` the delegated
//! administrator, `scope` the read-only audit scope, `aud` the key file's
//! `token_uri`, an hour's life) signed RS256 with the key file's private key
//! (ring), exchanged at `token_uri` for an access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). The key is
//! parsed at start-up, so a broken key file fails the start; its private
//! key is never printed. The JWT times come from the real clock: Google
//! refuses assertions from a clock that is off.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use mailtrail_ingest::gmail::{records_from_activity, RowOutcome};
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use serde_json::Value;

use super::http::{
    self, HttpClient, HttpOptions, PollError, Request, Secret, TokenCache, TokenSource,
};
use super::{Checkpoints, Cursor, PollerEnv, Submit, Which, WindowRules};

/// The only scope asked for: reading the audit (activity) reports.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";

const RULES: WindowRules = WindowRules {
    max_len: chrono::Duration::days(30),
    retention: chrono::Duration::days(179),
    // A clock a little ahead of Google's must not ask for the future.
    end_lag: chrono::Duration::minutes(1),
};

const SECTION: &str = "gmail";

/// The Gmail poller: `[gmail]` in mailtrail.toml.
///
/// ```toml
/// [gmail]
/// service_account_key_file = "/etc/mailtrail/gmail-service-account.json"
/// delegated_admin = "admin@example.co.jp"
/// ```
///
/// In Google Cloud, create a service account in a project with the Admin
/// SDK API enabled and download a JSON key. In the Google Admin console
/// (Security → Access and data control → API controls → Domain-wide
/// delegation), add the service account's client ID with the scope
/// `https://www.googleapis.com/auth/admin.reports.audit.readonly`.
/// `delegated_admin` is an administrator allowed to view reports; the
/// service account acts as that user.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GmailConfig {
    /// The service account's JSON key file (as downloaded). Relative paths
    /// are relative to the configuration file. Required.
    pub service_account_key_file: PathBuf,
    /// The administrator the service account acts for (the JWT's `sub`). Required.
    pub delegated_admin: String,
    /// Default `https://admin.googleapis.com`.
    pub reports_url: String,
    /// Seconds between polls. Default 300.
    #[serde(rename = "poll_interval_secs", with = "crate::seconds")]
    pub poll_interval: Duration,
    /// Each poll starts this many minutes before where the last one ended:
    /// Gmail events can reach the Reports API an hour or more after they
    /// happened. What is fetched twice is stored once. Default 60.
    #[serde(rename = "overlap_minutes", with = "super::minutes")]
    pub overlap: Duration,
    /// How many days back the first poll reaches. Default 1, at most 180.
    pub backfill_days: u32,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy. Default: the `HTTPS_PROXY` / `ALL_PROXY` variables.
    pub proxy: Option<String>,
}

impl Default for GmailConfig {
    fn default() -> Self {
        GmailConfig {
            service_account_key_file: PathBuf::new(),
            delegated_admin: String::new(),
            reports_url: "https://admin.googleapis.com".into(),
            poll_interval: Duration::from_secs(300),
            overlap: Duration::from_secs(60 * 60),
            backfill_days: 1,
            ca_file: None,
            proxy: None,
        }
    }
}

/// The fields of a service account key file that are used.
#[derive(Clone, Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: Secret,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// `[gmail]` checked, with the key loaded.
#[derive(Clone)]
pub struct GmailReady {
    pub config: GmailConfig,
    pub client_email: String,
    pub token_uri: String,
    account: ServiceAccount,
}

impl std::fmt::Debug for GmailReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailReady")
            .field("config", &self.config)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// A Google service account's key, loaded from its JSON key file: signs the
/// JWT assertions of the domain-wide delegation flow (the Gmail poller,
/// directory sync). The private key is never printed.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// The key file's `token_uri`, checked (default Google's).
    pub token_uri: String,
    key_id: Option<String>,
    key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Load and check a key file (`service_account_key_file` of `section`).
    pub fn load(
        section: &'static str,
        path: &std::path::Path,
    ) -> Result<ServiceAccount, PollError> {
        if path.as_os_str().is_empty() {
            return Err(PollError::config(
                section,
                "service_account_key_file is required (the service account's JSON key)",
            ));
        }
        let text = std::fs::read(path).map_err(|e| {
            PollError::config(
                section,
                format!(
                    "cannot read service_account_key_file {}: {e}",
                    path.display()
                ),
            )
        })?;
        let key: KeyFile = serde_json::from_slice(&text).map_err(|e| {
            // Only what cannot hold a value of the file is said.
            let why = match e.classify() {
                serde_json::error::Category::Data if e.to_string().starts_with("missing field") => {
                    e.to_string()
                }
                serde_json::error::Category::Data => "a field has the wrong type".to_string(),
                _ => format!("not JSON, line {}", e.line()),
            };
            PollError::config(
                section,
                format!(
                    "{} is not a service account key file ({why})",
                    path.display()
                ),
            )
        })?;
        if key.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(PollError::config(
                section,
                format!(
                    "{} is a {:?} key, not a service account key",
                    path.display(),
                    key.kind.unwrap_or_default()
                ),
            ));
        }
        let pair = rsa_key(key.private_key.expose()).map_err(|reason| {
            PollError::config(section, format!("{}: private_key {reason}", path.display()))
        })?;
        let token_uri = http::check_base_url(
            section,
            "the key file's token_uri",
            key.token_uri
                .as_deref()
                .unwrap_or("https://oauth2.googleapis.com/token"),
        )?;
        Ok(ServiceAccount {
            client_email: key.client_email,
            token_uri,
            key_id: key.private_key_id,
            key: Arc::new(pair),
        })
    }

    /// A signed JWT assertion for `subject` (the delegated user) and
    /// `scope` (space-separated), issued at `iat` (unix seconds), valid an
    /// hour.
    pub fn assertion(
        &self,
        section: &'static str,
        subject: &str,
        scope: &str,
        iat: i64,
    ) -> Result<String, PollError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = Value::from(kid.as_str());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": subject,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| PollError::config(section, "cannot sign with the service account key"))?;
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

impl GmailConfig {
    /// Check the settings and load the key (before anything starts).
    pub fn prepare(&self) -> Result<GmailReady, PollError> {
        let mut config = self.clone();
        let account = ServiceAccount::load(SECTION, &config.service_account_key_file)?;
        config.delegated_admin = config.delegated_admin.trim().to_string();
        if mailtrail_model::normalize_address(&config.delegated_admin).is_none() {
            return Err(PollError::config(
                SECTION,
                "delegated_admin is required: the address of an administrator allowed to view reports",
            ));
        }
        config.reports_url = http::check_base_url(SECTION, "reports_url", &config.reports_url)?;
        if config.poll_interval < Duration::from_secs(1) {
            return Err(PollError::config(
                SECTION,
                "poll_interval_secs must be at least 1",
            ));
        }
        if let Some(ca) = &config.ca_file {
            std::fs::metadata(ca).map_err(|e| {
                PollError::config(
                    SECTION,
                    format!("cannot read ca_file {}: {e}", ca.display()),
                )
            })?;
        }
        Ok(GmailReady {
            config,
            client_email: account.client_email.clone(),
            token_uri: account.token_uri.clone(),
            account,
        })
    }
}

/// An RSA key pair from PEM (PKCS#8, as Google issues, or PKCS#1).
fn rsa_key(pem: &str) -> Result<RsaKeyPair, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "is not a PEM private key".to_string())?;
    let pair = match &der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err("is not an RSA key".into()),
    };
    pair.map_err(|e| format!("is not a usable RSA key ({e})"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl GmailReady {
    /// The settings key of the cursor: one per Workspace domain.
    pub fn checkpoint_key(&self) -> String {
        let domain = self
            .config
            .delegated_admin
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        format!("poll:gmail:{domain}:reports")
    }

    fn http_options(&self) -> HttpOptions {
        HttpOptions {
            ca_file: self.config.ca_file.clone(),
            proxy: self.config.proxy.clone(),
            https: [&self.token_uri, &self.config.reports_url]
                .iter()
                .any(|u| u.starts_with("https://")),
        }
    }

    /// A signed JWT assertion issued at `iat` (unix seconds), valid an hour.
    pub fn assertion(&self, iat: i64) -> Result<String, PollError> {
        self.account
            .assertion(SECTION, &self.config.delegated_admin, SCOPE, iat)
    }
}

/// Tokens by the JWT bearer flow: a service account acting for `subject`
/// with `scope`.
pub struct JwtToken {
    pub account: ServiceAccount,
    /// The delegated user (the JWT's `sub`).
    pub subject: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The configuration section named in errors.
    pub section: &'static str,
    /// What to check when Google refuses a token.
    pub hint: fn(u16, &str) -> &'static str,
}

impl TokenSource for JwtToken {
    fn fetch(&mut self, http: &HttpClient) -> Result<(Secret, Duration), PollError> {
        let assertion = self.account.assertion(
            self.section,
            &self.subject,
            &self.scope,
            chrono::Utc::now().timestamp(),
        )?;
        http.redactor.add_issued(&assertion);
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let url = self.account.token_uri.clone();
        let response = http.send(Request::PostForm {
            url: &url,
            form: &form,
        })?;
        let endpoint = http::endpoint_name("POST", &url);
        if !response.ok() {
            return Err(http.status_error(&endpoint, &response, &self.hint));
        }
        let v = response.json(&endpoint)?;
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PollError::Response {
                endpoint: endpoint.clone(),
                reason: "no access_token in the token response".into(),
            })?;
        Ok((Secret::new(token), http::expires_in(&v)))
    }
}

/// What to check when Google refuses a token.
pub fn token_hint(_status: u16, text: &str) -> &'static str {
    let lower = text.to_ascii_lowercase();
    if lower.contains("unauthorized_client") {
        "domain-wide delegation is missing: in the Google Admin console (Security → API controls → Domain-wide delegation) add the service account's client ID with the scope https://www.googleapis.com/auth/admin.reports.audit.readonly"
    } else if lower.contains("invalid email") || lower.contains("user id") {
        "delegated_admin is not a user of the Workspace domain"
    } else if lower.contains("signature") {
        "the key file's key was deleted or is not this service account's: create a new key"
    } else if lower.contains("iat") || lower.contains("exp") || lower.contains("timeframe") {
        "this machine's clock is off: synchronise it (NTP)"
    } else if lower.contains("invalid_client") || lower.contains("disabled") {
        "the service account or its key is disabled or deleted"
    } else {
        "check the service account key file and its domain-wide delegation"
    }
}

/// What to check when the Reports API refuses a request.
fn hint(status: u16, text: &str) -> &'static str {
    let lower = text.to_ascii_lowercase();
    if lower.contains("has not been used") || lower.contains("disabled") {
        "enable the Admin SDK API in the service account's Google Cloud project"
    } else if status == 401 || status == 403 {
        "delegated_admin must be an administrator with the Reports privilege, and the delegation must include the scope https://www.googleapis.com/auth/admin.reports.audit.readonly"
    } else if status == 400 {
        "the query was refused: is this machine's clock right?"
    } else if status == 404 {
        "check reports_url"
    } else {
        ""
    }
}

fn which(m: &crate::metrics::Metrics) -> &crate::metrics::PollerMetrics {
    &m.poll_gmail
}

/// Start the poller thread.
pub fn spawn(ready: GmailReady, saved: &Checkpoints, env: PollerEnv) -> thread::JoinHandle<()> {
    let key = ready.checkpoint_key();
    let cursor = saved.get(&key).and_then(|s| Cursor::parse(s));
    thread::spawn(move || {
        let mut poller: Option<ReportsPoller> = None;
        let interval = ready.config.poll_interval;
        super::run("gmail", &env, which, interval, || {
            if poller.is_none() {
                let http = HttpClient::new("gmail", SECTION, &ready.http_options(), &env, which)?;
                poller = Some(ReportsPoller {
                    tokens: TokenCache::new(Box::new(JwtToken {
                        account: ready.account.clone(),
                        subject: ready.config.delegated_admin.clone(),
                        scope: SCOPE.to_string(),
                        section: SECTION,
                        hint: token_hint,
                    })),
                    http,
                    ready: ready.clone(),
                    env: env.clone(),
                    key: key.clone(),
                    cursor: cursor.clone(),
                });
            }
            match poller.as_mut() {
                Some(p) => p.cycle(),
                None => Err(PollError::Stopped),
            }
        });
    })
}

struct ReportsPoller {
    ready: GmailReady,
    env: PollerEnv,
    http: HttpClient,
    tokens: TokenCache,
    key: String,
    cursor: Option<Cursor>,
}

impl ReportsPoller {
    fn submit(&self) -> Submit<'_> {
        Submit {
            env: &self.env,
            which: which as Which,
        }
    }

    fn cycle(&mut self) -> Result<u64, PollError> {
        let config = &self.ready.config;
        let mut stored = 0;
        for (start, end) in super::windows(
            self.cursor.as_ref(),
            self.env.now(),
            config.overlap,
            config.backfill_days,
            RULES,
        ) {
            stored += self.window(start, end)?;
            let cursor = Cursor::new(end);
            self.submit().send(
                Vec::new(),
                Vec::new(),
                vec![(self.key.clone(), cursor.format())],
            )?;
            self.cursor = Some(cursor);
        }
        Ok(stored)
    }

    fn window(
        &mut self,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, PollError> {
        let base = format!(
            "{}/admin/reports/v1/activity/users/all/applications/gmail?startTime={}&endTime={}&maxResults=1000",
            self.ready.config.reports_url,
            http::encode(&super::zulu(start)),
            http::encode(&super::zulu(end))
        );
        let mut page_token: Option<String> = None;
        let mut stored = 0u64;
        let mut page_no = 0u64;
        loop {
            page_no += 1;
            let url = match &page_token {
                Some(t) => format!("{base}&pageToken={}", http::encode(t)),
                None => base.clone(),
            };
            let (json, _) = self.http.get_json(&url, &mut self.tokens, &hint)?;
            let source = format!(
                "gmail reports {}..{} page {page_no}",
                super::zulu(start),
                super::zulu(end)
            );
            let mut records = Vec::new();
            let mut rejects = Vec::new();
            if let Some(Value::Array(items)) = json.get("items") {
                for (n, activity) in items.iter().enumerate() {
                    for outcome in records_from_activity(activity) {
                        match outcome {
                            Ok(RowOutcome::Records(r)) => records.extend(r),
                            Ok(RowOutcome::Skipped(_)) => {}
                            Err(e) => {
                                rejects.push(super::reject(&source, n, e.code, &e.reason, activity))
                            }
                        }
                    }
                }
            }
            stored += records.len() as u64;
            self.submit().send(records, rejects, Vec::new())?;
            page_token = json
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if page_token.is_none() {
                return Ok(stored);
            }
        }
    }
}
