//! The risk view (リスクビュー): per employee and day, the signals that an
//! administrator should look at, each with the points it adds and a
//! sentence in Japanese and English saying why; and per department and
//! day, after-hours mail well above the department's own habit (a hint of
//! unrecorded overtime, サービス残業). Off unless an organisation turns it
//! on (`[risk] enabled = true`), because it is a view *about people*.
//!
//! # Why it is shaped like this
//!
//! - **Each person against their own habit.** A sales engineer who mails
//!   customers at 21:00 every evening is not news; the same person sending
//!   twelve messages at night when they usually send none is. So the
//!   volume signals (after hours, new outside domains, attachment volume)
//!   compare a day with the *same person's* mean over the `baseline_days`
//!   days before it (a rolling window, 28 days by default), never with
//!   colleagues. Days before the store's first sent message do not count
//!   as baseline, and with fewer than [`MIN_BASELINE_DAYS`] such days the
//!   relative signals stay silent rather than calling everything unusual
//!   on a fresh installation.
//! - **Points an administrator can recompute by hand.** No model, no
//!   weights learnt from data: a day's score is the sum of its signals'
//!   points, and every signal says in words what it counted. Relative
//!   signals score in tiers of the ratio to the baseline — 3×, 6×, 12× give
//!   1, 2, 3 times the signal's weight — so that a score does not move
//!   because a mean went from 0.49 to 0.51, and a minimum count keeps
//!   "2 messages instead of 0.1" from firing. A baseline below the
//!   signal's floor is taken as the floor (a person who never works late
//!   still has to send several messages to stand out). Caps keep one
//!   signal from drowning the others.
//! - **Facts already in the store.** Messages sent by people of the
//!   organisation, streamed once through [`RiskStore::visit_sent`]; first
//!   contacts per person through [`RiskStore::domains_mailed_before`]; the
//!   directory for names, departments, private addresses and leave dates;
//!   unresolved alerts on their messages. Private addresses are recognised
//!   exactly as the `private_address` rule condition does
//!   ([`local_part_matches_name`] at the free-mail domains), and working
//!   time is the policy's [`Calendar`].
//!
//! | signal | counts | fires when | points |
//! |---|---|---|---|
//! | `after-hours` | messages sent outside working time (every message on a day off or holiday) | ≥ 3 and ≥ 3× baseline (floor 0.5/day) | 10 per tier (max 30) |
//! | `private-address` | distinct private-looking outside recipients | any | 25 each (max 50) |
//! | `new-domains` | outside domains the person mails for the first time ever | ≥ 3 and ≥ 3× baseline (floor 0.5/day) | 5 per tier (max 15) |
//! | `attachments` | attachment bytes in mail with outside recipients | ≥ 10 MB and ≥ 3× baseline (floor 1 MB/day) | 10 per tier (max 30) |
//! | `leaver` | resigned, disabled, no longer listed, or leave date within `leaver_days` | the person sent mail that day | 20 |
//! | `alerts` | open or acknowledged alerts on mail sent that day | any | 10 each (max 30) |
//!
//! Encrypted attachments are named in the attachment sentence but score
//! nothing of their own: password-protected ZIP files are everyday
//! business mail in Japan, and scoring them would rank the whole sales
//! department first.
//!
//! The department view adds up the after-hours messages of a department's
//! members per day and reports the days with at least
//! [`DEPARTMENT_MIN_MESSAGES`] such messages and at least
//! [`DEPARTMENT_RATIO`] times the department's own baseline (floor 1 a
//! day), with the people who sent them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use mailtrail_model::directory::EmploymentStatus;
use mailtrail_store::directory::StoredPerson;
use mailtrail_store::risk::{RiskStore, SentMessage};
use mailtrail_store::StoreError;
use serde::Serialize;

use crate::checks::domain_within;
use crate::{local_part_matches_name, Calendar};

/// Fewer days of data than this before a day: no baseline to compare with.
pub const MIN_BASELINE_DAYS: u32 = 7;
/// Ratio tiers of the relative signals: 1, 2, 3 times the weight.
pub const TIERS: [f64; 3] = [3.0, 6.0, 12.0];
/// After hours: the least messages that can fire, the baseline floor, the
/// points per tier.
pub const AFTER_HOURS_MIN: u32 = 3;
pub const AFTER_HOURS_FLOOR: f64 = 0.5;
pub const AFTER_HOURS_WEIGHT: u32 = 10;
/// New outside domains: the least, the floor, the points per tier.
pub const NEW_DOMAINS_MIN: u32 = 3;
pub const NEW_DOMAINS_FLOOR: f64 = 0.5;
pub const NEW_DOMAINS_WEIGHT: u32 = 5;
/// Outside attachment volume, in bytes: the least, the floor, the points per tier.
pub const ATTACHMENT_MIN_BYTES: u64 = 10_000_000;
pub const ATTACHMENT_FLOOR_BYTES: f64 = 1_000_000.0;
pub const ATTACHMENT_WEIGHT: u32 = 10;
/// Points per private address, and at most.
pub const PRIVATE_POINTS: u32 = 25;
pub const PRIVATE_MAX: u32 = 50;
/// Points for mail sent by a leaver.
pub const LEAVER_POINTS: u32 = 20;
/// Points per unresolved alert, and at most.
pub const ALERT_POINTS: u32 = 10;
pub const ALERT_MAX: u32 = 30;
/// Department view: the least after-hours messages in a day, and the ratio
/// to the department's baseline (floor [`DEPARTMENT_FLOOR`] a day).
pub const DEPARTMENT_MIN_MESSAGES: u32 = 5;
pub const DEPARTMENT_RATIO: f64 = 2.0;
pub const DEPARTMENT_FLOOR: f64 = 1.0;

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskSettings {
    /// The last day of the period (a local day of the calendar's zone).
    pub last_day: NaiveDate,
    /// Days in the period, ending with `last_day` (default 30).
    pub days: u32,
    /// Days before each day that make the person's baseline (default 28).
    pub baseline_days: u32,
    /// A leave date this many days ahead (or past) makes a leaver
    /// (the policy's `leaver_days`, 30 unless a rule file says otherwise).
    pub leaver_days: u32,
    /// Only this person (directory id or one of their addresses); they are
    /// listed even when nothing scored.
    pub employee: Option<String>,
}

