//! `mailtrail serve --config` with an `[m365]` section: the message trace
//! poller starts with the service, fetches from a local stand-in for Entra
//! ID and Microsoft Graph (a few lines of HTTP over std), stores what it
//! got, reports itself in `/metrics` and `/healthz`, and stops on SIGTERM.
//! The pollers' protocol details are tested in
//! `crates/server/tests/pollers.rs`; this proves the wiring.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TENANT: &str = "contoso.onmicrosoft.com";
const SECRET: &str = "e2e-client-secret-value";

/// One request: method, target, headers (lower-case names), body.
type Request = (String, String, Vec<(String, String)>, String);

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((
        method,
        target,
        headers,
        String::from_utf8_lossy(&body).to_string(),
    ))
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Entra's token endpoint and Graph's message trace list, one page.
fn mock(listener: TcpListener, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<String>>>) {
    listener.set_nonblocking(true).unwrap();
    let now = chrono::Utc::now();
    let at = |ago: i64| {
        (now - chrono::Duration::minutes(ago))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let traces = serde_json::json!({"value": [
        {"id": "4e5f6071-0000-4000-8000-000000000101", "senderAddress": "taro.yamada@example.co.jp",
         "recipientAddress": "hanako@partner.example", "messageId": "<e2e-1@example.co.jp>",
         "receivedDateTime": at(120), "subject": "polled quotation", "size": 1200,
         "fromIP": "192.0.2.10", "toIP": "", "status": "Delivered"},
        {"id": "4e5f6071-0000-4000-8000-000000000102", "senderAddress": "info@partner.example",
         "recipientAddress": "taro.yamada@example.co.jp", "messageId": "<e2e-2@partner.example>",
         "receivedDateTime": at(30), "subject": "polled reply", "size": 900,
         "fromIP": "198.51.100.7", "toIP": "", "status": "Delivered"}
    ]})
    .to_string();
    while !stop.load(Ordering::Relaxed) {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let Some((method, target, headers, body)) = read_request(&mut stream) else {
            continue;
        };
        seen.lock().unwrap().push(format!("{method} {target}"));
        if method == "POST" && target == format!("/entra/{TENANT}/oauth2/v2.0/token") {
            if body.contains(&format!("client_secret={SECRET}")) {
                respond(
                    &mut stream,
                    200,
                    r#"{"token_type":"Bearer","expires_in":3599,"access_token":"e2e-token-123456"}"#,
                );
            } else {
                respond(&mut stream, 401, r#"{"error":"invalid_client"}"#);
            }
        } else if method == "GET"
            && target.starts_with("/graph/beta/admin/exchange/tracing/messageTraces?")
        {
            let authorized = headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer e2e-token-123456");
            if authorized {
                respond(&mut stream, 200, &traces);
            } else {
                respond(
                    &mut stream,
                    401,
                    r#"{"error":{"code":"InvalidAuthenticationToken"}}"#,
                );
            }
        } else {
            respond(&mut stream, 404, "{}");
        }
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_polls_message_traces_from_the_m365_section() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let server = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || mock(listener, stop, seen))
    };
    std::fs::write(dir.path().join("m365-secret"), format!("{SECRET}\n")).unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\norg_domains = [\"example.co.jp\"]\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [m365]\ntenant_id = \"{TENANT}\"\nclient_id = \"5f0c9a4e-0000-4000-8000-000000000002\"\n\
             client_secret_file = \"m365-secret\"\nfeeds = [\"message_traces\"]\n\
             graph_url = \"{api}/graph/beta\"\nlogin_url = \"{api}/entra\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--timezone",
            "UTC",
            "serve",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut http = String::new();
    let mut polling = false;
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("listening http ") {
            http = a.to_string();
        }
        polling |= line == "poll m365-traces";
    }
    assert!(!http.is_empty() && polling);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = http_get(&http, "/metrics");
        let done = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("mailtrail_poll_last_success_seconds{source=\"m365-traces\"} ")
            })
            .is_some_and(|v| v.trim() != "0");
        if done {
            assert!(
                metrics.contains("mailtrail_poll_records_total{source=\"m365-traces\"} 2\n"),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no poll finished: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = http_get(&http, "/healthz");
    assert!(health.contains("\"m365-traces\":{"), "{health}");
    assert!(health.contains("\"last_error\":null"), "{health}");

    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(
        !stderr.contains(SECRET) && !stderr.contains("e2e-token-123456"),
        "{stderr}"
    );
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("$filter=receivedDateTime%20ge%20")),
        "{requests:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "search",
            "--format",
            "json",
            "polled",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
}
