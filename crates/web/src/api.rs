//! The console's JSON API, versioned under `/api/v1/`: search
//! (`/api/v1/search`), one message (`/api/v1/messages/{id}`), its raw
//! bytes, its attachments and its trail across systems, and the store's
//! counts (`/api/v1/stats`), described by the OpenAPI 3.1 document served
//! at `/api/v1/openapi.json` — generated from these handlers and the
//! response types of [`crate::json`] by utoipa, so it cannot drift from
//! what is served.
//!
//! Why it is shaped this way:
//! - **The same console, another format**: a browser's sign-in session or
//!   an API token (`Authorization: Bearer mtk_…`, from `mailtrail token
//!   create`), the same two roles, the same audit entries (`search` with the
//!   query as written, `view`, `trail`, `download-raw`,
//!   `download-attachment`, `stats`) written before anything is answered,
//!   and the same query language — a JSON answer is never a way around what
//!   the HTML pages enforce. Viewers get metadata and the trail; only
//!   administrators get `body_text` (absent for viewers, not empty) and the
//!   downloads (403 otherwise).
//! - **The same message fields as the command line**: search answers
//!   `{"count", "limit", "offset", "messages"}` whose messages are exactly
//!   what `mailtrail search --format json` prints ([`MessageJson`]).
//! - **Errors are JSON too**, `{"error": {"code", "message"}}` with the
//!   HTTP status: 401 (not a redirect to the sign-in page) without a live
//!   session or token, 400 with the query parser's own message for a bad
//!   query, and 400 for a malformed parameter (a non-numeric id, a limit
//!   that is not a number) instead of axum's plain-text rejection. Unknown
//!   paths under `/api/` answer a JSON 404.
//! - **One table of routes** ([`paths`]): the router is built from it, and
//!   the tests hold the generated document to exactly those paths.
//! - **Alerts are the command line's too**: `/api/v1/alerts` lists exactly
//!   the objects `mailtrail alerts --format json` prints ([`AlertJson`]);
//!   one alert comes with its history. Changing one (`POST`) is for
//!   administrators, audited as `alert-update`; with the browser's session
//!   (not a token) it also needs the session's CSRF token in
//!   `X-CSRF-Token`, so no other site can make a signed-in browser change
//!   an alert.
//! - The OpenAPI document itself needs no session: it describes the API,
//!   it holds no mail.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::Router;
use mailtrail_store::alerts::{AlertFilter, AlertState, AlertUpdate};
use mailtrail_store::console::Role;
use mailtrail_store::{Page, Store};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::json::{AlertDetailJson, AlertJson, AlertStateJson, MessageJson, TrailJson};
use crate::{api_visitor, attachment_download, blocking, load_message, parse_query, raw_download};
use crate::{record, App, Visitor, WebError};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Results per search when the request does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most results one search answers.
pub const MAX_LIMIT: u32 = 1000;

/// The API's routes: the single table both the router and [`paths`] read.
fn table() -> Vec<(&'static str, MethodRouter<App>)> {
    vec![
        ("/api/v1/search", get(search)),
        ("/api/v1/messages/{id}", get(message)),
        ("/api/v1/messages/{id}/raw", get(raw)),
        ("/api/v1/messages/{id}/attachments/{index}", get(attachment)),
        ("/api/v1/messages/{id}/trail", get(trail)),
        ("/api/v1/stats", get(stats)),
        ("/api/v1/alerts", get(alerts)),
        ("/api/v1/alerts/{id}", get(alert).post(change_alert)),
    ]
}

/// Every path the router serves under `/api/v1/`, in axum's syntax (which
/// is OpenAPI's: `{id}`).
pub fn paths() -> Vec<&'static str> {
    table().into_iter().map(|(path, _)| path).collect()
}

/// The API's routes, to merge into the console's router.
pub(crate) fn routes() -> Router<App> {
    table()
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .route(OPENAPI_PATH, get(openapi))
        .route("/api/{*rest}", any(unknown))
}

