//! One notice through every kind of channel, configured from TOML as an
//! administrator would, delivered the way the server will (one thread per
//! channel): it must reach the SMTP sink, the webhook receiver and the
//! syslog receiver — Japanese intact — within 5 seconds.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use mailtrail_notify::deliver;

#[test]
fn one_notice_reaches_mail_webhook_and_syslog_within_5_seconds() {
    let pki = common::pki();
    let smtp = common::smtp::sink(
        common::smtp::Mode::StartTls,
        pki.server_config(),
        "mailtrail",
        "relay-pw",
    );
    let http = common::http::receiver();
    let syslog = UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    let text = format!(
        r#"
[notify]

[[notify.mail]]
name = "security-team"
host = "localhost"
port = {smtp_port}
user = "mailtrail"
password = "relay-pw"
from = "mailtrail <mailtrail@example.co.jp>"
to = ["security@example.co.jp"]
ca_file = {ca:?}
timezone = "Asia/Tokyo"
timeout_secs = 4

[[notify.webhook]]
name = "hook"
url = "http://127.0.0.1:{http_port}/hook"
secret = "hook-secret"
timeout_secs = 4

[[notify.syslog]]
name = "siem"
address = "{syslog_addr}"
transport = "udp"
format = "rfc5424"
"#,
        smtp_port = smtp.port,
        ca = pki.ca.display().to_string(),
        http_port = http.port,
        syslog_addr = syslog.local_addr().unwrap(),
    );
    let config = common::parse(&text).unwrap();
    config.validate().unwrap();
    let notice = common::notice();

    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = config
            .channels()
            .into_iter()
            .map(|c| {
                let n = &notice;
                s.spawn(move || (c.name().to_string(), deliver(&c, n)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (name, r) in &results {
        assert!(r.is_ok(), "{name}: {r:?}");
    }

    let mut buf = vec![0u8; 65536];
    let (n, _) = syslog.recv_from(&mut buf).unwrap();
    let line = String::from_utf8(buf[..n].to_vec()).unwrap();
    let sessions = common::smtp::wait_sessions(&smtp, 1);
    let hook = http.got.lock().unwrap().last().cloned().unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    let data = sessions[0].data.clone().unwrap();
    let mail = common::parse_mail(&data);
    assert_eq!(
        mail.subject(),
        Some("[mailtrail] 高 社外秘の社外送信: 11月分 顧客リスト送付")
    );
    assert_eq!(sessions[0].auth_in_tls, Some(true));
    assert_eq!(hook.json()["message"]["subject"], "11月分 顧客リスト送付");
    assert!(mailtrail_notify::verify_signature(
        "hook-secret",
        hook.header("X-Mailtrail-Timestamp").unwrap(),
        &hook.body,
        hook.header("X-Mailtrail-Signature").unwrap()
    ));
    assert!(line.contains("subject=\"11月分 顧客リスト送付\""), "{line}");
}
