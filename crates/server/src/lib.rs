//! `mailtrail serve`: the long-running service that receives what mail
//! systems send continuously.
//!
//! One process, one tokio runtime, listeners as tasks, and one store writer
//! thread ([`writer`]) that every listener hands its records to — SQLite has
//! one writer, and group commits are what make per-message durability
//! affordable. It runs the SMTP journal receiver ([`smtp`]) and the syslog
//! receiver ([`syslog`]); log followers ([`follow`]), the cloud pollers
//! ([`poll`]: Microsoft 365, Gmail) and the HTTP endpoints (`/healthz`,
//! `/metrics`) join them as further tasks or threads over the same writer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailtrail_ingest::DecodeOptions;
use mailtrail_store::Store;
use tokio::sync::{mpsc, Semaphore};

pub mod directory;
pub mod follow;
pub mod metrics;
pub mod poll;
pub mod smtp;
pub mod syslog;
pub mod tls;
pub mod writer;

pub use poll::{GmailConfig, M365Config};
pub use smtp::SmtpConfig;
pub use syslog::SyslogConfig;
pub use tls::TlsFiles;
pub use writer::StoreWriter;

/// `[http]` in mailtrail.toml: `/healthz` and `/metrics`.
///
/// ```toml
/// [http]
/// listen = "127.0.0.1:8025"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port. The web console,
    /// `/healthz` and `/metrics` are served here.
    pub listen: SocketAddr,
    /// Mark the console's cookies `Secure`: set this when administrators
    /// reach the console over HTTPS (a TLS-terminating proxy in front).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Hours a console sign-in lasts. Default 8.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

fn default_session_hours() -> u64 {
    8
}

/// `[follow]` in mailtrail.toml: growing log files read as they are written.
///
/// ```toml
/// [follow]
/// paths = ["/var/log/mail.log"]   # or Postfix's maillog_file
/// ```
///
/// Each file is read from where the last run stopped (a checkpoint of file
/// identity and offset in the store), across rotation by rename and by
/// copy-truncate.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowSection {
    /// Files to follow. A file that does not exist yet is waited for. A `*`
    /// or `?` in the file name (`/mnt/exchange/MessageTracking/MSGTRK*.LOG`)
    /// follows every matching file of the folder and each new one.
    pub paths: Vec<std::path::PathBuf>,
}

