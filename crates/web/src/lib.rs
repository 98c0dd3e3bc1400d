//! The web console: search, the message and its trail, pivots to related
//! mail, attachment downloads, exports, the dashboard ([`dashboard`]), the
//! alerts the monitoring rules raised (`alerts`), the people and devices
//! behind addresses (the directory), the sources page (what the running
//! service reports, via [`WebOptions::sources`], and the notifications
//! that could not be delivered), collection coverage (`coverage`: who and
//! which PCs no source captured mail for), the monitoring rules in force
//! and their dry run (`rules`), their editor (`rule_edit`), the risk view
//! when the organisation turned it on (`risk`), and the audit log — in Japanese and
//! English, served by `mailtrail serve`.
//!
//! Why it is shaped this way:
//! - **Server-rendered HTML** from compile-time checked templates (askama):
//!   no JavaScript framework and no build step outside cargo; every value is
//!   HTML-escaped by the template unless marked otherwise, and the only such
//!   value is a mail's HTML body after the sanitiser ([`html`]). Everything
//!   works without script; one small hand-written file (`/static/app.js`,
//!   allowed by `script-src 'self'`, nothing inline) adds keyboard
//!   navigation of results and copying the query.
//! - **The query is the single source of truth** of a search: the filter
//!   form edits the query text ([`filters`]) and the pivots from a message
//!   are queries ([`pivots`]), so what was searched is always visible,
//!   editable, bookmarkable and audited as written. The one search the
//!   language cannot express — "every message carrying this file", by
//!   content hash — is its own parameter (`/search?attachment=HASH`).
//! - **Reads open the store read-only per request** on a blocking thread
//!   (opening is a memory map and a schema check: about a millisecond), so
//!   a slow query never holds the runtime and never blocks the writer; the
//!   console's own writes (sessions, audit entries) go through one
//!   read-write connection behind a mutex.
//! - **Nothing is shown before it is recorded**: every search, message view,
//!   download and export writes its audit entry first; if that fails, the
//!   request fails.
//! - **Two roles**: administrators see everything; viewers search metadata
//!   and never see content or download anything — enforced in each handler,
//!   not only by hiding links.
//! - One error type ([`WebError`]) becomes the HTTP response, as a page in
//!   the user's language.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use mailtrail_model::{OrgDomains, RecipientKind};
use mailtrail_store::console::{AuditFilter, ConsoleStore, NewAuditEntry, Role, Session, User};
use mailtrail_store::directory::DirectoryStore;
use mailtrail_store::query::{self, QueryContext};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store, StoredMessage};
use serde::Deserialize;

mod alerts;
pub mod api;
pub mod attachment;
pub mod auth;
mod coverage;
pub mod dashboard;
pub mod filters;
pub mod html;
pub mod i18n;
pub mod json;
pub mod pivots;
mod risk;
mod rule_edit;
mod rules;

use auth::{Brake, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE};
use i18n::{Catalog, Lang};

/// Results per page.
const PAGE_SIZE: u32 = 50;
/// The most rows one export writes.
const EXPORT_LIMIT: u32 = 100_000;
const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");
/// How long the list of systems for the filter form is kept (reading it
/// walks every message row).
const SYSTEMS_TTL: Duration = Duration::from_secs(300);

/// What the sources page shows: the running service's own account of its
/// sources (`mailtrail serve` passes the same JSON `/healthz` answers). The
/// web crate does not know the server's counters; it asks this on each
/// visit.
#[derive(Clone)]
pub struct SourcesProvider(pub Arc<dyn Fn() -> serde_json::Value + Send + Sync>);

impl std::fmt::Debug for SourcesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourcesProvider")
    }
}

/// How the console is served.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub data_dir: PathBuf,
    pub org_domains: Vec<String>,
    /// Zone of the dates shown.
    pub timezone: chrono_tz::Tz,
    /// Mark cookies `Secure` (the console is reached over HTTPS, directly
    /// or through a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_length: Duration,
    /// The sources page's data; without it (a console not run by
    /// `mailtrail serve`) the page is not offered.
    pub sources: Option<SourcesProvider>,
    /// The rule files in force (`[policy] rules`: files, or folders of
    /// `*.toml`), shown on the rules page and used by its dry run, and
    /// edited there by administrators (new rules go to
    /// `console.toml` in the first folder of the list).
    pub rules: Vec<PathBuf>,
    /// How often the running service looks for changed rule files
    /// (`[policy] reload_secs`): the rules page says an edit is in force
    /// within this many seconds.
    pub rules_reload_secs: u64,
    /// The risk page (`[risk] enabled = true`); without it the page is
    /// not offered and answers 404.
    pub risk: Option<RiskPageOptions>,
}

/// The risk page's defaults (`[risk] days` and `baseline_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskPageOptions {
    /// Days in the period shown, ending today (default 30).
    pub days: u32,
    /// Days before each day that make a person's baseline (default 28).
    pub baseline_days: u32,
}

impl Default for RiskPageOptions {
    fn default() -> Self {
        RiskPageOptions {
            days: mailtrail_policy::risk::RiskSettings::DEFAULT_DAYS,
            baseline_days: mailtrail_policy::risk::RiskSettings::DEFAULT_BASELINE_DAYS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not signed in")]
    SignIn,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("the form's token does not match this session")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("store: {0}")]
    Store(#[from] mailtrail_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

struct Shared {
    options: WebOptions,
    catalog: Catalog,
    console: Mutex<SqliteStore>,
    /// A read-only connection for the session lookup every request starts
    /// with: neither behind the console connection's writes (audit
    /// entries) nor behind the readers' long work (retro-hunt dry runs,
    /// risk reports hold a pooled reader for their whole run).
    sessions: Mutex<SqliteStore>,
    readers: Arc<ReaderPool>,
    brake: Brake,
    /// The systems seen, for the filter form, and when they were read.
    systems: Mutex<Option<(Instant, Vec<String>)>>,
    /// Dashboard figures by period, recomputed at most every
    /// [`DASHBOARD_FRESH`]: the same month's dashboard opened by several
    /// administrators is computed once. One slot per period, so periods are
    /// computed side by side; while a period is recomputed, other requests
    /// get its previous figures instead of waiting (only the very first
    /// request of a period waits for the computation).
    dashboards: Mutex<DashboardCache>,
    /// Held while a rule file is checked and written, so that two saves
    /// never interleave (each reads the files the other wrote).
    rules_write: tokio::sync::Mutex<()>,
    /// Audit entries waiting to be committed together.
    audit: AuditQueue,
}

/// A period's latest figures, when they were computed, and the lock held by
/// the request computing them.
#[derive(Default)]
struct DashboardSlotInner {
    figures: Mutex<Option<(Instant, Arc<mailtrail_store::Dashboard>)>>,
    computing: tokio::sync::Mutex<()>,
}

type DashboardSlot = Arc<DashboardSlotInner>;
type DashboardCache =
    std::collections::HashMap<(chrono::NaiveDate, chrono::NaiveDate), DashboardSlot>;
/// Periods kept; beyond this the idle, stale ones are dropped.
const DASHBOARD_PERIODS: usize = 64;

/// How long dashboard figures are reused (the page says they may be this old).
const DASHBOARD_FRESH: Duration = Duration::from_secs(60);

/// Everything a handler needs to know about the request's user.
struct Visitor {
    lang: Lang,
    ip: String,
    /// The signed-in account, or for an API token `token:NAME` with the
    /// token's role.
    user: Option<User>,
    /// The browser session the user came with (none for an API token).
    session: Option<Session>,
}

impl Visitor {
    fn user(&self) -> Result<&User, WebError> {
        self.user.as_ref().ok_or(WebError::SignIn)
    }

    fn admin(&self) -> Result<&User, WebError> {
        let user = self.user()?;
        if user.role == Role::Administrator {
            Ok(user)
        } else {
            Err(WebError::Forbidden)
        }
    }
}

/// Translations for templates: `{{ t.get("key") }}`.
pub struct Tr<'a> {
    catalog: &'a Catalog,
    lang: Lang,
}

impl Tr<'_> {
    pub fn get(&self, key: &str) -> String {
        self.catalog.text(self.lang, key, &[])
    }
}

/// What every page shows around its content.
pub struct Chrome<'a> {
    t: Tr<'a>,
    lang: &'static str,
    other_lang: &'static str,
    signed_in: bool,
    admin: bool,
    /// The sources page is offered (administrators, under `mailtrail serve`).
    sources: bool,
    /// The risk page is offered (administrators, `[risk] enabled = true`).
    risk: bool,
    who: String,
    csrf: String,
}

fn chrome<'a>(shared: &'a Shared, visitor: &Visitor) -> Chrome<'a> {
    let t = Tr {
        catalog: &shared.catalog,
        lang: visitor.lang,
    };
    let (signed_in, admin, who, csrf) = match (&visitor.session, &visitor.user) {
        (Some(session), Some(user)) => {
            let role = t.get(match user.role {
                Role::Administrator => "role-administrator",
                Role::Viewer => "role-viewer",
            });
            let who = shared.catalog.text(
                visitor.lang,
                "signed-in-as",
                &[("user", user.name.clone().into()), ("role", role.into())],
            );
            (
                true,
                user.role == Role::Administrator,
                who,
                session.csrf.clone(),
            )
        }
        _ => (false, false, String::new(), String::new()),
    };
    Chrome {
        t,
        lang: visitor.lang.code(),
        other_lang: visitor.lang.other().code(),
        signed_in,
        admin,
        sources: admin && shared.options.sources.is_some(),
        risk: admin && shared.options.risk.is_some(),
        who,
        csrf,
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome<'a>,
    title: String,
    message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Chrome<'a>,
    error: Option<String>,
    login_token: String,
    user: String,
}

