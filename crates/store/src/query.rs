//! The search query language (DESIGN.md §4), parsed to a backend-neutral AST.
//!
//! # Why it is shaped like this
//!
//! Administrators know Gmail's and notmuch's search boxes, so the language is
//! theirs: `from:` `to:` `cc:` `bcc:` `subject:` `filename:` `body:`
//! `has:attachment` `direction:` `status:` `system:` `after:` `before:`
//! `newer_than:` `older_than:` `larger:` `smaller:` (and, from the directory,
//! `employee:` `dept:` `device:`), quoted phrases, `-` (or
//! `NOT`) for negation, `OR`, parentheses and bare words that search
//! everywhere. Every backend compiles the same [`Expr`] to its own SQL, so
//! the parser does everything that does not depend on storage: it resolves
//! dates in the administrator's time zone to UTC instants, relative ages
//! against one `now`, sizes to bytes and closed vocabularies (status,
//! direction) to typed values. Text stays exactly as typed
//! ([`Term::Text`]); the backend tokenises it with
//! [`crate::tokenize::match_expression`], the same tokenizer the index uses.
//!
//! Grammar (Gmail semantics: `OR` binds tighter than the implicit AND, so
//! `a b OR c` is `a AND (b OR c)`; `AND` may be written and means the same as
//! a space; `OR`, `AND`, `NOT` are keywords only in upper case):
//!
//! ```text
//! query    := sequence
//! sequence := (or_expr | "AND")*
//! or_expr  := unary ("OR" unary)*
//! unary    := "-" unary | "NOT" unary | primary
//! primary  := "(" sequence ")" | '"' phrase '"' | operator ":" value | word
//! value    := '"' phrase '"' | "(" sequence ")" | word
//! ```
//!
//! `op:(a OR b)` applies the operator to every bare word or phrase of the
//! group (`status:(bounced OR deferred)`, `-from:(alice bob)`).
//!
//! A word shaped like `name:value` whose name is not an operator is an error
//! naming the known operators (a mistyped `form:alice` silently searching the
//! text "form alice" would mislead an investigation), except when it is
//! clearly text: a time or number (`10:30`, names must be letters), a URL
//! (`https://…`, `mailto:…`), a one-letter drive (`C:\temp`), a reply prefix
//! (`Re:`, `Fwd:`, `AW:`) or a `::` path. Anything can be searched as text by
//! quoting it. `：` (full-width colon, typed with a Japanese IME on) works like
//! `:`; full-width spaces separate terms.
//!
//! Dates (`after:2026-11-01`, `before:2026/11/27`, `after:2026-11-01T09:00`)
//! are local to [`QueryContext::timezone`]; `before:` a date means before the
//! start of that day; RFC 3339 instants (`after:2026-10-31T15:00:00Z`, what
//! [`Display`](fmt::Display) prints) are absolute.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use mailtrail_model::{DeliveryStatus, Direction};

/// A parsed query. `And(vec![])` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term(Term),
}

/// Which text a [`Term::Text`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    /// Bare words and phrases: every text field and every address.
    Any,
    Subject,
    Body,
    Filename,
    From,
    To,
    Cc,
    Bcc,
}

impl TextField {
    /// The operator name (`subject`), or `None` for [`TextField::Any`].
    pub fn operator(self) -> Option<&'static str> {
        match self {
            TextField::Any => None,
            TextField::Subject => Some("subject"),
            TextField::Body => Some("body"),
            TextField::Filename => Some("filename"),
            TextField::From => Some("from"),
            TextField::To => Some("to"),
            TextField::Cc => Some("cc"),
            TextField::Bcc => Some("bcc"),
        }
    }
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Bare words, quoted phrases, `subject:…` etc. `text` is the raw user
    /// text (not normalised); a text without searchable tokens (punctuation
    /// only) constrains nothing.
    Text {
        field: TextField,
        text: String,
    },
    HasAttachment,
    Direction(Direction),
    /// Some delivery of the message has this status.
    Status(DeliveryStatus),
    /// Lower-cased; `postfix` matches `postfix@host` too (the backend decides).
    System(String),
    /// Inclusive lower bound of the message time.
    After(DateTime<Utc>),
    /// Exclusive upper bound of the message time.
    Before(DateTime<Utc>),
    /// Size greater than this many bytes.
    Larger(u64),
    /// Size smaller than this many bytes.
    Smaller(u64),
    /// Sent or received by a person of the directory: the value is an
    /// employee id, one of their addresses, or part of their name (kanji,
    /// kana or romaji; spaces and full/half width ignored). As typed.
    Employee(String),
    /// Sent or received by someone in this department or one below it
    /// (`営業部` matches `本社/営業部` and `本社/営業部/第一課`; `本社/営業部`
    /// is a path from the top). As typed.
    Department(String),
    /// Sent from this device (host name): the client IP the device had at
    /// the message's time, or a system reporting from that host. Lower-cased.
    Device(String),
}

/// What relative and local dates are resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryContext {
    pub now: DateTime<Utc>,
    pub timezone: Tz,
}

/// A query that cannot be parsed: where (a character offset into the input)
/// and why, in words an administrator understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct QueryError {
    pub position: usize,
    pub message: String,
}

