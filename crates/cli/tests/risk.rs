//! The risk view through the binary: a Postfix log and a directory CSV are
//! imported, `mailtrail risk --format json` ranks the employee who sent a
//! burst of night mail to his own Gmail address first with exactly those
//! signals, `--departments` names his department's evening, and without
//! `[risk] enabled = true` the command refuses.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const DIRECTORY: &str = "\
社員番号,氏名,ローマ字,メールアドレス,部署,在籍区分
1001,山田 太郎,Taro Yamada,taro.yamada@example.co.jp,本社/営業部,在籍
1002,鈴木 一郎,Ichiro Suzuki,ichiro.suzuki@example.co.jp,本社/開発部,退職
1003,佐藤 花子,Hanako Sato,hanako.sato@example.co.jp,本社/営業部,在籍
";

/// One message through the relay, at a Tokyo time in November 2026.
fn message(log: &mut String, n: u32, day: u32, time: &str, from: &str, to: &str) {
    let queue = format!("{n:010X}");
    let stamp = format!("2026-11-{day:02}T{time}+09:00");
    let relay = if to.ends_with("@example.co.jp") {
        "relay=local".to_string()
    } else {
        let domain = to.rsplit_once('@').map_or("", |(_, d)| d);
        format!("relay=mx.{domain}[198.51.100.5]:25")
    };
    writeln!(
        log,
        "{stamp} relay postfix/smtpd[1]: {queue}: client=pc.example.co.jp[192.0.2.10]\n\
         {stamp} relay postfix/cleanup[2]: {queue}: message-id=<{n}@example.co.jp>\n\
         {stamp} relay postfix/qmgr[3]: {queue}: from=<{from}>, size=900, nrcpt=1 (queue active)\n\
         {stamp} relay postfix/smtp[4]: {queue}: to=<{to}>, {relay}, delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 ok)\n\
         {stamp} relay postfix/qmgr[3]: {queue}: removed"
    )
    .unwrap();
}

/// Yamada mails a customer every working morning from 11-11; on Thursday
/// 11-26 he sends six messages to customers and one to his own Gmail
/// address after 21:00. Suzuki, who has resigned, mails Yamada on 11-25;
/// Sato mails a customer on one morning.
fn log() -> String {
    let mut log = String::new();
    let mut n = 0x100;
    let mut next = || {
        n += 1;
        n
    };
    for day in 11..=25 {
        // 14, 15, 21, 22 are a weekend, 23 a holiday (勤労感謝の日).
        if ![14, 15, 21, 22, 23].contains(&day) {
            let to = "buyer@partner.example";
            message(
                &mut log,
                next(),
                day,
                "10:00:00",
                "taro.yamada@example.co.jp",
                to,
            );
        }
    }
    message(
        &mut log,
        next(),
        20,
        "10:30:00",
        "hanako.sato@example.co.jp",
        "info@shop.example",
    );
    message(
        &mut log,
        next(),
        25,
        "10:00:00",
        "ichiro.suzuki@example.co.jp",
        "taro.yamada@example.co.jp",
    );
    for minute in 0..6 {
        let time = format!("21:{minute:02}:00");
        message(
            &mut log,
            next(),
            26,
            &time,
            "taro.yamada@example.co.jp",
            "buyer@partner.example",
        );
    }
    message(
        &mut log,
        next(),
        26,
        "21:30:00",
        "taro.yamada@example.co.jp",
        "taro.yamada.1985@gmail.com",
    );
    log
}

