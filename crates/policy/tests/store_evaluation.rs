//! The rules over the real store: messages queued by the transaction that
//! stores them, evaluated with the directory and history the store holds,
//! alerts recorded once per rule and message, refreshed (not raised again)
//! when a later source adds facts, and notifications queued with new
//! alerts only.

use chrono::{DateTime, TimeZone, Utc};
use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
use mailtrail_model::{
    Attachment, AuthResults, Mailbox, MessageRecord, OrgDomains, Recipient, RecipientKind,
};
use mailtrail_policy::store::{evaluate_pending, StoreDirectory};
use mailtrail_policy::Policy;
use mailtrail_store::alerts::{AlertFilter, AlertStore, NotificationState};
use mailtrail_store::directory::DirectoryStore;
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store};

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(
        dir,
        SqliteOptions {
            org_domains: OrgDomains::new(["example.co.jp"]),
            durable: false,
            read_only: false,
            journal_addresses: Vec::new(),
        },
    )
    .unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    // 2026-11-25 (a Wednesday), Tokyo office hours.
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
}

fn message(
    id: &str,
    from: (&str, Option<&str>),
    to: &[&str],
    time: DateTime<Utc>,
) -> MessageRecord {
    MessageRecord {
        message_id: Some(id.to_string()),
        date: Some(time),
        first_seen: Some(time),
        from: Mailbox::new(from.0, from.1),
        envelope_from: Some(from.0.to_string()),
        recipients: to
            .iter()
            .filter_map(|a| Recipient::new(a, None, RecipientKind::To))
            .collect(),
        subject: Some(format!("subject of {id}")),
        systems: vec!["test".into()],
        ..MessageRecord::default()
    }
}

fn attachment(name: &str, encrypted: bool) -> Attachment {
    Attachment {
        filename: Some(name.to_string()),
        content_type: "application/zip".into(),
        size: 2048,
        blake3: format!("{:064x}", name.len()),
        encrypted,
        inner_names: Vec::new(),
        raw_range: None,
    }
}

fn directory() -> DirectorySnapshot {
    let person = |id: &str, name: &str, romaji: &str, address: &str| Person {
        id: id.into(),
        name: Some(name.into()),
        romaji: Some(romaji.into()),
        addresses: vec![address.into()],
        department: Some("本社/営業部".into()),
        ..Person::default()
    };
    let mut snapshot = DirectorySnapshot {
        people: vec![
            person(
                "1000",
                "佐藤 花子",
                "Hanako Sato",
                "hanako.sato@example.co.jp",
            ),
            person(
                "1001",
                "山田 太郎",
                "Taro Yamada",
                "taro.yamada@example.co.jp",
            ),
            Person {
                status: EmploymentStatus::Resigned,
                leave_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 15),
                ..person(
                    "1002",
                    "鈴木 一郎",
                    "Ichiro Suzuki",
                    "ichiro.suzuki@example.co.jp",
                )
            },
        ],
        devices: Vec::new(),
    };
    snapshot.normalize();
    snapshot
}

fn alerts_of(store: &SqliteStore, rule: &str) -> Vec<i64> {
    let (_, alerts) = store
        .alerts(&AlertFilter {
            rule: Some(rule.into()),
            page: Page {
                limit: 100,
                offset: 0,
            },
            ..AlertFilter::default()
        })
        .unwrap();
    let mut messages: Vec<i64> = alerts.iter().map(|a| a.message).collect();
    messages.sort();
    messages
}

fn id_of(store: &SqliteStore, message_id: &str) -> i64 {
    store.message_by_message_id(message_id).unwrap().unwrap().id
}

