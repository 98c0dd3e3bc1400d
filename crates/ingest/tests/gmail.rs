//! Golden tests of the Gmail log decoders over our own fixtures
//! (`tests/fixtures/gmail`, written by `make_fixtures.py` there to the
//! published shapes): each input is decoded and compared with the records,
//! rejects and summary in `<name>.expected.json` beside it. Regenerate (then
//! review the diff!) with `MAILTRAIL_BLESS=1 cargo test -p mailtrail-ingest --test gmail`.
//!
//! The named tests below each assert one behaviour directly, so a blessed
//! golden file cannot hide a regression of those behaviours.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mailtrail_ingest::gmail::{
    import_email_log_search, import_gmail_json, read_schema_file, records_from_activity,
    records_from_row, rows_from_activity, schema_file_beside, GmailSummary, RowOutcome, Schema,
};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{DeliveryStatus, MessageRecord, Position, RecipientKind};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gmail")
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        max_line_bytes: 4096,
        timezone: chrono_tz::Asia::Tokyo,
        ..DecodeOptions::default()
    }
}

fn decode_json(name: &str, schema: Option<Schema>) -> (VecSink, GmailSummary) {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let mut sink = VecSink::default();
    let summary = import_gmail_json(&bytes[..], name, schema, &opts(), &mut sink).unwrap();
    (sink, summary)
}

fn decode_els(name: &str) -> (VecSink, GmailSummary) {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let mut sink = VecSink::default();
    let summary = import_email_log_search(&bytes[..], name, &opts(), &mut sink).unwrap();
    (sink, summary)
}

fn golden_of(name: &str, sink: &VecSink, s: &GmailSummary) {
    let actual = json!({
        "summary": {
            "rows": s.rows, "records": s.records, "rejected": s.rejected, "skipped": s.skipped,
            "default_schema_rows": s.default_schema_rows, "schema_documents": s.schema_documents,
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
    assert_eq!(s.records as usize, sink.records.len(), "{name}");
    assert_eq!(s.rejected as usize, sink.rejects.len(), "{name}");
}

fn golden_json(name: &str) {
    let schema = schema_file_beside(&fixtures().join(name)).map(|p| read_schema_file(&p).unwrap());
    let (sink, s) = decode_json(name, schema);
    golden_of(name, &sink, &s);
}

#[test]
fn bq_rows_golden() {
    golden_json("bq_rows.ndjson");
}

#[test]
fn bq_export_golden() {
    golden_json("bq_export.json");
}

#[test]
fn tabledata_golden() {
    golden_json("tabledata.json");
}

#[test]
fn tabledata_builtin_golden() {
    golden_json("tabledata_builtin.json");
}

#[test]
fn query_results_golden() {
    golden_json("query_results.ndjson");
}

#[test]
fn reports_activities_golden() {
    golden_json("reports_activities.json");
}

#[test]
fn els_export_golden() {
    let (sink, s) = decode_els("els_export.csv");
    golden_of("els_export.csv", &sink, &s);
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn by_mid<'a>(records: &'a [MessageRecord], mid: &str) -> Vec<&'a MessageRecord> {
    records
        .iter()
        .filter(|r| r.message_id.as_deref() == Some(mid))
        .collect()
}

fn statuses(r: &MessageRecord) -> Vec<(DeliveryStatus, &str)> {
    r.deliveries
        .iter()
        .map(|d| (d.status, d.recipient.as_str()))
        .collect()
}

/// The records of one email folded together, as the store does.
fn merged(records: &[&MessageRecord]) -> MessageRecord {
    let mut it = records.iter();
    let mut m = (*it.next().expect("a record")).clone();
    for r in it {
        m.merge((*r).clone());
    }
    m
}

const MID_A: &str = "CAF=a1b2c3d4e5f6@mail.gmail.com";
const MID_B: &str = "20251110090000.B1@partner.example";

#[test]
fn every_fixture_is_detected() {
    for (name, format) in [
        ("bq_rows.ndjson", Format::GmailJson),
        ("bq_export.json", Format::GmailJson),
        ("tabledata.schema.json", Format::GmailJson),
        ("tabledata.json", Format::GmailJson),
        ("tabledata_builtin.json", Format::GmailJson),
        ("query_results.ndjson", Format::GmailJson),
        ("reports_activities.json", Format::GmailJson),
        ("els_export.csv", Format::GmailLogSearch),
    ] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(format), "{name}");
    }
    assert_eq!(Format::parse("gmail"), Some(Format::GmailJson));
    assert_eq!(Format::parse("Gmail-BigQuery"), Some(Format::GmailJson));
    assert_eq!(
        Format::parse("email-log-search"),
        Some(Format::GmailLogSearch)
    );
    assert_eq!(Format::GmailJson.name(), "gmail");
    assert_eq!(Format::GmailLogSearch.name(), "gmail-els");
}

