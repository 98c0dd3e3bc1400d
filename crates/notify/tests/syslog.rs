//! Syslog and CEF against real local receivers (UDP, TCP with octet
//! counting, TLS with a private CA from `openssl`). RFC 5424 lines are
//! parsed with syslog_loose, as the SIEM side of a test would; CEF records
//! with a parser written here from the CEF specification's escaping rules,
//! independent of the code that writes them.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mailtrail_notify::{
    deliver, Channel, FailureKind, SyslogChannel, SyslogFormat, SyslogTransport,
};
use syslog_loose::{parse_message, Variant};
use tokio_rustls::rustls;

fn channel(address: String, transport: SyslogTransport, format: SyslogFormat) -> SyslogChannel {
    SyslogChannel {
        name: "siem".into(),
        address,
        transport,
        format,
        facility: Some("local4".into()),
        app_name: None,
        hostname: Some("mailtrail-host".into()),
        ca_file: None,
        server_name: None,
        timeout_secs: Some(5),
        min_severity: mailtrail_notify::Severity::Low,
    }
}

/// One frame of octet-counted syslog (RFC 6587 §3.4.1) from a stream.
fn read_frame(r: &mut impl Read) -> String {
    let mut len = Vec::new();
    let mut b = [0u8; 1];
    loop {
        r.read_exact(&mut b).unwrap();
        if b[0] == b' ' {
            break;
        }
        assert!(b[0].is_ascii_digit(), "octet count expected");
        len.push(b[0]);
    }
    let n: usize = String::from_utf8(len).unwrap().parse().unwrap();
    let mut frame = vec![0u8; n];
    r.read_exact(&mut frame).unwrap();
    // Nothing follows: the connection ends after the frame.
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "one frame per connection");
    String::from_utf8(frame).unwrap()
}

/// A listener on 127.0.0.1 whose first connection `serve` gets on a
/// thread of its own (with a read timeout of 5 s); its port.
fn listen(serve: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        serve(s);
    });
    port
}

type TlsStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// As [`listen`], the connection inside TLS with `pki`'s certificate.
fn listen_tls(pki: &common::Pki, serve: impl FnOnce(TlsStream) + Send + 'static) -> u16 {
    let config = pki.server_config();
    listen(move |s| {
        let conn = rustls::ServerConnection::new(config).unwrap();
        serve(rustls::StreamOwned::new(conn, s));
    })
}

/// An RFC 5424 channel over TLS to localhost:`port`, trusting `ca_file`.
fn tls_channel(port: u16, ca_file: PathBuf) -> SyslogChannel {
    let mut c = channel(
        format!("localhost:{port}"),
        SyslogTransport::Tls,
        SyslogFormat::Rfc5424,
    );
    c.ca_file = Some(ca_file);
    c
}

fn udp_receiver() -> (UdpSocket, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = s.local_addr().unwrap().to_string();
    (s, addr)
}

fn udp_receive(s: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn assert_rfc5424(line: &str) {
    // MSG starts with the UTF-8 BOM (RFC 5424 §6.4).
    assert!(
        line.contains("] \u{feff}mailtrail alert 42 [high]"),
        "{line}"
    );
    let m = parse_message(line, Variant::RFC5424);
    assert_eq!(m.protocol, syslog_loose::Protocol::RFC5424(1));
    assert_eq!(m.facility, Some(syslog_loose::SyslogFacility::LOG_LOCAL4));
    assert_eq!(m.severity, Some(syslog_loose::SyslogSeverity::SEV_ERR));
    assert_eq!(m.hostname, Some("mailtrail-host"));
    assert_eq!(m.appname, Some("mailtrail"));
    assert_eq!(m.msgid, Some("alert"));
    assert_eq!(
        m.timestamp.unwrap().to_rfc3339(),
        "2026-11-27T05:05:03+00:00"
    );
    assert_eq!(m.structured_data.len(), 1);
    let sd = &m.structured_data[0];
    assert_eq!(sd.id, "mailtrail@32473");
    let params: Vec<(String, String)> = sd
        .params()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {params:?}"))
    };
    assert_eq!(get("alertId"), "42");
    assert_eq!(get("ruleId"), "confidential-to-external");
    assert_eq!(get("rule"), "社外秘の社外送信");
    assert_eq!(get("severity"), "high");
    assert_eq!(get("subject"), "11月分 \"顧客\" リスト [送付]");
    assert_eq!(get("matched"), "社外秘_顧客リスト.xlsx");
    assert_eq!(get("from"), "山田 太郎 <yamada@example.co.jp>");
    assert_eq!(get("to"), "partner@example.com,yamada.private@gmail.com");
    assert_eq!(get("messageId"), "20261127050500.abc@example.co.jp");
    assert_eq!(get("direction"), "outbound");
    assert_eq!(get("url"), "https://mailtrail.example.co.jp/alerts/42");
    // The BOM was checked on the wire above; parsers differ on keeping it.
    assert_eq!(
        m.msg.trim_start_matches('\u{feff}'),
        "mailtrail alert 42 [high] 社外秘の社外送信: 11月分 \"顧客\" リスト [送付]"
    );
}

