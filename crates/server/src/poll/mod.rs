//! Cloud pollers: the sources of `mailtrail serve` that fetch mail logs from
//! APIs rather than receive them.
//!
//! | poller | API | records |
//! |---|---|---|
//! | `m365-traces` ([`graph`]) | Microsoft Graph `admin/exchange/tracing/messageTraces` (+ `getDetailsByRecipient`) | one per message trace row, decoded by [`mailtrail_ingest::m365`] |
//! | `m365-audit` ([`o365`]) | Office 365 Management Activity API (`Audit.Exchange`, `DLP.All`) | sends, mailbox items, DLP matches, decoded by [`mailtrail_ingest::o365audit`] |
//! | `gmail` ([`gmail`]) | Google Workspace Admin SDK Reports API, `applications/gmail` | Gmail delivery events, decoded by [`mailtrail_ingest::gmail`] |
//!
//! Why they are shaped this way:
//!
//! - **Pure decoders, thin shells.** A poller only walks the API — tokens,
//!   time windows, pages, retries — and hands each response to the same
//!   decoder `mailtrail import` uses for an exported file, so a polled
//!   record and an imported one are the same record.
//! - **One thread per poller**, blocking HTTP ([`http`]), records handed to
//!   the [`StoreWriter`] like the followers do: a poller waits for the store
//!   (back-pressure) instead of buffering.
//! - **Time windows and a cursor.** Each API is asked for a bounded time
//!   window at a time (Graph: at most 10 days; Management Activity: at
//!   most 24 hours; Reports: at most 30 days), oldest first, from the
//!   cursor to now. The cursor — "everything up to `until` is stored" — is
//!   a store setting written by the store writer *after* the window's
//!   records are committed (the records of a window go in page by page, the
//!   cursor with the last), so a crash or restart resumes at the last
//!   complete window: nothing is missed, and whatever is fetched again is
//!   stored once (every store write is idempotent, keyed by the message).
//! - **Overlap, on purpose.** Cloud logs arrive late: a message trace row
//!   or a Gmail event can appear minutes (sometimes an hour) after the
//!   time it carries, so a window that was complete when fetched may not
//!   have been complete in the end. Every cycle therefore starts
//!   `overlap_minutes` before the cursor (default 30 for Microsoft 365, 60
//!   for Gmail); rows fetched twice cost a little bandwidth and nothing in
//!   the store. The Management Activity API lists content blobs by the time
//!   they became available, and the blobs already fetched in the overlap
//!   are remembered in the cursor (`seen`) so they are not downloaded twice.
//! - **First run**: without a cursor a poller starts `backfill_days` ago
//!   (default 1), never further back than the API keeps data (Graph 90
//!   days, Management Activity 7 days, Reports 180 days).
//! - **Checkpoint format**: JSON in the store's settings, one key per
//!   poller and account (`poll:m365:<tenant>:message-traces`,
//!   `poll:m365:<tenant>:audit:<content type>`, `poll:gmail:<domain>:reports`),
//!   `{"until":"2026-11-27T09:00:00Z"}`, plus `"seen":{content id: created}`
//!   for the audit feed. Readable, and extensible without a migration.
//! - **Failures**: a request that is throttled or fails is retried (see
//!   [`http`]); a cycle that still fails is reported (log line, `/metrics`,
//!   `/healthz`) and retried from the cursor after a pause that doubles
//!   from 30 s to 30 min. The poller never gives up: a consent granted or a
//!   secret renewed later is picked up by the next attempt.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use mailtrail_model::{MessageRecord, Position, Reject};
use serde_json::Value;

use crate::metrics::{Metrics, PollerMetrics};
use crate::writer::StoreWriter;

pub mod entra;
pub mod gmail;
pub mod graph;
pub mod http;
pub mod o365;

pub use entra::{M365Config, M365Feed, M365Ready, TraceDetails};
pub use gmail::{GmailConfig, GmailReady};
pub use http::{PollError, RetryPolicy, Secret};

/// Where a poller reports what it does (one line each).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;
/// The time a poller takes as "now" for its windows (tests move it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// Saved cursors by settings key.
pub type Checkpoints = BTreeMap<String, String>;
/// Which of [`Metrics`]' pollers.
pub type Which = fn(&Metrics) -> &PollerMetrics;

/// What every poller runs with.
#[derive(Clone)]
pub struct PollerEnv {
    pub writer: StoreWriter,
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub log: Log,
    pub clock: Clock,
    pub retry: RetryPolicy,
}

