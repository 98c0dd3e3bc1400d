//! Syslog to a SIEM: RFC 5424 with structured data, or ArcSight CEF, over
//! UDP, TCP or TLS.
//!
//! - **RFC 5424** (`format = "rfc5424"`): the facts travel as one
//!   structured-data element `[mailtrail@32473 …]` that SIEMs turn into
//!   fields without a parser of ours, and MSG is a one-line summary in
//!   UTF-8 starting with the BOM, as RFC 5424 §6.4 asks for UTF-8 text.
//!   32473 is the private enterprise number reserved for documentation
//!   (RFC 5612): mailtrail has none of its own, and a receiver keys on the
//!   whole SD-ID anyway.
//! - **CEF** (`format = "cef"`): `CEF:0|mailtrail|mailtrail|version|rule id|
//!   rule name|severity 0–10|extension` after an RFC 3164 header (`<PRI>Mmm dd
//!   hh:mm:ss host`), the form ArcSight's specification shows and SIEMs'
//!   CEF collectors expect. Header fields escape `\` and `|`; extension
//!   values escape `\`, `=`, and write line breaks as `\n` / `\r`, so any
//!   subject round-trips. The facts use CEF's standard keys where one fits
//!   (`suser`, `duser`, `rt`, `start`, `externalId`, `deviceDirection`) and
//!   labelled custom strings (`cs1`…`cs6`) for the rest.
//! - **Transports**: UDP (one datagram, RFC 5426 — no delivery guarantee;
//!   a send error is still reported), TCP with octet-counting framing
//!   (RFC 6587 §3.4.1) and TLS with the same framing (RFC 5425), one
//!   connection per notice (alerts are rare; a kept connection would only
//!   be found dead at the worst moment). Timeouts on connect, handshake and
//!   write. The TLS session ends with close_notify so that a completed
//!   write means the receiver's TLS layer accepted the record.
//! - Text from mail is made one line (RFC 5424) or escaped (CEF): a subject
//!   cannot forge a second log line.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mailtrail_model::Direction;
use rustls_pki_types::ServerName;
use tokio_rustls::rustls;

use crate::config::{system_hostname, timeout, Lang, SyslogChannel, SyslogFormat, SyslogTransport};
use crate::error::{io_failure, ChannelKind, DeliveryError, FailureKind};
use crate::notice::{one_line, shorten, AlertNotice};
use crate::text::{bare_message_id, rule_name, MAX_MATCHED, MAX_RECIPIENTS, MAX_SUBJECT};

const KIND: ChannelKind = ChannelKind::Syslog;
/// Seconds to connect and to write, by default.
const DEFAULT_TIMEOUT: u64 = 10;
/// The structured-data ID of RFC 5424 lines.
pub const SD_ID: &str = "mailtrail@32473";

/// Facility numbers by name (RFC 5424 §6.2.1).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn facility(c: &SyslogChannel) -> Result<u8, DeliveryError> {
    let name = c.facility.as_deref().unwrap_or("local0");
    FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            DeliveryError::config(
                &c.name,
                KIND,
                format!("facility = {name:?} is not a syslog facility (local0 … local7, auth, authpriv, user, …)"),
            )
        })
}

/// Printable US-ASCII without spaces, at most `max` characters, or `-`.
fn header_field(text: &str, max: usize) -> String {
    let t: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".to_string()
    } else {
        t
    }
}

/// An SD-PARAM value: one line, with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The RFC 5424 line for a notice (without transport framing).
pub fn rfc5424(
    notice: &AlertNotice,
    facility: u8,
    hostname: &str,
    app_name: &str,
    proc_id: u32,
) -> String {
    let pri = u16::from(facility) * 8 + u16::from(notice.severity.syslog());
    let m = &notice.message;
    let mut params: Vec<(&str, String)> = vec![
        ("alertId", notice.alert_id.to_string()),
        ("ruleId", shorten(&notice.rule_id, 200)),
        ("rule", shorten(&notice.rule_name, 200)),
        ("severity", notice.severity.as_str().to_string()),
        ("condition", shorten(&notice.condition, 200)),
        ("matched", shorten(&notice.matched_text, MAX_MATCHED)),
        ("messageNumber", m.id.to_string()),
    ];
    if let Some(id) = &m.message_id {
        params.push(("messageId", bare_message_id(id)));
    }
    params.push((
        "time",
        m.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ));
    params.push(("subject", shorten(&m.subject, MAX_SUBJECT)));
    params.push(("from", shorten(&m.from, 300)));
    params.push(("to", recipients_joined(notice)));
    params.push(("direction", m.direction.as_str().to_string()));
    if let Some(url) = &notice.console_url {
        params.push(("url", url.clone()));
    }
    let sd: String = params
        .iter()
        .map(|(k, v)| format!(" {k}=\"{}\"", sd_value(v)))
        .collect();
    format!(
        "<{pri}>1 {} {} {} {} alert [{SD_ID}{sd}] \u{feff}{}",
        notice
            .raised_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        header_field(hostname, 255),
        header_field(app_name, 48),
        proc_id,
        summary(notice),
    )
}

