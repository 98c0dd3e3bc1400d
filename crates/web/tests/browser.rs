//! The web console in a real browser: Debian's Chromium, headless, driven
//! through ChromeDriver over the W3C WebDriver protocol.
//!
//! One browser walks the console as an investigator would: signs in by
//! typing into the form, searches by typing Japanese into the query box,
//! clicks a result and reads its trail, opens a hostile HTML mail, switches
//! language, looks at the pages at a desktop and a tablet width, works an
//! alert from the inbox, edits and switches off a monitoring rule, and
//! signs out. What only a browser can show is checked in the browser itself:
//! scripts of the mail never ran, nothing was fetched from the mail's image
//! host (a local listener stands in for it, and Chromium resolves its name
//! to loopback), the content policy blocks what a sanitiser bug would let
//! through, links in the mail are not links, and the page does not scroll
//! sideways.
//!
//! The console runs in-process over a seeded store, as in `console.rs`.
//! ChromeDriver is started on a free loopback port and stopped when the
//! test ends; Chromium is started by ChromeDriver from the session's
//! capabilities, headless, with a new empty profile. Without
//! `/usr/bin/chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`) the test says it was skipped.

mod common;
mod webdriver;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::{audit_actions, Console, ADMIN};
use mailtrail_model::{Delivery, DeliveryStatus, Mailbox, MessageRecord, Recipient, RecipientKind};
use mailtrail_store::Store;
use serde_json::{json, Value};
use webdriver::{
    browser_programs, decode_png, form_encode, wait_until, Browser, Driver, ENTER, WAIT,
};

/// The name Chromium resolves to the local listener that plays the mail's
/// image host (`--host-resolver-rules`).
const TRACKER_HOST: &str = "tracker.test";
const HTML_SUBJECT: &str = "社外秘：見積書";
const RESEND_SUBJECT: &str = "見積書の再送について";
const WEEKLY_SUBJECT: &str = "週次報告（第47週）";

// ---------------------------------------------------------------- the console

/// A hostile HTML mail: scripts in every place a script can hide, a remote
/// image, remote styles, a frame, and a link — all aimed at the tracker.
fn html_mail(tracker: &str) -> String {
    format!(
        "From: Taro <taro@example.co.jp>\r\nTo: hanako@partner.example\r\n\
Subject: =?UTF-8?B?56S+5aSW56eY77ya6KaL56mN5pu4?=\r\nMessage-ID: <web-1@example.co.jp>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
<html><head><title>mail</title>\
<script>document.title='PWNED';window.__mailScript='head';new Image().src='http://{tracker}/script-beacon.gif';</script>\
<link rel=\"stylesheet\" href=\"http://{tracker}/mail.css\">\
<style>body {{ background: url(http://{tracker}/style-bg.png) }}</style></head>\
<body><p>見積書をお送りします。ご確認ください。</p>\
<img src=\"http://{tracker}/pixel.gif?u=hanako\" width=\"1\" height=\"1\">\
<div style=\"background-image:url(http://{tracker}/div-bg.png)\">背景つきの段落</div>\
<p><a href=\"http://{tracker}/portal?u=hanako\">ポータルにログイン</a></p>\
<img src=\"x\" onerror=\"window.__mailScript='onerror';document.title='PWNED'\">\
<iframe src=\"http://{tracker}/frame.html\"></iframe>\
<svg><script>window.__mailScript='svg'</script></svg>\
<p onmouseover=\"window.__mailScript='handler'\">以上、よろしくお願いいたします。</p>\
</body></html>\r\n"
    )
}

