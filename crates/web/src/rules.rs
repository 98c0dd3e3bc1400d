//! The rules page (`/rules`, 監視ルール): the monitoring rules of the
//! configured rule files as the service compiles them, and their dry run
//! (`/rules/dry-run`): what one rule would have matched in the stored mail
//! of the last 7, 30 or 90 days, before anyone switches it on.
//!
//! Why it is shaped this way:
//! - **The service's loader, read on each visit**
//!   ([`mailtrail_policy::load_rule_paths`] over [`crate::WebOptions::rules`]):
//!   the page shows the files as they are now, and a file that does not
//!   compile is shown as the service reports it — file, line and reason —
//!   instead of a half-read list.
//! - **Administrators only**: rules name watched people and the words that
//!   are looked for, and a dry run shows the matched words of bodies. A
//!   viewer's attempt is refused and recorded (`denied`); a look is audited
//!   (`rules`), a dry run too (`rule-dry-run`, with the rule id and period)
//!   before it runs.
//! - **The dry run is the command's** (`mailtrail rules test`):
//!   [`mailtrail_policy::store::retro_hunt`] with the store's directory and
//!   history, the period written in the query language and parsed like a
//!   search, on a blocking thread. Nothing is written: no alert, no tag.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_policy::store::{retro_hunt, Hunt, StoreDirectory};
use mailtrail_policy::{
    Action, CompiledRule, Condition, LoadError, Policy, PolicyError, RuleMatch,
};
use mailtrail_store::StoredMessage;
use serde::Deserialize;
use serde_json::Value;

use crate::alerts::{location_label, severity_label};
use crate::i18n::{self, Lang};
use crate::json::display_time;
use crate::{
    blocking, chrome, html_page, parse_query, record, require_admin, respond, App, Choice, Chrome,
    Shared, WebError,
};

/// The periods a dry run may cover (the query language's `newer_than:`).
const PERIODS: [&str; 3] = ["7d", "30d", "90d"];
const DEFAULT_PERIOD: &str = "30d";
/// Matches shown by a dry run; the rest are counted.
const DRY_RUN_SHOWN: usize = 100;

/// A rule file that did not load, in words.
pub(crate) struct LoadErrorView {
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    /// The rule the error is in, when it is in one.
    pub(crate) rule: Option<String>,
    pub(crate) reason: String,
}

/// One condition of a rule: its kind and its settings in words.
struct ConditionView {
    kind: String,
    settings: Vec<(String, String)>,
}

struct RuleView {
    id: String,
    /// The id for the dry run's link.
    id_url: String,
    name: String,
    description: String,
    enabled: bool,
    state: String,
    severity: String,
    severity_class: String,
    combine: String,
    scope: Vec<(String, String)>,
    conditions: Vec<ConditionView>,
    origin: String,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage<'a> {
    chrome: Chrome<'a>,
    /// No rule files are configured (`[policy] rules`).
    unconfigured: bool,
    error: Option<LoadErrorView>,
    count_text: String,
    rules: Vec<RuleView>,
    /// The dry run's form.
    rule_choices: Vec<Choice>,
    periods: Vec<Choice>,
    /// "Saved …, in force within N seconds" after an edit.
    saved: Option<String>,
    /// Rules can be added here (a folder is configured).
    can_add: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct RulesParams {
    /// The rule just saved by the editor.
    #[serde(default)]
    saved: String,
}

/// One hit of a dry-run match.
struct HitView {
    condition: String,
    location: String,
    text: String,
    detail: String,
}

struct MatchView {
    id: i64,
    time: String,
    from: String,
    subject: String,
    hits: Vec<HitView>,
}

#[derive(Template)]
#[template(path = "rule_dry_run.html")]
struct DryRunPage<'a> {
    chrome: Chrome<'a>,
    rule_id: String,
    rule_name: String,
    rule_choices: Vec<Choice>,
    periods: Vec<Choice>,
    count_text: String,
    shown_text: Option<String>,
    matches: Vec<MatchView>,
}

