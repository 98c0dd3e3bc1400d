//! The embedded store's contract: merging, idempotency, search semantics.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use mailtrail_model::{
    Attachment, Delivery, DeliveryStatus, Direction, Mailbox, MessageRecord, OrgDomains, Position,
    Recipient, RecipientKind, Reject,
};
use mailtrail_store::query::{parse, QueryContext};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store};

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
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

fn count(store: &SqliteStore, q: &str) -> u64 {
    let ctx = QueryContext {
        now: t(27, 12),
        timezone: chrono_tz::Asia::Tokyo,
    };
    store.count(&parse(q, &ctx).unwrap()).unwrap()
}

fn delivery(time: DateTime<Utc>, to: &str, status: DeliveryStatus, qid: &str) -> Delivery {
    Delivery {
        time,
        recipient: to.into(),
        status,
        detail: None,
        system: "postfix@mx1".into(),
        relay: None,
        client_ip: None,
        client_host: None,
        local_id: Some(qid.into()),
        original_recipient: None,
    }
}

fn log_record(qid: &str, mid: Option<&str>, time: DateTime<Utc>, to: &str) -> MessageRecord {
    MessageRecord {
        keys: vec![format!("postfix@mx1:{qid}")],
        message_id: mid.map(str::to_string),
        first_seen: Some(time),
        envelope_from: Some("taro.yamada@example.co.jp".into()),
        recipients: vec![Recipient::new(to, None, RecipientKind::Envelope).unwrap()],
        size: Some(1234),
        systems: vec!["postfix@mx1".into()],
        deliveries: vec![delivery(time, to, DeliveryStatus::Delivered, qid)],
        ..Default::default()
    }
}

fn content_record(mid: &str, subject: &str, body: &str, time: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        message_id: Some(mid.into()),
        date: Some(time),
        first_seen: Some(time),
        from: Mailbox::new("taro.yamada@example.co.jp", Some("山田 太郎")),
        recipients: vec![
            Recipient::new(
                "hanako@tokyo-shoji.co.jp",
                Some("佐藤 花子"),
                RecipientKind::To,
            )
            .unwrap(),
            Recipient::new("boss@example.co.jp", None, RecipientKind::Cc).unwrap(),
            Recipient::new("private.taro@gmail.com", None, RecipientKind::Bcc).unwrap(),
        ],
        subject: Some(subject.into()),
        body_text: Some(body.into()),
        raw: Some(format!("Message-ID: <{mid}>\r\nSubject: x\r\n\r\n{body}\r\n").into_bytes()),
        systems: vec!["mailbox".into()],
        ..Default::default()
    }
}

#[test]
fn log_and_mailbox_views_merge_into_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let out = store
        .write_batch(
            vec![log_record(
                "4F9D1",
                Some("m1@example.co.jp"),
                t(20, 1),
                "hanako@tokyo-shoji.co.jp",
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(out.new_messages, 1);
    let out = store
        .write_batch(
            vec![content_record(
                "m1@example.co.jp",
                "社外秘：見積書",
                "顧客リストを送ります",
                t(20, 1),
            )],
            vec![],
        )
        .unwrap();
    assert_eq!((out.new_messages, out.updated_messages), (0, 1));
    assert_eq!(count(&store, ""), 1);
    let found = store
        .search(&parse("社外秘", &ctx()).unwrap(), Page::default())
        .unwrap();
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.deliveries.len(), 1);
    assert!(m.systems.contains(&"mailbox".to_string()));
    assert!(m.systems.contains(&"postfix@mx1".to_string()));
    // The envelope-only recipient from the log was placed in To by the content.
    let to: Vec<_> = m
        .recipients
        .iter()
        .filter(|r| r.kind == RecipientKind::To)
        .collect();
    assert_eq!(to.len(), 1);
    assert_eq!(to[0].address, "hanako@tokyo-shoji.co.jp");
    assert!(m
        .recipients
        .iter()
        .all(|r| r.kind != RecipientKind::Envelope));
    let raw = store
        .raw_message(m.content_hash.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert!(raw.starts_with(b"Message-ID: <m1@example.co.jp>"));
}

fn ctx() -> QueryContext {
    QueryContext {
        now: t(27, 12),
        timezone: chrono_tz::Asia::Tokyo,
    }
}

#[test]
fn writing_the_same_batch_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let batch = || {
        vec![
            log_record("A1", Some("a@x"), t(20, 1), "b@example.co.jp"),
            log_record("A2", None, t(20, 2), "c@example.co.jp"),
            content_record("m2@x", "会議", "議事録", t(20, 3)),
        ]
    };
    let rejects = || {
        vec![Reject {
            source: "mail.log".into(),
            position: Position::Line(7),
            code: "syslog.header".into(),
            reason: "no stamp".into(),
            input: b"garbage".to_vec(),
        }]
    };
    let first = store.write_batch(batch(), rejects()).unwrap();
    assert_eq!(first.new_messages, 3);
    assert_eq!(first.new_rejects, 1);
    let second = store.write_batch(batch(), rejects()).unwrap();
    assert_eq!(second.new_messages, 0);
    assert_eq!(second.unchanged, 3);
    assert_eq!(second.new_rejects, 0);
    assert!(second.new_deliveries.is_empty());
    let stats = store.stats().unwrap();
    assert_eq!(stats.messages, 3);
    assert_eq!(stats.rejects, 1);
    assert_eq!(stats.deliveries, vec![(DeliveryStatus::Delivered, 2)]);
    let q = store.quarantine(10).unwrap();
    assert_eq!(std::fs::read(&q[0].file).unwrap(), b"garbage");
}

#[test]
fn a_reused_queue_id_weeks_later_is_a_new_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .write_batch(
            vec![log_record("B7", None, t(1, 1), "x@example.co.jp")],
            vec![],
        )
        .unwrap();
    // Same queue id, same day: the rest of the same message.
    let mut later = log_record("B7", None, t(1, 2), "y@example.co.jp");
    later.deliveries[0].status = DeliveryStatus::Deferred;
    store.write_batch(vec![later], vec![]).unwrap();
    assert_eq!(count(&store, ""), 1);
    // Same queue id 25 days later: another message.
    store
        .write_batch(
            vec![log_record("B7", None, t(26, 1), "z@example.co.jp")],
            vec![],
        )
        .unwrap();
    assert_eq!(count(&store, ""), 2);
    assert_eq!(count(&store, "status:deferred"), 1);
    assert_eq!(count(&store, "to:y@example.co.jp"), 1);
}

