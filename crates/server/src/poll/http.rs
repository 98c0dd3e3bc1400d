//! The pollers' HTTP layer: one blocking client per poller, retries that
//! honour the service's throttling, cached OAuth tokens, and errors that say
//! which endpoint answered what — without ever carrying a secret.
//!
//! - **Blocking, one thread per poller.** A poller sends one request at a
//!   time and mostly sleeps; a thread with a blocking client (`ureq`) is the
//!   simplest thing that works and keeps the async runtime free for the
//!   listeners.
//! - **TLS**: rustls with the ring provider (as the receivers use), roots
//!   from the system store (`/etc/ssl/certs`, or `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR`) plus an optional `ca_file` — where administrators put
//!   the CA of a TLS-inspecting proxy. No bundled roots: the system's are
//!   the ones that are kept up to date and extended locally. A proxy comes
//!   from `proxy` or the usual `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY`.
//! - **Plain `http://` only for loopback** (tests, a local relay): a token
//!   must never cross a network in clear.
//! - **Links from responses stay on the configured host.** `@odata.nextLink`,
//!   `NextPageUri` and `contentUri` are followed with the bearer token only
//!   when their scheme, host and port are the configured API's; anything
//!   else is an error, not a token handed to a stranger.
//! - **Throttling**: 429 and 503 (and other 5xx, and transport errors) are
//!   retried; `Retry-After` (seconds or an HTTP date) is honoured, bounded by
//!   [`RetryPolicy::max_wait`]; without it the pause doubles per attempt.
//!   A 401 with a cached token drops the token and retries once with a new
//!   one (a token revoked or expired early).
//! - **No secrets in errors or logs**: every text taken from a response (an
//!   error body excerpt) or from the transport goes through [`Redactor`],
//!   which knows the client secret, the signing assertion and every token
//!   issued, and replaces them; requests are described by method and URL
//!   without query.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::metrics::PollerMetrics;

/// Largest response body read (a content blob of audit records can be tens of MB).
pub const MAX_BODY_BYTES: u64 = 512 * 1024 * 1024;
/// Characters of an error response kept in an error message.
const EXCERPT_CHARS: usize = 300;

/// A secret from the configuration or the wire: shown as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a poll failed. Messages name the endpoint (without query), the
/// status and what to check; they never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{endpoint} answered HTTP {status}{detail}{hint}")]
    Status {
        endpoint: String,
        status: u16,
        /// `: ` and the service's own error text, or empty.
        detail: String,
        /// ` — ` and what to check, or empty.
        hint: String,
    },
    #[error("{endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    #[error("{endpoint}: unexpected response: {reason}")]
    Response { endpoint: String, reason: String },
    #[error("[{section}] {reason}")]
    Config {
        section: &'static str,
        reason: String,
    },
    #[error("stopped")]
    Stopped,
}

impl PollError {
    pub fn config(section: &'static str, reason: impl Into<String>) -> PollError {
        PollError::Config {
            section,
            reason: reason.into(),
        }
    }
}

/// A secret given in the configuration as `NAME` or, preferably, in a file
/// named by `NAME_file` (surrounding white space ignored): exactly one of
/// them, not empty. `what` names it in messages ("client secret").
pub fn read_secret(
    section: &'static str,
    name: &str,
    what: &str,
    inline: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<Secret, PollError> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(PollError::config(
                section,
                format!("give {name} or {name}_file, not both"),
            ))
        }
        (Some(s), None) => Secret::new(s.expose().trim()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                PollError::config(
                    section,
                    format!("cannot read {name}_file {}: {e}", path.display()),
                )
            })?;
            Secret::new(text.trim())
        }
        (None, None) => {
            return Err(PollError::config(
                section,
                format!("{name}_file (or {name}) is required"),
            ))
        }
    };
    if secret.is_empty() {
        return Err(PollError::config(section, format!("the {what} is empty")));
    }
    Ok(secret)
}

/// Replaces every known secret in a text.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<Mutex<Secrets>>,
}

#[derive(Default)]
struct Secrets {
    /// From the configuration: kept for the poller's life.
    configured: Vec<String>,
    /// Issued tokens and assertions: the most recent ones.
    issued: std::collections::VecDeque<String>,
}

/// Issued tokens remembered for redaction.
const ISSUED_KEPT: usize = 32;