/// The OpenAPI document of the API, as served.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailtrail console API",
        version = "1",
        description = "The mailtrail web console's JSON API. Authenticate with an API token \
(`Authorization: Bearer mtk_…`, created by `mailtrail token create NAME`) or the console's \
sign-in session (the `mt_session` cookie set by POST /login). Roles and the audit log are \
the console's: every search, message view, download and stats request is recorded before it \
is answered. Viewers see metadata and delivery trails; only administrators see message \
bodies and download raw messages and attachments. Viewers see alerts, but not the words a \
rule matched in mail content; only administrators change alerts (a request with the session \
cookie must also send the session's CSRF token as `X-CSRF-Token`)."
    ),
    paths(search, message, raw, attachment, trail, stats, alerts, alert, change_alert),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags((name = "messages", description = "Search and read captured mail"),
         (name = "alerts", description = "What the monitoring rules raised, and working it"),
         (name = "store", description = "What the store holds"))
)]
struct ApiDoc;

/// The two ways in: a bearer token and the console's session cookie.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `mailtrail token create NAME`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The console's sign-in session.",
            ))),
        );
    }
}

// ---------------------------------------------------------------- answers

/// An error as the API answers it.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }
}

impl From<WebError> for ApiError {
    fn from(error: WebError) -> Self {
        let (status, code, message) = match error {
            WebError::SignIn => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in first: this needs a console session".to_string(),
            ),
            WebError::Forbidden | WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role does not allow this".to_string(),
            ),
            WebError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".to_string()),
            WebError::BadRequest(reason)
            | WebError::Store(mailtrail_store::StoreError::Invalid(reason)) => {
                (StatusCode::BAD_REQUEST, "bad_request", reason)
            }
            other @ (WebError::Store(_) | WebError::Internal(_)) => {
                eprintln!("mailtrail web api: {}", crate::error_chain(&other));
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                )
            }
        };
        ApiError {
            status,
            code,
            message,
        }
    }
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail<'a> {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found` or `internal`.
    code: &'a str,
    /// What went wrong, for people.
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(
            self.status,
            &ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: &self.message,
                },
            },
        )
    }
}

/// A JSON answer, never cached.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => ApiError::from(WebError::Internal(e.to_string())).into_response(),
    }
}

/// Run an API handler body for the request's visitor, turning its error
/// into the JSON error answer.
async fn respond<F>(shared: App, headers: HeaderMap, peer: SocketAddr, f: F) -> Response
where
    F: AsyncFnOnce(&App, &Visitor) -> Result<Response, ApiError>,
{
    let visitor = match api_visitor(&shared, &headers, peer).await {
        Ok(v) => v,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match f(&shared, &visitor).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// [`respond`] for handlers answering a JSON value.
async fn respond_json<T, F>(shared: App, headers: HeaderMap, peer: SocketAddr, f: F) -> Response
where
    T: Serialize,
    F: AsyncFnOnce(&App, &Visitor) -> Result<T, ApiError>,
{
    respond(shared, headers, peer, async move |shared, visitor| {
        f(shared, visitor).await.map(|v| json(StatusCode::OK, &v))
    })
    .await
}

async fn openapi() -> Response {
    match openapi_document().to_json() {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            ApiError::from(WebError::Internal(format!("the OpenAPI document: {e}"))).into_response()
        }
    }
}

async fn unknown() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such API endpoint".into(),
    }
    .into_response()
}

// ---------------------------------------------------------------- parameters

/// A message number from the path; 400 (not axum's plain text) otherwise.
fn message_number(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    number(&id, "id", "a message number")
}

/// A path segment as a number, or a 400 naming the parameter.
fn number<T: std::str::FromStr>(text: &str, name: &str, what: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{name}: not {what}: {text}")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// A query in the console's query language, e.g.
    /// `from:taro@example.co.jp 見積書` or `社外秘 after:2026-11-01`.
    #[param(min_length = 1, pattern = r"\S")]
    q: String,
    /// Results per answer (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Results to skip (paging).
    #[param(minimum = 0)]
    offset: Option<u64>,
}

// ---------------------------------------------------------------- search

/// A search's answer: the exact count, and one page of messages, newest
/// first.
#[derive(Serialize, ToSchema)]
struct SearchAnswer {
    /// Every message the query matches.
    count: u64,
    limit: u32,
    offset: u64,
    messages: Vec<MessageJson>,
}

