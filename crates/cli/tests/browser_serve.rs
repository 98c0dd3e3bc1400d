//! The web console end to end, as an operator deploys it: the `mailtrail`
//! binary imports mail files, `mailtrail user add` makes the accounts, and
//! `mailtrail serve --http` serves the console that a real browser —
//! Debian's Chromium, headless, driven through ChromeDriver — then uses.
//!
//! Why it is shaped so: `crates/web/tests/browser.rs` already drives the
//! console in a browser, but in-process over a store it seeds itself. This
//! test keeps nothing in-process: every record comes from the binary's own
//! import of committed `.eml` files (`tests/fixtures/console`, written by
//! `make_fixtures.py`), so the ISO-2022-JP subject with 社外秘, the Japanese
//! attachment name (RFC 2231 and RFC 2047) and the attachment's bytes pass
//! through the decoder, the store and the served console before the browser
//! sees them. The download is checked where a user would find it: the file
//! Chromium saves, under the name Chromium gives it, compared byte for byte
//! with the PDF the fixture mail carries (a PDF holding every byte value, so
//! any text handling on the way would show).
//!
//! One browser walks the console as an administrator (sign in by typing,
//! search in Japanese and English, open the message, download the file,
//! follow the "same attachment" pivot to the forward that carries it under
//! another name, switch language, sign out), then as a viewer, whom the
//! console must refuse the content: no download or raw-message link in the
//! page, and HTTP 403 for both addresses, whether the browser navigates
//! there or a client sends the viewer's session cookie. The audit page must
//! show the administrator's search, view and download, each under the right
//! name, and nothing downloaded by the viewer.
//!
//! Screenshots of the search, message, dashboard, sources and audit pages in
//! Japanese and in English are kept as test artefacts (in
//! `$MAILTRAIL_TEST_ARTIFACTS`, else `$CARGO_TARGET_DIR/test-artifacts/browser`);
//! each is decoded and must be a picture of the viewport, not a blank page.
//!
//! Every wait polls with a deadline (`webdriver::WAIT`); nothing sleeps in
//! place of a check. Without `/usr/bin/chromium` and `chromedriver` (the
//! `chromium` and `chromium-driver` packages, installed by `.ci/run`) the
//! test says it was skipped.

#[path = "../../web/tests/webdriver/mod.rs"]
mod webdriver;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webdriver::{
    agent, browser_programs, decode_png, form_encode, wait_until, Browser, Driver, ENTER, WAIT,
};

const ADMIN: (&str, &str) = ("kanri", "kanri-password-1");
const VIEWER: (&str, &str) = ("etsuran", "etsuran-password-1");
/// The Japanese mail (ISO-2022-JP encoded word in the fixture).
const SUBJECT_JA: &str = "【社外秘】見積書の送付";
/// The English mail, unrelated to the others.
const SUBJECT_EN: &str = "Quarterly budget review";
/// The internal forward carrying the same PDF under another name.
const SUBJECT_FW: &str = "FW: Quotation sent to Tokyo Shoji";
/// The attachment's name as the Japanese mail gives it (RFC 2231).
const ATTACHMENT: &str = "見積書.pdf";
/// The same file's name in the forward.
const ATTACHMENT_FW: &str = "quotation-2026-11.pdf";
/// The viewport of every screenshot.
const VIEWPORT: (i64, i64) = (1280, 800);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console")
}

/// Where the screenshots are kept after the test.
fn artefact_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAILTRAIL_TEST_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    // The target folder: as given, else the one the binary was built into
    // (…/target/debug/mailtrail).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_mailtrail"))
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
        })
        .expect("a target folder");
    target.join("test-artifacts/browser")
}

// ---------------------------------------------------------------- the binary

/// `mailtrail` with the data folder and the organisation's settings.
fn mailtrail(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    command.arg("--data-dir").arg(data).args([
        "--org-domain",
        "example.co.jp",
        "--timezone",
        "Asia/Tokyo",
    ]);
    command
}