impl Redactor {
    /// Remember a configured secret (short strings are ignored: they would
    /// redact ordinary words).
    pub fn add(&self, secret: &str) {
        if secret.len() < 6 {
            return;
        }
        if let Ok(mut s) = self.inner.lock() {
            if !s.configured.iter().any(|c| c == secret) {
                s.configured.push(secret.to_string());
            }
        }
    }

    /// Remember a token or assertion that was issued or sent.
    pub fn add_issued(&self, secret: &str) {
        if secret.len() < 6 {
            return;
        }
        if let Ok(mut s) = self.inner.lock() {
            if !s.issued.iter().any(|c| c == secret) {
                s.issued.push_back(secret.to_string());
                if s.issued.len() > ISSUED_KEPT {
                    s.issued.pop_front();
                }
            }
        }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(s) = self.inner.lock() {
            for secret in s.configured.iter().chain(s.issued.iter()) {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), "<redacted>");
                }
            }
        }
        out
    }
}

/// How requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request (the first included).
    pub attempts: u32,
    /// The first pause when the service gives no `Retry-After`; doubles.
    pub first_pause: Duration,
    /// The longest pause between attempts, `Retry-After` included.
    pub max_wait: Duration,
    /// The first pause after a failed poll cycle; doubles up to `max_cycle_pause`.
    pub first_cycle_pause: Duration,
    pub max_cycle_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_pause: Duration::from_secs(2),
            max_wait: Duration::from_secs(600),
            first_cycle_pause: Duration::from_secs(30),
            max_cycle_pause: Duration::from_secs(1800),
        }
    }
}

/// Connection settings shared by the sections (`ca_file`, `proxy`).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Extra CA certificates (PEM) to trust besides the system store.
    pub ca_file: Option<PathBuf>,
    /// `http://host:port` (credentials allowed: they are redacted).
    pub proxy: Option<String>,
    /// Some configured URL is `https://` (so CA certificates are needed).
    pub https: bool,
}

/// What a response said.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The `NextPageUri` header (Management Activity API paging).
    pub next_page_uri: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub fn json(&self, endpoint: &str) -> Result<Value, PollError> {
        serde_json::from_slice(&self.body).map_err(|e| PollError::Response {
            endpoint: endpoint.to_string(),
            reason: format!("the body is not JSON ({e})"),
        })
    }

    /// The service's error text: OAuth's `error` + `error_description`,
    /// Graph's / Google's `error.code` + `error.message`, or the body's start.
    pub fn error_text(&self, redactor: &Redactor) -> String {
        let text = match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => {
                let err = v.get("error");
                let code = err
                    .and_then(|e| e.as_str().map(str::to_string))
                    .or_else(|| {
                        err.and_then(|e| e.get("code"))
                            .and_then(|c| c.as_str().map(str::to_string).or(Some(c.to_string())))
                    });
                let message = v
                    .get("error_description")
                    .and_then(Value::as_str)
                    .or_else(|| err.and_then(|e| e.get("message")).and_then(Value::as_str));
                match (code, message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c,
                    (None, Some(m)) => m.to_string(),
                    (None, None) => String::from_utf8_lossy(&self.body).to_string(),
                }
            }
            Err(_) => String::from_utf8_lossy(&self.body).to_string(),
        };
        let text = redactor.clean(text.trim());
        // Entra appends trace and correlation ids on new lines: keep the first.
        let first = text.lines().next().unwrap_or("").trim();
        let mut out: String = first.chars().take(EXCERPT_CHARS).collect();
        if first.chars().count() > EXCERPT_CHARS {
            out.push('…');
        }
        out
    }
}

/// A request made with a bearer token (see [`HttpClient::authorized`]).
#[derive(Clone, Copy)]
pub enum Call<'a> {
    Get(&'a str),
    /// An empty POST.
    Post(&'a str),
}

type SendResult = Result<Response, PollError>;

/// A request to send.
pub enum Request<'a> {
    Get {
        url: &'a str,
        bearer: Option<&'a str>,
    },
    /// `application/x-www-form-urlencoded` fields.
    PostForm {
        url: &'a str,
        form: &'a [(&'a str, &'a str)],
    },
    /// An empty POST with a bearer token.
    Post { url: &'a str, bearer: &'a str },
}

impl Request<'_> {
    fn url(&self) -> &str {
        match self {
            Request::Get { url, .. }
            | Request::PostForm { url, .. }
            | Request::Post { url, .. } => url,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Request::Get { .. } => "GET",
            _ => "POST",
        }
    }
}

