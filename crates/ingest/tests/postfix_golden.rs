//! Golden tests of the syslog dispatcher + Postfix correlator: each
//! `fixtures/postfix/*.log` is decoded and compared with the records and
//! rejects in `*.expected.json` beside it. Regenerate (then review the diff!)
//! with `MAILTRAIL_BLESS=1 cargo test -p mailtrail-ingest --test postfix_golden`.

use std::path::{Path, PathBuf};

use mailtrail_ingest::syslog::import_syslog;
use mailtrail_ingest::DecodeOptions;
use mailtrail_model::{DeliveryStatus, MessageRecord, Position};

use mailtrail_ingest::VecSink;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postfix")
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        timezone: chrono_tz::Asia::Tokyo,
        reference_time: "2025-01-05T00:00:00Z".parse().unwrap(),
        year: None,
        max_line_bytes: 4096,
        ..DecodeOptions::default()
    }
}

fn decode(name: &str) -> VecSink {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let mut sink = VecSink::default();
    import_syslog(&bytes[..], name, &opts(), &mut sink).unwrap();
    sink
}

fn golden(name: &str) {
    let sink = decode(&format!("{name}.log"));
    let actual = serde_json::json!({
        "records": sink.records,
        "rejects": sink.rejects.iter().map(|r| serde_json::json!({
            "position": r.position, "code": r.code, "reason": r.reason, "input_bytes": r.input.len(),
        })).collect::<Vec<_>>(),
    });
    let path = fixtures().join(format!("{name}.expected.json"));
    if std::env::var_os("MAILTRAIL_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        actual,
        expected,
        "{name}: decoder output differs from {}",
        path.display()
    );
}

#[test]
fn flows_golden() {
    golden("flows");
}

#[test]
fn mixed_golden() {
    golden("mixed");
}

fn by_key<'a>(records: &'a [MessageRecord], key: &str) -> &'a MessageRecord {
    records
        .iter()
        .find(|r| r.keys.iter().any(|k| k == key))
        .unwrap_or_else(|| panic!("no record with key {key}"))
}

fn statuses(r: &MessageRecord) -> Vec<DeliveryStatus> {
    r.deliveries.iter().map(|d| d.status).collect()
}

#[test]
fn smtpd_to_removed_flow_builds_one_record() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:4F9D1A2B3C");
    assert_eq!(
        r.message_id.as_deref(),
        Some("20241230000001.AB12@partner.example")
    );
    assert_eq!(r.envelope_from.as_deref(), Some("sato@partner.example"));
    assert_eq!(r.size, Some(48213));
    assert_eq!(r.subject.as_deref(), Some("見積書の件"));
    assert_eq!(r.client_ip.as_deref(), Some("198.51.100.7"));
    // Dec 30 09:00:02 in Asia/Tokyo, year inferred from the reference time.
    assert_eq!(r.first_seen, Some("2024-12-30T00:00:02Z".parse().unwrap()));
    assert_eq!(
        statuses(r),
        [
            DeliveryStatus::Received,
            DeliveryStatus::Delivered,
            DeliveryStatus::Delivered
        ]
    );
    let rcvd = &r.deliveries[0];
    assert_eq!(rcvd.recipient, "");
    assert_eq!(rcvd.system, "postfix@mx1");
    assert_eq!(rcvd.client_host.as_deref(), Some("mail-a.partner.example"));
    let d = &r.deliveries[2];
    assert_eq!(d.recipient, "suzuki@example.co.jp");
    assert_eq!(d.original_recipient.as_deref(), Some("sales@example.co.jp"));
    assert_eq!(d.local_id.as_deref(), Some("4F9D1A2B3C"));
    assert_eq!(
        d.relay.as_deref(),
        Some("mailstore.example.co.jp[private/dovecot-lmtp]")
    );
    assert_eq!(
        d.detail.as_deref(),
        Some("2.0.0 (250 2.0.0 <suzuki@example.co.jp> 9My3Ng6HcmfbGQAAd9YDaw Saved)")
    );
    let rcpts: Vec<_> = r.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        rcpts,
        [
            "yamada@example.co.jp",
            "suzuki@example.co.jp",
            "sales@example.co.jp"
        ]
    );
}

