//! The console's JSON API, versioned under `/api/v1/`: search
//! (`/api/v1/search`), one message with its trail (`/api/v1/messages/{id}`)
//! and the store's counts (`/api/v1/stats`), described by the OpenAPI 3.1
//! document served at `/api/openapi.json` (`static/openapi.json`, written
//! by hand and kept equal to [`paths`] by the tests).
//!
//! Why it is shaped this way:
//! - **The same console, another format**: the same sign-in session (the
//!   browser's cookie), the same two roles, the same audit entries
//!   (`search` with the query as written, `view` with the message id,
//!   `stats`) written before anything is answered, and the same query
//!   language — a JSON answer is never a way around what the HTML pages
//!   enforce. Viewers get metadata and the trail; only administrators get
//!   `body_text`, and for viewers the field is absent rather than empty.
//! - **Errors are JSON too**, `{"error": {"code", "message"}}` with the
//!   HTTP status: 401 (not a redirect to the sign-in page) without a live
//!   session, 400 with the query parser's own message for a bad query, and
//!   400 for a malformed parameter (a non-numeric id, a limit that is not a
//!   number) instead of axum's plain-text rejection. Unknown paths under
//!   `/api/` answer a JSON 404.
//! - **One table of routes** ([`paths`]): the router is built from it, so
//!   the tests can hold the OpenAPI document to exactly what is served.
//! - Only session cookies authenticate for now: bearer tokens for tools need
//!   tokens of their own in the console store (issued, listed, revoked),
//!   which this module does not have yet.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::Router;
use chrono::{DateTime, Utc};
use mailtrail_model::RecipientKind;
use mailtrail_store::console::Role;
use mailtrail_store::{Page, Store, StoredMessage};
use serde::{Deserialize, Serialize};

use crate::{blocking, display_time, parse_query, reader, record, status_key, visitor};
use crate::{App, Visitor, WebError};

/// The OpenAPI 3.1 document describing the routes of [`paths`].
pub const OPENAPI: &str = include_str!("../static/openapi.json");
/// Where [`OPENAPI`] is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Results per search when the request does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most results one search answers.
pub const MAX_LIMIT: u32 = 1000;

/// The API's routes: the single table both the router and [`paths`] read.
fn table() -> Vec<(&'static str, MethodRouter<App>)> {
    vec![
        ("/api/v1/search", get(search)),
        ("/api/v1/messages/{id}", get(message)),
        ("/api/v1/stats", get(stats)),
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
                eprintln!("mailtrail web api: {other}");
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

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
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
async fn respond_json<T, F>(shared: App, headers: HeaderMap, peer: SocketAddr, f: F) -> Response
where
    T: Serialize,
    F: AsyncFnOnce(&App, &Visitor) -> Result<T, ApiError>,
{
    let visitor = match visitor(&shared, &headers, peer).await {
        Ok(v) => v,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match f(&shared, &visitor).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(e) => e.into_response(),
    }
}

async fn openapi() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        OPENAPI,
    )
        .into_response()
}

async fn unknown() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such API endpoint".into(),
    }
    .into_response()
}

// ---------------------------------------------------------------- shapes

#[derive(Serialize)]
struct AttachmentJson {
    filename: Option<String>,
    size: u64,
    content_type: String,
    blake3: String,
}

/// A message as search lists it.
#[derive(Serialize)]
struct MessageSummary {
    id: i64,
    message_id: Option<String>,
    /// The time the console lists it by: first seen, else the Date header,
    /// else its earliest delivery.
    date: Option<DateTime<Utc>>,
    direction: &'static str,
    /// The header sender, else the envelope sender.
    from: Option<String>,
    /// The To recipients and the envelope recipients.
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    subject: Option<String>,
    attachments: Vec<AttachmentJson>,
    size: Option<u64>,
    systems: Vec<String>,
    status: &'static str,
}

fn summary(m: &StoredMessage) -> MessageSummary {
    let addresses = |kinds: &[RecipientKind]| -> Vec<String> {
        m.recipients
            .iter()
            .filter(|r| kinds.contains(&r.kind))
            .map(|r| r.address.clone())
            .collect()
    };
    let status = status_key(m);
    MessageSummary {
        id: m.id,
        message_id: m.message_id.clone(),
        date: display_time(m),
        direction: m.direction.as_str(),
        from: m
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .or_else(|| m.envelope_from.clone()),
        to: addresses(&[RecipientKind::To, RecipientKind::Envelope]),
        cc: addresses(&[RecipientKind::Cc]),
        bcc: addresses(&[RecipientKind::Bcc]),
        subject: m.subject.clone(),
        attachments: m
            .attachments
            .iter()
            .map(|a| AttachmentJson {
                filename: a.filename.clone(),
                size: a.size,
                content_type: a.content_type.clone(),
                blake3: a.blake3.clone(),
            })
            .collect(),
        size: m.size,
        systems: m.systems.clone(),
        status: status.strip_prefix("status-").unwrap_or(status),
    }
}

