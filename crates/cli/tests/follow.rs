//! `mailtrail serve --follow`: a growing Postfix log is read as it is
//! written, across rotation by rename and by copy-truncate, and across a
//! `kill -9` and restart — every message stored exactly once; and the same
//! with rotations at random lines while mailtrail is killed again and again.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the server if the test fails half-way.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(data: &Path, log: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "--timezone", "UTC"])
        .args(["serve", "--smtp", "127.0.0.1:0", "--follow"])
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("start-up line");
    }
    Server(Some(child))
}

fn flow(n: u32) -> String {
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S");
    let qid = format!("{:010X}", 0xA0000 + n);
    format!(
        "{stamp} mx1 postfix/smtpd[10]: {qid}: client=pc-{n}.example.co.jp[10.1.0.7]\n\
         {stamp} mx1 postfix/cleanup[11]: {qid}: message-id=<follow-{n}@example.co.jp>\n\
         {stamp} mx1 postfix/qmgr[12]: {qid}: from=<taro@example.co.jp>, size=900, nrcpt=1 (queue active)\n\
         {stamp} mx1 postfix/smtp[13]: {qid}: to=<r{n}@partner.example>, relay=mx.partner.example[192.0.2.25]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)\n\
         {stamp} mx1 postfix/qmgr[12]: {qid}: removed\n"
    )
}

fn append(log: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn stats(data: &Path) -> (u64, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["stats", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        v["messages"].as_u64().unwrap_or(0),
        v["deliveries"]["delivered"].as_u64().unwrap_or(0),
    )
}

/// Wait until the store holds `n` messages. A bound, not a speed
/// requirement: generous, so that a busy CI machine cannot fail the test.
fn wait_for_messages(data: &Path, n: u64) {
    if !reaches(data, n) {
        panic!("fewer than {n} messages after 60 s: {:?}", stats(data));
    }
}

/// Whether the store holds `n` messages within 60 s.
fn reaches(data: &Path, n: u64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if stats(data).0 >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn stop(mut server: Server) {
    let mut child = server.0.take().expect("running");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn followed_log_survives_rotation_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let data = dir.path().join("data");
    append(&log, &(flow(1) + &flow(2)));
    let child = start(&data, &log);
    wait_for_messages(&data, 2);

    // Rotation by rename, lines written to the old file just before it and,
    // by a writer that has not reopened its log yet, just after it.
    append(&log, &flow(3));
    std::fs::rename(&log, dir.path().join("mail.log.1")).unwrap();
    append(&log, &flow(4));
    std::thread::sleep(Duration::from_millis(600));
    append(&dir.path().join("mail.log.1"), &flow(8));
    wait_for_messages(&data, 5);

    // kill -9, more lines while down, a rotation while down, restart.
    drop(child); // SIGKILL

    append(&log, &flow(5));
    std::fs::rename(&log, dir.path().join("mail.log.2")).unwrap();
    append(&log, &flow(6));
    let child = start(&data, &log);
    wait_for_messages(&data, 7);

    // Copy-truncate.
    std::fs::copy(&log, dir.path().join("mail.log.3")).unwrap();
    std::fs::write(&log, "").unwrap();
    append(&log, &flow(7));
    wait_for_messages(&data, 8);
    stop(child);

    // Exactly once: eight messages, eight deliveries.
    assert_eq!(stats(&data), (8, 8));
}

/// logrotate's numbered rename: mail.log.2 → .3, .1 → .2, mail.log → .1.
/// Every rotated file is kept (more numbers than the test rotates): a file
/// that logrotate deletes while mailtrail is down is gone for any reader,
/// and a slow restart on a busy machine must not fail the test for that.
fn rotate_numbered(log: &Path) {
    let name = |n: u32| log.with_extension(format!("log.{n}"));
    for n in (1..64).rev() {
        let _ = std::fs::rename(name(n), name(n + 1));
    }
    let _ = std::fs::rename(log, name(1));
}

/// The flows in `range` whose message is not stored, as ranges: what a
/// failure reports.
fn missing_flows(data: &Path, range: std::ops::Range<u32>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "search",
            "--limit",
            "100000",
            "--format",
            "json",
            "from:taro@example.co.jp",
        ])
        .output()
        .unwrap();
    // One JSON object a line; the flow's number is in its Message-ID.
    let stored: std::collections::BTreeSet<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|m| {
            let id = m["message_id"].as_str()?;
            id.strip_prefix("follow-")?.split('@').next()?.parse().ok()
        })
        .collect();
    let missing: Vec<u32> = range.filter(|n| !stored.contains(n)).collect();
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < missing.len() {
        let mut j = i;
        while j + 1 < missing.len() && missing[j + 1] == missing[j] + 1 {
            j += 1;
        }
        ranges.push(format!("{}-{}", missing[i], missing[j]));
        i = j + 1;
    }
    format!("{} missing: {}", missing.len(), ranges.join(", "))
}