#[test]
fn stored_messages_raise_alerts_once_with_the_directory_and_history_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let policy = Policy::examples().unwrap();
    let decode = mailtrail_ingest::DecodeOptions::default();

    // A leaver sends an attachment to a free-mail address shaped like his name.
    let mut leaver = message(
        "leaver@example.co.jp",
        ("ichiro.suzuki@example.co.jp", Some("鈴木 一郎")),
        &["suzuki.ichiro@gmail.com"],
        at(2, 0),
    );
    leaver.attachments = vec![attachment("顧客リスト.xlsx", false)];
    // An outsider failing DMARC takes the display name of an employee.
    let mut spoof = message(
        "spoof@evil.example",
        ("ceo@evil.example", Some("佐藤　花子")),
        &["taro.yamada@example.co.jp"],
        at(2, 5),
    );
    spoof.auth = AuthResults {
        dmarc: Some("fail".into()),
        ..AuthResults::default()
    };
    // PPAP: an encrypted zip, then the password to the same people.
    let mut zip = message(
        "zip@example.co.jp",
        ("taro.yamada@example.co.jp", None),
        &["buyer@partner.example"],
        at(3, 0),
    );
    zip.attachments = vec![attachment("見積書.zip", true)];
    let password = message(
        "password@example.co.jp",
        ("taro.yamada@example.co.jp", None),
        &["buyer@partner.example"],
        at(3, 3),
    );
    store
        .write_batch(vec![leaver, spoof, zip, password], Vec::new())
        .unwrap();
    assert_eq!(store.pending_evaluation_count().unwrap(), 4);

    // The queue survives the process: reopened, the messages still wait.
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(store.pending_evaluation_count().unwrap(), 4);

    let directory = StoreDirectory::load(&store, &["example.co.jp".to_string()]).unwrap();
    let round = evaluate_pending(&mut store, &policy, &directory, &decode, 100).unwrap();
    assert_eq!(round.evaluated, 4);
    assert_eq!(store.pending_evaluation_count().unwrap(), 0);

    let leaver_id = id_of(&store, "leaver@example.co.jp");
    assert_eq!(alerts_of(&store, "private-address"), vec![leaver_id]);
    assert_eq!(
        alerts_of(&store, "leaver-outbound-attachment"),
        vec![leaver_id]
    );
    assert_eq!(
        alerts_of(&store, "display-name-spoofing"),
        vec![id_of(&store, "spoof@evil.example")]
    );
    assert_eq!(
        alerts_of(&store, "ppap"),
        vec![id_of(&store, "password@example.co.jp")]
    );
    // partner.example had never been written to: the zip is a first contact
    // with an attachment; gmail.com too. The password mail has no attachment.
    assert_eq!(
        alerts_of(&store, "first-contact-with-attachment"),
        vec![leaver_id, id_of(&store, "zip@example.co.jp")]
    );
    // The leaver rule notifies its channel; the alert was new, so once.
    let pending = store
        .notifications(Some(NotificationState::Pending), Page::default())
        .unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|n| n.channel.as_str())
            .collect::<Vec<_>>(),
        vec!["security-team"]
    );
    let (total, _) = store.alerts(&AlertFilter::default()).unwrap();

    // A journal report adds a Bcc recipient to the leaver's message: it is
    // queued again and evaluated again, the alerts are refreshed, not
    // raised twice, and nobody is notified again.
    let mut journal = message(
        "leaver@example.co.jp",
        ("ichiro.suzuki@example.co.jp", Some("鈴木 一郎")),
        &["suzuki.ichiro@gmail.com"],
        at(2, 0),
    );
    journal
        .recipients
        .push(Recipient::new("ichiro.suzuki.home@yahoo.co.jp", None, RecipientKind::Bcc).unwrap());
    store.write_batch(vec![journal], Vec::new()).unwrap();
    assert_eq!(store.pending_evaluation_count().unwrap(), 1);
    let round = evaluate_pending(&mut store, &policy, &directory, &decode, 100).unwrap();
    assert_eq!(round.evaluated, 1);
    assert!(round.raised.is_empty(), "{round:?}");
    assert!(round.refreshed >= 1, "{round:?}");
    assert_eq!(store.alerts(&AlertFilter::default()).unwrap().0, total);
    assert_eq!(
        store
            .notifications(Some(NotificationState::Pending), Page::default())
            .unwrap()
            .len(),
        1
    );

    // A later message to partner.example is no first contact any more.
    let mut again = message(
        "again@example.co.jp",
        ("taro.yamada@example.co.jp", None),
        &["buyer@partner.example"],
        at(5, 0),
    );
    again.attachments = vec![attachment("資料.pdf", false)];
    store.write_batch(vec![again], Vec::new()).unwrap();
    evaluate_pending(&mut store, &policy, &directory, &decode, 100).unwrap();
    assert!(!alerts_of(&store, "first-contact-with-attachment")
        .contains(&id_of(&store, "again@example.co.jp")));
}

