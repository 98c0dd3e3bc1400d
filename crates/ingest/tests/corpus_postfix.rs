//! Conformance over the public real-world Postfix samples in
//! `../shared/corpus/syslog_postfix` (or `$MAILTRAIL_CORPUS/syslog_postfix`):
//! every log decodes without panics and without rejects for well-formed
//! lines, and the expectations published beside the samples hold for the
//! fields we extract. When the corpus is absent the tests say so and pass.

use std::path::PathBuf;

use mailtrail_ingest::syslog::{import_syslog, SyslogParser};
use mailtrail_ingest::DecodeOptions;
use mailtrail_model::{DeliveryStatus, MessageRecord};

use mailtrail_ingest::VecSink;

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAILTRAIL_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    let dir = dir.join("syslog_postfix");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no corpus at {}", dir.display());
        None
    }
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        reference_time: "2025-06-30T00:00:00Z".parse().unwrap(),
        ..DecodeOptions::default()
    }
}

fn decode_bytes(bytes: &[u8], name: &str) -> VecSink {
    let mut sink = VecSink::default();
    import_syslog(bytes, name, &opts(), &mut sink).unwrap();
    sink
}

fn by_qid<'a>(records: &'a [MessageRecord], qid: &str) -> Option<&'a MessageRecord> {
    records
        .iter()
        .find(|r| r.keys.iter().any(|k| k.ends_with(&format!(":{qid}"))))
}

#[test]
fn every_log_decodes_without_rejecting_well_formed_lines() {
    let Some(dir) = corpus() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(&path).unwrap();
        let sink = decode_bytes(&bytes, &path.display().to_string());
        for r in &sink.rejects {
            // fail2ban's samples carry `# failJSON:` comment lines: not syslog.
            assert!(
                r.input.starts_with(b"#"),
                "{}: {} rejected: {} ({:?})",
                path.display(),
                r.position,
                r.reason,
                String::from_utf8_lossy(&r.input)
            );
        }
    }
    assert!(n >= 5, "expected the corpus logs, found {n}");
}