/// A notice whose subject needs SD-PARAM escaping.
fn notice() -> mailtrail_notify::AlertNotice {
    let mut n = common::notice();
    n.message.subject = "11月分 \"顧客\" リスト [送付]".into();
    n
}

#[test]
fn rfc5424_over_udp() {
    let (s, addr) = udp_receiver();
    let c = channel(addr, SyslogTransport::Udp, SyslogFormat::Rfc5424);
    deliver(&Channel::Syslog(c), &notice()).expect("sent");
    assert_rfc5424(&udp_receive(&s));
}

#[test]
fn rfc5424_over_tcp_octet_counting() {
    let (tx, rx) = mpsc::channel();
    let port = listen(move |mut s| tx.send(read_frame(&mut s)).unwrap());
    let c = channel(
        format!("127.0.0.1:{port}"),
        SyslogTransport::Tcp,
        SyslogFormat::Rfc5424,
    );
    deliver(&Channel::Syslog(c), &notice()).expect("sent");
    let line = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_rfc5424(&line);
}

#[test]
fn rfc5424_over_tls() {
    let pki = common::pki();
    let (tx, rx) = mpsc::channel();
    let port = listen_tls(&pki, move |mut tls| tx.send(read_frame(&mut tls)).unwrap());
    let c = tls_channel(port, pki.ca.clone());
    deliver(&Channel::Syslog(c), &notice()).expect("sent");
    assert_rfc5424(&rx.recv_timeout(Duration::from_secs(5)).unwrap());
}

#[test]
fn tls_with_an_untrusted_certificate_is_permanent() {
    let pki = common::pki();
    let other = common::pki();
    let port = listen_tls(&pki, |mut tls| {
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf);
    });
    let c = tls_channel(port, other.ca.clone());
    let e = deliver(&Channel::Syslog(c), &notice()).unwrap_err();
    assert_eq!(e.failure, FailureKind::Tls, "{e}");
    assert!(!e.is_retryable());
}

#[test]
fn tcp_refused_is_retryable() {
    let c = channel(
        format!("127.0.0.1:{}", common::closed_port()),
        SyslogTransport::Tcp,
        SyslogFormat::Cef,
    );
    let e = deliver(&Channel::Syslog(c), &notice()).unwrap_err();
    assert_eq!(e.failure, FailureKind::Connect, "{e}");
    assert!(e.is_retryable());
}

