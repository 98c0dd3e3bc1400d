//! The embedded backend: SQLite (WAL) plus the blob store, in one data directory.
//!
//! Layout of the data directory:
//! - `mailtrail.db` — messages, recipients, deliveries, attachments, keys,
//!   rejects, and the full-text index, all in one database so that a message
//!   and its index entries are committed in the same transaction;
//! - `blobs/` — raw messages and attachment segments ([`crate::blob`]);
//! - `quarantine/` — the bytes of rejected input, one file per reject, named
//!   by a digest of source, position and bytes (so a re-import adds nothing).
//!
//! The full-text index is two contentless FTS5 tables fed with text from
//! [`crate::tokenize`]: `fts_body` is written once, when a message's content
//! first arrives; `fts_meta` (subject, attachment names, sender, recipients)
//! is rewritten whenever a source adds to it (a log's header_checks subject,
//! a journal's Bcc). Contentless tables can only be rewritten whole, and the
//! body text is not kept outside the compressed raw blob, so the body lives
//! in the table that never needs rewriting; everything else is in the
//! database and can be re-indexed at will.
//!
//! A third, `fts_addr`, is the index of exact values: each sender,
//! recipient and client IP of a message as one token (role letter and the
//! value in hex). It replaces B-trees over those columns, which cost bulk
//! imports a third of their time: a full-text index is written in sorted
//! segments, a B-tree over addresses page by scattered page at every commit.
//!
//! A query that is one text term (a word, a phrase, `from:` an address) is
//! answered from the full-text rowid lists merged in Rust
//! (`SqliteStore::text_matches`); anything else is compiled to one SQL
//! `WHERE` over `messages m`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use mailtrail_model::{
    Attachment, AuthResults, Delivery, DeliveryStatus, Direction, Mailbox, MessageRecord,
    OrgDomains, Recipient, RecipientKind, Reject,
};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::blob::BlobStore;
use crate::console::{
    chain_hash, ApiToken, AuditEntry, AuditFilter, ChainBreak, ConsoleStore, NewAuditEntry, Role,
    Session, User,
};
use crate::query::{Expr, Term, TextField};

mod alerts;
mod directory;
mod risk;
use crate::{
    add_count, query, tokenize, BatchOutcome, Dashboard, LargeAttachment, Page, QuarantineEntry,
    Stats, Store, StoreError, StoredMessage, FAILURE_STATUSES, FINAL_FAILURES,
};

/// A source-local key (host + queue id) only matches a message whose last
/// activity under that key is this recent: short Postfix queue ids are reused.
const KEY_WINDOW_MICROS: i64 = 10 * 24 * 3600 * 1_000_000;
/// The longest dashboard period, in days (a year and a day).
const MAX_DASHBOARD_DAYS: i64 = 366;
/// Characters of body text kept as a preview for result lists.
const PREVIEW_CHARS: usize = 200;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema
    r#"
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        message_id TEXT,
        date INTEGER,
        first_seen INTEGER,
        sort_time INTEGER NOT NULL,
        envelope_from TEXT,
        from_addr TEXT,
        from_name TEXT,
        reply_to_addr TEXT,
        reply_to_name TEXT,
        subject TEXT,
        size INTEGER,
        direction TEXT NOT NULL,
        has_attachment INTEGER NOT NULL DEFAULT 0,
        auth TEXT,
        client_ip TEXT,
        systems TEXT NOT NULL DEFAULT '',
        content_hash TEXT,
        preview TEXT,
        body_indexed INTEGER NOT NULL DEFAULT 0,
        keys TEXT NOT NULL DEFAULT ''
    );
    CREATE UNIQUE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX messages_sort ON messages(sort_time, id);
    CREATE TABLE message_keys (
        key TEXT PRIMARY KEY,
        message INTEGER NOT NULL,
        last_time INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE recipients (
        message INTEGER NOT NULL,
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        display_name TEXT,
        PRIMARY KEY (message, address, kind)
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        message INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        time INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT,
        system TEXT NOT NULL,
        relay TEXT,
        client_ip TEXT,
        client_host TEXT,
        local_id TEXT,
        original_recipient TEXT,
        PRIMARY KEY (message, seq)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_status ON deliveries(status, message);
    CREATE TABLE attachments (
        message INTEGER NOT NULL,
        position INTEGER NOT NULL,
        filename TEXT,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        blake3 TEXT NOT NULL,
        encrypted INTEGER NOT NULL,
        inner_names TEXT,
        PRIMARY KEY (message, position)
    ) WITHOUT ROWID;
    CREATE INDEX attachments_blake3 ON attachments(blake3);
    CREATE TABLE rejects (
        id INTEGER PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        position TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        file TEXT NOT NULL,
        time INTEGER NOT NULL
    );
    CREATE VIRTUAL TABLE fts_meta USING fts5(
        subject, filenames, sender, to_addr, cc_addr, bcc_addr, rcpt_addr,
        tokenize = 'ascii', content = '', contentless_delete = 1
    );
    CREATE VIRTUAL TABLE fts_body USING fts5(
        body,
        tokenize = 'ascii', content = '', contentless_delete = 1
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: the web console's accounts, sessions and audit log
    r#"
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        ip TEXT
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions(user);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        user TEXT NOT NULL,
        ip TEXT,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT,
        chain TEXT NOT NULL
    );
    CREATE INDEX audit_log_time ON audit_log(time);
    "#,
    // 3: bearer tokens for scripts using the console's JSON API
    r#"
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_used INTEGER,
        revoked INTEGER
    ) WITHOUT ROWID;
    "#,
    // 4: `from:` a complete address is an exact lookup of the sender, not a
    // full-text phrase (which also matched bounce addresses that embed it,
    // `bounce-…-taro=example.co.jp@…`, and was slow on common tokens)
    r#"
    CREATE INDEX messages_from_addr ON messages(from_addr);
    CREATE INDEX messages_envelope_from ON messages(envelope_from);
    "#,
    // 5: the directory (people, their addresses, devices and their
    // addresses over time), and the indexes that attribute mail to them:
    // recipients by address, messages by client IP
    r#"
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        data TEXT NOT NULL,
        name_key TEXT NOT NULL,
        department TEXT,
        status TEXT NOT NULL,
        present INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        UNIQUE (source, source_id)
    );
    CREATE TABLE person_addresses (
        address TEXT NOT NULL,
        person INTEGER NOT NULL,
        PRIMARY KEY (address, person)
    ) WITHOUT ROWID;
    CREATE INDEX person_addresses_person ON person_addresses(person);
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        hostname TEXT NOT NULL,
        owner TEXT,
        data TEXT NOT NULL,
        present INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        UNIQUE (source, hostname)
    );
    CREATE TABLE device_addresses (
        device INTEGER NOT NULL,
        ip TEXT,
        mac TEXT,
        valid_from INTEGER,
        valid_until INTEGER
    );
    CREATE INDEX device_addresses_device ON device_addresses(device);
    CREATE INDEX device_addresses_ip ON device_addresses(ip) WHERE ip IS NOT NULL;
    CREATE INDEX recipients_address ON recipients(address);
    CREATE INDEX messages_client_ip ON messages(client_ip) WHERE client_ip IS NOT NULL;
    "#,
    // 6: alerts raised by the monitoring rules, their history, the
    // notifications still to deliver, and the messages waiting for the
    // rules (queued in the transaction that stores or changes them, so a
    // crash between storing and evaluating loses no evaluation)
    r#"
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        rule_name TEXT,
        message INTEGER NOT NULL,
        severity TEXT NOT NULL,
        hits TEXT NOT NULL,
        state TEXT NOT NULL,
        assignee TEXT,
        raised INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        UNIQUE (rule, message)
    );
    CREATE INDEX alerts_state ON alerts(state, id);
    CREATE INDEX alerts_message ON alerts(message);
    CREATE TABLE alert_events (
        alert INTEGER NOT NULL,
        time INTEGER NOT NULL,
        user TEXT NOT NULL,
        state TEXT,
        assignee TEXT,
        comment TEXT
    );
    CREATE INDEX alert_events_alert ON alert_events(alert);
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        alert INTEGER NOT NULL,
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL,
        last_error TEXT,
        created INTEGER NOT NULL,
        done INTEGER,
        UNIQUE (alert, channel)
    );
    CREATE INDEX notifications_due ON notifications(state, next_attempt);
    CREATE TABLE eval_pending (
        message INTEGER PRIMARY KEY
    );
    CREATE TABLE contacted_domains (
        domain TEXT PRIMARY KEY,
        first_time INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO contacted_domains (domain, first_time)
        SELECT lower(substr(r.address, instr(r.address, '@') + 1)), min(m.sort_time)
        FROM recipients r JOIN messages m ON m.id = r.message
        WHERE m.direction = 'outbound' AND instr(r.address, '@') > 0
        GROUP BY 1;
    "#,
    // 7: addresses and client IPs are no longer B-trees over every
    // message and recipient but one full-text token each in `fts_addr`
    // (`s`, `r` or `i`, then the value's UTF-8 in hex, which the `ascii`
    // tokenizer keeps whole), written in sorted segments like the other
    // full-text tables: the B-trees cost bulk imports a third of their
    // time, because every commit rewrote pages scattered all over them.
    // `from:`, `employee:`, `dept:` and `device:` read the tokens
    // (`address_token`).
    r#"
    DROP INDEX IF EXISTS recipients_address;
    DROP INDEX IF EXISTS messages_from_addr;
    DROP INDEX IF EXISTS messages_envelope_from;
    DROP INDEX IF EXISTS messages_client_ip;
    CREATE VIRTUAL TABLE fts_addr USING fts5(
        tokens,
        tokenize = 'ascii', content = '', contentless_delete = 1, detail = none
    );
    INSERT INTO fts_addr (rowid, tokens)
        SELECT m.id, trim(
            CASE WHEN m.from_addr IS NOT NULL THEN 's' || hex(m.from_addr) ELSE '' END || ' ' ||
            CASE WHEN m.envelope_from IS NOT NULL AND m.envelope_from IS NOT m.from_addr
                THEN 's' || hex(m.envelope_from) ELSE '' END || ' ' ||
            ifnull((SELECT group_concat('r' || hex(address), ' ')
                    FROM (SELECT DISTINCT address FROM recipients WHERE message = m.id)), '') || ' ' ||
            CASE WHEN m.client_ip IS NOT NULL THEN 'i' || hex(m.client_ip) ELSE '' END)
        FROM messages m;
    "#,
];

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub org_domains: OrgDomains,
    /// Every batch durable on its own: blobs fsync'ed and `synchronous=FULL`,
    /// so nothing committed is lost even on power failure (what a receiver
    /// that acknowledges each message needs). Off for bulk imports, which
    /// call [`Store::sync`] once at the end instead: a crash of the process
    /// still loses nothing committed (WAL), and a power failure mid-import is
    /// repaired by running the same import again.
    pub durable: bool,
    /// Open for reading only (search, show, stats): nothing is created, and a
    /// data directory without a database is an error rather than a new store.
    pub read_only: bool,
    /// Mailboxes that receive journal copies: never recipients of an email
    /// ([`MessageRecord::settle_recipients`]).
    pub journal_addresses: Vec<String>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            org_domains: OrgDomains::default(),
            durable: true,
            read_only: false,
            journal_addresses: Vec::new(),
        }
    }
}

