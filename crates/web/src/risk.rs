//! The risk page (`/risk`, リスク): the risk view of
//! [`mailtrail_policy::risk`] in the console — employees ranked by the
//! signals of their days, each point explained in the visitor's language,
//! with links to the mail of the day; and the department days with unusual
//! after-hours mail, labelled for what they are: a possible sign of
//! unrecorded overtime, not a finding.
//!
//! Why it is shaped this way:
//! - **Off unless the organisation turned it on** (`[risk] enabled =
//!   true`, passed as [`crate::WebOptions::risk`]): it is a view about
//!   people. Off, the link is not shown and the page answers 404 with the
//!   sentence that says how to turn it on.
//! - **The command's computation** (`mailtrail risk`): the same
//!   [`mailtrail_policy::risk::assess`] over the store, the working time of
//!   the rule files' `[calendar]` and their `freemail` list, so the page,
//!   the command and the `off_hours` rules agree. It runs on a blocking
//!   thread over a pooled reader.
//! - **Administrators only**, each look audited (`risk`, with the period
//!   and tab) before it is shown; a viewer's attempt is refused and
//!   recorded (`denied`).
//! - **Points an administrator can recompute**: the scoring table is on
//!   the page as fixed text.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, NaiveDate, Utc};
use mailtrail_policy::risk::{self, RiskReport, RiskSettings, SignalKind};
use mailtrail_policy::Policy;
use mailtrail_store::directory::DirectoryStore;
use serde::Deserialize;

use crate::i18n::{self, Lang};
use crate::{
    blocking, chrome, html_page, record, require_admin, respond, search_href, App, Choice, Chrome,
    ErrorPage, Shared, WebError,
};

/// The periods offered, in days (the configured one is added).
const PERIODS: [u32; 5] = [7, 14, 30, 60, 90];
/// The signal kinds in the order of the scoring table.
const KINDS: [SignalKind; 6] = [
    SignalKind::AfterHours,
    SignalKind::PrivateAddress,
    SignalKind::NewDomains,
    SignalKind::Attachments,
    SignalKind::Leaver,
    SignalKind::Alerts,
];

#[derive(Deserialize, Default)]
pub(crate) struct RiskParams {
    #[serde(default)]
    days: String,
    /// The last day, `YYYY-MM-DD` (default today).
    #[serde(default)]
    until: String,
    /// `people` (default) or `departments`.
    #[serde(default)]
    view: String,
}

struct SignalView {
    kind: String,
    points: u32,
    text: String,
}

struct DayView {
    date: String,
    score: u32,
    signals: Vec<SignalView>,
    /// The person's mail of the day, as a search.
    search: String,
}

struct PersonView {
    id: String,
    name: String,
    department: String,
    status: String,
    score: u32,
    sent: String,
    kinds: String,
    days: Vec<DayView>,
}

struct DepartmentView {
    department: String,
    date: String,
    after_hours: u32,
    baseline: String,
    ratio: String,
    text: String,
    people: Vec<String>,
}

struct ScoringRow {
    signal: String,
    counts: String,
    fires: String,
    points: String,
}

#[derive(Template)]
#[template(path = "risk.html")]
struct RiskPage<'a> {
    chrome: Chrome<'a>,
    departments: bool,
    periods: Vec<Choice>,
    until: String,
    days: u32,
    period_text: String,
    count_text: String,
    /// The directory is empty: nothing to rank.
    empty_directory: bool,
    people: Vec<PersonView>,
    department_days: Vec<DepartmentView>,
    scoring: Vec<ScoringRow>,
}

fn kind_label(shared: &Shared, lang: Lang, kind: SignalKind) -> String {
    shared
        .catalog
        .text(lang, &format!("risk-signal-{}", kind.as_str()), &[])
}

fn scoring(shared: &Shared, lang: Lang) -> Vec<ScoringRow> {
    let t = |prefix: &str, kind: SignalKind| {
        shared
            .catalog
            .text(lang, &format!("risk-{prefix}-{}", kind.as_str()), &[])
    };
    KINDS
        .iter()
        .map(|&k| ScoringRow {
            signal: kind_label(shared, lang, k),
            counts: t("counts", k),
            fires: t("fires", k),
            points: t("points", k),
        })
        .collect()
}

/// The person's mail of one day: `employee:ID after:DAY before:NEXTDAY`.
fn day_search(id: &str, day: NaiveDate) -> String {
    let id = if id.chars().any(|c| c.is_whitespace() || c == '"') {
        format!("\"{}\"", id.replace('"', ""))
    } else {
        id.to_string()
    };
    let next = day + Duration::days(1);
    search_href(&format!(
        "employee:{id} after:{} before:{}",
        day.format("%Y-%m-%d"),
        next.format("%Y-%m-%d")
    ))
}

/// The 404 of a console without the risk view, saying how to turn it on.
fn risk_off(shared: &Shared, visitor: &crate::Visitor) -> Response {
    let chrome = chrome(shared, visitor);
    let title = chrome.t.get("risk-title");
    let message = chrome.t.get("risk-off");
    html_page(
        StatusCode::NOT_FOUND,
        ErrorPage {
            chrome,
            title,
            message,
        },
    )
}