fn seed(dir: &Path, tracker: &str) {
    let mut store = common::open_store(dir);
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
    let delivery =
        |time, recipient: &str, status, detail: &str, system: &str, relay: &str| Delivery {
            time,
            recipient: recipient.into(),
            status,
            detail: Some(detail.into()),
            system: system.into(),
            relay: Some(relay.into()),
            client_ip: None,
            client_host: None,
            local_id: Some("ABCDEF1234".into()),
            original_recipient: None,
        };
    let html = MessageRecord {
        message_id: Some("web-1@example.co.jp".into()),
        date: Some(t),
        first_seen: Some(t),
        from: Mailbox::new("taro@example.co.jp", Some("Taro")),
        recipients: vec![
            Recipient::new("hanako@partner.example", None, RecipientKind::To).unwrap(),
            Recipient::new("secret@rival.example", None, RecipientKind::Bcc).unwrap(),
        ],
        subject: Some(HTML_SUBJECT.into()),
        body_text: Some("見積書をお送りします。ご確認ください。".into()),
        raw: Some(html_mail(tracker).into_bytes()),
        systems: vec!["journal".into()],
        ..Default::default()
    };
    let t2 = t + chrono::Duration::minutes(30);
    let resend = MessageRecord {
        keys: vec!["postfix@mx1:ABCDEF1234".into()],
        message_id: Some("web-2@example.co.jp".into()),
        first_seen: Some(t2),
        envelope_from: Some("jiro@example.co.jp".into()),
        recipients: vec![
            Recipient::new("hanako@partner.example", None, RecipientKind::Envelope).unwrap(),
            Recipient::new("ichiro@partner.example", None, RecipientKind::Envelope).unwrap(),
        ],
        subject: Some(RESEND_SUBJECT.into()),
        systems: vec!["postfix@mx1".into()],
        deliveries: vec![
            delivery(
                t2,
                "hanako@partner.example",
                DeliveryStatus::Deferred,
                "451 4.7.1 try again later",
                "postfix@mx1",
                "mx.partner.example[192.0.2.25]:25",
            ),
            delivery(
                t2 + chrono::Duration::minutes(5),
                "hanako@partner.example",
                DeliveryStatus::Delivered,
                "250 2.0.0 ok queued",
                "postfix@mx1",
                "mx.partner.example[192.0.2.25]:25",
            ),
            delivery(
                t2 + chrono::Duration::minutes(5),
                "ichiro@partner.example",
                DeliveryStatus::Delivered,
                "250 2.0.0 ok queued",
                "postfix@mx1",
                "mx.partner.example[192.0.2.25]:25",
            ),
        ],
        ..Default::default()
    };
    // A row that must not match 見積書, with many long recipients: the
    // table has to fit a tablet all the same.
    let weekly = MessageRecord {
        message_id: Some("web-3@example.co.jp".into()),
        date: Some(t),
        first_seen: Some(t),
        from: Mailbox::new("somu-bu.shukei-tanto@example.co.jp", None),
        recipients: (1..=8)
            .map(|n| {
                Recipient::new(
                    &format!("eigyo-honbu.dai{n}-kaigai-eigyo-ka@subsidiary.example.co.jp"),
                    None,
                    RecipientKind::To,
                )
                .unwrap()
            })
            .collect(),
        subject: Some(WEEKLY_SUBJECT.into()),
        systems: vec!["journal".into()],
        ..Default::default()
    };
    store
        .write_batch(vec![html, resend, weekly], vec![])
        .unwrap();
}

/// One rule, matching the HTML mail's subject.
const ALERT_RULE: &str = r#"
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
"#;

/// The console, and the folder of its rule files (the alert's rule).
fn start_console(tracker: &str) -> (Console, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("shagaihi.toml"), ALERT_RULE).unwrap();
    let console = common::serve_with_rules(
        |dir| {
            seed(dir, tracker);
            assert_eq!(common::raise_alerts(dir, ALERT_RULE).len(), 1);
        },
        None,
        vec![rules.path().to_path_buf()],
    );
    (console, rules)
}

// ---------------------------------------------------------------- the "remote" host

