//! What the tests against local stand-ins share (pollers.rs,
//! directory_sync.rs): the plumbing of an HTTP stand-in for Entra ID,
//! Microsoft Graph and Google's APIs (a runtime serving an axum app, query
//! and form decoding, JSON replies, faults answered instead of the real
//! reply, bearer tokens, JWT assertions), the pollers' fast retries, and
//! keys and certificates made by `openssl`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use mailtrail_server::poll::RetryPolicy;
use serde_json::{json, Value};

/// Log lines collected from a poller or a sync.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// Retries that keep a test short.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_pause: Duration::from_millis(200),
        max_wait: Duration::from_secs(5),
        first_cycle_pause: Duration::from_millis(300),
        max_cycle_pause: Duration::from_secs(2),
    }
}

// ---------------------------------------------------------------------------
// The HTTP stand-in.

/// One request to a stand-in.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Serve a stand-in on a free port of 127.0.0.1, on a runtime of its own:
/// `answer` answers every request, with the state locked and the base URL
/// (`http://127.0.0.1:port`). The runtime (it serves while it lives) and
/// the base URL.
pub fn serve<S: Send + 'static>(
    state: Arc<Mutex<S>>,
    answer: fn(&mut S, &str, &Request) -> Reply,
) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let at = base.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (state, base) = (state.clone(), at.clone());
            async move {
                let request = Request {
                    method,
                    path: uri.path().to_string(),
                    query: uri.query().unwrap_or("").to_string(),
                    headers,
                    body,
                };
                let reply = answer(&mut state.lock().unwrap(), &base, &request);
                respond(reply)
            }
        },
    );
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (runtime, base)
}

/// A percent-encoded query or form part, `+` as a space.
pub fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

/// The parameters of a query string or form body.
pub fn params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A stand-in's answer: status, extra headers, body.
pub type Reply = (u16, Vec<(String, String)>, String);

/// A JSON answer without extra headers.
pub fn reply(status: u16, body: Value) -> Reply {
    (status, Vec::new(), body.to_string())
}

/// The HTTP response for a reply (the body as JSON).
pub fn respond((status, extra, text): Reply) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response();
    for (k, v) in extra {
        response.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}

/// An answer given instead of the real one.
#[derive(Clone)]
pub struct Fault {
    /// A substring of `path?query`.
    pub matches: String,
    pub status: u16,
    /// `Retry-After`: seconds, or `date+N` for an HTTP date N s from now.
    pub retry_after: Option<String>,
    pub times: u32,
    pub body: String,
}

impl Fault {
    /// Graph's 429 with `Retry-After: 1`, `times` times.
    pub fn throttle(matches: &str, times: u32) -> Fault {
        Fault {
            matches: matches.into(),
            status: 429,
            retry_after: Some("1".into()),
            times,
            body: json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}})
                .to_string(),
        }
    }
}

/// The answer of the first fault with times left whose `matches` is in
/// `full` (`path?query`), counted down; `None` when none is.
pub fn fault(faults: &mut [Fault], full: &str) -> Option<Reply> {
    let f = faults
        .iter_mut()
        .find(|f| f.times > 0 && full.contains(&f.matches))?;
    f.times -= 1;
    let mut extra = Vec::new();
    if let Some(ra) = &f.retry_after {
        let value = match ra.strip_prefix("date+") {
            Some(n) => (Utc::now() + chrono::Duration::seconds(n.parse().unwrap()))
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
            None => ra.clone(),
        };
        extra.push(("Retry-After".to_string(), value));
    }
    Some((f.status, extra, f.body.clone()))
}

/// A token endpoint's answer issuing `token` for `expires_in` seconds.
pub fn token_reply(token: &str, expires_in: u64) -> Reply {
    reply(
        200,
        json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": token}),
    )
}

/// The bearer token of a request, empty without one.
pub fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

/// Graph's 401 for a token it does not take.
pub fn invalid_token(message: &str) -> Reply {
    reply(
        401,
        json!({"error": {"code": "InvalidAuthenticationToken", "message": message}}),
    )
}

/// The header and claims of a JWT assertion whose RS256 signature
/// verifies with `public_key_der` (PKCS#1 DER).
pub fn verified_jwt(assertion: &str, public_key_der: &[u8]) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err("not three parts".into());
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = |part: &str| -> Result<Value, String> {
        serde_json::from_slice(&b64.decode(part).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let (header, claims) = (json(parts[0])?, json(parts[1])?);
    let signature = b64.decode(parts[2]).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
    .map_err(|_| "the RS256 signature does not verify with the test key".to_string())?;
    Ok((header, claims))
}

/// None of `secrets` is in `text`.
pub fn assert_not_shown<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "a secret was shown: {secret}\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Keys and certificates.

/// Write a service account's JSON key file as Google issues them (key id
/// `test-key-1`) to `dir`, with the key `private_pem` and the token
/// endpoint `token_uri`; its path.
pub fn service_account_key(
    dir: &Path,
    client_email: &str,
    private_pem: &str,
    token_uri: &str,
) -> PathBuf {
    let key_file = dir.join("service-account.json");
    std::fs::write(
        &key_file,
        json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key-1",
            "private_key": private_pem,
            "client_email": client_email,
            "client_id": "100000000000000000003",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string(),
    )
    .unwrap();
    key_file
}

/// Run `openssl` quietly; `None` when it is missing or fails.
fn openssl(args: &[&str]) -> Option<()> {
    Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| ())
}

/// A test RSA key made by openssl (PKCS#8 PEM) and its public key
/// (PKCS#1 DER); `None` without the openssl command.
pub fn test_key(dir: &Path) -> Option<(String, Vec<u8>)> {
    let key = dir.join("sa-key.pem");
    let public = dir.join("sa-pub.der");
    let (k, p) = (key.to_str()?, public.to_str()?);
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        k,
    ])?;
    openssl(&[
        "rsa",
        "-in",
        k,
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        p,
    ])?;
    Some((
        std::fs::read_to_string(&key).ok()?,
        std::fs::read(&public).ok()?,
    ))
}

/// A private CA and a certificate it signed for 127.0.0.1 and localhost:
/// (CA, certificate, key) PEM paths; `None` without the openssl command.
pub fn make_certificate(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (cert, key, csr, ext) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("cert.csr"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .ok()?;
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    let (ca_s, ca_key_s) = (s(&ca), s(&ca_key));
    args.extend(["-days", "2", "-subj", "/CN=mailtrail server test CA"]);
    args.extend(["-keyout", &ca_key_s, "-out", &ca_s]);
    openssl(&args)?;
    let (key_s, csr_s, cert_s, ext_s) = (s(&key), s(&csr), s(&cert), s(&ext));
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-subj", "/CN=localhost", "-keyout", &key_s, "-out", &csr_s]);
    openssl(&args)?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext_s,
        "-out",
        &cert_s,
    ])?;
    Some((ca, cert, key))
}
