//! Bad input over the network against `mailtrail serve`: clients that send
//! garbage, vanish in the middle of DATA, stream a 100 MB message, pile up
//! 10,000 recipients, sit silent, stop reading, or open 1,000 connections at
//! once. For each, the test proves three things about the real binary over a
//! real socket:
//!
//! 1. the misbehaving client gets the documented answer (5xx for garbage,
//!    `500` for an overlong line, `552` over the size limit — up front for
//!    `SIZE=` and after the data otherwise —, `452` past the recipient limit,
//!    `421` on idle timeout or past the connection cap) and nothing it did
//!    not finish is stored;
//! 2. a well-behaved client is still served meanwhile or right after: its
//!    message gets `250` and is found by `mailtrail search --count`, run as
//!    a separate process;
//! 3. the server process is still alive and its peak resident memory
//!    (`VmHWM` in `/proc/PID/status`) stays under [`MEMORY_BUDGET_KIB`].
//!    Peaks and growth are printed so the test log shows the numbers.
//!
//! Each test starts its own server (own data directory, own peak memory), so
//! counts and memory are attributable and tests can run in parallel. Where a
//! test must know that the server has dropped a connection it watches the
//! server's open sockets in `/proc/PID/fd` with a deadline instead of
//! sleeping a fixed time. Limits are given on the command line at their
//! default values (50 MiB, 1,000 recipients, 200 connections) except the
//! idle timeout, shortened to 2 s so that a test can wait for it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailtrail");

/// Peak resident memory allowed to the server in every scenario.
const MEMORY_BUDGET_KIB: u64 = 200 * 1024;
/// `--max-connections`, at its default.
const MAX_CONNECTIONS: usize = 200;
/// `--max-recipients`, at its default.
const MAX_RECIPIENTS: usize = 1000;
/// `--max-message-size`, at its default (50 MiB).
const MAX_MESSAGE_BYTES: usize = 50 * 1024 * 1024;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- server

struct Server {
    child: Child,
    smtp: String,
    http: Option<String>,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of the server process, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Server {
    /// `mailtrail serve --smtp 127.0.0.1:0` with the limits above and
    /// `extra` flags, in a fresh data directory.
    fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--org-domain", "example.co.jp", "--timezone", "UTC"])
            .args(["serve", "--smtp", "127.0.0.1:0"])
            .arg(format!("--max-message-size={MAX_MESSAGE_BYTES}"))
            .arg(format!("--max-recipients={MAX_RECIPIENTS}"))
            .arg(format!("--max-connections={MAX_CONNECTIONS}"))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mailtrail serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut http = None;
        // `listening http` (if asked for) comes before `listening smtp`.
        let smtp = loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("listening line");
            assert!(n > 0, "mailtrail serve exited before listening");
            if let Some(addr) = line.trim().strip_prefix("listening smtp ") {
                break addr.to_string();
            }
            if let Some(addr) = line.trim().strip_prefix("listening http ") {
                http = Some(addr.to_string());
            }
        };
        Server {
            child,
            smtp,
            http,
            data,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("server process status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// Sockets the server holds open (listeners and client connections).
    fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("server fd directory")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// `mailtrail search --count QUERY` as a separate process.
    fn count(&self, query: &str) -> u64 {
        count_in(self.data.path(), query)
    }

    /// Still running, and peak memory under the budget; prints the numbers.
    fn assert_alive_within_budget(&mut self, scenario: &str) -> Memory {
        let status = self.child.try_wait().expect("try_wait");
        assert!(status.is_none(), "{scenario}: the server died: {status:?}");
        let m = self.memory();
        println!(
            "[{scenario}] server VmRSS {} KiB, VmHWM {} KiB (budget {} KiB)",
            m.rss_kib, m.hwm_kib, MEMORY_BUDGET_KIB
        );
        assert!(
            m.hwm_kib < MEMORY_BUDGET_KIB,
            "{scenario}: peak RSS {} KiB over the {} KiB budget",
            m.hwm_kib,
            MEMORY_BUDGET_KIB
        );
        m
    }

    /// A complete, well-behaved transaction on a new connection: `250`, and
    /// the message is searchable right after.
    fn assert_serves_a_new_client(&self, word: &str) {
        let mut c = Client::connect(&self.smtp);
        c.ehlo();
        let answer = c.transaction(&["hanako@partner.example"], word);
        assert!(answer.starts_with("250"), "well-behaved client: {answer:?}");
        assert_eq!(self.count(word), 1, "{word} stored once");
        assert!(c.send("QUIT").starts_with("221"));
    }
}

fn count_in(data: &Path, query: &str) -> u64 {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["--timezone", "UTC", "search", "--count", query])
        .output()
        .expect("run mailtrail search");
    assert!(
        out.status.success(),
        "search --count {query:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("search --count printed {text:?}"))
}

/// Poll `done` every 50 ms until it holds; `false` if `timeout` passed first.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The test process (and through inheritance the server) needs more than
/// 1,000 descriptors for the connection flood.
fn raise_fd_limit(want: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= want,
        "RLIMIT_NOFILE hard limit {} is below the {want} this test needs",
        limit.rlim_max
    );
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

// ---------------------------------------------------------------- client

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connect and expect the `220` greeting.
    fn connect(addr: &str) -> Client {
        let mut c = Client::open(addr);
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "greeting {greeting:?}");
        c
    }

