//! The `[notify]` section of mailtrail.toml: the channels alerts go to.
//!
//! Each kind of channel is its own list (`[[notify.mail]]`,
//! `[[notify.webhook]]`, `[[notify.syslog]]`) with a `name` that rules'
//! `notify` actions refer to. Separate lists rather than one list with a
//! `type` key keep every field's meaning fixed by its table, so unknown or
//! misplaced keys are rejected (`deny_unknown_fields`) instead of silently
//! ignored. The doc comment on each field is the administrator's
//! documentation of that key.
//!
//! Secrets (SMTP password, webhook signing secret) may be written inline or
//! kept in a file (`password_file`, `secret_file`: the first line is used),
//! which is read at each delivery so that a rotated secret needs no restart.
//! Inline secrets print as `<redacted>` in any debug output.
//!
//! Example (`notify.example.toml` beside this crate's Cargo.toml):
//!
//! ```toml
#![doc = include_str!("../notify.example.toml")]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backoff::Backoff;
use crate::error::{ChannelKind, DeliveryError};
use crate::notice::{AlertNotice, Severity};

/// Language of texts written for people (mail, chat cards, the digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// 日本語 (the default).
    #[default]
    Ja,
    /// English.
    En,
}

/// A secret value from the configuration: never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `[[notify.mail]]`: mail through an SMTP relay.
    #[serde(default)]
    pub mail: Vec<MailChannel>,
    /// `[[notify.webhook]]`: HTTPS POST to a generic receiver, Slack or Teams.
    #[serde(default)]
    pub webhook: Vec<WebhookChannel>,
    /// `[[notify.syslog]]`: syslog (RFC 5424) or CEF to a SIEM.
    #[serde(default)]
    pub syslog: Vec<SyslogChannel>,
    /// `[notify.retry]`: when failed deliveries are tried again, and when
    /// they are given up (dead letters).
    #[serde(default)]
    pub retry: Backoff,
}

/// How the connection to the relay is protected before AUTH and DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// STARTTLS must succeed, or nothing is sent (the default).
    Required,
    /// STARTTLS when the relay offers it, plain text otherwise. Not allowed
    /// with `user` (the password could travel in clear).
    Opportunistic,
    /// Plain SMTP (a relay on the same host or a trusted segment).
    None,
}

/// `[[notify.mail]]`: alert mail through an SMTP relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailChannel {
    /// The channel's name, as rules' `notify` actions refer to it.
    pub name: String,
    /// The relay's host name or address. With TLS, the certificate must be
    /// valid for this name.
    pub host: String,
    /// The relay's port. Default 587, or 465 with `implicit_tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `required` (default), `opportunistic` or `none`. Not allowed with
    /// `implicit_tls`.
    #[serde(default)]
    pub starttls: Option<StartTls>,
    /// TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS.
    #[serde(default)]
    pub implicit_tls: bool,
    /// SMTP AUTH user name (PLAIN or LOGIN, inside TLS only). Without it
    /// no AUTH is attempted.
    #[serde(default)]
    pub user: Option<String>,
    /// SMTP AUTH password. Prefer `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file whose first line is the SMTP AUTH password (read at each
    /// delivery).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The sender of alert mail (`mailtrail <mailtrail@example.co.jp>`).
    pub from: String,
    /// The recipients of alert mail (at least one).
    pub to: Vec<String>,
    /// A PEM file of CA certificates trusted besides the system's store:
    /// the CA of a relay with a private certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name this host gives in EHLO. Default: the system's host name.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// `ja` (default) or `en`: the language of subjects and bodies.
    #[serde(default)]
    pub lang: Lang,
    /// The time zone times are shown in (IANA name, `Asia/Tokyo`). Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Seconds to wait for the relay at each step (connect, each reply). Default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Only alerts of at least this severity are sent here (`low`, the
    /// default, sends all).
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    /// Also send the daily digest of the previous day's alerts here.
    #[serde(default)]
    pub daily_digest: bool,
}

