//! Syslog headers (RFC 3164, RFC 3339-stamped 3164, RFC 5424) and the
//! dispatcher that routes each line to the decoder of its program.
//!
//! Why it is shaped this way:
//!
//! - The header parser is hand-written rather than `syslog_loose`: mail logs
//!   are large (millions of lines) and only three header shapes occur in
//!   practice, so a single forward scan over the bytes with no allocation is
//!   both faster and easier to reason about than a general parser. It also
//!   lets us own the two things a general parser gets wrong for us: the
//!   **year** of year-less RFC 3164 stamps (inferred from
//!   [`DecodeOptions::reference_time`] for the first line, rolled forward at
//!   a New-Year wrap) and the **time zone** of zone-less stamps
//!   ([`DecodeOptions::timezone`], with a per-hour offset cache so the zone
//!   database is consulted once per hour of log, not once per line).
//! - [`SyslogParser`] is stateful (the year inference needs the previous
//!   line), so one parser is used per input file.
//! - [`import_syslog`] reads through the bounded [`LineReader`]; malformed
//!   input (over-long lines, non-UTF-8 lines, headers that do not parse)
//!   becomes a [`Reject`] sent to the sink — never a panic, never an abort.
//!   Lines go by program to the correlator of their MTA; everything else is
//!   counted as ignored.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use mailtrail_model::{Position, Reject};

use crate::lines::{Line, LineReader};
use crate::{DecodeOptions, IngestError, Sink, SinkError, QUARANTINE_EXCERPT_BYTES};

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

/// A syslog header that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct HeaderError {
    /// Why, for humans.
    pub reason: &'static str,
}

impl HeaderError {
    /// The stable reject code of every header error.
    pub const CODE: &'static str = "syslog.header";

    /// The stable reject code (`syslog.header`).
    pub fn code(&self) -> &'static str {
        Self::CODE
    }

    fn new(reason: &'static str) -> Self {
        HeaderError { reason }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", Self::CODE, self.reason)
    }
}

/// Reject code of a line longer than `DecodeOptions::max_line_bytes`.
pub const CODE_TOO_LONG: &str = "syslog.too_long";

/// Stateful syslog header parser: one per input (the year inference of
/// RFC 3164 stamps depends on the lines before).
#[derive(Debug, Clone)]
pub struct SyslogParser {
    tz: chrono_tz::Tz,
    is_utc: bool,
    reference: DateTime<Utc>,
    forced_year: Option<i32>,
    /// The year of the current run of year-less lines, once known.
    year: Option<i32>,
    /// The month (1-12) of the previous dated line.
    last_month: u32,
    /// The year moved forward at a Dec → Jan wrap and the lines since are
    /// still in the first months: a December line now is a late old-year line.
    recent_wrap: bool,
    /// `(date, hour)` → offset east of UTC in seconds, for zone-less stamps.
    offset_cache: Option<(NaiveDate, u32, i32)>,
}

/// The parts of a stamp as written.
struct Stamp {
    year: Option<i32>,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
    /// Offset east of UTC in seconds, when the stamp carries a zone.
    offset: Option<i32>,
}

impl SyslogParser {
    pub fn new(opts: &DecodeOptions) -> Self {
        SyslogParser {
            tz: opts.timezone,
            is_utc: opts.timezone == chrono_tz::UTC,
            reference: opts.reference_time,
            forced_year: opts.year,
            year: None,
            last_month: 0,
            recent_wrap: false,
            offset_cache: None,
        }
    }

