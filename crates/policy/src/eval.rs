//! Evaluating a [`Policy`] against one message.
//!
//! Evaluation is pure: the message's facts in, the matched rules out, with
//! every question about people and the past going through [`Directory`] and
//! [`History`]. It cannot fail (compilation checked everything), and it
//! reports *why*: each matched rule lists, per condition, what matched and
//! where, with offsets into the original text so the console can highlight
//! the very characters (the `ＣＯＮＦＩＤＥＮＴＩＡＬ` in the subject, not
//! its normalised form). Work shared by rules — normalising the body,
//! sniffing attachments — is done at most once per message, and only when a
//! rule in scope needs it.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{Datelike, Duration};
use mailtrail_model::domain_of;
use serde::Serialize;

use crate::checks::{credit_card_valid, domain_within, look_alike, my_number_valid};
use crate::facts::{Directory, Employee, EmployeeStatus, History, MessageFacts};
use crate::policy::{Compiled, CompiledRule, Policy, WatchRef};
use crate::rules::{Action, AuthCheck, Combine, Condition, Party, TextField};
use crate::sniff::{executable_name, sniff, Sniffed};
use crate::text::{KeywordIndex, KeywordScan, NormText, Span};

/// Where in the message a condition matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Location {
    Subject,
    Body,
    /// The file name of the attachment at `attachment` (index in the message).
    AttachmentName {
        attachment: usize,
    },
    /// A name inside the archive at `attachment`.
    InnerName {
        attachment: usize,
        index: usize,
    },
    /// The attachment itself (its content or size).
    Attachment {
        attachment: usize,
    },
    Sender,
    FromDisplayName,
    ReplyTo,
    Recipient {
        address: String,
    },
    /// The message as a whole (its time, its counts, its authentication).
    Message,
}

/// One reason a condition matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Index of the condition in the rule.
    pub condition: usize,
    /// Its `type`.
    pub condition_type: &'static str,
    pub location: Location,
    /// The matched text as it appears in the message (or the fact, such as
    /// an address or a local time).
    pub text: String,
    /// Where `text` is in the located field, for highlighting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Further explanation (the keyword that matched, the domain imitated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Another message this match depends on (PPAP: the archive's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_message: Option<String>,
}

/// A rule that matched a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMatch {
    pub rule_id: String,
    pub rule_name: Option<String>,
    pub actions: Vec<Action>,
    pub hits: Vec<Hit>,
}

