//! What the tests that drive the served console through the binary share:
//! starting `mailtrail serve` on free ports and learning its HTTP address,
//! a plain HTTP/1.1 exchange, and signing in through the real form.
//!
//! Each test file uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Run `mailtrail --data-dir DATA ARGS…`, require success, and return
/// what it printed on standard output.
pub fn mailtrail_ok(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailtrail {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A server started by a test, stopped when the test ends — also when it
/// fails half-way, so that no test leaves a `mailtrail serve` behind.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mailtrail serve` over `data` with the console and SMTP on free loopback
/// ports, and the console's address once it listens.
pub fn serve(data: &Path) -> (Server, String) {
    let server = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--http", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(server);
    let (addr, _) = listening_http(&mut server.0, "");
    (server, addr)
}

/// Read a starting server's output up to its `listening http ADDR` line
/// (ADDR equal to `expected` unless that is empty) and return ADDR with
/// everything printed before it. The output is read on a thread that goes
/// on draining it, so that the server never blocks on a full pipe, and a
/// server that never listens fails the test after a minute instead of
/// hanging it.
pub fn listening_http(server: &mut Child, expected: &str) -> (String, String) {
    let stdout = server.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once the test stops listening, keep draining regardless.
            let _ = lines.send(line);
        }
    });
    let mut seen = String::new();
    loop {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(a) = line.trim().strip_prefix("listening http ") {
                    if expected.is_empty() || a == expected {
                        return (a.to_string(), seen);
                    }
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => panic!("the server did not listen within a minute; it printed:\n{seen}"),
        }
    }
}

/// One request on its own connection; the whole answer as text.
pub fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Sign in through the form (its token cookie and CSRF field) and return
/// the answer to the POST, which carries the session cookie on success.
pub fn sign_in(addr: &str, user: &str, password: &str) -> String {
    let login = http(
        addr,
        "GET /login HTTP/1.1\r\nHost: x\r\nAccept-Language: ja\r\nConnection: close\r\n\r\n",
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let marker = "name=\"csrf\" value=\"";
    let start = login.find(marker).unwrap() + marker.len();
    let token = &login[start..start + 64];
    let body = format!("user={user}&password={password}&csrf={token}");
    http(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The session cookie (`mt_session=…`) an answer sets.
pub fn session_cookie(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .filter(|c| c.starts_with("mt_session="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in:\n{answer}"))
        .to_string()
}
