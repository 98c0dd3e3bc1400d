//! The monitoring rules and notifications of `mailtrail serve`: one thread
//! evaluates the messages the store queued for the rules, one delivers the
//! notifications of new alerts.
//!
//! Why it is shaped this way:
//! - **Both work from queues in the store** (`eval_pending`,
//!   `notifications`), so they are independent of the receivers: a
//!   message stored by the SMTP receiver, a followed log or `mailtrail
//!   import` while the service was down is evaluated all the same, and a
//!   restart after `kill -9` resumes where the queues stand.
//! - **Rules reload without a restart, never into nothing.** The rule files
//!   are checked every `reload_secs`; files that changed are compiled, and
//!   when they do not compile the error is logged with file, line and
//!   reason and the rules in force stay in force.
//! - **The directory is reloaded when it changed** (an import or sync), so
//!   a leaver marked this morning is a leaver for the next message.
//! - **Deliveries are retried on the channel's schedule** (`[notify.retry]`)
//!   when the failure is temporary, and go to the dead-letter list at once
//!   when it is not (a rejected password will not get better).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use chrono::Utc;
use mailtrail_model::Direction;
use mailtrail_notify::{AlertNotice, Channel, MessageSummary, NotifyConfig, Severity};
use mailtrail_policy::store::{evaluate_pending_notifying_since, StoreDirectory};
use mailtrail_policy::Policy;
use mailtrail_store::alerts::{AlertStore, Notification, StoredAlert};
use mailtrail_store::directory::DirectoryStore;
use mailtrail_store::{SqliteStore, Store, StoredMessage};

use crate::config::Config;

/// The running threads; stopped when dropped.
pub struct Alerting {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Drop for Alerting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Compile the rule files (an error names file, line and reason); the
/// loader is the policy crate's, shared with the console's rules page.
pub fn load_policy(paths: &[PathBuf]) -> Result<Policy> {
    Ok(mailtrail_policy::load_rule_paths(paths)?)
}

/// What identifies the rule files' current contents: names, sizes, times.
fn rules_fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    mailtrail_policy::rule_files(paths)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, size, modified)
        })
        .collect()
}

/// What identifies the directory's current contents.
fn directory_fingerprint(store: &SqliteStore) -> (u64, i64) {
    store.directory_version().unwrap_or((0, 0))
}

/// Start evaluating and notifying for `mailtrail serve`. Fails at once when
/// the rules do not load (a service should not start with a broken policy).
pub fn start(config: &Config) -> Result<Alerting> {
    let policy = if config.policy.rules.is_empty() {
        Policy::compile(&[]).map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        load_policy(&config.policy.rules).context("[policy] rules")?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let evaluator_store = crate::open_store_with(config, true)?;
    let notifier_store = crate::open_store_with(config, true)?;
    {
        let stop = stop.clone();
        let config = config.clone();
        threads.push(
            thread::Builder::new()
                .name("rules".into())
                .spawn(move || evaluator(evaluator_store, policy, &config, &stop))?,
        );
    }
    {
        let stop = stop.clone();
        let notify = config.notify.clone();
        let console_url = config.policy.console_url.clone();
        let timezone = config.timezone;
        threads.push(
            thread::Builder::new()
                .name("notify".into())
                .spawn(move || {
                    notifier(
                        notifier_store,
                        &notify,
                        console_url.as_deref(),
                        timezone,
                        &stop,
                    )
                })?,
        );
    }
    Ok(Alerting { stop, threads })
}

fn sleep_unless_stopped(stop: &AtomicBool, wait: Duration) {
    let until = Instant::now() + wait;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        thread::sleep(Duration::from_millis(50).min(wait));
    }
}

/// Messages evaluated per round (one write transaction): the smallest, for
/// a quiet service, and the largest, for a backlog.
const MIN_ROUND: u32 = 200;
const MAX_ROUND: u32 = 3200;

