//! The filter form beside the search box, as edits of the query text.
//!
//! Why it works on the text: the query stays the single source of truth —
//! what is searched is exactly what the box shows, what the audit log
//! records and what a bookmarked URL says. The form is only a way to write
//! the common conditions without knowing the language: its fields are read
//! back from the query (so they show what the query says), and a submitted
//! field that differs from what the query said is written into it
//! (`after:` / `before:` for the period, `direction:`, `system:`, `status:`,
//! `has:attachment`), replacing the condition it had. Fields left as they
//! were leave the query as the user typed it, so editing the box and
//! pressing Enter never brings back a condition just deleted there.
//!
//! Only *plain* top-level conditions belong to the form: `direction:inbound`
//! is one; `-direction:inbound`, `direction:(inbound OR relayed)` and a term
//! joined to its neighbour by `OR`/`AND`/`NOT` are not, and are never
//! touched (removing one half of `a OR b` would change what the other half
//! means). The period is written as dates in the console's zone, and the
//! "to" date is inclusive, as people mean it: 11/20 – 11/20 is that one day,
//! `after:2026-11-20 before:2026-11-21`.

use chrono::{Days, NaiveDate};
use mailtrail_model::{DeliveryStatus, Direction};

/// What the form shows and submits. Empty strings mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterState {
    /// First day, `YYYY-MM-DD` (inclusive).
    pub since: String,
    /// Last day, `YYYY-MM-DD` (inclusive).
    pub until: String,
    pub direction: String,
    pub system: String,
    pub status: String,
    pub has_attachment: bool,
}

impl FilterState {
    /// Whether any condition is set (the form opens itself then).
    pub fn any(&self) -> bool {
        *self != FilterState::default()
    }
}

/// A condition the form owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Since,
    Until,
    Direction,
    System,
    Status,
    Has,
}

/// One top-level chunk of the query text.
#[derive(Debug, Clone)]
struct Chunk {
    text: String,
    /// Set when the chunk is a plain condition the form owns.
    owned: Option<(Kind, String)>,
}

/// Split at top-level white space, keeping quoted phrases (with `\"`
/// escapes) and parenthesised groups whole.
fn split(q: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let (mut in_quote, mut escaped, mut depth) = (false, false, 0usize);
    for c in q.chars() {
        if in_quote {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                current.push(c);
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !current.is_empty() {
                    chunks.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// `name:value` → (lower-case name, value unquoted) when the value is one
/// plain word or one quoted phrase.
fn operator(chunk: &str) -> Option<(String, String)> {
    let colon = chunk.find([':', '：'])?;
    let name = &chunk[..colon];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let sep_len = chunk[colon..].chars().next().map_or(1, char::len_utf8);
    let value = &chunk[colon + sep_len..];
    let value = if let Some(inner) = value.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return None,
                c => out.push(c),
            }
        }
        out
    } else {
        if value.is_empty() || value.contains(['(', ')', '"']) {
            return None;
        }
        value.to_string()
    };
    Some((name.to_ascii_lowercase(), value))
}

fn parse_day(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(value.trim(), "%Y/%m/%d"))
        .ok()
}

fn classify(chunk: &str) -> Option<(Kind, String)> {
    let (name, value) = operator(chunk)?;
    match name.as_str() {
        "after" | "newer" => parse_day(&value).map(|d| (Kind::Since, d.to_string())),
        "before" | "older" => parse_day(&value)
            .and_then(|d| d.checked_sub_days(Days::new(1)))
            .map(|d| (Kind::Until, d.to_string())),
        "direction" => value
            .parse::<Direction>()
            .ok()
            .map(|d| (Kind::Direction, d.as_str().to_string())),
        "status" => value
            .parse::<DeliveryStatus>()
            .ok()
            .map(|s| (Kind::Status, s.as_str().to_string())),
        "system" => Some((Kind::System, value.trim().to_lowercase())),
        "has"
            if value.eq_ignore_ascii_case("attachment")
                || value.eq_ignore_ascii_case("attachments") =>
        {
            Some((Kind::Has, String::new()))
        }
        _ => None,
    }
}

