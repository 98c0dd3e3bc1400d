//! Conformance over the public Gmail BigQuery sample in
//! `../shared/corpus/google_workspace_gmail` (or
//! `$MAILTRAIL_CORPUS/google_workspace_gmail`): the positional `tabledata`
//! row decoded with the schema beside it equals the corpus's named-field
//! view of the same row (`DERIVED_…decoded-by-schema.json`) — so does the
//! built-in schema, and the named view read directly gives the same record;
//! the file is detected, decodes without rejects, and the fields we extract
//! (Message-ID, subject, sender, From, recipient, size, client IP, SPF /
//! DKIM, time, the delivery) come out as the module doc says. When the
//! corpus is absent the tests say so and pass.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use mailtrail_ingest::gmail::{
    decode_tabledata_row, import_gmail_json, records_from_row, RowOutcome, Schema,
};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{DeliveryStatus, RecipientKind};
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAILTRAIL_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    let dir = dir.join("google_workspace_gmail");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no corpus at {}", dir.display());
        None
    }
}

const TABLEDATA: &str = "elastic_test-gmail.row1.bq-tabledata.json";
const DERIVED: &str = "DERIVED_test-gmail.row1.decoded-by-schema.json";

fn json(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn the_tabledata_row_decoded_by_its_schema_equals_the_derived_view() {
    let Some(dir) = corpus() else { return };
    let sample = json(&dir, TABLEDATA);
    let derived = json(&dir, DERIVED);
    let schema = Schema::from_json(&sample["schema"]).unwrap();
    assert!(schema.is_gmail());
    let decoded = decode_tabledata_row(&sample["row"], &schema, true).unwrap();
    assert_eq!(decoded, derived);
    // The built-in schema is the same layout.
    assert_eq!(&schema, Schema::gmail_default());
    let by_default = decode_tabledata_row(&sample["row"], Schema::gmail_default(), false).unwrap();
    assert_eq!(by_default, derived);
}

#[test]
fn the_sample_is_detected_and_decodes_without_rejects() {
    let Some(dir) = corpus() else { return };
    let bytes = std::fs::read(dir.join(TABLEDATA)).unwrap();
    let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
    assert_eq!(detect::detect(head), Some(Format::GmailJson));
    let derived_bytes = std::fs::read(dir.join(DERIVED)).unwrap();
    assert_eq!(
        detect::detect(&derived_bytes[..derived_bytes.len().min(detect::HEAD_BYTES)]),
        Some(Format::GmailJson)
    );

    let mut sink = VecSink::default();
    let s = import_gmail_json(
        &bytes[..],
        TABLEDATA,
        None,
        &DecodeOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
    assert_eq!((s.rows, s.records, s.rejected, s.skipped), (1, 1, 0, 0));
    assert_eq!(s.default_schema_rows, 0, "the row brings its schema");
    let r = &sink.records[0];

    // The fields we extract, against the DERIVED named view.
    let derived = json(&dir, DERIVED);
    let mi = &derived["message_info"];
    let mid = mi["rfc2822_message_id"].as_str().unwrap();
    assert_eq!(
        r.message_id.as_deref(),
        Some(mid.trim_start_matches('<').trim_end_matches('>'))
    );
    assert_eq!(
        r.keys,
        [format!("gmail:{}", r.message_id.as_deref().unwrap())]
    );
    assert_eq!(r.subject.as_deref(), mi["subject"].as_str());
    assert_eq!(
        r.size,
        mi["payload_size"].as_str().and_then(|s| s.parse().ok())
    );
    assert_eq!(r.envelope_from.as_deref(), mi["source"]["address"].as_str());
    let from = r.from.as_ref().unwrap();
    assert_eq!(
        Some(from.address.as_str()),
        mi["source"]["from_header_address"].as_str()
    );
    assert_eq!(
        from.display_name.as_deref(),
        mi["source"]["from_header_displayname"].as_str()
    );
    let dest = mi["destination"][0]["address"].as_str().unwrap();
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].address, dest);
    assert_eq!(r.recipients[0].kind, RecipientKind::Envelope);
    assert_eq!(
        r.client_ip.as_deref(),
        mi["connection_info"]["client_ip"].as_str()
    );
    assert_eq!(r.auth.spf.as_deref(), Some("pass"));
    assert_eq!(r.auth.dkim.as_deref(), Some("pass"));
    assert_eq!(r.auth.dmarc, None, "dmarc_pass is null");
    let usec: i64 = derived["event_info"]["timestamp_usec"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let time: DateTime<Utc> = DateTime::from_timestamp_micros(usec).unwrap();
    assert_eq!(r.first_seen, Some(time));
    assert_eq!(r.systems, ["gmail"]);
    assert!(r.attachments.is_empty(), "num_message_attachments is 0");
    // SMTP-in stage, success false (rejected by a policy), spam.
    assert_eq!(r.deliveries.len(), 1);
    let d = &r.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Rejected);
    assert_eq!(d.recipient, dest);
    assert_eq!(d.time, time);
    assert_eq!(d.system, "gmail");
    let detail = d.detail.as_deref().unwrap();
    assert!(detail.contains("spam"), "{detail}");
    assert!(detail.contains("gmail-for-work-catchall"), "{detail}");
    assert!(detail.contains("action_type 2"), "{detail}");

    // The named view, read directly, gives the same record.
    match records_from_row(&derived).unwrap() {
        RowOutcome::Records(records) => assert_eq!(records, sink.records),
        other => panic!("{other:?}"),
    }
    let mut named = VecSink::default();
    let s = import_gmail_json(
        &derived_bytes[..],
        DERIVED,
        None,
        &DecodeOptions::default(),
        &mut named,
    )
    .unwrap();
    assert_eq!((s.rows, s.records, s.rejected), (1, 1, 0));
    assert_eq!(named.records, sink.records);
}

#[test]
fn the_ip_address_bytes_field_decodes() {
    let Some(dir) = corpus() else { return };
    let derived = json(&dir, DERIVED);
    let b64 = derived["ip_address"].as_str().unwrap();
    assert_eq!(
        mailtrail_ingest::gmail::ip_from_bytes_field(b64).as_deref(),
        derived["message_info"]["connection_info"]["client_ip"].as_str()
    );
}
