//! `mailtrail serve` end to end over a real socket: a journal copy sent over
//! SMTP is acknowledged only once stored, is searchable right away by another
//! process, and its envelope-only recipient becomes Bcc; limits answer with
//! the right codes; SIGTERM stops the service cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "--timezone", "Asia/Tokyo"])
        .args([
            "serve",
            "--smtp",
            "127.0.0.1:0",
            "--journal-address",
            "journal@example.co.jp",
        ])
        .args(["--max-message-size", "20000", "--max-recipients", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("listening smtp ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, addr }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert!(c.reply().starts_with("220"));
        c
    }

    /// The last line of a (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line;
            }
        }
    }

    fn send(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn data(&mut self, message: &str) -> String {
        assert!(self.send("DATA").starts_with("354"));
        let stuffed: String = message
            .split("\r\n")
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        self.writer.write_all(stuffed.as_bytes()).unwrap();
        self.send(".")
    }
}

fn search_json(data: &Path, query: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "--timezone",
            "Asia/Tokyo",
            "search",
            "--format",
            "json",
            query,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const MESSAGE: &str = "From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <taro.yamada@example.co.jp>\r\n\
To: hanako@partner.example\r\n\
Subject: =?ISO-2022-JP?B?GyRCPFIzMEhrGyhC?=\r\n\
Message-ID: <serve-1@example.co.jp>\r\n\
Date: Fri, 27 Nov 2026 10:00:00 +0900\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
\r\n\
.a line that starts with a dot\r\n\
body\r\n";

#[test]
fn journal_copies_are_stored_before_250_and_searchable() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    let mut c = Client::connect(&server.addr);
    assert!(c.send("EHLO mx1.example.co.jp").starts_with("250"));
    assert!(c
        .send("MAIL FROM:<taro.yamada@example.co.jp> SIZE=600")
        .starts_with("250"));
    assert!(c
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    assert!(c
        .send("RCPT TO:<secret@partner.example>")
        .starts_with("250"));
    assert!(c.send("RCPT TO:<journal@example.co.jp>").starts_with("250"));
    assert!(c
        .send("RCPT TO:<one-too-many@partner.example>")
        .starts_with("452"));
    let answer = c.data(MESSAGE);
    assert!(answer.starts_with("250"), "{answer}");

    // Acknowledged means stored: another process finds it now.
    let found = search_json(data.path(), "社外秘");
    assert_eq!(found.len(), 1, "{found:?}");
    let m = &found[0];
    assert_eq!(m["message_id"], "serve-1@example.co.jp");
    assert_eq!(m["to"], serde_json::json!(["hanako@partner.example"]));
    assert_eq!(m["bcc"], serde_json::json!(["secret@partner.example"]));
    assert_eq!(m["direction"], "outbound");
    assert!(m["systems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "journal"));

    // The same copy again (a retry after a lost 250) adds nothing: no
    // message, no delivery.
    let deliveries = m["deliveries"].as_array().unwrap().len();
    assert!(c
        .send("MAIL FROM:<taro.yamada@example.co.jp>")
        .starts_with("250"));
    assert!(c
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    assert!(c
        .send("RCPT TO:<secret@partner.example>")
        .starts_with("250"));
    assert!(c.data(MESSAGE).starts_with("250"));
    let again = search_json(data.path(), "");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["deliveries"].as_array().unwrap().len(), deliveries);

    // Over the size limit: 552 after the data, and the session goes on.
    assert!(c.send("MAIL FROM:<a@example.co.jp>").starts_with("250"));
    assert!(c.send("RCPT TO:<b@partner.example>").starts_with("250"));
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(100).repeat(300));
    assert!(c.data(&big).starts_with("552"));
    assert!(c.send("NOOP").starts_with("250"));
    assert!(c.send("QUIT").starts_with("221"));
}

#[test]
fn garbage_and_vanishing_clients_do_not_stop_the_service() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    // Binary garbage, then hang up.
    {
        let mut raw = TcpStream::connect(&server.addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let garbage: Vec<u8> = (0u32..20_000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let _ = raw.write_all(&garbage);
        let mut sink = [0u8; 4096];
        let _ = raw.read(&mut sink);
    }
    // Stops in the middle of DATA.
    {
        let mut c = Client::connect(&server.addr);
        c.send("EHLO x");
        c.send("MAIL FROM:<a@example.co.jp>");
        c.send("RCPT TO:<b@partner.example>");
        assert!(c.send("DATA").starts_with("354"));
        c.writer.write_all(b"Subject: half\r\n\r\npartial").unwrap();
    }
    // A well-behaved client is still served, and nothing half-sent was stored.
    let mut c = Client::connect(&server.addr);
    c.send("EHLO x");
    c.send("MAIL FROM:<taro.yamada@example.co.jp>");
    c.send("RCPT TO:<hanako@partner.example>");
    assert!(c.data(MESSAGE).starts_with("250"));
    let all = search_json(data.path(), "");
    assert_eq!(all.len(), 1, "{all:?}");
}

/// SIGTERM: a client between commands is told `421` at once (not left to
/// the grace period), a client in the middle of a transaction may finish it,
/// and the process exits cleanly.
#[test]
fn sigterm_stops_the_service() {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path());
    let mut idle = Client::connect(&server.addr);
    assert!(idle.send("EHLO idle.example").starts_with("250"));
    let mut busy = Client::connect(&server.addr);
    assert!(busy.send("EHLO busy.example").starts_with("250"));
    assert!(busy.send("MAIL FROM:<a@example.co.jp>").starts_with("250"));
    assert!(busy.send("RCPT TO:<b@example.co.jp>").starts_with("250"));
    assert!(busy.send("DATA").starts_with("354"));
    busy.writer
        .write_all(b"Message-ID: <late@example.co.jp>\r\nSubject: lastword\r\n\r\n")
        .unwrap();
    let asked = std::time::Instant::now();
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let told = idle.reply();
    assert!(told.starts_with("421"), "{told}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let stored = busy.send("body\r\n.");
    assert!(stored.starts_with("250"), "{stored}");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(search_json(data.path(), "lastword").len(), 1);
}

fn start_with_syslog(data: &Path) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "--timezone", "UTC"])
        .args(["serve", "--smtp", "127.0.0.1:0"])
        .args(["--syslog-udp", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut udp, mut tcp) = (String::new(), String::new());
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("listening line");
        let line = line.trim();
        if let Some(a) = line.strip_prefix("listening syslog-udp ") {
            udp = a.to_string();
        } else if let Some(a) = line.strip_prefix("listening syslog-tcp ") {
            tcp = a.to_string();
        }
    }
    assert!(!udp.is_empty() && !tcp.is_empty());
    (child, udp, tcp)
}

