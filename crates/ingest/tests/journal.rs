//! Journal copies (tests/fixtures/journal, written by `make_fixtures.py` to
//! the documented formats): Exchange envelope journal reports, Postfix /
//! Gmail copies and plain Bcc copies decode to the journalled message with
//! the right To/Cc/Bcc, and never panic on anything.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use mailtrail_ingest::journal::{
    decode_journal, parse_report_body, Envelope, JournalKind, JournalMessage, RedirectionKind,
    ReportField,
};
use mailtrail_ingest::mime::MimeError;
use mailtrail_ingest::DecodeOptions;
use mailtrail_model::{DeliveryStatus, MessageRecord, RecipientKind};
use proptest::prelude::*;

const JOURNAL: &str = "journal@mailtrail.example.co.jp";
const SUBJECT: &str = "【社外秘】見積書の送付";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/journal")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 2, 1, 15, 3).unwrap()
}

fn envelope(mail_from: Option<&str>, rcpt_to: &[&str]) -> Envelope {
    Envelope {
        mail_from: mail_from.map(str::to_string),
        rcpt_to: rcpt_to.iter().map(|s| s.to_string()).collect(),
        received_at: received_at(),
        client_ip: Some("192.0.2.20".to_string()),
        client_helo: Some("EX01.example.co.jp".to_string()),
    }
}

fn journal_addresses() -> Vec<String> {
    vec![JOURNAL.to_string()]
}

fn decode(raw: Vec<u8>, env: &Envelope) -> JournalMessage {
    decode_journal(raw, env, &journal_addresses(), &DecodeOptions::default()).unwrap()
}

/// The journal agent's own envelope, as Exchange sends a report.
fn exchange_envelope() -> Envelope {
    envelope(
        Some("MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.co.jp"),
        &[JOURNAL],
    )
}

fn recipients(record: &MessageRecord) -> BTreeSet<(String, RecipientKind)> {
    record
        .recipients
        .iter()
        .map(|r| (r.address.clone(), r.kind))
        .collect()
}

fn set(items: &[(&str, RecipientKind)]) -> BTreeSet<(String, RecipientKind)> {
    items.iter().map(|(a, k)| (a.to_string(), *k)).collect()
}

fn deliveries(
    record: &MessageRecord,
    status: DeliveryStatus,
) -> BTreeSet<(String, Option<String>)> {
    record
        .deliveries
        .iter()
        .filter(|d| d.status == status)
        .map(|d| (d.recipient.clone(), d.original_recipient.clone()))
        .collect()
}

fn addrs(items: &[&str]) -> BTreeSet<(String, Option<String>)> {
    items.iter().map(|a| (a.to_string(), None)).collect()
}

use RecipientKind::{Bcc, Cc, Envelope as Env, To};

// ---------------------------------------------------------------------------
// Exchange / Microsoft 365 envelope journal reports
// ---------------------------------------------------------------------------

#[test]
fn exchange_report_yields_the_original_with_report_recipients() {
    let msg = decode(fixture("exchange_report_1.eml"), &exchange_envelope());
    assert_eq!(msg.kind, JournalKind::ExchangeEnvelope);
    let r = &msg.record;
    assert_eq!(
        r.message_id.as_deref(),
        Some("quote-2024-0402@example.co.jp")
    );
    assert_eq!(r.subject.as_deref(), Some(SUBJECT));
    assert_eq!(
        r.from.as_ref().map(|m| m.address.as_str()),
        Some("taro.yamada@example.co.jp")
    );
    // `Sender:` of the report, not the journal agent's MAIL FROM.
    assert_eq!(
        r.envelope_from.as_deref(),
        Some("taro.yamada@example.co.jp")
    );
    assert!(r
        .body_text
        .as_deref()
        .unwrap_or("")
        .contains("見積書を添付します"));
    assert_eq!(r.systems, vec!["journal".to_string()]);
    assert_eq!(
        recipients(r),
        set(&[
            // Header To/Cc of the original, confirmed by the report.
            ("hanako.sato@partner.example", To),
            ("sales-dl@example.co.jp", To),
            ("jiro.suzuki@example.co.jp", Cc),
            // Added by the report: a group member, a forward target, Bcc, Recipient:.
            ("ichiro.tanaka@example.co.jp", To),
            ("assistant@example.co.jp", Cc),
            ("boss@example.co.jp", Bcc),
            ("archive-partner@partner.example", Env),
        ])
    );
    let hanako = r
        .recipients
        .iter()
        .find(|x| x.address == "hanako.sato@partner.example")
        .unwrap();
    assert_eq!(hanako.display_name.as_deref(), Some("Hanako Sato"));
}

