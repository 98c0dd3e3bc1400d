//! One-click pivots from a message: the searches an investigator runs next
//! ("who else got this?", "what else did this person send that week?").
//!
//! Why they are queries: every pivot but one is a search in the ordinary
//! query language, linked as `/search?q=…`, so the investigator lands on a
//! normal result page whose box shows what was searched — to read, narrow
//! and export like any other search, and recorded in the audit log as that
//! query. The exception is "same attachment": a content hash is not text
//! the language can search, so it is its own route (`/search?attachment=`),
//! answered by [`mailtrail_store::Store::attachment_messages`].
//!
//! - **Same sender**: `from:ADDRESS`.
//! - **Same thread**: `subject:"…"` with the subject's reply and forward
//!   prefixes removed (`Re:`, `Fwd:`, `RE：`, `転送:`, `返信：`, `[ML 12]`
//!   stays), so the original and every reply and forward match.
//! - **Other party's domain**: every external domain among sender and
//!   recipients, each as `(from:@d OR to:@d OR cc:@d OR bcc:@d)`.
//! - **This person's week**: for the sender and each recipient, what they
//!   sent (`from:`) and received (`to:`/`cc:`/`bcc:`) in the 7 days either
//!   side of the message, as dates in the console's zone.

use chrono::{DateTime, Days, Utc};
use chrono_tz::Tz;
use mailtrail_model::{domain_of, OrgDomains, RecipientKind};
use mailtrail_store::StoredMessage;

/// Days either side of a message that "this person's week" covers.
pub const PERIOD_DAYS: u64 = 7;
/// The most people listed (a mail to 500 recipients does not get 1,000 links).
pub const MAX_PEOPLE: usize = 30;
/// The longest subject phrase searched for (characters).
const MAX_SUBJECT_CHARS: usize = 200;

/// Reply and forward markers, compared case-insensitively after full-width
/// letters are folded to ASCII; each is followed by `:` or `：`.
const PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "rv", "antw", "ref", "ynt", "転送", "返信",
    "回复", "转发", "답장", "전달",
];

/// Full-width ASCII (ＲＥ, ｆｗｄ) as ASCII, lower case.
fn fold(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_ascii_lowercase()
}

/// Length in bytes of one reply/forward prefix at the start of `s`
/// (marker, optional `[2]` or `^2` count, colon, following spaces).
fn prefix_len(s: &str) -> Option<usize> {
    let folded: Vec<(usize, char)> = s.char_indices().map(|(i, c)| (i, fold(c))).collect();
    for marker in PREFIXES {
        let m: Vec<char> = marker.chars().collect();
        if folded.len() < m.len()
            || folded[..m.len()]
                .iter()
                .map(|(_, c)| *c)
                .ne(m.iter().copied())
        {
            continue;
        }
        let mut i = m.len();
        // `Re[2]:`, `Re^2:`, `Re(2):`
        if let Some((_, open)) = folded.get(i) {
            if matches!(open, '[' | '(' | '^') {
                let mut j = i + 1;
                while folded.get(j).is_some_and(|(_, c)| c.is_ascii_digit()) {
                    j += 1;
                }
                if j > i + 1 {
                    if *open == '^' {
                        i = j;
                    } else if folded.get(j).is_some_and(|(_, c)| matches!(c, ']' | ')')) {
                        i = j + 1;
                    }
                }
            }
        }
        while folded.get(i).is_some_and(|(_, c)| *c == ' ') {
            i += 1;
        }
        if folded.get(i).is_some_and(|(_, c)| matches!(c, ':' | '：')) {
            let mut end = i + 1;
            while folded.get(end).is_some_and(|(_, c)| c.is_whitespace()) {
                end += 1;
            }
            return Some(folded.get(end).map_or(s.len(), |(b, _)| *b));
        }
    }
    None
}

/// A subject without its reply and forward prefixes, however many.
pub fn thread_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    while let Some(n) = prefix_len(rest) {
        rest = rest[n..].trim_start();
    }
    rest.trim().to_string()
}

/// A value quoted for the query language.
pub fn phrase(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `subject:"…"` for the thread of `subject`, or `None` when nothing of it
/// is searchable.
pub fn thread_query(subject: &str) -> Option<String> {
    let base = thread_subject(subject);
    let mut cut: String = base.chars().take(MAX_SUBJECT_CHARS).collect();
    if cut.len() < base.len() {
        // A Latin word cut in half would no longer match itself.
        if let Some(space) = cut.rfind(char::is_whitespace) {
            cut.truncate(space);
        }
    }
    mailtrail_store::tokenize::match_expression(&cut)?;
    Some(format!("subject:{}", phrase(cut.trim())))
}

/// The address a query can name: no quotes or spaces needed.
fn address_term(op: &str, address: &str) -> String {
    if address
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '\\'))
    {
        format!("{op}:{}", phrase(address))
    } else {
        format!("{op}:{address}")
    }
}

