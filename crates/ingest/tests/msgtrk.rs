//! Golden tests of the Exchange message tracking decoder over our own
//! fixtures (`tests/fixtures/msgtrk`, written by `make_fixtures.py` there to
//! the published format): each `*.LOG` / `*.log` is decoded and compared
//! with the records, rejects and summary in `*.expected.json` beside it.
//! Regenerate (then review the diff!) with
//! `MAILTRAIL_BLESS=1 cargo test -p mailtrail-ingest --test msgtrk`.
//!
//! The named tests below each assert one behaviour directly, so a blessed
//! golden file cannot hide a regression of those behaviours.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use mailtrail_ingest::msgtrk::{import_msgtrk, LineOutcome, MsgtrkDecoder, MsgtrkSummary};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{DeliveryStatus, MessageRecord, Position, RecipientKind};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/msgtrk")
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        max_line_bytes: 4096,
        ..DecodeOptions::default()
    }
}

fn decode(name: &str) -> (VecSink, MsgtrkSummary) {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let mut sink = VecSink::default();
    let summary = import_msgtrk(&bytes[..], name, &opts(), &mut sink).unwrap();
    (sink, summary)
}

fn golden(name: &str) {
    let (sink, s) = decode(name);
    let actual = json!({
        "summary": {
            "lines": s.lines, "events": s.events, "shadow": s.shadow, "ignored": s.ignored,
            "rejected": s.rejected, "records": s.records,
            "default_layout_lines": s.default_layout_lines,
        },
        "records": sink.records,
        "rejects": sink.rejects.iter().map(|r| json!({
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
fn ex2019_golden() {
    golden("ex2019.LOG");
}

#[test]
fn ex2013_golden() {
    golden("ex2013.LOG");
}

#[test]
fn ex2010_golden() {
    golden("ex2010.LOG");
}

#[test]
fn headerless_golden() {
    golden("headerless.log");
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn by_mid<'a>(records: &'a [MessageRecord], mid: &str) -> &'a MessageRecord {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r.message_id.as_deref() == Some(mid))
        .collect();
    assert_eq!(found.len(), 1, "records with Message-ID {mid}");
    found[0]
}

fn statuses(r: &MessageRecord) -> Vec<(DeliveryStatus, &str)> {
    r.deliveries
        .iter()
        .map(|d| (d.status, d.recipient.as_str()))
        .collect()
}

fn recipients(r: &MessageRecord) -> Vec<(&str, RecipientKind)> {
    r.recipients
        .iter()
        .map(|x| (x.address.as_str(), x.kind))
        .collect()
}

#[test]
fn every_fixture_is_detected() {
    for name in ["ex2019.LOG", "ex2013.LOG", "ex2010.LOG", "headerless.log"] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::ExchangeMsgtrk), "{name}");
    }
    assert_eq!(Format::parse("exchange"), Some(Format::ExchangeMsgtrk));
    assert_eq!(Format::parse("MSGTRK"), Some(Format::ExchangeMsgtrk));
    assert_eq!(Format::ExchangeMsgtrk.name(), "msgtrk");
}

#[test]
fn submission_keeps_to_cc_bcc_and_shadow_events_count_for_nothing() {
    let (s, summary) = decode("ex2019.LOG");
    let a = by_mid(
        &s.records,
        "a1b2c3d4e5f64a5b9c8d7e6f5a4b3c2d@EX01.example.co.jp",
    );
    assert_eq!(
        recipients(a),
        [
            ("hanako.sato@tokyo-shoji.co.jp", RecipientKind::To),
            ("jiro.suzuki@example.co.jp", RecipientKind::Cc),
            ("boss@example.co.jp", RecipientKind::Bcc),
        ],
        "the HAREDIRECT's shadow-only recipient is not one"
    );
    assert_eq!(a.subject.as_deref(), Some("見積書, 第2版 \"改訂\""));
    assert_eq!(
        a.from.as_ref().map(|m| m.address.as_str()),
        Some("taro.yamada@example.co.jp")
    );
    assert_eq!(
        a.envelope_from.as_deref(),
        Some("taro.yamada@example.co.jp")
    );
    assert_eq!(a.size, Some(48213), "the RECEIVE's size, not the shadow's");
    assert_eq!(
        a.client_ip.as_deref(),
        Some("192.0.2.55"),
        "the user's PC, not the mailbox server"
    );
    assert_eq!(
        a.keys,
        [
            "exchange-nmid:11111111-2222-4333-8444-08de20aa0001",
            "exchange@EX01:1001"
        ]
    );
    assert_eq!(a.systems, ["exchange@EX01"]);
    assert_eq!(
        statuses(a),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "jiro.suzuki@example.co.jp"),
            (DeliveryStatus::Delivered, "boss@example.co.jp"),
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
        ]
    );
    let received = &a.deliveries[0];
    assert_eq!(
        received.client_ip.as_deref(),
        Some("fe80::1"),
        "zone removed"
    );
    assert_eq!(received.local_id.as_deref(), Some("1001"));
    let send = &a.deliveries[3];
    assert_eq!(
        send.relay.as_deref(),
        Some("mx.tokyo-shoji.co.jp[203.0.113.25]")
    );
    assert!(send
        .detail
        .as_deref()
        .unwrap()
        .starts_with("250 2.1.5 Recipient OK (250 2.6.0 <a1b2"));
    // Shadow events are counted apart and never make a delivery anywhere.
    assert_eq!(summary.shadow, 2);
    assert!(s.records.iter().all(|r| r
        .recipients
        .iter()
        .all(|x| x.address != "shadow-only@example.co.jp")));
    // The organisation-entry time of DELIVER/SEND is no later than the first event.
    assert_eq!(a.first_seen, Some(t("2025-11-10T00:00:01.250Z")));
}