#[test]
fn notifications_are_retried_then_given_up_and_can_be_retried_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let mut leaver = message(
        "leaver@example.co.jp",
        ("ichiro.suzuki@example.co.jp", None),
        &["friend@gmail.com"],
        at(2, 0),
    );
    leaver.attachments = vec![attachment("a.xlsx", false)];
    store.write_batch(vec![leaver], Vec::new()).unwrap();
    let directory = StoreDirectory::load(&store, &["example.co.jp".to_string()]).unwrap();
    evaluate_pending(
        &mut store,
        &Policy::examples().unwrap(),
        &directory,
        &mailtrail_ingest::DecodeOptions::default(),
        10,
    )
    .unwrap();
    let now = Utc::now();
    let due = store.due_notifications(now, 10).unwrap();
    assert_eq!(due.len(), 1);
    let id = due[0].id;
    store
        .notification_failed(
            id,
            "connection refused",
            Some(now + chrono::Duration::seconds(30)),
        )
        .unwrap();
    assert!(store.due_notifications(now, 10).unwrap().is_empty());
    assert_eq!(
        store
            .due_notifications(now + chrono::Duration::seconds(31), 10)
            .unwrap()
            .len(),
        1
    );
    store
        .notification_failed(id, "connection refused", None)
        .unwrap();
    let dead = store
        .notifications(Some(NotificationState::Dead), Page::default())
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("connection refused"));
    assert!(store.retry_notification(id, now).unwrap());
    assert!(
        !store.retry_notification(id, now).unwrap(),
        "only dead ones"
    );
    store.notification_delivered(id, now).unwrap();
    assert!(store.due_notifications(now, 10).unwrap().is_empty());
}