/// Read and compile the configured rule files, off the runtime.
async fn load(shared: &App) -> Result<Result<Policy, LoadError>, WebError> {
    let paths = shared.options.rules.clone();
    blocking(move || Ok(mailtrail_policy::load_rule_paths(&paths))).await
}

pub(crate) fn error_view(error: &LoadError) -> LoadErrorView {
    match error {
        LoadError::Read { path, source } => LoadErrorView {
            file: path.display().to_string(),
            line: None,
            rule: None,
            reason: source.to_string(),
        },
        LoadError::Policy(PolicyError::Syntax {
            source_name,
            line,
            rule,
            message,
            ..
        }) => LoadErrorView {
            file: source_name.clone(),
            line: Some(*line),
            rule: rule.clone(),
            reason: message.clone(),
        },
        LoadError::Policy(PolicyError::Invalid {
            source_name,
            line,
            rule,
            field,
            message,
        }) => LoadErrorView {
            file: source_name.clone(),
            line: Some(*line),
            rule: rule.clone(),
            reason: format!("{field}: {message}"),
        },
    }
}

/// A word of the catalogue (`KEY`), or `fallback` when it has none.
fn word(shared: &Shared, lang: Lang, key: &str, fallback: &str) -> String {
    let text = shared.catalog.text(lang, key, &[]);
    if text == key {
        fallback.to_string()
    } else {
        text
    }
}

/// The severity of the rule's alert, as a word and a style; a rule that
/// only notifies or tags has none.
fn severity_of(shared: &Shared, lang: Lang, rule: &CompiledRule) -> (String, String) {
    let severity = rule.rule.actions.iter().find_map(|a| match a {
        Action::Alert { severity, .. } => Some(severity),
        _ => None,
    });
    match severity {
        Some(s) => {
            let key = match s {
                mailtrail_policy::Severity::High => "high",
                mailtrail_policy::Severity::Medium => "medium",
                mailtrail_policy::Severity::Low => "low",
            };
            (severity_label(shared, lang, key), format!("severity-{key}"))
        }
        None => (
            shared.catalog.text(lang, "rules-no-alert", &[]),
            String::new(),
        ),
    }
}

/// A setting's value in words: lists joined, text fields and yes/no in the
/// visitor's language.
fn setting_value(shared: &Shared, lang: Lang, key: &str, value: &Value) -> String {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| setting_value(shared, lang, key, v))
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) if key == "fields" => {
            let at = match s.as_str() {
                "attachment_names" => "attachment-name",
                "inner_names" => "inner-name",
                other => other,
            };
            word(shared, lang, &format!("location-{at}"), s)
        }
        Value::String(s) if key == "party" => word(shared, lang, &format!("rules-party-{s}"), s),
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            shared
                .catalog
                .text(lang, if *b { "source-yes" } else { "source-no" }, &[])
        }
        Value::Null => "—".to_string(),
        other => other.to_string(),
    }
}

