//! The web console over real HTTP: sign-in with its CSRF token and brake,
//! the two roles, search and export, the message page with its sanitised
//! body, raw download, the audit log of every look, and both languages.
//!
//! The router runs in-process on a loopback port over a store seeded with
//! messages through the same `write_batch` the importers use; requests are
//! plain HTTP/1.1 written by hand, so every header is what a browser sends
//! and every answer is checked as a browser would get it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use mailtrail_model::{
    Delivery, DeliveryStatus, Mailbox, MessageRecord, OrgDomains, Recipient, RecipientKind,
};
use mailtrail_store::console::{AuditFilter, ConsoleStore, Role};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store};

const HTML_MAIL: &str = "From: Taro <taro@example.co.jp>\r\nTo: hanako@partner.example\r\n\
Subject: =?UTF-8?B?56S+5aSW56eY77ya6KaL56mN5pu4?=\r\nMessage-ID: <web-1@example.co.jp>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>見積書をお送りします<script>alert('x')</script><img src=\"https://tracker.example/p.gif\">\
<a href=\"https://partner.example/portal\">ポータル</a></p>\r\n";

fn seed(dir: &Path) {
    let mut store = SqliteStore::open(
        dir,
        SqliteOptions {
            org_domains: OrgDomains::new(["example.co.jp"]),
            ..Default::default()
        },
    )
    .unwrap();
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
    let log_only = MessageRecord {
        keys: vec!["postfix@mx1:ABCDEF1234".into()],
        message_id: Some("web-2@example.co.jp".into()),
        first_seen: Some(t),
        envelope_from: Some("jiro@example.co.jp".into()),
        recipients: vec![
            Recipient::new("x@partner.example", None, RecipientKind::Envelope).unwrap(),
        ],
        subject: Some("weekly report".into()),
        systems: vec!["postfix@mx1".into()],
        deliveries: vec![Delivery {
            time: t,
            recipient: "x@partner.example".into(),
            status: DeliveryStatus::Delivered,
            detail: Some("250 ok".into()),
            system: "postfix@mx1".into(),
            relay: Some("mx.partner.example[192.0.2.25]:25".into()),
            client_ip: None,
            client_host: None,
            local_id: Some("ABCDEF1234".into()),
            original_recipient: None,
        }],
        ..Default::default()
    };
    store
        .write_batch(vec![with_content, log_only], vec![])
        .unwrap();
}

struct Console {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn start() -> Console {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    mailtrail_web::add_user(dir.path(), "kanri", "kanri-password-1", Role::Administrator).unwrap();
    mailtrail_web::add_user(dir.path(), "etsuran", "etsuran-password-1", Role::Viewer).unwrap();
    let router = mailtrail_web::router(mailtrail_web::WebOptions {
        data_dir: dir.path().to_path_buf(),
        org_domains: vec!["example.co.jp".into()],
        timezone: chrono_tz::Asia::Tokyo,
        secure_cookies: false,
        session_length: Duration::from_secs(3600),
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Console {
        addr,
        dir,
        _runtime: runtime,
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name=value` of a cookie the answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().iter().find_map(|c| {
            let pair = c.split(';').next()?;
            pair.starts_with(&format!("{name}="))
                .then(|| pair.to_string())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn form_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign in; returns the session cookie (`mt_session=…`) and the CSRF token.
fn sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let form = request(addr, "GET", "/login", &[], "");
    assert_eq!(form.status, 200);
    let login_cookie = form.cookie("mt_login").unwrap();
    let token = form_value(&form.text(), "csrf");
    let answer = request(
        addr,
        "POST",
        "/login",
        &[("Cookie", &login_cookie)],
        &format!("user={user}&password={}&csrf={token}", url(password)),
    );
    assert_eq!(answer.status, 303, "{}", answer.text());
    let session = answer.cookie("mt_session").expect("session cookie");
    let set = answer
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("mt_session="))
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let page = request(addr, "GET", "/search", &[("Cookie", &session)], "");
    let csrf = form_value(&page.text(), "csrf");
    (session, csrf)
}

fn audit_actions(dir: &Path) -> Vec<(String, String, Option<String>)> {
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
        .into_iter()
        .rev()
        .map(|e| (e.user, e.action, e.detail.or(e.target)))
        .collect()
}

#[test]
fn everything_but_the_sign_in_page_needs_a_session() {
    let c = start();
    for path in [
        "/search?q=x",
        "/message/1",
        "/message/1/raw",
        "/audit",
        "/search/export?q=x",
    ] {
        let answer = request(c.addr, "GET", path, &[], "");
        assert_eq!(answer.status, 303, "{path}");
        assert_eq!(answer.header("location"), Some("/login"), "{path}");
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