fn mailtrail(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = mailtrail(config, args);
    assert!(
        out.status.success(),
        "mailtrail {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const BASE_CONFIG: &str =
    "data_dir = \"data\"\ntimezone = \"Asia/Tokyo\"\norg_domains = [\"example.co.jp\"]\n";

/// A data directory with the log and the directory imported, and the path
/// of its config file (risk view off).
fn imported(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("mailtrail.toml");
    std::fs::write(&config, BASE_CONFIG).unwrap();
    let maillog = dir.join("maillog");
    std::fs::write(&maillog, log()).unwrap();
    let csv = dir.join("employees.csv");
    std::fs::write(&csv, DIRECTORY).unwrap();
    ok(&config, &["import", "--quiet", maillog.to_str().unwrap()]);
    ok(&config, &["directory", "import", csv.to_str().unwrap()]);
    config
}

const PERIOD: [&str; 4] = ["--until", "2026-11-27", "--days", "3"];

#[test]
fn the_risk_view_is_off_unless_the_organisation_enables_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = imported(dir.path());
    let out = mailtrail(&config, &["risk", "--format", "json"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the risk view is off"), "{stderr}");
    assert!(stderr.contains("[risk]\nenabled = true"), "{stderr}");

    std::fs::write(&config, format!("{BASE_CONFIG}[risk]\nenabled = false\n")).unwrap();
    assert!(!mailtrail(&config, &["risk"]).status.success());
}

#[test]
fn an_employee_s_night_burst_to_his_own_gmail_ranks_him_first_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let config = imported(dir.path());
    std::fs::write(
        &config,
        format!("{BASE_CONFIG}[risk]\nenabled = true\nbaseline_days = 14\n"),
    )
    .unwrap();

    let mut args = vec!["risk", "--format", "json"];
    args.extend(PERIOD);
    let out = ok(&config, &args);
    let people: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ranked: Vec<(&str, u64)> = people
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["score"].as_u64().unwrap()))
        .collect();
    // Sato sent nothing unusual and is not listed.
    assert_eq!(ranked, vec![("1001", 55), ("1002", 20)], "{out}");

    let taro = &people[0];
    assert_eq!(taro["name"], "山田 太郎");
    assert_eq!(taro["department"], "本社/営業部");
    assert_eq!(taro["sent"], 8);
    let day = &taro["days"][0];
    assert_eq!(day["date"], "2026-11-26");
    let signals: Vec<(&str, u64, &str)> = day["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["points"].as_u64().unwrap(),
                s["ja"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        signals,
        vec![
            (
                "after-hours",
                30,
                "勤務時間外（9:00–18:00 以外）の送信が 7 通（本人の平常時はなし）"
            ),
            (
                "private-address",
                25,
                "私用と思われるアドレスへの送信：taro.yamada.1985@gmail.com（ローカル部が氏名 Taro Yamada と一致）へ 1 通"
            ),
        ]
    );
    assert_eq!(
        day["signals"][0]["en"],
        "7 messages sent outside working hours (09:00–18:00): usually none for the person"
    );

    let ichiro = &people[1];
    assert_eq!(ichiro["days"][0]["date"], "2026-11-25");
    assert_eq!(ichiro["days"][0]["signals"][0]["kind"], "leaver");
    assert_eq!(
        ichiro["days"][0]["signals"][0]["ja"],
        "退職済みの人の送信（在籍区分: 退職）"
    );

    // One person by address, even with nothing to report.
    let mut args = vec![
        "risk",
        "--format",
        "json",
        "--employee",
        "hanako.sato@example.co.jp",
    ];
    args.extend(PERIOD);
    let out = ok(&config, &args);
    let hanako: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (hanako["id"].as_str(), hanako["score"].as_u64()),
        (Some("1003"), Some(0))
    );
    let out = mailtrail(&config, &["risk", "--employee", "nobody@example.co.jp"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody in the directory"));

    // The department view: the sales department's Thursday evening.
    let mut args = vec!["risk", "--departments", "--format", "json"];
    args.extend(PERIOD);
    let out = ok(&config, &args);
    let days: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(days.len(), 1, "{out}");
    assert_eq!(days[0]["department"], "本社/営業部");
    assert_eq!(days[0]["date"], "2026-11-26");
    assert_eq!(days[0]["after_hours"], 7);
    assert_eq!(days[0]["people"][0]["id"], "1001");

    // The table, in Japanese.
    let mut args = vec!["risk"];
    args.extend(PERIOD);
    let table = ok(&config, &args);
    assert!(table.contains("山田 太郎"), "{table}");
    assert!(table.contains("+30  after-hours"), "{table}");
    assert!(
        table.contains("2 of 2 employee(s) with a score, 2026-11-25 – 2026-11-27"),
        "{table}"
    );
}
