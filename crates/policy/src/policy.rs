//! Compiling rule files into a [`Policy`], and the errors that can stop it.
//!
//! Compilation does every check that can fail — patterns, list and
//! watch-list names, times, time zones, duplicate ids — so that evaluation
//! itself cannot fail: a policy that compiled evaluates any message. Errors
//! carry the file, the line (and column for syntax errors), the rule's id
//! and the key, because the person reading them is an administrator with a
//! text editor, not a developer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveTime, Weekday};
use regex::Regex;

use crate::rules::{CalendarConfig, Condition, Rule, RuleFile};
use crate::text::{Keyword, KeywordIndex};

/// The shipped lists, editable by defining a list of the same name.
pub const STARTER_CONFIDENTIAL: &str = include_str!("../data/keywords_confidential.txt");
pub const STARTER_PASSWORD: &str = include_str!("../data/keywords_password.txt");
pub const STARTER_FREEMAIL: &str = include_str!("../data/domains_freemail.txt");
pub const STARTER_CARRIER: &str = include_str!("../data/domains_carrier.txt");
pub const JAPANESE_HOLIDAYS: &str = include_str!("../data/holidays_jp.txt");

/// Example rule files shipped with mailtrail (file name, text).
pub const EXAMPLE_RULES: &[(&str, &str)] = &[
    ("leakage.toml", include_str!("../data/rules/leakage.toml")),
    (
        "attachments.toml",
        include_str!("../data/rules/attachments.toml"),
    ),
    ("inbound.toml", include_str!("../data/rules/inbound.toml")),
    ("people.toml", include_str!("../data/rules/people.toml")),
];

/// The name of the automatic watch-list.
pub const LEAVERS: &str = "leavers";

/// Longest compiled form of one user pattern (bytes of the regex program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Entries of a shipped list file: one a line, `#` comments, blank lines skipped.
pub fn list_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a policy did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid TOML or does not fit the rule model (unknown
    /// key, wrong type, missing key).
    #[error("{source_name}:{line}:{column}: {}{message}", rule_prefix(rule.as_deref()))]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        /// The rule the error is in (its id, or `#n` when it has none yet).
        rule: Option<String>,
        message: String,
    },
    /// A value the model accepts but that cannot work (bad pattern, unknown
    /// list, bad time).
    #[error("{source_name}:{line}: {}{field}: {message}", rule_prefix(rule.as_deref()))]
    Invalid {
        source_name: String,
        line: usize,
        rule: Option<String>,
        /// The key, as a path inside the rule (`condition[2].patterns[0]`).
        field: String,
        message: String,
    },
}

fn rule_prefix(rule: Option<&str>) -> String {
    rule.map(|r| format!("rule `{r}`: ")).unwrap_or_default()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, col)
}

/// Byte offsets of the `[[rule]]` headers of a file, in order.
fn rule_header_offsets(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("[[") {
            let name = rest.split("]]").next().unwrap_or_default().trim();
            if name == "rule" {
                out.push(offset);
            }
        }
        offset += line.len();
    }
    out
}

/// The id (or `#n`) of the rule a byte offset falls into.
fn rule_at(text: &str, offset: usize) -> Option<String> {
    let headers = rule_header_offsets(text);
    let index = headers.iter().rposition(|&h| h <= offset)?;
    let id = toml::from_str::<toml::Table>(text).ok().and_then(|t| {
        t.get("rule")?
            .as_array()?
            .get(index)?
            .get("id")?
            .as_str()
            .map(str::to_string)
    });
    Some(id.unwrap_or_else(|| format!("#{}", index + 1)))
}

/// The offset of the first line at or after `from` that assigns `key`.
fn key_offset(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if start + line.len() <= from {
            continue;
        }
        let t = line.trim_start();
        let assigned = t
            .strip_prefix(key)
            .or_else(|| t.strip_prefix(&format!("\"{key}\"")))
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if assigned {
            return Some(start + (line.len() - t.len()));
        }
    }
    None
}

/// Parse one rule file (no cross-file checks; see [`Policy::compile`]).
pub fn parse_rule_file(source_name: &str, text: &str) -> Result<RuleFile, PolicyError> {
    toml::from_str::<RuleFile>(text).map_err(|e| {
        let mut offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_string();
        // serde reports an unknown key at the table that holds it; point
        // at the key itself, the line the administrator has to change.
        if let Some(key) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if let Some(at) = key_offset(text, offset, key) {
                offset = at;
            }
        }
        let (line, column) = line_col(text, offset);
        PolicyError::Syntax {
            source_name: source_name.to_string(),
            line,
            column,
            rule: rule_at(text, offset),
            message,
        }
    })
}

