//! What the console's HTTP-level test files share: a console served
//! in-process on a loopback port over a seeded store, a plain HTTP/1.1
//! client written by hand (every header is what a browser sends), sign-in,
//! and the audit log as the store has it.
//!
//! Each test file uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailtrail_model::{Delivery, DeliveryStatus, MessageRecord, Recipient, RecipientKind};
use mailtrail_store::console::{AuditFilter, ConsoleStore, Role};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore};

/// The administrator account every console is started with.
pub const ADMIN: (&str, &str) = ("kanri", "kanri-password-1");
/// The viewer account every console is started with.
pub const VIEWER: (&str, &str) = ("etsuran", "etsuran-password-1");

pub struct Console {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// A console on a loopback port over a store that `seed` fills, with the
/// accounts `kanri` (administrator) and `etsuran` (viewer), and a sources
/// page fed by `sources` if given.
pub fn serve(seed: impl FnOnce(&Path), sources: Option<mailtrail_web::SourcesProvider>) -> Console {
    serve_with_rules(seed, sources, Vec::new())
}

/// The same, with the rule files (or folders) of `[policy] rules` and the
/// risk page off.
pub fn serve_with_rules(
    seed: impl FnOnce(&Path),
    sources: Option<mailtrail_web::SourcesProvider>,
    rules: Vec<std::path::PathBuf>,
) -> Console {
    serve_with(seed, sources, rules, None)
}

/// Everything set: rule files and the risk page.
pub fn serve_with(
    seed: impl FnOnce(&Path),
    sources: Option<mailtrail_web::SourcesProvider>,
    rules: Vec<std::path::PathBuf>,
    risk: Option<mailtrail_web::RiskPageOptions>,
) -> Console {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    mailtrail_web::add_user(dir.path(), ADMIN.0, ADMIN.1, Role::Administrator).unwrap();
    mailtrail_web::add_user(dir.path(), VIEWER.0, VIEWER.1, Role::Viewer).unwrap();
    let router = mailtrail_web::router(mailtrail_web::WebOptions {
        data_dir: dir.path().to_path_buf(),
        org_domains: vec!["example.co.jp".into()],
        timezone: chrono_tz::Asia::Tokyo,
        secure_cookies: false,
        session_length: Duration::from_secs(3600),
        sources,
        rules,
        rules_reload_secs: 5,
        risk,
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

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name=value` of a cookie the answer sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().iter().find_map(|c| {
            let pair = c.split(';').next()?;
            pair.starts_with(&format!("{name}="))
                .then(|| pair.to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn request(
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
    parse_answer(&raw)
}

/// A POST with a JSON body (`request` sends forms).
pub fn post_json(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
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

/// Evaluate the stored messages waiting for the rules with one rule file
/// (TOML), as `mailtrail serve` does; the ids of the alerts raised, in the
/// order raised.
/// The test store in `dir`, writable, with the tests' organisation domain.
pub fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(
        dir,
        SqliteOptions {
            org_domains: mailtrail_model::OrgDomains::new(["example.co.jp"]),
            ..Default::default()
        },
    )
    .unwrap()
}

pub fn raise_alerts(dir: &Path, rules: &str) -> Vec<i64> {
    let mut store = open_store(dir);
    let policy = mailtrail_policy::Policy::compile(&[("test.toml", rules)]).unwrap();
    let directory =
        mailtrail_policy::store::StoreDirectory::load(&store, &["example.co.jp".to_string()])
            .unwrap();
    mailtrail_policy::store::evaluate_pending(
        &mut store,
        &policy,
        &directory,
        &mailtrail_ingest::DecodeOptions::default(),
        1000,
    )
    .unwrap()
    .raised
}

pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
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

pub fn form_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

pub fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign in; returns the session cookie (`mt_session=…`) and the CSRF token.
pub fn sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
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

pub fn audit_actions(dir: &Path) -> Vec<(String, String, Option<String>)> {
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

/// A message known only from a Postfix log (queue id ABCDEF1234 on mx1):
/// jiro@example.co.jp to x@partner.example, "weekly report", delivered at
/// `time` through the partner's MX.
pub fn log_only_message(message_id: &str, time: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        keys: vec!["postfix@mx1:ABCDEF1234".into()],
        message_id: Some(message_id.into()),
        first_seen: Some(time),
        envelope_from: Some("jiro@example.co.jp".into()),
        recipients: vec![
            Recipient::new("x@partner.example", None, RecipientKind::Envelope).unwrap(),
        ],
        subject: Some("weekly report".into()),
        systems: vec!["postfix@mx1".into()],
        deliveries: vec![Delivery {
            time,
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
    }
}
