//! Golden tests of the Microsoft 365 decoders (message trace exports and
//! Office 365 audit records) over our own fixtures (`tests/fixtures/m365`,
//! written by `make_fixtures.py` there to the published shapes): each input
//! is decoded and compared with the records, rejects and summary in
//! `<name>.expected.json` beside it. Regenerate (then review the diff!) with
//! `MAILTRAIL_BLESS=1 cargo test -p mailtrail-ingest --test m365`.
//!
//! The named tests below each assert one behaviour directly, so a blessed
//! golden file cannot hide a regression of those behaviours.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mailtrail_ingest::m365::{
    self, graph_details_page, graph_trace_page, import_trace, import_trace_with, TraceCsv,
    TraceInput, TraceSummary,
};
use mailtrail_ingest::o365audit::{
    self, audit_record, import_audit, AuditOutcome, AuditSummary, SkipReason,
};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{DeliveryStatus, MessageRecord, Position, RecipientKind};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/m365")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn trace(name: &str) -> (VecSink, TraceSummary) {
    let mut sink = VecSink::default();
    let s = import_trace(&read(name)[..], name, &DecodeOptions::default(), &mut sink).unwrap();
    (sink, s)
}

fn audit(name: &str) -> (VecSink, AuditSummary) {
    let mut sink = VecSink::default();
    let s = import_audit(&read(name)[..], name, &DecodeOptions::default(), &mut sink).unwrap();
    (sink, s)
}

fn compare(name: &str, actual: serde_json::Value) {
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

fn rejects_json(sink: &VecSink) -> serde_json::Value {
    sink.rejects
        .iter()
        .map(|r| {
            json!({
                "position": r.position, "code": r.code, "reason": r.reason,
                "input_bytes": r.input.len(),
            })
        })
        .collect()
}

fn golden_trace(name: &str) {
    let (sink, s) = trace(name);
    compare(
        name,
        json!({
            "summary": {
                "input": format!("{:?}", s.input), "rows": s.rows, "records": s.records,
                "rejected": s.rejected, "without_status": s.without_status,
                "ignored_events": s.ignored_events,
            },
            "records": sink.records,
            "rejects": rejects_json(&sink),
        }),
    );
}

fn golden_audit(name: &str) {
    let (sink, s) = audit(name);
    compare(
        name,
        json!({
            "summary": {
                "audit_records": s.audit_records, "records": s.records, "rejected": s.rejected,
                "skipped": s.skipped, "skipped_by_operation": s.skipped_by_operation,
                "accessed_items": s.accessed_items,
            },
            "records": sink.records,
            "rejects": rejects_json(&sink),
        }),
    );
}

const TRACE_FIXTURES: [&str; 10] = [
    "get-messagetrace_en-US.csv",
    "get-messagetrace_ps51.json",
    "get-messagetracev2_ja-JP.csv",
    "get-messagetracev2_en-GB.csv",
    "get-messagetracev2_ps7_single.json",
    "graph_messagetraces.json",
    "graph_details.json",
    "get-messagetracedetail.csv",
    "historical_enhanced_summary.csv",
    "historical_extended.csv",
];

const AUDIT_FIXTURES: [&str; 3] = [
    "audit_exchange.json",
    "audit_exchange.ndjson",
    "audit_search_export.csv",
];

#[test]
fn trace_goldens() {
    for name in TRACE_FIXTURES.iter().chain(["broken.ndjson"].iter()) {
        golden_trace(name);
    }
}

#[test]
fn audit_goldens() {
    for name in AUDIT_FIXTURES {
        golden_audit(name);
    }
}

#[test]
fn every_fixture_is_detected() {
    for name in TRACE_FIXTURES.iter().chain(["broken.ndjson"].iter()) {
        let bytes = read(name);
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::M365Trace), "{name}");
    }
    for name in AUDIT_FIXTURES {
        let bytes = read(name);
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::O365Audit), "{name}");
    }
    // The older audit search export header, and look-alikes that are neither.
    assert!(o365audit::looks_like_audit(
        b"CreationDate,UserIds,Operations,AuditData\r\n"
    ));
    assert!(!o365audit::looks_like_audit(
        b"CreationDate,UserIds,Operations\r\n"
    ));
    assert!(!m365::looks_like_trace(b"Received,Sender,Recipient\r\n"));
    assert!(!m365::looks_like_trace(
        b"{\"Received\": \"x\", \"Status\": 1}"
    ));
    assert!(!m365::looks_like_trace(
        b"Received: from mx.example ([192.0.2.1])\r\n"
    ));
    assert_eq!(
        detect::detect(b"Received: from mx.example ([192.0.2.1])\r\nSubject: x\r\n"),
        Some(Format::Eml)
    );
    for (name, format) in [
        ("m365", Format::M365Trace),
        ("message-trace", Format::M365Trace),
        ("M365-TRACE", Format::M365Trace),
        ("o365-audit", Format::O365Audit),
        ("m365-audit", Format::O365Audit),
    ] {
        assert_eq!(Format::parse(name), Some(format), "{name}");
    }
    assert_eq!(Format::M365Trace.name(), "m365-trace");
    assert_eq!(Format::O365Audit.name(), "o365-audit");
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

