//! Conformance over the public Microsoft 365 samples in
//! `../shared/corpus/exchange_online_message_trace` and
//! `../shared/corpus/o365_management_activity` (or the same folders under
//! `$MAILTRAIL_CORPUS`): every sample is detected as its format and decodes
//! without rejects, and the values the samples carry come out as the
//! decoders' module docs say (times without a zone as UTC with seven
//! fractional digits kept, `\u003c…\u003e` Message-IDs without brackets,
//! Graph statuses, detail events, DLP To / CC / BCC, attachment lists with
//! parentheses in names, numbers as strings, float sizes, access events
//! skipped and counted). When the corpus is absent the tests say so and pass.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mailtrail_ingest::m365::{graph_details_page, graph_trace_page, import_trace, TraceSummary};
use mailtrail_ingest::o365audit::{
    audit_record, import_audit, parse_attachments, AuditOutcome, AuditSummary, SkipReason,
};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{DeliveryStatus, RecipientKind};

fn corpus(folder: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("MAILTRAIL_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    let dir = dir.join(folder);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no corpus at {}", dir.display());
        None
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn trace(dir: &Path, name: &str) -> (VecSink, TraceSummary) {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let mut sink = VecSink::default();
    let s = import_trace(&bytes[..], name, &DecodeOptions::default(), &mut sink).unwrap();
    (sink, s)
}

fn audit(dir: &Path, name: &str) -> (VecSink, AuditSummary) {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let mut sink = VecSink::default();
    let s = import_audit(&bytes[..], name, &DecodeOptions::default(), &mut sink).unwrap();
    (sink, s)
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn every_trace_sample_is_detected_and_decodes_without_rejects() {
    let Some(dir) = corpus("exchange_online_message_trace") else {
        return;
    };
    let names = files(&dir);
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::M365Trace), "{name}");
        let (sink, s) = trace(&dir, name);
        assert!(sink.rejects.is_empty(), "{name}: {:?}", sink.rejects);
        assert_eq!(s.rejected, 0, "{name}");
        assert!(!sink.records.is_empty(), "{name}");
        for r in &sink.records {
            assert!(!r.keys.is_empty(), "{name}: {r:?}");
            assert_eq!(r.systems, ["m365"], "{name}");
        }
    }
}

#[test]
fn reporting_web_service_record() {
    let Some(dir) = corpus("exchange_online_message_trace") else {
        return;
    };
    let (sink, s) = trace(&dir, "elastic_test-log.log");
    assert_eq!(s.rows, 1);
    let r = &sink.records[0];
    assert_eq!(
        r.message_id.as_deref(),
        Some("a210cf91-4f2e-484c-8ada-3b27064ee5e3@az.uksouth.production.microsoft.com")
    );
    assert_eq!(r.keys, ["m365:cf7a249a-5edd-4350-130a-08da8f69e0f6"]);
    assert_eq!(
        r.envelope_from.as_deref(),
        Some("azure-noreply@microsoft.com")
    );
    assert_eq!(
        r.subject.as_deref(),
        Some("PIM: A privileged directory role was assigned outside of PIM")
    );
    assert_eq!(r.size, Some(87891));
    assert_eq!(r.client_ip.as_deref(), Some("81.2.69.144"));
    // No zone, seven fractional digits: UTC, nothing lost.
    assert_eq!(r.first_seen, Some(t("2022-09-05T18:10:13.4907658Z")));
    let d = &r.deliveries[1];
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.recipient, "linus@wildsecurity.onmicrosoft.com");
    assert_eq!(d.relay.as_deref(), Some("[216.160.83.56]"));
    assert_eq!(
        d.local_id.as_deref(),
        Some("cf7a249a-5edd-4350-130a-08da8f69e0f6")
    );
    assert_eq!(r.deliveries[0].status, DeliveryStatus::Received);
    assert_eq!(r.deliveries[0].client_ip.as_deref(), Some("81.2.69.144"));
}