pub fn sender_query(address: &str) -> String {
    address_term("from", address)
}

pub fn domain_query(domain: &str) -> String {
    let d = format!("@{domain}");
    format!(
        "({} OR {} OR {} OR {})",
        address_term("from", &d),
        address_term("to", &d),
        address_term("cc", &d),
        address_term("bcc", &d)
    )
}

/// The days `PERIOD_DAYS` either side of `t`, in `tz`, as query conditions
/// (`before:` the day after the last, so the last day is included) and as
/// the first and last day for display.
pub fn period(t: DateTime<Utc>, tz: Tz) -> Option<(String, chrono::NaiveDate, chrono::NaiveDate)> {
    let day = t.with_timezone(&tz).date_naive();
    let first = day.checked_sub_days(Days::new(PERIOD_DAYS))?;
    let last = day.checked_add_days(Days::new(PERIOD_DAYS))?;
    let end = last.checked_add_days(Days::new(1))?;
    Some((format!("after:{first} before:{end}"), first, last))
}

pub fn sent_query(address: &str, period: &str) -> String {
    format!("{} {period}", address_term("from", address))
}

pub fn received_query(address: &str, period: &str) -> String {
    format!(
        "({} OR {} OR {}) {period}",
        address_term("to", address),
        address_term("cc", address),
        address_term("bcc", address)
    )
}

/// A person on the message, with the part they played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub address: String,
    /// Catalogue key of the role: `message-from`, `message-to`, …
    pub role: &'static str,
}

/// The sender, then each recipient once (To before Cc before Bcc before
/// envelope-only), at most [`MAX_PEOPLE`].
pub fn people(m: &StoredMessage) -> Vec<Person> {
    let mut out: Vec<Person> = Vec::new();
    let sender = m
        .from
        .as_ref()
        .map(|f| f.address.clone())
        .or_else(|| m.envelope_from.clone())
        .filter(|a| !a.is_empty());
    if let Some(address) = sender {
        out.push(Person {
            address,
            role: "message-from",
        });
    }
    for (kind, role) in [
        (RecipientKind::To, "message-to"),
        (RecipientKind::Cc, "message-cc"),
        (RecipientKind::Bcc, "message-bcc"),
        (RecipientKind::Envelope, "message-envelope-to"),
    ] {
        for r in m.recipients.iter().filter(|r| r.kind == kind) {
            if out.len() >= MAX_PEOPLE {
                return out;
            }
            if !r.address.is_empty() && !out.iter().any(|p| p.address == r.address) {
                out.push(Person {
                    address: r.address.clone(),
                    role,
                });
            }
        }
    }
    out
}

/// The external domains on the message (the other parties), sender's first.
pub fn external_domains(m: &StoredMessage, org: &OrgDomains) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if org.is_empty() {
        return out;
    }
    for person in people(m) {
        if org.is_internal(&person.address) {
            continue;
        }
        if let Some(domain) = domain_of(&person.address) {
            if !out.iter().any(|d| d == domain) {
                out.push(domain.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mailtrail_store::query::{parse, QueryContext};

    #[test]
    fn reply_and_forward_prefixes_go_however_they_are_written() {
        for (subject, want) in [
            ("Re: 見積書", "見積書"),
            ("RE: Fwd: re:  見積書", "見積書"),
            ("RE：見積書", "見積書"),
            ("ＲＥ：見積書", "見積書"),
            ("転送: 見積書", "見積書"),
            ("返信：Re[2]: 見積書", "見積書"),
            ("Re^3: quarterly report", "quarterly report"),
            ("AW: WG: Angebot", "Angebot"),
            ("[ML 12] Re: 見積書", "[ML 12] Re: 見積書"),
            ("Reminder: pay", "Reminder: pay"),
            ("Re:", ""),
            ("見積書", "見積書"),
        ] {
            assert_eq!(thread_subject(subject), want, "{subject}");
        }
    }

    #[test]
    fn every_pivot_is_a_query_the_language_reads() {
        let ctx = QueryContext {
            now: Utc::now(),
            timezone: chrono_tz::Asia::Tokyo,
        };
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
        let (p, first, last) = period(t, chrono_tz::Asia::Tokyo).unwrap();
        assert_eq!(p, "after:2026-11-13 before:2026-11-28");
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("2026-11-13".into(), "2026-11-27".into())
        );
        for q in [
            thread_query("Re: \"社外秘\" 見積書 \\ 2026").unwrap(),
            sender_query("taro@example.co.jp"),
            domain_query("partner.example"),
            sent_query("taro@example.co.jp", &p),
            received_query("hanako@partner.example", &p),
        ] {
            parse(&q, &ctx).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        assert_eq!(thread_query("Re: ..."), None, "nothing searchable");
        let long = "word ".repeat(100);
        let q = thread_query(&long).unwrap();
        assert!(q.len() < 220 && q.ends_with("word\""), "{q}");
    }
}