    /// Connect without reading anything.
    fn open(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// The last line of the next (possibly multi-line) reply; `""` once the
    /// server has closed the connection.
    fn try_reply(&mut self) -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(line);
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line);
            }
        }
    }

    fn reply(&mut self) -> String {
        self.try_reply().expect("read reply")
    }

    fn send(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn ehlo(&mut self) {
        let answer = self.send("EHLO client.example.co.jp");
        assert!(answer.starts_with("250"), "EHLO: {answer:?}");
    }

    /// MAIL, RCPT for each recipient, DATA and the message tagged `word`;
    /// the final reply.
    fn transaction(&mut self, rcpts: &[&str], word: &str) -> String {
        assert!(self
            .send("MAIL FROM:<taro.yamada@example.co.jp>")
            .starts_with("250"));
        for rcpt in rcpts {
            let answer = self.send(&format!("RCPT TO:<{rcpt}>"));
            assert!(answer.starts_with("250"), "RCPT {rcpt}: {answer:?}");
        }
        self.data(&message(word))
    }

    /// DATA, the message (no line starts with a dot), the final dot.
    fn data(&mut self, message: &str) -> String {
        let answer = self.send("DATA");
        assert!(answer.starts_with("354"), "DATA: {answer:?}");
        self.writer.write_all(message.as_bytes()).unwrap();
        self.send(".")
    }

    /// Write `bytes` from another thread while reading `replies` replies
    /// here, so neither side stalls on a full socket buffer.
    fn pipeline(&mut self, bytes: Vec<u8>, replies: usize) -> Vec<String> {
        let mut writer = self.writer.try_clone().unwrap();
        let sender = thread::spawn(move || writer.write_all(&bytes));
        let answers: Vec<String> = (0..replies).map(|_| self.reply()).collect();
        sender.join().unwrap().expect("pipelined write");
        answers
    }
}

/// A small message whose subject word `word` finds it and nothing else.
fn message(word: &str) -> String {
    format!(
        "From: taro.yamada@example.co.jp\r\nTo: hanako@partner.example\r\n\
         Subject: overload probe {word}\r\nMessage-ID: <{word}@example.co.jp>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0900\r\n\r\nbody of {word}\r\n"
    )
}

/// Deterministic pseudo-random bytes (xorshift), every byte value included.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or(reply)
}

// ---------------------------------------------------------------- tests

