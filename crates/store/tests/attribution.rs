//! `employee:` and `dept:` through the directory: the same answer whichever
//! plan the store picks (collect the matches, or walk messages newest first
//! when they are common), and the same answer after a database written
//! before migration 7 (when recipients had a B-tree over their addresses)
//! is migrated. `from:` and `device:` read the same index of addresses.

use chrono::{DateTime, Duration, TimeZone, Utc};
use mailtrail_model::directory::{Device, DeviceAssignment, DirectorySnapshot, Person};
use mailtrail_model::{Mailbox, MessageRecord, OrgDomains, Recipient, RecipientKind};
use mailtrail_store::directory::DirectoryStore;
use mailtrail_store::query::{parse, QueryContext};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(
        dir,
        SqliteOptions {
            org_domains: OrgDomains::new(["example.co.jp"]),
            ..Default::default()
        },
    )
    .unwrap()
}

fn directory() -> DirectorySnapshot {
    let person = |id: &str, address: &str, department: &str| Person {
        id: id.into(),
        name: Some(format!("社員 {id}")),
        addresses: vec![address.into()],
        department: Some(department.into()),
        ..Person::default()
    };
    let mut snapshot = DirectorySnapshot {
        people: vec![
            person("1", "taro.yamada@example.co.jp", "本社/営業部"),
            person("2", "hanako.sato@example.co.jp", "本社/営業部/第一課"),
            person("3", "ichiro.suzuki@example.co.jp", "本社/開発部"),
        ],
        devices: vec![Device {
            hostname: "pc-0001".into(),
            owner: Some("1".into()),
            // Taro's PC had 10.0.0.5 from the 3rd of November on; before,
            // the address was someone else's.
            assignments: vec![DeviceAssignment {
                ip: Some("10.0.0.5".parse().unwrap()),
                mac: None,
                from: Some(start() + Duration::days(1)),
                until: None,
            }],
        }],
    };
    snapshot.people[0]
        .addresses
        .push("t.yamada@example.co.jp".into());
    snapshot.normalize();
    snapshot
}

/// Message `i` of a mixed stream: taro receives (To, Cc or Bcc) or sends
/// most of it, hanako some, ichiro a little; outside parties the rest.
fn message(i: usize) -> MessageRecord {
    let (from, to, kind) = match i % 10 {
        0..=3 => (
            "customer@partner.example",
            "taro.yamada@example.co.jp",
            RecipientKind::To,
        ),
        4 => (
            "customer@partner.example",
            "t.yamada@example.co.jp",
            RecipientKind::Cc,
        ),
        5 => (
            "taro.yamada@example.co.jp",
            "buyer@customer.example",
            RecipientKind::To,
        ),
        6 => (
            "hanako.sato@example.co.jp",
            "taro.yamada@example.co.jp",
            RecipientKind::Bcc,
        ),
        7 => (
            "news@vendor.example",
            "hanako.sato@example.co.jp",
            RecipientKind::To,
        ),
        8 => (
            "news@vendor.example",
            "ichiro.suzuki@example.co.jp",
            RecipientKind::To,
        ),
        _ => (
            "a@outside.example",
            "b@elsewhere.example",
            RecipientKind::To,
        ),
    };
    // Sent from 10.0.0.5 (every tenth message), a day apart from the
    // 200th message on.
    let client_ip = (i % 10 == 5).then(|| "10.0.0.5".to_string());
    MessageRecord {
        client_ip,
        message_id: Some(format!("<m{i}@test.example>")),
        date: Some(time(i)),
        first_seen: Some(time(i)),
        from: Mailbox::new(from, None),
        subject: Some(format!("message {i}")),
        recipients: vec![Recipient::new(to, None, kind).unwrap()],
        systems: vec!["journal".into()],
        ..Default::default()
    }
}

/// Message `i`'s time: a minute apart, except that from the 200th on
/// they are on the 3rd of November and later.
fn time(i: usize) -> DateTime<Utc> {
    let minutes = if i < 200 { i } else { 24 * 60 + i };
    start() + Duration::minutes(minutes as i64)
}

