//! Conformance over the public Exchange Server message tracking samples in
//! `../shared/corpus/exchange_server_msgtrk` (or
//! `$MAILTRAIL_CORPUS/exchange_server_msgtrk`): every tracking log is
//! detected and decodes without rejects; Elastic's expected parse of the
//! header-less sample (`-expected.first3.json`, first three lines) holds for
//! the fields we extract; the documented quirks of the other samples (27- and
//! 30-field headers, HA* shadow events, zone-suffixed IPv6, `To` recipient
//! status, events without ids) come out as the decoder's module doc says.
//! The SMTP Receive protocol log beside them is a different format and must
//! not be taken for one. When the corpus is absent the tests say so and pass.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use mailtrail_ingest::msgtrk::{import_msgtrk, MsgtrkSummary};
use mailtrail_ingest::{detect, DecodeOptions, Format, VecSink};
use mailtrail_model::{normalize_address, DeliveryStatus, MessageRecord, RecipientKind};

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAILTRAIL_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    let dir = dir.join("exchange_server_msgtrk");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no corpus at {}", dir.display());
        None
    }
}

fn decode(dir: &std::path::Path, name: &str) -> (VecSink, MsgtrkSummary) {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let mut sink = VecSink::default();
    let summary = import_msgtrk(&bytes[..], name, &DecodeOptions::default(), &mut sink).unwrap();
    (sink, summary)
}

fn by_mid<'a>(records: &'a [MessageRecord], mid: &str) -> Option<&'a MessageRecord> {
    let mid = mid.trim_start_matches('<').trim_end_matches('>');
    records
        .iter()
        .find(|r| r.message_id.as_deref() == Some(mid))
}

const LOGS: [&str; 3] = [
    "elastic_test-messagetracking.log",
    "jekylldoc_MSGTRKMS2022091915-1.LOG",
    "kinesistap_MSGTRK_sample.LOG",
];

#[test]
fn every_tracking_log_is_detected_and_decodes_without_rejects() {
    let Some(dir) = corpus() else { return };
    for name in LOGS {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let head = &bytes[..bytes.len().min(detect::HEAD_BYTES)];
        assert_eq!(detect::detect(head), Some(Format::ExchangeMsgtrk), "{name}");
        let (sink, summary) = decode(&dir, name);
        assert!(sink.rejects.is_empty(), "{name}: {:?}", sink.rejects);
        assert_eq!(summary.rejected, 0, "{name}");
        assert!(!sink.records.is_empty(), "{name}");
        for r in &sink.records {
            assert!(!r.keys.is_empty(), "{name}: {r:?}");
            for d in &r.deliveries {
                if let Some(ip) = &d.client_ip {
                    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{name}: {ip}");
                }
            }
        }
    }
    // The SMTP Receive protocol log shares the stamp, not the format.
    let smtp = std::fs::read(dir.join("crowdsec_exchange-smtp-receive.log")).unwrap();
    assert_ne!(detect::detect(&smtp), Some(Format::ExchangeMsgtrk));
}

#[test]
fn elastic_expected_fields_of_the_first_three_lines() {
    let Some(dir) = corpus() else { return };
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("elastic_test-messagetracking.log-expected.first3.json"))
            .unwrap(),
    )
    .unwrap();
    let (sink, summary) = decode(&dir, "elastic_test-messagetracking.log");
    assert_eq!(summary.default_layout_lines, 6, "header-less: said so");
    let cases = expected["expected"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for e in cases {
        let ex = &e["microsoft"]["exchange"];
        let event = ex["eventid"].as_str().unwrap();
        let mid = e["email"]["message_id"].as_str().unwrap();
        let time: DateTime<Utc> = e["@timestamp"].as_str().unwrap().parse().unwrap();
        if event.starts_with("HA") {
            // Shadow-redundancy events make no record and no delivery.
            assert!(by_mid(&sink.records, mid).is_none(), "{event} {mid}");
            continue;
        }
        let r = by_mid(&sink.records, mid).unwrap_or_else(|| panic!("no record for {mid}"));
        assert_eq!(
            r.subject.as_deref(),
            e["email"]["subject"].as_str(),
            "{mid}"
        );
        assert_eq!(
            r.from.as_ref().map(|m| m.address.clone()),
            e["email"]["from"]["address"][0]
                .as_str()
                .and_then(normalize_address),
            "{mid}"
        );
        assert_eq!(
            r.envelope_from,
            ex["returnpath"].as_str().and_then(normalize_address),
            "{mid}"
        );
        let to: Vec<String> = e["email"]["to"]["address"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str().and_then(normalize_address))
            .collect();
        let rcpts: Vec<String> = r.recipients.iter().map(|x| x.address.clone()).collect();
        assert_eq!(rcpts, to, "{mid}");
        assert_eq!(r.size, e["network"]["bytes"].as_u64(), "{mid}");
        assert_eq!(
            r.keys[0],
            format!("exchange-nmid:{}", ex["networkmessageid"].as_str().unwrap())
        );
        assert!(r.first_seen.is_some_and(|f| f <= time), "{mid}");
        // The arrival: time, client, server, internal id.
        let received: Vec<_> = r
            .deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Received)
            .collect();
        assert_eq!(received.len(), 1, "{mid}");
        let d = received[0];
        assert_eq!(d.time, time);
        assert_eq!(d.client_ip.as_deref(), e["client"]["ip"].as_str());
        assert_eq!(d.client_host.as_deref(), e["client"]["domain"].as_str());
        assert_eq!(d.local_id.as_deref(), e["email"]["local_id"].as_str());
        assert_eq!(
            d.system,
            format!("exchange@{}", e["server"]["domain"].as_str().unwrap())
        );
        // The real client behind the front-end proxy.
        assert_eq!(r.client_ip.as_deref(), ex["originalclientip"].as_str());
    }
}