fn check(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn add_user(data: &Path, (name, password): (&str, &str), role: &str) {
    let mut child = mailtrail(data)
        .args(["user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailtrail user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = check(
        "user add",
        child.wait_with_output().expect("mailtrail user add"),
    );
    assert_eq!(out.trim(), format!("added {name} ({role})"));
}

/// `mailtrail serve` with the console on a free loopback port (and the
/// SMTP receiver, which serve runs when no other source is set, on another);
/// stopped with SIGTERM on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, log: &Path) -> Server {
        let mut child = mailtrail(data)
            .args(["serve", "--http", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("create the server log"))
            .spawn()
            .expect("start mailtrail serve");
        // Read standard output to its end on a thread of its own, so that the
        // service never writes into a full or closed pipe.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening http ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(WAIT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mailtrail serve printed no `listening http` line; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let server = Server {
            child,
            base: format!("http://{addr}"),
        };
        let agent = agent();
        wait_until("the console's /healthz", WAIT, || {
            let answer = agent.get(format!("{}/healthz", server.base)).call().ok()?;
            (answer.status() == 200).then_some(())
        });
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the id of our own child, which has not been
        // waited for yet, so the id is still its own.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the browser

/// `Browser` with what this test asks of the pages.
struct Console<'a> {
    browser: &'a Browser,
    base: String,
    shots: PathBuf,
}

impl Console<'_> {
    fn open(&self, path: &str, what: &str, want: impl Fn(&str) -> bool) {
        self.browser.goto(&format!("{}{path}", self.base));
        self.browser.wait_path(what, want);
    }

    fn text(&self, css: &str) -> String {
        self.browser.text(&self.browser.wait_for(css))
    }

    fn lang(&self) -> Value {
        self.browser
            .js("return document.documentElement.lang", json!([]))
    }

    /// The texts of the elements `css` selects, in page order.
    fn texts(&self, css: &str) -> Vec<String> {
        let texts = self.browser.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())",
            json!([css]),
        );
        texts
            .as_array()
            .expect("an array")
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn has(&self, css: &str) -> bool {
        self.browser.find(css).is_some()
    }

    fn sign_in(&self, (user, password): (&str, &str)) {
        self.open("/login", "the sign-in page", |p| p == "/login");
        let browser = self.browser;
        browser.type_text(&browser.wait_for("input[name=user]"), user);
        browser.type_text(&browser.wait_for("input[name=password]"), password);
        browser.click(&browser.wait_for("form[action='/login'] button[type=submit]"));
        browser.wait_path(&format!("the search page after {user} signs in"), |p| {
            p.starts_with("/search")
        });
    }

    /// Type a query into the search box and press Enter.
    fn search(&self, query: &str) {
        let browser = self.browser;
        let q = browser.wait_for("#q");
        browser.clear(&q);
        browser.type_text(&q, query);
        browser.type_text(&q, ENTER);
        let wanted = format!("q={}", form_encode(query));
        browser.wait_path(&format!("the results of {query}"), |p| {
            p.starts_with("/search?") && p.contains(&wanted)
        });
    }

    /// The subjects in the results table.
    fn result_subjects(&self) -> Vec<String> {
        // The subject is the fifth column.
        self.texts("table.results tbody tr td:nth-child(5)")
    }

    /// The audit table as (user, action, target, detail) rows.
    fn audit_rows(&self) -> Vec<(String, String, String, String)> {
        let rows = self.browser.js(
            "return [...document.querySelectorAll('table.results tbody tr')]
                 .map(tr => [...tr.cells].map(td => td.textContent.trim()))",
            json!([]),
        );
        rows.as_array()
            .expect("an array")
            .iter()
            .map(|row| {
                let cell = |i: usize| row[i].as_str().unwrap_or_default().to_string();
                (cell(1), cell(2), cell(3), cell(4))
            })
            .collect()
    }

    /// Save a screenshot of the viewport as `name.png`, after checking that
    /// it is a whole PNG of the viewport's size with more than a few colours.
    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.browser.screenshot();
        let (width, height, colours) = decode_png(&png);
        assert_eq!(
            (i64::from(width), i64::from(height)),
            VIEWPORT,
            "the screenshot {name} is of the viewport"
        );
        assert!(
            colours >= 8,
            "the screenshot {name} looks blank ({colours} colours)"
        );
        let file = self.shots.join(format!("{name}.png"));
        std::fs::write(&file, png).expect("write a screenshot");
        file
    }
}

/// The files in a folder, by name.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the download folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The message id in a `/message/ID` path.
fn message_id(path: &str) -> String {
    let id = path
        .strip_prefix("/message/")
        .unwrap_or_else(|| panic!("not a message page: {path}"));
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{path}");
    id.to_string()
}

// ---------------------------------------------------------------- the test