/// The operators, as listed in error messages and help texts.
pub const OPERATORS: &[&str] = &[
    "from:",
    "to:",
    "cc:",
    "bcc:",
    "subject:",
    "filename:",
    "body:",
    "has:attachment",
    "direction:",
    "status:",
    "system:",
    "after:",
    "before:",
    "newer_than:",
    "older_than:",
    "larger:",
    "smaller:",
    "employee:",
    "dept:",
    "device:",
];

/// Parse a query. The empty query (or only whitespace) is `Expr::And(vec![])`.
pub fn parse(input: &str, ctx: &QueryContext) -> Result<Expr, QueryError> {
    let mut parser = Parser {
        chars: input.chars().collect(),
        pos: 0,
        ctx,
        default_op: None,
        nesting: 0,
    };
    let items = parser.sequence(None)?;
    Ok(make_and(items))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Text(TextField),
    Has,
    Direction,
    Status,
    System,
    After,
    Before,
    NewerThan,
    OlderThan,
    Larger,
    Smaller,
    Employee,
    Department,
    Device,
}

fn lookup_operator(name: &str) -> Option<Op> {
    Some(match name.to_ascii_lowercase().as_str() {
        "from" => Op::Text(TextField::From),
        "to" => Op::Text(TextField::To),
        "cc" => Op::Text(TextField::Cc),
        "bcc" => Op::Text(TextField::Bcc),
        "subject" => Op::Text(TextField::Subject),
        "filename" => Op::Text(TextField::Filename),
        "body" => Op::Text(TextField::Body),
        "has" => Op::Has,
        "direction" => Op::Direction,
        "status" => Op::Status,
        "system" => Op::System,
        // `newer:` / `older:` are Gmail's aliases of after: / before:.
        "after" | "newer" => Op::After,
        "before" | "older" => Op::Before,
        "newer_than" => Op::NewerThan,
        "older_than" => Op::OlderThan,
        "larger" => Op::Larger,
        "smaller" => Op::Smaller,
        "employee" => Op::Employee,
        "dept" | "department" => Op::Department,
        "device" => Op::Device,
        _ => return None,
    })
}

/// `name:rest` that is text, not a mistyped operator.
fn colon_is_text(name: &str, rest: &[char]) -> bool {
    const REPLY_PREFIXES: &[&str] = &[
        "re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "rv", "antw", "ref", "ynt",
    ];
    const SCHEMES: &[&str] = &[
        "http", "https", "ftp", "ftps", "sftp", "mailto", "file", "tel", "sip", "sips", "cid",
        "mid", "urn", "data", "news", "ldap", "ldaps", "smb", "ssh", "git",
    ];
    let lower = name.to_ascii_lowercase();
    name.chars().count() == 1
        || REPLY_PREFIXES.contains(&lower.as_str())
        || SCHEMES.contains(&lower.as_str())
        || rest.starts_with(&['/', '/'])
        || rest.first() == Some(&':')
}

fn is_colon(c: char) -> bool {
    c == ':' || c == '：'
}

struct Parser<'c> {
    chars: Vec<char>,
    pos: usize,
    ctx: &'c QueryContext,
    /// Inside `op:( … )`: the operator bare words and phrases get, and its name.
    default_op: Option<(Op, String)>,
    /// Terms being parsed inside one another (parentheses, `-`, `NOT`).
    nesting: usize,
}

