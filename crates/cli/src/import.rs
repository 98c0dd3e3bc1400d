//! `mailtrail import`: files and folders in, store batches out.
//!
//! The decoders report to a [`Sink`]; this module's sink gathers records and
//! rejects into batches and hands each batch to a writer thread, which stores
//! it in one store transaction. Decoding and storing thus run side by side on
//! two cores, and the channel between them holds at most two batches, so a
//! slow disk slows the decoder instead of filling memory.
//!
//! The batch is the unit of durability: after `kill -9` every committed batch
//! is there and the rest is not, and because every store write is idempotent,
//! running the same import again completes it without duplicating anything.
//! Batches are bounded by count and by raw bytes, so memory stays flat
//! however large the input.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailtrail_ingest::{detect, DecodeOptions, Format, IngestError, Sink, SinkError};
use mailtrail_model::{MessageRecord, Position, Reject};
use mailtrail_store::{BatchOutcome, Store, StoreError};

const BATCH_RECORDS: usize = 2000;
const BATCH_RAW_BYTES: usize = 32 * 1024 * 1024;
/// Batches waiting for the writer; with the one being filled and the one
/// being written, at most three batches exist at once.
const BATCHES_IN_FLIGHT: usize = 1;

/// Totals of one `mailtrail import` run.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub files: u64,
    pub records: u64,
    pub rejects: u64,
    pub stored: BatchOutcome,
    /// The first rejects, for the summary (file, position, reason).
    pub reject_samples: Vec<String>,
}

type Batch = (Vec<MessageRecord>, Vec<Reject>);

struct BatchSink<'a> {
    writer: SyncSender<Batch>,
    /// When the current input was last modified: the time given to a
    /// message that carries none at all (no Date:, no Received:).
    input_time: DateTime<Utc>,
    records: Vec<MessageRecord>,
    rejects: Vec<Reject>,
    raw_bytes: usize,
    report: ImportReport,
    progress: &'a ProgressBar,
    progress_base: u64,
}

impl BatchSink<'_> {
    fn flush(&mut self) -> Result<(), SinkError> {
        if self.records.is_empty() && self.rejects.is_empty() {
            return Ok(());
        }
        let batch = (
            std::mem::take(&mut self.records),
            std::mem::take(&mut self.rejects),
        );
        self.raw_bytes = 0;
        // A send fails only when the writer stopped on a store error, which
        // the writer's own result reports.
        self.writer
            .send(batch)
            .map_err(|_| SinkError("the store stopped taking batches".into()))
    }
}

impl Sink for BatchSink<'_> {
    fn record(&mut self, mut record: MessageRecord) -> Result<(), SinkError> {
        if record.sort_time().is_none() {
            // No Date:, no Received:, no log stamp (a draft, some clients'
            // sent items): it was seen no later than its file was written.
            record.first_seen = Some(self.input_time);
        }
        self.report.records += 1;
        self.raw_bytes += record.raw.as_ref().map_or(0, Vec::len);
        self.records.push(record);
        if self.records.len() >= BATCH_RECORDS || self.raw_bytes >= BATCH_RAW_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.report.rejects += 1;
        if self.report.reject_samples.len() < 10 {
            self.report.reject_samples.push(format!(
                "{}: {}: {} ({})",
                reject.source, reject.position, reject.reason, reject.code
            ));
        }
        self.rejects.push(reject);
        if self.rejects.len() >= BATCH_RECORDS {
            self.flush()?;
        }
        Ok(())
    }

    fn progress(&mut self, bytes: u64) {
        self.progress.set_position(self.progress_base + bytes);
    }
}

/// One input to import, after walking folders and detecting formats.
struct Input {
    path: PathBuf,
    /// gzip-compressed (a rotated `mail.log.2.gz`): read through a decoder.
    gzip: bool,
    /// `None`: the content is no format we know; it is reported and quarantined.
    format: Option<Format>,
    size: u64,
}

