//! The web console over real HTTP: sign-in with its CSRF token and brake,
//! the two roles, search and export, the filter form writing the query,
//! the pivots from a message, the message page with its sanitised body,
//! raw and attachment downloads, the audit log of every look, and both
//! languages.
//!
//! The router runs in-process on a loopback port over a store seeded with
//! messages through the same `write_batch` the importers use; requests are
//! plain HTTP/1.1 written by hand, so every header is what a browser sends
//! and every answer is checked as a browser would get it.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{audit_actions, form_value, request, sign_in, url, Console};
use mailtrail_model::{
    Delivery, DeliveryStatus, Mailbox, MessageRecord, OrgDomains, Recipient, RecipientKind,
};
use mailtrail_store::console::{AuditFilter, ConsoleStore};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store};

const HTML_MAIL: &str = "From: Taro <taro@example.co.jp>\r\nTo: hanako@partner.example\r\n\
Subject: =?UTF-8?B?56S+5aSW56eY77ya6KaL56mN5pu4?=\r\nMessage-ID: <web-1@example.co.jp>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>見積書をお送りします<script>alert('x')</script><img src=\"https://tracker.example/p.gif\">\
<a href=\"https://partner.example/portal\">ポータル</a></p>\r\n";

fn seed(dir: &Path) {
    let mut store = common::open_store(dir);
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
    let with_content = MessageRecord {
        message_id: Some("web-1@example.co.jp".into()),
        date: Some(t),
        first_seen: Some(t),
        from: Mailbox::new("taro@example.co.jp", Some("Taro")),
        recipients: vec![
            Recipient::new("hanako@partner.example", None, RecipientKind::To).unwrap(),
            Recipient::new("secret@rival.example", None, RecipientKind::Bcc).unwrap(),
        ],
        subject: Some("社外秘：見積書".into()),
        body_text: Some("見積書をお送りします".into()),
        raw: Some(HTML_MAIL.as_bytes().to_vec()),
        systems: vec!["journal".into()],
        ..Default::default()
    };
    let log_only = common::log_only_message("web-2@example.co.jp", t);
    store
        .write_batch(vec![with_content, log_only], vec![])
        .unwrap();
}

fn start() -> Console {
    start_with(|_| {})
}

/// A console over the common seed plus what `extra` writes.
fn start_with(extra: impl FnOnce(&Path)) -> Console {
    start_with_sources(extra, None)
}

/// The same, with a sources page fed by `sources`.
fn start_with_sources(
    extra: impl FnOnce(&Path),
    sources: Option<mailtrail_web::SourcesProvider>,
) -> Console {
    common::serve(
        |dir| {
            seed(dir);
            extra(dir);
        },
        sources,
    )
}

#[test]
fn everything_but_the_sign_in_page_needs_a_session() {
    let c = start();
    // Every page of the console (`/` redirects to the search, which then
    // redirects to the sign-in page).
    for path in [
        "/search?q=x",
        "/search?attachment=0000",
        "/message/1",
        "/message/1/raw",
        "/message/1/attachment/0",
        "/audit",
        "/search/export?q=x",
        "/search/export?q=x&format=json",
        "/dashboard",
        "/sources",
        "/alerts",
        "/alerts/1",
        "/coverage",
        "/rules",
        "/rules/dry-run?rule=x&period=7d",
        "/rules/new",
        "/rules/x/edit",
        "/risk",
    ] {
        let answer = request(c.addr, "GET", path, &[], "");
        assert_eq!(answer.status, 303, "{path}");
        assert_eq!(answer.header("location"), Some("/login"), "{path}");
        assert!(!answer.text().contains("社外秘"), "{path}");
    }
    // The rule editor's changes too.
    for path in ["/rules/new", "/rules/x/edit", "/rules/x/state"] {
        let answer = request(c.addr, "POST", path, &[], "csrf=x&text=x&state=on");
        assert_eq!(answer.status, 303, "{path}");
        assert_eq!(answer.header("location"), Some("/login"), "{path}");
    }
    // The API answers 401 instead (a script wants a status, not a page).
    for path in [
        "/api/v1/search?q=x",
        "/api/v1/messages/1",
        "/api/v1/messages/1/raw",
        "/api/v1/messages/1/attachments/0",
        "/api/v1/messages/1/trail",
        "/api/v1/stats",
        "/api/v1/alerts",
        "/api/v1/alerts/1",
    ] {
        let answer = request(c.addr, "GET", path, &[], "");
        assert_eq!(answer.status, 401, "{path}");
    }
    // A sign-out without a session changes nothing and leads to sign-in.
    let out = request(c.addr, "POST", "/logout", &[], "csrf=x");
    assert_eq!(out.header("location"), Some("/login"));
    // Public: the sign-in page, the language switch, the style sheet and
    // script, the API's description, and the service's health.
    for path in [
        "/login",
        "/static/app.css",
        "/static/app.js",
        "/api/v1/openapi.json",
    ] {
        assert_eq!(request(c.addr, "GET", path, &[], "").status, 200, "{path}");
    }
    let login = request(c.addr, "GET", "/login", &[], "");
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(login.header("x-frame-options"), Some("DENY"));
}

#[test]
fn sign_in_needs_its_form_token_the_password_and_slows_guessing() {
    let c = start();
    // No token cookie: refused even with the right password.
    let answer = request(
        c.addr,
        "POST",
        "/login",
        &[],
        "user=kanri&password=kanri-password-1&csrf=abc",
    );
    assert_eq!(answer.status, 403);
    let form = request(c.addr, "GET", "/login", &[], "");
    let cookie = form.cookie("mt_login").unwrap();
    let token = form_value(&form.text(), "csrf");
    let wrong = |n: u32| {
        request(
            c.addr,
            "POST",
            "/login",
            &[("Cookie", &cookie)],
            &format!("user=kanri&password=guess{n}&csrf={token}"),
        )
    };
    for n in 0..5 {
        let answer = wrong(n);
        assert_eq!(answer.status, 401, "attempt {n}");
        assert!(answer.cookie("mt_session").is_none());
    }
    assert_eq!(
        wrong(5).status,
        401,
        "the sixth still gets an answer, and a brake"
    );
    let braked = wrong(6);
    assert_eq!(braked.status, 429, "{}", braked.text());
    let failures = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, action, _)| action == "sign-in-failed")
        .count();
    assert_eq!(failures, 6, "every failure is in the audit log");
    // The brake is on this client address: another account from it waits too.
    let form = request(c.addr, "GET", "/login", &[], "");
    let other = request(
        c.addr,
        "POST",
        "/login",
        &[("Cookie", &form.cookie("mt_login").unwrap())],
        &format!(
            "user=etsuran&password=etsuran-password-1&csrf={}",
            form_value(&form.text(), "csrf")
        ),
    );
    assert_eq!(other.status, 429);
    // Once the wait is over, the right password gets in and clears the count.
    std::thread::sleep(Duration::from_millis(2100));
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    assert!(session.starts_with("mt_session="));
    assert_eq!(wrong(7).status, 401, "the count started again");
}

#[test]
fn an_administrator_searches_reads_downloads_and_every_look_is_audited() {
    let c = start();
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str())];

    let page = request(
        c.addr,
        "GET",
        &format!("/search?q={}", url("社外秘")),
        &cookie,
        "",
    );
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("1 message") || html.contains("1 件"),
        "{html}"
    );
    assert!(html.contains("社外秘：見積書"), "{html}");
    assert!(
        html.contains("secret@rival.example"),
        "Bcc shown to the administrator"
    );

    let message = request(c.addr, "GET", "/message/1", &cookie, "");
    let html = message.text();
    assert_eq!(message.status, 200);
    assert!(html.contains("見積書をお送りします"), "{html}");
    assert!(
        !html.contains("<script>alert"),
        "the mail's script is gone: {html}"
    );
    assert!(!html.contains("tracker.example"), "no remote image: {html}");
    assert!(
        !html.contains("href=\"https://partner.example"),
        "links are not followable"
    );
    assert!(
        html.contains("[https://partner.example/portal]"),
        "but shown: {html}"
    );

    let raw = request(c.addr, "GET", "/message/1/raw", &cookie, "");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, HTML_MAIL.as_bytes());

    let csv = request(
        c.addr,
        "GET",
        &format!("/search/export?format=csv&q={}", url("社外秘")),
        &cookie,
        "",
    );
    assert_eq!(csv.status, 200);
    assert!(
        csv.body.starts_with("\u{feff}".as_bytes()),
        "UTF-8 with BOM for Excel"
    );
    assert!(csv.text().contains("社外秘：見積書"));

    let trail = request(c.addr, "GET", "/message/2", &cookie, "");
    assert!(trail.text().contains("mx.partner.example[192.0.2.25]:25"));
    assert!(trail.text().contains("Seen only in logs") || trail.text().contains("ログのみ"));

    let audit = request(c.addr, "GET", "/audit", &cookie, "");
    assert_eq!(audit.status, 200);
    assert!(
        audit.text().contains("The audit log is intact")
            || audit.text().contains("改ざんされていません")
    );

    // Sign out needs the session's CSRF token; afterwards the cookie is dead.
    assert_eq!(
        request(c.addr, "POST", "/logout", &cookie, "csrf=forged").status,
        403
    );
    let out = request(c.addr, "POST", "/logout", &cookie, &format!("csrf={csrf}"));
    assert_eq!(out.status, 303);
    assert_eq!(
        request(c.addr, "GET", "/search?q=x", &cookie, "").status,
        303
    );

    let actions: Vec<(String, String)> = audit_actions(c.dir.path())
        .into_iter()
        .map(|(user, action, _)| (user, action))
        .collect();
    for want in [
        "sign-in",
        "search",
        "view",
        "download-raw",
        "export",
        "audit-view",
        "sign-out",
    ] {
        assert!(
            actions.iter().any(|(u, a)| u == "kanri" && a == want),
            "{want} not audited: {actions:?}"
        );
    }
    let searches: Vec<_> = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, a, _)| a == "search")
        .collect();
    assert_eq!(
        searches[0].2.as_deref(),
        Some("社外秘"),
        "the query is recorded"
    );
}