/// Search messages with the console's query language.
///
/// Audited as `search` with the query as written. Results are newest first.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "messages",
    operation_id = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "The count and one page of results", body = SearchAnswer),
        (status = 400, description = "An empty or malformed query, or a bad parameter", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
    )
)]
async fn search(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let q = params.q.trim().to_string();
        if q.is_empty() {
            return Err(ApiError::bad_request("q: the query is empty"));
        }
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit: must be between 1 and {MAX_LIMIT}"
            )));
        }
        let offset = params.offset.unwrap_or(0);
        let tz = shared.options.timezone;
        let expr = parse_query(&q, tz).map_err(ApiError::bad_request)?;
        record(shared, visitor, "search", None, Some(q)).await?;
        let readers = shared.readers.clone();
        let (count, found) = blocking(move || {
            Ok(readers
                .get()?
                .count_and_search(&expr, Page { limit, offset })?)
        })
        .await?;
        Ok(SearchAnswer {
            count,
            limit,
            offset,
            messages: found.iter().map(|m| MessageJson::new(m, tz)).collect(),
        })
    })
    .await
}

// ---------------------------------------------------------------- message

#[derive(Serialize, ToSchema)]
struct RecipientJson {
    address: String,
    /// The display name the headers gave.
    name: Option<String>,
    /// `to`, `cc`, `bcc` or `envelope`.
    kind: &'static str,
}

/// One message: what search lists, every recipient with its name, and for
/// administrators the text body.
#[derive(Serialize, ToSchema)]
struct MessageDetail {
    #[serde(flatten)]
    message: MessageJson,
    recipients: Vec<RecipientJson>,
    /// Administrators only: absent for viewers, `null` when there is no
    /// text body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    body_text: Option<Option<String>>,
}

/// One message with its deliveries and, for administrators, its body.
///
/// Audited as `view` with the message id.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    operation_id = "message",
    params(("id" = i64, Path, description = "The message number (`id` in search results)")),
    responses(
        (status = 200, description = "The message", body = MessageDetail),
        (status = 400, description = "Not a message number", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
    )
)]
async fn message(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        let user = visitor.user()?;
        let admin = user.role == Role::Administrator;
        let id = message_number(id)?;
        let m = load_message(shared, id).await?;
        record(
            shared,
            visitor,
            "view",
            Some(id.to_string()),
            m.message_id.clone(),
        )
        .await?;
        let body_text = match (&m.content_hash, admin) {
            (_, false) => None,
            (None, true) => Some(None),
            (Some(hash), true) => {
                let readers = shared.readers.clone();
                let hash = hash.clone();
                let raw = blocking(move || Ok(readers.get()?.raw_message(&hash)?)).await?;
                Some(raw.and_then(|raw| crate::html::bodies(&raw).0))
            }
        };
        Ok(MessageDetail {
            message: MessageJson::new(&m, shared.options.timezone),
            recipients: m
                .recipients
                .iter()
                .map(|r| RecipientJson {
                    address: r.address.clone(),
                    name: r.display_name.clone(),
                    kind: r.kind.as_str(),
                })
                .collect(),
            body_text,
        })
    })
    .await
}

/// The raw message (RFC 5322 bytes exactly as captured), administrators only.
///
/// Audited as `download-raw`. Served as a download (`Content-Disposition:
/// attachment`).
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/raw",
    tag = "messages",
    operation_id = "raw",
    params(("id" = i64, Path, description = "The message number")),
    responses(
        (status = 200, description = "The raw message", content_type = "message/rfc822",
         body = inline(Binary)),
        (status = 400, description = "Not a message number", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 403, description = "A viewer's session or token", body = ErrorBody),
        (status = 404, description = "No such message, or its content was not captured", body = ErrorBody),
    )
)]
async fn raw(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let id = message_number(id)?;
        Ok(raw_download(shared, visitor, id).await?)
    })
    .await
}

/// Bytes, as a download.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
struct Binary(#[allow(dead_code)] Vec<u8>);

/// One attachment's decoded bytes under its own file name, administrators
/// only.
///
/// Audited as `download-attachment` with the file name.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/attachments/{index}",
    tag = "messages",
    operation_id = "attachment",
    params(
        ("id" = i64, Path, description = "The message number"),
        ("index" = u32, Path, description = "The attachment's position in `attachments`, from 0"),
    ),
    responses(
        (status = 200, description = "The attachment, under the media type the message declared for it",
         content_type = "*/*",
         body = inline(Binary)),
        (status = 400, description = "Not a message number or index", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 403, description = "A viewer's session or token", body = ErrorBody),
        (status = 404, description = "No such message or attachment", body = ErrorBody),
    )
)]
async fn attachment(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        let Path((id, index)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let id: i64 = number(&id, "id", "a message number")?;
        let index: usize = number(&index, "index", "an attachment index")?;
        Ok(attachment_download(shared, visitor, id, index).await?)
    })
    .await
}