pub struct SqliteStore {
    conn: Connection,
    blobs: BlobStore,
    quarantine_dir: PathBuf,
    org: OrgDomains,
    journal_addresses: Vec<String>,
    durable: bool,
    /// The last [`SqliteStore::text_matches`] answer, for the page that
    /// follows a count of the same query (see there).
    text_memo: std::cell::RefCell<Option<TextMemo>>,
}

/// How many steps of the newest-first walk a page may take per match before
/// looking the matches up is cheaper (see [`SqliteStore::page_of_matches`]).
const WALK_STEPS_PER_MATCH: usize = 16;

/// A remembered full-text answer: valid while nothing was committed since
/// (by another connection: `data_version`; by this one: `total_changes`).
struct TextMemo {
    field: TextField,
    text: String,
    data_version: i64,
    total_changes: u64,
    matches: std::sync::Arc<Vec<i64>>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A read transaction held open: every query made while it lives reads one
/// snapshot, and the database file is locked and checked once instead of
/// once per query (which, over a million small queries, cost more than the
/// queries). Ends when dropped.
pub struct ReadSnapshot<'s> {
    conn: &'s Connection,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        // A read transaction has nothing to commit; ending it cannot lose data.
        let _ = self.conn.execute_batch("COMMIT");
    }
}

impl SqliteStore {
    /// Hold one read transaction for a long series of reads (a retro-hunt,
    /// an evaluation round). No write may be made on this store while it
    /// lives.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        Ok(ReadSnapshot { conn: &self.conn })
    }

    /// [`Store::search`], planned by the match count when it is known.
    fn search_planned(
        &self,
        query: &Expr,
        page: Page,
        known: Option<u64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // Two plans: drive by the matches (few matches: fetch them all,
        // sort them) or walk messages newest first and stop after the page
        // (many matches: a page fills after a walk of about
        // total × (offset + limit) / matches messages). The two cost the
        // same near √(total × (offset + limit)) matches. The count, when the
        // caller has it, says which; otherwise a count that stops there does,
        // for a fraction of either plan's cost.
        if let Some((field, text)) = lone_text(query) {
            let matches = self.text_matches(field, text)?;
            let ids = self.page_of_matches(&matches, page)?;
            return load_messages(&self.conn, &ids, Deliveries::All);
        }
        let total = self.highest_id()?;
        let window =
            i64::from(page.limit).saturating_add(i64::try_from(page.offset).unwrap_or(i64::MAX));
        let cap = ((total as f64) * (window as f64))
            .sqrt()
            .clamp(1.0, i64::MAX as f64) as i64;
        let common = match known {
            Some(count) => i64::try_from(count).unwrap_or(i64::MAX) >= cap,
            None => {
                let probe = compile(&self.conn, query, false)?;
                let sql = format!(
                    "SELECT count(*) FROM (SELECT 1 FROM messages m WHERE {} LIMIT {cap})",
                    probe.sql
                );
                let seen: i64 = self
                    .conn
                    .prepare_cached(&sql)?
                    .query_row(rusqlite::params_from_iter(probe.params.iter()), |r| {
                        r.get(0)
                    })?;
                seen >= cap
            }
        };
        let mut c = compile(&self.conn, query, common)?;
        let limit = param(&mut c, Value::Integer(i64::from(page.limit)));
        let offset = param(
            &mut c,
            Value::Integer(i64::try_from(page.offset).unwrap_or(i64::MAX)),
        );
        let sql = format!(
            "SELECT m.id FROM messages m WHERE {} ORDER BY m.sort_time DESC, m.id DESC LIMIT {limit} OFFSET {offset}",
            c.sql
        );
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(c.params.iter()), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        load_messages(&self.conn, &ids, Deliveries::All)
    }

    /// Open (creating if needed) the store in a data directory.
    pub fn open(data_dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if options.read_only {
            if let Some(store) = Self::open_read_only(data_dir, &options)? {
                return Ok(store);
            }
        }
        fs::create_dir_all(data_dir).map_err(|source| StoreError::Blob {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let db_path = data_dir.join("mailtrail.db");
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if options.durable { "FULL" } else { "NORMAL" },
        )?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // 16 MiB of page cache: measured as fast as 64 MiB for imports, at a
        // quarter of the memory.
        conn.pragma_update(None, "cache_size", -16384)?;
        if !options.durable {
            // Bulk imports: checkpoint every 64 MiB of WAL instead of every
            // 4 MiB; hot pages (index interiors, FTS segments) are then copied
            // to the database once per checkpoint instead of once per batch.
            conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
        }
        migrate(&mut conn, &db_path)?;
        let quarantine_dir = data_dir.join("quarantine");
        Ok(SqliteStore {
            conn,
            blobs: BlobStore::open(data_dir.join("blobs"))?,
            quarantine_dir,
            org: options.org_domains,
            journal_addresses: options.journal_addresses,
            durable: options.durable,
            text_memo: Default::default(),
        })
    }

    /// A reader's connection: no directory creation, no journal-mode switch,
    /// no migration. `None` when the schema is older than this build's (the
    /// caller then opens read-write once, which migrates).
    fn open_read_only(
        data_dir: &Path,
        options: &SqliteOptions,
    ) -> Result<Option<SqliteStore>, StoreError> {
        let db_path = data_dir.join("mailtrail.db");
        if !db_path.exists() {
            return Err(StoreError::Missing {
                path: data_dir.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "cache_size", -16384)?;
        // Reads through a memory map: a one-shot `search` process then pays
        // page faults instead of a read syscall and a copy per page. Only for
        // readers: a long import would otherwise map (and count as resident)
        // a growing share of the database.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                path: db_path,
                found: version,
                known,
            });
        }
        if version < known {
            return Ok(None);
        }
        Ok(Some(SqliteStore {
            conn,
            blobs: BlobStore::open_existing(data_dir.join("blobs")),
            quarantine_dir: data_dir.join("quarantine"),
            org: options.org_domains.clone(),
            journal_addresses: options.journal_addresses.clone(),
            durable: options.durable,
            text_memo: Default::default(),
        }))
    }

    /// The messages `ids` (in that order; missing ones left out) as the
    /// monitoring rules read them: everything but the deliveries, which no
    /// rule reads (only a message without a time of its own gets them, for
    /// its first delivery's time). Half the work of [`Store::messages`] for
    /// log-derived mail, whose deliveries are most of its rows.
    pub fn messages_for_rules(&self, ids: &[i64]) -> Result<Vec<StoredMessage>, StoreError> {
        load_messages(&self.conn, ids, Deliveries::OfUndated)
    }

    /// The ids of the messages whose indexed text matches `text` in
    /// `field`, ascending. Each full-text table gives its rowids in
    /// ascending order and they are merged here: de-duplicating them in SQL
    /// (`UNION`) built a temporary B-tree of every match, about ten times
    /// the cost of reading them (a word in 24,000 of 1.1M messages: 7 ms
    /// against under 1 ms per table). `from:` a complete address is the
    /// sender exactly, by its `fts_addr` token.
    ///
    /// A search page counts its query and then pages it: the answer is
    /// remembered for the next call on this connection with the same text,
    /// as long as nothing has been committed since.
    fn text_matches(
        &self,
        field: TextField,
        text: &str,
    ) -> Result<std::sync::Arc<Vec<i64>>, StoreError> {
        let data_version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let total_changes = self.conn.total_changes();
        if let Some(memo) = self.text_memo.borrow().as_ref() {
            if memo.field == field
                && memo.text == text
                && memo.data_version == data_version
                && memo.total_changes == total_changes
            {
                return Ok(memo.matches.clone());
            }
        }
        let matches = std::sync::Arc::new(self.read_text_matches(field, text)?);
        *self.text_memo.borrow_mut() = Some(TextMemo {
            field,
            text: text.to_string(),
            data_version,
            total_changes,
            matches: matches.clone(),
        });
        Ok(matches)
    }

    fn read_text_matches(&self, field: TextField, text: &str) -> Result<Vec<i64>, StoreError> {
        if field == TextField::From {
            if let Some(address) = complete_address(text) {
                // The sender exactly: its `fts_addr` token.
                let ids = self
                    .conn
                    .prepare_cached(
                        "SELECT rowid FROM fts_addr WHERE fts_addr MATCH ?1 ORDER BY rowid",
                    )?
                    .query_map([address_token(AddressRole::Sender, &address)], |r| {
                        r.get::<_, i64>(0)
                    })?
                    .collect::<Result<Vec<i64>, _>>()?;
                return Ok(ids);
            }
        }
        let mut lists = Vec::new();
        for (table, expr) in text_targets(field, text)? {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT rowid FROM {table} WHERE {table} MATCH ?1 ORDER BY rowid"
            ))?;
            let ids = stmt
                .query_map([expr], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            lists.push(ids);
        }
        Ok(merge_ascending(lists))
    }

    /// One page, newest first, of the messages `matches` (ascending ids).
    /// Two plans: walk the messages newest first, keeping those in the
    /// list, until the page is full; or look every match up and order them
    /// by time. A step of the walk (the next entry of the time index and a
    /// binary search) costs about a sixteenth of a match looked up (a rowid
    /// seek, its record, a place in the sort): at 1.1M messages, 3,738
    /// matches took 6 ms looked up, and the 12,976 steps to fill a page of
    /// 50 took 0.4 ms in SQLite. So the walk is chosen while its expected
    /// length — total × (offset + limit) / matches, for matches spread over
    /// time — is under [`WALK_STEPS_PER_MATCH`] × matches. Matches bunched in
    /// old mail make the walk longer than expected: it stops at twice its
    /// budget and the page is taken by the lookups instead, so neither plan
    /// costs more than about three times the better one.
    fn page_of_matches(&self, matches: &[i64], page: Page) -> Result<Vec<i64>, StoreError> {
        let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
        let limit = page.limit as usize;
        if limit == 0 || matches.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.highest_id()?;
        let window = offset.saturating_add(limit) as f64;
        let expected_steps = total as f64 * window / matches.len() as f64;
        let budget = matches.len().saturating_mul(WALK_STEPS_PER_MATCH);
        if expected_steps <= budget as f64 {
            if let Some(ids) =
                self.walk_for_matches(matches, offset, limit, budget.saturating_mul(2))?
            {
                return Ok(ids);
            }
        }
        let list =
            serde_json::to_string(matches).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let ids = self
            .conn
            .prepare_cached(
                "SELECT m.id FROM json_each(?1) j JOIN messages m ON m.id = j.value
                 ORDER BY m.sort_time DESC, m.id DESC LIMIT ?2 OFFSET ?3",
            )?
            .query_map(
                params![
                    list,
                    i64::from(page.limit),
                    i64::try_from(page.offset).unwrap_or(i64::MAX)
                ],
                |r| r.get::<_, i64>(0),
            )?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    /// The highest message id: the number of messages the plans weigh
    /// (ids are dense; deleted ones are few).
    fn highest_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT ifnull(max(id), 0) FROM messages")?
            .query_row([], |r| r.get(0))?)
    }

    /// The walk of [`SqliteStore::page_of_matches`]: messages newest first,
    /// keeping those in `matches`, at most `max_steps` of them. `None` when
    /// the page was not complete by then (and the store has more).
    fn walk_for_matches(
        &self,
        matches: &[i64],
        offset: usize,
        limit: usize,
        max_steps: usize,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM messages ORDER BY sort_time DESC, id DESC")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::with_capacity(limit);
        let mut skipped = 0usize;
        let mut steps = 0usize;
        while let Some(row) = rows.next()? {
            steps += 1;
            if steps > max_steps {
                return Ok(None);
            }
            let id: i64 = row.get(0)?;
            if matches.binary_search(&id).is_err() {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out.push(id);
            if out.len() == limit {
                break;
            }
        }
        Ok(Some(out))
    }

    /// End a transaction the connection was left in (rolled back); `true`
    /// when it is out of any transaction afterwards, as a pooled connection
    /// must be before it is lent again.
    pub fn end_transaction(&self) -> bool {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.conn.is_autocommit()
    }

    /// A second, read-only connection to the same store, for another
    /// thread (a retro-hunt loads messages on one core while it judges them
    /// on the other). It reads its own snapshot.
    pub fn reader(&self) -> Result<SqliteStore, StoreError> {
        let data_dir = self.quarantine_dir.parent().ok_or_else(|| {
            StoreError::Invalid(format!(
                "no data directory above {}",
                self.quarantine_dir.display()
            ))
        })?;
        let options = SqliteOptions {
            org_domains: self.org.clone(),
            durable: self.durable,
            read_only: true,
            journal_addresses: self.journal_addresses.clone(),
        };
        Self::open_read_only(data_dir, &options)?.ok_or_else(|| {
            StoreError::Invalid("the store's schema is older than this build's".into())
        })
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn load_message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let row = self
            .conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
            ))?
            .query_row([id], message_row)
            .optional()?;
        let Some(mut m) = row else {
            return Ok(None);
        };
        m.recipients = load_recipients(&self.conn, id)?;
        m.deliveries = load_deliveries(&self.conn, id)?;
        m.attachments = load_attachments(&self.conn, id)?;
        Ok(Some(m))
    }
}