const A: &str = "TYCPR01MB0001A1@TYCPR01MB0001.jpnprd01.prod.outlook.com";

#[test]
fn export_csv_rows_fold_into_one_record_per_message() {
    let (s, summary) = trace("get-messagetrace_en-US.csv");
    assert_eq!(summary.input, Some(TraceInput::Csv(TraceCsv::MessageTrace)));
    assert_eq!(summary.rows, 11);
    assert_eq!(summary.records, 6);
    assert_eq!(s.records.len(), 6);
    let a = by_mid(&s.records, A);
    assert_eq!(a.keys, ["m365:0a0b0c0d-1111-4222-8333-08de20aa0001"]);
    assert_eq!(a.systems, ["m365"]);
    assert_eq!(
        a.envelope_from.as_deref(),
        Some("taro.yamada@example.co.jp")
    );
    assert_eq!(a.from, None, "the trace's sender is the envelope sender");
    assert_eq!(a.subject.as_deref(), Some("見積書, 第2版 \"改訂\""));
    assert_eq!(a.size, Some(48213));
    assert_eq!(a.client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(a.first_seen, Some(t("2025-11-10T09:05:03Z")), "en-US, AM");
    assert_eq!(
        recipients(a),
        [
            ("hanako.sato@tokyo-shoji.co.jp", RecipientKind::Envelope),
            ("jiro.suzuki@example.co.jp", RecipientKind::Envelope),
            ("info@partner.example", RecipientKind::Envelope),
        ]
    );
    assert_eq!(
        statuses(a),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
            (DeliveryStatus::Delivered, "jiro.suzuki@example.co.jp"),
            (DeliveryStatus::Deferred, "info@partner.example"),
        ]
    );
    assert_eq!(a.deliveries[0].client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(a.deliveries[1].relay.as_deref(), Some("[203.0.113.25]"));
    assert_eq!(a.deliveries[1].detail, None);
    assert_eq!(a.deliveries[2].relay, None, "no ToIP");
    assert_eq!(a.deliveries[3].detail.as_deref(), Some("Pending"));
    assert_eq!(
        a.deliveries[1].local_id.as_deref(),
        Some("0a0b0c0d-1111-4222-8333-08de20aa0001")
    );
    // A subject with a line break: a quoted field across lines.
    let c = by_mid(&s.records, "c3-agenda@partner.example");
    assert_eq!(c.subject.as_deref(), Some("Meeting\nagenda"));
    assert_eq!(c.first_seen, Some(t("2025-11-09T00:30:00Z")), "12:30:00 AM");
    assert_eq!(c.client_ip.as_deref(), Some("2001:db8::25"));
    assert_eq!(
        statuses(c),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Expanded, "sales@example.co.jp"),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
            (DeliveryStatus::Delivered, "ito@example.co.jp"),
        ]
    );
    assert_eq!(
        by_mid(&s.records, "d4@example.co.jp").first_seen,
        Some(t("2025-11-09T23:59:59Z")),
        "11:59:59 PM"
    );
}