/// Requests at the same moment share audit commits: each one is still
/// recorded exactly once, under its own user and query, before it answers,
/// and the chain verifies.
#[test]
fn concurrent_searches_are_each_audited_once_in_an_intact_chain() {
    let c = start();
    let (admin, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let before = audit_actions(c.dir.path()).len();
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let (addr, dir) = (c.addr, c.dir.path().to_path_buf());
            let cookie = if i % 2 == 0 {
                admin.clone()
            } else {
                viewer.clone()
            };
            std::thread::spawn(move || {
                let query = format!("concurrent{i}");
                let path = if i % 3 == 0 {
                    format!("/api/v1/search?q={query}")
                } else {
                    format!("/search?q={query}")
                };
                let answer = request(addr, "GET", &path, &[("Cookie", cookie.as_str())], "");
                assert_eq!(answer.status, 200, "{path}: {}", answer.text());
                // Answered only once its entry was committed.
                assert!(
                    audit_actions(&dir)
                        .iter()
                        .any(|(_, a, d)| a == "search" && d.as_deref() == Some(query.as_str())),
                    "{query} answered before it was recorded"
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = audit_actions(c.dir.path());
    assert_eq!(after.len(), before + 24);
    for i in 0..24 {
        let user = if i % 2 == 0 { "kanri" } else { "etsuran" };
        let query = format!("concurrent{i}");
        let found: Vec<_> = after
            .iter()
            .filter(|(_, a, d)| a == "search" && d.as_deref() == Some(query.as_str()))
            .collect();
        assert_eq!(found.len(), 1, "{query}: {found:?}");
        assert_eq!(found[0].0, user, "{query}");
    }
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(store.verify_audit_chain().unwrap(), None);
}

#[test]
fn a_viewer_sees_metadata_only() {
    let c = start();
    let (session, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let cookie = [("Cookie", session.as_str())];
    let page = request(
        c.addr,
        "GET",
        &format!("/search?q={}", url("見積書")),
        &cookie,
        "",
    );
    assert_eq!(page.status, 200);
    assert!(page.text().contains("社外秘：見積書"));
    assert!(
        !page.text().contains("/search/export"),
        "no export link for viewers"
    );
    let message = request(c.addr, "GET", "/message/1", &cookie, "");
    assert_eq!(message.status, 200);
    let html = message.text();
    assert!(
        !html.contains("見積書をお送りします"),
        "no content for viewers: {html}"
    );
    assert!(!html.contains("/message/1/raw"));
    for path in ["/message/1/raw", "/search/export?format=csv&q=x", "/audit"] {
        assert_eq!(
            request(c.addr, "GET", path, &cookie, "").status,
            403,
            "{path}"
        );
    }
}

#[test]
fn pages_speak_the_browsers_language_and_the_switch_wins() {
    let c = start();
    let ja = request(
        c.addr,
        "GET",
        "/login",
        &[("Accept-Language", "ja-JP,ja;q=0.9,en;q=0.5")],
        "",
    );
    assert!(
        ja.text().contains("ログイン") && ja.text().contains("パスワード"),
        "{}",
        ja.text()
    );
    assert!(ja.text().contains("<html lang=\"ja\">"));
    let en = request(c.addr, "GET", "/login", &[("Accept-Language", "en-US")], "");
    assert!(en.text().contains("Sign in") && en.text().contains("Password"));
    let switch = request(
        c.addr,
        "GET",
        "/lang/en",
        &[("Referer", &format!("http://{}/login", c.addr))],
        "",
    );
    assert_eq!(switch.status, 303);
    assert_eq!(switch.header("location"), Some("/login"));
    let lang = switch.cookie("mt_lang").unwrap();
    let chosen = request(
        c.addr,
        "GET",
        "/login",
        &[("Accept-Language", "ja"), ("Cookie", &lang)],
        "",
    );
    assert!(
        chosen.text().contains("Sign in"),
        "the switch wins over the browser"
    );

    // Dates as each language writes them, in the configured zone (10:00 JST).
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let both = format!("{session}; mt_lang=ja");
    let page = request(c.addr, "GET", "/search?q=weekly", &[("Cookie", &both)], "");
    assert!(page.text().contains("2026/11/20 10:00"), "{}", page.text());
    assert!(page.text().contains("1 件"));
}

// ------------------------------------------------------------ filters, pivots, attachments

/// The spreadsheet the thread passes around (binary, and long enough to be
/// kept as a blob segment of its own).
fn spreadsheet() -> Vec<u8> {
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend((0..3000u32).map(|i| (i * 7 % 256) as u8));
    bytes
}

const SPREADSHEET_NAME: &str = "見積書 2026年度.xlsx";
const SPREADSHEET_2231: &str = "%E8%A6%8B%E7%A9%8D%E6%9B%B8%202026%E5%B9%B4%E5%BA%A6.xlsx";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const HOSTILE_HTML: &str = "<script>alert(document.cookie)</script>";

fn base64(bytes: &[u8], line: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(line)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A MIME message with optional attachments (name, type, bytes), base64
/// wrapped at `line` characters.
fn mime(head: &str, body: &str, attachments: &[(&str, &str, &[u8])], line: usize) -> Vec<u8> {
    let mut raw = format!(
        "{head}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n\
--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    for (name, ctype, bytes) in attachments {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        raw.push_str(&format!(
            "--BB\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename*=UTF-8''{encoded}\r\n\r\n{}\r\n",
            base64(bytes, line)
        ));
    }
    raw.push_str("--BB--\r\n");
    raw.into_bytes()
}

fn delivered(
    time: chrono::DateTime<Utc>,
    to: &str,
    system: &str,
    status: DeliveryStatus,
) -> Delivery {
    Delivery {
        time,
        recipient: to.into(),
        status,
        detail: None,
        system: system.into(),
        relay: None,
        client_ip: None,
        client_host: None,
        local_id: None,
        original_recipient: None,
    }
}

/// A thread about a quotation (JST dates): the offer with the spreadsheet
/// (11/18, outbound), the partner's reply (11/19, inbound), an internal
/// forward carrying the same spreadsheet encoded differently (11/20), a
/// bounced mail from elsewhere (11/21), and a greeting a month later.
fn seed_thread(dir: &Path) {
    let sheet = spreadsheet();
    let opts = mailtrail_ingest::DecodeOptions::default();
    let parse = |raw: Vec<u8>, system: &str, deliveries: Vec<Delivery>| {
        let mut r = mailtrail_ingest::mime::parse_message(raw, &opts).unwrap();
        r.systems = vec![system.into()];
        r.deliveries = deliveries;
        r
    };
    let jst = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h - 9, 0, 0).unwrap();
    let offer = parse(
        mime(
            "From: Taro <taro@example.co.jp>\r\nTo: hanako@partner.example\r\nCc: jiro@example.co.jp\r\n\
Subject: =?UTF-8?B?6KaL56mN5pu444Gu6YCB5LuY?=\r\nMessage-ID: <offer@example.co.jp>\r\n\
Date: Wed, 18 Nov 2026 10:00:00 +0900",
            "見積書をお送りします。",
            &[
                (SPREADSHEET_NAME, XLSX, &sheet),
                ("page.html", "text/html", HOSTILE_HTML.as_bytes()),
            ],
            76,
        ),
        "journal",
        vec![delivered(jst(18, 10), "hanako@partner.example", "postfix@mx1", DeliveryStatus::Delivered)],
    );
    let reply = parse(
        mime(
            "From: hanako@partner.example\r\nTo: taro@example.co.jp\r\n\
Subject: =?UTF-8?B?UkXvvJropovnqY3mm7jjga7pgIHku5g=?=\r\nMessage-ID: <reply@partner.example>\r\n\
Date: Thu, 19 Nov 2026 09:00:00 +0900",
            "受領しました。",
            &[],
            76,
        ),
        "m365",
        vec![delivered(
            jst(19, 9),
            "taro@example.co.jp",
            "m365",
            DeliveryStatus::Delivered,
        )],
    );
    let forward = parse(
        mime(
            "From: taro@example.co.jp\r\nTo: saburo@example.co.jp\r\n\
Subject: =?UTF-8?B?6Lui6YCBOiBSZTog6KaL56mN5pu444Gu6YCB5LuY?=\r\nMessage-ID: <forward@example.co.jp>\r\n\
Date: Fri, 20 Nov 2026 15:00:00 +0900",
            "共有します。",
            &[(SPREADSHEET_NAME, XLSX, &sheet)],
            60,
        ),
        "journal",
        vec![],
    );
    let bounced = parse(
        mime(
            "From: someone@other.example\r\nTo: taro@example.co.jp\r\nSubject: invoice\r\n\
Message-ID: <bounce@other.example>\r\nDate: Sat, 21 Nov 2026 09:00:00 +0900",
            "see attached",
            &[("invoice.pdf", "application/pdf", b"%PDF-1.4 not really")],
            76,
        ),
        "postfix@mx2",
        vec![delivered(
            jst(21, 9),
            "taro@example.co.jp",
            "postfix@mx2",
            DeliveryStatus::Bounced,
        )],
    );
    let greeting = parse(
        mime(
            "From: taro@example.co.jp\r\nTo: hanako@partner.example\r\nSubject: =?UTF-8?B?5bm05pyr44Gu44GU5oyo5ou2?=\r\n\
Message-ID: <greeting@example.co.jp>\r\nDate: Tue, 15 Dec 2026 10:00:00 +0900",
            "本年もお世話になりました。",
            &[],
            76,
        ),
        "journal",
        vec![],
    );
    let mut store = common::open_store(dir);
    store
        .write_batch(vec![offer, reply, forward, bounced, greeting], vec![])
        .unwrap();
}

fn id_of(dir: &Path, message_id: &str) -> i64 {
    let store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
    store.message_by_message_id(message_id).unwrap().unwrap().id
}

/// The ids of the messages a result page lists, sorted.
fn listed(html: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = html
        .match_indices("<a href=\"/message/")
        .filter_map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Percent-decoding of a query-string value.
fn unurl(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The `href` of the link whose text is `label`.
fn link(html: &str, label: &str) -> String {
    let end = html
        .find(&format!(">{label}</a>"))
        .unwrap_or_else(|| panic!("no link {label} in {html}"));
    let start = html[..end].rfind("href=\"").unwrap() + 6;
    html[start..end - 1].replace("&amp;", "&")
}

#[test]
fn the_filter_form_writes_the_query_and_the_query_decides() {
    let c = start_with(seed_thread);
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str())];
    let submit = |params: &str| {
        let answer = request(c.addr, "GET", &format!("/search?{params}"), &cookie, "");
        assert_eq!(answer.status, 303, "{params}: {}", answer.text());
        let location = answer.header("location").unwrap().to_string();
        let q = unurl(location.strip_prefix("/search?q=").unwrap());
        let page = request(c.addr, "GET", &location, &cookie, "");
        assert_eq!(page.status, 200, "{}", page.text());
        (q, page.text())
    };
    let form = |q: &str,
                q0: &str,
                since: &str,
                until: &str,
                direction: &str,
                system: &str,
                status: &str,
                has: bool| {
        format!(
            "q={}&q0={}&since={since}&until={until}&direction={direction}&system={}&status={status}{}",
            url(q),
            url(q0),
            url(system),
            if has { "&has=attachment" } else { "" }
        )
    };

    // The period: inclusive dates become after: / before: the next day.
    let (q, html) = submit(&form(
        "見積書",
        "見積書",
        "2026-11-18",
        "2026-11-19",
        "",
        "",
        "",
        false,
    ));
    assert_eq!(q, "見積書 after:2026-11-18 before:2026-11-20");
    assert!(html.contains("2 messages"), "{html}");
    assert_eq!(
        listed(&html),
        vec![
            id_of(c.dir.path(), "offer@example.co.jp"),
            id_of(c.dir.path(), "reply@partner.example")
        ]
    );
    // The form shows what the query says.
    assert!(
        html.contains("name=\"since\" value=\"2026-11-18\""),
        "{html}"
    );
    assert!(
        html.contains("name=\"until\" value=\"2026-11-19\""),
        "{html}"
    );
    for system in ["journal", "m365", "postfix", "postfix@mx1", "postfix@mx2"] {
        assert!(
            html.contains(&format!("<option value=\"{system}\">{system}</option>")),
            "{system}: {html}"
        );
    }

    // Direction.
    let (q2, html) = submit(&form(
        &q,
        &q,
        "2026-11-18",
        "2026-11-19",
        "inbound",
        "",
        "",
        false,
    ));
    assert_eq!(
        q2,
        "見積書 after:2026-11-18 before:2026-11-20 direction:inbound"
    );
    assert!(html.contains("1 message"), "{html}");
    assert_eq!(
        listed(&html),
        vec![id_of(c.dir.path(), "reply@partner.example")]
    );
    assert!(
        html.contains("<option value=\"inbound\" selected>"),
        "{html}"
    );

    // System and attachments, direction back to any, period cleared.
    let (q3, html) = submit(&form(&q2, &q2, "", "", "", "journal", "", true));
    assert_eq!(q3, "見積書 system:journal has:attachment");
    assert_eq!(
        listed(&html),
        vec![
            id_of(c.dir.path(), "offer@example.co.jp"),
            id_of(c.dir.path(), "forward@example.co.jp")
        ],
        "{html}"
    );

    // Status on its own.
    let (q4, html) = submit(&form("", "", "", "", "", "", "bounced", false));
    assert_eq!(q4, "status:bounced");
    assert_eq!(
        listed(&html),
        vec![id_of(c.dir.path(), "bounce@other.example")]
    );

    // A condition deleted in the box stays deleted although the form,
    // filled from the old query, still shows it.
    let (q5, _) = submit(&form(
        "見積書",
        &q2,
        "2026-11-18",
        "2026-11-19",
        "inbound",
        "",
        "",
        false,
    ));
    assert_eq!(q5, "見積書");

    // A bad value is reported, not searched.
    let bad = request(
        c.addr,
        "GET",
        &format!(
            "/search?{}",
            form("x", "x", "2026-02-30", "", "", "", "", false)
        ),
        &cookie,
        "",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("2026-02-30"), "{}", bad.text());

    // A query with nothing searchable is the user's error, not the server's.
    let nothing = request(
        c.addr,
        "GET",
        &format!("/search?q={}", url("subject:\"!!\"")),
        &cookie,
        "",
    );
    assert_eq!(nothing.status, 400, "{}", nothing.text());

    let searches: Vec<String> = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, a, _)| a == "search")
        .filter_map(|(_, _, d)| d)
        .collect();
    assert!(
        searches.contains(&q3),
        "the written query is what is audited: {searches:?}"
    );
}

#[test]
fn pivots_from_a_message_lead_to_the_related_mail() {
    let c = start_with(seed_thread);
    let (session, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let cookie = [("Cookie", session.as_str())];
    let dir = c.dir.path();
    let ids = |mids: &[&str]| {
        let mut v: Vec<i64> = mids.iter().map(|m| id_of(dir, m)).collect();
        v.sort();
        v
    };
    let offer = id_of(dir, "offer@example.co.jp");
    let page = request(c.addr, "GET", &format!("/message/{offer}"), &cookie, "");
    assert_eq!(page.status, 200);
    let html = page.text();
    let follow = |href: &str| {
        let answer = request(c.addr, "GET", href, &cookie, "");
        assert_eq!(answer.status, 200, "{href}: {}", answer.text());
        listed(&answer.text())
    };

    let sender = link(&html, "Everything from taro@example.co.jp");
    assert_eq!(
        unurl(sender.strip_prefix("/search?q=").unwrap()),
        "from:taro@example.co.jp"
    );
    assert_eq!(
        follow(&sender),
        ids(&[
            "web-1@example.co.jp",
            "offer@example.co.jp",
            "forward@example.co.jp",
            "greeting@example.co.jp"
        ])
    );

    // Re：/転送: Re: prefixes removed: the offer, the reply, the forward.
    let thread = link(&html, "The same thread (subject without Re: / Fwd:)");
    assert_eq!(
        unurl(thread.strip_prefix("/search?q=").unwrap()),
        "subject:\"見積書の送付\""
    );
    assert_eq!(
        follow(&thread),
        ids(&[
            "offer@example.co.jp",
            "reply@partner.example",
            "forward@example.co.jp"
        ])
    );

    // The other party's domain: only partner.example is external here.
    let domain = link(&html, "All mail exchanged with partner.example");
    assert!(!html.contains("All mail exchanged with example.co.jp"));
    assert_eq!(
        follow(&domain),
        ids(&[
            "web-1@example.co.jp",
            "web-2@example.co.jp",
            "offer@example.co.jp",
            "reply@partner.example",
            "greeting@example.co.jp"
        ])
    );

    // Each person's mail 7 days either side (11/11 – 11/25 JST).
    assert!(html.contains("from 2026-11-11 to 2026-11-25"), "{html}");
    let people = &html[html.find("<table class=\"people\">").unwrap()..];
    let row = |address: &str| {
        let at = people
            .find(&format!("<td>{address}</td>"))
            .unwrap_or_else(|| panic!("{address}: {people}"));
        let rest = &people[at..];
        let href = |label: &str| link(&rest[..rest.find("</tr>").unwrap()], label);
        (href("Sent"), href("Received"))
    };
    let (taro_sent, taro_received) = row("taro@example.co.jp");
    assert_eq!(
        unurl(taro_sent.strip_prefix("/search?q=").unwrap()),
        "from:taro@example.co.jp after:2026-11-11 before:2026-11-26"
    );
    assert_eq!(
        follow(&taro_sent),
        ids(&[
            "web-1@example.co.jp",
            "offer@example.co.jp",
            "forward@example.co.jp"
        ]),
        "not the greeting of December"
    );
    assert_eq!(
        follow(&taro_received),
        ids(&["reply@partner.example", "bounce@other.example"])
    );
    let (_, hanako_received) = row("hanako@partner.example");
    assert_eq!(
        follow(&hanako_received),
        ids(&["web-1@example.co.jp", "offer@example.co.jp"])
    );
    let (_, jiro_received) = row("jiro@example.co.jp");
    assert_eq!(
        follow(&jiro_received),
        ids(&["offer@example.co.jp"]),
        "Cc counts as received"
    );

    // The same file, whatever its encoding: the offer and the forward.
    let same = link(&html, "Every message with this file");
    assert!(same.starts_with("/search?attachment="), "{same}");
    let answer = request(c.addr, "GET", &same, &cookie, "");
    assert!(
        answer.text().contains(SPREADSHEET_NAME),
        "{}",
        answer.text()
    );
    assert!(answer.text().contains("2 messages"));
    assert_eq!(
        listed(&answer.text()),
        ids(&["offer@example.co.jp", "forward@example.co.jp"])
    );
    let hash = same.strip_prefix("/search?attachment=").unwrap();
    let searches: Vec<_> = audit_actions(dir)
        .into_iter()
        .filter(|(u, a, _)| u == "etsuran" && a == "search")
        .filter_map(|(_, _, d)| d)
        .collect();
    assert!(
        searches.contains(&format!("attachment:{hash}")),
        "{searches:?}"
    );
    assert_eq!(
        request(c.addr, "GET", "/search?attachment=../../etc", &cookie, "").status,
        400
    );

    // Japanese labels and dates for the same links.
    let both = format!("{session}; mt_lang=ja");
    let ja = request(
        c.addr,
        "GET",
        &format!("/message/{offer}"),
        &[("Cookie", &both)],
        "",
    )
    .text();
    assert!(ja.contains("2026/11/11 – 2026/11/25"), "{ja}");
    assert!(ja.contains("partner.example とのメールすべて"), "{ja}");
    assert!(ja.contains("同じスレッド"), "{ja}");
}

#[test]
fn attachments_download_exactly_for_administrators_and_are_audited() {
    let c = start_with(seed_thread);
    let dir = c.dir.path();
    let offer = id_of(dir, "offer@example.co.jp");
    let forward = id_of(dir, "forward@example.co.jp");
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str())];

    let page = request(c.addr, "GET", &format!("/message/{offer}"), &cookie, "").text();
    assert!(
        page.contains(&format!("href=\"/message/{offer}/attachment/0\"")),
        "{page}"
    );

    for (id, index) in [(offer, 0), (forward, 0)] {
        let file = request(
            c.addr,
            "GET",
            &format!("/message/{id}/attachment/{index}"),
            &cookie,
            "",
        );
        assert_eq!(file.status, 200, "{}", file.text());
        assert_eq!(
            file.body,
            spreadsheet(),
            "the very bytes that were attached"
        );
        assert_eq!(file.header("content-type"), Some(XLSX));
        assert_eq!(
            file.header("content-disposition").unwrap(),
            format!(
                "attachment; filename=\"___ 2026__.xlsx\"; filename*=UTF-8''{SPREADSHEET_2231}"
            )
        );
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(file.header("cache-control"), Some("no-store"));
    }

    // HTML is handed over as bytes, never as a page of ours.
    let html = request(
        c.addr,
        "GET",
        &format!("/message/{offer}/attachment/1"),
        &cookie,
        "",
    );
    assert_eq!(html.status, 200);
    assert_eq!(html.body, HOSTILE_HTML.as_bytes());
    assert_eq!(
        html.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(html
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));

    assert_eq!(
        request(
            c.addr,
            "GET",
            &format!("/message/{offer}/attachment/9"),
            &cookie,
            ""
        )
        .status,
        404
    );
    assert_eq!(
        request(c.addr, "GET", "/message/2/attachment/0", &cookie, "").status,
        404,
        "a log-only message has nothing to download"
    );

    let store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
    let downloads: Vec<_> = store
        .audit_log(
            &AuditFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "download-attachment")
        .map(|e| (e.user, e.target, e.detail))
        .collect();
    assert_eq!(downloads.len(), 3, "one entry per download: {downloads:?}");
    assert!(downloads.contains(&(
        "kanri".into(),
        Some(offer.to_string()),
        Some(SPREADSHEET_NAME.to_string())
    )));
    assert!(downloads.contains(&(
        "kanri".into(),
        Some(offer.to_string()),
        Some("page.html".to_string())
    )));

    // A viewer gets neither the link nor the file, and nothing is recorded as downloaded.
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let vcookie = [("Cookie", viewer.as_str())];
    let page = request(c.addr, "GET", &format!("/message/{offer}"), &vcookie, "").text();
    assert!(!page.contains("/attachment/0"), "{page}");
    assert_eq!(
        request(
            c.addr,
            "GET",
            &format!("/message/{offer}/attachment/0"),
            &vcookie,
            ""
        )
        .status,
        403
    );
    assert!(!audit_actions(dir)
        .iter()
        .any(|(u, a, _)| u == "etsuran" && a == "download-attachment"));
    assert_eq!(
        request(
            c.addr,
            "GET",
            &format!("/message/{offer}/attachment/0"),
            &[],
            ""
        )
        .status,
        303,
        "signed out: to the sign-in page"
    );
}