#[test]
fn operators_select_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut with_zip = content_record(
        "z@x",
        "Quarterly CONFIDENTIAL report",
        "see attached",
        t(25, 1),
    );
    with_zip.size = Some(300_000);
    with_zip.attachments = vec![Attachment {
        filename: Some("顧客リスト.zip".into()),
        content_type: "application/zip".into(),
        size: 250_000,
        blake3: "00".repeat(32),
        encrypted: true,
        inner_names: vec!["名簿.xlsx".into()],
        raw_range: None,
    }];
    let mut inbound = content_record("in@x", "ご案内", "ｼｬｶﾞｲﾋ の資料", t(10, 1));
    inbound.from = Mailbox::new("sales@partner.example", Some("Partner Sales"));
    inbound.recipients =
        vec![Recipient::new("taro.yamada@example.co.jp", None, RecipientKind::To).unwrap()];
    inbound.size = Some(2000);
    let mut bounced = log_record("C1", None, t(26, 1), "nobody@elsewhere.example");
    bounced.deliveries[0].status = DeliveryStatus::Bounced;
    store
        .write_batch(vec![with_zip, inbound, bounced], vec![])
        .unwrap();

    assert_eq!(count(&store, "confidential"), 1);
    assert_eq!(count(&store, "ＣＯＮＦＩＤＥＮＴＩＡＬ"), 1);
    assert_eq!(count(&store, "シャガイヒ"), 1);
    assert_eq!(count(&store, "filename:顧客リスト"), 1);
    assert_eq!(count(&store, "filename:名簿"), 1);
    assert_eq!(count(&store, "subject:顧客リスト"), 0);
    assert_eq!(count(&store, "has:attachment"), 1);
    assert_eq!(count(&store, "-has:attachment"), 2);
    assert_eq!(count(&store, "direction:inbound"), 1);
    assert_eq!(count(&store, "direction:outbound"), 2);
    assert_eq!(count(&store, "from:partner.example"), 1);
    assert_eq!(count(&store, "from:\"Partner Sales\""), 1);
    assert_eq!(count(&store, "bcc:gmail.com"), 1);
    assert_eq!(count(&store, "cc:boss@example.co.jp"), 1);
    assert_eq!(count(&store, "to:taro.yamada@example.co.jp"), 1);
    assert_eq!(count(&store, "status:bounced"), 1);
    assert_eq!(count(&store, "system:postfix"), 1);
    assert_eq!(count(&store, "system:postfix@mx1"), 1);
    assert_eq!(count(&store, "system:mailbox"), 2);
    assert_eq!(count(&store, "larger:100K"), 1);
    assert_eq!(count(&store, "smaller:5K"), 2);
    assert_eq!(count(&store, "after:2026-11-20"), 2);
    assert_eq!(count(&store, "before:2026-11-20"), 1);
    assert_eq!(count(&store, "newer_than:7d"), 2);
    assert_eq!(count(&store, "confidential OR ご案内"), 2);
    assert_eq!(
        count(&store, "(confidential OR ご案内) direction:inbound"),
        1
    );

    // Newest first, stable paging.
    let all = store
        .search(
            &parse("", &ctx()).unwrap(),
            Page {
                limit: 2,
                offset: 0,
            },
        )
        .unwrap();
    let rest = store
        .search(
            &parse("", &ctx()).unwrap(),
            Page {
                limit: 2,
                offset: 2,
            },
        )
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(rest.len(), 1);
    assert!(all[0].first_seen >= all[1].first_seen);
    assert!(all[1].first_seen >= rest[0].first_seen);
}