    /// Decode the header of one line (without its line terminator).
    pub fn parse<'a>(&mut self, line: &'a str) -> Result<SyslogLine<'a>, HeaderError> {
        let mut s = line.strip_prefix('\u{feff}').unwrap_or(line);
        // Optional `<PRI>`.
        if let Some(rest) = s.strip_prefix('<') {
            let close = rest
                .as_bytes()
                .iter()
                .take(4)
                .position(|&b| b == b'>')
                .ok_or(HeaderError::new("unterminated <PRI>"))?;
            if close == 0 || !rest.as_bytes()[..close].iter().all(u8::is_ascii_digit) {
                return Err(HeaderError::new("bad <PRI>"));
            }
            s = &rest[close + 1..];
            // RFC 5424: `<PRI>VERSION SP TIMESTAMP ...`
            let b = s.as_bytes();
            if b.len() > 2 && b[0].is_ascii_digit() && b[0] != b'0' && b[1] == b' ' {
                return self.parse_5424(&s[2..]);
            }
        }
        let b = s.as_bytes();
        let (stamp, used) = if b.first().is_some_and(u8::is_ascii_digit) {
            parse_rfc3339(b).ok_or(HeaderError::new("bad RFC 3339 timestamp"))?
        } else if b.first().is_some_and(u8::is_ascii_alphabetic) {
            parse_3164_stamp(b).ok_or(HeaderError::new("bad RFC 3164 timestamp"))?
        } else {
            return Err(HeaderError::new("no timestamp"));
        };
        let time = self.resolve(&stamp)?;
        let rest = s[used..].trim_start_matches(' ');
        let (host, rest) = match rest.find(' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None if !rest.is_empty() => (rest, ""),
            None => return Err(HeaderError::new("no host")),
        };
        if host.ends_with(':') || (host.contains('[') && host.ends_with("]:")) {
            // No host field: the token is already the tag (`Jul  4 07:13:48 prog[1]: msg`).
            let (program, pid, message) = split_tag(s[used..].trim_start_matches(' '));
            return Ok(SyslogLine {
                time,
                host: "",
                program,
                pid,
                message,
            });
        }
        let (program, pid, message) = split_tag(rest);
        Ok(SyslogLine {
            time,
            host,
            program,
            pid,
            message,
        })
    }

    fn parse_5424<'a>(&mut self, s: &'a str) -> Result<SyslogLine<'a>, HeaderError> {
        let mut fields = s.splitn(6, ' ');
        let ts = fields.next().unwrap_or("");
        let host = fields.next().ok_or(HeaderError::new("RFC 5424: no host"))?;
        let app = fields
            .next()
            .ok_or(HeaderError::new("RFC 5424: no app-name"))?;
        let procid = fields
            .next()
            .ok_or(HeaderError::new("RFC 5424: no procid"))?;
        let _msgid = fields
            .next()
            .ok_or(HeaderError::new("RFC 5424: no msgid"))?;
        let rest = fields.next().unwrap_or("");
        if ts == "-" {
            return Err(HeaderError::new("RFC 5424: nil timestamp"));
        }
        let (stamp, used) = parse_rfc3339(ts.as_bytes())
            .filter(|(_, used)| *used == ts.len())
            .ok_or(HeaderError::new("RFC 5424: bad timestamp"))?;
        let _ = used;
        let time = self.resolve(&stamp)?;
        let message = skip_structured_data(rest)?;
        let message = message.strip_prefix('\u{feff}').unwrap_or(message);
        let nil = |v: &'a str| if v == "-" { "" } else { v };
        Ok(SyslogLine {
            time,
            host: nil(host),
            program: nil(app),
            pid: procid.parse().ok(),
            message,
        })
    }

    /// Turn a stamp into UTC: infer the year, apply the zone.
    fn resolve(&mut self, st: &Stamp) -> Result<DateTime<Utc>, HeaderError> {
        // Dated lines (RFC 3339 / 5424) do not move the inference for the
        // year-less ones: a relay's stale or odd clock must not shift them.
        let year = match st.year {
            Some(y) => y,
            None => self.infer_year(st)?,
        };
        let date = NaiveDate::from_ymd_opt(year, st.month, st.day)
            .ok_or(HeaderError::new("no such date"))?;
        let naive = date
            .and_hms_micro_opt(st.hour, st.minute, st.second, st.micro)
            .ok_or(HeaderError::new("no such time"))?;
        let offset = match st.offset {
            Some(o) => o,
            None => self.local_offset(naive),
        };
        Ok(DateTime::<Utc>::from_naive_utc_and_offset(
            naive - Duration::seconds(i64::from(offset)),
            Utc,
        ))
    }

    fn infer_year(&mut self, st: &Stamp) -> Result<i32, HeaderError> {
        match self.year {
            None => {
                let year = match self.forced_year {
                    Some(y) => y,
                    None => self.first_year(st),
                };
                self.year = Some(year);
                self.last_month = st.month;
                Ok(year)
            }
            Some(mut year) => {
                // A backwards jump of two months or more is a New-Year wrap
                // (Dec → Jan); a one-month step back is a late line, not a
                // new year.
                if st.month + 1 < self.last_month {
                    year += 1;
                    self.year = Some(year);
                    self.recent_wrap = true;
                } else if self.recent_wrap && st.month > self.last_month + 5 {
                    // A forward jump of half a year or more right after a
                    // wrap (Jan → Dec) is a late line of the old year: it
                    // does not move the run. (Without a wrap, a forward jump
                    // is just a quiet log: Jan → Aug of the same year.)
                    return Ok(year - 1);
                }
                if st.month >= 3 {
                    self.recent_wrap = false;
                }
                self.last_month = st.month;
                Ok(year)
            }
        }
    }

    /// The year of the first year-less line: the latest year in which the
    /// stamp is not after the reference time (with a day of slack for clock
    /// skew and zone confusion).
    fn first_year(&mut self, st: &Stamp) -> i32 {
        let limit = self.reference + Duration::days(1);
        let ref_year = self.reference.with_timezone(&self.tz).year();
        for year in [
            ref_year,
            ref_year - 1,
            ref_year - 2,
            ref_year - 3,
            ref_year - 4,
        ] {
            let Some(naive) = NaiveDate::from_ymd_opt(year, st.month, st.day)
                .and_then(|d| d.and_hms_micro_opt(st.hour, st.minute, st.second, st.micro))
            else {
                continue; // 29 February of a common year
            };
            let offset = st.offset.unwrap_or_else(|| self.local_offset(naive));
            let utc = naive - Duration::seconds(i64::from(offset));
            if utc.and_utc() <= limit {
                return year;
            }
        }
        ref_year
    }

    /// Offset east of UTC (seconds) of a local time in the configured zone.
    fn local_offset(&mut self, naive: NaiveDateTime) -> i32 {
        if self.is_utc {
            return 0;
        }
        let (date, hour) = (naive.date(), chrono::Timelike::hour(&naive));
        if let Some((d, h, o)) = self.offset_cache {
            if d == date && h == hour {
                return o;
            }
        }
        let offset = match self.tz.offset_from_local_datetime(&naive).earliest() {
            Some(o) => o.fix().local_minus_utc(),
            // In a spring-forward gap: the offset in force just before it.
            None => self
                .tz
                .offset_from_utc_datetime(&naive)
                .fix()
                .local_minus_utc(),
        };
        self.offset_cache = Some((date, hour, offset));
        offset
    }
}

