//! A real Postfix (the Debian package) relays mail sent with `swaks` to a
//! sink, journals every message to `mailtrail serve` with `always_bcc`, and
//! writes its log to a `maillog_file` that mailtrail follows. Every message
//! sent — plain To/Cc, with envelope-only (Bcc) recipients, with an
//! ISO-2022-JP encoded subject (社外秘), with attachments — must be one
//! searchable message with the To/Cc/Bcc that were sent, a `delivered`
//! delivery from Postfix's log for every recipient, and both sources
//! (`journal` and `postfix@mx1`) merged into it.
//!
//! Why it is shaped this way:
//! - **Nothing system-wide.** Postfix runs as a private instance: its own
//!   `config_directory`, `queue_directory`, `data_directory` and log file in
//!   a temporary folder, started and stopped with `postfix -c DIR` as root.
//!   A directory not listed in the default `main.cf`'s
//!   `alternate_config_directories` is fine (that list is consulted by the
//!   set-gid commands such as `postdrop`, which nothing here uses), so
//!   `/etc/postfix/main.cf` need not even exist, and neither it nor the
//!   system queue is read or changed. What the package provides is the
//!   programs, the `postfix` user and the `postdrop` group. `maillog_file`
//!   must lie below one of `maillog_file_prefixes` (`/var` by default),
//!   which is therefore set to the temporary folder.
//! - **The journal copy carries no recipients.** Postfix delivers the
//!   `always_bcc` copy in its own SMTP transaction (a different next hop
//!   from the relay), whose envelope names only the journal mailbox. The
//!   Bcc recipients are therefore only visible as the difference between
//!   the log's `to=<…>` lines and the copy's To/Cc headers: this test is the
//!   end-to-end proof of that merge.
//! - **A sentinel closes the window.** mailtrail may show a message before
//!   the last of its log lines (the journal copy's own `to=<journal@…>`) is
//!   read. So the test waits until Postfix has logged every message as
//!   `removed`, then sends one more message and waits for that one: the
//!   follower reads the log in order, so once the sentinel is complete,
//!   everything logged before it has been read, and the absence of the
//!   journal mailbox among the recipients is a fact, not an early look.
//! - Without Postfix or swaks installed the test says it was skipped (CI
//!   installs both, see `.ci/run`).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORG: &str = "example.co.jp";
const JOURNAL: &str = "journal@mailtrail.test";
const SENDER: &str = "taro.yamada@example.co.jp";
/// Postfix's `myhostname`; its log lines name the host `mx1`.
const MYHOSTNAME: &str = "mx1.example.co.jp";
const POSTFIX_SYSTEM: &str = "postfix@mx1";
const JOURNAL_SYSTEM: &str = "journal";
const DEADLINE: Duration = Duration::from_secs(30);

/// 社外秘 in ISO-2022-JP: ESC $ B, the JIS X 0208 codes 0x3C52 (社),
/// 0x3330 (外), 0x486B (秘), ESC ( B.
const SHAGAIHI_ISO_2022_JP: &[u8] = b"\x1b$B<R30Hk\x1b(B";

