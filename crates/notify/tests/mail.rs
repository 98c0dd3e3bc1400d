//! Alert mail against a real local SMTP peer: a small sink written here
//! that speaks EHLO, STARTTLS (rustls, with a certificate from a private
//! CA made by `openssl`), implicit TLS, AUTH PLAIN / LOGIN and DATA, and
//! records what it was told and whether AUTH came inside TLS. The received
//! message is parsed with mail-parser to check the decoded Japanese.

mod common;

use std::net::TcpListener;
use std::path::Path;

use mail_parser::MimeHeaders as _;
use mailtrail_notify::{
    deliver, deliver_digest, Channel, ChannelKind, FailureKind, Lang, MailChannel, Secret, StartTls,
};

use common::smtp::{sink, wait_sessions, Mode, Sink};
use common::{parse_mail, Pki};

/// The channel's AUTH user.
const USER: &str = "mailtrail@example.co.jp";

fn channel(port: u16, ca: &Path) -> MailChannel {
    MailChannel {
        name: "security-team".into(),
        host: "localhost".into(),
        port: Some(port),
        starttls: None,
        implicit_tls: false,
        user: Some(USER.into()),
        password: None,
        password_file: None,
        from: "mailtrail 監視 <mailtrail@example.co.jp>".into(),
        to: vec!["security@example.co.jp".into(), "soc@example.co.jp".into()],
        ca_file: Some(ca.to_path_buf()),
        helo_name: Some("mailtrail.example.co.jp".into()),
        lang: Lang::Ja,
        timezone: Some("Asia/Tokyo".into()),
        timeout_secs: Some(5),
        min_severity: mailtrail_notify::Severity::Low,
        daily_digest: false,
    }
}

/// The channel without TLS or AUTH.
fn plain_channel(port: u16) -> MailChannel {
    let mut c = channel(port, Path::new("/nonexistent"));
    c.ca_file = None;
    c.starttls = Some(StartTls::None);
    c.user = None;
    c
}

/// A sink in `mode` accepting [`USER`] with `password`, its certificate
/// from a new private CA (`pki.ca`).
fn tls_sink(mode: Mode, password: &str) -> (Pki, Sink) {
    let pki = common::pki();
    let sink = sink(mode, pki.server_config(), USER, password);
    (pki, sink)
}

fn header_section(data: &[u8]) -> String {
    let text = String::from_utf8(data.to_vec()).expect("the message is UTF-8 bytes");
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[test]
fn starttls_auth_and_japanese_mail() {
    let (pki, sink) = tls_sink(Mode::StartTls, "s3cret-パス");
    let pw_file = pki.dir.path().join("smtp-password");
    std::fs::write(&pw_file, "s3cret-パス\n").unwrap();
    let mut c = channel(sink.port, &pki.ca);
    c.password_file = Some(pw_file);
    deliver(&Channel::Mail(c), &common::notice()).expect("delivered");

    let s = wait_sessions(&sink, 1).remove(0);
    assert!(s.tls, "STARTTLS was used");
    assert_eq!(s.auth_in_tls, Some(true), "AUTH came inside TLS");
    assert_eq!(s.auth_user.as_deref(), Some("mailtrail@example.co.jp"));
    assert_eq!(s.auth_password.as_deref(), Some("s3cret-パス"));
    assert_eq!(s.mail_from.as_deref(), Some("<mailtrail@example.co.jp>"));
    assert_eq!(
        s.rcpt_to,
        vec!["<security@example.co.jp>", "<soc@example.co.jp>"]
    );
    let data = s.data.expect("DATA received");
    let headers = header_section(&data);
    assert!(
        headers.is_ascii(),
        "headers are encoded (RFC 2047), not raw UTF-8:\n{headers}"
    );
    assert!(
        headers.contains("Auto-Submitted: auto-generated"),
        "{headers}"
    );
    assert!(
        headers.contains("Message-ID: <mailtrail.alert.42.1795755903@mailtrail.example.co.jp>"),
        "{headers}"
    );

    let msg = parse_mail(&data);
    assert_eq!(
        msg.subject(),
        Some("[mailtrail] 高 社外秘の社外送信: 11月分 顧客リスト送付")
    );
    assert!(msg.date().is_some(), "a Date header");
    if std::env::var_os("MAILTRAIL_SHOW_MAIL").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&data));
    }
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("mailtrail 監視"));
    assert_eq!(from.address(), Some("mailtrail@example.co.jp"));
    let to: Vec<_> = msg
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap().to_string())
        .collect();
    assert_eq!(to, vec!["security@example.co.jp", "soc@example.co.jp"]);
    let ct = msg.content_type().unwrap();
    assert_eq!(ct.ctype(), "text");
    assert_eq!(ct.subtype(), Some("plain"));
    assert_eq!(
        ct.attribute("charset").map(|c| c.to_ascii_lowercase()),
        Some("utf-8".into())
    );
    let body = msg.body_text(0).unwrap().replace("\r\n", "\n");
    let expected = "\
mailtrail が監視ルールに一致するメールを検出しました。