#[test]
fn garbage_and_overlong_lines_get_errors_and_others_are_still_served() {
    let mut server = Server::start(&[]);

    // 256 KiB of random bytes, then CRLF: one error reply per line, in
    // order, and the session is still in sync afterwards.
    let mut c = Client::connect(&server.smtp);
    let mut bytes = garbage(256 * 1024, 0x9E37_79B9_7F4A_7C15);
    bytes.extend_from_slice(b"\r\n");
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let answers = c.pipeline(bytes, lines);
    let not_errors: Vec<_> = answers.iter().filter(|a| !a.starts_with('5')).collect();
    assert!(
        not_errors.is_empty(),
        "{} of {lines} garbage lines got non-5xx replies: {:?}",
        not_errors.len(),
        &not_errors[..not_errors.len().min(5)]
    );
    println!("[garbage] {lines} garbage lines, {lines} 5xx replies");
    assert!(c.send("NOOP").starts_with("250"));

    // An 8 MiB command line: 500, then the session goes on.
    let mut long = vec![b'A'; 8 * MIB];
    long.extend_from_slice(b"\r\n");
    let answer = c.pipeline(long, 1).remove(0);
    assert!(answer.starts_with("500"), "8 MiB line: {answer:?}");
    assert!(c.send("NOOP").starts_with("250"));

    // The same inside a transaction: the envelope survives the bad line.
    c.ehlo();
    assert!(c
        .send("MAIL FROM:<taro.yamada@example.co.jp>")
        .starts_with("250"));
    let mut long_rcpt = b"RCPT TO:<".to_vec();
    long_rcpt.extend(vec![b'x'; MIB]);
    long_rcpt.extend_from_slice(b"@partner.example>\r\n");
    assert_eq!(code(&c.pipeline(long_rcpt, 1)[0]), "500");
    assert!(c
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    let answer = c.data(&message("garbagesurvivor"));
    assert!(answer.starts_with("250"), "{answer:?}");
    drop(c);

    // Garbage thrown at the server by clients that never read and hang up,
    // one of them in the middle of an endless line.
    for seed in 1..=3u64 {
        let mut raw = TcpStream::connect(&server.smtp).unwrap();
        let _ = raw.write_all(&garbage(64 * 1024, seed));
    }
    {
        let mut raw = TcpStream::connect(&server.smtp).unwrap();
        let _ = raw.write_all(&vec![b'B'; 4 * MIB]);
    }

    server.assert_serves_a_new_client("garbagefresh");
    assert_eq!(server.count("garbagesurvivor"), 1);
    assert_eq!(server.count(""), 2, "only the two complete messages");
    server.assert_alive_within_budget("garbage");
}

#[test]
fn a_client_that_stops_mid_data_leaves_nothing_behind() {
    let mut server = Server::start(&[]);
    let base = server.open_sockets();

    // One hangs up in the middle of a line, one after a complete line: in
    // neither case is the end of the data (CRLF . CRLF) ever sent.
    let half = message("halfwaymessage");
    for cut in [half.len() / 2, half.find("\r\n\r\n").unwrap() + 4] {
        let mut c = Client::connect(&server.smtp);
        c.ehlo();
        assert!(c
            .send("MAIL FROM:<taro.yamada@example.co.jp>")
            .starts_with("250"));
        assert!(c
            .send("RCPT TO:<hanako@partner.example>")
            .starts_with("250"));
        assert!(c.send("DATA").starts_with("354"));
        c.writer.write_all(&half.as_bytes()[..cut]).unwrap();
        drop(c);
        assert!(
            wait_until(Duration::from_secs(10), || server.open_sockets() == base),
            "the server still holds the connection of a client that left mid-DATA"
        );
    }

    assert_eq!(server.count("halfwaymessage"), 0, "half a message stored");
    server.assert_serves_a_new_client("afterhalfway");
    assert_eq!(server.count(""), 1);
    server.assert_alive_within_budget("mid-DATA");
}

#[test]
fn a_100_mb_message_gets_552_without_being_buffered_and_others_are_served() {
    const MESSAGE_BYTES: usize = 100 * MIB;
    let mut server = Server::start(&[]);
    let mut c = Client::connect(&server.smtp);
    c.ehlo();

    // Announced size over the limit: refused before any data.
    let answer = c.send(&format!(
        "MAIL FROM:<taro.yamada@example.co.jp> SIZE={MESSAGE_BYTES}"
    ));
    assert!(
        answer.starts_with("552"),
        "MAIL ... SIZE=100MiB: {answer:?}"
    );
    // Exactly at the limit is still fine, and the refused MAIL left no
    // transaction behind (otherwise this would be 503).
    assert!(c
        .send(&format!(
            "MAIL FROM:<taro.yamada@example.co.jp> SIZE={MAX_MESSAGE_BYTES}"
        ))
        .starts_with("250"));
    assert!(c.send("RSET").starts_with("250"));

    // No SIZE announced: the client streams 100 MiB, which the server must
    // read and discard, answering 552 at the end.
    assert!(c
        .send("MAIL FROM:<taro.yamada@example.co.jp>")
        .starts_with("250"));
    assert!(c
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    assert!(c.send("DATA").starts_with("354"));
    let before = server.memory();
    let mut chunk = b"From: taro.yamada@example.co.jp\r\nSubject: hugemessage\r\n\r\n".to_vec();
    let line = format!("{}\r\n", "x".repeat(998));
    while chunk.len() + line.len() <= MIB {
        chunk.extend_from_slice(line.as_bytes());
    }
    chunk.resize(MIB - 2, b'y');
    chunk.extend_from_slice(b"\r\n");
    let started = Instant::now();
    for i in 0..MESSAGE_BYTES / MIB {
        c.writer.write_all(&chunk).unwrap();
        if i == MESSAGE_BYTES / MIB / 2 {
            // Half-way through the big message, someone else is served.
            server.assert_serves_a_new_client("duringhuge");
        }
    }
    let answer = c.send(".");
    let took = started.elapsed();
    assert!(
        answer.starts_with("552"),
        "after 100 MiB of data: {answer:?}"
    );

    let after = server.assert_alive_within_budget("100 MiB message");
    let growth_kib = after.hwm_kib.saturating_sub(before.rss_kib);
    println!(
        "[100 MiB message] sent in {took:.1?}; VmRSS before {} KiB, VmHWM after {} KiB, \
         peak growth {growth_kib} KiB (message {} KiB, limit {} KiB)",
        before.rss_kib,
        after.hwm_kib,
        MESSAGE_BYTES / 1024,
        MAX_MESSAGE_BYTES / 1024
    );
    assert!(
        (growth_kib as usize) < MESSAGE_BYTES / 1024,
        "memory grew by {growth_kib} KiB while a {} KiB message was refused: \
         it was buffered, not discarded",
        MESSAGE_BYTES / 1024
    );

    // The session is still in sync and the next message on it is stored.
    assert!(c.send("NOOP").starts_with("250"));
    let answer = c.transaction(&["hanako@partner.example"], "afterhuge");
    assert!(answer.starts_with("250"), "{answer:?}");
    assert_eq!(server.count("hugemessage"), 0);
    assert_eq!(server.count("afterhuge"), 1);
    assert_eq!(server.count(""), 2);
    server.assert_alive_within_budget("100 MiB message");
}

#[test]
fn ten_thousand_recipients_get_452_past_the_limit_and_the_message_is_stored() {
    const RCPTS: usize = 10_000;
    let mut server = Server::start(&[]);
    let mut c = Client::connect(&server.smtp);
    c.ehlo();
    assert!(c
        .send("MAIL FROM:<taro.yamada@example.co.jp>")
        .starts_with("250"));
    let commands: String = (0..RCPTS)
        .map(|i| format!("RCPT TO:<rcpt{i:05}@partner.example>\r\n"))
        .collect();
    let started = Instant::now();
    let answers = c.pipeline(commands.into_bytes(), RCPTS);
    let codes: Vec<&str> = answers.iter().map(|a| code(a)).collect();
    println!(
        "[10,000 RCPT] {} replies in {:.1?}",
        codes.len(),
        started.elapsed()
    );
    assert!(
        codes[..MAX_RECIPIENTS].iter().all(|&c| c == "250"),
        "the first {MAX_RECIPIENTS} recipients are accepted"
    );
    let extra: Vec<_> = answers[MAX_RECIPIENTS..]
        .iter()
        .filter(|a| code(a) != "452")
        .collect();
    assert!(
        extra.is_empty(),
        "{} recipients past the limit not answered 452, e.g. {:?}",
        extra.len(),
        extra.first()
    );

    // Someone else is served while this transaction is open.
    server.assert_serves_a_new_client("besidemanyrcpts");

    // The message goes to the accepted recipients.
    let answer = c.data(&message("manyrecipients"));
    assert!(answer.starts_with("250"), "{answer:?}");
    assert_eq!(server.count("manyrecipients"), 1);
    // A bare address matches the message's addresses whatever their role
    // (envelope-only recipients of a journal copy are stored as Bcc).
    assert_eq!(
        server.count("rcpt00999@partner.example manyrecipients"),
        1,
        "the last accepted recipient is on the stored message"
    );
    assert_eq!(
        server.count("rcpt01000@partner.example"),
        0,
        "the first refused recipient is not"
    );
    assert!(c.send("NOOP").starts_with("250"));
    server.assert_alive_within_budget("10,000 RCPT");
}

#[test]
fn a_silent_client_gets_421_after_the_idle_timeout_while_others_are_served() {
    const IDLE: Duration = Duration::from_secs(2);
    const SLACK: Duration = Duration::from_secs(3);
    let mut server = Server::start(&["--idle-timeout", "2"]);

    // Silent after the greeting.
    let mut silent = Client::connect(&server.smtp);
    let since = Instant::now();
    let waiter = thread::spawn(move || {
        let first = silent.reply();
        let at = since.elapsed();
        let then = silent.reply();
        (first, at, then, since.elapsed())
    });
    // Silent after DATA's 354.
    let mut in_data = Client::connect(&server.smtp);
    in_data.ehlo();
    assert!(in_data
        .send("MAIL FROM:<taro.yamada@example.co.jp>")
        .starts_with("250"));
    assert!(in_data
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    assert!(in_data.send("DATA").starts_with("354"));
    let data_since = Instant::now();

    // Meanwhile a busy client is served, twice, each time within the
    // silent clients' wait.
    server.assert_serves_a_new_client("whilesilent1");
    server.assert_serves_a_new_client("whilesilent2");

    let (first, at, then, closed_at) = waiter.join().unwrap();
    println!("[silent] idle client: {first:?} after {at:.2?}, EOF after {closed_at:.2?}");
    assert!(first.starts_with("421"), "idle client got {first:?}");
    assert!(
        at + Duration::from_millis(100) >= IDLE && at <= IDLE + SLACK,
        "421 after {at:?}, idle timeout {IDLE:?}"
    );
    assert_eq!(then, "", "connection closed after the 421");
    assert!(closed_at <= IDLE + SLACK);

    // Idle in DATA the connection is closed too, with a 421 first.
    let mut last = String::new();
    let closed = loop {
        match in_data.try_reply() {
            Ok(line) if line.is_empty() => break Ok(data_since.elapsed()),
            Ok(line) => last = line,
            Err(e) => break Err(e),
        }
    };
    println!("[silent] idle client in DATA: last reply {last:?}, closed {closed:?}");
    let closed = closed.expect("connection idle in DATA is closed");
    assert!(
        closed <= IDLE + SLACK,
        "idle in DATA closed after {closed:?}"
    );
    assert!(
        last.starts_with("421"),
        "idle in DATA is told 421: {last:?}"
    );
    assert_eq!(server.count(""), 2);
    server.assert_alive_within_budget("silent");
}

#[test]
fn a_client_that_stops_reading_replies_is_disconnected_by_the_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(2);
    let mut server = Server::start(&["--idle-timeout", "2"]);
    let base = server.open_sockets();

    // Pipeline EHLOs (each ~120 bytes of reply for 8 bytes sent) and never
    // read: the server's replies fill both socket buffers, the server stops
    // reading, and our writes stall. That is a client holding a connection
    // while saying nothing, as much as one that never writes.
    let c = Client::connect(&server.smtp);
    let mut writer = c.writer.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let chunk = b"EHLO x\r\n".repeat(8 * 1024);
    let mut sent = 0usize;
    let stalled = Instant::now();
    let dropped_while_writing = loop {
        match writer.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            // The server gave up on us while we were still filling its
            // receive buffer: its replies had stalled for the idle timeout.
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break true
            }
            Err(e) => panic!("write failed after {sent} bytes: {e}"),
        }
        assert!(sent < 512 * MIB, "the server never stopped reading");
    };
    println!(
        "[not reading] server stopped reading after {sent} bytes of EHLO \
         (dropped while we wrote: {dropped_while_writing}, after {:.1?})",
        stalled.elapsed()
    );
    if !dropped_while_writing {
        assert_eq!(server.open_sockets(), base + 1);
        // A well-behaved client is unaffected (one of 200 slots is taken).
        server.assert_serves_a_new_client("besidenonreader");
    }

    let released = wait_until(IDLE + Duration::from_secs(8), || {
        server.open_sockets() == base
    });
    println!(
        "[not reading] connection released: {released} after {:.1?}",
        stalled.elapsed()
    );
    assert!(
        released,
        "a client that stopped reading still holds its connection {:.1?} after it \
         went quiet (idle timeout {IDLE:?}); {MAX_CONNECTIONS} such clients \
         would lock every other client out with 421",
        stalled.elapsed()
    );
    drop(c);
    server.assert_alive_within_budget("not reading");
}