/// The write side of one batch: what a transaction needs besides the connection.
struct Writer<'a> {
    blobs: &'a mut BlobStore,
    org: &'a OrgDomains,
    journal_addresses: &'a [String],
    quarantine_dir: &'a Path,
    /// Messages stored or changed by this batch, queued for the rules once
    /// at its end (a log feeds a message many partial records per batch).
    touched: BTreeSet<i64>,
}

impl Writer<'_> {
    fn write_reject(
        &self,
        tx: &Transaction<'_>,
        reject: &Reject,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(reject.source.as_bytes());
        hasher.update(b"\0");
        hasher.update(reject.position.to_string().as_bytes());
        hasher.update(b"\0");
        hasher.update(&reject.input);
        let digest = hasher.finalize().to_hex().to_string();
        let known: Option<i64> = tx
            .query_row("SELECT id FROM rejects WHERE digest = ?1", [&digest], |r| {
                r.get(0)
            })
            .optional()?;
        if known.is_some() {
            return Ok(false);
        }
        let file = self.quarantine_dir.join(&digest);
        let io_err = |source| StoreError::Blob {
            path: file.clone(),
            source,
        };
        fs::create_dir_all(self.quarantine_dir).map_err(io_err)?;
        fs::write(&file, &reject.input).map_err(io_err)?;
        tx.execute(
            "INSERT INTO rejects (digest, source, position, code, reason, file, time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                digest,
                reject.source,
                reject.position.to_string(),
                reject.code,
                reject.reason,
                file.to_string_lossy(),
                now
            ],
        )?;
        Ok(true)
    }

    /// Apply one record inside a transaction.
    fn upsert(
        &mut self,
        tx: &Transaction<'_>,
        mut record: MessageRecord,
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        let Some(record_time) = record.sort_time() else {
            return Err(StoreError::Invalid(
                "a record without any time cannot be stored".into(),
            ));
        };
        let record_micros = micros(record_time);
        // Deliveries to a journal mailbox are dropped before they are compared.
        record.settle_recipients(false, self.journal_addresses);
        let by_message_id: Option<i64> = match &record.message_id {
            Some(mid) => tx
                .prepare_cached("SELECT id FROM messages WHERE message_id = ?1")?
                .query_row([mid], |r| r.get(0))
                .optional()?,
            None => None,
        };
        let mut by_key: Option<i64> = None;
        for key in &record.keys {
            let found: Option<(i64, i64)> = tx
                .prepare_cached("SELECT message, last_time FROM message_keys WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((message, last)) = found else {
                continue;
            };
            if (record_micros - last).abs() > KEY_WINDOW_MICROS {
                continue;
            }
            // A reused queue id must not join two emails whose Message-IDs differ.
            if let Some(mid) = &record.message_id {
                let stored: Option<String> = tx
                    .prepare_cached("SELECT message_id FROM messages WHERE id = ?1")?
                    .query_row([message], |r| r.get(0))?;
                if stored.is_some_and(|stored| &stored != mid) {
                    continue;
                }
            }
            by_key = Some(message);
            break;
        }
        // Deliveries of a folded view are already stored (and counted) once.
        let mut already_stored: Vec<Delivery> = Vec::new();
        let target = match (by_message_id, by_key) {
            (Some(a), Some(b)) if a != b => {
                // A partial view without Message-ID (b, found by its source
                // key) turned out to belong to message a: fold b into a. A view
                // with captured content is never folded away.
                let has_content: bool = tx
                    .prepare_cached("SELECT content_hash IS NOT NULL FROM messages WHERE id = ?1")?
                    .query_row([b], |r| r.get(0))?;
                if !has_content {
                    let other = load_record(tx, b)?;
                    delete_message(tx, b, &other.keys)?;
                    already_stored.extend(other.deliveries.iter().cloned());
                    record.merge(other);
                }
                Some(a)
            }
            (a, b) => a.or(b),
        };
        let id = match target {
            None => {
                self.insert_new(tx, record, outcome)?;
                return Ok(());
            }
            Some(id) => id,
        };

        let existing = load_record(tx, id)?;
        let (content_hash, body_indexed): (Option<String>, bool) = tx
            .prepare_cached("SELECT content_hash, body_indexed FROM messages WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?;
        if body_indexed {
            record.body_text = None;
        }
        if let Some(hash) = &content_hash {
            if let Some(raw) = record.raw.take() {
                let same_bytes = blake3::hash(&raw).to_hex().as_str() == hash;
                if same_bytes && !self.blobs.looks_intact(hash) {
                    // The row survived a power failure that its blob did not
                    // (bulk imports sync blobs at the end): write it again.
                    let ranges: Vec<(usize, usize)> = record
                        .attachments
                        .iter()
                        .filter_map(|a| a.raw_range)
                        .collect();
                    self.blobs.put_message(&raw, &ranges)?;
                }
            }
            // Attachments describe one raw message: keep those of the stored one.
            record.attachments.clear();
        }
        let new_deliveries: Vec<Delivery> = record
            .deliveries
            .iter()
            .filter(|d| {
                !existing
                    .deliveries
                    .iter()
                    .any(|e| e.identity() == d.identity())
            })
            .cloned()
            .collect();
        let headers_known = content_hash.is_some() || record.raw.is_some();
        let mut merged = existing.clone();
        merged.merge(record);
        merged.settle_recipients(headers_known, self.journal_addresses);
        let text_changed =
            merged.subject != existing.subject || merged.attachments != existing.attachments;
        let body_arrived = merged.body_text.is_some();
        let people_changed = merged.from != existing.from
            || merged.envelope_from != existing.envelope_from
            || merged.recipients != existing.recipients
            || !new_deliveries.is_empty();
        let keys_changed = merged.keys != existing.keys;
        let row_changed = text_changed
            || body_arrived
            || people_changed
            || keys_changed
            || merged.raw.is_some()
            || merged != existing;
        for key in &merged.keys {
            tx.prepare_cached(
                "INSERT INTO message_keys (key, message, last_time) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET
                     last_time = CASE WHEN message = excluded.message
                         THEN max(last_time, excluded.last_time) ELSE excluded.last_time END,
                     message = excluded.message
                 WHERE message = excluded.message OR abs(last_time - excluded.last_time) > ?4",
            )?
            .execute(params![key, id, record_micros, KEY_WINDOW_MICROS])?;
        }
        if !row_changed {
            outcome.unchanged += 1;
            return Ok(());
        }
        let content = self.store_content(&mut merged)?;
        let content_hash = content_hash.or(content.hash);
        let preview = content.preview;
        self.write_message_row(tx, Some(id), &merged, content_hash.as_deref(), preview)?;
        if merged.recipients != existing.recipients {
            tx.prepare_cached("DELETE FROM recipients WHERE message = ?1")?
                .execute([id])?;
            insert_recipients(tx, id, &merged.recipients)?;
            self.note_contacted_domains(tx, &merged)?;
        }
        if merged.recipients != existing.recipients
            || merged.from != existing.from
            || merged.envelope_from != existing.envelope_from
            || merged.client_ip != existing.client_ip
        {
            index_addresses(tx, id, &merged, true)?;
        }
        for (seq, d) in (existing.deliveries.len()..).zip(&new_deliveries) {
            insert_delivery(tx, id, seq, d)?;
            if !already_stored.iter().any(|e| e.identity() == d.identity()) {
                add_count(&mut outcome.new_deliveries, d.status, 1);
            }
        }
        if merged.attachments != existing.attachments {
            tx.prepare_cached("DELETE FROM attachments WHERE message = ?1")?
                .execute([id])?;
            insert_attachments(tx, id, &merged.attachments)?;
        }
        if text_changed || people_changed {
            tx.prepare_cached("DELETE FROM fts_meta WHERE rowid = ?1")?
                .execute([id])?;
            index_meta(tx, id, &merged)?;
        }
        if body_arrived {
            index_body(tx, id, &merged)?;
        }
        if text_changed || body_arrived || people_changed {
            self.touched.insert(id);
        }
        outcome.updated_messages += 1;
        Ok(())
    }

    fn insert_new(
        &mut self,
        tx: &Transaction<'_>,
        mut record: MessageRecord,
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        let content = self.store_content(&mut record)?;
        record.settle_recipients(content.hash.is_some(), self.journal_addresses);
        if record.message_id.is_none() && record.keys.is_empty() {
            if let Some(hash) = &content.hash {
                record.keys.push(format!("content:{hash}"));
            }
        }
        let id =
            self.write_message_row(tx, None, &record, content.hash.as_deref(), content.preview)?;
        let time = record.sort_time().map(micros).unwrap_or(0);
        for key in &record.keys {
            tx.prepare_cached(
                "INSERT INTO message_keys (key, message, last_time) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET message = excluded.message, last_time = excluded.last_time",
            )?
            .execute(params![key, id, time])?;
        }
        insert_recipients(tx, id, &record.recipients)?;
        index_addresses(tx, id, &record, false)?;
        self.note_contacted_domains(tx, &record)?;
        let mut seen = std::collections::HashSet::new();
        let mut seq = 0;
        for d in &record.deliveries {
            if seen.insert(d.identity()) {
                insert_delivery(tx, id, seq, d)?;
                seq += 1;
                add_count(&mut outcome.new_deliveries, d.status, 1);
            }
        }
        insert_attachments(tx, id, &record.attachments)?;
        index_meta(tx, id, &record)?;
        index_body(tx, id, &record)?;
        self.touched.insert(id);
        outcome.new_messages += 1;
        Ok(())
    }

    /// Put the raw message (if any) into the blob store; returns its hash and a preview.
    fn store_content(&mut self, record: &mut MessageRecord) -> Result<StoredContent, StoreError> {
        let Some(raw) = record.raw.take() else {
            return Ok(StoredContent::default());
        };
        let ranges: Vec<(usize, usize)> = record
            .attachments
            .iter()
            .filter_map(|a| a.raw_range)
            .collect();
        let hash = self.blobs.put_message(&raw, &ranges)?;
        let preview = record.body_text.as_deref().map(|b| {
            b.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(PREVIEW_CHARS)
                .collect::<String>()
        });
        Ok(StoredContent {
            hash: Some(hash),
            preview,
        })
    }

    /// Remember the outside domains an outbound message went to, with the
    /// earliest time: what "first contact with a domain" asks.
    fn note_contacted_domains(
        &self,
        tx: &Transaction<'_>,
        r: &MessageRecord,
    ) -> Result<(), StoreError> {
        if r.direction(self.org) != Direction::Outbound {
            return Ok(());
        }
        let time = r.sort_time().map(micros).unwrap_or(0);
        let mut stmt = tx.prepare_cached(
            "INSERT INTO contacted_domains (domain, first_time) VALUES (?1, ?2)
             ON CONFLICT(domain) DO UPDATE SET first_time = excluded.first_time
             WHERE excluded.first_time < first_time",
        )?;
        for recipient in &r.recipients {
            if self.org.is_internal(&recipient.address) {
                continue;
            }
            if let Some(domain) = mailtrail_model::domain_of(&recipient.address) {
                stmt.execute(params![domain, time])?;
            }
        }
        Ok(())
    }

    fn write_message_row(
        &self,
        tx: &Transaction<'_>,
        id: Option<i64>,
        r: &MessageRecord,
        content_hash: Option<&str>,
        preview: Option<String>,
    ) -> Result<i64, StoreError> {
        let auth = if r.auth.is_empty() {
            None
        } else {
            serde_json::to_string(&r.auth).ok()
        };
        let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_string()));
        let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
        let mut values: Vec<Value> = vec![
            text(r.message_id.as_deref()),
            int(r.date.map(micros)),
            int(r.first_seen.map(micros)),
            Value::Integer(r.sort_time().map(micros).unwrap_or(0)),
            text(r.envelope_from.as_deref()),
            text(r.from.as_ref().map(|m| m.address.as_str())),
            text(r.from.as_ref().and_then(|m| m.display_name.as_deref())),
            text(r.reply_to.as_ref().map(|m| m.address.as_str())),
            text(r.reply_to.as_ref().and_then(|m| m.display_name.as_deref())),
            text(r.subject.as_deref()),
            int(r.size.and_then(|s| i64::try_from(s).ok())),
            Value::Text(r.direction(self.org).as_str().to_string()),
            Value::Integer(i64::from(!r.attachments.is_empty())),
            text(auth.as_deref()),
            text(r.client_ip.as_deref()),
            Value::Text(systems_of(r).join(" ")),
            text(content_hash),
            text(preview.as_deref()),
            Value::Integer(i64::from(r.body_text.is_some())),
            Value::Text(r.keys.join("\n")),
        ];
        let sql = match id {
            None => {
                "INSERT INTO messages (message_id, date, first_seen, sort_time, envelope_from,
                    from_addr, from_name, reply_to_addr, reply_to_name, subject, size, direction,
                    has_attachment, auth, client_ip, systems, content_hash, preview, body_indexed,
                    keys)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20)"
            }
            Some(id) => {
                values.push(Value::Integer(id));
                "UPDATE messages SET message_id = ?1, date = ?2, first_seen = ?3, sort_time = ?4,
                    envelope_from = ?5, from_addr = ?6, from_name = ?7, reply_to_addr = ?8,
                    reply_to_name = ?9, subject = ?10, size = ?11, direction = ?12,
                    has_attachment = ?13, auth = ?14, client_ip = ?15, systems = ?16,
                    content_hash = ?17, preview = coalesce(?18, preview),
                    body_indexed = max(body_indexed, ?19), keys = ?20
                 WHERE id = ?21"
            }
        };
        tx.prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(values.iter()))?;
        Ok(id.unwrap_or_else(|| tx.last_insert_rowid()))
    }
}

