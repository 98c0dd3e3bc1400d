//! End-to-end through the binary: import fixtures, search, show, stats.
//!
//! The search fixtures (tests/fixtures/search, written by make_fixtures.py)
//! carry Japanese text in the encodings Japanese mail really uses, plus near
//! misses that must not match; each query must return exactly the expected
//! messages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    c.env_remove("MAILTRAIL_CONFIG")
        .env_remove("MAILTRAIL_DATA_DIR")
        .env_remove("MAILTRAIL_ORG_DOMAINS")
        .env("MAILTRAIL_TIMEZONE", "Asia/Tokyo");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search")
}

fn run(data: &Path, args: &[&str]) -> Output {
    let out = bin()
        .arg("--data-dir")
        .arg(data)
        .arg("--org-domain")
        .arg("example.co.jp")
        .args(args)
        .output()
        .expect("run mailtrail");
    assert!(
        out.status.success(),
        "mailtrail {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn imported() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &["import", "--quiet", fixtures().to_str().unwrap()],
    );
    dir
}

fn ids(data: &Path, query: &str) -> BTreeSet<String> {
    let out = run(
        data,
        &["search", "--format", "json", "--limit", "1000", query],
    );
    stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["message_id"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn expect(data: &Path, query: &str, numbers: &[u32]) {
    let want: BTreeSet<String> = numbers
        .iter()
        .map(|n| format!("search-{n:02}@example.co.jp"))
        .collect();
    assert_eq!(ids(data, query), want, "query {query:?}");
    let count = stdout(&run(data, &["search", "--count", query]));
    assert_eq!(count.trim(), want.len().to_string(), "count of {query:?}");
}

#[test]
fn japanese_and_width_insensitive_queries_find_exactly_their_messages() {
    let dir = imported();
    let data = dir.path();
    expect(data, "社外秘", &[1]);
    expect(data, "機密", &[2, 9]);
    expect(data, "顧客リスト", &[3]);
    expect(data, "ｼｬｶﾞｲﾋ", &[4, 5]);
    expect(data, "シャガイヒ", &[4, 5]);
    expect(data, "ＣＯＮＦＩＤＥＮＴＩＡＬ", &[6, 7]);
    expect(data, "confidential", &[6, 7]);
    expect(data, "filename:顧客リスト", &[3]);
    expect(data, "filename:機密", &[9]);
    expect(data, "subject:機密", &[]);
    expect(data, "body:機密", &[2]);
    expect(data, "見積書 direction:outbound", &[1]);
    expect(data, "confidential -to:acme-corp.example", &[6]);
    expect(
        data,
        "from:taro.yamada@example.co.jp has:attachment",
        &[3, 9],
    );
    expect(data, "\"社外の秘書\"", &[8]);
    // A query may start with a negation (not taken for a command-line flag).
    expect(data, "-from:taro.yamada@example.co.jp", &[]);
    expect(data, "-has:attachment 機密", &[2]);
}

#[test]
fn a_message_without_any_date_is_stored_not_rejected() {
    let input = tempfile::tempdir().unwrap();
    let eml = input.path().join("draft.eml");
    std::fs::write(
        &eml,
        "From: a@example.co.jp\r\nTo: b@partner.example\r\nSubject: draft\r\n\r\nno date at all\r\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        data.path(),
        &["import", "--quiet", eml.to_str().unwrap()],
    ));
    assert!(out.contains("1 new message(s)"), "{out}");
    assert!(out.contains("rejected input: none"), "{out}");
    assert_eq!(
        stdout(&run(data.path(), &["search", "--count", "draft"])).trim(),
        "1"
    );
}

#[test]
fn search_json_has_the_documented_fields() {
    let dir = imported();
    let out = run(dir.path(), &["search", "--format", "json", "顧客リスト"]);
    let line = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for field in [
        "id",
        "message_id",
        "date",
        "direction",
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "attachments",
        "size",
        "systems",
        "deliveries",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {v}");
    }
    assert_eq!(v["from"], "taro.yamada@example.co.jp");
    assert_eq!(v["to"][0], "hanako.sato@tokyo-shoji.co.jp");
    assert_eq!(v["direction"], "outbound");
    assert_eq!(v["attachments"][0]["filename"], "顧客リスト.xlsx");
    assert_eq!(v["date"], "2026-11-10T10:03:00+09:00");
}

#[test]
fn reimport_adds_nothing_and_raw_is_byte_identical() {
    let dir = imported();
    let data = dir.path();
    let again = stdout(&run(
        data,
        &["import", "--quiet", fixtures().to_str().unwrap()],
    ));
    assert!(again.contains("0 new message(s), 0 updated"), "{again}");
    let stats = stdout(&run(data, &["stats", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(v["messages"], 9);

    for name in ["02-shift-jis-body.eml", "03-rfc2231-attachment.eml"] {
        let original = std::fs::read(fixtures().join(name)).unwrap();
        let n: u32 = name[..2].parse().unwrap();
        let mid = format!("<search-{n:02}@example.co.jp>");
        let raw = run(data, &["show", "--raw", &mid]).stdout;
        assert_eq!(raw, original, "{name}");
    }
}

#[test]
fn show_decodes_shift_jis_and_iso_2022_jp() {
    let dir = imported();
    let text = stdout(&run(dir.path(), &["show", "search-02@example.co.jp"]));
    assert!(text.contains("機密情報の取り扱いについて"), "{text}");
    assert!(text.contains("取り扱い注意"), "{text}");
    let text = stdout(&run(dir.path(), &["show", "search-01@example.co.jp"]));
    assert!(text.contains("【社外秘】見積書の件"), "{text}");
    assert!(text.contains("お世話になっております"), "{text}");
    assert!(text.contains("山田 太郎"), "{text}");
}

#[test]
fn a_named_config_file_that_is_missing_is_an_error() {
    let out = bin()
        .args(["--config", "/nonexistent/mailtrail.toml", "stats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}

#[test]
fn a_bad_query_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["search", "status:nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("status"), "{err}");
}

#[test]
fn gzipped_rotated_logs_and_messages_are_read() {
    use std::io::Write;
    let input = tempfile::tempdir().unwrap();
    let log = "Nov 10 10:00:00 mx1 postfix/smtpd[1]: 4F9D195432: client=pc-1.example.co.jp[10.1.2.3]\n\
Nov 10 10:00:00 mx1 postfix/cleanup[2]: 4F9D195432: message-id=<gz-1@example.co.jp>\n\
Nov 10 10:00:01 mx1 postfix/qmgr[3]: 4F9D195432: from=<a@example.co.jp>, size=900, nrcpt=1 (queue active)\n\
Nov 10 10:00:02 mx1 postfix/smtp[4]: 4F9D195432: to=<b@partner.example>, relay=mx.partner.example[192.0.2.5]:25, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (250 ok)\n\
Nov 10 10:00:02 mx1 postfix/qmgr[3]: 4F9D195432: removed\n";
    let gz = input.path().join("mail.log.2.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(log.as_bytes()).unwrap();
    enc.finish().unwrap();
    let eml = std::fs::read(fixtures().join("01-iso2022jp-subject.eml")).unwrap();
    let gz_eml = input.path().join("message.eml.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_eml).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&eml).unwrap();
    enc.finish().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    ));
    assert!(out.contains("2 new message(s)"), "{out}");
    assert!(out.contains("rejected input: none"), "{out}");
    assert_eq!(
        stdout(&run(
            data.path(),
            &["search", "--count", "status:delivered"]
        ))
        .trim(),
        "1"
    );
    assert_eq!(
        stdout(&run(data.path(), &["search", "--count", "社外秘"])).trim(),
        "1"
    );
}

#[test]
fn exchange_message_tracking_folder_imports_as_one_message_per_email() {
    // Two rolled MSGTRK files of one server; the message's events straddle them.
    const FIELDS: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version";
    fn line(values: &[(&str, &str)]) -> String {
        let row: Vec<String> = FIELDS
            .split(',')
            .map(|f| {
                let v = values.iter().find(|(k, _)| *k == f).map_or("", |(_, v)| v);
                if v.contains([',', '"']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.to_string()
                }
            })
            .collect();
        row.join(",") + "\r\n"
    }
    let header = format!(
        "\u{feff}#Software: Microsoft Exchange Server\r\n#Version: 15.02.1544.004\r\n#Log-type: Message Tracking Log\r\n#Date: 2025-11-10T00:00:00.000Z\r\n#Fields: {FIELDS}\r\n"
    );
    let common = [
        ("message-id", "<msgtrk-cli-1@EX01.example.co.jp>"),
        ("network-message-id", "0a0b0c0d-1111-4222-8333-08de20aa0001"),
        ("message-subject", "【社外秘】見積書, 改訂版"),
        ("sender-address", "taro.yamada@example.co.jp"),
        ("return-path", "taro.yamada@example.co.jp"),
        ("server-hostname", "EX01"),
        ("internal-message-id", "1001"),
        ("total-bytes", "48213"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = common.to_vec();
        v.extend_from_slice(extra);
        line(&v)
    };
    let first = header.clone()
        + &with(&[
            ("date-time", "2025-11-10T00:00:01.250Z"),
            ("client-ip", "fe80::1%3"),
            ("source", "STOREDRIVER"),
            ("event-id", "RECEIVE"),
            (
                "recipient-address",
                "hanako.sato@tokyo-shoji.co.jp;boss@example.co.jp",
            ),
            ("recipient-status", "To;Bcc"),
            ("original-client-ip", "192.0.2.55"),
        ])
        + &with(&[
            ("date-time", "2025-11-10T00:00:01.700Z"),
            ("source", "SMTP"),
            ("event-id", "HAREDIRECT"),
            ("recipient-address", "hanako.sato@tokyo-shoji.co.jp"),
        ]);
    let second = header
        + &with(&[
            ("date-time", "2025-11-10T00:00:02.000Z"),
            ("source", "STOREDRIVER"),
            ("event-id", "DELIVER"),
            ("recipient-address", "boss@example.co.jp"),
        ])
        + &with(&[
            ("date-time", "2025-11-10T00:00:03.500Z"),
            ("client-hostname", "EX01"),
            ("server-hostname", "mx.tokyo-shoji.co.jp"),
            ("server-ip", "203.0.113.25"),
            ("source", "SMTP"),
            ("event-id", "SENDEXTERNAL"),
            ("recipient-address", "hanako.sato@tokyo-shoji.co.jp"),
            ("recipient-status", "250 2.1.5 Recipient OK"),
        ])
        + &with(&[
            ("date-time", "2025-11-10T00:00:04.000Z"),
            ("source", "REDUNDANCY"),
            ("event-id", "HADISCARD"),
            ("recipient-address", "hanako.sato@tokyo-shoji.co.jp"),
        ]);
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("MSGTRK2025111000-1.LOG"), first).unwrap();
    std::fs::write(input.path().join("MSGTRK2025111000-2.LOG"), second).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    ));
    assert!(out.contains("imported 2 file(s)"), "{out}");
    assert!(out.contains("rejected input: none"), "{out}");

    let found = stdout(&run(data.path(), &["search", "--format", "json", "社外秘"]));
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 1, "{found}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["message_id"], "msgtrk-cli-1@EX01.example.co.jp");
    assert_eq!(v["from"], "taro.yamada@example.co.jp");
    assert_eq!(v["to"][0], "hanako.sato@tokyo-shoji.co.jp");
    assert_eq!(v["bcc"][0], "boss@example.co.jp");
    assert_eq!(v["direction"], "outbound");
    assert_eq!(v["client_ip"], "192.0.2.55");
    assert_eq!(v["systems"][0], "exchange@EX01");
    let deliveries: Vec<(String, String)> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_string(),
                d["recipient"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        [
            ("received".to_string(), String::new()),
            ("delivered".to_string(), "boss@example.co.jp".to_string()),
            (
                "delivered".to_string(),
                "hanako.sato@tokyo-shoji.co.jp".to_string()
            ),
        ],
        "shadow events are no deliveries"
    );

    let stats = stdout(&run(data.path(), &["stats", "--format", "json"]));
    let s: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(s["messages"], 1, "{s}");
    assert_eq!(s["deliveries"]["received"], 1, "{s}");
    assert_eq!(s["deliveries"]["delivered"], 2, "{s}");
    assert_eq!(s["rejects"], 0, "{s}");
}

#[test]
fn gmail_bigquery_rows_tabledata_and_log_search_import_by_detection() {
    use serde_json::json;
    let input = tempfile::tempdir().unwrap();
    // Named-field rows (bq --format=json, one per line): a message sent by
    // Taro, its SMTP-out stage to a customer and its mailbox stage for his boss.
    let mid = "<gmail-cli-1@mail.gmail.com>";
    let source = json!({"address": "taro.yamada@example.co.jp", "service": "gmail-ui",
        "from_header_address": "taro.yamada@example.co.jp", "from_header_displayname": "山田 太郎"});
    let row = |usec: &str, met: &str, dests: serde_json::Value, extra: serde_json::Value| {
        let mut mi = json!({"rfc2822_message_id": mid, "subject": "【社外秘】見積書",
            "payload_size": "48213", "source": source, "destination": dests});
        for (k, v) in extra.as_object().unwrap() {
            mi[k] = v.clone();
        }
        json!({"record_type": "gmail",
            "event_info": {"timestamp_usec": usec, "success": "true", "mail_event_type": met},
            "message_info": mi})
        .to_string()
    };
    let ndjson = [
        row(
            "1762732801250000",
            "1",
            json!([{"address": "hanako.sato@tokyo-shoji.co.jp", "service": "smtp-outbound"},
                   {"address": "boss@example.co.jp", "service": "gmail-ui"}]),
            json!({"connection_info": {"client_ip": "192.0.2.55", "spf_pass": null},
                   "attachment": [{"file_name": "見積書.xlsx"}], "num_message_attachments": "1"}),
        ),
        row(
            "1762732803500000",
            "0",
            json!([{"address": "hanako.sato@tokyo-shoji.co.jp", "service": "smtp-outbound",
                    "rcpt_response": "250"}]),
            json!({"connection_info": {"smtp_out_remote_host": "mx.tokyo-shoji.co.jp",
                   "smtp_out_connect_ip": "203.0.113.25"}}),
        ),
        row(
            "1762732802000000",
            "2",
            json!([{"address": "boss@example.co.jp", "service": "gmail-ui"}]),
            json!({}),
        ),
    ]
    .join("\n");
    std::fs::write(input.path().join("gmail_rows.json"), ndjson + "\n").unwrap();
    // A positional tabledata page of a custom table, its schema beside it.
    let schema = json!({"kind": "bigquery#table", "schema": {"fields": [
        {"name": "event_info", "type": "RECORD", "fields": [
            {"name": "timestamp_usec", "type": "INTEGER"},
            {"name": "mail_event_type", "type": "INTEGER"}]},
        {"name": "message_info", "type": "RECORD", "fields": [
            {"name": "rfc2822_message_id", "type": "STRING"},
            {"name": "subject", "type": "STRING"},
            {"name": "source", "type": "RECORD", "fields": [
                {"name": "address", "type": "STRING"}, {"name": "service", "type": "STRING"}]},
            {"name": "destination", "type": "RECORD", "mode": "REPEATED", "fields": [
                {"name": "address", "type": "STRING"}, {"name": "service", "type": "STRING"},
                {"name": "rcpt_response", "type": "INTEGER"}]}]}]}});
    std::fs::write(input.path().join("day.schema.json"), schema.to_string()).unwrap();
    let page = json!({"kind": "bigquery#tableDataList", "totalRows": "1", "rows": [{"f": [
        {"v": {"f": [{"v": "1762736400000000"}, {"v": "0"}]}},
        {"v": {"f": [{"v": "<gmail-cli-2@example.co.jp>"}, {"v": "納品のご案内"},
            {"v": {"f": [{"v": "jiro.suzuki@example.co.jp"}, {"v": "gmail-ui"}]}},
            {"v": [{"v": {"f": [{"v": "nobody@gone.example"}, {"v": "smtp-outbound"},
                {"v": "550"}]}}]}]}}]}]});
    std::fs::write(input.path().join("day.json"), page.to_string()).unwrap();
    // An Email Log Search export: an inbound message, SMTP-in then the inbox.
    std::fs::write(
        input.path().join("els.csv"),
        "\u{feff}Message ID,Start date,End date,Sender,Message size,Subject,Direction,Attachments,Recipient address,Event target\r\n\
         <gmail-cli-3@partner.example>,2025/11/10 09:05:00 GMT+9,2025/11/10 09:05:00 GMT+9,sato@partner.example,7631,打ち合わせ,Received,0,kato@example.co.jp,SMTP_IN\r\n\
         <gmail-cli-3@partner.example>,2025/11/10 09:05:00 GMT+9,2025/11/10 09:05:01 GMT+9,sato@partner.example,7631,打ち合わせ,Received,0,kato@example.co.jp,GMAIL_INBOX\r\n",
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    ));
    assert!(out.contains("imported 4 file(s)"), "{out}");
    assert!(out.contains("rejected input: none"), "{out}");

    let found = stdout(&run(data.path(), &["search", "--format", "json", "社外秘"]));
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 1, "{found}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["message_id"], "gmail-cli-1@mail.gmail.com");
    assert_eq!(v["from"], "taro.yamada@example.co.jp");
    assert_eq!(v["from_name"], "山田 太郎");
    assert_eq!(v["direction"], "outbound");
    assert_eq!(v["systems"][0], "gmail");
    assert_eq!(v["client_ip"], "192.0.2.55");
    assert_eq!(v["attachments"][0]["filename"], "見積書.xlsx");
    let mut envelope: Vec<&str> = v["envelope_recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    envelope.sort();
    assert_eq!(
        envelope,
        ["boss@example.co.jp", "hanako.sato@tokyo-shoji.co.jp"],
        "Gmail logs carry no To/Cc"
    );
    let deliveries: Vec<(String, String)> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_string(),
                d["recipient"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("received", ""),
        ("delivered", "hanako.sato@tokyo-shoji.co.jp"),
        ("delivered", "boss@example.co.jp"),
    ];
    assert_eq!(deliveries.len(), want.len(), "{deliveries:?}");
    for (s, r) in want {
        assert!(
            deliveries.contains(&(s.to_string(), r.to_string())),
            "{s} {r} in {deliveries:?}"
        );
    }

    let bounced = stdout(&run(data.path(), &["search", "--format", "json", "納品"]));
    let v: serde_json::Value = serde_json::from_str(bounced.trim()).unwrap();
    assert_eq!(v["message_id"], "gmail-cli-2@example.co.jp");
    assert_eq!(v["deliveries"][0]["status"], "bounced");

    let inbound = stdout(&run(
        data.path(),
        &["search", "--format", "json", "打ち合わせ"],
    ));
    let v: serde_json::Value = serde_json::from_str(inbound.trim()).unwrap();
    assert_eq!(v["direction"], "inbound");
    assert_eq!(v["from"], "sato@partner.example");
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 2);

    let stats = stdout(&run(data.path(), &["stats", "--format", "json"]));
    let s: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(s["messages"], 3, "{s}");
    assert_eq!(s["deliveries"]["received"], 2, "{s}");
    assert_eq!(s["deliveries"]["delivered"], 3, "{s}");
    assert_eq!(s["deliveries"]["bounced"], 1, "{s}");

    // Importing the same files again adds nothing.
    let again = stdout(&run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    ));
    assert!(again.contains("0 new message(s)"), "{again}");
    assert!(again.contains("new deliveries: none"), "{again}");
}

#[test]
fn microsoft_365_trace_and_audit_exports_import_as_one_message_with_bcc() {
    // A Get-MessageTrace Export-Csv (Windows PowerShell 5.1: BOM, #TYPE, en-US dates),
    // the audit records of the same email (Send, DLP match naming To/CC/BCC, an
    // access event), and another trace as ConvertTo-Json written in UTF-16.
    let input = tempfile::tempdir().unwrap();
    let mid = "<TYCPR01MB0009@TYCPR01MB0009.jpnprd01.prod.outlook.com>";
    let mut csv = String::from("\u{feff}#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n\"Organization\",\"MessageId\",\"Received\",\"SenderAddress\",\"RecipientAddress\",\"Subject\",\"Status\",\"ToIP\",\"FromIP\",\"Size\",\"MessageTraceId\"\r\n");
    for (rcpt, status, to_ip) in [
        ("hanako.sato@tokyo-shoji.co.jp", "Delivered", "203.0.113.25"),
        ("jiro.suzuki@example.co.jp", "Delivered", ""),
        ("private.box@freemail.example", "Delivered", "198.51.100.50"),
    ] {
        csv.push_str(&format!(
            "\"example.onmicrosoft.com\",\"{mid}\",\"11/10/2025 9:05:03 AM\",\"taro.yamada@example.co.jp\",\"{rcpt}\",\"【社外秘】顧客リスト, 最新\",\"{status}\",\"{to_ip}\",\"192.0.2.55\",\"48213\",\"0a0b0c0d-1111-4222-8333-08de20aa0009\"\r\n"
        ));
    }
    std::fs::write(input.path().join("trace.csv"), csv).unwrap();
    let audit = serde_json::json!([
        {"CreationTime": "2025-11-10T09:05:02", "Id": "b0000000-0000-4000-8000-000000000001",
         "Operation": "Send", "RecordType": 2, "Workload": "Exchange", "UserId": "taro.yamada@example.co.jp",
         "MailboxOwnerUPN": "taro.yamada@example.co.jp", "LogonType": 0, "ClientIPAddress": "192.0.2.55",
         "Item": {"InternetMessageId": mid, "Subject": "【社外秘】顧客リスト, 最新", "SizeInBytes": 48213,
                  "Attachments": "顧客リスト (2025).xlsx (40960b)"}},
        {"CreationTime": "2025-11-10T09:05:04", "Id": "b0000000-0000-4000-8000-000000000002",
         "Operation": "DlpRuleMatch", "RecordType": 13, "Workload": "Exchange", "UserId": "DlpAgent",
         "ExchangeMetaData": {"From": "taro.yamada@example.co.jp", "MessageID": mid,
            "To": ["hanako.sato@tokyo-shoji.co.jp"], "CC": ["jiro.suzuki@example.co.jp"],
            "BCC": ["private.box@freemail.example"], "Sent": "2025-11-10T09:05:01",
            "Subject": "【社外秘】顧客リスト, 最新", "FileSize": 48213.0}},
        {"CreationTime": "2025-11-10T10:00:00", "Id": "b0000000-0000-4000-8000-000000000003",
         "Operation": "MailItemsAccessed", "RecordType": "50", "Workload": "Exchange",
         "UserId": "taro.yamada@example.co.jp",
         "Folders": [{"Path": "\\Sent Items", "FolderItems": [{"InternetMessageId": mid}]}]}
    ]);
    std::fs::write(
        input.path().join("audit.json"),
        serde_json::to_string_pretty(&audit).unwrap(),
    )
    .unwrap();
    let ps51 = "[\r\n    {\r\n        \"MessageId\":  \"\\u003cps51@partner.example\\u003e\",\r\n        \"Received\":  \"\\/Date(1762765503000)\\/\",\r\n        \"SenderAddress\":  \"sato@partner.example\",\r\n        \"RecipientAddress\":  \"kato@example.co.jp\",\r\n        \"Subject\":  \"Order\",\r\n        \"Status\":  \"FilteredAsSpam\",\r\n        \"ToIP\":  null,\r\n        \"FromIP\":  \"2001:db8::25\",\r\n        \"Size\":  9000,\r\n        \"MessageTraceId\":  \"0a0b0c0d-1111-4222-8333-08de20aa0010\"\r\n    }\r\n]\r\n";
    let mut utf16 = vec![0xFF, 0xFE];
    for u in ps51.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(input.path().join("trace-ps51.json"), utf16).unwrap();

    let data = tempfile::tempdir().unwrap();
    let out = run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    );
    let text = stdout(&out);
    assert!(text.contains("imported 3 file(s)"), "{text}");
    assert!(text.contains("rejected input: none"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MailItemsAccessed 1"), "{err}");

    let found = stdout(&run(
        data.path(),
        &[
            "search",
            "--format",
            "json",
            "bcc:private.box@freemail.example",
        ],
    ));
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 1, "{found}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        v["message_id"],
        "TYCPR01MB0009@TYCPR01MB0009.jpnprd01.prod.outlook.com"
    );
    assert_eq!(v["from"], "taro.yamada@example.co.jp");
    assert_eq!(
        v["to"],
        serde_json::json!(["hanako.sato@tokyo-shoji.co.jp"])
    );
    assert_eq!(v["cc"], serde_json::json!(["jiro.suzuki@example.co.jp"]));
    assert_eq!(
        v["bcc"],
        serde_json::json!(["private.box@freemail.example"])
    );
    assert_eq!(v["direction"], "outbound");
    assert_eq!(v["client_ip"], "192.0.2.55");
    assert_eq!(v["attachments"][0]["filename"], "顧客リスト (2025).xlsx");
    let mut systems: Vec<String> = v["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    systems.sort();
    assert_eq!(systems, ["m365", "m365-audit"]);
    let mut deliveries: Vec<(String, String, String)> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["system"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["recipient"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    deliveries.sort();
    assert_eq!(
        deliveries,
        [
            (
                "m365".into(),
                "delivered".into(),
                "hanako.sato@tokyo-shoji.co.jp".into()
            ),
            (
                "m365".into(),
                "delivered".into(),
                "jiro.suzuki@example.co.jp".into()
            ),
            (
                "m365".into(),
                "delivered".into(),
                "private.box@freemail.example".into()
            ),
            ("m365".into(), "received".into(), String::new()),
            ("m365-audit".into(), "received".into(), String::new()),
        ]
    );
    assert_eq!(
        stdout(&run(
            data.path(),
            &["search", "--count", "filename:顧客リスト"]
        ))
        .trim(),
        "1"
    );

    // The UTF-16 ConvertTo-Json export was detected and read.
    let spam = stdout(&run(
        data.path(),
        &["search", "--format", "json", "status:quarantined"],
    ));
    let lines: Vec<&str> = spam.lines().collect();
    assert_eq!(lines.len(), 1, "{spam}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["message_id"], "ps51@partner.example");
    assert_eq!(v["direction"], "inbound");

    // Importing again adds nothing.
    let again = stdout(&run(
        data.path(),
        &["import", "--quiet", input.path().to_str().unwrap()],
    ));
    assert!(again.contains("0 new message(s)"), "{again}");
    assert!(again.contains("new deliveries: none"), "{again}");
}
