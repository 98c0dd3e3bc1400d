//! The Office 365 Management Activity API poller (`m365-audit`).
//!
//! For each configured content type (`Audit.Exchange`, `DLP.All`):
//!
//! 1. `POST {manage_url}/api/v1.0/{tenant}/activity/feed/subscriptions/start?contentType=…`
//!    once per run (an already enabled subscription, error `AF20024`, is
//!    fine). A new subscription may take up to 12 hours to list content.
//! 2. `GET …/subscriptions/content?contentType=…&startTime=…&endTime=…`:
//!    the content blobs that *became available* in the window (at most 24
//!    hours, no older than 7 days), following the `NextPageUri` header.
//! 3. `GET` each blob's `contentUri`: a JSON array of audit records, each
//!    through [`mailtrail_ingest::o365audit::audit_record`]; records that
//!    are no message fact (mailbox reads, other operations) are counted by
//!    the decoder's rules and not stored, unreadable ones are quarantined.
//!
//! Records arrive in blobs in no particular time order, so the cursor is
//! about availability, not about the records' times. A blob's records are
//! committed together with its id in the cursor's `seen` list, so a
//! restart in the middle of a window neither fetches it again nor loses it;
//! ids older than the overlap are dropped from the list when a window ends.
//! `PublisherIdentifier` (the tenant id, when it is a GUID) is sent with
//! every request, as Microsoft asks, so that throttling counts against
//! this tenant's own quota.

use std::thread;

use chrono::{DateTime, Utc};
use mailtrail_ingest::o365audit::{audit_record, AuditOutcome};
use serde_json::Value;

use super::entra::M365Ready;
use super::http::{self, Call, HttpClient, PollError, TokenCache};
use super::{Checkpoints, Cursor, PollerEnv, Submit, Which, WindowRules};

/// The `.default` scope of the Office 365 Management APIs (for the
/// configured `manage_url`).
pub fn scope(manage_url: &str) -> String {
    format!("{manage_url}/.default")
}

const RULES: WindowRules = WindowRules {
    max_len: chrono::Duration::hours(24),
    // Content is listed for 7 days; keep clear of the edge.
    retention: chrono::Duration::minutes(7 * 24 * 60 - 30),
    // A clock a little ahead of Microsoft's must not ask for the future.
    end_lag: chrono::Duration::minutes(1),
};

/// Blob ids kept in a cursor at most (more are simply fetched again).
const MAX_SEEN: usize = 20_000;

fn which(m: &crate::metrics::Metrics) -> &crate::metrics::PollerMetrics {
    &m.poll_m365_audit
}

/// The settings key of one content type's cursor.
pub fn checkpoint_key(tenant: &str, content_type: &str) -> String {
    format!("poll:m365:{tenant}:audit:{content_type}")
}

/// What to check when the Management Activity API refuses a request.
fn hint(status: u16, text: &str) -> &'static str {
    if text.contains("AF20022") {
        "no subscription for this content type: it is started automatically; if this persists, check ActivityFeed.Read"
    } else if text.contains("AF20023") {
        "the subscription was disabled by an administrator"
    } else if text.contains("AF10001") || status == 401 || status == 403 {
        "the app registration needs the Office 365 Management APIs application permission ActivityFeed.Read (ActivityFeed.ReadDlp for DLP.All), with admin consent"
    } else if text.contains("AF20051") || text.contains("AF20055") || text.contains("AF20030") {
        "the time window was refused: is this machine's clock right?"
    } else if status == 400 {
        "is unified audit logging turned on for the tenant (Microsoft Purview → Audit)?"
    } else if status == 404 {
        "check manage_url and tenant_id"
    } else {
        ""
    }
}