#[test]
fn every_status_maps_as_the_module_doc_says() {
    let (s, summary) = trace("get-messagetrace_en-US.csv");
    let one = |mid: &str| {
        let r = by_mid(&s.records, mid);
        r.deliveries
            .iter()
            .filter(|d| !d.recipient.is_empty())
            .map(|d| (d.status, d.detail.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        one("promo-77@spam.example"),
        [(DeliveryStatus::Quarantined, Some("FilteredAsSpam".into()))]
    );
    assert_eq!(one("d4@example.co.jp"), [(DeliveryStatus::Failed, None)]);
    assert_eq!(one("e5@bad.example"), [(DeliveryStatus::Quarantined, None)]);
    // GettingStatus is "received"; None makes no delivery but keeps the recipient.
    assert_eq!(
        one("f6@example.co.jp"),
        [(DeliveryStatus::Received, Some("GettingStatus".into()))]
    );
    let f = by_mid(&s.records, "f6@example.co.jp");
    assert!(f
        .recipients
        .iter()
        .any(|r| r.address == "former@example.co.jp"));
    assert_eq!(f.subject, None, "an empty subject is none");
    assert_eq!(summary.without_status, 1);
}

#[test]
fn malformed_rows_are_rejected_with_their_lines() {
    let (s, summary) = trace("get-messagetrace_en-US.csv");
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    // Line 1 is #TYPE, 2 the header, 3..=16 the 11 rows (three span two lines).
    assert_eq!(
        got,
        [
            (Position::Line(17), "m365.field_count"),
            (Position::Line(18), "m365.date"),
        ]
    );
    assert_eq!(summary.rejected, 2);
    assert!(
        s.rejects[0].reason.contains("16 fields"),
        "{:?}",
        s.rejects[0]
    );
    assert!(
        s.rejects[1].reason.contains("yesterday"),
        "{:?}",
        s.rejects[1]
    );
    assert!(s
        .rejects
        .iter()
        .all(|r| r.source == "get-messagetrace_en-US.csv"));
    assert!(!s.rejects[0].input.is_empty());
}

#[test]
fn windows_powershell_json_in_utf16_gives_the_same_records_as_the_csv() {
    let (csv, _) = trace("get-messagetrace_en-US.csv");
    let (json, summary) = trace("get-messagetrace_ps51.json");
    assert_eq!(summary.input, Some(TraceInput::Json));
    assert!(json.rejects.is_empty(), "{:?}", json.rejects);
    assert_eq!(summary.rows, 11);
    assert_eq!(
        json.records, csv.records,
        "/Date(ms)/, \\u003c escapes, the DisplayHint wrapper"
    );
}

#[test]
fn culture_dates_and_single_objects() {
    let (s, summary) = trace("get-messagetracev2_ja-JP.csv");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.records, 2);
    let r = by_mid(&s.records, "jp-1@example.co.jp");
    assert_eq!(
        r.first_seen,
        Some(t("2025-11-11T14:13:20Z")),
        "yyyy/MM/dd H:mm:ss"
    );
    assert_eq!(r.subject.as_deref(), Some("【社外秘】顧客リスト 更新"));
    assert_eq!(
        by_mid(&s.records, "jp-2@example.co.jp").first_seen,
        Some(t("2025-11-11T09:00:05Z")),
        "a one-digit hour"
    );

    // en-GB: the first row's own EndDate (13/11) settles the day-first order.
    let (s, _) = trace("get-messagetracev2_en-GB.csv");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(
        by_mid(&s.records, "gb-1@partner.example").first_seen,
        Some(t("2025-11-03T09:00:00Z"))
    );
    assert_eq!(
        by_mid(&s.records, "gb-2@partner.example").first_seen,
        Some(t("2025-11-12T18:30:00Z"))
    );

    let (s, summary) = trace("get-messagetracev2_ps7_single.json");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.rows, 1);
    let r = &s.records[0];
    assert_eq!(
        r.first_seen,
        Some(t("2025-11-12T01:02:03.456789100Z")),
        "seven fractional digits, no zone: UTC"
    );
    assert_eq!(r.size, Some(87891));
    assert_eq!(r.client_ip.as_deref(), Some("2001:db8:a01::61"));
}

#[test]
fn graph_pages_for_files_and_for_the_poller() {
    let (s, summary) = trace("graph_messagetraces.json");
    assert_eq!(summary.rows, 3);
    assert_eq!(
        s.rejects
            .iter()
            .map(|r| (r.code.as_str(), r.reason.as_str()))
            .collect::<Vec<_>>(),
        [("m365.date", "value[3]: no Received (receivedDateTime) time")]
    );
    let g1 = by_mid(&s.records, "g1@example.co.jp");
    assert_eq!(g1.keys, ["m365:4e5f6071-0000-4000-8000-08de24000001"]);
    assert_eq!(
        statuses(g1),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "buyer@tokyo-shoji.co.jp")
        ]
    );
    assert_eq!(
        statuses(by_mid(&s.records, "g2@spam.example"))[1],
        (DeliveryStatus::Quarantined, "suzuki@example.co.jp")
    );
    let g3 = by_mid(&s.records, "g3@example.co.jp");
    assert_eq!(g3.size, Some(2048), "a size as text");
    assert_eq!(
        statuses(g3)[1],
        (DeliveryStatus::Received, "late@partner.example")
    );

    // The poller's entry point: one parsed page in, records and the next link out.
    let page: serde_json::Value =
        serde_json::from_slice(&read("graph_messagetraces.json")).unwrap();
    let out = graph_trace_page(&page);
    assert_eq!(out.records.len(), 3);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].0, 3);
    assert_eq!(
        out.next_link.as_deref(),
        Some("https://graph.microsoft.com/beta/admin/exchange/tracing/messageTraces?$skiptoken=page2")
    );
    assert_eq!(&out.records[0], g1);
}

