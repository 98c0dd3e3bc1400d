//! The cloud pollers against a local mock that speaks the documented
//! request and response shapes of Microsoft Entra ID (client-credentials
//! tokens), Microsoft Graph message traces, the Office 365 Management
//! Activity API, Google's OAuth token endpoint (service-account JWT bearer)
//! and the Admin SDK Reports API.
//!
//! The mock issues tokens that expire after a few seconds (and refuses
//! expired ones with 401), serves every list in pages of two
//! (`@odata.nextLink`, `NextPageUri`, `nextPageToken`), answers 429 and 503
//! with `Retry-After` once each, and checks every request it gets: the
//! bearer token and its audience, the time windows (≤ 10 days / ≤ 24 h /
//! ≤ 30 days, not older than the API keeps, not in the future), the query
//! shapes, and the JWT assertion's claims and RS256 signature (verified with
//! the public key of a key pair `openssl genpkey` makes for the test).
//! Whatever it finds wrong is collected and asserted empty at the end.
//!
//! The pollers run in-process (the poller functions with a store writer and
//! a stop flag) with a clock the test moves, so a test can start 25 days
//! back and then "two hours later" resume from the saved cursor.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use mailtrail_server::metrics::Metrics;
use mailtrail_server::poll::{self, Checkpoints, M365Config, M365Feed, PollerEnv};
use mailtrail_server::{GmailConfig, StoreWriter};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{SqliteStore, Store};
use serde_json::{json, Value};

use common::{
    bearer, decode, fast_retries, fault, invalid_token, params, reply, token_reply, Fault, Logs,
    Reply, Request,
};

const TENANT: &str = "0e1dddce-0000-4000-8000-000000000001";
const CLIENT_ID: &str = "5f0c9a4e-0000-4000-8000-000000000002";
const SECRET: &str = "Xy7~client-secret-value-DO-NOT-LOG";
const TOKEN_LIFE_SECS: u64 = 3;
const ADMIN: &str = "admin@example.co.jp";
const SA_EMAIL: &str = "mailtrail-poller@test-project.iam.gserviceaccount.com";
const GMAIL_SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------
// The mock.

struct Seen {
    method: String,
    path: String,
    query: String,
    at: Instant,
    status: u16,
}

struct Blob {
    content_type: String,
    id: String,
    created: DateTime<Utc>,
    records: Vec<Value>,
}

struct GmailCheck {
    public_key_der: Vec<u8>,
    token_uri: String,
}

#[derive(Default)]
struct MockState {
    /// The fake "now" the pollers also use.
    now: Option<DateTime<Utc>>,
    tokens: HashMap<String, (Instant, String)>,
    issued: Vec<String>,
    assertions: Vec<String>,
    token_requests: u32,
    requests: Vec<Seen>,
    problems: Vec<String>,
    faults: Vec<Fault>,
    /// Refuse the next API request made with a valid token (as if revoked).
    revoke_once: bool,
    /// Answer the next Entra token request 400 with the secret echoed.
    echo_secret_once: bool,
    traces: Vec<Value>,
    trace_windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    details_asked: Vec<(String, String)>,
    subscriptions: HashSet<String>,
    blobs: Vec<Blob>,
    blob_fetches: HashMap<String, u32>,
    audit_windows: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    activities: Vec<Value>,
    gmail_windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    gmail: Option<GmailCheck>,
}

struct Mock {
    state: Arc<Mutex<MockState>>,
    base: String,
    runtime: tokio::runtime::Runtime,
}

