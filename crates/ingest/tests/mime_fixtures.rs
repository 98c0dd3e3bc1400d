//! Golden tests over our own fixtures (`tests/fixtures/`, written by
//! `generate_mime_fixtures.py` to the published formats): each `NAME.eml` is
//! decoded and compared with the fields listed in `NAME.expected.json`; the
//! mbox and Maildir fixtures are imported through a collecting sink.

use std::path::{Path, PathBuf};

use mailtrail_ingest::maildir::{import_maildir, is_maildir};
use mailtrail_ingest::mbox::import_mbox;
use mailtrail_ingest::mime::{
    base64_decode_lenient, body_text, import_eml, parse_message, qp_decode_lenient,
};
use mailtrail_ingest::{DecodeOptions, Sink, SinkError};
use mailtrail_model::{MessageRecord, RecipientKind, Reject};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[derive(Default)]
struct Collect {
    records: Vec<MessageRecord>,
    rejects: Vec<Reject>,
    progress: Vec<u64>,
}

impl Sink for Collect {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records.push(record);
        Ok(())
    }
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.rejects.push(reject);
        Ok(())
    }
    fn progress(&mut self, bytes: u64) {
        self.progress.push(bytes);
    }
}

fn addresses(record: &MessageRecord, kind: RecipientKind) -> Vec<String> {
    record
        .recipients
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.address.clone())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Check every field the expectation names; returns the failures.
fn check(name: &str, record: &MessageRecord, expected: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let mut eq = |field: &str, got: Option<String>| {
        if let Some(want) = expected.get(field).and_then(Value::as_str) {
            if got.as_deref() != Some(want) {
                errors.push(format!("{name}: {field}: want {want:?}, got {got:?}"));
            }
        }
    };
    eq("message_id", record.message_id.clone());
    eq("subject", record.subject.clone());
    eq("from", record.from.as_ref().map(|m| m.address.clone()));
    eq(
        "from_name",
        record.from.as_ref().and_then(|m| m.display_name.clone()),
    );
    eq(
        "reply_to",
        record.reply_to.as_ref().map(|m| m.address.clone()),
    );
    eq(
        "date",
        record
            .date
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    eq(
        "first_seen",
        record
            .first_seen
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    eq("client_ip", record.client_ip.clone());
    eq("spf", record.auth.spf.clone());
    eq("dkim", record.auth.dkim.clone());
    eq("dmarc", record.auth.dmarc.clone());
    for (field, kind) in [
        ("to", RecipientKind::To),
        ("cc", RecipientKind::Cc),
        ("bcc", RecipientKind::Bcc),
    ] {
        if let Some(want) = expected.get(field) {
            let got = addresses(record, kind);
            if got != strings(want) {
                errors.push(format!("{name}: {field}: want {want}, got {got:?}"));
            }
        }
    }
    let subject = record.subject.clone().unwrap_or_default();
    for s in strings(expected.get("subject_contains").unwrap_or(&Value::Null)) {
        if !subject.contains(&s) {
            errors.push(format!("{name}: subject {subject:?} lacks {s:?}"));
        }
    }
    let body = record.body_text.clone().unwrap_or_default();
    for s in strings(expected.get("body_contains").unwrap_or(&Value::Null)) {
        if !body.contains(&s) {
            errors.push(format!("{name}: body {body:?} lacks {s:?}"));
        }
    }
    for s in strings(expected.get("body_not_contains").unwrap_or(&Value::Null)) {
        if body.contains(&s) {
            errors.push(format!("{name}: body {body:?} contains {s:?}"));
        }
    }
    if let Some(want) = expected.get("attachments").and_then(Value::as_array) {
        if want.len() != record.attachments.len() {
            errors.push(format!(
                "{name}: want {} attachments, got {:?}",
                want.len(),
                record.attachments
            ));
        }
        for (w, got) in want.iter().zip(&record.attachments) {
            if let Some(f) = w.get("filename").and_then(Value::as_str) {
                if got.filename.as_deref() != Some(f) {
                    errors.push(format!(
                        "{name}: filename want {f:?}, got {:?}",
                        got.filename
                    ));
                }
            }
            if let Some(ct) = w.get("content_type").and_then(Value::as_str) {
                if got.content_type != ct {
                    errors.push(format!(
                        "{name}: content_type want {ct}, got {}",
                        got.content_type
                    ));
                }
            }
            if let Some(size) = w.get("size").and_then(Value::as_u64) {
                if got.size != size {
                    errors.push(format!("{name}: size want {size}, got {}", got.size));
                }
            }
            if let Some(inner) = w.get("inner_names") {
                if got.inner_names != strings(inner) {
                    errors.push(format!(
                        "{name}: inner names want {inner}, got {:?}",
                        got.inner_names
                    ));
                }
            }
            if let Some(enc) = w.get("encrypted").and_then(Value::as_bool) {
                if got.encrypted != enc {
                    errors.push(format!(
                        "{name}: encrypted want {enc}, got {}",
                        got.encrypted
                    ));
                }
            }
        }
    }
    errors
}

/// `raw_range` must point at the part's encoded body: decoding it gives the hashed bytes.
fn check_raw_ranges(name: &str, record: &MessageRecord) -> Vec<String> {
    let raw = record.raw.as_deref().unwrap_or_default();
    let mut errors = Vec::new();
    for a in &record.attachments {
        let Some((start, end)) = a.raw_range else {
            continue;
        };
        let Some(body) = raw.get(start..end) else {
            errors.push(format!(
                "{name}: raw_range {start}..{end} outside the message"
            ));
            continue;
        };
        let candidates = [
            body.to_vec(),
            base64_decode_lenient(body),
            qp_decode_lenient(body),
        ];
        if !candidates
            .iter()
            .any(|c| blake3::hash(c).to_hex().to_string() == a.blake3)
        {
            errors.push(format!(
                "{name}: raw_range of {:?} does not decode to its hash",
                a.filename
            ));
        }
    }
    errors
}

#[test]
fn golden_mime_fixtures() {
    let dir = fixtures().join("mime");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 13, "fixtures missing: {names:?}");
    let mut errors = Vec::new();
    for path in names {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let expected: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let raw = std::fs::read(&path).unwrap();
        let len = raw.len() as u64;
        // The text-only decode (what the rules use) reads the same body.
        let text =
            body_text(&raw, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let record =
            parse_message(raw, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text, record.body_text, "{name}: body_text");
        assert_eq!(record.size, Some(len), "{name}: size");
        assert_eq!(
            record.systems,
            vec!["mailbox".to_string()],
            "{name}: systems"
        );
        assert!(record.raw.is_some(), "{name}: raw kept");
        errors.extend(check(&name, &record, &expected));
        errors.extend(check_raw_ranges(&name, &record));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn message_without_message_id_gets_a_content_key() {
    let raw = b"From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n".to_vec();
    let hash = blake3::hash(&raw).to_hex().to_string();
    let record = parse_message(raw, &DecodeOptions::default()).unwrap();
    assert_eq!(record.message_id, None);
    assert_eq!(record.keys, vec![format!("content:{hash}")]);

    let with_id = parse_message(
        b"From: a@example.com\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n".to_vec(),
        &DecodeOptions::default(),
    )
    .unwrap();
    assert!(with_id.keys.is_empty());
    assert_eq!(with_id.message_id.as_deref(), Some("x@y"));
}

#[test]
fn nested_attachment_raw_range_points_into_the_outer_message() {
    let raw = std::fs::read(fixtures().join("mime/nested_rfc822.eml")).unwrap();
    let record = parse_message(raw, &DecodeOptions::default()).unwrap();
    let csv = record
        .attachments
        .iter()
        .find(|a| a.filename.as_deref() == Some("顧客リスト.csv"))
        .expect("nested attachment listed");
    let (start, end) = csv
        .raw_range
        .expect("unencoded nesting keeps outer offsets");
    let body = &record.raw.as_ref().unwrap()[start..end];
    assert_eq!(base64_decode_lenient(body), "氏名,電話\n".as_bytes());
}

#[test]
fn mbox_splits_unescapes_and_keeps_truncated_last_message() {
    let path = fixtures().join("mbox/three_and_truncated.mbox");
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut sink = Collect::default();
    let summary = import_mbox(file, "test.mbox", &DecodeOptions::default(), &mut sink).unwrap();
    assert_eq!(summary.messages, 4, "rejects: {:?}", sink.rejects);
    assert_eq!(summary.rejected, 0);
    let ids: Vec<_> = sink
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "mbox-1@example.co.jp",
            "mbox-2@example.co.jp",
            "mbox-3@example.co.jp",
            "mbox-4@example.co.jp"
        ]
    );
    let body2 = sink.records[1].body_text.as_deref().unwrap();
    assert!(
        body2.contains("\nFrom the start, this line was escaped"),
        "{body2:?}"
    );
    assert!(body2.contains("\n>From here, twice"), "{body2:?}");
    // The blank separator line is not part of the message.
    let raw1 = sink.records[0].raw.as_deref().unwrap();
    assert!(
        raw1.ends_with(b"body of message 1\n"),
        "{:?}",
        String::from_utf8_lossy(raw1)
    );
    assert_eq!(sink.records[3].subject.as_deref(), Some("truncated"));
    assert!(sink.records[3]
        .body_text
        .as_deref()
        .unwrap_or_default()
        .contains("the file ends in the middle"));
    assert_eq!(
        sink.progress.last().copied(),
        Some(std::fs::metadata(&path).unwrap().len())
    );
}

#[test]
fn mbox_rejects_oversized_and_unparsable_messages_with_offsets() {
    let big_body = "x".repeat(5000);
    let mbox = format!(
        "From a@b Thu Apr 11 01:00:00 2024\nFrom: a@example.com\nMessage-ID: <1@x>\n\n{big_body}\n\n\
         From a@b Thu Apr 11 02:00:00 2024\n\n\n\
         From a@b Thu Apr 11 03:00:00 2024\nFrom: c@example.com\nMessage-ID: <3@x>\n\nok\n"
    );
    let opts = DecodeOptions {
        max_message_bytes: 1024,
        ..Default::default()
    };
    let mut sink = Collect::default();
    let summary = import_mbox(mbox.as_bytes(), "big.mbox", &opts, &mut sink).unwrap();
    assert_eq!(summary.messages, 1);
    assert_eq!(summary.rejected, 2);
    assert_eq!(sink.rejects[0].code, "mime.too_large");
    assert_eq!(
        sink.rejects[0].position,
        mailtrail_model::Position::Offset(0)
    );
    assert!(sink.rejects[0].input.len() <= 64 * 1024);
    assert_eq!(sink.rejects[1].code, "mime.empty");
    let second = mbox.find("From a@b Thu Apr 11 02").unwrap() as u64;
    assert_eq!(
        sink.rejects[1].position,
        mailtrail_model::Position::Offset(second)
    );
    assert_eq!(sink.records[0].message_id.as_deref(), Some("3@x"));
}

#[test]
fn maildir_walks_cur_new_and_subfolders_in_order() {
    let dir = fixtures().join("maildir");
    assert!(is_maildir(&dir));
    assert!(!is_maildir(&fixtures().join("mime")));
    let mut sink = Collect::default();
    let summary = import_maildir(&dir, &DecodeOptions::default(), &mut sink).unwrap();
    assert_eq!(summary.messages, 4, "rejects: {:?}", sink.rejects);
    let subjects: Vec<_> = sink
        .records
        .iter()
        .map(|r| r.subject.clone().unwrap())
        .collect();
    // Root first, then sub-folders sorted by path (".Sent" < "Archive").
    assert_eq!(
        subjects,
        [
            "maildir message 1",
            "maildir message 2",
            "maildir message 3",
            "maildir message 4"
        ]
    );
}

#[test]
fn maildir_ignores_tmp_and_flags_and_rejects_unreadable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let msg = b"From: a@example.com\r\nSubject: flagged\r\nMessage-ID: <f@x>\r\n\r\nhi\r\n";
    std::fs::write(root.join("cur/1.M1.host:2,S"), msg).unwrap();
    std::fs::write(root.join("tmp/2.M2.host"), msg).unwrap();
    std::fs::write(root.join("new/3.M3.host"), b"\x00\x01\x02 not mail").unwrap();
    let mut sink = Collect::default();
    let summary = import_maildir(root, &DecodeOptions::default(), &mut sink).unwrap();
    assert_eq!(summary.messages, 1);
    assert_eq!(sink.records[0].subject.as_deref(), Some("flagged"));
    assert_eq!(summary.rejected, 1);
    assert!(sink.rejects[0].source.ends_with("3.M3.host"));
}

#[test]
fn import_eml_reads_one_file() {
    let mut sink = Collect::default();
    let path = fixtures().join("mime/bcc_header.eml");
    let summary = import_eml(&path, &DecodeOptions::default(), &mut sink).unwrap();
    assert_eq!(summary.messages, 1);
    assert_eq!(
        sink.records[0].message_id.as_deref(),
        Some("bcc-1@example.co.jp")
    );
    let missing = import_eml(
        &fixtures().join("nope.eml"),
        &DecodeOptions::default(),
        &mut sink,
    );
    assert!(missing.is_err());
}