#[test]
fn graph_list_and_details() {
    let Some(dir) = corpus("exchange_online_message_trace") else {
        return;
    };
    let list = "graph_beta_list_messageTraces.response.json";
    let (sink, _) = trace(&dir, list);
    assert_eq!(sink.records.len(), 1);
    let r = &sink.records[0];
    assert_eq!(
        r.message_id.as_deref(),
        Some("d9683b4c-127b-413a-ae2e-fa7dfb32c69d@contoso.com")
    );
    assert_eq!(r.keys, ["m365:4451a062-48cb-e80d-e8c0-196330437ae6"]);
    assert_eq!(r.envelope_from.as_deref(), Some("sender@contoso.com"));
    assert_eq!(r.subject.as_deref(), Some("Quarterly Report"));
    assert_eq!(r.size, Some(45678));
    assert_eq!(r.client_ip.as_deref(), Some("192.168.1.100"));
    assert_eq!(r.first_seen, Some(t("2025-06-13T10:30:00Z")));
    let d = &r.deliveries[1];
    assert_eq!(
        (d.status, d.recipient.as_str()),
        (DeliveryStatus::Delivered, "recipient@contoso.com")
    );
    assert_eq!(d.relay, None, "toIP blank for inbound");
    let page = graph_trace_page(&json(&dir, list));
    assert!(page.errors.is_empty());
    assert_eq!(page.records, sink.records);

    let details = "graph_beta_getDetailsByRecipient.response.json";
    let (sink, s) = trace(&dir, details);
    assert_eq!(s.rows, 2);
    assert_eq!(sink.records.len(), 1);
    let r = &sink.records[0];
    assert_eq!(r.keys, ["m365:7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1"]);
    let got: Vec<_> = r
        .deliveries
        .iter()
        .map(|d| (d.status, d.time, d.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        [
            (
                DeliveryStatus::Received,
                t("2025-06-13T10:30:05Z"),
                "Receive: Message received by: MN2PR00MB0670.namprd00.prod.outlook.com"
            ),
            (
                DeliveryStatus::Delivered,
                t("2025-06-13T10:30:10Z"),
                "Deliver: The message was successfully delivered."
            ),
        ]
    );
    let page = graph_details_page(&json(&dir, details), Some("recipient@contoso.com"));
    assert_eq!(
        page.records[0].deliveries[1].recipient,
        "recipient@contoso.com"
    );
}

#[test]
fn every_audit_sample_is_detected_and_decodes_without_rejects() {
    let Some(dir) = corpus("o365_management_activity") else {
        return;
    };
    let names = files(&dir);
    assert!(names.len() >= 4, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::O365Audit), "{name}");
        let (sink, s) = audit(&dir, name);
        assert!(sink.rejects.is_empty(), "{name}: {:?}", sink.rejects);
        assert_eq!(s.rejected, 0, "{name}");
        assert!(s.audit_records > 0, "{name}");
        assert_eq!(s.audit_records, s.records + s.skipped, "{name}");
    }
}

#[test]
fn dlp_rule_match_gives_to_cc_and_bcc() {
    let Some(dir) = corpus("o365_management_activity") else {
        return;
    };
    let (sink, s) = audit(&dir, "elastic_dlp-exchange-dlprulematch.json");
    assert_eq!(s.records, 1);
    let r = &sink.records[0];
    assert_eq!(
        r.message_id.as_deref(),
        Some("AM0PR05MB4803CDA6206C2F2FEB36DB5AB8EC0@AM0PR05MB4803.eurprd05.prod.outlook.com")
    );
    assert_eq!(r.keys, ["m365-audit:d5a0e7d9-e06f-498c-8413-eb83b7dbd516"]);
    assert_eq!(
        r.from.as_ref().map(|m| m.address.as_str()),
        Some("asr@testsiem2.onmicrosoft.com")
    );
    let rcpts: Vec<_> = r
        .recipients
        .iter()
        .map(|x| (x.address.as_str(), x.kind))
        .collect();
    // BCC is empty in this sample: nobody was blind-copied.
    assert_eq!(
        rcpts,
        [
            ("asr@example.org", RecipientKind::To),
            ("asr@example.net", RecipientKind::Cc)
        ]
    );
    assert_eq!(r.subject.as_deref(), Some("Here's the phony data"));
    assert_eq!(r.size, Some(13405));
    assert_eq!(r.first_seen, Some(t("2020-02-24T20:11:14Z")), "Sent");
    assert!(r.deliveries.is_empty());
}