#[test]
fn repeated_deferrals_are_one_deferred_delivery_per_message() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:7C1E2D3F40");
    let deferred: Vec<_> = r
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Deferred)
        .collect();
    assert_eq!(deferred.len(), 1);
    assert!(deferred[0]
        .detail
        .as_deref()
        .unwrap()
        .ends_with("[deferred 3 times]"));
    assert_eq!(
        r.deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Delivered)
            .count(),
        3
    );
    assert_eq!(
        r.deliveries[0].detail.as_deref(),
        Some("sasl_username=tanaka")
    );
}

#[test]
fn bounce_expiry_and_dsn_messages() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:2A3B4C5D6E");
    assert!(statuses(r).contains(&DeliveryStatus::Bounced));
    let dsn = by_key(&s.records, "postfix@mx1:8E9F0A1B2C");
    assert_eq!(dsn.envelope_from, None, "from=<> is no sender");
    let exp = by_key(&s.records, "postfix@mx1:3C4D5E6F70");
    assert_eq!(statuses(exp), [DeliveryStatus::Expired]);
    assert_eq!(exp.envelope_from.as_deref(), Some("old@example.co.jp"));
    // Across the New Year: Jan 1 follows Dec 31 of the inferred year.
    assert_eq!(
        exp.first_seen,
        Some("2024-12-31T15:00:05Z".parse().unwrap())
    );
}

#[test]
fn children_carry_the_parent_key_and_message_id() {
    let s = decode("flows.log");
    let fwd = by_key(&s.records, "postfix@mx1:C724C10430");
    assert_eq!(
        statuses(fwd),
        [DeliveryStatus::Received, DeliveryStatus::Forwarded]
    );
    let child = by_key(&s.records, "postfix@mx1:134DD10430");
    assert!(child.keys.contains(&"postfix@mx1:C724C10430".to_string()));
    assert_eq!(child.message_id, fwd.message_id);
    let filtered = by_key(&s.records, "postfix@mx1:9F8E7D6C5B");
    assert!(filtered
        .keys
        .contains(&"postfix@mx1:0A1B2C3D4E".to_string()));
    // A remote server's "queued as" is not a child of ours.
    let r = by_key(&s.records, "postfix@mx1:7C1E2D3F40");
    assert!(!s
        .records
        .iter()
        .any(|x| x.keys.iter().any(|k| k == "postfix@mx1:9A8B7C6D5E")));
    assert_eq!(r.keys.len(), 1);
}

#[test]
fn noqueue_rejects_are_one_record_each() {
    let s = decode("flows.log");
    let noq: Vec<_> = s
        .records
        .iter()
        .filter(|r| r.keys[0].contains(":NOQUEUE:"))
        .collect();
    assert_eq!(noq.len(), 5);
    assert!(noq
        .iter()
        .all(|r| statuses(r) == [DeliveryStatus::Rejected]));
    // Two identical rejects in one second stay two events.
    assert_ne!(noq[0].keys, noq[1].keys);
    assert_ne!(
        noq[0].deliveries[0].identity(),
        noq[1].deliveries[0].identity()
    );
    let relay = noq[0];
    assert_eq!(relay.envelope_from.as_deref(), Some("spam@bad.example"));
    assert_eq!(relay.deliveries[0].recipient, "victim@elsewhere.example");
    assert_eq!(
        relay.deliveries[0].client_ip.as_deref(),
        Some("203.0.113.66")
    );
    assert!(relay.deliveries[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("Relay access denied"));
    let ps = noq
        .iter()
        .find(|r| r.client_ip.as_deref() == Some("203.0.113.77"))
        .unwrap();
    assert_eq!(ps.deliveries[0].recipient, "ceo@example.co.jp");
}

#[test]
fn japanese_subjects_from_header_checks() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:5B6C7D8E9F");
    assert_eq!(r.subject.as_deref(), Some("会議資料の送付"));
    assert_eq!(r.envelope_from.as_deref(), Some("backup@mx1.example.co.jp"));
    assert_eq!(
        statuses(r),
        [DeliveryStatus::Received, DeliveryStatus::Delivered]
    );
}

#[test]
fn long_queue_ids_and_rfc3339_stamps() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:4YQm2x0Bq7zKp1");
    assert_eq!(
        r.first_seen,
        Some("2025-01-01T00:30:00.123456Z".parse().unwrap())
    );
    assert_eq!(
        statuses(r),
        [DeliveryStatus::Received, DeliveryStatus::Bounced]
    );
    // Still queued at the end of the input: emitted by finish().
    let open = by_key(&s.records, "postfix@mx1:4YQm2y1Cr8zLq2");
    assert_eq!(
        statuses(open),
        [DeliveryStatus::Received, DeliveryStatus::Deferred]
    );
}