#[test]
fn elastic_newer_lines_send_and_sendexternal() {
    let Some(dir) = corpus() else { return };
    let (sink, summary) = decode(&dir, "elastic_test-messagetracking.log");
    // HAREDIRECTFAIL skipped; NOTIFYMAPI has no id to place it by.
    assert_eq!(summary.shadow, 1);
    assert_eq!(summary.ignored, 1);
    let send = by_mid(
        &sink.records,
        "20240107001234.567E6224C8@monitor.example.com",
    )
    .expect("a Message-ID written without brackets");
    let d = &send.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.recipient, "uwe.musterman@example.com");
    assert_eq!(d.system, "exchange@exchange");
    assert_eq!(
        d.relay.as_deref(),
        Some("exchange.example.com[192.168.0.2]")
    );
    assert!(d
        .detail
        .as_deref()
        .unwrap()
        .starts_with("250 2.1.5Recipient OK"));
    // The organisation-entry time from message-info.
    assert_eq!(
        send.first_seen,
        Some("2024-01-07T00:00:05.535Z".parse().unwrap())
    );
    let ext = by_mid(&sink.records, "1736846922.907742.2942@foo.bar.local").unwrap();
    let d = &ext.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.system, "exchange@HELLOWORLD");
    assert_eq!(
        d.relay.as_deref(),
        Some("global-mail-onmicrosoft-com.mail.protection.outlook.com[175.16.199.1]")
    );
    assert!(
        d.detail
            .as_deref()
            .unwrap()
            .contains("Queued mail for delivery"),
        "the quoted source-context with commas is one field"
    );
    assert_eq!(ext.envelope_from, None, "return-path <>");
    assert_eq!(ext.subject.as_deref(), Some("John Doe"));
}

#[test]
fn kinesistap_27_fields_and_shadow_redirect() {
    let Some(dir) = corpus() else { return };
    let (sink, summary) = decode(&dir, "kinesistap_MSGTRK_sample.LOG");
    assert_eq!(summary.default_layout_lines, 0);
    assert_eq!(summary.shadow, 1);
    assert_eq!(sink.records.len(), 1);
    let r = &sink.records[0];
    assert_eq!(
        r.keys[0],
        "exchange-nmid:13fad5b7-39c5-46e7-130e-08d4a138ac67"
    );
    // Only AGENTINFO's recipient: the HAREDIRECT's three are a shadow copy's.
    let rcpts: Vec<_> = r.recipients.iter().map(|x| x.address.as_str()).collect();
    assert_eq!(rcpts, ["bryanson@amazon.com"]);
    assert!(r.deliveries.is_empty(), "AGENTINFO is no delivery");
    assert_eq!(r.client_ip.as_deref(), Some("10.25.10.214"));
    assert_eq!(r.envelope_from.as_deref(), Some("jlb-approval@amazon.com"));
    assert_eq!(r.size, Some(7631));
    assert_eq!(r.systems, ["exchange@EX13D13UWA001"]);
}

#[test]
fn jekylldoc_zone_suffixed_ipv6_and_recipient_type() {
    let Some(dir) = corpus() else { return };
    let (sink, summary) = decode(&dir, "jekylldoc_MSGTRKMS2022091915-1.LOG");
    assert_eq!(
        summary.ignored,
        5 + 1,
        "header lines and the id-less NOTIFYMAPI"
    );
    assert_eq!(sink.records.len(), 1);
    let r = &sink.records[0];
    assert_eq!(r.message_id.as_deref(), Some("XXX@domain.com"));
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].address, "user.name4@gmail.com");
    assert_eq!(r.recipients[0].kind, RecipientKind::To);
    assert_eq!(r.subject.as_deref(), Some("MAIL SUBJECT"));
    assert_eq!(r.size, Some(3750222));
    // The user's client (original-client-ip), not the mailbox server.
    assert_eq!(r.client_ip.as_deref(), Some("95.11.22.33"));
    let d = &r.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Received);
    assert_eq!(d.client_ip.as_deref(), Some("fe80::1234:5678:4321:1010"));
    assert_eq!(d.system, "exchange@SERVER-HOSTNAME");
}