/// A loopback HTTP server standing in for the mail's image host: records
/// every request it gets and answers each with a 1×1 GIF.
struct Tracker {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

impl Tracker {
    fn start() -> Tracker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hits, stop) = (hits.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => Tracker::answer(stream, &hits),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Tracker {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn answer(stream: TcpStream, hits: &Mutex<Vec<String>>) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        // Recorded before anything else: a connection is a hit even if it
        // never sends a whole request.
        let line = line.trim().to_string();
        hits.lock().unwrap().push(if line.is_empty() {
            "(a connection without a request)".into()
        } else {
            line
        });
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let mut stream = &stream;
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: {}\r\n\
Connection: close\r\n\r\n",
                GIF.len()
            )
            .as_bytes(),
        );
        let _ = stream.write_all(GIF);
    }

    fn authority(&self) -> String {
        format!("{TRACKER_HOST}:{}", self.port)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------- the test

/// Layout facts of the page at the current viewport.
fn layout(browser: &Browser, selectors: &[&str]) -> Value {
    browser.js(
        "const out = {inner: innerWidth, scroll: document.documentElement.scrollWidth,
                      dpr: devicePixelRatio, elements: {}};
         for (const sel of arguments[0]) {
             const el = document.querySelector(sel);
             if (!el) { out.elements[sel] = null; continue; }
             const r = el.getBoundingClientRect();
             out.elements[sel] = {left: r.left, right: r.right, width: r.width,
                                  visible: el.checkVisibility()};
         }
         return out;",
        json!([selectors]),
    )
}