/// Start the poller thread.
pub fn spawn(ready: M365Ready, saved: &Checkpoints, env: PollerEnv) -> thread::JoinHandle<()> {
    let cursors: Vec<(String, Option<Cursor>)> = ready
        .config
        .audit_content_types
        .iter()
        .map(|ct| {
            let key = checkpoint_key(&ready.config.tenant_id, ct);
            (ct.clone(), saved.get(&key).and_then(|s| Cursor::parse(s)))
        })
        .collect();
    thread::spawn(move || {
        let mut poller: Option<AuditPoller> = None;
        let interval = ready.config.poll_interval;
        super::run("m365-audit", &env, which, interval, || {
            if poller.is_none() {
                let http =
                    HttpClient::new("m365-audit", "m365", &ready.http_options(), &env, which)?;
                let scope = scope(&ready.config.manage_url);
                poller = Some(AuditPoller {
                    tokens: TokenCache::new(Box::new(ready.token_source(&scope))),
                    http,
                    ready: ready.clone(),
                    env: env.clone(),
                    feeds: cursors
                        .iter()
                        .map(|(ct, cursor)| Feed {
                            content_type: ct.clone(),
                            cursor: cursor.clone(),
                            started: false,
                        })
                        .collect(),
                });
            }
            match poller.as_mut() {
                Some(p) => p.cycle(),
                None => Err(PollError::Stopped),
            }
        });
    })
}

struct Feed {
    content_type: String,
    cursor: Option<Cursor>,
    started: bool,
}

struct AuditPoller {
    ready: M365Ready,
    env: PollerEnv,
    http: HttpClient,
    tokens: TokenCache,
    feeds: Vec<Feed>,
}

/// One listed content blob.
struct Blob {
    id: String,
    uri: String,
    created: DateTime<Utc>,
}