#[test]
fn create_with_attachments_and_folder_permissions() {
    let Some(dir) = corpus("o365_management_activity") else {
        return;
    };
    let (sink, s) = audit(&dir, "elastic_exchange-item-events.create.ndjson");
    assert_eq!(s.records, 1);
    assert_eq!(
        s.skipped_by_operation.get("ModifyFolderPermissions"),
        Some(&1)
    );
    let r = &sink.records[0];
    assert_eq!(
        r.message_id.as_deref(),
        Some("AM6PR01MB4535D305187FEC8127CF8EDFEE160@AM6PR01MB4535.eurprd01.prod.exchangelabs.com")
    );
    assert_eq!(
        r.subject.as_deref(),
        Some("The new SIEMTest group is ready")
    );
    assert_eq!(r.first_seen, Some(t("2020-02-17T17:12:03Z")));
    // In \Inbox: the mailbox owner received it.
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].address, "siemtest@testsiem.onmicrosoft.com");
    assert_eq!(r.recipients[0].kind, RecipientKind::Envelope);
    assert_eq!(r.client_ip, None, "::1 is Exchange itself");
    let names: Vec<_> = r
        .attachments
        .iter()
        .map(|a| (a.filename.as_deref().unwrap(), a.size))
        .collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[0], ("warming_email_03_2017_calendar.png", 599));
    assert_eq!(names[4], ("apple_store_badge.png", 4446));
    assert_eq!(names[7], ("warming_email_03_2017_sharePoint.png", 1432));
}

#[test]
fn edge_cases_strings_for_numbers_and_parenthesised_names() {
    let Some(dir) = corpus("o365_management_activity") else {
        return;
    };
    let name = "elastic_exchange-item-edge-cases.ndjson";
    let (sink, s) = audit(&dir, name);
    // Creates without an InternetMessageId are no mail items: skipped, not rejected.
    assert_eq!(s.audit_records, 2);
    assert_eq!(s.skipped, 2);
    assert!(sink.records.is_empty());
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    match audit_record(&first).unwrap() {
        AuditOutcome::Skipped(skip) => {
            assert_eq!(skip.reason, SkipReason::NotMail);
            assert_eq!(skip.operation, "Create");
        }
        other => panic!("{other:?}"),
    }
    let parsed = parse_attachments(first["Item"]["Attachments"].as_str().unwrap());
    let got: Vec<_> = parsed.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    assert_eq!(
        got,
        [
            ("logo.png", Some(8192)),
            ("banner.jpg", Some(20480)),
            ("summary.xlsx", Some(34816)),
            (
                "Project Gamma - Contract Amendment v2 (Draft 04_04_2024)(100112233.7).docx",
                Some(73728)
            ),
            (
                "Annex C - Scope of Work - Final rev3.1(200445566.12) (Review - 10_04_2024)(300778899.2).docx",
                Some(147456)
            ),
        ]
    );
}

#[test]
fn aggregated_access_records_are_counted_not_imported() {
    let Some(dir) = corpus("o365_management_activity") else {
        return;
    };
    let (sink, s) = audit(&dir, "elastic_exchange-attachmentaccess.json");
    assert!(sink.records.is_empty());
    assert_eq!(s.skipped_by_operation.get("AttachmentAccess"), Some(&1));
    // Messages cut to 2 entries of 2 and 1 items (SizeInBytes 1156492.00 among them).
    assert_eq!(s.accessed_items, 3);
}