/// The retro-hunt narrows candidates through the search index; what it
/// finds must be exactly what evaluating every message finds, for every
/// shipped rule, enabled or not.
#[test]
fn a_retro_hunt_finds_what_evaluating_every_message_finds() {
    use mailtrail_policy::store::{candidate_query, retro_hunt, stored_facts, Hunt, StoreHistory};
    use mailtrail_store::query::{parse, Expr, QueryContext};
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let mut with_keyword = message(
        "kw@example.co.jp",
        ("taro.yamada@example.co.jp", None),
        &["friend@gmail.com"],
        at(1, 0),
    );
    with_keyword.subject = Some("【社外秘】顧客リスト".into());
    let mut kw_attachment = message(
        "kwa@example.co.jp",
        ("hanako.sato@example.co.jp", None),
        &["buyer@partner.example"],
        at(1, 30),
    );
    kw_attachment.attachments = vec![attachment("ｺｷｬｸﾘｽﾄ_2026.xlsx", false)];
    let mut exe = message(
        "exe@outside.example",
        ("x@outside.example", None),
        &["taro.yamada@example.co.jp"],
        at(4, 0),
    );
    exe.attachments = vec![Attachment {
        content_type: "application/x-msdownload".into(),
        ..attachment("invoice.exe", false)
    }];
    let mut records = vec![with_keyword, kw_attachment, exe];
    for n in 0..20 {
        records.push(message(
            &format!("plain-{n}@example.co.jp"),
            ("taro.yamada@example.co.jp", None),
            &["buyer@partner.example"],
            at(6, n),
        ));
    }
    store.write_batch(records, Vec::new()).unwrap();
    let policy = Policy::examples().unwrap();
    let directory = StoreDirectory::load(&store, &["example.co.jp".to_string()]).unwrap();
    let decode = mailtrail_ingest::DecodeOptions::default();
    let ctx = QueryContext {
        now: Utc::now(),
        timezone: chrono_tz::Asia::Tokyo,
    };
    let parse_text = |t: &str| parse(t, &ctx).map_err(|e| e.to_string());
    let everything = Expr::And(Vec::new());
    let all_ids = store.matching_ids(&everything).unwrap();
    assert_eq!(all_ids.len(), 23);
    // Loading many at once gives exactly what loading each gives.
    let one_by_one: Vec<_> = all_ids
        .iter()
        .map(|&id| store.message(id).unwrap().unwrap())
        .collect();
    assert_eq!(store.messages(&all_ids).unwrap(), one_by_one);
    let mut backwards = all_ids.clone();
    backwards.reverse();
    backwards.push(999_999);
    let mut expected = one_by_one.clone();
    expected.reverse();
    assert_eq!(store.messages(&backwards).unwrap(), expected);
    let mut narrowed_some = false;
    let mut found = std::collections::BTreeMap::new();
    for rule in &policy.rules {
        let id = rule.rule.id.as_str();
        let mut hunted = Vec::new();
        let hunt = Hunt {
            store: &store,
            policy: &policy,
            directory: &directory,
            decode: &decode,
        };
        let stats = retro_hunt(&hunt, id, &everything, &parse_text, &mut |m, _| {
            hunted.push(m.id);
            Ok(())
        })
        .unwrap();
        let history = StoreHistory::new(&store);
        let mut every: Vec<i64> = Vec::new();
        for &mid in &all_ids {
            let m = store.message(mid).unwrap().unwrap();
            let reads = mailtrail_policy::store::Reads {
                body: true,
                attachment_content: true,
            };
            let facts = stored_facts(&store, &m, &decode, reads).unwrap();
            if policy
                .evaluate_rule(id, &facts, &directory, &history)
                .is_some()
            {
                every.push(mid);
            }
        }
        assert_eq!(hunted, every, "rule {id}");
        found.insert(id.to_string(), hunted);
        if candidate_query(&policy, rule).is_some() && stats.candidates < 23 {
            narrowed_some = true;
        }
    }
    assert!(narrowed_some, "the index narrowed no rule's candidates");
    // The comparison above compared non-empty sets too.
    assert_eq!(
        found["confidential-to-freemail"],
        vec![id_of(&store, "kw@example.co.jp")]
    );
    assert_eq!(
        found["executable-attachment"],
        vec![id_of(&store, "exe@outside.example")]
    );
    let confidential = policy
        .rules
        .iter()
        .find(|r| r.rule.id == "confidential-to-freemail")
        .unwrap();
    assert!(candidate_query(&policy, confidential)
        .unwrap()
        .contains("subject:\"社外秘\""));
}