impl PollerEnv {
    /// Log to standard error, the real clock, the default retries.
    pub fn new(writer: StoreWriter, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) -> PollerEnv {
        PollerEnv {
            writer,
            stop,
            metrics,
            log: Arc::new(|line: &str| eprintln!("poll {line}")),
            clock: Arc::new(Utc::now),
            retry: RetryPolicy::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)().trunc_subsecs(0)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A poll cursor: everything up to `until` is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub until: DateTime<Utc>,
    /// Content blobs already fetched whose availability time is within the
    /// overlap (Management Activity API), by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen: BTreeMap<String, DateTime<Utc>>,
}

impl Cursor {
    pub fn new(until: DateTime<Utc>) -> Cursor {
        Cursor {
            until,
            seen: BTreeMap::new(),
        }
    }

    /// `None` for a value that is not a cursor (it is then ignored, as if
    /// there were none, and overwritten by the next commit).
    pub fn parse(s: &str) -> Option<Cursor> {
        serde_json::from_str(s).ok()
    }

    pub fn format(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How an API is walked in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowRules {
    /// The longest window one query may ask for.
    pub max_len: chrono::Duration,
    /// How far back the API keeps data (a little less, to be safe).
    pub retention: chrono::Duration,
    /// How far behind now a window ends (an API that refuses end times in
    /// the future would refuse a clock a little ahead of its own).
    pub end_lag: chrono::Duration,
}

/// The windows of one cycle: from the cursor less the overlap (or the
/// backfill) to now, each at most `max_len`.
pub(crate) fn windows(
    cursor: Option<&Cursor>,
    now: DateTime<Utc>,
    overlap: Duration,
    backfill_days: u32,
    rules: WindowRules,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let end = now - rules.end_lag;
    let oldest = now - rules.retention;
    let overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::zero());
    let mut start = match cursor {
        Some(c) => c.until - overlap,
        // At least a minute, so that even `backfill_days = 0` ("from now
        // on") has a first window whose end becomes the cursor.
        None => (now - chrono::Duration::days(i64::from(backfill_days)))
            .min(end - chrono::Duration::minutes(1)),
    }
    .max(oldest);
    let mut out = Vec::new();
    while start < end {
        let stop = (start + rules.max_len).min(end);
        out.push((start, stop));
        start = stop;
    }
    out
}

/// `2026-11-27T09:00:00Z`.
pub(crate) fn zulu(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Hands records to the store for one poller.
pub(crate) struct Submit<'a> {
    pub env: &'a PollerEnv,
    pub which: Which,
}

impl Submit<'_> {
    /// Store records and rejects (and, committed after them, settings);
    /// waits while the store is failing. `Stopped` when asked to stop first.
    pub fn send(
        &self,
        records: Vec<MessageRecord>,
        rejects: Vec<Reject>,
        settings: Vec<(String, String)>,
    ) -> Result<(), PollError> {
        if records.is_empty() && rejects.is_empty() && settings.is_empty() {
            return Ok(());
        }
        let n = records.len() as u64;
        let stop = self.env.stop.clone();
        if self
            .env
            .writer
            .submit_until_stored(records, rejects, settings, &|| stop.load(Ordering::Relaxed))
        {
            Metrics::add(&(self.which)(&self.env.metrics).records, n);
            Ok(())
        } else {
            Err(PollError::Stopped)
        }
    }
}

/// A reject for one element of an API response.
pub(crate) fn reject(source: &str, index: usize, code: &str, reason: &str, item: &Value) -> Reject {
    let mut input = serde_json::to_vec(item).unwrap_or_default();
    input.truncate(mailtrail_ingest::QUARANTINE_EXCERPT_BYTES);
    Reject {
        source: source.to_string(),
        position: Position::Offset(index as u64),
        code: code.to_string(),
        reason: reason.to_string(),
        input,
    }
}

/// The unix time now (real clock: this is when something happened here).
fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// Run `cycle` every `interval` until stopped; a failed cycle is reported
/// and tried again after a pause that doubles (see the module doc).
/// `cycle` returns how many records it stored.
pub(crate) fn run(
    name: &str,
    env: &PollerEnv,
    which: Which,
    interval: Duration,
    mut cycle: impl FnMut() -> Result<u64, PollError>,
) {
    let m = which(&env.metrics);
    m.enabled.store(true, Ordering::Relaxed);
    let mut failures: u32 = 0;
    let mut first = true;
    while !env.stopped() {
        match cycle() {
            Ok(records) => {
                m.last_success.store(unix_now(), Ordering::Relaxed);
                m.set_last_error(None);
                if failures > 0 {
                    (env.log)(&format!(
                        "{name}: polling again after {failures} failed attempt(s); {records} record(s) stored"
                    ));
                } else if first {
                    (env.log)(&format!("{name}: caught up; {records} record(s) stored"));
                }
                failures = 0;
                first = false;
                if http::sleep_unless_stopped(&env.stop, interval).is_err() {
                    break;
                }
            }
            Err(PollError::Stopped) => break,
            Err(e) => {
                failures = failures.saturating_add(1);
                Metrics::add(&m.errors, 1);
                let text = e.to_string();
                m.set_last_error(Some(text.clone()));
                let doublings = failures.saturating_sub(1).min(16);
                let pause = env
                    .retry
                    .first_cycle_pause
                    .saturating_mul(1 << doublings)
                    .min(env.retry.max_cycle_pause);
                (env.log)(&format!(
                    "{name}: {text}; trying again in {} s",
                    pause.as_secs_f64().ceil()
                ));
                if http::sleep_unless_stopped(&env.stop, pause).is_err() {
                    break;
                }
            }
        }
    }
}

/// The settings keys of the cursors the configured pollers read.
pub fn checkpoint_keys(m365: Option<&M365Ready>, gmail: Option<&GmailReady>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(m) = m365 {
        if m.config.feeds.contains(&M365Feed::MessageTraces) {
            keys.push(graph::checkpoint_key(&m.config.tenant_id));
        }
        if m.config.feeds.contains(&M365Feed::Audit) {
            for ct in &m.config.audit_content_types {
                keys.push(o365::checkpoint_key(&m.config.tenant_id, ct));
            }
        }
    }
    if let Some(g) = gmail {
        keys.push(g.checkpoint_key());
    }
    keys
}

/// The names of the pollers the configuration runs (`m365-traces`, …).
pub fn names(m365: Option<&M365Ready>, gmail: Option<&GmailReady>) -> Vec<&'static str> {
    let mut names = Vec::new();
    if let Some(m) = m365 {
        if m.config.feeds.contains(&M365Feed::MessageTraces) {
            names.push("m365-traces");
        }
        if m.config.feeds.contains(&M365Feed::Audit) {
            names.push("m365-audit");
        }
    }
    if gmail.is_some() {
        names.push("gmail");
    }
    names
}

