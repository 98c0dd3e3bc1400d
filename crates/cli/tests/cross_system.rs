//! One set of emails seen by four systems at once — an on-premises Postfix
//! relay, Microsoft 365 envelope journal reports, a Microsoft 365 message
//! trace export and Gmail's BigQuery log rows — is one set of messages in
//! mailtrail: `search --count` counts each email once, each message names
//! every system that saw it with the recipients, direction, client IP and
//! authentication results those systems told, and `mailtrail trace` lists
//! all their events in time order with the hops in the order mail took them.
//!
//! The company (`example.co.jp`) has both tenants: some employees have
//! Microsoft 365 mailboxes, others Gmail, and every message between the
//! tenants or to and from the Internet passes the relay `relay.example.co.jp`
//! (Microsoft 365's outbound connector and Gmail's outbound gateway point at
//! it; it is the MX and splits inbound mail between the tenants). Microsoft
//! 365 journals every message it handles to mailtrail's SMTP receiver.
//!
//! | email | path | systems |
//! |---|---|---|
//! | 見積書 (quote) | M365 taro → relay → tokyo-shoji (To, Cc); Bcc to an M365 colleague, named as Bcc only by the journal report | journal, m365, postfix@relay |
//! | 社外秘 (secret) | M365 sato.mika → relay → osaka-trading | journal, m365, postfix@relay |
//! | 議事録 (minutes) | Gmail kato.ken → relay → global-partner, and Cc taro back into M365 | gmail, postfix@relay, m365, journal |
//! | 研修 (training) | M365 sato.mika → relay → Gmail kato.ken (internal, across tenants) | journal, m365, postfix@relay, gmail |
//! | 納期 (delivery date) | tokyo-shoji → relay (MX) → taro in M365 and kato.ken (Cc) in Gmail | postfix@relay, m365, journal, gmail |
//!
//! Why it is shaped this way:
//!
//! - **Every input is what the administrator really has**, written the way
//!   each system writes it: journal reports arrive over SMTP at
//!   `mailtrail serve` (the only way Microsoft 365 delivers them), with the
//!   original attached as `message/rfc822` and Exchange Online's own header
//!   chain; the Postfix log is Ubuntu rsyslog's RFC 3339 format (in +09:00);
//!   the message trace is the historical search *extended* report (one row
//!   per event, UTF-16LE as downloaded — the only Microsoft 365 export with
//!   separate receive and send times, so that "M365 received, then sent to
//!   the relay" is visible); the Gmail rows are BigQuery named-field NDJSON.
//!   The files are imported without `--format`: detection is part of what is
//!   tested, and each file is imported on its own so that its effect (the
//!   system it adds to every message it describes) proves it was read as
//!   the intended format.
//! - **The Message-ID is the only join.** Each email has one Message-ID in
//!   every source; the journal copies are stored first, so every later
//!   import must merge into existing messages and create none
//!   (`0 new message(s)`, the count stays 5).
//! - **The hop order proves the clocks.** The sources write time four ways
//!   (Microsoft 365 in UTC, Postfix in +09:00, Gmail in epoch microseconds,
//!   the originals' Received headers in UTC, +09:00 and -08:00) and the
//!   events are a few hundred milliseconds apart in the order the mail
//!   moved: cloud receive → cloud send → Postfix receive → Postfix deliver
//!   (→ the other tenant receives and delivers). A source read in the wrong
//!   zone moves its events by hours: each trail must span seconds, be in
//!   non-decreasing time as printed, and keep the hops in that order.
//! - **Facts only one source knows survive the merge**: the Bcc (the
//!   journal report's `Bcc:` line — checked right after the journal phase,
//!   before the trace can offer its envelope recipients), To/Cc (the journalled original; logs only have envelope
//!   recipients), SPF/DKIM/DMARC (Gmail only).
//! - **The client IP is the first hop's.** Every system knows only the hop
//!   before it (the relay sees Microsoft's or Google's outbound servers,
//!   the clouds see the relay, the originals' Received chains begin inside
//!   Exchange Online with link-local MAPI addresses), so the sources
//!   disagree by nature. The message's client IP (DESIGN: "first-hop client
//!   IP") must be the one the system that received the email first saw:
//!   Microsoft 365's `original_client_ip` or Gmail's `client_ip` (the
//!   office, 203.0.113.50) for employees' mail, the relay's `client=` (the
//!   partner's MX, which Gmail's inbound-gateway row agrees with) for
//!   inbound mail — not whichever source happened to be imported first.
//! - **Mismatches are collected, not stopped at**: the test checks every
//!   message and reports every disagreement at once, so one run says all
//!   that is wrong.
//! - Importing everything again changes nothing: no new message, no new
//!   delivery, and `search --format json` prints the same bytes.

use std::fmt::Debug;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

const ORG_DOMAIN: &str = "example.co.jp";
const JOURNAL_ADDRESS: &str = "journal@example.co.jp";
const TIMEZONE: &str = "Asia/Tokyo";
/// The envelope sender of Exchange Online's journal reports.
const JOURNAL_AGENT: &str = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.co.jp";

/// What the office's NAT address (employees' PCs) looks like to both clouds.
const OFFICE_IP: &str = "203.0.113.50";
/// The partner's MX, the first hop of the inbound email.
const PARTNER_MX_IP: &str = "198.51.100.25";

// ---------------------------------------------------------------------------
// The emails and what mailtrail must say about them
// ---------------------------------------------------------------------------

const QUOTE_ID: &str =
    "TYCPR01MB8830B1C2D3E4F5A6B7C8D9E0F1A2B3@TYCPR01MB8830.jpnprd01.prod.outlook.com";
const SECRET_ID: &str =
    "OS3PR01MB6421F9E8D7C6B5A4B3C2D1E0F9A8B7@OS3PR01MB6421.jpnprd01.prod.outlook.com";
const MINUTES_ID: &str = "CAKq3vN8s+Yt2mW5pQ9xR1zL4aB7cD0eF2gH6jK8mN1pQ3rS5tU@mail.gmail.com";
const TRAINING_ID: &str =
    "OS3PR01MB6421A1B2C3D4E5F6A7B8C9D0E1F2A3@OS3PR01MB6421.jpnprd01.prod.outlook.com";
const DEADLINE_ID: &str = "20261124080533.4F2A1B7C@mx.tokyo-shoji.example";

const QUOTE_SUBJECT: &str = "見積書の送付（案件No.118）";
const SECRET_SUBJECT: &str = "【社外秘】価格改定のお知らせ";
const MINUTES_SUBJECT: &str = "Meeting minutes / 議事録 11/24";
const TRAINING_SUBJECT: &str = "社内研修の日程調整";
const DEADLINE_SUBJECT: &str = "納期のご連絡";

/// One event of a message's trail, as `mailtrail trace --format json` names it.
#[derive(Debug, Clone, Copy)]
struct Hop {
    system: &'static str,
    event: &'static str,
    /// A substring of the event's next hop (`relay`), when it matters.
    toward: Option<&'static str>,
    /// The event's recipient, when it matters.
    recipient: Option<&'static str>,
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.system, self.event)?;
        if let Some(r) = self.recipient {
            write!(f, " {r}")?;
        }
        if let Some(t) = self.toward {
            write!(f, " → {t}")?;
        }
        Ok(())
    }
}

const fn hop(system: &'static str, event: &'static str) -> Hop {
    Hop {
        system,
        event,
        toward: None,
        recipient: None,
    }
}

const fn sent(system: &'static str, toward: &'static str) -> Hop {
    Hop {
        system,
        event: "delivered",
        toward: Some(toward),
        recipient: None,
    }
}