fn condition_view(shared: &Shared, lang: Lang, condition: &Condition) -> ConditionView {
    let kind = condition.type_name();
    let settings = match serde_json::to_value(condition) {
        Ok(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "type")
            .map(|(k, v)| {
                (
                    word(
                        shared,
                        lang,
                        &format!("rules-setting-{}", k.replace('_', "-")),
                        k,
                    ),
                    setting_value(shared, lang, k, v),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    ConditionView {
        kind: word(
            shared,
            lang,
            &format!("condition-{}", kind.replace('_', "-")),
            kind,
        ),
        settings,
    }
}

fn rule_view(shared: &Shared, lang: Lang, rule: &CompiledRule) -> RuleView {
    let t = |k: &str| shared.catalog.text(lang, k, &[]);
    let r = &rule.rule;
    let mut scope: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, values: Vec<String>| {
        if !values.is_empty() {
            scope.push((t(key), values.join(", ")));
        }
    };
    add(
        "rules-scope-directions",
        r.scope
            .directions
            .iter()
            .map(|d| t(&format!("direction-{}", d.as_str())))
            .collect(),
    );
    add("rules-scope-people", r.scope.people.clone());
    add("rules-scope-departments", r.scope.departments.clone());
    add("rules-scope-watch-lists", r.scope.watch_lists.clone());
    add("rules-scope-exclude", r.scope.exclude_people.clone());
    let (severity, severity_class) = severity_of(shared, lang, rule);
    RuleView {
        id: r.id.clone(),
        id_url: crate::url_encode(&r.id),
        name: r.name.clone().unwrap_or_default(),
        description: r.description.clone().unwrap_or_default(),
        enabled: r.enabled,
        state: t(if r.enabled { "rules-on" } else { "rules-off" }),
        severity,
        severity_class,
        combine: t(match r.combine {
            mailtrail_policy::Combine::All => "rules-combine-all",
            mailtrail_policy::Combine::Any => "rules-combine-any",
        }),
        scope,
        conditions: r
            .conditions
            .iter()
            .map(|c| condition_view(shared, lang, c))
            .collect(),
        origin: rule.origin.clone(),
    }
}

fn rule_choices(policy: &Policy, current: &str) -> Vec<Choice> {
    policy
        .rules
        .iter()
        .map(|r| Choice {
            value: r.rule.id.clone(),
            label: match &r.rule.name {
                Some(name) => format!("{name} ({})", r.rule.id),
                None => r.rule.id.clone(),
            },
            selected: r.rule.id == current,
        })
        .collect()
}

fn period_choices(shared: &Shared, lang: Lang, current: &str) -> Vec<Choice> {
    PERIODS
        .iter()
        .map(|p| Choice {
            value: p.to_string(),
            label: shared.catalog.text(
                lang,
                "coverage-days",
                &[("days", p.trim_end_matches('d').to_string().into())],
            ),
            selected: *p == current,
        })
        .collect()
}

pub(crate) async fn rules_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<RulesParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "rules", None).await?;
        record(shared, visitor, "rules", None, None).await?;
        let lang = visitor.lang;
        let mut page = RulesPage {
            chrome: chrome(shared, visitor),
            unconfigured: shared.options.rules.is_empty(),
            error: None,
            count_text: String::new(),
            rules: Vec::new(),
            rule_choices: Vec::new(),
            periods: period_choices(shared, lang, DEFAULT_PERIOD),
            saved: Some(params.saved.trim())
                .filter(|s| !s.is_empty())
                .map(|id| {
                    shared.catalog.text(
                        lang,
                        "rule-saved",
                        &[
                            ("rule", id.to_string().into()),
                            ("seconds", shared.options.rules_reload_secs.max(1).into()),
                        ],
                    )
                }),
            can_add: shared.options.rules.iter().any(|p| p.is_dir()),
        };
        if page.unconfigured {
            return Ok(html_page(StatusCode::OK, page));
        }
        match load(shared).await? {
            Ok(policy) => {
                let on = policy.rules.iter().filter(|r| r.rule.enabled).count();
                page.count_text = shared.catalog.text(
                    lang,
                    "rules-count",
                    &[("count", policy.rules.len().into()), ("enabled", on.into())],
                );
                page.rules = policy
                    .rules
                    .iter()
                    .map(|r| rule_view(shared, lang, r))
                    .collect();
                page.rule_choices = rule_choices(&policy, "");
            }
            Err(e) => page.error = Some(error_view(&e)),
        }
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

#[derive(Deserialize, Default)]
pub(crate) struct DryRunParams {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    period: String,
}

/// The matches of a dry run: the first [`DRY_RUN_SHOWN`] and how many in all.
struct Hunted {
    matched: u64,
    candidates: u64,
    first: Vec<(StoredMessage, RuleMatch)>,
}

pub(crate) async fn dry_run(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<DryRunParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let rule_id = params.rule.trim().to_string();
        require_admin(shared, visitor, "rule-dry-run", Some(rule_id.clone())).await?;
        let period = match params.period.trim() {
            "" => DEFAULT_PERIOD,
            p => PERIODS
                .iter()
                .copied()
                .find(|x| *x == p)
                .ok_or_else(|| WebError::BadRequest(format!("not a dry-run period: {p}")))?,
        };
        if shared.options.rules.is_empty() {
            return Err(WebError::NotFound);
        }
        // A file that does not load: the rules page says which and why.
        let Ok(policy) = load(shared).await? else {
            return Ok(Redirect::to("/rules").into_response());
        };
        let Some(rule) = policy.rule(&rule_id) else {
            return Err(WebError::NotFound);
        };
        let rule_name = rule.rule.name.clone().unwrap_or_default();
        record(
            shared,
            visitor,
            "rule-dry-run",
            Some(rule_id.clone()),
            Some(period.to_string()),
        )
        .await?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let range = parse_query(&format!("newer_than:{period}"), tz).map_err(WebError::Internal)?;
        let readers = shared.readers.clone();
        let org_domains = shared.options.org_domains.clone();
        let choices = rule_choices(&policy, &rule_id);
        let hunted_rule = rule_id.clone();
        let hunted = blocking(move || {
            let store = readers.get()?;
            let directory = StoreDirectory::load(&*store, &org_domains)?;
            let decode = mailtrail_ingest::DecodeOptions {
                timezone: tz,
                ..mailtrail_ingest::DecodeOptions::default()
            };
            let hunt = Hunt {
                store: &store,
                policy: &policy,
                directory: &directory,
                decode: &decode,
            };
            let parse = move |text: &str| parse_query(text, tz);
            let mut first = Vec::new();
            let stats = retro_hunt(&hunt, &hunted_rule, &range, &parse, &mut |m, hit| {
                if first.len() < DRY_RUN_SHOWN {
                    first.push((m.clone(), hit));
                }
                Ok(())
            })?;
            Ok(Hunted {
                matched: stats.matched,
                candidates: stats.candidates,
                first,
            })
        })
        .await?;
        let tr = |k: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]| {
            shared.catalog.text(lang, k, args)
        };
        let matches = hunted
            .first
            .iter()
            .map(|(m, hit)| MatchView {
                id: m.id,
                time: display_time(m)
                    .map(|t| i18n::datetime(lang, t, tz))
                    .unwrap_or_default(),
                from: m
                    .from
                    .as_ref()
                    .map(|f| f.address.clone())
                    .or_else(|| m.envelope_from.clone())
                    .unwrap_or_default(),
                subject: m.subject.clone().unwrap_or_default(),
                hits: hit
                    .hits
                    .iter()
                    .map(|h| {
                        let located = serde_json::to_value(&h.location).unwrap_or(Value::Null);
                        let at = located.get("at").and_then(Value::as_str).unwrap_or("");
                        HitView {
                            condition: word(
                                shared,
                                lang,
                                &format!("condition-{}", h.condition_type.replace('_', "-")),
                                h.condition_type,
                            ),
                            location: location_label(shared, lang, at),
                            text: h.text.clone(),
                            detail: h.detail.clone().unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let page = DryRunPage {
            chrome: chrome(shared, visitor),
            rule_id,
            rule_name,
            rule_choices: choices,
            periods: period_choices(shared, lang, period),
            count_text: tr(
                "rules-dry-run-count",
                &[
                    ("days", period.trim_end_matches('d').to_string().into()),
                    ("count", i18n::number(hunted.matched).into()),
                    ("examined", i18n::number(hunted.candidates).into()),
                ],
            ),
            shown_text: (hunted.matched > DRY_RUN_SHOWN as u64).then(|| {
                tr(
                    "rules-dry-run-shown",
                    &[("count", i18n::number(DRY_RUN_SHOWN as u64).into())],
                )
            }),
            matches,
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}