/// How deeply terms may nest. The parser and everything that walks the tree
/// recurse; a query from the outside must not be able to exhaust the stack.
pub const MAX_NESTING: usize = 64;

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        position,
        message: message.into(),
    })
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Is the upper-case keyword `kw` at the cursor, as a word of its own?
    fn keyword_at(&self, kw: &str) -> bool {
        let mut i = self.pos;
        for k in kw.chars() {
            if self.chars.get(i) != Some(&k) {
                return false;
            }
            i += 1;
        }
        match self.chars.get(i) {
            None => true,
            Some(&c) => c.is_whitespace() || c == '(' || c == ')' || c == '"',
        }
    }

    /// Terms up to the end of input, or to the `)` closing the `(` at `open`.
    fn sequence(&mut self, open: Option<usize>) -> Result<Vec<Expr>, QueryError> {
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                None => {
                    if let Some(open) = open {
                        return err(open, "unbalanced parenthesis: this '(' is never closed");
                    }
                    return Ok(items);
                }
                Some(')') => {
                    if open.is_some() {
                        self.pos += 1;
                        return Ok(items);
                    }
                    return err(
                        self.pos,
                        "unbalanced parenthesis: ')' without a matching '('",
                    );
                }
                _ => {}
            }
            if self.keyword_at("AND") {
                let at = self.pos;
                if items.is_empty() {
                    return err(at, "AND needs a term before it");
                }
                self.pos += 3;
                self.skip_whitespace();
                if self.at_end() || self.peek() == Some(')') || self.keyword_at("AND") {
                    return err(at, "AND needs a term after it");
                }
                continue;
            }
            items.push(self.or_expr()?);
        }
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut alternatives = vec![self.unary()?];
        loop {
            let save = self.pos;
            self.skip_whitespace();
            if !self.keyword_at("OR") {
                self.pos = save;
                break;
            }
            let at = self.pos;
            self.pos += 2;
            self.skip_whitespace();
            if self.at_end()
                || self.peek() == Some(')')
                || self.keyword_at("OR")
                || self.keyword_at("AND")
            {
                return err(at, "OR needs a term after it");
            }
            alternatives.push(self.unary()?);
        }
        Ok(make_or(alternatives))
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.nesting >= MAX_NESTING {
            return err(
                self.pos,
                format!(
                    "the query nests more than {MAX_NESTING} levels of parentheses or negations"
                ),
            );
        }
        self.nesting += 1;
        let result = self.unary_inner();
        self.nesting -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Expr, QueryError> {
        self.skip_whitespace();
        let start = self.pos;
        if self.peek() == Some('-') {
            match self.chars.get(self.pos + 1) {
                None => return err(start, "'-' at the end of the query: put the term to exclude right after it, e.g. -from:alice"),
                Some(&c) if c.is_whitespace() || c == ')' => {
                    return err(start, "'-' must be followed directly by a term or a parenthesised group, e.g. -from:alice")
                }
                _ => {}
            }
            self.pos += 1;
            return Ok(negate(self.unary()?));
        }
        if self.keyword_at("NOT") {
            self.pos += 3;
            self.skip_whitespace();
            if self.at_end() || self.peek() == Some(')') {
                return err(start, "NOT needs a term after it");
            }
            return Ok(negate(self.unary()?));
        }
        if self.keyword_at("OR") {
            return err(start, "OR needs a term before it");
        }
        if self.keyword_at("AND") {
            return err(start, "AND needs a term before it");
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let start = self.pos;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let items = self.sequence(Some(start))?;
                if items.is_empty() {
                    return err(start, "empty parentheses");
                }
                Ok(make_and(items))
            }
            Some('"') => {
                let text = self.quoted()?;
                match self.default_op.clone() {
                    Some((op, name)) => self.operator_term(op, &name, text, start),
                    None => {
                        if text.is_empty() {
                            return err(
                                start,
                                "empty quotes: put the phrase to search between them",
                            );
                        }
                        Ok(Expr::Term(Term::Text {
                            field: TextField::Any,
                            text,
                        }))
                    }
                }
            }
            _ => self.word_term(),
        }
    }

    /// A quoted phrase at the cursor; `\"` and `\\` are escapes.
    fn quoted(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return err(start, "unclosed quote"),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('\\') if matches!(self.chars.get(self.pos + 1), Some('"' | '\\')) => {
                    if let Some(&c) = self.chars.get(self.pos + 1) {
                        text.push(c);
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// An unquoted word: up to whitespace, a quote, or a `)` that closes an
    /// enclosing group (parentheses balanced inside the word, as in
    /// `report(1).pdf`, stay part of it).
    fn word(&mut self) -> String {
        let mut depth = 0usize;
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '"' {
                break;
            }
            if c == '(' {
                depth += 1;
            } else if c == ')' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            word.push(c);
            self.pos += 1;
        }
        word
    }

    fn word_term(&mut self) -> Result<Expr, QueryError> {
        let start = self.pos;
        let mut end = start;
        while self
            .chars
            .get(end)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
        {
            end += 1;
        }
        if end > start && self.chars.get(end).copied().is_some_and(is_colon) {
            let name: String = self.chars[start..end].iter().collect();
            if let Some(op) = lookup_operator(&name) {
                self.pos = end + 1;
                return self.operator_value(op, &name.to_ascii_lowercase(), start);
            }
            if !colon_is_text(&name, &self.chars[end + 1..]) {
                let whole = self.word();
                return err(
                    start,
                    format!(
                        "unknown operator \"{name}:\"; known operators are {}. To search for the text itself, put it in quotes: \"{whole}\"",
                        OPERATORS.join(" "),
                    ),
                );
            }
        }
        let word = self.word();
        match self.default_op.clone() {
            Some((op, name)) => self.operator_term(op, &name, word, start),
            None => Ok(Expr::Term(Term::Text {
                field: TextField::Any,
                text: word,
            })),
        }
    }

    /// The value after `name:` (the cursor is just past the colon).
    fn operator_value(&mut self, op: Op, name: &str, start: usize) -> Result<Expr, QueryError> {
        let value_start = self.pos;
        match self.peek() {
            None => err(
                start,
                format!("{name}: needs a value, e.g. {}", example(op)),
            ),
            Some(c) if c.is_whitespace() || c == ')' => err(
                start,
                format!("{name}: needs a value, e.g. {}", example(op)),
            ),
            Some('"') => {
                let value = self.quoted()?;
                self.operator_term(op, name, value, value_start)
            }
            Some('(') => {
                self.pos += 1;
                let outer = self.default_op.replace((op, name.to_string()));
                let items = self.sequence(Some(value_start));
                self.default_op = outer;
                let items = items?;
                if items.is_empty() {
                    return err(value_start, "empty parentheses");
                }
                Ok(make_and(items))
            }
            Some(_) => {
                let value = self.word();
                self.operator_term(op, name, value, value_start)
            }
        }
    }

    fn operator_term(
        &self,
        op: Op,
        name: &str,
        value: String,
        at: usize,
    ) -> Result<Expr, QueryError> {
        if value.trim().is_empty() {
            return err(at, format!("{name}: needs a value, e.g. {}", example(op)));
        }
        let term = match op {
            Op::Text(field) => Term::Text { field, text: value },
            Op::Has => {
                if value.eq_ignore_ascii_case("attachment")
                    || value.eq_ignore_ascii_case("attachments")
                {
                    Term::HasAttachment
                } else {
                    return err(
                        at,
                        format!("unknown has: value \"{value}\": expected has:attachment"),
                    );
                }
            }
            Op::Direction => match Direction::from_str(&value) {
                Ok(d) => Term::Direction(d),
                Err(_) => {
                    let known: Vec<&str> = Direction::ALL.iter().map(|d| d.as_str()).collect();
                    return err(
                        at,
                        format!(
                            "unknown direction \"{value}\": expected one of {}",
                            known.join(", ")
                        ),
                    );
                }
            },
            Op::Status => match DeliveryStatus::from_str(&value) {
                Ok(s) => Term::Status(s),
                Err(_) => {
                    let known: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
                    return err(
                        at,
                        format!(
                            "unknown status \"{value}\": expected one of {} (or sent, meaning delivered)",
                            known.join(", ")
                        ),
                    );
                }
            },
            Op::System => Term::System(value.trim().to_lowercase()),
            Op::Employee | Op::Department | Op::Device => {
                let value = value.trim();
                if value.is_empty() {
                    return err(at, "employee:, dept: and device: need a value");
                }
                match op {
                    Op::Employee => Term::Employee(value.to_string()),
                    Op::Department => Term::Department(value.trim_matches('/').to_string()),
                    _ => Term::Device(value.to_lowercase()),
                }
            }
            Op::After | Op::Before => {
                let Some(instant) = parse_date(value.trim(), self.ctx.timezone) else {
                    return err(
                        at,
                        format!("invalid date \"{value}\": expected YYYY-MM-DD, YYYY/MM/DD, YYYY-MM-DDTHH:MM[:SS] (in {}) or an RFC 3339 time such as 2026-11-01T00:00:00Z", self.ctx.timezone),
                    );
                };
                if op == Op::After {
                    Term::After(instant)
                } else {
                    Term::Before(instant)
                }
            }
            Op::NewerThan | Op::OlderThan => {
                let Some(age) = parse_age(value.trim()) else {
                    return err(
                        at,
                        format!("invalid age \"{value}\": expected a whole number and a unit h (hours), d (days), w (weeks), m (30 days) or y (365 days), e.g. 7d"),
                    );
                };
                let Some(instant) = self.ctx.now.checked_sub_signed(age) else {
                    return err(at, format!("age \"{value}\" is too large"));
                };
                if op == Op::NewerThan {
                    Term::After(instant)
                } else {
                    Term::Before(instant)
                }
            }
            Op::Larger | Op::Smaller => {
                let Some(bytes) = parse_size(value.trim()) else {
                    return err(
                        at,
                        format!("invalid size \"{value}\": expected bytes or a number with K, M or G (1K = 1024 bytes), e.g. 5M or 1.5M"),
                    );
                };
                if op == Op::Larger {
                    Term::Larger(bytes)
                } else {
                    Term::Smaller(bytes)
                }
            }
        };
        Ok(Expr::Term(term))
    }
}

fn example(op: Op) -> &'static str {
    match op {
        Op::Text(TextField::Subject) => "subject:\"社外秘 資料\"",
        Op::Text(TextField::Body) => "body:顧客リスト",
        Op::Text(TextField::Filename) => "filename:xlsx",
        Op::Text(_) => "from:alice@example.com",
        Op::Has => "has:attachment",
        Op::Direction => "direction:outbound",
        Op::Status => "status:bounced",
        Op::System => "system:postfix",
        Op::After => "after:2026-11-01",
        Op::Before => "before:2026-11-27",
        Op::NewerThan => "newer_than:7d",
        Op::OlderThan => "older_than:1y",
        Op::Larger => "larger:5M",
        Op::Smaller => "smaller:100K",
        Op::Employee => "employee:山田太郎",
        Op::Department => "dept:営業部",
        Op::Device => "device:pc-0123",
    }
}