struct Row {
    id: i64,
    time: String,
    direction: String,
    from: String,
    /// Who the sender is, per the directory.
    from_who: Option<PersonLabel>,
    /// (css class, address)
    recipients: Vec<(&'static str, String)>,
    more: usize,
    subject: String,
    attachments: String,
    size: String,
    status: String,
}

/// One option of a `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The filter form, filled from the query ([`filters::state_of`]).
struct FilterView {
    open: bool,
    since: String,
    until: String,
    has_attachment: bool,
    directions: Vec<Choice>,
    systems: Vec<Choice>,
    statuses: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    chrome: Chrome<'a>,
    q: String,
    q_url: String,
    searched: bool,
    error: Option<String>,
    count: u64,
    count_text: String,
    rows: Vec<Row>,
    previous: Option<u64>,
    next: Option<u64>,
    /// What the paging links repeat: `q=…` or `attachment=…`.
    page_base: String,
    /// "Messages carrying the file …" when searching by attachment.
    attachment: Option<String>,
    filter: FilterView,
}

struct AttachmentView {
    index: usize,
    name: String,
    size: String,
    content_type: String,
    encrypted: bool,
    hash: String,
    inner: Vec<String>,
    /// An administrator can download it (content was captured).
    download: bool,
    /// `/search?attachment=…`, when the file's hash is known.
    same: Option<String>,
}

/// A pivot: a labelled search.
struct PivotView {
    label: String,
    query: String,
    href: String,
}

/// A person on the message and their mail around it.
struct PersonView {
    address: String,
    role: String,
    sent: String,
    received: String,
}

struct TrailView {
    time: String,
    system: String,
    event: String,
    recipient: String,
    detail: String,
}

/// Who an address belongs to, in words (`山田 太郎（本社/営業部）`), and
/// whether the directory no longer lists them (or lists them as gone).
#[derive(Clone)]
struct PersonLabel {
    text: String,
    gone: bool,
}

/// An address on the message page, with who it is.
struct AddressView {
    text: String,
    who: Option<PersonLabel>,
}

/// A line of the message's headers: its label, and its value as text or
/// as addresses with the people behind them.
struct HeaderView {
    label: String,
    value: String,
    addresses: Vec<AddressView>,
}

/// An alert raised on the message.
struct MessageAlertView {
    id: i64,
    rule: String,
    severity: String,
    severity_class: String,
    state: String,
    raised: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    chrome: Chrome<'a>,
    id: i64,
    subject: String,
    headers: Vec<HeaderView>,
    alerts: Vec<MessageAlertView>,
    attachments: Vec<AttachmentView>,
    trail: Vec<TrailView>,
    has_raw: bool,
    body_note: Option<String>,
    body_text: Option<String>,
    body_html: Option<String>,
    pivots: Vec<PivotView>,
    people: Vec<PersonView>,
    period: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    chrome: Chrome<'a>,
    chain_ok: bool,
    chain_text: String,
    user: String,
    action: String,
    text: String,
    entries: Vec<(String, String, String, String, String, String)>,
}

/// A figure or row of the dashboard and the search behind it.
struct Figure {
    label: String,
    count: String,
    href: String,
}

/// One stacked bar segment of the dashboard's chart.
struct BarView {
    x: String,
    y: String,
    width: String,
    height: String,
    class: &'static str,
    href: String,
    title: String,
}

struct TickView {
    x: String,
    text: String,
}

/// A titled list of the dashboard (top senders, …).
struct FigureList {
    title: String,
    head: String,
    rows: Vec<Figure>,
}

struct LargeAttachmentView {
    name: String,
    size: String,
    message: String,
    same: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    chrome: Chrome<'a>,
    from: String,
    to: String,
    error: Option<String>,
    period_text: String,
    chart_label: String,
    max_text: String,
    width: String,
    height: String,
    baseline: String,
    label_y: String,
    bars: Vec<BarView>,
    ticks: Vec<TickView>,
    legend: Vec<(&'static str, String)>,
    totals: Vec<Figure>,
    failures: Vec<Figure>,
    lists: Vec<FigureList>,
    attachments: Vec<LargeAttachmentView>,
}

/// One block of the sources page: a source (or the service) and its facts.
struct SourceSection {
    title: String,
    rows: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage<'a> {
    chrome: Chrome<'a>,
    sections: Vec<SourceSection>,
    /// Notifications given up on, to retry by hand.
    dead: Vec<alerts::DeadLetterView>,
}

type App = Arc<Shared>;

/// The console's routes. `/healthz` and `/metrics` are the server's; merge
/// them in beside these.
pub fn router(options: WebOptions) -> Result<Router, WebError> {
    let catalog = Catalog::new().map_err(|e| WebError::Internal(e.to_string()))?;
    let console = open_store(&options.data_dir, &options.org_domains, false)?;
    // Opened after the console's connection, which migrates the schema.
    let sessions = open_store(&options.data_dir, &options.org_domains, true)?;
    let readers = Arc::new(ReaderPool::new(
        options.data_dir.clone(),
        options.org_domains.clone(),
    ));
    let shared = Arc::new(Shared {
        options,
        catalog,
        console: Mutex::new(console),
        sessions: Mutex::new(sessions),
        readers,
        brake: Brake::default(),
        systems: Mutex::new(None),
        dashboards: Mutex::new(DashboardCache::new()),
        rules_write: tokio::sync::Mutex::new(()),
        audit: AuditQueue::default(),
    });
    Ok(Router::new()
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(switch_language))
        .route("/search", get(search))
        .route("/search/export", get(export))
        .route("/message/{id}", get(message))
        .route("/message/{id}/raw", get(raw))
        .route("/message/{id}/attachment/{index}", get(download_attachment))
        .route("/audit", get(audit))
        .route("/dashboard", get(dashboard_page))
        .route("/sources", get(sources_page))
        .route("/coverage", get(coverage::coverage_page))
        .route("/rules", get(rules::rules_page))
        .route("/rules/dry-run", get(rules::dry_run))
        .route(
            "/rules/new",
            get(rule_edit::new_form).post(rule_edit::create),
        )
        .route(
            "/rules/{id}/edit",
            get(rule_edit::edit_form).post(rule_edit::save),
        )
        .route("/rules/{id}/state", post(rule_edit::switch))
        .route("/risk", get(risk::risk_page))
        .route("/alerts", get(alerts::inbox))
        .route(
            "/alerts/{id}",
            get(alerts::alert_page).post(alerts::alert_change),
        )
        .route(
            "/notifications/{id}/retry",
            post(alerts::retry_notification),
        )
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .merge(api::routes())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared))
}

/// Every console response: no framing, no sniffing, no referrer to other
/// sites, and a content policy that allows nothing but our own style sheet
/// and script file — even if a sanitiser bug let markup through, no inline
/// or foreign script runs and nothing remote loads.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
}

/// Run blocking store work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
}

/// A connection of the console to the store: every write durable before it
/// is answered; `read_only` for readers (no migration, memory-mapped reads).
fn open_store(
    data_dir: &std::path::Path,
    org_domains: &[String],
    read_only: bool,
) -> Result<SqliteStore, mailtrail_store::StoreError> {
    SqliteStore::open(
        data_dir,
        SqliteOptions {
            org_domains: OrgDomains::new(org_domains),
            durable: true,
            read_only,
            journal_addresses: Vec::new(),
        },
    )
}

/// Read-only connections to the mail store, kept between requests, at
/// most [`ReaderPool::MAX`] at once, lent in the order they were asked for.
///
/// Opening one per request cost a schema check, a cold page cache and a
/// fresh memory map each time, and with many requests at once a map per
/// request made the process's resident size look like gigabytes (the same
/// file pages counted once per map). Kept connections answer from warm
/// caches and maps (twice the searches per second of unmapped reads,
/// measured on 100,000 messages); a request beyond the limit waits for a
/// connection instead of adding a map — on a machine of a few cores more
/// queries at once only share the same CPUs.
///
/// Waiting is first come, first served (a ticket each): when a returned
/// connection went to whichever thread took the lock first, a request
/// arriving just then overtook those already waiting, and under 20 users
/// a few requests waited a second or more behind newer ones.
struct ReaderPool {
    data_dir: PathBuf,
    org_domains: Vec<String>,
    state: Mutex<PoolState>,
    returned: std::sync::Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Connections not lent out.
    idle: Vec<SqliteStore>,
    /// Connections that exist, idle or lent.
    open: usize,
    /// The ticket the next request gets.
    next_ticket: u64,
    /// The ticket whose turn it is.
    serving: u64,
}

impl ReaderPool {
    const MAX: usize = 4;

    fn new(data_dir: PathBuf, org_domains: Vec<String>) -> Self {
        ReaderPool {
            data_dir,
            org_domains,
            state: Mutex::new(PoolState::default()),
            returned: std::sync::Condvar::new(),
        }
    }

    /// A connection when this request's turn comes: an idle one, a new one
    /// while fewer than [`Self::MAX`] exist, else the next one returned.
    /// Call from a blocking thread.
    fn get(self: &Arc<Self>) -> Result<PooledReader, WebError> {
        // A poisoned lock is taken over, not refused: a ticket given out
        // must be served, or every later request would wait for it.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.serving != ticket || (state.idle.is_empty() && state.open >= Self::MAX) {
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.serving += 1;
        let idle = state.idle.pop();
        if idle.is_none() {
            state.open += 1;
        }
        drop(state);
        // The next ticket may be served too (a connection left, or room to open one).
        self.returned.notify_all();
        if let Some(store) = idle {
            return Ok(self.lend(store));
        }
        // The place counted above is given back if the open fails or panics.
        struct Place<'a>(Option<&'a ReaderPool>);
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                if let Some(pool) = self.0 {
                    pool.state.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                    pool.returned.notify_all();
                }
            }
        }
        let mut place = Place(Some(self));
        let store = open_store(&self.data_dir, &self.org_domains, true)?;
        place.0 = None;
        Ok(self.lend(store))
    }

    fn lend(self: &Arc<Self>, store: SqliteStore) -> PooledReader {
        PooledReader {
            store: Some(store),
            pool: Arc::clone(self),
        }
    }
}

/// A reader on loan from the [`ReaderPool`]; returned when dropped.
struct PooledReader {
    store: Option<SqliteStore>,
    pool: Arc<ReaderPool>,
}

