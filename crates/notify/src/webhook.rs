//! Webhooks: one signed HTTPS POST per notice, as a generic JSON document,
//! a Slack message or a Microsoft Teams Adaptive Card.
//!
//! - **Blocking `ureq`**, rustls with the ring provider and the system's CA
//!   store plus `ca_file` (as the pollers), a whole-request timeout, no
//!   redirects (a webhook that moved is a configuration to fix, and a
//!   redirect must not carry the signed body elsewhere), `http://` only to
//!   loopback addresses.
//! - **The URL is a credential** (Slack and Teams put their token in it):
//!   errors name only its `scheme://host[:port]`.
//! - **Text from mail is inert**: Slack texts are escaped and `verbatim`
//!   (no automatic links or mentions), Teams texts have their Markdown
//!   characters escaped, so a crafted subject cannot put a link or a
//!   mention into an administrators' channel.
//!
//! # Signatures
//!
//! With a `secret` (or `secret_file`), every request carries
//!
//! ```text
//! X-Mailtrail-Timestamp: 1795750512
//! X-Mailtrail-Signature: sha256=<64 lower-case hex digits>
//! ```
//!
//! where the hex is HMAC-SHA256, keyed with the secret, over the timestamp
//! (decimal Unix seconds, as sent), one `.`, and the raw request body. A
//! receiver verifies a request by
//!
//! 1. reading the body as bytes, before any JSON parsing;
//! 2. rejecting a timestamp more than 5 minutes from its own clock (a
//!    replayed request);
//! 3. computing the HMAC over `timestamp + "." + body` and comparing it to
//!    the header **in constant time** — [`verify_signature`] does step 3
//!    for Rust receivers; elsewhere, e.g.
//!    `printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret"`
//!    gives the same hex.
//!
//! A retried notice is signed anew (new timestamp); `X-Mailtrail-Alert-Id`
//! lets a receiver recognise a repeat.

use std::time::Duration;

use chrono_tz::Tz;
use ring::hmac;
use serde_json::{json, Value};

use crate::config::{
    is_loopback, resolve_secret, time_zone, timeout, Lang, Secret, WebhookChannel, WebhookFormat,
};
use crate::error::{io_failure, ChannelKind, DeliveryError, FailureKind};
use crate::notice::{one_line, shorten, AlertNotice, Severity};
use crate::text::{facts, rule_name, subject, words};

const KIND: ChannelKind = ChannelKind::Webhook;
/// Seconds a whole request may take, by default.
const DEFAULT_TIMEOUT: u64 = 10;
/// Characters of a refusal's body quoted in an error.
const EXCERPT: usize = 200;

/// The header value for a body: `sha256=` and the hex HMAC-SHA256 of
/// `timestamp + "." + body` keyed with `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `header` (the `X-Mailtrail-Signature` value) is the signature
/// of `timestamp` and `body` under `secret`. The comparison is constant-time
/// (ring's HMAC verification). Checking that the timestamp is recent is the
/// receiver's part (see the module documentation).
pub fn verify_signature(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = Vec::with_capacity(timestamp.len() + 1 + body.len());
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    hmac::verify(&key, &msg, &tag).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The JSON body sent for a notice in a format.
pub fn payload(notice: &AlertNotice, format: WebhookFormat, lang: Lang, tz: Tz) -> Value {
    match format {
        WebhookFormat::Generic => serde_json::to_value(notice).unwrap_or(Value::Null),
        WebhookFormat::Slack => slack(notice, lang, tz),
        WebhookFormat::Teams => teams(notice, lang, tz),
    }
}

/// `[高] ルール名`.
fn title(notice: &AlertNotice, lang: Lang) -> String {
    format!(
        "[{}] {}",
        notice.severity.label(lang),
        shorten(&rule_name(notice), 100)
    )
}

/// Slack's three characters with meaning in any text (`&`, `<`, `>`).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(notice: &AlertNotice, lang: Lang, tz: Tz) -> Value {
    let w = words(lang);
    let all = facts(notice, lang, tz);
    let get = |label: &str| {
        all.iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let field = |label: &str| {
        json!({
            "type": "mrkdwn",
            "verbatim": true,
            "text": format!("*{label}*\n{}", slack_escape(&shorten(&get(label), 1900))),
        })
    };
    let fields: Vec<Value> = [
        w.severity,
        w.rule,
        w.subject,
        w.condition,
        w.from,
        w.to,
        w.direction,
        w.time,
    ]
    .iter()
    .map(|l| field(l))
    .collect();
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": shorten(&title(notice, lang), 150), "emoji": false},
        }),
        json!({"type": "section", "fields": fields}),
        json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "verbatim": true,
                "text": format!("*{}*\n{}", w.matched, slack_escape(&get(w.matched))),
            },
        }),
    ];
    if let Some(url) = &notice.console_url {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": w.open},
                "url": url,
            }],
        }));
    }
    let mut context = format!("mailtrail · {} {}", w.alert_id, notice.alert_id);
    if let Some(id) = &notice.message.message_id {
        context.push_str(&format!(
            " · {} <{}>",
            w.message_id,
            crate::text::bare_message_id(id)
        ));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "plain_text", "text": shorten(&context, 2000), "emoji": false}],
    }));
    let text = format!(
        "[mailtrail] {} {}: {}",
        notice.severity.label(lang),
        shorten(&rule_name(notice), 60),
        subject(notice, lang, 80)
    );
    json!({"text": slack_escape(&text), "blocks": blocks})
}