fn chunks(q: &str) -> Vec<Chunk> {
    let texts = split(q);
    let joiner =
        |s: Option<&String>, words: &[&str]| s.is_some_and(|s| words.contains(&s.as_str()));
    (0..texts.len())
        .map(|i| {
            let text = texts[i].clone();
            let before = i.checked_sub(1).and_then(|j| texts.get(j));
            let after = texts.get(i + 1);
            let joined = joiner(before, &["OR", "AND", "NOT"]) || joiner(after, &["OR", "AND"]);
            let owned = if joined { None } else { classify(&text) };
            Chunk { text, owned }
        })
        .collect()
}

/// What the form shows for a query: its plain conditions (the first of
/// each kind).
pub fn state_of(q: &str) -> FilterState {
    let mut state = FilterState::default();
    let mut seen: Vec<Kind> = Vec::new();
    for chunk in chunks(q) {
        let Some((kind, value)) = chunk.owned else {
            continue;
        };
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        match kind {
            Kind::Since => state.since = value,
            Kind::Until => state.until = value,
            Kind::Direction => state.direction = value,
            Kind::System => state.system = value,
            Kind::Status => state.status = value,
            Kind::Has => state.has_attachment = true,
        }
    }
    state
}

/// A value as the query language reads it back as one word.
fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '\\'))
    {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Why a submitted field cannot be written into the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("invalid date \"{0}\": expected YYYY-MM-DD")]
    Date(String),
    #[error("unknown direction \"{0}\"")]
    Direction(String),
    #[error("unknown status \"{0}\"")]
    Status(String),
}

/// The condition text for one field's value, validated; `None` for "any".
fn condition(kind: Kind, form: &FilterState) -> Result<Option<String>, FilterError> {
    let value = match kind {
        Kind::Since => form.since.trim(),
        Kind::Until => form.until.trim(),
        Kind::Direction => form.direction.trim(),
        Kind::System => form.system.trim(),
        Kind::Status => form.status.trim(),
        Kind::Has => {
            return Ok(form.has_attachment.then(|| "has:attachment".to_string()));
        }
    };
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Since => {
            let day = parse_day(value).ok_or_else(|| FilterError::Date(value.into()))?;
            format!("after:{day}")
        }
        Kind::Until => {
            let day = parse_day(value)
                .and_then(|d| d.checked_add_days(Days::new(1)))
                .ok_or_else(|| FilterError::Date(value.into()))?;
            format!("before:{day}")
        }
        Kind::Direction => {
            let d = value
                .parse::<Direction>()
                .map_err(|_| FilterError::Direction(value.into()))?;
            format!("direction:{d}")
        }
        Kind::Status => {
            let s = value
                .parse::<DeliveryStatus>()
                .map_err(|_| FilterError::Status(value.into()))?;
            format!("status:{s}")
        }
        Kind::System => format!("system:{}", quote(&value.to_lowercase())),
        Kind::Has => return Ok(None),
    }))
}

fn field_differs(kind: Kind, a: &FilterState, b: &FilterState) -> bool {
    match kind {
        Kind::Since => a.since.trim() != b.since.trim(),
        Kind::Until => a.until.trim() != b.until.trim(),
        Kind::Direction => a.direction.trim() != b.direction.trim(),
        Kind::System => a.system.trim().to_lowercase() != b.system.trim().to_lowercase(),
        Kind::Status => a.status.trim() != b.status.trim(),
        Kind::Has => a.has_attachment != b.has_attachment,
    }
}