/// The shape of a webhook's JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The notice itself as JSON (see `AlertNotice`).
    Generic,
    /// A Slack incoming webhook message (`text` and Block Kit `blocks`).
    Slack,
    /// A Microsoft Teams incoming webhook or Workflows message carrying an
    /// Adaptive Card.
    Teams,
}

/// `[[notify.webhook]]`: an HTTPS POST per alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// The channel's name, as rules' `notify` actions refer to it.
    pub name: String,
    /// Where to POST. `https://` (`http://` only for loopback addresses).
    /// Treated as a secret: errors show only its scheme and host.
    pub url: Secret,
    /// `generic` (default), `slack` or `teams`.
    #[serde(default = "generic")]
    pub format: WebhookFormat,
    /// Signing secret: each request carries `X-Mailtrail-Timestamp` and
    /// `X-Mailtrail-Signature: sha256=<hex HMAC-SHA256 of "timestamp.body">`.
    /// Without it (and without `secret_file`) requests are not signed.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A file whose first line is the signing secret (read at each delivery).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// A PEM file of CA certificates trusted besides the system's store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// An HTTP proxy (`http://user:pass@proxy:8080`). Default: the
    /// `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` environment.
    #[serde(default)]
    pub proxy: Option<Secret>,
    /// `ja` (default) or `en`: the language of Slack and Teams texts.
    #[serde(default)]
    pub lang: Lang,
    /// The time zone times are shown in (IANA name). Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Seconds the whole request may take. Default 10.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Only alerts of at least this severity are sent here.
    #[serde(default = "lowest")]
    pub min_severity: Severity,
}

/// How syslog lines travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// One datagram per notice (RFC 5426). No delivery guarantee.
    Udp,
    /// TCP with octet-counting framing (RFC 6587).
    Tcp,
    /// TLS with octet-counting framing (RFC 5425).
    Tls,
}

/// What a syslog line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// RFC 5424 with the facts as structured data `[mailtrail@32473 …]`.
    Rfc5424,
    /// ArcSight Common Event Format after an RFC 3164 header.
    Cef,
}

/// `[[notify.syslog]]`: one line per alert to a SIEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogChannel {
    /// The channel's name, as rules' `notify` actions refer to it.
    pub name: String,
    /// `host:port` (`[v6]:port`). Default port 514, or 6514 with TLS.
    pub address: String,
    /// `udp` (default), `tcp` or `tls`.
    #[serde(default = "udp")]
    pub transport: SyslogTransport,
    /// `rfc5424` (default) or `cef`.
    #[serde(default = "rfc5424")]
    pub format: SyslogFormat,
    /// Syslog facility name (`local0` … `local7`, `auth`, `authpriv`, `user`,
    /// …). Default `local0`.
    #[serde(default)]
    pub facility: Option<String>,
    /// APP-NAME of the lines. Default `mailtrail`.
    #[serde(default)]
    pub app_name: Option<String>,
    /// HOSTNAME of the lines. Default: the system's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// With TLS: a PEM file of CA certificates trusted besides the system's store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// With TLS: the name the certificate must be valid for, when it is not
    /// the host in `address`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Seconds to connect and to write. Default 10.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Only alerts of at least this severity are sent here.
    #[serde(default = "lowest")]
    pub min_severity: Severity,
}

fn lowest() -> Severity {
    Severity::Low
}
fn generic() -> WebhookFormat {
    WebhookFormat::Generic
}
fn udp() -> SyslogTransport {
    SyslogTransport::Udp
}
fn rfc5424() -> SyslogFormat {
    SyslogFormat::Rfc5424
}

/// One configured channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Mail(MailChannel),
    Webhook(WebhookChannel),
    Syslog(SyslogChannel),
}