#[test]
fn exchange_report_raw_is_the_original_bytes_and_attachment_ranges_point_into_it() {
    let original = fixture("original.eml");
    let msg = decode(fixture("exchange_report_1.eml"), &exchange_envelope());
    let r = &msg.record;
    assert_eq!(r.raw.as_deref(), Some(original.as_slice()));
    assert_eq!(r.size, Some(original.len() as u64));
    assert_eq!(r.attachments.len(), 1);
    let a = &r.attachments[0];
    assert_eq!(a.filename.as_deref(), Some("quote.pdf"));
    assert_eq!(a.content_type, "application/pdf");
    let expected = fixture("attachment.bin");
    assert_eq!(a.size, expected.len() as u64);
    assert_eq!(a.blake3, blake3::hash(&expected).to_hex().to_string());
    let (start, end) = a.raw_range.expect("raw_range");
    let encoded = &original[start..end];
    assert_eq!(
        mailtrail_ingest::mime::base64_decode_lenient(encoded),
        expected
    );
}

#[test]
fn exchange_report_with_bare_lf_line_ends_still_cuts_the_original_exactly() {
    let lf = |b: Vec<u8>| {
        String::from_utf8(b)
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes()
    };
    let original = lf(fixture("original.eml"));
    let r = decode(lf(fixture("exchange_report_1.eml")), &exchange_envelope()).record;
    assert_eq!(r.raw.as_deref(), Some(original.as_slice()));
    assert_eq!(recipients(&r).len(), 7);
}

#[test]
fn exchange_report_deliveries_received_expanded_forwarded() {
    let msg = decode(fixture("exchange_report_1.eml"), &exchange_envelope());
    let r = &msg.record;
    assert_eq!(
        deliveries(r, DeliveryStatus::Received),
        addrs(&[
            "hanako.sato@partner.example",
            "ichiro.tanaka@example.co.jp",
            "jiro.suzuki@example.co.jp",
            "assistant@example.co.jp",
            "boss@example.co.jp",
            "archive-partner@partner.example",
        ])
    );
    assert_eq!(
        deliveries(r, DeliveryStatus::Expanded),
        BTreeSet::from([(
            "ichiro.tanaka@example.co.jp".to_string(),
            Some("sales-dl@example.co.jp".to_string())
        )])
    );
    assert_eq!(
        deliveries(r, DeliveryStatus::Forwarded),
        BTreeSet::from([(
            "assistant@example.co.jp".to_string(),
            Some("jiro.suzuki@example.co.jp".to_string())
        )])
    );
    // The message's own time, so that a retried copy repeats the same events.
    let own_time = r.deliveries[0].time;
    assert!(own_time <= received_at());
    for d in &r.deliveries {
        assert_eq!(d.system, "journal");
        assert_eq!(d.time, own_time);
        assert_eq!(d.client_ip.as_deref(), Some("192.0.2.20"));
        assert_eq!(d.client_host.as_deref(), Some("EX01.example.co.jp"));
    }
    let expanded = r
        .deliveries
        .iter()
        .find(|d| d.status == DeliveryStatus::Expanded)
        .unwrap();
    assert!(expanded
        .detail
        .as_deref()
        .unwrap()
        .contains("sales-dl@example.co.jp"));
    let forwarded = r
        .deliveries
        .iter()
        .find(|d| d.status == DeliveryStatus::Forwarded)
        .unwrap();
    assert!(forwarded
        .detail
        .as_deref()
        .unwrap()
        .contains("jiro.suzuki@example.co.jp"));
}