impl std::ops::Deref for PooledReader {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        // Present from creation until drop.
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledReader {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let mut state = self.pool.state.lock().unwrap_or_else(|p| p.into_inner());
            // A connection left inside a transaction (a commit that failed)
            // would serve an old snapshot and refuse the next one: it goes
            // back only once out of it, else it is closed.
            if store.end_transaction() {
                state.idle.push(store);
            } else {
                state.open -= 1;
            }
        }
        self.pool.returned.notify_all();
    }
}

fn with_console<T>(
    shared: &Shared,
    f: impl FnOnce(&mut SqliteStore) -> Result<T, mailtrail_store::StoreError>,
) -> Result<T, WebError> {
    let mut console = shared
        .console
        .lock()
        .map_err(|_| WebError::Internal("the console store lock is poisoned".into()))?;
    Ok(f(&mut console)?)
}

/// Who is asking: language, address, and the session if the cookie names a live one.
async fn visitor(shared: &App, headers: &HeaderMap, peer: SocketAddr) -> Result<Visitor, WebError> {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let lang = i18n::negotiate(
        auth::cookie(cookies, LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let ip = peer.ip().to_string();
    let Some(token) = auth::cookie(cookies, SESSION_COOKIE).map(str::to_string) else {
        return Ok(Visitor {
            lang,
            ip,
            user: None,
            session: None,
        });
    };
    // A read, on its own connection (see `Shared::sessions`).
    let app = shared.clone();
    let signed_in = blocking(move || {
        // Taken over if poisoned: the connection only reads.
        let store = app.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = store.session(&auth::token_hash(&token), Utc::now())? else {
            return Ok(None);
        };
        let user = store.user(&session.user)?;
        Ok(user.filter(|u| !u.disabled).map(|u| (session, u)))
    })
    .await?;
    let (session, user) = signed_in.unzip();
    Ok(Visitor {
        lang,
        ip,
        user,
        session,
    })
}

/// Who is asking the JSON API: an `Authorization: Bearer` token when the
/// request carries one (and then only that token: a wrong or revoked token
/// is refused even if a session cookie came along), else the browser's
/// session as for the pages.
async fn api_visitor(
    shared: &App,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Visitor, WebError> {
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return visitor(shared, headers, peer).await;
    };
    let lang = i18n::negotiate(
        None,
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let ip = peer.ip().to_string();
    let Some(token) = authorization.to_str().ok().and_then(auth::bearer_token) else {
        return Ok(Visitor {
            lang,
            ip,
            user: None,
            session: None,
        });
    };
    let hash = auth::token_hash(token);
    let app = shared.clone();
    let found =
        blocking(move || with_console(&app, |store| store.api_token(&hash, Utc::now()))).await?;
    Ok(Visitor {
        lang,
        ip,
        user: found.map(|t| User {
            name: format!("{}{}", auth::TOKEN_USER_PREFIX, t.name),
            password_hash: String::new(),
            role: t.role,
            disabled: false,
            created: t.created,
        }),
        session: None,
    })
}

/// Administrators only. A signed-in viewer's attempt is refused and
/// recorded (`denied`, with what was attempted) — in an investigation, who
/// tried to open content matters as much as who did.
async fn require_admin(
    shared: &App,
    visitor: &Visitor,
    attempted: &str,
    target: Option<String>,
) -> Result<(), WebError> {
    match visitor.admin() {
        Err(WebError::Forbidden) => {
            record(
                shared,
                visitor,
                "denied",
                target,
                Some(attempted.to_string()),
            )
            .await?;
            Err(WebError::Forbidden)
        }
        other => other.map(|_| ()),
    }
}

/// Record an audited action before answering.
async fn record(
    shared: &App,
    visitor: &Visitor,
    action: &str,
    target: Option<String>,
    detail: Option<String>,
) -> Result<(), WebError> {
    let entry = NewAuditEntry {
        time: Utc::now(),
        user: visitor
            .user
            .as_ref()
            .map_or_else(String::new, |u| u.name.clone()),
        ip: Some(visitor.ip.clone()),
        action: action.to_string(),
        target,
        detail,
    };
    let (done, committed) = tokio::sync::oneshot::channel();
    let start_writer = {
        let mut queue = shared.audit.lock();
        queue.waiting.push((entry, done));
        !std::mem::replace(&mut queue.writing, true)
    };
    if start_writer {
        let app = shared.clone();
        tokio::task::spawn_blocking(move || write_audit_queue(&app));
    }
    match committed.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WebError::Internal(format!("writing the audit log: {e}"))),
        Err(_) => Err(WebError::Internal("the audit log's writer stopped".into())),
    }
}

/// Audit entries waiting for their commit, and whether a writer is at work.
///
/// Every audited request waits until its entry is committed — durably: the
/// console connection syncs each commit — before it answers. With a commit
/// per request, the requests of a busy moment queued behind each other's
/// `fsync` (a slow disk allows only so many a second, whatever the CPUs);
/// here the entries that arrive while a commit is under way are written
/// together by the next one, in arrival order, so the chain is the one
/// they would have had one by one.
#[derive(Default)]
struct AuditQueue {
    state: Mutex<AuditQueueState>,
}

#[derive(Default)]
struct AuditQueueState {
    /// Entries not yet written, each with its request's answer channel.
    waiting: Vec<(NewAuditEntry, AuditDone)>,
    /// A writer ([`write_audit_queue`]) is running and will take them.
    writing: bool,
}

type AuditDone = tokio::sync::oneshot::Sender<Result<(), String>>;

impl AuditQueue {
    /// The state; a poisoned lock is taken over (the state stays valid: it
    /// is only pushed to and taken from).
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditQueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Write the waiting audit entries, one commit for all that are waiting,
/// until none are left. Run on a blocking thread.
fn write_audit_queue(shared: &Shared) {
    /// If the writer panics: the entries still waiting are answered with an
    /// error (their senders dropped) and the next request starts a writer.
    struct OnPanic<'a>(&'a AuditQueue);
    impl Drop for OnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut queue = self.0.lock();
                queue.waiting.clear();
                queue.writing = false;
            }
        }
    }
    let _on_panic = OnPanic(&shared.audit);
    loop {
        let batch = {
            let mut queue = shared.audit.lock();
            if queue.waiting.is_empty() {
                queue.writing = false;
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        let (entries, done): (Vec<NewAuditEntry>, Vec<AuditDone>) = batch.into_iter().unzip();
        let result =
            with_console(shared, |store| store.audit_all(&entries)).map_err(|e| error_chain(&e));
        for d in done {
            // A request that has gone away (client closed) no longer listens.
            let _ = d.send(result.clone());
        }
    }
}

fn html_page(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The error as a page in the visitor's language (or a redirect to sign in).
/// An error with its causes, for the server's log: "store: database error:
/// database is locked", not only "store: database error".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn error_response(shared: &Shared, visitor: &Visitor, error: WebError) -> Response {
    let (status, key) = match &error {
        WebError::SignIn => return Redirect::to("/login").into_response(),
        WebError::Forbidden => (StatusCode::FORBIDDEN, "error-forbidden"),
        WebError::NotFound => (StatusCode::NOT_FOUND, "error-not-found"),
        WebError::Csrf => (StatusCode::FORBIDDEN, "error-csrf"),
        WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "error-not-found"),
        WebError::Store(_) | WebError::Internal(_) => {
            eprintln!("mailtrail web: {}", error_chain(&error));
            (StatusCode::INTERNAL_SERVER_ERROR, "error-internal")
        }
    };
    let chrome = chrome(shared, visitor);
    let message = chrome.t.get(key);
    html_page(
        status,
        ErrorPage {
            title: message.clone(),
            message,
            chrome,
        },
    )
}

/// Run a handler body, turning its error into the response.
async fn respond<F>(shared: App, headers: HeaderMap, peer: SocketAddr, f: F) -> Response
where
    F: AsyncFnOnce(&App, &Visitor) -> Result<Response, WebError>,
{
    let visitor = match visitor(&shared, &headers, peer).await {
        Ok(v) => v,
        Err(e) => {
            let anonymous = Visitor {
                lang: Lang::En,
                ip: peer.ip().to_string(),
                user: None,
                session: None,
            };
            return error_response(&shared, &anonymous, e);
        }
    };
    match f(&shared, &visitor).await {
        Ok(response) => response,
        Err(e) => error_response(&shared, &visitor, e),
    }
}

// ---------------------------------------------------------------- sign-in

async fn login_form(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    respond(shared, headers, peer, async |shared, visitor| {
        if visitor.session.is_some() {
            return Ok(Redirect::to("/search").into_response());
        }
        Ok(login_page(
            shared,
            visitor,
            StatusCode::OK,
            None,
            String::new(),
        ))
    })
    .await
}

