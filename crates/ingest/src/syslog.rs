//! Syslog headers (RFC 3164, RFC 3339-stamped 3164, RFC 5424) and the
//! dispatcher that routes each line to the decoder of its program.
//!
//! (Being written: see the types below, which the other decoders rely on.)

use chrono::{DateTime, Utc};

/// One syslog line with its header decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// The stamp in UTC (zone-less stamps are read in `DecodeOptions::timezone`,
    /// year-less ones get an inferred year).
    pub time: DateTime<Utc>,
    pub host: &'a str,
    /// The program (tag) without pid: `postfix/smtpd`, `postfix/submission/smtpd`, `sm-mta`, `exim`.
    pub program: &'a str,
    pub pid: Option<u32>,
    /// The text after `program[pid]: `.
    pub message: &'a str,
}

/// Where a line came from, for rejects and quarantine.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    /// File name (or source name).
    pub source: &'a str,
    /// 1-based line number.
    pub line: u64,
    /// The whole raw line.
    pub raw: &'a [u8],
}