/// The query after a form submission: `q` as submitted, `shown` the query
/// the form was filled from (its fields' previous values), `form` the
/// submitted fields. Each field that changed replaces that kind's plain
/// conditions in `q`; the others leave `q` alone.
pub fn apply(q: &str, shown: &str, form: &FilterState) -> Result<String, FilterError> {
    let before = state_of(shown);
    let mut parts = chunks(q);
    for kind in [
        Kind::Since,
        Kind::Until,
        Kind::Direction,
        Kind::System,
        Kind::Status,
        Kind::Has,
    ] {
        if !field_differs(kind, &before, form) {
            continue;
        }
        let new = condition(kind, form)?;
        parts.retain(|c| c.owned.as_ref().is_none_or(|(k, _)| *k != kind));
        if let Some(text) = new {
            parts.push(Chunk {
                owned: classify(&text),
                text,
            });
        }
    }
    Ok(parts
        .into_iter()
        .map(|c| c.text)
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(f: impl FnOnce(&mut FilterState)) -> FilterState {
        let mut s = FilterState::default();
        f(&mut s);
        s
    }

    #[test]
    fn the_form_reads_the_plain_conditions_of_the_query() {
        let s = state_of(
            "見積 after:2026-11-01 before:2026/11/21 direction:Outbound system:postfix@mx1 status:sent has:attachment",
        );
        assert_eq!(s.since, "2026-11-01");
        assert_eq!(
            s.until, "2026-11-20",
            "before: is exclusive, the form's end inclusive"
        );
        assert_eq!(s.direction, "outbound");
        assert_eq!(s.system, "postfix@mx1");
        assert_eq!(s.status, "delivered", "sent means delivered");
        assert!(s.has_attachment);
        // Negated, grouped and OR-joined conditions are not the form's.
        let s = state_of("-direction:inbound status:(bounced OR deferred) a OR has:attachment");
        assert_eq!(s, FilterState::default());
        assert_eq!(
            state_of("NOT system:m365 x AND direction:internal"),
            FilterState::default()
        );
        assert_eq!(
            state_of("direction：inbound").direction,
            "inbound",
            "full-width colon"
        );
    }

    #[test]
    fn a_changed_field_replaces_its_condition_and_others_are_left_alone() {
        let q = "from:taro@example.co.jp direction:inbound \"社外秘 資料\"";
        let f = form(|s| {
            s.direction = "outbound".into();
            s.since = "2026-11-19".into();
            s.until = "2026-11-20".into();
            s.has_attachment = true;
        });
        assert_eq!(
            apply(q, q, &f).unwrap(),
            "from:taro@example.co.jp \"社外秘 資料\" after:2026-11-19 before:2026-11-21 direction:outbound has:attachment"
        );
        // Setting a field back to "any" removes the condition.
        let q = "x direction:inbound has:attachment";
        let f = form(|s| s.has_attachment = true);
        assert_eq!(apply(q, q, &f).unwrap(), "x has:attachment");
        // A condition deleted in the box is not brought back by the form
        // still showing it.
        let shown = "x direction:inbound";
        let f = form(|s| s.direction = "inbound".into());
        assert_eq!(apply("x", shown, &f).unwrap(), "x");
        // Conditions the form does not own survive every change.
        let q = "a OR direction:inbound -status:bounced";
        let f = form(|s| {
            s.direction = "internal".into();
            s.status = "deferred".into();
        });
        assert_eq!(
            apply(q, q, &f).unwrap(),
            "a OR direction:inbound -status:bounced direction:internal status:deferred"
        );
        let f = form(|s| s.system = "Exchange Online".into());
        assert_eq!(apply("", "", &f).unwrap(), "system:\"exchange online\"");
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            apply("", "", &form(|s| s.since = "2026-13-01".into())),
            Err(FilterError::Date("2026-13-01".into()))
        );
        assert!(apply("", "", &form(|s| s.direction = "sideways".into())).is_err());
        assert!(apply("", "", &form(|s| s.status = "lost".into())).is_err());
    }
}