/// What the query should find, by the rule it names.
fn expected(query: &str, n: usize) -> Vec<String> {
    let taro = |i: usize| matches!(i % 10, 0..=6);
    let hanako = |i: usize| matches!(i % 10, 6 | 7);
    let ichiro = |i: usize| i % 10 == 8;
    let keep: Box<dyn Fn(usize) -> bool> = match query {
        "employee:1" => Box::new(taro),
        "employee:t.yamada@example.co.jp" => Box::new(taro),
        "dept:営業部" => Box::new(move |i| taro(i) || hanako(i)),
        "dept:第一課" => Box::new(hanako),
        "dept:開発部" => Box::new(ichiro),
        "-dept:営業部" => Box::new(move |i| !(taro(i) || hanako(i))),
        "from:taro.yamada@example.co.jp" => Box::new(|i| i % 10 == 5),
        "-from:hanako.sato@example.co.jp" => Box::new(|i| i % 10 != 6),
        // The PC's address before it was the PC's does not count.
        "device:pc-0001" => Box::new(|i| i % 10 == 5 && i >= 200),
        "employee:nobody" => Box::new(|_| false),
        "-employee:nobody" => Box::new(|_| true),
        other => panic!("no rule for {other}"),
    };
    let ids: Vec<String> = (0..n)
        .rev()
        .filter(|&i| keep(i))
        .map(|i| format!("<m{i}@test.example>"))
        .collect();
    ids
}

const QUERIES: [&str; 11] = [
    "from:taro.yamada@example.co.jp",
    "-from:hanako.sato@example.co.jp",
    "device:pc-0001",
    "employee:1",
    "employee:t.yamada@example.co.jp",
    "dept:営業部",
    "dept:第一課",
    "dept:開発部",
    "-dept:営業部",
    "employee:nobody",
    "-employee:nobody",
];

fn check_all(store: &SqliteStore, n: usize) {
    let ctx = QueryContext {
        now: start() + Duration::days(30),
        timezone: chrono_tz::Asia::Tokyo,
    };
    for q in QUERIES {
        let expr = parse(q, &ctx).unwrap();
        let want = expected(q, n);
        assert_eq!(store.count(&expr).unwrap(), want.len() as u64, "count {q}");
        // A small page of a common match walks messages newest first; a
        // large one collects the matches: both give the newest first.
        for limit in [3u32, 1000] {
            let page = store.search(&expr, Page { limit, offset: 0 }).unwrap();
            let got: Vec<String> = page.iter().map(|m| m.message_id.clone().unwrap()).collect();
            let mut want_page = want.clone();
            want_page.truncate(limit as usize);
            assert_eq!(got, want_page, "{q} with a page of {limit}");
        }
    }
}

#[test]
fn people_are_found_as_senders_and_as_to_cc_bcc_recipients_by_either_plan() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let n = 400;
    store
        .write_batch((0..n).map(message).collect(), Vec::new())
        .unwrap();
    check_all(&store, n);
}

#[test]
fn a_changed_recipient_list_is_found_under_its_new_addresses_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let mut first = message(9);
    store.write_batch(vec![first.clone()], Vec::new()).unwrap();
    let ctx = QueryContext {
        now: start() + Duration::days(30),
        timezone: chrono_tz::Asia::Tokyo,
    };
    let count = |store: &SqliteStore, q: &str| store.count(&parse(q, &ctx).unwrap()).unwrap();
    assert_eq!(count(&store, "employee:3"), 0);
    // A journal report of the same message reveals a Bcc recipient.
    first
        .recipients
        .push(Recipient::new("ichiro.suzuki@example.co.jp", None, RecipientKind::Bcc).unwrap());
    store.write_batch(vec![first], Vec::new()).unwrap();
    assert_eq!(count(&store, "employee:3"), 1);
    assert_eq!(count(&store, "bcc:ichiro.suzuki@example.co.jp"), 1);
}

#[test]
fn a_store_written_before_migration_7_finds_the_same_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    {
        let mut store = open(dir.path());
        store.apply_directory("hr", &directory(), false).unwrap();
        store
            .write_batch((0..n).map(message).collect(), Vec::new())
            .unwrap();
    }
    // Put the database back into its version-6 shape: no address tokens,
    // the recipients' address index.
    {
        let conn = rusqlite::Connection::open(dir.path().join("mailtrail.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE fts_addr;
             CREATE INDEX recipients_address ON recipients(address);
             PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let store = open(dir.path());
    check_all(&store, n);
    let conn = rusqlite::Connection::open(dir.path().join("mailtrail.db")).unwrap();
    let index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'recipients_address'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 0, "migration 7 drops the recipients' address index");
}