const fn delivered_to(system: &'static str, recipient: &'static str) -> Hop {
    Hop {
        system,
        event: "delivered",
        toward: None,
        recipient: Some(recipient),
    }
}

const POSTFIX: &str = "postfix@relay";
const RELAY: &str = "relay.example.co.jp";
const M365_MX: &str = "example-co-jp.mail.protection.outlook.com";
const GMAIL_MX: &str = "aspmx.l.google.com";

/// What mailtrail must report about one email.
struct Expected {
    message_id: &'static str,
    /// A word of the subject that no other email contains anywhere.
    word: &'static str,
    subject: &'static str,
    from: &'static str,
    to: &'static [&'static str],
    cc: &'static [&'static str],
    bcc: &'static [&'static str],
    direction: &'static str,
    systems: &'static [&'static str],
    client_ip: &'static str,
    /// SPF, DKIM, DMARC as Gmail logged them.
    auth: Option<[&'static str; 3]>,
    /// Chains of events that must appear in this order in the trail.
    hops: &'static [&'static [Hop]],
}

const EMAILS: [Expected; 5] = [
    Expected {
        message_id: QUOTE_ID,
        word: "見積書",
        subject: QUOTE_SUBJECT,
        from: "taro.yamada@example.co.jp",
        to: &["hanako.sato@tokyo-shoji.example"],
        cc: &["jiro.suzuki@tokyo-shoji.example"],
        bcc: &["kimura.buchou@example.co.jp"],
        direction: "outbound",
        systems: &["journal", "m365", POSTFIX],
        client_ip: OFFICE_IP,
        auth: None,
        hops: &[&[
            hop("m365", "received"),
            sent("m365", RELAY),
            hop(POSTFIX, "received"),
            sent(POSTFIX, "mx.tokyo-shoji.example"),
        ]],
    },
    Expected {
        message_id: SECRET_ID,
        word: "社外秘",
        subject: SECRET_SUBJECT,
        from: "sato.mika@example.co.jp",
        to: &["k.ito@osaka-trading.example"],
        cc: &[],
        bcc: &[],
        direction: "outbound",
        systems: &["journal", "m365", POSTFIX],
        client_ip: OFFICE_IP,
        auth: None,
        hops: &[&[
            hop("m365", "received"),
            sent("m365", RELAY),
            hop(POSTFIX, "received"),
            sent(POSTFIX, "mx1.osaka-trading.example"),
        ]],
    },
    Expected {
        message_id: MINUTES_ID,
        word: "議事録",
        subject: MINUTES_SUBJECT,
        from: "kato.ken@example.co.jp",
        to: &["lee@global-partner.example"],
        cc: &["taro.yamada@example.co.jp"],
        bcc: &[],
        direction: "outbound",
        systems: &["journal", "m365", POSTFIX, "gmail"],
        client_ip: OFFICE_IP,
        auth: None,
        hops: &[
            &[
                hop("gmail", "received"),
                sent("gmail", RELAY),
                hop(POSTFIX, "received"),
                sent(POSTFIX, "mx.global-partner.example"),
            ],
            &[
                hop(POSTFIX, "received"),
                sent(POSTFIX, M365_MX),
                hop("m365", "received"),
                delivered_to("m365", "taro.yamada@example.co.jp"),
            ],
        ],
    },
    Expected {
        message_id: TRAINING_ID,
        word: "研修",
        subject: TRAINING_SUBJECT,
        from: "sato.mika@example.co.jp",
        to: &["kato.ken@example.co.jp"],
        cc: &[],
        bcc: &[],
        direction: "internal",
        systems: &["journal", "m365", POSTFIX, "gmail"],
        client_ip: OFFICE_IP,
        auth: Some(["pass", "pass", "pass"]),
        hops: &[&[
            hop("m365", "received"),
            sent("m365", RELAY),
            hop(POSTFIX, "received"),
            sent(POSTFIX, GMAIL_MX),
            hop("gmail", "received"),
            delivered_to("gmail", "kato.ken@example.co.jp"),
        ]],
    },
    Expected {
        message_id: DEADLINE_ID,
        word: "納期",
        subject: DEADLINE_SUBJECT,
        from: "hanako.sato@tokyo-shoji.example",
        to: &["taro.yamada@example.co.jp"],
        cc: &["kato.ken@example.co.jp"],
        bcc: &[],
        direction: "inbound",
        systems: &["journal", "m365", POSTFIX, "gmail"],
        client_ip: PARTNER_MX_IP,
        auth: Some(["pass", "pass", "pass"]),
        hops: &[
            &[
                hop(POSTFIX, "received"),
                sent(POSTFIX, M365_MX),
                hop("m365", "received"),
                delivered_to("m365", "taro.yamada@example.co.jp"),
            ],
            &[
                hop(POSTFIX, "received"),
                sent(POSTFIX, GMAIL_MX),
                hop("gmail", "received"),
                delivered_to("gmail", "kato.ken@example.co.jp"),
            ],
        ],
    },
];

// ---------------------------------------------------------------------------
// Source 1: Exchange Online envelope journal reports (over SMTP)
// ---------------------------------------------------------------------------

/// An RFC 2047 encoded word (UTF-8, base64), as Outlook and Gmail write them.
fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", B64.encode(text))
}

/// Base64 in 76-character lines, CRLF-terminated.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = B64.encode(bytes);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// `text` with every line ending made CRLF.
fn crlf(text: &str) -> String {
    text.lines().map(|l| format!("{l}\r\n")).collect()
}

/// The Received line Exchange Online puts on a message submitted from
/// Outlook (a MAPI hop between link-local addresses of one mailbox server).
fn mapi_received(server: &str, at: &str) -> String {
    format!(
        "Received: from {server}.jpnprd01.prod.outlook.com ([fe80::6d1c:2b8a:49f3:a1e2]) by\n {server}.jpnprd01.prod.outlook.com ([fe80::6d1c:2b8a:49f3:a1e2%5]) with mapi id\n 15.20.8722.031; {at}\n"
    )
}

/// The quote as taro's Outlook wrote it, with a PDF attached.
fn quote_original() -> String {
    let pdf = b"%PDF-1.4\n% quote 118 for tokyo-shoji\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let body = "佐藤様\n\nいつもお世話になっております。\nご依頼の件、添付のとおりお送りいたします。\n\n山田\n";
    crlf(&format!(
        "{received}From: {taro} <taro.yamada@example.co.jp>\n\
To: {hanako} <hanako.sato@tokyo-shoji.example>\n\
CC: {jiro} <jiro.suzuki@tokyo-shoji.example>\n\
Subject: {subject}\n\
Thread-Topic: {subject}\n\
Date: Tue, 24 Nov 2026 01:02:11 +0000\n\
Message-ID: <{QUOTE_ID}>\n\
Accept-Language: ja-JP, en-US\n\
Content-Language: ja-JP\n\
X-MS-Has-Attach: yes\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed;\n boundary=\"_004_TYCPR01MB8830B1C2D3E4_\"\n\
\n\
--_004_TYCPR01MB8830B1C2D3E4_\n\
Content-Type: text/plain; charset=\"utf-8\"\n\
Content-Transfer-Encoding: base64\n\
\n\
{body}\
--_004_TYCPR01MB8830B1C2D3E4_\n\
Content-Type: application/pdf; name=\"{file}\"\n\
Content-Description: {file}\n\
Content-Disposition: attachment; filename=\"{file}\"; size={size}\n\
Content-Transfer-Encoding: base64\n\
\n\
{pdf}\
--_004_TYCPR01MB8830B1C2D3E4_--\n",
        received = mapi_received("TYCPR01MB8830", "Tue, 24 Nov 2026 01:02:12 +0000"),
        taro = encoded_word("山田 太郎"),
        hanako = encoded_word("佐藤 花子"),
        jiro = encoded_word("鈴木 次郎"),
        subject = encoded_word(QUOTE_SUBJECT),
        body = base64_lines(body.replace('\n', "\r\n").as_bytes()),
        file = encoded_word("見積書_118.pdf"),
        size = pdf.len(),
        pdf = base64_lines(pdf),
    ))
}