fn login_page(
    shared: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    error: Option<String>,
    user: String,
) -> Response {
    let token = auth::random_token();
    let mut response = html_page(
        status,
        LoginPage {
            chrome: chrome(shared, visitor),
            error,
            login_token: token.clone(),
            user,
        },
    );
    add_cookie(
        &mut response,
        shared,
        LOGIN_COOKIE,
        &token,
        Duration::from_secs(3600),
    );
    response
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

async fn login(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    respond(shared, headers, peer, async move |shared, visitor| {
        let expected = auth::cookie(cookies.as_deref(), LOGIN_COOKIE).unwrap_or("");
        if expected.is_empty() || !auth::same_token(expected, &form.csrf) {
            return Err(WebError::Csrf);
        }
        let now = Instant::now();
        let keys = [format!("ip:{}", visitor.ip), format!("user:{}", form.user)];
        if let Some(wait) = keys.iter().filter_map(|k| shared.brake.wait(k, now)).max() {
            let message = shared.catalog.text(
                visitor.lang,
                "sign-in-throttled",
                &[("seconds", wait.as_secs().max(1).into())],
            );
            return Ok(login_page(
                shared,
                visitor,
                StatusCode::TOO_MANY_REQUESTS,
                Some(message),
                form.user.clone(),
            ));
        }
        let app = shared.clone();
        let name = form.user.clone();
        let password = form.password.clone();
        let user = blocking(move || {
            let user = with_console(&app, |store| store.user(&name))?;
            Ok(user.filter(|u| !u.disabled && auth::verify_password(&u.password_hash, &password)))
        })
        .await?;
        let Some(user) = user else {
            // Counted from the answer, not the request: verifying is slow.
            let failed_at = Instant::now();
            for key in &keys {
                shared.brake.failed(key, failed_at);
            }
            record(
                shared,
                visitor,
                "sign-in-failed",
                Some(form.user.clone()),
                None,
            )
            .await?;
            let message = shared.catalog.text(visitor.lang, "sign-in-failed", &[]);
            return Ok(login_page(
                shared,
                visitor,
                StatusCode::UNAUTHORIZED,
                Some(message),
                form.user.clone(),
            ));
        };
        for key in &keys {
            shared.brake.succeeded(key);
        }
        let token = auth::random_token();
        let created = Utc::now();
        let length = shared.options.session_length;
        let session = Session {
            token_hash: auth::token_hash(&token),
            user: user.name.clone(),
            csrf: auth::random_token(),
            created,
            expires: created
                + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::hours(8)),
            ip: Some(visitor.ip.clone()),
        };
        let app = shared.clone();
        let stored = session.clone();
        blocking(move || {
            with_console(&app, |store| {
                store.delete_sessions(Utc::now(), None)?;
                store.create_session(&stored)
            })
        })
        .await?;
        let signed_in = Visitor {
            lang: visitor.lang,
            ip: visitor.ip.clone(),
            user: Some(user),
            session: Some(session),
        };
        record(shared, &signed_in, "sign-in", None, None).await?;
        let mut response = Redirect::to("/search").into_response();
        add_cookie(&mut response, shared, SESSION_COOKIE, &token, length);
        add_cookie(&mut response, shared, LOGIN_COOKIE, "", Duration::ZERO);
        Ok(response)
    })
    .await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let Some(session) = &visitor.session else {
            return Ok(Redirect::to("/login").into_response());
        };
        if !auth::same_token(&session.csrf, &form.csrf) {
            return Err(WebError::Csrf);
        }
        record(shared, visitor, "sign-out", None, None).await?;
        let app = shared.clone();
        let hash = session.token_hash.clone();
        blocking(move || with_console(&app, |store| store.delete_session(&hash))).await?;
        let mut response = Redirect::to("/login").into_response();
        add_cookie(&mut response, shared, SESSION_COOKIE, "", Duration::ZERO);
        Ok(response)
    })
    .await
}

async fn switch_language(
    State(shared): State<App>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    // Back to the page the switch was on, if it was one of ours.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/search".to_string());
    let mut response = Redirect::to(&back).into_response();
    add_cookie(
        &mut response,
        &shared,
        LANG_COOKIE,
        lang.code(),
        Duration::from_secs(365 * 24 * 3600),
    );
    response
}

/// Set a cookie on a response (`Secure` as configured); `max_age` zero deletes it.
fn add_cookie(
    response: &mut Response,
    shared: &Shared,
    name: &str,
    value: &str,
    max_age: Duration,
) {
    let cookie = auth::set_cookie(name, value, max_age, shared.options.secure_cookies);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

// ---------------------------------------------------------------- search

#[derive(Deserialize, Default)]
struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
    /// Search by attachment content hash instead of a query.
    attachment: Option<String>,
    // The filter form ([`filters`]): the query it was filled from, and its fields.
    q0: Option<String>,
    since: Option<String>,
    until: Option<String>,
    direction: Option<String>,
    system: Option<String>,
    status: Option<String>,
    has: Option<String>,
}

impl SearchParams {
    /// The filter form was submitted (the whole form: an unticked box is absent).
    fn form_submitted(&self) -> bool {
        [
            &self.q0,
            &self.since,
            &self.until,
            &self.direction,
            &self.system,
            &self.status,
            &self.has,
        ]
        .iter()
        .any(|v| v.is_some())
    }

    fn form(&self) -> filters::FilterState {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        filters::FilterState {
            since: v(&self.since),
            until: v(&self.until),
            direction: v(&self.direction),
            system: v(&self.system),
            status: v(&self.status),
            has_attachment: self.has.as_deref().is_some_and(|h| !h.is_empty()),
        }
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The message's status in one word: the worst of each recipient's latest
/// status (a delivery retried after a deferral counts as delivered), or
/// `received` when nothing was handed on yet.
fn status_key(m: &StoredMessage) -> &'static str {
    use mailtrail_model::DeliveryStatus as S;
    let mut latest: std::collections::BTreeMap<&str, &mailtrail_model::Delivery> =
        std::collections::BTreeMap::new();
    for d in m.deliveries.iter().filter(|d| d.status != S::Received) {
        let slot = latest.entry(d.recipient.as_str()).or_insert(d);
        if d.time >= slot.time {
            *slot = d;
        }
    }
    let finals: Vec<S> = if latest.is_empty() {
        m.deliveries.iter().map(|d| d.status).collect()
    } else {
        latest.values().map(|d| d.status).collect()
    };
    let worst = [
        S::Bounced,
        S::Rejected,
        S::Failed,
        S::Expired,
        S::Quarantined,
        S::Deferred,
        S::Delivered,
        S::Forwarded,
        S::Expanded,
        S::Received,
    ]
    .into_iter()
    .find(|s| finals.contains(s));
    match worst {
        Some(S::Bounced) => "status-bounced",
        Some(S::Rejected) => "status-rejected",
        Some(S::Failed) => "status-failed",
        Some(S::Expired) => "status-expired",
        Some(S::Quarantined) => "status-quarantined",
        Some(S::Deferred) => "status-deferred",
        Some(S::Delivered) => "status-delivered",
        Some(S::Forwarded) => "status-forwarded",
        Some(S::Expanded) => "status-expanded",
        Some(S::Received) => "status-received",
        None => "status-none",
    }
}

fn direction_key(m: &StoredMessage) -> String {
    format!("direction-{}", m.direction.as_str())
}

use json::display_time;

fn row(shared: &Shared, lang: Lang, m: &StoredMessage) -> Row {
    let t = |k: &str| shared.catalog.text(lang, k, &[]);
    let mut recipients: Vec<(&'static str, String)> = m
        .recipients
        .iter()
        .map(|r| {
            let class = match r.kind {
                RecipientKind::To | RecipientKind::Envelope => "to",
                RecipientKind::Cc => "cc",
                RecipientKind::Bcc => "bcc",
            };
            (class, r.address.clone())
        })
        .collect();
    // Collapsed when long: the first five, and how many more.
    let more = recipients.len().saturating_sub(5);
    recipients.truncate(5);
    Row {
        id: m.id,
        time: display_time(m)
            .map(|t| i18n::datetime(lang, t, shared.options.timezone))
            .unwrap_or_default(),
        direction: t(&direction_key(m)),
        from: m
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .or_else(|| m.envelope_from.clone())
            .unwrap_or_default(),
        from_who: None,
        recipients,
        more,
        subject: m.subject.clone().unwrap_or_default(),
        attachments: m
            .attachments
            .iter()
            .filter_map(|a| a.filename.clone())
            .collect::<Vec<_>>()
            .join(", "),
        size: m.size.map(i18n::size).unwrap_or_default(),
        status: t(status_key(m)),
    }
}

fn parse_query(q: &str, tz: chrono_tz::Tz) -> Result<query::Expr, String> {
    let ctx = QueryContext {
        now: Utc::now(),
        timezone: tz,
    };
    query::parse(q, &ctx).map_err(|e| e.to_string())
}

/// The systems seen, from a cache refreshed every [`SYSTEMS_TTL`]; empty
/// (and logged) if the store cannot say — the picker is not worth failing
/// a search for.
async fn known_systems(shared: &App) -> Vec<String> {
    if let Ok(cache) = shared.systems.lock() {
        if let Some((read, list)) = cache.as_ref() {
            if read.elapsed() < SYSTEMS_TTL {
                return list.clone();
            }
        }
    }
    let readers = shared.readers.clone();
    match blocking(move || Ok(readers.get()?.systems()?)).await {
        Ok(list) => {
            if let Ok(mut cache) = shared.systems.lock() {
                *cache = Some((Instant::now(), list.clone()));
            }
            list
        }
        Err(e) => {
            eprintln!("mailtrail web: listing systems: {e}");
            Vec::new()
        }
    }
}

/// The filter form for query `q`, in the visitor's language.
async fn filter_view(shared: &App, lang: Lang, q: &str) -> FilterView {
    let state = filters::state_of(q);
    let t = |k: &str| shared.catalog.text(lang, k, &[]);
    let any = || Choice {
        value: String::new(),
        label: t("filter-any"),
        selected: false,
    };
    let choices = |values: Vec<(String, String)>, current: &str| {
        let mut list = vec![any()];
        list.extend(values.into_iter().map(|(value, label)| Choice {
            selected: value == current,
            value,
            label,
        }));
        if !current.is_empty() && !list.iter().any(|c| c.selected) {
            list.push(Choice {
                value: current.to_string(),
                label: current.to_string(),
                selected: true,
            });
        }
        if let Some(first) = list.first_mut() {
            first.selected = current.is_empty();
        }
        list
    };
    let directions = choices(
        mailtrail_model::Direction::ALL
            .iter()
            .map(|d| {
                (
                    d.as_str().to_string(),
                    t(&format!("direction-{}", d.as_str())),
                )
            })
            .collect(),
        &state.direction,
    );
    let statuses = choices(
        mailtrail_model::DeliveryStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), t(&format!("status-{}", s.as_str()))))
            .collect(),
        &state.status,
    );
    // Each system, and each family of several (`postfix` for postfix@mx1
    // and postfix@mx2: `system:postfix` matches both).
    let mut names = std::collections::BTreeSet::new();
    for name in known_systems(shared).await {
        if let Some((family, _)) = name.split_once('@') {
            names.insert(family.to_string());
        }
        names.insert(name);
    }
    let systems = choices(
        names.into_iter().map(|n| (n.clone(), n)).collect(),
        &state.system,
    );
    FilterView {
        open: state.any(),
        since: state.since,
        until: state.until,
        has_attachment: state.has_attachment,
        directions,
        systems,
        statuses,
    }
}