#[test]
fn a_sent_message_arrives_once_and_is_delivered_per_stage() {
    let (s, summary) = decode_json("bq_rows.ndjson", None);
    let rows = by_mid(&s.records, MID_A);
    assert_eq!(rows.len(), 3, "one record per row");
    let a = merged(&rows);
    assert_eq!(a.keys, [format!("gmail:{MID_A}")]);
    assert_eq!(a.subject.as_deref(), Some("【社外秘】見積書, 第2版"));
    assert_eq!(
        a.envelope_from.as_deref(),
        Some("taro.yamada@example.co.jp")
    );
    let from = a.from.as_ref().unwrap();
    assert_eq!(from.address, "taro.yamada@example.co.jp");
    assert_eq!(from.display_name.as_deref(), Some("山田 太郎"));
    assert_eq!(a.size, Some(48213));
    assert_eq!(a.client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(a.first_seen, Some(t("2025-11-10T00:00:01.250Z")));
    assert_eq!(a.systems, ["gmail"]);
    let names: Vec<_> = a
        .attachments
        .iter()
        .map(|x| x.filename.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["見積書.xlsx", "仕様書.pdf"]);
    // Gmail logs have no header To/Cc: every recipient is an envelope one
    // until a header view of the same Message-ID settles them in the store.
    let rcpts: Vec<_> = a
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.kind))
        .collect();
    assert_eq!(
        rcpts,
        [
            ("hanako.sato@tokyo-shoji.co.jp", RecipientKind::Envelope),
            ("boss@example.co.jp", RecipientKind::Envelope),
        ]
    );
    assert_eq!(
        statuses(&a),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
            (DeliveryStatus::Delivered, "boss@example.co.jp"),
        ]
    );
    let out = &a.deliveries[1];
    assert_eq!(
        out.relay.as_deref(),
        Some("mx.tokyo-shoji.co.jp[203.0.113.25]")
    );
    assert!(out.detail.as_deref().unwrap().starts_with("SMTP 250"));
    assert_eq!(out.time, t("2025-11-10T00:00:03.500Z"));
    assert_eq!(a.deliveries[0].client_ip.as_deref(), Some("192.0.2.55"));
    assert_eq!(summary.skipped, 2, "the open event and the drive row");
}

#[test]
fn inbound_smtp_stage_is_the_arrival_with_authentication() {
    let (s, _) = decode_json("bq_rows.ndjson", None);
    let b = merged(&by_mid(&s.records, MID_B));
    assert_eq!(
        statuses(&b),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
        ]
    );
    assert_eq!(b.deliveries[0].client_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(b.auth.spf.as_deref(), Some("pass"));
    assert_eq!(b.auth.dkim.as_deref(), Some("pass"));
    assert_eq!(b.auth.dmarc.as_deref(), Some("fail"));
    assert_eq!(
        b.envelope_from.as_deref(),
        Some("bounce+123@partner.example")
    );
    assert_eq!(
        b.from.as_ref().map(|m| m.address.as_str()),
        Some("sato@partner.example")
    );
}