/// The Markdown that Teams renders in Adaptive Cards (bold, italic,
/// links) escaped with `\`, so `App_Pool_01` is not italicised and
/// `[text](url)` is not a link.
fn teams_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '_' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn teams(notice: &AlertNotice, lang: Lang, tz: Tz) -> Value {
    let w = words(lang);
    let color = match notice.severity {
        Severity::Critical | Severity::High => "Attention",
        Severity::Medium => "Warning",
        Severity::Low => "Default",
    };
    let facts: Vec<Value> = facts(notice, lang, tz)
        .into_iter()
        .map(|(label, value)| json!({"title": label, "value": teams_escape(&value)}))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "text": format!("mailtrail {}", w.alert), "size": "Small", "isSubtle": true},
            {
                "type": "TextBlock",
                "text": teams_escape(&title(notice, lang)),
                "size": "Medium",
                "weight": "Bolder",
                "color": color,
                "wrap": true,
            },
            {"type": "FactSet", "facts": facts},
        ],
    });
    if let (Some(url), Some(obj)) = (&notice.console_url, card.as_object_mut()) {
        obj.insert(
            "actions".into(),
            json!([{"type": "Action.OpenUrl", "title": w.open, "url": url}]),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// `scheme://host[:port]` of an http(s) URL without user information.
pub(crate) fn origin(url: &str) -> Option<(String, String, bool)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        format!("[{}]", v6.split(']').next()?)
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .to_string()
    };
    Some((format!("{scheme}://{authority}"), host, scheme == "https"))
}

/// Check a channel's settings without connecting.
pub(crate) fn check(c: &WebhookChannel) -> Result<(), DeliveryError> {
    target(c)?;
    signing_secret(c)?;
    time_zone(&c.name, KIND, c.timezone.as_deref())?;
    agent(c)?;
    Ok(())
}

/// The URL's origin (for messages), refusing what cannot be used.
fn target(c: &WebhookChannel) -> Result<String, DeliveryError> {
    let Some((origin, host, https)) = origin(c.url.expose()) else {
        return Err(DeliveryError::config(
            &c.name,
            KIND,
            "url is not an http(s) URL (user information in the URL is not accepted)",
        ));
    };
    if !https && !is_loopback(&host) {
        return Err(DeliveryError::config(
            &c.name,
            KIND,
            format!(
                "url {origin}/…: use https:// (http:// is accepted for loopback addresses only)"
            ),
        ));
    }
    Ok(origin)
}

fn signing_secret(c: &WebhookChannel) -> Result<Option<Secret>, DeliveryError> {
    resolve_secret(
        &c.name,
        KIND,
        "secret",
        c.secret.as_ref(),
        c.secret_file.as_deref(),
    )
}