/// What `mailtrail serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `/healthz` and `/metrics` on this address, if any.
    pub http: Option<SocketAddr>,
    /// The web console's routes, served on `http` beside them.
    pub console: Option<axum::Router>,
    pub smtp: Option<SmtpConfig>,
    pub syslog: SyslogConfig,
    /// Growing log files to follow (`--follow PATH`); a `*` or `?` in the
    /// file name follows every matching file (a folder of rolling logs).
    pub follow: Vec<std::path::PathBuf>,
    /// Microsoft 365 pollers (`[m365]`), if configured.
    pub m365: Option<M365Config>,
    /// The Gmail poller (`[gmail]`), if configured.
    pub gmail: Option<GmailConfig>,
    pub decode: DecodeOptions,
    /// Messages waiting for the store before receivers answer "try later".
    pub queue: usize,
    /// How long in-flight connections may finish after SIGTERM/SIGINT.
    pub grace: Duration,
    /// The counters to fill, when the caller wants to read them too (the
    /// web console's sources page); a fresh set otherwise.
    pub metrics: Option<Arc<metrics::Metrics>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({what})")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("nothing to serve: enable at least one listener (e.g. --smtp 127.0.0.1:2525)")]
    NothingToServe,
    #[error("cannot read the followers' checkpoints: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Smtp(#[from] smtp::SmtpConfigError),
    #[error(transparent)]
    Syslog(#[from] syslog::SyslogConfigError),
    #[error(transparent)]
    Poll(#[from] poll::PollError),
}

/// `Duration` as whole seconds in mailtrail.toml (`idle_timeout_secs = 300`).
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Run until SIGTERM or SIGINT. `listening` is called once per bound
/// listener with its name and address (port 0 resolved), before any traffic.
pub fn serve<S, F, P>(
    store: S,
    options: ServeOptions,
    listening: F,
    listening_path: P,
) -> Result<(), ServerError>
where
    S: Store + Send + 'static,
    F: Fn(&str, SocketAddr),
    P: Fn(&str, &std::path::Path),
{
    let syslog_on = options.syslog.enabled();
    if options.smtp.is_none()
        && !syslog_on
        && options.follow.is_empty()
        && options.m365.is_none()
        && options.gmail.is_none()
    {
        return Err(ServerError::NothingToServe);
    }
    // Certificates and accounts are checked before anything listens: a
    // wrong path fails the start, not a client's handshake hours later.
    let smtp_tls = match &options.smtp {
        Some(config) => config.prepare()?,
        None => None,
    };
    let syslog_tls = options.syslog.prepare()?;
    // Pollers' secrets and keys too: a missing secret file fails the start.
    let m365 = options.m365.as_ref().map(M365Config::prepare).transpose()?;
    let gmail = options
        .gmail
        .as_ref()
        .map(GmailConfig::prepare)
        .transpose()?;
    let mut poll_cursors = poll::Checkpoints::new();
    for key in poll::checkpoint_keys(m365.as_ref(), gmail.as_ref()) {
        let saved = store
            .setting(&key)
            .map_err(|e| ServerError::Checkpoint(e.to_string()))?;
        if let Some(value) = saved {
            poll_cursors.insert(key, value);
        }
    }
    // Followers resume where the store says they stopped: a plain path has
    // one checkpoint, a pattern one per matching file.
    let checkpoint_of =
        |path: &std::path::Path| -> Result<Option<follow::FollowState>, ServerError> {
            let saved = store
                .setting(&follow::checkpoint_key(path))
                .map_err(|e| ServerError::Checkpoint(e.to_string()))?;
            Ok(saved.as_deref().and_then(follow::FollowState::parse))
        };
    enum Followed {
        File(std::path::PathBuf, Option<follow::FollowState>),
        Pattern(
            follow::FilePattern,
            Vec<(std::path::PathBuf, Option<follow::FollowState>)>,
        ),
    }
    let mut followed = Vec::new();
    for path in &options.follow {
        match follow::FilePattern::parse(path) {
            Some(pattern) => {
                let mut known = Vec::new();
                for file in pattern.files() {
                    let state = checkpoint_of(&file)?;
                    known.push((file, state));
                }
                followed.push(Followed::Pattern(pattern, known));
            }
            None => followed.push(Followed::File(path.clone(), checkpoint_of(path)?)),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let metrics = options.metrics.clone().unwrap_or_default();
    let (writer, writer_thread) = StoreWriter::start(store, options.queue, metrics.clone());
    let (lines, line_queue) = mpsc::channel::<syslog::Line>(options.syslog.queue.max(1));
    let decoder =
        syslog_on.then(|| syslog::decode_lines(line_queue, writer.clone(), options.decode.clone()));
    let stop_following = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let followers: Vec<_> = followed
        .into_iter()
        .map(|f| match f {
            Followed::File(path, checkpoint) => follow::follow(
                follow::FollowConfig::new(path),
                checkpoint,
                writer.clone(),
                stop_following.clone(),
                metrics.clone(),
                options.decode.clone(),
            ),
            Followed::Pattern(pattern, known) => follow::follow_pattern(
                pattern,
                known,
                writer.clone(),
                stop_following.clone(),
                metrics.clone(),
                options.decode.clone(),
            ),
        })
        .collect();
    let pollers = poll::spawn_all(
        m365.as_ref(),
        gmail.as_ref(),
        &poll_cursors,
        &poll::PollerEnv::new(writer.clone(), stop_following.clone(), metrics.clone()),
    );
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives right after start-up must
        // shut down cleanly, not kill the process.
        let stop = shutdown_signal().map_err(ServerError::Runtime)?;
        let mut tasks = Vec::new();
        let mut smtp_connections = None;
        let (shutdown_tx, shutting_down) = tokio::sync::watch::channel(false);
        if let Some(addr) = options.http {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    what: "http",
                    addr,
                    source,
                })?;
            listening("http", listener.local_addr().unwrap_or(addr));
            tasks.push(tokio::spawn(metrics::serve_http(
                listener,
                metrics.clone(),
                options.console.clone(),
            )));
        }
        if let Some(config) = &options.smtp {
            let listener =
                tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|source| ServerError::Listen {
                        what: "smtp",
                        addr: config.listen,
                        source,
                    })?;
            listening("smtp", listener.local_addr().unwrap_or(config.listen));
            let connections = Arc::new(Semaphore::new(config.max_connections));
            let ctx = Arc::new(smtp::SmtpContext {
                config: config.clone(),
                writer: writer.clone(),
                decode: options.decode.clone(),
                connections: connections.clone(),
                metrics: metrics.clone(),
                tls: smtp_tls.clone(),
                data_budget: config.data_budget(),
                shutdown: shutting_down.clone(),
            });
            tasks.push(tokio::spawn(smtp::serve(listener, ctx)));
            smtp_connections = Some((connections, config.max_connections));
        }
        let max = options.syslog.max_line_bytes;
        if let Some(addr) = options.syslog.udp {
            let socket =
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| ServerError::Listen {
                        what: "syslog-udp",
                        addr,
                        source,
                    })?;
            let bound = socket.local_addr().unwrap_or(addr);
            metrics.syslog_udp_port.store(
                u64::from(bound.port()),
                std::sync::atomic::Ordering::Relaxed,
            );
            listening("syslog-udp", bound);
            tasks.push(tokio::spawn(syslog::serve_udp(
                socket,
                lines.clone(),
                metrics.clone(),
                max,
            )));
        }
        if let Some(addr) = options.syslog.tcp {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    what: "syslog-tcp",
                    addr,
                    source,
                })?;
            listening("syslog-tcp", listener.local_addr().unwrap_or(addr));
            tasks.push(tokio::spawn(syslog::serve_tcp(
                listener,
                None,
                lines.clone(),
                metrics.clone(),
                max,
            )));
        }
        if let (Some(addr), Some(acceptor)) = (options.syslog.tls, &syslog_tls) {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    what: "syslog-tls",
                    addr,
                    source,
                })?;
            listening("syslog-tls", listener.local_addr().unwrap_or(addr));
            tasks.push(tokio::spawn(syslog::serve_tcp(
                listener,
                Some(acceptor.clone()),
                lines.clone(),
                metrics.clone(),
                max,
            )));
        }
        if syslog_on {
            // The decoder's backlog, for /metrics.
            let lines = lines.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let waiting = lines.max_capacity() - lines.capacity();
                    metrics
                        .syslog_queue_depth
                        .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        drop(lines);
        for path in &options.follow {
            listening_path("follow", path);
        }
        for name in poll::names(m365.as_ref(), gmail.as_ref()) {
            listening_path("poll", std::path::Path::new(name));
        }
        stop.await;
        for task in &tasks {
            task.abort();
        }
        let _ = shutdown_tx.send(true);
        if let Some((connections, max)) = smtp_connections {
            // Let connections in the middle of a transaction finish.
            let all = u32::try_from(max).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(options.grace, connections.acquire_many(all)).await;
        }
        Ok(())
    });
    // Dropping the runtime drops every connection task and with them the
    // last line senders: the decoder emits what is open and ends.
    drop(runtime);
    stop_following.store(true, std::sync::atomic::Ordering::Relaxed);
    for follower in followers {
        let _ = follower.join();
    }
    if let Some(decoder) = decoder {
        let _ = decoder.join();
    }
    // A poller ends at its next check of the stop flag; one waiting on a
    // slow HTTP response is given the grace period, then left behind (what
    // it stored is committed; its cursor says where to resume).
    let deadline = std::time::Instant::now() + options.grace;
    let mut left_behind = false;
    for poller in pollers {
        while !poller.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if poller.is_finished() {
            let _ = poller.join();
        } else {
            left_behind = true;
        }
    }
    drop(writer);
    if left_behind {
        // Its writer handle keeps the writer thread alive: wait for the
        // queue to be written instead of for the thread.
        let deadline = std::time::Instant::now() + options.grace;
        while metrics
            .queue_depth
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        // The writer thread ends once its last handle is gone, after the queue is written.
        let _ = writer_thread.join();
    }
    result
}

/// Install the SIGTERM and SIGINT handlers now; the future completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