impl RiskSettings {
    pub const DEFAULT_DAYS: u32 = 30;
    pub const DEFAULT_BASELINE_DAYS: u32 = 28;

    /// The default period ending `last_day`.
    pub fn ending(last_day: NaiveDate) -> RiskSettings {
        RiskSettings {
            last_day,
            days: Self::DEFAULT_DAYS,
            baseline_days: Self::DEFAULT_BASELINE_DAYS,
            leaver_days: 30,
            employee: None,
        }
    }
}

/// The kinds of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalKind {
    AfterHours,
    PrivateAddress,
    NewDomains,
    Attachments,
    Leaver,
    Alerts,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::AfterHours => "after-hours",
            SignalKind::PrivateAddress => "private-address",
            SignalKind::NewDomains => "new-domains",
            SignalKind::Attachments => "attachments",
            SignalKind::Leaver => "leaver",
            SignalKind::Alerts => "alerts",
        }
    }
}

/// One signal of one day: its points and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub points: u32,
    /// What was counted that day (messages, addresses, domains, bytes, alerts; 1 for `leaver`).
    pub count: u64,
    /// The person's daily mean over the baseline, for the relative signals.
    pub baseline: Option<f64>,
    /// The explanation in Japanese.
    pub ja: String,
    /// The explanation in English.
    pub en: String,
}

/// One day of one person with at least one signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskDay {
    pub date: NaiveDate,
    pub score: u32,
    pub signals: Vec<Signal>,
}

/// One person's risk over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonRisk {
    pub id: String,
    /// The directory source that lists them.
    pub source: String,
    pub name: Option<String>,
    pub department: Option<String>,
    pub status: EmploymentStatus,
    /// The highest day score of the period: what people are ranked by.
    pub score: u32,
    /// All day scores of the period added up (ties in `score` are ranked by it).
    pub total: u32,
    /// Messages the person sent in the period.
    pub sent: u64,
    /// Days with a score, newest first.
    pub days: Vec<RiskDay>,
}

/// Someone who sent after-hours mail on a department's unusual day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contributor {
    pub id: String,
    pub name: Option<String>,
    pub after_hours: u32,
}

/// A department's day with unusually much after-hours mail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartmentDay {
    pub department: String,
    pub date: NaiveDate,
    pub after_hours: u32,
    /// The department's daily mean over the baseline.
    pub baseline: f64,
    /// `after_hours` over the baseline (floor 1 a day).
    pub ratio: f64,
    /// Most after-hours messages first.
    pub people: Vec<Contributor>,
    pub ja: String,
    pub en: String,
}

/// The risk view of a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReport {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub baseline_days: u32,
    /// People with a score (or the one asked for), highest score first.
    pub people: Vec<PersonRisk>,
    /// Unusual department days, newest first.
    pub departments: Vec<DepartmentDay>,
}

/// The counters of one person's day.
#[derive(Debug, Default, Clone)]
struct DayStats {
    sent: u32,
    after_hours: u32,
    attachment_bytes: u64,
    encrypted: u32,
    alerts: u32,
    /// Private-looking recipient → (messages, listed in the directory).
    private: BTreeMap<String, (u32, bool)>,
}

struct Acc {
    days: Vec<DayStats>,
    /// Outside domain → the first window day the person mailed it.
    first_contact: HashMap<String, usize>,
}

/// How a local day counts: a working day, a day off, or a holiday.
enum DayKind<'a> {
    Working,
    DayOff(Weekday),
    Holiday(&'a str),
}

fn day_kind(calendar: &Calendar, date: NaiveDate) -> DayKind<'_> {
    if let Some(name) = calendar.holidays.get(&date) {
        DayKind::Holiday(name)
    } else if !calendar.workdays.contains(&date.weekday()) {
        DayKind::DayOff(date.weekday())
    } else {
        DayKind::Working
    }
}

/// Whether a local time falls outside working time: a day off, a holiday,
/// or before `work_start` / from `work_end` on a working day (as the
/// `off_hours` rule condition counts it).
fn is_off_hours(calendar: &Calendar, date: NaiveDate, time: NaiveTime) -> bool {
    match day_kind(calendar, date) {
        DayKind::Working => time < calendar.work_start || time >= calendar.work_end,
        _ => true,
    }
}

fn local_midnight(calendar: &Calendar, date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::MIN);
    calendar
        .timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc())
}

/// The tier (0–3) of a count against a baseline mean with a floor.
fn tier(count: f64, mean: f64, floor: f64) -> u32 {
    let ratio = count / mean.max(floor);
    TIERS.iter().filter(|t| ratio >= **t).count() as u32
}

/// A number with at most one decimal, without a trailing `.0`.
fn num(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn mb(bytes: f64) -> String {
    format!("{} MB", num(bytes / 1_000_000.0))
}

fn weekday_ja(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "月曜日",
        Weekday::Tue => "火曜日",
        Weekday::Wed => "水曜日",
        Weekday::Thu => "木曜日",
        Weekday::Fri => "金曜日",
        Weekday::Sat => "土曜日",
        Weekday::Sun => "日曜日",
    }
}