#[test]
fn the_store_answers_who_else_got_a_file_and_which_systems_exist() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    seed_thread(dir.path());
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(
        store.systems().unwrap(),
        ["journal", "m365", "postfix@mx1", "postfix@mx2"]
    );
    let offer = store
        .message_by_message_id("offer@example.co.jp")
        .unwrap()
        .unwrap();
    let hash = &offer.attachments[0].blake3;
    let (count, first) = store
        .attachment_messages(
            hash,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .unwrap();
    assert_eq!(count, 2);
    assert_eq!(
        first[0].message_id.as_deref(),
        Some("forward@example.co.jp"),
        "newest first"
    );
    let (_, second) = store
        .attachment_messages(
            hash,
            Page {
                limit: 1,
                offset: 1,
            },
        )
        .unwrap();
    assert_eq!(second[0].message_id.as_deref(), Some("offer@example.co.jp"));
    assert_eq!(
        store
            .attachment_messages(&"0".repeat(64), Page::default())
            .unwrap(),
        (0, vec![])
    );
}

#[test]
fn the_script_is_ours_served_as_script_and_nothing_inline() {
    let c = start();
    let js = request(c.addr, "GET", "/static/app.js", &[], "");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.text().contains("keydown"));
    let csp = js.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    for path in ["/search?q=weekly", "/message/1", "/search"] {
        let html = request(c.addr, "GET", path, &[("Cookie", &session)], "").text();
        assert_eq!(html.matches("<script").count(), 1, "{path}: {html}");
        assert!(html.contains("<script src=\"/static/app.js\" defer></script>"));
        assert!(
            !html.contains(" onclick=") && !html.contains(" onkeydown="),
            "{path}"
        );
    }
}

/// Every search link of a page with the number it shows: the figure's link
/// text, or the count at the end of a chart bar's title.
fn counted_links(html: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (i, m) in html.match_indices("<a href=\"/search?q=") {
        let rest = &html[i + m.len()..];
        let q = unurl(&rest[..rest.find('"').unwrap()].replace("&amp;", "&"));
        let inner = &rest[rest.find('>').unwrap() + 1..rest.find("</a>").unwrap()];
        let shown = match inner.find("<title>") {
            Some(t) => {
                let title = &inner[t + 7..inner.find("</title>").unwrap()];
                title.rsplit(' ').next().unwrap().to_string()
            }
            None => inner.to_string(),
        };
        if let Ok(n) = shown.replace(',', "").parse() {
            out.push((q, n));
        }
    }
    out
}

#[test]
fn the_dashboard_counts_the_period_and_every_figure_is_its_search() {
    let c = start_with(seed_thread);
    let (session, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let cookie = [("Cookie", session.as_str())];
    let page = request(
        c.addr,
        "GET",
        "/dashboard?from=2026-11-18&to=2026-11-21",
        &cookie,
        "",
    );
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("<a href=\"/dashboard\">Dashboard</a>"), "nav");
    assert!(html.contains("2026-11-18 to 2026-11-21 (4 days)"), "{html}");
    assert!(html.contains("<svg class=\"chart\""));
    let links = counted_links(&html);
    let find = |q: &str| {
        links
            .iter()
            .find(|(x, _)| x == q)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no link {q} in {links:?}"))
    };
    let period = "after:2026-11-18 before:2026-11-22";
    // 11/18 the offer (out), 11/19 the reply (in), 11/20 two from the
    // common seed (out) and the forward (internal), 11/21 the bounce (in);
    // the greeting of 12/15 is outside.
    assert_eq!(find(period), 6);
    assert_eq!(
        find(&format!(
            "(direction:inbound OR direction:outbound) {period}"
        )),
        5
    );
    assert_eq!(find(&format!("direction:outbound {period}")), 3);
    assert_eq!(find(&format!("direction:internal {period}")), 1);
    assert_eq!(
        find("direction:outbound after:2026-11-20 before:2026-11-21"),
        2
    );
    assert_eq!(
        find("direction:internal after:2026-11-20 before:2026-11-21"),
        1
    );
    assert_eq!(
        find("direction:inbound after:2026-11-19 before:2026-11-20"),
        1
    );
    assert_eq!(find(&format!("from:taro@example.co.jp {period}")), 3);
    assert_eq!(find(&format!("status:bounced {period}")), 1);
    assert_eq!(find(&format!("status:rejected {period}")), 0);
    assert_eq!(
        find(&format!(
            "(from:@partner.example OR to:@partner.example OR cc:@partner.example OR bcc:@partner.example) {period}"
        )),
        4
    );
    assert_eq!(
        find(&format!(
            "status:(bounced OR rejected OR failed OR expired) (to:taro@example.co.jp OR cc:taro@example.co.jp OR bcc:taro@example.co.jp) {period}"
        )),
        1
    );
    // Internal domains are not "external domains".
    assert!(!links
        .iter()
        .any(|(q, _)| q.starts_with("(from:@example.co.jp")));
    // Every figure is what its search finds.
    assert!(links.len() > 20, "{links:?}");
    for (q, n) in &links {
        let answer = request(c.addr, "GET", &format!("/search?q={}", url(q)), &cookie, "");
        assert_eq!(answer.status, 200, "{q}");
        assert_eq!(listed(&answer.text()).len() as u64, *n, "{q}");
    }
    // The largest attachment leads to its message and its other copies.
    let offer = id_of(c.dir.path(), "offer@example.co.jp");
    assert!(
        html.contains(&format!("<a href=\"/message/{offer}\">")),
        "{html}"
    );
    assert!(html.contains("/search?attachment="));
    let audited = audit_actions(c.dir.path());
    assert!(audited.contains(&(
        "etsuran".to_string(),
        "dashboard".to_string(),
        Some("2026-11-18 2026-11-21".to_string())
    )));

    // Japanese labels and dates; the default period (the last 30 days) and
    // a period that cannot be read.
    let ja = [("Cookie", session.as_str()), ("Accept-Language", "ja")];
    let page = request(
        c.addr,
        "GET",
        "/dashboard?from=2026-11-18&to=2026-11-21",
        &ja,
        "",
    );
    let html = page.text();
    for label in [
        "ダッシュボード",
        "日別メール件数",
        "2026/11/18 – 2026/11/21（4 日間）",
        "送信の多い差出人",
        "配信エラー",
        "社外から",
        "11/20",
    ] {
        assert!(html.contains(label), "{label}: {html}");
    }
    let page = request(c.addr, "GET", "/dashboard", &cookie, "");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("(30 days)"));
    let page = request(
        c.addr,
        "GET",
        "/dashboard?from=2026-11-21&to=2026-11-18",
        &cookie,
        "",
    );
    assert_eq!(page.status, 400);
    assert!(page.text().contains("The period could not be read"));
    let page = request(c.addr, "GET", "/dashboard", &[], "");
    assert_eq!(page.status, 303);
}