/// A plain-text Outlook message from sato.mika's mailbox.
fn outlook_plain(to: &str, subject: &str, date: &str, message_id: &str, body: &str) -> String {
    crlf(&format!(
        "{received}From: {mika} <sato.mika@example.co.jp>\n\
To: {to}\n\
Subject: {subject}\n\
Thread-Topic: {subject}\n\
Date: {date}\n\
Message-ID: <{message_id}>\n\
Accept-Language: ja-JP, en-US\n\
Content-Language: ja-JP\n\
X-MS-Has-Attach:\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=\"utf-8\"\n\
Content-Transfer-Encoding: base64\n\
\n\
{body}",
        received = mapi_received("OS3PR01MB6421", date),
        mika = encoded_word("佐藤 美香"),
        subject = encoded_word(subject),
        body = base64_lines(body.replace('\n', "\r\n").as_bytes()),
    ))
}

fn secret_original() -> String {
    outlook_plain(
        &format!("{} <k.ito@osaka-trading.example>", encoded_word("伊藤 様")),
        SECRET_SUBJECT,
        "Tue, 24 Nov 2026 02:30:40 +0000",
        SECRET_ID,
        "伊藤様\n\n来期の価格表をお送りします。取り扱いにご注意ください。\n\n佐藤\n",
    )
}

fn training_original() -> String {
    outlook_plain(
        &format!("{} <kato.ken@example.co.jp>", encoded_word("加藤 健")),
        TRAINING_SUBJECT,
        "Tue, 24 Nov 2026 06:40:20 +0000",
        TRAINING_ID,
        "加藤さん\n\n12月の日程候補を共有します。\n\n佐藤\n",
    )
}

/// The minutes as Microsoft 365 received them from the relay (Gmail → relay → M365).
fn minutes_original() -> String {
    crlf(&format!(
        "Received: from relay.example.co.jp (203.0.113.10) by\n TY2PR01MB3456.mail.protection.outlook.com (10.167.244.71) with Microsoft SMTP\n Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8722.018 via\n Frontend Transport; Tue, 24 Nov 2026 04:15:10 +0000\n\
Received: from mail-sor-f69.google.com (mail-sor-f69.google.com [192.0.2.69])\n\tby relay.example.co.jp (Postfix) with ESMTPS id A3C4D5E6F7\n\tfor <taro.yamada@example.co.jp>; Tue, 24 Nov 2026 13:15:09 +0900 (JST)\n\
Received: by mail-sor-f69.google.com with SMTP id 2adb3069b0e04-5a1b2c3d4e5so1234567e87.2\n        for <taro.yamada@example.co.jp>; Mon, 23 Nov 2026 20:15:08 -0800 (PST)\n\
MIME-Version: 1.0\n\
From: {kato} <kato.ken@example.co.jp>\n\
Date: Tue, 24 Nov 2026 13:15:07 +0900\n\
Message-ID: <{MINUTES_ID}>\n\
Subject: {subject}\n\
To: lee@global-partner.example\n\
Cc: {taro} <taro.yamada@example.co.jp>\n\
Content-Type: text/plain; charset=\"UTF-8\"\n\
Content-Transfer-Encoding: base64\n\
\n\
{body}",
        kato = encoded_word("加藤 健"),
        subject = encoded_word(MINUTES_SUBJECT),
        taro = encoded_word("山田 太郎"),
        body = base64_lines(
            "Hi Lee,\r\n\r\nPlease find today's notes below.\r\n本日の打ち合わせメモです。\r\n\r\nKen\r\n"
                .as_bytes()
        ),
    ))
}

/// The partner's email as Microsoft 365 received it from the relay (its MX).
fn deadline_original() -> String {
    crlf(&format!(
        "Received: from relay.example.co.jp (203.0.113.10) by\n TY2PR01MB3456.mail.protection.outlook.com (10.167.244.71) with Microsoft SMTP\n Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8722.018 via\n Frontend Transport; Tue, 24 Nov 2026 08:05:35 +0000\n\
Received: from mx.tokyo-shoji.example (mx.tokyo-shoji.example [198.51.100.25])\n\tby relay.example.co.jp (Postfix) with ESMTPS id C5E6F7A8B9;\n\tTue, 24 Nov 2026 17:05:34 +0900 (JST)\n\
From: {hanako} <hanako.sato@tokyo-shoji.example>\n\
To: {taro} <taro.yamada@example.co.jp>\n\
Cc: {kato} <kato.ken@example.co.jp>\n\
Subject: {subject}\n\
Date: Tue, 24 Nov 2026 17:05:33 +0900\n\
Message-ID: <{DEADLINE_ID}>\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=\"UTF-8\"\n\
Content-Transfer-Encoding: base64\n\
\n\
{body}",
        hanako = encoded_word("佐藤 花子"),
        taro = encoded_word("山田 太郎"),
        kato = encoded_word("加藤 健"),
        subject = encoded_word(DEADLINE_SUBJECT),
        body = base64_lines(
            "山田様\r\n\r\nご注文の品は12月3日の出荷となります。\r\n\r\n東京商事 佐藤\r\n".as_bytes()
        ),
    ))
}

/// An Exchange Online envelope journal report around `original`; `lines` are
/// the report's `Sender:` … `Bcc:` lines.
fn journal_report(
    report_id: &str,
    sent_at: &str,
    subject: &str,
    lines: &str,
    original: &str,
) -> String {
    let boundary = format!("_jr_{}_", report_id.replace(['@', '.'], ""));
    format!(
        "{head}\r\n--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{text}--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n{original}\r\n--{boundary}--\r\n",
        head = crlf(&format!(
            "From: Microsoft Outlook <{JOURNAL_AGENT}>\n\
To: {JOURNAL_ADDRESS}\n\
Subject: {subject}\n\
Date: {sent_at}\n\
Message-ID: <{report_id}>\n\
Content-Type: multipart/mixed;\n boundary=\"{boundary}\"\n\
MIME-Version: 1.0\n\
X-MS-Journal-Report:\n\
X-MS-Exchange-Organization-SCL: -1",
            subject = encoded_word(subject),
        )),
        text = base64_lines(crlf(lines).as_bytes()),
    )
}