/// Per-message work shared by all rules, done lazily.
struct Prepared<'m> {
    facts: &'m MessageFacts,
    subject: OnceCell<Option<NormText<'m>>>,
    body: OnceCell<Option<NormText<'m>>>,
    names: OnceCell<Vec<(Location, NormText<'m>)>>,
    inner: OnceCell<Vec<(Location, NormText<'m>)>>,
    sniffed: OnceCell<Vec<Sniffed>>,
    sender: OnceCell<Option<Employee>>,
    /// The policy's keyword automaton, and its scans of this message's
    /// texts (keyed by the text's address: each text is scanned once).
    keywords: &'m KeywordIndex,
    scans: RefCell<HashMap<usize, Rc<KeywordScan>>>,
}

impl<'m> Prepared<'m> {
    fn new(facts: &'m MessageFacts, keywords: &'m KeywordIndex) -> Self {
        Prepared {
            facts,
            keywords,
            scans: RefCell::new(HashMap::new()),
            subject: OnceCell::new(),
            body: OnceCell::new(),
            names: OnceCell::new(),
            inner: OnceCell::new(),
            sniffed: OnceCell::new(),
            sender: OnceCell::new(),
        }
    }

    /// Every indexed keyword's occurrences in `t` (scanned on first use).
    fn scan(&self, t: &NormText) -> Rc<KeywordScan> {
        if !self.keywords.is_built() {
            return Rc::new(KeywordScan::new());
        }
        let key = t.normalized().as_ptr() as usize;
        if let Some(found) = self.scans.borrow().get(&key) {
            return found.clone();
        }
        let found = Rc::new(self.keywords.scan(t.normalized()));
        self.scans.borrow_mut().insert(key, found.clone());
        found
    }

    /// The texts of the given fields with their locations.
    fn texts(&self, fields: &[TextField]) -> Vec<(Location, &NormText<'m>)> {
        let mut out = Vec::new();
        for f in fields {
            match f {
                TextField::Subject => {
                    if let Some(t) = self
                        .subject
                        .get_or_init(|| self.facts.subject.as_deref().map(NormText::new))
                    {
                        out.push((Location::Subject, t));
                    }
                }
                TextField::Body => {
                    if let Some(t) = self
                        .body
                        .get_or_init(|| self.facts.body.as_deref().map(NormText::new))
                    {
                        out.push((Location::Body, t));
                    }
                }
                TextField::AttachmentNames => {
                    let names = self.names.get_or_init(|| {
                        self.facts
                            .attachments
                            .iter()
                            .enumerate()
                            .filter_map(|(i, a)| {
                                let name = a.filename.as_deref()?;
                                Some((
                                    Location::AttachmentName { attachment: i },
                                    NormText::new(name),
                                ))
                            })
                            .collect()
                    });
                    out.extend(names.iter().map(|(l, t)| (l.clone(), t)));
                }
                TextField::InnerNames => {
                    let inner = self.inner.get_or_init(|| {
                        let mut v = Vec::new();
                        for (i, a) in self.facts.attachments.iter().enumerate() {
                            for (j, n) in a.inner_names.iter().enumerate() {
                                v.push((
                                    Location::InnerName {
                                        attachment: i,
                                        index: j,
                                    },
                                    NormText::new(n),
                                ));
                            }
                        }
                        v
                    });
                    out.extend(inner.iter().map(|(l, t)| (l.clone(), t)));
                }
            }
        }
        out
    }

    fn sniffed(&self) -> &[Sniffed] {
        self.sniffed.get_or_init(|| {
            self.facts
                .attachments
                .iter()
                .map(|a| sniff(a.filename.as_deref(), a.content.as_deref()))
                .collect()
        })
    }

    fn sender_employee(&self, dir: &dyn Directory) -> Option<&Employee> {
        self.sender
            .get_or_init(|| {
                let s = self.facts.sender.as_deref()?;
                if dir.is_ours(s) {
                    dir.employee(s)
                } else {
                    None
                }
            })
            .as_ref()
    }
}

/// Normalise a person's name for comparison: NFKC, lower case, white space
/// removed (`山田　太郎` = `山田 太郎` = `山田太郎`). [`Directory`]
/// implementations compare names in this form.
pub fn normalize_person_name(name: &str) -> String {
    mailtrail_store::tokenize::normalize(name)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '\''))
        .collect()
}

fn domain_in(domain: &str, list: &[String]) -> Option<String> {
    list.iter().find(|d| domain_within(domain, d)).cloned()
}

fn is_leaver(e: &Employee, facts: &MessageFacts, days: u32) -> bool {
    e.status == EmployeeStatus::Resigned
        || e.leave_date
            .is_some_and(|d| facts.time.date_naive() + Duration::days(i64::from(days)) >= d)
}

fn on_watch(
    address: &str,
    lists: &[WatchRef],
    dir: &dyn Directory,
    facts: &MessageFacts,
    days: u32,
) -> Option<String> {
    for l in lists {
        match l {
            WatchRef::Leavers => {
                if let Some(e) = dir.employee(address) {
                    if is_leaver(&e, facts, days) {
                        return Some(match e.leave_date {
                            Some(d) => format!("leavers (leave date {d})"),
                            None => "leavers (resigned)".into(),
                        });
                    }
                }
            }
            WatchRef::Named(name, set) => {
                if set.contains(address) {
                    return Some(name.clone());
                }
            }
        }
    }
    None
}