#[derive(Default)]
struct StoredContent {
    hash: Option<String>,
    preview: Option<String>,
}

fn mailbox(address: Option<String>, display_name: Option<String>) -> Option<Mailbox> {
    address.map(|address| Mailbox {
        address,
        display_name,
    })
}

/// Systems of a record: its own list plus every delivery's system, in first-seen order.
fn systems_of(r: &MessageRecord) -> Vec<String> {
    let mut systems: Vec<String> = Vec::new();
    for s in r
        .systems
        .iter()
        .chain(r.deliveries.iter().map(|d| &d.system))
    {
        if !s.is_empty() && !systems.contains(s) {
            systems.push(s.clone());
        }
    }
    systems
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Queue the batch's stored or changed messages for the rules (see
/// [`crate::alerts`]) in the batch's transaction: new messages, and new
/// facts about stored ones (a Bcc recipient from a journal report, the body
/// arriving after the log line).
fn queue_evaluations(tx: &Transaction<'_>, ids: &BTreeSet<i64>) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached("INSERT OR IGNORE INTO eval_pending (message) VALUES (?1)")?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

fn insert_recipients(
    tx: &Transaction<'_>,
    id: i64,
    recipients: &[Recipient],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO recipients (message, address, kind, display_name) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in recipients {
        stmt.execute(params![id, r.address, r.kind.as_str(), r.display_name])?;
    }
    Ok(())
}

/// What an `fts_addr` token stands for.
#[derive(Clone, Copy)]
pub(crate) enum AddressRole {
    /// The header or envelope sender.
    Sender,
    /// Any recipient (To, Cc, Bcc, envelope).
    Recipient,
    /// The client IP the message came from.
    ClientIp,
}

/// One `fts_addr` token: the role's letter, then the value's UTF-8 bytes in
/// hex as SQL's `hex()` writes them (migration 7 computes the same in SQL).
/// Only ASCII letters and digits, so FTS5's `ascii` tokenizer keeps it
/// whole; the letter is never a hex digit, so roles never collide.
fn push_address_token(out: &mut String, role: AddressRole, value: &str) {
    out.push(match role {
        AddressRole::Sender => 's',
        AddressRole::Recipient => 'r',
        AddressRole::ClientIp => 'i',
    });
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(value.len() * 2);
    for b in value.bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// [`push_address_token`] as a quoted FTS5 query term.
pub(crate) fn address_token(role: AddressRole, value: &str) -> String {
    let mut token = String::from("\"");
    push_address_token(&mut token, role, value);
    token.push('"');
    token
}

/// Index a message's senders, recipients and client IP in `fts_addr`
/// (replacing what was indexed for it).
fn index_addresses(
    tx: &Transaction<'_>,
    id: i64,
    r: &MessageRecord,
    replace: bool,
) -> Result<(), StoreError> {
    if replace {
        tx.prepare_cached("DELETE FROM fts_addr WHERE rowid = ?1")?
            .execute([id])?;
    }
    let mut tokens = String::new();
    let mut push = |role, value: &str| {
        if !tokens.is_empty() {
            tokens.push(' ');
        }
        push_address_token(&mut tokens, role, value);
    };
    let from = r.from.as_ref().map(|m| m.address.as_str());
    if let Some(from) = from {
        push(AddressRole::Sender, from);
    }
    if let Some(envelope) = r.envelope_from.as_deref().filter(|e| Some(*e) != from) {
        push(AddressRole::Sender, envelope);
    }
    let mut seen = BTreeSet::new();
    for rc in &r.recipients {
        if seen.insert(rc.address.as_str()) {
            push(AddressRole::Recipient, &rc.address);
        }
    }
    if let Some(ip) = r.client_ip.as_deref() {
        push(AddressRole::ClientIp, ip);
    }
    tx.prepare_cached("INSERT INTO fts_addr (rowid, tokens) VALUES (?1, ?2)")?
        .execute(params![id, tokens])?;
    Ok(())
}

/// Insert one delivery. Deliveries are de-duplicated by the caller against
/// what is stored ([`Delivery::identity`]), so no unique index is needed: the
/// table is clustered by message, which keeps inserts appends and loads one seek.
fn insert_delivery(
    tx: &Transaction<'_>,
    id: i64,
    seq: usize,
    d: &Delivery,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO deliveries (message, seq, time, recipient, status, detail, system,
            relay, client_ip, client_host, local_id, original_recipient)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        seq as i64,
        micros(d.time),
        d.recipient,
        d.status.as_str(),
        d.detail,
        d.system,
        d.relay,
        d.client_ip,
        d.client_host,
        d.local_id,
        d.original_recipient
    ])?;
    Ok(())
}

fn insert_attachments(
    tx: &Transaction<'_>,
    id: i64,
    attachments: &[Attachment],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO attachments (message, position, filename, content_type, size, blake3,
            encrypted, inner_names) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, a) in attachments.iter().enumerate() {
        let inner = if a.inner_names.is_empty() {
            None
        } else {
            serde_json::to_string(&a.inner_names).ok()
        };
        stmt.execute(params![
            id,
            i as i64,
            a.filename,
            a.content_type,
            i64::try_from(a.size).unwrap_or(i64::MAX),
            a.blake3,
            i64::from(a.encrypted),
            inner
        ])?;
    }
    Ok(())
}

fn index_body(tx: &Transaction<'_>, id: i64, r: &MessageRecord) -> Result<(), StoreError> {
    let Some(body) = r.body_text.as_deref().map(tokenize::index_text) else {
        return Ok(());
    };
    tx.prepare_cached("INSERT INTO fts_body (rowid, body) VALUES (?1, ?2)")?
        .execute(params![id, body])?;
    Ok(())
}

