//! Decoders and correlators: bytes in, [`MessageRecord`]s and [`Reject`]s out.
//!
//! Every format is one module with no I/O of its own beyond reading the
//! reader it is handed; all of them report to a [`Sink`]. Line-oriented logs
//! (Postfix, Sendmail, Exim) go through a correlator that holds the open
//! messages of a log (by host and queue id) and emits one record per message
//! when its life ends (or when the input ends). Message files (eml, mbox,
//! Maildir) go through [`mime`], which emits one record per message.
//! Exchange message tracking logs go through [`msgtrk`], which correlates
//! by network-message-id and Message-ID and emits a message once its events
//! have stopped for a while.
//! Microsoft 365 exports go through [`m365`] (message traces, folded per
//! message) and [`o365audit`] (audit records that are message facts).
//!
//! Nothing here panics on input: malformed input becomes a [`Reject`] with
//! the file and line (or byte offset), which the caller counts, reports and
//! keeps in quarantine. The whole decode of one message is additionally
//! wrapped in `catch_unwind` at the boundary (see [`mime::parse_message`]),
//! because a parser bug must cost one message, never the import.

use chrono::{DateTime, Utc};
use mailtrail_model::{MessageRecord, Reject};

pub mod detect;
pub mod directory_csv;
pub mod exim;
pub mod gmail;
pub mod journal;
pub mod lines;
pub mod m365;
pub mod maildir;
pub mod mbox;
pub mod mime;
pub mod msgtrk;
pub mod o365audit;
pub mod postfix;
pub mod sendmail;
pub mod syslog;

/// Where decoded records and rejects go (the store, a test's vector, ...).
pub trait Sink {
    /// A correlated message. An error stops the import (e.g. the store failed).
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError>;
    /// Input that could not be decoded; the import goes on.
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError>;
    /// Bytes of input consumed so far in the current file (for progress bars).
    fn progress(&mut self, _bytes: u64) {}
}

/// A sink that keeps what it is given in memory: for tests, and for callers
/// that hand records on in groups (the live receivers).
#[derive(Debug, Default)]
pub struct VecSink {
    pub records: Vec<MessageRecord>,
    pub rejects: Vec<Reject>,
}

impl Sink for VecSink {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records.push(record);
        Ok(())
    }

    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.rejects.push(reject);
        Ok(())
    }
}

/// A sink failure: the destination could not take the record. Aborts the import.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Errors that stop an import of one input (I/O, a sink failure). Malformed
/// *content* is never an error: it is a [`Reject`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{path}: cannot tell the format; name it with --format ({hint})")]
    UnknownFormat { path: String, hint: String },
}

/// Input formats `mailtrail import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A syslog file carrying Postfix, Sendmail and/or Exim lines (RFC 3164,
    /// RFC 3339 stamps or RFC 5424). Each line goes to the decoder of its program.
    Syslog,
    /// Exim's own main log (`YYYY-MM-DD HH:MM:SS id <= ...`).
    EximMainlog,
    /// One RFC 5322 message per file.
    Eml,
    /// A Unix mbox (mboxo/mboxrd, `From ` separators).
    Mbox,
    /// A Maildir tree (`cur/`, `new/`; sub-folders are walked).
    Maildir,
    /// Exchange Server message tracking log (`MSGTRK*.LOG`).
    ExchangeMsgtrk,
    /// Google Workspace Gmail logs as JSON: BigQuery rows (named-field or
    /// positional `tabledata`), Reports API activities, schema documents.
    GmailJson,
    /// Google Workspace Email Log Search CSV export.
    GmailLogSearch,
    /// Microsoft 365 / Exchange Online message trace exports: Get-MessageTrace(V2)
    /// and Get-MessageTraceDetail as CSV or JSON, Graph messageTraces responses,
    /// historical search enhanced summary and extended reports.
    M365Trace,
    /// Office 365 Management Activity API audit records (Exchange workload) as
    /// JSON / NDJSON, or the audit log search CSV export.
    O365Audit,
}

impl Format {
    pub const NAMES: &'static [(&'static str, Format)] = &[
        ("syslog", Format::Syslog),
        ("postfix", Format::Syslog),
        ("sendmail", Format::Syslog),
        ("exim", Format::EximMainlog),
        ("exim-mainlog", Format::EximMainlog),
        ("eml", Format::Eml),
        ("mbox", Format::Mbox),
        ("maildir", Format::Maildir),
        ("msgtrk", Format::ExchangeMsgtrk),
        ("exchange", Format::ExchangeMsgtrk),
        ("gmail", Format::GmailJson),
        ("gmail-bigquery", Format::GmailJson),
        ("gmail-reports", Format::GmailJson),
        ("gmail-els", Format::GmailLogSearch),
        ("email-log-search", Format::GmailLogSearch),
        ("m365-trace", Format::M365Trace),
        ("m365", Format::M365Trace),
        ("message-trace", Format::M365Trace),
        ("o365-audit", Format::O365Audit),
        ("m365-audit", Format::O365Audit),
    ];

    pub fn parse(name: &str) -> Option<Format> {
        Format::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Syslog => "syslog",
            Format::EximMainlog => "exim-mainlog",
            Format::Eml => "eml",
            Format::Mbox => "mbox",
            Format::Maildir => "maildir",
            Format::ExchangeMsgtrk => "msgtrk",
            Format::GmailJson => "gmail",
            Format::GmailLogSearch => "gmail-els",
            Format::M365Trace => "m365-trace",
            Format::O365Audit => "o365-audit",
        }
    }
}

/// Settings every decoder may need.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Time zone of log stamps that carry none (RFC 3164, Exim mainlog).
    pub timezone: chrono_tz::Tz,
    /// A time known to be at or after the last line of the input (the file's
    /// modification time): RFC 3164 stamps have no year, and the year is
    /// inferred so that the input ends no later than this, with New-Year
    /// rollovers inside the file handled.
    pub reference_time: DateTime<Utc>,
    /// Force the year of the first RFC 3164 line instead of inferring it.
    pub year: Option<i32>,
    /// The longest line or header block kept; longer input is rejected (and
    /// its first bytes quarantined) instead of being buffered without limit.
    pub max_line_bytes: usize,
    /// The largest single message read from a mailbox; larger ones are rejected.
    pub max_message_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            timezone: chrono_tz::UTC,
            reference_time: Utc::now(),
            year: None,
            max_line_bytes: 64 * 1024,
            max_message_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The most bytes of a rejected input kept in quarantine.
pub const QUARANTINE_EXCERPT_BYTES: usize = 64 * 1024;
