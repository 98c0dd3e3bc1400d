//! Attachment downloads: the file's bytes out of the stored raw message,
//! and the headers that make a browser save it rather than run it.
//!
//! Why the bytes are found by hash, not by position: the store keeps each
//! attachment's BLAKE3 (of its decoded content) and the raw message, not the
//! decoded file. The decoder that listed the attachments
//! (`mailtrail_ingest::mime`) walks parts in its own order — nested
//! messages included, text bodies skipped — so instead of re-creating that
//! order, [`find`] walks every leaf part the same way (mail-parser for
//! structure only, nested-message content types renamed first so that
//! mail-parser does not recurse into them on its own, nested messages
//! walked here to the same depth limit, the same lenient transfer decoders)
//! and returns the part whose decoded bytes hash to the stored value. What
//! is served is therefore provably the file that was listed — a decoder
//! change can make a file unavailable, never make it the wrong file.
//!
//! Headers: `Content-Disposition: attachment` with an ASCII `filename` and
//! the exact name as RFC 5987 `filename*=UTF-8''…` (Japanese names survive
//! in every current browser); the stored content type unless it is one a
//! browser would interpret as a page or script (HTML, SVG, XML, JavaScript),
//! which is served as `application/octet-stream`. `nosniff` and the
//! console's `default-src 'none'` policy are on every response anyway.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Encoding, HeaderName, MessageParser, PartType};
use mailtrail_ingest::mime::{
    base64_decode_lenient, neutralise_nesting, qp_decode_lenient, MAX_NESTED_DEPTH, NESTED_MARK,
};

/// Parts looked at per message, at most (as the decoder lists at most this many).
const MAX_PARTS: usize = mailtrail_ingest::mime::MAX_ATTACHMENTS * 2;

/// The decoded content of the part of `raw` whose BLAKE3 is `blake3`.
pub fn find(raw: &[u8], blake3: &str) -> Option<Vec<u8>> {
    if blake3.is_empty() {
        return None;
    }
    let mut budget = MAX_PARTS;
    // A parser bug costs this download, never the server.
    catch_unwind(AssertUnwindSafe(|| walk(raw, blake3, 0, &mut budget)))
        .ok()
        .flatten()
}

fn walk(raw: &[u8], blake3: &str, depth: usize, budget: &mut usize) -> Option<Vec<u8>> {
    let patched = neutralise_nesting(raw);
    let data: &[u8] = patched.as_deref().unwrap_or(raw);
    let message = MessageParser::default().parse(data)?;
    for part in &message.parts {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(body) = raw.get(start..end.max(start)) else {
            continue;
        };
        let bytes = match part.encoding {
            Encoding::None => body.to_vec(),
            Encoding::Base64 => base64_decode_lenient(body),
            Encoding::QuotedPrintable => qp_decode_lenient(body),
        };
        if blake3::hash(&bytes).to_hex().as_str() == blake3 {
            return Some(bytes);
        }
        // The first Content-Type, as the decoder reads it.
        let content_type = part
            .headers
            .iter()
            .find(|h| h.name == HeaderName::ContentType)
            .and_then(|h| h.value.as_content_type());
        let nested = content_type.is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case(NESTED_MARK)
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
                })
        });
        if nested && depth < MAX_NESTED_DEPTH {
            if let Some(found) = walk(&bytes, blake3, depth + 1, budget) {
                return Some(found);
            }
        }
    }
    None
}