#[test]
fn detail_events_become_deliveries_of_their_recipient() {
    // From a file, Graph's details name no recipient: the message as a whole.
    let (s, summary) = trace("graph_details.json");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(
        s.records.len(),
        1,
        "the events of one trace fold into one record"
    );
    assert_eq!(summary.ignored_events, 1, "Submit");
    let r = &s.records[0];
    assert_eq!(r.keys, ["m365:4e5f6071-0000-4000-8000-08de24000001"]);
    assert_eq!(
        statuses(r),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "")
        ]
    );
    assert_eq!(
        r.deliveries[1].detail.as_deref(),
        Some("Send external: Message sent to mx.tokyo-shoji.co.jp at 203.0.113.25 using TLS1.2")
    );
    assert_eq!(r.first_seen, Some(t("2025-11-12T03:04:05Z")));
    // The poller knows whom it asked about.
    let page: serde_json::Value = serde_json::from_slice(&read("graph_details.json")).unwrap();
    let out = graph_details_page(&page, Some("Buyer@Tokyo-Shoji.co.jp"));
    assert_eq!(out.records.len(), 1);
    assert_eq!(
        statuses(&out.records[0]),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "buyer@tokyo-shoji.co.jp")
        ]
    );

    // Get-MessageTraceDetail names the recipient in every row.
    let (s, summary) = trace("get-messagetracedetail.csv");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(
        summary.input,
        Some(TraceInput::Csv(TraceCsv::MessageTraceDetail))
    );
    let r = by_mid(&s.records, A);
    assert_eq!(
        statuses(r),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Deferred, "info@partner.example"),
            (DeliveryStatus::Delivered, "info@partner.example"),
        ]
    );
    assert_eq!(r.deliveries[2].time, t("2025-11-10T10:06:00Z"));
    assert_eq!(summary.ignored_events, 1, "Transport rule");
}

#[test]
fn historical_reports() {
    let (s, summary) = trace("historical_enhanced_summary.csv");
    assert_eq!(
        summary.input,
        Some(TraceInput::Csv(TraceCsv::EnhancedSummary))
    );
    assert_eq!(summary.records, 2);
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(got, [(Position::Line(4), "m365.date")]);
    let one = by_mid(&s.records, "hs-1@example.co.jp");
    assert_eq!(one.keys, ["m365:5f607182-0000-4000-8000-08de25000001"]);
    assert_eq!(
        statuses(one),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
            (DeliveryStatus::Failed, "nobody@tokyo-shoji.co.jp"),
        ]
    );
    assert_eq!(one.deliveries[1].detail.as_deref(), Some("Receive, Send"));
    assert_eq!(one.client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(one.first_seen, Some(t("2025-11-10T00:05:03.123Z")));
    let two = by_mid(&s.records, "hs-2@partner.example");
    assert_eq!(
        statuses(two),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Expanded, "sales@example.co.jp"),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
            (DeliveryStatus::Deferred, "ito@example.co.jp"),
        ]
    );
    assert_eq!(
        two.deliveries[0].detail.as_deref(),
        Some("connector Inbound from partner")
    );

    let (s, summary) = trace("historical_extended.csv");
    assert!(s.rejects.is_empty(), "{:?}", s.rejects);
    assert_eq!(summary.input, Some(TraceInput::Csv(TraceCsv::Extended)));
    assert_eq!(
        summary.ignored_events, 2,
        "AGENTINFO and the HA* shadow copy"
    );
    let one = by_mid(&s.records, "hx-1@example.co.jp");
    assert_eq!(
        statuses(one),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
            (DeliveryStatus::Failed, "nobody@tokyo-shoji.co.jp"),
        ]
    );
    assert_eq!(
        one.deliveries[1].relay.as_deref(),
        Some("mx.tokyo-shoji.co.jp[203.0.113.25]")
    );
    assert_eq!(
        one.deliveries[1].detail.as_deref(),
        Some("SENDEXTERNAL: 250 2.1.5 Recipient OK (TLS=SP_PROT_TLS1_2_CLIENT, cipher=ECDHE, 256 bits)")
    );
    assert!(!one
        .recipients
        .iter()
        .any(|r| r.address == "shadow@example.co.jp"));
    assert_eq!(one.client_ip.as_deref(), Some("192.0.2.55"));
    let two = by_mid(&s.records, "hx-2@partner.example");
    assert_eq!(
        two.envelope_from.as_deref(),
        Some("bounce+77@partner.example")
    );
    assert_eq!(two.client_ip.as_deref(), Some("2001:db8::25"));
    assert_eq!(
        statuses(two),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Expanded, "kato@example.co.jp"),
            (DeliveryStatus::Expanded, "ito@example.co.jp"),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
            (DeliveryStatus::Delivered, "ito@example.co.jp"),
        ]
    );
    assert_eq!(
        two.deliveries[1].original_recipient.as_deref(),
        Some("sales@example.co.jp")
    );
    assert_eq!(
        two.deliveries[3].detail.as_deref(),
        Some("DELIVER: 250 2.0.0 OK")
    );
}