#[test]
fn crowdsec_header_expectations() {
    let Some(dir) = corpus() else { return };
    let log = std::fs::read_to_string(dir.join("crowdsec_postfix-logs.log")).unwrap();
    let assert = std::fs::read_to_string(dir.join("crowdsec_postfix-logs.parser.assert")).unwrap();
    let mut parser = SyslogParser::new(&opts());
    let lines: Vec<_> = log.lines().map(|l| parser.parse(l).unwrap()).collect();
    let prefix = "results[\"s00-raw\"][\"crowdsecurity/syslog-logs\"][";
    let mut checked = 0;
    for a in assert.lines() {
        let Some(rest) = a.strip_prefix(prefix) else {
            continue;
        };
        let Some((idx, rest)) = rest.split_once(']') else {
            continue;
        };
        let Ok(idx) = idx.parse::<usize>() else {
            continue;
        };
        let Some((field, value)) = rest.split_once(" == ") else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<String>(value) else {
            continue;
        };
        let line = &lines[idx];
        match field {
            ".Evt.Parsed[\"program\"]" => assert_eq!(line.program, value, "line {idx}"),
            ".Evt.Parsed[\"pid\"]" => assert_eq!(
                line.pid.map(|p| p.to_string()).as_deref(),
                Some(value.as_str())
            ),
            ".Evt.Parsed[\"message\"]" => assert_eq!(line.message, value, "line {idx}"),
            ".Evt.Meta[\"machine\"]" => assert_eq!(line.host, value, "line {idx}"),
            ".Evt.Parsed[\"timestamp8601\"]" => {
                let t: chrono::DateTime<chrono::Utc> = value.parse().unwrap();
                assert_eq!(line.time, t, "line {idx}");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(
        checked >= 25,
        "only {checked} crowdsec expectations checked"
    );
    // And the three NOQUEUE rejects become rejected deliveries.
    let sink = decode_bytes(log.as_bytes(), "crowdsec");
    let rejected = sink
        .records
        .iter()
        .flat_map(|r| &r.deliveries)
        .filter(|d| {
            d.status == DeliveryStatus::Rejected && d.client_ip.as_deref() == Some("192.168.1.1")
        })
        .count();
    assert_eq!(rejected, 4);
}

#[test]
fn msimerson_long_queue_ids() {
    let Some(dir) = corpus() else { return };
    let sink = decode_bytes(
        &std::fs::read(dir.join("msimerson_mail.log")).unwrap(),
        "msimerson",
    );
    let r = by_qid(&sink.records, "3mPVKl0Mhjz7sXv").expect("long queue id record");
    assert_eq!(
        r.message_id.as_deref(),
        Some("E1ZB06G-0006n5-Vp@anc-dev-web1.slc.example.net")
    );
    assert_eq!(r.envelope_from, None, "from=<> is the null sender");
    assert_eq!(r.size, Some(2666));
    assert!(r.deliveries.iter().any(
        |d| d.status == DeliveryStatus::Delivered && d.recipient == "56597@continuity.delivery"
    ));
    // The aggregated document describes a queue file of another log: check
    // its fields wherever that message appears.
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("msimerson_postfix_doc.expected.json")).unwrap(),
    )
    .unwrap();
    let mid = doc["message-id"].as_str().unwrap();
    match sink
        .records
        .iter()
        .find(|r| r.message_id.as_deref() == Some(mid))
    {
        Some(r) => {
            assert_eq!(r.envelope_from.as_deref(), doc["from"].as_str());
            assert_eq!(
                r.size.map(|s| s.to_string()).as_deref(),
                doc["size"].as_str()
            );
        }
        None => {
            eprintln!("note: message {mid} of the expected document is not in msimerson_mail.log")
        }
    }
}

#[test]
fn lograptor_multi_recipient_and_pickup_reinjection() {
    let Some(dir) = corpus() else { return };
    let sink = decode_bytes(
        &std::fs::read(dir.join("lograptor_postfix.log")).unwrap(),
        "lograptor",
    );
    let r = by_qid(&sink.records, "ED36AD08054").unwrap();
    assert_eq!(
        r.deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Delivered)
            .count(),
        3
    );
    let r = by_qid(&sink.records, "4B80DE08044").unwrap();
    assert_eq!(
        r.deliveries[0].detail.as_deref(),
        Some("sasl_username=triceratops")
    );
    let pipe = r
        .deliveries
        .iter()
        .find(|d| d.recipient == "trex@dinos.test")
        .unwrap();
    assert_eq!(
        pipe.original_recipient.as_deref(),
        Some("tyrannosaurus.rex@dinos.test")
    );
    let re = by_qid(&sink.records, "69EADD0808B").unwrap();
    assert_eq!(
        re.message_id, r.message_id,
        "re-injected copy shares the Message-ID"
    );
}

#[test]
fn searchidx_forwarded_chain() {
    let Some(dir) = corpus() else { return };
    let sink = decode_bytes(
        &std::fs::read(dir.join("searchidx_postfix_flows.log")).unwrap(),
        "searchidx",
    );
    let child = by_qid(&sink.records, "134DD104307").unwrap();
    assert!(child.keys.iter().any(|k| k.ends_with(":C724C104301")));
    let d = child
        .deliveries
        .iter()
        .find(|d| d.status == DeliveryStatus::Delivered)
        .unwrap();
    assert_eq!(
        d.original_recipient.as_deref(),
        Some("localuser@domain.com")
    );
    let pickup = by_qid(&sink.records, "3mfHGL1r9gzyQP").unwrap();
    assert_eq!(pickup.envelope_from.as_deref(), Some("system"));
}

