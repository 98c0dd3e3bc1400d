//! Hostile and broken input: `parse_message` must return a record with what
//! it could read or a `MimeError` — never panic, never blow the stack, never
//! use memory out of proportion to the input.

use mailtrail_ingest::mime::{parse_message, MimeError};
use mailtrail_ingest::DecodeOptions;
use proptest::prelude::*;

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

#[test]
fn ten_thousand_parts() {
    let mut raw = String::from(
        "From: a@example.com\r\nMessage-ID: <many@x>\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for i in 0..10_000 {
        raw.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream; name=\"f{i}.bin\"\r\n\r\npart {i}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    let record = parse_message(raw.into_bytes(), &opts()).unwrap();
    assert_eq!(record.attachments.len(), 10_000);
    assert_eq!(
        record.attachments[9_999].filename.as_deref(),
        Some("f9999.bin")
    );
}

fn nested(depth: usize) -> Vec<u8> {
    let mut raw = String::new();
    for i in 0..depth {
        raw.push_str(&format!(
            "From: level{i}@example.com\r\nSubject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n"
        ));
    }
    raw.push_str("From: leaf@example.com\r\nSubject: leaf\r\n\r\nleaf body\r\n");
    raw.into_bytes()
}

#[test]
fn deeply_nested_rfc822_is_depth_limited() {
    let record = parse_message(nested(200), &opts()).unwrap();
    assert_eq!(record.subject.as_deref(), Some("level 0"));
    // One attachment per walked level, bounded by the depth limit.
    assert!(!record.attachments.is_empty());
    assert!(record.attachments.len() <= mailtrail_ingest::mime::MAX_NESTED_DEPTH + 1);
}

#[test]
fn very_deep_nesting_does_not_overflow_the_stack() {
    // 100,000 levels: a recursive drop or walk would overflow a 2 MiB test thread stack.
    let record = parse_message(nested(100_000), &opts()).unwrap();
    assert_eq!(record.subject.as_deref(), Some("level 0"));
}

#[test]
fn deep_multipart_nesting() {
    let mut raw = String::from("From: a@example.com\r\n");
    for i in 0..5_000 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
    let _ = parse_message(raw.into_bytes(), &opts()).unwrap();
}

#[test]
fn base64_encoded_nested_messages() {
    // A nested message that is itself base64-encoded, several times over.
    let mut inner = b"From: leaf@example.com\r\nSubject: leaf\r\n\r\nsecret leaf\r\n".to_vec();
    for i in 0..20 {
        let encoded = mailtrail_b64(&inner);
        inner = format!(
            "From: l{i}@example.com\r\nSubject: l{i}\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
        .into_bytes();
    }
    let record = parse_message(inner, &opts()).unwrap();
    assert_eq!(record.subject.as_deref(), Some("l19"));
    assert!(record
        .attachments
        .iter()
        .all(|a| a.raw_range.is_none() || a.content_type == "message/rfc822"));
}

fn mailtrail_b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (n, chunk) in data.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        if n % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out
}

#[test]
fn invalid_utf8_in_headers() {
    let raw = b"From: \xff\xfe <a@example.com>\r\nTo: \xc3\x28@example.com\r\nSubject: caf\xe9 \xff\xff\xff\r\nContent-Type: text/plain; charset=\"\xff\"; name=\"\xfe.txt\"\r\n\r\nbody \xff\r\n".to_vec();
    let record = parse_message(raw, &opts()).unwrap();
    assert!(record.subject.is_some());
    assert_eq!(
        record.from.as_ref().map(|m| m.address.as_str()),
        Some("a@example.com")
    );
}

#[test]
fn empty_and_blank_input() {
    assert_eq!(
        parse_message(Vec::new(), &opts()).unwrap_err(),
        MimeError::Empty
    );
    assert_eq!(
        parse_message(b"\r\n\r\n  \n".to_vec(), &opts())
            .unwrap_err()
            .code(),
        "mime.empty"
    );
}

#[test]
fn binary_garbage_is_rejected_or_read() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    match parse_message(garbage, &opts()) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.code(), "mime.parse"),
    }
}

#[test]
fn oversized_message_is_an_error() {
    let small = DecodeOptions {
        max_message_bytes: 100,
        ..Default::default()
    };
    let err = parse_message(vec![b'a'; 101], &small).unwrap_err();
    assert_eq!(err.code(), "mime.too_large");
}

fn mime_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::collection::vec(
        prop_oneof![
            Just(b"From: a@b\r\n".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=x\r\n".to_vec()),
            Just(b"Content-Type: message/rfc822\r\n".to_vec()),
            Just(b"Content-Type: text/plain; charset=iso-2022-jp\r\n".to_vec()),
            Just(
                b"Content-Disposition: attachment; filename*0*=utf-8''%E3; filename*1*=%81\r\n"
                    .to_vec()
            ),
            Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
            Just(b"Content-Transfer-Encoding: quoted-printable\r\n".to_vec()),
            Just(b"Subject: =?utf-8?B?44GC?= =?cp932?Q?=82=A0?=\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"--x\r\n".to_vec()),
            Just(b"--x--\r\n".to_vec()),
            Just(b"PK\x03\x04".to_vec()),
            Just(b"\x1b$B".to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        0..40,
    );
    pieces.prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Err(e) = parse_message(raw, &opts()) {
            prop_assert_ne!(e.code(), "mime.panic");
        }
    }

    #[test]
    fn never_panics_on_mime_shaped_bytes(raw in mime_like()) {
        if let Err(e) = parse_message(raw, &opts()) {
            prop_assert_ne!(e.code(), "mime.panic");
        }
    }
}