#[test]
fn bifurcated_reports_each_say_their_own_bcc_and_merge_to_both() {
    let first = decode(fixture("exchange_report_1.eml"), &exchange_envelope()).record;
    let second = decode(fixture("exchange_report_2.eml"), &exchange_envelope()).record;
    // The second report states only its own recipients.
    assert_eq!(
        recipients(&second),
        set(&[
            ("hanako.sato@partner.example", To),
            ("sales-dl@example.co.jp", To),
            ("jiro.suzuki@example.co.jp", Cc),
            ("auditor@example.co.jp", Bcc),
        ])
    );
    assert_eq!(first.message_id, second.message_id);
    assert_eq!(first.raw, second.raw);

    let mut merged = first.clone();
    merged.merge(second);
    let bcc: BTreeSet<&str> = merged
        .recipients
        .iter()
        .filter(|r| r.kind == Bcc)
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(
        bcc,
        BTreeSet::from(["boss@example.co.jp", "auditor@example.co.jp"])
    );
    assert_eq!(recipients(&merged).len(), recipients(&first).len() + 1);
    assert_eq!(merged.attachments.len(), 1);
}

#[test]
fn report_without_original_gives_a_record_from_the_report_lines() {
    let msg = decode(fixture("exchange_report_only.eml"), &exchange_envelope());
    assert_eq!(msg.kind, JournalKind::ExchangeEnvelope);
    let r = &msg.record;
    assert_eq!(r.raw, None);
    assert_eq!(r.size, None);
    assert!(r.attachments.is_empty());
    assert_eq!(r.message_id.as_deref(), Some("minutes-42@example.co.jp"));
    assert_eq!(r.subject.as_deref(), Some("Board minutes"));
    // Sent by a delegate on behalf of the principal.
    assert_eq!(r.envelope_from.as_deref(), Some("secretary@example.co.jp"));
    assert_eq!(
        r.from.as_ref().map(|m| m.address.as_str()),
        Some("ceo@example.co.jp")
    );
    // Garbage lines (`this line is not a field`, `Bcc: , Expanded:`) are skipped;
    // the forwarding source `board@` was addressed as To, so `Recipient:` does not demote it.
    assert_eq!(
        recipients(r),
        set(&[
            ("board@example.co.jp", To),
            ("legal@example.co.jp", Cc),
            ("records@example.co.jp", Bcc),
            ("outside@partner.example", Env),
        ])
    );
    assert_eq!(
        deliveries(r, DeliveryStatus::Forwarded),
        BTreeSet::from([(
            "outside@partner.example".to_string(),
            Some("board@example.co.jp".to_string())
        )])
    );
    assert_eq!(r.systems, vec!["journal".to_string()]);
}

#[test]
fn report_message_id_wins_over_the_attached_originals() {
    let report = String::from_utf8(fixture("exchange_report_1.eml")).unwrap();
    let body_line = "Message-ID: <quote-2024-0402@example.co.jp>\r\nTo: hanako";
    assert_eq!(report.matches(body_line).count(), 1);
    let changed = report.replacen(
        body_line,
        "Message-ID: <exchange-assigned-1@EX01.example.co.jp>\r\nTo: hanako",
        1,
    );
    let r = decode(changed.into_bytes(), &exchange_envelope()).record;
    assert_eq!(
        r.message_id.as_deref(),
        Some("exchange-assigned-1@EX01.example.co.jp")
    );
    // Still the original's content.
    assert_eq!(r.raw.as_deref(), Some(fixture("original.eml").as_slice()));
}

#[test]
fn report_with_unreadable_original_degrades_to_the_report_lines() {
    for attached in ["", "\u{1}\u{2} not a message \u{3}"] {
        let raw = format!(
            "From: journal-agent@example.co.jp\r\nSubject: outer\r\nX-MS-Journal-Report:\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nSender: a@example.co.jp\r\nSubject: inner\r\n\
             Message-ID: <m1@example.co.jp>\r\nBcc: hidden@example.co.jp\r\n--b\r\n\
             Content-Type: message/rfc822\r\n\r\n{attached}\r\n--b--\r\n"
        );
        let r = decode(raw.into_bytes(), &exchange_envelope()).record;
        assert_eq!(r.raw, None);
        assert_eq!(r.message_id.as_deref(), Some("m1@example.co.jp"));
        assert_eq!(r.subject.as_deref(), Some("inner"));
        assert_eq!(recipients(&r), set(&[("hidden@example.co.jp", Bcc)]));
    }
}

