//! Crash safety of the SMTP journal receiver: messages are sent while
//! `mailtrail serve` is killed with SIGKILL at arbitrary moments and
//! restarted; the client retries every message it did not see acknowledged,
//! as MTAs do. Afterwards exactly the messages sent are stored — none
//! missing (a `250` is only sent after the commit), none duplicated (a
//! retried message is stored once).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn start(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp"])
        .args(["serve", "--smtp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .trim_start_matches("listening smtp ")
        .to_string();
    (child, addr)
}

/// One SMTP transaction; `true` only if the final reply was 250.
fn send(addr: &str, n: u32) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        let mut reply = || -> std::io::Result<String> {
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                if line.len() < 4 || line.as_bytes()[3] != b'-' {
                    return Ok(line);
                }
            }
        };
        if !reply()?.starts_with("220") {
            return Ok(false);
        }
        let body = format!(
            "From: taro.yamada@example.co.jp\r\nTo: hanako@partner.example\r\n\
             Subject: crash test {n}\r\nMessage-ID: <crash-{n}@example.co.jp>\r\n\
             Date: Fri, 27 Nov 2026 10:00:00 +0900\r\n\r\nbody {n}\r\n.\r\n"
        );
        for command in [
            "EHLO client\r\n".to_string(),
            "MAIL FROM:<taro.yamada@example.co.jp>\r\n".to_string(),
            "RCPT TO:<hanako@partner.example>\r\n".to_string(),
            "DATA\r\n".to_string(),
            body,
        ] {
            writer.write_all(command.as_bytes())?;
            let r = reply()?;
            if !(r.starts_with('2') || r.starts_with('3')) {
                return Ok(false);
            }
            if command.ends_with(".\r\n") {
                return Ok(r.starts_with("250"));
            }
        }
        Ok(false)
    };
    attempt().unwrap_or(false)
}

#[test]
fn every_acknowledged_message_survives_kill_9_exactly_once() {
    const N: u32 = 60;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, mut addr) = start(&data);
    let pid = Arc::new(AtomicI32::new(child.id() as i32));

    // A killer thread: SIGKILL the current server at pseudo-random moments
    // for as long as messages are being sent.
    let killer_pid = pid.clone();
    let done = Arc::new(AtomicBool::new(false));
    let killer_done = done.clone();
    let killer = std::thread::spawn(move || {
        let mut seed: u64 = 0x5eed;
        while !killer_done.load(Ordering::SeqCst) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_millis(40 + (seed >> 33) % 160));
            let p = killer_pid.load(Ordering::SeqCst);
            if p > 0 && !killer_done.load(Ordering::SeqCst) {
                // SAFETY: signalling the test's own child process (never 0,
                // which would mean the whole process group).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    });

    let mut retries = 0;
    for n in 0..N {
        // Paced, so that the kills fall in the middle of the run whatever
        // the machine's speed.
        std::thread::sleep(Duration::from_millis(15));
        loop {
            if send(&addr, n) {
                break;
            }
            retries += 1;
            assert!(retries < 1000, "too many retries");
            // Down (killed) or refusing: restart it if it died.
            if let Ok(Some(_)) = child.try_wait() {
                let (c, a) = start(&data);
                child = c;
                addr = a;
                pid.store(child.id() as i32, Ordering::SeqCst);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    pid.store(0, Ordering::SeqCst);
    killer.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        retries > 0,
        "the server was never killed mid-run: the test proved nothing"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "search",
            "--format",
            "json",
            "--limit",
            "1000",
            "subject:crash",
        ])
        .output()
        .unwrap();
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..N).map(|n| format!("crash-{n}@example.co.jp")).collect();
    expected.sort();
    assert_eq!(ids, expected, "after {retries} retries");
}