/// Whether a local part spells a romaji name (`taro.yamada`, `yamada_t`,
/// `tyamada1985`). The name's words are tried in both orders, since Japanese
/// names are written family-first or given-first.
pub fn local_part_matches_name(local: &str, romaji: &str) -> bool {
    let words: Vec<String> = romaji
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2)
        .map(str::to_ascii_lowercase)
        .collect();
    if words.len() < 2 {
        return false;
    }
    let local = local.to_ascii_lowercase();
    let letters: String = local.chars().filter(char::is_ascii_alphabetic).collect();
    let tokens: Vec<&str> = local
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|t| !t.is_empty())
        .collect();
    for a in &words {
        for b in &words {
            if a == b {
                continue;
            }
            // Both names in full, in any order.
            if letters.contains(a.as_str()) && letters.contains(b.as_str()) {
                return true;
            }
            let initial = &a[..1];
            // Initial and family name as neighbouring tokens: t.yamada, yamada_t.
            for w in tokens.windows(2) {
                if (w[0] == initial && w[1] == b) || (w[0] == b && w[1] == initial) {
                    return true;
                }
            }
            // Run together: tyamada, yamadat (with digits around).
            if b.len() >= 4 {
                for t in &tokens {
                    if *t == format!("{initial}{b}") || *t == format!("{b}{initial}") {
                        return true;
                    }
                }
            }
        }
    }
    false
}

fn auth_failed(verdict: Option<&str>) -> Option<String> {
    let v = verdict?.trim().to_ascii_lowercase();
    matches!(v.as_str(), "fail" | "softfail" | "permerror" | "hardfail").then_some(v)
}

/// Runs of digit groups that could hold numbers: maximal runs of ASCII
/// digit groups joined by single spaces or hyphens, not touching letters or
/// other digits. Each run is a list of (start, end) of its groups.
fn digit_runs(text: &str) -> Vec<Vec<(usize, usize)>> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut groups = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            let joined = matches!(bytes.get(j), Some(b' ' | b'-'))
                && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
                && groups.len() < 24;
            if !joined {
                break;
            }
            j += 1;
        }
        if !bytes.get(j).is_some_and(u8::is_ascii_alphanumeric) {
            runs.push(groups);
        }
        i = j.max(i + 1);
    }
    runs
}

/// Numbers in `text` that `valid` accepts: a whole run of digit groups, or
/// else consecutive groups of it (`No. 3 1234 5678 9018` holds a My Number
/// after the `3`). Found numbers do not overlap; earlier and longer win.
fn numbers_in(text: &str, valid: impl Fn(&str) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for groups in digit_runs(text) {
        let mut from = 0;
        'outer: while from < groups.len() {
            for to in (from..groups.len()).rev() {
                let digits: String = groups[from..=to]
                    .iter()
                    .map(|&(s, e)| &text[s..e])
                    .collect();
                if digits.len() <= 19 && valid(&digits) {
                    out.push((groups[from].0, groups[to].1));
                    from = to + 1;
                    continue 'outer;
                }
            }
            from += 1;
        }
    }
    out
}

impl Policy {
    /// Evaluate every enabled rule. Results are in rule order.
    pub fn evaluate(
        &self,
        facts: &MessageFacts,
        dir: &dyn Directory,
        history: &dyn History,
    ) -> Vec<RuleMatch> {
        let prepared = Prepared::new(facts, &self.keyword_index);
        self.rules
            .iter()
            .filter(|r| r.rule.enabled)
            .filter_map(|r| self.evaluate_compiled(r, &prepared, dir, history))
            .collect()
    }

    /// Evaluate one rule by id, enabled or not (a dry run: `mailtrail rules
    /// test RULE`). `None` when the rule does not exist or does not match.
    pub fn evaluate_rule(
        &self,
        id: &str,
        facts: &MessageFacts,
        dir: &dyn Directory,
        history: &dyn History,
    ) -> Option<RuleMatch> {
        let rule = self.rule(id)?;
        self.evaluate_compiled(
            rule,
            &Prepared::new(facts, &self.keyword_index),
            dir,
            history,
        )
    }

