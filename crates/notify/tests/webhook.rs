//! Webhooks against a real local HTTP receiver (std sockets): it records
//! each request, verifies the signature with `verify_signature` as a
//! receiver would, and answers with the status its path asks for, or
//! answers too late.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use mailtrail_notify::{
    deliver, verify_signature, AlertNotice, Channel, FailureKind, Lang, Secret, WebhookChannel,
    WebhookFormat,
};

const SECRET: &str = "webhook-secret-テスト";

use common::http::{receiver, Received, Receiver};

fn channel(port: u16, path: &str, format: WebhookFormat) -> WebhookChannel {
    WebhookChannel {
        name: "hook".into(),
        url: Secret::new(format!("http://127.0.0.1:{port}{path}")),
        format,
        secret: Some(Secret::new(SECRET)),
        secret_file: None,
        ca_file: None,
        proxy: None,
        lang: Lang::Ja,
        timezone: Some("Asia/Tokyo".into()),
        timeout_secs: Some(1),
        min_severity: mailtrail_notify::Severity::Low,
    }
}

fn last(r: &Receiver) -> Received {
    r.got
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a request arrived")
}

/// What a new receiver got when `notice` was delivered to it through a
/// channel of `format` posting to `path`.
fn delivered(path: &str, format: WebhookFormat, notice: &AlertNotice) -> Received {
    let r = receiver();
    let c = channel(r.port, path, format);
    deliver(&Channel::Webhook(c), notice).expect("delivered");
    last(&r)
}

/// The request is signed, and the signature verifies as a receiver would
/// check it (and fails for a changed body or another secret).
fn assert_signed(req: &Received) {
    let ts = req
        .header("X-Mailtrail-Timestamp")
        .expect("timestamp header");
    let sig = req
        .header("X-Mailtrail-Signature")
        .expect("signature header");
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    let now = chrono::Utc::now().timestamp();
    let t: i64 = ts.parse().unwrap();
    assert!((now - t).abs() < 60, "the timestamp is current");
    assert!(verify_signature(SECRET, ts, &req.body, sig));
    assert!(!verify_signature("another", ts, &req.body, sig));
    let mut changed = req.body.clone();
    changed.push(b' ');
    assert!(!verify_signature(SECRET, ts, &changed, sig));
    assert!(!verify_signature(SECRET, "0", &req.body, sig));
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(req.header("X-Mailtrail-Alert-Id"), Some("42"));
}

#[test]
fn generic_is_the_notice_as_json() {
    let req = delivered("/hook", WebhookFormat::Generic, &common::notice());
    assert_eq!(req.path, "/hook");
    assert_signed(&req);
    let expected = serde_json::json!({
        "alert_id": 42,
        "rule_id": "confidential-to-external",
        "rule_name": "社外秘の社外送信",
        "severity": "high",
        "condition": "keywords in attachment name",
        "matched_text": "社外秘_顧客リスト.xlsx",
        "message": {
            "id": 1234,
            "message_id": "20261127050500.abc@example.co.jp",
            "time": "2026-11-27T05:05:00Z",
            "subject": "11月分 顧客リスト送付",
            "from": "山田 太郎 <yamada@example.co.jp>",
            "recipients": ["partner@example.com", "yamada.private@gmail.com"],
            "direction": "outbound"
        },
        "console_url": "https://mailtrail.example.co.jp/alerts/42",
        "raised_at": "2026-11-27T05:05:03Z"
    });
    assert_eq!(req.json(), expected);
    // The body is UTF-8 JSON, Japanese as it is (not \u escapes).
    assert!(String::from_utf8(req.body.clone())
        .unwrap()
        .contains("社外秘の社外送信"));
    let back: mailtrail_notify::AlertNotice = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(back, common::notice());
}

#[test]
fn slack_message_shape() {
    let mut n = common::notice();
    n.message.subject = "<!channel> 至急 & <http://evil.example|確認>".into();
    let req = delivered("/services/T000/B000/XXXX", WebhookFormat::Slack, &n);
    assert_signed(&req);
    let v = req.json();
    assert_eq!(
        v["text"],
        "[mailtrail] 高 社外秘の社外送信: &lt;!channel&gt; 至急 &amp; &lt;http://evil.example|確認&gt;"
    );
    let blocks = v["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["header", "section", "section", "actions", "context"]
    );
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "[高] 社外秘の社外送信");
    let fields = blocks[1]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 8);
    assert!(fields
        .iter()
        .all(|f| f["type"] == "mrkdwn" && f["verbatim"] == true));
    assert_eq!(fields[0]["text"], "*重要度*\n高");
    assert_eq!(
        fields[2]["text"],
        "*件名*\n&lt;!channel&gt; 至急 &amp; &lt;http://evil.example|確認&gt;"
    );
    assert_eq!(
        fields[5]["text"],
        "*宛先*\npartner@example.com, yamada.private@gmail.com"
    );
    assert_eq!(
        blocks[2]["text"]["text"],
        "*一致した内容*\n社外秘_顧客リスト.xlsx"
    );
    assert_eq!(
        blocks[3]["elements"][0]["url"],
        "https://mailtrail.example.co.jp/alerts/42"
    );
    assert_eq!(blocks[3]["elements"][0]["text"]["text"], "コンソールで開く");
}