#[test]
fn front_end_proxy_and_group_expansion() {
    let (s, _) = decode("ex2019.LOG");
    let b = by_mid(&s.records, "20251110000459.ABC123@partner.example");
    assert_eq!(b.client_ip.as_deref(), Some("2001:db8::25"));
    assert_eq!(b.deliveries[0].client_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        b.from.as_ref().map(|m| m.address.as_str()),
        Some("sato@partner.example")
    );
    assert_eq!(
        b.envelope_from.as_deref(),
        Some("bounce+123@partner.example")
    );
    assert_eq!(
        statuses(b),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Expanded, "kato@example.co.jp"),
            (DeliveryStatus::Expanded, "ito@example.co.jp"),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
            (DeliveryStatus::Delivered, "ito@example.co.jp"),
            (DeliveryStatus::Delivered, "suzuki@example.co.jp"),
        ]
    );
    let originals: Vec<_> = b
        .deliveries
        .iter()
        .map(|d| d.original_recipient.as_deref())
        .collect();
    assert_eq!(
        originals,
        [
            None,
            Some("sales@example.co.jp"),
            Some("sales@example.co.jp"),
            Some("sales@example.co.jp"),
            Some("sales@example.co.jp"),
            None
        ]
    );
    assert_eq!(
        b.deliveries[1].detail.as_deref(),
        Some("expanded from group sales@example.co.jp: 250 2.1.5 RESOLVER.GRP.Expanded; distribution list expanded")
    );
    // The fork after TRANSFER has its own internal id; the NMID keeps it one message.
    assert_eq!(b.deliveries[3].local_id.as_deref(), Some("1004"));
}