async fn search(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let lang = visitor.lang;
        let mut q = params.q.trim().to_string();
        let mut error = None;
        if params.form_submitted() {
            // The form only writes the query; the answer is the query's page.
            let shown = params.q0.as_deref().unwrap_or(&q).trim().to_string();
            match filters::apply(&q, &shown, &params.form()) {
                Ok(written) => {
                    return Ok(
                        Redirect::to(&format!("/search?q={}", url_encode(written.trim())))
                            .into_response(),
                    )
                }
                Err(e) => {
                    error = Some(shared.catalog.text(
                        lang,
                        "filter-invalid",
                        &[("reason", e.to_string().into())],
                    ));
                    q = shown;
                }
            }
        }
        let attachment = params
            .attachment
            .as_deref()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        let mut page = SearchPage {
            chrome: chrome(shared, visitor),
            q_url: url_encode(&q),
            page_base: format!("q={}", url_encode(&q)),
            searched: error.is_none() && (!q.is_empty() || attachment.is_some()),
            filter: filter_view(shared, lang, &q).await,
            q,
            error,
            count: 0,
            count_text: String::new(),
            rows: Vec::new(),
            previous: None,
            next: None,
            attachment: None,
        };
        if page.error.is_some() {
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        }
        if !page.searched {
            return Ok(html_page(StatusCode::OK, page));
        }
        let offset = params.page.saturating_mul(u64::from(PAGE_SIZE));
        let window = Page {
            limit: PAGE_SIZE,
            offset,
        };
        let readers = shared.readers.clone();
        let answer = if let Some(hash) = attachment {
            if !mailtrail_store::blob::is_hash(&hash) {
                return Err(WebError::BadRequest(format!(
                    "not an attachment hash: {hash}"
                )));
            }
            record(
                shared,
                visitor,
                "search",
                None,
                Some(format!("attachment:{hash}")),
            )
            .await?;
            let wanted = hash.clone();
            let answer =
                blocking(move || Ok(readers.get()?.attachment_messages(&wanted, window)?)).await;
            if let Ok((_, found)) = &answer {
                // Every name the file travels under (a forward may rename
                // it), not one that depends on which message sorts first.
                let mut names: Vec<&str> = Vec::new();
                for a in found.iter().flat_map(|m| m.attachments.iter()) {
                    if let Some(n) = a.filename.as_deref().filter(|_| a.blake3 == hash) {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                }
                let name = names.join(", ");
                page.attachment = Some(shared.catalog.text(
                    lang,
                    "search-attachment",
                    &[
                        ("name", name.into()),
                        ("hash", hash.chars().take(16).collect::<String>().into()),
                    ],
                ));
            }
            page.page_base = format!("attachment={hash}");
            page.q.clear();
            page.q_url.clear();
            answer
        } else {
            let expr = match parse_query(&page.q, shared.options.timezone) {
                Ok(expr) => expr,
                Err(reason) => {
                    page.error = Some(shared.catalog.text(
                        lang,
                        "search-error",
                        &[("reason", reason.into())],
                    ));
                    return Ok(html_page(StatusCode::BAD_REQUEST, page));
                }
            };
            record(shared, visitor, "search", None, Some(page.q.clone())).await?;
            blocking(move || {
                let store = readers.get()?;
                Ok(store.count_and_search(&expr, window)?)
            })
            .await
        };
        let (count, found) = match answer {
            Ok(answer) => answer,
            // A query the store refuses (nothing searchable in a term) is
            // the user's to fix, not a server error.
            Err(WebError::Store(mailtrail_store::StoreError::Invalid(reason))) => {
                page.error = Some(shared.catalog.text(
                    lang,
                    "search-error",
                    &[("reason", reason.into())],
                ));
                return Ok(html_page(StatusCode::BAD_REQUEST, page));
            }
            Err(e) => return Err(e),
        };
        page.count = count;
        page.count_text = shared
            .catalog
            .text(lang, "search-count", &[("count", count.into())]);
        page.rows = found.iter().map(|m| row(shared, lang, m)).collect();
        let senders = page.rows.iter().map(|r| r.from.clone()).collect();
        let who = attributions(shared, lang, senders).await;
        for r in &mut page.rows {
            r.from_who = who.get(&r.from).cloned();
        }
        page.previous = params.page.checked_sub(1);
        page.next = (offset.saturating_add(u64::from(PAGE_SIZE)) < count)
            .then(|| params.page.saturating_add(1));
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

#[derive(Deserialize)]
struct ExportParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    format: String,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

async fn export(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<ExportParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        require_admin(shared, visitor, "export", None).await?;
        let json = match params.format.as_str() {
            "json" => true,
            "csv" | "" => false,
            other => return Err(WebError::BadRequest(format!("unknown format {other}"))),
        };
        let expr = parse_query(&params.q, shared.options.timezone).map_err(WebError::BadRequest)?;
        record(
            shared,
            visitor,
            "export",
            None,
            Some(format!("{} {}", if json { "json" } else { "csv" }, params.q)),
        )
        .await?;
        let readers = shared.readers.clone();
        let found = blocking(move || {
            Ok(readers.get()?.search(
                &expr,
                Page {
                    limit: EXPORT_LIMIT,
                    offset: 0,
                },
            )?)
        })
        .await?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let addresses = |m: &StoredMessage, kind: RecipientKind| -> Vec<String> {
            m.recipients
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.address.clone())
                .collect()
        };
        if json {
            let mut body = String::new();
            for m in &found {
                let v = serde_json::json!({
                    "id": m.id,
                    "message_id": m.message_id,
                    "date": display_time(m).map(|t| t.with_timezone(&tz).to_rfc3339()),
                    "direction": m.direction.as_str(),
                    "from": m.from.as_ref().map(|f| f.address.as_str()).or(m.envelope_from.as_deref()),
                    "to": addresses(m, RecipientKind::To),
                    "cc": addresses(m, RecipientKind::Cc),
                    "bcc": addresses(m, RecipientKind::Bcc),
                    "subject": m.subject,
                    "attachments": m.attachments.iter().map(|a| serde_json::json!({"filename": a.filename, "size": a.size})).collect::<Vec<_>>(),
                    "size": m.size,
                    "systems": m.systems,
                });
                body.push_str(&v.to_string());
                body.push('\n');
            }
            return Ok((
                [
                    (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"mailtrail-search.json\"",
                    ),
                ],
                body,
            )
                .into_response());
        }
        // UTF-8 with a BOM: Excel in Japan opens it as UTF-8, not Shift_JIS.
        let mut body = String::from("\u{feff}");
        let t = |k: &str| shared.catalog.text(lang, k, &[]);
        let head = [
            "message-id",
            "col-time",
            "col-direction",
            "col-from",
            "message-to",
            "message-cc",
            "message-bcc",
            "col-subject",
            "col-attachments",
            "col-size",
            "col-status",
        ]
        .map(|k| csv_field(&t(k)))
        .join(",");
        body.push_str(&head);
        body.push_str("\r\n");
        for m in &found {
            let fields = [
                m.message_id.clone().unwrap_or_default(),
                display_time(m)
                    .map(|t| i18n::datetime(lang, t, tz))
                    .unwrap_or_default(),
                t(&direction_key(m)),
                m.from
                    .as_ref()
                    .map(|f| f.address.clone())
                    .or_else(|| m.envelope_from.clone())
                    .unwrap_or_default(),
                addresses(m, RecipientKind::To).join(" "),
                addresses(m, RecipientKind::Cc).join(" "),
                addresses(m, RecipientKind::Bcc).join(" "),
                m.subject.clone().unwrap_or_default(),
                m.attachments
                    .iter()
                    .filter_map(|a| a.filename.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                m.size.map(|s| s.to_string()).unwrap_or_default(),
                t(status_key(m)),
            ];
            body.push_str(
                &fields
                    .iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            body.push_str("\r\n");
        }
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"mailtrail-search.csv\"",
                ),
            ],
            body,
        )
            .into_response())
    })
    .await
}

// ---------------------------------------------------------------- directory

/// An attribution in words: the name (else the person's id) with the
/// department, and a mark for someone the directory no longer lists or
/// lists as gone.
fn person_label(
    shared: &Shared,
    lang: Lang,
    a: &mailtrail_store::directory::Attribution,
) -> PersonLabel {
    use mailtrail_model::directory::EmploymentStatus as S;
    let name = a.name.clone().unwrap_or_else(|| a.id.clone());
    let mut text = match &a.department {
        Some(department) => shared.catalog.text(
            lang,
            "person-department",
            &[
                ("name", name.into()),
                ("department", department.clone().into()),
            ],
        ),
        None => name,
    };
    let mut marks = Vec::new();
    if !a.present {
        marks.push("person-gone");
    }
    match a.status {
        S::Active => {}
        S::OnLeave => marks.push("person-on-leave"),
        S::Resigned => marks.push("person-resigned"),
        S::Disabled => marks.push("person-disabled"),
    }
    for mark in &marks {
        let mark = shared.catalog.text(lang, mark, &[]);
        text = shared.catalog.text(
            lang,
            "person-mark",
            &[("text", text.into()), ("mark", mark.into())],
        );
    }
    PersonLabel {
        text,
        gone: !marks.is_empty(),
    }
}

/// Who these addresses belong to, in one question to the directory. A
/// directory that cannot answer leaves the names out (logged): a label is
/// not worth failing a page for.
async fn attributions(
    shared: &App,
    lang: Lang,
    addresses: Vec<String>,
) -> std::collections::BTreeMap<String, PersonLabel> {
    let mut addresses: Vec<String> = addresses
        .into_iter()
        .filter(|a| !a.is_empty())
        .map(|a| a.to_lowercase())
        .collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Default::default();
    }
    let readers = shared.readers.clone();
    let found = blocking(move || {
        let wanted: Vec<&str> = addresses.iter().map(String::as_str).collect();
        Ok(readers.get()?.attribute_addresses(&wanted)?)
    })
    .await;
    match found {
        Ok(found) => found
            .iter()
            .map(|(address, a)| (address.clone(), person_label(shared, lang, a)))
            .collect(),
        Err(e) => {
            eprintln!("mailtrail web: attributing addresses: {e}");
            Default::default()
        }
    }
}