#[test]
fn a_reused_queue_id_never_joins_two_message_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .write_batch(
            vec![log_record(
                "ABCDE",
                Some("first@x"),
                t(1, 1),
                "a@example.co.jp",
            )],
            vec![],
        )
        .unwrap();
    store
        .write_batch(
            vec![log_record(
                "ABCDE",
                Some("second@x"),
                t(3, 1),
                "b@example.co.jp",
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(count(&store, ""), 2);
    assert_eq!(count(&store, "to:a@example.co.jp"), 1);
    assert_eq!(count(&store, "to:b@example.co.jp"), 1);
}

#[test]
fn captured_content_is_never_folded_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    // Content of m2, then a log tying queue id ABCDE to m2.
    let mut m2 = content_record("m2@x", "two", "SECONDBODY", t(5, 1));
    m2.keys = vec![];
    store.write_batch(vec![m2], vec![]).unwrap();
    store
        .write_batch(
            vec![log_record(
                "ABCDE",
                Some("m2@x"),
                t(5, 1),
                "hanako@tokyo-shoji.co.jp",
            )],
            vec![],
        )
        .unwrap();
    // Content of m1, then a log where ABCDE carries m1's id.
    store
        .write_batch(
            vec![content_record("m1@x", "one", "FIRSTBODY", t(5, 2))],
            vec![],
        )
        .unwrap();
    store
        .write_batch(
            vec![log_record(
                "ABCDE",
                Some("m1@x"),
                t(5, 2),
                "hanako@tokyo-shoji.co.jp",
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(count(&store, ""), 2);
    assert_eq!(count(&store, "SECONDBODY"), 1);
    assert_eq!(count(&store, "FIRSTBODY"), 1);
}

#[test]
fn a_later_subject_does_not_unindex_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut content = content_record("s@x", "", "UNIQUEWORD 本文", t(6, 1));
    content.subject = None;
    store.write_batch(vec![content], vec![]).unwrap();
    let mut log = log_record("QQ1", Some("s@x"), t(6, 1), "hanako@tokyo-shoji.co.jp");
    log.subject = Some("見積書の件".into());
    let out = store.write_batch(vec![log], vec![]).unwrap();
    assert_eq!(out.updated_messages, 1);
    assert_eq!(count(&store, "UNIQUEWORD"), 1);
    assert_eq!(count(&store, "body:本文"), 1);
    assert_eq!(count(&store, "subject:見積書"), 1);
}

#[test]
fn punctuation_only_text_is_an_error_not_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .write_batch(vec![content_record("p@x", "s", "b", t(6, 1))], vec![])
        .unwrap();
    for q in ["\"!!\"", "subject:\"!!\"", "from:@"] {
        let expr = parse(q, &ctx()).unwrap();
        assert!(store.count(&expr).is_err(), "{q}");
        assert!(store.search(&expr, Page::default()).is_err(), "{q}");
    }
}

#[test]
fn common_and_rare_terms_page_newest_first_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut batch = Vec::new();
    for i in 0..200u32 {
        let word = if i % 4 == 0 { "rare" } else { "common" };
        let time = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(i64::from(i));
        batch.push(content_record(&format!("p{i}@x"), word, "body", time));
    }
    store.write_batch(batch, vec![]).unwrap();
    for (q, step) in [("common", 1), ("rare", 4)] {
        let expr = parse(q, &ctx()).unwrap();
        let first = store
            .search(
                &expr,
                Page {
                    limit: 10,
                    offset: 0,
                },
            )
            .unwrap();
        let second = store
            .search(
                &expr,
                Page {
                    limit: 10,
                    offset: 10,
                },
            )
            .unwrap();
        let times: Vec<_> = first.iter().chain(&second).map(|m| m.first_seen).collect();
        assert_eq!(times.len(), 20, "{q}");
        assert!(
            times.windows(2).all(|w| w[0] > w[1]),
            "{q}: not newest first"
        );
        let newest = first[0].message_id.as_deref().unwrap();
        let expected = if step == 1 { "p199@x" } else { "p196@x" };
        assert_eq!(newest, expected, "{q}");
        // Planned by a known count (either plan, whatever the count says),
        // the pages are the same.
        let count = store.count(&expr).unwrap();
        for known in [count, 0, 1_000_000] {
            for offset in [0, 10, 45] {
                let page = Page { limit: 10, offset };
                let ids = |found: Vec<mailtrail_store::StoredMessage>| -> Vec<i64> {
                    found.into_iter().map(|m| m.id).collect()
                };
                assert_eq!(
                    ids(store.search_counted(&expr, page, known).unwrap()),
                    ids(store.search(&expr, page).unwrap()),
                    "{q} known {known} offset {offset}"
                );
            }
        }
    }
}

/// A Postfix always_bcc set-up: the log knows every envelope recipient
/// (including the blind-copied one and the journal mailbox), the journal copy
/// knows To and Cc. In either order of arrival the merged message has the
/// blind-copied address in Bcc, the alias expansion not in Bcc, and no trace
/// of the journal mailbox.
#[test]
fn log_envelope_and_journal_headers_reveal_bcc_in_either_order() {
    let journal = "journal@mailtrail.test";
    let log = |qid: &str, mid: &str| {
        let mut r = log_record(qid, Some(mid), t(21, 3), "hanako@tokyo-shoji.co.jp");
        for (to, orig) in [
            ("secret@rival.example", None),
            (journal, None),
            ("member@example.co.jp", Some("team@example.co.jp")),
        ] {
            r.recipients
                .push(Recipient::new(to, None, RecipientKind::Envelope).unwrap());
            let mut d = delivery(t(21, 3), to, DeliveryStatus::Delivered, qid);
            d.original_recipient = orig.map(str::to_string);
            r.deliveries.push(d);
        }
        r
    };
    let copy = |mid: &str| {
        let mut r = content_record(mid, "quarterly figures", "see attached", t(21, 3));
        r.recipients = vec![
            Recipient::new("hanako@tokyo-shoji.co.jp", None, RecipientKind::To).unwrap(),
            Recipient::new("team@example.co.jp", None, RecipientKind::Cc).unwrap(),
        ];
        r
    };
    for log_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(
            dir.path(),
            SqliteOptions {
                org_domains: OrgDomains::new(["example.co.jp"]),
                journal_addresses: vec![journal.into()],
                ..Default::default()
            },
        )
        .unwrap();
        let mid = "bcc-1@example.co.jp";
        let (first, second) = if log_first {
            (log("7B1", mid), copy(mid))
        } else {
            (copy(mid), log("7B1", mid))
        };
        store.write_batch(vec![first], vec![]).unwrap();
        store.write_batch(vec![second], vec![]).unwrap();
        assert_eq!(count(&store, ""), 1, "log first: {log_first}");
        let m = &store
            .search(&parse("", &ctx()).unwrap(), Page::default())
            .unwrap()[0];
        let kind_of = |a: &str| -> Vec<RecipientKind> {
            m.recipients
                .iter()
                .filter(|r| r.address == a)
                .map(|r| r.kind)
                .collect()
        };
        assert_eq!(kind_of("secret@rival.example"), [RecipientKind::Bcc]);
        assert_eq!(kind_of("hanako@tokyo-shoji.co.jp"), [RecipientKind::To]);
        assert_eq!(kind_of("team@example.co.jp"), [RecipientKind::Cc]);
        assert_eq!(kind_of("member@example.co.jp"), [RecipientKind::Envelope]);
        assert!(kind_of(journal).is_empty(), "log first: {log_first}");
        assert!(m.deliveries.iter().all(|d| d.recipient != journal));
        assert_eq!(m.deliveries.len(), 3);
        assert_eq!(count(&store, "bcc:secret@rival.example"), 1);
        assert_eq!(count(&store, &format!("to:{journal}")), 0);
        assert_eq!(m.direction, Direction::Outbound);
    }
}