/// The five journal reports, in the order Microsoft 365 sent them.
fn journal_reports() -> Vec<String> {
    vec![
        journal_report(
            "jr-0001@TYCPR01MB8830.jpnprd01.prod.outlook.com",
            "Tue, 24 Nov 2026 01:02:13 +0000",
            QUOTE_SUBJECT,
            &format!(
                "Sender: taro.yamada@example.co.jp\nSubject: {QUOTE_SUBJECT}\nMessage-Id: <{QUOTE_ID}>\nTo: hanako.sato@tokyo-shoji.example\nCc: jiro.suzuki@tokyo-shoji.example\nBcc: kimura.buchou@example.co.jp"
            ),
            &quote_original(),
        ),
        journal_report(
            "jr-0002@OS3PR01MB6421.jpnprd01.prod.outlook.com",
            "Tue, 24 Nov 2026 02:30:41 +0000",
            SECRET_SUBJECT,
            &format!(
                "Sender: sato.mika@example.co.jp\nSubject: {SECRET_SUBJECT}\nMessage-Id: <{SECRET_ID}>\nTo: k.ito@osaka-trading.example"
            ),
            &secret_original(),
        ),
        journal_report(
            "jr-0003@TY2PR01MB3456.jpnprd01.prod.outlook.com",
            "Tue, 24 Nov 2026 04:15:10 +0000",
            MINUTES_SUBJECT,
            &format!(
                "Sender: kato.ken@example.co.jp\nSubject: {MINUTES_SUBJECT}\nMessage-Id: <{MINUTES_ID}>\nCc: taro.yamada@example.co.jp"
            ),
            &minutes_original(),
        ),
        journal_report(
            "jr-0004@OS3PR01MB6421.jpnprd01.prod.outlook.com",
            "Tue, 24 Nov 2026 06:40:21 +0000",
            TRAINING_SUBJECT,
            &format!(
                "Sender: sato.mika@example.co.jp\nSubject: {TRAINING_SUBJECT}\nMessage-Id: <{TRAINING_ID}>\nTo: kato.ken@example.co.jp"
            ),
            &training_original(),
        ),
        journal_report(
            "jr-0005@TY2PR01MB3456.jpnprd01.prod.outlook.com",
            "Tue, 24 Nov 2026 08:05:36 +0000",
            DEADLINE_SUBJECT,
            &format!(
                "Sender: hanako.sato@tokyo-shoji.example\nSubject: {DEADLINE_SUBJECT}\nMessage-Id: <{DEADLINE_ID}>\nTo: taro.yamada@example.co.jp"
            ),
            &deadline_original(),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Source 2: the relay's Postfix log (Ubuntu rsyslog, RFC 3339 in +09:00)
// ---------------------------------------------------------------------------

fn postfix_log() -> String {
    format!(
        "\
2026-11-24T10:02:13.702391+09:00 relay postfix/smtpd[41822]: connect from mail-ty2jpn01on2101.outbound.protection.outlook.com[192.0.2.101]
2026-11-24T10:02:13.705113+09:00 relay postfix/smtpd[41822]: 8A1F2C3D4E: client=mail-ty2jpn01on2101.outbound.protection.outlook.com[192.0.2.101]
2026-11-24T10:02:13.712874+09:00 relay postfix/cleanup[41825]: 8A1F2C3D4E: message-id=<{QUOTE_ID}>
2026-11-24T10:02:13.731002+09:00 relay postfix/qmgr[1187]: 8A1F2C3D4E: from=<taro.yamada@example.co.jp>, size=4891, nrcpt=2 (queue active)
2026-11-24T10:02:13.740512+09:00 relay postfix/smtpd[41822]: disconnect from mail-ty2jpn01on2101.outbound.protection.outlook.com[192.0.2.101] ehlo=2 starttls=1 mail=1 rcpt=2 data=1 quit=1 commands=8
2026-11-24T10:02:15.118034+09:00 relay postfix/smtp[41826]: 8A1F2C3D4E: to=<hanako.sato@tokyo-shoji.example>, relay=mx.tokyo-shoji.example[198.51.100.25]:25, delay=1.4, delays=0.03/0.01/0.82/0.54, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4C1D9E2F3A)
2026-11-24T10:02:15.118511+09:00 relay postfix/smtp[41826]: 8A1F2C3D4E: to=<jiro.suzuki@tokyo-shoji.example>, relay=mx.tokyo-shoji.example[198.51.100.25]:25, delay=1.4, delays=0.03/0.01/0.82/0.54, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4C1D9E2F3A)
2026-11-24T10:02:15.119230+09:00 relay postfix/qmgr[1187]: 8A1F2C3D4E: removed
2026-11-24T11:30:42.508770+09:00 relay postfix/smtpd[41901]: connect from mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102]
2026-11-24T11:30:42.512046+09:00 relay postfix/smtpd[41901]: 9B2E3F4A5C: client=mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102]
2026-11-24T11:30:42.520311+09:00 relay postfix/cleanup[41825]: 9B2E3F4A5C: message-id=<{SECRET_ID}>
2026-11-24T11:30:42.538120+09:00 relay postfix/qmgr[1187]: 9B2E3F4A5C: from=<sato.mika@example.co.jp>, size=2210, nrcpt=1 (queue active)
2026-11-24T11:30:42.549931+09:00 relay postfix/smtpd[41901]: disconnect from mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7
2026-11-24T11:30:44.205377+09:00 relay postfix/smtp[41903]: 9B2E3F4A5C: to=<k.ito@osaka-trading.example>, relay=mx1.osaka-trading.example[198.51.100.30]:25, delay=1.7, delays=0.03/0.01/1.1/0.56, dsn=2.0.0, status=sent (250 2.0.0 OK 7D2C1B0A)
2026-11-24T11:30:44.206012+09:00 relay postfix/qmgr[1187]: 9B2E3F4A5C: removed
2026-11-24T13:15:09.110552+09:00 relay postfix/smtpd[42230]: connect from mail-sor-f69.google.com[192.0.2.69]
2026-11-24T13:15:09.120418+09:00 relay postfix/smtpd[42230]: A3C4D5E6F7: client=mail-sor-f69.google.com[192.0.2.69]
2026-11-24T13:15:09.131007+09:00 relay postfix/cleanup[42232]: A3C4D5E6F7: message-id=<{MINUTES_ID}>
2026-11-24T13:15:09.150296+09:00 relay postfix/qmgr[1187]: A3C4D5E6F7: from=<kato.ken@example.co.jp>, size=3307, nrcpt=2 (queue active)
2026-11-24T13:15:09.161447+09:00 relay postfix/smtpd[42230]: disconnect from mail-sor-f69.google.com[192.0.2.69] ehlo=2 starttls=1 mail=1 rcpt=2 data=1 quit=1 commands=8
2026-11-24T13:15:10.020734+09:00 relay postfix/smtp[42234]: A3C4D5E6F7: to=<taro.yamada@example.co.jp>, relay={M365_MX}[192.0.2.36]:25, delay=0.9, delays=0.03/0.01/0.42/0.44, dsn=2.6.0, status=sent (250 2.6.0 <{MINUTES_ID}> [InternalId=1855425871012, Hostname=TY2PR01MB3456.jpnprd01.prod.outlook.com] 9031 bytes in 0.120, 73.2 KB/sec Queued mail for delivery)
2026-11-24T13:15:10.610218+09:00 relay postfix/smtp[42235]: A3C4D5E6F7: to=<lee@global-partner.example>, relay=mx.global-partner.example[198.51.100.40]:25, delay=1.5, delays=0.03/0.02/0.9/0.55, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 5E4D3C2B1A)
2026-11-24T13:15:10.611002+09:00 relay postfix/qmgr[1187]: A3C4D5E6F7: removed
2026-11-24T15:40:22.344120+09:00 relay postfix/smtpd[42871]: connect from mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102]
2026-11-24T15:40:22.351388+09:00 relay postfix/smtpd[42871]: B4D5E6F7A8: client=mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102]
2026-11-24T15:40:22.360127+09:00 relay postfix/cleanup[42873]: B4D5E6F7A8: message-id=<{TRAINING_ID}>
2026-11-24T15:40:22.379816+09:00 relay postfix/qmgr[1187]: B4D5E6F7A8: from=<sato.mika@example.co.jp>, size=2488, nrcpt=1 (queue active)
2026-11-24T15:40:22.390542+09:00 relay postfix/smtpd[42871]: disconnect from mail-os0jpn01on2102.outbound.protection.outlook.com[192.0.2.102] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7
2026-11-24T15:40:23.210664+09:00 relay postfix/smtp[42874]: B4D5E6F7A8: to=<kato.ken@example.co.jp>, relay={GMAIL_MX}[192.0.2.27]:25, delay=0.85, delays=0.03/0.01/0.31/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK  1795499923 d9443c01a7336-2a1b3c4d5e6si1234567ad.201 - gsmtp)
2026-11-24T15:40:23.211390+09:00 relay postfix/qmgr[1187]: B4D5E6F7A8: removed
2026-11-24T17:05:34.402877+09:00 relay postfix/smtpd[43310]: connect from mx.tokyo-shoji.example[198.51.100.25]
2026-11-24T17:05:34.410215+09:00 relay postfix/smtpd[43310]: C5E6F7A8B9: client=mx.tokyo-shoji.example[198.51.100.25]
2026-11-24T17:05:34.521904+09:00 relay postfix/cleanup[43312]: C5E6F7A8B9: message-id=<{DEADLINE_ID}>
2026-11-24T17:05:34.550318+09:00 relay postfix/qmgr[1187]: C5E6F7A8B9: from=<hanako.sato@tokyo-shoji.example>, size=2934, nrcpt=2 (queue active)
2026-11-24T17:05:34.561020+09:00 relay postfix/smtpd[43310]: disconnect from mx.tokyo-shoji.example[198.51.100.25] ehlo=2 starttls=1 mail=1 rcpt=2 data=1 quit=1 commands=8
2026-11-24T17:05:35.300481+09:00 relay postfix/smtp[43314]: C5E6F7A8B9: to=<taro.yamada@example.co.jp>, relay={M365_MX}[192.0.2.36]:25, delay=0.89, delays=0.14/0.01/0.35/0.39, dsn=2.6.0, status=sent (250 2.6.0 <{DEADLINE_ID}> [InternalId=1855425871377, Hostname=TY2PR01MB3456.jpnprd01.prod.outlook.com] 8811 bytes in 0.101, 85.1 KB/sec Queued mail for delivery)
2026-11-24T17:05:35.650925+09:00 relay postfix/smtp[43315]: C5E6F7A8B9: to=<kato.ken@example.co.jp>, relay={GMAIL_MX}[192.0.2.27]:25, delay=1.2, delays=0.14/0.02/0.6/0.48, dsn=2.0.0, status=sent (250 2.0.0 OK  1795507535 98e67ed59e1d1-2f1a2b3c4d5si7654321a91.77 - gsmtp)
2026-11-24T17:05:35.661733+09:00 relay postfix/qmgr[1187]: C5E6F7A8B9: removed
"
    )
}

