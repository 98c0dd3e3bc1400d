//! Alerts in the console: the inbox (`/alerts`), one alert with every match
//! highlighted in the message and its history (`/alerts/{id}`), the form an
//! administrator works it with, and the retry of a notification that could
//! not be delivered (listed on the sources page).
//!
//! Why it is shaped this way:
//! - **An alert shows mail content** (the matched words of a body), so it is
//!   treated like a message: opening one is audited (`view-alert`) before
//!   it is shown, and viewers see where a rule matched the body or an
//!   attachment's content but not the words — the same line the message
//!   page draws (metadata yes, content no).
//! - **Highlights come from the policy engine's spans**, checked against
//!   the text shown: a span is used only where the shown text really has
//!   the matched words there; otherwise the words are looked for, and
//!   failing that shown on their own. A highlight never points at the
//!   wrong characters.
//! - **Changes are the administrators'**, by a form with the session's
//!   CSRF token, audited (`alert-update`) before they are written, and kept
//!   in the alert's history by the store.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use mailtrail_store::alerts::{
    AlertEvent, AlertFilter, AlertState, AlertStore, AlertUpdate, StoredAlert,
};
use mailtrail_store::console::Role;
use mailtrail_store::{Page, Store, StoredMessage};
use serde::Deserialize;
use serde_json::Value;

use crate::i18n::{self, Lang};
use crate::json::{hit_location, is_content_location};
use crate::{
    auth, blocking, chrome, html_page, record, require_admin, respond, url_encode, with_console,
    App, Choice, Chrome, Shared, Visitor, WebError, PAGE_SIZE,
};

/// With a severity filter the store cannot apply, at most this many alerts
/// of the other filters are read and filtered here.
const SEVERITY_SCAN: u32 = 10_000;
/// Rules offered by the inbox's rule filter: those of the latest this many
/// alerts.
const RULE_SCAN: u32 = 1_000;
/// Characters of body shown either side of a highlighted match.
const BODY_CONTEXT: usize = 80;

const SEVERITIES: [&str; 3] = ["high", "medium", "low"];

/// `severity-high` …, or the stored word when a rule wrote another.
pub(crate) fn severity_label(shared: &Shared, lang: Lang, severity: &str) -> String {
    if SEVERITIES.contains(&severity) {
        shared
            .catalog
            .text(lang, &format!("severity-{severity}"), &[])
    } else {
        severity.to_string()
    }
}

pub(crate) fn state_label(shared: &Shared, lang: Lang, state: AlertState) -> String {
    shared
        .catalog
        .text(lang, &format!("alert-state-{}", state.as_str()), &[])
}

pub(crate) fn location_label(shared: &Shared, lang: Lang, at: &str) -> String {
    let id = format!("location-{}", at.replace('_', "-"));
    let text = shared.catalog.text(lang, &id, &[]);
    if text == id {
        at.to_string()
    } else {
        text
    }
}

pub(crate) fn rule_label(a: &StoredAlert) -> String {
    a.rule_name.clone().unwrap_or_else(|| a.rule.clone())
}