/// Index everything but the body: subject, attachment names, sender and
/// recipients. All of it is kept in the database, so the row can be
/// rewritten whenever a source adds to it.
fn index_meta(tx: &Transaction<'_>, id: i64, r: &MessageRecord) -> Result<(), StoreError> {
    let subject = r
        .subject
        .as_deref()
        .map(tokenize::index_text)
        .unwrap_or_default();
    let mut names = String::new();
    for a in &r.attachments {
        for name in a.filename.iter().chain(a.inner_names.iter()) {
            names.push(' ');
            tokenize::index_text_into(name, &mut names);
        }
    }
    let mut sender = String::new();
    if let Some(from) = &r.from {
        push_person(&mut sender, &from.address, from.display_name.as_deref());
    }
    if let Some(env) = &r.envelope_from {
        push_person(&mut sender, env, None);
    }
    let (mut to, mut cc, mut bcc, mut rcpt) =
        (String::new(), String::new(), String::new(), String::new());
    let mut addressed: BTreeSet<&str> = BTreeSet::new();
    for rc in &r.recipients {
        let column = match rc.kind {
            RecipientKind::To => &mut to,
            RecipientKind::Cc => &mut cc,
            RecipientKind::Bcc => &mut bcc,
            RecipientKind::Envelope => &mut rcpt,
        };
        push_person(column, &rc.address, rc.display_name.as_deref());
        addressed.insert(rc.address.as_str());
    }
    for d in &r.deliveries {
        for a in std::iter::once(&d.recipient).chain(d.original_recipient.iter()) {
            if !a.is_empty() && addressed.insert(a.as_str()) {
                push_person(&mut rcpt, a, None);
            }
        }
    }
    tx.prepare_cached(
        "INSERT INTO fts_meta (rowid, subject, filenames, sender, to_addr, cc_addr, bcc_addr,
            rcpt_addr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![id, subject, names, sender, to, cc, bcc, rcpt])?;
    Ok(())
}

fn push_person(out: &mut String, address: &str, display_name: Option<&str>) {
    // A token the query side can never produce (a private-use character is a
    // separator to our tokenizer, but a token character to FTS5's `ascii`)
    // keeps a phrase from matching across two people.
    out.push_str(" \u{E000} ");
    tokenize::index_text_into(address, out);
    if let Some(name) = display_name {
        out.push(' ');
        tokenize::index_text_into(name, out);
    }
}

/// Reconstruct the stored view of a message as a record (without raw content or body).
fn load_record(conn: &Connection, id: i64) -> Result<MessageRecord, StoreError> {
    let mut record = conn
        .prepare_cached(
            "SELECT message_id, date, first_seen, envelope_from, from_addr, from_name,
                reply_to_addr, reply_to_name, subject, size, auth, client_ip, systems, keys
             FROM messages WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(MessageRecord {
                keys: r
                    .get::<_, String>(13)?
                    .split('\n')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect(),
                message_id: r.get(0)?,
                date: r.get::<_, Option<i64>>(1)?.map(from_micros),
                first_seen: r.get::<_, Option<i64>>(2)?.map(from_micros),
                envelope_from: r.get(3)?,
                from: mailbox(r.get(4)?, r.get(5)?),
                reply_to: mailbox(r.get(6)?, r.get(7)?),
                subject: r.get(8)?,
                size: r
                    .get::<_, Option<i64>>(9)?
                    .and_then(|s| u64::try_from(s).ok()),
                auth: r
                    .get::<_, Option<String>>(10)?
                    .and_then(|a| serde_json::from_str::<AuthResults>(&a).ok())
                    .unwrap_or_default(),
                client_ip: r.get(11)?,
                systems: r
                    .get::<_, String>(12)?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                ..Default::default()
            })
        })?;
    record.recipients = load_recipients(conn, id)?;
    record.deliveries = load_deliveries(conn, id)?;
    record.attachments = load_attachments(conn, id)?;
    Ok(record)
}

fn delete_message(tx: &Transaction<'_>, id: i64, keys: &[String]) -> Result<(), StoreError> {
    for key in keys {
        tx.prepare_cached("DELETE FROM message_keys WHERE key = ?1 AND message = ?2")?
            .execute(params![key, id])?;
    }
    for sql in [
        "DELETE FROM recipients WHERE message = ?1",
        "DELETE FROM deliveries WHERE message = ?1",
        "DELETE FROM attachments WHERE message = ?1",
        "DELETE FROM fts_meta WHERE rowid = ?1",
        "DELETE FROM fts_body WHERE rowid = ?1",
        "DELETE FROM fts_addr WHERE rowid = ?1",
        "DELETE FROM messages WHERE id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([id])?;
    }
    Ok(())
}

/// The columns [`message_row`] reads, in its order.
const MESSAGE_COLUMNS: &str =
    "id, message_id, date, first_seen, direction, envelope_from, from_addr,
    from_name, reply_to_addr, reply_to_name, subject, size, auth, client_ip, systems,
    content_hash, preview";

/// A message row without its recipients, deliveries and attachments.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        message_id: r.get(1)?,
        date: r.get::<_, Option<i64>>(2)?.map(from_micros),
        first_seen: r.get::<_, Option<i64>>(3)?.map(from_micros),
        direction: r.get::<_, String>(4)?.parse().unwrap_or(Direction::Relayed),
        envelope_from: r.get(5)?,
        from: mailbox(r.get(6)?, r.get(7)?),
        reply_to: mailbox(r.get(8)?, r.get(9)?),
        recipients: Vec::new(),
        subject: r.get(10)?,
        size: r
            .get::<_, Option<i64>>(11)?
            .and_then(|s| u64::try_from(s).ok()),
        attachments: Vec::new(),
        auth: r
            .get::<_, Option<String>>(12)?
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        client_ip: r.get(13)?,
        systems: r
            .get::<_, String>(14)?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        deliveries: Vec::new(),
        content_hash: r.get(15)?,
        preview: r.get(16)?,
    })
}

fn recipient_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Recipient> {
    Ok(Recipient {
        address: r.get(at)?,
        kind: r
            .get::<_, String>(at + 1)?
            .parse()
            .unwrap_or(RecipientKind::Envelope),
        display_name: r.get(at + 2)?,
    })
}

fn sort_recipients(list: &mut [Recipient]) {
    list.sort_by(|a, b| (a.kind, &a.address).cmp(&(b.kind, &b.address)));
}

const DELIVERY_COLUMNS: &str = "time, recipient, status, detail, system, relay, client_ip,
    client_host, local_id, original_recipient";

fn delivery_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        time: from_micros(r.get(at)?),
        recipient: r.get(at + 1)?,
        status: r
            .get::<_, String>(at + 2)?
            .parse()
            .unwrap_or(DeliveryStatus::Failed),
        detail: r.get(at + 3)?,
        system: r.get(at + 4)?,
        relay: r.get(at + 5)?,
        client_ip: r.get(at + 6)?,
        client_host: r.get(at + 7)?,
        local_id: r.get(at + 8)?,
        original_recipient: r.get(at + 9)?,
    })
}

const ATTACHMENT_COLUMNS: &str = "filename, content_type, size, blake3, encrypted, inner_names";

fn attachment_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        filename: r.get(at)?,
        content_type: r.get(at + 1)?,
        size: u64::try_from(r.get::<_, i64>(at + 2)?).unwrap_or(0),
        blake3: r.get(at + 3)?,
        encrypted: r.get::<_, i64>(at + 4)? != 0,
        inner_names: r
            .get::<_, Option<String>>(at + 5)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        raw_range: None,
    })
}

/// Messages by number, complete, in the order asked (missing ones left
/// out): one query per table for the whole list instead of four per
/// message.
/// Which deliveries [`load_messages`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deliveries {
    All,
    /// Only those of messages that have no time of their own (no
    /// `first_seen`, no `Date:`), whose time is their first delivery's.
    OfUndated,
}

fn load_messages(
    conn: &Connection,
    ids: &[i64],
    deliveries: Deliveries,
) -> Result<Vec<StoredMessage>, StoreError> {
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut by_id: std::collections::HashMap<i64, StoredMessage> =
        std::collections::HashMap::with_capacity(ids.len());
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN (SELECT value FROM json_each(?1))"
        ))?;
        for m in stmt.query_map([&list], message_row)? {
            let m = m?;
            by_id.insert(m.id, m);
        }
    }
    {
        let mut stmt = conn.prepare_cached(
            "SELECT message, address, kind, display_name FROM recipients
             WHERE message IN (SELECT value FROM json_each(?1))",
        )?;
        let mut rows = stmt.query([&list])?;
        while let Some(r) = rows.next()? {
            if let Some(m) = by_id.get_mut(&r.get::<_, i64>(0)?) {
                m.recipients.push(recipient_row(r, 1)?);
            }
        }
    }
    let delivery_list = match deliveries {
        Deliveries::All => list.clone(),
        Deliveries::OfUndated => {
            let undated: Vec<i64> = by_id
                .values()
                .filter(|m| m.first_seen.is_none() && m.date.is_none())
                .map(|m| m.id)
                .collect();
            serde_json::to_string(&undated).map_err(|e| StoreError::Invalid(e.to_string()))?
        }
    };
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT message, {DELIVERY_COLUMNS} FROM deliveries
             WHERE message IN (SELECT value FROM json_each(?1)) ORDER BY message, time, seq"
        ))?;
        let mut rows = stmt.query([&delivery_list])?;
        while let Some(r) = rows.next()? {
            if let Some(m) = by_id.get_mut(&r.get::<_, i64>(0)?) {
                m.deliveries.push(delivery_row(r, 1)?);
            }
        }
    }
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT message, {ATTACHMENT_COLUMNS} FROM attachments
             WHERE message IN (SELECT value FROM json_each(?1)) ORDER BY message, position"
        ))?;
        let mut rows = stmt.query([&list])?;
        while let Some(r) = rows.next()? {
            if let Some(m) = by_id.get_mut(&r.get::<_, i64>(0)?) {
                m.attachments.push(attachment_row(r, 1)?);
            }
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(mut m) = by_id.remove(id) {
            sort_recipients(&mut m.recipients);
            out.push(m);
        }
    }
    Ok(out)
}

fn load_recipients(conn: &Connection, id: i64) -> Result<Vec<Recipient>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT address, kind, display_name FROM recipients WHERE message = ?1")?;
    let mut out = stmt
        .query_map([id], |r| recipient_row(r, 0))?
        .collect::<Result<Vec<_>, _>>()?;
    sort_recipients(&mut out);
    Ok(out)
}