/// A Postfix writing line by line while logrotate renames the log at
/// arbitrary lines (a message's lines end up split across two files), and
/// mailtrail is killed with SIGKILL at random moments and restarted — at
/// times only after one or two rotations happened while it was down. In the
/// end every message is stored exactly once.
#[test]
fn rotations_during_repeated_kill_9_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let data = dir.path().join("data");
    append(&log, "");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    println!("seed {seed}");
    let mut rng = seed | 1;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    const FLOWS: u32 = 800;
    let writer_log = log.clone();
    let rotate_every: Vec<u64> = (0..64).map(|_| 150 + next(250)).collect();
    let writer = std::thread::spawn(move || {
        let mut written_lines = 0u64;
        let mut rotations = rotate_every.into_iter().cycle();
        let mut until_rotation = rotations.next().unwrap_or(100);
        for n in 1000..1000 + FLOWS {
            for line in flow(n).lines() {
                append(&writer_log, &format!("{line}\n"));
                written_lines += 1;
                until_rotation -= 1;
                if until_rotation == 0 {
                    rotate_numbered(&writer_log);
                    until_rotation = rotations.next().unwrap_or(100);
                }
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        written_lines
    });
    let mut server = start(&data, &log);
    let mut kills = 0;
    while !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(100 + next(500)));
        drop(server); // SIGKILL
        kills += 1;
        // Down for a while: sometimes long enough for rotations to happen.
        std::thread::sleep(Duration::from_millis(next(400)));
        server = start(&data, &log);
    }
    let lines = writer.join().unwrap();
    println!("{lines} lines written, {kills} kills");
    assert!(kills >= 2, "the writer finished before the kills began");
    if !reaches(&data, u64::from(FLOWS)) {
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        panic!(
            "fewer than {FLOWS} messages after 60 s: {:?}; {}; files {files:?}",
            stats(&data),
            missing_flows(&data, 1000..1000 + FLOWS)
        );
    }
    stop(server);
    assert_eq!(stats(&data), (u64::from(FLOWS), u64::from(FLOWS)));
}

/// A folder of rolling logs followed by a pattern (as Exchange writes
/// MSGTRK*.LOG): the files present at start, a file that appears later, lines
/// appended to an older file, and a restart that repeats nothing.
#[test]
fn a_pattern_follows_every_matching_file_and_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    append(&logs.join("relay-1.log"), &(flow(2001) + &flow(2002)));
    append(&logs.join("other.txt"), &flow(2999));
    let pattern = logs.join("relay-*.log");
    let server = start(&data, &pattern);
    wait_for_messages(&data, 2);

    append(&logs.join("relay-2.log"), &flow(2003));
    wait_for_messages(&data, 3);
    append(&logs.join("relay-1.log"), &flow(2004));
    wait_for_messages(&data, 4);
    stop(server);

    append(&logs.join("relay-2.log"), &flow(2005));
    append(&logs.join("relay-3.log"), &flow(2006));
    let server = start(&data, &pattern);
    wait_for_messages(&data, 6);
    stop(server);
    // Exactly once, and nothing from the file the pattern does not match.
    assert_eq!(stats(&data), (6, 6));
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

/// Exchange's tracking-log folder followed live (`MSGTRK*.LOG`, a new file
/// appearing while mailtrail runs) ends with the same messages and
/// deliveries as `mailtrail import` of the same files.
#[test]
fn an_exchange_tracking_folder_followed_live_equals_its_import() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/fixtures/msgtrk");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("MessageTracking");
    std::fs::create_dir(&logs).unwrap();
    let first = logs.join("MSGTRK2025111000-1.LOG");
    let second = logs.join("MSGTRK2025111001-1.LOG");
    std::fs::copy(fixtures.join("ex2013.LOG"), &first).unwrap();

    let imported = dir.path().join("imported");
    let status = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&imported)
        .args(["--org-domain", "example.co.jp", "import", "-q"])
        .arg(fixtures.join("ex2013.LOG"))
        .arg(fixtures.join("ex2019.LOG"))
        .status()
        .unwrap();
    assert!(status.success());
    let want = stats_json(&imported);
    let want_messages = want["messages"].as_u64().unwrap();
    assert!(want_messages > 2, "{want}");

    let data = dir.path().join("live");
    let server = start(&data, &logs.join("MSGTRK*.LOG"));
    std::fs::copy(fixtures.join("ex2019.LOG"), &second).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stats_json(&data)["deliveries"] != want["deliveries"] {
        assert!(
            std::time::Instant::now() < deadline,
            "live {} vs imported {want}",
            stats_json(&data)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(server);
    let got = stats_json(&data);
    assert_eq!(got["messages"], want["messages"], "{got} vs {want}");
    assert_eq!(got["deliveries"], want["deliveries"], "{got} vs {want}");
    assert_eq!(got["directions"], want["directions"], "{got} vs {want}");
}