#[test]
fn the_dashboard_counts_what_its_searches_find() {
    use chrono::NaiveDate;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let minutes = |day: u32, hour: u32, min: i64| t(day, hour) + chrono::TimeDelta::minutes(min);
    // 2026-11-20 10:00 JST, outbound, with a large attachment.
    let mut offer = content_record("dash-1@example.co.jp", "見積書", "本文", t(20, 1));
    offer.attachments = vec![Attachment {
        filename: Some("見積書.zip".into()),
        content_type: "application/zip".into(),
        size: 5_000_000,
        blake3: "ab".repeat(32),
        ..Default::default()
    }];
    // 2026-11-20 23:30 JST, outbound, bounced.
    let mut bounce = log_record("DASH1", None, minutes(20, 14, 30), "x@tokyo-shoji.co.jp");
    bounce.deliveries[0].status = DeliveryStatus::Bounced;
    // 2026-11-21 08:00 JST, internal.
    let internal = log_record("DASH2", None, t(20, 23), "boss@example.co.jp");
    // 2026-11-22 12:00 JST, inbound, deferred.
    let inbound = MessageRecord {
        message_id: Some("dash-4@partner.example".into()),
        first_seen: Some(t(22, 3)),
        from: Mailbox::new("someone@partner.example", None),
        recipients: vec![
            Recipient::new("taro.yamada@example.co.jp", None, RecipientKind::To).unwrap(),
        ],
        systems: vec!["m365".into()],
        deliveries: vec![delivery(
            t(22, 3),
            "taro.yamada@example.co.jp",
            DeliveryStatus::Deferred,
            "DASH4",
        )],
        ..Default::default()
    };
    // Outside the period by a minute either side (JST).
    let before = log_record("DASH5", None, minutes(19, 14, 59), "y@tokyo-shoji.co.jp");
    let after = log_record("DASH6", None, t(22, 15), "y@tokyo-shoji.co.jp");
    store
        .write_batch(
            vec![offer, bounce, internal, inbound, before, after],
            vec![],
        )
        .unwrap();

    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let dash = store
        .dashboard(day(20), day(22), chrono_tz::Asia::Tokyo, 10)
        .unwrap();
    assert_eq!(
        dash.days,
        vec![
            (day(20), vec![(Direction::Outbound, 2)]),
            (day(21), vec![(Direction::Internal, 1)]),
            (day(22), vec![(Direction::Inbound, 1)]),
        ]
    );
    assert_eq!(dash.total, 4);
    assert_eq!(
        dash.by_direction,
        vec![
            (Direction::Inbound, 1),
            (Direction::Outbound, 2),
            (Direction::Internal, 1)
        ]
    );
    assert_eq!(
        dash.top_senders,
        vec![
            ("taro.yamada@example.co.jp".to_string(), 3),
            ("someone@partner.example".to_string(), 1)
        ]
    );
    assert_eq!(
        dash.top_recipients[0],
        ("boss@example.co.jp".to_string(), 2)
    );
    assert_eq!(dash.top_recipients.len(), 5);
    assert_eq!(
        dash.top_domains,
        vec![
            ("tokyo-shoji.co.jp".to_string(), 2),
            ("gmail.com".to_string(), 1),
            ("partner.example".to_string(), 1),
        ]
    );
    assert_eq!(dash.largest_attachments.len(), 1);
    assert_eq!(dash.largest_attachments[0].size, 5_000_000);
    assert_eq!(
        dash.failures,
        vec![
            (DeliveryStatus::Bounced, 1),
            (DeliveryStatus::Rejected, 0),
            (DeliveryStatus::Failed, 0),
            (DeliveryStatus::Expired, 0),
            (DeliveryStatus::Deferred, 1),
        ]
    );
    assert_eq!(
        dash.failing_recipients,
        vec![("x@tokyo-shoji.co.jp".to_string(), 1)]
    );
    assert_eq!(
        dash.failing_domains,
        vec![("tokyo-shoji.co.jp".to_string(), 1)]
    );

    // The same figures, from the searches the console links them to.
    let period = "after:2026-11-20 before:2026-11-23";
    assert_eq!(count(&store, period), 4);
    assert_eq!(
        count(
            &store,
            "direction:outbound after:2026-11-20 before:2026-11-21"
        ),
        2
    );
    assert_eq!(
        count(
            &store,
            "direction:internal after:2026-11-21 before:2026-11-22"
        ),
        1
    );
    assert_eq!(
        count(&store, &format!("from:taro.yamada@example.co.jp {period}")),
        3
    );
    assert_eq!(
        count(
            &store,
            &format!("(to:boss@example.co.jp OR cc:boss@example.co.jp OR bcc:boss@example.co.jp) {period}")
        ),
        2
    );
    assert_eq!(
        count(
            &store,
            &format!("(from:@tokyo-shoji.co.jp OR to:@tokyo-shoji.co.jp OR cc:@tokyo-shoji.co.jp OR bcc:@tokyo-shoji.co.jp) {period}")
        ),
        2
    );
    assert_eq!(count(&store, &format!("status:bounced {period}")), 1);
    assert_eq!(count(&store, &format!("status:deferred {period}")), 1);

    // A period running backwards, or longer than a year, is refused.
    assert!(store
        .dashboard(day(22), day(20), chrono_tz::Asia::Tokyo, 10)
        .is_err());
    assert!(store
        .dashboard(
            day(20),
            NaiveDate::from_ymd_opt(2028, 1, 1).unwrap(),
            chrono_tz::Asia::Tokyo,
            10
        )
        .is_err());
}

