//! Accounts, sessions and the audit log of the embedded store.

use chrono::{Duration, TimeZone, Utc};
use mailtrail_store::console::{AuditFilter, ConsoleStore, NewAuditEntry, Role, Session, User};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore};

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(dir, SqliteOptions::default()).unwrap()
}

fn entry(n: u32, action: &str) -> NewAuditEntry {
    NewAuditEntry {
        time: Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, n).unwrap(),
        user: if n.is_multiple_of(2) {
            "sato"
        } else {
            "tanaka"
        }
        .into(),
        ip: Some("10.1.2.3".into()),
        action: action.into(),
        target: Some(format!("message {n}")),
        detail: (action == "search").then(|| "社外秘 from:taro@example.co.jp".into()),
    }
}

#[test]
fn accounts_are_created_and_updated() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    assert!(store.user("sato").unwrap().is_none());
    let mut user = User {
        name: "sato".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::Viewer,
        disabled: false,
        created: Utc::now(),
    };
    store.put_user(&user).unwrap();
    user.role = Role::Administrator;
    user.disabled = true;
    store.put_user(&user).unwrap();
    let stored = store.user("sato").unwrap().unwrap();
    assert_eq!(stored.role, Role::Administrator);
    assert!(stored.disabled);
    assert_eq!(store.users().unwrap().len(), 1);
}

#[test]
fn sessions_expire_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let now = Utc::now();
    let session = |token: &str, user: &str, hours: i64| Session {
        token_hash: token.into(),
        user: user.into(),
        csrf: format!("csrf-{token}"),
        created: now,
        expires: now + Duration::hours(hours),
        ip: None,
    };
    store.create_session(&session("a", "sato", 8)).unwrap();
    store.create_session(&session("b", "sato", 8)).unwrap();
    store.create_session(&session("c", "tanaka", 8)).unwrap();
    store.create_session(&session("old", "tanaka", -1)).unwrap();
    assert_eq!(store.session("a", now).unwrap().unwrap().csrf, "csrf-a");
    assert!(store.session("old", now).unwrap().is_none(), "expired");
    assert!(store
        .session("a", now + Duration::hours(9))
        .unwrap()
        .is_none());
    store.delete_session("c").unwrap();
    assert!(store.session("c", now).unwrap().is_none());
    // Expired ones and every session of one user.
    assert_eq!(store.delete_sessions(now, Some("sato")).unwrap(), 3);
    assert!(store.session("b", now).unwrap().is_none());
}

/// Entries written together (the requests of one moment sharing a commit)
/// get the ids and chain values they would have got one by one, in the
/// order given, and the chain verifies.
#[test]
fn audit_entries_written_together_chain_as_if_written_one_by_one() {
    let actions = [
        "search",
        "view",
        "download-raw",
        "export",
        "search",
        "view",
        "sign-in",
    ];
    let entries: Vec<NewAuditEntry> = (1..=7u32)
        .map(|n| entry(n, actions[n as usize - 1]))
        .collect();
    let one_by_one = tempfile::tempdir().unwrap();
    let mut store = open(one_by_one.path());
    for e in &entries {
        store.audit(e).unwrap();
    }
    let together = tempfile::tempdir().unwrap();
    let mut batched = open(together.path());
    batched.audit(&entries[0]).unwrap();
    batched.audit_all(&entries[1..5]).unwrap();
    batched.audit_all(&[]).unwrap();
    batched.audit_all(&entries[5..]).unwrap();
    assert_eq!(batched.verify_audit_chain().unwrap(), None);
    let chains = |dir: &std::path::Path| -> Vec<(i64, String, String)> {
        let conn = rusqlite::Connection::open(dir.join("mailtrail.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, action, chain FROM audit_log ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let want = chains(one_by_one.path());
    assert_eq!(want.len(), 7);
    assert_eq!(
        want.iter().map(|(_, a, _)| a.as_str()).collect::<Vec<_>>(),
        actions
    );
    assert_eq!(chains(together.path()), want);
}

#[test]
fn the_audit_log_lists_filters_and_proves_it_was_not_edited() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for n in 1..=6 {
        let action = ["search", "view", "download-raw"][n as usize % 3];
        store.audit(&entry(n, action)).unwrap();
    }
    let all = store
        .audit_log(&AuditFilter::default(), Page::default())
        .unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].id, 6, "newest first");
    let by_sato = AuditFilter {
        user: Some("sato".into()),
        ..Default::default()
    };
    assert_eq!(store.audit_log(&by_sato, Page::default()).unwrap().len(), 3);
    let by_text = AuditFilter {
        text: Some("社外秘".into()),
        ..Default::default()
    };
    assert_eq!(store.audit_log(&by_text, Page::default()).unwrap().len(), 2);
    assert_eq!(store.verify_audit_chain().unwrap(), None);
    drop(store);

    // Someone edits an entry with another tool: the chain says which.
    let db = rusqlite::Connection::open(dir.path().join("mailtrail.db")).unwrap();
    db.execute("UPDATE audit_log SET user = 'nobody' WHERE id = 3", [])
        .unwrap();
    drop(db);
    let store = open(dir.path());
    let broken = store.verify_audit_chain().unwrap().unwrap();
    assert_eq!(broken.id, 3, "{broken:?}");
    drop(store);

    // Or removes one: the gap is found.
    let db = rusqlite::Connection::open(dir.path().join("mailtrail.db")).unwrap();
    db.execute("UPDATE audit_log SET user = 'tanaka' WHERE id = 3", [])
        .unwrap();
    db.execute("DELETE FROM audit_log WHERE id = 4", [])
        .unwrap();
    drop(db);
    let store = open(dir.path());
    let broken = store.verify_audit_chain().unwrap().unwrap();
    assert_eq!(broken.id, 5, "{broken:?}");
}

/// Regression: under `mailtrail serve` the console's connection appends
/// audit entries while the mail writer commits batches and readers read.
/// Both writers read before they write; as deferred transactions they
/// failed at once with "database is locked" (SQLite refuses to upgrade a
/// read snapshot another writer has moved past, without waiting), which
/// the console answered with HTTP 500. Every write must now wait its turn.
#[test]
fn audit_entries_and_mail_batches_written_at_once_all_succeed() {
    use mailtrail_model::{Mailbox, MessageRecord};
    use mailtrail_store::Store;
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let path = dir.path().to_path_buf();
    let mail = std::thread::spawn(move || {
        let mut store = open(&path);
        for n in 0..200 {
            let record = MessageRecord {
                message_id: Some(format!("busy-{n}@example.co.jp")),
                from: Mailbox::new("taro@example.co.jp", None),
                subject: Some(format!("batch {n}")),
                first_seen: Some(Utc::now()),
                ..Default::default()
            };
            store.write_batch(vec![record], vec![]).unwrap();
        }
    });
    let path = dir.path().to_path_buf();
    let readers = std::thread::spawn(move || {
        let store = SqliteStore::open(
            &path,
            SqliteOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..200 {
            let _ = store.stats().unwrap();
        }
    });
    let mut console = open(dir.path());
    for n in 0..200 {
        console.audit(&entry(n % 60, "view")).unwrap();
    }
    mail.join().unwrap();
    readers.join().unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().unwrap().messages, 200);
    assert_eq!(store.verify_audit_chain().unwrap(), None);
    let listed = store
        .audit_log(
            &AuditFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .unwrap();
    assert_eq!(listed.len(), 200);
}