fn weekday_en(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// "outside working hours (09:00–18:00)" / "on a day off (Saturday)" in both languages.
fn when_words(calendar: &Calendar, date: NaiveDate) -> (String, String) {
    match day_kind(calendar, date) {
        DayKind::Working => (
            format!(
                "勤務時間外（{}–{} 以外）の送信",
                calendar.work_start.format("%-H:%M"),
                calendar.work_end.format("%-H:%M")
            ),
            format!(
                "sent outside working hours ({}–{})",
                calendar.work_start.format("%H:%M"),
                calendar.work_end.format("%H:%M")
            ),
        ),
        DayKind::DayOff(d) => (
            format!("休日（{}）の送信", weekday_ja(d)),
            format!("sent on a day off ({})", weekday_en(d)),
        ),
        DayKind::Holiday(name) => (
            format!("祝日（{name}）の送信"),
            format!("sent on a holiday ({name})"),
        ),
    }
}

/// The comparison with the baseline, in both languages: 「本人の平常時 1 日平均
/// 0.5 通の 24 倍」. Below the floor the ratio would mislead, so the words
/// say "almost none" and give the mean.
fn versus(
    count: f64,
    mean: f64,
    floor: f64,
    whose: Whose,
    unit_ja: &str,
    show: &dyn Fn(f64) -> String,
) -> (String, String) {
    let (who_ja, who_en, subject_en) = match whose {
        Whose::Person => ("本人", "the person's", "the person"),
        Whose::Department => ("部署", "the department's", "the department"),
    };
    if mean <= 0.0 {
        (
            format!("{who_ja}の平常時はなし"),
            format!("usually none for {subject_en}"),
        )
    } else if mean < floor {
        (
            format!(
                "{who_ja}の平常時はほぼなし、1 日平均 {}{unit_ja}",
                show(mean)
            ),
            format!("usually almost none for {subject_en}, {} a day", show(mean)),
        )
    } else {
        let ratio = num(count / mean);
        (
            format!(
                "{who_ja}の平常時 1 日平均 {}{unit_ja}の {ratio} 倍",
                show(mean)
            ),
            format!("{ratio}× {who_en} usual {} a day", show(mean)),
        )
    }
}

/// Whose baseline a comparison speaks of.
#[derive(Clone, Copy)]
enum Whose {
    Person,
    Department,
}

/// Prefix sums of one counter over the window, for rolling means.
struct Rolling {
    prefix: Vec<f64>,
}

impl Rolling {
    fn new(values: impl Iterator<Item = f64>) -> Rolling {
        let mut prefix = vec![0.0];
        let mut sum = 0.0;
        for v in values {
            sum += v;
            prefix.push(sum);
        }
        Rolling { prefix }
    }

    /// The sum over window days `[from, to)`.
    fn sum(&self, from: usize, to: usize) -> f64 {
        self.prefix[to] - self.prefix[from]
    }
}

/// The baseline days of window day `d`: `[start, d)` and how many there are,
/// or `None` when fewer than [`MIN_BASELINE_DAYS`] have data.
fn baseline_range(d: usize, baseline_days: usize, first_data: usize) -> Option<(usize, usize)> {
    let start = d.saturating_sub(baseline_days).max(first_data);
    let covered = d.saturating_sub(start);
    (covered >= MIN_BASELINE_DAYS as usize).then_some((start, covered))
}

/// Computes the risk view for `settings` over the mail in `store`, for the
/// people of the directory (`people`: every source, present or not), with
/// working time from `calendar` and `freemail` as the domains where a
/// name-shaped local part means a private address.
pub fn assess(
    store: &dyn RiskStore,
    people: &[StoredPerson],
    settings: &RiskSettings,
    calendar: &Calendar,
    freemail: &[String],
) -> Result<RiskReport, StoreError> {
    if settings.days == 0 || settings.days > 366 {
        return Err(StoreError::Invalid(format!(
            "the period is {} days: give 1 to 366",
            settings.days
        )));
    }
    if settings.baseline_days < MIN_BASELINE_DAYS || settings.baseline_days > 366 {
        return Err(StoreError::Invalid(format!(
            "the baseline is {} days: give {MIN_BASELINE_DAYS} to 366",
            settings.baseline_days
        )));
    }
    let period = settings.days as usize;
    let baseline_days = settings.baseline_days as usize;
    let window = baseline_days + period;
    let first_day = settings.last_day - Duration::days(i64::from(settings.days) - 1);
    let window_start = first_day - Duration::days(i64::from(settings.baseline_days));
    let from = local_midnight(calendar, window_start);
    let to = local_midnight(calendar, settings.last_day + Duration::days(1));

    // Addresses to people: a person the directory still lists wins over one
    // no longer listed (as attribution elsewhere does).
    let mut by_address: HashMap<&str, usize> = HashMap::new();
    for pass in [true, false] {
        for (i, p) in people.iter().enumerate() {
            if p.present != pass {
                continue;
            }
            for a in &p.person.addresses {
                by_address.entry(a.as_str()).or_insert(i);
            }
        }
    }

    let mut accs: HashMap<usize, Acc> = HashMap::new();
    let mut first_data: Option<usize> = None;
    store.visit_sent(from, to, &mut |m: SentMessage| {
        let local = m.time.with_timezone(&calendar.timezone);
        let date = local.date_naive();
        let Ok(d) = usize::try_from((date - window_start).num_days()) else {
            return Ok(());
        };
        if d >= window {
            return Ok(());
        }
        first_data = Some(first_data.map_or(d, |f| f.min(d)));
        let Some(&who) = m.senders().find_map(|s| by_address.get(s)) else {
            return Ok(());
        };
        let person = &people[who].person;
        let acc = accs.entry(who).or_insert_with(|| Acc {
            days: vec![DayStats::default(); window],
            first_contact: HashMap::new(),
        });
        let day = &mut acc.days[d];
        day.sent += 1;
        if is_off_hours(calendar, date, local.time()) {
            day.after_hours += 1;
        }
        day.alerts += m.unresolved_alerts;
        if !m.external_recipients.is_empty() {
            day.attachment_bytes += m.attachment_bytes;
            day.encrypted += m.encrypted_attachments;
        }
        for a in &m.external_recipients {
            let Some((local_part, domain)) = a.rsplit_once('@') else {
                continue;
            };
            let domain = domain.to_ascii_lowercase();
            // Same test as the `private_address` rule condition.
            let listed = person
                .private_addresses
                .iter()
                .any(|x| x.eq_ignore_ascii_case(a));
            let name_like = !listed
                && freemail.iter().any(|f| domain_within(&domain, f))
                && person
                    .romaji
                    .as_deref()
                    .is_some_and(|n| local_part_matches_name(local_part, n));
            if listed || name_like {
                day.private.entry(a.clone()).or_insert((0, listed)).0 += 1;
            }
            acc.first_contact.entry(domain).or_insert(d);
        }
        Ok(())
    })?;
    let first_data = first_data.unwrap_or(window);

    // First contacts: drop the domains each person had mailed before the window.
    let mut new_domains: HashMap<usize, Vec<Vec<String>>> = HashMap::new();
    for (&who, acc) in &accs {
        if acc.first_contact.is_empty() {
            continue;
        }
        let before = store.domains_mailed_before(&people[who].person.addresses, from)?;
        let mut per_day = vec![Vec::new(); window];
        for (domain, &d) in &acc.first_contact {
            if !before.contains(domain) {
                per_day[d].push(domain.clone());
            }
        }
        for list in &mut per_day {
            list.sort();
        }
        new_domains.insert(who, per_day);
    }

    let wanted = |p: &StoredPerson| {
        settings
            .employee
            .as_deref()
            .is_none_or(|key| person_matches(p, key))
    };
    let empty = vec![DayStats::default(); window];
    let mut out_people = Vec::new();
    for (who, sp) in people.iter().enumerate() {
        if !wanted(sp) {
            continue;
        }
        let days = accs.get(&who).map_or(&empty, |a| &a.days);
        let news = new_domains.get(&who);
        let after = Rolling::new(days.iter().map(|s| f64::from(s.after_hours)));
        let bytes = Rolling::new(days.iter().map(|s| s.attachment_bytes as f64));
        let newc = Rolling::new((0..window).map(|d| news.map_or(0.0, |n| n[d].len() as f64)));
        let mut risk_days = Vec::new();
        let mut sent = 0u64;
        for d in baseline_days..window {
            let date = window_start + Duration::days(d as i64);
            let stats = &days[d];
            sent += u64::from(stats.sent);
            let base = baseline_range(d, baseline_days, first_data);
            let mut signals = Vec::new();
            if let Some((start, covered)) = base {
                let n = covered as f64;
                // After hours.
                let count = stats.after_hours;
                let mean = after.sum(start, d) / n;
                let t = tier(f64::from(count), mean, AFTER_HOURS_FLOOR);
                if count >= AFTER_HOURS_MIN && t > 0 {
                    let (what_ja, what_en) = when_words(calendar, date);
                    let (vs_ja, vs_en) = versus(
                        f64::from(count),
                        mean,
                        AFTER_HOURS_FLOOR,
                        Whose::Person,
                        " 通",
                        &|x| num(x),
                    );
                    signals.push(Signal {
                        kind: SignalKind::AfterHours,
                        points: t * AFTER_HOURS_WEIGHT,
                        count: u64::from(count),
                        baseline: Some(mean),
                        ja: format!("{what_ja}が {count} 通（{vs_ja}）"),
                        en: format!("{count} messages {what_en}: {vs_en}"),
                    });
                }
                // New outside domains.
                let list: &[String] = news.map_or(&[], |n| n[d].as_slice());
                let count = list.len() as u32;
                let mean = newc.sum(start, d) / n;
                let t = tier(f64::from(count), mean, NEW_DOMAINS_FLOOR);
                if count >= NEW_DOMAINS_MIN && t > 0 {
                    let shown = list.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                    let more = list.len().saturating_sub(5);
                    let (more_ja, more_en) = if more > 0 {
                        (format!(" ほか {more} 件"), format!(" and {more} more"))
                    } else {
                        (String::new(), String::new())
                    };
                    let (vs_ja, vs_en) = versus(
                        f64::from(count),
                        mean,
                        NEW_DOMAINS_FLOOR,
                        Whose::Person,
                        " 件",
                        &|x| num(x),
                    );
                    signals.push(Signal {
                        kind: SignalKind::NewDomains,
                        points: t * NEW_DOMAINS_WEIGHT,
                        count: u64::from(count),
                        baseline: Some(mean),
                        ja: format!(
                            "初めて送る社外ドメインが {count} 件：{shown}{more_ja}（{vs_ja}）"
                        ),
                        en: format!(
                            "{count} outside domains mailed for the first time: {shown}{more_en} ({vs_en})"
                        ),
                    });
                }
                // Attachment volume.
                let count = stats.attachment_bytes;
                let mean = bytes.sum(start, d) / n;
                let t = tier(count as f64, mean, ATTACHMENT_FLOOR_BYTES);
                if count >= ATTACHMENT_MIN_BYTES && t > 0 {
                    let (vs_ja, vs_en) = versus(
                        count as f64,
                        mean,
                        ATTACHMENT_FLOOR_BYTES,
                        Whose::Person,
                        "",
                        &|x| mb(x),
                    );
                    let (enc_ja, enc_en) = if stats.encrypted > 0 {
                        (
                            format!("。うち暗号化ファイル {} 件", stats.encrypted),
                            format!("; {} encrypted file(s)", stats.encrypted),
                        )
                    } else {
                        (String::new(), String::new())
                    };
                    signals.push(Signal {
                        kind: SignalKind::Attachments,
                        points: t * ATTACHMENT_WEIGHT,
                        count,
                        baseline: Some(mean),
                        ja: format!(
                            "社外への添付ファイルが {}（{vs_ja}）{enc_ja}",
                            mb(count as f64)
                        ),
                        en: format!(
                            "{} of attachments sent outside: {vs_en}{enc_en}",
                            mb(count as f64)
                        ),
                    });
                }
            }
            // Private addresses.
            if !stats.private.is_empty() {
                let n = stats.private.len() as u32;
                let romaji = sp.person.romaji.as_deref().unwrap_or("");
                let ja = stats
                    .private
                    .iter()
                    .map(|(a, (k, listed))| {
                        if *listed {
                            format!("{a}（名簿に登録された私用アドレス）へ {k} 通")
                        } else {
                            format!("{a}（ローカル部が氏名 {romaji} と一致）へ {k} 通")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("、");
                let en = stats
                    .private
                    .iter()
                    .map(|(a, (k, listed))| {
                        if *listed {
                            format!("{k} to {a} (a private address the directory lists)")
                        } else {
                            format!("{k} to {a} (local part matches the name {romaji})")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                signals.push(Signal {
                    kind: SignalKind::PrivateAddress,
                    points: (n * PRIVATE_POINTS).min(PRIVATE_MAX),
                    count: u64::from(n),
                    baseline: None,
                    ja: format!("私用と思われるアドレスへの送信：{ja}"),
                    en: format!("Mail to private-looking addresses: {en}"),
                });
            }
            // Leaver.
            if stats.sent > 0 {
                if let Some((ja, en)) = leaver_words(sp, date, settings.leaver_days) {
                    signals.push(Signal {
                        kind: SignalKind::Leaver,
                        points: LEAVER_POINTS,
                        count: 1,
                        baseline: None,
                        ja,
                        en,
                    });
                }
            }
            // Alerts.
            if stats.alerts > 0 {
                let k = stats.alerts;
                signals.push(Signal {
                    kind: SignalKind::Alerts,
                    points: (k * ALERT_POINTS).min(ALERT_MAX),
                    count: u64::from(k),
                    baseline: None,
                    ja: format!("この日の送信メールに未対応のアラートが {k} 件"),
                    en: format!("{k} unresolved alert(s) on mail sent this day"),
                });
            }
            if !signals.is_empty() {
                risk_days.push(RiskDay {
                    date,
                    score: signals.iter().map(|s| s.points).sum(),
                    signals,
                });
            }
        }
        risk_days.reverse();
        let score = risk_days.iter().map(|d| d.score).max().unwrap_or(0);
        if score == 0 && settings.employee.is_none() {
            continue;
        }
        out_people.push(PersonRisk {
            id: sp.person.id.clone(),
            source: sp.source.clone(),
            name: sp.person.name.clone(),
            department: sp.person.department.clone(),
            status: sp.person.status,
            score,
            total: risk_days.iter().map(|d| d.score).sum(),
            sent,
            days: risk_days,
        });
    }
    out_people.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.total.cmp(&a.total))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.source.cmp(&b.source))
    });

    let departments = department_days(people, &accs, settings, calendar, window_start, first_data);
    Ok(RiskReport {
        first_day,
        last_day: settings.last_day,
        baseline_days: settings.baseline_days,
        people: out_people,
        departments,
    })
}

/// Why the person counts as a leaver on `date`, if they do.
fn leaver_words(sp: &StoredPerson, date: NaiveDate, leaver_days: u32) -> Option<(String, String)> {
    let p = &sp.person;
    if let Some(leave) = p.leave_date {
        if date + Duration::days(i64::from(leaver_days)) >= leave {
            let left = (leave - date).num_days();
            return Some(if left > 0 {
                (
                    format!("退職予定者の送信（退職日 {leave} の {left} 日前）"),
                    format!("Sent by a leaver, {left} day(s) before the leave date {leave}"),
                )
            } else if left == 0 {
                (
                    format!("退職予定者の送信（退職日 {leave} 当日）"),
                    format!("Sent by a leaver on the leave date {leave}"),
                )
            } else {
                (
                    format!("退職日 {leave} を過ぎた人の送信"),
                    format!("Sent after the leave date {leave}"),
                )
            });
        }
    }
    match p.status {
        EmploymentStatus::Resigned => Some((
            "退職済みの人の送信（在籍区分: 退職）".to_string(),
            "Sent by someone the directory lists as resigned".to_string(),
        )),
        EmploymentStatus::Disabled => Some((
            "無効化されたアカウントからの送信".to_string(),
            "Sent from an account the directory lists as disabled".to_string(),
        )),
        _ if !sp.present => Some((
            format!("名簿（{}）に載らなくなった人の送信", sp.source),
            format!(
                "Sent by someone the directory ({}) no longer lists",
                sp.source
            ),
        )),
        _ => None,
    }
}

/// The department view: per department and day of the period, after-hours
/// messages of its members against the department's rolling baseline.
fn department_days(
    people: &[StoredPerson],
    accs: &HashMap<usize, Acc>,
    settings: &RiskSettings,
    calendar: &Calendar,
    window_start: NaiveDate,
    first_data: usize,
) -> Vec<DepartmentDay> {
    let baseline_days = settings.baseline_days as usize;
    let window = baseline_days + settings.days as usize;
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &who in accs.keys() {
        if let Some(dep) = people[who].person.department.as_deref() {
            members.entry(dep).or_default().push(who);
        }
    }
    let mut out = Vec::new();
    for (dep, mut who) in members {
        who.sort_by(|a, b| people[*a].person.id.cmp(&people[*b].person.id));
        let per_day: Vec<u32> = (0..window)
            .map(|d| {
                who.iter()
                    .filter_map(|w| accs.get(w))
                    .map(|a| a.days[d].after_hours)
                    .sum()
            })
            .collect();
        let rolling = Rolling::new(per_day.iter().map(|v| f64::from(*v)));
        for (d, &count) in per_day.iter().enumerate().skip(baseline_days) {
            let Some((start, covered)) = baseline_range(d, baseline_days, first_data) else {
                continue;
            };
            let mean = rolling.sum(start, d) / covered as f64;
            let ratio = f64::from(count) / mean.max(DEPARTMENT_FLOOR);
            if count < DEPARTMENT_MIN_MESSAGES || ratio < DEPARTMENT_RATIO {
                continue;
            }
            let date = window_start + Duration::days(d as i64);
            let mut contributors: Vec<Contributor> = who
                .iter()
                .filter_map(|w| {
                    let n = accs.get(w)?.days[d].after_hours;
                    (n > 0).then(|| Contributor {
                        id: people[*w].person.id.clone(),
                        name: people[*w].person.name.clone(),
                        after_hours: n,
                    })
                })
                .collect();
            contributors.sort_by(|a, b| b.after_hours.cmp(&a.after_hours).then(a.id.cmp(&b.id)));
            let (what_ja, what_en) = when_words(calendar, date);
            let (vs_ja, vs_en) = versus(
                f64::from(count),
                mean,
                DEPARTMENT_FLOOR,
                Whose::Department,
                " 通",
                &|x| num(x),
            );
            let names = |ja: bool| {
                contributors
                    .iter()
                    .take(5)
                    .map(|c| {
                        let who = c.name.as_deref().unwrap_or(&c.id);
                        if ja {
                            format!("{who} {} 通", c.after_hours)
                        } else {
                            format!("{who} {}", c.after_hours)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(if ja { "、" } else { ", " })
            };
            out.push(DepartmentDay {
                department: dep.to_string(),
                date,
                after_hours: count,
                baseline: mean,
                ratio,
                ja: format!(
                    "{dep} の{what_ja}が {count} 通（{vs_ja}）。送信者: {}",
                    names(true)
                ),
                en: format!(
                    "{dep}: {count} messages {what_en}: {vs_en}. Senders: {}",
                    names(false)
                ),
                people: contributors,
            });
        }
    }
    out.sort_by(|a, b| {
        b.date
            .cmp(&a.date)
            .then(b.after_hours.cmp(&a.after_hours))
            .then_with(|| a.department.cmp(&b.department))
    });
    out
}

/// Whether `key` (a directory id, or an address) names this person.
pub fn person_matches(p: &StoredPerson, key: &str) -> bool {
    let key = key.trim();
    p.person.id.eq_ignore_ascii_case(key)
        || p.person
            .addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;
    use mailtrail_model::directory::Person;

    use super::*;

    /// Sent mail in memory, and the domains Yamada had mailed before.
    struct Fake {
        sent: Vec<SentMessage>,
    }

    impl RiskStore for Fake {
        fn visit_sent(
            &self,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            visit: &mut dyn FnMut(SentMessage) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            let mut sent: Vec<&SentMessage> = self
                .sent
                .iter()
                .filter(|m| m.time >= from && m.time < to)
                .collect();
            sent.sort_by_key(|m| (m.time, m.id));
            for m in sent {
                visit(m.clone())?;
            }
            Ok(())
        }

        fn domains_mailed_before(
            &self,
            senders: &[String],
            _before: DateTime<Utc>,
        ) -> Result<BTreeSet<String>, StoreError> {
            Ok(if senders.iter().any(|s| s == TARO) {
                BTreeSet::from(["partner.example".to_string()])
            } else {
                BTreeSet::new()
            })
        }
    }

    const TARO: &str = "taro.yamada@example.co.jp";
    const HANAKO: &str = "hanako.sato@example.co.jp";
    const ICHIRO: &str = "ichiro.suzuki@example.co.jp";

    fn person(id: &str, name: &str, address: &str, department: &str) -> StoredPerson {
        StoredPerson {
            source: "csv".into(),
            present: true,
            updated: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            person: Person {
                id: id.into(),
                name: Some(name.into()),
                addresses: vec![address.into()],
                department: Some(department.into()),
                ..Person::default()
            },
        }
    }

    fn people() -> Vec<StoredPerson> {
        let mut taro = person("1001", "山田 太郎", TARO, "本社/営業部");
        taro.person.romaji = Some("Taro Yamada".into());
        taro.person.private_addresses = vec!["yamada.home@example.net".into()];
        let hanako = person("1000", "佐藤 花子", HANAKO, "本社/営業部");
        let mut ichiro = person("1002", "鈴木 一郎", ICHIRO, "本社/開発部");
        ichiro.person.leave_date = NaiveDate::from_ymd_opt(2026, 12, 10);
        let mut gone = person("1003", "高橋 次郎", "jiro@example.co.jp", "本社/開発部");
        gone.person.status = EmploymentStatus::Resigned;
        vec![taro, hanako, ichiro, gone]
    }

    /// A message at a Tokyo time in November 2026.
    fn sent(id: i64, day: u32, hour: u32, min: u32, from: &str, to: &[&str]) -> SentMessage {
        SentMessage {
            id,
            time: chrono_tz::Asia::Tokyo
                .with_ymd_and_hms(2026, 11, day, hour, min, 0)
                .unwrap()
                .with_timezone(&Utc),
            from: Some(from.into()),
            envelope_from: None,
            external_recipients: to.iter().map(|a| a.to_string()).collect(),
            ..SentMessage::default()
        }
    }

    /// Yamada's habit from 11-11 to 11-25: a customer mail every working morning,
    /// and one in the evening every other day (0.5 a day after hours).
    /// Then on Thursday 11-26 twelve messages at night, one with 25 MB of
    /// encrypted attachments to a Gmail address spelling his name, two of
    /// them with unresolved alerts, and Sato three at night; on Friday
    /// 11-27 Yamada mails his registered private address and four domains
    /// he never wrote to. Suzuki, leaving on 12-10, mails a colleague on
    /// 11-25.
    fn mail() -> Vec<SentMessage> {
        let mut out = Vec::new();
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        for day in 11..=25 {
            // Working days only: 14, 15, 21 and 22 are a weekend, 23 a holiday.
            if ![14, 15, 21, 22, 23].contains(&day) {
                out.push(sent(next(), day, 10, 0, TARO, &["buyer@partner.example"]));
            }
            if day % 2 == 0 {
                out.push(sent(next(), day, 19, 0, TARO, &["buyer@partner.example"]));
            }
        }
        for k in 0..11 {
            let mut m = sent(next(), 26, 21, k, TARO, &["buyer@partner.example"]);
            if k == 0 {
                m.unresolved_alerts = 2;
            }
            out.push(m);
        }
        let mut big = sent(next(), 26, 21, 30, TARO, &["taro.yamada.1985@gmail.com"]);
        big.attachment_bytes = 25_000_000;
        big.encrypted_attachments = 1;
        out.push(big);
        for k in 0..3 {
            out.push(sent(next(), 26, 20, k, HANAKO, &["info@shop.example"]));
        }
        out.push(sent(next(), 27, 10, 0, TARO, &["yamada.home@example.net"]));
        out.push(sent(
            next(),
            27,
            11,
            0,
            TARO,
            &["a@a.example", "b@b.example", "c@c.example", "d@d.example"],
        ));
        out.push(sent(next(), 25, 10, 0, ICHIRO, &[]));
        out
    }

    fn settings() -> RiskSettings {
        RiskSettings {
            last_day: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            days: 3,
            baseline_days: 14,
            leaver_days: 30,
            employee: None,
        }
    }

    fn freemail() -> Vec<String> {
        crate::list_entries(crate::STARTER_FREEMAIL)
    }

    fn report(settings: &RiskSettings) -> RiskReport {
        assess(
            &Fake { sent: mail() },
            &people(),
            settings,
            &Calendar::default(),
            &freemail(),
        )
        .unwrap()
    }

    fn summary(day: &RiskDay) -> Vec<(SignalKind, u32, &str, &str)> {
        day.signals
            .iter()
            .map(|s| (s.kind, s.points, s.ja.as_str(), s.en.as_str()))
            .collect()
    }

    #[test]
    fn each_person_is_scored_against_their_own_habit_with_every_point_explained() {
        let r = report(&settings());
        assert_eq!(r.first_day, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        let ranked: Vec<(&str, u32, u32)> = r
            .people
            .iter()
            .map(|p| (p.id.as_str(), p.score, p.total))
            .collect();
        // Yamada first; Sato and Suzuki tie on 20 and are ranked by id; the
        // resigned Takahashi sent nothing and is not listed.
        assert_eq!(
            ranked,
            vec![("1001", 105, 140), ("1000", 20, 20), ("1002", 20, 20)]
        );

        let taro = &r.people[0];
        assert_eq!(taro.sent, 15);
        assert_eq!(taro.days.len(), 2);
        let thursday = &taro.days[1];
        assert_eq!(
            thursday.date,
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        assert_eq!(
            summary(thursday),
            vec![
                (
                    SignalKind::AfterHours,
                    30,
                    "勤務時間外（9:00–18:00 以外）の送信が 12 通（本人の平常時 1 日平均 0.5 通の 24 倍）",
                    "12 messages sent outside working hours (09:00–18:00): 24× the person's usual 0.5 a day",
                ),
                (
                    SignalKind::Attachments,
                    30,
                    "社外への添付ファイルが 25 MB（本人の平常時はなし）。うち暗号化ファイル 1 件",
                    "25 MB of attachments sent outside: usually none for the person; 1 encrypted file(s)",
                ),
                (
                    SignalKind::PrivateAddress,
                    25,
                    "私用と思われるアドレスへの送信：taro.yamada.1985@gmail.com（ローカル部が氏名 Taro Yamada と一致）へ 1 通",
                    "Mail to private-looking addresses: 1 to taro.yamada.1985@gmail.com (local part matches the name Taro Yamada)",
                ),
                (
                    SignalKind::Alerts,
                    20,
                    "この日の送信メールに未対応のアラートが 2 件",
                    "2 unresolved alert(s) on mail sent this day",
                ),
            ]
        );
        assert_eq!(thursday.score, 105);
        assert_eq!(thursday.signals[0].baseline, Some(0.5));

        // Friday: five domains are new (gmail.com, new the day before, makes
        // his baseline 1 in 14 days: below the floor of 0.5, so 5 / 0.5 = 10×).
        let friday = &taro.days[0];
        assert_eq!(
            summary(friday),
            vec![
                (
                    SignalKind::NewDomains,
                    10,
                    "初めて送る社外ドメインが 5 件：a.example, b.example, c.example, d.example, example.net（本人の平常時はほぼなし、1 日平均 0.1 件）",
                    "5 outside domains mailed for the first time: a.example, b.example, c.example, d.example, example.net (usually almost none for the person, 0.1 a day)",
                ),
                (
                    SignalKind::PrivateAddress,
                    25,
                    "私用と思われるアドレスへの送信：yamada.home@example.net（名簿に登録された私用アドレス）へ 1 通",
                    "Mail to private-looking addresses: 1 to yamada.home@example.net (a private address the directory lists)",
                ),
            ]
        );
        assert_eq!(friday.score, 35);

        let hanako = &r.people[1];
        assert_eq!(
            summary(&hanako.days[0]),
            vec![(
                SignalKind::AfterHours,
                20,
                "勤務時間外（9:00–18:00 以外）の送信が 3 通（本人の平常時はなし）",
                "3 messages sent outside working hours (09:00–18:00): usually none for the person",
            )]
        );

        let ichiro = &r.people[2];
        assert_eq!(
            ichiro.days[0].date,
            NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
        );
        assert_eq!(
            summary(&ichiro.days[0]),
            vec![(
                SignalKind::Leaver,
                20,
                "退職予定者の送信（退職日 2026-12-10 の 15 日前）",
                "Sent by a leaver, 15 day(s) before the leave date 2026-12-10",
            )]
        );
    }

    #[test]
    fn a_department_s_unusual_evening_names_who_sent_the_mail() {
        let r = report(&settings());
        assert_eq!(r.departments.len(), 1, "{:?}", r.departments);
        let d = &r.departments[0];
        assert_eq!(d.department, "本社/営業部");
        assert_eq!(d.date, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        assert_eq!(d.after_hours, 15);
        assert_eq!(d.baseline, 0.5);
        assert_eq!(d.ratio, 15.0);
        assert_eq!(
            d.people
                .iter()
                .map(|c| (c.id.as_str(), c.after_hours))
                .collect::<Vec<_>>(),
            vec![("1001", 12), ("1000", 3)]
        );
        assert_eq!(
            d.ja,
            "本社/営業部 の勤務時間外（9:00–18:00 以外）の送信が 15 通（部署の平常時はほぼなし、1 日平均 0.5 通）。送信者: 山田 太郎 12 通、佐藤 花子 3 通"
        );
        assert_eq!(
            d.en,
            "本社/営業部: 15 messages sent outside working hours (09:00–18:00): usually almost none for the department, 0.5 a day. Senders: 山田 太郎 12, 佐藤 花子 3"
        );
    }

    #[test]
    fn one_employee_is_listed_even_when_nothing_scored() {
        let mut s = settings();
        s.employee = Some("JIRO@example.co.jp".into());
        let r = report(&s);
        assert_eq!(r.people.len(), 1);
        assert_eq!((r.people[0].id.as_str(), r.people[0].score), ("1003", 0));
        s.employee = Some("1001".into());
        assert_eq!(report(&s).people[0].score, 105);
    }

    #[test]
    fn without_enough_earlier_mail_nothing_is_called_unusual() {
        // Only the last three days are in the store: no baseline, so the
        // relative signals stay silent; private addresses, alerts and
        // leavers need none.
        let recent: Vec<SentMessage> = mail()
            .into_iter()
            .filter(|m| {
                m.time
                    >= local_midnight(
                        &Calendar::default(),
                        settings().last_day - Duration::days(2),
                    )
            })
            .collect();
        let r = assess(
            &Fake { sent: recent },
            &people(),
            &settings(),
            &Calendar::default(),
            &freemail(),
        )
        .unwrap();
        let kinds: BTreeSet<SignalKind> = r
            .people
            .iter()
            .flat_map(|p| p.days.iter().flat_map(|d| d.signals.iter().map(|s| s.kind)))
            .collect();
        assert_eq!(
            kinds,
            BTreeSet::from([
                SignalKind::PrivateAddress,
                SignalKind::Alerts,
                SignalKind::Leaver
            ])
        );
        assert!(r.departments.is_empty());
    }

    #[test]
    fn days_off_and_holidays_are_named_and_count_whole() {
        let cal = Calendar::default();
        let holiday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let saturday = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        assert!(is_off_hours(&cal, holiday, noon));
        assert!(is_off_hours(&cal, saturday, noon));
        assert!(!is_off_hours(&cal, holiday + Duration::days(1), noon));
        assert!(is_off_hours(
            &cal,
            holiday + Duration::days(1),
            NaiveTime::from_hms_opt(18, 0, 0).unwrap()
        ));
        assert_eq!(
            when_words(&cal, holiday),
            (
                "祝日（勤労感謝の日）の送信".to_string(),
                "sent on a holiday (勤労感謝の日)".to_string()
            )
        );
        assert_eq!(
            when_words(&cal, saturday),
            (
                "休日（土曜日）の送信".to_string(),
                "sent on a day off (Saturday)".to_string()
            )
        );
    }

    #[test]
    fn tiers_and_numbers() {
        assert_eq!(tier(2.9, 1.0, 0.5), 0);
        assert_eq!(tier(3.0, 1.0, 0.5), 1);
        assert_eq!(tier(6.0, 0.1, 1.0), 2);
        assert_eq!(tier(12.0, 0.0, 0.5), 3);
        assert_eq!(num(24.0), "24");
        assert_eq!(num(0.25), "0.2");
        assert_eq!(mb(45_230_000.0), "45.2 MB");
    }

    #[test]
    fn a_bad_period_is_refused() {
        let mut s = settings();
        s.days = 0;
        let fake = Fake { sent: Vec::new() };
        assert!(assess(&fake, &people(), &s, &Calendar::default(), &[]).is_err());
        s.days = 3;
        s.baseline_days = 3;
        assert!(assess(&fake, &people(), &s, &Calendar::default(), &[]).is_err());
    }
}
