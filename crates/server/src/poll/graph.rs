//! The Microsoft Graph message trace poller (`m365-traces`).
//!
//! `GET {graph_url}/admin/exchange/tracing/messageTraces?$filter=receivedDateTime
//! ge {start} and receivedDateTime le {end}&$top={page_size}`, windows of at
//! most 10 days (the API's limit) no older than 90 days, each followed
//! through `@odata.nextLink`; every row is one message to one recipient and
//! goes through [`mailtrail_ingest::m365::graph_trace_page`]. Rows selected
//! by `trace_details` also get
//! `…/messageTraces/{id}/getDetailsByRecipient(recipientAddress='…')`,
//! paced under Microsoft's limit of 100 such requests per 5 minutes (the
//! poller waits rather than drop them), decoded by
//! [`mailtrail_ingest::m365::graph_details_page`] for that recipient. A
//! detail request that fails is logged and skipped: the trace row itself
//! is stored either way.
//!
//! Each page's records are stored as the page arrives; the cursor moves to
//! a window's end once its last page is stored (see [`super`] for why).

use std::collections::VecDeque;
use std::thread;
use std::time::{Duration, Instant};

use mailtrail_ingest::m365::{graph_details_page, graph_trace_page};
use serde_json::Value;

use super::entra::{M365Ready, TraceDetails};
use super::http::{self, HttpClient, PollError, TokenCache};
use super::{Checkpoints, Cursor, PollerEnv, Submit, Which, WindowRules};

/// The `.default` scope of Microsoft Graph.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

const RULES: WindowRules = WindowRules {
    max_len: chrono::Duration::days(10),
    // 90 days of data, less a margin so that a window is never refused
    // for starting a little too early.
    retention: chrono::Duration::days(89),
    // "endDateTime must not be later than the current date".
    end_lag: chrono::Duration::minutes(1),
};

/// Detail requests allowed per [`DETAIL_PERIOD`] (Microsoft allows 100).
const DETAIL_BUDGET: usize = 90;
const DETAIL_PERIOD: Duration = Duration::from_secs(300);

fn which(m: &crate::metrics::Metrics) -> &crate::metrics::PollerMetrics {
    &m.poll_m365_traces
}

/// The settings key of the cursor.
pub fn checkpoint_key(tenant: &str) -> String {
    format!("poll:m365:{tenant}:message-traces")
}

/// What to check when Graph refuses a request.
fn hint(status: u16, _text: &str) -> &'static str {
    match status {
        401 | 403 => "the app registration needs the Microsoft Graph application permission ExchangeMessageTrace.Read.All, with admin consent",
        404 => "check graph_url (message traces are under https://graph.microsoft.com/beta) and tenant_id",
        400 => "the query was refused: is this machine's clock right (windows must end before now and start within 90 days)?",
        _ => "",
    }
}

/// Start the poller thread.
pub fn spawn(ready: M365Ready, saved: &Checkpoints, env: PollerEnv) -> thread::JoinHandle<()> {
    let key = checkpoint_key(&ready.config.tenant_id);
    let cursor = saved.get(&key).and_then(|s| Cursor::parse(s));
    thread::spawn(move || {
        let mut poller: Option<TracePoller> = None;
        let interval = ready.config.poll_interval;
        super::run("m365-traces", &env, which, interval, || {
            if poller.is_none() {
                let http =
                    HttpClient::new("m365-traces", "m365", &ready.http_options(), &env, which)?;
                poller = Some(TracePoller {
                    tokens: TokenCache::new(Box::new(ready.token_source(SCOPE))),
                    http,
                    ready: ready.clone(),
                    env: env.clone(),
                    key: key.clone(),
                    cursor: cursor.clone(),
                    details_sent: VecDeque::new(),
                });
            }
            match poller.as_mut() {
                Some(p) => p.cycle(),
                None => Err(PollError::Stopped),
            }
        });
    })
}

struct TracePoller {
    ready: M365Ready,
    env: PollerEnv,
    http: HttpClient,
    tokens: TokenCache,
    key: String,
    cursor: Option<Cursor>,
    /// When recent detail requests were sent (for the rate limit).
    details_sent: VecDeque<Instant>,
}