/// Minimal reader of the grok-pattern test files: `data: "…"` and `    key: value`.
fn read_yaml(text: &str) -> (String, Vec<(String, String)>) {
    let mut data = String::new();
    let mut results = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("data: ") {
            data = unquote(v);
        } else if let Some(kv) = line.strip_prefix("    ") {
            if let Some((k, v)) = kv.split_once(": ") {
                results.push((k.to_string(), unquote(v)));
            }
        }
    }
    (data, results)
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.starts_with('"') {
        serde_json::from_str(v).unwrap_or_else(|_| v.trim_matches('"').to_string())
    } else {
        v.trim_matches('\'').to_string()
    }
}

#[test]
fn grok_pattern_expectations_for_extracted_fields() {
    let Some(dir) = corpus() else { return };
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("postfix-grok-patterns-tests")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let daemon = name
            .rsplit_once('_')
            .map(|(d, _)| d)
            .unwrap_or(&name)
            .to_string();
        let (data, results) = read_yaml(&std::fs::read_to_string(&path).unwrap());
        let get = |k: &str| {
            results
                .iter()
                .find(|(rk, _)| rk == k)
                .map(|(_, v)| v.as_str())
        };
        // Syslog escapes control characters; the YAML holds them decoded.
        let logged = data.replace('\r', "\\r").replace('\n', "\\n");
        let line = format!("Jun  1 12:00:00 mx postfix/{daemon}[42]: {logged}");
        let sink = decode_bytes(line.as_bytes(), &name);
        assert!(sink.rejects.is_empty(), "{name}: {:?}", sink.rejects);
        let qid = get("postfix_queueid");
        let record = qid.and_then(|q| by_qid(&sink.records, q));
        if let (Some(status), Some(q)) = (get("postfix_status"), qid) {
            let want = match status {
                "sent" => DeliveryStatus::Delivered,
                "deferred" => DeliveryStatus::Deferred,
                "bounced" => DeliveryStatus::Bounced,
                _ => continue,
            };
            let r = record.unwrap_or_else(|| panic!("{name}: no record for {q}"));
            let d = r
                .deliveries
                .iter()
                .find(|d| {
                    d.status == want
                        || (want == DeliveryStatus::Delivered
                            && d.status == DeliveryStatus::Forwarded)
                })
                .unwrap_or_else(|| panic!("{name}: no {want} delivery in {r:?}"));
            if let Some(relay) = get("postfix_relay_hostname") {
                assert!(
                    d.relay.as_deref().unwrap_or("").starts_with(relay),
                    "{name}: relay {:?}",
                    d.relay
                );
            }
            if let Some(to) = data.split("to=<").nth(1).and_then(|t| t.split('>').next()) {
                assert_eq!(d.recipient, to.to_lowercase(), "{name}");
            }
            checked += 1;
        }
        if data.starts_with("NOQUEUE: reject: ") {
            let r = sink
                .records
                .first()
                .unwrap_or_else(|| panic!("{name}: no record"));
            assert_eq!(r.deliveries[0].status, DeliveryStatus::Rejected, "{name}");
            if let Some(ip) = get("postfix_client_ip") {
                assert_eq!(r.deliveries[0].client_ip.as_deref(), Some(ip), "{name}");
            }
            checked += 1;
        }
        if let (Some(q), true) = (qid, data.contains(": client=")) {
            let r = record.unwrap_or_else(|| panic!("{name}: no record for {q}"));
            // The grok tests leave `client=` in postfix_keyvalue_data: read the IP from there.
            let kv = get("postfix_keyvalue_data").unwrap_or(&data);
            let want = get("postfix_client_ip").or_else(|| {
                kv.split("client=")
                    .nth(1)?
                    .split('[')
                    .nth(1)?
                    .split(']')
                    .next()
            });
            assert_eq!(r.client_ip.as_deref(), want, "{name}");
            checked += 1;
        }
        if let (Some(_), true) = (qid, data.contains(": message-id=<")) {
            let want = data
                .split("message-id=<")
                .nth(1)
                .and_then(|t| t.split('>').next())
                .filter(|m| !m.is_empty());
            assert_eq!(record.and_then(|r| r.message_id.as_deref()), want, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} grok expectations checked");
}
