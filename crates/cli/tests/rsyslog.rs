//! A real rsyslog (Debian package) forwards Postfix logs to `mailtrail serve`:
//! one file over TCP with RFC 6587 octet counting, another over UDP. Both
//! arrive as searchable messages. rsyslogd runs with a private configuration
//! in a temporary folder; without it the test says it was skipped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn flows(prefix: &str, count: u32) -> String {
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S");
    (0..count)
        .map(|n| {
            let qid = format!("{prefix}{n:06X}");
            format!(
                "{stamp} mx1 postfix/smtpd[10]: {qid}: client=pc-{n}.example.co.jp[10.1.0.7]\n\
                 {stamp} mx1 postfix/cleanup[11]: {qid}: message-id=<{prefix}-{n}@example.co.jp>\n\
                 {stamp} mx1 postfix/qmgr[12]: {qid}: from=<taro@example.co.jp>, size=900, nrcpt=1 (queue active)\n\
                 {stamp} mx1 postfix/smtp[13]: {qid}: to=<{prefix}{n}@partner.example>, relay=mx.partner.example[192.0.2.25]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)\n\
                 {stamp} mx1 postfix/qmgr[12]: {qid}: removed\n"
            )
        })
        .collect()
}

fn count(data: &Path, query: &str) -> u64 {
    Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data)
        .args(["search", "--count", query])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn rsyslog_forwards_postfix_logs_over_tcp_and_udp() {
    let Ok(rsyslogd) = which("rsyslogd") else {
        println!("skipped: rsyslogd is not installed (apt-get install rsyslog)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut guard = Guard(Vec::new());

    let mut server = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--org-domain", "example.co.jp", "--timezone", "UTC"])
        .args(["serve", "--smtp", "127.0.0.1:0"])
        .args(["--syslog-udp", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(server.stdout.take().unwrap());
    guard.0.push(server);
    let (mut udp, mut tcp) = (String::new(), String::new());
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().strip_prefix("listening syslog-udp ") {
            udp = a.to_string();
        }
        if let Some(a) = line.trim().strip_prefix("listening syslog-tcp ") {
            tcp = a.to_string();
        }
    }
    let port = |a: &str| a.rsplit(':').next().unwrap().to_string();

    let tcp_log = dir.path().join("postfix-tcp.log");
    let udp_log = dir.path().join("postfix-udp.log");
    std::fs::write(&tcp_log, flows("TC", 20)).unwrap();
    std::fs::write(&udp_log, flows("UD", 20)).unwrap();
    let work = dir.path().join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imfile" PollingInterval="1")
template(name="raw" type="string" string="%rawmsg%\n")
input(type="imfile" File="{tcp_log}" Tag="postfix" ruleset="to_tcp" readMode="0")
input(type="imfile" File="{udp_log}" Tag="postfix" ruleset="to_udp" readMode="0")
ruleset(name="to_tcp") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp" TCP_Framing="octet-counted" template="raw")
}}
ruleset(name="to_udp") {{
  action(type="omfwd" target="127.0.0.1" port="{udp_port}" protocol="udp" template="raw")
}}
"#,
            work = work.display(),
            tcp_log = tcp_log.display(),
            udp_log = udp_log.display(),
            tcp_port = port(&tcp),
            udp_port = port(&udp),
        ),
    )
    .unwrap();
    let rsyslog = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    guard.0.push(rsyslog);

    // TC* recipients came over TCP, UD* over UDP.
    let mut got = (0, 0);
    for _ in 0..300 {
        got = (
            count(&data, "status:delivered"),
            count(&data, "to:ud0@partner.example"),
        );
        if got.0 >= 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got.0, 40, "delivered messages after 30 s");
    for n in [0, 7, 19] {
        assert_eq!(
            count(&data, &format!("to:tc{n}@partner.example status:delivered")),
            1
        );
        assert_eq!(
            count(&data, &format!("to:ud{n}@partner.example status:delivered")),
            1
        );
    }
    assert_eq!(count(&data, "system:postfix@mx1 direction:outbound"), 40);
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(())
}