impl Channel {
    pub fn name(&self) -> &str {
        match self {
            Channel::Mail(c) => &c.name,
            Channel::Webhook(c) => &c.name,
            Channel::Syslog(c) => &c.name,
        }
    }

    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Mail(_) => ChannelKind::Mail,
            Channel::Webhook(_) => ChannelKind::Webhook,
            Channel::Syslog(_) => ChannelKind::Syslog,
        }
    }

    /// The channel's `min_severity`.
    pub fn min_severity(&self) -> Severity {
        match self {
            Channel::Mail(c) => c.min_severity,
            Channel::Webhook(c) => c.min_severity,
            Channel::Syslog(c) => c.min_severity,
        }
    }

    /// Whether this channel wants the notice (its severity is at least
    /// `min_severity`).
    pub fn accepts(&self, notice: &AlertNotice) -> bool {
        notice.severity >= self.min_severity()
    }
}

/// A `[notify]` setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[notify] {0}")]
pub struct ConfigError(pub String);

impl NotifyConfig {
    /// Every channel, mail first, in configuration order.
    pub fn channels(&self) -> Vec<Channel> {
        self.mail
            .iter()
            .cloned()
            .map(Channel::Mail)
            .chain(self.webhook.iter().cloned().map(Channel::Webhook))
            .chain(self.syslog.iter().cloned().map(Channel::Syslog))
            .collect()
    }

    /// The channel called `name`.
    pub fn channel(&self, name: &str) -> Option<Channel> {
        self.channels().into_iter().find(|c| c.name() == name)
    }

    /// Check what can be checked without the network: unique names,
    /// addresses and URLs that parse, TLS wherever a password travels,
    /// readable secret and CA files, known time zones and facilities.
    /// The server calls it at start-up so that a typo fails there, not at
    /// the first alert.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names: Vec<&str> = Vec::new();
        for c in self.channels().iter() {
            let name = c.name();
            if name.trim().is_empty() {
                return Err(ConfigError("a channel has an empty name".into()));
            }
            if names.contains(&name) {
                return Err(ConfigError(format!(
                    "two channels are named {name:?}: names must be unique"
                )));
            }
            names.push(name);
        }
        let err = |e: DeliveryError| ConfigError(e.to_string());
        for c in &self.mail {
            crate::mail::check(c).map_err(err)?;
        }
        for c in &self.webhook {
            crate::webhook::check(c).map_err(err)?;
        }
        for c in &self.syslog {
            crate::syslog::check(c).map_err(err)?;
        }
        self.retry.check().map_err(ConfigError)
    }
}

/// The first line of a secret file, or the inline secret.
pub(crate) fn resolve_secret(
    channel: &str,
    kind: ChannelKind,
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, DeliveryError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(DeliveryError::config(
            channel,
            kind,
            format!("set {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                DeliveryError::config(
                    channel,
                    kind,
                    format!("cannot read {key}_file {}: {e}", path.display()),
                )
            })?;
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                return Err(DeliveryError::config(
                    channel,
                    kind,
                    format!("{key}_file {} is empty", path.display()),
                ));
            }
            Ok(Some(Secret::new(line)))
        }
        (None, None) => Ok(None),
    }
}

/// A configured time zone, `UTC` by default.
pub(crate) fn time_zone(
    channel: &str,
    kind: ChannelKind,
    tz: Option<&str>,
) -> Result<chrono_tz::Tz, DeliveryError> {
    match tz {
        None => Ok(chrono_tz::UTC),
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            DeliveryError::config(
                channel,
                kind,
                format!("timezone = {name:?} is not an IANA time zone name (e.g. \"Asia/Tokyo\")"),
            )
        }),
    }
}

/// A timeout in seconds, with a default; at least one second.
pub(crate) fn timeout(secs: Option<u64>, default: u64) -> Duration {
    Duration::from_secs(secs.unwrap_or(default).max(1))
}

/// Whether a host name or address is this machine (plain protocols and
/// passwords are tolerated only there).
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The system's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`,
/// `HOSTNAME`), or `localhost`.
pub(crate) fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty() && s.is_ascii() && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_string())
}