#[test]
fn codes_and_event_types_give_deferred_bounced_quarantined_rejected_forwarded() {
    let (s, _) = decode_json("bq_rows.ndjson", None);
    let c = merged(&by_mid(&s.records, "c3@example.co.jp"));
    assert_eq!(
        statuses(&c),
        [
            (DeliveryStatus::Deferred, "nobody@gone.example"),
            (DeliveryStatus::Bounced, "nobody@gone.example"),
        ]
    );
    assert_eq!(
        c.deliveries[0].relay.as_deref(),
        Some("mx.gone.example[192.0.2.80]")
    );
    let d = merged(&by_mid(&s.records, "d4@spam.example"));
    assert_eq!(
        statuses(&d),
        [(DeliveryStatus::Quarantined, "ito@example.co.jp")]
    );
    assert_eq!(d.auth.spf.as_deref(), Some("fail"));
    let e = merged(&by_mid(&s.records, "e5@spam.example"));
    assert_eq!(
        statuses(&e),
        [(DeliveryStatus::Rejected, "ito@example.co.jp")]
    );
    let detail = e.deliveries[0].detail.as_deref().unwrap();
    assert!(detail.contains("content compliance rule"), "{detail}");
    assert!(detail.contains("spam"), "{detail}");
    // The activity-table row: auto-forwarding, numbers as JSON numbers, the
    // client IP from the top-level BYTES ip_address (IPv6).
    let g = merged(&by_mid(&s.records, "g7@partner.example"));
    assert_eq!(
        statuses(&g),
        [(DeliveryStatus::Forwarded, "taro.private@gmail.example")]
    );
    assert_eq!(g.client_ip.as_deref(), Some("2001:db8::55"));
    assert_eq!(g.first_seen, Some(t("2025-11-10T04:00:00Z")));
}

#[test]
fn journal_info_lists_every_envelope_recipient_of_the_journaled_message() {
    let (s, _) = decode_json("bq_rows.ndjson", None);
    let report = merged(&by_mid(&s.records, "journal-i9@example.co.jp"));
    assert_eq!(
        statuses(&report),
        [(DeliveryStatus::Delivered, "journal@archive.example.co.jp")]
    );
    let original = merged(&by_mid(&s.records, "i9@example.co.jp"));
    let rcpts: Vec<_> = original
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.kind))
        .collect();
    assert_eq!(
        rcpts,
        [
            ("a@example.co.jp", RecipientKind::Envelope),
            ("b@partner.example", RecipientKind::Envelope),
            ("c@example.co.jp", RecipientKind::Envelope),
        ]
    );
    assert_eq!(original.keys, ["gmail:i9@example.co.jp"]);
    assert_eq!(
        original.first_seen,
        Some(t("2025-11-10T06:00:00Z")),
        "seconds guessed"
    );
    assert!(original.deliveries.is_empty());
    // Once the store knows the headers (To: a), the rest become Bcc.
    let mut with_headers = original.clone();
    with_headers.merge(MessageRecord {
        recipients: vec![mailtrail_model::Recipient::new(
            "a@example.co.jp",
            None,
            RecipientKind::To,
        )
        .unwrap()],
        ..MessageRecord::default()
    });
    with_headers.settle_recipients(true, &[]);
    let kinds: Vec<_> = with_headers.recipients.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [RecipientKind::To, RecipientKind::Bcc, RecipientKind::Bcc]
    );
}

#[test]
fn a_row_without_message_id_is_keyed_by_its_unique_identifier() {
    let (s, _) = decode_json("bq_rows.ndjson", None);
    let j: Vec<_> = s
        .records
        .iter()
        .filter(|r| r.message_id.is_none() && r.envelope_from.is_some())
        .collect();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].keys, ["gmail-row:-6917529027641081856"]);
    assert_eq!(
        statuses(j[0]),
        [(DeliveryStatus::Deferred, "many@partner.example")]
    );
    assert!(j[0].deliveries[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("rate limited"));
}

