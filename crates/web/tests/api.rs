//! The console's JSON API (`/api/v1/…`) over real HTTP: JSON errors with
//! their statuses (401 without a session, 400 for a bad query or id, 404),
//! search with its count, the message with its trail and the body for
//! administrators only, the stats, alerts as the command line prints them
//! and worked by administrators, the audit entries each call writes, and
//! the OpenAPI document held to exactly the routes the router serves.
//!
//! The router runs in-process on a loopback port over a seeded store, with the
//! helpers the console's tests share (`tests/common`).

mod common;

use std::path::Path;

use chrono::{TimeZone, Utc};
use common::{audit_actions, request, url, Answer, Console};
use mailtrail_model::{Recipient, RecipientKind};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{SqliteStore, Store};
use serde_json::Value;

/// A mail with a text body and a spreadsheet whose name is Japanese
/// (RFC 2231), as the journal captured it.
const TEXT_MAIL: &str = "From: Taro <taro@example.co.jp>\r\nTo: hanako@partner.example\r\n\
Subject: =?UTF-8?B?56S+5aSW56eY77ya6KaL56mN5pu4?=\r\nMessage-ID: <api-1@example.co.jp>\r\n\
Date: Fri, 20 Nov 2026 10:00:00 +0900\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
見積書をお送りします。\r\n\
--b1\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\
Content-Disposition: attachment; filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%9B%B8.xlsx\r\n\
Content-Transfer-Encoding: base64\r\n\r\n\
UEsDBBQAAAAIAHNoZWV0LWJ5dGVz\r\n\
--b1--\r\n";

/// The attachment's decoded bytes.
const SHEET: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00sheet-bytes";

fn seed(dir: &Path) {
    let mut store = common::open_store(dir);
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
    let mut with_content = mailtrail_ingest::mime::parse_message(
        TEXT_MAIL.as_bytes().to_vec(),
        &mailtrail_ingest::DecodeOptions::default(),
    )
    .unwrap();
    with_content.first_seen = Some(t);
    with_content
        .recipients
        .push(Recipient::new("secret@rival.example", None, RecipientKind::Bcc).unwrap());
    with_content.systems = vec!["journal".into()];
    let log_only = common::log_only_message("api-2@example.co.jp", t);
    store
        .write_batch(vec![with_content, log_only], vec![])
        .unwrap();
    drop(store);
    assert_eq!(common::raise_alerts(dir, ALERT_RULES).len(), 2);
}

/// Two rules matching api-1: its subject (high) and its body (low).
const ALERT_RULES: &str = r#"
[[rule]]
id = "shagaihi"
name = "社外秘の送信"
[[rule.condition]]
type = "keywords"
words = ["社外秘"]
fields = ["subject"]
[[rule.action]]
type = "alert"
severity = "high"

[[rule]]
id = "mitsumori-body"
[[rule.condition]]
type = "keywords"
words = ["見積書をお送り"]
fields = ["body"]
[[rule.action]]
type = "alert"
severity = "low"
"#;

fn start() -> Console {
    common::serve(seed, None)
}

/// The body as JSON, checking it is served as JSON.
fn json(answer: &Answer) -> Value {
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{}",
        answer.text()
    );
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.text()))
}

fn get(c: &Console, path: &str, session: Option<&str>) -> Answer {
    match session {
        Some(cookie) => request(c.addr, "GET", path, &[("Cookie", cookie)], ""),
        None => request(c.addr, "GET", path, &[], ""),
    }
}

/// The error's status and code, checking its shape.
fn error_of(answer: &Answer) -> (u16, String) {
    let body = json(answer);
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    (answer.status, error["code"].as_str().unwrap().to_string())
}

#[test]
fn without_a_session_every_endpoint_answers_401_json() {
    let c = start();
    for path in [
        "/api/v1/search?q=x",
        "/api/v1/messages/1",
        "/api/v1/messages/1/raw",
        "/api/v1/messages/1/attachments/0",
        "/api/v1/messages/1/trail",
        "/api/v1/stats",
        "/api/v1/alerts",
        "/api/v1/alerts/1",
    ] {
        let answer = get(&c, path, None);
        assert_eq!(error_of(&answer), (401, "unauthorized".into()), "{path}");
        assert_eq!(answer.header("location"), None, "{path}");
    }
    let change = common::post_json(
        c.addr,
        "/api/v1/alerts/1",
        &[("Content-Type", "application/json")],
        r#"{"state": "resolved"}"#,
    );
    assert_eq!(error_of(&change), (401, "unauthorized".into()));
    // A cookie naming no live session is no session either.
    let answer = get(&c, "/api/v1/stats", Some("mt_session=forged"));
    assert_eq!(error_of(&answer), (401, "unauthorized".into()));
    // Nothing was shown, so nothing was recorded.
    assert_eq!(audit_actions(c.dir.path()), vec![]);
}