#[test]
fn a_thousand_connections_get_220_or_421_and_the_server_recovers() {
    const CONNECTIONS: usize = 1000;
    raise_fd_limit(4096);
    // A long idle timeout keeps the admitted connections for the whole test.
    let mut server = Server::start(&["--idle-timeout", "120", "--http", "127.0.0.1:0"]);

    let started = Instant::now();
    let mut clients: Vec<Client> = (0..CONNECTIONS)
        .map(|_| Client::open(&server.smtp))
        .collect();
    let opened = started.elapsed();
    let mut served = Vec::new();
    let (mut refused, mut other) = (0, Vec::new());
    for (i, c) in clients.iter_mut().enumerate() {
        c.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        match c.try_reply() {
            Ok(r) if r.starts_with("220") => served.push(i),
            Ok(r) if r.starts_with("421") => refused += 1,
            r => other.push(format!("{r:?}")),
        }
    }
    println!(
        "[1,000 connections] opened in {opened:.1?}, greeted in {:.1?}: {} served, \
         {refused} refused with 421, {} other",
        started.elapsed(),
        served.len(),
        other.len()
    );
    assert!(
        other.is_empty(),
        "neither 220 nor 421: {:?}",
        &other[..other.len().min(5)]
    );
    assert_eq!(served.len(), MAX_CONNECTIONS, "served = the connection cap");
    assert_eq!(refused, CONNECTIONS - MAX_CONNECTIONS);
    let metrics = http_get(server.http.as_deref().unwrap(), "/metrics");
    assert!(
        metrics.contains(&format!(
            "mailtrail_smtp_connections_total {MAX_CONNECTIONS}\n"
        )),
        "{metrics}"
    );

    // At the cap, the admitted clients are still served...
    let admitted = &mut clients[served[MAX_CONNECTIONS / 2]];
    admitted.ehlo();
    let answer = admitted.transaction(&["hanako@partner.example"], "duringflood");
    assert!(answer.starts_with("250"), "{answer:?}");
    assert_eq!(server.count("duringflood"), 1);
    // ...and one more is turned away, as documented.
    let mut late = Client::open(&server.smtp);
    let answer = late.reply();
    assert!(answer.starts_with("421"), "past the cap: {answer:?}");
    server.assert_alive_within_budget("1,000 connections");

    // All hang up: the server frees the slots and serves a newcomer.
    drop(clients);
    drop(late);
    let recovered = Instant::now();
    let mut greeting = String::new();
    let back = wait_until(Duration::from_secs(10), || {
        let mut c = Client::open(&server.smtp);
        greeting = c.reply();
        greeting.starts_with("220")
    });
    assert!(back, "after the flood a new client still gets {greeting:?}");
    println!(
        "[1,000 connections] a new client is greeted {:.2?} after the flood closed",
        recovered.elapsed()
    );
    server.assert_serves_a_new_client("afterflood");
    assert_eq!(server.count(""), 2);
    server.assert_alive_within_budget("1,000 connections");
}