#[test]
fn teams_adaptive_card_shape() {
    let mut n = common::notice();
    n.message.subject = "[請求書](http://evil.example) *至急*".into();
    let req = delivered("/workflows/abc", WebhookFormat::Teams, &n);
    assert_signed(&req);
    let v = req.json();
    assert_eq!(v["type"], "message");
    let att = &v["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][1]["text"], "\\[高\\] 社外秘の社外送信");
    assert_eq!(card["body"][1]["color"], "Attention");
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert_eq!(card["body"][2]["type"], "FactSet");
    assert_eq!(
        facts[0],
        serde_json::json!({"title": "重要度", "value": "高"})
    );
    let subject = facts.iter().find(|f| f["title"] == "件名").unwrap();
    assert_eq!(
        subject["value"],
        "\\[請求書\\](http://evil.example) \\*至急\\*"
    );
    let time = facts.iter().find(|f| f["title"] == "日時").unwrap();
    assert_eq!(time["value"], "2026/11/27 14:05 (JST)");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://mailtrail.example.co.jp/alerts/42"
    );
}

#[test]
fn statuses_are_classified() {
    let r = receiver();
    let run = |path: &str| {
        let c = channel(r.port, path, WebhookFormat::Generic);
        deliver(&Channel::Webhook(c), &common::notice()).unwrap_err()
    };
    let e = run("/500");
    assert!(e.is_retryable());
    assert_eq!((e.failure, e.status), (FailureKind::Rejected, Some(500)));
    assert!(e.to_string().contains("HTTP 500: boom"), "{e}");

    let e = run("/400");
    assert!(!e.is_retryable());
    assert_eq!(e.status, Some(400));
    assert!(e.to_string().contains("invalid_payload"), "{e}");

    let e = run("/429");
    assert!(e.is_retryable());
    assert_eq!(e.status, Some(429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    let e = run("/301");
    assert!(!e.is_retryable());
    assert_eq!(e.status, Some(301));

    // The URL's path (where Slack and Teams keep their token) is never shown.
    let c = channel(r.port, "/secret-token-path/500", WebhookFormat::Generic);
    let e = deliver(&Channel::Webhook(c), &common::notice()).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("secret-token-path"), "{text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{}/…", r.port)),
        "{text}"
    );
}

#[test]
fn slow_receiver_times_out() {
    let r = receiver();
    let c = channel(r.port, "/slow", WebhookFormat::Generic);
    let start = Instant::now();
    let e = deliver(&Channel::Webhook(c), &common::notice()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.failure, FailureKind::Timeout, "{e}");
    assert!(e.is_retryable());
}

#[test]
fn refused_connection_is_retryable() {
    let c = channel(common::closed_port(), "/", WebhookFormat::Generic);
    let e = deliver(&Channel::Webhook(c), &common::notice()).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.failure, FailureKind::Connect, "{e}");
}

#[test]
fn unsigned_without_secret_and_secret_file_used() {
    let r = receiver();
    let mut c = channel(r.port, "/a", WebhookFormat::Generic);
    c.secret = None;
    deliver(&Channel::Webhook(c.clone()), &common::notice()).unwrap();
    let req = last(&r);
    assert_eq!(req.header("X-Mailtrail-Signature"), None);
    assert_eq!(req.header("X-Mailtrail-Timestamp"), None);

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, format!("{SECRET}\n")).unwrap();
    c.secret_file = Some(f);
    deliver(&Channel::Webhook(c), &common::notice()).unwrap();
    assert_signed(&last(&r));
}

#[test]
fn signature_vector() {
    // Independently computed: printf '%s.%s' 1700000000 '{"a":1}' |
    //   openssl dgst -sha256 -hmac key
    let sig = mailtrail_notify::sign("key", "1700000000", br#"{"a":1}"#);
    let expected = openssl_hmac("key", "1700000000.{\"a\":1}");
    assert_eq!(sig, format!("sha256={expected}"));
    assert!(verify_signature("key", "1700000000", br#"{"a":1}"#, &sig));
    assert!(verify_signature(
        "key",
        "1700000000",
        br#"{"a":1}"#,
        &sig.to_uppercase().replace("SHA256=", "sha256=")
    ));
    assert!(!verify_signature(
        "key",
        "1700000000",
        br#"{"a":1}"#,
        "sha256=zz"
    ));
    assert!(!verify_signature(
        "key",
        "1700000000",
        br#"{"a":1}"#,
        &sig[7..]
    ));
}

fn openssl_hmac(key: &str, data: &str) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