fn negate(expr: Expr) -> Expr {
    match expr {
        Expr::Not(inner) => *inner,
        other => Expr::Not(Box::new(other)),
    }
}

fn make_and(items: Vec<Expr>) -> Expr {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        if let Some(only) = flat.pop() {
            return only;
        }
    }
    Expr::And(flat)
}

fn make_or(items: Vec<Expr>) -> Expr {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        if let Some(only) = flat.pop() {
            return only;
        }
    }
    Expr::Or(flat)
}

/// A date or date-time: local to `tz` unless it carries an offset.
fn parse_date(value: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    const DATES: &[&str] = &["%Y-%m-%d", "%Y/%m/%d"];
    const DATE_TIMES: &[&str] = &[
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%dT%H:%M",
        "%Y/%m/%dT%H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
    ];
    let naive = DATES
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(value, f).ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .or_else(|| {
            DATE_TIMES
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        })?;
    local_to_utc(naive, tz)
}

/// The first instant of a local day in `tz`: what `after:DAY` means, and
/// `before:` the day after (the dashboard counts days with exactly these
/// bounds, so that its figures and the searches they link to agree).
pub fn day_start(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    local_to_utc(day.and_hms_opt(0, 0, 0)?, tz)
}

/// The first instant at which the clock in `tz` shows `naive`, or, when that
/// wall time is skipped by a DST change, the first instant after the gap.
fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    for minutes in 0..=24 * 60 {
        let candidate = naive.checked_add_signed(TimeDelta::try_minutes(minutes)?)?;
        if let Some(t) = tz.from_local_datetime(&candidate).earliest() {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// `7d`, `12h`, `2w`, `3m` (30 days), `1y` (365 days).
fn parse_age(value: &str) -> Option<TimeDelta> {
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let (number, unit) = value.split_at(digits);
    let n: i64 = number.parse().ok()?;
    let hours_per_unit: i64 = match unit.to_ascii_lowercase().as_str() {
        "h" => 1,
        "d" => 24,
        "w" => 7 * 24,
        "m" => 30 * 24,
        "y" => 365 * 24,
        _ => return None,
    };
    TimeDelta::try_hours(n.checked_mul(hours_per_unit)?)
}

/// `1000`, `100K`, `5M`, `1.5G`, `5MB`, `5MiB` (binary multiples).
fn parse_size(value: &str) -> Option<u64> {
    let number_len = value.len()
        - value
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .len();
    let (number, unit) = value.split_at(number_len);
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut bytes = whole.checked_mul(multiplier)?;
    if !fraction.is_empty() {
        let f: u128 = fraction.parse().ok()?;
        bytes += f * multiplier / 10u128.pow(fraction.len() as u32);
    }
    u64::try_from(bytes).ok()
}

/// Quote `text` unless it reads back as the same single word.
fn write_text(f: &mut fmt::Formatter<'_>, text: &str, as_value: bool) -> fmt::Result {
    let bare = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '\\'))
        && (as_value
            || (!text.starts_with('-')
                && !text.contains(is_colon)
                && !matches!(text, "OR" | "AND" | "NOT")));
    if bare {
        return f.write_str(text);
    }
    f.write_str("\"")?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

fn write_instant(f: &mut fmt::Formatter<'_>, t: &DateTime<Utc>) -> fmt::Result {
    f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Text { field, text } => match field.operator() {
                None => write_text(f, text, false),
                Some(op) => {
                    write!(f, "{op}:")?;
                    write_text(f, text, true)
                }
            },
            Term::HasAttachment => f.write_str("has:attachment"),
            Term::Direction(d) => write!(f, "direction:{d}"),
            Term::Status(s) => write!(f, "status:{s}"),
            Term::System(s) => {
                f.write_str("system:")?;
                write_text(f, s, true)
            }
            Term::After(t) => {
                f.write_str("after:")?;
                write_instant(f, t)
            }
            Term::Before(t) => {
                f.write_str("before:")?;
                write_instant(f, t)
            }
            Term::Larger(n) => write!(f, "larger:{n}"),
            Term::Smaller(n) => write!(f, "smaller:{n}"),
            Term::Employee(v) => {
                f.write_str("employee:")?;
                write_text(f, v, true)
            }
            Term::Department(v) => {
                f.write_str("dept:")?;
                write_text(f, v, true)
            }
            Term::Device(v) => {
                f.write_str("device:")?;
                write_text(f, v, true)
            }
        }
    }
}

