//! In-memory fakes of the directory and the history, and message builders.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Tokyo;
use mailtrail_model::{AuthResults, Direction, Recipient, RecipientKind};
use mailtrail_policy::{
    normalize_person_name, AttachmentFacts, Directory, Employee, EmployeeStatus, History,
    MessageFacts, Policy, PriorMessage,
};

pub struct FakeDirectory {
    pub ours: Vec<String>,
    pub people: Vec<Employee>,
}

impl Directory for FakeDirectory {
    fn our_domains(&self) -> &[String] {
        &self.ours
    }
    fn employee(&self, address: &str) -> Option<Employee> {
        self.people.iter().find(|e| e.address == address).cloned()
    }
    fn has_employee_named(&self, name: &str) -> bool {
        self.people
            .iter()
            .filter_map(|e| e.name.as_deref())
            .any(|n| normalize_person_name(n) == name)
    }
}

#[derive(Default)]
pub struct FakeHistory {
    pub known_domains: Vec<String>,
    /// (sender, message)
    pub messages: Vec<(String, PriorMessage)>,
}

impl History for FakeHistory {
    fn has_mailed_domain(&self, domain: &str, _before: DateTime<Utc>) -> bool {
        self.known_domains.iter().any(|d| d == domain)
    }
    fn messages_from(
        &self,
        sender: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<PriorMessage> {
        self.messages
            .iter()
            .filter(|(s, m)| s == sender && m.time >= since && m.time < until)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

pub fn directory() -> FakeDirectory {
    FakeDirectory {
        ours: vec!["example.co.jp".into()],
        people: vec![
            Employee {
                address: "taro.yamada@example.co.jp".into(),
                name: Some("山田 太郎".into()),
                romaji: Some("Taro Yamada".into()),
                department: Some("本社/営業部/第一課".into()),
                private_addresses: vec!["hanako.home@icloud.com".into()],
                ..Default::default()
            },
            Employee {
                address: "jiro.sato@example.co.jp".into(),
                name: Some("佐藤 次郎".into()),
                romaji: Some("Jiro Sato".into()),
                department: Some("本社/開発部".into()),
                leave_date: NaiveDate::from_ymd_opt(2026, 12, 15),
                ..Default::default()
            },
            Employee {
                address: "ichiro.suzuki@example.co.jp".into(),
                name: Some("鈴木 一郎".into()),
                romaji: Some("Ichiro Suzuki".into()),
                department: Some("本社/総務部".into()),
                status: EmployeeStatus::Resigned,
                ..Default::default()
            },
            Employee {
                address: "hana.kato@example.co.jp".into(),
                name: Some("加藤 花".into()),
                romaji: Some("Hana Kato".into()),
                department: Some("本社/開発部".into()),
                leave_date: NaiveDate::from_ymd_opt(2027, 6, 30),
                ..Default::default()
            },
        ],
    }
}

/// A time in Japan.
pub fn jst(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Tokyo
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid JST time")
        .with_timezone(&Utc)
}

/// An outbound message from Taro Yamada on a Friday morning.
pub fn message(to: &[&str]) -> MessageFacts {
    let dir = directory();
    let recipients: Vec<Recipient> = to
        .iter()
        .map(|a| Recipient::new(a, None, RecipientKind::To).expect("address"))
        .collect();
    let external = recipients.iter().any(|r| !dir.is_ours(&r.address));
    MessageFacts {
        id: Some("1".into()),
        time: jst(2026, 11, 27, 10, 0),
        direction: if external {
            Direction::Outbound
        } else {
            Direction::Internal
        },
        sender: Some("taro.yamada@example.co.jp".into()),
        envelope_from: Some("taro.yamada@example.co.jp".into()),
        from_display_name: Some("山田 太郎".into()),
        reply_to: None,
        recipients,
        subject: Some("お見積りの件".into()),
        body: Some("いつもお世話になっております。".into()),
        attachments: Vec::new(),
        auth: AuthResults::default(),
    }
}

/// An inbound message from an outside sender to Taro.
pub fn inbound(from: &str, display: Option<&str>) -> MessageFacts {
    MessageFacts {
        sender: Some(from.into()),
        envelope_from: Some(from.into()),
        from_display_name: display.map(str::to_string),
        direction: Direction::Inbound,
        recipients: vec![
            Recipient::new("taro.yamada@example.co.jp", None, RecipientKind::To).expect("address"),
        ],
        ..message(&[])
    }
}

pub fn attachment(name: &str, size: u64) -> AttachmentFacts {
    AttachmentFacts {
        filename: Some(name.into()),
        content_type: "application/octet-stream".into(),
        size,
        blake3: "00".into(),
        ..Default::default()
    }
}

/// A policy with one rule `t` made of the given condition tables.
pub fn policy_with(conditions: &[&str]) -> Policy {
    policy_with_extra("", conditions)
}

pub fn policy_with_extra(head: &str, conditions: &[&str]) -> Policy {
    let mut text = format!("{head}\n[[rule]]\nid = \"t\"\n");
    for c in conditions {
        text.push_str("[[rule.condition]]\n");
        text.push_str(c);
        text.push('\n');
    }
    match Policy::compile(&[("test.toml", &text)]) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// Texts of the hits of rule `t` on `facts`, empty when it does not match.
pub fn hits(policy: &Policy, facts: &MessageFacts, history: &FakeHistory) -> Vec<String> {
    policy
        .evaluate(facts, &directory(), history)
        .into_iter()
        .flat_map(|m| m.hits.into_iter().map(|h| h.text))
        .collect()
}

/// A stored zip (no compression) with the given entries; `encrypted` sets
/// the traditional-encryption flag on every entry, as a password-protected
/// zip has it (only the central directory is read, so the data need not be
/// really encrypted).
pub fn zip_file(entries: &[(&str, &[u8])], encrypted: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .expect("start entry");
        w.write_all(data).expect("write entry");
    }
    let mut bytes = w.finish().expect("finish zip").into_inner();
    if encrypted {
        for (sig, flag_at) in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)] {
            let mut i = 0;
            while i + 4 <= bytes.len() {
                if &bytes[i..i + 4] == sig {
                    bytes[i + flag_at] |= 1;
                }
                i += 1;
            }
        }
    }
    bytes
}
