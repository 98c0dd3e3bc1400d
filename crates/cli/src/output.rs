//! How messages are printed: a terminal table, JSON lines, or CSV.
//!
//! The JSON object is the contract scripts (and the later HTTP API) rely on,
//! so it is built in one place, [`message_json`]. Times are printed in the
//! configured zone with their offset (RFC 3339), so they are both readable and
//! unambiguous. The table is for people: display widths account for
//! full-width (Japanese) characters so columns line up.

use chrono::{DateTime, Utc};
use mailtrail_model::RecipientKind;
use mailtrail_store::StoredMessage;
use serde_json::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

pub use mailtrail_web::json::{addresses, display_time, local_time as local, to_addresses};

pub fn local_short(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y/%m/%d %H:%M").to_string()
}

/// A single-line value from a message, safe for a terminal: control
/// characters (escape sequences, CR/LF that would forge lines) become `�`.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// Multi-line text (a body) safe for a terminal: line breaks and tabs stay;
/// a CR of a CRLF line end (nearly all mail) is a line end too, not a
/// control character; a lone CR (which would let a line overwrite itself)
/// is replaced.
pub fn printable_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The message as `--format json` prints it: the API's shape
/// ([`mailtrail_web::json::MessageJson`]), one contract for both.
pub fn message_json(m: &StoredMessage, tz: chrono_tz::Tz) -> Value {
    serde_json::to_value(mailtrail_web::json::MessageJson::new(m, tz)).unwrap_or(Value::Null)
}

/// The most telling delivery status of a message, for one-line views.
pub fn summary_status(m: &StoredMessage) -> &'static str {
    use mailtrail_model::DeliveryStatus as S;
    let has = |s: S| m.deliveries.iter().any(|d| d.status == s);
    for s in [
        S::Bounced,
        S::Rejected,
        S::Expired,
        S::Failed,
        S::Quarantined,
    ] {
        if has(s) {
            return s.as_str();
        }
    }
    if has(S::Delivered) {
        return S::Delivered.as_str();
    }
    if has(S::Deferred) {
        return S::Deferred.as_str();
    }
    if has(S::Received) {
        return S::Received.as_str();
    }
    "-"
}

fn join_short(list: &[String], max: usize) -> String {
    match list.len() {
        0 => String::new(),
        n if n <= max => list.join(", "),
        n => format!("{} (+{})", list[..max].join(", "), n - max),
    }
}

/// Cut a string to a display width, marking the cut (control characters replaced).
pub fn fit(s: &str, width: usize) -> String {
    let s = &printable(s);
    if s.width() <= width {
        let pad = width - s.width();
        return format!("{s}{}", " ".repeat(pad));
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    w += 1;
    out.push_str(&" ".repeat(width.saturating_sub(w)));
    out
}

pub fn table_header() -> String {
    format!(
        "{} {} {} {} {} {} {}",
        fit("ID", 7),
        fit("DATE", 16),
        fit("DIR", 8),
        fit("FROM", 28),
        fit("TO", 30),
        fit("STATUS", 9),
        "SUBJECT"
    )
}

pub fn table_row(m: &StoredMessage, tz: chrono_tz::Tz) -> String {
    let from = m
        .from
        .as_ref()
        .map(|f| f.address.as_str())
        .or(m.envelope_from.as_deref())
        .unwrap_or("<>");
    let mut subject = m.subject.clone().unwrap_or_default();
    if !m.attachments.is_empty() {
        subject.push_str(&format!(" [📎{}]", m.attachments.len()));
    }
    format!(
        "{} {} {} {} {} {} {}",
        fit(&m.id.to_string(), 7),
        fit(
            &display_time(m)
                .map(|t| local_short(t, tz))
                .unwrap_or_default(),
            16
        ),
        fit(m.direction.as_str(), 8),
        fit(from, 28),
        fit(&join_short(&to_addresses(m), 1), 30),
        fit(summary_status(m), 9),
        printable(&subject)
    )
}

pub const CSV_HEADER: &str =
    "id,date,direction,from,to,cc,bcc,subject,attachments,size,status,systems,message_id";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv_row(m: &StoredMessage, tz: chrono_tz::Tz) -> String {
    let names: Vec<&str> = m
        .attachments
        .iter()
        .filter_map(|a| a.filename.as_deref())
        .collect();
    [
        m.id.to_string(),
        display_time(m).map(|t| local(t, tz)).unwrap_or_default(),
        m.direction.as_str().to_string(),
        m.from
            .as_ref()
            .map(|f| f.address.clone())
            .or(m.envelope_from.clone())
            .unwrap_or_default(),
        to_addresses(m).join(" "),
        addresses(m, RecipientKind::Cc).join(" "),
        addresses(m, RecipientKind::Bcc).join(" "),
        m.subject.clone().unwrap_or_default(),
        names.join(" / "),
        m.size.map(|s| s.to_string()).unwrap_or_default(),
        summary_status(m).to_string(),
        m.systems.join(" "),
        m.message_id.clone().unwrap_or_default(),
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_full_width_characters_double() {
        assert_eq!(fit("社外秘", 8), "社外秘  ");
        assert_eq!(fit("社外秘資料", 6).width(), 6);
        assert_eq!(fit("abc", 2), "a…");
    }

    #[test]
    fn terminal_output_carries_no_control_characters() {
        let subject = "hello\u{1b}[31mRED\r\nfake line";
        assert!(!printable(subject).chars().any(char::is_control));
        assert!(!fit(subject, 40).chars().any(char::is_control));
        assert_eq!(printable_text("a\nb\tc\u{7}"), "a\nb\tc\u{FFFD}");
        // CRLF line ends are line ends; a lone CR is not let through.
        assert_eq!(
            printable_text("佐藤様\r\nお世話に\r\n"),
            "佐藤様\nお世話に\n"
        );
        assert_eq!(printable_text("ok\rFAKE"), "ok\u{FFFD}FAKE");
    }

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("件名"), "件名");
    }
}