/// `METHOD scheme://host/path`: a request named for messages (no query,
/// which may hold page tokens).
pub fn endpoint_name(method: &str, url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    format!("{method} {base}")
}

/// `scheme://host[:port]` of a URL, lower-cased; `None` when it is not http(s).
pub fn origin(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

/// Check a configured base URL: http(s), a host, and `http://` only for
/// loopback. Returns it without a trailing `/`.
pub fn check_base_url(section: &'static str, name: &str, url: &str) -> Result<String, PollError> {
    let trimmed = url.trim().trim_end_matches('/').to_string();
    let Some(o) = origin(&trimmed) else {
        return Err(PollError::config(
            section,
            format!("{name} = {url:?} is not an http(s) URL"),
        ));
    };
    if let Some(host) = o.strip_prefix("http://") {
        let host = host
            .rsplit_once(':')
            .filter(|(h, p)| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty()
            })
            .map(|(h, _)| h)
            .unwrap_or(host);
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(PollError::config(
                section,
                format!("{name} = {url:?}: use https:// (tokens must not travel in clear; http:// is accepted for loopback addresses only)"),
            ));
        }
    }
    Ok(trimmed)
}

/// One poller's HTTP client.
pub struct HttpClient {
    agent: ureq::Agent,
    pub retry: RetryPolicy,
    pub redactor: Redactor,
    stop: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
    which: fn(&crate::metrics::Metrics) -> &PollerMetrics,
    log: super::Log,
    /// The poller's name, first on its log lines.
    name: &'static str,
}

/// Load the system's CA certificates and `extra` (PEM).
fn root_certs(
    section: &'static str,
    extra: Option<&PathBuf>,
) -> Result<Vec<ureq::tls::Certificate<'static>>, PollError> {
    Ok(root_cert_ders(section, extra)?
        .iter()
        .map(|cert| ureq::tls::Certificate::from_der(cert.as_ref()).to_owned())
        .collect())
}

/// The system's CA certificates and `extra` (PEM), as DER: the trust roots
/// of every TLS client of mailtrail's (the pollers, directory sync).
pub fn root_cert_ders(
    section: &'static str,
    extra: Option<&PathBuf>,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PollError> {
    use rustls_pki_types::pem::PemObject;
    // Unreadable entries of the system store are skipped, as every TLS
    // client does; none at all is reported by the caller.
    let mut certs = rustls_native_certs::load_native_certs().certs;
    if let Some(path) = extra {
        let mut n = 0;
        let iter = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
            PollError::config(
                section,
                format!("cannot read ca_file {}: {e}", path.display()),
            )
        })?;
        for cert in iter {
            let cert = cert.map_err(|e| {
                PollError::config(
                    section,
                    format!("ca_file {} is not PEM certificates: {e}", path.display()),
                )
            })?;
            certs.push(cert);
            n += 1;
        }
        if n == 0 {
            return Err(PollError::config(
                section,
                format!("ca_file {} holds no certificate", path.display()),
            ));
        }
    }
    Ok(certs)
}

impl HttpClient {
    pub fn new(
        name: &'static str,
        section: &'static str,
        options: &HttpOptions,
        env: &super::PollerEnv,
        which: fn(&crate::metrics::Metrics) -> &PollerMetrics,
    ) -> Result<HttpClient, PollError> {
        let mut client = HttpClient::standalone(
            name,
            section,
            options,
            env.retry.clone(),
            env.stop.clone(),
            env.log.clone(),
        )?;
        client.metrics = env.metrics.clone();
        client.which = which;
        Ok(client)
    }