fn evaluator(mut store: SqliteStore, mut policy: Policy, config: &Config, stop: &AtomicBool) {
    let decode = mailtrail_ingest::DecodeOptions {
        timezone: config.timezone,
        ..mailtrail_ingest::DecodeOptions::default()
    };
    let reload_every = Duration::from_secs(config.policy.reload_secs.max(1));
    let mut rules_seen = rules_fingerprint(&config.policy.rules);
    let mut rules_checked = Instant::now();
    let mut directory_seen = directory_fingerprint(&store);
    let mut directory = load_directory(&store, config);
    let mut directory_checked = Instant::now();
    let mut batch = MIN_ROUND;
    while !stop.load(Ordering::SeqCst) {
        if !config.policy.rules.is_empty() && rules_checked.elapsed() >= reload_every {
            rules_checked = Instant::now();
            let now = rules_fingerprint(&config.policy.rules);
            if now != rules_seen {
                rules_seen = now;
                match load_policy(&config.policy.rules) {
                    Ok(p) => {
                        eprintln!(
                            "rules reloaded: {} rule(s), {} enabled",
                            p.rules.len(),
                            p.rules.iter().filter(|r| r.rule.enabled).count()
                        );
                        policy = p;
                    }
                    Err(e) => {
                        eprintln!("rules not reloaded, the previous rules stay in force: {e:#}")
                    }
                }
            }
        }
        if directory_checked.elapsed() >= Duration::from_secs(2) {
            directory_checked = Instant::now();
            let now = directory_fingerprint(&store);
            if now != directory_seen {
                directory_seen = now;
                directory = load_directory(&store, config);
            }
        }
        // Under a sustained load the writer holds the database most of the
        // time; a larger round takes the write lock less often per message.
        match evaluate_pending_notifying_since(
            &mut store,
            &policy,
            &directory,
            &decode,
            batch,
            Some(notify_since(config)),
        ) {
            Ok(round) if round.evaluated > 0 => {
                batch = if round.evaluated as u32 == batch {
                    (batch * 2).min(MAX_ROUND)
                } else {
                    MIN_ROUND
                };
                for id in &round.raised {
                    if let Ok(Some((alert, _))) = store.alert(*id) {
                        eprintln!(
                            "alert {} raised: rule {} ({}) on message {}",
                            alert.id, alert.rule, alert.severity, alert.message
                        );
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => eprintln!("rule evaluation failed, retrying: {e}"),
        }
        sleep_unless_stopped(stop, Duration::from_millis(200));
    }
}

/// Mail older than this is alerted on but notifies nobody
/// (`[policy] notify_max_age_hours`).
fn notify_since(config: &Config) -> chrono::DateTime<Utc> {
    let hours = i64::try_from(config.policy.notify_max_age_hours).unwrap_or(i64::MAX / 7200);
    Utc::now() - chrono::Duration::hours(hours.min(24 * 365 * 100))
}

fn load_directory(store: &SqliteStore, config: &Config) -> StoreDirectory {
    match StoreDirectory::load(store, &config.org_domains) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read the directory, rules see no employees: {e}");
            StoreDirectory::default()
        }
    }
}

fn severity(text: &str) -> Severity {
    match text {
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
    }
}

/// The notice of an alert, as channels send it.
pub fn notice(
    alert: &StoredAlert,
    message: Option<&StoredMessage>,
    console_url: Option<&str>,
) -> AlertNotice {
    let first = alert.hits.as_array().and_then(|h| h.first());
    let text = |key: &str| {
        first
            .and_then(|h| h.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let at = first
        .and_then(|h| h.get("location"))
        .and_then(|l| l.get("at"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .replace('_', " ");
    let condition_type = text("condition_type").replace('_', " ");
    let condition = if at.is_empty() {
        condition_type
    } else {
        format!("{condition_type} in {at}")
    };
    let summary = match message {
        Some(m) => MessageSummary {
            id: m.id,
            message_id: m.message_id.clone(),
            time: m
                .first_seen
                .or(m.date)
                .or_else(|| m.deliveries.iter().map(|d| d.time).min())
                .unwrap_or(alert.raised),
            subject: m.subject.clone().unwrap_or_default(),
            from: m
                .from
                .as_ref()
                .map(|f| match &f.display_name {
                    Some(n) => format!("{n} <{}>", f.address),
                    None => f.address.clone(),
                })
                .or_else(|| m.envelope_from.clone())
                .unwrap_or_default(),
            recipients: {
                let mut r: Vec<String> = Vec::new();
                for rcpt in &m.recipients {
                    if !r.contains(&rcpt.address) {
                        r.push(rcpt.address.clone());
                    }
                }
                r
            },
            direction: m.direction,
        },
        None => MessageSummary {
            id: alert.message,
            message_id: None,
            time: alert.raised,
            subject: String::new(),
            from: String::new(),
            recipients: Vec::new(),
            direction: Direction::Relayed,
        },
    };
    AlertNotice {
        alert_id: alert.id,
        rule_id: alert.rule.clone(),
        rule_name: alert
            .rule_name
            .clone()
            .unwrap_or_else(|| alert.rule.clone()),
        severity: severity(&alert.severity),
        condition,
        matched_text: text("text"),
        message: summary,
        console_url: console_url
            .map(|base| format!("{}/alerts/{}", base.trim_end_matches('/'), alert.id)),
        raised_at: alert.raised,
    }
}

fn notifier(
    mut store: SqliteStore,
    notify: &NotifyConfig,
    console_url: Option<&str>,
    timezone: chrono_tz::Tz,
    stop: &AtomicBool,
) {
    let channels = notify.channels();
    // Digests are looked at once a minute; a failed one is tried again
    // after ten.
    let mut digest_due = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= digest_due {
            digest_due = Instant::now() + Duration::from_secs(60);
            if let Err(e) = send_due_digests(&mut store, notify, timezone, console_url) {
                eprintln!("{e:#}; trying again in 10 minutes");
                digest_due = Instant::now() + Duration::from_secs(600);
            }
        }
        let due = match store.due_notifications(Utc::now(), 50) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot read the notification queue: {e}");
                sleep_unless_stopped(stop, Duration::from_secs(1));
                continue;
            }
        };
        if due.is_empty() {
            sleep_unless_stopped(stop, Duration::from_millis(200));
            continue;
        }
        for n in due {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = deliver_one(&mut store, &channels, notify, console_url, &n) {
                eprintln!("notification {}: {e:#}", n.id);
            }
        }
    }
}

fn deliver_one(
    store: &mut SqliteStore,
    channels: &[Channel],
    notify: &NotifyConfig,
    console_url: Option<&str>,
    n: &Notification,
) -> Result<()> {
    let Some(channel) = channels.iter().find(|c| c.name() == n.channel) else {
        store.notification_failed(
            n.id,
            &format!(
                "no channel named {:?} in [notify]: add it, then retry the notification",
                n.channel
            ),
            None,
        )?;
        return Ok(());
    };
    let Some((alert, _)) = store.alert(n.alert)? else {
        store.notification_failed(n.id, "the alert no longer exists", None)?;
        return Ok(());
    };
    let message = store.message(alert.message)?;
    let notice = notice(&alert, message.as_ref(), console_url);
    if !channel.accepts(&notice) {
        store.notification_delivered(n.id, Utc::now())?;
        return Ok(());
    }
    match mailtrail_notify::deliver(channel, &notice) {
        Ok(()) => store.notification_delivered(n.id, Utc::now())?,
        Err(e) => {
            let retry_at = if e.is_retryable() {
                notify
                    .retry
                    .next_attempt(n.attempts + 1)
                    .and_then(|wait| chrono::Duration::from_std(wait).ok())
                    .map(|wait| Utc::now() + wait)
            } else {
                None
            };
            eprintln!(
                "notification {} to {}: {e}{}",
                n.id,
                n.channel,
                if retry_at.is_some() {
                    " (will retry)"
                } else {
                    " (given up: dead letter)"
                }
            );
            store.notification_failed(n.id, &e.to_string(), retry_at)?;
        }
    }
    Ok(())
}

/// `mailtrail rules run`: evaluate what waits for the rules, once.
pub fn run_pending(config: &Config, rules: &[PathBuf]) -> Result<std::process::ExitCode> {
    let paths = if rules.is_empty() {
        &config.policy.rules
    } else {
        rules
    };
    if paths.is_empty() {
        anyhow::bail!("no rules: name rule files with --rules PATH or in [policy] rules");
    }
    let policy = load_policy(paths)?;
    let mut store = crate::open_store_with(config, true)?;
    let directory = StoreDirectory::load(&store, &config.org_domains)?;
    let decode = mailtrail_ingest::DecodeOptions {
        timezone: config.timezone,
        ..mailtrail_ingest::DecodeOptions::default()
    };
    let (mut evaluated, mut raised, mut refreshed) = (0, 0, 0);
    loop {
        let round = evaluate_pending_notifying_since(
            &mut store,
            &policy,
            &directory,
            &decode,
            500,
            Some(notify_since(config)),
        )?;
        if round.evaluated == 0 {
            break;
        }
        evaluated += round.evaluated;
        raised += round.raised.len();
        refreshed += round.refreshed;
    }
    println!("{evaluated} message(s) evaluated: {raised} alert(s) raised, {refreshed} refreshed");
    Ok(std::process::ExitCode::SUCCESS)
}

/// The notices of the alerts raised on `day` (a day in `tz`), oldest first.
fn notices_of_day(
    store: &SqliteStore,
    day: chrono::NaiveDate,
    tz: chrono_tz::Tz,
    console_url: Option<&str>,
) -> Result<Vec<AlertNotice>> {
    use chrono::TimeZone;
    let start = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(until)) = (start(day), day.succ_opt().and_then(start)) else {
        anyhow::bail!("{day} has no start in {tz}");
    };
    let mut notices = Vec::new();
    let mut offset = 0;
    loop {
        let (_, page) = store.alerts(&mailtrail_store::alerts::AlertFilter {
            page: mailtrail_store::Page {
                limit: 1000,
                offset,
            },
            ..Default::default()
        })?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        // Newest first: once past the day's start, nothing older is wanted.
        let past = page.last().is_some_and(|a| a.raised < from);
        for alert in page {
            if alert.raised >= from && alert.raised < until {
                let message = store.message(alert.message)?;
                notices.push(notice(&alert, message.as_ref(), console_url));
            }
        }
        if past {
            break;
        }
    }
    notices.reverse();
    Ok(notices)
}

/// A mail channel's zone for its digest day: its own `timezone`, else the
/// service's.
fn digest_zone(channel: &mailtrail_notify::MailChannel, fallback: chrono_tz::Tz) -> chrono_tz::Tz {
    channel
        .timezone
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(fallback)
}

/// The settings key remembering the last day whose digest a channel got.
fn digest_key(channel: &str) -> String {
    format!("notify:digest:{channel}")
}

/// Send each daily-digest mail channel the digest of the day before, once:
/// what the notifier does after midnight (in the channel's zone).
fn send_due_digests(
    store: &mut SqliteStore,
    notify: &NotifyConfig,
    tz: chrono_tz::Tz,
    console_url: Option<&str>,
) -> Result<()> {
    for channel in notify.mail.iter().filter(|c| c.daily_digest) {
        let zone = digest_zone(channel, tz);
        let Some(yesterday) = Utc::now().with_timezone(&zone).date_naive().pred_opt() else {
            continue;
        };
        let key = digest_key(&channel.name);
        let done = store
            .setting(&key)?
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok());
        if done.is_some_and(|d| d >= yesterday) {
            continue;
        }
        let notices = notices_of_day(store, yesterday, zone, console_url)?;
        mailtrail_notify::deliver_digest(channel, &notices, yesterday)
            .with_context(|| format!("daily digest of {yesterday} to {}", channel.name))?;
        store.set_setting(&key, &yesterday.to_string())?;
        eprintln!(
            "daily digest of {yesterday} sent to {} ({} alert(s))",
            channel.name,
            notices.len()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct DigestArgs {
    /// The day (YYYY-MM-DD, in the channel's time zone); default yesterday
    #[arg(long)]
    day: Option<chrono::NaiveDate>,
    /// Only this mail channel; default every mail channel with daily_digest = true
    #[arg(long)]
    channel: Option<String>,
}

/// `mailtrail digest`: send the daily digest of a day's alerts now, to the
/// mail channels that take it (or one named), whatever was sent before.
pub fn digest(config: &Config, args: DigestArgs) -> Result<std::process::ExitCode> {
    let channels: Vec<&mailtrail_notify::MailChannel> = config
        .notify
        .mail
        .iter()
        .filter(|c| match &args.channel {
            Some(name) => &c.name == name,
            None => c.daily_digest,
        })
        .collect();
    if channels.is_empty() {
        anyhow::bail!(match &args.channel {
            Some(name) => format!("no [[notify.mail]] channel named {name:?}"),
            None =>
                "no [[notify.mail]] channel has daily_digest = true (or name one with --channel)"
                    .to_string(),
        });
    }
    let store = crate::open_store(config)?;
    for channel in channels {
        let zone = digest_zone(channel, config.timezone);
        let day = match args.day {
            Some(d) => d,
            None => Utc::now()
                .with_timezone(&zone)
                .date_naive()
                .pred_opt()
                .context("no day before today")?,
        };
        let notices = notices_of_day(&store, day, zone, config.policy.console_url.as_deref())?;
        mailtrail_notify::deliver_digest(channel, &notices, day)
            .with_context(|| format!("daily digest of {day} to {}", channel.name))?;
        println!(
            "digest of {day} sent to {} ({} alert(s))",
            channel.name,
            notices.len()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