#[test]
fn report_body_in_a_non_utf8_charset_is_decoded() {
    // Subject line of the report in Shift_JIS, labelled so.
    let mut raw = b"From: agent@example.co.jp\r\nX-MS-Journal-Report:\r\n\
        Content-Type: text/plain; charset=shift_jis\r\n\r\n\
        Sender: a@example.co.jp\r\nSubject: "
        .to_vec();
    raw.extend_from_slice(b"\x8c\xa9\x90\xcf\x8f\x91"); // 見積書
    raw.extend_from_slice(b"\r\nMessage-ID: <sj@example.co.jp>\r\nTo: b@example.co.jp\r\n");
    let r = decode(raw, &exchange_envelope()).record;
    assert_eq!(r.subject.as_deref(), Some("見積書"));
    assert_eq!(recipients(&r), set(&[("b@example.co.jp", To)]));
}

// ---------------------------------------------------------------------------
// Copies
// ---------------------------------------------------------------------------

#[test]
fn x_original_to_copy_makes_the_hidden_recipient_bcc() {
    let raw = fixture("x_original_to.eml");
    let msg = decode(
        raw.clone(),
        &envelope(Some("sender@partner.example"), &[JOURNAL]),
    );
    assert_eq!(msg.kind, JournalKind::PostfixCopy);
    let r = &msg.record;
    assert_eq!(r.message_id.as_deref(), Some("invoice-77@partner.example"));
    assert_eq!(r.raw.as_deref(), Some(raw.as_slice()));
    assert_eq!(r.envelope_from.as_deref(), Some("sender@partner.example"));
    // `Delivered-To:` and RCPT TO name the journal mailbox: not a recipient.
    assert_eq!(
        recipients(r),
        set(&[("visible@example.co.jp", To), ("hidden@example.co.jp", Bcc)])
    );
    assert_eq!(
        deliveries(r, DeliveryStatus::Received),
        addrs(&["hidden@example.co.jp"])
    );
    assert_eq!(r.systems, vec!["journal".to_string()]);
}

#[test]
fn gmail_original_to_copy_is_recognised_and_to_recipient_stays_to() {
    let raw = b"X-Gm-Original-To: Visible@Example.co.jp\r\nFrom: x@partner.example\r\n\
        To: visible@example.co.jp\r\nSubject: hi\r\nMessage-ID: <g1@partner.example>\r\n\r\nhello\r\n"
        .to_vec();
    let msg = decode(raw, &envelope(Some("x@partner.example"), &[JOURNAL]));
    assert_eq!(msg.kind, JournalKind::GmailCopy);
    assert_eq!(
        recipients(&msg.record),
        set(&[("visible@example.co.jp", To)])
    );
    assert_eq!(
        deliveries(&msg.record, DeliveryStatus::Received),
        addrs(&["visible@example.co.jp"])
    );
}

#[test]
fn always_bcc_copy_keeps_header_recipients_and_bcc_header() {
    let raw = fixture("always_bcc_with_bcc_header.eml");
    let msg = decode(
        raw.clone(),
        &envelope(Some("hanako@example.co.jp"), &[JOURNAL]),
    );
    assert_eq!(msg.kind, JournalKind::PlainCopy);
    let r = &msg.record;
    assert_eq!(r.message_id.as_deref(), Some("proposal-5@example.co.jp"));
    assert_eq!(r.raw.as_deref(), Some(raw.as_slice()));
    assert_eq!(
        recipients(r),
        set(&[
            ("customer@client.example", To),
            ("team@example.co.jp", Cc),
            ("manager@example.co.jp", Bcc),
        ])
    );
    // The envelope names only the journal mailbox: nothing to add.
    assert!(r.deliveries.is_empty());
}