#[test]
fn search_answers_the_matches_and_their_count_and_is_audited() {
    let c = start();
    let session = common::sign_in(c.addr, "etsuran", "etsuran-password-1").0;
    let answer = get(
        &c,
        &format!("/api/v1/search?q={}", url("見積書")),
        Some(&session),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = json(&answer);
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["limit"], 50);
    assert_eq!(body["offset"], 0);
    let m = &body["messages"][0];
    assert_eq!(m["subject"], "社外秘：見積書");
    assert_eq!(m["message_id"], "api-1@example.co.jp");
    assert_eq!(m["from"], "taro@example.co.jp");
    assert_eq!(m["to"], serde_json::json!(["hanako@partner.example"]));
    assert_eq!(m["bcc"], serde_json::json!(["secret@rival.example"]));
    assert_eq!(m["cc"], serde_json::json!([]));
    assert_eq!(m["direction"], "outbound");
    // Times are in the console's zone (Asia/Tokyo here), with the offset.
    assert_eq!(m["date"], "2026-11-20T10:00:00+09:00");
    assert_eq!(m["systems"], serde_json::json!(["journal"]));
    assert!(m["id"].is_i64() && m["attachments"].is_array() && m["status"].is_string());
    assert!(m.get("body_text").is_none() && m.get("preview").is_none());

    // Paging: the count stays the count of every match.
    let all = json(&get(
        &c,
        "/api/v1/search?q=after:2026-01-01&limit=1&offset=1",
        Some(&session),
    ));
    assert_eq!(
        (all["count"].as_u64(), all["limit"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(all["messages"].as_array().map(Vec::len), Some(1));

    let actions = audit_actions(c.dir.path());
    let searches: Vec<_> = actions
        .iter()
        .filter(|(_, action, _)| action == "search")
        .collect();
    assert_eq!(searches.len(), 2, "{actions:?}");
    assert_eq!(
        searches[0],
        &("etsuran".into(), "search".into(), Some("見積書".into()))
    );
}

#[test]
fn bad_parameters_answer_400_json_with_the_reason() {
    let c = start();
    let session = common::sign_in(c.addr, "kanri", "kanri-password-1").0;
    for path in [
        "/api/v1/search?q=",
        "/api/v1/search",
        "/api/v1/search?q=x&limit=abc",
        "/api/v1/search?q=x&limit=0",
        "/api/v1/search?q=x&limit=100000",
        "/api/v1/search?q=x&offset=-1",
        "/api/v1/messages/abc",
        "/api/v1/messages/1.5",
        "/api/v1/messages/99999999999999999999",
    ] {
        let answer = get(&c, path, Some(&session));
        assert_eq!(error_of(&answer), (400, "bad_request".into()), "{path}");
    }
    // The query parser's own message.
    let answer = get(&c, "/api/v1/search?q=after:notadate", Some(&session));
    assert_eq!(error_of(&answer), (400, "bad_request".into()));
    let message = json(&answer)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("notadate"), "{message}");
    // A refused query is not searched, so not recorded.
    assert!(!audit_actions(c.dir.path())
        .iter()
        .any(|(_, action, _)| action == "search"));
}

#[test]
fn unknown_messages_and_endpoints_answer_404_json() {
    let c = start();
    let session = common::sign_in(c.addr, "kanri", "kanri-password-1").0;
    for path in [
        "/api/v1/messages/424242",
        "/api/v1/nothing",
        "/api/v2/search?q=x",
    ] {
        let answer = get(&c, path, Some(&session));
        assert_eq!(error_of(&answer), (404, "not_found".into()), "{path}");
    }
}

/// The id search answers for a message id.
fn id_of(c: &Console, session: &str, message_id: &str) -> i64 {
    let body = json(&get(c, "/api/v1/search?q=after:2026-01-01", Some(session)));
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["message_id"] == message_id)
        .and_then(|m| m["id"].as_i64())
        .unwrap_or_else(|| panic!("{body}"))
}

#[test]
fn a_message_has_its_trail_for_all_and_its_body_for_administrators_only() {
    let c = start();
    let admin = common::sign_in(c.addr, "kanri", "kanri-password-1").0;
    let viewer = common::sign_in(c.addr, "etsuran", "etsuran-password-1").0;
    let content = id_of(&c, &admin, "api-1@example.co.jp");
    let logged = id_of(&c, &admin, "api-2@example.co.jp");

    let as_admin = get(&c, &format!("/api/v1/messages/{content}"), Some(&admin));
    assert_eq!(as_admin.status, 200, "{}", as_admin.text());
    let m = json(&as_admin);
    assert_eq!(m["id"], content);
    assert_eq!(m["subject"], "社外秘：見積書");
    assert_eq!(m["from_name"], "Taro");
    assert_eq!(m["content"], true);
    assert_eq!(m["attachments"][0]["filename"], "見積書.xlsx");
    assert!(
        m["body_text"]
            .as_str()
            .is_some_and(|b| b.contains("見積書をお送りします")),
        "{m}"
    );

    let as_viewer = json(&get(
        &c,
        &format!("/api/v1/messages/{content}"),
        Some(&viewer),
    ));
    assert_eq!(as_viewer["subject"], "社外秘：見積書");
    assert!(as_viewer.get("body_text").is_none(), "{as_viewer}");
    assert!(
        !as_viewer.to_string().contains("お送りします"),
        "{as_viewer}"
    );

    // The trail, for a viewer too.
    let trail = json(&get(
        &c,
        &format!("/api/v1/messages/{logged}"),
        Some(&viewer),
    ));
    assert_eq!(trail["envelope_from"], "jiro@example.co.jp");
    assert_eq!(trail["status"], "delivered");
    let d = &trail["deliveries"][0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["system"], "postfix@mx1");
    assert_eq!(d["recipient"], "x@partner.example");
    assert_eq!(d["relay"], "mx.partner.example[192.0.2.25]:25");
    assert_eq!(d["local_id"], "ABCDEF1234");
    assert_eq!(trail["recipients"][0]["kind"], "envelope");

    let views: Vec<_> = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, action, _)| action == "view")
        .collect();
    assert_eq!(
        views,
        vec![
            (
                "kanri".into(),
                "view".into(),
                Some("api-1@example.co.jp".into())
            ),
            (
                "etsuran".into(),
                "view".into(),
                Some("api-1@example.co.jp".into())
            ),
            (
                "etsuran".into(),
                "view".into(),
                Some("api-2@example.co.jp".into())
            ),
        ]
    );
}