#[test]
fn broken_json_is_rejected_value_by_value() {
    let (s, summary) = trace("broken.ndjson");
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Position::Line(2), "m365.date"),
            (Position::Line(3), "m365.fields"),
            (Position::Line(4), "m365.fields"),
            (Position::Line(5), "m365.json"),
            (Position::Line(6), "m365.json"),
            (Position::Line(7), "m365.fields"),
            (Position::Line(8), "m365.date"),
            (Position::Line(9), "m365.json"),
        ]
    );
    assert!(
        s.rejects[1].reason.contains("o365-audit"),
        "{:?}",
        s.rejects[1]
    );
    assert_eq!(summary.records, 2);
    assert_eq!(summary.rejected, 8);
}

#[test]
fn over_long_values_are_rejected_and_the_reader_goes_on() {
    let big = format!(
        "[{{\"Received\":\"2025-11-10T00:00:00\",\"RecipientAddress\":\"a@b\",\"SenderAddress\":\"c@d\",\"Status\":\"Delivered\",\"Subject\":\"{}\"}},\n{{\"Received\":\"2025-11-10T00:00:00\",\"RecipientAddress\":\"a@b\",\"SenderAddress\":\"c@d\",\"Status\":\"Delivered\",\"MessageId\":\"<small@x>\"}}]",
        "x".repeat(5000)
    );
    let opts = DecodeOptions {
        max_message_bytes: 1024,
        ..DecodeOptions::default()
    };
    let mut sink = VecSink::default();
    let s = import_trace(big.as_bytes(), "big", &opts, &mut sink).unwrap();
    assert_eq!(s.rejected, 1);
    assert_eq!(sink.rejects[0].code, "m365.too_long");
    assert_eq!(sink.rejects[0].input.len(), 1024);
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].message_id.as_deref(), Some("small@x"));
    // The same for a CSV record.
    let csv = format!(
        "Received,SenderAddress,RecipientAddress,Status,MessageId\n2025-11-10T00:00:00,a@b,c@d,Delivered,<{}@x>\n2025-11-10T00:00:00,a@b,c@d,Delivered,<ok@x>\n",
        "y".repeat(5000)
    );
    let mut sink = VecSink::default();
    let s = import_trace(csv.as_bytes(), "big.csv", &opts, &mut sink).unwrap();
    assert_eq!(s.rejected, 1);
    assert_eq!(sink.rejects[0].code, "m365.too_long");
    assert_eq!(sink.rejects[0].position, Position::Line(2));
    assert_eq!(sink.records.len(), 1);
}

#[test]
fn an_unknown_csv_header_rejects_its_rows() {
    let csv = "Date,From,To\n2025-11-10,a@b,c@d\n2025-11-10,e@f,g@h\n";
    let mut sink = VecSink::default();
    let s = import_trace(
        csv.as_bytes(),
        "x.csv",
        &DecodeOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(s.records, 0);
    assert_eq!(s.input, None);
    let got: Vec<_> = sink
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Position::Line(1), "m365.header"),
            (Position::Line(2), "m365.header"),
            (Position::Line(3), "m365.header"),
        ]
    );
}

#[test]
fn folding_is_bounded() {
    let (all, _) = trace("get-messagetrace_en-US.csv");
    let mut sink = VecSink::default();
    let s = import_trace_with(
        &read("get-messagetrace_en-US.csv")[..],
        "x",
        &DecodeOptions::default(),
        1,
        &mut sink,
    )
    .unwrap();
    // Rows of one message are adjacent: a cap of one open message changes nothing.
    assert_eq!(sink.records, all.records);
    assert_eq!(s.records, 6);
    // Interleaved rows are emitted early as partial records; merged, they are the same.
    let csv = "Received,SenderAddress,RecipientAddress,Status,MessageTraceId\n\
        2025-11-10T00:00:00,a@x,1@y,Delivered,t1\n\
        2025-11-10T00:00:01,a@x,2@y,Delivered,t2\n\
        2025-11-10T00:00:00,a@x,3@y,Failed,t1\n";
    let mut sink = VecSink::default();
    import_trace_with(csv.as_bytes(), "x", &DecodeOptions::default(), 1, &mut sink).unwrap();
    assert_eq!(sink.records.len(), 3);
    let mut one = sink.records[0].clone();
    one.merge(sink.records[2].clone());
    assert_eq!(
        statuses(&one),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "1@y"),
            (DeliveryStatus::Failed, "3@y"),
        ]
    );
}

// ---------------------------------------------------------------------------
// Audit records
// ---------------------------------------------------------------------------