#[test]
fn fail_is_bounced_and_the_ndr_is_its_own_message() {
    let (s, _) = decode("ex2019.LOG");
    let c = by_mid(&s.records, "c3@spam.example");
    assert_eq!(
        statuses(c),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Bounced, "nobody@example.co.jp")
        ]
    );
    assert_eq!(
        c.deliveries[1].detail.as_deref(),
        Some(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        )
    );
    assert_eq!(c.client_ip.as_deref(), Some("198.51.100.7"));
    let ndr = by_mid(&s.records, "dsn-c3@EX01.example.co.jp");
    assert_eq!(ndr.envelope_from, None, "return-path <> is no sender");
    assert_eq!(
        statuses(ndr),
        [(DeliveryStatus::Delivered, "promo@spam.example")],
        "the DSN event itself is no delivery"
    );
    assert!(!ndr.keys.iter().any(|k| c.keys.contains(k)));
}

#[test]
fn deferrals_then_deliveries() {
    let (s, _) = decode("ex2019.LOG");
    let d = by_mid(&s.records, "d4@EX01.example.co.jp");
    assert_eq!(
        statuses(d),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Deferred, "info@partner.example"),
            (DeliveryStatus::Deferred, "kimura@example.co.jp"),
            (DeliveryStatus::Delivered, "kimura@example.co.jp"),
            (DeliveryStatus::Delivered, "info@partner.example"),
        ]
    );
    assert!(d.deliveries[1]
        .detail
        .as_deref()
        .unwrap()
        .ends_with("[deferred 2 times]"));
    assert!(!d.deliveries[2]
        .detail
        .as_deref()
        .unwrap()
        .contains("deferred"));
    assert_eq!(
        d.deliveries[4].relay.as_deref(),
        Some("mx1.partner.example[192.0.2.80]")
    );
}

#[test]
fn resolve_and_redirect_keep_the_address_written() {
    let (s, _) = decode("ex2019.LOG");
    let e = by_mid(&s.records, "e5@partner.example");
    assert_eq!(
        statuses(e),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Forwarded, "successor@example.co.jp"),
            (DeliveryStatus::Delivered, "taro.yamada@example.co.jp"),
            (DeliveryStatus::Delivered, "successor@example.co.jp"),
        ]
    );
    assert_eq!(
        e.deliveries[2].original_recipient.as_deref(),
        Some("taro.yamada@mail.example.co.jp")
    );
    assert_eq!(
        e.deliveries[3].original_recipient.as_deref(),
        Some("former@example.co.jp")
    );
    let rcpts: Vec<_> = e.recipients.iter().map(|r| r.address.as_str()).collect();
    for a in [
        "taro.yamada@mail.example.co.jp",
        "former@example.co.jp",
        "taro.yamada@example.co.jp",
        "successor@example.co.jp",
    ] {
        assert!(rcpts.contains(&a), "{a} in {rcpts:?}");
    }
}

#[test]
fn messages_are_emitted_once_their_events_stop() {
    let (s, summary) = decode("ex2019.LOG");
    let order: Vec<_> = s
        .records
        .iter()
        .map(|r| r.message_id.as_deref().unwrap_or(""))
        .collect();
    // A and B are emitted by the window (while D is still open), the rest at the end.
    assert_eq!(
        order,
        [
            "a1b2c3d4e5f64a5b9c8d7e6f5a4b3c2d@EX01.example.co.jp",
            "20251110000459.ABC123@partner.example",
            "c3@spam.example",
            "dsn-c3@EX01.example.co.jp",
            "d4@EX01.example.co.jp",
            "e5@partner.example",
            "f6@EX01.example.co.jp",
        ]
    );
    assert_eq!(summary.records, 7);
    let f = by_mid(&s.records, "f6@EX01.example.co.jp");
    assert_eq!(f.subject, None, "an empty subject is none");
    // NOTIFYMAPI carries no id at all: ignored, not rejected.
    assert_eq!(summary.ignored, 5 + 1);
}