#[test]
fn queued_and_cleanup_rejects_and_holds() {
    let s = decode("flows.log");
    let r = by_key(&s.records, "postfix@mx1:00ADB3C089");
    assert_eq!(
        statuses(r),
        [
            DeliveryStatus::Received,
            DeliveryStatus::Rejected,
            DeliveryStatus::Delivered
        ]
    );
    assert_eq!(r.deliveries[1].recipient, "sales@example.co.jp");
    let c = by_key(&s.records, "postfix@mx1:6D7E8F9A0B");
    assert_eq!(
        statuses(c),
        [DeliveryStatus::Received, DeliveryStatus::Rejected]
    );
    let h = by_key(&s.records, "postfix@mx1:1E2F3A4B5C");
    assert_eq!(
        statuses(h),
        [DeliveryStatus::Received, DeliveryStatus::Quarantined]
    );
}

#[test]
fn flows_have_no_rejects() {
    let s = decode("flows.log");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
}

#[test]
fn a_shift_jis_line_is_decoded_not_rejected() {
    let s = decode("mixed.log");
    assert!(
        s.rejects.iter().all(|r| r.position != Position::Line(18)),
        "{:?}",
        s.rejects
    );
    let m = s
        .records
        .iter()
        .find(|r| r.keys.iter().any(|k| k.ends_with(":4D5E6F7A8B")))
        .expect("the message of the Shift_JIS line");
    assert_eq!(m.subject.as_deref(), Some("件議"));
}

#[test]
fn malformed_lines_become_rejects_with_positions() {
    let s = decode("mixed.log");
    let codes: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert!(
        codes.iter().any(|(_, c)| *c == "syslog.too_long"),
        "{codes:?}"
    );
    assert!(
        codes.iter().any(|(_, c)| *c == "syslog.header"),
        "{codes:?}"
    );
    let long = s
        .rejects
        .iter()
        .find(|r| r.code == "syslog.too_long")
        .unwrap();
    assert_eq!(long.input.len(), 4096, "the quarantined head is capped");
}

#[test]
fn rfc5424_and_instance_names_are_decoded() {
    let s = decode("mixed.log");
    let r = by_key(&s.records, "postfix@mx2.example.co.jp:6A7B8C9D0E");
    assert_eq!(r.message_id.as_deref(), Some("rfc5424@example.co.jp"));
    assert_eq!(
        statuses(r),
        [DeliveryStatus::Received, DeliveryStatus::Delivered]
    );
    assert_eq!(
        r.first_seen,
        Some("2025-01-02T03:04:05.678Z".parse().unwrap())
    );
    let m = by_key(&s.records, "postfix@mx1:1D8CC1CA0A");
    assert_eq!(
        statuses(m),
        [DeliveryStatus::Received, DeliveryStatus::Rejected]
    );
    assert!(m.deliveries[1]
        .detail
        .as_deref()
        .unwrap()
        .starts_with("milter-reject: "));
    assert!(s
        .records
        .iter()
        .any(|r| r.keys.iter().any(|k| k == "postfix@mx1:2B3C4D5E6F")));
}

/// Rough throughput of the decoder alone (no store): run with
/// `cargo test --release -p mailtrail-ingest --test postfix_golden -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let base = std::fs::read_to_string(fixtures().join("flows.log")).unwrap();
    let mut big = String::new();
    let mut n = 0u64;
    while n < 1_000_000 {
        // Fresh queue ids per copy so entries are opened and removed as in a real log.
        let salt = format!("{:04X}", n / 94 % 0xFFFF);
        for l in base.lines() {
            big.push_str(&l.replace("mx1 ", &format!("mx{salt} ")));
            big.push('\n');
            n += 1;
        }
    }
    let mut sink = VecSink::default();
    let start = std::time::Instant::now();
    let s = import_syslog(big.as_bytes(), "big", &opts(), &mut sink).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} lines, {} records in {secs:.2}s = {:.0} lines/s",
        s.lines,
        sink.records.len(),
        s.lines as f64 / secs
    );
}