fn load_deliveries(conn: &Connection, id: i64) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE message = ?1 ORDER BY time, seq"
    ))?;
    let rows = stmt
        .query_map([id], |r| delivery_row(r, 0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn load_attachments(conn: &Connection, id: i64) -> Result<Vec<Attachment>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE message = ?1 ORDER BY position"
    ))?;
    let rows = stmt
        .query_map([id], |r| attachment_row(r, 0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A compiled WHERE clause over `messages m` with its parameters.
#[derive(Default)]
struct Compiled {
    sql: String,
    params: Vec<Value>,
    /// Text terms must not drive the plan: walk messages in time order instead.
    scan_in_order: bool,
}

fn compile(conn: &Connection, expr: &Expr, scan_in_order: bool) -> Result<Compiled, StoreError> {
    let mut c = Compiled {
        scan_in_order,
        ..Compiled::default()
    };
    compile_into(conn, expr, &mut c)?;
    Ok(c)
}

fn compile_into(conn: &Connection, expr: &Expr, c: &mut Compiled) -> Result<(), StoreError> {
    match expr {
        Expr::And(items) | Expr::Or(items) if items.is_empty() => c.sql.push('1'),
        Expr::And(items) | Expr::Or(items) => {
            let op = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            c.sql.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    c.sql.push_str(op);
                }
                compile_into(conn, item, c)?;
            }
            c.sql.push(')');
        }
        Expr::Not(inner) => {
            c.sql.push_str("(NOT ");
            compile_into(conn, inner, c)?;
            c.sql.push(')');
        }
        Expr::Term(term) => compile_term(conn, term, c)?,
    }
    Ok(())
}

fn param(c: &mut Compiled, v: Value) -> String {
    c.params.push(v);
    format!("?{}", c.params.len())
}

/// The full-text queries that find `text` in `field`: one `SELECT rowid`
/// per table, each with its match expression. Text with nothing to search
/// for (punctuation only) is an error, not a match-everything.
fn text_targets(field: TextField, text: &str) -> Result<Vec<(&'static str, String)>, StoreError> {
    let phrase = tokenize::match_expression(text).ok_or_else(|| {
        StoreError::Invalid(format!(
            "nothing searchable in {text:?}: give at least one letter, digit or Japanese character"
        ))
    })?;
    // (table, column filter); an empty filter searches every column of the table.
    let targets: &[(&'static str, &str)] = match field {
        TextField::Any => &[("fts_meta", ""), ("fts_body", "")],
        TextField::Subject => &[("fts_meta", "subject")],
        TextField::Body => &[("fts_body", "")],
        TextField::Filename => &[("fts_meta", "filenames")],
        TextField::From => &[("fts_meta", "sender")],
        TextField::To => &[("fts_meta", "{to_addr rcpt_addr}")],
        TextField::Cc => &[("fts_meta", "cc_addr")],
        TextField::Bcc => &[("fts_meta", "bcc_addr")],
    };
    Ok(targets
        .iter()
        .map(|(table, cols)| {
            let expr = if cols.is_empty() {
                phrase.clone()
            } else {
                format!("{cols} : {phrase}")
            };
            (*table, expr)
        })
        .collect())
}

/// The rowids (message ids) whose indexed text matches, as a subquery over
/// the full-text tables.
fn text_rowids(field: TextField, text: &str, c: &mut Compiled) -> Result<String, StoreError> {
    let mut parts = Vec::new();
    for (table, expr) in text_targets(field, text)? {
        let p = param(c, Value::Text(expr));
        parts.push(format!("SELECT rowid FROM {table} WHERE {table} MATCH {p}"));
    }
    Ok(parts.join(" UNION "))
}

/// The query's one text term, when that is all it is (`invoice`,
/// `subject:社外秘`, `from:taro@example.co.jp`): answered by
/// [`SqliteStore::text_matches`].
fn lone_text(query: &Expr) -> Option<(TextField, &str)> {
    let mut lone = query;
    while let Expr::And(items) | Expr::Or(items) = lone {
        match items.as_slice() {
            [only] => lone = only,
            _ => break,
        }
    }
    match lone {
        Expr::Term(Term::Text { field, text }) => Some((*field, text)),
        _ => None,
    }
}

/// Merge ascending id lists into one, each id once.
fn merge_ascending(lists: Vec<Vec<i64>>) -> Vec<i64> {
    let mut lists = lists.into_iter();
    let Some(mut merged) = lists.next() else {
        return Vec::new();
    };
    for list in lists {
        let mut out = Vec::with_capacity(merged.len() + list.len());
        let (mut a, mut b) = (merged.iter().peekable(), list.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => {
                    if x <= y {
                        out.push(x);
                        a.next();
                        if x == y {
                            b.next();
                        }
                    } else {
                        out.push(y);
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    out.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        merged = out;
    }
    merged
}

/// A complete mail address (`local@domain.tld`), normalised as stored; a
/// partial one (`taro@`, `example.co.jp`, a name) is `None`.
fn complete_address(text: &str) -> Option<String> {
    let address = mailtrail_model::normalize_address(text)?;
    let (local, domain) = address.split_once('@')?;
    let plain = |s: &str| !s.is_empty() && !s.contains(['@', '"', '(', ')', ',', ';', '<', '>']);
    (plain(local) && plain(domain) && domain.contains('.') && !domain.ends_with('.'))
        .then_some(address)
}

fn compile_term(conn: &Connection, term: &Term, c: &mut Compiled) -> Result<(), StoreError> {
    match term {
        Term::Text {
            field: TextField::From,
            text,
        } if complete_address(text).is_some() => {
            // The header sender or the envelope sender, exactly: by its
            // `fts_addr` token, or compared on each message when messages
            // are walked newest first. Never NULL either way (`IS`, not `=`:
            // a missing sender is "not this address"), so that `-from:`
            // excludes exactly what `from:` finds.
            let address = complete_address(text).unwrap_or_default();
            if c.scan_in_order {
                let p = param(c, Value::Text(address));
                c.sql
                    .push_str(&format!("(m.from_addr IS {p} OR m.envelope_from IS {p})"));
            } else {
                let token = param(c, Value::Text(address_token(AddressRole::Sender, &address)));
                c.sql.push_str(&format!(
                    "m.id IN (SELECT rowid FROM fts_addr WHERE fts_addr MATCH {token})"
                ));
            }
        }
        Term::Text { field, text } => {
            let rowids = text_rowids(*field, text, c)?;
            // `+` keeps SQLite from driving the query by the match set, so
            // that it walks messages newest first and stops at the page's end
            // (chosen when matches are common; see `search`).
            let unary = if c.scan_in_order { "+" } else { "" };
            c.sql.push_str(&format!("{unary}m.id IN ({rowids})"));
        }
        Term::HasAttachment => c.sql.push_str("m.has_attachment = 1"),
        Term::Direction(d) => {
            let p = param(c, Value::Text(d.as_str().into()));
            c.sql.push_str(&format!("m.direction = {p}"));
        }
        Term::Status(s) => {
            let p = param(c, Value::Text(s.as_str().into()));
            c.sql.push_str(&format!(
                "m.id IN (SELECT message FROM deliveries WHERE status = {p})"
            ));
        }
        Term::System(name) => {
            let exact = param(c, Value::Text(format!(" {name} ")));
            let prefix = param(c, Value::Text(format!(" {name}@")));
            c.sql.push_str(&format!(
                "(instr(' ' || m.systems || ' ', {exact}) > 0 OR instr(' ' || m.systems, {prefix}) > 0)"
            ));
        }
        Term::After(t) => {
            let p = param(c, Value::Integer(micros(*t)));
            c.sql.push_str(&format!("m.sort_time >= {p}"));
        }
        Term::Before(t) => {
            let p = param(c, Value::Integer(micros(*t)));
            c.sql.push_str(&format!("m.sort_time < {p}"));
        }
        Term::Larger(n) => {
            let p = param(c, Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX)));
            c.sql.push_str(&format!("m.size > {p}"));
        }
        Term::Smaller(n) => {
            let p = param(c, Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX)));
            c.sql.push_str(&format!("m.size < {p}"));
        }
        Term::Employee(value) => {
            let address = mailtrail_model::normalize_address(value).unwrap_or_default();
            let people = "SELECT id FROM people WHERE source_id = ?1 OR instr(name_key, ?2) > 0 \
                 OR id IN (SELECT person FROM person_addresses WHERE address = ?3)";
            let addresses = people_addresses(
                conn,
                people,
                &[
                    Value::Text(value.clone()),
                    Value::Text(directory::compact(value)),
                    Value::Text(address),
                ],
            )?;
            push_people_messages(c, &addresses)?;
        }
        Term::Department(value) => {
            let path = value
                .split('/')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let people = "SELECT id FROM people WHERE instr('/' || department || '/', ?1) > 0";
            let addresses = people_addresses(conn, people, &[Value::Text(format!("/{path}/"))])?;
            push_people_messages(c, &addresses)?;
        }
        Term::Device(host) => {
            let h = param(c, Value::Text(host.clone()));
            let reporter = param(c, Value::Text(format!("@{host} ")));
            // The device's addresses, each through its `fts_addr` token
            // (`i` and the address in hex, see `push_address_token`), in
            // the time it held the address.
            c.sql.push_str(&format!(
                "(m.id IN (SELECT dm.id FROM devices d \
                   JOIN device_addresses da ON da.device = d.id \
                   JOIN fts_addr f ON fts_addr MATCH ('\"i' || hex(da.ip) || '\"') \
                   JOIN messages dm ON dm.id = f.rowid \
                     AND dm.sort_time >= coalesce(da.valid_from, -9223372036854775808) \
                     AND dm.sort_time < coalesce(da.valid_until, 9223372036854775807) \
                   WHERE d.hostname = {h} AND da.ip IS NOT NULL AND dm.client_ip = da.ip) \
                 OR instr(m.systems || ' ', {reporter}) > 0)"
            ));
        }
    }
    Ok(())
}

/// The addresses the directory lists now for the people `people` (a query of
/// `people.id` over `params`), looked up before the query runs: the
/// recipients side is a full-text match whose tokens are built from them
/// ([`push_people_messages`]).
fn people_addresses(
    conn: &Connection,
    people: &str,
    params: &[Value],
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT address FROM person_addresses WHERE person IN ({people}) ORDER BY 1"
    );
    let addresses = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(addresses)
}

