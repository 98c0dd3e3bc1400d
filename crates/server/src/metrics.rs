//! What `mailtrail serve` counts, and the HTTP endpoints that show it.
//!
//! Counters are plain atomics shared by every component: incrementing one
//! costs nothing on the hot path, and `/metrics` renders them in the
//! Prometheus text format that monitoring systems scrape. `/healthz` answers
//! 200 while the store accepts writes and 503 after a write failed (until
//! the next success), so a load balancer or systemd watchdog sees a broken
//! disk, not just a live process.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Counters of one `mailtrail serve` process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub smtp_connections: AtomicU64,
    pub smtp_messages_stored: AtomicU64,
    pub smtp_messages_refused: AtomicU64,
    pub smtp_clients_refused: AtomicU64,
    pub smtp_tls_failures: AtomicU64,
    pub smtp_auth_failures: AtomicU64,
    pub smtp_over_budget: AtomicU64,
    pub syslog_tls_failures: AtomicU64,
    pub syslog_udp_lines: AtomicU64,
    pub syslog_tcp_lines: AtomicU64,
    pub syslog_udp_dropped: AtomicU64,
    pub follow_lines: AtomicU64,
    pub records_stored: AtomicU64,
    pub rejects_stored: AtomicU64,
    pub store_batches: AtomicU64,
    pub store_errors: AtomicU64,
    /// Jobs waiting for the store writer.
    pub queue_depth: AtomicU64,
    /// The last store write failed.
    pub store_failing: AtomicBool,
    /// Syslog lines waiting for the decoder.
    pub syslog_queue_depth: AtomicU64,
    /// Local port of the UDP syslog socket (0: none), to read the kernel's
    /// drop counter for it.
    pub syslog_udp_port: AtomicU64,
    /// The Microsoft Graph message trace poller.
    pub poll_m365_traces: PollerMetrics,
    /// The Office 365 Management Activity API poller.
    pub poll_m365_audit: PollerMetrics,
    /// The Google Workspace Reports API poller.
    pub poll_gmail: PollerMetrics,
}

/// What one cloud poller did, and how it is doing.
#[derive(Debug, Default)]
pub struct PollerMetrics {
    /// Set when the poller starts: only running pollers are shown.
    pub enabled: AtomicBool,
    /// HTTP requests sent (token requests included).
    pub requests: AtomicU64,
    /// Message records handed to the store.
    pub records: AtomicU64,
    /// Poll cycles that failed (each is retried after a pause).
    pub errors: AtomicU64,
    /// Unix time of the last poll cycle that completed (0: none yet).
    pub last_success: AtomicU64,
    /// Why the last cycle failed, until one succeeds (never holds a secret).
    pub last_error: Mutex<Option<String>>,
}