#[test]
fn malformed_lines_are_rejected_with_their_positions() {
    let (s, summary) = decode("ex2019.LOG");
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Position::Line(34), "msgtrk.csv"),
            (Position::Line(35), "msgtrk.field_count"),
            (Position::Line(36), "msgtrk.date"),
            (Position::Line(37), "msgtrk.event"),
            (Position::Line(38), "msgtrk.csv"),
        ]
    );
    assert_eq!(summary.rejected, 5);
    assert!(s.rejects.iter().all(|r| r.source == "ex2019.LOG"));
    assert!(
        s.rejects[1].reason.contains("29 fields"),
        "{:?}",
        s.rejects[1]
    );
    assert!(!s.rejects[0].input.is_empty());
}

#[test]
fn columns_follow_the_header_and_a_new_header_replaces_them() {
    let (s, summary) = decode("ex2013.LOG");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.default_layout_lines, 0);
    assert_eq!(summary.shadow, 2);
    assert_eq!(
        s.records.len(),
        1,
        "the HARECEIVE-only message is no record"
    );
    let g = &s.records[0];
    assert_eq!(g.message_id.as_deref(), Some("g1@EX2013.example.co.jp"));
    assert_eq!(g.subject.as_deref(), Some("月次報告,10月"));
    assert_eq!(g.size, Some(7631));
    assert_eq!(g.client_ip.as_deref(), Some("fe80::a:b:c:d"));
    assert_eq!(
        statuses(g),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "a@example.co.jp"),
            (DeliveryStatus::Delivered, "b@example.co.jp"),
            (DeliveryStatus::Delivered, "c@partner.example"),
        ]
    );
    assert_eq!(
        g.deliveries[1].detail.as_deref(),
        Some("250 2.1.5 RecipientSuccessfullyDelivered")
    );
    assert_eq!(g.first_seen, Some(t("2025-11-11T08:59:59.950Z")));
}

#[test]
fn exchange_2010_correlates_by_message_id_with_or_without_brackets() {
    let (s, summary) = decode("ex2010.LOG");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.events, 4);
    assert_eq!(s.records.len(), 1);
    let h = &s.records[0];
    assert_eq!(h.keys, ["exchange@EX2010:4242"]);
    assert_eq!(h.message_id.as_deref(), Some("h1@backup01.example.co.jp"));
    assert_eq!(
        statuses(h),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "ops@example.co.jp"),
            (DeliveryStatus::Bounced, "gone@example.co.jp"),
        ]
    );
    assert_eq!(h.client_ip.as_deref(), Some("10.0.2.20"));
}

#[test]
fn header_less_lines_use_the_documented_layout_and_say_so() {
    let (s, summary) = decode("headerless.log");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.default_layout_lines, 2);
    assert_eq!(s.records.len(), 1);
    assert_eq!(
        statuses(&s.records[0]),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "l@partner.example")
        ]
    );
    // With a header, nothing is assumed.
    let (_, summary) = decode("ex2019.LOG");
    assert_eq!(summary.default_layout_lines, 0);
}

#[test]
fn a_header_that_is_not_message_tracking_rejects_its_lines() {
    let log = "#Software: Microsoft Exchange Server\r\n#Log-type: SMTP Receive Protocol Log\r\n#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context\r\n2022-07-20T21:12:06.270Z,EXCHANGE-1\\Default Frontend EXCHANGE-1,08DA4F7C11473A60,9,192.168.9.241:25,192.168.9.212:53722,>,535 5.7.3 Authentication unsuccessful,\r\n";
    let mut sink = VecSink::default();
    let s = import_msgtrk(log.as_bytes(), "smtp.log", &opts(), &mut sink).unwrap();
    assert_eq!(s.records, 0);
    let codes: Vec<_> = sink
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (Position::Line(3), "msgtrk.header"),
            (Position::Line(4), "msgtrk.header")
        ]
    );
}

