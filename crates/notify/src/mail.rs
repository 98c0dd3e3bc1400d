//! Alert mail through the organisation's SMTP relay.
//!
//! - **One connection per notice, no pool.** Alerts are rare and the outbox
//!   sends them one by one from a thread; a pooled connection would only
//!   add idle sessions that relays drop. `lettre`'s blocking transport,
//!   with a timeout on connect and every reply.
//! - **TLS as configured, never weakened**: STARTTLS `required` by default,
//!   `opportunistic`, `none`, or implicit TLS (SMTPS). The certificate must
//!   be valid for `host` against the system's store plus `ca_file`. AUTH
//!   (PLAIN, then LOGIN) is refused by configuration wherever the password
//!   could travel in clear (plain or opportunistic to another host).
//! - **A plain-text body in UTF-8**, headers encoded by lettre (RFC 2047
//!   for the Japanese subject and names), `Auto-Submitted: auto-generated`
//!   so that vacation responders stay quiet, and a Message-ID derived from
//!   the alert, so a retried notice is recognisably the same mail.
//! - **Classification** (see `error`): SMTP 4xx and network failures retry;
//!   5xx, rejected credentials (530/534/535/538) and TLS failures are
//!   permanent. Server replies are quoted in errors, the password never.

use std::error::Error as _;

use chrono_tz::Tz;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::SmtpTransport;
use lettre::Transport as _;

use crate::config::{
    is_loopback, resolve_secret, system_hostname, time_zone, timeout, Lang, MailChannel, Secret,
    StartTls,
};
use crate::error::{io_failure, ChannelKind, DeliveryError, FailureKind};
use crate::notice::{shorten, AlertNotice};
use crate::text::{facts, rule_name, subject, words};

const KIND: ChannelKind = ChannelKind::Mail;
/// Seconds to wait for the relay at each step, by default.
const DEFAULT_TIMEOUT: u64 = 30;

/// How the session with the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Implicit,
    Required,
    Opportunistic,
    Plain,
}

fn security(c: &MailChannel) -> Result<Security, DeliveryError> {
    match (c.implicit_tls, c.starttls) {
        (true, Some(_)) => Err(DeliveryError::config(
            &c.name,
            KIND,
            "starttls does not apply with implicit_tls = true: remove one",
        )),
        (true, None) => Ok(Security::Implicit),
        (false, None | Some(StartTls::Required)) => Ok(Security::Required),
        (false, Some(StartTls::Opportunistic)) => Ok(Security::Opportunistic),
        (false, Some(StartTls::None)) => Ok(Security::Plain),
    }
}

fn port(c: &MailChannel) -> u16 {
    c.port.unwrap_or(if c.implicit_tls { 465 } else { 587 })
}

fn mailbox(c: &MailChannel, key: &str, value: &str) -> Result<Mailbox, DeliveryError> {
    value.trim().parse::<Mailbox>().map_err(|e| {
        DeliveryError::config(
            &c.name,
            KIND,
            format!("{key} = {value:?} is not a mail address ({e})"),
        )
    })
}

/// Check a channel's settings without connecting (see `NotifyConfig::validate`).
pub(crate) fn check(c: &MailChannel) -> Result<(), DeliveryError> {
    let sec = security(c)?;
    if c.host.trim().is_empty() {
        return Err(DeliveryError::config(&c.name, KIND, "host is empty"));
    }
    mailbox(c, "from", &c.from)?;
    if c.to.is_empty() {
        return Err(DeliveryError::config(
            &c.name,
            KIND,
            "to needs at least one address",
        ));
    }
    for to in &c.to {
        mailbox(c, "to", to)?;
    }
    credentials(c, sec)?;
    time_zone(&c.name, KIND, c.timezone.as_deref())?;
    if let Some(h) = &c.helo_name {
        helo(c, Some(h))?;
    }
    if sec != Security::Plain {
        tls_parameters(c)?;
    } else if c.ca_file.is_some() {
        return Err(DeliveryError::config(
            &c.name,
            KIND,
            "ca_file is set but starttls = \"none\": no TLS is used",
        ));
    }
    Ok(())
}