    fn in_scope(&self, r: &CompiledRule, p: &Prepared, dir: &dyn Directory) -> bool {
        let facts = p.facts;
        let scope = &r.rule.scope;
        if !scope.directions.is_empty() && !scope.directions.contains(&facts.direction) {
            return false;
        }
        let by_person = !scope.people.is_empty()
            || !scope.departments.is_empty()
            || !r.scope_lists.is_empty()
            || !scope.exclude_people.is_empty();
        if !by_person {
            return true;
        }
        let people: Vec<&str> = match facts.sender.as_deref() {
            Some(s) if dir.is_ours(s) => vec![s],
            _ => facts
                .recipient_addresses()
                .into_iter()
                .filter(|a| dir.is_ours(a))
                .collect(),
        };
        people.into_iter().any(|person| {
            if scope
                .exclude_people
                .iter()
                .any(|x| x.eq_ignore_ascii_case(person))
            {
                return false;
            }
            if !scope.people.is_empty()
                && !scope
                    .people
                    .iter()
                    .any(|x| x.trim().eq_ignore_ascii_case(person))
            {
                return false;
            }
            if !scope.departments.is_empty() {
                let dept = dir
                    .employee(person)
                    .and_then(|e| e.department)
                    .unwrap_or_default();
                let parts: Vec<&str> = dept.split('/').map(str::trim).collect();
                let ok = scope.departments.iter().any(|d| {
                    let d = d.trim().trim_matches('/');
                    !d.is_empty()
                        && (dept == d || dept.starts_with(&format!("{d}/")) || parts.contains(&d))
                });
                if !ok {
                    return false;
                }
            }
            r.scope_lists.is_empty()
                || on_watch(person, &r.scope_lists, dir, facts, self.leaver_days).is_some()
        })
    }

    fn evaluate_compiled(
        &self,
        r: &CompiledRule,
        p: &Prepared,
        dir: &dyn Directory,
        history: &dyn History,
    ) -> Option<RuleMatch> {
        if !self.in_scope(r, p, dir) {
            return None;
        }
        let mut hits = Vec::new();
        let mut matched = 0;
        for (i, (c, compiled)) in r.rule.conditions.iter().zip(&r.conditions).enumerate() {
            let found = self.condition(i, c, compiled, p, dir, history);
            if found.is_empty() {
                if r.rule.combine == Combine::All {
                    return None;
                }
            } else {
                matched += 1;
                hits.extend(found);
            }
        }
        (matched > 0).then(|| RuleMatch {
            rule_id: r.rule.id.clone(),
            rule_name: r.rule.name.clone(),
            actions: r.rule.actions.clone(),
            hits,
        })
    }

