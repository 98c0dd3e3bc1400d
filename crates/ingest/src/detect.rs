//! Telling an input's format from its first bytes.
//!
//! Administrators point `mailtrail import` at whatever they have — a rotated
//! `mail.log.1`, an `.mbox` export, a Maildir, a folder of `.eml` files — and
//! expect it to work without naming the format. File names lie (`messages`,
//! `maillog-20261127`), so detection reads the head of the content: the first
//! non-empty line decides, because every format we read announces itself
//! there (`From ` for mbox, a header field for a message, a date and an id for
//! Exim's main log, a syslog stamp otherwise). When nothing fits, the caller
//! asks for `--format` instead of guessing.
//!
//! Exchange message tracking logs are tried first, and conservatively (see
//! [`crate::msgtrk::looks_like_msgtrk`]): their header block says
//! `#Log-type: Message Tracking Log` (other Exchange logs share the
//! `#Software` line), and a header-less line must split into one of the
//! documented field counts with a UTC stamp and an upper-case event — an
//! RFC 3339 stamp alone would otherwise pass for syslog.

use crate::Format;

/// How many bytes of the head [`detect`] needs at most.
pub const HEAD_BYTES: usize = 8192;

/// The format of content starting with `head`, if it can be told.
pub fn detect(head: &[u8]) -> Option<Format> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    if crate::msgtrk::looks_like_msgtrk(head) {
        return Some(Format::ExchangeMsgtrk);
    }
    // Gmail JSON must name event_info and message_info (or be a Reports API
    // gmail response, or positional rows holding `gmail`); the Email Log
    // Search CSV needs its header (see crate::gmail).
    if crate::gmail::looks_like_gmail_json(head) {
        return Some(Format::GmailJson);
    }
    if crate::gmail::looks_like_email_log_search(head) {
        return Some(Format::GmailLogSearch);
    }
    // Microsoft 365 exports: a CSV header or the first JSON object's keys
    // must carry the documented names (see crate::m365, crate::o365audit).
    if crate::m365::looks_like_trace(head) {
        return Some(Format::M365Trace);
    }
    if crate::o365audit::looks_like_audit(head) {
        return Some(Format::O365Audit);
    }
    if first.starts_with(b"From ") {
        return Some(Format::Mbox);
    }
    if is_header_field(first) {
        return Some(Format::Eml);
    }
    if is_exim_mainlog_line(first) {
        return Some(Format::EximMainlog);
    }
    if is_syslog_line(first) {
        return Some(Format::Syslog);
    }
    None
}

/// `Name: value` with a field name of printable ASCII and no spaces, as RFC 5322 allows.
fn is_header_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic() && b != b':') {
        return false;
    }
    const KNOWN: &[&str] = &[
        "received",
        "return-path",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "delivered-to",
        "x-",
        "dkim-signature",
        "arc-",
        "authentication-results",
        "content-type",
        "reply-to",
        "sender",
        "cc",
        "x-ms-journal-report",
    ];
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    KNOWN
        .iter()
        .any(|k| lower == *k || (k.ends_with('-') && lower.starts_with(k)))
}

/// `YYYY-MM-DD HH:MM:SS` followed by something: Exim's own log.
fn is_exim_mainlog_line(line: &[u8]) -> bool {
    let shape = b"dddd-dd-dd dd:dd:dd";
    line.len() > shape.len()
        && line.iter().zip(shape.iter()).all(|(&c, &s)| {
            if s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

/// An RFC 3164 stamp (`Jan  2 03:04:05`), an RFC 3339 stamp, or an RFC 5424 `<PRI>1 ` start.
fn is_syslog_line(line: &[u8]) -> bool {
    let line = match line.strip_prefix(b"<") {
        Some(rest) => match rest.iter().position(|&b| b == b'>') {
            Some(end) if end <= 3 && rest[..end].iter().all(u8::is_ascii_digit) => &rest[end + 1..],
            _ => return false,
        },
        None => line,
    };
    const MONTHS: [&[u8]; 12] = [
        b"Jan ", b"Feb ", b"Mar ", b"Apr ", b"May ", b"Jun ", b"Jul ", b"Aug ", b"Sep ", b"Oct ",
        b"Nov ", b"Dec ",
    ];
    if MONTHS.iter().any(|m| line.starts_with(m)) {
        return true;
    }
    let line = line.strip_prefix(b"1 ").unwrap_or(line);
    let shape = b"dddd-dd-ddTdd:dd:dd";
    line.len() > shape.len()
        && line.iter().zip(shape.iter()).all(|(&c, &s)| {
            if s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_formats_apart() {
        assert_eq!(
            detect(b"Nov 27 09:00:01 mx1 postfix/smtpd[1]: connect from x[192.0.2.1]\n"),
            Some(Format::Syslog)
        );
        assert_eq!(
            detect(b"2026-11-27T09:00:01.123456+09:00 mx1 postfix/qmgr[2]: removed\n"),
            Some(Format::Syslog)
        );
        assert_eq!(
            detect(b"<22>1 2026-11-27T00:00:01Z mx1 postfix/smtp 3 - - x\n"),
            Some(Format::Syslog)
        );
        assert_eq!(
            detect(b"2026-11-27 09:00:01 1rAbCd-000000005Vv-0aBc <= a@b.c\n"),
            Some(Format::EximMainlog)
        );
        assert_eq!(
            detect(b"From MAILER-DAEMON Fri Nov 27 09:00:00 2026\nFrom: a\n"),
            Some(Format::Mbox)
        );
        assert_eq!(
            detect(b"\r\nReturn-Path: <a@b>\r\nReceived: from x\r\n"),
            Some(Format::Eml)
        );
        assert_eq!(detect(b"X-Mailer: y\n"), Some(Format::Eml));
        assert_eq!(
            detect(b"\xEF\xBB\xBF#Software: Microsoft Exchange Server\r\n#Version: 15.00.1104.000\r\n#Log-type: Message Tracking Log\r\n"),
            Some(Format::ExchangeMsgtrk)
        );
        assert_eq!(
            detect(
                b"#Software: Microsoft Exchange Server\r\n#Log-type: SMTP Receive Protocol Log\r\n"
            ),
            None
        );
        assert_eq!(
            detect(b"2024-01-25T15:16:09.949Z,10.1.1.1,fe,10.1.1.2,mbx,ctx,conn,SMTP,RECEIVE,709,<a@b>,1e6e,u@x,,7229,1,,,subj,s@x,s@x,,Incoming,,,,,Email,0550,15.02.0330.005\r\n"),
            Some(Format::ExchangeMsgtrk)
        );
        assert_eq!(detect(b"\x00\x01\x02garbage"), None);
        assert_eq!(detect(b""), None);
    }
}