    /// A client outside `mailtrail serve`'s pollers (directory sync, a
    /// one-off command): the same TLS, proxy, retries and redaction, with
    /// request counts kept to itself.
    pub fn standalone(
        name: &'static str,
        section: &'static str,
        options: &HttpOptions,
        retry: RetryPolicy,
        stop: Arc<AtomicBool>,
        log: super::Log,
    ) -> Result<HttpClient, PollError> {
        use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
        let certs = root_certs(section, options.ca_file.as_ref())?;
        if certs.is_empty() && options.https {
            return Err(PollError::config(
                section,
                "no CA certificates found: install the system's CA bundle (Debian: ca-certificates; or set SSL_CERT_FILE) or name one with ca_file",
            ));
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::new_with_certs(&certs))
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let redactor = Redactor::default();
        let proxy = match &options.proxy {
            Some(p) => {
                if let Some(password) = proxy_password(p) {
                    redactor.add(&password);
                }
                Some(ureq::Proxy::new(p).map_err(|e| {
                    PollError::config(
                        section,
                        format!(
                            "proxy is not a proxy URL: {}",
                            redactor.clean(&e.to_string())
                        ),
                    )
                })?)
            }
            None => ureq::Proxy::try_from_env(),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_global(Some(Duration::from_secs(180)))
            .user_agent(concat!("mailtrail/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .proxy(proxy)
            .build();
        Ok(HttpClient {
            agent: config.into(),
            retry,
            redactor,
            stop,
            metrics: Arc::new(crate::metrics::Metrics::default()),
            which: |m| &m.poll_m365_traces,
            log,
            name,
        })
    }

    fn poller(&self) -> &PollerMetrics {
        (self.which)(&self.metrics)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep, waking early when the poller is stopped.
    pub fn pause(&self, wait: Duration) -> Result<(), PollError> {
        sleep_unless_stopped(&self.stop, wait)
    }

    fn send_once(&self, request: &Request<'_>) -> Result<Response, String> {
        let result = match request {
            Request::Get { url, bearer } => {
                let mut r = self.agent.get(*url).header("Accept", "application/json");
                if let Some(token) = bearer {
                    r = r.header("Authorization", format!("Bearer {token}"));
                }
                r.call()
            }
            Request::PostForm { url, form } => {
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.agent
                    .post(*url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(body)
            }
            Request::Post { url, bearer } => self
                .agent
                .post(*url)
                .header("Accept", "application/json")
                .header("Authorization", format!("Bearer {bearer}"))
                .send_empty(),
        };
        let mut response = result.map_err(|e| self.redactor.clean(&e.to_string()))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after");
        let next_page_uri = header("nextpageuri");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.redactor.clean(&e.to_string()))?;
        Ok(Response {
            status,
            retry_after,
            next_page_uri,
            body,
        })
    }

    /// Send with retries (see the module doc). A response that is still
    /// throttled or failing after the last attempt is returned as it is.
    pub fn send(&self, request: Request<'_>) -> Result<Response, PollError> {
        let endpoint = endpoint_name(request.method(), request.url());
        let mut pause = self.retry.first_pause;
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            if self.stopped() {
                return Err(PollError::Stopped);
            }
            crate::metrics::Metrics::add(&self.poller().requests, 1);
            let last = attempt == attempts;
            match self.send_once(&request) {
                Ok(r) if retryable(r.status) && !last => {
                    let wait = r
                        .retry_after
                        .as_deref()
                        .and_then(parse_retry_after)
                        .unwrap_or(pause)
                        .min(self.retry.max_wait);
                    (self.log)(&format!(
                        "{}: {endpoint} answered HTTP {}; retrying in {} s",
                        self.name,
                        r.status,
                        wait.as_secs_f64().ceil()
                    ));
                    self.pause(wait)?;
                }
                Ok(r) => return Ok(r),
                Err(reason) if last => return Err(PollError::Transport { endpoint, reason }),
                Err(reason) => {
                    (self.log)(&format!(
                        "{}: {endpoint}: {reason}; retrying in {} s",
                        self.name,
                        pause.as_secs_f64().ceil()
                    ));
                    self.pause(pause.min(self.retry.max_wait))?;
                }
            }
            pause = (pause * 2).min(self.retry.max_wait);
        }
        Err(PollError::Stopped)
    }

    /// GET a JSON document with a token from `tokens`; on 401 the token is
    /// renewed and the request sent once more. Non-2xx statuses become
    /// [`PollError::Status`] with the hint `hint` gives for the status and
    /// the service's error text.
    pub fn get_json(
        &self,
        url: &str,
        tokens: &mut TokenCache,
        hint: &dyn Fn(u16, &str) -> &'static str,
    ) -> Result<(Value, Response), PollError> {
        let response = self.authorized(tokens, Call::Get(url))?;
        let endpoint = endpoint_name("GET", url);
        if !response.ok() {
            return Err(self.status_error(&endpoint, &response, hint));
        }
        let value = response.json(&endpoint)?;
        Ok((value, response))
    }

    /// Send a request built with a token; on 401 renew the token once.
    pub fn authorized(
        &self,
        tokens: &mut TokenCache,
        call: Call<'_>,
    ) -> Result<Response, PollError> {
        let build = |token: &str| -> SendResult {
            match call {
                Call::Get(url) => self.send(Request::Get {
                    url,
                    bearer: Some(token),
                }),
                Call::Post(url) => self.send(Request::Post { url, bearer: token }),
            }
        };
        let token = tokens.get(self)?;
        let response = build(token.expose())?;
        if response.status != 401 {
            return Ok(response);
        }
        tokens.invalidate();
        let token = tokens.get(self)?;
        build(token.expose())
    }

    pub fn status_error(
        &self,
        endpoint: &str,
        response: &Response,
        hint: &dyn Fn(u16, &str) -> &'static str,
    ) -> PollError {
        let text = response.error_text(&self.redactor);
        let hint = hint(response.status, &text);
        PollError::Status {
            endpoint: endpoint.to_string(),
            status: response.status,
            detail: if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            },
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!(" — {hint}")
            },
        }
    }
}

fn retryable(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status) && status != 501
}