// ---------------------------------------------------------------------------
// Source 3: Microsoft 365 historical search, extended report (UTF-16LE CSV)
// ---------------------------------------------------------------------------

const M365_COLUMNS: [&str; 27] = [
    "date_time_utc",
    "client_ip",
    "client_hostname",
    "server_ip",
    "server_hostname",
    "source_context",
    "connector_id",
    "source",
    "event_id",
    "internal_message_id",
    "message_id",
    "network_message_id",
    "recipient_address",
    "recipient_status",
    "total_bytes",
    "recipient_count",
    "related_recipient_address",
    "reference",
    "message_subject",
    "sender_address",
    "return_path",
    "message_info",
    "directionality",
    "tenant_id",
    "original_client_ip",
    "original_server_ip",
    "custom_data",
];

const TENANT: &str = "0e1dddce-7b2a-4c1d-9f3e-5a6b7c8d9e0f";

/// The columns every event row of one message repeats.
fn m365_message(
    message_id: &str,
    network_message_id: &'static str,
    subject: &str,
    sender: &'static str,
    bytes: &'static str,
    directionality: &'static str,
) -> Vec<(&'static str, String)> {
    vec![
        ("message_id", format!("<{message_id}>")),
        ("network_message_id", network_message_id.to_string()),
        ("message_subject", subject.to_string()),
        ("sender_address", sender.to_string()),
        ("return_path", sender.to_string()),
        ("total_bytes", bytes.to_string()),
        ("tenant_id", TENANT.to_string()),
        ("directionality", directionality.to_string()),
    ]
}

/// One row: the message's columns plus this event's.
fn m365_row(message: &[(&'static str, String)], event: &[(&'static str, &str)]) -> String {
    let value = |name: &str| -> String {
        event
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain(message.iter().cloned())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    M365_COLUMNS
        .iter()
        .map(|c| {
            let v = value(c);
            if v.contains([',', '"', ';', ' ']) || !v.is_ascii() {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A Microsoft 365 mailbox submitting a message from the office.
fn m365_submit<'a>(
    at: &'a str,
    server: &'a str,
    recipients: &'a str,
    count: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("date_time_utc", at),
        ("client_ip", OFFICE_IP),
        ("client_hostname", server),
        ("server_hostname", server),
        ("source", "STOREDRIVER"),
        ("event_id", "RECEIVE"),
        ("recipient_address", recipients),
        ("recipient_count", count),
        ("original_client_ip", OFFICE_IP),
    ]
}

/// Microsoft 365 handing a message to the relay over the outbound connector.
fn m365_send_to_relay<'a>(
    at: &'a str,
    recipients: &'a str,
    status: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("date_time_utc", at),
        ("server_ip", "203.0.113.10"),
        ("server_hostname", RELAY),
        (
            "source_context",
            "TLS=SP_PROT_TLS1_2_CLIENT, cipher=CALG_AES_256 256 bits",
        ),
        ("connector_id", "Outbound to relay.example.co.jp"),
        ("source", "SMTP"),
        ("event_id", "SEND"),
        ("recipient_address", recipients),
        ("recipient_status", status),
    ]
}

/// Microsoft 365 receiving a message from the relay over the inbound connector.
fn m365_receive_from_relay<'a>(
    at: &'a str,
    server: &'a str,
    recipient: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("date_time_utc", at),
        ("client_ip", "203.0.113.10"),
        ("client_hostname", RELAY),
        ("server_hostname", server),
        ("source_context", "TLS=SP_PROT_TLS1_3_SERVER"),
        ("connector_id", "Inbound from relay.example.co.jp"),
        ("source", "SMTP"),
        ("event_id", "RECEIVE"),
        ("recipient_address", recipient),
        ("recipient_count", "1"),
    ]
}

/// Microsoft 365 putting a message into a mailbox.
fn m365_deliver<'a>(
    at: &'a str,
    server: &'a str,
    recipient: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("date_time_utc", at),
        ("server_hostname", server),
        ("source", "STOREDRIVER"),
        ("event_id", "DELIVER"),
        ("recipient_address", recipient),
        ("recipient_status", "250 2.0.0 OK"),
    ]
}