/// Everything the test started, stopped in the right order even when an
/// assertion fails half-way: Postfix first (it still talks to the others),
/// then mailtrail and the sink.
#[derive(Default)]
struct Lab {
    postfix: Option<Postfix>,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(postfix) = self.postfix.take() {
            postfix.stop();
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private Postfix instance, known by its configuration directory.
struct Postfix {
    program: PathBuf,
    config: PathBuf,
    master_pid: Option<libc::pid_t>,
}

impl Postfix {
    /// `postfix stop` (which waits up to five seconds for the master), then
    /// SIGKILL for a master that is still there, so that no process outlives
    /// the test.
    fn stop(self) {
        let _ = Command::new(&self.program)
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let Some(pid) = self.master_pid else { return };
        let gone = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > gone {
                // SAFETY: signalling the master process this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One message sent through Postfix, and what mailtrail must show for it.
struct Mail {
    /// A word of the subject found in no other message.
    key: &'static str,
    message_id: String,
    subject_header: String,
    /// The subject as it must read once decoded.
    subject: String,
    to: Vec<&'static str>,
    cc: Vec<&'static str>,
    /// Envelope recipients named in no header.
    bcc: Vec<&'static str>,
    /// (file name, content type) of each attachment.
    attachments: Vec<(&'static str, &'static str)>,
    direction: &'static str,
}

impl Mail {
    fn new(key: &'static str, subject: &str) -> Mail {
        Mail {
            key,
            message_id: format!("live-{key}@{ORG}"),
            subject_header: subject.to_string(),
            subject: subject.to_string(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            attachments: Vec::new(),
            direction: "outbound",
        }
    }

    fn recipients(&self) -> Vec<&'static str> {
        [&self.to, &self.cc, &self.bcc]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }
}

fn mails() -> Vec<Mail> {
    let encoded = format!("=?ISO-2022-JP?B?{}?=", base64(SHAGAIHI_ISO_2022_JP));
    assert_eq!(encoded, "=?ISO-2022-JP?B?GyRCPFIzMEhrGyhC?=");
    vec![
        Mail {
            to: vec!["hanako@partner.example"],
            cc: vec!["jiro.suzuki@example.co.jp"],
            ..Mail::new("kiwi", "Quarterly plan kiwi")
        },
        Mail {
            to: vec!["hanako@partner.example"],
            bcc: vec!["secret@partner.example"],
            ..Mail::new("mango", "Pricing mango")
        },
        Mail {
            subject_header: format!("{encoded} papaya"),
            to: vec!["buyer@client.example", "sales@example.co.jp"],
            cc: vec!["legal@client.example"],
            bcc: vec!["boss@example.co.jp", "archive@other.example"],
            ..Mail::new("papaya", "社外秘 papaya")
        },
        Mail {
            to: vec!["buyer@client.example"],
            cc: vec!["sales@example.co.jp"],
            attachments: vec![
                ("見積書.pdf", "application/pdf"),
                (
                    "report.xlsx",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
            ],
            ..Mail::new("guava", "Quote guava")
        },
    ]
}

/// Sent last, once Postfix has finished with the others (see the module doc).
fn sentinel() -> Mail {
    Mail {
        to: vec!["jiro.suzuki@example.co.jp"],
        direction: "internal",
        ..Mail::new("lemon", "Lunch lemon")
    }
}

/// A running set-up: Postfix relaying to a sink and journaling to
/// `mailtrail serve`, which follows Postfix's log.
struct Running {
    /// Stops everything when the test ends.
    _lab: Lab,
    dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    smtpd_port: u16,
    swaks: PathBuf,
}

impl Running {
    fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Start the set-up; `mailtrail_toml`, when given, is written beside the
/// data and `serve` reads it (`--config`). `None` when the test cannot run
/// here (it says why).
fn start_lab(mailtrail_toml: Option<&str>) -> Option<Running> {
    start_lab_files(mailtrail_toml, &[])
}

/// [`start_lab`] with a config file and files beside it (rules).
fn start_lab_with_files(mailtrail_toml: &str, files: &[(&str, &str)]) -> Option<Running> {
    start_lab_files(Some(mailtrail_toml), files)
}

fn start_lab_files(mailtrail_toml: Option<&str>, files: &[(&str, &str)]) -> Option<Running> {
    let (Some(postfix), Some(swaks), Some(sink)) =
        (which("postfix"), which("swaks"), which("smtp-sink"))
    else {
        println!(
            "skipped: postfix, swaks or smtp-sink is not installed (apt-get install postfix swaks)"
        );
        return None;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: starting a private Postfix instance needs root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Postfix daemons run as `postfix` and must reach their files.
    chmod(root, 0o755);
    let data = root.join("data");
    let log = root.join("postfix.log");
    std::fs::write(&log, "").unwrap();
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
    }
    let config = mailtrail_toml.map(|text| {
        let path = root.join("mailtrail.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let mut lab = Lab::default();

    let journal_port = start_mailtrail(&mut lab, &data, &log, config.as_deref());
    let sink_port = free_port();
    lab.children.push(
        Command::new(&sink)
            .args(["-u", "postfix", &format!("127.0.0.1:{sink_port}"), "100"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start smtp-sink"),
    );
    wait_for_port(sink_port);
    let smtpd_port = free_port();
    lab.postfix = Some(start_postfix(
        &postfix,
        root,
        &log,
        smtpd_port,
        sink_port,
        journal_port,
    ));
    Some(Running {
        _lab: lab,
        dir,
        data,
        log,
        smtpd_port,
        swaks,
    })
}

#[test]
fn postfix_relays_journals_and_logs_every_message_into_one() {
    let Some(running) = start_lab(None) else {
        return;
    };
    let (data, log, root, swaks, smtpd_port) = (
        &running.data,
        &running.log,
        running.root(),
        &running.swaks,
        running.smtpd_port,
    );
    let mails = mails();
    let queue_ids: Vec<String> = mails
        .iter()
        .map(|m| send(swaks, smtpd_port, m, root))
        .collect();
    for qid in &queue_ids {
        wait_for_log(log, &format!("{qid}: removed"));
    }
    let last = sentinel();
    send(swaks, smtpd_port, &last, root);

    for mail in mails.iter().chain([&last]) {
        let m = wait_for_message(data, mail);
        check(&m, mail);
    }

    // One message per Message-ID: the journal copies added none of their
    // own, and the search operators see the merged facts.
    let all = mails.len() as u64 + 1;
    for (query, want) in [
        (String::new(), all),
        ("社外秘".to_string(), 1),
        ("subject:社外秘 bcc:boss@example.co.jp".to_string(), 1),
        ("bcc:secret@partner.example".to_string(), 1),
        ("filename:見積書".to_string(), 1),
        ("has:attachment".to_string(), 1),
        ("status:delivered".to_string(), all),
        (format!("system:{POSTFIX_SYSTEM}"), all),
        (format!("system:{JOURNAL_SYSTEM}"), all),
        (format!("to:{JOURNAL}"), 0),
        (format!("bcc:{JOURNAL}"), 0),
    ] {
        assert_eq!(count(data, &query), want, "search --count {query:?}");
    }
}

/// The monitoring rule of the alert test, and where its alerts go.
const ALERT_RULE: &str = r#"
[[rule]]
id = "shagaihi-outbound"
name = "社外秘の社外送信"
[rule.scope]
directions = ["outbound"]
[[rule.condition]]
type = "keywords"
words = ["社外秘"]
[[rule.action]]
type = "alert"
severity = "high"
[[rule.action]]
type = "notify"
channels = ["security-mail", "soc-webhook", "siem"]
"#;

const WEBHOOK_SECRET: &str = "webhook-secret-for-the-test";

/// One HTTP request a receiver got: whether its signature verified, and
/// its body.
struct Hook {
    verified: bool,
    body: serde_json::Value,
}

/// A webhook receiver on loopback: answers 200 to every POST and hands
/// each request on, its HMAC signature checked with the documented
/// procedure (`mailtrail_notify::verify_signature`).
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<Hook>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let length: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let verified = mailtrail_notify::verify_signature(
                WEBHOOK_SECRET,
                &header("x-mailtrail-timestamp"),
                &body,
                &header("x-mailtrail-signature"),
            );
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let _ = send.send(Hook { verified, body });
        }
    });
    (port, receive)
}

/// A message through the real Postfix set-up raises an alert that reaches a
/// mail sink, a webhook receiver (signature verified) and a syslog
/// receiver within 5 s of Postfix accepting the message; the Postfix log
/// lines that arrive later for the same message re-evaluate it but raise
/// and send nothing again.
#[test]
fn a_message_through_postfix_raises_an_alert_delivered_by_mail_webhook_and_syslog() {
    if which("smtp-sink").is_none() {
        println!("skipped: smtp-sink is not installed (apt-get install postfix)");
        return;
    }
    let (hook_port, hooks) = webhook_receiver();
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let syslog_port = syslog.local_addr().unwrap().port();
    let alert_sink_port = free_port();
    let config = format!(
        "org_domains = [\"{ORG}\"]\n\
         timezone = \"UTC\"\n\
         [policy]\nrules = [\"rules.toml\"]\nconsole_url = \"https://mailtrail.example.co.jp\"\n\
         [[notify.mail]]\nname = \"security-mail\"\nhost = \"127.0.0.1\"\nport = {alert_sink_port}\n\
         starttls = \"none\"\nfrom = \"mailtrail@{ORG}\"\nto = [\"security@{ORG}\"]\n\
         [[notify.webhook]]\nname = \"soc-webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
         format = \"generic\"\nsecret = \"{WEBHOOK_SECRET}\"\n\
         [[notify.syslog]]\nname = \"siem\"\naddress = \"127.0.0.1:{syslog_port}\"\n\
         transport = \"udp\"\nformat = \"rfc5424\"\n"
    );
    // The rules file sits beside the config (relative paths are relative to
    // it) and exists before `serve` starts.
    let Some(running) = start_lab_with_files(&config, &[("rules.toml", ALERT_RULE)]) else {
        return;
    };
    // The alert mail sink: Postfix's smtp-sink, keeping each message.
    let dumps = running.root().join("alert-mail");
    std::fs::create_dir_all(&dumps).unwrap();
    chmod(&dumps, 0o777);
    let mut sink = Command::new(which("smtp-sink").unwrap())
        .args(["-u", "postfix", "-d"])
        .arg(format!("{}/%M.", dumps.display()))
        .arg(format!("127.0.0.1:{alert_sink_port}"))
        .arg("10")
        .stdout(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    wait_for_port(alert_sink_port);

    let mail = &mails()[2];
    assert_eq!(mail.key, "papaya", "the 社外秘 message");
    let qid = send(&running.swaks, running.smtpd_port, mail, running.root());
    let accepted = Instant::now();

    // All three arrive, each within 5 s of Postfix accepting the message.
    let deadline = accepted + Duration::from_secs(5);
    let mut hook = None;
    let mut syslog_line = None;
    let mut mail_file = None;
    while (hook.is_none() || syslog_line.is_none() || mail_file.is_none())
        && Instant::now() < deadline
    {
        if hook.is_none() {
            hook = hooks.try_recv().ok();
        }
        if syslog_line.is_none() {
            let mut buf = [0u8; 8192];
            if let Ok(n) = syslog.recv(&mut buf) {
                syslog_line = Some(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        if mail_file.is_none() {
            mail_file = std::fs::read_dir(&dumps)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
        }
    }
    let elapsed = accepted.elapsed();
    println!(
        "alert delivered by all three channels {elapsed:?} after Postfix accepted the message"
    );
    let hook = hook.expect("no webhook within 5 s");
    let syslog_line = syslog_line.expect("no syslog line within 5 s");
    let mail_file = mail_file.expect("no alert mail within 5 s");

    assert!(hook.verified, "the webhook's signature does not verify");
    assert_eq!(hook.body["rule_id"], "shagaihi-outbound", "{}", hook.body);
    assert_eq!(hook.body["matched_text"], "社外秘");
    assert_eq!(hook.body["message"]["message_id"], mail.message_id.as_str());
    assert!(syslog_line.contains("shagaihi-outbound"), "{syslog_line}");
    assert!(syslog_line.contains(&mail.message_id), "{syslog_line}");

    // Postfix's smtp-sink writes the file while the message arrives: read
    // it once its size has settled.
    let mut raw = std::fs::read(&mail_file).unwrap();
    let settle = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = std::fs::read(&mail_file).unwrap();
        if now == raw || Instant::now() > settle {
            break;
        }
        raw = now;
    }
    let alert_mail =
        mailtrail_ingest::mime::parse_message(raw, &mailtrail_ingest::DecodeOptions::default())
            .expect("the alert mail parses");
    let subject = alert_mail.subject.clone().unwrap_or_default();
    assert!(subject.contains("社外秘の社外送信"), "{subject}");
    let body = alert_mail.body_text.clone().unwrap_or_default();
    assert!(body.contains("社外秘 papaya"), "{body}");
    assert!(
        body.contains("https://mailtrail.example.co.jp/alerts/"),
        "{body}"
    );

    // Postfix logs the message's deliveries afterwards; mailtrail follows
    // the log, stores the deliveries, evaluates the message again — and
    // sends nothing again: one alert per rule and message.
    wait_for_log(&running.log, &format!("{qid}: removed"));
    wait_for_message(&running.data, mail);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        hooks.try_recv().is_err(),
        "a second webhook for the same alert"
    );
    let mut buf = [0u8; 8192];
    assert!(syslog.recv(&mut buf).is_err(), "a second syslog line");
    let alerts = mailtrail(&running.data, &["alerts", "--format", "json"]);
    assert_eq!(alerts.lines().count(), 1, "{alerts}");
    let _ = sink.kill();
    let _ = sink.wait();
    let files = std::fs::read_dir(&dumps).unwrap().count();
    assert_eq!(files, 1, "one alert mail");
}

/// What mailtrail shows for `mail` must be exactly what was sent.
fn check(m: &serde_json::Value, mail: &Mail) {
    let key = mail.key;
    assert_eq!(m["message_id"], mail.message_id.as_str(), "{key}: {m:#}");
    assert_eq!(m["subject"], mail.subject.as_str(), "{key}");
    assert_eq!(m["from"], SENDER, "{key}");
    assert_eq!(m["direction"], mail.direction, "{key}");
    assert_eq!(strings(&m["to"]), sorted(&mail.to), "{key}: To");
    assert_eq!(strings(&m["cc"]), sorted(&mail.cc), "{key}: Cc");
    assert_eq!(strings(&m["bcc"]), sorted(&mail.bcc), "{key}: Bcc");
    assert!(
        !strings(&m["envelope_recipients"]).contains(&JOURNAL.to_string()),
        "{key}: the journal mailbox is no recipient: {m:#}"
    );
    let attachments: Vec<(String, String)> = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (text(&a["filename"]), text(&a["content_type"])))
        .collect();
    let mut want: Vec<(String, String)> = mail
        .attachments
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    want.sort();
    let mut got = attachments;
    got.sort();
    assert_eq!(got, want, "{key}: attachments");

    let systems = strings(&m["systems"]);
    assert_eq!(
        systems,
        sorted(&[JOURNAL_SYSTEM, POSTFIX_SYSTEM]),
        "{key}: both sources merged into one message"
    );
    assert_eq!(
        m["content"], true,
        "{key}: the journal copy's content is kept"
    );

    let deliveries = m["deliveries"].as_array().unwrap();
    for rcpt in mail.recipients() {
        assert!(
            deliveries.iter().any(|d| d["recipient"] == rcpt
                && d["status"] == "delivered"
                && d["system"] == POSTFIX_SYSTEM),
            "{key}: no delivered delivery to {rcpt} from {POSTFIX_SYSTEM}: {deliveries:#?}"
        );
    }
    let mut delivered: Vec<String> = deliveries
        .iter()
        .filter(|d| d["status"] == "delivered")
        .map(|d| text(&d["recipient"]))
        .collect();
    delivered.sort();
    delivered.dedup();
    assert_eq!(
        delivered,
        sorted(&mail.recipients()),
        "{key}: delivered to the recipients and nobody else (not the journal mailbox)"
    );
    assert!(
        deliveries.iter().all(|d| d["recipient"] != JOURNAL),
        "{key}: a delivery to the journal mailbox is listed: {deliveries:#?}"
    );
}

/// `mailtrail serve` receiving journal copies and following Postfix's log;
/// returns the journal receiver's port.
fn start_mailtrail(lab: &mut Lab, data: &Path, log: &Path, config: Option<&Path>) -> u16 {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", ORG, "--timezone", "UTC"])
        .args([
            "serve",
            "--smtp",
            "127.0.0.1:0",
            "--journal-address",
            JOURNAL,
        ])
        .arg("--follow")
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    lab.children.push(child);
    let mut addr = None;
    while addr.is_none() {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("start-up line") > 0,
            "mailtrail serve ended before listening"
        );
        addr = line
            .trim()
            .strip_prefix("listening smtp ")
            .map(str::to_string);
    }
    // Keep reading so that the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    port_of(&addr.unwrap())
}

/// Write the private instance's configuration, create its queue, start it.
fn start_postfix(
    postfix: &Path,
    root: &Path,
    log: &Path,
    smtpd_port: u16,
    sink_port: u16,
    journal_port: u16,
) -> Postfix {
    let config = root.join("postfix");
    let queue = root.join("queue");
    let state = root.join("state");
    for d in [&config, &queue, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    chown_postfix(&state);
    std::fs::write(
        config.join("main.cf"),
        format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {state}
maillog_file = {log}
maillog_file_prefixes = {root}
myhostname = {MYHOSTNAME}
mydomain = {ORG}
myorigin = $mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
always_bcc = {JOURNAL}
transport_maps = inline:{{{JOURNAL}=smtp:[127.0.0.1]:{journal_port}}}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
",
            queue = queue.display(),
            state = state.display(),
            log = log.display(),
            root = root.display(),
        ),
    )
    .unwrap();
    // Only the services this test uses, none chrooted (the queue has no copy
    // of /etc and /lib for a chroot).
    std::fs::write(
        config.join("master.cf"),
        format!(
            "127.0.0.1:{smtpd_port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        ),
    )
    .unwrap();
    // `start` first creates the queue's subdirectories with their owners
    // (its integrity check), and returns once the master has bound its
    // sockets (`master -w`). TZ: the log's stamps are read as UTC.
    let out = Command::new(postfix)
        .arg("-c")
        .arg(&config)
        .arg("start")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postfix start: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let master_pid = std::fs::read_to_string(queue.join("pid/master.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Postfix {
        program: postfix.to_path_buf(),
        config,
        master_pid,
    }
}

/// Send `mail` with swaks through Postfix's smtpd; returns its queue id.
fn send(swaks: &Path, port: u16, mail: &Mail, root: &Path) -> String {
    let mut cmd = Command::new(swaks);
    cmd.args(["--server", &format!("127.0.0.1:{port}")])
        .args(["--helo", "pc-0123.example.co.jp"])
        .args(["--from", SENDER])
        .args(["--to", &mail.recipients().join(",")])
        .args(["--header", &format!("To: {}", mail.to.join(", "))])
        .args(["--header", &format!("Subject: {}", mail.subject_header)])
        .args(["--header", &format!("Message-Id: <{}>", mail.message_id)])
        .args(["--body", &format!("Body of the {} message.", mail.key)]);
    if !mail.cc.is_empty() {
        cmd.args(["--header", &format!("Cc: {}", mail.cc.join(", "))]);
    }
    // The file on disk is named plainly; `--attach-name` gives the name the
    // message carries.
    for (n, (name, content_type)) in mail.attachments.iter().enumerate() {
        let file = root.join(format!("attachment-{}-{n}", mail.key));
        std::fs::write(&file, format!("content of {name}\n").repeat(40)).unwrap();
        cmd.args(["--attach-type", content_type])
            .args(["--attach-name", name])
            .arg("--attach")
            .arg(format!("@{}", file.display()));
    }
    let out = cmd.output().expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swaks ({}): {transcript}{}\nPostfix's log:\n{}",
        mail.key,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(root.join("postfix.log")).unwrap_or_default()
    );
    transcript
        .lines()
        .find_map(|l| l.split("queued as ").nth(1))
        .map(|qid| qid.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in swaks' transcript: {transcript}"))
}

/// Wait until mailtrail shows `mail` complete: seen by both sources and
/// delivered to every recipient by Postfix. Returns it (the last view, for
/// the assertions to explain, if the deadline passed).
fn wait_for_message(data: &Path, mail: &Mail) -> serde_json::Value {
    let query = format!("subject:{}", mail.key);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = search(data, &query);
        let complete = found.len() == 1 && {
            let m = &found[0];
            let systems = strings(&m["systems"]);
            let deliveries = m["deliveries"].as_array().cloned().unwrap_or_default();
            systems.iter().any(|s| s == JOURNAL_SYSTEM)
                && systems.iter().any(|s| s == POSTFIX_SYSTEM)
                && mail.recipients().iter().all(|r| {
                    deliveries
                        .iter()
                        .any(|d| d["recipient"] == *r && d["status"] == "delivered")
                })
        };
        if complete || Instant::now() > deadline {
            assert_eq!(found.len(), 1, "{query}: {found:#?}");
            return found.into_iter().next().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until Postfix's log contains `needle`.
fn wait_for_log(log: &Path, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "Postfix did not log {needle:?} within {DEADLINE:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn search(data: &Path, query: &str) -> Vec<serde_json::Value> {
    let out = mailtrail(data, &["search", "--format", "json", query]);
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn count(data: &Path, query: &str) -> u64 {
    let out = mailtrail(data, &["search", "--count", query]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("count of {query:?}: {out:?}"))
}

fn mailtrail(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["--timezone", "UTC"])
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

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A JSON array of strings, sorted (the order of addresses is not the point).
fn strings(v: &serde_json::Value) -> Vec<String> {
    let mut all: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    all.sort();
    all
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    all.sort();
    all
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A port nothing listens on right now (for the programs that cannot pick
/// their own and report it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_postfix(path: &Path) {
    let status = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown postfix {}", path.display());
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}