#[test]
fn stats_answer_the_counts_and_are_audited() {
    let c = start();
    let session = common::sign_in(c.addr, "etsuran", "etsuran-password-1").0;
    let answer = get(&c, "/api/v1/stats", Some(&session));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let s = json(&answer);
    assert_eq!(s["messages"], 2, "{s}");
    assert_eq!(s["deliveries"]["delivered"], 1, "{s}");
    assert_eq!(s["systems"]["postfix@mx1"], 1, "{s}");
    assert!(s["directions"].is_object() && s["rejects"].is_u64() && s["blobs"].is_u64());
    assert!(audit_actions(c.dir.path())
        .iter()
        .any(|(user, action, _)| user == "etsuran" && action == "stats"));
}

#[test]
fn the_openapi_document_describes_exactly_the_served_routes() {
    let c = start();
    // The document needs no session: it describes, it holds no mail.
    let answer = get(&c, "/api/v1/openapi.json", None);
    assert_eq!(answer.status, 200);
    let doc = json(&answer);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(mailtrail_web::api::openapi_document()).unwrap()
    );
    let documented: std::collections::BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served: std::collections::BTreeSet<String> = mailtrail_web::api::paths()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(documented, served);
    for scheme in ["bearer", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }

    // Every documented operation is really served, with its documented
    // success answer and content type; every response it names is either
    // served in the test below or refers to a defined schema.
    let (session, csrf) = common::sign_in(c.addr, "kanri", "kanri-password-1");
    let content = id_of(&c, &session, "api-1@example.co.jp");
    let alert = json(&get(&c, "/api/v1/alerts", Some(&session)))["alerts"][0]["id"]
        .as_i64()
        .unwrap();
    let text = doc.to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let methods: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected = if path == "/api/v1/alerts/{id}" {
            vec!["get", "post"]
        } else {
            vec!["get"]
        };
        assert_eq!(methods, expected, "{path}");
        let id = if path.starts_with("/api/v1/alerts") {
            alert
        } else {
            content
        };
        let concrete = path
            .replace("{id}", &id.to_string())
            .replace("{index}", "0")
            + if path.ends_with("search") { "?q=x" } else { "" };
        for method in methods {
            let answer = if method == "post" {
                common::post_json(
                    c.addr,
                    &concrete,
                    &[
                        ("Cookie", &session),
                        ("X-CSRF-Token", &csrf),
                        ("Content-Type", "application/json"),
                    ],
                    r#"{"comment": "documented"}"#,
                )
            } else {
                get(&c, &concrete, Some(&session))
            };
            assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
            let ok = item[method]["responses"]["200"]["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{path}: no documented 200 content"));
            let served_type = answer.header("content-type").unwrap_or_default();
            assert!(
                ok.keys()
                    .any(|t| served_type.starts_with(t.as_str()) || t == "*/*"),
                "{path}: served {served_type}, documented {:?}",
                ok.keys().collect::<Vec<_>>()
            );
            if served_type == "application/json" {
                json(&answer);
            }
        }
    }
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = &reference[..reference.find('"').unwrap()];
        let mut node = &doc;
        for part in target.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(node.is_object(), "dangling {target}");
    }
}