#[test]
fn streaming_decoder_has_the_dispatcher_shape_and_bounded_memory() {
    let header = "#Fields: date-time,event-id,network-message-id,recipient-address,server-hostname,internal-message-id";
    let mut sink = VecSink::default();
    let mut d = MsgtrkDecoder::with_limits(Duration::minutes(30), 3);
    assert_eq!(
        d.line(header.as_bytes(), "live", 1, &mut sink).unwrap(),
        LineOutcome::Header
    );
    for i in 0..10u64 {
        let line =
            format!("2025-11-10T00:00:{i:02}.000Z,DELIVER,nmid-{i},u{i}@example.co.jp,EX01,{i}");
        assert_eq!(
            d.line(line.as_bytes(), "live", i + 2, &mut sink).unwrap(),
            LineOutcome::Event
        );
        assert!(d.open_messages() <= 3);
    }
    assert_eq!(sink.records.len(), 7, "the oldest were emitted early");
    assert_eq!(
        sink.records[0].keys[0], "exchange-nmid:nmid-0",
        "oldest first"
    );
    // A later event of an emitted message makes a second, partial record (the store merges them).
    let late = "2025-11-10T00:00:20.000Z,FAIL,nmid-0,u0@example.co.jp,EX01,0";
    d.line(late.as_bytes(), "live", 20, &mut sink).unwrap();
    assert_eq!(
        d.line(
            b"2025-11-10T00:00:21.000Z,HARECEIVE,nmid-x,a@b,EX01,9",
            "live",
            21,
            &mut sink
        )
        .unwrap(),
        LineOutcome::Shadow
    );
    d.finish(&mut sink).unwrap();
    assert_eq!(d.open_messages(), 0);
    assert_eq!(sink.records.len(), 11);
    let zero: Vec<_> = sink
        .records
        .iter()
        .filter(|r| r.keys[0] == "exchange-nmid:nmid-0")
        .collect();
    assert_eq!(zero.len(), 2);
    // A time far ahead flushes by the window without any cap.
    let mut d = MsgtrkDecoder::with_limits(Duration::minutes(30), 1000);
    let mut sink = VecSink::default();
    d.line(header.as_bytes(), "live", 1, &mut sink).unwrap();
    d.line(
        b"2025-11-10T00:00:00.000Z,DELIVER,n1,a@x,EX01,1",
        "live",
        2,
        &mut sink,
    )
    .unwrap();
    d.line(
        b"2025-11-10T00:29:00.000Z,DELIVER,n2,a@x,EX01,2",
        "live",
        3,
        &mut sink,
    )
    .unwrap();
    assert!(sink.records.is_empty());
    d.line(
        b"2025-11-10T00:31:00.000Z,DELIVER,n3,a@x,EX01,3",
        "live",
        4,
        &mut sink,
    )
    .unwrap();
    assert_eq!(sink.records.len(), 1);
    assert_eq!(d.open_messages(), 2);
}