    fn condition(
        &self,
        index: usize,
        c: &Condition,
        compiled: &Compiled,
        p: &Prepared,
        dir: &dyn Directory,
        history: &dyn History,
    ) -> Vec<Hit> {
        let facts = p.facts;
        let hit = |location: Location, text: String| Hit {
            condition: index,
            condition_type: c.type_name(),
            location,
            text,
            span: None,
            detail: None,
            related_message: None,
        };
        let text_hit =
            |location: Location, t: &NormText, s: usize, e: usize, detail: Option<String>| {
                let span = t.original_span(s, e);
                Hit {
                    text: t.original_text(&span).to_string(),
                    span: Some(span),
                    detail,
                    ..hit(location, String::new())
                }
            };
        let mut out = Vec::new();
        match (c, compiled) {
            (
                Condition::Keywords {
                    fields, min_count, ..
                },
                Compiled::Keywords(kws),
            ) => {
                for (loc, t) in p.texts(fields) {
                    let scan = p.scan(t);
                    for kw in kws {
                        for (s, e) in kw.find_with(t.normalized(), &scan) {
                            out.push(text_hit(loc.clone(), t, s, e, Some(kw.written.clone())));
                        }
                    }
                }
                if out.len() < *min_count {
                    out.clear();
                }
            }
            (
                Condition::Regex {
                    fields, min_count, ..
                },
                Compiled::Regex(res),
            ) => {
                for (loc, t) in p.texts(fields) {
                    for re in res {
                        for m in re.find_iter(t.normalized()) {
                            if m.start() < m.end() {
                                out.push(text_hit(
                                    loc.clone(),
                                    t,
                                    m.start(),
                                    m.end(),
                                    Some(re.as_str().to_string()),
                                ));
                            }
                        }
                    }
                }
                if out.len() < *min_count {
                    out.clear();
                }
            }
            (Condition::CreditCard { fields }, _) | (Condition::MyNumber { fields }, _) => {
                let card = matches!(c, Condition::CreditCard { .. });
                for (loc, t) in p.texts(fields) {
                    let valid = if card {
                        credit_card_valid
                    } else {
                        my_number_valid
                    };
                    let detail = if card {
                        "Luhn check digit valid"
                    } else {
                        "My Number check digit valid"
                    };
                    for (s, e) in numbers_in(t.normalized(), valid) {
                        out.push(text_hit(loc.clone(), t, s, e, Some(detail.into())));
                    }
                }
            }
            (Condition::RecipientDomain { kinds, .. }, Compiled::Domains(domains)) => {
                for r in &facts.recipients {
                    if !kinds.is_empty() && !kinds.contains(&r.kind) {
                        continue;
                    }
                    if let Some(d) = domain_of(&r.address).and_then(|d| domain_in(d, domains)) {
                        out.push(Hit {
                            detail: Some(format!("{} recipient at {d}", r.kind.as_str())),
                            ..hit(
                                Location::Recipient {
                                    address: r.address.clone(),
                                },
                                r.address.clone(),
                            )
                        });
                    }
                }
            }
            (Condition::PrivateAddress { .. }, Compiled::Domains(domains)) => {
                if let Some(e) = p.sender_employee(dir) {
                    for a in facts.external_recipients(dir) {
                        let detail = if e
                            .private_addresses
                            .iter()
                            .any(|x| x.eq_ignore_ascii_case(a))
                        {
                            Some("a private address the directory knows".to_string())
                        } else {
                            let local = a.rsplit_once('@').map_or(a, |(l, _)| l);
                            let domain_ok = domains.is_empty()
                                || domain_of(a).is_some_and(|d| domain_in(d, domains).is_some());
                            e.romaji
                                .as_deref()
                                .filter(|n| domain_ok && local_part_matches_name(local, n))
                                .map(|n| format!("local part matches the sender's name ({n})"))
                        };
                        if let Some(detail) = detail {
                            out.push(Hit {
                                detail: Some(detail),
                                ..hit(
                                    Location::Recipient {
                                        address: a.to_string(),
                                    },
                                    a.to_string(),
                                )
                            });
                        }
                    }
                }
            }
            (Condition::FirstContact {}, _)
                if facts.sender.as_deref().is_some_and(|s| dir.is_ours(s)) =>
            {
                let mut seen: Vec<&str> = Vec::new();
                for a in facts.external_recipients(dir) {
                    let Some(d) = domain_of(a) else { continue };
                    if seen.contains(&d) {
                        continue;
                    }
                    seen.push(d);
                    if !history.has_mailed_domain(d, facts.time) {
                        out.push(Hit {
                            detail: Some(format!("first mail to {d}")),
                            ..hit(
                                Location::Recipient {
                                    address: a.to_string(),
                                },
                                a.to_string(),
                            )
                        });
                    }
                }
            }
            (Condition::ExternalRecipients { min }, _) => {
                let ext = facts.external_recipients(dir);
                if ext.len() >= *min && !ext.is_empty() {
                    out.push(Hit {
                        detail: Some(format!("{} outside recipients", ext.len())),
                        ..hit(Location::Message, ext.len().to_string())
                    });
                }
            }
            (Condition::Bcc { min, external_only }, _) => {
                let bcc: Vec<&str> = facts
                    .bcc()
                    .map(|r| r.address.as_str())
                    .filter(|a| !*external_only || !dir.is_ours(a))
                    .collect();
                if bcc.len() >= (*min).max(1) {
                    out.extend(bcc.iter().map(|a| {
                        hit(
                            Location::Recipient {
                                address: a.to_string(),
                            },
                            a.to_string(),
                        )
                    }));
                }
            }
            (Condition::WatchList { party, .. }, Compiled::People(lists)) => {
                let mut check = |loc: Location, a: &str| {
                    if let Some(list) = on_watch(a, lists, dir, facts, self.leaver_days) {
                        out.push(Hit {
                            detail: Some(list),
                            ..hit(loc, a.to_string())
                        });
                    }
                };
                if matches!(party, Party::Sender | Party::Any) {
                    if let Some(s) = facts.sender.as_deref() {
                        check(Location::Sender, s);
                    }
                }
                if matches!(party, Party::Recipient | Party::Any) {
                    for a in facts.recipient_addresses() {
                        check(
                            Location::Recipient {
                                address: a.to_string(),
                            },
                            a,
                        );
                    }
                }
            }
            (Condition::ExecutableAttachment {}, _) => {
                for (i, (a, s)) in facts.attachments.iter().zip(p.sniffed()).enumerate() {
                    let inner = a.inner_names.iter().find(|n| executable_name(n));
                    let reason = s
                        .executable_reason
                        .clone()
                        .or_else(|| inner.map(|n| format!("archive contains {n}")));
                    if let Some(reason) = reason {
                        out.push(Hit {
                            detail: Some(reason),
                            ..hit(
                                Location::Attachment { attachment: i },
                                a.filename.clone().unwrap_or_default(),
                            )
                        });
                    }
                }
            }
            (Condition::MacroAttachment {}, _) => {
                for (i, (a, s)) in facts.attachments.iter().zip(p.sniffed()).enumerate() {
                    let inner = a
                        .inner_names
                        .iter()
                        .any(|n| n.to_ascii_lowercase().ends_with("vbaproject.bin"));
                    if s.macros || inner {
                        out.push(hit(
                            Location::Attachment { attachment: i },
                            a.filename.clone().unwrap_or_default(),
                        ));
                    }
                }
            }
            (Condition::EncryptedArchive {}, _) => {
                for (i, (a, s)) in facts.attachments.iter().zip(p.sniffed()).enumerate() {
                    if a.encrypted || s.encrypted {
                        out.push(hit(
                            Location::Attachment { attachment: i },
                            a.filename.clone().unwrap_or_default(),
                        ));
                    }
                }
            }
            (
                Condition::Ppap {
                    within_minutes,
                    require_password_word,
                },
                _,
            ) => {
                out = self.ppap(
                    index,
                    c,
                    p,
                    history,
                    *within_minutes,
                    *require_password_word,
                );
            }
            (Condition::AttachmentSize { min_bytes, total }, _) => {
                if *total {
                    let sum: u64 = facts.attachments.iter().map(|a| a.size).sum();
                    if sum >= *min_bytes && !facts.attachments.is_empty() {
                        out.push(Hit {
                            detail: Some(format!("{sum} bytes in all")),
                            ..hit(Location::Message, sum.to_string())
                        });
                    }
                } else {
                    for (i, a) in facts.attachments.iter().enumerate() {
                        if a.size >= *min_bytes {
                            out.push(Hit {
                                detail: Some(format!("{} bytes", a.size)),
                                ..hit(
                                    Location::Attachment { attachment: i },
                                    a.filename.clone().unwrap_or_default(),
                                )
                            });
                        }
                    }
                }
            }
            (
                Condition::OffHours {
                    outside_hours,
                    weekends,
                    holidays,
                },
                _,
            ) => {
                let cal = &self.calendar;
                let local = facts.time.with_timezone(&cal.timezone);
                let when = local.format("%Y-%m-%d %H:%M (%a)").to_string();
                let date = local.date_naive();
                let reason = if *holidays && cal.holidays.contains_key(&date) {
                    cal.holidays.get(&date).map(|n| format!("holiday: {n}"))
                } else if *weekends && !cal.workdays.contains(&date.weekday()) {
                    Some("not a working day".to_string())
                } else if *outside_hours
                    && (local.time() < cal.work_start || local.time() >= cal.work_end)
                {
                    Some(format!(
                        "outside working hours {}–{}",
                        cal.work_start.format("%H:%M"),
                        cal.work_end.format("%H:%M")
                    ))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    out.push(Hit {
                        detail: Some(reason),
                        ..hit(Location::Message, when)
                    });
                }
            }
            (Condition::AuthFailure { checks }, _) => {
                for check in checks {
                    let (name, verdict) = match check {
                        AuthCheck::Spf => ("spf", facts.auth.spf.as_deref()),
                        AuthCheck::Dkim => ("dkim", facts.auth.dkim.as_deref()),
                        AuthCheck::Dmarc => ("dmarc", facts.auth.dmarc.as_deref()),
                    };
                    if let Some(v) = auth_failed(verdict) {
                        out.push(hit(Location::Message, format!("{name}={v}")));
                    }
                }
            }
            (Condition::DisplayNameImpersonation {}, _) => {
                let outside = facts.sender.as_deref().is_some_and(|s| !dir.is_ours(s));
                if let (true, Some(name)) = (outside, facts.from_display_name.as_deref()) {
                    let normalized = normalize_person_name(name);
                    if !normalized.is_empty() && dir.has_employee_named(&normalized) {
                        out.push(Hit {
                            detail: facts
                                .sender
                                .as_ref()
                                .map(|s| format!("an employee's name from {s}")),
                            ..hit(Location::FromDisplayName, name.to_string())
                        });
                    }
                }
            }
            (Condition::LookalikeDomain { max_distance }, _) => {
                let ours = dir.our_domains();
                let mut candidates: Vec<(Location, &str)> = Vec::new();
                if let Some(s) = facts.sender.as_deref() {
                    candidates.push((Location::Sender, s));
                }
                if let Some(r) = facts.reply_to.as_deref() {
                    candidates.push((Location::ReplyTo, r));
                }
                for a in facts.recipient_addresses() {
                    candidates.push((
                        Location::Recipient {
                            address: a.to_string(),
                        },
                        a,
                    ));
                }
                for (loc, a) in candidates {
                    let Some(d) = domain_of(a) else { continue };
                    if let Some(l) = look_alike(d, ours, *max_distance) {
                        let how = if l.confusable {
                            "confusable characters"
                        } else {
                            "edit distance"
                        };
                        out.push(Hit {
                            detail: Some(format!(
                                "looks like {} ({how}, distance {})",
                                l.ours, l.distance
                            )),
                            ..hit(loc, a.to_string())
                        });
                    }
                }
            }
            (Condition::ReplyToDiffers {}, _) => {
                if let (Some(r), Some(s)) = (facts.reply_to.as_deref(), facts.sender.as_deref()) {
                    let (rd, sd) = (domain_of(r), domain_of(s));
                    if rd.is_some() && rd != sd {
                        out.push(Hit {
                            detail: Some(format!("From is {s}")),
                            ..hit(Location::ReplyTo, r.to_string())
                        });
                    }
                }
            }
            // Compilation pairs every condition with its compiled form; a
            // mismatch cannot happen, and would simply not match.
            _ => {}
        }
        out
    }