/// Several clients each streaming a large message at once share one memory
/// budget (`[smtp] max_buffered_bytes`): what would go over it is read to
/// its end, dropped and answered `451` (the sender retries later), so the
/// server's memory does not grow with the number of such clients. Once they
/// are done, the budget is whole again.
#[test]
fn concurrent_large_messages_share_one_memory_budget() {
    const CLIENTS: usize = 4;
    const EACH: usize = 30 * MIB;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[smtp]\nmax_buffered_bytes = 67108864\n").unwrap();
    let mut server = Server::start(&["--config", config.path().to_str().unwrap()]);
    let before = server.memory();
    let senders: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = server.smtp.clone();
            thread::spawn(move || {
                let mut c = Client::connect(&addr);
                c.ehlo();
                assert!(c
                    .send("MAIL FROM:<taro.yamada@example.co.jp>")
                    .starts_with("250"));
                assert!(c
                    .send("RCPT TO:<hanako@partner.example>")
                    .starts_with("250"));
                assert!(c.send("DATA").starts_with("354"));
                let head = format!(
                    "From: taro.yamada@example.co.jp\r\nTo: hanako@partner.example\r\n\
                     Subject: bulky{i}\r\nMessage-ID: <bulky-{i}@example.co.jp>\r\n\r\n"
                );
                c.writer.write_all(head.as_bytes()).unwrap();
                let line = format!("{}\r\n", "x".repeat(998));
                let chunk = line.repeat(1024);
                let mut sent = 0;
                while sent < EACH {
                    c.writer.write_all(chunk.as_bytes()).unwrap();
                    sent += chunk.len();
                }
                c.send(".")
            })
        })
        .collect();
    let answers: Vec<String> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    println!("[budget] answers {answers:?}");
    let stored = answers.iter().filter(|a| a.starts_with("250")).count();
    let deferred = answers.iter().filter(|a| a.starts_with("451")).count();
    assert_eq!(stored + deferred, CLIENTS, "only 250 or 451: {answers:?}");
    assert!(
        stored >= 1,
        "the budget holds at least one message: {answers:?}"
    );
    assert!(
        deferred >= 1,
        "4 × 30 MiB cannot fit in 64 MiB: {answers:?}"
    );
    assert_eq!(
        server.count("bulky0 OR bulky1 OR bulky2 OR bulky3"),
        stored as u64
    );
    let after = server.assert_alive_within_budget("budget");
    println!(
        "[budget] peak {} MiB (started at {} MiB)",
        after.hwm_kib / 1024,
        before.rss_kib / 1024
    );
    // The budget is whole again: a message as large as the budget allows fits.
    let mut c = Client::connect(&server.smtp);
    c.ehlo();
    assert!(c
        .transaction(&["hanako@partner.example"], "afterbudget")
        .starts_with("250"));
}