#[test]
fn the_sources_page_shows_the_services_report_to_administrators_only() {
    let provider = mailtrail_web::SourcesProvider(std::sync::Arc::new(|| {
        serde_json::json!({
            "status": "ok",
            "store": "ok",
            "records_stored": 12345,
            "sources": {
                "smtp": {"connections": 7, "messages_stored": 5},
                "follow": {"lines": 42},
            },
            "pollers": {
                "gmail": {"last_success": 1_795_000_000u64, "last_error": "token expired <again>"},
            },
        })
    }));
    let c = start_with_sources(|_| {}, Some(provider));
    let (admin, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let page = request(c.addr, "GET", "/sources", &[("Cookie", admin.as_str())], "");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    for shown in [
        "<a href=\"/sources\">Sources</a>",
        "Records stored</th><td>12,345",
        "Source — SMTP journal receiver",
        "Connections</th><td>7",
        "Lines read</th><td>42",
        "Poller — gmail",
        "token expired &#60;again&#62;",
    ] {
        assert!(html.contains(shown), "{shown}: {html}");
    }
    let page = request(
        c.addr,
        "GET",
        "/sources",
        &[("Cookie", admin.as_str()), ("Accept-Language", "ja")],
        "",
    );
    assert!(page.text().contains("状態</th><td>正常"), "{}", page.text());
    assert!(audit_actions(c.dir.path())
        .iter()
        .any(|(u, a, _)| u == "kanri" && a == "sources"));

    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let page = request(
        c.addr,
        "GET",
        "/sources",
        &[("Cookie", viewer.as_str())],
        "",
    );
    assert_eq!(page.status, 403);
    assert!(!page.text().contains("href=\"/sources\""));

    // Without a provider (not run by `mailtrail serve`) there is no page.
    let plain = start();
    let (admin, _) = sign_in(plain.addr, "kanri", "kanri-password-1");
    let page = request(
        plain.addr,
        "GET",
        "/sources",
        &[("Cookie", admin.as_str())],
        "",
    );
    assert_eq!(page.status, 404);
    assert!(!page.text().contains("href=\"/sources\""));
}

/// Markup in what senders control — a subject, a display name, a file name —
/// is text everywhere it is shown; identifiers that are not ours (path
/// traversal, non-numbers, huge numbers) are refused without an error page
/// from the server; downloads are attachments that browsers may not sniff.
#[test]
fn sender_controlled_text_is_escaped_and_odd_identifiers_are_refused() {
    const EVIL: &str = "<img src=x onerror=alert(1)>\"'&";
    let c = start_with(|dir| {
        let mut store = SqliteStore::open(
            dir,
            SqliteOptions {
                org_domains: OrgDomains::new(["example.co.jp"]),
                ..Default::default()
            },
        )
        .unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap();
        let raw = mime(
            &format!(
                "From: \"{EVIL}\" <evil@attacker.example>\r\nTo: taro@example.co.jp\r\n\
Subject: zzevil {EVIL}\r\nMessage-ID: <evil-1@attacker.example>"
            ),
            "body",
            &[(&format!("{EVIL}.pdf"), "application/pdf", b"%PDF-1.4 x")],
            76,
        );
        let mut record =
            mailtrail_ingest::mime::parse_message(raw, &mailtrail_ingest::DecodeOptions::default())
                .unwrap();
        record.first_seen = Some(t);
        record.systems = vec!["mailbox".into()];
        store.write_batch(vec![record], vec![]).unwrap();
    });
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str())];
    let evil_id = id_of(c.dir.path(), "evil-1@attacker.example");
    for path in [
        "/search?q=zzevil".to_string(),
        format!("/message/{evil_id}"),
        "/audit".to_string(),
        "/dashboard?from=2026-11-01&to=2026-11-30".to_string(),
    ] {
        let page = request(c.addr, "GET", &path, &cookie, "");
        assert_eq!(page.status, 200, "{path}");
        let html = page.text();
        assert!(!html.contains("<img src=x"), "{path}: markup not escaped");
        assert!(
            !html.contains("onerror=alert(1)>"),
            "{path}: markup not escaped"
        );
    }
    let message = request(c.addr, "GET", &format!("/message/{evil_id}"), &cookie, "").text();
    assert!(
        message.contains("&#60;img src=x onerror=alert(1)&#62;")
            || message.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "shown as text: {message}"
    );

    let raw = request(
        c.addr,
        "GET",
        &format!("/message/{evil_id}/raw"),
        &cookie,
        "",
    );
    assert_eq!(raw.status, 200);
    assert!(raw
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    let file = request(
        c.addr,
        "GET",
        &format!("/message/{evil_id}/attachment/0"),
        &cookie,
        "",
    );
    assert_eq!(file.status, 200);
    let disposition = file.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    // The name is quoted once and carries no raw quote, angle bracket or CR/LF.
    assert_eq!(disposition.matches('"').count(), 2, "{disposition}");
    assert!(
        !disposition.contains(['<', '>', '\r', '\n']),
        "{disposition}"
    );
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));

    for path in [
        "/message/..%2F..%2Fetc%2Fpasswd",
        "/message/1%2F..%2F2",
        "/message/-1",
        "/message/99999999999999999999999",
        "/message/abc/raw",
        "/message/1/attachment/..%2F..%2Fetc%2Fpasswd",
        "/message/1/attachment/99999",
        "/static/..%2F..%2FCargo.toml",
        "/lang/..%2F..%2Fetc",
    ] {
        let answer = request(c.addr, "GET", path, &cookie, "");
        assert!(
            matches!(answer.status, 303 | 400 | 404),
            "{path}: {} {}",
            answer.status,
            answer.text()
        );
        assert!(!answer.text().contains("root:"), "{path}");
        if answer.status == 303 {
            let to = answer.header("location").unwrap_or("");
            assert!(
                to.starts_with('/') && !to.starts_with("//"),
                "{path} → {to}"
            );
        }
    }
    // A form posted without its token, or with another one, is refused,
    // and the session lives on.
    assert_eq!(request(c.addr, "POST", "/logout", &cookie, "").status, 422);
    let forged = request(
        c.addr,
        "POST",
        "/logout",
        &cookie,
        &format!("csrf={}", "0".repeat(64)),
    );
    assert_eq!(forged.status, 403);
    assert_eq!(
        request(c.addr, "GET", "/search?q=zzevil", &cookie, "").status,
        200,
        "still signed in"
    );
}

// ---------------------------------------------------------------- alerts

/// Rules over the common seed: the subject of web-1 (社外秘：見積書, high),
/// its body (見積書をお送りします, low, notifying a channel), and the
/// subject of the log-only web-2 (weekly report, medium).
const ALERT_RULES: &str = r#"
[[rule]]
id = "shagaihi"
name = "社外秘の送信"
[[rule.condition]]
type = "keywords"
words = ["社外秘"]
fields = ["subject"]
[[rule.action]]
type = "alert"
severity = "high"

[[rule]]
id = "mitsumori-body"
name = "見積書の本文"
[[rule.condition]]
type = "keywords"
words = ["見積書をお送り"]
fields = ["body"]
[[rule.action]]
type = "alert"
severity = "low"
[[rule.action]]
type = "notify"
channels = ["security-team"]

[[rule]]
id = "weekly"
name = "週報"
[[rule.condition]]
type = "keywords"
words = ["weekly"]
fields = ["subject"]
[[rule.action]]
type = "alert"
severity = "medium"
"#;

/// A console over the common seed with [`ALERT_RULES`] evaluated.
fn start_with_alerts() -> Console {
    start_with(|dir| {
        assert_eq!(common::raise_alerts(dir, ALERT_RULES).len(), 3);
    })
}

fn message_number(c: &Console, message_id: &str) -> i64 {
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    store.message_by_message_id(message_id).unwrap().unwrap().id
}