fn agent(c: &WebhookChannel) -> Result<ureq::Agent, DeliveryError> {
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    let https = origin(c.url.expose()).is_some_and(|(_, _, https)| https);
    let mut tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(crate::tls::provider());
    if https {
        let certs: Vec<ureq::tls::Certificate<'static>> =
            crate::tls::roots(&c.name, KIND, c.ca_file.as_deref())?
                .iter()
                .map(|d| ureq::tls::Certificate::from_der(d.as_ref()).to_owned())
                .collect();
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    let proxy = match &c.proxy {
        Some(p) => Some(ureq::Proxy::new(p.expose()).map_err(|_| {
            DeliveryError::config(&c.name, KIND, "proxy is not a proxy URL (http://host:port)")
        })?),
        None => ureq::Proxy::try_from_env(),
    };
    let t = timeout(c.timeout_secs, DEFAULT_TIMEOUT);
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(t))
        .timeout_connect(Some(t))
        .user_agent(concat!("mailtrail/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .proxy(proxy)
        .build();
    Ok(config.into())
}

/// Deliver one notice.
pub(crate) fn deliver(c: &WebhookChannel, notice: &AlertNotice) -> Result<(), DeliveryError> {
    let origin = target(c)?;
    let secret = signing_secret(c)?;
    let tz = time_zone(&c.name, KIND, c.timezone.as_deref())?;
    let body = serde_json::to_vec(&payload(notice, c.format, c.lang, tz)).map_err(|e| {
        DeliveryError::config(&c.name, KIND, format!("cannot encode the notice: {e}"))
    })?;
    let agent = agent(c)?;
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut request = agent
        .post(c.url.expose())
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Mailtrail-Alert-Id", notice.alert_id.to_string());
    if let Some(secret) = &secret {
        request = request.header("X-Mailtrail-Timestamp", &timestamp).header(
            "X-Mailtrail-Signature",
            sign(secret.expose(), &timestamp, &body),
        );
    }
    let mut response = request
        .send(&body[..])
        .map_err(|e| transport_error(c, &origin, e))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let excerpt = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map(|t| {
            let t = one_line(t.trim()).replace(c.url.expose(), "<url>");
            let t = match &secret {
                Some(s) if !s.expose().is_empty() => t.replace(s.expose(), "<redacted>"),
                _ => t,
            };
            if t.is_empty() {
                String::new()
            } else {
                format!(": {}", shorten(&t, EXCERPT))
            }
        })
        .unwrap_or_default();
    let retryable = status == 429 || status == 408 || status >= 500;
    let hint = if (300..400).contains(&status) {
        " (redirects are not followed: configure the final URL)"
    } else if status == 401 || status == 403 {
        " (check the URL's token or the receiver's secret)"
    } else {
        ""
    };
    let mut err = DeliveryError::new(
        &c.name,
        KIND,
        FailureKind::Rejected,
        retryable,
        format!("POST {origin}/… answered HTTP {status}{excerpt}{hint}"),
    )
    .with_status(status);
    err.retry_after = retry_after;
    Err(err)
}

/// A transport failure, described without the URL's path or query.
fn transport_error(c: &WebhookChannel, origin: &str, e: ureq::Error) -> DeliveryError {
    use ureq::Error as E;
    let (failure, retryable, what) = match &e {
        E::Timeout(t) => (FailureKind::Timeout, true, format!("timed out ({t})")),
        E::HostNotFound => (
            FailureKind::Connect,
            true,
            "host name not found".to_string(),
        ),
        E::ConnectionFailed => (FailureKind::Connect, true, "connection failed".to_string()),
        E::ConnectProxyFailed(_) => (
            FailureKind::Connect,
            true,
            "the proxy refused the connection".to_string(),
        ),
        E::Io(io) => {
            let (failure, what) = io_failure(io);
            (failure, true, format!("{what} ({io})"))
        }
        E::Rustls(r) => (FailureKind::Tls, false, format!("TLS failed: {r}")),
        E::Tls(t) => (FailureKind::Tls, false, format!("TLS failed: {t}")),
        E::Pem(_) => (
            FailureKind::Config,
            false,
            "a CA certificate is not PEM".to_string(),
        ),
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl => (
            FailureKind::Config,
            false,
            "the URL or proxy cannot be used".to_string(),
        ),
        E::Protocol(p) => (
            FailureKind::Protocol,
            true,
            format!("HTTP protocol error ({p})"),
        ),
        _ => (FailureKind::Protocol, true, "request failed".to_string()),
    };
    let what = what.replace(c.url.expose(), "<url>");
    DeliveryError::new(
        &c.name,
        KIND,
        failure,
        retryable,
        format!("POST {origin}/…: {what}"),
    )
}