fn assert_fits(browser: &Browser, page: &str, selectors: &[&str]) {
    let facts = layout(browser, selectors);
    let inner = facts["inner"].as_f64().unwrap();
    assert!(
        facts["scroll"].as_f64().unwrap() <= inner,
        "{page} scrolls sideways at {inner} px: {facts}"
    );
    for sel in selectors {
        let el = &facts["elements"][sel];
        assert!(!el.is_null(), "{page}: no {sel}");
        assert_eq!(el["visible"], true, "{page}: {sel} is hidden: {facts}");
        assert!(
            el["left"].as_f64().unwrap() >= 0.0 && el["right"].as_f64().unwrap() <= inner,
            "{page}: {sel} is not within the {inner} px viewport: {facts}"
        );
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    let (console, rules) = start_console(&tracker.authority());
    let base = format!("http://{}", console.addr);
    let driver = Driver::start(&chromedriver, work.path());
    let browser = Browser::start(
        &driver,
        &chromium,
        work.path().join("profile"),
        &[format!(
            "--host-resolver-rules=MAP {TRACKER_HOST} 127.0.0.1"
        )],
        json!({}),
    );
    assert!(
        browser
            .js("return navigator.language", json!([]))
            .as_str()
            .unwrap()
            .starts_with("ja"),
        "the browser is set to Japanese"
    );

    // -- Sign-in, in the browser's language (Accept-Language: ja; the
    // console's default is English and no language cookie is set yet).
    browser.goto(&format!("{base}/"));
    browser.wait_path("the sign-in page", |p| p == "/login");
    assert!(
        !browser.cookies().iter().any(|(name, _)| name == "mt_lang"),
        "no language chosen yet"
    );
    let html_lang = || browser.js("return document.documentElement.lang", json!([]));
    assert_eq!(html_lang(), "ja");
    assert_eq!(browser.text(&browser.wait_for("h1")), "ログイン");
    let user = browser.wait_for("input[name=user]");
    browser.type_text(&user, ADMIN.0);
    browser.type_text(&browser.wait_for("input[name=password]"), "wrong-password");
    browser.click(&browser.wait_for("form[action='/login'] button[type=submit]"));
    let alert = browser.wait_for("[role=alert]");
    assert_eq!(
        browser.text(&alert),
        "ユーザー名またはパスワードが違います。"
    );
    assert_eq!(browser.path(), "/login");
    // The form keeps the name; the password is typed again.
    let user = browser.wait_for("input[name=user]");
    assert_eq!(browser.property(&user, "value"), ADMIN.0);
    browser.type_text(&browser.wait_for("input[name=password]"), ADMIN.1);
    browser.click(&browser.wait_for("form[action='/login'] button[type=submit]"));
    browser.wait_path("the search page after signing in", |p| {
        p.starts_with("/search")
    });
    let who = browser.text(&browser.wait_for(".who"));
    assert!(who.contains(ADMIN.0) && who.contains("管理者"), "{who}");

    // -- A search typed into the box (Japanese, by key events) and submitted with Enter.
    let q = browser.wait_for("#q");
    browser.type_text(&q, "存在しない件名");
    browser.type_text(&q, ENTER);
    let empty = format!("q={}", form_encode("存在しない件名"));
    browser.wait_path("the empty results", |p| p.contains(&empty));
    assert_eq!(browser.text(&browser.wait_for(".count strong")), "0 件");
    assert!(browser.find_all("table.results tbody tr").is_empty());
    let q = browser.wait_for("#q");
    browser.clear(&q);
    browser.type_text(&q, "見積書");
    browser.type_text(&q, ENTER);
    let wanted = format!("q={}", form_encode("見積書"));
    browser.wait_path("the results", |p| p.contains(&wanted));
    assert_eq!(
        browser.property(&browser.wait_for("#q"), "value"),
        "見積書",
        "the query stays in the box"
    );
    assert_eq!(browser.text(&browser.wait_for(".count strong")), "2 件");
    let rows = browser.find_all("table.results tbody tr");
    assert_eq!(rows.len(), 2, "two rows");
    let table = browser.text(&browser.wait_for("table.results tbody"));
    assert!(
        table.contains(HTML_SUBJECT) && table.contains(RESEND_SUBJECT),
        "{table}"
    );
    assert!(!table.contains(WEEKLY_SUBJECT), "{table}");
    assert!(
        table.contains("secret@rival.example"),
        "Bcc shown to the administrator: {table}"
    );

    // -- A result opens its message with the delivery trail.
    browser.click(&browser.link(RESEND_SUBJECT));
    browser.wait_path("the resent message", |p| p.starts_with("/message/"));
    assert_eq!(browser.text(&browser.wait_for("h1")), RESEND_SUBJECT);
    assert_eq!(browser.title(), format!("{RESEND_SUBJECT} — mailtrail"));
    let trail_rows = browser.find_all("table.trail tbody tr");
    assert_eq!(trail_rows.len(), 3, "three delivery events");
    let trail = browser.text(&browser.wait_for("table.trail"));
    for want in [
        "遅延",
        "配信済み",
        "451 4.7.1 try again later",
        "mx.partner.example[192.0.2.25]:25",
        "ichiro@partner.example",
        "postfix@mx1",
    ] {
        assert!(trail.contains(want), "{want} not in the trail: {trail}");
    }
    // Events in time order: the deferral first.
    assert!(browser.text(&trail_rows[0]).contains("遅延"));

    // -- The hostile HTML mail: nothing of it runs or loads, links are text.
    browser.back();
    browser.wait_path("the results again", |p| p.starts_with("/search?"));
    browser.click(&browser.link(HTML_SUBJECT));
    browser.wait_path("the HTML mail", |p| p.starts_with("/message/"));
    let body = browser.wait_for(".html-body");
    let body_text = browser.text(&body);
    assert!(body_text.contains("見積書をお送りします。"), "{body_text}");
    assert!(
        body_text.contains(&format!("[http://{}/portal?u=hanako]", tracker.authority())),
        "the link's address is shown as text: {body_text}"
    );
    assert_eq!(
        browser.title(),
        format!("{HTML_SUBJECT} — mailtrail"),
        "the mail's script did not set the title"
    );
    let page = browser.js(
        "const body = document.querySelector('.html-body');
         return {
             mailScript: window.__mailScript === undefined ? null : String(window.__mailScript),
             links: body.querySelectorAll('a[href], area[href]').length,
             anyLinkToTracker: [...document.querySelectorAll('[href], [src]')]
                 .filter(e => (e.href || e.src || '').includes(arguments[0])).length,
             active: body.querySelectorAll('script, img, iframe, object, embed, link, style, form, svg').length,
             handlers: [...body.querySelectorAll('*')]
                 .filter(e => [...e.attributes].some(a => a.name.startsWith('on') || a.name === 'style')).length,
             resources: performance.getEntriesByType('resource').map(r => r.name),
             origin: location.origin,
         };",
        json!([TRACKER_HOST]),
    );
    assert_eq!(page["mailScript"], Value::Null, "a mail script ran: {page}");
    assert_eq!(page["links"], 0, "a clickable link in the body: {page}");
    assert_eq!(page["anyLinkToTracker"], 0, "{page}");
    assert_eq!(page["active"], 0, "active content left in the body: {page}");
    assert_eq!(page["handlers"], 0, "handlers or styles left: {page}");
    let origin = page["origin"].as_str().unwrap();
    for resource in page["resources"].as_array().unwrap() {
        assert!(
            resource.as_str().unwrap().starts_with(origin),
            "the page loaded {resource} from elsewhere"
        );
    }
    // Clicking the link's text goes nowhere.
    let before = browser.url();
    let link_text = browser.wait_for(".html-body .link");
    assert_eq!(browser.text(&link_text), "ポータルにログイン");
    browser.click(&link_text);
    assert_eq!(browser.url(), before, "the link's text is not a link");

    // The second line: were the sanitiser to let markup through, the content
    // policy stops it. Put a script and a remote image into the live page
    // and watch the browser refuse both.
    browser.js(
        "window.__violations = [];
         document.addEventListener('securitypolicyviolation',
             e => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));
         const body = document.querySelector('.html-body');
         const script = document.createElement('script');
         script.textContent = 'window.__mailScript = \"injected\"';
         body.appendChild(script);
         const image = document.createElement('img');
         image.src = 'http://' + arguments[0] + '/injected.gif';
         body.appendChild(image);
         body.insertAdjacentHTML('beforeend',
             '<img src=\"x\" onerror=\"window.__mailScript = 1\">');",
        json!([tracker.authority()]),
    );
    let violations = wait_until("the content policy to refuse 3 things", WAIT, || {
        let v = browser.js("return window.__violations", json!([]));
        (v.as_array().unwrap().len() >= 3).then_some(v)
    });
    let violations = violations.to_string();
    assert!(
        violations.contains("script-src-elem") && violations.contains("script-src-attr"),
        "{violations}"
    );
    assert!(
        violations.contains(&format!("img-src http://{}", tracker.authority())),
        "{violations}"
    );
    assert_eq!(
        browser.js("return window.__mailScript === undefined", json!([])),
        true,
        "an injected script ran"
    );

    // -- The language switch: to English and back, on the same page.
    let message_path = browser.path();
    browser.click(&browser.wait_for("a.lang"));
    wait_until("the page in English", WAIT, || {
        (html_lang() == "en").then_some(())
    });
    assert_eq!(browser.path(), message_path, "back on the same page");
    let headings: Vec<String> = browser
        .find_all("h2")
        .iter()
        .map(|h| browser.text(h))
        .collect();
    assert!(
        headings.iter().any(|h| h == "Delivery trail") && headings.iter().any(|h| h == "Body"),
        "{headings:?}"
    );
    assert!(browser
        .text(&browser.wait_for(".who"))
        .contains("administrator"));
    assert!(
        browser
            .cookies()
            .iter()
            .any(|(name, value)| name == "mt_lang" && value == "en"),
        "the choice is kept in a cookie"
    );
    assert_eq!(browser.text(&browser.wait_for("a.lang")), "日本語");
    browser.click(&browser.wait_for("a.lang"));
    wait_until("the page in Japanese again", WAIT, || {
        (html_lang() == "ja").then_some(())
    });

    // -- Layout at a desktop and a tablet width, with one screenshot each.
    let mut screenshots = Vec::new();
    for (width, height, name) in [(1280, 800, "desktop"), (820, 1180, "tablet")] {
        browser.set_viewport(width, height);
        browser.goto(&format!(
            "{base}/search?q={}",
            form_encode("報告 OR 見積書")
        ));
        browser.wait_path("the results", |p| p.starts_with("/search?"));
        let facts = layout(&browser, &[]);
        assert_eq!(facts["dpr"], 1, "{facts}");
        assert_eq!(browser.text(&browser.wait_for(".count strong")), "3 件");
        assert_fits(
            &browser,
            &format!("the results at {name} width"),
            &[
                "#q",
                "form:has(#q) button[type=submit]",
                "table.results",
                ".count",
            ],
        );
        let shot = browser.screenshot();
        // Whatever the page folds away (filters) must fit when unfolded too.
        browser.js(
            "document.querySelectorAll('details').forEach(d => d.open = true)",
            json!([]),
        );
        assert_fits(
            &browser,
            &format!("the results with everything unfolded at {name} width"),
            &["#q", "table.results"],
        );
        let file = work
            .path()
            .join(format!("search-{name}-{width}x{height}.png"));
        std::fs::write(&file, &shot).unwrap();
        let (w, h, colours) = decode_png(&std::fs::read(&file).unwrap());
        assert_eq!((w, h), (width as u32, height as u32), "{}", file.display());
        assert!(
            colours >= 8,
            "{} looks blank ({colours} colours)",
            file.display()
        );
        // Kept for a look when asked (never committed).
        if let Some(keep) = std::env::var_os("MAILTRAIL_SCREENSHOTS") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&file, Path::new(&keep).join(file.file_name().unwrap())).unwrap();
        }
        screenshots.push(file);

        browser.click(&browser.link(RESEND_SUBJECT));
        browser.wait_path("the message", |p| p.starts_with("/message/"));
        assert_fits(
            &browser,
            &format!("the message at {name} width"),
            &["h1", "table.headers", "table.trail"],
        );
        browser.back();
        browser.wait_path("the results", |p| p.starts_with("/search?"));
        browser.click(&browser.link(HTML_SUBJECT));
        browser.wait_path("the HTML message", |p| p.starts_with("/message/"));
        assert_fits(
            &browser,
            &format!("the HTML message at {name} width"),
            &["h1", "table.headers", ".html-body"],
        );
    }

    // -- An alert, from the inbox to its page, worked with the form (at the
    // tablet width the layout loop left).
    browser.click(&browser.link("アラート"));
    browser.wait_path("the alert inbox", |p| p == "/alerts");
    assert_eq!(browser.text(&browser.wait_for(".count strong")), "1 件");
    let inbox = browser.text(&browser.wait_for("table.alerts tbody"));
    for want in [
        "高",
        "未対応",
        "社外秘の送信",
        HTML_SUBJECT,
        "taro@example.co.jp",
    ] {
        assert!(inbox.contains(want), "{want} not in the inbox: {inbox}");
    }
    assert_fits(
        &browser,
        "the alert inbox",
        &["table.alerts", "form.alert-filters"],
    );
    browser.click(&browser.link("社外秘の送信"));
    let alert_path = browser.wait_path("the alert", |p| p.starts_with("/alerts/"));
    assert_eq!(browser.text(&browser.wait_for("td.hit mark")), "社外秘");
    assert_eq!(browser.text(&browser.wait_for("td.hit")), HTML_SUBJECT);
    assert_fits(
        &browser,
        "the alert",
        &["h1", "table.hits", "form.alert-change"],
    );
    browser.click(&browser.wait_for("select[name=state] option[value=acknowledged]"));
    let assignee = browser.wait_for("input[name=assignee]");
    browser.type_text(&assignee, "sato");
    browser.type_text(
        &browser.wait_for("textarea[name=comment]"),
        "取引先に確認します",
    );
    browser.click(&browser.wait_for("form.alert-change button[type=submit]"));
    wait_until("the alert acknowledged", WAIT, || {
        browser
            .find(".alert-state")
            .filter(|state| browser.text_if_present(state).as_deref() == Some("対応中"))
            .map(|_| ())
    });
    assert_eq!(browser.path(), alert_path, "back on the alert");
    assert_eq!(browser.text(&browser.wait_for(".alert-assignee")), "sato");
    let history = browser.text(&browser.wait_for("table.history tbody"));
    assert!(
        history.contains("対応中")
            && history.contains("取引先に確認します")
            && history.contains(ADMIN.0),
        "{history}"
    );
    // Out of the inbox's default view once resolved.
    browser.click(&browser.wait_for("select[name=state] option[value=resolved]"));
    browser.click(&browser.wait_for("form.alert-change button[type=submit]"));
    wait_until("the alert resolved", WAIT, || {
        browser
            .find(".alert-state")
            .filter(|state| browser.text_if_present(state).as_deref() == Some("解決済み"))
            .map(|_| ())
    });
    browser.click(&browser.link("アラート"));
    browser.wait_path("the alert inbox", |p| p == "/alerts");
    assert_eq!(browser.text(&browser.wait_for(".count strong")), "0 件");

    // -- The rules in force, a dry run of the alert's rule from the page,
    // and the coverage page (still at the tablet width).
    browser.click(&browser.link("監視ルール"));
    browser.wait_path("the rules", |p| p == "/rules");
    let rule = browser.text(&browser.wait_for("tr[data-rule=shagaihi]"));
    assert!(
        rule.contains("社外秘の送信") && rule.contains("有効") && rule.contains("社外秘"),
        "{rule}"
    );
    assert_fits(
        &browser,
        "the rules",
        &["table.rules", "form.alert-filters", "td.rule-origin"],
    );
    browser.click(&browser.wait_for("select[name=period] option[value='90d']"));
    browser.click(&browser.wait_for("form.alert-filters button[type=submit]"));
    browser.wait_path("the dry run", |p| p.starts_with("/rules/dry-run?"));
    let count = browser.text(&browser.wait_for(".dry-run-count"));
    assert!(count.starts_with("直近 90 日で "), "{count}");
    assert_fits(&browser, "the dry run", &["h1", ".dry-run-count"]);

    // -- The rule edited in the page: a misspelt key is shown with its
    // line and the text kept; the corrected rule is saved to its file;
    // then it is switched off from the list.
    browser.click(&browser.link("監視ルール"));
    browser.wait_path("the rules", |p| p == "/rules");
    browser.click(&browser.wait_for("tr[data-rule=shagaihi] a.rule-edit"));
    browser.wait_path("the rule editor", |p| p == "/rules/shagaihi/edit");
    let editor = browser.wait_for("form.rule-editor textarea");
    let shown = browser.property(&editor, "value");
    let shown = shown.as_str().unwrap().to_string();
    assert!(shown.contains("severity = \"high\""), "{shown}");
    let misspelt = shown.replace("severity = \"high\"", "severty = \"medium\"");
    browser.clear(&editor);
    browser.type_text(&editor, &misspelt);
    browser.click(&browser.wait_for("form.rule-editor button[type=submit]"));
    let line = browser.text(&browser.wait_for(".rule-error-line"));
    let expected = misspelt
        .lines()
        .position(|l| l.starts_with("severty"))
        .unwrap()
        + 1;
    assert_eq!(line, expected.to_string());
    let editor = browser.wait_for("form.rule-editor textarea");
    assert_eq!(
        browser.property(&editor, "value").as_str(),
        Some(misspelt.as_str())
    );
    assert_fits(
        &browser,
        "the rule editor",
        &["h1", "form.rule-editor textarea"],
    );
    browser.clear(&editor);
    browser.type_text(&editor, &misspelt.replace("severty", "severity"));
    browser.click(&browser.wait_for("form.rule-editor button[type=submit]"));
    browser.wait_path("the rules after a save", |p| p == "/rules?saved=shagaihi");
    let saved = browser.text(&browser.wait_for(".rule-saved"));
    assert!(saved.contains("5 秒以内に反映"), "{saved}");
    let rule = browser.text(&browser.wait_for("tr[data-rule=shagaihi]"));
    assert!(rule.contains("中") && rule.contains("有効"), "{rule}");
    browser.click(&browser.wait_for("tr[data-rule=shagaihi] form.rule-switch button"));
    browser.wait_path("the rules after the switch", |p| {
        p == "/rules?saved=shagaihi"
    });
    wait_until("the rule switched off", WAIT, || {
        browser
            .find("tr[data-rule=shagaihi].rule-off")
            .map(|row| browser.text(&row))
            .filter(|t| t.contains("無効"))
    });
    let policy = mailtrail_policy::load_rule_paths(&[rules.path().to_path_buf()]).unwrap();
    let compiled = &policy.rule("shagaihi").unwrap().rule;
    assert!(!compiled.enabled);
    assert_eq!(
        compiled.actions,
        vec![mailtrail_policy::Action::Alert {
            severity: mailtrail_policy::Severity::Medium,
            assignee: None
        }]
    );
    assert!(rules.path().join("shagaihi.toml.bak").exists());
    browser.click(&browser.link("収集カバレッジ"));
    browser.wait_path("the coverage", |p| p == "/coverage");
    assert_fits(
        &browser,
        "the coverage",
        &["h1", "form.alert-filters", ".count"],
    );

    // -- Sign-out: back to the sign-in page, and the session is gone.
    browser.sign_out();
    browser.goto(&format!("{base}/search?q={}", form_encode("見積書")));
    browser.wait_path("the sign-in page for a signed-out visit", |p| p == "/login");

    // -- Nothing reached the mail's image host in all of the above; and the
    // host is reachable from this browser, so that silence means something.
    let hits = tracker.hits();
    assert!(
        hits.is_empty(),
        "the browser fetched from the mail's host: {hits:?}"
    );
    // An image that a page of another loopback origin, without the
    // console's policy, asks of the host reaches it.
    browser.goto(&format!("http://127.0.0.1:{}/control-page", tracker.port));
    browser.js(
        "document.body.appendChild(document.createElement('img')).src =
             'http://' + arguments[0] + '/control.gif';",
        json!([tracker.authority()]),
    );
    wait_until("the control request at the image host", WAIT, || {
        tracker
            .hits()
            .iter()
            .any(|h| h.starts_with("GET /control.gif "))
            .then_some(())
    });

    // -- The browser's work is in the audit log, the typed query intact.
    let actions = audit_actions(console.dir.path());
    for want in [
        "sign-in-failed",
        "sign-in",
        "search",
        "view",
        "alerts",
        "view-alert",
        "alert-update",
        "rules",
        "rule-dry-run",
        "rule-edit",
        "rule-disable",
        "coverage",
        "sign-out",
    ] {
        assert!(
            actions.iter().any(|(_, action, _)| action == want),
            "{want} not audited: {actions:?}"
        );
    }
    assert!(
        actions.iter().any(|(user, action, detail)| user == ADMIN.0
            && action == "search"
            && detail.as_deref() == Some("見積書")),
        "{actions:?}"
    );

    drop(browser);
    drop(driver);
    println!(
        "browser test: {:.1} s, screenshots {:?}",
        started.elapsed().as_secs_f64(),
        screenshots
    );
}