/// The alert of `rule`, from the store.
fn alert_of(c: &Console, rule: &str) -> mailtrail_store::alerts::StoredAlert {
    use mailtrail_store::alerts::{AlertFilter, AlertStore};
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    let (_, alerts) = store
        .alerts(&AlertFilter {
            rule: Some(rule.into()),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(alerts.len(), 1, "{rule}: {alerts:?}");
    alerts.into_iter().next().unwrap()
}

/// The alert ids in the inbox's rows, top to bottom.
fn inbox_ids(html: &str) -> Vec<i64> {
    html.split("<tr data-alert=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

const JA: (&str, &str) = ("Accept-Language", "ja");

#[test]
fn the_alert_inbox_lists_newest_first_and_filters_by_state_rule_and_severity() {
    let c = start_with_alerts();
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let get = |path: &str| {
        let answer = request(c.addr, "GET", path, &[("Cookie", &session), JA], "");
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        answer.text()
    };
    let (high, low, medium) = (
        alert_of(&c, "shagaihi"),
        alert_of(&c, "mitsumori-body"),
        alert_of(&c, "weekly"),
    );
    // The header links to the inbox.
    let html = get("/alerts");
    assert!(html.contains("<a href=\"/alerts\">アラート</a>"), "{html}");
    // Newest first: all three were raised in one evaluation, so by number.
    assert_eq!(inbox_ids(&html), vec![medium.id, low.id, high.id]);
    assert!(html.contains("3 件"), "{html}");
    // Columns: raised time in the console's zone, severity, state, rule,
    // the message's subject and sender linking to it, the match.
    let web1 = message_number(&c, "web-1@example.co.jp");
    let row = &html[html.find(&format!("data-alert=\"{}\"", high.id)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    let raised = high
        .raised
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y/%m/%d %H:%M")
        .to_string();
    assert!(row.contains(&raised), "{row}");
    assert!(row.contains("severity-high\">高</span>"), "{row}");
    assert!(row.contains("<td class=\"nowrap\">未対応</td>"), "{row}");
    assert!(row.contains("社外秘の送信"), "{row}");
    assert!(
        row.contains(&format!("<a href=\"/message/{web1}\">社外秘：見積書</a>")),
        "{row}"
    );
    assert!(row.contains("taro@example.co.jp"), "{row}");
    assert!(
        row.contains("keywords — 件名<br><mark>社外秘</mark>"),
        "{row}"
    );

    // Filters: severity, rule, and state (default open + acknowledged).
    assert_eq!(inbox_ids(&get("/alerts?severity=low")), vec![low.id]);
    assert_eq!(inbox_ids(&get("/alerts?rule=weekly")), vec![medium.id]);
    assert_eq!(
        inbox_ids(&get("/alerts?rule=shagaihi&severity=low")),
        Vec::<i64>::new()
    );
    assert_eq!(inbox_ids(&get("/alerts?state=resolved")), Vec::<i64>::new());
    let filtered = get("/alerts?severity=high");
    assert!(
        filtered.contains("<option value=\"high\" selected>高</option>"),
        "{filtered}"
    );
    // Closing an alert takes it out of the default inbox, not out of `all`.
    let mut store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    use mailtrail_store::alerts::{AlertState, AlertStore, AlertUpdate};
    store
        .update_alert(
            medium.id,
            "kanri",
            &AlertUpdate {
                state: Some(AlertState::Resolved),
                ..AlertUpdate::default()
            },
        )
        .unwrap();
    drop(store);
    assert_eq!(inbox_ids(&get("/alerts")), vec![low.id, high.id]);
    assert_eq!(inbox_ids(&get("/alerts?state=resolved")), vec![medium.id]);
    assert_eq!(
        inbox_ids(&get("/alerts?state=all")),
        vec![medium.id, low.id, high.id]
    );
    assert_eq!(
        request(
            c.addr,
            "GET",
            "/alerts?state=closed",
            &[("Cookie", &session)],
            ""
        )
        .status,
        400
    );
    // Each look at the inbox is audited with its filter.
    let actions = audit_actions(c.dir.path());
    let inbox: Vec<_> = actions
        .iter()
        .filter(|(_, action, _)| action == "alerts")
        .map(|(_, _, detail)| detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(inbox[0], "state=open,acknowledged rule= severity=");
    assert!(inbox.contains(&"state=resolved rule= severity=".to_string()));
}

#[test]
fn the_inbox_pages_like_the_search() {
    let c = start_with(|dir| {
        let mut store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap();
        let many = (0..52)
            .map(|n| {
                let mut m = common::log_only_message(&format!("weekly-{n}@example.co.jp"), t);
                m.keys = vec![format!("postfix@mx1:Q{n}")];
                m
            })
            .collect();
        store.write_batch(many, vec![]).unwrap();
        drop(store);
        common::raise_alerts(dir, ALERT_RULES);
    });
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let first = request(
        c.addr,
        "GET",
        "/alerts?rule=weekly",
        &[("Cookie", &session)],
        "",
    )
    .text();
    assert!(first.contains("53 alerts"), "{first}");
    assert_eq!(inbox_ids(&first).len(), 50);
    assert!(
        first.contains("href=\"/alerts?state=&amp;rule=weekly&amp;severity=&amp;page=1\""),
        "{first}"
    );
    let second = request(
        c.addr,
        "GET",
        "/alerts?state=&rule=weekly&severity=&page=1",
        &[("Cookie", &session)],
        "",
    )
    .text();
    assert_eq!(inbox_ids(&second).len(), 3);
    assert!(second.contains("page=0\""), "{second}");
    let mut all = inbox_ids(&first);
    all.extend(inbox_ids(&second));
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(all, sorted, "newest first, no alert on two pages");
}

#[test]
fn an_alert_shows_its_matches_highlighted_its_message_and_is_worked_with_history() {
    let c = start_with_alerts();
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let get = |path: &str| {
        let answer = request(c.addr, "GET", path, &[("Cookie", &session), JA], "");
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        answer.text()
    };
    let (subject, body) = (alert_of(&c, "shagaihi"), alert_of(&c, "mitsumori-body"));
    let web1 = message_number(&c, "web-1@example.co.jp");

    let html = get(&format!("/alerts/{}", subject.id));
    // The words highlighted where the subject has them (from the span).
    assert!(
        html.contains("<td class=\"hit\"><mark>社外秘</mark>：見積書</td>"),
        "{html}"
    );
    assert!(
        html.contains("社外秘の送信 <code>shagaihi</code>"),
        "{html}"
    );
    assert!(html.contains("severity-high\">高</span>"), "{html}");
    assert!(
        html.contains("<td class=\"alert-state\">未対応</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"alert-assignee\">未割り当て</td>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<a href=\"/message/{web1}\">社外秘：見積書</a>")),
        "{html}"
    );
    assert!(html.contains("まだ対応の記録はありません。"), "{html}");
    // The body's match, in its sentence.
    let html = get(&format!("/alerts/{}", body.id));
    assert!(html.contains("<mark>見積書をお送り</mark>します"), "{html}");
    assert!(html.contains("本文"), "{html}");

    // The message page lists its alerts.
    let page = get(&format!("/message/{web1}"));
    assert!(page.contains("このメールのアラート"), "{page}");
    for a in [&subject, &body] {
        assert!(
            page.contains(&format!("<a href=\"/alerts/{}\">", a.id)),
            "{page}"
        );
    }
    assert!(!page.contains("週報"), "only this message's alerts: {page}");

    // Acknowledge, assign and comment.
    let change = request(
        c.addr,
        "POST",
        &format!("/alerts/{}", subject.id),
        &[("Cookie", &session)],
        &format!(
            "csrf={csrf}&state=acknowledged&assignee=sato&comment={}",
            url("取引先に確認中 <b>")
        ),
    );
    assert_eq!(change.status, 303, "{}", change.text());
    let location = format!("/alerts/{}", subject.id);
    assert_eq!(change.header("location"), Some(location.as_str()));
    let stored = alert_of(&c, "shagaihi");
    assert_eq!(
        stored.state,
        mailtrail_store::alerts::AlertState::Acknowledged
    );
    assert_eq!(stored.assignee.as_deref(), Some("sato"));
    let html = get(&location);
    assert!(
        html.contains("<td class=\"alert-state\">対応中</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"alert-assignee\">sato</td>"),
        "{html}"
    );
    let history = &html[html.find("class=\"results history\"").unwrap()..];
    assert!(history.contains("<td>kanri</td>"), "{history}");
    assert!(
        history.contains("対応状況を「対応中」に変更<br>担当者を sato に設定<br>"),
        "{history}"
    );
    assert!(
        history.contains("<td class=\"comment\">取引先に確認中 &#60;b&#62;</td>"),
        "{history}"
    );
    // Resolving it: only the state changed (the assignee was left as it
    // was), and it leaves the inbox.
    let resolve = request(
        c.addr,
        "POST",
        &location,
        &[("Cookie", &session)],
        &format!("csrf={csrf}&state=resolved&assignee=sato&comment="),
    );
    assert_eq!(resolve.status, 303);
    let html = get(&location);
    assert!(
        html.contains("<td class=\"alert-state\">解決済み</td>"),
        "{html}"
    );
    assert_eq!(html.matches("<td>kanri</td>").count(), 2, "{html}");
    assert!(!inbox_ids(&get("/alerts")).contains(&subject.id));

    // Audited: each view with the alert's number, each change with what changed.
    let actions: Vec<_> = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, action, _)| action == "view-alert" || action == "alert-update")
        .collect();
    let update = |detail: &str| {
        (
            "kanri".to_string(),
            "alert-update".to_string(),
            Some(detail.to_string()),
        )
    };
    let view = |rule: &str| {
        (
            "kanri".to_string(),
            "view-alert".to_string(),
            Some(rule.to_string()),
        )
    };
    assert_eq!(
        actions,
        vec![
            view("shagaihi"),
            view("mitsumori-body"),
            update("state=acknowledged assignee=sato comment=取引先に確認中 <b>"),
            view("shagaihi"),
            update("state=resolved"),
            view("shagaihi"),
        ]
    );
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    let targets: Vec<_> = store
        .audit_log(
            &AuditFilter {
                action: Some("view-alert".into()),
                ..AuditFilter::default()
            },
            Page {
                limit: 10,
                offset: 0,
            },
        )
        .unwrap()
        .into_iter()
        .map(|e| e.target.unwrap_or_default())
        .collect();
    assert!(targets.contains(&subject.id.to_string()), "{targets:?}");
    // No such alert.
    assert_eq!(
        request(c.addr, "GET", "/alerts/99999", &[("Cookie", &session)], "").status,
        404
    );
}

#[test]
fn viewers_see_alerts_without_mail_content_and_cannot_change_them() {
    let c = start_with_alerts();
    let (session, csrf) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let (subject, body) = (alert_of(&c, "shagaihi"), alert_of(&c, "mitsumori-body"));
    let inbox = request(c.addr, "GET", "/alerts", &[("Cookie", &session), JA], "").text();
    assert_eq!(inbox_ids(&inbox).len(), 3);
    // The subject's words are metadata; the body's are content.
    assert!(inbox.contains("<mark>社外秘</mark>"), "{inbox}");
    assert!(!inbox.contains("見積書をお送り"), "{inbox}");
    assert!(
        inbox.contains("メールの内容のため、管理者のみ閲覧できます。"),
        "{inbox}"
    );
    let html = request(
        c.addr,
        "GET",
        &format!("/alerts/{}", body.id),
        &[("Cookie", &session), JA],
        "",
    );
    assert_eq!(html.status, 200);
    let html = html.text();
    assert!(!html.contains("見積書をお送り"), "{html}");
    assert!(!html.contains("<mark>"), "{html}");
    assert!(html.contains("メールの内容のため"), "{html}");
    // No form to change it.
    assert!(!html.contains("class=\"alert-change\""), "{html}");
    let html = request(
        c.addr,
        "GET",
        &format!("/alerts/{}", subject.id),
        &[("Cookie", &session)],
        "",
    )
    .text();
    assert!(html.contains("<mark>社外秘</mark>"), "{html}");
    // A change is refused and recorded as denied, even with the form token.
    let refused = request(
        c.addr,
        "POST",
        &format!("/alerts/{}", subject.id),
        &[("Cookie", &session)],
        &format!("csrf={csrf}&state=false-positive&assignee=&comment=x"),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        alert_of(&c, "shagaihi").state,
        mailtrail_store::alerts::AlertState::Open
    );
    let actions = audit_actions(c.dir.path());
    assert!(
        actions.contains(&(
            "etsuran".into(),
            "denied".into(),
            Some("alert-update".into())
        )),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(
            "etsuran".into(),
            "view-alert".into(),
            Some("mitsumori-body".into())
        )),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|(_, a, _)| a == "alert-update"));
}

#[test]
fn an_alert_change_without_the_sessions_form_token_is_refused() {
    let c = start_with_alerts();
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let (other, other_csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    assert_ne!(session, other);
    let subject = alert_of(&c, "shagaihi");
    for body in [
        "state=resolved&assignee=&comment=".to_string(),
        "csrf=forged&state=resolved&assignee=&comment=".to_string(),
        // Another session's token.
        format!("csrf={other_csrf}&state=resolved&assignee=&comment="),
    ] {
        let answer = request(
            c.addr,
            "POST",
            &format!("/alerts/{}", subject.id),
            &[("Cookie", &session)],
            &body,
        );
        assert_eq!(answer.status, 403, "{body}");
    }
    // Without a session: to the sign-in page.
    let anonymous = request(
        c.addr,
        "POST",
        &format!("/alerts/{}", subject.id),
        &[],
        "csrf=x&state=resolved",
    );
    assert_eq!(anonymous.header("location"), Some("/login"));
    assert_eq!(
        alert_of(&c, "shagaihi").state,
        mailtrail_store::alerts::AlertState::Open
    );
    assert!(!audit_actions(c.dir.path())
        .iter()
        .any(|(_, a, _)| a == "alert-update"));
}

#[test]
fn undelivered_notifications_are_listed_on_the_sources_page_and_retried_by_administrators() {
    use mailtrail_store::alerts::{AlertStore, NotificationState};
    let c = start_with_sources(
        |dir| {
            common::raise_alerts(dir, ALERT_RULES);
            let mut store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
            let pending = store
                .notifications(Some(NotificationState::Pending), Page::default())
                .unwrap();
            assert_eq!(pending.len(), 1);
            store
                .notification_failed(pending[0].id, "550 5.7.1 relay <denied>", None)
                .unwrap();
        },
        Some(mailtrail_web::SourcesProvider(std::sync::Arc::new(
            || serde_json::json!({"status": "ok"}),
        ))),
    );
    let body = alert_of(&c, "mitsumori-body");
    let dead = {
        let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
        store
            .notifications(Some(NotificationState::Dead), Page::default())
            .unwrap()
    };
    assert_eq!(dead.len(), 1);
    let id = dead[0].id;
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let html = request(c.addr, "GET", "/sources", &[("Cookie", &session), JA], "").text();
    assert!(html.contains("配信できなかった通知"), "{html}");
    assert!(html.contains("<td>security-team</td>"), "{html}");
    assert!(
        html.contains(&format!("<a href=\"/alerts/{0}\">{0}</a>", body.id)),
        "{html}"
    );
    assert!(html.contains("550 5.7.1 relay &#60;denied&#62;"), "{html}");
    assert!(
        html.contains(&format!("action=\"/notifications/{id}/retry\"")),
        "{html}"
    );
    // A viewer cannot; a forged token cannot.
    let (viewer, viewer_csrf) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let retry = |cookie: &str, token: &str| {
        request(
            c.addr,
            "POST",
            &format!("/notifications/{id}/retry"),
            &[("Cookie", cookie)],
            &format!("csrf={token}"),
        )
    };
    assert_eq!(retry(&viewer, &viewer_csrf).status, 403);
    assert_eq!(retry(&session, "forged").status, 403);
    // The administrator's retry queues it again, due now.
    let answer = retry(&session, &csrf);
    assert_eq!(answer.status, 303);
    assert_eq!(answer.header("location"), Some("/sources"));
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    let pending = store
        .notifications(Some(NotificationState::Pending), Page::default())
        .unwrap();
    assert_eq!(pending.iter().map(|n| n.id).collect::<Vec<_>>(), vec![id]);
    drop(store);
    let html = request(c.addr, "GET", "/sources", &[("Cookie", &session), JA], "").text();
    assert!(
        html.contains("配信できなかった通知はありません。"),
        "{html}"
    );
    // It is no dead letter any more.
    assert_eq!(retry(&session, &csrf).status, 404);
    let actions = audit_actions(c.dir.path());
    let retries: Vec<_> = actions
        .iter()
        .filter(|(_, a, _)| a == "notification-retry")
        .collect();
    assert_eq!(retries.len(), 2, "{actions:?}");
    assert!(actions.contains(&(
        "etsuran".into(),
        "denied".into(),
        Some("notification-retry".into())
    )));
}

#[test]
fn people_and_devices_are_named_from_the_directory_and_follow_its_changes() {
    use mailtrail_model::directory::{
        Device, DeviceAssignment, DirectorySnapshot, EmploymentStatus, Person,
    };
    use mailtrail_store::directory::DirectoryStore;
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
    let c = start_with(|dir| {
        let mut store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
        let mut from_pc = common::log_only_message("pc-1@example.co.jp", t);
        from_pc.keys = vec!["postfix@mx1:PC0001".into()];
        from_pc.envelope_from = Some("taro@example.co.jp".into());
        from_pc.client_ip = Some("10.1.2.3".into());
        from_pc.subject = Some("from the desk".into());
        store.write_batch(vec![from_pc], vec![]).unwrap();
    });
    let person = |id: &str, name: &str, address: &str, department: &str| Person {
        id: id.into(),
        name: Some(name.into()),
        addresses: vec![address.into()],
        department: Some(department.into()),
        ..Person::default()
    };
    let directory = |department: &str, with_jiro: bool| {
        let mut people = vec![person(
            "1001",
            "山田 太郎",
            "taro@example.co.jp",
            department,
        )];
        if with_jiro {
            people.push(Person {
                status: EmploymentStatus::Resigned,
                ..person("1002", "佐藤 次郎", "jiro@example.co.jp", "本社/総務部")
            });
        }
        let mut snapshot = DirectorySnapshot {
            people,
            devices: vec![Device {
                hostname: "PC-0123".into(),
                owner: Some("1001".into()),
                assignments: vec![DeviceAssignment {
                    ip: Some("10.1.2.3".parse().unwrap()),
                    mac: None,
                    from: Some(t - chrono::Duration::days(30)),
                    until: None,
                }],
            }],
        };
        snapshot.normalize();
        snapshot
    };
    let apply = |snapshot: &DirectorySnapshot| {
        let mut store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
        store.apply_directory("hr", snapshot, false).unwrap();
    };
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let page = |path: &str| {
        let answer = request(c.addr, "GET", path, &[("Cookie", &session), JA], "");
        assert_eq!(answer.status, 200, "{path}");
        answer.text()
    };
    let web1 = message_number(&c, "web-1@example.co.jp");
    let web2 = message_number(&c, "web-2@example.co.jp");
    let pc = message_number(&c, "pc-1@example.co.jp");
    // Before any directory: addresses only.
    assert!(!page(&format!("/message/{web1}")).contains("class=\"person"));

    apply(&directory("本社/営業部", true));
    let html = page(&format!("/message/{web1}"));
    assert!(
        html.contains(
            "Taro &#60;taro@example.co.jp&#62; <span class=\"person\">山田 太郎（本社/営業部）</span>"
        ),
        "{html}"
    );
    // Outsiders have no name; nobody else does.
    assert_eq!(html.matches("class=\"person").count(), 1, "{html}");
    // A leaver is marked.
    let html = page(&format!("/message/{web2}"));
    assert!(
        html.contains("jiro@example.co.jp <span class=\"person gone\">佐藤 次郎（本社/総務部）［退職者］</span>"),
        "{html}"
    );
    // The device the message came from, at its time (host names are kept
    // in lower case).
    let html = page(&format!("/message/{pc}"));
    assert!(
        html.contains("<th>端末（PC）</th><td>pc-0123（使用者：山田 太郎）</td>"),
        "{html}"
    );
    // Search results name the sender.
    let results = page(&format!("/search?q={}", url("from:taro@example.co.jp")));
    assert!(
        results.contains(
            "taro@example.co.jp<br><span class=\"person\">山田 太郎（本社/営業部）</span>"
        ),
        "{results}"
    );

    // The directory changes: a department renamed, a leaver dropped. The
    // same mail is named anew.
    apply(&directory("本社/企画部", false));
    let html = page(&format!("/message/{web1}"));
    assert!(html.contains("山田 太郎（本社/企画部）"), "{html}");
    assert!(!html.contains("営業部"), "{html}");
    let html = page(&format!("/message/{web2}"));
    assert!(
        html.contains("佐藤 次郎（本社/総務部）［ディレクトリに登録なし］［退職者］"),
        "{html}"
    );
    let results = page(&format!("/search?q={}", url("from:taro@example.co.jp")));
    assert!(results.contains("山田 太郎（本社/企画部）"), "{results}");
    // English.
    let english = request(
        c.addr,
        "GET",
        &format!("/message/{pc}"),
        &[("Cookie", &session), ("Accept-Language", "en")],
        "",
    )
    .text();
    assert!(
        english.contains("<th>Device (PC)</th><td>pc-0123 (used by 山田 太郎)</td>"),
        "{english}"
    );
}

// ------------------------------------------------------------ coverage

/// Mail of half a day ago (relative to now: coverage looks back from the
/// present): taro's through the journal, jiro's through the relay's log.
fn seed_recent_mail(dir: &Path) {
    let day_ago = Utc::now() - chrono::Duration::hours(12);
    let mut store = common::open_store(dir);
    let journaled = MessageRecord {
        message_id: Some("recent-1@example.co.jp".into()),
        date: Some(day_ago),
        first_seen: Some(day_ago),
        from: Mailbox::new("taro@example.co.jp", Some("Taro")),
        recipients: vec![
            Recipient::new("hanako@partner.example", None, RecipientKind::To).unwrap(),
        ],
        subject: Some("weekly".into()),
        systems: vec!["journal".into()],
        ..Default::default()
    };
    let mut relayed = common::log_only_message("recent-2@example.co.jp", day_ago);
    relayed.keys = vec!["postfix@mx1:RECENT0001".into()];
    store.write_batch(vec![journaled, relayed], vec![]).unwrap();
}

/// The directory: taro, jiro, and hanako of 総務部 who has no mail; two
/// PCs, one of which never sent any.
fn apply_directory(dir: &Path) {
    use mailtrail_model::directory::{Device, DirectorySnapshot, Person};
    use mailtrail_store::directory::DirectoryStore;
    let person = |id: &str, name: &str, address: &str, department: &str| Person {
        id: id.into(),
        name: Some(name.into()),
        addresses: vec![address.into()],
        department: Some(department.into()),
        ..Person::default()
    };
    let mut snapshot = DirectorySnapshot {
        people: vec![
            person("1001", "山田 太郎", "taro@example.co.jp", "本社/営業部"),
            person("1002", "佐藤 次郎", "jiro@example.co.jp", "本社/営業部"),
            person("1003", "鈴木 花子", "suzuki@example.co.jp", "本社/総務部"),
        ],
        devices: vec![Device {
            hostname: "PC-SILENT".into(),
            owner: Some("1003".into()),
            assignments: Vec::new(),
        }],
    };
    snapshot.normalize();
    let mut store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
    store.apply_directory("hr", &snapshot, false).unwrap();
}

#[test]
fn coverage_shows_per_source_what_the_store_reports_and_who_nobody_captured() {
    use mailtrail_store::directory::DirectoryStore;
    let c = start_with(|dir| {
        seed_recent_mail(dir);
        apply_directory(dir);
    });
    // What the store says for the same period (the page looks back 7 days
    // by default; the mail is half a day old, so a second's difference in
    // "now" changes nothing).
    let report = {
        let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
        store
            .coverage(Utc::now() - chrono::Duration::days(7))
            .unwrap()
    };
    assert_eq!(report.people.len(), 3);
    assert_eq!(report.systems, ["journal", "postfix@mx1"]);
    let seen_by = |id: &str| {
        report
            .people
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.seen_by.clone())
            .unwrap()
    };
    // Each source saw one of the two who mailed: each has a gap of one.
    assert_eq!(seen_by("1001"), ["journal"]);
    assert_eq!(seen_by("1002"), ["postfix@mx1"]);

    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    // Without a directory there is nothing to compare: the page says what to do.
    let bare = start();
    let (bare_session, _) = sign_in(bare.addr, "kanri", "kanri-password-1");
    let empty = request(
        bare.addr,
        "GET",
        "/coverage",
        &[("Cookie", &bare_session), JA],
        "",
    );
    assert_eq!(empty.status, 200);
    assert!(
        empty.text().contains("ディレクトリ（社員情報）が空です"),
        "{}",
        empty.text()
    );
    let page = request(c.addr, "GET", "/coverage", &[("Cookie", &session), JA], "");
    assert_eq!(page.status, 200);
    let html = page.text();
    // Per source: the store's count of people each source saw, and its share.
    for system in &report.systems {
        let n = report
            .people
            .iter()
            .filter(|p| p.seen_by.contains(system))
            .count();
        let share = format!("{:.0}%", 100.0 * n as f64 / 3.0);
        assert!(
            html.contains(&format!(
                "<tr data-source=\"{system}\"><td>{system}</td><td class=\"num\">{n}</td><td class=\"num\">{share}</td></tr>"
            )),
            "{system}: {html}"
        );
    }
    assert_eq!(
        html.matches("<tr data-source=").count(),
        report.systems.len()
    );
    // Nobody captured mail for 鈴木 花子: listed with number, name,
    // department and address, and counted.
    let uncaptured: Vec<&str> = report
        .people
        .iter()
        .filter(|p| p.seen_by.is_empty())
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(uncaptured, ["1003"]);
    assert!(
        html.contains(
            "<tr data-person=\"1003\"><td>1003</td><td>鈴木 花子</td><td>本社/総務部</td><td>suzuki@example.co.jp</td></tr>"
        ),
        "{html}"
    );
    assert!(
        html.contains("メールを取得できなかった社員（1 名）"),
        "{html}"
    );
    // Each source's gap: the people another source saw and it did not.
    for system in &report.systems {
        let gap: Vec<&str> = report
            .people
            .iter()
            .filter(|p| !p.seen_by.is_empty() && !p.seen_by.contains(system))
            .map(|p| p.id.as_str())
            .collect();
        let title = format!("{system} では取得できなかった社員（{} 名）", gap.len());
        assert_eq!(html.contains(&title), !gap.is_empty(), "{title}: {html}");
    }
    // The PC that sent nothing.
    assert!(
        html.contains(
            "<tr data-device=\"pc-silent\"><td>pc-silent</td><td>鈴木 花子（1003）</td></tr>"
        ),
        "{html}"
    );
    // The period selector: 7 days chosen; 1 and 30 offered; others refused.
    assert!(
        html.contains("<option value=\"7\" selected>直近 7 日</option>"),
        "{html}"
    );
    assert_eq!(
        request(
            c.addr,
            "GET",
            "/coverage?days=30",
            &[("Cookie", &session)],
            ""
        )
        .status,
        200
    );
    assert_eq!(
        request(
            c.addr,
            "GET",
            "/coverage?days=5",
            &[("Cookie", &session)],
            ""
        )
        .status,
        400
    );

    // A viewer sees it too (no mail content on it), in English here.
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let page = request(
        c.addr,
        "GET",
        "/coverage?days=1",
        &[("Cookie", &viewer), ("Accept-Language", "en")],
        "",
    );
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("Employees with no captured mail (1)"),
        "{}",
        page.text()
    );
    let actions = audit_actions(c.dir.path());
    assert!(actions.contains(&("kanri".into(), "coverage".into(), Some("7d".into()))));
    assert!(actions.contains(&("kanri".into(), "coverage".into(), Some("30d".into()))));
    assert!(actions.contains(&("etsuran".into(), "coverage".into(), Some("1d".into()))));
}

// ------------------------------------------------------------ rules

const CONFIDENTIAL_RULE: &str = r#"
[[rule]]
id = "confidential"
name = "社外秘の送信"
[rule.scope]
directions = ["outbound", "internal"]
[[rule.condition]]
type = "keywords"
words = ["社外秘"]
[[rule.action]]
type = "alert"
severity = "high"
"#;

const BCC_RULE: &str = r#"
[[rule]]
id = "many-bcc"
enabled = false
[[rule.condition]]
type = "bcc"
min = 2
[[rule.action]]
type = "alert"
severity = "low"
"#;

/// Mail of two days ago with and without the keyword: in the subject, in
/// the body only (decoded from the raw message), in an attachment's name,
/// and not at all.
fn seed_keyword_mail(dir: &Path) {
    let opts = mailtrail_ingest::DecodeOptions::default();
    let date = (Utc::now() - chrono::Duration::days(2)).to_rfc2822();
    let message = |id: &str, subject: &str, body: &str, attachments: &[(&str, &str, &[u8])]| {
        let head = format!(
            "From: taro@example.co.jp\r\nTo: hanako@partner.example\r\nSubject: {subject}\r\n\
Message-ID: <{id}>\r\nDate: {date}"
        );
        let mut r =
            mailtrail_ingest::mime::parse_message(mime(&head, body, attachments, 76), &opts)
                .unwrap();
        r.systems = vec!["journal".into()];
        r
    };
    let subject = |s: &str| format!("=?UTF-8?B?{}?=", base64(s.as_bytes(), 1000));
    let records = vec![
        message(
            "kw-subject@example.co.jp",
            &subject("【社外秘】計画"),
            "よろしく",
            &[],
        ),
        message(
            "kw-body@example.co.jp",
            &subject("ご連絡"),
            "この資料は社外秘です。",
            &[],
        ),
        message(
            "kw-file@example.co.jp",
            &subject("資料"),
            "添付します。",
            &[("社外秘_一覧.txt", "text/plain", b"list")],
        ),
        message(
            "kw-none@example.co.jp",
            &subject("見積"),
            "通常の連絡です。",
            &[],
        ),
    ];
    let mut store = common::open_store(dir);
    store.write_batch(records, vec![]).unwrap();
}

/// A console with a rules folder (two files) and the keyword mail.
fn start_with_rules() -> (Console, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("10-confidential.toml"), CONFIDENTIAL_RULE).unwrap();
    std::fs::write(rules.path().join("20-bcc.toml"), BCC_RULE).unwrap();
    let c = common::serve_with_rules(
        |dir| {
            seed(dir);
            seed_keyword_mail(dir);
        },
        None,
        vec![rules.path().to_path_buf()],
    );
    (c, rules)
}