/// The AUTH credentials, refusing a password that could travel in clear.
fn credentials(
    c: &MailChannel,
    sec: Security,
) -> Result<Option<(Credentials, Secret)>, DeliveryError> {
    let password = resolve_secret(
        &c.name,
        KIND,
        "password",
        c.password.as_ref(),
        c.password_file.as_deref(),
    )?;
    match (&c.user, password) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(DeliveryError::config(
            &c.name,
            KIND,
            "a password is set but no user",
        )),
        (Some(_), None) => Err(DeliveryError::config(
            &c.name,
            KIND,
            "user is set but neither password nor password_file",
        )),
        (Some(user), Some(password)) => {
            let in_clear = matches!(sec, Security::Plain | Security::Opportunistic);
            if in_clear && !is_loopback(&c.host) {
                return Err(DeliveryError::config(
                    &c.name,
                    KIND,
                    "SMTP AUTH needs starttls = \"required\" or implicit_tls = true (the password must not travel in clear)",
                ));
            }
            let creds = Credentials::new(user.clone(), password.expose().to_string());
            Ok(Some((creds, password)))
        }
    }
}

/// The EHLO name: `helo_name`, else the system's host name when it is a
/// valid one, else `localhost`.
fn helo(c: &MailChannel, name: Option<&String>) -> Result<ClientId, DeliveryError> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    match name {
        Some(n) if valid(n) => Ok(ClientId::Domain(n.clone())),
        Some(n) => Err(DeliveryError::config(
            &c.name,
            KIND,
            format!("helo_name = {n:?} is not a host name"),
        )),
        None => {
            let system = system_hostname();
            Ok(ClientId::Domain(if valid(&system) {
                system
            } else {
                "localhost".to_string()
            }))
        }
    }
}

fn tls_parameters(c: &MailChannel) -> Result<TlsParameters, DeliveryError> {
    let host = c.host.trim().to_string();
    let mut builder =
        TlsParameters::builder(host.clone()).certificate_store(CertificateStore::None);
    for der in crate::tls::roots(&c.name, KIND, c.ca_file.as_deref())? {
        // Certificates the TLS library cannot take are skipped, as for the
        // system store elsewhere.
        if let Ok(cert) = Certificate::from_der(der.as_ref().to_vec()) {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| DeliveryError::config(&c.name, KIND, format!("TLS set-up for {host}: {e}")))
}

/// The subject and plain-text body of one alert's mail.
pub fn render(notice: &AlertNotice, lang: Lang, tz: Tz) -> (String, String) {
    let w = words(lang);
    let subject_line = format!(
        "[mailtrail] {} {}: {}",
        notice.severity.label(lang),
        shorten(&rule_name(notice), 60),
        subject(notice, lang, 80)
    );
    let mut body = String::new();
    body.push_str(w.intro);
    body.push_str("\n\n");
    for (label, value) in facts(notice, lang, tz) {
        body.push_str(label);
        body.push_str(": ");
        body.push_str(&value);
        body.push('\n');
    }
    if let Some(url) = &notice.console_url {
        body.push('\n');
        body.push_str(w.console);
        body.push_str(": ");
        body.push_str(&crate::notice::one_line(url));
        body.push('\n');
    }
    body.push_str("\n-- \n");
    body.push_str(w.footer);
    body.push('\n');
    (subject_line, body)
}

/// Deliver one alert's mail.
pub(crate) fn deliver(c: &MailChannel, notice: &AlertNotice) -> Result<(), DeliveryError> {
    let tz = time_zone(&c.name, KIND, c.timezone.as_deref())?;
    let (subject, body) = render(notice, c.lang, tz);
    let id_part = format!("alert.{}.{}", notice.alert_id, notice.raised_at.timestamp());
    send(c, &subject, body, &id_part)
}

/// Send a text mail (an alert or the digest) to the channel's recipients.
pub(crate) fn send(
    c: &MailChannel,
    subject: &str,
    body: String,
    id_part: &str,
) -> Result<(), DeliveryError> {
    let sec = security(c)?;
    let creds = credentials(c, sec)?;
    let hello = helo(c, c.helo_name.as_ref())?;
    let host_name = match &hello {
        ClientId::Domain(d) => d.clone(),
        _ => "localhost".to_string(),
    };
    let mut builder = Message::builder()
        .from(mailbox(c, "from", &c.from)?)
        .subject(subject)
        .message_id(Some(format!("<mailtrail.{id_part}@{host_name}>")))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ))
        .user_agent(concat!("mailtrail/", env!("CARGO_PKG_VERSION")).to_string());
    for to in &c.to {
        builder = builder.to(mailbox(c, "to", to)?);
    }
    let email = builder
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| DeliveryError::config(&c.name, KIND, format!("cannot build the mail: {e}")))?;

    let tls = match sec {
        Security::Plain => Tls::None,
        Security::Required => Tls::Required(tls_parameters(c)?),
        Security::Opportunistic => Tls::Opportunistic(tls_parameters(c)?),
        Security::Implicit => Tls::Wrapper(tls_parameters(c)?),
    };
    let mut transport = SmtpTransport::builder_dangerous(c.host.trim())
        .port(port(c))
        .tls(tls)
        .hello_name(hello)
        .timeout(Some(timeout(c.timeout_secs, DEFAULT_TIMEOUT)));
    let mut secret = None;
    if let Some((creds, password)) = creds {
        transport = transport
            .credentials(creds)
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        secret = Some(password);
    }
    transport
        .build()
        .send(&email)
        .map(|_| ())
        .map_err(|e| classify(c, &e, secret.as_ref()))
}