    fn ppap(
        &self,
        index: usize,
        c: &Condition,
        p: &Prepared,
        history: &dyn History,
        within_minutes: u32,
        require_word: bool,
    ) -> Vec<Hit> {
        let facts = p.facts;
        if !facts.attachments.is_empty() {
            return Vec::new();
        }
        let Some(sender) = facts.sender.as_deref() else {
            return Vec::new();
        };
        let mine = facts.recipient_addresses();
        if mine.is_empty() {
            return Vec::new();
        }
        let since = facts.time - Duration::minutes(i64::from(within_minutes));
        let prior = history
            .messages_from(sender, since, facts.time)
            .into_iter()
            .filter(|m| m.encrypted_archive && m.time <= facts.time && m.time >= since)
            .filter(|m| {
                mine.iter()
                    .all(|a| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(a)))
            })
            .max_by_key(|m| m.time);
        let Some(prior) = prior else {
            return Vec::new();
        };
        let base = Hit {
            condition: index,
            condition_type: c.type_name(),
            location: Location::Message,
            text: String::new(),
            span: None,
            detail: Some(format!(
                "follows an encrypted archive sent at {}",
                prior.time.format("%Y-%m-%d %H:%M:%S UTC")
            )),
            related_message: Some(prior.id.clone()),
        };
        if !require_word {
            return vec![base];
        }
        let mut out = Vec::new();
        for (loc, t) in p.texts(&[TextField::Subject, TextField::Body]) {
            let scan = p.scan(t);
            for kw in &self.password_words {
                if let Some(&(s, e)) = kw.find_with(t.normalized(), &scan).first() {
                    let span = t.original_span(s, e);
                    out.push(Hit {
                        location: loc.clone(),
                        text: t.original_text(&span).to_string(),
                        span: Some(span),
                        ..base.clone()
                    });
                    break;
                }
            }
        }
        out
    }
}