/// Messages sent or received at `addresses` (a person's or a department's):
/// by their `fts_addr` tokens, one sender and one recipient token per
/// address (see [`push_address_token`]).
fn push_people_messages(c: &mut Compiled, addresses: &[String]) -> Result<(), StoreError> {
    if addresses.is_empty() {
        // Nobody (or nobody with an address): matches no message, and its
        // negation every message.
        c.sql.push('0');
        return Ok(());
    }
    if c.scan_in_order {
        let list = serde_json::to_string(addresses)
            .map_err(|e| StoreError::Invalid(format!("address list: {e}")))?;
        let list = param(c, Value::Text(list));
        let set = format!("(SELECT value FROM json_each({list}))");
        // Many matches (a large department): messages are walked newest
        // first until the page is full, so test each one directly instead
        // of collecting every match first. Never NULL (see below).
        c.sql.push_str(&format!(
            "(m.from_addr IS NOT NULL AND m.from_addr IN {set} \
              OR m.envelope_from IS NOT NULL AND m.envelope_from IN {set} \
              OR EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.address IN {set}))"
        ));
        return Ok(());
    }
    // One full-text query per address, joined: with hundreds of addresses
    // this reads each token's list once (a department of 600 people: 0.2 s
    // at a million messages), where one query `a OR b OR …` re-examined
    // every list at every step (0.4 s; 4.6 s for 2,000 people).
    let tokens: Vec<String> = addresses
        .iter()
        .flat_map(|address| {
            [
                address_token(AddressRole::Sender, address),
                address_token(AddressRole::Recipient, address),
            ]
        })
        .collect();
    let tokens = serde_json::to_string(&tokens)
        .map_err(|e| StoreError::Invalid(format!("address list: {e}")))?;
    let tokens = param(c, Value::Text(tokens));
    // One `m.id IN (…)`, never NULL, so that `-employee:` excludes exactly
    // what `employee:` finds (a log-only message has no header sender).
    c.sql.push_str(&format!(
        "m.id IN (SELECT f.rowid FROM json_each({tokens}) t, fts_addr f WHERE fts_addr MATCH t.value)"
    ));
    Ok(())
}

impl Store for SqliteStore {
    fn write_batch(
        &mut self,
        records: Vec<MessageRecord>,
        rejects: Vec<Reject>,
    ) -> Result<BatchOutcome, StoreError> {
        let mut outcome = BatchOutcome::default();
        let now = micros(Utc::now());
        // IMMEDIATE, like every write here: the batch reads (lookups) before
        // it writes, and under `mailtrail serve` the console's connection
        // writes audit entries and sessions meanwhile; a deferred
        // transaction would fail with "database is locked" instead of
        // waiting its turn.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut writer = Writer {
            blobs: &mut self.blobs,
            org: &self.org,
            journal_addresses: &self.journal_addresses,
            quarantine_dir: &self.quarantine_dir,
            touched: BTreeSet::new(),
        };
        for record in records {
            writer.upsert(&tx, record, &mut outcome)?;
        }
        queue_evaluations(&tx, &writer.touched)?;
        for reject in &rejects {
            if writer.write_reject(&tx, reject, now)? {
                outcome.new_rejects += 1;
            }
        }
        if self.durable {
            writer.blobs.sync()?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.blobs.sync_all()?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        Ok(())
    }

    fn matching_ids(&self, query: &Expr) -> Result<Vec<i64>, StoreError> {
        let c = compile(&self.conn, query, false)?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT m.id FROM messages m WHERE {} ORDER BY m.id",
            c.sql
        ))?;
        let ids = stmt
            .query_map(rusqlite::params_from_iter(c.params.iter()), |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    fn count(&self, query: &Expr) -> Result<u64, StoreError> {
        // A lone text term is counted on the index alone: every indexed rowid
        // is a message (both are written in one transaction), so the message
        // rows need not be visited.
        if let Some((field, text)) = lone_text(query) {
            return Ok(self.text_matches(field, text)?.len() as u64);
        }
        let c = compile(&self.conn, query, false)?;
        let sql = format!("SELECT count(*) FROM messages m WHERE {}", c.sql);
        let n: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(c.params.iter()), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn search(&self, query: &Expr, page: Page) -> Result<Vec<StoredMessage>, StoreError> {
        self.search_planned(query, page, None)
    }

    fn search_counted(
        &self,
        query: &Expr,
        page: Page,
        count: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.search_planned(query, page, Some(count))
    }

    /// In one read transaction: one snapshot for both, so a lone word's
    /// list read for the count is the page's too (its memo is keyed by
    /// `data_version`, which every other connection's commit — the
    /// console's audit entries among them — moves between two
    /// statements, but not within a transaction).
    fn count_and_search(
        &self,
        query: &Expr,
        page: Page,
    ) -> Result<(u64, Vec<StoredMessage>), StoreError> {
        let snapshot = self.conn.unchecked_transaction()?;
        let count = self.count(query)?;
        let found = self.search_planned(query, page, Some(count))?;
        snapshot.commit()?;
        Ok((count, found))
    }

    fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        self.load_message(id)
    }

    fn messages(&self, ids: &[i64]) -> Result<Vec<StoredMessage>, StoreError> {
        load_messages(&self.conn, ids, Deliveries::All)
    }

    fn message_by_message_id(&self, message_id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE message_id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.load_message(id),
            None => Ok(None),
        }
    }

    fn raw_message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.blobs.get_message(content_hash)
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let messages: i64 = self
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
        let mut deliveries = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT status, count(*) FROM deliveries GROUP BY status")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (status, n) = row?;
            if let Ok(status) = status.parse::<DeliveryStatus>() {
                add_count(&mut deliveries, status, u64::try_from(n).unwrap_or(0));
            }
        }
        let mut by_direction = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT direction, count(*) FROM messages GROUP BY direction ORDER BY 1")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (d, n) = row?;
            if let Ok(d) = d.parse::<Direction>() {
                by_direction.push((d, u64::try_from(n).unwrap_or(0)));
            }
        }
        let mut by_system = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT system, count(DISTINCT message) FROM deliveries GROUP BY system ORDER BY 2 DESC, 1",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (s, n) = row?;
            by_system.push((s, u64::try_from(n).unwrap_or(0)));
        }
        let rejects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM rejects", [], |r| r.get(0))?;
        Ok(Stats {
            messages: u64::try_from(messages).unwrap_or(0),
            deliveries,
            by_direction,
            by_system,
            rejects: u64::try_from(rejects).unwrap_or(0),
            blobs: self.blobs.count(),
        })
    }

    fn attachment_messages(
        &self,
        blake3: &str,
        page: Page,
    ) -> Result<(u64, Vec<StoredMessage>), StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(DISTINCT message) FROM attachments WHERE blake3 = ?1")?
            .query_row([blake3], |r| r.get(0))?;
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT m.id FROM messages m
                 WHERE m.id IN (SELECT message FROM attachments WHERE blake3 = ?1)
                 ORDER BY m.sort_time DESC, m.id DESC LIMIT ?2 OFFSET ?3",
            )?
            .query_map(
                params![
                    blake3,
                    i64::from(page.limit),
                    i64::try_from(page.offset).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.load_message(id)? {
                out.push(m);
            }
        }
        Ok((u64::try_from(count).unwrap_or(0), out))
    }

    fn systems(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT systems FROM messages WHERE systems != ''")?;
        let mut names = BTreeSet::new();
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            for name in row?.split_whitespace() {
                names.insert(name.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT source, position, code, reason, file FROM rejects ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::from(limit)], |r| {
            Ok(QuarantineEntry {
                source: r.get(0)?,
                position: r.get(1)?,
                code: r.get(2)?,
                reason: r.get(3)?,
                file: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn dashboard(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        tz: chrono_tz::Tz,
        top: u32,
    ) -> Result<Dashboard, StoreError> {
        if to < from || (to - from).num_days() > MAX_DASHBOARD_DAYS {
            return Err(StoreError::Invalid(format!(
                "a dashboard period runs forwards over at most {MAX_DASHBOARD_DAYS} days"
            )));
        }
        let bound = |day: Option<NaiveDate>| {
            day.and_then(|d| query::day_start(d, tz))
                .map(micros)
                .ok_or_else(|| StoreError::Invalid("a day outside the calendar".into()))
        };
        let (lo, hi) = (bound(Some(from))?, bound(to.succ_opt())?);
        let mut out = Dashboard::default();

        // Per day and direction: one range scan of messages_sort per day.
        let mut per_day = self.conn.prepare_cached(
            "SELECT direction, count(*) FROM messages m
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2 GROUP BY direction ORDER BY 1",
        )?;
        let mut day = from;
        while day <= to {
            let next = day.succ_opt();
            let (a, b) = (bound(Some(day))?, bound(next)?);
            let mut counts = Vec::new();
            for row in per_day.query_map(params![a, b], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (d, n) = row?;
                if let Ok(d) = d.parse::<Direction>() {
                    let n = u64::try_from(n).unwrap_or(0);
                    counts.push((d, n));
                    match out.by_direction.iter_mut().find(|(x, _)| *x == d) {
                        Some((_, total)) => *total += n,
                        None => out.by_direction.push((d, n)),
                    }
                    out.total += n;
                }
            }
            out.days.push((day, counts));
            match next {
                Some(n) => day = n,
                None => break,
            }
        }
        out.by_direction
            .sort_by_key(|(d, _)| Direction::ALL.iter().position(|x| x == d));

        let limit = i64::from(top);
        let wanted = usize::try_from(top).unwrap_or(usize::MAX);
        // The parties, domains and delivery states of the period in one
        // pass over its messages, recipients and deliveries, counted here.
        // (One GROUP BY per figure re-read the period and sorted its rows
        // each time: ~1.9 s for 30 days of a million-message store.) Each
        // figure counts messages, as its search does: `from:` the header
        // or envelope sender, `to:`/`cc:`/`bcc:` any recipient or delivery
        // recipient, `status:` any delivery's state.
        let mut tally = PeriodTally::default();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT m.id, m.from_addr, m.envelope_from FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2",
            )?;
            let mut rows = stmt.query(params![lo, hi])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                for column in [1, 2] {
                    if let Some(address) = row.get_ref(column)?.as_str_or_null().ok().flatten() {
                        tally.sender(id, address);
                    }
                }
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT r.message, r.address FROM messages m JOIN recipients r ON r.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2",
            )?;
            let mut rows = stmt.query(params![lo, hi])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                if let Ok(address) = row.get_ref(1)?.as_str() {
                    tally.recipient(id, address);
                }
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT d.message, d.recipient, d.status FROM messages m
                 JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2",
            )?;
            let mut rows = stmt.query(params![lo, hi])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let (Ok(address), Ok(status)) =
                    (row.get_ref(1)?.as_str(), row.get_ref(2)?.as_str())
                else {
                    continue;
                };
                tally.delivery(id, address, status);
            }
        }
        out.top_senders = PeriodTally::ranked(&mut tally.senders, wanted);
        out.top_recipients = PeriodTally::ranked(&mut tally.recipients, wanted);
        // Every party's domain, most mail first; the organisation's own are
        // skipped (OrgDomains decides, subdomains included).
        if !self.org.is_empty() {
            out.top_domains = PeriodTally::ranked(&mut tally.domains, usize::MAX)
                .into_iter()
                .filter(|(domain, _)| !self.org.is_internal(&format!("x@{domain}")))
                .take(wanted)
                .collect();
        }

        let mut stmt = self.conn.prepare_cached(
            "SELECT a.message, a.filename, a.content_type, a.size, a.blake3
             FROM messages m JOIN attachments a ON a.message = m.id
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2
             ORDER BY a.size DESC, a.message DESC, a.position LIMIT ?3",
        )?;
        for row in stmt.query_map(params![lo, hi, limit], |r| {
            Ok(LargeAttachment {
                message: r.get(0)?,
                filename: r.get(1)?,
                content_type: r.get(2)?,
                size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                blake3: r.get(4)?,
            })
        })? {
            out.largest_attachments.push(row?);
        }

        // What `status:X` searches: messages with some delivery of status X.
        let by_status: Vec<(DeliveryStatus, u64)> = PeriodTally::counted(&mut tally.statuses)
            .into_iter()
            .filter_map(|(status, n)| Some((status.parse().ok()?, n)))
            .collect();
        out.failures = FAILURE_STATUSES
            .iter()
            .map(|s| {
                let n = by_status
                    .iter()
                    .find(|(x, _)| x == s)
                    .map_or(0, |(_, n)| *n);
                (*s, n)
            })
            .collect();
        out.failing_recipients = PeriodTally::ranked(&mut tally.failing_recipients, wanted);
        out.failing_domains = PeriodTally::ranked(&mut tally.failing_domains, wanted);
        Ok(out)
    }
}