/// The device the message came from: its client address at the message's
/// time, as the directory knows it (logged and left out on failure).
async fn device_of(shared: &App, lang: Lang, m: &StoredMessage) -> Option<String> {
    let ip = m
        .client_ip
        .clone()
        .or_else(|| m.deliveries.iter().find_map(|d| d.client_ip.clone()))?;
    let time = display_time(m)?;
    let readers = shared.readers.clone();
    let found = blocking(move || Ok(readers.get()?.attribute_device(&ip, time)?)).await;
    match found {
        Ok(Some(device)) => Some(match device.owner_name.or(device.owner) {
            Some(owner) => shared.catalog.text(
                lang,
                "message-device-owner",
                &[
                    ("hostname", device.hostname.into()),
                    ("owner", owner.into()),
                ],
            ),
            None => device.hostname,
        }),
        Ok(None) => None,
        Err(e) => {
            eprintln!("mailtrail web: attributing a device: {e}");
            None
        }
    }
}

// ---------------------------------------------------------------- message

async fn load_message(shared: &App, id: i64) -> Result<StoredMessage, WebError> {
    let readers = shared.readers.clone();
    blocking(move || readers.get()?.message(id)?.ok_or(WebError::NotFound)).await
}

async fn message(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let user = visitor.user()?;
        let admin = user.role == Role::Administrator;
        let m = load_message(shared, id).await?;
        record(
            shared,
            visitor,
            "view",
            Some(id.to_string()),
            m.message_id.clone(),
        )
        .await?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let t = |k: &str| shared.catalog.text(lang, k, &[]);
        // Everyone on the message, in one question to the directory.
        let mut addresses: Vec<String> = m.recipients.iter().map(|r| r.address.clone()).collect();
        addresses.extend(m.from.as_ref().map(|f| f.address.clone()));
        addresses.extend(m.envelope_from.clone());
        let who = attributions(shared, lang, addresses).await;
        let address_view = |address: &str, name: Option<&str>| AddressView {
            text: match name {
                Some(n) => format!("{n} <{address}>"),
                None => address.to_string(),
            },
            who: who.get(&address.to_lowercase()).cloned(),
        };
        let mut address_rows = Vec::new();
        let mut push_addresses = |k: &str, list: Vec<AddressView>| {
            if !list.is_empty() {
                address_rows.push(HeaderView {
                    label: t(k),
                    value: String::new(),
                    addresses: list,
                });
            }
        };
        push_addresses(
            "message-from",
            m.from
                .iter()
                .map(|f| address_view(&f.address, f.display_name.as_deref()))
                .collect(),
        );
        push_addresses(
            "message-envelope-from",
            m.envelope_from
                .iter()
                .map(|a| address_view(a, None))
                .collect(),
        );
        for (key, kind) in [
            ("message-to", RecipientKind::To),
            ("message-cc", RecipientKind::Cc),
            ("message-bcc", RecipientKind::Bcc),
            ("message-envelope-to", RecipientKind::Envelope),
        ] {
            push_addresses(
                key,
                m.recipients
                    .iter()
                    .filter(|r| r.kind == kind)
                    .map(|r| address_view(&r.address, r.display_name.as_deref()))
                    .collect(),
            );
        }
        let mut headers_view = Vec::new();
        let text_row = |k: &str, v: String| {
            (!v.is_empty()).then(|| HeaderView {
                label: t(k),
                value: v,
                addresses: Vec::new(),
            })
        };
        headers_view.extend(text_row(
            "message-id",
            m.message_id.clone().unwrap_or_default(),
        ));
        headers_view.extend(text_row(
            "message-date",
            m.date
                .map(|d| i18n::datetime(lang, d, tz))
                .unwrap_or_default(),
        ));
        headers_view.extend(text_row(
            "message-first-seen",
            m.first_seen
                .map(|d| i18n::datetime(lang, d, tz))
                .unwrap_or_default(),
        ));
        headers_view.extend(address_rows);
        headers_view.extend(text_row(
            "message-device",
            device_of(shared, lang, &m).await.unwrap_or_default(),
        ));
        let mut push = |k: &str, v: String| headers_view.extend(text_row(k, v));
        push("col-direction", t(&direction_key(&m)));
        push("message-size", m.size.map(i18n::size).unwrap_or_default());
        push("message-systems", m.systems.join(", "));
        if !m.auth.is_empty() {
            push(
                "message-auth",
                format!(
                    "spf={} dkim={} dmarc={}",
                    m.auth.spf.as_deref().unwrap_or("-"),
                    m.auth.dkim.as_deref().unwrap_or("-"),
                    m.auth.dmarc.as_deref().unwrap_or("-")
                ),
            );
        }
        let known_hash =
            |a: &mailtrail_model::Attachment| mailtrail_store::blob::is_hash(&a.blake3);
        let attachments = m
            .attachments
            .iter()
            .enumerate()
            .map(|(index, a)| AttachmentView {
                index,
                name: a.filename.clone().unwrap_or_default(),
                size: i18n::size(a.size),
                content_type: a.content_type.clone(),
                encrypted: a.encrypted,
                hash: a.blake3.chars().take(16).collect(),
                inner: a.inner_names.clone(),
                download: admin && m.content_hash.is_some() && known_hash(a),
                same: known_hash(a).then(|| format!("/search?attachment={}", a.blake3)),
            })
            .collect();
        let (pivots, people, period) = pivot_views(shared, lang, &m);
        let (_, raised) = alerts::list_alerts(
            shared,
            mailtrail_store::alerts::AlertFilter {
                message: Some(m.id),
                page: Page {
                    limit: 100,
                    offset: 0,
                },
                ..Default::default()
            },
            None,
        )
        .await?;
        let alert_views = raised
            .iter()
            .map(|(a, _)| MessageAlertView {
                id: a.id,
                rule: alerts::rule_label(a),
                severity: alerts::severity_label(shared, lang, &a.severity),
                severity_class: format!("severity-{}", a.severity),
                state: alerts::state_label(shared, lang, a.state),
                raised: i18n::datetime(lang, a.raised, tz),
            })
            .collect();
        let mut events: Vec<_> = m.deliveries.iter().collect();
        events.sort_by_key(|d| d.time);
        let trail = events
            .into_iter()
            .map(|d| TrailView {
                time: i18n::datetime(lang, d.time, tz),
                system: d.system.clone(),
                event: t(&format!("status-{}", d.status.as_str())),
                recipient: d.recipient.clone(),
                detail: [
                    d.relay.as_deref(),
                    d.client_ip.as_deref(),
                    d.detail.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("  "),
            })
            .collect();
        let (mut body_note, mut body_text, mut body_html) = (None, None, None);
        match (&m.content_hash, admin) {
            (None, _) => body_note = Some(t("message-body-none")),
            (Some(_), false) => body_note = Some(t("message-body-hidden")),
            (Some(hash), true) => {
                let readers = shared.readers.clone();
                let hash = hash.clone();
                let raw = blocking(move || Ok(readers.get()?.raw_message(&hash)?)).await?;
                if let Some(raw) = raw {
                    let (text, html_part) = html::bodies(&raw);
                    body_text = text;
                    body_html = html_part.map(|h| html::sanitise(&h));
                }
            }
        }
        Ok(html_page(
            StatusCode::OK,
            MessagePage {
                chrome: chrome(shared, visitor),
                id: m.id,
                subject: m.subject.clone().unwrap_or_default(),
                headers: headers_view,
                alerts: alert_views,
                attachments,
                trail,
                has_raw: m.content_hash.is_some(),
                body_note,
                body_text,
                body_html,
                pivots,
                people,
                period,
            },
        ))
    })
    .await
}

/// The searches one click away from a message ([`pivots`]): the labelled
/// links, the people with their mail around it, and that period as text.
fn pivot_views(
    shared: &Shared,
    lang: Lang,
    m: &StoredMessage,
) -> (Vec<PivotView>, Vec<PersonView>, String) {
    let tr = |k: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]| {
        shared.catalog.text(lang, k, args)
    };
    let link = |label: String, query: String| PivotView {
        href: format!("/search?q={}", url_encode(&query)),
        label,
        query,
    };
    let mut pivots = Vec::new();
    let people = pivots::people(m);
    if let Some(sender) = people.iter().find(|p| p.role == "message-from") {
        pivots.push(link(
            tr(
                "pivot-same-sender",
                &[("address", sender.address.clone().into())],
            ),
            pivots::sender_query(&sender.address),
        ));
    }
    if let Some(query) = m.subject.as_deref().and_then(pivots::thread_query) {
        pivots.push(link(tr("pivot-same-subject", &[]), query));
    }
    let org = OrgDomains::new(&shared.options.org_domains);
    for domain in pivots::external_domains(m, &org) {
        pivots.push(link(
            tr("pivot-domain", &[("domain", domain.clone().into())]),
            pivots::domain_query(&domain),
        ));
    }
    let tz = shared.options.timezone;
    let Some((period, first, last)) = display_time(m).and_then(|t| pivots::period(t, tz)) else {
        return (pivots, Vec::new(), String::new());
    };
    let people = people
        .into_iter()
        .map(|p| PersonView {
            sent: format!(
                "/search?q={}",
                url_encode(&pivots::sent_query(&p.address, &period))
            ),
            received: format!(
                "/search?q={}",
                url_encode(&pivots::received_query(&p.address, &period))
            ),
            role: tr(p.role, &[]),
            address: p.address,
        })
        .collect();
    let text = tr(
        "pivot-period",
        &[
            ("from", i18n::date(lang, first).into()),
            ("to", i18n::date(lang, last).into()),
            ("days", pivots::PERIOD_DAYS.into()),
        ],
    );
    (pivots, people, text)
}

async fn raw(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        raw_download(shared, visitor, id).await
    })
    .await
}

/// The raw message as a download, for administrators, audited as
/// `download-raw` (the page's link and the API's route both answer this).
async fn raw_download(shared: &App, visitor: &Visitor, id: i64) -> Result<Response, WebError> {
    require_admin(shared, visitor, "download-raw", Some(id.to_string())).await?;
    let m = load_message(shared, id).await?;
    let hash = m.content_hash.clone().ok_or(WebError::NotFound)?;
    record(
        shared,
        visitor,
        "download-raw",
        Some(id.to_string()),
        m.message_id.clone(),
    )
    .await?;
    let readers = shared.readers.clone();
    let bytes =
        blocking(move || readers.get()?.raw_message(&hash)?.ok_or(WebError::NotFound)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"message-{id}.eml\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

async fn download_attachment(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        attachment_download(shared, visitor, id, index).await
    })
    .await
}