/// Start every configured poller, each on its own thread.
pub fn spawn_all(
    m365: Option<&M365Ready>,
    gmail: Option<&GmailReady>,
    saved: &Checkpoints,
    env: &PollerEnv,
) -> Vec<thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    if let Some(m) = m365 {
        if m.config.feeds.contains(&M365Feed::MessageTraces) {
            threads.push(graph::spawn(m.clone(), saved, env.clone()));
        }
        if m.config.feeds.contains(&M365Feed::Audit) {
            threads.push(o365::spawn(m.clone(), saved, env.clone()));
        }
    }
    if let Some(g) = gmail {
        threads.push(gmail::spawn(g.clone(), saved, env.clone()));
    }
    threads
}

/// `Duration` as whole minutes in mailtrail.toml (`overlap_minutes = 30`).
pub(crate) mod minutes {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(|m| Duration::from_secs(m.saturating_mul(60)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const GRAPH: WindowRules = WindowRules {
        max_len: chrono::Duration::days(10),
        retention: chrono::Duration::days(89),
        end_lag: chrono::Duration::minutes(1),
    };

    #[test]
    fn windows_are_bounded_and_start_before_the_cursor() {
        let now = t("2026-11-27T12:00:00Z");
        let w = windows(None, now, Duration::from_secs(1800), 25, GRAPH);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].0, t("2026-11-02T12:00:00Z"));
        assert_eq!(w[0].1, t("2026-11-12T12:00:00Z"));
        assert_eq!(w[2].1, t("2026-11-27T11:59:00Z"));
        assert!(w.windows(2).all(|p| p[0].1 == p[1].0));
        let cursor = Cursor::new(t("2026-11-27T11:00:00Z"));
        let w = windows(Some(&cursor), now, Duration::from_secs(1800), 25, GRAPH);
        assert_eq!(
            w,
            vec![(t("2026-11-27T10:30:00Z"), t("2026-11-27T11:59:00Z"))]
        );
        // Never older than the API keeps.
        let w = windows(None, now, Duration::ZERO, 400, GRAPH);
        assert_eq!(w[0].0, now - chrono::Duration::days(89));
        // No backfill: a first minute, whose end becomes the cursor.
        let w = windows(None, now, Duration::ZERO, 0, GRAPH);
        assert_eq!(
            w,
            vec![(t("2026-11-27T11:58:00Z"), t("2026-11-27T11:59:00Z"))]
        );
        // A cursor in the future (clock set back): nothing to do.
        let ahead = Cursor::new(t("2026-11-28T00:00:00Z"));
        assert!(windows(Some(&ahead), now, Duration::ZERO, 1, GRAPH).is_empty());
    }

    #[test]
    fn cursors_round_trip() {
        let mut c = Cursor::new(t("2026-11-27T11:00:00Z"));
        assert_eq!(c.format(), r#"{"until":"2026-11-27T11:00:00Z"}"#);
        c.seen.insert("abc".into(), t("2026-11-27T10:50:00Z"));
        assert_eq!(Cursor::parse(&c.format()), Some(c));
        assert_eq!(Cursor::parse("1:2:3"), None);
    }
}