/// The sender as the lists show it: header, else envelope.
fn sender(m: &StoredMessage) -> String {
    m.from
        .as_ref()
        .map(|f| f.address.clone())
        .or_else(|| m.envelope_from.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- reading

/// Alerts matching `filter` (and `severity`, which the store does not
/// filter by), newest first, how many match in all, and each alert's
/// message if it is still stored.
pub(crate) async fn list_alerts(
    shared: &App,
    filter: AlertFilter,
    severity: Option<String>,
) -> Result<(u64, Vec<(StoredAlert, Option<StoredMessage>)>), WebError> {
    let readers = shared.readers.clone();
    blocking(move || {
        let store = readers.get()?;
        let (count, alerts) = match &severity {
            None => store.alerts(&filter)?,
            Some(severity) => {
                let (_, all) = store.alerts(&AlertFilter {
                    page: Page {
                        limit: SEVERITY_SCAN,
                        offset: 0,
                    },
                    ..filter.clone()
                })?;
                let matching: Vec<StoredAlert> = all
                    .into_iter()
                    .filter(|a| &a.severity == severity)
                    .collect();
                let count = matching.len() as u64;
                let page = matching
                    .into_iter()
                    .skip(usize::try_from(filter.page.offset).unwrap_or(usize::MAX))
                    .take(filter.page.limit as usize)
                    .collect();
                (count, page)
            }
        };
        let mut out = Vec::with_capacity(alerts.len());
        for a in alerts {
            let m = store.message(a.message)?;
            out.push((a, m));
        }
        Ok((count, out))
    })
    .await
}

/// One alert, its history and its message.
pub(crate) async fn load_alert(
    shared: &App,
    id: i64,
) -> Result<(StoredAlert, Vec<AlertEvent>, Option<StoredMessage>), WebError> {
    let readers = shared.readers.clone();
    blocking(move || {
        let store = readers.get()?;
        let (alert, events) = store.alert(id)?.ok_or(WebError::NotFound)?;
        let m = store.message(alert.message)?;
        Ok((alert, events, m))
    })
    .await
}

/// Apply an administrator's change: audited as `alert-update` first, then
/// written. Not found when there is no such alert.
pub(crate) async fn update_alert(
    shared: &App,
    visitor: &Visitor,
    id: i64,
    update: AlertUpdate,
) -> Result<(), WebError> {
    let mut detail = Vec::new();
    if let Some(state) = update.state {
        detail.push(format!("state={}", state.as_str()));
    }
    if let Some(assignee) = &update.assignee {
        detail.push(format!("assignee={}", assignee.as_deref().unwrap_or("")));
    }
    if let Some(comment) = &update.comment {
        detail.push(format!("comment={comment}"));
    }
    record(
        shared,
        visitor,
        "alert-update",
        Some(id.to_string()),
        Some(detail.join(" ")),
    )
    .await?;
    let user = visitor.user()?.name.clone();
    let app = shared.clone();
    let updated =
        blocking(move || with_console(&app, |store| store.update_alert(id, &user, &update)))
            .await?;
    updated.map(|_| ()).ok_or(WebError::NotFound)
}

// ---------------------------------------------------------------- inbox

#[derive(Deserialize, Default)]
pub(crate) struct InboxParams {
    /// A state, `all`, or empty for open and acknowledged.
    #[serde(default)]
    state: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    page: u64,
}

struct InboxRow {
    id: i64,
    raised: String,
    severity: String,
    severity_class: String,
    state: String,
    rule: String,
    message: i64,
    subject: String,
    from: String,
    condition: String,
    /// The first match's words, unless they are content a viewer may not see.
    matched: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct InboxPage<'a> {
    chrome: Chrome<'a>,
    states: Vec<Choice>,
    rules: Vec<Choice>,
    severities: Vec<Choice>,
    count_text: String,
    rows: Vec<InboxRow>,
    previous: Option<u64>,
    next: Option<u64>,
    /// The filters, URL-encoded, for the paging links.
    state_url: String,
    rule_url: String,
    severity_url: String,
}

fn choices(any: (String, String), values: Vec<(String, String)>, current: &str) -> Vec<Choice> {
    let mut list = vec![Choice {
        selected: current == any.0,
        value: any.0,
        label: any.1,
    }];
    list.extend(values.into_iter().map(|(value, label)| Choice {
        selected: value == current,
        value,
        label,
    }));
    if !list.iter().any(|c| c.selected) {
        list.push(Choice {
            value: current.to_string(),
            label: current.to_string(),
            selected: true,
        });
    }
    list
}

pub(crate) async fn inbox(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<InboxParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let admin = visitor.user()?.role == Role::Administrator;
        let lang = visitor.lang;
        let t = |k: &str| shared.catalog.text(lang, k, &[]);
        let state_param = params.state.trim().to_string();
        let (state, unresolved) =
            match state_param.as_str() {
                "" => (None, true),
                "all" => (None, false),
                other => (
                    Some(AlertState::parse(other).ok_or_else(|| {
                        WebError::BadRequest(format!("unknown alert state {other}"))
                    })?),
                    false,
                ),
            };
        let rule = Some(params.rule.trim().to_string()).filter(|r| !r.is_empty());
        let severity = Some(params.severity.trim().to_string()).filter(|s| !s.is_empty());
        record(
            shared,
            visitor,
            "alerts",
            None,
            Some(
                format!(
                    "state={} rule={} severity={}",
                    if state_param.is_empty() {
                        "open,acknowledged"
                    } else {
                        &state_param
                    },
                    rule.as_deref().unwrap_or(""),
                    severity.as_deref().unwrap_or("")
                )
                .trim()
                .to_string(),
            ),
        )
        .await?;
        let offset = params.page.saturating_mul(u64::from(PAGE_SIZE));
        let filter = AlertFilter {
            rule: rule.clone(),
            state,
            unresolved,
            message: None,
            page: Page {
                limit: PAGE_SIZE,
                offset,
            },
        };
        let (count, found) = list_alerts(shared, filter, severity.clone()).await?;
        let readers = shared.readers.clone();
        let rules = blocking(move || {
            let (_, recent) = readers.get()?.alerts(&AlertFilter {
                page: Page {
                    limit: RULE_SCAN,
                    offset: 0,
                },
                ..AlertFilter::default()
            })?;
            let mut rules: Vec<(String, String)> = Vec::new();
            for a in &recent {
                if !rules.iter().any(|(id, _)| id == &a.rule) {
                    rules.push((a.rule.clone(), rule_label(a)));
                }
            }
            Ok(rules)
        })
        .await?;
        let mut rules = rules;
        rules.sort_by(|a, b| a.1.cmp(&b.1));
        let tz = shared.options.timezone;
        let rows = found
            .iter()
            .map(|(a, m)| {
                let first = a.hits.as_array().and_then(|h| h.first());
                let at = first.map(hit_location).unwrap_or("");
                let condition = first
                    .and_then(|h| h.get("condition_type"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let words = first
                    .and_then(|h| h.get("text"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                InboxRow {
                    id: a.id,
                    raised: i18n::datetime(lang, a.raised, tz),
                    severity: severity_label(shared, lang, &a.severity),
                    severity_class: format!("severity-{}", a.severity),
                    state: state_label(shared, lang, a.state),
                    rule: rule_label(a),
                    message: a.message,
                    subject: m
                        .as_ref()
                        .and_then(|m| m.subject.clone())
                        .unwrap_or_default(),
                    from: m.as_ref().map(sender).unwrap_or_default(),
                    condition: if at.is_empty() {
                        condition
                    } else {
                        format!("{condition} — {}", location_label(shared, lang, at))
                    },
                    matched: if admin || !is_content_location(at) {
                        words
                    } else {
                        None
                    },
                }
            })
            .collect();
        let page = InboxPage {
            chrome: chrome(shared, visitor),
            states: choices(
                (String::new(), t("alerts-state-unresolved")),
                AlertState::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), state_label(shared, lang, *s)))
                    .chain([("all".to_string(), t("alerts-state-all"))])
                    .collect(),
                &state_param,
            ),
            rules: choices(
                (String::new(), t("filter-any")),
                rules,
                rule.as_deref().unwrap_or(""),
            ),
            severities: choices(
                (String::new(), t("filter-any")),
                SEVERITIES
                    .iter()
                    .map(|s| (s.to_string(), severity_label(shared, lang, s)))
                    .collect(),
                severity.as_deref().unwrap_or(""),
            ),
            count_text: shared
                .catalog
                .text(lang, "alerts-count", &[("count", count.into())]),
            rows,
            previous: params.page.checked_sub(1),
            next: (offset.saturating_add(u64::from(PAGE_SIZE)) < count)
                .then(|| params.page.saturating_add(1)),
            state_url: url_encode(&state_param),
            rule_url: url_encode(rule.as_deref().unwrap_or("")),
            severity_url: url_encode(severity.as_deref().unwrap_or("")),
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

// ---------------------------------------------------------------- one alert

/// A match: the words highlighted in their field, or why they are not shown.
struct HitView {
    condition: String,
    location: String,
    detail: String,
    /// Text before the highlight, the highlighted words, text after; all
    /// empty when hidden.
    before: String,
    marked: String,
    after: String,
    hidden: bool,
}

struct EventView {
    time: String,
    user: String,
    changes: Vec<String>,
    comment: String,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage<'a> {
    chrome: Chrome<'a>,
    id: i64,
    title: String,
    rule: String,
    rule_id: String,
    severity: String,
    severity_class: String,
    state: String,
    assignee: String,
    raised: String,
    updated: String,
    hits: Vec<HitView>,
    message: Option<MessageSummary>,
    history: Vec<EventView>,
    states: Vec<Choice>,
}

struct MessageSummary {
    id: i64,
    time: String,
    subject: String,
    from: String,
    to: String,
}

/// `text` in `field`: at `span` if the field has the words there, else
/// where they first occur; `None` when the field does not have them.
fn locate(field: &str, hit: &Value, text: &str) -> Option<(usize, usize)> {
    if text.is_empty() {
        return None;
    }
    let span = hit.get("span");
    let bound = |key: &str| {
        span.and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    if let (Some(start), Some(end)) = (bound("byte_start"), bound("byte_end")) {
        if field.get(start..end) == Some(text) {
            return Some((start, end));
        }
    }
    field.find(text).map(|start| (start, start + text.len()))
}

/// At most `n` characters of the end of `s`, with `…` when cut.
fn tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(count - n));
    out
}

/// At most `n` characters of the start of `s`, with `…` when cut.
fn head(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n).collect();
    out.push('…');
    out
}

/// The highlight of `text` in `field` (`context`: characters kept either
/// side, all when `None`); the words alone when the field lacks them.
fn highlight(
    field: Option<&str>,
    hit: &Value,
    text: &str,
    context: Option<usize>,
) -> (String, String, String) {
    let Some(field) = field else {
        return (String::new(), text.to_string(), String::new());
    };
    match locate(field, hit, text) {
        Some((start, end)) => {
            let (before, after) = (&field[..start], &field[end..]);
            match context {
                Some(n) => (
                    tail(before, n),
                    field[start..end].to_string(),
                    head(after, n),
                ),
                None => (
                    before.to_string(),
                    field[start..end].to_string(),
                    after.to_string(),
                ),
            }
        }
        None => (String::new(), text.to_string(), String::new()),
    }
}

/// The body text the rules read: the message's text as the importer
/// decodes it.
async fn body_text(shared: &App, m: &StoredMessage) -> Result<Option<String>, WebError> {
    let Some(hash) = m.content_hash.clone() else {
        return Ok(None);
    };
    let readers = shared.readers.clone();
    let raw = blocking(move || Ok(readers.get()?.raw_message(&hash)?)).await?;
    Ok(raw.and_then(|raw| {
        let decode = mailtrail_ingest::DecodeOptions::default();
        mailtrail_ingest::mime::parse_message(raw.clone(), &decode)
            .ok()
            .and_then(|r| r.body_text)
            .or_else(|| crate::html::bodies(&raw).0)
    }))
}

fn index_of(hit: &Value, key: &str) -> Option<usize> {
    hit.get("location")
        .and_then(|l| l.get(key))
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

pub(crate) async fn alert_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let admin = visitor.user()?.role == Role::Administrator;
        let (alert, events, m) = load_alert(shared, id).await?;
        record(
            shared,
            visitor,
            "view-alert",
            Some(id.to_string()),
            Some(alert.rule.clone()),
        )
        .await?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let tr = |k: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]| {
            shared.catalog.text(lang, k, args)
        };
        let hits_json: Vec<Value> = alert.hits.as_array().cloned().unwrap_or_default();
        let wants_body = admin && hits_json.iter().any(|h| hit_location(h) == "body");
        let body = match (&m, wants_body) {
            (Some(m), true) => body_text(shared, m).await?,
            _ => None,
        };
        let hits = hits_json
            .iter()
            .map(|h| {
                let at = hit_location(h);
                let text = h.get("text").and_then(Value::as_str).unwrap_or("");
                let hidden = !admin && is_content_location(at);
                let attachment = index_of(h, "attachment")
                    .and_then(|i| m.as_ref().and_then(|m| m.attachments.get(i)));
                let field: Option<String> = match at {
                    "subject" => m.as_ref().and_then(|m| m.subject.clone()),
                    "body" => body.clone(),
                    "attachment_name" => attachment.and_then(|a| a.filename.clone()),
                    "inner_name" => attachment.and_then(|a| {
                        index_of(h, "index").and_then(|i| a.inner_names.get(i).cloned())
                    }),
                    _ => None,
                };
                let context = (at == "body").then_some(BODY_CONTEXT);
                let (before, marked, after) = if hidden {
                    Default::default()
                } else {
                    highlight(field.as_deref(), h, text, context)
                };
                HitView {
                    condition: h
                        .get("condition_type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    location: location_label(shared, lang, at),
                    detail: if hidden {
                        String::new()
                    } else {
                        h.get("detail")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    },
                    before,
                    marked,
                    after,
                    hidden,
                }
            })
            .collect();
        let history = events
            .iter()
            .map(|e| {
                let mut changes = Vec::new();
                if let Some(state) = e.state {
                    changes.push(tr(
                        "alert-history-state",
                        &[("state", state_label(shared, lang, state).into())],
                    ));
                }
                match e.assignee.as_deref() {
                    Some("") => changes.push(tr("alert-history-unassigned", &[])),
                    Some(a) => changes.push(tr(
                        "alert-history-assignee",
                        &[("assignee", a.to_string().into())],
                    )),
                    None => {}
                }
                EventView {
                    time: i18n::datetime(lang, e.time, tz),
                    user: e.user.clone(),
                    changes,
                    comment: e.comment.clone().unwrap_or_default(),
                }
            })
            .collect();
        let message = m.as_ref().map(|m| MessageSummary {
            id: m.id,
            time: crate::json::display_time(m)
                .map(|t| i18n::datetime(lang, t, tz))
                .unwrap_or_default(),
            subject: m.subject.clone().unwrap_or_default(),
            from: sender(m),
            to: crate::json::to_addresses(m).join(", "),
        });
        let page = AlertPage {
            chrome: chrome(shared, visitor),
            id: alert.id,
            title: tr("alert-title", &[("id", alert.id.into())]),
            rule: rule_label(&alert),
            rule_id: alert.rule.clone(),
            severity: severity_label(shared, lang, &alert.severity),
            severity_class: format!("severity-{}", alert.severity),
            state: state_label(shared, lang, alert.state),
            assignee: alert.assignee.clone().unwrap_or_default(),
            raised: i18n::datetime(lang, alert.raised, tz),
            updated: i18n::datetime(lang, alert.updated, tz),
            hits,
            message,
            history,
            states: AlertState::ALL
                .iter()
                .map(|s| Choice {
                    value: s.as_str().to_string(),
                    label: state_label(shared, lang, *s),
                    selected: *s == alert.state,
                })
                .collect(),
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    /// Missing is refused like a wrong one (403, not a form error).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    comment: String,
}

/// The session's CSRF token must come with every change a form makes.
pub(crate) fn check_csrf(visitor: &Visitor, token: &str) -> Result<(), WebError> {
    let session = visitor.session.as_ref().ok_or(WebError::SignIn)?;
    if auth::same_token(&session.csrf, token) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}

pub(crate) async fn alert_change(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "alert-update", Some(id.to_string())).await?;
        check_csrf(visitor, &form.csrf)?;
        let (alert, _, _) = load_alert(shared, id).await?;
        let state = match form.state.trim() {
            "" => None,
            s => Some(
                AlertState::parse(s)
                    .ok_or_else(|| WebError::BadRequest(format!("unknown alert state {s}")))?,
            ),
        };
        let assignee = form.assignee.trim().to_string();
        let update = AlertUpdate {
            state: state.filter(|s| *s != alert.state),
            assignee: (assignee != alert.assignee.clone().unwrap_or_default())
                .then(|| Some(assignee).filter(|a| !a.is_empty())),
            comment: Some(form.comment.trim().to_string()).filter(|c| !c.is_empty()),
        };
        if update != AlertUpdate::default() {
            update_alert(shared, visitor, id, update).await?;
        }
        Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
    })
    .await
}

// ---------------------------------------------------------------- dead letters

/// A notification given up on, as the sources page lists it.
pub(crate) struct DeadLetterView {
    pub id: i64,
    pub channel: String,
    pub alert: i64,
    pub attempts: u32,
    pub error: String,
    pub created: String,
}

/// The dead letters, newest first (at most 200).
pub(crate) async fn dead_letters(
    shared: &App,
    lang: Lang,
) -> Result<Vec<DeadLetterView>, WebError> {
    let readers = shared.readers.clone();
    let dead = blocking(move || {
        Ok(readers.get()?.notifications(
            Some(mailtrail_store::alerts::NotificationState::Dead),
            Page {
                limit: 200,
                offset: 0,
            },
        )?)
    })
    .await?;
    let tz = shared.options.timezone;
    Ok(dead
        .into_iter()
        .map(|n| DeadLetterView {
            id: n.id,
            channel: n.channel,
            alert: n.alert,
            attempts: n.attempts,
            error: n.last_error.unwrap_or_default(),
            created: i18n::datetime(lang, n.created, tz),
        })
        .collect())
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn retry_notification(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "notification-retry", Some(id.to_string())).await?;
        check_csrf(visitor, &form.csrf)?;
        record(
            shared,
            visitor,
            "notification-retry",
            Some(id.to_string()),
            None,
        )
        .await?;
        let app = shared.clone();
        let retried =
            blocking(move || with_console(&app, |store| store.retry_notification(id, Utc::now())))
                .await?;
        if !retried {
            return Err(WebError::NotFound);
        }
        Ok(Redirect::to("/sources").into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_used_only_where_the_field_has_the_words() {
        let hit = serde_json::json!({"span": {"byte_start": 3, "byte_end": 12}});
        // "社外秘" is 9 bytes from byte 3 ("【】" is 3 bytes each).
        assert_eq!(
            highlight(Some("【社外秘】見積書"), &hit, "社外秘", None),
            ("【".into(), "社外秘".into(), "】見積書".into())
        );
        // A span that does not hold the words there: found by search.
        let off = serde_json::json!({"span": {"byte_start": 0, "byte_end": 9}});
        assert_eq!(
            highlight(Some("【社外秘】"), &off, "社外秘", None),
            ("【".into(), "社外秘".into(), "】".into())
        );
        // A span past the end, or inside a character, is ignored.
        let bad = serde_json::json!({"span": {"byte_start": 1, "byte_end": 400}});
        assert_eq!(
            highlight(Some("社外秘"), &bad, "社外秘", None),
            (String::new(), "社外秘".into(), String::new())
        );
        // Not in the field at all: the words alone.
        assert_eq!(
            highlight(Some("見積書"), &hit, "極秘", None),
            (String::new(), "極秘".into(), String::new())
        );
        assert_eq!(
            highlight(None, &hit, "極秘", None),
            (String::new(), "極秘".into(), String::new())
        );
    }

    #[test]
    fn body_highlights_keep_some_context_either_side() {
        let body = format!("{}社外秘{}", "あ".repeat(100), "い".repeat(100));
        let (before, marked, after) = highlight(Some(&body), &Value::Null, "社外秘", Some(3));
        assert_eq!(before, "…あああ");
        assert_eq!(marked, "社外秘");
        assert_eq!(after, "いいい…");
    }
}
