//! Sendmail and Exim decoders over our own fixtures (tests/fixtures/{sendmail,exim}).
//!
//! Each fixture has an `.expected.json` beside it (records, rejects, summary);
//! `MAILTRAIL_BLESS=1 cargo test` rewrites them — review the diff before
//! committing. The named tests below each assert one behaviour directly, so a
//! blessed golden file cannot hide a regression of those behaviours.
//!
//! Sendmail fixtures are syslog files; they are fed to the correlator through
//! a minimal RFC 3164 header split written here (year 2024, UTC), so these
//! tests depend only on the Sendmail/Exim code.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use mailtrail_ingest::exim::{self, ImportSummary};
use mailtrail_ingest::sendmail;
use mailtrail_ingest::syslog::{LineRef, SyslogLine};
use mailtrail_ingest::DecodeOptions;
use mailtrail_model::{DeliveryStatus, MessageRecord, Position};
use serde_json::{json, Value};

use mailtrail_ingest::VecSink;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        timezone: chrono_tz::UTC,
        max_line_bytes: 400,
        ..Default::default()
    }
}

fn run_mainlog(rel: &str) -> (VecSink, ImportSummary) {
    let bytes = std::fs::read(fixture(rel)).unwrap();
    let mut sink = VecSink::default();
    let summary =
        exim::import_mainlog_for_host(&bytes[..], rel, "mx1", &opts(), &mut sink).unwrap();
    (sink, summary)
}

/// A minimal `Mmm dd HH:MM:SS host prog[pid]: message` split (year 2024, UTC).
fn split_3164(line: &str) -> Option<SyslogLine<'_>> {
    let stamp = line.get(..15)?;
    let time = NaiveDateTime::parse_from_str(&format!("2024 {stamp}"), "%Y %b %e %H:%M:%S")
        .ok()?
        .and_utc();
    let rest = line.get(16..)?;
    let (host, rest) = rest.split_once(' ')?;
    let (tag, message) = rest.split_once(": ")?;
    let (program, pid) = match tag.split_once('[') {
        Some((p, pid)) => (p, pid.trim_end_matches(']').parse().ok()),
        None => (tag, None),
    };
    Some(SyslogLine {
        time,
        host,
        program,
        pid,
        message,
    })
}

fn run_sendmail(rel: &str) -> VecSink {
    let text = std::fs::read_to_string(fixture(rel)).unwrap();
    let mut sink = VecSink::default();
    let mut c = sendmail::Correlator::new(&opts());
    for (i, line) in text.lines().enumerate() {
        let parsed = split_3164(line).unwrap_or_else(|| panic!("fixture line {}: {line}", i + 1));
        assert!(sendmail::is_sendmail_program(parsed.program));
        let at = LineRef {
            source: rel,
            line: i as u64 + 1,
            raw: line.as_bytes(),
        };
        c.feed(&parsed, at, &mut sink).unwrap();
    }
    c.finish(&mut sink).unwrap();
    sink
}

fn as_json(sink: &VecSink, summary: Option<&ImportSummary>) -> Value {
    let rejects: Vec<Value> = sink
        .rejects
        .iter()
        .map(|r| {
            json!({
                "source": r.source,
                "position": r.position,
                "code": r.code,
                "reason": r.reason,
                "input_len": r.input.len(),
            })
        })
        .collect();
    let mut v = json!({
        "records": serde_json::to_value(&sink.records).unwrap(),
        "rejects": rejects,
    });
    if let Some(s) = summary {
        v["summary"] = json!({
            "lines": s.lines, "ignored": s.ignored, "rejected": s.rejected, "records": s.records,
        });
    }
    v
}