重要度: 高
ルール: 社外秘の社外送信 (confidential-to-external)
一致した条件: keywords in attachment name
一致した内容: 社外秘_顧客リスト.xlsx
件名: 11月分 顧客リスト送付
差出人: 山田 太郎 <yamada@example.co.jp>
宛先: partner@example.com, yamada.private@gmail.com
方向: 社外宛
日時: 2026/11/27 14:05 (JST)
メッセージID: <20261127050500.abc@example.co.jp>
メッセージ番号: 1234
アラートID: 42
検出日時: 2026/11/27 14:05 (JST)

コンソール: https://mailtrail.example.co.jp/alerts/42

-- 
このメールは mailtrail が自動送信しています。
";
    assert_eq!(body, expected);
}

#[test]
fn implicit_tls_english_without_auth() {
    let (pki, sink) = tls_sink(Mode::Implicit, "unused");
    let mut c = channel(sink.port, &pki.ca);
    c.implicit_tls = true;
    c.user = None;
    c.lang = Lang::En;
    c.timezone = None;
    deliver(&Channel::Mail(c), &common::notice()).expect("delivered");
    let s = wait_sessions(&sink, 1).remove(0);
    assert!(s.tls);
    assert_eq!(s.auth_in_tls, None, "no AUTH without a user");
    let data = s.data.unwrap();
    let msg = parse_mail(&data);
    assert_eq!(
        msg.subject(),
        Some("[mailtrail] High 社外秘の社外送信: 11月分 顧客リスト送付")
    );
    let body = msg.body_text(0).unwrap();
    assert!(body.contains("Severity: High\r\n") || body.contains("Severity: High\n"));
    assert!(body.contains("Date: 2026/11/27 05:05 (UTC)"), "{body}");
    assert!(body.contains("Direction: outbound"), "{body}");
}

#[test]
fn wrong_password_is_permanent_and_not_shown() {
    let (pki, sink) = tls_sink(Mode::StartTls, "the-right-one");
    let mut c = channel(sink.port, &pki.ca);
    c.password = Some(Secret::new("wrong-password-123"));
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert_eq!(err.kind, ChannelKind::Mail);
    assert_eq!(err.channel, "security-team");
    assert_eq!(err.failure, FailureKind::Auth, "{err}");
    assert_eq!(err.status, Some(535));
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(!text.contains("wrong-password-123"), "{text}");
    assert!(text.contains("localhost:"), "{text}");
    let s = wait_sessions(&sink, 1).remove(0);
    assert_eq!(s.auth_in_tls, Some(true));
    assert!(s.data.is_none(), "nothing was sent after the refusal");
}

#[test]
fn refused_connection_is_retryable() {
    let port = common::closed_port();
    let mut c = plain_channel(port);
    c.host = "127.0.0.1".into();
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.failure, FailureKind::Connect, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn required_starttls_not_offered_is_permanent() {
    let (pki, sink) = tls_sink(Mode::Plain, "unused");
    let mut c = channel(sink.port, &pki.ca);
    c.user = None;
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.failure, FailureKind::Tls, "{err}");
}

#[test]
fn untrusted_certificate_is_permanent() {
    let (_pki, sink) = tls_sink(Mode::StartTls, "unused");
    let other = common::pki();
    let mut c = channel(sink.port, &other.ca);
    c.user = None;
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert_eq!(err.failure, FailureKind::Tls, "{err}");
    assert!(!err.is_retryable());
    let s = wait_sessions(&sink, 1).remove(0);
    assert!(s.data.is_none());
}

#[test]
fn digest_mail() {
    let (pki, sink) = tls_sink(Mode::StartTls, "pw-123456");
    let mut c = channel(sink.port, &pki.ca);
    c.password = Some(Secret::new("pw-123456"));
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    deliver_digest(&c, &[common::notice()], day).expect("delivered");
    let s = wait_sessions(&sink, 1).remove(0);
    let data = s.data.unwrap();
    let msg = parse_mail(&data);
    assert_eq!(
        msg.subject(),
        Some("[mailtrail] 日次ダイジェスト 2026/11/27（アラート 1 件）")
    );
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains("[高] 社外秘の社外送信 (confidential-to-external): 1 件"));
}

#[test]
fn deferred_mail_is_retryable() {
    let (_pki, sink) = tls_sink(Mode::Defer, "unused");
    let c = plain_channel(sink.port);
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.failure, FailureKind::Rejected);
    assert_eq!(err.status, Some(451));
    assert!(err.to_string().contains("temporarily rejected"), "{err}");
}

#[test]
fn silent_relay_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and never greets.
    // Not joined: it lets go of the connection by itself after the test.
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(s);
    });
    let mut c = plain_channel(port);
    c.timeout_secs = Some(1);
    let start = std::time::Instant::now();
    let err = deliver(&Channel::Mail(c), &common::notice()).unwrap_err();
    assert!(start.elapsed() < std::time::Duration::from_millis(2500));
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.failure, FailureKind::Timeout, "{err}");
}