/// Split `prog[pid]: message` / `prog: message`; a line without a tag has an
/// empty program and the whole rest as its message.
fn split_tag(rest: &str) -> (&str, Option<u32>, &str) {
    let b = rest.as_bytes();
    let Some(i) = b.iter().position(|&c| c == b'[' || c == b':' || c == b' ') else {
        return ("", None, rest);
    };
    match b[i] {
        b':' => (&rest[..i], None, strip_one_space(&rest[i + 1..])),
        b'[' => {
            let Some(close) = rest[i..].find(']').map(|c| c + i) else {
                return ("", None, rest);
            };
            let pid = rest[i + 1..close].parse().ok();
            let after = &rest[close + 1..];
            let message = match after.strip_prefix(':') {
                Some(m) => strip_one_space(m),
                None => strip_one_space(after),
            };
            (&rest[..i], pid, message)
        }
        _ => ("", None, rest),
    }
}

fn strip_one_space(s: &str) -> &str {
    s.strip_prefix(' ').unwrap_or(s)
}

/// Skip RFC 5424 STRUCTURED-DATA (`-` or `[id k="v" ...]...`) and the space after it.
fn skip_structured_data(s: &str) -> Result<&str, HeaderError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(strip_one_space(rest));
    }
    if s.is_empty() {
        return Ok(s);
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        let mut in_quotes = false;
        i += 1;
        loop {
            let Some(&c) = b.get(i) else {
                return Err(HeaderError::new("RFC 5424: unterminated structured data"));
            };
            match c {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    if i == 0 {
        return Err(HeaderError::new("RFC 5424: bad structured data"));
    }
    Ok(strip_one_space(&s[i..]))
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `HH:MM:SS` at `at`.
fn hms(b: &[u8], at: usize) -> Option<(u32, u32, u32)> {
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    let (h, m, s) = (
        digits(b, at, 2)?,
        digits(b, at + 3, 2)?,
        digits(b, at + 6, 2)?,
    );
    // A leap second is kept as the last representable instant of its minute.
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s.min(59)))
}

/// `.ffffff` at `at`: (microseconds, bytes used).
fn fraction(b: &[u8], at: usize) -> (u32, usize) {
    if b.get(at) != Some(&b'.') {
        return (0, 0);
    }
    let mut i = at + 1;
    let (mut micro, mut scale) = (0u32, 100_000u32);
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        micro += u32::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == at + 1 {
        (0, 0)
    } else {
        (micro, i - at)
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f][Z|±HH:MM|±HHMM]`: the stamp and bytes used.
fn parse_rfc3339(b: &[u8]) -> Option<(Stamp, usize)> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = hms(b, 11)?;
    let (micro, flen) = fraction(b, 19);
    let mut i = 19 + flen;
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let (om, len) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)?, 6)
            } else {
                (digits(b, i + 3, 2)?, 5)
            };
            i += len;
            let secs = (oh * 3600 + om * 60) as i32;
            Some(if sign == b'-' { -secs } else { secs })
        }
        _ => None,
    };
    let stamp = Stamp {
        year: Some(year as i32),
        month,
        day,
        hour,
        minute,
        second,
        micro,
        offset,
    };
    Some((stamp, i))
}

/// `Mmm dd HH:MM:SS` (day space- or zero-padded or not padded): stamp and bytes used.
fn parse_3164_stamp(b: &[u8]) -> Option<(Stamp, usize)> {
    let m = b.get(0..3)?;
    let month = match [
        m[0].to_ascii_lowercase(),
        m[1].to_ascii_lowercase(),
        m[2].to_ascii_lowercase(),
    ] {
        [b'j', b'a', b'n'] => 1,
        [b'f', b'e', b'b'] => 2,
        [b'm', b'a', b'r'] => 3,
        [b'a', b'p', b'r'] => 4,
        [b'm', b'a', b'y'] => 5,
        [b'j', b'u', b'n'] => 6,
        [b'j', b'u', b'l'] => 7,
        [b'a', b'u', b'g'] => 8,
        [b's', b'e', b'p'] => 9,
        [b'o', b'c', b't'] => 10,
        [b'n', b'o', b'v'] => 11,
        [b'd', b'e', b'c'] => 12,
        _ => return None,
    };
    let mut i = 3;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut day = 0u32;
    let start = i;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() || i - start == 2 {
            break;
        }
        day = day * 10 + u32::from(c - b'0');
        i += 1;
    }
    if i == start || b.get(i) != Some(&b' ') || day == 0 || day > 31 {
        return None;
    }
    i += 1;
    let (hour, minute, second) = hms(b, i)?;
    i += 8;
    let (micro, flen) = fraction(b, i);
    i += flen;
    let stamp = Stamp {
        year: None,
        month,
        day,
        hour,
        minute,
        second,
        micro,
        offset: None,
    };
    Some((stamp, i))
}

/// What one syslog import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Lines read.
    pub lines: u64,
    /// Well-formed lines of programs we do not decode (and blank lines).
    pub ignored: u64,
    /// Lines rejected (over-long, header not parsed).
    pub rejected: u64,
    /// Message records emitted by the correlators.
    pub records: u64,
}

/// Which correlator a program's lines go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mta {
    Postfix,
    Sendmail,
    Exim,
    /// Exchange message-tracking lines forwarded by a log shipper (NXLog,
    /// Winlogbeat → syslog): the syslog message is one MSGTRK CSV line.
    Exchange,
}

/// The MTA of a syslog program name, if it is one we decode.
pub fn mta_of(program: &str) -> Option<Mta> {
    if program.starts_with("postfix") {
        Some(Mta::Postfix)
    } else if program.starts_with("exim") {
        Some(Mta::Exim)
    } else if matches!(
        program,
        "sendmail" | "sm-mta" | "sm-msp-queue" | "sm-acceptingconnections"
    ) {
        Some(Mta::Sendmail)
    } else if ["msexchange", "msgtrk", "exchange"]
        .iter()
        .any(|p| program.len() >= p.len() && program[..p.len()].eq_ignore_ascii_case(p))
    {
        Some(Mta::Exchange)
    } else {
        None
    }
}

/// Counts records on their way to the real sink.
struct CountingSink<'s> {
    inner: &'s mut dyn Sink,
    records: u64,
}

impl Sink for CountingSink<'_> {
    fn record(&mut self, record: mailtrail_model::MessageRecord) -> Result<(), SinkError> {
        self.records += 1;
        self.inner.record(record)
    }
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.inner.reject(reject)
    }
    fn progress(&mut self, bytes: u64) {
        self.inner.progress(bytes)
    }
}

const PROGRESS_EVERY: u64 = 64 * 1024;

fn line_reject(source: &str, line: u64, code: &str, reason: String, raw: &[u8]) -> Reject {
    Reject {
        source: source.to_string(),
        position: Position::Line(line),
        code: code.to_string(),
        reason,
        input: raw[..raw.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec(),
    }
}

/// Decode a syslog file: every Postfix, Sendmail and Exim line goes to the
/// correlator of its MTA, which emits one record per message to `sink`;
/// malformed lines become rejects. Only I/O and sink failures stop it.
pub fn import_syslog<R: std::io::BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<ImportSummary, IngestError> {
    let mut sink = CountingSink {
        inner: sink,
        records: 0,
    };
    let mut reader = LineReader::new(reader, opts.max_line_bytes);
    let mut dispatcher = Dispatcher::new(opts);
    let mut summary = ImportSummary::default();
    let mut next_progress = PROGRESS_EVERY;
    loop {
        let line = reader.next_line().map_err(|e| IngestError::Io {
            path: source.to_string(),
            source: e,
        })?;
        let Some(line) = line else { break };
        summary.lines += 1;
        match line {
            Line::TooLong {
                number,
                head,
                length,
                ..
            } => {
                summary.rejected += 1;
                let reason = format!(
                    "line of {length} bytes exceeds the limit of {} bytes",
                    opts.max_line_bytes
                );
                sink.reject(line_reject(source, number, CODE_TOO_LONG, reason, head))?;
            }
            Line::Complete { number, bytes, .. } => {
                match dispatcher.line(bytes, source, number, &mut sink)? {
                    LineOutcome::Used => {}
                    LineOutcome::Ignored => summary.ignored += 1,
                    LineOutcome::Rejected => summary.rejected += 1,
                }
            }
        }
        if reader.offset() >= next_progress {
            sink.progress(reader.offset());
            next_progress = reader.offset() + PROGRESS_EVERY;
        }
    }
    dispatcher.finish(&mut sink)?;
    sink.progress(reader.offset());
    summary.records = sink.records;
    Ok(summary)
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    /// Fed to a mail system's decoder.
    Used,
    /// Blank, or from a program that is not a mail system.
    Ignored,
    /// The header could not be read: reported to the sink as a reject.
    Rejected,
}

/// Routes syslog lines, one at a time, to the decoder of their program.
/// Files (`import_syslog`) and network receivers (`mailtrail serve`) share it;
/// the correlators keep each message open until its last line has arrived.
pub struct Dispatcher {
    parser: SyslogParser,
    postfix: crate::postfix::Correlator,
    sendmail: crate::sendmail::Correlator,
    exim: crate::exim::Correlator,
    exchange: crate::msgtrk::MsgtrkDecoder,
}

impl Dispatcher {
    pub fn new(opts: &DecodeOptions) -> Dispatcher {
        Dispatcher {
            parser: SyslogParser::new(opts),
            postfix: crate::postfix::Correlator::new(opts),
            sendmail: crate::sendmail::Correlator::new(opts),
            exim: crate::exim::Correlator::new(opts),
            exchange: crate::msgtrk::MsgtrkDecoder::new(opts),
        }
    }

    /// Decode one line (without its terminator). `number` is its position
    /// in `source`, for rejects.
    pub fn line(
        &mut self,
        bytes: &[u8],
        source: &str,
        number: u64,
        sink: &mut dyn Sink,
    ) -> Result<LineOutcome, SinkError> {
        // Lines are UTF-8 almost always; a line that is not (a raw
        // Shift_JIS subject in a header_checks warning) is decoded by
        // sniffing rather than lost.
        let decoded = match std::str::from_utf8(bytes) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => std::borrow::Cow::Owned(crate::mime::sniff_decode(bytes)),
        };
        let text = decoded.as_ref();
        if text.trim().is_empty() {
            return Ok(LineOutcome::Ignored);
        }
        let parsed = match self.parser.parse(text) {
            Ok(p) => p,
            Err(e) => {
                sink.reject(line_reject(
                    source,
                    number,
                    e.code(),
                    e.reason.to_string(),
                    bytes,
                ))?;
                return Ok(LineOutcome::Rejected);
            }
        };
        let at = LineRef {
            source,
            line: number,
            raw: bytes,
        };
        match mta_of(parsed.program) {
            Some(Mta::Postfix) => self.postfix.feed(&parsed, at, sink)?,
            Some(Mta::Sendmail) => self.sendmail.feed(&parsed, at, sink)?,
            Some(Mta::Exim) => self.exim.feed(&parsed, at, sink)?,
            Some(Mta::Exchange) => {
                use crate::msgtrk::LineOutcome as Event;
                let outcome =
                    self.exchange
                        .line(parsed.message.as_bytes(), source, number, sink)?;
                return Ok(match outcome {
                    Event::Event | Event::Header => LineOutcome::Used,
                    Event::Shadow | Event::Ignored => LineOutcome::Ignored,
                    Event::Rejected => LineOutcome::Rejected,
                });
            }
            None => return Ok(LineOutcome::Ignored),
        }
        Ok(LineOutcome::Used)
    }

    /// Emit every message still open (end of input, or shutdown).
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.postfix.finish(sink)?;
        self.sendmail.finish(sink)?;
        self.exim.finish(sink)?;
        self.exchange.finish(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(reference: &str, tz: chrono_tz::Tz) -> DecodeOptions {
        DecodeOptions {
            timezone: tz,
            reference_time: reference.parse().unwrap(),
            ..DecodeOptions::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn rfc3164_header() {
        let mut p = SyslogParser::new(&opts("2024-08-01T00:00:00Z", chrono_tz::UTC));
        let l = p
            .parse("Jul  4 07:13:48 mx1 postfix/smtpd[1234]: 4F9D1: client=a.example[192.0.2.1]")
            .unwrap();
        assert_eq!(l.time, utc("2024-07-04T07:13:48Z"));
        assert_eq!(l.host, "mx1");
        assert_eq!(l.program, "postfix/smtpd");
        assert_eq!(l.pid, Some(1234));
        assert_eq!(l.message, "4F9D1: client=a.example[192.0.2.1]");
    }

    #[test]
    fn rfc3164_variants_pri_unpadded_day_no_pid_no_tag() {
        let mut p = SyslogParser::new(&opts("2024-08-10T00:00:00Z", chrono_tz::UTC));
        let l = p
            .parse("<22>Aug 3 15:30:49 ksusha postfix/submission/smtpd[17041]: hi")
            .unwrap();
        assert_eq!(l.time, utc("2024-08-03T15:30:49Z"));
        assert_eq!(l.program, "postfix/submission/smtpd");
        let l = p.parse("Jun 04 22:24:28 machine sm-mta: x").unwrap();
        assert_eq!((l.program, l.pid, l.message), ("sm-mta", None, "x"));
        let l = p
            .parse("Jun  4 22:24:28 machine last message repeated 3 times")
            .unwrap();
        assert_eq!(
            (l.host, l.program, l.message),
            ("machine", "", "last message repeated 3 times")
        );
    }

    #[test]
    fn rfc3339_header_high_precision() {
        let mut p = SyslogParser::new(&opts("2020-01-01T00:00:00Z", chrono_tz::Asia::Tokyo));
        let l = p
            .parse("2024-08-26T01:33:38.572449+02:00 machine postfix/submission/smtpd[60203]: NOQUEUE: x")
            .unwrap();
        assert_eq!(l.time, utc("2024-08-25T23:33:38.572449Z"));
        assert_eq!(l.program, "postfix/submission/smtpd");
        assert_eq!(l.pid, Some(60203));
        assert_eq!(l.message, "NOQUEUE: x");
        // Zone-less RFC 3339 stamps are local time.
        let l = p.parse("2024-08-26T09:00:00 h prog: m").unwrap();
        assert_eq!(l.time, utc("2024-08-26T00:00:00Z"));
    }

    #[test]
    fn rfc5424_header_with_sd_nil_values_and_bom() {
        let mut p = SyslogParser::new(&opts("2020-01-01T00:00:00Z", chrono_tz::UTC));
        let l = p
            .parse("<165>1 2003-10-11T22:14:15.003Z mx1 postfix/qmgr 4711 - [ex@1 a=\"x]\\\"y\"][b@2] \u{feff}ABC: removed")
            .unwrap();
        assert_eq!(l.time, utc("2003-10-11T22:14:15.003Z"));
        assert_eq!(
            (l.host, l.program, l.pid),
            ("mx1", "postfix/qmgr", Some(4711))
        );
        assert_eq!(l.message, "ABC: removed");
        let l = p
            .parse("<34>1 2003-10-11T22:14:15.003-07:00 - - - - - msg")
            .unwrap();
        assert_eq!(l.time, utc("2003-10-12T05:14:15.003Z"));
        assert_eq!((l.host, l.program, l.pid, l.message), ("", "", None, "msg"));
        assert!(p.parse("<34>1 - host app - - - msg").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut p = SyslogParser::new(&DecodeOptions::default());
        for bad in [
            "",
            "hello world",
            "<999999>x",
            "Foo 12 12:00:00 h p: m",
            "Jul 44 12:00:00 h",
            "Jul  4 25:00:00 h p: m",
            "2024-13-01T00:00:00Z h p: m",
            "<1",
            "Jul  4 07:13:48",
        ] {
            let e = p.parse(bad).unwrap_err();
            assert_eq!(e.code(), "syslog.header", "{bad}");
        }
    }

    #[test]
    fn year_is_not_after_the_reference_time() {
        // Reference in early January: a December stamp belongs to last year.
        let mut p = SyslogParser::new(&opts("2025-01-03T00:00:00Z", chrono_tz::UTC));
        assert_eq!(
            p.parse("Dec 30 10:00:00 h p: m").unwrap().time,
            utc("2024-12-30T10:00:00Z")
        );
        // One day of slack: a stamp a few hours after the reference stays in this year.
        let mut p = SyslogParser::new(&opts("2025-03-10T00:00:00Z", chrono_tz::UTC));
        assert_eq!(
            p.parse("Mar 10 20:00:00 h p: m").unwrap().time,
            utc("2025-03-10T20:00:00Z")
        );
        // Beyond the slack it is last year.
        let mut p = SyslogParser::new(&opts("2025-03-10T00:00:00Z", chrono_tz::UTC));
        assert_eq!(
            p.parse("Mar 12 20:00:00 h p: m").unwrap().time,
            utc("2024-03-12T20:00:00Z")
        );
        // 29 February goes back to the last leap year.
        let mut p = SyslogParser::new(&opts("2025-03-10T00:00:00Z", chrono_tz::UTC));
        assert_eq!(
            p.parse("Feb 29 01:00:00 h p: m").unwrap().time,
            utc("2024-02-29T01:00:00Z")
        );
    }

    #[test]
    fn forced_year_wins() {
        let mut o = opts("2025-01-03T00:00:00Z", chrono_tz::UTC);
        o.year = Some(2019);
        let mut p = SyslogParser::new(&o);
        assert_eq!(
            p.parse("Dec 30 10:00:00 h p: m").unwrap().time,
            utc("2019-12-30T10:00:00Z")
        );
        assert_eq!(
            p.parse("Jan  1 00:00:01 h p: m").unwrap().time,
            utc("2020-01-01T00:00:01Z")
        );
    }

    #[test]
    fn a_quiet_log_jumping_forward_months_stays_in_its_year() {
        let opts = DecodeOptions {
            timezone: chrono_tz::UTC,
            reference_time: Utc.with_ymd_and_hms(2026, 8, 10, 0, 0, 0).unwrap(),
            ..DecodeOptions::default()
        };
        let mut p = SyslogParser::new(&opts);
        let jan = p.parse("Jan  5 10:00:00 mx1 postfix/qmgr[1]: x").unwrap();
        let aug = p.parse("Aug  5 10:00:00 mx1 postfix/qmgr[1]: y").unwrap();
        assert_eq!(jan.time.year(), 2026);
        assert_eq!(aug.time.year(), 2026);
    }

    #[test]
    fn new_year_rollover_inside_a_file() {
        let mut p = SyslogParser::new(&opts("2025-01-02T12:00:00Z", chrono_tz::UTC));
        let times: Vec<_> = [
            "Dec 31 23:59:58 h p: m",
            "Dec 31 23:59:59 h p: m",
            "Jan  1 00:00:00 h p: m",
            // A late line from the old year stays in the old year and does
            // not move the run.
            "Dec 31 23:59:59 h p: m",
            "Jan  1 00:00:02 h p: m",
            "Jan  2 08:00:00 h p: m",
        ]
        .iter()
        .map(|l| p.parse(l).unwrap().time)
        .collect();
        assert_eq!(times[0], utc("2024-12-31T23:59:58Z"));
        assert_eq!(times[1], utc("2024-12-31T23:59:59Z"));
        assert_eq!(times[2], utc("2025-01-01T00:00:00Z"));
        assert_eq!(times[4], utc("2025-01-01T00:00:02Z"));
        assert_eq!(times[5], utc("2025-01-02T08:00:00Z"));
        assert_eq!(times[3], utc("2024-12-31T23:59:59Z"));
    }

    #[test]
    fn one_month_step_back_is_not_a_new_year() {
        let mut p = SyslogParser::new(&opts("2025-03-02T00:00:00Z", chrono_tz::UTC));
        assert_eq!(
            p.parse("Mar  1 00:00:01 h p: m").unwrap().time,
            utc("2025-03-01T00:00:01Z")
        );
        assert_eq!(
            p.parse("Feb 28 23:59:59 h p: m").unwrap().time,
            utc("2025-02-28T23:59:59Z")
        );
        assert_eq!(
            p.parse("Mar  1 00:00:02 h p: m").unwrap().time,
            utc("2025-03-01T00:00:02Z")
        );
    }

    #[test]
    fn zone_less_stamps_use_the_configured_zone_with_dst() {
        let mut p = SyslogParser::new(&opts("2024-12-01T00:00:00Z", chrono_tz::Asia::Tokyo));
        assert_eq!(
            p.parse("Jul  4 09:00:00 h p: m").unwrap().time,
            utc("2024-07-04T00:00:00Z")
        );
        let mut p = SyslogParser::new(&opts("2024-12-01T00:00:00Z", chrono_tz::Europe::Berlin));
        assert_eq!(
            p.parse("Jul  4 09:00:00 h p: m").unwrap().time,
            utc("2024-07-04T07:00:00Z")
        );
        assert_eq!(
            p.parse("Nov  4 09:00:00 h p: m").unwrap().time,
            utc("2024-11-04T08:00:00Z")
        );
    }

    #[test]
    fn program_routing() {
        assert_eq!(mta_of("postfix/submission/smtpd"), Some(Mta::Postfix));
        assert_eq!(mta_of("postfix-incoming/smtpd"), Some(Mta::Postfix));
        assert_eq!(mta_of("sm-mta"), Some(Mta::Sendmail));
        assert_eq!(mta_of("sm-msp-queue"), Some(Mta::Sendmail));
        assert_eq!(mta_of("exim4"), Some(Mta::Exim));
        assert_eq!(mta_of("spamd"), None);
        assert_eq!(mta_of("sendmail-foo"), None);
    }
}