pub(crate) async fn risk_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<RiskParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let Some(options) = shared.options.risk else {
            return Ok(risk_off(shared, visitor));
        };
        require_admin(shared, visitor, "risk", None).await?;
        let lang = visitor.lang;
        let days = match params.days.trim() {
            "" => options.days,
            d => d
                .parse::<u32>()
                .ok()
                .filter(|d| PERIODS.contains(d) || *d == options.days)
                .ok_or_else(|| WebError::BadRequest(format!("not a risk period: {d}")))?,
        };
        let departments = match params.view.as_str() {
            "" | "people" => false,
            "departments" => true,
            other => return Err(WebError::BadRequest(format!("not a risk view: {other}"))),
        };
        // Working time and free-mail domains are the rule files'.
        let paths = shared.options.rules.clone();
        let loaded = blocking(move || {
            Ok(if paths.is_empty() {
                Policy::compile(&[]).map_err(mailtrail_policy::LoadError::from)
            } else {
                mailtrail_policy::load_rule_paths(&paths)
            })
        })
        .await?;
        // Rule files that do not load: the rules page says which and why.
        let Ok(policy) = loaded else {
            return Ok(Redirect::to("/rules").into_response());
        };
        let today = Utc::now()
            .with_timezone(&policy.calendar.timezone)
            .date_naive();
        let until = match params.until.trim() {
            "" => today,
            u => NaiveDate::parse_from_str(u, "%Y-%m-%d")
                .map_err(|_| WebError::BadRequest(format!("not a date: {u}")))?,
        };
        let settings = RiskSettings {
            last_day: until,
            days,
            baseline_days: options.baseline_days,
            leaver_days: policy.leaver_days,
            employee: None,
        };
        let first = until - Duration::days(i64::from(days.max(1)) - 1);
        record(
            shared,
            visitor,
            "risk",
            None,
            Some(format!(
                "{first}..{until} {}",
                if departments { "departments" } else { "people" }
            )),
        )
        .await?;
        let readers = shared.readers.clone();
        let report: Option<RiskReport> = blocking(move || {
            let store = readers.get()?;
            let people = store.directory_people()?;
            if people.is_empty() {
                return Ok(None);
            }
            let freemail = policy.list("freemail").unwrap_or(&[]);
            Ok(Some(risk::assess(
                &*store,
                &people,
                &settings,
                &policy.calendar,
                freemail,
            )?))
        })
        .await?;
        let ja = lang == Lang::Ja;
        let say = |j: &str, e: &str| if ja { j.to_string() } else { e.to_string() };
        let tr = |k: &str| shared.catalog.text(lang, k, &[]);
        let mut page = RiskPage {
            chrome: chrome(shared, visitor),
            departments,
            periods: {
                let mut all: Vec<u32> = PERIODS.to_vec();
                if !all.contains(&options.days) {
                    all.push(options.days);
                    all.sort_unstable();
                }
                all.into_iter()
                    .map(|d| Choice {
                        value: d.to_string(),
                        label: shared.catalog.text(
                            lang,
                            "coverage-days",
                            &[("days", d.to_string().into())],
                        ),
                        selected: d == days,
                    })
                    .collect()
            },
            until: until.format("%Y-%m-%d").to_string(),
            days,
            period_text: shared.catalog.text(
                lang,
                "risk-period",
                &[
                    ("first", i18n::date(lang, first).into()),
                    ("last", i18n::date(lang, until).into()),
                    ("baseline", options.baseline_days.to_string().into()),
                ],
            ),
            count_text: String::new(),
            empty_directory: report.is_none(),
            people: Vec::new(),
            department_days: Vec::new(),
            scoring: scoring(shared, lang),
        };
        let Some(report) = report else {
            return Ok(html_page(StatusCode::OK, page));
        };
        page.count_text =
            shared
                .catalog
                .text(lang, "risk-count", &[("count", report.people.len().into())]);
        page.people = report
            .people
            .iter()
            .map(|p| {
                let mut kinds: Vec<SignalKind> = p
                    .days
                    .iter()
                    .flat_map(|d| d.signals.iter().map(|s| s.kind))
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                PersonView {
                    id: p.id.clone(),
                    name: p.name.clone().unwrap_or_default(),
                    department: p.department.clone().unwrap_or_default(),
                    status: tr(&format!("risk-status-{}", p.status.as_str())),
                    score: p.score,
                    sent: i18n::number(p.sent),
                    kinds: kinds
                        .iter()
                        .map(|&k| kind_label(shared, lang, k))
                        .collect::<Vec<_>>()
                        .join(if ja { "、" } else { ", " }),
                    days: p
                        .days
                        .iter()
                        .map(|d| DayView {
                            date: i18n::date(lang, d.date),
                            score: d.score,
                            signals: d
                                .signals
                                .iter()
                                .map(|s| SignalView {
                                    kind: kind_label(shared, lang, s.kind),
                                    points: s.points,
                                    text: say(&s.ja, &s.en),
                                })
                                .collect(),
                            search: day_search(&p.id, d.date),
                        })
                        .collect(),
                }
            })
            .collect();
        page.department_days = report
            .departments
            .iter()
            .map(|d| DepartmentView {
                department: d.department.clone(),
                date: i18n::date(lang, d.date),
                after_hours: d.after_hours,
                baseline: format!("{:.1}", d.baseline),
                ratio: format!("×{:.1}", d.ratio),
                text: say(&d.ja, &d.en),
                people: d
                    .people
                    .iter()
                    .map(|c| {
                        shared.catalog.text(
                            lang,
                            "risk-contributor",
                            &[
                                (
                                    "name",
                                    c.name.clone().unwrap_or_else(|| c.id.clone()).into(),
                                ),
                                ("count", c.after_hours.into()),
                            ],
                        )
                    })
                    .collect(),
            })
            .collect();
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}
