//! Alerts through the binary: `mailtrail rules run` raises what a rule
//! matches — exactly the messages the same words find in a search —, once
//! per rule and message; `mailtrail alerts` / `mailtrail alert` list and
//! work them; and `mailtrail serve` evaluates mail as it is stored, reloads
//! changed rule files, and keeps the rules in force when a changed file
//! does not load.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

const RULE: &str = r#"
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
"#;

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn mailtrail(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args(["--org-domain", "example.co.jp", "--timezone", "Asia/Tokyo"])
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

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rules_dir(root: &Path) -> PathBuf {
    let rules = root.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("confidential.toml"), RULE).unwrap();
    rules
}

#[test]
fn a_rule_run_raises_one_alert_per_matching_message_and_alerts_are_worked() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let rules = rules_dir(root.path());
    let rules = rules.to_str().unwrap();
    mailtrail(
        &data,
        &["import", "--quiet", fixtures("search").to_str().unwrap()],
    );
    let run = mailtrail(&data, &["rules", "run", "--rules", rules]);
    // The rule's keyword matching is the search's: same messages.
    let mut searched: Vec<i64> = json_lines(&mailtrail(
        &data,
        &["search", "--format", "json", "社外秘 direction:outbound"],
    ))
    .iter()
    .map(|m| m["id"].as_i64().unwrap())
    .collect();
    searched.sort();
    assert!(!searched.is_empty());
    assert!(
        run.contains(&format!("{} alert(s) raised", searched.len())),
        "{run}"
    );
    let alerts = json_lines(&mailtrail(&data, &["alerts", "--format", "json"]));
    let mut alerted: Vec<i64> = alerts
        .iter()
        .map(|a| a["message"].as_i64().unwrap())
        .collect();
    alerted.sort();
    assert_eq!(alerted, searched);
    for a in &alerts {
        assert_eq!(a["rule"], "shagaihi-outbound");
        assert_eq!(a["rule_name"], "社外秘の社外送信");
        assert_eq!(a["severity"], "high");
        assert_eq!(a["state"], "open");
        assert_eq!(a["condition"], "keywords");
        assert_eq!(a["matched"], "社外秘");
        assert!(a["message_id"].as_str().unwrap().contains('@'), "{a}");
    }

    // Nothing waits any more: a second run raises nothing, and a re-import
    // of the same mail changes nothing, so queues nothing.
    let again = mailtrail(&data, &["rules", "run", "--rules", rules]);
    assert!(again.starts_with("0 message(s) evaluated"), "{again}");
    mailtrail(
        &data,
        &["import", "--quiet", fixtures("search").to_str().unwrap()],
    );
    let again = mailtrail(&data, &["rules", "run", "--rules", rules]);
    assert!(again.starts_with("0 message(s) evaluated"), "{again}");
    assert_eq!(
        json_lines(&mailtrail(&data, &["alerts", "--format", "json"])).len(),
        alerts.len()
    );

    // Working an alert: acknowledge and assign, then call it a false positive.
    let id = alerts[0]["id"].as_i64().unwrap().to_string();
    let acknowledged: serde_json::Value = serde_json::from_str(&mailtrail(
        &data,
        &[
            "alert",
            &id,
            "--state",
            "acknowledged",
            "--assign",
            "sato",
            "--comment",
            "確認中",
            "--user",
            "kanri",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(acknowledged["state"], "acknowledged");
    assert_eq!(acknowledged["assignee"], "sato");
    assert_eq!(acknowledged["history"][0]["user"], "kanri");
    assert_eq!(acknowledged["history"][0]["comment"], "確認中");
    mailtrail(&data, &["alert", &id, "--state", "false-positive"]);
    let open = json_lines(&mailtrail(&data, &["alerts", "--format", "json"]));
    assert_eq!(
        open.len(),
        alerts.len() - 1,
        "closed alerts leave the inbox"
    );
    let all = json_lines(&mailtrail(&data, &["alerts", "--all", "--format", "json"]));
    assert_eq!(all.len(), alerts.len());
    let fp = json_lines(&mailtrail(
        &data,
        &["alerts", "--state", "false-positive", "--format", "json"],
    ));
    assert_eq!(fp.len(), 1);
    assert!(json_lines(&mailtrail(
        &data,
        &["alerts", "--rule", "no-such-rule", "--format", "json"]
    ))
    .is_empty());
}

/// Lines a child printed on standard error, collected as they come.
fn collect_stderr(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = BufReader::new(child.stderr.take().unwrap());
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_evaluates_mail_as_it_arrives_and_keeps_its_rules_when_a_changed_file_is_broken() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let rules = rules_dir(root.path());
    let config = root.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        "org_domains = [\"example.co.jp\"]\ntimezone = \"Asia/Tokyo\"\n\
         [policy]\nrules = [\"rules\"]\nreload_secs = 1\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--smtp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect_stderr(&mut child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _server = support::Server(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening"), "{line}");

    let alerts = |data: &Path| json_lines(&mailtrail(data, &["alerts", "--format", "json"]));
    // Mail stored while the service runs (here by an import) is evaluated.
    mailtrail(
        &data,
        &[
            "import",
            "--quiet",
            fixtures("search")
                .join("01-iso2022jp-subject.eml")
                .to_str()
                .unwrap(),
        ],
    );
    wait_until("the first alert", || alerts(&data).len() == 1);

    // A broken rule file is reported with its file and line; the rules in
    // force stay in force.
    std::fs::write(
        rules.join("zz-broken.toml"),
        "[[rule]]\nid = \"broken\"\n[[rule.condition]]\ntype = \"no_such_condition\"\n",
    )
    .unwrap();
    wait_until("the reload to be refused", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("rules not reloaded") && l.contains("zz-broken.toml"))
    });
    let refused = stderr
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("rules not reloaded"))
        .cloned()
        .unwrap();
    assert!(refused.contains("zz-broken.toml:4"), "{refused}");
    mailtrail(
        &data,
        &[
            "import",
            "--quiet",
            fixtures("console")
                .join("01-shagaihi-mitsumori.eml")
                .to_str()
                .unwrap(),
        ],
    );
    wait_until("the second alert, by the rule still in force", || {
        alerts(&data).len() == 2
    });

    // Mended, the files load again.
    std::fs::remove_file(rules.join("zz-broken.toml")).unwrap();
    wait_until("the reload", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("rules reloaded: 1 rule(s), 1 enabled"))
    });
}

