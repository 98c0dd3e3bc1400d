//! The console through the binary: `mailtrail user add` reads the password
//! from standard input, `mailtrail serve --http` serves the console beside
//! `/healthz`, and the account signs in there.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{http, listening_http, mailtrail_ok, serve, session_cookie, sign_in, Server};

#[test]
fn user_add_then_sign_in_to_the_served_console() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let add = |name: &str, password: &str, role: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
            .arg("--data-dir")
            .arg(&data)
            .args(["user", "add", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused role ends the command before it reads the password:
        // the pipe may be closed already.
        let _ = child.stdin.take().unwrap().write_all(password.as_bytes());
        child.wait_with_output().unwrap()
    };
    let short = add("kanri", "short", "administrator");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let bad_role = add("kanri", "long-enough-password", "root");
    assert!(!bad_role.status.success());
    let ok = add("kanri", "long-enough-password", "administrator");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "added kanri (administrator)"
    );
    let list = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("kanri"));

    let (server, http_addr) = serve(&data);
    let health = http(
        &http_addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let login = http(
        &http_addr,
        "GET /login HTTP/1.1\r\nHost: x\r\nAccept-Language: ja\r\nConnection: close\r\n\r\n",
    );
    assert!(login.contains("ログイン"));
    let signed_in = sign_in(&http_addr, "kanri", "long-enough-password");
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    assert!(session_cookie(&signed_in).len() > "mt_session=".len());
    drop(server);
}

/// `mailtrail token create` prints a bearer token once; with it the served
/// API answers a search with exactly the messages — every field —
/// that `mailtrail search --format json` prints for the same query;
/// `token revoke` ends it.
#[test]
fn token_create_then_the_api_answers_what_search_json_prints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mailtrail = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
        c.arg("--data-dir").arg(&data);
        c
    };
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/search");
    mailtrail_ok(&data, &["import", fixtures]);
    let created = mailtrail()
        .args(["token", "create", "nightly-export"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let token = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("mtk_"), "{token}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("shown only now"));
    let again = mailtrail()
        .args(["token", "create", "nightly-export"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = mailtrail()
        .args(["token", "create", "no spaces"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let (server, http_addr) = serve(&data);
    let get = |path: &str, token: &str| {
        let answer = http(
            &http_addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            ),
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    };
    // Every fixture message, newest first.
    let (head, body) = get("/api/v1/search?q=after%3A2000-01-01&limit=100", &token);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli = mailtrail()
        .args([
            "search",
            "--format",
            "json",
            "--limit",
            "100",
            "after:2000-01-01",
        ])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(printed.len() >= 5, "{printed:?}");
    assert_eq!(answer["count"], printed.len());
    assert_eq!(answer["messages"], serde_json::Value::Array(printed));

    let revoke = mailtrail()
        .args(["token", "revoke", "nightly-export"])
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let list = mailtrail().args(["token", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.contains("nightly-export") && list.contains("revoked"),
        "{list}"
    );
    assert!(!list.contains(&token[4..]), "{list}");
    let (head, _) = get("/api/v1/stats", &token);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    drop(server);
}

/// The README's first command: `mailtrail demo` imports the demo company's
/// mail, then serves the console on it with an administrator whose
/// password it prints — and that account signs in and finds the demo's
/// 社外秘 mail.
#[test]
fn demo_starts_a_populated_console_and_prints_how_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (http_addr, smtp_addr) = (free(), free());
    let mut demo = Server(
        Command::new(env!("CARGO_BIN_EXE_mailtrail"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["demo", "--log-lines", "3000", "--messages", "60"])
            .args(["--http", &http_addr, "--smtp", &smtp_addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The banner comes before the server's `listening` lines.
    let (_, banner) = listening_http(&mut demo.0, &http_addr);
    let field = |name: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in:\n{banner}"))
    };
    assert_eq!(field("URL:"), format!("http://{http_addr}/"), "{banner}");
    let (user, password) = (field("user:"), field("password:"));
    assert!(password.len() >= 10, "{banner}");

    let signed_in = sign_in(&http_addr, &user, &password);
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let session = session_cookie(&signed_in);
    let search = http(
        &http_addr,
        &format!(
            "GET /api/v1/search?q=%E7%A4%BE%E5%A4%96%E7%A7%98 HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(search.starts_with("HTTP/1.1 200"), "{search}");
    let (_, body) = search.split_once("\r\n\r\n").unwrap();
    let found: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(found["count"].as_u64().unwrap() > 0, "{found}");
    // The demo company's directory is in, and the example rules raised
    // alerts the console lists; a PC's mail is found by its name.
    assert!(banner.contains("Directory hr: 40 people"), "{banner}");
    assert!(
        banner.contains("Directory pcs: 0 people, 40 PCs"),
        "{banner}"
    );
    assert!(!banner.contains(" 0 alert(s) raised"), "{banner}");
    let get = |path: &str| {
        let answer = http(
            &http_addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    };
    let alerts = get("/api/v1/alerts?state=all");
    assert!(alerts["count"].as_u64().unwrap() > 0, "{alerts}");
    let pc = get("/api/v1/search?q=device%3Apc-0001");
    assert!(pc["count"].as_u64().unwrap() > 0, "{pc}");
    drop(demo);
}