#[test]
fn the_rules_page_lists_the_rules_in_force_and_a_broken_file_plainly() {
    let (c, rules) = start_with_rules();
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let get = |path: &str| request(c.addr, "GET", path, &[("Cookie", &session), JA], "");
    let page = get("/rules");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("ルール 2 件（有効 1 件）"), "{html}");
    // Each rule with its name, state, severity, scope, conditions and origin
    // (where the service's own loader says it is defined).
    let policy = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap();
    let origin = |id: &str| policy.rule(id).unwrap().origin.clone();
    assert!(origin("confidential").contains("10-confidential.toml:"));
    let row = |id: &str| {
        let start = html
            .find(&format!("<tr data-rule=\"{id}\""))
            .unwrap_or_else(|| panic!("no rule {id}: {html}"));
        html[start..start + html[start..].find("</tr>").unwrap()].to_string()
    };
    let confidential = row("confidential");
    for expected in [
        "<strong>社外秘の送信</strong>",
        "<code>confidential</code>",
        "<td class=\"nowrap rule-state\">有効</td>",
        "<span class=\"severity severity-high\">高</span>",
        "<span class=\"muted\">方向</span> 社外宛, 社内",
        "<strong>キーワード</strong>",
        "<span class=\"muted\">キーワード</span> 社外秘",
        "/rules/dry-run?rule=confidential",
    ] {
        assert!(
            confidential.contains(expected),
            "{expected}: {confidential}"
        );
    }
    assert!(
        confidential.contains(&format!(
            "<td class=\"rule-origin\">{}</td>",
            origin("confidential")
        )),
        "{confidential}"
    );
    let bcc = row("many-bcc");
    assert!(
        bcc.starts_with("<tr data-rule=\"many-bcc\" class=\"rule-off\">"),
        "{bcc}"
    );
    assert!(bcc.contains("rule-state\">無効</td>"), "{bcc}");
    assert!(
        bcc.contains("<span class=\"severity severity-low\">低</span>"),
        "{bcc}"
    );
    assert!(bcc.contains("すべてのメール"), "{bcc}");
    assert!(bcc.contains("<strong>BCC</strong>"), "{bcc}");
    assert!(bcc.contains(&origin("many-bcc")), "{bcc}");

    // A broken file: the page says which file, which line and why, and
    // lists no half-read rules.
    let broken = rules.path().join("30-broken.toml");
    std::fs::write(&broken, "[[rule]]\nid = \"broken\"\nseverity = \"high\"\n").unwrap();
    let error = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap_err();
    let mailtrail_policy::LoadError::Policy(mailtrail_policy::PolicyError::Syntax {
        line,
        message,
        ..
    }) = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*line, 3, "{error}");
    let html = get("/rules").text();
    assert!(
        html.contains(&format!(
            "<td class=\"rule-error-file\">{}</td>",
            broken.display()
        )),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"rule-error-line\">3</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"rule-error-rule\">broken</td>"),
        "{html}"
    );
    let reason_start = html.find("<td class=\"rule-error-reason\">").unwrap();
    let reason = &html[reason_start..];
    assert!(
        reason.contains("severity")
            && reason.contains(
                message
                    .split('\n')
                    .next()
                    .unwrap()
                    .split('`')
                    .next()
                    .unwrap()
            ),
        "{message}: {html}"
    );
    assert!(!html.contains("<tr data-rule="), "{html}");
    // A dry run needs rules that load: back to the page that says why.
    let back = get("/rules/dry-run?rule=confidential&period=7d");
    assert_eq!(back.status, 303);
    assert_eq!(back.header("location"), Some("/rules"));
    // English too.
    let english = request(
        c.addr,
        "GET",
        "/rules",
        &[("Cookie", &session), ("Accept-Language", "en")],
        "",
    )
    .text();
    assert!(english.contains("The rule files do not load"), "{english}");

    // Viewers may not look: refused and recorded.
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    assert_eq!(
        request(c.addr, "GET", "/rules", &[("Cookie", &viewer)], "").status,
        403
    );
    let actions = audit_actions(c.dir.path());
    assert!(actions.contains(&("kanri".into(), "rules".into(), None)));
    assert!(actions.contains(&("etsuran".into(), "denied".into(), Some("rules".into()))));
}