#[test]
fn raw_attachment_and_trail_are_served_to_administrators_and_audited() {
    let c = start();
    let admin = common::sign_in(c.addr, "kanri", "kanri-password-1").0;
    let viewer = common::sign_in(c.addr, "etsuran", "etsuran-password-1").0;
    let content = id_of(&c, &admin, "api-1@example.co.jp");
    let logged = id_of(&c, &admin, "api-2@example.co.jp");

    let raw = get(&c, &format!("/api/v1/messages/{content}/raw"), Some(&admin));
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, TEXT_MAIL.as_bytes());
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert!(raw
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment")));
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));

    let sheet = get(
        &c,
        &format!("/api/v1/messages/{content}/attachments/0"),
        Some(&admin),
    );
    assert_eq!(sheet.status, 200, "{}", sheet.text());
    assert_eq!(sheet.body, SHEET);
    let disposition = sheet.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment") && disposition.contains("%E8%A6%8B"),
        "{disposition}"
    );
    assert_eq!(sheet.header("x-content-type-options"), Some("nosniff"));

    // Viewers: 403 JSON.
    for path in [
        format!("/api/v1/messages/{content}/raw"),
        format!("/api/v1/messages/{content}/attachments/0"),
    ] {
        let answer = get(&c, &path, Some(&viewer));
        assert_eq!(error_of(&answer), (403, "forbidden".into()), "{path}");
    }
    // No such attachment, a log-only message without content, traversal.
    for path in [
        format!("/api/v1/messages/{content}/attachments/1"),
        format!("/api/v1/messages/{logged}/raw"),
    ] {
        let answer = get(&c, &path, Some(&admin));
        assert_eq!(error_of(&answer), (404, "not_found".into()), "{path}");
    }
    for path in [
        format!("/api/v1/messages/{content}/attachments/-1"),
        format!("/api/v1/messages/{content}/attachments/..%2F..%2Fetc%2Fpasswd"),
        "/api/v1/messages/..%2F1/raw".to_string(),
    ] {
        let answer = get(&c, &path, Some(&admin));
        assert_eq!(error_of(&answer), (400, "bad_request".into()), "{path}");
    }

    // The trail is the CLI's `trace --format json` shape, for viewers too.
    let trail = json(&get(
        &c,
        &format!("/api/v1/messages/{logged}/trail"),
        Some(&viewer),
    ));
    assert_eq!(trail["id"], logged);
    assert_eq!(trail["message_id"], "api-2@example.co.jp");
    let event = &trail["trail"][0];
    assert_eq!(event["event"], "delivered");
    assert_eq!(event["system"], "postfix@mx1");
    assert_eq!(event["time"], "2026-11-20T10:00:00+09:00");

    let actions: Vec<_> = audit_actions(c.dir.path())
        .into_iter()
        .filter(|(_, action, _)| action != "search" && action != "sign-in")
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                "kanri".into(),
                "download-raw".into(),
                Some("api-1@example.co.jp".into())
            ),
            (
                "kanri".into(),
                "download-attachment".into(),
                Some("見積書.xlsx".into())
            ),
            // The viewer's attempts: refused, and recorded as such.
            (
                "etsuran".into(),
                "denied".into(),
                Some("download-raw".into())
            ),
            (
                "etsuran".into(),
                "denied".into(),
                Some("download-attachment".into())
            ),
            (
                "etsuran".into(),
                "trail".into(),
                Some("api-2@example.co.jp".into())
            ),
        ]
    );
}