/// `mailtrail alert 42 [high] rule: subject` on one line.
fn summary(notice: &AlertNotice) -> String {
    one_line(&format!(
        "mailtrail alert {} [{}] {}: {}",
        notice.alert_id,
        notice.severity.as_str(),
        rule_name(notice),
        crate::text::subject(notice, Lang::En, 120)
    ))
}

fn recipients_joined(notice: &AlertNotice) -> String {
    let all = &notice.message.recipients;
    let mut out = all
        .iter()
        .take(MAX_RECIPIENTS)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    if all.len() > MAX_RECIPIENTS {
        out.push_str(&format!(",…(+{})", all.len() - MAX_RECIPIENTS));
    }
    out
}

/// A CEF header field: `\` and `|` escaped, line breaks and other control
/// characters as spaces (CEF allows line breaks only in extension values).
pub fn cef_header_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\`, `=` escaped, CR and LF as `\r` and `\n`,
/// other control characters as spaces.
pub fn cef_value_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The CEF record for a notice (`CEF:0|…`, without the syslog header).
pub fn cef(notice: &AlertNotice) -> String {
    let m = &notice.message;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", millis(notice.raised_at).to_string()),
        ("externalId", notice.alert_id.to_string()),
        ("msg", shorten(&summary(notice), 1023)),
        ("suser", shorten(&m.from, 1023)),
        ("duser", shorten(&recipients_joined(notice), 1023)),
        ("start", millis(m.time).to_string()),
    ];
    match m.direction {
        Direction::Inbound => ext.push(("deviceDirection", "0".into())),
        Direction::Outbound => ext.push(("deviceDirection", "1".into())),
        Direction::Internal | Direction::Relayed => {}
    }
    ext.push(("cs1Label", "rule".into()));
    ext.push(("cs1", shorten(&notice.rule_name, 4000)));
    ext.push(("cs2Label", "condition".into()));
    ext.push(("cs2", shorten(&notice.condition, 4000)));
    ext.push(("cs3Label", "matchedText".into()));
    ext.push(("cs3", shorten(&notice.matched_text, MAX_MATCHED)));
    if let Some(id) = &m.message_id {
        ext.push(("cs4Label", "messageId".into()));
        ext.push(("cs4", shorten(&bare_message_id(id), 4000)));
    }
    ext.push(("cs5Label", "subject".into()));
    ext.push(("cs5", shorten(&m.subject, MAX_SUBJECT)));
    if let Some(url) = &notice.console_url {
        ext.push(("cs6Label", "consoleUrl".into()));
        ext.push(("cs6", shorten(url, 4000)));
    }
    ext.push(("cn1Label", "messageNumber".into()));
    ext.push(("cn1", m.id.to_string()));
    let ext = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", cef_value_escape(v)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "CEF:0|mailtrail|mailtrail|{}|{}|{}|{}|{ext}",
        env!("CARGO_PKG_VERSION"),
        cef_header_escape(&shorten(&notice.rule_id, 1023)),
        cef_header_escape(&shorten(&rule_name(notice), 512)),
        notice.severity.cef(),
    )
}

/// The CEF record after an RFC 3164 header (`<PRI>Nov 28 03:41:23 host `).
pub fn cef_line(notice: &AlertNotice, facility: u8, hostname: &str) -> String {
    let pri = u16::from(facility) * 8 + u16::from(notice.severity.syslog());
    format!(
        "<{pri}>{} {} {}",
        notice.raised_at.format("%b %e %H:%M:%S"),
        header_field(hostname, 255),
        cef(notice)
    )
}

/// `host` and `port` of `address`.
fn host_port(c: &SyslogChannel) -> Result<(String, u16), DeliveryError> {
    let default = if c.transport == SyslogTransport::Tls {
        6514
    } else {
        514
    };
    let a = c.address.trim();
    let bad = || {
        DeliveryError::config(
            &c.name,
            KIND,
            format!("address = {:?} is not host:port", c.address),
        )
    };
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => (h.to_string(), default),
            None => return Err(bad()),
        }
    } else if a.matches(':').count() == 1 {
        let (h, p) = a.split_once(':').ok_or_else(bad)?;
        (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
    } else {
        // A host name, or an IPv6 address without brackets (and so without
        // a port).
        (a.to_string(), default)
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// Check a channel's settings without connecting.
pub(crate) fn check(c: &SyslogChannel) -> Result<(), DeliveryError> {
    host_port(c)?;
    facility(c)?;
    if c.transport == SyslogTransport::Tls {
        tls_setup(c)?;
    } else if c.ca_file.is_some() || c.server_name.is_some() {
        return Err(DeliveryError::config(
            &c.name,
            KIND,
            "ca_file and server_name apply only with transport = \"tls\"",
        ));
    }
    Ok(())
}

fn tls_setup(
    c: &SyslogChannel,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), DeliveryError> {
    let (host, _) = host_port(c)?;
    let name = c.server_name.clone().unwrap_or(host);
    let server_name = ServerName::try_from(name.clone()).map_err(|_| {
        DeliveryError::config(
            &c.name,
            KIND,
            format!("{name:?} is not a host name or address for TLS (set server_name)"),
        )
    })?;
    let config = crate::tls::client_config(&c.name, KIND, c.ca_file.as_deref())?;
    Ok((config, server_name))
}

/// The line a channel sends for a notice.
pub fn line(c: &SyslogChannel, notice: &AlertNotice) -> Result<String, DeliveryError> {
    let facility = facility(c)?;
    let hostname = c.hostname.clone().unwrap_or_else(system_hostname);
    Ok(match c.format {
        SyslogFormat::Rfc5424 => rfc5424(
            notice,
            facility,
            &hostname,
            c.app_name.as_deref().unwrap_or("mailtrail"),
            std::process::id(),
        ),
        SyslogFormat::Cef => cef_line(notice, facility, &hostname),
    })
}

/// Deliver one notice.
pub(crate) fn deliver(c: &SyslogChannel, notice: &AlertNotice) -> Result<(), DeliveryError> {
    let line = line(c, notice)?;
    let (host, port) = host_port(c)?;
    let peer = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let io_err = |e: std::io::Error, step: &str| {
        if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return DeliveryError::new(
                &c.name,
                KIND,
                FailureKind::Tls,
                false,
                format!("{peer}: TLS failed: {t}"),
            );
        }
        let (failure, what) = io_failure(&e);
        DeliveryError::new(
            &c.name,
            KIND,
            failure,
            true,
            format!("{peer}: {step}: {what} ({e})"),
        )
    };
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| {
            DeliveryError::new(
                &c.name,
                KIND,
                FailureKind::Connect,
                true,
                format!("{peer}: cannot resolve the host ({e})"),
            )
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(DeliveryError::new(
            &c.name,
            KIND,
            FailureKind::Connect,
            true,
            format!("{peer}: the host has no address"),
        ));
    };
    let t = timeout(c.timeout_secs, DEFAULT_TIMEOUT);
    match c.transport {
        SyslogTransport::Udp => {
            let local: SocketAddr = if first.is_ipv6() {
                "[::]:0".parse().map_err(|_| bad_local(c))?
            } else {
                "0.0.0.0:0".parse().map_err(|_| bad_local(c))?
            };
            let socket = UdpSocket::bind(local).map_err(|e| io_err(e, "bind"))?;
            socket
                .set_write_timeout(Some(t))
                .map_err(|e| io_err(e, "set-up"))?;
            socket
                .send_to(line.as_bytes(), first)
                .map_err(|e| io_err(e, "send"))?;
            Ok(())
        }
        SyslogTransport::Tcp | SyslogTransport::Tls => {
            let framed = format!("{} {line}", line.len());
            let mut last = None;
            let mut stream = None;
            for addr in &addrs {
                match TcpStream::connect_timeout(addr, t) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let Some(stream) = stream else {
                let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
                return Err(io_err(e, "connect"));
            };
            stream
                .set_write_timeout(Some(t))
                .and_then(|_| stream.set_read_timeout(Some(t)))
                .map_err(|e| io_err(e, "set-up"))?;
            if c.transport == SyslogTransport::Tcp {
                let mut stream = stream;
                stream
                    .write_all(framed.as_bytes())
                    .and_then(|_| stream.flush())
                    .map_err(|e| io_err(e, "write"))?;
                let _ = stream.shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            let (config, server_name) = tls_setup(c)?;
            let conn = rustls::ClientConnection::new(config, server_name).map_err(|e| {
                DeliveryError::new(
                    &c.name,
                    KIND,
                    FailureKind::Tls,
                    false,
                    format!("{peer}: TLS set-up: {e}"),
                )
            })?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            tls.write_all(framed.as_bytes())
                .and_then(|_| tls.flush())
                .map_err(|e| io_err(e, "write"))?;
            tls.conn.send_close_notify();
            tls.flush().map_err(|e| io_err(e, "close"))?;
            Ok(())
        }
    }
}

fn bad_local(c: &SyslogChannel) -> DeliveryError {
    DeliveryError::config(&c.name, KIND, "cannot choose a local address")
}
