//! Conformance over the public real-world samples in `../shared/corpus`
//! (DESIGN.md §7): every `eml_charsets/*.eml` and `journal_reports/*.eml`
//! decodes without a panic, and the values the samples' own expectations give
//! (stalwart `*.expected.json`, the charset test vectors, the Japanese text of
//! the mikel/mail samples) come out. Skipped, with a printed line, when the
//! corpus folder is absent.

use std::path::PathBuf;

use mailtrail_ingest::mime::parse_message;
use mailtrail_ingest::DecodeOptions;
use mailtrail_model::{MessageRecord, RecipientKind};
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("MAILTRAIL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("corpus folder {} absent: skipped", dir.display());
        None
    }
}

fn parse_file(path: &std::path::Path) -> MessageRecord {
    let raw = std::fs::read(path).unwrap();
    parse_message(raw, &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_corpus_eml_parses() {
    let Some(dir) = corpus() else { return };
    let mut n = 0;
    for sub in ["eml_charsets", "journal_reports"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "eml") {
                let record = parse_file(&path);
                assert!(record.size.is_some());
                n += 1;
            }
        }
    }
    assert!(n > 0, "no .eml files found in the corpus");
}

/// Header value of the root part of a stalwart expectation.
fn stalwart_header<'a>(expected: &'a Value, name: &str) -> Option<&'a Value> {
    expected["parts"][0]["headers"]
        .as_array()?
        .iter()
        .find(|h| h["name"].as_str() == Some(name))
        .map(|h| &h["value"])
}

fn stalwart_addresses(value: Option<&Value>) -> Vec<String> {
    let Some(v) = value else { return Vec::new() };
    let list = if let Some(l) = v["Address"]["List"].as_array() {
        l.clone()
    } else if let Some(groups) = v["Address"]["Group"].as_array() {
        groups
            .iter()
            .flat_map(|g| g["addresses"].as_array().cloned().unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    list.iter()
        .filter_map(|a| a["address"].as_str())
        .map(str::to_lowercase)
        .collect()
}

/// File names of the attachments a stalwart expectation lists (recursively into nested messages).
fn stalwart_attachment_names(message: &Value, out: &mut Vec<String>) {
    let parts = message["parts"].as_array().cloned().unwrap_or_default();
    for id in message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let Some(part) = id.as_u64().and_then(|i| parts.get(i as usize)) else {
            continue;
        };
        for header in part["headers"].as_array().cloned().unwrap_or_default() {
            let key = match header["name"].as_str() {
                Some("content_disposition") => "filename",
                Some("content_type") => "name",
                _ => continue,
            };
            for attr in header["value"]["ContentType"]["attributes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if attr["name"].as_str() == Some(key) {
                    if let Some(v) = attr["value"].as_str() {
                        if !out.iter().any(|o| o == v) {
                            out.push(v.to_string());
                        }
                    }
                }
            }
        }
        if part["body"].get("Message").is_some() {
            stalwart_attachment_names(&part["body"]["Message"], out);
        }
    }
}

#[test]
fn stalwart_expectations_hold() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("eml_charsets");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".expected.json") else {
            continue;
        };
        let expected: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let record = parse_file(&dir.join(format!("{stem}.eml")));
        if let Some(subject) =
            stalwart_header(&expected, "subject").and_then(|v| v["Text"].as_str())
        {
            assert_eq!(record.subject.as_deref(), Some(subject), "{stem}: subject");
        }
        let from = stalwart_addresses(stalwart_header(&expected, "from"));
        if let Some(first) = from.first() {
            assert_eq!(
                record.from.as_ref().map(|m| m.address.as_str()),
                Some(first.as_str()),
                "{stem}: from"
            );
        }
        let to = stalwart_addresses(stalwart_header(&expected, "to"));
        let got_to: Vec<_> = record
            .recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::To)
            .map(|r| r.address.clone())
            .collect();
        assert_eq!(got_to, to, "{stem}: to");
        let mut names = Vec::new();
        stalwart_attachment_names(&expected, &mut names);
        for n in names {
            assert!(
                record
                    .attachments
                    .iter()
                    .any(|a| a.filename.as_deref() == Some(n.as_str())),
                "{stem}: attachment {n:?} missing from {:?}",
                record.attachments
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} expectations checked");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn stalwart_charset_vectors_decode_inside_messages() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("eml_charsets/stalwart_charset_test_vectors.json");
    let vectors: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for v in vectors["charset_decode"].as_array().unwrap() {
        let charset = v["charset"].as_str().unwrap();
        let bytes = match v["bytes_hex"].as_str() {
            Some(h) => unhex(h),
            None => v["bytes_ascii"].as_str().unwrap().as_bytes().to_vec(),
        };
        let want = v["expected"].as_str().unwrap();
        let mut raw = format!(
            "From: a@example.com\r\nSubject: vector\r\nContent-Type: text/plain; charset={charset}\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n"
        )
        .into_bytes();
        raw.extend_from_slice(&bytes);
        let record = parse_message(raw, &DecodeOptions::default()).unwrap();
        assert_eq!(record.body_text.as_deref(), Some(want), "body in {charset}");
    }
    for v in vectors["encoded_word_decode"].as_array().unwrap() {
        let input = v["input"].as_str().unwrap();
        let want = v["expected"].as_str().unwrap();
        let raw = format!("From: a@example.com\r\nSubject: {input}\r\n\r\nx\r\n").into_bytes();
        let record = parse_message(raw, &DecodeOptions::default()).unwrap();
        assert_eq!(record.subject.as_deref(), Some(want), "subject {input}");
    }
}

#[test]
fn mikel_japanese_samples_carry_their_text() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("eml_charsets");
    let iso = parse_file(&dir.join("mikel-mail_japanese_iso_2022.eml"));
    assert_eq!(iso.subject.as_deref(), Some("まみむめも"));
    assert!(iso
        .body_text
        .as_deref()
        .unwrap_or_default()
        .contains("すみません。"));
    assert_eq!(iso.recipients[0].display_name.as_deref(), Some("みける"));

    let sjis = parse_file(&dir.join("mikel-mail_japanese_shift_jis.eml"));
    let body = sjis.body_text.unwrap_or_default();
    assert!(body.contains("あいうえお"), "{body:?}");
    assert!(body.contains("メール"), "{body:?}");

    let long = parse_file(&dir.join("mikel-mail_japanese_attachment_long_name.eml"));
    let subject = long.subject.unwrap_or_default();
    assert!(subject.starts_with("まみむめもまみむめも"), "{subject:?}");
    assert!(!subject.contains('\u{FFFD}'));
    let name = long.attachments[0].filename.clone().unwrap_or_default();
    assert!(
        name.starts_with("かきくけこかきくけこ") && name.ends_with(".txt"),
        "{name:?}"
    );

    let bogus = parse_file(&dir.join("piler_17_bogus-iso-2022-jp-charset.eml"));
    assert!(bogus.recipients.iter().all(|r| r.kind != RecipientKind::To));
}