fn m365_extended_report() -> String {
    let quote = m365_message(
        QUOTE_ID,
        "3f1c2b4a-5d6e-4f70-8a9b-08de2b1c0a01",
        QUOTE_SUBJECT,
        "taro.yamada@example.co.jp",
        "48911",
        "Originating",
    );
    let secret = m365_message(
        SECRET_ID,
        "3f1c2b4a-5d6e-4f70-8a9b-08de2b1c0a02",
        SECRET_SUBJECT,
        "sato.mika@example.co.jp",
        "22100",
        "Originating",
    );
    let minutes = m365_message(
        MINUTES_ID,
        "3f1c2b4a-5d6e-4f70-8a9b-08de2b1c0a03",
        MINUTES_SUBJECT,
        "kato.ken@example.co.jp",
        "9031",
        "Incoming",
    );
    let training = m365_message(
        TRAINING_ID,
        "3f1c2b4a-5d6e-4f70-8a9b-08de2b1c0a04",
        TRAINING_SUBJECT,
        "sato.mika@example.co.jp",
        "24880",
        "Originating",
    );
    let deadline = m365_message(
        DEADLINE_ID,
        "3f1c2b4a-5d6e-4f70-8a9b-08de2b1c0a05",
        DEADLINE_SUBJECT,
        "hanako.sato@tokyo-shoji.example",
        "8811",
        "Incoming",
    );
    let rows = [
        m365_row(&quote, &m365_submit("2026-11-24T01:02:12.410Z", "TYCPR01MB8830", "hanako.sato@tokyo-shoji.example;jiro.suzuki@tokyo-shoji.example;kimura.buchou@example.co.jp", "3")),
        m365_row(&quote, &m365_deliver("2026-11-24T01:02:12.980Z", "TYCPR01MB8830", "kimura.buchou@example.co.jp")),
        m365_row(&quote, &m365_send_to_relay("2026-11-24T01:02:13.620Z", "hanako.sato@tokyo-shoji.example;jiro.suzuki@tokyo-shoji.example", "250 2.0.0 Ok: queued as 8A1F2C3D4E;250 2.0.0 Ok: queued as 8A1F2C3D4E")),
        m365_row(&secret, &m365_submit("2026-11-24T02:30:41.200Z", "OS3PR01MB6421", "k.ito@osaka-trading.example", "1")),
        m365_row(&secret, &m365_send_to_relay("2026-11-24T02:30:42.300Z", "k.ito@osaka-trading.example", "250 2.0.0 Ok: queued as 9B2E3F4A5C")),
        m365_row(&minutes, &m365_receive_from_relay("2026-11-24T04:15:10.150Z", "TY2PR01MB3456", "taro.yamada@example.co.jp")),
        m365_row(&minutes, &m365_deliver("2026-11-24T04:15:10.700Z", "TYCPR01MB8830", "taro.yamada@example.co.jp")),
        m365_row(&training, &m365_submit("2026-11-24T06:40:21.050Z", "OS3PR01MB6421", "kato.ken@example.co.jp", "1")),
        m365_row(&training, &m365_send_to_relay("2026-11-24T06:40:22.100Z", "kato.ken@example.co.jp", "250 2.0.0 Ok: queued as B4D5E6F7A8")),
        m365_row(&deadline, &m365_receive_from_relay("2026-11-24T08:05:35.500Z", "TY2PR01MB3456", "taro.yamada@example.co.jp")),
        m365_row(&deadline, &m365_deliver("2026-11-24T08:05:36.100Z", "TYCPR01MB8830", "taro.yamada@example.co.jp")),
    ];
    let mut csv = M365_COLUMNS.join(",");
    csv.push_str("\r\n");
    for row in rows {
        csv.push_str(&row);
        csv.push_str("\r\n");
    }
    csv
}

/// UTF-16LE with its byte-order mark, as the historical search report downloads.
fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Source 4: Gmail logs in BigQuery (named-field NDJSON export)
// ---------------------------------------------------------------------------

/// Microseconds since the epoch, as BigQuery exports `timestamp_usec` (a string).
fn usec(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_micros()
        .to_string()
}

struct GmailMessage {
    message_id: &'static str,
    subject: &'static str,
    size: &'static str,
    envelope_from: &'static str,
    from_header: &'static str,
    from_name: &'static str,
    service: &'static str,
}

/// One row of the Gmail logs table.
fn gmail_row(
    m: &GmailMessage,
    at: &str,
    event_type: &str,
    action_type: &str,
    destinations: Value,
    connection: Value,
) -> String {
    let flattened: Vec<String> = destinations
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}::{}",
                d["service"].as_str().unwrap(),
                d["address"].as_str().unwrap()
            )
        })
        .collect();
    let t = usec(at);
    json!({
        "event_id": null,
        "event_name": "delivery",
        "ip_address": null,
        "record_type": "gmail",
        "time_usec": t,
        "unique_identifier": null,
        "event_info": {
            "timestamp_usec": t,
            "elapsed_time_usec": "1830",
            "success": "true",
            "mail_event_type": event_type,
        },
        "message_info": {
            "action_type": action_type,
            "rfc2822_message_id": format!("<{}>", m.message_id),
            "subject": m.subject,
            "payload_size": m.size,
            "source": {
                "address": m.envelope_from,
                "service": m.service,
                "selector": null,
                "from_header_address": m.from_header,
                "from_header_displayname": m.from_name,
            },
            "destination": destinations,
            "flattened_destinations": flattened.join(","),
            "description": null,
            "is_spam": "false",
            "num_message_attachments": "0",
            "attachment": [],
            "connection_info": connection,
            "structured_policy_log_info": null,
        },
    })
    .to_string()
}

fn destination(address: &str, service: &str, response: Option<&str>) -> Value {
    json!({"address": address, "service": service, "selector": "", "rcpt_response": response})
}

/// Gmail's `connection_info`, with SPF/DKIM/DMARC as Gmail logs them.
fn connection(
    client_ip: Option<&str>,
    smtp_in: Option<&str>,
    smtp_out: Option<(&str, &str)>,
    auth: Option<&str>,
) -> Value {
    json!({
        "client_ip": client_ip,
        "smtp_in_connect_ip": smtp_in,
        "smtp_out_connect_ip": smtp_out.map(|o| o.1),
        "smtp_reply_code": smtp_out.map(|_| "250"),
        "smtp_out_remote_host": smtp_out.map(|o| o.0),
        "spf_pass": auth,
        "dkim_pass": auth,
        "dmarc_pass": auth,
    })
}

fn gmail_rows() -> String {
    let minutes = GmailMessage {
        message_id: MINUTES_ID,
        subject: MINUTES_SUBJECT,
        size: "3307",
        envelope_from: "kato.ken@example.co.jp",
        from_header: "kato.ken@example.co.jp",
        from_name: "加藤 健",
        service: "gmail-ui",
    };
    let training = GmailMessage {
        message_id: TRAINING_ID,
        subject: TRAINING_SUBJECT,
        size: "2488",
        envelope_from: "sato.mika@example.co.jp",
        from_header: "sato.mika@example.co.jp",
        from_name: "佐藤 美香",
        service: "smtp-inbound",
    };
    let deadline = GmailMessage {
        message_id: DEADLINE_ID,
        subject: DEADLINE_SUBJECT,
        size: "2934",
        envelope_from: "hanako.sato@tokyo-shoji.example",
        from_header: "hanako.sato@tokyo-shoji.example",
        from_name: "佐藤 花子",
        service: "smtp-inbound",
    };
    let relay_out = Some((RELAY, "203.0.113.10"));
    let rows = [
        // kato.ken sends the minutes from the Gmail web UI …
        gmail_row(
            &minutes,
            "2026-11-24T04:15:07.850Z",
            "1",
            "69",
            json!([
                destination("lee@global-partner.example", "smtp-outbound", None),
                destination("taro.yamada@example.co.jp", "smtp-outbound", None),
            ]),
            connection(Some(OFFICE_IP), None, None, None),
        ),
        // … and Gmail hands it to the relay (the outbound gateway).
        gmail_row(
            &minutes,
            "2026-11-24T04:15:08.900Z",
            "0",
            "10",
            json!([
                destination("lee@global-partner.example", "smtp-outbound", Some("250")),
                destination("taro.yamada@example.co.jp", "smtp-outbound", Some("250")),
            ]),
            connection(None, None, relay_out, None),
        ),
        // sato.mika's training mail arrives from the relay and is put into kato.ken's inbox.
        gmail_row(
            &training,
            "2026-11-24T06:40:23.450Z",
            "0",
            "1",
            json!([destination("kato.ken@example.co.jp", "gmail-ui", None)]),
            connection(
                Some("203.0.113.10"),
                Some("203.0.113.10"),
                None,
                Some("true"),
            ),
        ),
        gmail_row(
            &training,
            "2026-11-24T06:40:24.020Z",
            "2",
            "2",
            json!([destination("kato.ken@example.co.jp", "gmail-ui", None)]),
            connection(Some("203.0.113.10"), None, None, Some("true")),
        ),
        // The partner's mail arrives from the relay (an inbound gateway: Gmail
        // names the partner's MX as the client) and lands in kato.ken's inbox.
        gmail_row(
            &deadline,
            "2026-11-24T08:05:35.800Z",
            "0",
            "1",
            json!([destination("kato.ken@example.co.jp", "gmail-ui", None)]),
            connection(
                Some(PARTNER_MX_IP),
                Some("203.0.113.10"),
                None,
                Some("true"),
            ),
        ),
        gmail_row(
            &deadline,
            "2026-11-24T08:05:36.300Z",
            "2",
            "2",
            json!([destination("kato.ken@example.co.jp", "gmail-ui", None)]),
            connection(Some(PARTNER_MX_IP), None, None, Some("true")),
        ),
    ];
    rows.iter().map(|r| format!("{r}\n")).collect()
}