#[test]
fn plain_copy_envelope_recipients_not_in_to_cc_become_bcc() {
    let raw = fixture("plain_copy_envelope_bcc.eml");
    let msg = decode(
        raw,
        &envelope(
            Some("cfo@example.co.jp"),
            &[
                "<Journal@Mailtrail.Example.co.jp>",
                "ALL-STAFF@example.co.jp",
                "<ceo-office@example.co.jp>",
                "auditor@example.co.jp",
            ],
        ),
    );
    assert_eq!(msg.kind, JournalKind::PlainCopy);
    let r = &msg.record;
    assert_eq!(
        recipients(r),
        set(&[
            ("all-staff@example.co.jp", To),
            ("ceo-office@example.co.jp", Bcc),
            ("auditor@example.co.jp", Bcc),
        ])
    );
    assert_eq!(
        deliveries(r, DeliveryStatus::Received),
        addrs(&[
            "all-staff@example.co.jp",
            "ceo-office@example.co.jp",
            "auditor@example.co.jp"
        ])
    );
    assert_eq!(r.envelope_from.as_deref(), Some("cfo@example.co.jp"));
}

#[test]
fn first_seen_is_the_earlier_of_received_headers_and_receipt() {
    // The copy's Received: header says 01:20 UTC; the journal got it later.
    let raw = fixture("x_original_to.eml");
    let mut env = envelope(None, &[JOURNAL]);
    env.received_at = Utc.with_ymd_and_hms(2024, 4, 2, 2, 0, 0).unwrap();
    let r = decode(raw, &env).record;
    assert_eq!(
        r.first_seen,
        Some(Utc.with_ymd_and_hms(2024, 4, 2, 1, 20, 0).unwrap())
    );
    // A message with no time of its own: receipt time.
    let raw = fixture("plain_copy_envelope_bcc.eml");
    let r = decode(raw, &envelope(None, &[JOURNAL])).record;
    assert!(r.first_seen.unwrap() <= received_at());
}