/// Working time, compiled.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub timezone: chrono_tz::Tz,
    pub work_start: NaiveTime,
    pub work_end: NaiveTime,
    pub workdays: Vec<Weekday>,
    pub holidays: BTreeMap<NaiveDate, String>,
}

impl Calendar {
    /// The shipped Japanese holidays (2025–2027).
    pub fn japanese_holidays() -> BTreeMap<NaiveDate, String> {
        JAPANESE_HOLIDAYS
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let (date, name) = l.trim().split_once(' ')?;
                let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
                Some((date, name.trim().to_string()))
            })
            .collect()
    }

    fn compile(config: &CalendarConfig) -> Result<Calendar, (String, String)> {
        let timezone: chrono_tz::Tz = config.timezone.parse().map_err(|_| {
            (
                "timezone".to_string(),
                format!("unknown time zone `{}`", config.timezone),
            )
        })?;
        let time = |key: &str, v: &str| {
            NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| {
                (
                    key.to_string(),
                    format!("`{v}` is not a time of day (HH:MM)"),
                )
            })
        };
        let work_start = time("work_start", &config.work_start)?;
        let work_end = time("work_end", &config.work_end)?;
        if work_end <= work_start {
            return Err(("work_end".into(), "must be after work_start".into()));
        }
        let mut workdays = Vec::new();
        for (i, d) in config.workdays.iter().enumerate() {
            let day: Weekday = d.parse().map_err(|_| {
                (
                    format!("workdays[{i}]"),
                    format!("`{d}` is not a weekday (mon … sun)"),
                )
            })?;
            if !workdays.contains(&day) {
                workdays.push(day);
            }
        }
        let mut holidays = if config.japanese_holidays {
            Calendar::japanese_holidays()
        } else {
            BTreeMap::new()
        };
        for (i, d) in config.extra_holidays.iter().enumerate() {
            let text = d.to_string();
            let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                (
                    format!("extra_holidays[{i}]"),
                    format!("`{text}` is not a date (YYYY-MM-DD)"),
                )
            })?;
            holidays.entry(date).or_insert_with(|| "休日".to_string());
        }
        Ok(Calendar {
            timezone,
            work_start,
            work_end,
            workdays,
            holidays,
        })
    }
}

impl Default for Calendar {
    fn default() -> Self {
        // The default configuration always compiles; fall back field by
        // field rather than unwrap.
        Calendar::compile(&CalendarConfig::default()).unwrap_or_else(|_| Calendar {
            timezone: chrono_tz::Asia::Tokyo,
            work_start: NaiveTime::MIN,
            work_end: NaiveTime::MIN,
            workdays: Vec::new(),
            holidays: BTreeMap::new(),
        })
    }
}

/// A condition with its lists resolved and patterns compiled.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    None,
    Keywords(Vec<Keyword>),
    Regex(Vec<Regex>),
    Domains(Vec<String>),
    People(Vec<WatchRef>),
}

/// A watch-list as a condition or scope refers to it.
#[derive(Debug, Clone)]
pub(crate) enum WatchRef {
    Leavers,
    Named(String, BTreeSet<String>),
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    /// Where it was defined (`file:line`).
    pub origin: String,
    pub(crate) conditions: Vec<Compiled>,
    pub(crate) scope_lists: Vec<WatchRef>,
}

/// A compiled set of rule files: what evaluation runs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Vec<CompiledRule>,
    pub calendar: Calendar,
    pub leaver_days: u32,
    pub(crate) password_words: Vec<Keyword>,
    pub(crate) our_lists: BTreeMap<String, Vec<String>>,
    /// Every keyword of every rule (and the password words), in one automaton.
    pub(crate) keyword_index: KeywordIndex,
}