// ---------------------------------------------------------------------------
// Running mailtrail
// ---------------------------------------------------------------------------

fn mailtrail(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    c.env_remove("MAILTRAIL_CONFIG")
        .env_remove("MAILTRAIL_DATA_DIR")
        .env_remove("MAILTRAIL_ORG_DOMAINS")
        .env_remove("MAILTRAIL_TIMEZONE")
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", ORG_DOMAIN, "--timezone", TIMEZONE]);
    c
}

/// Run a subcommand that must succeed.
fn run(data: &Path, args: &[&str]) -> Output {
    let out = mailtrail(data).args(args).output().expect("run mailtrail");
    assert!(
        out.status.success(),
        "mailtrail {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn count(data: &Path, query: &str) -> usize {
    let text = stdout_of(&run(data, &["search", "--count", query]));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("search --count {query:?} printed {text:?}"))
}

fn search_json(data: &Path, query: &str) -> Vec<Value> {
    stdout_of(&run(
        data,
        &["search", "--format", "json", "--limit", "1000", query],
    ))
    .lines()
    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
    .collect()
}

fn trace_json(data: &Path, id: &str) -> Value {
    let out = run(data, &["trace", id, "--format", "json"]);
    serde_json::from_slice(&out.stdout).expect("trace JSON")
}

/// `mailtrail serve` with the SMTP journal receiver; killed if still running when dropped.
struct JournalReceiver {
    child: Child,
    addr: String,
}

impl JournalReceiver {
    fn start(data: &Path) -> JournalReceiver {
        let mut child = mailtrail(data)
            .args([
                "serve",
                "--smtp",
                "127.0.0.1:0",
                "--journal-address",
                JOURNAL_ADDRESS,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mailtrail serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let addr = line
            .trim()
            .strip_prefix("listening smtp ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        JournalReceiver { child, addr }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to mailtrail serve");
        let status = self.child.wait().expect("wait for mailtrail serve");
        assert!(status.success(), "mailtrail serve exited with {status:?}");
    }
}

impl Drop for JournalReceiver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal SMTP client, as Exchange Online's journaling agent talks.
struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpClient {
    fn connect(addr: &str) -> SmtpClient {
        let stream = TcpStream::connect(addr).expect("connect to the journal receiver");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = SmtpClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        c
    }

    /// The last line of a (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("SMTP reply");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line;
            }
        }
    }

    fn command(&mut self, command: &str, want: &str) {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        let reply = self.reply();
        assert!(reply.starts_with(want), "{command} → {reply}");
    }

    /// One message; `250` means it is stored.
    fn send(&mut self, from: &str, to: &str, message: &str) {
        self.command(&format!("MAIL FROM:<{from}>"), "250");
        self.command(&format!("RCPT TO:<{to}>"), "250");
        self.command("DATA", "354");
        let mut stuffed = String::new();
        for line in message.split_inclusive("\r\n") {
            if line.starts_with('.') {
                stuffed.push('.');
            }
            stuffed.push_str(line);
        }
        self.writer.write_all(stuffed.as_bytes()).unwrap();
        self.command(".", "250");
    }
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

/// Disagreements found so far; the test fails at the end with all of them.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn equal<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        self.check(got == want, || {
            format!("{what}: got {got:?}, expected {want:?}")
        });
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} disagreement(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

fn strings(v: &Value) -> Vec<String> {
    let mut list: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    list.sort();
    list
}

/// The summary line of an import: (new messages, updated messages).
fn import_counts(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("imported "))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    let number_before = |word: &str| -> u64 {
        let head = &line[..line
            .find(word)
            .unwrap_or_else(|| panic!("{word:?} in {line:?}"))];
        head.trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {word:?} in {line:?}"))
    };
    (number_before(" new message(s)"), number_before(" updated"))
}

/// Import one file without `--format`; returns the summary on stdout.
fn import(data: &Path, files: &[&Path]) -> String {
    let mut args = vec!["import", "--quiet"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    stdout_of(&run(data, &args))
}

fn hop_matches(event: &Value, hop: &Hop) -> bool {
    event["system"] == hop.system
        && event["event"] == hop.event
        && hop
            .toward
            .is_none_or(|t| event["relay"].as_str().is_some_and(|r| r.contains(t)))
        && hop.recipient.is_none_or(|r| event["recipient"] == r)
}

fn describe(trail: &[Value]) -> String {
    trail
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}{}",
                e["time"].as_str().unwrap_or("?"),
                e["system"].as_str().unwrap_or("?"),
                e["event"].as_str().unwrap_or("?"),
                e["recipient"].as_str().unwrap_or(""),
                e["relay"]
                    .as_str()
                    .map(|r| format!(" → {r}"))
                    .unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n      ")
}

/// The stored message: recipients, direction, systems, client IP, auth.
fn check_message(f: &mut Findings, e: &Expected, m: &Value) {
    let name = e.word;
    f.equal(
        &format!("{name}: message_id"),
        m["message_id"].as_str(),
        Some(e.message_id),
    );
    f.equal(
        &format!("{name}: subject"),
        m["subject"].as_str(),
        Some(e.subject),
    );
    f.equal(&format!("{name}: from"), m["from"].as_str(), Some(e.from));
    f.equal(&format!("{name}: to"), strings(&m["to"]), sorted(e.to));
    f.equal(&format!("{name}: cc"), strings(&m["cc"]), sorted(e.cc));
    f.equal(&format!("{name}: bcc"), strings(&m["bcc"]), sorted(e.bcc));
    f.equal(
        &format!("{name}: envelope-only recipients (placed in none of To/Cc/Bcc)"),
        strings(&m["envelope_recipients"]),
        Vec::new(),
    );
    f.equal(
        &format!("{name}: direction"),
        m["direction"].as_str(),
        Some(e.direction),
    );
    f.equal(
        &format!("{name}: systems"),
        strings(&m["systems"]),
        sorted(e.systems),
    );
    f.equal(
        &format!("{name}: client_ip"),
        m["client_ip"].as_str(),
        Some(e.client_ip),
    );
    let auth = [&m["auth"]["spf"], &m["auth"]["dkim"], &m["auth"]["dmarc"]].map(|v| v.as_str());
    f.equal(
        &format!("{name}: auth [spf, dkim, dmarc]"),
        auth,
        e.auth.map_or([None; 3], |a| a.map(Some)),
    );
}