impl TracePoller {
    fn submit(&self) -> Submit<'_> {
        Submit {
            env: &self.env,
            which: which as Which,
        }
    }

    /// Fetch every window from the cursor to now.
    fn cycle(&mut self) -> Result<u64, PollError> {
        let now = self.env.now();
        let config = &self.ready.config;
        let mut stored = 0;
        for (start, end) in super::windows(
            self.cursor.as_ref(),
            now,
            config.overlap,
            config.backfill_days,
            RULES,
        ) {
            stored += self.window(start, end)?;
            let cursor = Cursor::new(end);
            self.submit().send(
                Vec::new(),
                Vec::new(),
                vec![(self.key.clone(), cursor.format())],
            )?;
            self.cursor = Some(cursor);
        }
        Ok(stored)
    }

    fn window(
        &mut self,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, PollError> {
        let config = &self.ready.config;
        let base = config.graph_url.clone();
        let filter = format!(
            "receivedDateTime ge {} and receivedDateTime le {}",
            super::zulu(start),
            super::zulu(end)
        );
        let mut next = Some(format!(
            "{base}/admin/exchange/tracing/messageTraces?$filter={}&$top={}",
            http::encode(&filter),
            config.page_size
        ));
        let origin = http::origin(&base);
        let mut stored = 0u64;
        let mut page_no = 0u64;
        while let Some(url) = next.take() {
            page_no += 1;
            let (json, _) = self.http.get_json(&url, &mut self.tokens, &hint)?;
            let page = graph_trace_page(&json);
            let items = page_items(&json);
            let source = format!(
                "m365 messageTraces {}..{} page {page_no}",
                super::zulu(start),
                super::zulu(end)
            );
            let rejects = page
                .errors
                .iter()
                .map(|(i, e)| {
                    let item = items.get(*i).copied().unwrap_or(&Value::Null);
                    super::reject(&source, *i, e.code, &e.reason, item)
                })
                .collect();
            let mut records = page.records;
            for item in &items {
                if let Some((id, recipient)) = self.wants_details(item) {
                    records.extend(self.details(&base, &id, &recipient)?);
                }
            }
            stored += records.len() as u64;
            self.submit().send(records, rejects, Vec::new())?;
            if let Some(link) = page.next_link {
                if http::origin(&link) != origin {
                    return Err(PollError::Response {
                        endpoint: http::endpoint_name("GET", &url),
                        reason:
                            "@odata.nextLink points to another host than graph_url; not followed"
                                .into(),
                    });
                }
                next = Some(link);
            }
        }
        Ok(stored)
    }

    /// The trace id and recipient of a row whose details are wanted.
    fn wants_details(&self, item: &Value) -> Option<(String, String)> {
        let status = item.get("status").and_then(Value::as_str).unwrap_or("");
        let wanted = match self.ready.config.trace_details {
            TraceDetails::None => false,
            TraceDetails::All => true,
            TraceDetails::Problems => matches!(
                status.to_ascii_lowercase().as_str(),
                "failed" | "pending" | "quarantined" | "filteredasspam"
            ),
        };
        if !wanted {
            return None;
        }
        let id = item.get("id").and_then(Value::as_str)?.trim();
        let recipient = item.get("recipientAddress").and_then(Value::as_str)?.trim();
        (!id.is_empty() && !recipient.is_empty()).then(|| (id.to_string(), recipient.to_string()))
    }

    /// Wait until one more detail request fits in Microsoft's limit.
    fn pace_details(&mut self) -> Result<(), PollError> {
        loop {
            while self
                .details_sent
                .front()
                .is_some_and(|t| t.elapsed() >= DETAIL_PERIOD)
            {
                self.details_sent.pop_front();
            }
            if self.details_sent.len() < DETAIL_BUDGET {
                self.details_sent.push_back(Instant::now());
                return Ok(());
            }
            let wait = self
                .details_sent
                .front()
                .map(|t| DETAIL_PERIOD.saturating_sub(t.elapsed()))
                .unwrap_or(Duration::from_secs(1));
            self.http.pause(wait.max(Duration::from_millis(100)))?;
        }
    }

    /// The details of one trace for one recipient, as records keyed like
    /// the trace (its id is the network message id).
    fn details(
        &mut self,
        base: &str,
        trace_id: &str,
        recipient: &str,
    ) -> Result<Vec<mailtrail_model::MessageRecord>, PollError> {
        // OData string literal: a quote is doubled.
        let literal = recipient.replace('\'', "''");
        let mut next = Some(format!(
            "{base}/admin/exchange/tracing/messageTraces/{}/getDetailsByRecipient(recipientAddress='{}')",
            http::encode(trace_id),
            http::encode(&literal)
        ));
        let origin = http::origin(base);
        let mut records = Vec::new();
        while let Some(url) = next.take() {
            self.pace_details()?;
            let mut json = match self.http.get_json(&url, &mut self.tokens, &hint) {
                Ok((json, _)) => json,
                Err(PollError::Stopped) => return Err(PollError::Stopped),
                Err(e) => {
                    (self.env.log)(&format!("m365-traces: details of one trace skipped: {e}"));
                    return Ok(records);
                }
            };
            // The detail objects do not name their trace; say it, so that
            // their records join the trace's (`m365:<MessageTraceId>`).
            if let Some(Value::Array(list)) = json.get_mut("value") {
                for item in list.iter_mut() {
                    if let Value::Object(o) = item {
                        o.insert("MessageTraceId".into(), Value::from(trace_id));
                    }
                }
            }
            let page = graph_details_page(&json, Some(recipient));
            records.extend(page.records);
            next = page.next_link.filter(|link| http::origin(link) == origin);
        }
        Ok(records)
    }
}

/// The elements of a Graph page's `value`.
fn page_items(page: &Value) -> Vec<&Value> {
    match page.get("value") {
        Some(Value::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    }
}
