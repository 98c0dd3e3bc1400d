//! The coverage page (`/coverage`, 収集カバレッジ): who and which PCs had
//! no mail captured in the last 1, 7 or 30 days, overall and per source —
//! the gaps an administrator closes (a mailbox not journaled, a relay whose
//! log is not collected, a PC that sends through a route nobody watches).
//!
//! Why it is shaped this way:
//! - **The store's report, as `mailtrail coverage` prints it**: one call to
//!   [`DirectoryStore::coverage`], the same figures in the same order (per
//!   source, nobody, each source's gap, silent PCs), so the page and the
//!   command never disagree.
//! - **Both roles**: the page names people, departments, addresses and
//!   PCs, never a message's content; it is audited (`coverage`, with the
//!   period) like every other look.
//! - **Long lists are cut with a count** ([`LIST_LIMIT`] rows each): the
//!   gaps of a large company are many, and the count is what matters first.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mailtrail_store::directory::{DirectoryStore, PersonCoverage};
use serde::Deserialize;

use crate::i18n::{self, Lang};
use crate::{blocking, chrome, html_page, record, respond, App, Choice, Chrome, WebError};

/// The periods offered, in days; the first … default is [`DEFAULT_DAYS`].
const PERIODS: [u32; 3] = [1, 7, 30];
const DEFAULT_DAYS: u32 = 7;
/// Rows shown per list; the rest are counted.
pub(crate) const LIST_LIMIT: usize = 100;

#[derive(Deserialize, Default)]
pub(crate) struct CoverageParams {
    #[serde(default)]
    days: Option<String>,
}

/// A source and how many employees it captured mail for.
struct SourceRow {
    system: String,
    count: String,
    percent: String,
}

struct PersonRow {
    id: String,
    name: String,
    department: String,
    addresses: String,
}

/// A titled list of people, cut at [`LIST_LIMIT`].
struct PeopleList {
    title: String,
    rows: Vec<PersonRow>,
    more: Option<String>,
}

struct DeviceRow {
    hostname: String,
    owner: String,
}

#[derive(Template)]
#[template(path = "coverage.html")]
struct CoveragePage<'a> {
    chrome: Chrome<'a>,
    periods: Vec<Choice>,
    summary: String,
    /// The directory lists nobody and nothing: import it first.
    empty: bool,
    sources: Vec<SourceRow>,
    /// Employees with no captured mail, then each source's gap.
    lists: Vec<PeopleList>,
    /// The directory lists PCs.
    has_devices: bool,
    silent_title: String,
    silent: Vec<DeviceRow>,
    silent_more: Option<String>,
}

fn person_row(p: &PersonCoverage) -> PersonRow {
    PersonRow {
        id: p.id.clone(),
        name: p.name.clone().unwrap_or_default(),
        department: p.department.clone().unwrap_or_default(),
        addresses: p.addresses.join(", "),
    }
}

/// "… and N more" when `total` rows did not all fit.
fn more_text(shared: &App, lang: Lang, total: usize) -> Option<String> {
    (total > LIST_LIMIT).then(|| {
        shared.catalog.text(
            lang,
            "list-more",
            &[("count", i18n::number((total - LIST_LIMIT) as u64).into())],
        )
    })
}

/// A PC's user in words: their name and number (`鈴木 花子（1003）`), or
/// the number alone when the directory has no such person.
fn owner_label(shared: &App, lang: Lang, people: &[PersonCoverage], id: &str) -> String {
    match people
        .iter()
        .find(|p| p.id == id)
        .and_then(|p| p.name.clone())
    {
        Some(name) => shared.catalog.text(
            lang,
            "coverage-owner",
            &[("name", name.into()), ("id", id.to_string().into())],
        ),
        None => id.to_string(),
    }
}

/// The percentage of `part` in `whole`, rounded, as the command prints it.
fn percent(part: usize, whole: usize) -> String {
    format!("{:.0}%", 100.0 * part as f64 / whole.max(1) as f64)
}

pub(crate) async fn coverage_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CoverageParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let lang = visitor.lang;
        let tr = |k: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]| {
            shared.catalog.text(lang, k, args)
        };
        let days = match params.days.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_DAYS,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|d| PERIODS.contains(d))
                .ok_or_else(|| WebError::BadRequest(format!("not a coverage period: {text}")))?,
        };
        record(shared, visitor, "coverage", None, Some(format!("{days}d"))).await?;
        let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let readers = shared.readers.clone();
        let report = blocking(move || Ok(readers.get()?.coverage(since)?)).await?;
        let people = &report.people;
        let cut = |rows: Vec<&PersonCoverage>, title: String| PeopleList {
            title,
            more: more_text(shared, lang, rows.len()),
            rows: rows.into_iter().take(LIST_LIMIT).map(person_row).collect(),
        };
        let sources = report
            .systems
            .iter()
            .map(|system| {
                let n = people.iter().filter(|p| p.seen_by.contains(system)).count();
                SourceRow {
                    system: system.clone(),
                    count: i18n::number(n as u64),
                    percent: percent(n, people.len()),
                }
            })
            .collect();
        let none: Vec<&PersonCoverage> = people.iter().filter(|p| p.seen_by.is_empty()).collect();
        let uncaptured = cut(
            none.clone(),
            tr(
                "coverage-uncaptured",
                &[("count", i18n::number(none.len() as u64).into())],
            ),
        );
        // A source that saw only some people: the others, seen by another
        // source, are its gap (a mailbox it does not cover).
        let gaps: Vec<PeopleList> = report
            .systems
            .iter()
            .filter_map(|system| {
                let gap: Vec<&PersonCoverage> = people
                    .iter()
                    .filter(|p| !p.seen_by.is_empty() && !p.seen_by.contains(system))
                    .collect();
                let title = tr(
                    "coverage-gap",
                    &[
                        ("system", system.clone().into()),
                        ("count", i18n::number(gap.len() as u64).into()),
                    ],
                );
                (!gap.is_empty()).then(|| cut(gap, title))
            })
            .collect();
        let silent: Vec<DeviceRow> = report
            .devices
            .iter()
            .filter(|d| d.messages == 0)
            .map(|d| DeviceRow {
                hostname: d.hostname.clone(),
                owner: d
                    .owner
                    .as_deref()
                    .map(|id| owner_label(shared, lang, people, id))
                    .unwrap_or_default(),
            })
            .collect();
        let page = CoveragePage {
            chrome: chrome(shared, visitor),
            periods: PERIODS
                .iter()
                .map(|d| Choice {
                    value: d.to_string(),
                    label: tr("coverage-days", &[("days", (*d).into())]),
                    selected: *d == days,
                })
                .collect(),
            summary: tr(
                "coverage-summary",
                &[
                    ("days", days.into()),
                    (
                        "since",
                        i18n::datetime(lang, since, shared.options.timezone).into(),
                    ),
                    ("messages", i18n::number(report.messages).into()),
                    ("people", i18n::number(people.len() as u64).into()),
                    ("devices", i18n::number(report.devices.len() as u64).into()),
                ],
            ),
            empty: people.is_empty() && report.devices.is_empty(),
            sources,
            lists: std::iter::once(uncaptured).chain(gaps).collect(),
            has_devices: !report.devices.is_empty(),
            silent_title: tr(
                "coverage-silent",
                &[("count", i18n::number(silent.len() as u64).into())],
            ),
            silent_more: more_text(shared, lang, silent.len()),
            silent: silent.into_iter().take(LIST_LIMIT).collect(),
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_the_command_and_survive_an_empty_directory() {
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(2, 3), "67%");
        assert_eq!(percent(0, 0), "0%");
    }
}