/// The message's trail across systems: every event, oldest first — what
/// `mailtrail trace --format json` prints.
///
/// Audited as `trail` with the message id.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/trail",
    tag = "messages",
    operation_id = "trail",
    params(("id" = i64, Path, description = "The message number")),
    responses(
        (status = 200, description = "The trail", body = TrailJson),
        (status = 400, description = "Not a message number", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
    )
)]
async fn trail(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let id = message_number(id)?;
        let m = load_message(shared, id).await?;
        record(
            shared,
            visitor,
            "trail",
            Some(id.to_string()),
            m.message_id.clone(),
        )
        .await?;
        Ok(TrailJson::new(&m, shared.options.timezone))
    })
    .await
}

// ---------------------------------------------------------------- stats

/// What the store holds.
#[derive(Serialize, ToSchema)]
struct StatsAnswer {
    messages: u64,
    /// Delivery events by status.
    deliveries: BTreeMap<&'static str, u64>,
    /// Messages by direction.
    directions: BTreeMap<&'static str, u64>,
    /// Messages by the system that logged them.
    systems: BTreeMap<String, u64>,
    /// Source lines quarantined as unreadable.
    rejects: u64,
    /// Stored content blobs (raw messages and attachments).
    blobs: u64,
}

/// The store's counts, as `mailtrail stats` prints them.
///
/// Audited as `stats`.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "store",
    operation_id = "stats",
    responses(
        (status = 200, description = "The counts", body = StatsAnswer),
        (status = 401, description = "No session or token", body = ErrorBody),
    )
)]
async fn stats(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        record(shared, visitor, "stats", None, None).await?;
        let readers = shared.readers.clone();
        let s = blocking(move || Ok(readers.get()?.stats()?)).await?;
        Ok(StatsAnswer {
            messages: s.messages,
            deliveries: s.deliveries.iter().map(|(k, n)| (k.as_str(), *n)).collect(),
            directions: s
                .by_direction
                .iter()
                .map(|(k, n)| (k.as_str(), *n))
                .collect(),
            systems: s.by_system.into_iter().collect(),
            rejects: s.rejects,
            blobs: s.blobs,
        })
    })
    .await
}

// ---------------------------------------------------------------- alerts

/// Which alerts: a state, `all`, or (absent) open and acknowledged ones.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum StateParam {
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
    All,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AlertsParams {
    /// Only alerts in this state; `all` for every state. Without it: open
    /// and acknowledged ones (the inbox).
    #[param(inline)]
    state: Option<StateParam>,
    /// Only alerts of this rule (its id).
    rule: Option<String>,
    /// Alerts per answer (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Alerts to skip (paging).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    offset: Option<u64>,
}

/// A page of alerts, newest first, and how many match in all.
#[derive(Serialize, ToSchema)]
struct AlertsAnswer {
    count: u64,
    limit: u32,
    offset: u64,
    alerts: Vec<AlertJson>,
}

/// An alert's number from the path; 400 otherwise.
fn alert_number(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    number(&id, "id", "an alert number")
}

/// List alerts, newest first — the objects `mailtrail alerts --format
/// json` prints.
///
/// Audited as `alerts` with the filter. Viewers get matches in mail content
/// (the body, an attachment's content) without their text.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    operation_id = "alerts",
    params(AlertsParams),
    responses(
        (status = 200, description = "The count and one page of alerts", body = AlertsAnswer),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
    )
)]
async fn alerts(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<AlertsParams>, QueryRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        let admin = visitor.user()?.role == Role::Administrator;
        let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit: must be between 1 and {MAX_LIMIT}"
            )));
        }
        let offset = params.offset.unwrap_or(0);
        if i64::try_from(offset).is_err() {
            return Err(ApiError::bad_request(format!(
                "offset: must be at most {}",
                i64::MAX
            )));
        }
        let (state, unresolved, state_text) = match params.state {
            None => (None, true, "open,acknowledged"),
            Some(StateParam::All) => (None, false, "all"),
            Some(StateParam::Open) => (Some(AlertState::Open), false, "open"),
            Some(StateParam::Acknowledged) => {
                (Some(AlertState::Acknowledged), false, "acknowledged")
            }
            Some(StateParam::Resolved) => (Some(AlertState::Resolved), false, "resolved"),
            Some(StateParam::FalsePositive) => {
                (Some(AlertState::FalsePositive), false, "false-positive")
            }
        };
        let rule = params.rule.filter(|r| !r.trim().is_empty());
        record(
            shared,
            visitor,
            "alerts",
            None,
            Some(
                format!("state={state_text} rule={}", rule.as_deref().unwrap_or(""))
                    .trim()
                    .to_string(),
            ),
        )
        .await?;
        let filter = AlertFilter {
            rule,
            state,
            unresolved,
            message: None,
            page: Page { limit, offset },
        };
        let (count, found) = crate::alerts::list_alerts(shared, filter, None).await?;
        Ok(AlertsAnswer {
            count,
            limit,
            offset,
            alerts: found
                .iter()
                .map(|(a, m)| {
                    let json = AlertJson::new(a, m.as_ref().and_then(|m| m.message_id.as_deref()));
                    if admin {
                        json
                    } else {
                        json.for_viewer()
                    }
                })
                .collect(),
        })
    })
    .await
}