/// Split a CEF record into its 7 header fields and extension pairs,
/// undoing the escapes of the CEF specification.
fn parse_cef(record: &str) -> (Vec<String>, Vec<(String, String)>) {
    let body = record.strip_prefix("CEF:").expect("CEF prefix");
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while header.len() < 7 {
        let c = chars.next().expect("7 header fields");
        match c {
            '\\' => cur.push(chars.next().unwrap()),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // Extension: key=value pairs; a key starts after a space and runs to an
    // unescaped '='; values may contain spaces.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut key = String::new();
    let mut value = String::new();
    let mut in_value = false;
    let mut it = ext.chars().peekable();
    while let Some(c) = it.next() {
        if !in_value {
            if c == '=' {
                in_value = true;
            } else {
                key.push(c);
            }
            continue;
        }
        match c {
            '\\' => match it.next().unwrap() {
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                other => value.push(other),
            },
            ' ' => {
                // A space starts the next key when a `key=` follows.
                let rest: String = it.clone().collect();
                let next_key = rest
                    .split_once('=')
                    .map(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()));
                if next_key == Some(true) {
                    pairs.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                    in_value = false;
                } else {
                    value.push(' ');
                }
            }
            c => value.push(c),
        }
    }
    pairs.push((key, value));
    (header, pairs)
}

#[test]
fn cef_over_udp_round_trips_hostile_values() {
    let hostile = "a|b\\c=d\n";
    let mut n = common::notice();
    n.rule_id = hostile.into();
    n.rule_name = format!("名前 {hostile}");
    n.message.subject = format!("件名 {hostile} x=y");
    n.matched_text = hostile.into();
    n.condition = "keywords in subject".into();
    let (s, addr) = udp_receiver();
    let c = channel(addr, SyslogTransport::Udp, SyslogFormat::Cef);
    deliver(&Channel::Syslog(c), &n).expect("sent");
    let line = udp_receive(&s);
    assert!(
        line.starts_with("<163>Nov 27 05:05:03 mailtrail-host CEF:0|"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    let record = &line[line.find("CEF:").unwrap()..];
    let (header, ext) = parse_cef(record);
    assert_eq!(
        header,
        vec![
            "0",
            "mailtrail",
            "mailtrail",
            env!("CARGO_PKG_VERSION"),
            // Header fields cannot hold line breaks: a space instead
            // (the display name is also trimmed, as everywhere it is shown).
            "a|b\\c=d ",
            "名前 a|b\\c=d",
            "8",
        ]
    );
    let get = |k: &str| {
        ext.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {ext:?}"))
    };
    assert_eq!(get("cs5Label"), "subject");
    assert_eq!(get("cs5"), format!("件名 {hostile} x=y"));
    assert_eq!(get("cs3Label"), "matchedText");
    assert_eq!(get("cs3"), hostile);
    assert_eq!(get("cs1"), format!("名前 {hostile}"));
    assert_eq!(get("externalId"), "42");
    assert_eq!(get("rt"), "1795755903000");
    assert_eq!(get("start"), "1795755900000");
    assert_eq!(get("suser"), "山田 太郎 <yamada@example.co.jp>");
    assert_eq!(get("duser"), "partner@example.com,yamada.private@gmail.com");
    assert_eq!(get("deviceDirection"), "1");
    assert_eq!(get("cn1"), "1234");
    assert_eq!(get("cs4"), "20261127050500.abc@example.co.jp");
    assert_eq!(get("cs6"), "https://mailtrail.example.co.jp/alerts/42");
}

#[test]
fn cef_escaping_is_exact() {
    use mailtrail_notify::syslog::{cef_header_escape, cef_value_escape};
    assert_eq!(cef_header_escape("a|b\\c=d\n"), "a\\|b\\\\c=d ");
    assert_eq!(cef_value_escape("a|b\\c=d\n"), "a|b\\\\c\\=d\\n");
    assert_eq!(cef_value_escape("x\r\ny"), "x\\r\\ny");
}

#[test]
fn rfc5424_line_is_exact() {
    let n = common::notice();
    let line = mailtrail_notify::syslog::rfc5424(&n, 20, "host", "mailtrail", 7);
    assert_eq!(
        line,
        "<163>1 2026-11-27T05:05:03.000Z host mailtrail 7 alert [mailtrail@32473 \
alertId=\"42\" ruleId=\"confidential-to-external\" rule=\"社外秘の社外送信\" severity=\"high\" \
condition=\"keywords in attachment name\" matched=\"社外秘_顧客リスト.xlsx\" messageNumber=\"1234\" \
messageId=\"20261127050500.abc@example.co.jp\" time=\"2026-11-27T05:05:00Z\" \
subject=\"11月分 顧客リスト送付\" from=\"山田 太郎 <yamada@example.co.jp>\" \
to=\"partner@example.com,yamada.private@gmail.com\" direction=\"outbound\" \
url=\"https://mailtrail.example.co.jp/alerts/42\"] \u{feff}mailtrail alert 42 [high] 社外秘の社外送信: 11月分 顧客リスト送付"
    );
}