#[test]
fn api_tokens_authenticate_scripts_with_their_role_until_revoked() {
    use mailtrail_store::console::{ConsoleStore, Role};
    let c = start();
    let admin_token =
        mailtrail_web::create_api_token(c.dir.path(), "nightly-export", Role::Administrator)
            .unwrap();
    let viewer_token =
        mailtrail_web::create_api_token(c.dir.path(), "dashboard-feed", Role::Viewer).unwrap();
    assert!(admin_token.starts_with("mtk_") && admin_token.len() > 60);
    // Names are never reused.
    assert!(mailtrail_web::create_api_token(c.dir.path(), "nightly-export", Role::Viewer).is_err());
    let bearer = |token: &str, path: &str| {
        request(
            c.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        )
    };
    let found = bearer(&admin_token, &format!("/api/v1/search?q={}", url("見積書")));
    assert_eq!(found.status, 200, "{}", found.text());
    let body = json(&found);
    assert_eq!(body["count"], 1);
    let id = body["messages"][0]["id"].as_i64().unwrap();
    assert_eq!(
        bearer(&admin_token, &format!("/api/v1/messages/{id}/raw")).body,
        TEXT_MAIL.as_bytes()
    );
    // A viewer's token: metadata yes, content no.
    assert_eq!(bearer(&viewer_token, "/api/v1/stats").status, 200);
    let refused = bearer(&viewer_token, &format!("/api/v1/messages/{id}/raw"));
    assert_eq!(error_of(&refused), (403, "forbidden".into()));
    // Wrong, malformed and foreign tokens: 401, even with a live cookie.
    let session = common::sign_in(c.addr, "kanri", "kanri-password-1").0;
    for authorization in [
        format!("Bearer {}x", admin_token),
        "Bearer mtk_0000".to_string(),
        format!("Basic {admin_token}"),
        "Bearer".to_string(),
    ] {
        let answer = request(
            c.addr,
            "GET",
            "/api/v1/stats",
            &[("Authorization", &authorization), ("Cookie", &session)],
            "",
        );
        assert_eq!(
            error_of(&answer),
            (401, "unauthorized".into()),
            "{authorization}"
        );
    }
    // Tokens are for the API: the pages still want a session.
    let page = bearer(&admin_token, "/search?q=x");
    assert_eq!(page.status, 303, "{}", page.text());

    // Revoked: refused from the next request on.
    let mut store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    assert!(store
        .revoke_api_token("nightly-export", Utc::now())
        .unwrap());
    assert!(!store
        .revoke_api_token("nightly-export", Utc::now())
        .unwrap());
    let tokens = store.api_tokens().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.last_used.is_some()), "{tokens:?}");
    assert!(!tokens
        .iter()
        .any(|t| t.token_hash.contains(&admin_token[4..])));
    drop(store);
    let after = bearer(&admin_token, "/api/v1/stats");
    assert_eq!(error_of(&after), (401, "unauthorized".into()));

    // Audited under the token's name.
    let actions = audit_actions(c.dir.path());
    for expected in [
        ("token:nightly-export", "search"),
        ("token:nightly-export", "download-raw"),
        ("token:dashboard-feed", "stats"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(user, action, _)| (user.as_str(), action.as_str()) == expected),
            "{expected:?} in {actions:?}"
        );
    }
}