/// Regression: `from:` a complete address matched, as a full-text phrase,
/// bounce senders that embed the address (VERP: `bounce-7-aoi=example.co.jp@…`)
/// — mail *to* that person listed as mail *from* them. A complete address
/// is now the sender exactly (header From or envelope sender, any case);
/// a partial one is still a text search.
#[test]
fn from_a_complete_address_is_that_sender_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let sent = |mid: &str, from: Option<&str>, envelope: Option<&str>| MessageRecord {
        message_id: Some(mid.into()),
        first_seen: Some(t(20, 1)),
        from: from.and_then(|f| Mailbox::new(f, None)),
        envelope_from: envelope.map(str::to_string),
        recipients: vec![
            Recipient::new("hanako@partner.example", None, RecipientKind::To).unwrap(),
        ],
        subject: Some(format!("mail {mid}")),
        ..Default::default()
    };
    store
        .write_batch(
            vec![
                sent("by-header@x", Some("aoi.harada@example.co.jp"), None),
                sent("by-envelope@x", None, Some("aoi.harada@example.co.jp")),
                sent(
                    "verp-bounce@x",
                    Some("lists@lists.example"),
                    Some("bounce-7-aoi.harada=example.co.jp@lists.example"),
                ),
                sent("other@x", Some("aoi.haradason@example.co.jp"), None),
            ],
            vec![],
        )
        .unwrap();
    let ids = |q: &str| -> Vec<String> {
        let ctx = QueryContext {
            now: t(27, 12),
            timezone: chrono_tz::Asia::Tokyo,
        };
        let mut found: Vec<String> = store
            .search(
                &parse(q, &ctx).unwrap(),
                Page {
                    limit: 50,
                    offset: 0,
                },
            )
            .unwrap()
            .into_iter()
            .filter_map(|m| m.message_id)
            .collect();
        found.sort();
        found
    };
    let exact = vec!["by-envelope@x".to_string(), "by-header@x".to_string()];
    assert_eq!(ids("from:aoi.harada@example.co.jp"), exact);
    assert_eq!(ids("from:Aoi.Harada@Example.CO.JP"), exact);
    assert_eq!(ids("from:<aoi.harada@example.co.jp>"), exact);
    assert_eq!(count(&store, "from:aoi.harada@example.co.jp"), 2);
    assert_eq!(
        count(&store, "from:aoi.harada@example.co.jp subject:mail"),
        2
    );
    assert_eq!(count(&store, "-from:aoi.harada@example.co.jp"), 2);
    // Partial addresses and names are still words of the sender.
    assert_eq!(count(&store, "from:lists.example"), 1);
    assert!(count(&store, "from:aoi.harada") >= 2);
}