/// The messages each key (an address, a domain, a state) appears in.
type IdsByKey = std::collections::HashMap<String, Vec<i64>>;

/// The dashboard's counts of one period: for each key, the messages it
/// appears in. Ids are pushed as rows come (a message's rows are adjacent
/// within each query, so repeats there are skipped at once) and made
/// distinct once at the end: a set per key cost more than the queries.
#[derive(Default)]
struct PeriodTally {
    senders: IdsByKey,
    recipients: IdsByKey,
    domains: IdsByKey,
    statuses: IdsByKey,
    failing_recipients: IdsByKey,
    failing_domains: IdsByKey,
}

impl PeriodTally {
    fn note(map: &mut IdsByKey, key: &str, id: i64) {
        match map.get_mut(key) {
            Some(ids) => {
                if ids.last() != Some(&id) {
                    ids.push(id);
                }
            }
            None => {
                map.insert(key.to_string(), vec![id]);
            }
        }
    }

    /// The part after the first `@`, ASCII lower-cased (as SQL's `lower`).
    fn domain(address: &str) -> Option<String> {
        let (_, domain) = address.split_once('@')?;
        Some(domain.to_ascii_lowercase())
    }

    fn party_domain(&mut self, id: i64, address: &str) {
        if let Some(domain) = Self::domain(address).filter(|d| !d.is_empty()) {
            Self::note(&mut self.domains, &domain, id);
        }
    }

    fn sender(&mut self, id: i64, address: &str) {
        if !address.is_empty() {
            Self::note(&mut self.senders, address, id);
        }
        self.party_domain(id, address);
    }

    fn recipient(&mut self, id: i64, address: &str) {
        if !address.is_empty() {
            Self::note(&mut self.recipients, address, id);
        }
        self.party_domain(id, address);
    }

    fn delivery(&mut self, id: i64, recipient: &str, status: &str) {
        self.recipient(id, recipient);
        Self::note(&mut self.statuses, status, id);
        if FINAL_FAILURES.iter().any(|s| s.as_str() == status) {
            if !recipient.is_empty() {
                Self::note(&mut self.failing_recipients, recipient, id);
            }
            if let Some(domain) = Self::domain(recipient) {
                Self::note(&mut self.failing_domains, &domain, id);
            }
        }
    }

    /// Each key with the number of distinct messages it appears in.
    fn counted(map: &mut IdsByKey) -> Vec<(String, u64)> {
        map.drain()
            .map(|(key, mut ids)| {
                ids.sort_unstable();
                ids.dedup();
                (key, ids.len() as u64)
            })
            .collect()
    }

    /// The `n` keys in most messages, ties by key.
    fn ranked(map: &mut IdsByKey, n: usize) -> Vec<(String, u64)> {
        let mut list = Self::counted(map);
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(n);
        list
    }
}

impl ConsoleStore for SqliteStore {
    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, password_hash, role, disabled, created FROM users WHERE name = ?1",
            )?
            .query_row([name], user_row)
            .optional()?)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, password_hash, role, disabled, created FROM users ORDER BY name",
        )?;
        let rows = stmt.query_map([], user_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO users (name, password_hash, role, disabled, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash,
                     role = excluded.role, disabled = excluded.disabled",
            )?
            .execute(params![
                user.name,
                user.password_hash,
                user.role.as_str(),
                i64::from(user.disabled),
                micros(user.created)
            ])?;
        Ok(())
    }

    fn create_session(&mut self, session: &Session) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, user, csrf, created, expires, ip)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                session.token_hash,
                session.user,
                session.csrf,
                micros(session.created),
                micros(session.expires),
                session.ip
            ])?;
        Ok(())
    }

    fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT token_hash, user, csrf, created, expires, ip FROM sessions
                 WHERE token_hash = ?1 AND expires > ?2",
            )?
            .query_row(params![token_hash, micros(now)], |r| {
                Ok(Session {
                    token_hash: r.get(0)?,
                    user: r.get(1)?,
                    csrf: r.get(2)?,
                    created: from_micros(r.get(3)?),
                    expires: from_micros(r.get(4)?),
                    ip: r.get(5)?,
                })
            })
            .optional()?)
    }

    fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(())
    }

    fn delete_sessions(
        &mut self,
        expired_at: DateTime<Utc>,
        of_user: Option<&str>,
    ) -> Result<u64, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE expires <= ?1 OR user = ?2")?
            .execute(params![micros(expired_at), of_user])?;
        Ok(n as u64)
    }

    fn audit_all(&mut self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // IMMEDIATE: the write lock is taken before the chain's last entry
        // is read. A deferred transaction would start as a reader and fail
        // at once with "database is locked" (no busy wait: SQLite refuses to
        // upgrade a snapshot another writer has moved past) whenever any
        // other connection committed in between.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (mut last_id, mut previous): (i64, String) = tx
            .prepare_cached("SELECT id, chain FROM audit_log ORDER BY id DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, String::new()));
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_log (id, time, user, ip, action, target, detail, chain)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for entry in entries {
                let id = last_id + 1;
                let chain = chain_hash(&previous, id, entry);
                insert.execute(params![
                    id,
                    micros(entry.time),
                    entry.user,
                    entry.ip,
                    entry.action,
                    entry.target,
                    entry.detail,
                    chain
                ])?;
                last_id = id;
                previous = chain;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn audit_log(&self, filter: &AuditFilter, page: Page) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from(
            "SELECT id, time, user, ip, action, target, detail FROM audit_log WHERE 1 = 1",
        );
        let mut values: Vec<Value> = Vec::new();
        if let Some(user) = &filter.user {
            values.push(Value::Text(user.clone()));
            sql.push_str(&format!(" AND user = ?{}", values.len()));
        }
        if let Some(action) = &filter.action {
            values.push(Value::Text(action.clone()));
            sql.push_str(&format!(" AND action = ?{}", values.len()));
        }
        if let Some(text) = &filter.text {
            values.push(Value::Text(text.clone()));
            let n = values.len();
            sql.push_str(&format!(
                " AND (instr(coalesce(target, ''), ?{n}) > 0 OR instr(coalesce(detail, ''), ?{n}) > 0)"
            ));
        }
        if let Some(after) = filter.after {
            values.push(Value::Integer(micros(after)));
            sql.push_str(&format!(" AND time >= ?{}", values.len()));
        }
        if let Some(before) = filter.before {
            values.push(Value::Integer(micros(before)));
            sql.push_str(&format!(" AND time < ?{}", values.len()));
        }
        values.push(Value::Integer(i64::from(page.limit)));
        values.push(Value::Integer(
            i64::try_from(page.offset).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
            values.len() - 1,
            values.len()
        ));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values.iter()), |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                time: from_micros(r.get(1)?),
                user: r.get(2)?,
                ip: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn verify_audit_chain(&self) -> Result<Option<ChainBreak>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, time, user, ip, action, target, detail, chain FROM audit_log ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let mut previous = String::new();
        let mut expected_id = 1;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            if id != expected_id {
                return Ok(Some(ChainBreak {
                    id,
                    reason: format!("entry {expected_id} is missing"),
                }));
            }
            let entry = NewAuditEntry {
                time: from_micros(r.get(1)?),
                user: r.get(2)?,
                ip: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                detail: r.get(6)?,
            };
            let stored: String = r.get(7)?;
            if chain_hash(&previous, id, &entry) != stored {
                return Ok(Some(ChainBreak {
                    id,
                    reason: "the entry was changed after it was written".into(),
                }));
            }
            previous = stored;
            expected_id += 1;
        }
        Ok(None)
    }

    fn create_api_token(&mut self, token: &ApiToken) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO api_tokens (name, token_hash, role, created, last_used, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![
                token.name,
                token.token_hash,
                token.role.as_str(),
                micros(token.created),
                token.last_used.map(micros),
                token.revoked.map(micros),
            ])?;
        Ok(inserted == 1)
    }

    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, token_hash, role, created, last_used, revoked FROM api_tokens ORDER BY name",
        )?;
        let rows = stmt.query_map([], api_token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn api_token(
        &mut self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT name, token_hash, role, created, last_used, revoked FROM api_tokens
                 WHERE token_hash = ?1 AND revoked IS NULL",
            )?
            .query_row([token_hash], api_token_row)
            .optional()?;
        if let Some(token) = &found {
            // Minute resolution: a script's every request does not write.
            let stale = token
                .last_used
                .is_none_or(|t| now.signed_duration_since(t).num_seconds() >= 60);
            if stale {
                self.conn
                    .prepare_cached("UPDATE api_tokens SET last_used = ?2 WHERE name = ?1")?
                    .execute(params![token.name, micros(now)])?;
            }
        }
        Ok(found)
    }

    fn revoke_api_token(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE api_tokens SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
            )?
            .execute(params![name, micros(now)])?;
        Ok(changed == 1)
    }
}

fn api_token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    let role: String = r.get(2)?;
    Ok(ApiToken {
        name: r.get(0)?,
        token_hash: r.get(1)?,
        // An unknown role (a newer build's) is the least privilege.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created: from_micros(r.get(3)?),
        last_used: r.get::<_, Option<i64>>(4)?.map(from_micros),
        revoked: r.get::<_, Option<i64>>(5)?.map(from_micros),
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: r.get::<_, i64>(3)? != 0,
        created: from_micros(r.get(4)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection left inside a transaction is brought out of it (so a
    /// pool can lend it again); one outside stays as it is.
    #[test]
    fn end_transaction_rolls_back_what_was_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        assert!(store.end_transaction());
        store.conn.execute_batch("BEGIN").unwrap();
        store
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert!(!store.conn.is_autocommit());
        assert!(store.end_transaction());
        assert!(store.conn.is_autocommit());
        // A read snapshot can be taken again.
        let q = crate::query::parse(
            "x",
            &crate::query::QueryContext {
                now: Utc::now(),
                timezone: chrono_tz::Asia::Tokyo,
            },
        )
        .unwrap();
        assert_eq!(store.count_and_search(&q, Page::default()).unwrap().0, 0);
    }
}