#[test]
fn the_served_console_works_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let started = Instant::now();
    let work = tempfile::tempdir().expect("a temporary folder");
    let data = work.path().join("data");
    let downloads = work.path().join("downloads");
    std::fs::create_dir_all(&downloads).expect("create the download folder");
    let shots = artefact_dir();
    std::fs::create_dir_all(&shots).expect("create the artefact folder");

    // -- The binary imports the fixtures and makes the two accounts.
    let pdf = std::fs::read(fixtures().join("mitsumori.pdf")).expect("the fixture PDF");
    let mut mails: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("the fixture folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    mails.sort();
    assert_eq!(mails.len(), 3, "{mails:?}");
    let imported = check(
        "import",
        mailtrail(&data)
            .args(["import", "--quiet"])
            .args(&mails)
            .output()
            .expect("run mailtrail import"),
    );
    assert!(imported.contains("3 new message(s)"), "{imported}");
    add_user(&data, ADMIN, "administrator");
    add_user(&data, VIEWER, "viewer");

    // -- The service, ChromeDriver and Chromium, downloads into `downloads`.
    let server = Server::start(&data, &work.path().join("serve.log"));
    let driver = Driver::start(&chromedriver, work.path());
    let browser = Browser::start(
        &driver,
        &chromium,
        work.path().join("profile"),
        &[],
        json!({
            "download.default_directory": downloads,
            "download.prompt_for_download": false,
            "download.directory_upgrade": true,
        }),
    );
    browser.set_viewport(VIEWPORT.0, VIEWPORT.1);
    let console = Console {
        browser: &browser,
        base: server.base.clone(),
        shots: shots.clone(),
    };
    let mut screenshots = Vec::new();

    // -- Sign-in by typing, in the browser's language (Japanese).
    console.open("/", "the sign-in page", |p| p == "/login");
    assert_eq!(console.lang(), "ja");
    assert_eq!(console.text("h1"), "ログイン");
    console.sign_in(ADMIN);
    let who = console.text(".who");
    assert!(who.contains(ADMIN.0) && who.contains("管理者"), "{who}");

    // -- Searches typed into the box: English, then Japanese.
    console.search("budget");
    assert_eq!(console.text(".count strong"), "1 件");
    assert_eq!(console.result_subjects(), [SUBJECT_EN]);
    console.search("社外秘");
    assert_eq!(
        browser.property(&browser.wait_for("#q"), "value"),
        "社外秘",
        "the query stays in the box"
    );
    assert_eq!(console.text(".count strong"), "1 件");
    assert_eq!(console.result_subjects(), [SUBJECT_JA]);
    screenshots.push(console.screenshot("search-ja"));

    // -- The Japanese message: decoded subject, names, body and attachment.
    browser.click(&browser.link(SUBJECT_JA));
    let message_path = browser.wait_path("the Japanese message", |p| p.starts_with("/message/"));
    let id = message_id(&message_path);
    assert_eq!(console.text("h1"), SUBJECT_JA);
    assert_eq!(browser.title(), format!("{SUBJECT_JA} — mailtrail"));
    let headers = console.text("table.headers");
    assert!(
        headers.contains("山田 太郎 <taro.yamada@example.co.jp>")
            && headers.contains("佐藤 花子 <hanako.sato@tokyo-shoji.example>"),
        "{headers}"
    );
    let attachments = console.text("ul.attachments");
    assert!(
        attachments.contains(ATTACHMENT) && attachments.contains("application/pdf"),
        "{attachments}"
    );
    let body = console.text("pre.body");
    assert!(
        body.contains("ご依頼の見積書を添付にてお送りします。"),
        "{body}"
    );
    let download_link = format!("ul.attachments a[href='/message/{id}/attachment/0']");
    let raw_link = format!("a[href='/message/{id}/raw']");
    assert!(console.has(&raw_link), "the administrator has the raw link");
    screenshots.push(console.screenshot("message-ja"));

    // -- The download: the file Chromium saves is the fixture's PDF.
    assert!(file_names(&downloads).is_empty());
    browser.click(&browser.wait_for(&download_link));
    let saved = downloads.join(ATTACHMENT);
    let deadline = Instant::now() + WAIT;
    let bytes = loop {
        // Chromium writes into a `.crdownload` file and renames it when done.
        let names = file_names(&downloads);
        if !names.iter().any(|n| n.ends_with(".crdownload")) {
            if let Ok(bytes) = std::fs::read(&saved) {
                break bytes;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {ATTACHMENT} in the download folder after {WAIT:?}: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        file_names(&downloads),
        [ATTACHMENT],
        "one file, under its Japanese name"
    );
    assert_eq!(bytes.len(), pdf.len(), "the downloaded file's size");
    assert!(
        bytes == pdf,
        "the downloaded file differs from the fixture from byte {:?}",
        bytes.iter().zip(&pdf).position(|(a, b)| a != b)
    );
    assert_eq!(browser.path(), message_path, "the download left the page");

    // -- The "same attachment" pivot finds the forward that carries the file.
    let hash = console.text("ul.attachments code");
    browser.click(&browser.wait_for("ul.attachments a[href^='/search?attachment=']"));
    let pivot = browser.wait_path("the same-attachment search", |p| {
        p.starts_with("/search?attachment=")
    });
    let full_hash = pivot["/search?attachment=".len()..].to_string();
    assert!(
        full_hash.starts_with(&hash),
        "{pivot} is by the file's hash"
    );
    // The note names the file by its content hash, and by one of its names
    // (that of the newest message listed).
    let note = console.text(".pivot-note");
    assert!(
        note.contains(&hash) && (note.contains(ATTACHMENT) || note.contains(ATTACHMENT_FW)),
        "{note}"
    );
    assert_eq!(console.text(".count strong"), "2 件");
    let mut subjects = console.result_subjects();
    subjects.sort();
    assert_eq!(subjects, [SUBJECT_FW, SUBJECT_JA]);
    browser.click(&browser.link(SUBJECT_FW));
    browser.wait_path("the forward", |p| p.starts_with("/message/"));
    assert_eq!(console.text("h1"), SUBJECT_FW);
    let forward = console.text("ul.attachments");
    assert!(
        forward.contains(ATTACHMENT_FW) && forward.contains(&hash),
        "the same file ({hash}) under the forward's name: {forward}"
    );

    // -- The other pages, in Japanese.
    let period = "from=2026-11-01&to=2026-11-30";
    console.open(&format!("/dashboard?{period}"), "the dashboard", |p| {
        p.starts_with("/dashboard")
    });
    assert_eq!(console.text("h1"), "ダッシュボード");
    screenshots.push(console.screenshot("dashboard-ja"));
    console.open("/sources", "the sources page", |p| p == "/sources");
    assert_eq!(console.text("h1"), "収集元");
    screenshots.push(console.screenshot("sources-ja"));
    console.open("/audit", "the audit log", |p| p == "/audit");
    assert_eq!(console.text("h1"), "監査ログ（操作ログ）");
    let audit = console.audit_rows();
    let audited = |action: &str, target: &str, detail: &str| {
        audit
            .iter()
            .any(|(u, a, t, d)| u == ADMIN.0 && a == action && t == target && d == detail)
    };
    assert!(audited("search", "", "社外秘"), "{audit:?}");
    assert!(audited("search", "", "budget"), "{audit:?}");
    assert!(
        audited("search", "", &format!("attachment:{full_hash}")),
        "{audit:?}"
    );
    assert!(
        audited("view", &id, "console-01@example.co.jp"),
        "{audit:?}"
    );
    assert!(audited("download-attachment", &id, ATTACHMENT), "{audit:?}");
    screenshots.push(console.screenshot("audit-ja"));

    // -- The language switch, on the message page: English, same page.
    console.open(&message_path, "the message again", |p| p == message_path);
    assert_eq!(console.text("a.lang"), "English");
    browser.click(&browser.wait_for("a.lang"));
    wait_until("the page in English", WAIT, || {
        (console.lang() == "en").then_some(())
    });
    assert_eq!(browser.path(), message_path, "back on the same page");
    let headings = console.texts("h2");
    assert!(
        headings.iter().any(|h| h == "Attachments") && headings.iter().any(|h| h == "Body"),
        "{headings:?}"
    );
    assert_eq!(console.text(&download_link), "Download");
    assert!(console.text(".who").contains("administrator"));
    assert_eq!(console.text("a.lang"), "日本語");
    screenshots.push(console.screenshot("message-en"));
    console.open(
        &format!("/search?q={}", form_encode("社外秘")),
        "the search in English",
        |p| p.starts_with("/search?"),
    );
    assert_eq!(console.text(".count strong"), "1 message");
    assert_eq!(console.result_subjects(), [SUBJECT_JA]);
    screenshots.push(console.screenshot("search-en"));
    for (path, name, title) in [
        (format!("/dashboard?{period}"), "dashboard-en", "Dashboard"),
        ("/sources".to_string(), "sources-en", "Sources"),
        ("/audit".to_string(), "audit-en", "Audit log"),
    ] {
        let page = path.split('?').next().unwrap_or_default().to_string();
        console.open(&path, name, |p| p.starts_with(&page));
        assert_eq!(console.text("h1"), title);
        screenshots.push(console.screenshot(name));
    }
    // And back to Japanese.
    browser.click(&browser.wait_for("a.lang"));
    wait_until("the page in Japanese again", WAIT, || {
        (console.lang() == "ja").then_some(())
    });
    assert_eq!(console.text("h1"), "監査ログ（操作ログ）");

    // -- Sign-out: the search is behind the sign-in page again.
    browser.sign_out();
    console.open(
        &format!("/search?q={}", form_encode("社外秘")),
        "the sign-in page for a signed-out visit",
        |p| p == "/login",
    );

    // -- A viewer sees the message but none of its content.
    console.sign_in(VIEWER);
    let who = console.text(".who");
    assert!(who.contains(VIEWER.0) && who.contains("閲覧者"), "{who}");
    console.open(&message_path, "the message as a viewer", |p| {
        p == message_path
    });
    assert_eq!(console.text("h1"), SUBJECT_JA);
    assert!(console.text("ul.attachments").contains(ATTACHMENT));
    assert_eq!(console.text("p.note"), "本文は管理者のみ閲覧できます。");
    assert!(!console.has("pre.body") && !console.has(".html-body"));
    assert!(
        !console.has("a[href*='/attachment/']"),
        "a download link for a viewer"
    );
    assert!(!console.has("a[href$='/raw']"), "a raw link for a viewer");
    // The addresses themselves refuse the viewer: in the browser…
    for path in [
        format!("/message/{id}/attachment/0"),
        format!("/message/{id}/raw"),
    ] {
        console.open(&path, &path, |p| p == path);
        let status = browser.js(
            "return performance.getEntriesByType('navigation')[0].responseStatus",
            json!([]),
        );
        assert_eq!(status, 403, "{path} in the browser");
        assert_eq!(
            console.text("[role=alert]"),
            "この操作を行う権限がありません。"
        );
    }
    assert_eq!(file_names(&downloads), [ATTACHMENT], "nothing more saved");
    // …and from a client with the viewer's session cookie.
    let session = browser
        .cookies()
        .into_iter()
        .find(|(name, _)| name == "mt_session")
        .map(|(name, value)| format!("{name}={value}"))
        .expect("the viewer's session cookie");
    let agent = agent();
    for path in [
        format!("/message/{id}/attachment/0"),
        format!("/message/{id}/raw"),
    ] {
        let mut answer = agent
            .get(format!("{}{path}", server.base))
            .header("Cookie", &session)
            .call()
            .expect("an HTTP answer");
        assert_eq!(answer.status(), 403, "{path} with the viewer's cookie");
        let body = answer.body_mut().read_to_vec().expect("the answer's body");
        assert!(
            !body.windows(5).any(|w| w == b"%PDF-") && !body.windows(7).any(|w| w == b"Subject"),
            "{path}: the content in a refusal"
        );
    }
    // The same client without the cookie is sent to sign in: the 403s above
    // were the viewer's role, not a missing session.
    let anonymous = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .build()
        .new_agent()
        .get(format!("{}/message/{id}/attachment/0", server.base))
        .call()
        .expect("an HTTP answer");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(
        anonymous.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/login"[..])
    );
    console.open("/search", "the search page", |p| p.starts_with("/search"));
    browser.sign_out();

    // -- The audit log, as the administrator sees it: the viewer viewed the
    // message and downloaded nothing.
    console.sign_in(ADMIN);
    console.open(
        &format!("/audit?user={}", VIEWER.0),
        "the viewer's audit entries",
        |p| p.starts_with("/audit?"),
    );
    let audit = console.audit_rows();
    assert!(
        audit.iter().all(|(u, ..)| u == VIEWER.0),
        "the filter shows the viewer's entries only: {audit:?}"
    );
    let actions: Vec<&str> = audit.iter().map(|(_, a, ..)| a.as_str()).collect();
    assert!(actions.contains(&"view"), "{audit:?}");
    assert!(
        !actions.iter().any(|a| a.starts_with("download")),
        "{audit:?}"
    );
    browser.sign_out();

    drop(browser);
    drop(driver);
    drop(server);
    println!(
        "browser test against mailtrail serve: {:.1} s; {} screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.len(),
        shots.display()
    );
}