#[test]
fn broken_ndjson_lines_are_rejected_with_their_lines() {
    let (s, summary) = decode_json("bq_rows.ndjson", None);
    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Position::Line(15), "gmail.truncated"),
            (Position::Line(16), "gmail.json"),
            (Position::Line(17), "gmail.shape"),
            (Position::Line(18), "gmail.time"),
            (Position::Line(19), "gmail.shape"),
            (Position::Line(20), "gmail.json"),
        ]
    );
    assert_eq!(summary.rejected, 6);
    assert!(s.rejects.iter().all(|r| r.source == "bq_rows.ndjson"));
    assert!(s.rejects.iter().all(|r| !r.input.is_empty()));
    // The row before the trailing garbage on line 20 is still read, keyed
    // by its time (no Message-ID, no row id).
    let x: Vec<_> = s
        .records
        .iter()
        .filter(|r| r.subject.as_deref() == Some("x"))
        .collect();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].keys, ["gmail-row:1762736400000000:"]);
}

#[test]
fn every_transport_gives_the_same_records() {
    let (ndjson, _) = decode_json("bq_rows.ndjson", None);
    let (array, s) = decode_json("bq_export.json", None);
    assert_eq!((s.rows, s.rejected), (3, 0));
    assert_eq!(array.records[..], ndjson.records[..3], "array = NDJSON");

    // tabledata.list of a custom table, with the tables.get schema beside it.
    let schema_path = schema_file_beside(&fixtures().join("tabledata.json")).unwrap();
    assert!(schema_path.ends_with("tabledata.schema.json"));
    let schema = read_schema_file(&schema_path).unwrap();
    let (custom, s) = decode_json("tabledata.json", Some(schema));
    assert_eq!((s.rows, s.rejected, s.default_schema_rows), (2, 0, 0));
    assert_eq!(
        custom.records,
        by_mid(&ndjson.records, MID_B)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    );
    // Without it the built-in layout does not fit that table: rejected, not misread.
    let (wrong, s) = decode_json("tabledata.json", None);
    assert!(wrong.records.is_empty());
    assert_eq!((s.rejected, s.default_schema_rows), (2, 2));
    assert!(wrong.rejects.iter().all(|r| r.code == "gmail.schema"));
    assert!(
        wrong.rejects[0].reason.contains("row 1: "),
        "{}",
        wrong.rejects[0].reason
    );

    // A daily_ table page with no schema anywhere: the built-in layout, said so.
    let (builtin, s) = decode_json("tabledata_builtin.json", None);
    assert_eq!((s.rows, s.rejected, s.default_schema_rows), (2, 0, 2));
    assert_eq!(builtin.records, custom.records);

    // getQueryResults rows with their schema on every line.
    let (qr, s) = decode_json("query_results.ndjson", None);
    assert_eq!((s.rows, s.default_schema_rows), (3, 0));
    assert_eq!(
        qr.records,
        by_mid(&ndjson.records, "c3@example.co.jp")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(qr.rejects.len(), 1, "a row with 5 cells for 13 fields");
    assert_eq!(qr.rejects[0].position, Position::Line(3));
    assert!(
        qr.rejects[0].reason.contains("5 cells"),
        "{}",
        qr.rejects[0].reason
    );

    // The Reports API: the same stages, the same records (the activity's
    // actor and IP become the row's email and ip_address).
    let (reports, s) = decode_json("reports_activities.json", None);
    assert_eq!((s.rows, s.records, s.rejected, s.skipped), (3, 2, 0, 1));
    let sent = merged(&by_mid(&reports.records, MID_A));
    let from_bq = merged(&by_mid(&ndjson.records, MID_A)[..2]);
    assert_eq!(sent.deliveries, from_bq.deliveries);
    assert_eq!(sent.recipients, from_bq.recipients);
    assert_eq!(sent.attachments, from_bq.attachments);
    assert_eq!(sent.subject, from_bq.subject);
    assert_eq!(sent.from, from_bq.from);
    assert_eq!(sent.client_ip, from_bq.client_ip);
}

#[test]
fn the_reports_api_functions_are_usable_alone() {
    let activity = json!({
        "kind": "admin#reports#activity",
        "id": {"time": "2025-11-10T00:00:01.250Z", "uniqueQualifier": "-42", "applicationName": "gmail"},
        "actor": {"email": "taro.yamada@example.co.jp"},
        "ipAddress": "192.0.2.55",
        "events": [
            {"type": "delivery_type", "name": "delivery", "parameters": [
                {"name": "event_info", "messageValue": {"parameter": [
                    {"name": "mail_event_type", "intValue": "2"},
                    {"name": "success", "boolValue": true}
                ]}},
                {"name": "message", "messageValue": {"parameter": [
                    {"name": "rfc2822_message_id", "value": "<r1@example.co.jp>"},
                    {"name": "destination", "multiMessageValue": [
                        {"parameter": [{"name": "address", "value": "Kato@Example.co.jp"},
                                       {"name": "service", "value": "gmail-ui"}]}
                    ]}
                ]}}
            ]},
            {"name": "other", "parameters": [{"name": "x", "value": "y"}]}
        ]
    });
    let rows = rows_from_activity(&activity);
    assert_eq!(rows.len(), 1, "only events with Gmail parameters");
    assert_eq!(rows[0]["time_usec"], "1762732801250000");
    assert_eq!(rows[0]["unique_identifier"], "-42");
    let results = records_from_activity(&activity);
    let Ok(RowOutcome::Records(records)) = &results[0] else {
        panic!("{results:?}")
    };
    let r = &records[0];
    assert_eq!(r.message_id.as_deref(), Some("r1@example.co.jp"));
    assert_eq!(
        r.first_seen,
        Some(t("2025-11-10T00:00:01.250Z")),
        "id.time when no timestamp_usec"
    );
    assert_eq!(
        statuses(r),
        [(DeliveryStatus::Delivered, "kato@example.co.jp")]
    );
    assert_eq!(r.client_ip.as_deref(), Some("192.0.2.55"));
    // The named-row function is the one a poller calls.
    assert!(matches!(
        records_from_row(&json!({"record_type": "calendar"})),
        Ok(RowOutcome::Skipped(_))
    ));
    assert_eq!(
        records_from_row(&json!([])).unwrap_err().code,
        "gmail.shape"
    );
}

#[test]
fn schema_documents_in_every_form() {
    let tables_get = std::fs::read(fixtures().join("tabledata.schema.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&tables_get).unwrap();
    let s1 = Schema::from_json(&v).unwrap();
    let s2 = Schema::from_json(&v["schema"]).unwrap();
    let s3 = Schema::from_json(&v["schema"]["fields"]).unwrap();
    assert_eq!(s1, s2);
    assert_eq!(s1, s3);
    assert!(s1.is_gmail());
    assert!(Schema::from_json(&json!({"fields": []})).is_err());
    assert!(Schema::from_json(&json!([{"type": "STRING"}])).is_err());
    assert!(Schema::from_json(&json!("x")).is_err());

    // A schema document, then positional rows, in one input; and the
    // `bq show --schema` array form followed by rows.
    let rows = std::fs::read_to_string(fixtures().join("tabledata.json")).unwrap();
    let fields = serde_json::to_string(&v["schema"]["fields"]).unwrap();
    for input in [
        format!("{}\n{rows}", String::from_utf8_lossy(&tables_get)),
        format!("{fields}\n{rows}"),
    ] {
        let mut sink = VecSink::default();
        let s = import_gmail_json(input.as_bytes(), "mixed", None, &opts(), &mut sink).unwrap();
        assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
        assert_eq!(
            (s.schema_documents, s.rows, s.records, s.default_schema_rows),
            (1, 2, 2, 0)
        );
    }

    // A schema file beside: `<stem>.schema.json`, else `schema.json`.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("day.ndjson.gz"), b"").unwrap();
    assert_eq!(schema_file_beside(&dir.path().join("day.ndjson.gz")), None);
    std::fs::write(dir.path().join("schema.json"), &tables_get).unwrap();
    assert_eq!(
        schema_file_beside(&dir.path().join("day.ndjson.gz")),
        Some(dir.path().join("schema.json"))
    );
    std::fs::write(dir.path().join("day.schema.json"), fields.as_bytes()).unwrap();
    assert_eq!(
        schema_file_beside(&dir.path().join("day.ndjson.gz")),
        Some(dir.path().join("day.schema.json"))
    );
    assert_eq!(
        read_schema_file(&dir.path().join("day.schema.json")).unwrap(),
        s1
    );
    assert_eq!(schema_file_beside(&dir.path().join("schema.json")), None);
    std::fs::write(dir.path().join("broken.schema.json"), b"{\"fields\": 1}").unwrap();
    assert!(read_schema_file(&dir.path().join("broken.schema.json")).is_err());
}

#[test]
fn email_log_search_lines_become_deliveries() {
    let (s, summary) = decode_els("els_export.csv");
    let a = merged(&by_mid(&s.records, MID_A));
    assert_eq!(
        statuses(&a),
        [
            (DeliveryStatus::Delivered, "hanako.sato@tokyo-shoji.co.jp"),
            (DeliveryStatus::Delivered, "boss@example.co.jp"),
        ]
    );
    assert_eq!(
        a.deliveries[0].time,
        t("2025-11-10T00:00:03Z"),
        "the end date"
    );
    assert_eq!(a.deliveries[0].detail.as_deref(), Some("SMTP_OUT"));
    assert_eq!(a.first_seen, Some(t("2025-11-10T00:00:01Z")));
    assert_eq!(a.subject.as_deref(), Some("【社外秘】見積書, 第2版"));
    assert_eq!(a.size, Some(48213));
    assert_eq!(a.attachments.len(), 2, "a count gives unnamed attachments");
    assert_eq!(
        a.envelope_from.as_deref(),
        Some("taro.yamada@example.co.jp")
    );
    assert_eq!(
        a.keys,
        [format!("gmail:{MID_A}")],
        "the same key as BigQuery rows"
    );

    let b = merged(&by_mid(&s.records, MID_B));
    assert_eq!(
        statuses(&b),
        [
            (DeliveryStatus::Received, ""),
            (DeliveryStatus::Delivered, "kato@example.co.jp"),
        ]
    );
    assert_eq!(b.first_seen, Some(t("2025-11-10T00:05:00Z")), "GMT+9");

    let spam = merged(&by_mid(&s.records, "d4@spam.example"));
    assert_eq!(
        statuses(&spam),
        [(DeliveryStatus::Delivered, "ito@example.co.jp")]
    );
    assert_eq!(spam.deliveries[0].detail.as_deref(), Some("GMAIL_SPAM"));

    let list = merged(&by_mid(&s.records, "l1@partner.example"));
    assert_eq!(
        statuses(&list),
        [(DeliveryStatus::Expanded, "sales@example.co.jp")]
    );
    assert_eq!(
        list.subject.as_deref(),
        Some("営業部の皆様へ, \"ご挨拶\"\n(2行目)"),
        "a quoted field over two lines"
    );
    assert_eq!(
        list.first_seen,
        Some(t("2025-11-09T18:00:00Z")),
        "no zone: the configured one (Asia/Tokyo here)"
    );

    let refused: Vec<_> = s
        .records
        .iter()
        .filter(|r| r.message_id.is_none())
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        statuses(refused[0]),
        [(DeliveryStatus::Rejected, "kimura@example.co.jp")]
    );
    assert_eq!(refused[0].envelope_from, None, "N/A is no value");
    assert!(refused[0].keys[0].starts_with("gmail-els:"));

    let got: Vec<_> = s
        .rejects
        .iter()
        .map(|r| (r.position, r.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Position::Line(10), "gmail.els_date"),
            (Position::Line(11), "gmail.els_csv"),
        ]
    );
    assert_eq!((summary.rows, summary.records, summary.rejected), (9, 7, 2));
}

#[test]
fn email_log_search_needs_its_header_and_bounds_quoted_fields() {
    let mut sink = VecSink::default();
    let s = import_email_log_search(
        &b"<a@b>,2025-11-10T00:00:00Z,x\n"[..],
        "noheader.csv",
        &opts(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(s.rejected, 1);
    assert_eq!(sink.rejects[0].code, "gmail.els_header");

    let header = "Message ID,Start date,Recipient address,Event target\n";
    let open = format!(
        "{header}<a@b>,2025-11-10T00:00:00Z,\"{}",
        "x\n".repeat(3000)
    );
    let mut sink = VecSink::default();
    let s = import_email_log_search(open.as_bytes(), "open.csv", &opts(), &mut sink).unwrap();
    assert!(s.rejected >= 1);
    assert!(sink.records.is_empty());
    assert_eq!(sink.rejects[0].code, "gmail.too_long");
    assert!(sink.rejects[0].input.len() <= 4096 + 2);

    // A quote inside an unquoted field is text: the line ends where it ends.
    let stray = format!(
        "{header}<a@b>,2025-11-10T00:00:00Z,x@y,SMTP\"OUT\n<c@d>,2025-11-10T00:00:00Z,x@y,SMTP_OUT\n"
    );
    let mut sink = VecSink::default();
    let s = import_email_log_search(stray.as_bytes(), "stray.csv", &opts(), &mut sink).unwrap();
    assert_eq!((s.records, s.rejected), (2, 0), "{:?}", sink.rejects);

    // An export appended to another repeats the header; a status column wins.
    let twice = format!(
        "{header}<a@b>,2025-11-10T00:00:00Z,x@y,SMTP_OUT\nMessage ID,Start date,Recipient address,Event target,Event status\n<c@d>,2025-11-10T00:00:00Z,x@y,SMTP_OUT,Bounced\n"
    );
    let mut sink = VecSink::default();
    let s = import_email_log_search(twice.as_bytes(), "twice.csv", &opts(), &mut sink).unwrap();
    assert_eq!((s.records, s.rejected), (2, 0));
    assert_eq!(
        sink.records[1].deliveries[0].status,
        DeliveryStatus::Bounced
    );
}

#[test]
fn over_long_json_values_are_rejected_and_quarantined_capped() {
    let o = DecodeOptions {
        max_line_bytes: 64,
        ..DecodeOptions::default()
    };
    let big = format!(
        "{{\"event_info\":{{\"timestamp_usec\":\"1762736400000000\"}},\"message_info\":{{\"subject\":\"{}\"}}}}\n{{\"event_info\":{{\"timestamp_usec\":\"1762736400000000\"}},\"message_info\":{{\"subject\":\"ok\"}}}}\n",
        "a".repeat(100_000)
    );
    let mut sink = VecSink::default();
    let s = import_gmail_json(big.as_bytes(), "big", None, &o, &mut sink).unwrap();
    assert_eq!(s.rejected, 1);
    assert_eq!(sink.rejects[0].code, "gmail.too_long");
    assert_eq!(sink.rejects[0].input.len(), 64 * 1024);
    assert_eq!(sink.records.len(), 1);
    // A broken first NDJSON line costs that line only.
    let mut sink = VecSink::default();
    let lines = "{\"event_info\": {\"timestamp_usec\": \"1\"\n{\"event_info\":{\"timestamp_usec\":\"1762736400000000\"},\"message_info\":{\"subject\":\"ok\"}}\n";
    let s = import_gmail_json(lines.as_bytes(), "first", None, &o, &mut sink).unwrap();
    assert_eq!((s.rejected, s.records), (1, 1));
    assert_eq!(sink.rejects[0].position, Position::Line(1));
    // A value cut off by the end of a document.
    let mut sink = VecSink::default();
    let s = import_gmail_json(&b"[{\"event_info\": {\n"[..], "cut", None, &o, &mut sink).unwrap();
    assert_eq!(
        (s.rejected, sink.rejects[0].code.as_str()),
        (1, "gmail.truncated")
    );
    assert_eq!(sink.rejects[0].position, Position::Offset(1));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn gmail_like() -> impl Strategy<Value = String> {
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
            Just("\u{feff}".to_string()),
            Just("\"event_info\":".to_string()),
            Just("\"message_info\":".to_string()),
            Just("\"timestamp_usec\":\"1762736400000000\"".to_string()),
            Just("\"mail_event_type\":\"1\"".to_string()),
            Just("\"mail_event_type\":30".to_string()),
            Just("\"success\":false".to_string()),
            Just("\"destination\":[{\"address\":\"a@x\",\"rcpt_response\":\"550\"}]".to_string()),
            Just("\"source\":{\"service\":\"smtp-inbound\"}".to_string()),
            Just("\"rfc2822_message_id\":\"<m@x>\"".to_string()),
            Just("\"ip_address\":\"wKgBAQ==\"".to_string()),
            Just("\"structured_policy_log_info\":{\"exchange_journal_info\":{\"recipients\":[\"b@y\"],\"rfc822_message_id\":\"<o@x>\"}}".to_string()),
            Just("\"f\":[{\"v\":\"gmail\"},{\"v\":{\"f\":[]}},{\"v\":[{\"v\":null}]}]".to_string()),
            Just("\"row\":{\"f\":[]},\"schema\":{\"fields\":[{\"name\":\"a\",\"type\":\"RECORD\",\"fields\":[]}]}".to_string()),
            Just("\"rows\":[".to_string()),
            Just("\"items\":[{\"events\":[{\"parameters\":[{\"name\":\"event_info\",\"messageValue\":{\"parameter\":[]}}]}]}]".to_string()),
            Just("\"schema\":{\"fields\":[{\"name\":\"event_info\",\"type\":\"RECORD\",\"mode\":\"REPEATED\"}]}".to_string()),
            Just("null".to_string()),
            Just("12345678901234567890".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    fn els_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("Message ID,Start date,End date,Sender,Message size,Subject,Direction,Attachments,Recipient address,Event target,Event status\n".to_string()),
            Just("<m@x>".to_string()),
            Just(",".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("2025/11/10 10:02:03 GMT+9".to_string()),
            Just("Nov 10, 2025, 10:02:03 AM".to_string()),
            Just("2025-11-10T01:02:03Z".to_string()),
            Just("SMTP_IN".to_string()),
            Just("LIST_SERVER".to_string()),
            Just("SMTPIN_ADDED_REJECT_SESSION".to_string()),
            Just("N/A".to_string()),
            Just("a@x; b@y (c@z)".to_string()),
            Just("18446744073709551616".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn json_import_never_panics(input in gmail_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_line_bytes: 64, ..Default::default() };
            let s = import_gmail_json(input.as_bytes(), "p", None, &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
            prop_assert_eq!(s.records as usize, sink.records.len());
            prop_assert!(sink.records.iter().all(|r| !r.keys.is_empty()));
            let _ = mailtrail_ingest::gmail::looks_like_gmail_json(input.as_bytes());
        }

        #[test]
        fn json_values_never_panic(input in gmail_like()) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&input) {
                let _ = records_from_row(&v);
                let _ = records_from_activity(&v);
                let _ = Schema::from_json(&v);
                let _ = mailtrail_ingest::gmail::decode_tabledata_row(&v, Schema::gmail_default(), false);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut sink = VecSink::default();
            import_gmail_json(&input[..], "p", None, &DecodeOptions::default(), &mut sink).unwrap();
            let mut sink = VecSink::default();
            import_email_log_search(&input[..], "p", &DecodeOptions::default(), &mut sink).unwrap();
            let _ = mailtrail_ingest::gmail::looks_like_email_log_search(&input);
            let _ = mailtrail_ingest::gmail::ip_from_bytes_field(&String::from_utf8_lossy(&input));
        }

        #[test]
        fn log_search_import_never_panics(input in els_like()) {
            let mut sink = VecSink::default();
            let o = DecodeOptions { max_line_bytes: 256, ..Default::default() };
            let s = import_email_log_search(input.as_bytes(), "p", &o, &mut sink).unwrap();
            prop_assert_eq!(s.rejected as usize, sink.rejects.len());
            prop_assert_eq!(s.records as usize, sink.records.len());
            prop_assert!(sink.records.iter().all(|r| !r.keys.is_empty()));
            let _ = mailtrail_ingest::gmail::parse_log_search_time(&input, chrono_tz::UTC);
        }
    }
}