impl Mock {
    fn start(now: DateTime<Utc>) -> Mock {
        let state = Arc::new(Mutex::new(MockState {
            now: Some(now),
            ..MockState::default()
        }));
        let (runtime, base) = common::serve(state.clone(), answer);
        Mock {
            state,
            base,
            runtime,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MockState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn clock(&self) -> poll::Clock {
        let state = self.state.clone();
        Arc::new(move || state.lock().unwrap().now.unwrap())
    }

    fn set_now(&self, now: DateTime<Utc>) {
        self.with(|s| s.now = Some(now));
    }

    fn problems(&self) -> Vec<String> {
        self.with(|s| s.problems.clone())
    }
}

/// The stand-in's answer to a request, recorded.
fn answer(st: &mut MockState, base: &str, r: &Request) -> Reply {
    let reply = route(st, base, r);
    st.requests.push(Seen {
        method: r.method.to_string(),
        path: r.path.clone(),
        query: r.query.clone(),
        at: Instant::now(),
        status: reply.0,
    });
    reply
}

fn issue(st: &mut MockState, audience: &str) -> Reply {
    st.token_requests += 1;
    let token = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (audience, st.issued.len(), Utc::now().timestamp_nanos_opt()).hash(&mut h);
        format!("tok{}-{:016x}", st.issued.len() + 1, h.finish())
    };
    st.tokens.insert(
        token.clone(),
        (
            Instant::now() + Duration::from_secs(TOKEN_LIFE_SECS),
            audience.to_string(),
        ),
    );
    st.issued.push(token.clone());
    token_reply(&token, TOKEN_LIFE_SECS)
}

fn route(st: &mut MockState, base: &str, r: &Request) -> Reply {
    let (method, path, query) = (&r.method, r.path.as_str(), r.query.as_str());
    let (headers, body) = (&r.headers, &r.body[..]);
    let now = st.now.unwrap();
    if let Some(answer) = fault(&mut st.faults, &format!("{path}?{query}")) {
        return answer;
    }

    // Token endpoints.
    if method == Method::POST && path.starts_with("/entra/") {
        if path != format!("/entra/{TENANT}/oauth2/v2.0/token") {
            st.problems.push(format!("token request to {path}"));
            return reply(
                400,
                json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}),
            );
        }
        let form = params(&String::from_utf8_lossy(body));
        if st.echo_secret_once {
            st.echo_secret_once = false;
            let secret = form.get("client_secret").cloned().unwrap_or_default();
            return reply(
                400,
                json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: Invalid client secret provided ('{secret}').\r\nTrace ID: 0000"), "error_codes": [7000215]}),
            );
        }
        let scope = form.get("scope").cloned().unwrap_or_default();
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(SECRET);
        let scopes = [
            "https://graph.microsoft.com/.default".to_string(),
            format!("{base}/manage/.default"),
        ];
        if !ok || !scopes.contains(&scope) {
            st.problems
                .push(format!("bad client-credentials request (scope {scope:?})"));
            return reply(401, json!({"error": "invalid_client"}));
        }
        return issue(st, &scope);
    }
    if method == Method::POST && path == "/google/token" {
        let form = params(&String::from_utf8_lossy(body));
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            st.problems
                .push("google token request without the jwt-bearer grant".into());
            return reply(400, json!({"error": "unsupported_grant_type"}));
        }
        let assertion = form.get("assertion").cloned().unwrap_or_default();
        st.assertions.push(assertion.clone());
        if let Err(why) = verify_jwt(st, &assertion) {
            st.problems.push(format!("JWT assertion: {why}"));
            return reply(
                400,
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            );
        }
        return issue(st, "google");
    }

    // APIs: a valid, unexpired bearer token for the right audience.
    let audience = if path.starts_with("/graph/") {
        "https://graph.microsoft.com/.default".to_string()
    } else if path.starts_with("/manage/") {
        format!("{base}/manage/.default")
    } else if path.starts_with("/google/") {
        "google".to_string()
    } else {
        st.problems
            .push(format!("request to an unknown path {path}"));
        return reply(404, json!({"error": "not found"}));
    };
    let token = bearer(headers);
    match st.tokens.get(&token) {
        None => {
            st.problems
                .push(format!("request to {path} without a token we issued"));
            return invalid_token("Access token is empty.");
        }
        Some((_, aud)) if *aud != audience => {
            st.problems.push(format!("token for {aud} used on {path}"));
            return invalid_token("Wrong audience.");
        }
        Some((expiry, _)) if Instant::now() > *expiry => {
            return invalid_token("Lifetime validation failed, the token is expired.");
        }
        Some(_) => {}
    }
    if st.revoke_once {
        st.revoke_once = false;
        st.tokens.remove(&token);
        return invalid_token("The token was revoked.");
    }

    let q = params(query);
    let graph = "/graph/beta/admin/exchange/tracing/messageTraces";
    if method == Method::GET && path == graph {
        return graph_list(st, base, now, &q);
    }
    if method == Method::GET && path.starts_with(&format!("{graph}/")) {
        let rest = decode(&path[graph.len() + 1..]);
        let Some((id, call)) = rest.split_once('/') else {
            st.problems.push(format!("bad details path {path}"));
            return reply(404, json!({}));
        };
        let Some(recipient) = call
            .strip_prefix("getDetailsByRecipient(recipientAddress='")
            .and_then(|r| r.strip_suffix("')"))
        else {
            st.problems.push(format!("bad details call {call}"));
            return reply(400, json!({}));
        };
        let trace = st.traces.iter().find(|tr| tr["id"] == id).cloned();
        let Some(trace) = trace else {
            st.problems
                .push(format!("details of an unknown trace {id}"));
            return reply(
                404,
                json!({"error": {"code": "NotFound", "message": "no such trace"}}),
            );
        };
        if trace["recipientAddress"] != recipient {
            st.problems.push(format!(
                "details for {recipient}, not the trace's recipient"
            ));
        }
        st.details_asked
            .push((id.to_string(), recipient.to_string()));
        let received: DateTime<Utc> = trace["receivedDateTime"].as_str().unwrap().parse().unwrap();
        return reply(
            200,
            json!({
                "@odata.context": "https://graph.microsoft.com/beta/$metadata#Collection(microsoft.graph.exchangeMessageTraceDetail)",
                "value": [
                    {"id": "d-1", "messageId": trace["messageId"], "dateTime": z(received), "event": "Receive", "action": "", "description": "Message received by: TYCPR01MB0001.jpnprd01.prod.outlook.com", "data": ""},
                    {"id": "d-2", "messageId": trace["messageId"], "dateTime": z(received + chrono::Duration::seconds(5)), "event": "Fail", "action": "", "description": "Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound}]", "data": ""}
                ]
            }),
        );
    }
    let manage = format!("/manage/api/v1.0/{TENANT}/activity/feed");
    if path.starts_with("/manage/") {
        if !path.starts_with(&manage) {
            st.problems
                .push(format!("management request for another tenant: {path}"));
            return reply(404, json!({}));
        }
        let checked =
            path.ends_with("/subscriptions/start") || path.ends_with("/subscriptions/content");
        if checked && q.get("PublisherIdentifier").map(String::as_str) != Some(TENANT) {
            st.problems
                .push(format!("{path} without PublisherIdentifier"));
        }
        let ct = q.get("contentType").cloned().unwrap_or_default();
        if method == Method::POST && path == format!("{manage}/subscriptions/start") {
            if ct == "DLP.All" || st.subscriptions.contains(&ct) {
                st.subscriptions.insert(ct);
                return reply(
                    400,
                    json!({"error": {"code": "AF20024", "message": "The subscription is already enabled. No property change."}}),
                );
            }
            st.subscriptions.insert(ct.clone());
            return reply(
                200,
                json!({"contentType": ct, "status": "enabled", "webhook": null}),
            );
        }
        if method == Method::GET && path == format!("{manage}/subscriptions/content") {
            return audit_list(st, base, now, path, query, &q);
        }
        if method == Method::GET && path.starts_with(&format!("{manage}/audit/")) {
            let id = &path[manage.len() + "/audit/".len()..];
            *st.blob_fetches.entry(id.to_string()).or_default() += 1;
            return match st.blobs.iter().find(|b| b.id == id) {
                Some(b) => reply(200, Value::Array(b.records.clone())),
                None => {
                    st.problems.push(format!("fetch of an unknown blob {id}"));
                    reply(404, json!({}))
                }
            };
        }
    }
    if method == Method::GET
        && path == "/google/admin/reports/v1/activity/users/all/applications/gmail"
    {
        return reports_list(st, now, &q);
    }
    st.problems.push(format!("unexpected {method} {path}"));
    reply(404, json!({"error": "not found"}))
}