#[test]
fn a_dry_run_finds_exactly_what_a_search_for_the_keyword_finds() {
    use mailtrail_store::alerts::{AlertFilter, AlertStore};
    let (c, _rules) = start_with_rules();
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let get = |path: &str| request(c.addr, "GET", path, &[("Cookie", &session), JA], "");
    let page = get("/rules/dry-run?rule=confidential&period=30d");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let found = listed(&html);
    // The same keyword searched in the same period, in the rule's
    // directions (outbound and internal).
    let search = get(&format!(
        "/search?q={}",
        url("社外秘 newer_than:30d (direction:outbound OR direction:internal)")
    ));
    assert_eq!(search.status, 200);
    let searched = listed(&search.text());
    assert_eq!(found, searched, "{html}");
    let n = |id: &str| message_number(&c, id);
    for hit in [
        "kw-subject@example.co.jp",
        "kw-body@example.co.jp",
        "kw-file@example.co.jp",
    ] {
        assert!(found.contains(&n(hit)), "{hit}: {html}");
    }
    assert!(!found.contains(&n("kw-none@example.co.jp")), "{html}");
    assert!(
        html.contains(&format!("直近 30 日で {} 件のメールが一致", found.len())),
        "{html}"
    );
    // Each match says which condition matched where, with the words.
    assert!(
        html.contains("キーワード — 本文<br><mark>社外秘</mark>"),
        "{html}"
    );
    assert!(
        html.contains("キーワード — 件名<br><mark>社外秘</mark>"),
        "{html}"
    );
    // The other periods run; an unknown period or rule is refused.
    assert_eq!(
        get("/rules/dry-run?rule=confidential&period=7d").status,
        200
    );
    assert_eq!(get("/rules/dry-run?rule=many-bcc&period=90d").status, 200);
    assert_eq!(
        get("/rules/dry-run?rule=confidential&period=1y").status,
        400
    );
    assert_eq!(get("/rules/dry-run?rule=nothing&period=7d").status, 404);
    // Nothing was raised.
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(store.alerts(&AlertFilter::default()).unwrap().0, 0);

    // A viewer may not run it: refused and recorded.
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let refused = request(
        c.addr,
        "GET",
        "/rules/dry-run?rule=confidential&period=30d",
        &[("Cookie", &viewer)],
        "",
    );
    assert_eq!(refused.status, 403);
    let entries = store
        .audit_log(
            &AuditFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .unwrap();
    let run = entries
        .iter()
        .find(|e| e.action == "rule-dry-run" && e.detail.as_deref() == Some("30d"))
        .expect("the dry run is audited");
    assert_eq!(run.user, "kanri");
    assert_eq!(run.target.as_deref(), Some("confidential"));
    let denied = entries
        .iter()
        .find(|e| e.action == "denied" && e.user == "etsuran")
        .expect("the viewer's attempt is audited");
    assert_eq!(denied.target.as_deref(), Some("confidential"));
    assert_eq!(denied.detail.as_deref(), Some("rule-dry-run"));
}

// ------------------------------------------------------------ rule editor

/// The text of a page's textarea, unescaped as a browser shows it.
fn textarea(html: &str) -> String {
    let start = html.find("<textarea").expect("a textarea");
    let start = start + html[start..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</textarea>").unwrap();
    unescape(&html[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A form body: `key=value&…`, values URL-encoded.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", url(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn audit_entries(dir: &Path) -> Vec<mailtrail_store::console::AuditEntry> {
    let store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
    store
        .audit_log(
            &AuditFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .unwrap()
}

fn audited(dir: &Path, user: &str, action: &str, target: &str) -> bool {
    audit_entries(dir)
        .iter()
        .any(|e| e.user == user && e.action == action && e.target.as_deref() == Some(target))
}

fn rule_enabled(rules: &Path, id: &str) -> bool {
    mailtrail_policy::load_rule_paths(&[rules.to_path_buf()])
        .unwrap()
        .rule(id)
        .unwrap_or_else(|| panic!("no rule {id}"))
        .rule
        .enabled
}

#[test]
fn rules_are_switched_on_and_off_and_the_file_follows() {
    let (c, rules) = start_with_rules();
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];
    let page = request(c.addr, "GET", "/rules", &cookie, "").text();
    assert!(
        page.contains("<form method=\"post\" action=\"/rules/many-bcc/state\""),
        "{page}"
    );
    assert!(page.contains("href=\"/rules/many-bcc/edit\""), "{page}");
    let file = rules.path().join("20-bcc.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(!rule_enabled(rules.path(), "many-bcc"));

    // Without the session's form token nothing changes.
    let refused = request(
        c.addr,
        "POST",
        "/rules/many-bcc/state",
        &cookie,
        &form(&[("state", "on")]),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // On: the file says so, the previous version is kept, the page lists
    // it as on and says when the service applies it.
    let on = request(
        c.addr,
        "POST",
        "/rules/many-bcc/state",
        &cookie,
        &form(&[("csrf", &csrf), ("state", "on")]),
    );
    assert_eq!(on.status, 303, "{}", on.text());
    assert_eq!(on.header("location"), Some("/rules?saved=many-bcc"));
    assert!(rule_enabled(rules.path(), "many-bcc"));
    assert!(rule_enabled(rules.path(), "confidential"));
    assert_eq!(
        std::fs::read_to_string(rules.path().join("20-bcc.toml.bak")).unwrap(),
        before
    );
    // No temporary file is left beside the rules.
    let names: Vec<String> = std::fs::read_dir(rules.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let html = request(c.addr, "GET", "/rules?saved=many-bcc", &cookie, "").text();
    assert!(html.contains("ルール 2 件（有効 2 件）"), "{html}");
    assert!(
        html.contains(
            "ルール「many-bcc」を保存しました。稼働中のサービスには 5 秒以内に反映されます"
        ),
        "{html}"
    );
    let start = html.find("<tr data-rule=\"many-bcc\"").unwrap();
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    assert!(row.contains("rule-state\">有効</td>"), "{row}");
    assert!(row.contains("value=\"off\""), "{row}");

    // And off again.
    let off = request(
        c.addr,
        "POST",
        "/rules/many-bcc/state",
        &cookie,
        &form(&[("csrf", &csrf), ("state", "off")]),
    );
    assert_eq!(off.status, 303);
    assert!(!rule_enabled(rules.path(), "many-bcc"));
    let html = request(c.addr, "GET", "/rules", &cookie, "").text();
    assert!(html.contains("ルール 2 件（有効 1 件）"), "{html}");
    // An unknown rule or state.
    assert_eq!(
        request(
            c.addr,
            "POST",
            "/rules/nothing/state",
            &cookie,
            &form(&[("csrf", &csrf), ("state", "on")]),
        )
        .status,
        404
    );
    assert_eq!(
        request(
            c.addr,
            "POST",
            "/rules/many-bcc/state",
            &cookie,
            &form(&[("csrf", &csrf), ("state", "maybe")]),
        )
        .status,
        400
    );
    assert!(audited(c.dir.path(), "kanri", "rule-enable", "many-bcc"));
    assert!(audited(c.dir.path(), "kanri", "rule-disable", "many-bcc"));

    // A viewer may not: refused, recorded, the file untouched.
    let (viewer, viewer_csrf) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let written = std::fs::read_to_string(&file).unwrap();
    let refused = request(
        c.addr,
        "POST",
        "/rules/many-bcc/state",
        &[("Cookie", &viewer)],
        &form(&[("csrf", &viewer_csrf), ("state", "on")]),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    let denied = audit_entries(c.dir.path())
        .into_iter()
        .find(|e| e.user == "etsuran" && e.action == "denied")
        .expect("the viewer's attempt is recorded");
    assert_eq!(denied.target.as_deref(), Some("many-bcc"));
    assert_eq!(denied.detail.as_deref(), Some("rule-enable"));
}

/// A file with a list and two rules, written by hand with comments.
const MIXED_RULES: &str = r#"# Rules of the sales department (hand-written)
[lists]
customers = ["顧客リスト", "customer list"]

[[rule]]
id = "customer-list"
name = "顧客リストの送信"
[[rule.condition]]
type = "keywords"
lists = ["customers"]
[[rule.action]]
type = "alert"
severity = "medium"

# The second rule stays as it is.
[[rule]]
id = "big-attachment"
[[rule.condition]]
type = "attachment_size"
min_bytes = 20000000
[[rule.action]]
type = "tag"
tags = ["大容量"]
"#;

#[test]
fn an_edited_rule_is_checked_before_its_file_is_rewritten() {
    let (c, rules) = start_with_rules();
    let file = rules.path().join("30-mixed.toml");
    std::fs::write(&file, MIXED_RULES).unwrap();
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];

    let page = request(c.addr, "GET", "/rules/customer-list/edit", &cookie, "");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let text = textarea(&html);
    // The rule as the model writes it, which reads back as the same rule.
    let policy = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap();
    let shown = mailtrail_policy::edit::parse_one_rule("shown", &text).unwrap();
    assert_eq!(&shown, &policy.rule("customer-list").unwrap().rule);
    assert!(
        text.starts_with("[[rule]]\nid = \"customer-list\""),
        "{text}"
    );
    assert!(html.contains("コメントや項目の順序は失われます"), "{html}");
    assert!(html.contains(&file.display().to_string()), "{html}");
    assert!(html.contains("5 秒以内に反映"), "{html}");
    assert_eq!(
        request(c.addr, "GET", "/rules/nothing/edit", &cookie, "").status,
        404
    );

    let save = |text: &str| {
        request(
            c.addr,
            "POST",
            "/rules/customer-list/edit",
            &cookie,
            &form(&[("csrf", &csrf), ("text", text)]),
        )
    };
    // A misspelt key: the line inside the submitted text, the form still
    // filled, the file untouched and no backup made.
    let misspelt = text.replace("severity = \"medium\"", "severty = \"medium\"");
    let line = misspelt
        .lines()
        .position(|l| l.starts_with("severty"))
        .unwrap()
        + 1;
    let refused = save(&misspelt);
    assert_eq!(refused.status, 422);
    let html = refused.text();
    assert!(
        html.contains(&format!("<td class=\"rule-error-line\">{line}</td>")),
        "{line}: {html}"
    );
    assert!(
        html.contains("<td class=\"rule-error-file\">入力したルール</td>"),
        "{html}"
    );
    assert!(html.contains("severty"), "{html}");
    assert!(html.contains(&file.display().to_string()), "{html}");
    assert_eq!(textarea(&html), misspelt);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), MIXED_RULES);
    assert!(!rules.path().join("30-mixed.toml.bak").exists());
    // A rule that parses but does not compile with the others: an unknown
    // list, and an id another file already uses.
    let unknown = text.replace("\"customers\"", "\"no-such-list\"");
    let html = save(&unknown).text();
    assert!(html.contains("no list named `no-such-list`"), "{html}");
    let taken = text.replace("id = \"customer-list\"", "id = \"confidential\"");
    let html = save(&taken).text();
    assert!(html.contains("already used"), "{html}");
    // Markup in the text is shown as text.
    let html = save("[[rule]]\nid = \"<b>x</b>\"\n").text();
    assert!(!html.contains("<b>x</b>"), "{html}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), MIXED_RULES);

    // A good edit: the file is rewritten with the other rule and the list
    // unchanged in meaning, the hand-written version kept as .bak, and
    // the folder compiles with the new rule.
    let edited = text
        .replace(
            "name = \"顧客リストの送信\"",
            "name = \"顧客リストの社外送信\"",
        )
        .replace("severity = \"medium\"", "severity = \"high\"");
    let saved = save(&edited);
    assert_eq!(saved.status, 303, "{}", saved.text());
    assert_eq!(saved.header("location"), Some("/rules?saved=customer-list"));
    assert_eq!(
        std::fs::read_to_string(rules.path().join("30-mixed.toml.bak")).unwrap(),
        MIXED_RULES
    );
    let before = mailtrail_policy::parse_rule_file("before", MIXED_RULES).unwrap();
    let after =
        mailtrail_policy::parse_rule_file("after", &std::fs::read_to_string(&file).unwrap())
            .unwrap();
    assert_eq!(after.lists, before.lists);
    assert_eq!(after.rules.len(), 2);
    assert_eq!(after.rules[1], before.rules[1]);
    let policy = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap();
    let rule = &policy.rule("customer-list").unwrap().rule;
    assert_eq!(rule.name.as_deref(), Some("顧客リストの社外送信"));
    assert_eq!(
        rule.actions,
        vec![mailtrail_policy::Action::Alert {
            severity: mailtrail_policy::Severity::High,
            assignee: None
        }]
    );
    assert_eq!(policy.rules.len(), 4);
    assert!(audited(c.dir.path(), "kanri", "rule-edit", "customer-list"));
    // Other files were not touched.
    assert_eq!(
        std::fs::read_to_string(rules.path().join("10-confidential.toml")).unwrap(),
        CONFIDENTIAL_RULE
    );

    // A viewer may neither look nor save.
    let (viewer, viewer_csrf) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let viewer = [("Cookie", viewer.as_str())];
    assert_eq!(
        request(c.addr, "GET", "/rules/customer-list/edit", &viewer, "").status,
        403
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        request(
            c.addr,
            "POST",
            "/rules/customer-list/edit",
            &viewer,
            &form(&[("csrf", &viewer_csrf), ("text", &text)]),
        )
        .status,
        403
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    let entries = audit_entries(c.dir.path());
    assert!(entries.iter().any(|e| e.user == "etsuran"
        && e.action == "denied"
        && e.detail.as_deref() == Some("rule-edit")));
}

#[test]
fn a_new_rule_starts_from_a_template_and_goes_to_console_toml() {
    let (c, rules) = start_with_rules();
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];
    let list = request(c.addr, "GET", "/rules", &cookie, "").text();
    assert!(list.contains("href=\"/rules/new\""), "{list}");
    let page = request(c.addr, "GET", "/rules/new", &cookie, "");
    assert_eq!(page.status, 200);
    let html = page.text();
    let template = textarea(&html);
    let rule = mailtrail_policy::edit::parse_one_rule("template", &template).unwrap();
    assert!(!rule.enabled, "a new rule starts off: {template}");
    assert_eq!(rule.name.as_deref(), Some("新しいルール"));
    let target = rules.path().join("console.toml");
    assert!(html.contains(&target.display().to_string()), "{html}");

    let create = |text: &str| {
        request(
            c.addr,
            "POST",
            "/rules/new",
            &cookie,
            &form(&[("csrf", &csrf), ("text", text)]),
        )
    };
    // The template's id is new; the same id twice is refused.
    let text = template.replace("id = \"new-rule\"", "id = \"pw-words\"");
    let created = create(&text);
    assert_eq!(created.status, 303, "{}", created.text());
    assert_eq!(created.header("location"), Some("/rules?saved=pw-words"));
    let again = create(&text);
    assert_eq!(again.status, 422);
    assert!(again.text().contains("already used"), "{}", again.text());
    // A second new rule joins the first in the same file.
    let second = create(&template.replace("id = \"new-rule\"", "id = \"second\""));
    assert_eq!(second.status, 303);
    let file = mailtrail_policy::parse_rule_file(
        "console.toml",
        &std::fs::read_to_string(&target).unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = file.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["pw-words", "second"]);
    let policy = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap();
    assert!(policy.rule("pw-words").is_some());
    assert_eq!(policy.rules.len(), 4);
    let html = request(c.addr, "GET", "/rules", &cookie, "").text();
    assert!(html.contains("<tr data-rule=\"pw-words\""), "{html}");
    assert!(audited(c.dir.path(), "kanri", "rule-create", "pw-words"));

    // A viewer may not.
    let (viewer, viewer_csrf) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let viewer = [("Cookie", viewer.as_str())];
    assert_eq!(
        request(c.addr, "GET", "/rules/new", &viewer, "").status,
        403
    );
    let refused = request(
        c.addr,
        "POST",
        "/rules/new",
        &viewer,
        &form(&[
            ("csrf", &viewer_csrf),
            ("text", &text.replace("pw-words", "v")),
        ]),
    );
    assert_eq!(refused.status, 403);
    assert!(
        mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()])
            .unwrap()
            .rule("v")
            .is_none()
    );
    assert!(audit_entries(c.dir.path())
        .iter()
        .any(|e| e.user == "etsuran"
            && e.action == "denied"
            && e.detail.as_deref() == Some("rule-create")));
}

#[test]
fn without_a_rules_folder_new_rules_are_refused_plainly() {
    let rules = tempfile::tempdir().unwrap();
    let only = rules.path().join("rules.toml");
    std::fs::write(&only, CONFIDENTIAL_RULE).unwrap();
    let c = common::serve_with_rules(seed, None, vec![only.clone()]);
    let (session, csrf) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];
    let list = request(c.addr, "GET", "/rules", &cookie, "").text();
    assert!(!list.contains("href=\"/rules/new\""), "{list}");
    let html = request(c.addr, "GET", "/rules/new", &cookie, "").text();
    assert!(
        html.contains("新しいルールを保存するフォルダーがありません"),
        "{html}"
    );
    assert!(!html.contains("<textarea"), "{html}");
    let refused = request(
        c.addr,
        "POST",
        "/rules/new",
        &cookie,
        &form(&[
            ("csrf", &csrf),
            (
                "text",
                "[[rule]]\nid = \"x\"\n[[rule.condition]]\ntype = \"bcc\"\n",
            ),
        ]),
    );
    assert_eq!(refused.status, 409);
    assert_eq!(std::fs::read_to_string(&only).unwrap(), CONFIDENTIAL_RULE);
    assert_eq!(std::fs::read_dir(rules.path()).unwrap().count(), 1);
    // Editing a rule of a named file works.
    let text = textarea(&request(c.addr, "GET", "/rules/confidential/edit", &cookie, "").text());
    let saved = request(
        c.addr,
        "POST",
        "/rules/confidential/edit",
        &cookie,
        &form(&[("csrf", &csrf), ("text", &text.replace("社外秘", "極秘"))]),
    );
    assert_eq!(saved.status, 303, "{}", saved.text());
    let policy = mailtrail_policy::load_rule_paths(&[only]).unwrap();
    assert!(matches!(
        &policy.rule("confidential").unwrap().rule.conditions[0],
        mailtrail_policy::Condition::Keywords { words, .. } if words == &["極秘".to_string()]
    ));
}

// ------------------------------------------------------------ risk

/// The directory of the risk view: Yamada (sales, romaji name), Suzuki
/// who has resigned, and Sato.
fn risk_directory(dir: &Path) {
    use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
    use mailtrail_store::directory::DirectoryStore;
    let person = |id: &str, name: &str, romaji: &str, address: &str, department: &str| Person {
        id: id.into(),
        name: Some(name.into()),
        romaji: Some(romaji.into()),
        addresses: vec![address.into()],
        department: Some(department.into()),
        ..Person::default()
    };
    let mut suzuki = person(
        "1002",
        "鈴木 一郎",
        "Ichiro Suzuki",
        "ichiro.suzuki@example.co.jp",
        "本社/開発部",
    );
    suzuki.status = EmploymentStatus::Resigned;
    let mut snapshot = DirectorySnapshot {
        people: vec![
            person(
                "1001",
                "山田 太郎",
                "Taro Yamada",
                "taro.yamada@example.co.jp",
                "本社/営業部",
            ),
            suzuki,
            person(
                "1003",
                "佐藤 花子",
                "Hanako Sato",
                "hanako.sato@example.co.jp",
                "本社/営業部",
            ),
        ],
        devices: Vec::new(),
    };
    snapshot.normalize();
    let mut store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
    store.apply_directory("hr", &snapshot, false).unwrap();
}

/// Yamada mails a customer every working morning from 11/11 to 11/25; on
/// Thursday 11/26 he sends six messages to customers and one to his own
/// Gmail address after 21:00 (Tokyo). Suzuki, who has resigned, mails
/// Yamada on 11/25.
fn risk_mail(dir: &Path) {
    let mut n = 0;
    let mut records = Vec::new();
    let mut mail = |day: u32, hour: u32, minute: u32, from: &str, to: &str| {
        n += 1;
        let t = chrono_tz::Asia::Tokyo
            .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
            .with_timezone(&Utc);
        records.push(MessageRecord {
            message_id: Some(format!("risk-{n}@example.co.jp")),
            date: Some(t),
            first_seen: Some(t),
            from: Mailbox::new(from, None),
            recipients: vec![Recipient::new(to, None, RecipientKind::To).unwrap()],
            subject: Some(format!("mail {n}")),
            systems: vec!["journal".into()],
            ..Default::default()
        });
    };
    const TARO: &str = "taro.yamada@example.co.jp";
    for day in 11..=25 {
        // 14, 15, 21, 22 are a weekend, 23 a holiday (勤労感謝の日).
        if ![14, 15, 21, 22, 23].contains(&day) {
            mail(day, 10, 0, TARO, "buyer@partner.example");
        }
    }
    mail(25, 10, 0, "ichiro.suzuki@example.co.jp", TARO);
    for minute in 0..6 {
        mail(26, 21, minute, TARO, "buyer@partner.example");
    }
    mail(26, 21, 30, TARO, "taro.yamada.1985@gmail.com");
    let mut store = common::open_store(dir);
    store.write_batch(records, vec![]).unwrap();
}

fn start_with_risk(risk: Option<mailtrail_web::RiskPageOptions>) -> Console {
    common::serve_with(
        |dir| {
            seed(dir);
            risk_mail(dir);
            risk_directory(dir);
        },
        None,
        Vec::new(),
        risk,
    )
}

#[test]
fn the_risk_page_is_not_there_unless_the_organisation_enables_it() {
    let c = start_with_risk(None);
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];
    let search = request(c.addr, "GET", "/search", &cookie, "").text();
    assert!(!search.contains("href=\"/risk\""), "{search}");
    let page = request(c.addr, "GET", "/risk", &cookie, "");
    assert_eq!(page.status, 404);
    let html = page.text();
    assert!(html.contains("リスクビューは無効です"), "{html}");
    assert!(html.contains("enabled = true"), "{html}");
    let english = request(
        c.addr,
        "GET",
        "/risk",
        &[("Cookie", &session), ("Accept-Language", "en")],
        "",
    );
    assert_eq!(english.status, 404);
    assert!(english.text().contains("The risk view is off"));
    assert!(!audit_entries(c.dir.path())
        .iter()
        .any(|e| e.action == "risk"));
}

#[test]
fn the_risk_page_ranks_people_explains_each_point_and_links_to_their_mail() {
    let c = start_with_risk(Some(mailtrail_web::RiskPageOptions {
        days: 3,
        baseline_days: 14,
    }));
    let (session, _) = sign_in(c.addr, "kanri", "kanri-password-1");
    let cookie = [("Cookie", session.as_str()), JA];
    let search = request(c.addr, "GET", "/search", &cookie, "").text();
    assert!(search.contains("<a href=\"/risk\">リスク</a>"), "{search}");
    let page = request(c.addr, "GET", "/risk?days=3&until=2026-11-27", &cookie, "");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    // Ranked: Yamada 55 first, Suzuki (a leaver) 20; Sato is not listed.
    let ranked: Vec<&str> = html
        .match_indices("<tr data-person=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(ranked, ["1001", "1002"], "{html}");
    assert!(html.contains("スコアのある社員 2 人"), "{html}");
    let start = html.find("<tr data-person=\"1001\"").unwrap();
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    for expected in [
        ">55</a>",
        "山田 太郎",
        "本社/営業部",
        "<td>在籍</td>",
        "<td class=\"num\">8</td>",
        "時間外送信、私用アドレス宛て",
    ] {
        assert!(row.contains(expected), "{expected}: {row}");
    }
    // Yamada's day: each signal with its points and sentence.
    let start = html
        .find("<section class=\"risk-person\" id=\"person-1\"")
        .unwrap();
    let section = &html[start..start + html[start..].find("</section>").unwrap()];
    assert!(
        section.contains("2026/11/26 <strong>55</strong>"),
        "{section}"
    );
    assert!(section.contains("<td class=\"num\">+30</td>"), "{section}");
    assert!(
        section.contains("勤務時間外（9:00–18:00 以外）の送信が 7 通（本人の平常時はなし）"),
        "{section}"
    );
    assert!(section.contains("<td class=\"num\">+25</td>"), "{section}");
    assert!(section.contains("taro.yamada.1985@gmail.com"), "{section}");
    assert!(section.contains("href=\"/alerts\""), "{section}");
    // The day's search finds exactly that day's seven messages.
    let link = format!(
        "/search?q={}",
        url("employee:1001 after:2026-11-26 before:2026-11-27")
    );
    assert!(section.contains(&link), "{section}");
    let found = request(c.addr, "GET", &link, &cookie, "");
    assert_eq!(found.status, 200);
    assert_eq!(listed(&found.text()).len(), 7, "{}", found.text());
    let suzuki = html.find("id=\"person-2\"").unwrap();
    assert!(
        html[suzuki..].contains("退職済みの人の送信（在籍区分: 退職）"),
        "{html}"
    );
    // The scoring table is on the page.
    assert!(html.contains("採点表"), "{html}");
    assert!(html.contains("1 件 25 点（最大 50 点）"), "{html}");

    // English sentences for an English visitor.
    let english = request(
        c.addr,
        "GET",
        "/risk?days=3&until=2026-11-27",
        &[("Cookie", &session), ("Accept-Language", "en")],
        "",
    )
    .text();
    assert!(
        english.contains(
            "7 messages sent outside working hours (09:00–18:00): usually none for the person"
        ),
        "{english}"
    );

    // The department tab: the sales department's Thursday evening, as a
    // possible sign of unrecorded overtime.
    let html = request(
        c.addr,
        "GET",
        "/risk?days=3&until=2026-11-27&view=departments",
        &cookie,
        "",
    )
    .text();
    assert!(html.contains("無断残業）の兆候の可能性"), "{html}");
    let start = html.find("<tr data-department=\"本社/営業部\"").unwrap();
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    assert!(row.contains("2026/11/26"), "{row}");
    assert!(row.contains("<td class=\"num\">7</td>"), "{row}");
    assert!(row.contains("山田 太郎（7 件）"), "{row}");
    // Periods and views not offered are refused.
    assert_eq!(
        request(c.addr, "GET", "/risk?days=1000", &cookie, "").status,
        400
    );
    assert_eq!(
        request(c.addr, "GET", "/risk?view=everyone", &cookie, "").status,
        400
    );
    assert_eq!(
        request(c.addr, "GET", "/risk?until=yesterday", &cookie, "").status,
        400
    );

    // Audited; a viewer is refused, recorded, and not shown the link.
    let (viewer, _) = sign_in(c.addr, "etsuran", "etsuran-password-1");
    let viewer = [("Cookie", viewer.as_str())];
    assert!(!request(c.addr, "GET", "/search", &viewer, "")
        .text()
        .contains("href=\"/risk\""));
    assert_eq!(request(c.addr, "GET", "/risk", &viewer, "").status, 403);
    let entries = audit_entries(c.dir.path());
    assert!(entries.iter().any(|e| e.user == "kanri"
        && e.action == "risk"
        && e.detail.as_deref() == Some("2026-11-25..2026-11-27 people")));
    assert!(entries.iter().any(|e| e.user == "etsuran"
        && e.action == "denied"
        && e.detail.as_deref() == Some("risk")));
}