fn check_golden(rel: &str, actual: &Value) {
    let path = fixture(&format!("{rel}.expected.json"));
    if std::env::var_os("MAILTRAIL_BLESS").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with MAILTRAIL_BLESS=1)", path.display())),
    )
    .unwrap();
    assert!(
        expected == *actual,
        "{rel} differs from its golden file\n--- actual ---\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn by_key<'a>(records: &'a [MessageRecord], key: &str) -> &'a MessageRecord {
    records
        .iter()
        .find(|r| r.keys.first().map(String::as_str) == Some(key))
        .unwrap_or_else(|| panic!("no record with key {key}"))
}

/// Groups of records the store would merge (same Message-ID or a shared key).
fn merged_groups(records: &[MessageRecord]) -> Vec<BTreeSet<String>> {
    let mut parent: Vec<usize> = (0..records.len()).collect();
    fn find(p: &mut [usize], i: usize) -> usize {
        let mut i = i;
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let ids = r
            .keys
            .iter()
            .cloned()
            .chain(r.message_id.iter().map(|m| format!("msgid:{m}")));
        for id in ids {
            match seen.get(&id) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    seen.insert(id, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, BTreeSet<String>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let root = find(&mut parent, i);
        groups
            .entry(root)
            .or_default()
            .extend(r.keys.iter().cloned());
    }
    groups.into_values().collect()
}

// --- golden files -----------------------------------------------------------

#[test]
fn golden_exim_delivery() {
    let (sink, summary) = run_mainlog("exim/delivery.mainlog");
    check_golden("exim/delivery.mainlog", &as_json(&sink, Some(&summary)));
}

#[test]
fn golden_exim_bounce() {
    let (sink, summary) = run_mainlog("exim/bounce.mainlog");
    check_golden("exim/bounce.mainlog", &as_json(&sink, Some(&summary)));
}

#[test]
fn golden_exim_rejects() {
    let (sink, summary) = run_mainlog("exim/rejects.mainlog");
    check_golden("exim/rejects.mainlog", &as_json(&sink, Some(&summary)));
}

#[test]
fn golden_sendmail_msp_mta() {
    let sink = run_sendmail("sendmail/msp_mta.log");
    check_golden("sendmail/msp_mta.log", &as_json(&sink, None));
}

#[test]
fn golden_sendmail_mta() {
    let sink = run_sendmail("sendmail/mta.log");
    check_golden("sendmail/mta.log", &as_json(&sink, None));
}

// --- Sendmail behaviours -----------------------------------------------------

#[test]
fn sendmail_msp_and_mta_queue_ids_become_one_message() {
    let sink = run_sendmail("sendmail/msp_mta.log");
    assert_eq!(sink.records.len(), 2);
    let msp = by_key(&sink.records, "sendmail@mail:421A0AAA001000");
    let mta = by_key(&sink.records, "sendmail@mail:421A0BBB001001");
    assert!(msp
        .keys
        .contains(&"sendmail@mail:421A0BBB001001".to_string()));
    assert!(mta
        .keys
        .contains(&"sendmail@mail:421A0AAA001000".to_string()));
    assert_eq!(msp.message_id, mta.message_id);
    assert_eq!(
        msp.message_id.as_deref(),
        Some("202403010900.421A0AAA001000@mail.example.co.jp")
    );
    assert_eq!(merged_groups(&sink.records).len(), 1);
}

#[test]
fn sendmail_multi_recipient_line_gives_one_delivery_per_recipient() {
    let sink = run_sendmail("sendmail/msp_mta.log");
    let msp = by_key(&sink.records, "sendmail@mail:421A0AAA001000");
    let delivered: Vec<&str> = msp
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Delivered)
        .map(|d| d.recipient.as_str())
        .collect();
    assert_eq!(delivered, ["hanako@example.com", "jiro@example.org"]);
    assert!(msp
        .deliveries
        .iter()
        .all(|d| d.system == "sendmail@mail" && d.local_id.as_deref() == Some("421A0AAA001000")));
}

#[test]
fn sendmail_deferred_then_sent_keeps_both_and_completes() {
    let sink = run_sendmail("sendmail/msp_mta.log");
    let mta = by_key(&sink.records, "sendmail@mail:421A0BBB001001");
    let jiro: Vec<DeliveryStatus> = mta
        .deliveries
        .iter()
        .filter(|d| d.recipient == "jiro@example.org")
        .map(|d| d.status)
        .collect();
    assert_eq!(jiro, [DeliveryStatus::Deferred, DeliveryStatus::Delivered]);
    let deferred = mta
        .deliveries
        .iter()
        .find(|d| d.status == DeliveryStatus::Deferred)
        .unwrap();
    assert!(deferred
        .detail
        .as_deref()
        .unwrap()
        .starts_with("4.2.0 Deferred: 451"));
    assert_eq!(
        deferred.relay.as_deref(),
        Some("mx.example.org[203.0.113.9]")
    );
}

#[test]
fn sendmail_arrival_gives_one_received_delivery_with_client() {
    let sink = run_sendmail("sendmail/mta.log");
    let r = by_key(&sink.records, "sendmail@mx:421B0CCC002000");
    let received: Vec<_> = r
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Received)
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].recipient, "");
    assert_eq!(received[0].client_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(received[0].client_host.as_deref(), Some("mail.example.net"));
    assert_eq!(r.envelope_from.as_deref(), Some("partner@example.net"));
    assert_eq!(r.size, Some(900));
    assert_eq!(r.systems, ["sendmail@mx"]);
}