fn graph_list(
    st: &mut MockState,
    base: &str,
    now: DateTime<Utc>,
    q: &HashMap<String, String>,
) -> Reply {
    let filter = q.get("$filter").cloned().unwrap_or_default();
    let parsed = filter
        .strip_prefix("receivedDateTime ge ")
        .and_then(|r| r.split_once(" and receivedDateTime le "))
        .and_then(|(a, b)| {
            Some((
                a.parse::<DateTime<Utc>>().ok()?,
                b.parse::<DateTime<Utc>>().ok()?,
                a,
                b,
            ))
        });
    let Some((start, end, a, b)) = parsed else {
        st.problems.push(format!("bad $filter {filter:?}"));
        return reply(
            400,
            json!({"error": {"code": "BadRequest", "message": "Invalid filter"}}),
        );
    };
    if !a.ends_with('Z') || !b.ends_with('Z') || a.contains('.') {
        st.problems.push(format!(
            "filter times not as YYYY-MM-DDThh:mm:ssZ: {filter}"
        ));
    }
    if end <= start || end - start > chrono::Duration::days(10) {
        st.problems.push(format!(
            "trace window {a}..{b} is empty or longer than 10 days"
        ));
    }
    if end > now || start < now - chrono::Duration::days(90) {
        st.problems
            .push(format!("trace window {a}..{b} outside the last 90 days"));
    }
    let top: usize = q.get("$top").and_then(|t| t.parse().ok()).unwrap_or(1000);
    if !(1..=5000).contains(&top) {
        st.problems.push(format!("$top {top}"));
    }
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    if skip == 0 {
        st.trace_windows.push((start, end));
    }
    let mut matching: Vec<Value> = st
        .traces
        .iter()
        .filter(|tr| {
            let r: DateTime<Utc> = tr["receivedDateTime"].as_str().unwrap().parse().unwrap();
            r >= start && r <= end
        })
        .cloned()
        .collect();
    matching.sort_by(|x, y| {
        x["receivedDateTime"]
            .as_str()
            .cmp(&y["receivedDateTime"].as_str())
    });
    let size = top.min(2);
    let page: Vec<Value> = matching.iter().skip(skip).take(size).cloned().collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#admin/exchange/tracing/messageTraces",
        "value": page,
    });
    if skip + size < matching.len() {
        body["@odata.nextLink"] = Value::from(format!(
            "{base}/graph/beta/admin/exchange/tracing/messageTraces?$filter={}&$top={top}&$skiptoken={}",
            percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC),
            skip + size
        ));
    }
    reply(200, body)
}