/// Attachment `index` (its position in the message's list) as a download
/// under its own name, for administrators, audited as
/// `download-attachment`.
async fn attachment_download(
    shared: &App,
    visitor: &Visitor,
    id: i64,
    index: usize,
) -> Result<Response, WebError> {
    require_admin(shared, visitor, "download-attachment", Some(id.to_string())).await?;
    let m = load_message(shared, id).await?;
    let listed = m
        .attachments
        .get(index)
        .cloned()
        .ok_or(WebError::NotFound)?;
    let hash = m.content_hash.clone().ok_or(WebError::NotFound)?;
    let readers = shared.readers.clone();
    let wanted = listed.blake3.clone();
    let bytes = blocking(move || {
        let raw = readers
            .get()?
            .raw_message(&hash)?
            .ok_or(WebError::NotFound)?;
        Ok(attachment::find(&raw, &wanted))
    })
    .await?;
    let Some(bytes) = bytes else {
        // Listed but not found in the raw message: nothing to serve.
        eprintln!(
            "mailtrail web: message {id}: attachment {index} ({}) is not in the stored raw message",
            listed.blake3
        );
        return Err(WebError::NotFound);
    };
    let name = listed.filename.clone().unwrap_or_default();
    let disposition = HeaderValue::from_str(&attachment::content_disposition(
        &name,
        &format!("attachment-{id}-{}", index + 1),
    ))
    .map_err(|e| WebError::Internal(format!("content disposition: {e}")))?;
    record(
        shared,
        visitor,
        "download-attachment",
        Some(id.to_string()),
        Some(name),
    )
    .await?;
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                attachment::served_content_type(&listed.content_type),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    text: String,
}