#[test]
fn send_sendas_and_sendonbehalf_keep_sender_actor_and_client() {
    let (s, summary) = audit("audit_exchange.json");
    let by_key = |id: &str| {
        let key = format!("m365-audit:a0000000-0000-4000-8000-00000000000{id}");
        let found: Vec<_> = s
            .records
            .iter()
            .filter(|r| r.keys == [key.clone()])
            .collect();
        assert_eq!(found.len(), 1, "{key}");
        found[0]
    };
    let send = by_key("1");
    assert_eq!(send.message_id.as_deref(), Some(A));
    assert_eq!(send.systems, ["m365-audit"]);
    assert_eq!(
        send.from.as_ref().map(|m| m.address.as_str()),
        Some("taro.yamada@example.co.jp")
    );
    assert_eq!(send.client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(send.size, Some(48213));
    let names: Vec<_> = send
        .attachments
        .iter()
        .map(|a| (a.filename.as_deref().unwrap_or(""), a.size))
        .collect();
    assert_eq!(
        names,
        [
            ("見積書 (第2版).xlsx", 35840),
            ("会社案内; 2025 (最新)(v1.2).pdf", 120034)
        ],
        "names with parentheses and a semicolon, read from the right"
    );
    assert_eq!(
        statuses(send),
        [(DeliveryStatus::Received, "")],
        "the submission"
    );
    assert_eq!(send.deliveries[0].time, t("2025-11-10T09:05:02Z"));
    assert_eq!(
        send.deliveries[0].detail.as_deref(),
        Some("Send (owner) via Client=OWA;Mozilla/5.0 (Windows NT 10.0; Win64; x64);")
    );

    let send_as = by_mid(&s.records, "sendas-1@example.co.jp");
    assert_eq!(
        send_as.from.as_ref().map(|m| m.address.as_str()),
        Some("ceo@example.co.jp")
    );
    assert_eq!(send_as.size, Some(1024), "a float as text");
    assert_eq!(send_as.client_ip.as_deref(), Some("2001:db8::7"));
    assert_eq!(
        send_as.deliveries[0].detail.as_deref(),
        Some("SendAs as ceo@example.co.jp by assistant@example.co.jp (delegate) via Client=MSExchangeRPC"),
        "numbers as strings"
    );
    assert_eq!(send_as.first_seen, Some(t("2025-11-10T10:00:00.1234567Z")));

    let on_behalf = by_mid(&s.records, "onbehalf-1@example.co.jp");
    assert_eq!(
        on_behalf.from.as_ref().map(|m| m.address.as_str()),
        Some("boss@example.co.jp")
    );
    assert_eq!(on_behalf.client_ip, None, "::1 is Exchange itself");
    assert_eq!(statuses(on_behalf), [(DeliveryStatus::Failed, "")]);
    assert!(on_behalf.deliveries[0]
        .detail
        .as_deref()
        .unwrap()
        .ends_with("by secretary@example.co.jp (delegate) [Failed]"));
    assert_eq!(summary.records, 6);
}

#[test]
fn creates_dlp_matches_and_skips() {
    let (s, summary) = audit("audit_exchange.json");
    let inbox = by_mid(&s.records, "welcome-1@example.co.jp");
    assert_eq!(
        recipients(inbox),
        [("projects@example.co.jp", RecipientKind::Envelope)]
    );
    assert_eq!(
        inbox
            .from
            .as_ref()
            .map(|m| (m.address.as_str(), m.display_name.as_deref())),
        Some(("noreply@example.co.jp", Some("Microsoft 365")))
    );
    assert!(
        inbox.deliveries.is_empty(),
        "an item put into a mailbox is no delivery"
    );
    assert_eq!(inbox.attachments.len(), 2);
    assert_eq!(
        inbox.attachments[1].filename.as_deref(),
        Some("banner (final).png")
    );
    let sent = by_mid(&s.records, "draft-1@example.co.jp");
    assert_eq!(
        sent.from.as_ref().map(|m| m.address.as_str()),
        Some("hanako@example.co.jp"),
        "the owner wrote what is in 送信済みアイテム"
    );
    assert!(sent.recipients.is_empty());

    // The DLP match is where Microsoft 365 tells Bcc.
    let dlp: Vec<_> = s
        .records
        .iter()
        .filter(|r| r.keys == ["m365-audit:a0000000-0000-4000-8000-000000000008"])
        .collect();
    assert_eq!(dlp.len(), 1);
    let dlp = dlp[0];
    assert_eq!(dlp.message_id.as_deref(), Some(A));
    assert_eq!(
        recipients(dlp),
        [
            ("hanako.sato@tokyo-shoji.co.jp", RecipientKind::To),
            ("info@partner.example", RecipientKind::To),
            ("jiro.suzuki@example.co.jp", RecipientKind::Cc),
            ("private.box@freemail.example", RecipientKind::Bcc),
        ]
    );
    assert_eq!(dlp.size, Some(48213), "FileSize as a float");
    assert_eq!(dlp.first_seen, Some(t("2025-11-10T09:05:01Z")), "Sent");
    assert!(dlp.deliveries.is_empty());

    assert_eq!(summary.skipped, 4);
    let skipped: Vec<_> = summary
        .skipped_by_operation
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        skipped,
        [
            ("Create", 1),
            ("FileAccessed", 1),
            ("MailItemsAccessed", 1),
            ("ModifyFolderPermissions", 1)
        ]
    );
    assert_eq!(summary.accessed_items, 5);
    assert_eq!(summary.audit_records, 10);
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.code.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("o365audit.time", "no CreationTime"),
            ("o365audit.fields", "not a JSON object")
        ]
    );
}