/// One alert with its history, oldest first — what `mailtrail alert ID
/// --format json` prints.
///
/// Audited as `view-alert` with the alert's number.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    operation_id = "alert",
    params(("id" = i64, Path, description = "The alert's number (`id` in the list)")),
    responses(
        (status = 200, description = "The alert", body = AlertDetailJson),
        (status = 400, description = "Not an alert number", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    )
)]
async fn alert(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        let admin = visitor.user()?.role == Role::Administrator;
        let id = alert_number(id)?;
        let (a, events, m) = crate::alerts::load_alert(shared, id).await?;
        record(
            shared,
            visitor,
            "view-alert",
            Some(id.to_string()),
            Some(a.rule.clone()),
        )
        .await?;
        let mut detail = AlertDetailJson::new(
            &a,
            m.as_ref().and_then(|m| m.message_id.as_deref()),
            &events,
        );
        if !admin {
            detail.alert = detail.alert.for_viewer();
        }
        Ok(detail)
    })
    .await
}

/// A change to an alert: any of a new state, an assignee and a comment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
struct AlertChange {
    /// The new state.
    state: Option<AlertStateJson>,
    /// The console user who handles it; an empty string removes the
    /// assignment.
    assignee: Option<String>,
    /// A comment for the alert's history.
    #[schema(pattern = r"\S")]
    comment: Option<String>,
}

/// The header carrying the session's CSRF token on a change made with the
/// browser's session.
const CSRF_HEADER: &str = "x-csrf-token";

/// Change an alert's state or assignee, or comment on it; administrators
/// only. Answers the alert as changed, with its history.
///
/// Audited as `alert-update` with the change. With the session cookie
/// (rather than a token) the request must carry the session's CSRF token
/// in `X-CSRF-Token`.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    operation_id = "change_alert",
    params(("id" = i64, Path, description = "The alert's number")),
    request_body(content = AlertChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The alert as changed", body = AlertDetailJson),
        (status = 400, description = "Not an alert number, not JSON, or nothing to change", body = ErrorBody),
        (status = 401, description = "No session or token", body = ErrorBody),
        (status = 403, description = "A viewer's session or token, or a session request without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    )
)]
async fn change_alert(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let csrf = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    respond_json(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let id = alert_number(id)?;
        crate::require_admin(shared, visitor, "alert-update", Some(id.to_string())).await?;
        if let Some(session) = &visitor.session {
            let sent = csrf.as_deref().unwrap_or("");
            if sent.is_empty() || !crate::auth::same_token(&session.csrf, sent) {
                return Err(WebError::Csrf.into());
            }
        }
        if content_type.as_deref() != Some("application/json") {
            return Err(ApiError::bad_request(
                "the change is a JSON object (Content-Type: application/json)",
            ));
        }
        let change: AlertChange = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the change: {e}")))?;
        let update = AlertUpdate {
            state: change.state.map(Into::into),
            assignee: change
                .assignee
                .map(|a| Some(a.trim().to_string()).filter(|a| !a.is_empty())),
            comment: change
                .comment
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
        };
        if update == AlertUpdate::default() {
            return Err(ApiError::bad_request(
                "nothing to change: give a state, an assignee or a comment",
            ));
        }
        crate::alerts::load_alert(shared, id).await?;
        crate::alerts::update_alert(shared, visitor, id, update).await?;
        let (a, events, m) = crate::alerts::load_alert(shared, id).await?;
        Ok(AlertDetailJson::new(
            &a,
            m.as_ref().and_then(|m| m.message_id.as_deref()),
            &events,
        ))
    })
    .await
}