/// A query that is one word is answered from the full-text lists merged in
/// Rust; the same word with a filter that keeps everything goes through SQL.
/// Both give the same count and the same pages, for words in the subject,
/// the body or both, common and scarce.
#[test]
fn a_lone_word_counts_and_pages_like_the_general_plan() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut batch = Vec::new();
    for i in 0..300u32 {
        let mut subject = String::from("report");
        let mut body = String::from("text");
        if i % 3 == 0 {
            subject.push_str(" 見積書");
        }
        if i % 5 == 0 {
            body.push_str(" 見積書");
        }
        if i % 50 == 7 {
            body.push_str(" scarce");
        }
        // Times out of id order: imports are not in time order.
        let minutes = i64::from((i * 37) % 300);
        let time = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(minutes);
        batch.push(content_record(&format!("w{i}@x"), &subject, &body, time));
    }
    store.write_batch(batch, vec![]).unwrap();
    let pages = [(10, 0), (10, 10), (50, 0), (7, 95), (10, 295)];
    for (word, expected) in [("見積書", 100 + 60 - 20), ("scarce", 6), ("report", 300)] {
        assert_lone_word_like_general_plan(&store, word, expected, &pages);
    }
}

/// `word` alone (the full-text lists' plan) and `word` with a filter that
/// keeps everything (the SQL plan) both count `expected`, and give the same
/// pages, each as long as the count allows.
fn assert_lone_word_like_general_plan(
    store: &SqliteStore,
    word: &str,
    expected: u64,
    pages: &[(u32, u64)],
) {
    let ids = |found: Vec<mailtrail_store::StoredMessage>| -> Vec<i64> {
        found.into_iter().map(|m| m.id).collect()
    };
    let lone = parse(word, &ctx()).unwrap();
    let general = parse(&format!("{word} after:2000-01-01"), &ctx()).unwrap();
    assert_eq!(store.count(&lone).unwrap(), expected, "{word}");
    assert_eq!(store.count(&general).unwrap(), expected, "{word}");
    for &(limit, offset) in pages {
        let page = Page { limit, offset };
        let got = ids(store.search(&lone, page).unwrap());
        assert_eq!(
            got,
            ids(store.search(&general, page).unwrap()),
            "{word} limit {limit} offset {offset}"
        );
        let want = expected.saturating_sub(offset).min(u64::from(limit));
        assert_eq!(
            got.len() as u64,
            want,
            "{word} limit {limit} offset {offset}"
        );
    }
}

