//! `mailtrail serve`: the long-running service that receives what mail
//! systems send continuously.
//!
//! One process, one tokio runtime, listeners as tasks, and one store writer
//! thread ([`writer`]) that every listener hands its records to — SQLite has
//! one writer, and group commits are what make per-message durability
//! affordable. This first increment runs the SMTP journal receiver
//! ([`smtp`]); the syslog receiver, log followers and the HTTP endpoints
//! (`/healthz`, `/metrics`) join it as further tasks over the same writer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailtrail_ingest::DecodeOptions;
use mailtrail_store::Store;
use tokio::sync::Semaphore;

pub mod smtp;
pub mod writer;

pub use smtp::SmtpConfig;
pub use writer::StoreWriter;

/// What `mailtrail serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub smtp: Option<SmtpConfig>,
    pub decode: DecodeOptions,
    /// Messages waiting for the store before receivers answer "try later".
    pub queue: usize,
    /// How long in-flight connections may finish after SIGTERM/SIGINT.
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("nothing to serve: enable at least one listener (e.g. --smtp 127.0.0.1:2525)")]
    NothingToServe,
}

/// Run until SIGTERM or SIGINT. `listening` is called once per bound
/// listener with its name and address (port 0 resolved), before any traffic.
pub fn serve<S, F>(store: S, options: ServeOptions, listening: F) -> Result<(), ServerError>
where
    S: Store + Send + 'static,
    F: Fn(&str, SocketAddr),
{
    let Some(smtp_config) = options.smtp.clone() else {
        return Err(ServerError::NothingToServe);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let (writer, writer_thread) = StoreWriter::start(store, options.queue);
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives right after start-up must
        // shut down cleanly, not kill the process.
        let stop = shutdown_signal().map_err(ServerError::Runtime)?;
        let listener = tokio::net::TcpListener::bind(smtp_config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                what: "smtp",
                addr: smtp_config.listen,
                source,
            })?;
        let bound = listener.local_addr().unwrap_or(smtp_config.listen);
        listening("smtp", bound);
        let connections = Arc::new(Semaphore::new(smtp_config.max_connections));
        let ctx = Arc::new(smtp::SmtpContext {
            config: smtp_config.clone(),
            writer: writer.clone(),
            decode: options.decode.clone(),
            connections: connections.clone(),
        });
        let accept = tokio::spawn(smtp::serve(listener, ctx));
        stop.await;
        accept.abort();
        // Let connections in the middle of a transaction finish.
        let all = u32::try_from(smtp_config.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(options.grace, connections.acquire_many(all)).await;
        Ok(())
    });
    drop(runtime);
    drop(writer);
    // The writer thread ends once its last handle is gone, after the queue is written.
    let _ = writer_thread.join();
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
