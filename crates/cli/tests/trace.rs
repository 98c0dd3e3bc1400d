//! `mailtrail trace`: one email seen by Exchange (tracking log), by the
//! Postfix relay behind it (maillog) and as a mailbox copy (.eml) is one
//! message whose trail lists every system's events in time order.

use std::path::Path;
use std::process::{Command, Output};

fn run(data: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .env_remove("MAILTRAIL_CONFIG")
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "--timezone", "Asia/Tokyo"])
        .args(args)
        .output()
        .expect("run mailtrail");
    assert!(
        out.status.success(),
        "mailtrail {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const MSGTRK: &str = "\u{feff}#Software: Microsoft Exchange Server\r
#Version: 15.02.1544.004\r
#Log-type: Message Tracking Log\r
#Date: 2026-11-20T01:00:00.000Z\r
#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version\r
2026-11-20T01:00:01.000Z,10.1.2.3,PC-0420.corp.example.co.jp,10.0.0.5,EX01,08DE0000AAAA0001,EX01\\Client Frontend EX01,SMTP,RECEIVE,5001,<trail-1@example.co.jp>,6c1f0a2e-0000-4000-8000-00000000a001,hanako@partner.example,,4200,1,,,見積書の件,taro.yamada@example.co.jp,taro.yamada@example.co.jp,,Originating,,,,,Email,6c1f0a2e-0000-4000-8000-00000000a001,15.02.1544.004\r
2026-11-20T01:00:02.000Z,10.0.0.5,EX01,10.0.0.25,relay.example.co.jp,;250 2.0.0 Ok: queued as 3F2A9C41D7,Outbound to relay,SMTP,SEND,5001,<trail-1@example.co.jp>,6c1f0a2e-0000-4000-8000-00000000a001,hanako@partner.example,250 2.0.0 Ok: queued as 3F2A9C41D7,4200,1,,,見積書の件,taro.yamada@example.co.jp,taro.yamada@example.co.jp,,Originating,,,,,Email,6c1f0a2e-0000-4000-8000-00000000a001,15.02.1544.004\r
";

const MAILLOG: &str = "\
Nov 20 10:00:02 relay postfix/smtpd[100]: 3F2A9C41D7: client=EX01.example.co.jp[10.0.0.5]
Nov 20 10:00:02 relay postfix/cleanup[101]: 3F2A9C41D7: message-id=<trail-1@example.co.jp>
Nov 20 10:00:02 relay postfix/qmgr[102]: 3F2A9C41D7: from=<taro.yamada@example.co.jp>, size=4300, nrcpt=1 (queue active)
Nov 20 10:00:04 relay postfix/smtp[103]: 3F2A9C41D7: to=<hanako@partner.example>, relay=mx.partner.example[192.0.2.25]:25, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (250 2.0.0 OK id=1xyz)
Nov 20 10:00:04 relay postfix/qmgr[102]: 3F2A9C41D7: removed
";

const EML: &str = "From: Taro Yamada <taro.yamada@example.co.jp>\r
To: hanako@partner.example\r
Subject: =?UTF-8?B?6KaL56mN5pu444Gu5Lu2?=\r
Date: Fri, 20 Nov 2026 10:00:00 +0900\r
Message-ID: <trail-1@example.co.jp>\r
\r
お見積りをお送りします。\r
";

#[test]
fn one_message_trail_across_exchange_postfix_and_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("MSGTRK2026112001-1.LOG"), MSGTRK).unwrap();
    std::fs::write(inputs.join("maillog"), MAILLOG).unwrap();
    std::fs::write(inputs.join("copy.eml"), EML).unwrap();
    let data = dir.path().join("data");
    run(
        &data,
        &[
            "import",
            "--quiet",
            "--year",
            "2026",
            inputs.to_str().unwrap(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&run(&data, &["search", "--count", ""]).stdout).trim(),
        "1"
    );

    let out = run(
        &data,
        &["trace", "<trail-1@example.co.jp>", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trail = v["trail"].as_array().unwrap();
    let steps: Vec<(String, String)> = trail
        .iter()
        .map(|e| {
            (
                e["system"].as_str().unwrap().to_string(),
                e["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Exchange received it from the PC and sent it to the relay; Postfix
    // received it from Exchange and delivered it to the partner — in time order.
    let exchange_receive = steps
        .iter()
        .position(|s| s.0.starts_with("exchange@") && s.1 == "received")
        .unwrap();
    let exchange_send = steps
        .iter()
        .position(|s| s.0.starts_with("exchange@") && s.1 == "delivered")
        .unwrap();
    let postfix_receive = steps
        .iter()
        .position(|s| s.0 == "postfix@relay" && s.1 == "received")
        .unwrap();
    let postfix_send = steps
        .iter()
        .position(|s| s.0 == "postfix@relay" && s.1 == "delivered")
        .unwrap();
    assert!(
        exchange_receive < exchange_send && exchange_send <= postfix_receive + 1,
        "{steps:?}"
    );
    assert!(postfix_receive < postfix_send, "{steps:?}");
    let times: Vec<&str> = trail.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "the trail is in time order");
    assert_eq!(
        trail[postfix_send]["relay"],
        "mx.partner.example[192.0.2.25]:25"
    );
    let systems: Vec<&str> = v["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(systems.contains(&"postfix@relay"), "{systems:?}");
    assert!(
        systems.iter().any(|s| s.starts_with("exchange@")),
        "{systems:?}"
    );
    assert!(systems.contains(&"mailbox"), "{systems:?}");
    assert_eq!(v["subject"], "見積書の件");

    // The table names every system, and the Message-ID works without <> too.
    let table = String::from_utf8(run(&data, &["trace", "trail-1@example.co.jp"]).stdout).unwrap();
    assert!(
        table.contains("postfix@relay") && table.contains("exchange@"),
        "{table}"
    );
    assert!(
        table.contains("→ mx.partner.example[192.0.2.25]:25"),
        "{table}"
    );
}

#[test]
fn an_unknown_message_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("maillog"), MAILLOG).unwrap();
    run(
        &data,
        &[
            "import",
            "--quiet",
            dir.path().join("maillog").to_str().unwrap(),
        ],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .args(["trace", "nobody@nowhere.example"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no message"), "{err}");
}