/// The trail: every system's events, in time order, hops in the order mail took them.
fn check_trail(f: &mut Findings, e: &Expected, v: &Value) {
    let name = e.word;
    let trail = v["trail"].as_array().cloned().unwrap_or_default();
    let shown = describe(&trail);
    let times: Vec<&str> = trail
        .iter()
        .map(|t| t["time"].as_str().unwrap_or(""))
        .collect();
    f.check(times.windows(2).all(|w| w[0] <= w[1]), || {
        format!("{name}: trail not in time order:\n      {shown}")
    });
    // Every system saw the email within seconds: a source whose times were
    // read in the wrong zone would stand hours apart from the others.
    let instants: Vec<i64> = times
        .iter()
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .collect();
    let span = instants
        .iter()
        .max()
        .zip(instants.iter().min())
        .map(|(a, b)| a - b);
    f.check(
        instants.len() == times.len() && span.is_some_and(|s| s <= 10),
        || format!("{name}: trail spans {span:?} s, not a few seconds:\n      {shown}"),
    );
    f.equal(
        &format!("{name}: trace systems"),
        strings(&v["systems"]),
        sorted(e.systems),
    );
    for system in e.systems {
        f.check(trail.iter().any(|t| t["system"] == *system), || {
            format!("{name}: no {system} event in the trail:\n      {shown}")
        });
    }
    for chain in e.hops {
        let positions: Vec<Option<usize>> = chain
            .iter()
            .map(|h| trail.iter().position(|t| hop_matches(t, h)))
            .collect();
        for (h, p) in chain.iter().zip(&positions) {
            f.check(p.is_some(), || {
                format!("{name}: trail lacks \"{h}\":\n      {shown}")
            });
        }
        let found: Vec<usize> = positions.iter().flatten().copied().collect();
        f.check(found.windows(2).all(|w| w[0] < w[1]), || {
            let chain: Vec<String> = chain.iter().map(Hop::to_string).collect();
            format!(
                "{name}: hops out of order ({}; positions {positions:?}):\n      {shown}",
                chain.join(", then ")
            )
        });
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

struct Inputs {
    postfix: PathBuf,
    m365: PathBuf,
    gmail: PathBuf,
}

fn write_inputs(dir: &Path) -> Inputs {
    let inputs = Inputs {
        postfix: dir.join("mail.log"),
        m365: dir.join("MTSummary_Report_extended_3f1c2b4a.csv"),
        gmail: dir.join("gmail_logs_20261124.json"),
    };
    std::fs::write(&inputs.postfix, postfix_log()).unwrap();
    std::fs::write(&inputs.m365, utf16le(&m365_extended_report())).unwrap();
    std::fs::write(&inputs.gmail, gmail_rows()).unwrap();
    inputs
}

#[test]
fn one_set_of_emails_through_postfix_journal_m365_and_gmail_is_one_set_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inputs = write_inputs(dir.path());
    let mut f = Findings::default();

    // 1. Microsoft 365 journals every message it handles to the receiver.
    let receiver = JournalReceiver::start(&data);
    let mut smtp = SmtpClient::connect(&receiver.addr);
    smtp.command("EHLO TYCPR01MB8830.jpnprd01.prod.outlook.com", "250");
    for report in journal_reports() {
        smtp.send(JOURNAL_AGENT, JOURNAL_ADDRESS, &report);
    }
    smtp.command("QUIT", "221");
    receiver.stop();
    f.equal(
        "messages after the journal reports",
        count(&data, ""),
        EMAILS.len(),
    );
    // The Bcc is known from the report alone (no other source is in yet).
    let quote = search_json(&data, "見積書");
    f.equal(
        "見積書: bcc from the journal report alone",
        quote.first().map(|m| strings(&m["bcc"])),
        Some(sorted(EMAILS[0].bcc)),
    );

    // 2. Each export on its own, format detected: each one adds its system
    // to every message it describes and creates no message of its own.
    let exports: [(&str, &Path, &[&str]); 3] = [
        (
            POSTFIX,
            &inputs.postfix,
            &[QUOTE_ID, SECRET_ID, MINUTES_ID, TRAINING_ID, DEADLINE_ID],
        ),
        (
            "m365",
            &inputs.m365,
            &[QUOTE_ID, SECRET_ID, MINUTES_ID, TRAINING_ID, DEADLINE_ID],
        ),
        (
            "gmail",
            &inputs.gmail,
            &[MINUTES_ID, TRAINING_ID, DEADLINE_ID],
        ),
    ];
    for (system, file, described) in exports {
        let summary = import(&data, &[file]);
        f.check(summary.contains("rejected input: none"), || {
            format!("{system} export: input rejected:\n{summary}")
        });
        // The summary counts records (Gmail logs one per row), so only "no
        // new message" is exact here; the systems below show the merge.
        f.equal(
            &format!("{system} export: new messages"),
            import_counts(&summary).0,
            0,
        );
        f.equal(
            &format!("messages after the {system} export"),
            count(&data, ""),
            EMAILS.len(),
        );
        for id in described {
            let systems = strings(&trace_json(&data, id)["systems"]);
            f.check(systems.iter().any(|s| s == system), || {
                format!("{system} export (detected format?) left {id} with systems {systems:?}")
            });
        }
    }

    // 3. Each email is one message, with what every source knew about it.
    f.equal("search --count ''", count(&data, ""), EMAILS.len());
    for e in &EMAILS {
        f.equal(
            &format!("search --count {}", e.word),
            count(&data, e.word),
            1,
        );
        f.equal(
            &format!("search --count subject:{}", e.word),
            count(&data, &format!("subject:{}", e.word)),
            1,
        );
        let found = search_json(&data, e.word);
        match found.as_slice() {
            [m] => check_message(&mut f, e, m),
            other => f.check(false, || {
                format!("{}: search found {} messages", e.word, other.len())
            }),
        }
        check_trail(
            &mut f,
            e,
            &trace_json(&data, &format!("<{}>", e.message_id)),
        );
    }
    let quote = search_json(&data, "filename:見積書");
    f.equal(
        "filename:見積書 (the journalled original's attachment)",
        quote
            .iter()
            .map(|m| m["message_id"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec![QUOTE_ID],
    );
    f.equal(
        "bcc:kimura.buchou@example.co.jp",
        count(&data, "bcc:kimura.buchou@example.co.jp"),
        1,
    );
    f.equal("direction:outbound", count(&data, "direction:outbound"), 3);

    // 4. The same files again add nothing, and change nothing.
    let before = stdout_of(&run(
        &data,
        &["search", "--format", "json", "--limit", "1000", ""],
    ));
    let again = import(&data, &[&inputs.postfix, &inputs.m365, &inputs.gmail]);
    f.equal(
        "re-import: (new, updated) messages",
        import_counts(&again),
        (0, 0),
    );
    f.check(again.contains("new deliveries: none"), || {
        format!("re-import added deliveries:\n{again}")
    });
    f.equal(
        "search --count '' after re-import",
        count(&data, ""),
        EMAILS.len(),
    );
    let after = stdout_of(&run(
        &data,
        &["search", "--format", "json", "--limit", "1000", ""],
    ));
    f.check(before == after, || {
        format!("re-import changed the messages:\nbefore: {before}\nafter:  {after}")
    });

    f.finish();
}