#[test]
fn the_poller_entry_point_says_what_each_record_is() {
    let records: serde_json::Value = serde_json::from_slice(&read("audit_exchange.json")).unwrap();
    let outcomes: Vec<_> = records
        .as_array()
        .unwrap()
        .iter()
        .map(audit_record)
        .collect();
    let kinds: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(AuditOutcome::Message(_)) => "message".to_string(),
            Ok(AuditOutcome::Skipped(s)) => format!("{:?} {}", s.reason, s.items),
            Err(e) => e.code.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "message",
            "message",
            "message",
            "NotMail 0",
            "Access 5",
            "message",
            "OtherWorkload 0",
            "OtherOperation 0",
            "o365audit.time",
            "o365audit.fields",
        ]
    );
    assert!(matches!(
        outcomes[6],
        Ok(AuditOutcome::Skipped(ref s)) if s.reason == SkipReason::Access && s.operation == "MailItemsAccessed"
    ));
}

#[test]
fn ndjson_and_the_search_export_give_the_same_records_as_the_array() {
    let (array, _) = audit("audit_exchange.json");
    let wanted: Vec<&MessageRecord> = array
        .records
        .iter()
        .filter(|r| {
            r.keys == ["m365-audit:a0000000-0000-4000-8000-000000000001"]
                || r.keys == ["m365-audit:a0000000-0000-4000-8000-000000000008"]
        })
        .collect();
    for name in ["audit_exchange.ndjson", "audit_search_export.csv"] {
        let (s, summary) = audit(name);
        let got: Vec<&MessageRecord> = s.records.iter().collect();
        assert_eq!(got, wanted, "{name}");
        assert_eq!(summary.skipped, 1, "{name}: MailItemsAccessed");
        assert_eq!(summary.accessed_items, 5, "{name}");
        assert_eq!(s.rejects.len(), 1, "{name}: {:?}", s.rejects);
        assert_eq!(s.rejects[0].code, "o365audit.json", "{name}");
    }
    let (s, _) = audit("audit_search_export.csv");
    assert_eq!(s.rejects[0].position, Position::Line(4));
    assert!(s.rejects[0].reason.starts_with("AuditData is not JSON"));
}