/// Mail older than the notification cut-off (history imported today) is
/// alerted on for the inbox, but nobody is notified of it.
#[test]
fn alerts_on_old_mail_notify_nobody() {
    use mailtrail_policy::store::evaluate_pending_notifying_since;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let mut old = message(
        "old@example.co.jp",
        ("ichiro.suzuki@example.co.jp", None),
        &["friend@gmail.com"],
        at(2, 0),
    );
    old.attachments = vec![attachment("a.xlsx", false)];
    let mut recent = message(
        "recent@example.co.jp",
        ("ichiro.suzuki@example.co.jp", None),
        &["friend@gmail.com"],
        Utc::now(),
    );
    recent.attachments = vec![attachment("b.xlsx", false)];
    store.write_batch(vec![old, recent], Vec::new()).unwrap();
    let directory = StoreDirectory::load(&store, &["example.co.jp".to_string()]).unwrap();
    let round = evaluate_pending_notifying_since(
        &mut store,
        &Policy::examples().unwrap(),
        &directory,
        &mailtrail_ingest::DecodeOptions::default(),
        10,
        Some(Utc::now() - chrono::Duration::hours(24)),
    )
    .unwrap();
    // Both raise the leaver rule's alert…
    assert_eq!(
        alerts_of(&store, "leaver-outbound-attachment"),
        vec![
            id_of(&store, "old@example.co.jp"),
            id_of(&store, "recent@example.co.jp")
        ]
    );
    assert!(round.raised.len() >= 2);
    // …but only the recent one notifies its channel.
    let pending = store
        .notifications(Some(NotificationState::Pending), Page::default())
        .unwrap();
    let (_, leaver_alerts) = store
        .alerts(&AlertFilter {
            rule: Some("leaver-outbound-attachment".into()),
            ..AlertFilter::default()
        })
        .unwrap();
    let recent_alert = leaver_alerts
        .iter()
        .find(|a| a.message == id_of(&store, "recent@example.co.jp"))
        .unwrap();
    assert_eq!(
        pending.iter().map(|n| n.alert).collect::<Vec<_>>(),
        vec![recent_alert.id]
    );
}

/// The directory's version changes when people change (so the service
/// reloads them) and not when the same list is applied again.
#[test]
fn the_directory_version_follows_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    assert_eq!(store.directory_version().unwrap(), (0, 0));
    store.apply_directory("hr", &directory(), false).unwrap();
    let first = store.directory_version().unwrap();
    assert_eq!(first.0, 3);
    store.apply_directory("hr", &directory(), false).unwrap();
    assert_eq!(store.directory_version().unwrap(), first);
    let mut fewer = directory();
    fewer.people.pop();
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.apply_directory("hr", &fewer, false).unwrap();
    assert_ne!(store.directory_version().unwrap(), first);
}

/// A raw message from outside with one base64 attachment.
fn raw_with_attachment(message_id: &str, filename: &str, content: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(content);
    format!(
        "From: Vendor <billing@vendor.example>\r\n\
         To: taro.yamada@example.co.jp\r\n\
         Subject: invoice\r\n\
         Date: Wed, 25 Nov 2026 11:00:00 +0900\r\n\
         Message-ID: <{message_id}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Please find the invoice attached.\r\n\
         --b1\r\n\
         Content-Type: application/pdf; name=\"{filename}\"\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {body}\r\n\
         --b1--\r\n"
    )
    .into_bytes()
}

#[test]
fn stored_attachments_are_judged_by_their_content_on_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.apply_directory("hr", &directory(), false).unwrap();
    let decode = mailtrail_ingest::DecodeOptions::default();
    let mut windows_program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec();
    windows_program.extend(std::iter::repeat_n(0u8, 600));
    let mut records = Vec::new();
    for (id, name, content) in [
        (
            "disguised@vendor.example",
            "請求書.pdf",
            windows_program.clone(),
        ),
        (
            "real-pdf@vendor.example",
            "見積書.pdf",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n".to_vec(),
        ),
    ] {
        let raw = raw_with_attachment(id, name, &content);
        records.push(mailtrail_ingest::mime::parse_message(raw, &decode).unwrap());
    }
    store.write_batch(records, Vec::new()).unwrap();
    let policy = Policy::examples().unwrap();
    let directory = StoreDirectory::load(&store, &["example.co.jp".to_string()]).unwrap();
    evaluate_pending(&mut store, &policy, &directory, &decode, 100).unwrap();
    assert_eq!(
        alerts_of(&store, "executable-attachment"),
        vec![id_of(&store, "disguised@vendor.example")],
        "the program named .pdf is found by its content, the real PDF is not"
    );
}