#[test]
fn alerts_are_listed_as_the_command_line_prints_them_and_worked_by_administrators() {
    use mailtrail_store::alerts::{AlertFilter, AlertStore};
    use mailtrail_store::console::Role;
    let c = start();
    let admin = mailtrail_web::create_api_token(c.dir.path(), "siem", Role::Administrator).unwrap();
    let viewer = mailtrail_web::create_api_token(c.dir.path(), "wall", Role::Viewer).unwrap();
    let bearer = |token: &str, path: &str| {
        request(
            c.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        )
    };
    let change = |token: &str, id: i64, body: &str| {
        common::post_json(
            c.addr,
            &format!("/api/v1/alerts/{id}"),
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    // The list is the store's alerts, newest first, each exactly the object
    // the command line prints (`mailtrail alerts --format json` serialises
    // the same `AlertJson`).
    let listed = json(&bearer(&admin, "/api/v1/alerts"));
    let store = SqliteStore::open(c.dir.path(), SqliteOptions::default()).unwrap();
    let (total, stored) = store
        .alerts(&AlertFilter {
            unresolved: true,
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(total, 2);
    let expected: Vec<Value> = stored
        .iter()
        .map(|a| {
            let m = store.message(a.message).unwrap().unwrap();
            serde_json::to_value(mailtrail_web::json::AlertJson::new(
                a,
                m.message_id.as_deref(),
            ))
            .unwrap()
        })
        .collect();
    drop(store);
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["limit"], 50);
    assert_eq!(listed["offset"], 0);
    assert_eq!(listed["alerts"], Value::from(expected));
    let body_alert = listed["alerts"][0].clone();
    let subject_alert = listed["alerts"][1].clone();
    let keys: Vec<&str> = body_alert
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    assert_eq!(
        sorted_keys,
        vec![
            "assignee",
            "condition",
            "hits",
            "id",
            "location",
            "matched",
            "message",
            "message_id",
            "raised",
            "rule",
            "rule_name",
            "severity",
            "state",
            "updated"
        ]
    );
    assert_eq!(subject_alert["rule"], "shagaihi");
    assert_eq!(subject_alert["rule_name"], "社外秘の送信");
    assert_eq!(subject_alert["message_id"], "api-1@example.co.jp");
    assert_eq!(subject_alert["severity"], "high");
    assert_eq!(subject_alert["state"], "open");
    assert_eq!(subject_alert["condition"], "keywords");
    assert_eq!(
        subject_alert["location"],
        serde_json::json!({"at": "subject"})
    );
    assert_eq!(subject_alert["matched"], "社外秘");
    assert_eq!(body_alert["matched"], "見積書をお送り");
    assert_eq!(body_alert["hits"][0]["location"]["at"], "body");
    // Filters and paging.
    let page = json(&bearer(&admin, "/api/v1/alerts?limit=1&offset=1"));
    assert_eq!(page["count"], 2);
    assert_eq!(page["alerts"], Value::from(vec![subject_alert.clone()]));
    let by_rule = json(&bearer(&admin, "/api/v1/alerts?rule=shagaihi"));
    assert_eq!(by_rule["alerts"], Value::from(vec![subject_alert.clone()]));
    assert_eq!(
        json(&bearer(&admin, "/api/v1/alerts?state=resolved"))["count"],
        0
    );
    for bad in ["state=closed", "limit=0", "limit=x", "offset=-1"] {
        let answer = bearer(&admin, &format!("/api/v1/alerts?{bad}"));
        assert_eq!(error_of(&answer), (400, "bad_request".into()), "{bad}");
    }

    // A viewer sees where the body matched, not the words.
    let seen = json(&bearer(&viewer, "/api/v1/alerts"));
    assert_eq!(seen["alerts"][1], subject_alert, "the subject is metadata");
    assert_eq!(seen["alerts"][0]["matched"], Value::Null);
    assert_eq!(
        seen["alerts"][0]["hits"],
        serde_json::json!([{"condition": 0, "condition_type": "keywords", "location": {"at": "body"}}])
    );
    assert!(!seen.to_string().contains("見積書をお送り"));

    // One alert, with its (empty) history.
    let id = subject_alert["id"].as_i64().unwrap();
    let one = json(&bearer(&admin, &format!("/api/v1/alerts/{id}")));
    let mut with_history = subject_alert.clone();
    with_history["history"] = Value::from(Vec::<Value>::new());
    assert_eq!(one, with_history);
    let body_id = body_alert["id"].as_i64().unwrap();
    let hidden = json(&bearer(&viewer, &format!("/api/v1/alerts/{body_id}")));
    assert_eq!(hidden["matched"], Value::Null);
    assert!(!hidden.to_string().contains("見積書をお送り"));
    assert_eq!(
        error_of(&bearer(&admin, "/api/v1/alerts/424242")),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(&bearer(&admin, "/api/v1/alerts/x")),
        (400, "bad_request".into())
    );

    // Working it with the administrator's token.
    let changed = change(
        &admin,
        id,
        r#"{"state": "acknowledged", "assignee": "sato", "comment": "確認中"}"#,
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let changed = json(&changed);
    assert_eq!(changed["state"], "acknowledged");
    assert_eq!(changed["assignee"], "sato");
    let history = changed["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["user"], "token:siem");
    assert_eq!(history[0]["state"], "acknowledged");
    assert_eq!(history[0]["assignee"], "sato");
    assert_eq!(history[0]["comment"], "確認中");
    assert_eq!(
        json(&bearer(&admin, &format!("/api/v1/alerts/{id}"))),
        changed
    );
    // An empty assignee takes the assignment away; state and comment stay.
    let unassigned = json(&change(&admin, id, r#"{"assignee": ""}"#));
    assert_eq!(unassigned["assignee"], Value::Null);
    assert_eq!(unassigned["state"], "acknowledged");
    assert_eq!(unassigned["history"].as_array().unwrap().len(), 2);

    // Refused: a viewer (audited as denied), malformed changes, no alert.
    assert_eq!(
        error_of(&change(&viewer, id, r#"{"state": "resolved"}"#)),
        (403, "forbidden".into())
    );
    for bad in [
        "",
        "not json",
        "{}",
        r#"{"comment": "  "}"#,
        r#"{"state": "closed"}"#,
        r#"{"state": 3}"#,
        r#"{"owner": "sato"}"#,
        "[]",
    ] {
        assert_eq!(
            error_of(&change(&admin, id, bad)),
            (400, "bad_request".into()),
            "{bad}"
        );
    }
    let form = common::post_json(
        c.addr,
        &format!("/api/v1/alerts/{id}"),
        &[
            ("Authorization", &format!("Bearer {admin}")),
            ("Content-Type", "text/plain"),
        ],
        r#"{"state": "resolved"}"#,
    );
    assert_eq!(error_of(&form), (400, "bad_request".into()));
    assert_eq!(
        error_of(&change(&admin, 424242, r#"{"state": "resolved"}"#)),
        (404, "not_found".into())
    );

    // With the browser's session, the session's CSRF token is needed too.
    let (session, csrf) = common::sign_in(c.addr, "kanri", "kanri-password-1");
    let by_session = |token: Option<&str>| {
        let mut headers = vec![
            ("Cookie", session.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(token) = token {
            headers.push(("X-CSRF-Token", token));
        }
        common::post_json(
            c.addr,
            &format!("/api/v1/alerts/{id}"),
            &headers,
            r#"{"state": "false-positive"}"#,
        )
    };
    assert_eq!(error_of(&by_session(None)), (403, "forbidden".into()));
    assert_eq!(
        error_of(&by_session(Some("forged"))),
        (403, "forbidden".into())
    );
    let done = by_session(Some(&csrf));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(json(&done)["state"], "false-positive");
    assert_eq!(json(&done)["history"][2]["user"], "kanri");
    assert_eq!(json(&bearer(&admin, "/api/v1/alerts"))["count"], 1);

    // Audited: lists with their filter, views with the alert's number,
    // changes with what changed, the viewer's attempt as denied.
    let actions = audit_actions(c.dir.path());
    let of = |action: &str| -> Vec<(String, Option<String>)> {
        actions
            .iter()
            .filter(|(_, a, _)| a == action)
            .map(|(user, _, detail)| (user.clone(), detail.clone()))
            .collect()
    };
    assert_eq!(
        of("alert-update"),
        vec![
            (
                "token:siem".to_string(),
                Some("state=acknowledged assignee=sato comment=確認中".to_string())
            ),
            ("token:siem".to_string(), Some("assignee=".to_string())),
            (
                "kanri".to_string(),
                Some("state=false-positive".to_string())
            ),
        ]
    );
    assert!(of("alerts").contains(&(
        "token:siem".to_string(),
        Some("state=open,acknowledged rule=".to_string())
    )));
    assert!(of("alerts").contains(&(
        "token:siem".to_string(),
        Some("state=open,acknowledged rule=shagaihi".to_string())
    )));
    assert!(of("alerts").contains(&(
        "token:siem".to_string(),
        Some("state=resolved rule=".to_string())
    )));
    assert!(
        of("view-alert").contains(&("token:wall".to_string(), Some("mitsumori-body".to_string())))
    );
    assert!(of("denied").contains(&("token:wall".to_string(), Some("alert-update".to_string()))));
}