#[test]
fn sendmail_user_unknown_is_bounced_and_dsn_is_its_own_message() {
    let sink = run_sendmail("sendmail/mta.log");
    let r = by_key(&sink.records, "sendmail@mx:421B0CCC002000");
    let ghost = r
        .deliveries
        .iter()
        .find(|d| d.recipient == "ghost@example.co.jp")
        .unwrap();
    assert_eq!(ghost.status, DeliveryStatus::Bounced);
    assert_eq!(
        ghost.detail.as_deref(),
        Some("5.1.1 User unknown; delay=00:00:01")
    );
    let dsn = by_key(&sink.records, "sendmail@mx:421B0DDD002001");
    assert!(!dsn.keys.contains(&"sendmail@mx:421B0CCC002000".to_string()));
    assert!(dsn
        .deliveries
        .iter()
        .any(|d| d.status == DeliveryStatus::Received
            && d.detail.as_deref() == Some("DSN for 421B0CCC002000: User unknown")));
}

#[test]
fn sendmail_check_rcpt_and_check_relay_rejects_are_rejected_deliveries() {
    let sink = run_sendmail("sendmail/mta.log");
    let r = by_key(&sink.records, "sendmail@mx:421B0EEE002100");
    let rejected: Vec<(&str, Option<&str>)> = r
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Rejected)
        .map(|d| (d.recipient.as_str(), d.client_ip.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [
            ("admin@example.co.jp", Some("192.0.2.66")),
            ("nobody@example.co.jp", None)
        ]
    );
    assert_eq!(r.envelope_from.as_deref(), Some("spam@bad.example"));
    let relay = sink
        .records
        .iter()
        .find(|r| r.keys[0].starts_with("sendmail@mx:reject@"))
        .expect("check_relay record");
    assert_eq!(relay.deliveries.len(), 1);
    assert_eq!(relay.deliveries[0].status, DeliveryStatus::Rejected);
    assert_eq!(relay.deliveries[0].client_ip.as_deref(), Some("192.0.2.77"));
    let mail = by_key(&sink.records, "sendmail@mx:421B0HHH002105");
    assert_eq!(mail.envelope_from.as_deref(), Some("forged@example.co.jp"));
    assert_eq!(mail.deliveries[0].status, DeliveryStatus::Rejected);
}

#[test]
fn sendmail_noise_lines_make_no_records() {
    let sink = run_sendmail("sendmail/mta.log");
    for qid in ["421B0FFF002102", "421B0GGG002103"] {
        assert!(!sink
            .records
            .iter()
            .any(|r| r.keys.iter().any(|k| k.ends_with(qid))));
    }
    assert!(sink.rejects.is_empty());
}