/// Expand the paths given on the command line into inputs with formats.
/// The store's own files (database, blobs, quarantine) are never inputs, so
/// `mailtrail import .` from inside the data directory is harmless.
fn plan(paths: &[PathBuf], forced: Option<Format>, data_dir: &Path) -> Result<Vec<Input>> {
    let own: Vec<PathBuf> = match data_dir.canonicalize() {
        Ok(d) => vec![
            d.join("mailtrail.db"),
            d.join("mailtrail.db-wal"),
            d.join("mailtrail.db-shm"),
            d.join("blobs"),
            d.join("quarantine"),
        ],
        Err(_) => Vec::new(),
    };
    let inside_data = |p: &Path| {
        p.canonicalize()
            .is_ok_and(|p| own.iter().any(|o| p.starts_with(o)))
    };
    let mut inputs = Vec::new();
    for path in paths {
        if inside_data(path) {
            eprintln!(
                "skipping {}: it is part of mailtrail's own store",
                path.display()
            );
            continue;
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            if forced == Some(Format::Maildir)
                || (forced.is_none() && mailtrail_ingest::maildir::is_maildir(path))
            {
                inputs.push(Input {
                    path: path.clone(),
                    gzip: false,
                    format: Some(Format::Maildir),
                    size: 0,
                });
                continue;
            }
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            files.retain(|f| !inside_data(f));
            for file in files {
                inputs.push(plan_file(&file, forced)?);
            }
        } else {
            inputs.push(plan_file(path, forced)?);
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if mailtrail_ingest::maildir::is_maildir(&path) {
                out.push(path);
            } else {
                walk(&path, out)?;
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn plan_file(path: &Path, forced: Option<Format>) -> Result<Input> {
    if path.is_dir() {
        return Ok(Input {
            path: path.to_path_buf(),
            gzip: false,
            format: Some(Format::Maildir),
            size: 0,
        });
    }
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let gzip = is_gzip(path)?;
    let format = match forced {
        Some(f) => Some(f),
        None => {
            let mut head = vec![0u8; detect::HEAD_BYTES];
            let mut reader = open_input(path, gzip)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let n = read_up_to(&mut reader, &mut head)
                .with_context(|| format!("cannot read {}", path.display()))?;
            head.truncate(n);
            detect::detect(&head)
        }
    };
    Ok(Input {
        path: path.to_path_buf(),
        gzip,
        format,
        size,
    })
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = read_up_to(&mut file, &mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// The input's bytes, decompressed when it is gzipped.
fn open_input(path: &Path, gzip: bool) -> std::io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    })
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub fn format_names() -> String {
    let mut names: Vec<&str> = Format::NAMES.iter().map(|(n, _)| *n).collect();
    names.dedup();
    names.join(", ")
}

/// Settings of an import run.
pub struct ImportOptions {
    pub format: Option<Format>,
    /// The store's data directory, never read as input.
    pub data_dir: PathBuf,
    pub timezone: chrono_tz::Tz,
    pub year: Option<i32>,
    pub quiet: bool,
}

pub fn run(
    store: &mut (dyn Store + Send),
    paths: &[PathBuf],
    options: &ImportOptions,
) -> Result<ImportReport> {
    let inputs = plan(paths, options.format, &options.data_dir)?;
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    let progress = if options.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };
    let (sender, receiver) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<BatchOutcome, StoreError> {
            let mut outcome = BatchOutcome::default();
            for (records, rejects) in receiver {
                outcome.add(&store.write_batch(records, rejects)?);
            }
            // The summary is the acknowledgement: everything in it is durable.
            store.sync()?;
            Ok(outcome)
        });
        let mut sink = BatchSink {
            writer: sender,
            input_time: Utc::now(),
            records: Vec::new(),
            rejects: Vec::new(),
            raw_bytes: 0,
            report: ImportReport::default(),
            progress: &progress,
            progress_base: 0,
        };
        let decoded = decode_all(&inputs, options, &mut sink).and_then(|()| {
            sink.flush()
                .map_err(|e| anyhow::anyhow!(e))
                .context("storing the last batch")
        });
        let BatchSink {
            writer: sender,
            mut report,
            ..
        } = sink;
        drop(sender); // closes the channel: the writer finishes what it has
        let stored = match writer.join() {
            Ok(result) => result,
            Err(_) => return Err(anyhow::anyhow!("the store writer crashed")).context(RESUME_HINT),
        };
        match (decoded, stored) {
            // A store error explains a failed send: report it first.
            (_, Err(e)) => {
                progress.abandon();
                Err(e)
                    .context("storing a batch failed")
                    .context(RESUME_HINT)
            }
            (Err(e), Ok(_)) => {
                progress.abandon();
                Err(e).context(RESUME_HINT)
            }
            (Ok(()), Ok(outcome)) => {
                progress.finish_and_clear();
                report.stored = outcome;
                Ok(report)
            }
        }
    })
}