fn audit_list(
    st: &mut MockState,
    base: &str,
    now: DateTime<Utc>,
    path: &str,
    query: &str,
    q: &HashMap<String, String>,
) -> Reply {
    let ct = q.get("contentType").cloned().unwrap_or_default();
    if !st.subscriptions.contains(&ct) {
        return reply(
            400,
            json!({"error": {"code": "AF20022", "message": "No subscription found for the specified content type"}}),
        );
    }
    let time = |k: &str| {
        q.get(k)
            .and_then(|v| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").ok())
            .map(|n| n.and_utc())
    };
    let (Some(start), Some(end)) = (time("startTime"), time("endTime")) else {
        st.problems.push(format!(
            "content list without readable startTime/endTime: {query}"
        ));
        return reply(
            400,
            json!({"error": {"code": "AF20030", "message": "Start time and end time must both be specified"}}),
        );
    };
    if end <= start || end - start > chrono::Duration::hours(24) {
        st.problems.push(format!(
            "audit window {start}..{end} is empty or longer than 24 hours"
        ));
    }
    if start < now - chrono::Duration::days(7) || end > now {
        st.problems.push(format!(
            "audit window {start}..{end} outside the last 7 days"
        ));
    }
    let page: usize = q.get("nextPage").and_then(|p| p.parse().ok()).unwrap_or(0);
    if page == 0 {
        st.audit_windows.push((ct.clone(), start, end));
    }
    let listed: Vec<Value> = st
        .blobs
        .iter()
        .filter(|b| b.content_type == ct && b.created >= start && b.created < end)
        .map(|b| {
            json!({
                "contentType": b.content_type,
                "contentId": b.id,
                "contentUri": format!("{base}/manage/api/v1.0/{TENANT}/activity/feed/audit/{}", b.id),
                "contentCreated": b.created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "contentExpiration": (b.created + chrono::Duration::days(7)).to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        })
        .collect();
    let body: Vec<Value> = listed.iter().skip(page * 2).take(2).cloned().collect();
    let mut extra = Vec::new();
    if (page + 1) * 2 < listed.len() {
        let plain: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("nextPage="))
            .collect();
        extra.push((
            "NextPageUri".to_string(),
            format!("{base}{path}?{}&nextPage={}", plain.join("&"), page + 1),
        ));
    }
    (200, extra, Value::Array(body).to_string())
}

fn reports_list(st: &mut MockState, now: DateTime<Utc>, q: &HashMap<String, String>) -> Reply {
    let time = |k: &str| q.get(k).and_then(|v| v.parse::<DateTime<Utc>>().ok());
    let (Some(start), Some(end)) = (time("startTime"), time("endTime")) else {
        st.problems.push(format!(
            "reports query without RFC 3339 startTime/endTime: {q:?}"
        ));
        return reply(
            400,
            json!({"error": {"code": 400, "message": "Bad Request"}}),
        );
    };
    if end <= start || end - start > chrono::Duration::days(30) {
        st.problems.push(format!(
            "gmail window {start}..{end} is empty or longer than 30 days"
        ));
    }
    if end > now || start < now - chrono::Duration::days(180) {
        st.problems
            .push(format!("gmail window {start}..{end} outside the data kept"));
    }
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if !(1..=1000).contains(&max) {
        st.problems.push(format!("maxResults {max}"));
    }
    let page: usize = q
        .get("pageToken")
        .map(|p| p.trim_start_matches('p').parse().unwrap_or(0))
        .unwrap_or(0);
    if page == 0 {
        st.gmail_windows.push((start, end));
    }
    let mut matching: Vec<Value> = st
        .activities
        .iter()
        .filter(|a| {
            let time: DateTime<Utc> = a["id"]["time"].as_str().unwrap().parse().unwrap();
            time >= start && time <= end
        })
        .cloned()
        .collect();
    // Newest first, as the Reports API lists.
    matching.sort_by(|x, y| y["id"]["time"].as_str().cmp(&x["id"]["time"].as_str()));
    let items: Vec<Value> = matching.iter().skip(page * 2).take(2).cloned().collect();
    let mut body = json!({"kind": "admin#reports#activities", "etag": "\"e\"", "items": items});
    if (page + 1) * 2 < matching.len() {
        body["nextPageToken"] = Value::from(format!("p{}", page + 1));
    }
    reply(200, body)
}

fn verify_jwt(st: &MockState, assertion: &str) -> Result<(), String> {
    let check = st.gmail.as_ref().ok_or("no key registered")?;
    let (header, claims) = common::verified_jwt(assertion, &check.public_key_der)?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != "test-key-1" {
        return Err(format!("header {header}"));
    }
    if claims["iss"] != SA_EMAIL
        || claims["sub"] != ADMIN
        || claims["scope"] != GMAIL_SCOPE
        || claims["aud"] != check.token_uri.as_str()
    {
        return Err(format!("claims {claims}"));
    }
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp - iat != 3600 || (iat - Utc::now().timestamp()).abs() > 60 {
        return Err(format!("iat {iat} exp {exp}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running pollers.

fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, SqliteOptions::default()).unwrap()
}

/// Run pollers over the store in `dir` from its saved cursors until
/// `done` says so; then stop them and close the store.
fn run_pollers(
    dir: &Path,
    keys: &[String],
    clock: poll::Clock,
    logs: &Logs,
    start: impl FnOnce(&Checkpoints, &PollerEnv) -> Vec<std::thread::JoinHandle<()>>,
    done: impl Fn(&Metrics) -> bool,
) -> Arc<Metrics> {
    let store = open_store(dir);
    let mut saved = Checkpoints::new();
    for key in keys {
        if let Some(v) = store.setting(key).unwrap() {
            saved.insert(key.clone(), v);
        }
    }
    let metrics = Arc::new(Metrics::default());
    let (writer, writer_thread) = StoreWriter::start(store, 64, metrics.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let sink = logs.clone();
    let env = PollerEnv {
        writer: writer.clone(),
        stop: stop.clone(),
        metrics: metrics.clone(),
        log: Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string())),
        clock,
        retry: fast_retries(),
    };
    let threads = start(&saved, &env);
    drop(env);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done(&metrics) {
        assert!(
            Instant::now() < deadline,
            "the pollers did not finish; log:\n{}",
            logs.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    drop(writer);
    writer_thread.join().unwrap();
    metrics
}

/// Every text a poller showed: log lines and last errors.
fn shown(logs: &Logs, metrics: &Metrics) -> String {
    let mut all = logs.lock().unwrap().join("\n");
    for (_, p) in metrics.pollers() {
        all.push('\n');
        all.push_str(&p.last_error().unwrap_or_default());
    }
    all
}

fn assert_no_secret(mock: &Mock, text: &str, extra: &[&str]) {
    let (issued, assertions) = mock.with(|s| (s.issued.clone(), s.assertions.clone()));
    assert!(!issued.is_empty());
    let secrets = issued.iter().chain(assertions.iter()).map(String::as_str);
    common::assert_not_shown(text, secrets.chain([SECRET]).chain(extra.iter().copied()));
}

fn m365_config(mock: &Mock, dir: &Path, feeds: Vec<M365Feed>) -> M365Config {
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    M365Config {
        tenant_id: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret_file: Some(secret_file),
        feeds,
        graph_url: format!("{}/graph/beta", mock.base),
        login_url: format!("{}/entra", mock.base),
        manage_url: format!("{}/manage", mock.base),
        poll_interval: Duration::from_secs(3600),
        ..M365Config::default()
    }
}

fn stored_deliveries(store: &SqliteStore, message_id: &str) -> Vec<String> {
    let m = store
        .message_by_message_id(message_id)
        .unwrap()
        .unwrap_or_else(|| panic!("{message_id} is not stored"));
    let mut d: Vec<String> = m
        .deliveries
        .iter()
        .map(|d| format!("{} {} {}", z(d.time), d.status.as_str(), d.recipient))
        .collect();
    d.sort();
    d
}

// ---------------------------------------------------------------------------
// Microsoft Graph message traces.

fn trace(n: u32, received: DateTime<Utc>, status: &str) -> Value {
    json!({
        "id": format!("4e5f6071-0000-4000-8000-{n:012}"),
        "senderAddress": "taro.yamada@example.co.jp",
        "recipientAddress": format!("user{n}@partner.example"),
        "messageId": format!("<t{n}@example.co.jp>"),
        "receivedDateTime": z(received),
        "subject": format!("見積書 {n}"),
        "size": 1000 + n,
        "fromIP": "192.0.2.10",
        "toIP": "",
        "status": status,
    })
}

#[test]
fn graph_message_traces_windows_pages_retries_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now1 = t("2026-11-20T12:00:00Z");
    let mock = Mock::start(now1);
    let first: Vec<Value> = vec![
        trace(1, t("2026-10-27T09:00:00Z"), "Delivered"),
        trace(2, t("2026-11-03T10:00:00Z"), "Delivered"),
        trace(3, t("2026-11-06T11:00:00Z"), "Failed"),
        trace(4, t("2026-11-07T12:00:00Z"), "Delivered"),
        trace(5, t("2026-11-10T13:00:00Z"), "FilteredAsSpam"),
        trace(6, t("2026-11-16T14:00:00Z"), "Delivered"),
        trace(7, t("2026-11-20T11:45:00Z"), "Delivered"),
    ];
    mock.with(|s| {
        s.traces = first.clone();
        s.revoke_once = true;
        s.faults = vec![
            Fault::throttle("$skiptoken=2", 1),
            Fault {
                matches: "getDetailsByRecipient".into(),
                status: 503,
                retry_after: Some("date+2".into()),
                times: 1,
                body: String::new(),
            },
            // A page cut off in the middle: an error of that cycle, and the
            // next cycle fetches the window again.
            Fault {
                matches: "$skiptoken=2".into(),
                status: 200,
                retry_after: None,
                times: 1,
                body: r#"{"@odata.context":"x","value":[{"id":"#.into(),
            },
        ];
    });
    let config = M365Config {
        backfill_days: 25,
        ..m365_config(&mock, dir.path(), vec![M365Feed::MessageTraces])
    };
    let ready = config.prepare().unwrap();
    let keys = poll::checkpoint_keys(Some(&ready), None);
    assert_eq!(keys, vec![format!("poll:m365:{TENANT}:message-traces")]);
    let logs: Logs = Arc::default();
    let start =
        |saved: &Checkpoints, env: &PollerEnv| poll::spawn_all(Some(&ready), None, saved, env);
    let done = |m: &Metrics| m.poll_m365_traces.last_success.load(Ordering::Relaxed) > 0;
    let metrics = run_pollers(&data, &keys, mock.clock(), &logs, start, done);

    assert_eq!(mock.problems(), Vec::<String>::new());
    // 25 days back in windows of at most 10 days, contiguous, ending a minute
    // before now. The second window's cut-off page fails that cycle; the next
    // cycle starts again from the saved cursor, less the overlap.
    let windows = mock.with(|s| s.trace_windows.clone());
    assert_eq!(
        windows,
        vec![
            (t("2026-10-26T12:00:00Z"), t("2026-11-05T12:00:00Z")),
            (t("2026-11-05T12:00:00Z"), t("2026-11-15T12:00:00Z")),
            (t("2026-11-05T11:30:00Z"), t("2026-11-15T11:30:00Z")),
            (t("2026-11-15T11:30:00Z"), t("2026-11-20T11:59:00Z")),
        ]
    );
    // Throttled requests were retried after Retry-After, and the 401 of a
    // revoked token was answered with a new token.
    mock.with(|s| {
        let throttled = s.requests.iter().position(|r| r.status == 429).unwrap();
        let again = s.requests[throttled + 1..]
            .iter()
            .find(|r| r.query == s.requests[throttled].query)
            .unwrap();
        assert!(again.at - s.requests[throttled].at >= Duration::from_millis(900));
        let unavailable = s.requests.iter().position(|r| r.status == 503).unwrap();
        let again = &s.requests[unavailable + 1];
        assert_eq!(again.path, s.requests[unavailable].path);
        assert!(again.at - s.requests[unavailable].at >= Duration::from_millis(900));
        assert!(s.requests.iter().any(|r| r.status == 401));
        assert!(s.token_requests >= 2, "{}", s.token_requests);
        // The cut-off page was asked for again, and its records arrived.
        let cut = s
            .requests
            .iter()
            .filter(|r| r.query.contains("$skiptoken=2"))
            .count();
        assert!(cut >= 3, "429, cut off, then whole: {cut}");
        // Details only for the traces that were not delivered.
        let mut asked: Vec<String> = s.details_asked.iter().map(|(_, r)| r.clone()).collect();
        asked.dedup();
        assert_eq!(
            asked,
            vec!["user3@partner.example", "user5@partner.example"]
        );
    });
    assert_eq!(metrics.poll_m365_traces.errors.load(Ordering::Relaxed), 1);
    assert!(metrics
        .render()
        .contains("mailtrail_poll_requests_total{source=\"m365-traces\"}"));

    let store = open_store(&data);
    assert_eq!(store.stats().unwrap().messages, 7);
    assert_eq!(
        stored_deliveries(&store, "t1@example.co.jp"),
        vec![
            "2026-10-27T09:00:00Z delivered user1@partner.example",
            "2026-10-27T09:00:00Z received ",
        ]
    );
    let failed = stored_deliveries(&store, "t3@example.co.jp");
    assert!(
        failed.contains(&"2026-11-06T11:00:05Z failed user3@partner.example".to_string()),
        "{failed:?}"
    );
    let cursor = store
        .setting(&keys[0])
        .unwrap()
        .expect("the cursor is saved");
    assert_eq!(cursor, r#"{"until":"2026-11-20T11:59:00Z"}"#);
    let before: Vec<Vec<String>> = (1..=7)
        .map(|n| stored_deliveries(&store, &format!("t{n}@example.co.jp")))
        .collect();
    drop(store);

    // Two hours later: a new message, and one that Microsoft listed late
    // (received before the cursor, within the overlap). The restarted
    // poller asks for one window only, from the cursor less the overlap.
    let now2 = now1 + chrono::Duration::hours(2);
    mock.set_now(now2);
    mock.with(|s| {
        s.traces
            .push(trace(8, t("2026-11-20T11:40:00Z"), "Delivered"));
        s.traces
            .push(trace(9, t("2026-11-20T13:00:00Z"), "Delivered"));
        s.trace_windows.clear();
        s.details_asked.clear();
    });
    let metrics = run_pollers(&data, &keys, mock.clock(), &logs, start, done);
    assert_eq!(mock.problems(), Vec::<String>::new());
    assert_eq!(
        mock.with(|s| s.trace_windows.clone()),
        vec![(t("2026-11-20T11:29:00Z"), t("2026-11-20T13:59:00Z"))]
    );
    let store = open_store(&data);
    assert_eq!(store.stats().unwrap().messages, 9);
    // Trace 7, fetched again in the overlap, is stored once.
    let after: Vec<Vec<String>> = (1..=7)
        .map(|n| stored_deliveries(&store, &format!("t{n}@example.co.jp")))
        .collect();
    assert_eq!(before, after);
    assert_eq!(stored_deliveries(&store, "t8@example.co.jp").len(), 2);
    assert_eq!(
        store.setting(&keys[0]).unwrap().unwrap(),
        r#"{"until":"2026-11-20T13:59:00Z"}"#
    );
    assert_no_secret(&mock, &shown(&logs, &metrics), &[]);
}

// ---------------------------------------------------------------------------
// Office 365 Management Activity API.

fn send_record(n: u32, created: DateTime<Utc>) -> Value {
    json!({
        "Id": format!("a0000000-0000-4000-8000-{n:012}"),
        "RecordType": 2,
        "CreationTime": created.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "Operation": "Send",
        "OrganizationId": TENANT,
        "UserType": 0,
        "UserKey": "10032001A0B0C0D0",
        "Workload": "Exchange",
        "ResultStatus": "Succeeded",
        "UserId": "taro.yamada@example.co.jp",
        "ClientIP": "192.0.2.55",
        "LogonType": 0,
        "MailboxOwnerUPN": "taro.yamada@example.co.jp",
        "ClientIPAddress": "192.0.2.55",
        "Item": {
            "Id": format!("item-{n}"),
            "Subject": format!("送信 {n}"),
            "InternetMessageId": format!("<a{n}@example.co.jp>"),
            "SizeInBytes": 2000 + n,
            "ParentFolder": {"Id": "f", "Path": "\\Sent Items"}
        }
    })
}

fn dlp_record(n: u32, created: DateTime<Utc>) -> Value {
    json!({
        "Id": format!("d0000000-0000-4000-8000-{n:012}"),
        "RecordType": 13,
        "CreationTime": created.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "Operation": "DlpRuleMatch",
        "OrganizationId": TENANT,
        "UserType": 4,
        "UserKey": "1153801116545789462",
        "UserId": "DlpAgent",
        "Workload": "Exchange",
        "ObjectId": format!("<a{n}@example.co.jp>"),
        "ExchangeMetaData": {
            "From": "taro.yamada@example.co.jp",
            "To": ["hanako.sato@tokyo-shoji.co.jp"],
            "CC": [],
            "BCC": ["private.box@freemail.example"],
            "MessageID": format!("<a{n}@example.co.jp>"),
            "RecipientCount": 2,
            "Sent": created.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "Subject": format!("送信 {n}"),
            "FileSize": 2000.0
        }
    })
}

fn blob(ct: &str, id: &str, created: &str, records: Vec<Value>) -> Blob {
    Blob {
        content_type: ct.into(),
        id: id.into(),
        created: t(created),
        records,
    }
}

#[test]
fn audit_feed_subscriptions_blobs_retries_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now1 = t("2026-11-20T12:00:00Z");
    let mock = Mock::start(now1);
    let accessed = json!({
        "Id": "m0000000-0000-4000-8000-000000000001", "RecordType": 50,
        "CreationTime": "2026-11-18T09:00:00", "Operation": "MailItemsAccessed",
        "Workload": "Exchange", "UserId": "taro.yamada@example.co.jp", "MailAccessType": "Bind",
        "OrganizationId": TENANT, "ResultStatus": "Succeeded"
    });
    let broken =
        json!({"Id": "broken-1", "Operation": "Send", "RecordType": 2, "Workload": "Exchange"});
    mock.with(|s| {
        s.echo_secret_once = true;
        s.blobs = vec![
            blob(
                "Audit.Exchange",
                "b1",
                "2026-11-17T15:00:00Z",
                vec![send_record(1, t("2026-11-17T14:59:00Z"))],
            ),
            blob(
                "Audit.Exchange",
                "b2",
                "2026-11-18T09:00:00Z",
                vec![
                    send_record(2, t("2026-11-18T08:58:00Z")),
                    accessed.clone(),
                    broken.clone(),
                ],
            ),
            blob(
                "Audit.Exchange",
                "b3",
                "2026-11-19T20:00:00Z",
                vec![send_record(3, t("2026-11-19T19:58:00Z"))],
            ),
            blob(
                "Audit.Exchange",
                "b4",
                "2026-11-19T20:05:00Z",
                vec![send_record(4, t("2026-11-19T20:04:00Z"))],
            ),
            blob(
                "Audit.Exchange",
                "b5",
                "2026-11-19T20:10:00Z",
                vec![send_record(5, t("2026-11-19T20:09:00Z"))],
            ),
            blob(
                "Audit.Exchange",
                "b6",
                "2026-11-20T11:50:00Z",
                vec![send_record(6, t("2026-11-20T11:49:00Z"))],
            ),
            blob(
                "DLP.All",
                "p1",
                "2026-11-18T10:00:00Z",
                vec![dlp_record(2, t("2026-11-18T08:58:00Z"))],
            ),
        ];
        s.faults = vec![
            // Blob b2 fails every attempt of the first cycle: the cycle
            // fails and the next one fetches it.
            Fault {
                matches: "/audit/b2".into(),
                status: 500,
                retry_after: None,
                times: 3,
                body: json!({"error": {"code": "InternalError", "message": "try later"}})
                    .to_string(),
            },
            Fault {
                matches: "endTime=2026-11-19T12:00:00".into(),
                status: 429,
                retry_after: Some("1".into()),
                times: 1,
                body: String::new(),
            },
            Fault {
                matches: "nextPage=1".into(),
                status: 503,
                retry_after: Some("date+1".into()),
                times: 1,
                body: String::new(),
            },
        ];
    });
    let config = M365Config {
        backfill_days: 3,
        ..m365_config(&mock, dir.path(), vec![M365Feed::Audit])
    };
    let ready = config.prepare().unwrap();
    let keys = poll::checkpoint_keys(Some(&ready), None);
    assert_eq!(
        keys,
        vec![
            format!("poll:m365:{TENANT}:audit:Audit.Exchange"),
            format!("poll:m365:{TENANT}:audit:DLP.All"),
        ]
    );
    let logs: Logs = Arc::default();
    let start =
        |saved: &Checkpoints, env: &PollerEnv| poll::spawn_all(Some(&ready), None, saved, env);
    let done = |m: &Metrics| m.poll_m365_audit.last_success.load(Ordering::Relaxed) > 0;
    let metrics = run_pollers(&data, &keys, mock.clock(), &logs, start, done);

    assert_eq!(mock.problems(), Vec::<String>::new());
    // The token refused with the secret echoed, then the blob that kept
    // failing: two failed cycles, reported and retried.
    assert_eq!(metrics.poll_m365_audit.errors.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.poll_m365_audit.last_error(), None);
    let log = logs.lock().unwrap().join("\n");
    assert!(
        log.contains("AADSTS7000215") && log.contains("<redacted>"),
        "{log}"
    );
    assert!(log.contains("client secret is wrong"), "{log}");
    assert!(log.contains("answered HTTP 500"), "{log}");
    mock.with(|s| {
        assert!(s.subscriptions.contains("Audit.Exchange") && s.subscriptions.contains("DLP.All"));
        // Every blob fetched once with success, none again; b2 failed on
        // every attempt of one cycle before.
        for id in ["b1", "b2", "b3", "b4", "b5", "b6", "p1"] {
            assert_eq!(
                s.blob_fetches.get(id),
                Some(&1),
                "{id}: {:?}",
                s.blob_fetches
            );
        }
        let b2_failures = s
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/audit/b2") && r.status == 500)
            .count();
        assert_eq!(b2_failures, 3);
        let starts: Vec<&str> = s
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/subscriptions/start"))
            .map(|r| r.method.as_str())
            .collect();
        assert_eq!(starts, vec!["POST", "POST"]);
        for (ct, start, end) in &s.audit_windows {
            assert!(
                *end - *start <= chrono::Duration::hours(24),
                "{ct} {start} {end}"
            );
        }
        let throttled = s.requests.iter().position(|r| r.status == 429).unwrap();
        let again = s.requests[throttled + 1..]
            .iter()
            .find(|r| r.query == s.requests[throttled].query)
            .unwrap();
        assert!(again.at - s.requests[throttled].at >= Duration::from_millis(900));
    });
    let store = open_store(&data);
    let stats = store.stats().unwrap();
    assert_eq!(stats.messages, 6, "{stats:?}");
    assert_eq!(stats.rejects, 1, "{stats:?}");
    // The DLP record's Bcc joined the send of the same message.
    let a2 = store
        .message_by_message_id("a2@example.co.jp")
        .unwrap()
        .unwrap();
    assert!(
        a2.recipients
            .iter()
            .any(|r| r.address == "private.box@freemail.example"),
        "{:?}",
        a2.recipients
    );
    let cursor = poll::Cursor::parse(&store.setting(&keys[0]).unwrap().unwrap()).unwrap();
    assert_eq!(cursor.until, t("2026-11-20T11:59:00Z"));
    // b6 is inside the overlap of the next poll: remembered.
    assert!(cursor.seen.contains_key("b6"), "{cursor:?}");
    let before = store.stats().unwrap();
    drop(store);

    // Restart two hours later: one window per content type, from the
    // cursor less the overlap; b6 is listed again but not fetched again.
    let now2 = now1 + chrono::Duration::hours(2);
    mock.set_now(now2);
    mock.with(|s| {
        s.audit_windows.clear();
        s.blobs.push(blob(
            "Audit.Exchange",
            "b7",
            "2026-11-20T13:00:00Z",
            vec![send_record(7, t("2026-11-20T12:59:00Z"))],
        ));
    });
    let metrics = run_pollers(&data, &keys, mock.clock(), &logs, start, done);
    assert_eq!(mock.problems(), Vec::<String>::new());
    let end2 = now2 - chrono::Duration::minutes(1);
    mock.with(|s| {
        let mut windows = s.audit_windows.clone();
        windows.sort();
        assert_eq!(
            windows,
            vec![
                (
                    "Audit.Exchange".to_string(),
                    t("2026-11-20T11:29:00Z"),
                    end2
                ),
                ("DLP.All".to_string(), t("2026-11-20T11:29:00Z"), end2),
            ]
        );
        assert_eq!(s.blob_fetches.get("b6"), Some(&1));
        assert_eq!(s.blob_fetches.get("b7"), Some(&1));
    });
    let store = open_store(&data);
    let after = store.stats().unwrap();
    assert_eq!(after.messages, before.messages + 1);
    assert_eq!(after.rejects, before.rejects);
    assert_no_secret(&mock, &shown(&logs, &metrics), &[]);
    for q in store.quarantine(100).unwrap() {
        assert_no_secret(&mock, &format!("{q:?}"), &[]);
    }
}

// ---------------------------------------------------------------------------
// Google Workspace Reports API.

fn activity(n: u32, time: DateTime<Utc>) -> Value {
    json!({
        "kind": "admin#reports#activity",
        "id": {
            "time": time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "uniqueQualifier": format!("-{n}"),
            "applicationName": "gmail",
            "customerId": "C01abcde2"
        },
        "actor": {"callerType": "USER", "email": "taro.yamada@example.co.jp"},
        "ipAddress": "192.0.2.55",
        "events": [{
            "type": "delivery_type",
            "name": "delivery",
            "parameters": [
                {"name": "event_info", "messageValue": {"parameter": [
                    {"name": "timestamp_usec", "intValue": time.timestamp_micros().to_string()},
                    {"name": "success", "boolValue": true},
                    {"name": "mail_event_type", "intValue": "1"}
                ]}},
                {"name": "message_info", "messageValue": {"parameter": [
                    {"name": "rfc2822_message_id", "value": format!("<g{n}@example.co.jp>")},
                    {"name": "subject", "value": format!("社外秘 {n}")},
                    {"name": "payload_size", "intValue": "4800"},
                    {"name": "source", "messageValue": {"parameter": [
                        {"name": "address", "value": "taro.yamada@example.co.jp"},
                        {"name": "service", "value": "gmail-ui"}
                    ]}},
                    {"name": "destination", "multiMessageValue": [{"parameter": [
                        {"name": "address", "value": format!("client{n}@partner.example")},
                        {"name": "service", "value": "smtp-outbound"}
                    ]}]}
                ]}}
            ]
        }]
    })
}

#[test]
fn gmail_reports_jwt_windows_pages_retries_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some((private_pem, public_der)) = common::test_key(dir.path()) else {
        eprintln!("skipped: the openssl command is needed to make the test key");
        return;
    };
    let data = dir.path().join("data");
    let now1 = t("2026-11-20T12:00:00Z");
    let mock = Mock::start(now1);
    let token_uri = format!("{}/google/token", mock.base);
    let key_file = common::service_account_key(dir.path(), SA_EMAIL, &private_pem, &token_uri);
    mock.with(|s| {
        s.gmail = Some(GmailCheck {
            public_key_der: public_der,
            token_uri: token_uri.clone(),
        });
        s.activities = [
            "2026-10-07T09:00:00Z",
            "2026-10-20T09:00:00Z",
            "2026-11-01T09:00:00Z",
            "2026-11-04T09:00:00Z",
            "2026-11-06T09:00:00Z",
            "2026-11-12T09:00:00Z",
            "2026-11-20T11:30:00Z",
        ]
        .iter()
        .enumerate()
        .map(|(i, time)| activity(i as u32 + 1, t(time)))
        .collect();
        s.faults = vec![
            Fault {
                matches: "pageToken=p1".into(),
                status: 429,
                retry_after: Some("1".into()),
                times: 1,
                body: json!({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}).to_string(),
            },
            Fault {
                matches: "pageToken=p1".into(),
                status: 503,
                retry_after: None,
                times: 1,
                body: String::new(),
            },
        ];
        s.revoke_once = true;
    });
    let config = GmailConfig {
        service_account_key_file: key_file,
        delegated_admin: ADMIN.into(),
        reports_url: format!("{}/google", mock.base),
        backfill_days: 45,
        poll_interval: Duration::from_secs(3600),
        ..GmailConfig::default()
    };
    let ready = config.prepare().unwrap();
    let keys = poll::checkpoint_keys(None, Some(&ready));
    assert_eq!(keys, vec!["poll:gmail:example.co.jp:reports".to_string()]);
    let logs: Logs = Arc::default();
    let start =
        |saved: &Checkpoints, env: &PollerEnv| poll::spawn_all(None, Some(&ready), saved, env);
    let done = |m: &Metrics| m.poll_gmail.last_success.load(Ordering::Relaxed) > 0;
    let metrics = run_pollers(&data, &keys, mock.clock(), &logs, start, done);

    assert_eq!(mock.problems(), Vec::<String>::new());
    assert_eq!(
        mock.with(|s| s.gmail_windows.clone()),
        vec![
            (t("2026-10-06T12:00:00Z"), t("2026-11-05T12:00:00Z")),
            (t("2026-11-05T12:00:00Z"), t("2026-11-20T11:59:00Z")),
        ]
    );
    mock.with(|s| {
        assert!(!s.assertions.is_empty());
        assert!(s.requests.iter().any(|r| r.status == 429));
        assert!(s.requests.iter().any(|r| r.status == 503));
        assert!(s.requests.iter().any(|r| r.status == 401));
        assert!(s.token_requests >= 2);
    });
    let store = open_store(&data);
    assert_eq!(store.stats().unwrap().messages, 7);
    let g7 = stored_deliveries(&store, "g7@example.co.jp");
    assert_eq!(g7, vec!["2026-11-20T11:30:00Z received "]);
    let before: Vec<Vec<String>> = (1..=7)
        .map(|n| stored_deliveries(&store, &format!("g{n}@example.co.jp")))
        .collect();
    drop(store);

    // Three hours later, from the saved cursor: one window, overlapping
    // the last by an hour; g7 is listed again and stored once.
    let now2 = now1 + chrono::Duration::hours(3);
    mock.set_now(now2);
    mock.with(|s| {
        s.gmail_windows.clear();
        s.activities.push(activity(8, t("2026-11-20T11:50:00Z")));
        s.activities.push(activity(9, t("2026-11-20T14:00:00Z")));
    });
    let metrics2 = run_pollers(&data, &keys, mock.clock(), &logs, start, done);
    assert_eq!(mock.problems(), Vec::<String>::new());
    assert_eq!(
        mock.with(|s| s.gmail_windows.clone()),
        vec![(t("2026-11-20T10:59:00Z"), t("2026-11-20T14:59:00Z"))]
    );
    let store = open_store(&data);
    assert_eq!(store.stats().unwrap().messages, 9);
    let after: Vec<Vec<String>> = (1..=7)
        .map(|n| stored_deliveries(&store, &format!("g{n}@example.co.jp")))
        .collect();
    assert_eq!(before, after);
    let key_body: Vec<&str> = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let text = shown(&logs, &metrics) + &shown(&logs, &metrics2);
    assert_no_secret(&mock, &text, &key_body);
    assert!(!format!("{ready:?}").contains(key_body[1]));
}

// ---------------------------------------------------------------------------
// Configuration errors are clear and secret-free.

#[test]
fn bad_settings_fail_before_polling() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(t("2026-11-20T12:00:00Z"));
    let base = m365_config(&mock, dir.path(), vec![M365Feed::MessageTraces]);
    let err = |c: &M365Config| c.prepare().unwrap_err().to_string();
    assert!(err(&M365Config {
        tenant_id: String::new(),
        ..base.clone()
    })
    .contains("tenant_id is required"));
    assert!(err(&M365Config {
        client_secret_file: Some(dir.path().join("missing")),
        ..base.clone()
    })
    .contains("cannot read client_secret_file"));
    let e = err(&M365Config {
        graph_url: "http://graph.example/beta".into(),
        ..base.clone()
    });
    assert!(e.contains("https://"), "{e}");
    let e = err(&M365Config {
        client_secret: Some(poll::Secret::new(SECRET)),
        ..base.clone()
    });
    assert!(e.contains("not both") && !e.contains(SECRET), "{e}");
    assert!(!format!("{:?}", base.prepare().unwrap()).contains(SECRET));

    let key = dir.path().join("key.json");
    std::fs::write(&key, r#"{"type":"service_account","client_email":"x@y","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#).unwrap();
    let gmail = GmailConfig {
        service_account_key_file: key.clone(),
        delegated_admin: ADMIN.into(),
        ..GmailConfig::default()
    };
    let e = gmail.prepare().unwrap_err().to_string();
    assert!(e.contains("private_key"), "{e}");
    std::fs::write(
        &key,
        r#"{"type":"authorized_user","client_email":"x@y","private_key":"k"}"#,
    )
    .unwrap();
    let e = gmail.prepare().unwrap_err().to_string();
    assert!(e.contains("not a service account key"), "{e}");
    let toml_err =
        toml::from_str::<GmailConfig>("service_account_key_file = \"k.json\"\nadmin = \"a@b\"\n");
    assert!(toml_err.is_err());
}

// ---------------------------------------------------------------------------
// TLS: the system's roots plus `ca_file`, and verification never off.

/// Terminate TLS on a new port and forward to the mock.
fn tls_front(mock: &Mock, cert: &Path, key: &Path) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let backend = mock.base.trim_start_matches("http://").to_string();
    let listener = mock
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let front = format!("https://{}", listener.local_addr().unwrap());
    mock.runtime.spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    front
}

#[test]
fn https_needs_a_trusted_certificate_and_ca_file_adds_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = common::make_certificate(dir.path()) else {
        eprintln!("skipped: the openssl command is needed to make the test certificate");
        return;
    };
    let now = t("2026-11-20T12:00:00Z");
    let mock = Mock::start(now);
    mock.with(|s| {
        s.traces = vec![
            trace(1, t("2026-11-20T08:00:00Z"), "Delivered"),
            trace(2, t("2026-11-20T09:00:00Z"), "Failed"),
        ]
    });
    let front = tls_front(&mock, &cert, &key);
    let data = dir.path().join("data");
    let config = M365Config {
        graph_url: format!("{front}/graph/beta"),
        login_url: format!("{front}/entra"),
        trace_details: poll::TraceDetails::None,
        ..m365_config(&mock, dir.path(), vec![M365Feed::MessageTraces])
    };
    let keys = poll::checkpoint_keys(Some(&config.prepare().unwrap()), None);
    let logs: Logs = Arc::default();

    // The test CA is in no system store: the handshake is refused, and
    // the poller says so (and keeps trying).
    let ready = config.prepare().unwrap();
    let metrics = run_pollers(
        &data,
        &keys,
        mock.clock(),
        &logs,
        |saved, env| poll::spawn_all(Some(&ready), None, saved, env),
        |m| m.poll_m365_traces.errors.load(Ordering::Relaxed) > 0,
    );
    let error = metrics.poll_m365_traces.last_error().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(mock.with(|s| s.requests.len()), 0);

    // With the CA as ca_file, the same poller fetches the traces.
    let ready = M365Config {
        ca_file: Some(ca),
        ..config
    }
    .prepare()
    .unwrap();
    run_pollers(
        &data,
        &keys,
        mock.clock(),
        &logs,
        |saved, env| poll::spawn_all(Some(&ready), None, saved, env),
        |m| m.poll_m365_traces.last_success.load(Ordering::Relaxed) > 0,
    );
    assert_eq!(mock.problems(), Vec::<String>::new());
    assert_eq!(open_store(&data).stats().unwrap().messages, 2);
}