#[test]
fn sendmail_cannot_send_dsn_expires_deferred_recipients() {
    let sink = run_sendmail("sendmail/mta.log");
    let r = by_key(&sink.records, "sendmail@mx:421B0III002200");
    let last = r.deliveries.last().unwrap();
    assert_eq!(last.recipient, "far@example.org");
    assert_eq!(last.status, DeliveryStatus::Expired);
}

#[test]
fn sendmail_bounded_open_set_emits_oldest_instead_of_growing() {
    let mut c = sendmail::Correlator::with_capacity(10);
    let mut sink = VecSink::default();
    let msgs: Vec<String> = (0..25)
        .map(|i| format!("Q{i:011}: from=<a@x>, size=1, class=0, nrcpts=1, msgid=<{i}@x>, proto=ESMTP, daemon=MTA, relay=[192.0.2.1]"))
        .collect();
    for m in &msgs {
        let line = SyslogLine {
            time: t("2024-01-01T00:00:00Z"),
            host: "h",
            program: "sm-mta",
            pid: None,
            message: m,
        };
        let at = LineRef {
            source: "s",
            line: 1,
            raw: m.as_bytes(),
        };
        c.feed(&line, at, &mut sink).unwrap();
    }
    assert_eq!(sink.records.len(), 15);
    c.finish(&mut sink).unwrap();
    assert_eq!(sink.records.len(), 25);
}

// --- Exim behaviours ---------------------------------------------------------