impl AuditPoller {
    fn submit(&self) -> Submit<'_> {
        Submit {
            env: &self.env,
            which: which as Which,
        }
    }

    fn root(&self) -> String {
        format!(
            "{}/api/v1.0/{}/activity/feed",
            self.ready.config.manage_url,
            http::encode(&self.ready.config.tenant_id)
        )
    }

    /// `&PublisherIdentifier=…` when the tenant id is a GUID.
    fn publisher(&self) -> String {
        let t = &self.ready.config.tenant_id;
        let guid = t.len() == 36
            && t.chars().enumerate().all(|(i, c)| {
                matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
            });
        if guid {
            format!("&PublisherIdentifier={t}")
        } else {
            String::new()
        }
    }

    /// Every content type, each from its cursor to now. One failing
    /// content type does not hold up the others; the first error is the
    /// cycle's.
    fn cycle(&mut self) -> Result<u64, PollError> {
        let mut stored = 0;
        let mut first_error = None;
        for i in 0..self.feeds.len() {
            match self.feed(i) {
                Ok(n) => stored += n,
                Err(PollError::Stopped) => return Err(PollError::Stopped),
                Err(e) => {
                    let ct = self.feeds[i].content_type.clone();
                    if first_error.is_some() {
                        (self.env.log)(&format!("m365-audit: {ct}: {e}"));
                    } else {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stored),
        }
    }

    fn feed(&mut self, i: usize) -> Result<u64, PollError> {
        if !self.feeds[i].started {
            self.start_subscription(i)?;
            self.feeds[i].started = true;
        }
        let config = &self.ready.config;
        let now = self.env.now();
        let windows = super::windows(
            self.feeds[i].cursor.as_ref(),
            now,
            config.overlap,
            config.backfill_days,
            RULES,
        );
        let mut stored = 0;
        for (start, end) in windows {
            stored += self.window(i, start, end)?;
        }
        Ok(stored)
    }

    fn start_subscription(&mut self, i: usize) -> Result<(), PollError> {
        let ct = self.feeds[i].content_type.clone();
        let url = format!(
            "{}/subscriptions/start?contentType={}{}",
            self.root(),
            http::encode(&ct),
            self.publisher()
        );
        let response = self.http.authorized(&mut self.tokens, Call::Post(&url))?;
        if response.ok() {
            return Ok(());
        }
        let text = response.error_text(&self.http.redactor);
        if text.contains("AF20024") {
            // "The subscription is already enabled."
            return Ok(());
        }
        Err(self
            .http
            .status_error(&http::endpoint_name("POST", &url), &response, &hint))
    }

    /// List a window's blobs and fetch the ones not seen yet.
    fn window(
        &mut self,
        i: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<u64, PollError> {
        let ct = self.feeds[i].content_type.clone();
        let key = checkpoint_key(&self.ready.config.tenant_id, &ct);
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut next = Some(format!(
            "{}/subscriptions/content?contentType={}&startTime={}&endTime={}{}",
            self.root(),
            http::encode(&ct),
            fmt(start),
            fmt(end),
            self.publisher()
        ));
        let origin = http::origin(&self.ready.config.manage_url);
        let mut blobs = Vec::new();
        while let Some(url) = next.take() {
            let (json, response) = self.http.get_json(&url, &mut self.tokens, &hint)?;
            let Value::Array(list) = json else {
                return Err(PollError::Response {
                    endpoint: http::endpoint_name("GET", &url),
                    reason: "the content list is not a JSON array".into(),
                });
            };
            for item in list {
                let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
                let (Some(id), Some(uri)) = (text("contentId"), text("contentUri")) else {
                    continue;
                };
                let created = text("contentCreated")
                    .and_then(|c| mailtrail_ingest::m365::parse_time(&c))
                    .unwrap_or(end);
                blobs.push(Blob { id, uri, created });
            }
            if let Some(link) = response.next_page_uri.filter(|l| !l.trim().is_empty()) {
                if http::origin(&link) != origin {
                    return Err(PollError::Response {
                        endpoint: http::endpoint_name("GET", &url),
                        reason: "NextPageUri points to another host than manage_url; not followed"
                            .into(),
                    });
                }
                next = Some(link);
            }
        }
        let mut cursor = self.feeds[i]
            .cursor
            .clone()
            .unwrap_or_else(|| Cursor::new(start));
        let mut stored = 0;
        for blob in blobs {
            if cursor.seen.contains_key(&blob.id) {
                continue;
            }
            if http::origin(&blob.uri) != origin {
                return Err(PollError::Response {
                    endpoint: http::endpoint_name("GET", &blob.uri),
                    reason: "a contentUri points to another host than manage_url; not fetched"
                        .into(),
                });
            }
            let (records, rejects) = self.fetch_blob(&blob)?;
            stored += records.len() as u64;
            cursor.seen.insert(blob.id.clone(), blob.created);
            self.submit()
                .send(records, rejects, vec![(key.clone(), cursor.format())])?;
            self.feeds[i].cursor = Some(cursor.clone());
        }
        // The window is done: move on, and forget blobs the next overlap
        // cannot list again.
        cursor.until = end;
        let overlap = chrono::Duration::from_std(self.ready.config.overlap)
            .unwrap_or(chrono::Duration::zero());
        let keep_from = end - overlap - chrono::Duration::minutes(5);
        cursor.seen.retain(|_, created| *created >= keep_from);
        while cursor.seen.len() > MAX_SEEN {
            let oldest = cursor
                .seen
                .iter()
                .min_by_key(|(_, c)| **c)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => cursor.seen.remove(&id),
                None => break,
            };
        }
        self.submit()
            .send(Vec::new(), Vec::new(), vec![(key, cursor.format())])?;
        self.feeds[i].cursor = Some(cursor);
        Ok(stored)
    }

    fn fetch_blob(
        &mut self,
        blob: &Blob,
    ) -> Result<
        (
            Vec<mailtrail_model::MessageRecord>,
            Vec<mailtrail_model::Reject>,
        ),
        PollError,
    > {
        let (json, _) = self.http.get_json(&blob.uri, &mut self.tokens, &hint)?;
        let items: Vec<Value> = match json {
            Value::Array(a) => a,
            other => vec![other],
        };
        let source = format!("m365-audit content {}", blob.id);
        let mut records = Vec::new();
        let mut rejects = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match audit_record(item) {
                Ok(AuditOutcome::Message(r)) => records.push(*r),
                Ok(AuditOutcome::Skipped(_)) => {}
                Err(e) => rejects.push(super::reject(&source, n, e.code, &e.reason, item)),
            }
        }
        Ok((records, rejects))
    }
}