/// A word only in the oldest mail: the newest-first walk, chosen for the
/// number of matches, meets none for most of the store, gives up at its
/// budget, and the page comes from looking the matches up. Every page is
/// the general plan's.
#[test]
fn a_word_only_in_old_mail_pages_like_the_general_plan() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut batch = Vec::new();
    for i in 0..2000u32 {
        // A permutation of 0..2000 (7919 is prime): times out of id order.
        let minute = (i * 7919) % 2000;
        let subject = if minute < 40 { "archaic note" } else { "note" };
        let time = t0 + chrono::Duration::minutes(i64::from(minute));
        batch.push(MessageRecord {
            message_id: Some(format!("old{i}@x")),
            date: Some(time),
            first_seen: Some(time),
            from: Mailbox::new("taro.yamada@example.co.jp", None),
            subject: Some(subject.into()),
            systems: vec!["mailbox".into()],
            ..Default::default()
        });
    }
    store.write_batch(batch, vec![]).unwrap();
    let pages = [(10, 0), (10, 30), (5, 38), (50, 0), (10, 1990)];
    for (word, expected) in [("archaic", 40), ("note", 2000)] {
        assert_lone_word_like_general_plan(&store, word, expected, &pages);
    }
}

/// The full-text answer a page reuses after its count is never stale:
/// a message stored through this connection or through another one is
/// counted by the next search.
#[test]
fn a_remembered_word_search_sees_new_messages_from_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    store
        .write_batch(vec![content_record("a@x", "議事録", "text", t0)], vec![])
        .unwrap();
    let q = parse("議事録", &ctx()).unwrap();
    assert_eq!(store.count(&q).unwrap(), 1);
    store
        .write_batch(
            vec![content_record(
                "b@x",
                "re",
                "議事録",
                t0 + chrono::Duration::hours(1),
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(
        store.count(&q).unwrap(),
        2,
        "written through this connection"
    );
    let mut other = open(dir.path());
    other
        .write_batch(
            vec![content_record(
                "c@x",
                "議事録 2",
                "text",
                t0 + chrono::Duration::hours(2),
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(
        store.count(&q).unwrap(),
        3,
        "written through another connection"
    );
    let page = store
        .search(
            &q,
            Page {
                limit: 10,
                offset: 0,
            },
        )
        .unwrap();
    let ids: Vec<&str> = page
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    assert_eq!(ids, vec!["c@x", "b@x", "a@x"]);
}

/// The dashboard's figures, counted in one pass over the period, equal one
/// GROUP BY per figure over the same database (the queries it used before),
/// on mail with every kind of party: header and envelope senders, To/Cc/Bcc,
/// deliveries to recipients the headers do not name, failures of each kind,
/// mail outside the period.
#[test]
fn the_dashboard_tally_equals_a_group_by_per_figure() {
    use mailtrail_store::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let domains = [
        "example.co.jp",
        "partner.example",
        "Tokyo-Shoji.co.jp",
        "gmail.com",
    ];
    let statuses = [
        DeliveryStatus::Delivered,
        DeliveryStatus::Deferred,
        DeliveryStatus::Bounced,
        DeliveryStatus::Rejected,
        DeliveryStatus::Expired,
    ];
    let mut seed = 0x2545_f491_u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut batch = Vec::new();
    for i in 0..400u32 {
        let mut party = |prefix: &str| {
            format!(
                "{prefix}{}@{}",
                next(7),
                domains[next(domains.len() as u64) as usize]
            )
        };
        let from = party("s");
        let envelope = if i % 3 == 0 { None } else { Some(party("e")) };
        let to = party("t");
        let cc = party("c");
        let extra = party("d");
        let time = t(1, 0) + chrono::Duration::hours(i64::from(i % 200));
        let mut record = MessageRecord {
            message_id: Some(format!("<tally-{i}@x>")),
            date: Some(time),
            first_seen: Some(time),
            from: Mailbox::new(&from, None),
            envelope_from: envelope.map(|e| e.to_lowercase()),
            recipients: vec![
                Recipient::new(&to, None, RecipientKind::To).unwrap(),
                Recipient::new(&cc, None, RecipientKind::Cc).unwrap(),
            ],
            systems: vec!["postfix@mx1".into()],
            ..Default::default()
        };
        for (n, address) in [to, extra].iter().enumerate() {
            let status = statuses[next(statuses.len() as u64) as usize];
            record.deliveries.push(delivery(
                time,
                &address.to_lowercase(),
                status,
                &format!("Q{i}{n}"),
            ));
        }
        batch.push(record);
    }
    store.write_batch(batch, vec![]).unwrap();
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 6).unwrap(),
    );
    let tz = chrono_tz::Asia::Tokyo;
    let dash = store.dashboard(from, to, tz, 5).unwrap();

    let conn = rusqlite::Connection::open(dir.path().join("mailtrail.db")).unwrap();
    let lo = tz
        .from_local_datetime(&from.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp_micros();
    let hi = tz
        .from_local_datetime(&to.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp_micros();
    let ranked = |sql: &str, limit: i64| -> Vec<(String, u64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map(rusqlite::params![lo, hi, limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert!(dash.total > 50, "the period holds mail: {}", dash.total);
    assert_eq!(
        dash.top_senders,
        ranked(
            "SELECT a, count(DISTINCT id) FROM (
                 SELECT m.id, m.from_addr AS a FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND m.from_addr IS NOT NULL
                 UNION
                 SELECT m.id, m.envelope_from FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND m.envelope_from IS NOT NULL)
             WHERE a != '' GROUP BY a ORDER BY 2 DESC, 1 LIMIT ?3",
            5
        )
    );
    assert_eq!(
        dash.top_recipients,
        ranked(
            "SELECT a, count(DISTINCT id) FROM (
                 SELECT m.id, r.address AS a FROM messages m JOIN recipients r ON r.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                 UNION
                 SELECT m.id, d.recipient FROM messages m JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2)
             WHERE a != '' GROUP BY a ORDER BY 2 DESC, 1 LIMIT ?3",
            5
        )
    );
    let external: Vec<(String, u64)> = ranked(
        "SELECT dom, count(DISTINCT id) FROM (
             SELECT id, lower(substr(a, instr(a, '@') + 1)) AS dom FROM (
                 SELECT m.id, m.from_addr AS a FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                 UNION ALL
                 SELECT m.id, m.envelope_from FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                 UNION ALL
                 SELECT m.id, r.address FROM messages m JOIN recipients r ON r.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                 UNION ALL
                 SELECT m.id, d.recipient FROM messages m JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2)
             WHERE a IS NOT NULL AND instr(a, '@') > 0)
         WHERE dom != '' AND ?3 = ?3 GROUP BY dom ORDER BY 2 DESC, 1",
        0,
    )
    .into_iter()
    .filter(|(d, _)| d != "example.co.jp")
    .take(5)
    .collect();
    assert_eq!(dash.top_domains, external);
    let finals = "'bounced', 'rejected', 'failed', 'expired'";
    assert_eq!(
        dash.failing_recipients,
        ranked(
            &format!(
                "SELECT d.recipient, count(DISTINCT m.id) FROM messages m
                 JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND d.status IN ({finals})
                   AND d.recipient != ''
                 GROUP BY d.recipient ORDER BY 2 DESC, 1 LIMIT ?3"
            ),
            5
        )
    );
    assert_eq!(
        dash.failing_domains,
        ranked(
            &format!(
                "SELECT lower(substr(d.recipient, instr(d.recipient, '@') + 1)) AS dom,
                        count(DISTINCT m.id) FROM messages m
                 JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND d.status IN ({finals})
                   AND instr(d.recipient, '@') > 0
                 GROUP BY dom ORDER BY 2 DESC, 1 LIMIT ?3"
            ),
            5
        )
    );
    let by_status = ranked(
        "SELECT d.status, count(DISTINCT m.id) FROM messages m
         JOIN deliveries d ON d.message = m.id
         WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND ?3 = ?3 GROUP BY d.status",
        0,
    );
    for (status, n) in &dash.failures {
        let want = by_status
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        assert_eq!(*n, want, "{status:?}");
    }
}