#[test]
fn not_a_message_is_an_error_like_any_message() {
    let env = envelope(None, &[JOURNAL]);
    let opts = DecodeOptions::default();
    assert_eq!(
        decode_journal(b" \r\n".to_vec(), &env, &[], &opts),
        Err(MimeError::Empty)
    );
    let small = DecodeOptions {
        max_message_bytes: 10,
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode_journal(fixture("original.eml"), &env, &[], &small),
        Err(MimeError::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------
// Corpus conformance (skipped when the corpus is absent)
// ---------------------------------------------------------------------------

/// A parsed recipient line: field, address, redirections.
type Line<'a> = (ReportField, &'a str, Vec<(RedirectionKind, &'a str)>);

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MAILTRAIL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
        .join("journal_reports");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("corpus folder {} absent: skipped", dir.display());
        None
    }
}

#[test]
fn corpus_msdocs_report_lines_parse_into_their_kinds() {
    let Some(dir) = corpus_dir() else {
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("msdocs_exchange2007_journal_report_body_examples.txt"))
            .unwrap();
    let lines: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let body = parse_report_body(&lines);
    let got: Vec<Line> = body
        .recipients
        .iter()
        .map(|r| {
            (
                r.field,
                r.address.as_str(),
                r.redirections
                    .iter()
                    .map(|x| (x.kind, x.source.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ReportField::To, "user@contoso.com", vec![]),
            (ReportField::Cc, "user@contoso.com", vec![]),
            (ReportField::Bcc, "user@contoso.com", vec![]),
            (
                ReportField::To,
                "dl-member@contoso.com",
                vec![(RedirectionKind::Expanded, "dl@contoso.com")]
            ),
            (
                ReportField::Cc,
                "fwd@contoso.com",
                vec![(RedirectionKind::Forwarded, "user@contoso.com")]
            ),
        ]
    );
    // A `Recipient:` line (addressing unknown) in the same grammar.
    let recipient = parse_report_body("Recipient: dl-member@contoso.com, Expanded: dl@contoso.com");
    assert_eq!(recipient.recipients[0].field, ReportField::Recipient);
    assert_eq!(
        recipient.recipients[0].redirections[0].kind,
        RedirectionKind::Expanded
    );

    // The same lines as a report-only journal message.
    let raw = format!(
        "From: agent@contoso.com\r\nX-MS-Journal-Report:\r\nContent-Type: text/plain\r\n\r\n\
         Sender: sender@contoso.com\r\nSubject: corpus\r\nMessage-ID: <corpus@contoso.com>\r\n{lines}"
    );
    let r = decode(raw.into_bytes(), &exchange_envelope()).record;
    assert_eq!(
        recipients(&r),
        set(&[
            ("user@contoso.com", To),
            ("user@contoso.com", Cc),
            ("user@contoso.com", Bcc),
            ("dl-member@contoso.com", To),
            ("dl@contoso.com", To),
            ("fwd@contoso.com", Cc),
        ])
    );
    assert_eq!(
        deliveries(&r, DeliveryStatus::Expanded),
        BTreeSet::from([(
            "dl-member@contoso.com".to_string(),
            Some("dl@contoso.com".to_string())
        )])
    );
    assert_eq!(
        deliveries(&r, DeliveryStatus::Forwarded),
        BTreeSet::from([(
            "fwd@contoso.com".to_string(),
            Some("user@contoso.com".to_string())
        )])
    );
}

#[test]
fn corpus_piler_x_original_to_yields_its_envelope_recipient() {
    let Some(dir) = corpus_dir() else {
        return;
    };
    let raw = std::fs::read(dir.join("piler_2_x-original-to_x-envelope-to.eml")).unwrap();
    let msg = decode(raw, &envelope(Some("hwtwi@mcqw.com"), &[JOURNAL]));
    assert_eq!(msg.kind, JournalKind::PostfixCopy);
    let r = &msg.record;
    assert_eq!(
        r.message_id.as_deref(),
        Some("20151101142653.111156815AF6D@acts.hu")
    );
    // The envelope recipient is the To recipient: it stays To, with a journal delivery.
    assert_eq!(recipients(r), set(&[("sj@acts.hu", To)]));
    assert_eq!(
        deliveries(r, DeliveryStatus::Received),
        addrs(&["sj@acts.hu"])
    );
}

// ---------------------------------------------------------------------------
// Never panics
// ---------------------------------------------------------------------------

fn no_panic(raw: Vec<u8>, rcpt: Vec<String>) {
    let env = Envelope {
        mail_from: None,
        rcpt_to: rcpt,
        received_at: received_at(),
        client_ip: None,
        client_helo: None,
    };
    let _ = decode_journal(raw, &env, &journal_addresses(), &DecodeOptions::default());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_journal_never_panics_on_arbitrary_bytes(
        raw in proptest::collection::vec(any::<u8>(), 0..2048),
        rcpt in proptest::collection::vec(".{0,40}", 0..4),
    ) {
        no_panic(raw, rcpt);
    }

    #[test]
    fn decode_journal_never_panics_on_arbitrary_reports(
        lines in proptest::collection::vec(
            "(Sender|Subject|Message-ID|On-Behalf-Of|To|Cc|Bcc|Recipient|Expanded|X)?:? ?[ -~\u{80}-\u{3000}]{0,40}(, (Expanded|Forwarded): .{0,20})?",
            0..20),
        original in proptest::collection::vec(any::<u8>(), 0..512),
        encoding in "(7bit|base64|quoted-printable|x)",
    ) {
        let mut raw = format!(
            "X-MS-Journal-Report:\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\n{}\r\n--b\r\nContent-Type: message/rfc822\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n",
            lines.join("\r\n")
        )
        .into_bytes();
        raw.extend_from_slice(&original);
        raw.extend_from_slice(b"\r\n--b--\r\n");
        no_panic(raw, vec![]);
    }

    #[test]
    fn decode_journal_never_panics_on_arbitrary_copy_headers(
        headers in proptest::collection::vec(
            "(X-Original-To|X-Gm-Original-To|Delivered-To|X-Envelope-To|To|Cc|Bcc|From): .{0,40}",
            0..8),
        rcpt in proptest::collection::vec(".{0,40}", 0..4),
    ) {
        let raw = format!("{}\r\n\r\nbody\r\n", headers.join("\r\n")).into_bytes();
        no_panic(raw, rcpt);
    }
}