/// Whether an error's chain holds a TLS failure.
fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(t) = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
            {
                return Some(t.to_string());
            }
        }
        cur = err.source();
    }
    None
}

fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn classify(
    c: &MailChannel,
    e: &lettre::transport::smtp::Error,
    secret: Option<&Secret>,
) -> DeliveryError {
    let peer = format!("{}:{}", c.host.trim(), port(c));
    let mut text = e.to_string();
    if let Some(source) = e.source() {
        let s = source.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
    }
    if let Some(s) = secret {
        if !s.expose().is_empty() {
            text = text.replace(s.expose(), "<redacted>");
        }
    }
    let text = shorten(&crate::notice::one_line(&text), 300);
    let err = |failure, retryable, reason: String| {
        DeliveryError::new(&c.name, KIND, failure, retryable, reason)
    };
    if let Some(code) = e.status() {
        let n: u16 = code.to_string().parse().unwrap_or(0);
        let auth = matches!(n, 530 | 534 | 535 | 538);
        return if e.is_permanent() {
            let failure = if auth {
                FailureKind::Auth
            } else {
                FailureKind::Rejected
            };
            let what = if auth {
                "the relay rejected the credentials"
            } else {
                "the relay refused the mail"
            };
            err(failure, false, format!("{peer}: {what}: {text}")).with_status(n)
        } else {
            err(
                FailureKind::Rejected,
                true,
                format!("{peer}: the relay deferred the mail: {text}"),
            )
            .with_status(n)
        };
    }
    if e.is_timeout() {
        return err(
            FailureKind::Timeout,
            true,
            format!("{peer}: no answer in time: {text}"),
        );
    }
    if let Some(t) = tls_cause(e) {
        return err(FailureKind::Tls, false, format!("{peer}: TLS failed: {t}"));
    }
    if e.is_tls() {
        return err(
            FailureKind::Tls,
            false,
            format!("{peer}: TLS failed: {text}"),
        );
    }
    if e.is_client() {
        let failure = if text.contains("STARTTLS") {
            FailureKind::Tls
        } else {
            FailureKind::Protocol
        };
        return err(failure, false, format!("{peer}: {text}"));
    }
    if let Some(io) = io_cause(e) {
        let (failure, what) = io_failure(io);
        return err(failure, true, format!("{peer}: {what}: {text}"));
    }
    err(FailureKind::Protocol, true, format!("{peer}: {text}"))
}