const RESUME_HINT: &str =
    "import stopped; everything before this point is stored, run the same import again to complete it";

/// Decode every input into the sink, file after file.
fn decode_all(inputs: &[Input], options: &ImportOptions, sink: &mut BatchSink<'_>) -> Result<()> {
    // Several Exchange message tracking logs are decoded together, where the first one stands.
    let msgtrk: Vec<&Input> = inputs
        .iter()
        .filter(|i| i.format == Some(Format::ExchangeMsgtrk))
        .collect();
    let mut msgtrk_pending = msgtrk.len() > 1;
    for input in inputs {
        if msgtrk.len() > 1 && input.format == Some(Format::ExchangeMsgtrk) {
            if std::mem::take(&mut msgtrk_pending) {
                import_msgtrk_group(&msgtrk, options, sink)?;
            }
            continue;
        }
        // Reported (and quarantined) under its full path, so that the same
        // file named two ways is one source.
        let name = input
            .path
            .canonicalize()
            .unwrap_or_else(|_| input.path.clone())
            .display()
            .to_string();
        sink.progress.set_message(name.clone());
        let reference_time = std::fs::metadata(&input.path)
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        sink.input_time = reference_time;
        let opts = DecodeOptions {
            timezone: options.timezone,
            reference_time,
            year: options.year,
            ..DecodeOptions::default()
        };
        import_one(input, &name, &opts, sink).with_context(|| format!("while importing {name}"))?;
        sink.progress_base += input.size;
        sink.report.files += 1;
    }
    Ok(())
}

/// A run's Exchange message tracking logs (a server's folder, several
/// servers' folders), decoded as one stream in time order (see
/// `mailtrail_ingest::msgtrk::import_msgtrk_files`): a message's events in
/// the MSGTRK, MSGTRKMS and MSGTRKMD logs and in rolled-over files then make
/// one record instead of a partial record per file for the store to fold.
fn import_msgtrk_group(
    group: &[&Input],
    options: &ImportOptions,
    sink: &mut BatchSink<'_>,
) -> Result<()> {
    let mut latest: Option<DateTime<Utc>> = None;
    let mut files = Vec::with_capacity(group.len());
    for input in group {
        let name = input
            .path
            .canonicalize()
            .unwrap_or_else(|_| input.path.clone())
            .display()
            .to_string();
        if let Ok(t) = std::fs::metadata(&input.path).and_then(|m| m.modified()) {
            latest = latest.max(Some(DateTime::<Utc>::from(t)));
        }
        let (path, gzip) = (input.path.clone(), input.gzip);
        let open: mailtrail_ingest::msgtrk::MsgtrkOpener<'_> = Box::new(move || {
            let reader = BufReader::with_capacity(256 * 1024, open_input(&path, gzip)?);
            Ok(Box::new(reader) as Box<dyn std::io::BufRead>)
        });
        files.push(mailtrail_ingest::msgtrk::MsgtrkInput { name, open });
    }
    let reference_time = latest.unwrap_or_else(Utc::now);
    sink.input_time = reference_time;
    sink.progress
        .set_message(format!("{} Exchange message tracking logs", group.len()));
    let opts = DecodeOptions {
        timezone: options.timezone,
        reference_time,
        year: options.year,
        ..DecodeOptions::default()
    };
    let summary = mailtrail_ingest::msgtrk::import_msgtrk_files(files, &opts, sink)
        .with_context(|| format!("while importing {} message tracking logs", group.len()))?;
    if summary.default_layout_lines > 0 {
        eprintln!(
            "message tracking logs: no #Fields header; {} line(s) read with the documented Exchange layout of their field count",
            summary.default_layout_lines
        );
    }
    sink.progress_base += group.iter().map(|i| i.size).sum::<u64>();
    sink.report.files += group.len() as u64;
    Ok(())
}