/// `mailtrail digest` mails a day's alerts, in one message, to the mail
/// channel: here Postfix's `smtp-sink`, which keeps what it receives.
#[test]
fn the_daily_digest_lists_the_days_alerts_in_one_mail() {
    let Some(sink) = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        println!("skipped: smtp-sink is not installed (apt-get install postfix)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let rules = rules_dir(root.path());
    mailtrail(
        &data,
        &["import", "--quiet", fixtures("search").to_str().unwrap()],
    );
    let run = mailtrail(&data, &["rules", "run", "--rules", rules.to_str().unwrap()]);
    let raised: usize = run
        .split(": ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(raised > 0, "{run}");

    let dumps = root.path().join("mail");
    std::fs::create_dir_all(&dumps).unwrap();
    // smtp-sink drops to this user when started as root.
    let user = if running_as_root() { "nobody" } else { "" };
    if !user.is_empty() {
        std::process::Command::new("chmod")
            .args(["777", dumps.to_str().unwrap()])
            .status()
            .unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(sink);
    if !user.is_empty() {
        command.args(["-u", user]);
    }
    let child = command
        .arg("-d")
        .arg(format!("{}/%M.", dumps.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("5")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _sink = support::Server(child);
    wait_until("smtp-sink to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let config = root.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.mail]]\nname = \"security\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             starttls = \"none\"\nfrom = \"mailtrail@example.co.jp\"\nto = [\"security@example.co.jp\"]\n\
             timezone = \"Asia/Tokyo\"\ndaily_digest = true\n"
        ),
    )
    .unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["digest", "--day", &today])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains(&format!("sent to security ({raised} alert(s))")),
        "{said}"
    );
    let mut files = Vec::new();
    wait_until("the digest mail", || {
        files = std::fs::read_dir(&dumps)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .collect();
        !files.is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files.len(), 1, "one mail for the day");
    let raw = std::fs::read(&files[0]).unwrap();
    let mail =
        mailtrail_ingest::mime::parse_message(raw, &mailtrail_ingest::DecodeOptions::default())
            .unwrap();
    let subject = mail.subject.unwrap_or_default();
    assert!(
        subject.contains(&format!("アラート {raised} 件")),
        "{subject}"
    );
    let body = mail.body_text.unwrap_or_default();
    assert!(body.contains("社外秘の社外送信"), "{body}");

    // Without a channel that takes the digest, the command says so.
    let none = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .arg("digest")
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("daily_digest = true"));
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