/// The password of a `scheme://user:password@host` proxy URL.
fn proxy_password(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let userinfo = rest.split('/').next()?.rsplit_once('@')?.0;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
}

/// `Retry-After`: delay-seconds or an HTTP date (then the time until it).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Sleep in short slices, returning `Stopped` as soon as `stop` is set.
pub fn sleep_unless_stopped(stop: &AtomicBool, wait: Duration) -> Result<(), PollError> {
    let until = Instant::now() + wait;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(PollError::Stopped);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode a query value or path segment (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}

fn form_encode(s: &str) -> String {
    encode(s)
}

/// Something that obtains access tokens.
pub trait TokenSource: Send {
    /// A new token and how long it is valid.
    fn fetch(&mut self, http: &HttpClient) -> Result<(Secret, Duration), PollError>;
}

/// A token kept until shortly before it expires.
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    current: Option<(Secret, Instant)>,
}

impl TokenCache {
    pub fn new(source: Box<dyn TokenSource>) -> TokenCache {
        TokenCache {
            source,
            current: None,
        }
    }

    /// The cached token, or a new one when there is none or it is about to
    /// expire (a minute before, or a quarter of its life for short ones).
    pub fn get(&mut self, http: &HttpClient) -> Result<Secret, PollError> {
        if let Some((token, renew_at)) = &self.current {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let (token, valid) = self.source.fetch(http)?;
        http.redactor.add_issued(token.expose());
        let margin = (valid / 4).min(Duration::from_secs(60));
        self.current = Some((token.clone(), Instant::now() + valid - margin));
        Ok(token)
    }

    pub fn invalidate(&mut self) {
        self.current = None;
    }
}

/// The `expires_in` of a token response: a number or a numeric string;
/// an hour when absent.
pub fn expires_in(v: &Value) -> Duration {
    let secs = v
        .get("expires_in")
        .and_then(|e| {
            e.as_u64()
                .or_else(|| e.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .unwrap_or(3600);
    Duration::from_secs(secs.clamp(1, 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = (Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn origins_and_base_urls() {
        assert_eq!(
            origin("https://Graph.Microsoft.com:443/beta/x?y=1").as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/a").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("https://user@evil.example/"), None);
        assert_eq!(origin("ftp://x/"), None);
        assert!(check_base_url("m365", "graph_url", "https://graph.microsoft.com/beta/").is_ok());
        assert!(check_base_url("m365", "graph_url", "http://127.0.0.1:9/beta").is_ok());
        assert!(check_base_url("m365", "graph_url", "http://localhost/beta").is_ok());
        let e = check_base_url("m365", "graph_url", "http://graph.example/beta").unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let r = Redactor::default();
        r.add("s3cr3t-value");
        r.add("abc");
        assert_eq!(
            r.clean("invalid client s3cr3t-value for abc"),
            "invalid client <redacted> for abc"
        );
        assert_eq!(format!("{:?}", Secret::new("s3cr3t-value")), "<redacted>");
        assert_eq!(
            proxy_password("http://me:pw-123@proxy:8080").as_deref(),
            Some("pw-123")
        );
        assert_eq!(proxy_password("http://proxy:8080"), None);
    }

    #[test]
    fn endpoint_names_drop_the_query() {
        assert_eq!(
            endpoint_name("GET", "https://h/p?$skiptoken=abc"),
            "GET https://h/p"
        );
        assert_eq!(encode("a b'@c/d"), "a%20b%27%40c%2Fd");
    }
}