async fn audit(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        require_admin(shared, visitor, "audit", None).await?;
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let filter = AuditFilter {
            user: some(&params.user),
            action: some(&params.action),
            text: some(&params.text),
            ..AuditFilter::default()
        };
        record(
            shared,
            visitor,
            "audit-view",
            None,
            Some(
                format!("{} {} {}", params.user, params.action, params.text)
                    .trim()
                    .to_string(),
            ),
        )
        .await?;
        let app = shared.clone();
        let (entries, broken, total) = blocking(move || {
            with_console(&app, |store| {
                let entries = store.audit_log(
                    &filter,
                    Page {
                        limit: 200,
                        offset: 0,
                    },
                )?;
                let broken = store.verify_audit_chain()?;
                let total = store
                    .audit_log(
                        &AuditFilter::default(),
                        Page {
                            limit: 1,
                            offset: 0,
                        },
                    )?
                    .first()
                    .map_or(0, |e| e.id);
                Ok((entries, broken, total))
            })
        })
        .await?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let (chain_ok, chain_text) = match broken {
            None => (
                true,
                shared
                    .catalog
                    .text(lang, "audit-chain-ok", &[("count", total.into())]),
            ),
            Some(b) => (
                false,
                shared.catalog.text(
                    lang,
                    "audit-chain-broken",
                    &[("id", b.id.into()), ("reason", b.reason.into())],
                ),
            ),
        };
        Ok(html_page(
            StatusCode::OK,
            AuditPage {
                chrome: chrome(shared, visitor),
                chain_ok,
                chain_text,
                user: params.user.clone(),
                action: params.action.clone(),
                text: params.text.clone(),
                entries: entries
                    .into_iter()
                    .map(|e| {
                        (
                            i18n::datetime(lang, e.time, tz),
                            e.user,
                            e.action,
                            e.target.unwrap_or_default(),
                            e.detail.unwrap_or_default(),
                            e.ip.unwrap_or_default(),
                        )
                    })
                    .collect(),
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------- dashboard

#[derive(Deserialize, Default)]
struct DashboardParams {
    from: Option<String>,
    to: Option<String>,
}

fn search_href(query: &str) -> String {
    format!("/search?q={}", url_encode(query))
}

fn direction_class(d: mailtrail_model::Direction) -> &'static str {
    match d {
        mailtrail_model::Direction::Inbound => "bar-inbound",
        mailtrail_model::Direction::Outbound => "bar-outbound",
        mailtrail_model::Direction::Internal => "bar-internal",
        mailtrail_model::Direction::Relayed => "bar-relayed",
    }
}

/// A period's dashboard figures: fresh ones from the cache, else computed
/// by this request — while it computes, others get the previous figures
/// (only a period's very first requests wait).
async fn dashboard_figures(
    shared: &App,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Arc<mailtrail_store::Dashboard>, WebError> {
    let poisoned = || WebError::Internal("a dashboard cache lock is poisoned".into());
    let slot = {
        let mut cache = shared.dashboards.lock().map_err(|_| poisoned())?;
        if cache.len() >= DASHBOARD_PERIODS {
            cache.retain(|_, slot| {
                let idle = slot.computing.try_lock().is_ok();
                let fresh = slot.figures.lock().ok().is_some_and(|f| {
                    f.as_ref()
                        .is_some_and(|(computed, _)| computed.elapsed() < DASHBOARD_FRESH)
                });
                !idle || fresh
            });
        }
        Arc::clone(cache.entry((from, to)).or_default())
    };
    let latest = |slot: &DashboardSlot| -> Result<_, WebError> {
        Ok(slot.figures.lock().map_err(|_| poisoned())?.clone())
    };
    let fresh = |kept: &Option<(Instant, Arc<mailtrail_store::Dashboard>)>| {
        kept.as_ref()
            .filter(|(computed, _)| computed.elapsed() < DASHBOARD_FRESH)
            .map(|(_, figures)| Arc::clone(figures))
    };
    if let Some(figures) = fresh(&latest(&slot)?) {
        return Ok(figures);
    }
    let _computing = match slot.computing.try_lock() {
        Ok(guard) => guard,
        Err(_) => {
            // Another request is computing this period.
            if let Some((_, previous)) = latest(&slot)? {
                return Ok(previous);
            }
            let guard = slot.computing.lock().await;
            if let Some(figures) = fresh(&latest(&slot)?) {
                return Ok(figures);
            }
            guard
        }
    };
    // Computed by another request between the first look and the lock?
    if let Some(figures) = fresh(&latest(&slot)?) {
        return Ok(figures);
    }
    let readers = shared.readers.clone();
    let tz = shared.options.timezone;
    let figures = Arc::new(
        blocking(move || Ok(readers.get()?.dashboard(from, to, tz, dashboard::TOP)?)).await?,
    );
    *slot.figures.lock().map_err(|_| poisoned())? = Some((Instant::now(), Arc::clone(&figures)));
    Ok(figures)
}

async fn dashboard_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<DashboardParams>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let lang = visitor.lang;
        let tz = shared.options.timezone;
        let t = |k: &str| shared.catalog.text(lang, k, &[]);
        let today = Utc::now().with_timezone(&tz).date_naive();
        let mut page = DashboardPage {
            chrome: chrome(shared, visitor),
            from: params.from.clone().unwrap_or_default(),
            to: params.to.clone().unwrap_or_default(),
            error: None,
            period_text: String::new(),
            chart_label: t("dashboard-per-day"),
            max_text: String::new(),
            width: dashboard::coord(dashboard::WIDTH),
            height: dashboard::coord(dashboard::HEIGHT),
            baseline: dashboard::coord(dashboard::baseline()),
            label_y: dashboard::coord(dashboard::label_y()),
            bars: Vec::new(),
            ticks: Vec::new(),
            legend: dashboard::STACK
                .iter()
                .map(|d| (direction_class(*d), t(&format!("direction-{}", d.as_str()))))
                .collect(),
            totals: Vec::new(),
            failures: Vec::new(),
            lists: Vec::new(),
            attachments: Vec::new(),
        };
        let period = dashboard::period(params.from.as_deref(), params.to.as_deref(), today)
            .filter(|(from, to)| (*to - *from).num_days() <= 366);
        let Some((from, to)) = period else {
            page.error = Some(t("dashboard-invalid-period"));
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        };
        page.from = from.to_string();
        page.to = to.to_string();
        record(
            shared,
            visitor,
            "dashboard",
            None,
            Some(format!("{from} {to}")),
        )
        .await?;
        let figures = dashboard_figures(shared, from, to).await?;
        let period = dashboard::period_query(from, to);
        let tr = |k: &str, args: &[(&str, fluent_bundle::FluentValue<'_>)]| {
            shared.catalog.text(lang, k, args)
        };
        page.period_text = tr(
            "dashboard-period-text",
            &[
                ("from", i18n::date(lang, from).into()),
                ("to", i18n::date(lang, to).into()),
                ("days", ((to - from).num_days() + 1).into()),
            ],
        );
        let (segments, ticks, max) = dashboard::chart(&figures.days);
        page.max_text = tr("dashboard-max", &[("count", i18n::number(max).into())]);
        page.bars = segments
            .into_iter()
            .map(|s| BarView {
                x: dashboard::coord(s.x),
                y: dashboard::coord(s.y),
                width: dashboard::coord(s.width),
                height: dashboard::coord(s.height),
                class: direction_class(s.direction),
                href: search_href(&dashboard::day_query(s.direction, s.day)),
                title: tr(
                    "dashboard-bar",
                    &[
                        ("day", i18n::date(lang, s.day).into()),
                        (
                            "direction",
                            t(&format!("direction-{}", s.direction.as_str())).into(),
                        ),
                        ("count", i18n::number(s.count).into()),
                    ],
                ),
            })
            .collect();
        page.ticks = ticks
            .into_iter()
            .map(|tick| TickView {
                x: dashboard::coord(tick.x),
                text: match lang {
                    Lang::Ja => tick.day.format("%m/%d").to_string(),
                    Lang::En => tick.day.format("%m-%d").to_string(),
                },
            })
            .collect();
        let figure = |label: String, count: u64, query: String| Figure {
            label,
            count: i18n::number(count),
            href: search_href(&query),
        };
        let count_of = |d: mailtrail_model::Direction| {
            figures
                .by_direction
                .iter()
                .find(|(x, _)| *x == d)
                .map_or(0, |(_, n)| *n)
        };
        use mailtrail_model::Direction as D;
        page.totals
            .push(figure(t("dashboard-total"), figures.total, period.clone()));
        page.totals.push(figure(
            t("dashboard-external"),
            count_of(D::Inbound) + count_of(D::Outbound),
            dashboard::external_query(&period),
        ));
        for d in dashboard::STACK {
            page.totals.push(figure(
                t(&format!("direction-{}", d.as_str())),
                count_of(d),
                dashboard::direction_query(d, &period),
            ));
        }
        type Linker = fn(&str, &str) -> String;
        type Ranked<'r> = &'r [(String, u64)];
        let lists: [(&str, &str, Ranked<'_>, Linker); 5] = [
            (
                "dashboard-top-senders",
                "dashboard-address",
                &figures.top_senders,
                dashboard::sender_query,
            ),
            (
                "dashboard-top-recipients",
                "dashboard-address",
                &figures.top_recipients,
                dashboard::recipient_query,
            ),
            (
                "dashboard-top-domains",
                "dashboard-domain",
                &figures.top_domains,
                dashboard::domain_query,
            ),
            (
                "dashboard-failing-recipients",
                "dashboard-address",
                &figures.failing_recipients,
                dashboard::failing_recipient_query,
            ),
            (
                "dashboard-failing-domains",
                "dashboard-domain",
                &figures.failing_domains,
                dashboard::failing_domain_query,
            ),
        ];
        page.lists = lists
            .into_iter()
            .map(|(title, head, rows, query)| FigureList {
                title: t(title),
                head: t(head),
                rows: rows
                    .iter()
                    .map(|(k, n)| figure(k.clone(), *n, query(k, &period)))
                    .collect(),
            })
            .collect();
        page.failures = figures
            .failures
            .iter()
            .map(|(s, n)| {
                figure(
                    t(&format!("status-{}", s.as_str())),
                    *n,
                    dashboard::status_query(s.as_str(), &period),
                )
            })
            .collect();
        page.attachments = figures
            .largest_attachments
            .iter()
            .map(|a| LargeAttachmentView {
                name: a.filename.clone().unwrap_or_else(|| a.content_type.clone()),
                size: i18n::size(a.size),
                message: format!("/message/{}", a.message),
                same: mailtrail_store::blob::is_hash(&a.blake3)
                    .then(|| format!("/search?attachment={}", a.blake3)),
            })
            .collect();
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

// ---------------------------------------------------------------- sources

/// A key of the provider's JSON in words: the catalogue's `source-KEY` if it
/// has one, else the key with spaces for underscores.
fn source_label(shared: &Shared, lang: Lang, key: &str) -> String {
    source_word(shared, lang, key).unwrap_or_else(|| key.replace('_', " "))
}

/// A one-word value (`ok`, `failing`) in the visitor's language, if the
/// catalogue has it; free text (an error message) stays as it is.
fn source_word(shared: &Shared, lang: Lang, word: &str) -> Option<String> {
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let id = format!("source-{}", word.replace('_', "-"));
    let text = shared.catalog.text(lang, &id, &[]);
    (text != id).then_some(text)
}

/// A value of the provider's JSON in words: numbers grouped, Unix times of
/// `last_…` keys as dates, nothing as a dash.
fn source_value(shared: &Shared, lang: Lang, key: &str, value: &serde_json::Value) -> String {
    use serde_json::Value as V;
    match value {
        V::Null => "—".to_string(),
        V::Number(n) if key.starts_with("last_") => n
            .as_i64()
            .and_then(|secs| chrono::DateTime::<Utc>::from_timestamp(secs, 0))
            .map(|t| i18n::datetime(lang, t, shared.options.timezone))
            .unwrap_or_else(|| n.to_string()),
        V::Number(n) => n.as_u64().map_or_else(|| n.to_string(), i18n::number),
        V::String(s) => source_word(shared, lang, s).unwrap_or_else(|| s.clone()),
        V::Bool(b) => source_label(shared, lang, if *b { "yes" } else { "no" }),
        other => other.to_string(),
    }
}

/// The provider's JSON as blocks for people: the top-level facts first,
/// then one block per source (`sources.smtp`, `pollers.gmail`, …).
fn source_sections(shared: &Shared, lang: Lang, json: &serde_json::Value) -> Vec<SourceSection> {
    let rows_of = |map: &serde_json::Map<String, serde_json::Value>| {
        map.iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, v)| {
                (
                    source_label(shared, lang, k),
                    source_value(shared, lang, k, v),
                )
            })
            .collect::<Vec<_>>()
    };
    let Some(top) = json.as_object() else {
        return vec![SourceSection {
            title: source_label(shared, lang, "service"),
            rows: vec![(String::new(), json.to_string())],
        }];
    };
    let mut sections = vec![SourceSection {
        title: source_label(shared, lang, "service"),
        rows: rows_of(top),
    }];
    for (group, value) in top {
        let Some(children) = value.as_object() else {
            continue;
        };
        let own = rows_of(children);
        if !own.is_empty() {
            sections.push(SourceSection {
                title: source_label(shared, lang, group),
                rows: own,
            });
        }
        for (name, child) in children {
            if let Some(fields) = child.as_object() {
                sections.push(SourceSection {
                    title: format!(
                        "{} — {}",
                        source_label(shared, lang, group),
                        source_label(shared, lang, name)
                    ),
                    rows: rows_of(fields),
                });
            }
        }
    }
    sections
}

async fn sources_page(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        require_admin(shared, visitor, "sources", None).await?;
        let provider = shared.options.sources.clone().ok_or(WebError::NotFound)?;
        record(shared, visitor, "sources", None, None).await?;
        let json = blocking(move || Ok((provider.0)())).await?;
        let dead = alerts::dead_letters(shared, visitor.lang).await?;
        Ok(html_page(
            StatusCode::OK,
            SourcesPage {
                chrome: chrome(shared, visitor),
                sections: source_sections(shared, visitor.lang, &json),
                dead,
            },
        ))
    })
    .await
}

/// Create or update a console account (`mailtrail user add`).
pub fn add_user(
    data_dir: &std::path::Path,
    name: &str,
    password: &str,
    role: Role,
) -> Result<bool, WebError> {
    if name.trim().is_empty() || name.contains(char::is_whitespace) || name.contains(':') {
        return Err(WebError::BadRequest(
            "a user name is one word without spaces or ':'".into(),
        ));
    }
    if password.chars().count() < 10 {
        return Err(WebError::BadRequest(
            "the password must have at least 10 characters".into(),
        ));
    }
    let mut store = SqliteStore::open(data_dir, SqliteOptions::default())?;
    let existed = store.user(name)?.is_some();
    let hash = auth::hash_password(password).map_err(WebError::Internal)?;
    store.put_user(&User {
        name: name.to_string(),
        password_hash: hash,
        role,
        disabled: false,
        created: Utc::now(),
    })?;
    // A changed password or role ends the account's sessions.
    store.delete_sessions(Utc::now(), Some(name))?;
    Ok(existed)
}

/// Create an API token called `name` with `role` in the data directory's
/// console store and return the token — the only time it is seen: the
/// store keeps its hash. Names are unique, revoked ones included, so that
/// `token:NAME` in the audit log always means one token.
pub fn create_api_token(
    data_dir: &std::path::Path,
    name: &str,
    role: Role,
) -> Result<String, WebError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(WebError::BadRequest(
            "a token name is 1–64 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let token = auth::new_api_token();
    let mut store = SqliteStore::open(data_dir, SqliteOptions::default())?;
    let created = store.create_api_token(&mailtrail_store::console::ApiToken {
        name: name.to_string(),
        token_hash: auth::token_hash(&token),
        role,
        created: Utc::now(),
        last_used: None,
        revoked: None,
    })?;
    if !created {
        return Err(WebError::BadRequest(format!(
            "a token named {name} exists already (names are never reused; choose another)"
        )));
    }
    Ok(token)
}

/// Revoke the live API token called `name`; `false` when there is none.
pub fn revoke_api_token(data_dir: &std::path::Path, name: &str) -> Result<bool, WebError> {
    let mut store = SqliteStore::open(data_dir, SqliteOptions::default())?;
    Ok(store.revoke_api_token(name, Utc::now())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests waiting for a reader are served in the order they asked,
    /// and one arriving just as a connection comes back does not overtake
    /// them (it used to: a returned connection went to whichever thread
    /// took the lock first).
    #[test]
    fn the_reader_pool_serves_waiting_requests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let pool = Arc::new(ReaderPool::new(dir.path().to_path_buf(), Vec::new()));
        let mut lent: Vec<PooledReader> =
            (0..ReaderPool::MAX).map(|_| pool.get().unwrap()).collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets = |pool: &Arc<ReaderPool>| pool.state.lock().unwrap().next_ticket;
        let mut waiters = Vec::new();
        for who in 1..=2u32 {
            let (pool2, order2) = (Arc::clone(&pool), Arc::clone(&order));
            let before = tickets(&pool);
            waiters.push(std::thread::spawn(move || {
                let reader = pool2.get().unwrap();
                order2.lock().unwrap().push(who);
                std::thread::sleep(Duration::from_millis(20));
                drop(reader);
            }));
            // Wait until this waiter holds its ticket.
            while tickets(&pool) == before {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // One connection comes back; this thread asks at once.
        lent.pop();
        let mine = pool.get().unwrap();
        order.lock().unwrap().push(0);
        drop(mine);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 0]);
    }

    /// A connection that cannot be opened gives its place back: more
    /// failures than places still answer (with the error), none waits.
    #[test]
    fn the_reader_pool_gives_back_the_place_of_a_failed_open() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(ReaderPool::new(dir.path().join("no-store"), Vec::new()));
        for _ in 0..ReaderPool::MAX * 2 {
            assert!(pool.get().is_err());
        }
        assert_eq!(pool.state.lock().unwrap().open, 0);
    }
}
