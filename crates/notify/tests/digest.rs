//! The daily digest's text, in Japanese and English, against golden files
//! (tests/golden/). After an intended change of wording, regenerate them
//! with `MAILTRAIL_UPDATE_GOLDEN=1 cargo test -p mailtrail-notify --test digest`
//! and review the diff.

mod common;

use chrono::{Duration, NaiveDate};
use mailtrail_model::Direction;
use mailtrail_notify::{digest, AlertNotice, Lang, Severity};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
}

/// Four alerts of three rules: two high of one rule, one critical, one low.
fn notices() -> Vec<AlertNotice> {
    let first = common::notice();
    let mut second = common::notice();
    second.alert_id = 43;
    second.raised_at += Duration::hours(3);
    second.message.subject = "Re: 11月分 顧客リスト送付".into();
    second.console_url = Some("https://mailtrail.example.co.jp/alerts/43".into());
    second.message.recipients = (1..=25).map(|i| format!("user{i}@example.com")).collect();
    let mut critical = common::notice();
    critical.alert_id = 44;
    critical.rule_id = "leaver-to-freemail".into();
    critical.rule_name = "退職予定者のフリーメール宛送信".into();
    critical.severity = Severity::Critical;
    critical.condition = "watch-list sender to free-mail domain".into();
    critical.matched_text = "gmail.com".into();
    critical.raised_at += Duration::hours(5);
    critical.console_url = None;
    let mut low = common::notice();
    low.alert_id = 45;
    low.rule_id = "after-hours".into();
    low.rule_name = String::new();
    low.severity = Severity::Low;
    low.condition = "sent outside working hours".into();
    low.matched_text = "23:41".into();
    low.message.subject = String::new();
    low.message.direction = Direction::Internal;
    low.raised_at += Duration::hours(1);
    low.console_url = Some("https://mailtrail.example.co.jp/alerts/45".into());
    vec![first, second, critical, low]
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("MAILTRAIL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "{name} differs");
}

#[test]
fn japanese_digest() {
    let (subject, body) = digest(&notices(), day(), Lang::Ja, chrono_tz::Asia::Tokyo);
    assert_eq!(
        subject,
        "[mailtrail] 日次ダイジェスト 2026/11/27（アラート 4 件）"
    );
    golden("digest_ja.txt", &body);
}

#[test]
fn english_digest() {
    let (subject, body) = digest(&notices(), day(), Lang::En, chrono_tz::UTC);
    assert_eq!(subject, "[mailtrail] Daily digest 2026-11-27 (4 alerts)");
    golden("digest_en.txt", &body);
}

#[test]
fn empty_day() {
    let (subject, body) = digest(&[], day(), Lang::Ja, chrono_tz::Asia::Tokyo);
    assert_eq!(
        subject,
        "[mailtrail] 日次ダイジェスト 2026/11/27（アラート 0 件）"
    );
    assert_eq!(
        body,
        "mailtrail 日次ダイジェスト: 2026/11/27（Asia/Tokyo）\n\nこの日のアラートはありません。\n\n-- \nこのメールは mailtrail が自動送信しています。\n"
    );
    let (subject, _) = digest(&notices()[..1], day(), Lang::En, chrono_tz::UTC);
    assert_eq!(subject, "[mailtrail] Daily digest 2026-11-27 (1 alert)");
}

#[test]
fn long_days_are_cut_with_a_pointer_to_the_console() {
    let many: Vec<AlertNotice> = (0..130)
        .map(|i| {
            let mut n = common::notice();
            n.alert_id = i;
            n
        })
        .collect();
    let (_, body) = digest(&many, day(), Lang::Ja, chrono_tz::UTC);
    assert_eq!(body.matches("    アラートID: ").count(), 100);
    assert!(body.contains("ほか 30 件はコンソールで確認してください。\n"));
    assert!(body.contains("[高] 社外秘の社外送信 (confidential-to-external): 130 件\n"));
}