#[test]
fn over_long_lines_are_rejected_and_quarantined_capped() {
    let mut log = String::from("#Fields: date-time,event-id,message-id\n");
    log.push_str(&format!(
        "2025-11-10T00:00:00.000Z,RECEIVE,<{}@x>\n",
        "a".repeat(10_000)
    ));
    log.push_str("2025-11-10T00:00:01.000Z,RECEIVE,<ok@x>\n");
    let mut sink = VecSink::default();
    let s = import_msgtrk(log.as_bytes(), "long", &opts(), &mut sink).unwrap();
    assert_eq!(s.rejected, 1);
    assert_eq!(sink.rejects[0].code, "msgtrk.too_long");
    assert_eq!(sink.rejects[0].input.len(), 4096);
    assert_eq!(sink.records.len(), 1);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn msgtrk_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("2025-11-10T00:00:00.000Z".to_string()),
            Just("2025-11-10T00:59:00Z".to_string()),
            Just(",".to_string()),
            Just(",,,,".to_string()),
            Just("\"".to_string()),
            Just("\"\"".to_string()),
            Just(";".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\u{feff}".to_string()),
            Just("#Fields: date-time,event-id,message-id,network-message-id,recipient-address,recipient-status,related-recipient-address,server-hostname,client-hostname,internal-message-id,client-ip,custom-data,message-info,total-bytes\n".to_string()),
            Just("#Fields: x,y\n".to_string()),
            Just("RECEIVE".to_string()),
            Just("DELIVER".to_string()),
            Just("SENDEXTERNAL".to_string()),
            Just("DEFER".to_string()),
            Just("EXPAND".to_string()),
            Just("REDIRECT".to_string()),
            Just("RESOLVE".to_string()),
            Just("HA".to_string()),
            Just("FAIL".to_string()),
            Just("<m@x>".to_string()),
            Just("nmid".to_string()),
            Just("To;Cc;Bcc".to_string()),
            Just("fe80::1%3".to_string()),
            Just("S:ProxiedClientIPAddress=::1;S:OriginalFromAddress=".to_string()),
            Just("a@x;b@y".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn import_never_panics(input in msgtrk_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_line_bytes: 256, ..Default::default() };
            let s = import_msgtrk(input.as_bytes(), "p", &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
            prop_assert_eq!(s.records as usize, sink.records.len());
            prop_assert!(sink.records.iter().all(|r| !r.keys.is_empty()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut sink = VecSink::default();
            import_msgtrk(&input[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
            let _ = mailtrail_ingest::msgtrk::looks_like_msgtrk(&input);
        }

        #[test]
        fn small_caps_and_windows_never_panic(lines in prop::collection::vec(msgtrk_like(), 0..20), cap in 1usize..4) {
            let mut sink = VecSink::default();
            let mut d = MsgtrkDecoder::with_limits(Duration::seconds(1), cap);
            for (i, l) in lines.iter().enumerate() {
                d.line(l.as_bytes(), "p", i as u64 + 1, &mut sink).unwrap();
                prop_assert!(d.open_messages() <= cap);
            }
            d.finish(&mut sink).unwrap();
        }
    }
}

/// A million generated lines decode completely: every copy of the fixture's
/// messages becomes its own record, nothing is rejected. Ignored by default
/// for its size; CI runs it (`-- --ignored`). The decoding rate it prints is
/// information only; the measured figures are in docs/PERFORMANCE.md.
#[test]
#[ignore]
fn a_million_lines_decode_completely() {
    let base = std::fs::read_to_string(fixtures().join("ex2019.LOG")).unwrap();
    let (head, body) = base.split_at(base.find("\r\n2025").unwrap() + 2);
    let body: Vec<&str> = body.lines().filter(|l| !l.is_empty()).take(28).collect();
    let copy_of = |copy: u64| -> String {
        let mut text = String::new();
        // Fresh ids per copy so messages are opened and emitted as in a real log.
        for l in &body {
            text.push_str(
                &l.replace("-08de20aa", &format!("-{copy:08x}"))
                    .replace('<', &format!("<{copy:x}.")),
            );
            text.push('\n');
        }
        text
    };
    let mut one = VecSink::default();
    import_msgtrk(
        format!("{head}{}", copy_of(0)).as_bytes(),
        "one",
        &opts(),
        &mut one,
    )
    .unwrap();
    let per_copy = one.records.len();
    assert!(per_copy > 0);
    let mut big = String::from(head);
    let mut copies = 0u64;
    while (copies as usize) * body.len() < 1_000_000 {
        big.push_str(&copy_of(copies));
        copies += 1;
    }
    let mut sink = VecSink::default();
    let start = std::time::Instant::now();
    let s = import_msgtrk(big.as_bytes(), "big", &opts(), &mut sink).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(sink.rejects.is_empty(), "{:?}", &sink.rejects[..1]);
    assert_eq!(sink.records.len(), per_copy * copies as usize);
    eprintln!(
        "{} lines, {} records in {secs:.2}s = {:.0} lines/s",
        s.lines,
        sink.records.len(),
        s.lines as f64 / secs
    );
}
