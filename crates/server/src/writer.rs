//! The store writer: one thread that owns the store and commits in groups.
//!
//! A receiver may acknowledge a message (SMTP `250`) only once it is durably
//! stored, yet one fsync per message would cap ingest at the disk's sync
//! rate. So every connection hands its record to this thread and waits; the
//! thread takes whatever has queued up meanwhile (up to a bound), writes it
//! in one durable transaction, and then answers every waiter. Under load a
//! batch holds many messages and costs one commit; when idle a batch is one
//! message and costs one commit, as it must.
//!
//! The queue is bounded: when the store cannot keep up, `submit` waits for
//! room, so callers see back-pressure (the SMTP receiver turns a full queue
//! into `451 try again later`) instead of memory growing without limit.

use std::thread;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mailtrail_model::{MessageRecord, Reject};

use crate::metrics::Metrics;
use mailtrail_store::{Store, StoreError};
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

/// How long an SMTP client waits for the commit before it is told to retry.
const SUBMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Records written per transaction at most.
const MAX_GROUP: usize = 256;

struct Job {
    records: Vec<MessageRecord>,
    rejects: Vec<Reject>,
    /// Settings written after the records are committed (a follower's
    /// checkpoint: a crash in between replays lines, which stores nothing twice).
    settings: Vec<(String, String)>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    jobs: tokio_mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

/// Why a record was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the store is not accepting writes (shutting down)")]
    Closed,
    #[error("the queue to the store is full")]
    Busy,
    #[error("storing failed: {0}")]
    Store(String),
}

/// Write a group of jobs in one transaction (settings after the records);
/// gives the jobs back, emptied of their data, for answering.
fn write_group<S: Store>(
    store: &mut S,
    group: Vec<Job>,
    metrics: &Metrics,
) -> (Vec<Job>, Result<(), String>) {
    let mut records = Vec::new();
    let mut rejects = Vec::new();
    let mut settings = Vec::new();
    let mut jobs = Vec::with_capacity(group.len());
    for job in group {
        records.extend(job.records.iter().cloned());
        rejects.extend(job.rejects.iter().cloned());
        settings.extend(job.settings.iter().cloned());
        jobs.push(job);
    }
    let (n_records, n_rejects) = (records.len() as u64, rejects.len() as u64);
    let result = store
        .write_batch(records, rejects)
        .map(|_| ())
        .and_then(|()| {
            settings
                .iter()
                .try_for_each(|(k, v)| store.set_setting(k, v))
        })
        .map_err(|e: StoreError| e.to_string());
    match &result {
        Ok(()) => {
            Metrics::add(&metrics.records_stored, n_records);
            Metrics::add(&metrics.rejects_stored, n_rejects);
            Metrics::add(&metrics.store_batches, 1);
            metrics.store_failing.store(false, Ordering::Relaxed);
        }
        Err(_) => {
            Metrics::add(&metrics.store_errors, 1);
            metrics.store_failing.store(true, Ordering::Relaxed);
        }
    }
    (jobs, result)
}

impl StoreWriter {
    /// Start the writer thread over a store opened with durable batches.
    /// The thread ends when every handle is dropped, after writing what was queued.
    pub fn start<S>(
        store: S,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> (StoreWriter, thread::JoinHandle<()>)
    where
        S: Store + Send + 'static,
    {
        let (jobs, mut rx) = tokio_mpsc::channel::<Job>(queue.max(1));
        let counters = metrics.clone();
        let handle = thread::spawn(move || {
            let metrics = counters;
            let mut store = store;
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                metrics
                    .queue_depth
                    .fetch_sub(group.len() as u64, Ordering::Relaxed);
                if group.len() > 1 {
                    let (jobs, result) = write_group(&mut store, group, &metrics);
                    match result {
                        Ok(()) => {
                            for job in jobs {
                                let _ = job.done.send(Ok(()));
                            }
                            continue;
                        }
                        // One bad record must not fail the others: write them one by one.
                        Err(_) => group = jobs,
                    }
                }
                for job in group {
                    let (mut jobs, result) = write_group(&mut store, vec![job], &metrics);
                    if let Some(job) = jobs.pop() {
                        // A waiter that gave up (connection closed) is fine to miss.
                        let _ = job.done.send(result);
                    }
                }
            }
        });
        (StoreWriter { jobs, metrics }, handle)
    }

    /// Store one record durably; returns when it is committed.
    pub async fn submit(&self, record: MessageRecord) -> Result<(), WriteError> {
        let (done, wait) = oneshot::channel();
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        self.jobs
            .try_send(Job {
                records: vec![record],
                rejects: Vec::new(),
                settings: Vec::new(),
                done,
            })
            .map_err(|e| {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    tokio_mpsc::error::TrySendError::Full(_) => WriteError::Busy,
                    tokio_mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
                }
            })?;
        // A store stuck longer than this (a locked database, a hung disk)
        // answers "try later" rather than holding the client: the write is
        // idempotent, so a retry after a late commit stores nothing twice.
        match tokio::time::timeout(SUBMIT_TIMEOUT, wait).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(WriteError::Store(e)),
            Ok(Err(_)) => Err(WriteError::Closed),
            Err(_) => Err(WriteError::Busy),
        }
    }

    /// Like [`StoreWriter::submit_blocking`], but a failed write is retried
    /// (with a pause growing to 30 s) until it succeeds or `stop` is set: the
    /// caller has nothing to answer, so the only alternative would be to lose
    /// the records. Returns whether they were stored.
    pub fn submit_until_stored(
        &self,
        records: Vec<MessageRecord>,
        rejects: Vec<Reject>,
        settings: Vec<(String, String)>,
        stop: &dyn Fn() -> bool,
    ) -> bool {
        let mut pause = std::time::Duration::from_millis(250);
        loop {
            match self.submit_blocking(records.clone(), rejects.clone(), settings.clone()) {
                Ok(()) => return true,
                Err(WriteError::Closed) => return false,
                Err(_) if stop() => return false,
                Err(_) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    }

    /// Store records and rejects from a thread that is not async, waiting for
    /// room in the queue (back-pressure) and then for the commit.
    pub fn submit_blocking(
        &self,
        records: Vec<MessageRecord>,
        rejects: Vec<Reject>,
        settings: Vec<(String, String)>,
    ) -> Result<(), WriteError> {
        let (done, wait) = oneshot::channel();
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        self.jobs
            .blocking_send(Job {
                records,
                rejects,
                settings,
                done,
            })
            .map_err(|_| {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                WriteError::Closed
            })?;
        match wait.blocking_recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Store(e)),
            Err(_) => Err(WriteError::Closed),
        }
    }
}