/// The content type to answer with: the stored one when a browser would
/// only display or save it, `application/octet-stream` when it could be
/// interpreted as a page or a script, or is not a plain `type/subtype`.
pub fn served_content_type(stored: &str) -> String {
    let ct = stored.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let Some((kind, sub)) = ct.split_once('/') else {
        return "application/octet-stream".into();
    };
    // Not a substring test: `spreadsheetml` and `openxmlformats` are documents.
    let active = matches!(kind, "multipart" | "message")
        || sub.starts_with("html")
        || sub.starts_with("xhtml")
        || sub.ends_with("+xml")
        || sub.contains("javascript")
        || sub.contains("ecmascript")
        || matches!(
            sub,
            "xml"
                | "xsl"
                | "xslt"
                | "css"
                | "svg"
                | "x-shockwave-flash"
                | "hta"
                | "x-component"
                | "cache-manifest"
        );
    if active || !token(kind) || !token(sub) {
        "application/octet-stream".into()
    } else {
        ct
    }
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
pub fn content_disposition(name: &str, fallback: &str) -> String {
    // Path separators and control characters never reach a file system.
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_start_matches('.');
    let clean = if clean.is_empty() { fallback } else { clean };
    let ascii: String = clean
        .chars()
        .map(|c| {
            // Also none of the characters Windows refuses in file names.
            if c.is_ascii_graphic() && !matches!(c, '"' | '%' | '<' | '>' | ':' | '|' | '?' | '*')
                || c == ' '
            {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in clean.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: a@example.co.jp\r\nTo: b@example.co.jp\r\nSubject: x\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n\
--b1\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\n\
From: c@example.co.jp\r\nSubject: inner\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b2\r\n\r\n\
--b2\r\nContent-Type: text/plain\r\n\r\ninner body\r\n\
--b2\r\nContent-Type: text/csv; name=list.csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
name,mail=0D=0Ataro,taro@example.co.jp\r\n--b2--\r\n\
\r\n--b1--\r\n";

    #[test]
    fn files_are_found_by_their_hash_nested_ones_too() {
        let record = mailtrail_ingest::mime::parse_message(
            MAIL.to_vec(),
            &mailtrail_ingest::DecodeOptions::default(),
        )
        .unwrap();
        assert!(record.attachments.len() >= 3, "{:?}", record.attachments);
        for a in &record.attachments {
            let bytes = find(MAIL, &a.blake3).unwrap_or_else(|| panic!("{a:?} not found"));
            assert_eq!(bytes.len() as u64, a.size);
        }
        let pdf = record
            .attachments
            .iter()
            .find(|a| a.filename.as_deref() == Some("a.pdf"))
            .unwrap();
        assert!(find(MAIL, &pdf.blake3).unwrap().starts_with(b"%PDF-1.4"));
        let csv = record
            .attachments
            .iter()
            .find(|a| a.filename.as_deref() == Some("list.csv"))
            .unwrap();
        assert_eq!(
            find(MAIL, &csv.blake3).unwrap(),
            b"name,mail\r\ntaro,taro@example.co.jp"
        );
        assert_eq!(find(MAIL, &"0".repeat(64)), None);
        assert_eq!(find(b"not a message", &pdf.blake3), None);
    }

    #[test]
    fn active_types_are_served_as_bytes() {
        for (stored, served) in [
            ("application/pdf", "application/pdf"),
            ("image/png", "image/png"),
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("Text/Plain", "text/plain"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("application/zip", "application/zip"),
            ("text/html", "application/octet-stream"),
            ("application/xhtml+xml", "application/octet-stream"),
            ("image/svg+xml", "application/octet-stream"),
            ("text/xml", "application/octet-stream"),
            ("application/javascript", "application/octet-stream"),
            ("text/javascript", "application/octet-stream"),
            ("message/rfc822", "application/octet-stream"),
            ("text/plain\r\nX-Evil: 1", "application/octet-stream"),
            ("garbage", "application/octet-stream"),
        ] {
            assert_eq!(served_content_type(stored), served, "{stored}");
        }
    }

    #[test]
    fn names_are_safe_and_japanese_ones_exact() {
        assert_eq!(
            content_disposition("見積書 2026.xlsx", "attachment-1"),
            "attachment; filename=\"___ 2026.xlsx\"; filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%9B%B8%202026.xlsx"
        );
        assert_eq!(
            content_disposition("../../etc/pass\"wd\r\n", "attachment-1"),
            "attachment; filename=\"_.._etc_pass_wd\"; filename*=UTF-8''_.._etc_pass%22wd"
        );
        assert_eq!(
            content_disposition("", "attachment-3"),
            "attachment; filename=\"attachment-3\"; filename*=UTF-8''attachment-3"
        );
    }
}