impl PollerMetrics {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    pub fn set_last_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = error;
        }
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 20] = [
            (
                "mailtrail_smtp_connections_total",
                "counter",
                "SMTP connections accepted",
                &self.smtp_connections,
            ),
            (
                "mailtrail_smtp_messages_stored_total",
                "counter",
                "Messages received over SMTP and stored (answered 250)",
                &self.smtp_messages_stored,
            ),
            (
                "mailtrail_smtp_messages_refused_total",
                "counter",
                "Messages refused after DATA (4xx/5xx)",
                &self.smtp_messages_refused,
            ),
            (
                "mailtrail_smtp_clients_refused_total",
                "counter",
                "SMTP clients refused because their address is not in allowed_networks",
                &self.smtp_clients_refused,
            ),
            (
                "mailtrail_smtp_tls_failures_total",
                "counter",
                "STARTTLS handshakes that failed",
                &self.smtp_tls_failures,
            ),
            (
                "mailtrail_smtp_auth_failures_total",
                "counter",
                "SMTP AUTH attempts with wrong credentials",
                &self.smtp_auth_failures,
            ),
            (
                "mailtrail_smtp_over_budget_total",
                "counter",
                "Messages answered 451 because the memory budget for messages in flight was used up",
                &self.smtp_over_budget,
            ),
            (
                "mailtrail_syslog_tls_failures_total",
                "counter",
                "Syslog TLS handshakes that failed",
                &self.syslog_tls_failures,
            ),
            (
                "mailtrail_syslog_udp_lines_total",
                "counter",
                "Syslog messages received over UDP",
                &self.syslog_udp_lines,
            ),
            (
                "mailtrail_syslog_tcp_lines_total",
                "counter",
                "Syslog messages received over TCP or TLS",
                &self.syslog_tcp_lines,
            ),
            (
                "mailtrail_syslog_udp_dropped_total",
                "counter",
                "UDP syslog messages dropped because the decoder was behind",
                &self.syslog_udp_dropped,
            ),
            (
                "mailtrail_follow_lines_total",
                "counter",
                "Lines read from followed log files",
                &self.follow_lines,
            ),
            (
                "mailtrail_records_stored_total",
                "counter",
                "Message records written to the store",
                &self.records_stored,
            ),
            (
                "mailtrail_rejects_stored_total",
                "counter",
                "Rejected inputs written to the quarantine",
                &self.rejects_stored,
            ),
            (
                "mailtrail_store_batches_total",
                "counter",
                "Store transactions committed",
                &self.store_batches,
            ),
            (
                "mailtrail_store_errors_total",
                "counter",
                "Store transactions that failed",
                &self.store_errors,
            ),
            (
                "mailtrail_store_queue_depth",
                "gauge",
                "Jobs waiting for the store writer",
                &self.queue_depth,
            ),
            (
                "mailtrail_syslog_queue_depth",
                "gauge",
                "Syslog lines waiting for the decoder",
                &self.syslog_queue_depth,
            ),
            (
                "mailtrail_syslog_udp_kernel_drops_total",
                "counter",
                "UDP syslog datagrams the kernel dropped before mailtrail read them (socket buffer full)",
                &AtomicU64::new(kernel_udp_drops(self.syslog_udp_port.load(Ordering::Relaxed))),
            ),
            (
                "mailtrail_store_failing",
                "gauge",
                "1 while the last store write failed",
                &AtomicU64::new(u64::from(self.store_failing.load(Ordering::Relaxed))),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let pollers = self.pollers();
        if !pollers.is_empty() {
            type Series = (
                &'static str,
                &'static str,
                &'static str,
                fn(&PollerMetrics) -> &AtomicU64,
            );
            let series: [Series; 4] = [
                (
                    "mailtrail_poll_requests_total",
                    "counter",
                    "HTTP requests sent by a cloud poller",
                    |p| &p.requests,
                ),
                (
                    "mailtrail_poll_records_total",
                    "counter",
                    "Message records a cloud poller handed to the store",
                    |p| &p.records,
                ),
                (
                    "mailtrail_poll_errors_total",
                    "counter",
                    "Poll cycles that failed (retried after a pause)",
                    |p| &p.errors,
                ),
                (
                    "mailtrail_poll_last_success_seconds",
                    "gauge",
                    "Unix time of a cloud poller's last complete poll cycle (0: none yet)",
                    |p| &p.last_success,
                ),
            ];
            for (name, kind, help, value) in series {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (source, poller) in &pollers {
                    let v = value(poller).load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{source=\"{source}\"}} {v}");
                }
            }
        }
        out
    }

    /// What `/healthz` answers, and what the web console's sources page
    /// shows: the store's state, then each source's counters (and each
    /// running poller's last success and error).
    pub fn health_json(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let failing = self.store_failing.load(Ordering::Relaxed);
        let mut body = serde_json::json!({
            "status": if failing { "failing" } else { "ok" },
            "store": if failing { "the last write failed" } else { "ok" },
            "records_stored": n(&self.records_stored),
            "queue_depth": n(&self.queue_depth),
            "sources": {
                "smtp": {
                    "connections": n(&self.smtp_connections),
                    "messages_stored": n(&self.smtp_messages_stored),
                    "messages_refused": n(&self.smtp_messages_refused),
                    "clients_refused": n(&self.smtp_clients_refused),
                    "tls_failures": n(&self.smtp_tls_failures),
                    "auth_failures": n(&self.smtp_auth_failures),
                },
                "syslog": {
                    "udp_lines": n(&self.syslog_udp_lines),
                    "tcp_lines": n(&self.syslog_tcp_lines),
                    "udp_dropped": n(&self.syslog_udp_dropped),
                    "tls_failures": n(&self.syslog_tls_failures),
                    "queue_depth": n(&self.syslog_queue_depth),
                },
                "follow": {
                    "lines": n(&self.follow_lines),
                },
            },
        });
        // A poller that cannot reach its API does not make the service
        // unhealthy (it keeps retrying); it says so here.
        let pollers: serde_json::Map<String, serde_json::Value> = self
            .pollers()
            .into_iter()
            .map(|(name, p)| {
                let last = p.last_success.load(Ordering::Relaxed);
                (
                    name.to_string(),
                    serde_json::json!({
                        "last_success": (last > 0).then_some(last),
                        "last_error": p.last_error(),
                        "requests": n(&p.requests),
                        "records": n(&p.records),
                        "errors": n(&p.errors),
                    }),
                )
            })
            .collect();
        if !pollers.is_empty() {
            body["pollers"] = serde_json::Value::Object(pollers);
        }
        body
    }

    /// The running pollers by name.
    pub fn pollers(&self) -> Vec<(&'static str, &PollerMetrics)> {
        [
            ("m365-traces", &self.poll_m365_traces),
            ("m365-audit", &self.poll_m365_audit),
            ("gmail", &self.poll_gmail),
        ]
        .into_iter()
        .filter(|(_, p)| p.enabled.load(Ordering::Relaxed))
        .collect()
    }
}

/// The kernel's drop counter of the UDP sockets bound to this local port
/// (the last column of /proc/net/udp and udp6); 0 when unknown.
fn kernel_udp_drops(port: u64) -> u64 {
    if port == 0 {
        return 0;
    }
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|table| udp_drops_in(&table, port))
        .sum()
}

/// Sum the `drops` column of the rows of a /proc/net/udp table whose local
/// address has this port.
fn udp_drops_in(table: &str, port: u64) -> u64 {
    let port_hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(&port_hex))
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let code = if m.store_failing.load(Ordering::Relaxed) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(m.health_json()))
}

/// Serve `/healthz` and `/metrics`, and the web console's routes when
/// given, until the task is dropped.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    console: Option<Router>,
) {
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    if let Some(console) = console {
        app = app.merge(console);
    }
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let _ = axum::serve(listener, service).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drops_are_read_for_our_port_only() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  2: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 5\n";
        assert_eq!(udp_drops_in(table, 514), 17);
        assert_eq!(udp_drops_in(table, 68), 5);
        assert_eq!(udp_drops_in(table, 2525), 0);
    }
}