/// The canonical form: parses back to the same [`Expr`] (for trees the
/// parser produces); dates as UTC RFC 3339, sizes in bytes.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    match item {
                        Expr::And(_) => write!(f, "({item})")?,
                        _ => write!(f, "{item}")?,
                    }
                }
                Ok(())
            }
            Expr::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" OR ")?;
                    }
                    match item {
                        Expr::And(_) | Expr::Or(_) => write!(f, "({item})")?,
                        _ => write!(f, "{item}")?,
                    }
                }
                Ok(())
            }
            Expr::Not(inner) => match inner.as_ref() {
                Expr::Term(t) => write!(f, "-{t}"),
                Expr::Not(_) => write!(f, "-{inner}"),
                _ => write!(f, "-({inner})"),
            },
            Expr::Term(t) => write!(f, "{t}"),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let ctx = QueryContext {
            now: chrono::Utc::now(),
            timezone: chrono_tz::UTC,
        };
        let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let e = parse(&deep, &ctx).unwrap_err();
        assert!(e.message.contains("nests more than"), "{e}");
        let negations = format!("{}a", "-".repeat(20_000));
        assert!(parse(&negations, &ctx).is_err());
        let fine = format!("{}a{}", "(".repeat(10), ")".repeat(10));
        assert!(parse(&fine, &ctx).is_ok());
    }
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> QueryContext {
        QueryContext {
            now: Utc.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap(),
            timezone: chrono_tz::Asia::Tokyo,
        }
    }

    fn p(q: &str) -> Expr {
        match parse(q, &ctx()) {
            Ok(e) => e,
            Err(e) => panic!("{q:?}: {e}"),
        }
    }

    fn perr(q: &str) -> QueryError {
        match parse(q, &ctx()) {
            Ok(e) => panic!("{q:?} parsed as {e:?}"),
            Err(e) => e,
        }
    }

    fn text(field: TextField, t: &str) -> Expr {
        Expr::Term(Term::Text {
            field,
            text: t.to_string(),
        })
    }

    fn any(t: &str) -> Expr {
        text(TextField::Any, t)
    }

    fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn empty_query_matches_everything() {
        assert_eq!(p(""), Expr::And(vec![]));
        assert_eq!(p("  \u{3000} "), Expr::And(vec![]));
        assert_eq!(p("").to_string(), "");
    }

    #[test]
    fn bare_words_and_phrases() {
        assert_eq!(p("社外秘"), any("社外秘"));
        assert_eq!(
            p("社外秘 資料"),
            Expr::And(vec![any("社外秘"), any("資料")])
        );
        assert_eq!(p("\"社外秘 資料\""), any("社外秘 資料"));
        assert_eq!(
            p("社外秘　資料"),
            Expr::And(vec![any("社外秘"), any("資料")])
        );
        assert_eq!(
            p("\"say \\\"hi\\\" \\\\ C:\\temp\""),
            any("say \"hi\" \\ C:\\temp")
        );
        assert_eq!(
            p("or and not"),
            Expr::And(vec![any("or"), any("and"), any("not")])
        );
        assert_eq!(p("report(1).pdf"), any("report(1).pdf"));
        assert_eq!(
            p("foo\"bar baz\""),
            Expr::And(vec![any("foo"), any("bar baz")])
        );
    }

    #[test]
    fn text_operators() {
        assert_eq!(
            p("from:alice@example.com"),
            text(TextField::From, "alice@example.com")
        );
        assert_eq!(p("to:bob"), text(TextField::To, "bob"));
        assert_eq!(p("cc:carol"), text(TextField::Cc, "carol"));
        assert_eq!(p("bcc:dave"), text(TextField::Bcc, "dave"));
        assert_eq!(
            p("subject:\"社外秘 資料\""),
            text(TextField::Subject, "社外秘 資料")
        );
        assert_eq!(p("subject：会議"), text(TextField::Subject, "会議"));
        assert_eq!(
            p("filename:顧客リスト.xlsx"),
            text(TextField::Filename, "顧客リスト.xlsx")
        );
        assert_eq!(p("body:機密"), text(TextField::Body, "機密"));
        assert_eq!(p("From:Alice"), text(TextField::From, "Alice"));
        assert_eq!(p("subject:-draft"), text(TextField::Subject, "-draft"));
        assert_eq!(p("subject:a:b"), text(TextField::Subject, "a:b"));
    }

    #[test]
    fn other_operators() {
        assert_eq!(p("has:attachment"), Expr::Term(Term::HasAttachment));
        assert_eq!(
            p("direction:outbound"),
            Expr::Term(Term::Direction(Direction::Outbound))
        );
        assert_eq!(
            p("direction:Inbound"),
            Expr::Term(Term::Direction(Direction::Inbound))
        );
        assert_eq!(
            p("status:bounced"),
            Expr::Term(Term::Status(DeliveryStatus::Bounced))
        );
        assert_eq!(
            p("status:sent"),
            Expr::Term(Term::Status(DeliveryStatus::Delivered))
        );
        assert_eq!(
            p("system:Postfix@MX1"),
            Expr::Term(Term::System("postfix@mx1".into()))
        );
        assert_eq!(p("larger:5M"), Expr::Term(Term::Larger(5 * 1024 * 1024)));
        assert_eq!(p("smaller:100K"), Expr::Term(Term::Smaller(100 * 1024)));
        assert_eq!(p("larger:1000"), Expr::Term(Term::Larger(1000)));
        assert_eq!(p("larger:1.5M"), Expr::Term(Term::Larger(1_572_864)));
        assert_eq!(p("larger:2GB"), Expr::Term(Term::Larger(2 << 30)));
        assert_eq!(p("smaller:10kib"), Expr::Term(Term::Smaller(10240)));
    }

    #[test]
    fn dates_in_asia_tokyo() {
        assert_eq!(
            p("after:2026-11-01"),
            Expr::Term(Term::After(utc(2026, 10, 31, 15, 0)))
        );
        assert_eq!(
            p("before:2026/11/27"),
            Expr::Term(Term::Before(utc(2026, 11, 26, 15, 0)))
        );
        assert_eq!(
            p("after:2026-11-01T09:00"),
            Expr::Term(Term::After(utc(2026, 11, 1, 0, 0)))
        );
        assert_eq!(
            p("after:2026-11-01T09:00:30"),
            Expr::Term(Term::After(
                Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 30).unwrap()
            ))
        );
        assert_eq!(
            p("after:\"2026-11-01 09:00\""),
            Expr::Term(Term::After(utc(2026, 11, 1, 0, 0)))
        );
        assert_eq!(
            p("after:2026-1-5"),
            Expr::Term(Term::After(utc(2026, 1, 4, 15, 0)))
        );
        assert_eq!(
            p("before:2026-11-01T00:00:00Z"),
            Expr::Term(Term::Before(utc(2026, 11, 1, 0, 0)))
        );
        assert_eq!(
            p("after:2026-11-01T09:00:00+09:00"),
            Expr::Term(Term::After(utc(2026, 11, 1, 0, 0)))
        );
        assert_eq!(p("newer:2026-11-01"), p("after:2026-11-01"));
        assert_eq!(p("older:2026-11-01"), p("before:2026-11-01"));
        // A whole day in Tokyo.
        assert_eq!(
            p("after:2026-11-19 before:2026-11-20"),
            Expr::And(vec![
                Expr::Term(Term::After(utc(2026, 11, 18, 15, 0))),
                Expr::Term(Term::Before(utc(2026, 11, 19, 15, 0))),
            ])
        );
    }

    #[test]
    fn dates_across_dst() {
        let ny = QueryContext {
            now: utc(2026, 3, 10, 0, 0),
            timezone: chrono_tz::America::New_York,
        };
        // 02:30 does not exist on 2026-03-08 in New York: the first instant after the gap.
        assert_eq!(
            parse("after:2026-03-08T02:30", &ny),
            Ok(Expr::Term(Term::After(utc(2026, 3, 8, 7, 0))))
        );
        // 01:30 happens twice on 2026-11-01: the first one (EDT, -4).
        assert_eq!(
            parse("before:2026-11-01T01:30", &ny),
            Ok(Expr::Term(Term::Before(utc(2026, 11, 1, 5, 30))))
        );
    }

    #[test]
    fn relative_ages() {
        let now = ctx().now;
        assert_eq!(
            p("newer_than:7d"),
            Expr::Term(Term::After(now - TimeDelta::days(7)))
        );
        assert_eq!(
            p("older_than:2w"),
            Expr::Term(Term::Before(now - TimeDelta::days(14)))
        );
        assert_eq!(
            p("newer_than:12h"),
            Expr::Term(Term::After(now - TimeDelta::hours(12)))
        );
        assert_eq!(
            p("newer_than:3m"),
            Expr::Term(Term::After(now - TimeDelta::days(90)))
        );
        assert_eq!(
            p("older_than:1Y"),
            Expr::Term(Term::Before(now - TimeDelta::days(365)))
        );
    }

    #[test]
    fn precedence_or_binds_tighter_than_and() {
        assert_eq!(
            p("a b OR c"),
            Expr::And(vec![any("a"), Expr::Or(vec![any("b"), any("c")])])
        );
        assert_eq!(
            p("a OR b OR c"),
            Expr::Or(vec![any("a"), any("b"), any("c")])
        );
        assert_eq!(
            p("(a b) OR c"),
            Expr::Or(vec![Expr::And(vec![any("a"), any("b")]), any("c")])
        );
        assert_eq!(p("a AND b"), Expr::And(vec![any("a"), any("b")]));
        assert_eq!(
            p("a AND b OR c"),
            Expr::And(vec![any("a"), Expr::Or(vec![any("b"), any("c")])])
        );
        assert_eq!(
            p("(a (b c)) d"),
            Expr::And(vec![any("a"), any("b"), any("c"), any("d")])
        );
        assert_eq!(
            p("from:alice OR(subject:x)"),
            Expr::Or(vec![
                text(TextField::From, "alice"),
                text(TextField::Subject, "x")
            ])
        );
    }

    #[test]
    fn negation() {
        assert_eq!(p("-a"), not(any("a")));
        assert_eq!(p("NOT a"), not(any("a")));
        assert_eq!(p("--a"), any("a"));
        assert_eq!(p("-from:alice"), not(text(TextField::From, "alice")));
        assert_eq!(p("-\"社外秘 資料\""), not(any("社外秘 資料")));
        assert_eq!(
            p("-(a OR b) c"),
            Expr::And(vec![not(Expr::Or(vec![any("a"), any("b")])), any("c")])
        );
        assert_eq!(p("-a OR b"), Expr::Or(vec![not(any("a")), any("b")]));
        assert_eq!(p("a-b"), any("a-b"));
        assert_eq!(p("-has:attachment"), not(Expr::Term(Term::HasAttachment)));
    }

    #[test]
    fn operator_groups() {
        assert_eq!(
            p("status:(bounced OR deferred)"),
            Expr::Or(vec![
                Expr::Term(Term::Status(DeliveryStatus::Bounced)),
                Expr::Term(Term::Status(DeliveryStatus::Deferred)),
            ])
        );
        assert_eq!(
            p("-from:(alice \"bob smith\")"),
            not(Expr::And(vec![
                text(TextField::From, "alice"),
                text(TextField::From, "bob smith")
            ]))
        );
        assert_eq!(
            p("subject:(社外秘 -下書き) 資料"),
            Expr::And(vec![
                text(TextField::Subject, "社外秘"),
                not(text(TextField::Subject, "下書き")),
                any("資料"),
            ])
        );
    }

    #[test]
    fn colons_that_are_text() {
        assert_eq!(p("10:30"), any("10:30"));
        assert_eq!(
            p("https://example.com/a?b=c"),
            any("https://example.com/a?b=c")
        );
        assert_eq!(
            p("mailto:alice@example.com"),
            any("mailto:alice@example.com")
        );
        assert_eq!(p("Re:会議"), any("Re:会議"));
        assert_eq!(p("C:\\temp"), any("C:\\temp"));
        assert_eq!(p("std::vec"), any("std::vec"));
        assert_eq!(p("件名:会議"), any("件名:会議"));
        assert_eq!(p("\"foo:bar\""), any("foo:bar"));
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        let e = perr("subject:\"社外秘 資料");
        assert_eq!(e.position, 8);
        assert!(e.message.contains("unclosed quote"), "{e}");
        assert_eq!(e.to_string(), "unclosed quote (at character 8)");

        let e = perr("a status:foo");
        assert_eq!(e.position, 9);
        assert!(
            e.message
                .starts_with("unknown status \"foo\": expected one of received, delivered"),
            "{e}"
        );

        let e = perr("direction:sideways");
        assert_eq!(e.position, 10);
        assert!(
            e.message.contains("inbound, outbound, internal, relayed"),
            "{e}"
        );

        let e = perr("a (b");
        assert_eq!(
            (e.position, e.message.contains("unbalanced parenthesis")),
            (2, true),
            "{e}"
        );
        let e = perr("a b)");
        assert_eq!(
            (e.position, e.message.contains("unbalanced parenthesis")),
            (3, true),
            "{e}"
        );

        let e = perr("x foo:bar");
        assert_eq!(e.position, 2);
        assert!(e.message.contains("unknown operator \"foo:\""), "{e}");
        assert!(e.message.contains("newer_than:"), "{e}");
        assert!(e.message.contains("\"foo:bar\""), "{e}");

        let e = perr("from: alice");
        assert_eq!(e.position, 0);
        assert!(e.message.contains("from: needs a value"), "{e}");
        assert_eq!(perr("subject:\"\"").position, 8);
        assert_eq!(perr("has:pdf").position, 4);
        assert_eq!(perr("after:2026-13-01").position, 6);
        assert!(perr("after:yesterday").message.contains("YYYY-MM-DD"));
        assert_eq!(perr("newer_than:7").position, 11);
        assert!(perr("newer_than:7x").message.contains("unit"));
        assert!(
            perr("older_than:99999999999999y")
                .message
                .contains("too large")
                || perr("older_than:99999999999999y")
                    .message
                    .contains("invalid age")
        );
        assert_eq!(perr("larger:5T").position, 7);
        assert_eq!(perr("larger:99999999999G").position, 7);
        assert_eq!(perr("a OR").position, 2);
        assert_eq!(perr("OR a").position, 0);
        assert_eq!(perr("a OR OR b").position, 2);
        assert_eq!(perr("a - b").position, 2);
        assert_eq!(perr("a -").position, 2);
        assert_eq!(perr("AND a").position, 0);
        assert_eq!(perr("a ()").position, 2);
        assert_eq!(perr("\"\"").position, 0);
        assert_eq!(perr("NOT").position, 0);
        assert_eq!(perr("status:(bounced nope)").position, 16);
        assert_eq!(perr("subject:(a").position, 8);
    }

    #[test]
    fn display_is_canonical() {
        let q = "from:alice 社外秘 OR \"顧客 リスト\" -(status:bounced OR has:attachment) after:2026-11-01 larger:5M";
        let e = p(q);
        assert_eq!(
            e.to_string(),
            "from:alice 社外秘 OR \"顧客 リスト\" -(status:bounced OR has:attachment) after:2026-10-31T15:00:00Z larger:5242880"
        );
        assert_eq!(p(&e.to_string()), e);
        assert_eq!(p("status:sent").to_string(), "status:delivered");
        assert_eq!(
            p("\"OR\" \"-x\" \"a:b\"").to_string(),
            "\"OR\" \"-x\" \"a:b\""
        );
        assert_eq!(
            p("subject:\"a \\\"b\\\"\"").to_string(),
            "subject:\"a \\\"b\\\"\""
        );
    }

    const PIECES: &[&str] = &[
        "a",
        "社外秘",
        "資料",
        "OR",
        "AND",
        "NOT",
        "-",
        "(",
        ")",
        "\"",
        " ",
        " ",
        " ",
        "from:",
        "subject:",
        "status:",
        "bounced",
        "has:attachment",
        "after:2026-11-01",
        "newer_than:7d",
        "larger:5M",
        "foo:",
        "10:30",
        "\\",
        "x(y)",
        "：",
        "or",
        "system:",
        "direction:inbound",
    ];

    proptest! {
        #[test]
        fn display_round_trips(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..16)) {
            let q = pieces.concat();
            if let Ok(e) = parse(&q, &ctx()) {
                let shown = e.to_string();
                prop_assert_eq!(parse(&shown, &ctx()), Ok(e), "{:?} -> {:?}", q, shown);
            }
        }

        #[test]
        fn never_panics(q in ".{0,80}") {
            if let Err(e) = parse(&q, &ctx()) {
                prop_assert!(e.position <= q.chars().count());
            }
        }
    }
}