fn postfix_flow(qid: &str, mid: &str, to: &str) -> Vec<String> {
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S").to_string();
    [
        format!("<22>{stamp} mx1 postfix/smtpd[10]: {qid}: client=pc-7.example.co.jp[10.1.0.7]"),
        format!("<22>{stamp} mx1 postfix/cleanup[11]: {qid}: message-id=<{mid}>"),
        format!("<22>{stamp} mx1 postfix/qmgr[12]: {qid}: from=<taro.yamada@example.co.jp>, size=2048, nrcpt=1 (queue active)"),
        format!("<22>{stamp} mx1 postfix/smtp[13]: {qid}: to=<{to}>, relay=mx.partner.example[192.0.2.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 99ZZ)"),
        format!("<22>{stamp} mx1 postfix/qmgr[12]: {qid}: removed"),
    ]
    .to_vec()
}

fn wait_for(data: &Path, query: &str, want: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        if let Ok(out) = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
            .arg("--data-dir")
            .arg(data)
            .args(["search", "--format", "json", query])
            .output()
        {
            let found: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if found.len() >= want {
                return found;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{query}: not {want} message(s) within 10 s");
}

#[test]
fn syslog_over_tcp_and_udp_becomes_searchable() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, udp, tcp) = start_with_syslog(data.path());

    // TCP: first message octet-counted, second newline-framed, on one connection.
    let mut stream = TcpStream::connect(&tcp).unwrap();
    for line in postfix_flow(
        "1A2B3C4D5E",
        "tcp-1@example.co.jp",
        "hanako@partner.example",
    ) {
        stream
            .write_all(format!("{} {line}", line.len()).as_bytes())
            .unwrap();
    }
    for line in postfix_flow("2B3C4D5E6F", "tcp-2@example.co.jp", "jiro@partner.example") {
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    stream.flush().unwrap();

    // UDP: one datagram per line.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for line in postfix_flow(
        "3C4D5E6F7A",
        "udp-1@example.co.jp",
        "saburo@partner.example",
    ) {
        socket.send_to(line.as_bytes(), &udp).unwrap();
    }

    let found = wait_for(data.path(), "status:delivered", 3);
    let mut ids: Vec<_> = found
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "tcp-1@example.co.jp",
            "tcp-2@example.co.jp",
            "udp-1@example.co.jp"
        ]
    );
    let m = wait_for(data.path(), "to:hanako@partner.example", 1);
    assert_eq!(m[0]["direction"], "outbound");
    assert!(m[0]["systems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "postfix@mx1"));

    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
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
fn healthz_and_metrics_report_what_was_stored() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--org-domain", "example.co.jp"])
        .args(["serve", "--http", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut http, mut smtp) = (String::new(), String::new());
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().strip_prefix("listening http ") {
            http = a.to_string();
        }
        if let Some(a) = line.trim().strip_prefix("listening smtp ") {
            smtp = a.to_string();
        }
    }
    let server = Server {
        child,
        addr: smtp.clone(),
    };

    let health = http_get(&http, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    let mut c = Client::connect(&server.addr);
    c.send("EHLO x");
    c.send("MAIL FROM:<taro.yamada@example.co.jp>");
    c.send("RCPT TO:<hanako@partner.example>");
    assert!(c.data(MESSAGE).starts_with("250"));

    let metrics = http_get(&http, "/metrics");
    assert!(
        metrics.contains("mailtrail_smtp_messages_stored_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailtrail_records_stored_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailtrail_store_queue_depth 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE mailtrail_store_errors_total counter"),
        "{metrics}"
    );
    assert!(http_get(&http, "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn a_bare_lf_dot_does_not_end_data_and_smuggle_a_second_message() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    let mut c = Client::connect(&server.addr);
    c.send("EHLO x");
    c.send("MAIL FROM:<taro.yamada@example.co.jp>");
    c.send("RCPT TO:<hanako@partner.example>");
    assert!(c.send("DATA").starts_with("354"));
    let payload = "Subject: innocent\r\nMessage-ID: <outer@example.co.jp>\r\n\r\nhello\n.\r\n\
MAIL FROM:<ceo@example.co.jp>\r\nRCPT TO:<victim@partner.example>\r\nDATA\r\n\
Subject: FORGED\r\n\r\nforged body\r\n.\r\n";
    c.writer.write_all(payload.as_bytes()).unwrap();
    // Only one transaction ends, at the first CRLF.CRLF after a CRLF line.
    assert!(c.reply().starts_with("250"));
    assert!(c.send("NOOP").starts_with("250"));
    assert!(search_json(data.path(), "subject:FORGED").is_empty());
    assert_eq!(search_json(data.path(), "").len(), 1);
}

fn stats_json(data: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["stats", "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Exchange tracking lines forwarded over syslog (a log shipper on the
/// Exchange server sends each MSGTRK line as one message, tagged
/// `MSExchangeTransport`), header lines included, end up as the same messages
/// and deliveries as an import of the file.
#[test]
fn exchange_tracking_lines_over_syslog_equal_their_import() {
    let log =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/fixtures/msgtrk/ex2019.LOG");
    let imported = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(imported.path())
        .args(["--org-domain", "example.co.jp", "import", "-q"])
        .arg(&log)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let want = stats_json(imported.path());

    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--org-domain", "example.co.jp", "--timezone", "UTC"])
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--syslog-tcp",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut http, mut tcp) = (String::new(), String::new());
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().strip_prefix("listening http ") {
            http = a.to_string();
        }
        if let Some(a) = line.trim().strip_prefix("listening syslog-tcp ") {
            tcp = a.to_string();
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut stream = TcpStream::connect(&tcp).unwrap();
    let mut sent = 0;
    for line in text.lines() {
        let line = line.trim_start_matches('\u{feff}');
        let framed = format!("<134>Nov 10 00:00:00 EX01 MSExchangeTransport: {line}");
        stream
            .write_all(format!("{} {framed}", framed.len()).as_bytes())
            .unwrap();
        sent += 1;
    }
    drop(stream);
    // Exchange messages stay open until their window passes or the receiver
    // stops: wait until every line was received, then stop it (which emits
    // what is open) and compare.
    let received = format!("mailtrail_syslog_tcp_lines_total {sent}\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !http_get(&http, "/metrics").contains(&received) {
        assert!(
            std::time::Instant::now() < deadline,
            "not all {sent} lines received"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let got = stats_json(data.path());
    assert_eq!(got["messages"], want["messages"], "{got} vs {want}");
    assert_eq!(got["deliveries"], want["deliveries"], "{got} vs {want}");
}