#[test]
fn exim_arrival_fields_subject_size_msgid_client() {
    let (sink, _) = run_mainlog("exim/delivery.mainlog");
    let r = by_key(&sink.records, "exim@mx1:1rAbCd-000000005Vv-0aBc");
    assert_eq!(r.subject.as_deref(), Some("Quarterly \"report\" 日本"));
    assert_eq!(r.size, Some(4321));
    assert_eq!(
        r.message_id.as_deref(),
        Some("20240301090000.AB12@example.co.jp")
    );
    assert_eq!(r.envelope_from.as_deref(), Some("alice@example.co.jp"));
    assert_eq!(r.client_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(r.systems, ["exim@mx1"]);
    let rec = &r.deliveries[0];
    assert_eq!(rec.status, DeliveryStatus::Received);
    assert_eq!(rec.recipient, "");
    assert_eq!(rec.client_host.as_deref(), Some("client.example.net"));
    assert_eq!(rec.time, t("2024-03-01T09:00:00Z"));
    let rcpts: Vec<&str> = r.recipients.iter().map(|x| x.address.as_str()).collect();
    assert_eq!(
        rcpts,
        ["bob@example.com", "carol@example.org", "dave@example.com"]
    );
}

#[test]
fn exim_deliveries_additional_addresses_and_milliseconds() {
    let (sink, _) = run_mainlog("exim/delivery.mainlog");
    let r = by_key(&sink.records, "exim@mx1:1rAbCd-000000005Vv-0aBc");
    let d: Vec<(&str, DeliveryStatus)> = r
        .deliveries
        .iter()
        .map(|d| (d.recipient.as_str(), d.status))
        .collect();
    assert_eq!(
        d,
        [
            ("", DeliveryStatus::Received),
            ("bob@example.com", DeliveryStatus::Delivered),
            ("dave@example.com", DeliveryStatus::Delivered),
            ("carol@example.org", DeliveryStatus::Deferred),
            ("carol@example.org", DeliveryStatus::Delivered),
        ]
    );
    assert_eq!(r.deliveries[1].time, t("2024-03-01T09:00:01.250Z"));
    assert_eq!(
        r.deliveries[1].relay.as_deref(),
        Some("mx.example.com[203.0.113.5]:25")
    );
    assert_eq!(
        r.deliveries[1].detail.as_deref(),
        Some("250 2.0.0 OK 1709283601 q1")
    );
    assert_eq!(
        r.deliveries[2].original_recipient.as_deref(),
        Some("list@example.com")
    );
    assert_eq!(
        r.deliveries[3].detail.as_deref(),
        Some("SMTP error from remote mail server after RCPT TO:<carol@example.org>: 451 4.7.1 Greylisted")
    );
    assert_eq!(r.deliveries[4].time, t("2024-03-01T09:30:02.007Z"));
}

#[test]
fn exim_failure_is_bounced_and_bounce_names_its_parent() {
    let (sink, summary) = run_mainlog("exim/bounce.mainlog");
    assert_eq!(summary.records, 2);
    let orig = by_key(&sink.records, "exim@mx1:1i7jxQ-0003Lm-Ta");
    assert_eq!(orig.subject.as_deref(), Some("日本 hello"));
    let failed = orig
        .deliveries
        .iter()
        .find(|d| d.recipient == "nobody@example.net")
        .unwrap();
    assert_eq!(failed.status, DeliveryStatus::Bounced);
    assert!(failed
        .detail
        .as_deref()
        .unwrap()
        .ends_with("550 5.1.1 User unknown"));
    let bounce = by_key(&sink.records, "exim@mx1:1i7jxR-0003Ln-Ub");
    assert_eq!(bounce.envelope_from, None);
    assert!(bounce.deliveries[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("R=1i7jxQ-0003Lm-Ta"));
    // A local delivery (`=> sender <sender@...>`) is filed under the address.
    assert_eq!(bounce.deliveries[1].recipient, "sender@example.co.jp");
    assert_eq!(bounce.deliveries[1].status, DeliveryStatus::Delivered);
    assert_eq!(bounce.deliveries[1].relay.as_deref(), Some("mail_spool"));
}

#[test]
fn exim_new_style_and_old_style_ids_make_keys() {
    let (a, _) = run_mainlog("exim/delivery.mainlog");
    assert_eq!(a.records[0].keys, ["exim@mx1:1rAbCd-000000005Vv-0aBc"]);
    let (b, _) = run_mainlog("exim/bounce.mainlog");
    assert_eq!(b.records[0].keys, ["exim@mx1:1i7jxQ-0003Lm-Ta"]);
}

#[test]
fn exim_rejections_become_records_with_rejected_deliveries() {
    let (sink, _) = run_mainlog("exim/rejects.mainlog");
    let rcpt = sink
        .records
        .iter()
        .find(|r| r.keys[0].starts_with("exim@mx1:reject@20240301T110000"))
        .expect("rejected RCPT record");
    assert_eq!(rcpt.envelope_from.as_deref(), Some("spam@bad.example.net"));
    assert_eq!(rcpt.client_ip.as_deref(), Some("192.0.2.66"));
    assert_eq!(rcpt.deliveries.len(), 1);
    let d = &rcpt.deliveries[0];
    assert_eq!(
        (d.recipient.as_str(), d.status),
        ("ceo@example.co.jp", DeliveryStatus::Rejected)
    );
    assert_eq!(d.client_host.as_deref(), Some("bad.example.net"));
    assert_eq!(
        d.detail.as_deref(),
        Some("rejected RCPT <ceo@example.co.jp>: relay not permitted")
    );
    let data = by_key(&sink.records, "exim@mx1:1rAbCe-000000006AA-0aBc");
    assert_eq!(data.deliveries[0].status, DeliveryStatus::Rejected);
    assert_eq!(data.deliveries[0].recipient, "");
}

#[test]
fn exim_munged_size_zone_and_suppressed_delivery() {
    let (sink, _) = run_mainlog("exim/rejects.mainlog");
    let r = by_key(&sink.records, "exim@mx1:1rAbCf-000000006BB-0aBc");
    assert_eq!(r.size, None);
    assert_eq!(r.first_seen, Some(t("2024-03-01T02:00:04Z")));
    assert_eq!(r.deliveries[1].status, DeliveryStatus::Failed);
}

#[test]
fn exim_garbage_and_overlong_lines_are_rejected_with_positions() {
    let (sink, summary) = run_mainlog("exim/rejects.mainlog");
    let got: Vec<(&str, Position, usize)> = sink
        .rejects
        .iter()
        .map(|r| (r.code.as_str(), r.position, r.input.len()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "exim.line",
                Position::Line(6),
                "this is not an exim line".len()
            ),
            ("exim.too_long", Position::Line(10), 400),
        ]
    );
    assert_eq!(summary.lines, 12);
    assert_eq!(summary.rejected, 2);
    // auth failure, queue run, blank line
    assert_eq!(summary.ignored, 3);
    // The message without `Completed` is still emitted at the end.
    let open = by_key(&sink.records, "exim@mx1:1rAbCg-000000006CC-0aBc");
    assert_eq!(open.deliveries[1].status, DeliveryStatus::Deferred);
}

#[test]
fn exim_mainlog_zoneless_stamps_use_configured_zone() {
    let input = b"2024-03-01 09:00:00 1rAbCd-000000005Vv-0aBc <= a@b.c U=a P=local S=1\n";
    let mut sink = VecSink::default();
    let o = DecodeOptions {
        timezone: chrono_tz::Asia::Tokyo,
        ..Default::default()
    };
    exim::import_mainlog(&input[..], "m", &o, &mut sink).unwrap();
    assert_eq!(sink.records[0].first_seen, Some(t("2024-03-01T00:00:00Z")));
    assert_eq!(sink.records[0].keys, ["exim@local:1rAbCd-000000005Vv-0aBc"]);
}

#[test]
fn exim_syslog_lines_use_the_syslog_time_and_host() {
    let mut c = exim::Correlator::new(&opts());
    let mut sink = VecSink::default();
    let lines = [
        ("2024-05-01T00:00:00Z", "1rAbCd-000000005Vv-0aBc <= a@example.org H=(helo) [192.0.2.5] P=esmtp S=10"),
        ("2024-05-01T00:00:01Z", "[77] 1rAbCd-000000005Vv-0aBc => b@example.net R=r T=t H=mx [198.51.100.1] C=\"250 ok\""),
        ("2024-05-01T00:00:02Z", "H=x [192.0.2.9] F=<s@x> rejected RCPT <r@y>: no"),
        ("2024-05-01T00:00:03Z", "1rAbCd-000000005Vv-0aBc Completed"),
    ];
    for (time, message) in lines {
        let line = SyslogLine {
            time: t(time),
            host: "relay2",
            program: "exim4",
            pid: Some(77),
            message,
        };
        assert!(exim::is_exim_program(line.program));
        let at = LineRef {
            source: "syslog",
            line: 1,
            raw: message.as_bytes(),
        };
        c.feed(&line, at, &mut sink).unwrap();
    }
    c.finish(&mut sink).unwrap();
    assert_eq!(sink.records.len(), 2);
    let reject = &sink.records[0];
    assert_eq!(reject.deliveries[0].status, DeliveryStatus::Rejected);
    assert_eq!(reject.deliveries[0].time, t("2024-05-01T00:00:02Z"));
    let msg = by_key(&sink.records, "exim@relay2:1rAbCd-000000005Vv-0aBc");
    assert_eq!(msg.deliveries[1].time, t("2024-05-01T00:00:01Z"));
    assert_eq!(msg.deliveries[1].system, "exim@relay2");
    assert_eq!(msg.client_ip.as_deref(), Some("192.0.2.5"));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn exim_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("2024-03-01 09:00:00 ".to_string()),
            Just("2024-03-01 09:00:00.1 +0900 ".to_string()),
            Just("1rAbCd-000000005Vv-0aBc ".to_string()),
            Just("[12] ".to_string()),
            Just("<= ".to_string()),
            Just("=> ".to_string()),
            Just("** ".to_string()),
            Just("== ".to_string()),
            Just("Completed".to_string()),
            Just("H=".to_string()),
            Just("T=\"".to_string()),
            Just("\\".to_string()),
            Just(": ".to_string()),
            Just("rejected RCPT ".to_string()),
            Just("(".to_string()),
            Just("[".to_string()),
            Just("\n".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    fn sendmail_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("421A0AAA001000: ".to_string()),
            Just("from=".to_string()),
            Just("to=".to_string()),
            Just(", nrcpts=".to_string()),
            Just(", stat=Sent (".to_string()),
            Just("421A0BBB001001 Message accepted for delivery)".to_string()),
            Just(", dsn=5.1.1".to_string()),
            Just(", relay=[".to_string()),
            Just("ruleset=check_rcpt, arg1=<".to_string()),
            Just(", reject=".to_string()),
            Just("DSN: Cannot send message".to_string()),
            Just("... ".to_string()),
            Just(",".to_string()),
            Just("<".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mainlog_import_never_panics(input in exim_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_line_bytes: 64, ..Default::default() };
            let s = exim::import_mainlog(input.as_bytes(), "p", &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut sink = VecSink::default();
            exim::import_mainlog(&input[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
        }

        #[test]
        fn correlators_never_panic(lines in prop::collection::vec(sendmail_like(), 0..12), ex in prop::collection::vec(exim_like(), 0..12)) {
            let mut sink = VecSink::default();
            let mut sm = sendmail::Correlator::with_capacity(4);
            let mut ec = exim::Correlator::with_capacity(4);
            for (i, m) in lines.iter().chain(ex.iter()).enumerate() {
                let line = SyslogLine { time: t("2024-01-01T00:00:00Z"), host: "h", program: "x", pid: None, message: m };
                let at = LineRef { source: "p", line: i as u64, raw: m.as_bytes() };
                sm.feed(&line, at, &mut sink).unwrap();
                ec.feed(&line, at, &mut sink).unwrap();
            }
            sm.finish(&mut sink).unwrap();
            ec.finish(&mut sink).unwrap();
        }
    }
}

/// Throughput of the main-log decoder (run with `--ignored --nocapture`,
/// preferably with `--release`).
#[test]
#[ignore]
fn exim_mainlog_throughput() {
    let mut input = String::new();
    let n = 50_000;
    for i in 0..n {
        let id = format!("1rAb{:02}-{:011}-0aBc", i % 100, i);
        input.push_str(&format!(
            "2024-03-01 09:00:00.123 {id} <= alice{i}@example.co.jp H=client.example.net (helo) [192.0.2.10]:50123 I=[198.51.100.1]:25 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S=4321 id=m{i}@example.co.jp T=\"Quarterly report {i}\"\n\
             2024-03-01 09:00:01.250 {id} => bob@example.com R=dnslookup T=remote_smtp H=mx.example.com [203.0.113.5]:25 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"250 2.0.0 OK q1\"\n\
             2024-03-01 09:00:02 {id} == carol@example.org R=dnslookup T=remote_smtp defer (-44) H=mx.example.org [203.0.113.9]: SMTP error from remote mail server after RCPT TO:<carol@example.org>: 451 4.7.1 Greylisted\n\
             2024-03-01 09:00:02 H=bad.example.net [192.0.2.66]:41000 F=<spam@bad.example.net> rejected RCPT <ceo@example.co.jp>: relay not permitted\n\
             2024-03-01 09:00:03 {id} Completed\n"
        ));
    }
    let lines = 5 * n;
    let mut sink = VecSink::default();
    let start = std::time::Instant::now();
    let s = exim::import_mainlog(input.as_bytes(), "bench", &opts(), &mut sink).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(s.lines as usize, lines);
    assert_eq!(sink.records.len(), 2 * n);
    println!(
        "exim mainlog: {lines} lines ({} MB) in {secs:.2}s = {:.0} lines/s",
        input.len() / 1_000_000,
        lines as f64 / secs
    );
}