// ---------------------------------------------------------------- search

#[derive(Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<u32>,
    offset: Option<u64>,
}

#[derive(Serialize)]
struct SearchAnswer {
    count: u64,
    limit: u32,
    offset: u64,
    messages: Vec<MessageSummary>,
}

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
        let expr = parse_query(&q, shared.options.timezone).map_err(ApiError::bad_request)?;
        record(shared, visitor, "search", None, Some(q)).await?;
        let options = shared.options.clone();
        let (count, found) = blocking(move || {
            let store = reader(&options)?;
            let count = store.count(&expr)?;
            let found = store.search(&expr, Page { limit, offset })?;
            Ok((count, found))
        })
        .await?;
        Ok(SearchAnswer {
            count,
            limit,
            offset,
            messages: found.iter().map(summary).collect(),
        })
    })
    .await
}

// ---------------------------------------------------------------- message

#[derive(Serialize)]
struct RecipientJson {
    address: String,
    name: Option<String>,
    /// `to`, `cc`, `bcc` or `envelope`.
    kind: &'static str,
}

#[derive(Serialize)]
struct AuthJson {
    spf: Option<String>,
    dkim: Option<String>,
    dmarc: Option<String>,
}

#[derive(Serialize)]
struct DeliveryJson {
    time: DateTime<Utc>,
    system: String,
    recipient: String,
    status: &'static str,
    detail: Option<String>,
    relay: Option<String>,
    client_ip: Option<String>,
    local_id: Option<String>,
}

#[derive(Serialize)]
struct MessageDetail {
    #[serde(flatten)]
    summary: MessageSummary,
    header_date: Option<DateTime<Utc>>,
    first_seen: Option<DateTime<Utc>>,
    envelope_from: Option<String>,
    from_name: Option<String>,
    recipients: Vec<RecipientJson>,
    auth: AuthJson,
    client_ip: Option<String>,
    /// The raw message was captured (administrators can fetch it).
    has_content: bool,
    /// The trail: every delivery event, oldest first.
    deliveries: Vec<DeliveryJson>,
    /// Administrators only: absent for viewers, `null` when there is no
    /// text body.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_text: Option<Option<String>>,
}

async fn message(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        let user = visitor.user()?;
        let admin = user.role == Role::Administrator;
        let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let id: i64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("id: not a message number: {id}")))?;
        let options = shared.options.clone();
        let m = blocking(move || reader(&options)?.message(id)?.ok_or(WebError::NotFound)).await?;
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
                let options = shared.options.clone();
                let hash = hash.clone();
                let raw = blocking(move || Ok(reader(&options)?.raw_message(&hash)?)).await?;
                Some(raw.and_then(|raw| crate::html::bodies(&raw).0))
            }
        };
        let mut events: Vec<_> = m.deliveries.iter().collect();
        events.sort_by_key(|d| d.time);
        Ok(MessageDetail {
            summary: summary(&m),
            header_date: m.date,
            first_seen: m.first_seen,
            envelope_from: m.envelope_from.clone(),
            from_name: m.from.as_ref().and_then(|f| f.display_name.clone()),
            recipients: m
                .recipients
                .iter()
                .map(|r| RecipientJson {
                    address: r.address.clone(),
                    name: r.display_name.clone(),
                    kind: r.kind.as_str(),
                })
                .collect(),
            auth: AuthJson {
                spf: m.auth.spf.clone(),
                dkim: m.auth.dkim.clone(),
                dmarc: m.auth.dmarc.clone(),
            },
            client_ip: m.client_ip.clone(),
            has_content: m.content_hash.is_some(),
            deliveries: events
                .into_iter()
                .map(|d| DeliveryJson {
                    time: d.time,
                    system: d.system.clone(),
                    recipient: d.recipient.clone(),
                    status: d.status.as_str(),
                    detail: d.detail.clone(),
                    relay: d.relay.clone(),
                    client_ip: d.client_ip.clone(),
                    local_id: d.local_id.clone(),
                })
                .collect(),
            body_text,
        })
    })
    .await
}

// ---------------------------------------------------------------- stats

#[derive(Serialize)]
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

async fn stats(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    respond_json(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        record(shared, visitor, "stats", None, None).await?;
        let options = shared.options.clone();
        let s = blocking(move || Ok(reader(&options)?.stats()?)).await?;
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