impl Policy {
    /// Compile rule files given as (source name, text), e.g. the files of
    /// `<config>/rules/` sorted by name. Lists and watch-lists are shared by
    /// all files; a name defined twice, or a rule id used twice, is an error.
    pub fn compile(files: &[(&str, &str)]) -> Result<Policy, PolicyError> {
        let mut parsed = Vec::with_capacity(files.len());
        for (name, text) in files {
            parsed.push((*name, *text, parse_rule_file(name, text)?));
        }
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        lists.insert("confidential".into(), list_entries(STARTER_CONFIDENTIAL));
        lists.insert("password".into(), list_entries(STARTER_PASSWORD));
        lists.insert("freemail".into(), list_entries(STARTER_FREEMAIL));
        lists.insert("carrier".into(), list_entries(STARTER_CARRIER));
        let mut list_origin: BTreeMap<String, &str> = BTreeMap::new();
        let mut watch: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut calendar: Option<(Calendar, &str)> = None;
        let mut leaver_days = 30;
        let invalid =
            |source: &str, line: usize, rule: Option<&str>, field: String, message: String| {
                PolicyError::Invalid {
                    source_name: source.to_string(),
                    line,
                    rule: rule.map(str::to_string),
                    field,
                    message,
                }
            };
        let key_line = |text: &str, key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map_or(1, |i| i + 1)
        };
        for (name, text, file) in &parsed {
            for (list, entries) in &file.lists {
                if let Some(first) = list_origin.insert(list.clone(), name) {
                    return Err(invalid(
                        name,
                        key_line(text, list),
                        None,
                        format!("lists.{list}"),
                        format!("list `{list}` is already defined in {first}"),
                    ));
                }
                lists.insert(list.clone(), entries.clone());
            }
            for (list, people) in &file.watch_lists {
                if list == LEAVERS {
                    return Err(invalid(
                        name,
                        key_line(text, list),
                        None,
                        format!("watch_lists.{list}"),
                        "`leavers` is drawn from the directory; set [leavers] within_days instead"
                            .into(),
                    ));
                }
                let set: BTreeSet<String> =
                    people.iter().map(|p| p.trim().to_lowercase()).collect();
                if watch.insert(list.clone(), set).is_some() {
                    return Err(invalid(
                        name,
                        key_line(text, list),
                        None,
                        format!("watch_lists.{list}"),
                        format!("watch-list `{list}` is defined twice"),
                    ));
                }
            }
            if let Some(config) = &file.calendar {
                if let Some((_, first)) = &calendar {
                    return Err(invalid(
                        name,
                        key_line(text, "[calendar]"),
                        None,
                        "calendar".into(),
                        format!("the calendar is already set in {first}"),
                    ));
                }
                let compiled = Calendar::compile(config).map_err(|(field, message)| {
                    invalid(
                        name,
                        key_line(text, &field),
                        None,
                        format!("calendar.{field}"),
                        message,
                    )
                })?;
                calendar = Some((compiled, name));
            }
            if let Some(l) = &file.leavers {
                leaver_days = l.within_days;
            }
        }
        let password_words: Vec<Keyword> = lists
            .get("password")
            .into_iter()
            .flatten()
            .filter_map(|w| Keyword::new(w))
            .collect();
        let mut rules = Vec::new();
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for (name, text, file) in &parsed {
            let headers = rule_header_offsets(text);
            for (index, rule) in file.rules.iter().enumerate() {
                let line = headers.get(index).map_or(1, |&o| line_col(text, o).0);
                let origin = format!("{name}:{line}");
                let err = |field: String, message: String| {
                    invalid(name, line, Some(&rule.id), field, message)
                };
                if rule.id.trim().is_empty() {
                    return Err(invalid(
                        name,
                        line,
                        None,
                        "id".into(),
                        "a rule needs a non-empty id".into(),
                    ));
                }
                if let Some(first) = ids.insert(rule.id.clone(), origin.clone()) {
                    return Err(err(
                        "id".into(),
                        format!("the id is already used at {first}"),
                    ));
                }
                if rule.conditions.is_empty() {
                    return Err(err(
                        "condition".into(),
                        "a rule needs at least one [[rule.condition]]".into(),
                    ));
                }
                let resolve_watch =
                    |field: String, names: &[String]| -> Result<Vec<WatchRef>, PolicyError> {
                        names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| {
                                if n == LEAVERS {
                                    Ok(WatchRef::Leavers)
                                } else if let Some(set) = watch.get(n) {
                                    Ok(WatchRef::Named(n.clone(), set.clone()))
                                } else {
                                    Err(err(
                                        format!("{field}[{i}]"),
                                        format!("no watch-list named `{n}`"),
                                    ))
                                }
                            })
                            .collect()
                    };
                let resolve_lists =
                    |field: &str, names: &[String]| -> Result<Vec<String>, PolicyError> {
                        let mut out = Vec::new();
                        for (i, n) in names.iter().enumerate() {
                            match lists.get(n) {
                                Some(entries) => out.extend(entries.iter().cloned()),
                                None => {
                                    return Err(err(
                                        format!("{field}.lists[{i}]"),
                                        format!("no list named `{n}`"),
                                    ))
                                }
                            }
                        }
                        Ok(out)
                    };
                let scope_lists =
                    resolve_watch("scope.watch_lists".into(), &rule.scope.watch_lists)?;
                let mut conditions = Vec::with_capacity(rule.conditions.len());
                for (ci, c) in rule.conditions.iter().enumerate() {
                    let field = format!("condition[{ci}]");
                    let compiled = match c {
                        Condition::Keywords {
                            words,
                            lists: names,
                            min_count,
                            ..
                        } => {
                            let mut all: Vec<String> = words.clone();
                            all.extend(resolve_lists(&field, names)?);
                            let kws: Vec<Keyword> =
                                all.iter().filter_map(|w| Keyword::new(w)).collect();
                            if kws.is_empty() {
                                return Err(err(
                                    field,
                                    "no keywords: give `words` or `lists`".into(),
                                ));
                            }
                            if *min_count == 0 {
                                return Err(err(
                                    format!("{field}.min_count"),
                                    "must be at least 1".into(),
                                ));
                            }
                            Compiled::Keywords(kws)
                        }
                        Condition::Regex { patterns, .. } => {
                            if patterns.is_empty() {
                                return Err(err(
                                    format!("{field}.patterns"),
                                    "give at least one pattern".into(),
                                ));
                            }
                            let mut out = Vec::new();
                            for (pi, p) in patterns.iter().enumerate() {
                                let re = regex::RegexBuilder::new(p)
                                    .size_limit(REGEX_SIZE_LIMIT)
                                    .build()
                                    .map_err(|e| {
                                        err(format!("{field}.patterns[{pi}]"), e.to_string())
                                    })?;
                                if re.is_match("") {
                                    return Err(err(format!("{field}.patterns[{pi}]"),
                                        "the pattern matches empty text, so it would match every message".into()));
                                }
                                out.push(re);
                            }
                            Compiled::Regex(out)
                        }
                        Condition::RecipientDomain {
                            lists: names,
                            domains,
                            ..
                        } => {
                            let mut all: Vec<String> = domains.clone();
                            all.extend(resolve_lists(&field, names)?);
                            let all: Vec<String> = all
                                .iter()
                                .map(|d| {
                                    d.trim()
                                        .trim_start_matches('@')
                                        .trim_end_matches('.')
                                        .to_lowercase()
                                })
                                .filter(|d| !d.is_empty())
                                .collect();
                            if all.is_empty() {
                                return Err(err(
                                    field,
                                    "no domains: give `domains` or `lists`".into(),
                                ));
                            }
                            Compiled::Domains(all)
                        }
                        Condition::PrivateAddress { lists: names } => Compiled::Domains(
                            resolve_lists(&field, names)?
                                .iter()
                                .map(|d| d.to_lowercase())
                                .collect(),
                        ),
                        Condition::WatchList { lists: names, .. } => {
                            if names.is_empty() {
                                return Err(err(
                                    format!("{field}.lists"),
                                    "name at least one watch-list".into(),
                                ));
                            }
                            Compiled::People(resolve_watch(format!("{field}.lists"), names)?)
                        }
                        _ => Compiled::None,
                    };
                    conditions.push(compiled);
                }
                rules.push(CompiledRule {
                    rule: rule.clone(),
                    origin,
                    conditions,
                    scope_lists,
                });
            }
        }
        let mut password_words = password_words;
        let keyword_index = KeywordIndex::build(
            rules
                .iter_mut()
                .flat_map(|r: &mut CompiledRule| r.conditions.iter_mut())
                .filter_map(|c| match c {
                    Compiled::Keywords(k) => Some(k.iter_mut()),
                    _ => None,
                })
                .flatten()
                .chain(password_words.iter_mut()),
        );
        Ok(Policy {
            rules,
            calendar: calendar.map(|(c, _)| c).unwrap_or_default(),
            leaver_days,
            password_words,
            our_lists: lists,
            keyword_index,
        })
    }

    /// The shipped example rules, compiled.
    pub fn examples() -> Result<Policy, PolicyError> {
        Policy::compile(EXAMPLE_RULES)
    }

    /// A named keyword or domain list as the policy resolved it.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        self.our_lists.get(name).map(Vec::as_slice)
    }

    /// A rule by id.
    pub fn rule(&self, id: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.rule.id == id)
    }
}