fn import_one(
    input: &Input,
    name: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<(), IngestError> {
    let open = || {
        open_input(&input.path, input.gzip)
            .map(|f| BufReader::with_capacity(256 * 1024, f))
            .map_err(|source| IngestError::Io {
                path: name.to_string(),
                source,
            })
    };
    let Some(format) = input.format else {
        // Not a format we know: report and keep its head, go on with the rest.
        let mut head = vec![0u8; mailtrail_ingest::QUARANTINE_EXCERPT_BYTES];
        let n = open()?.read(&mut head).map_err(|source| IngestError::Io {
            path: name.to_string(),
            source,
        })?;
        head.truncate(n);
        sink.reject(Reject {
            source: name.to_string(),
            position: Position::Offset(0),
            code: "import.unknown_format".into(),
            reason: format!(
                "not a mail log or message format mailtrail knows; name one with --format ({})",
                format_names()
            ),
            input: head,
        })?;
        return Ok(());
    };
    match format {
        Format::Syslog => {
            mailtrail_ingest::syslog::import_syslog(open()?, name, opts, sink)?;
        }
        Format::EximMainlog => {
            mailtrail_ingest::exim::import_mainlog(open()?, name, opts, sink)?;
        }
        Format::Mbox => {
            mailtrail_ingest::mbox::import_mbox(open()?, name, opts, sink)?;
        }
        Format::Eml => {
            mailtrail_ingest::mime::import_eml_reader(open()?, name, opts, sink)?;
        }
        Format::Maildir => {
            mailtrail_ingest::maildir::import_maildir(&input.path, opts, sink)?;
        }
        Format::ExchangeMsgtrk => {
            let summary = mailtrail_ingest::msgtrk::import_msgtrk(open()?, name, opts, sink)?;
            if summary.default_layout_lines > 0 {
                eprintln!(
                    "{name}: no #Fields header; {} line(s) read with the documented Exchange layout of their field count",
                    summary.default_layout_lines
                );
            }
        }
        Format::GmailJson => {
            // Positional BigQuery rows need their table's schema: from a
            // `<name>.schema.json` or `schema.json` beside the file if there
            // is one. One that cannot be read is said, not fatal: rows that
            // do not fit the built-in schema are then rejected one by one.
            let schema =
                mailtrail_ingest::gmail::schema_file_beside(&input.path).and_then(|path| {
                    match mailtrail_ingest::gmail::read_schema_file(&path) {
                        Ok(schema) => Some(schema),
                        Err(e) => {
                            eprintln!("{}: not used as the schema of {name}: {e}", path.display());
                            None
                        }
                    }
                });
            let summary =
                mailtrail_ingest::gmail::import_gmail_json(open()?, name, schema, opts, sink)?;
            if summary.default_schema_rows > 0 {
                eprintln!(
                    "{name}: {} positional row(s) read with the built-in Gmail logs schema (put the table's schema beside the file as <name>.schema.json to use it)",
                    summary.default_schema_rows
                );
            }
        }
        Format::GmailLogSearch => {
            mailtrail_ingest::gmail::import_email_log_search(open()?, name, opts, sink)?;
        }
        Format::M365Trace => {
            let summary = mailtrail_ingest::m365::import_trace(open()?, name, opts, sink)?;
            if summary.without_status > 0 {
                eprintln!(
                    "{name}: {} trace row(s) with a status that makes no delivery (None or unknown); their recipients are kept",
                    summary.without_status
                );
            }
        }
        Format::O365Audit => {
            let summary = mailtrail_ingest::o365audit::import_audit(open()?, name, opts, sink)?;
            if summary.skipped > 0 {
                let ops: Vec<String> = summary
                    .skipped_by_operation
                    .iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect();
                eprintln!(
                    "{name}: {} audit record(s) are no message fact and were skipped ({}); access events name {} item(s)",
                    summary.skipped,
                    ops.join(", "),
                    summary.accessed_items
                );
            }
        }
    }
    Ok(())
}

/// The summary printed after an import.
pub fn print_report(report: &ImportReport, elapsed: Duration) {
    let s = &report.stored;
    println!(
        "imported {} file(s) in {:.1}s: {} record(s) → {} new message(s), {} updated, {} already stored",
        report.files,
        elapsed.as_secs_f64(),
        report.records,
        s.new_messages,
        s.updated_messages,
        s.unchanged
    );
    if s.new_deliveries.is_empty() {
        println!("new deliveries: none");
    } else {
        let parts: Vec<String> = s
            .new_deliveries
            .iter()
            .map(|(status, n)| format!("{} {n}", status.as_str()))
            .collect();
        println!("new deliveries: {}", parts.join(", "));
    }
    if report.rejects > 0 {
        println!(
            "rejected input: {} ({} newly quarantined; see `mailtrail quarantine`)",
            report.rejects, s.new_rejects
        );
        for sample in &report.reject_samples {
            println!("  {sample}");
        }
        if report.rejects as usize > report.reject_samples.len() {
            println!("  ...");
        }
    } else {
        println!("rejected input: none");
    }
}

pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}