#[test]
fn the_trace_and_the_audit_views_of_one_email_merge() {
    let (tr, _) = trace("get-messagetrace_en-US.csv");
    let (a, _) = audit("audit_exchange.json");
    let mut merged = by_mid(&tr.records, A).clone();
    for r in a
        .records
        .iter()
        .filter(|r| r.message_id.as_deref() == Some(A))
    {
        merged.merge(r.clone());
    }
    // Envelope recipients from the trace are placed in To / Cc / Bcc by the DLP record.
    let kinds: Vec<_> = recipients(&merged);
    assert!(kinds.contains(&("hanako.sato@tokyo-shoji.co.jp", RecipientKind::To)));
    assert!(kinds.contains(&("jiro.suzuki@example.co.jp", RecipientKind::Cc)));
    assert!(kinds.contains(&("private.box@freemail.example", RecipientKind::Bcc)));
    assert_eq!(merged.systems, ["m365", "m365-audit"]);
    assert_eq!(merged.attachments.len(), 2);
    assert_eq!(merged.first_seen, Some(t("2025-11-10T09:05:01Z")));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn trace_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\u{feff}".to_string()),
            Just("#TYPE x\n".to_string()),
            Just("\"Received\"".to_string()),
            Just("\"RecipientAddress\"".to_string()),
            Just("\"SenderAddress\"".to_string()),
            Just("\"Status\"".to_string()),
            Just("\"value\"".to_string()),
            Just("\"Date\":\"1/2/2025 1:00:00 PM\",\"Event\":\"Deliver\"".to_string()),
            Just("\"2025-11-10T00:00:00\"".to_string()),
            Just("\"/Date(1700000000000)/\"".to_string()),
            Just("\"11/31/2025 13:00:00 PM\"".to_string()),
            Just("Received,SenderAddress,RecipientAddress,Status,MessageTraceId\n".to_string()),
            Just("origin_timestamp,sender_address,recipient_status,message_id\n".to_string()),
            Just(
                "date_time_utc,event_id,recipient_address,message_id,related_recipient_address\n"
                    .to_string()
            ),
            Just("a@x##Receive, Deliver;b@y##".to_string()),
            Just("RECEIVE,HAREDIRECT,EXPAND,SENDEXTERNAL".to_string()),
            Just("2025/11/10 9:00:00".to_string()),
            Just("Delivered,FilteredAsSpam,None".to_string()),
            Just("[::1]:25,fe80::1%3".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    fn audit_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("\"CreationTime\":\"2025-11-10T00:00:00\"".to_string()),
            Just("\"Operation\":\"Send\"".to_string()),
            Just("\"Operation\":\"Create\"".to_string()),
            Just("\"Operation\":\"MailItemsAccessed\"".to_string()),
            Just("\"RecordType\":\"13\"".to_string()),
            Just(
                "\"Item\":{\"InternetMessageId\":\"<m@x>\",\"Attachments\":\"a (1b); b (c) (2b)\"}"
                    .to_string()
            ),
            Just(
                "\"ExchangeMetaData\":{\"To\":[\"a@b\"],\"BCC\":\"c@d; e@f\",\"FileSize\":\"1.5\"}"
                    .to_string()
            ),
            Just("\"Folders\":[{\"FolderItems\":[{}]}]".to_string()),
            Just("\"SizeInBytes\":1e400".to_string()),
            Just("CreationDate,Operation,AuditData\n".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn trace_import_never_panics(input in trace_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_message_bytes: 300, max_line_bytes: 200, ..Default::default() };
            let s = import_trace(input.as_bytes(), "p", &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
            prop_assert_eq!(s.records as usize, sink.records.len());
            prop_assert!(sink.records.iter().all(|r| !r.keys.is_empty()));
            let _ = m365::looks_like_trace(input.as_bytes());
        }

        #[test]
        fn audit_import_never_panics(input in audit_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_message_bytes: 400, ..Default::default() };
            let s = import_audit(input.as_bytes(), "p", &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
            prop_assert_eq!(s.records as usize, sink.records.len());
            let _ = o365audit::looks_like_audit(input.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut sink = VecSink::default();
            import_trace(&input[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
            import_audit(&input[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
            let _ = m365::looks_like_trace(&input);
            let _ = o365audit::looks_like_audit(&input);
            // As UTF-16 too.
            let mut utf16 = vec![0xFF, 0xFE];
            utf16.extend_from_slice(&input);
            import_trace(&utf16[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
            let _ = m365::looks_like_trace(&utf16);
        }

        #[test]
        fn values_never_panic(s in "\\PC{0,40}") {
            let _ = m365::parse_time(&s);
            let _ = o365audit::parse_attachments(&s);
            let _ = m365::parse_recipient_status(&s);
            let _ = m365::clean_ip(&s);
            let _ = m365::event_meaning(&s);
            let _ = audit_record(&serde_json::Value::String(s.clone()));
        }
    }
}

/// Half a million generated trace rows decode completely: every copy of the
/// fixture's messages becomes its own record, nothing is rejected. Ignored by
/// default for its size; CI runs it (`-- --ignored`). The decoding rate it
/// prints is information only; the measured figures are in docs/PERFORMANCE.md.
#[test]
#[ignore]
fn half_a_million_rows_decode_completely() {
    let base = String::from_utf8(read("get-messagetrace_en-US.csv")).unwrap();
    let (head, body) = base.split_at(base.find("\r\n\"outlook").unwrap() + 2);
    let body: Vec<&str> = body.split("\r\n\"outlook").take(11).collect();
    let copy_of = |copy: u64| -> String {
        let mut text = String::new();
        for (i, row) in body.iter().enumerate() {
            let row = if i == 0 {
                row.to_string()
            } else {
                format!("\"outlook{row}")
            };
            // Fresh trace ids per copy, so that messages are folded as in a real export.
            let id = format!("-{copy:08x}");
            text.push_str(&row.replace("-08de20aa", &id).replace("-08DE20AA", &id));
            text.push_str("\r\n");
        }
        text
    };
    let opts = DecodeOptions::default();
    let mut one = VecSink::default();
    import_trace(
        format!("{head}{}", copy_of(0)).as_bytes(),
        "one",
        &opts,
        &mut one,
    )
    .unwrap();
    let per_copy = one.records.len();
    assert!(per_copy > 0);
    let mut big = String::from(head);
    let mut copies = 0u64;
    while (copies as usize) * body.len() < 500_000 {
        big.push_str(&copy_of(copies));
        copies += 1;
    }
    let mut sink = VecSink::default();
    let start = std::time::Instant::now();
    let s = import_trace(big.as_bytes(), "big", &opts, &mut sink).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(sink.rejects.is_empty(), "{:?}", &sink.rejects[..1]);
    assert_eq!(sink.records.len(), per_copy * copies as usize);
    eprintln!(
        "{} rows, {} records in {secs:.2}s = {:.0} rows/s",
        s.rows,
        sink.records.len(),
        s.rows as f64 / secs
    );
}
