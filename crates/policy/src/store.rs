//! The policy engine over the store: the [`Directory`] and [`History`] the
//! store knows, the facts of a stored message, and the evaluation of the
//! messages the store queued for the rules.
//!
//! Why it is shaped this way:
//! - **The directory is read once, not per message.** Rules ask about
//!   people for every recipient of every message; [`StoreDirectory`] holds
//!   the whole directory (50,000 people are a few megabytes) in hash maps
//!   and is reloaded when an import or sync changed it.
//! - **History is asked of the store**, one indexed lookup per question
//!   (first contact: the `contacted_domains` table; PPAP: the sender's
//!   messages of the last minutes).
//! - **Evaluation drains a queue the store fills** in the transaction that
//!   stores a message ([`mailtrail_store::alerts`]), and records the
//!   alerts and takes the messages off the queue in one transaction:
//!   nothing is evaluated twice into two alerts, nothing is skipped by a
//!   crash.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mailtrail_model::directory::EmploymentStatus;
use mailtrail_store::alerts::{AlertStore, NewAlert};
use mailtrail_store::directory::DirectoryStore;
use mailtrail_store::{SqliteStore, Store, StoreError, StoredMessage};

use crate::eval::normalize_person_name;
use crate::facts::{Directory, Employee, EmployeeStatus, History, MessageFacts, PriorMessage};
use crate::rules::{Action, Severity};
use crate::{Policy, RuleMatch};

/// The directory as the rules see it, loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct StoreDirectory {
    domains: Vec<String>,
    by_address: HashMap<String, Employee>,
    names: HashSet<String>,
}

impl StoreDirectory {
    /// Everyone the directory lists now (people a source no longer lists
    /// are left out: they are not employees any more, and their mail was
    /// evaluated while they were).
    pub fn load(store: &dyn DirectoryStore, our_domains: &[String]) -> Result<Self, StoreError> {
        let mut by_address = HashMap::new();
        let mut names = HashSet::new();
        for stored in store.directory_people()? {
            if !stored.present {
                continue;
            }
            let p = stored.person;
            let Some(primary) = p.addresses.first().cloned() else {
                continue;
            };
            if let Some(name) = &p.name {
                let n = normalize_person_name(name);
                if !n.is_empty() {
                    names.insert(n);
                }
            }
            let employee = Employee {
                address: primary,
                name: p.name.clone(),
                romaji: p.romaji.clone(),
                department: p.department.clone(),
                status: match p.status {
                    EmploymentStatus::Active => EmployeeStatus::Active,
                    EmploymentStatus::OnLeave => EmployeeStatus::OnLeave,
                    EmploymentStatus::Resigned | EmploymentStatus::Disabled => {
                        EmployeeStatus::Resigned
                    }
                },
                leave_date: p.leave_date,
                private_addresses: p.private_addresses.clone(),
            };
            for a in &p.addresses {
                by_address
                    .entry(a.clone())
                    .or_insert_with(|| employee.clone());
            }
        }
        Ok(StoreDirectory {
            domains: our_domains.to_vec(),
            by_address,
            names,
        })
    }

    /// How many addresses it knows.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

impl Directory for StoreDirectory {
    fn our_domains(&self) -> &[String] {
        &self.domains
    }

    fn employee(&self, address: &str) -> Option<Employee> {
        self.by_address.get(address).cloned()
    }

    fn has_employee_named(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// The sending history, asked of the store. Answers about domains are
/// remembered: every first-contact rule asks the same of one message.
pub struct StoreHistory<'s> {
    store: &'s dyn AlertStore,
    first_contacts: std::cell::RefCell<HashMap<String, Option<DateTime<Utc>>>>,
}

impl<'s> StoreHistory<'s> {
    pub fn new(store: &'s dyn AlertStore) -> Self {
        StoreHistory {
            store,
            first_contacts: std::cell::RefCell::new(HashMap::new()),
        }
    }
}

impl History for StoreHistory<'_> {
    fn has_mailed_domain(&self, domain: &str, before: DateTime<Utc>) -> bool {
        let known = self.first_contacts.borrow().get(domain).copied();
        let first = match known {
            Some(first) => first,
            None => match self.store.first_contact(domain) {
                Ok(first) => {
                    self.first_contacts
                        .borrow_mut()
                        .insert(domain.to_string(), first);
                    first
                }
                // A store error must not raise "first contact" for every
                // message: when in doubt, the domain counts as known.
                Err(_) => return true,
            },
        };
        first.is_some_and(|first| first < before)
    }

    fn messages_from(
        &self,
        sender: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<PriorMessage> {
        self.store
            .sent_by(sender, since, until)
            .unwrap_or_default()
            .into_iter()
            .map(|m| PriorMessage {
                id: m.id.to_string(),
                time: m.time,
                recipients: m.recipients,
                encrypted_archive: m.encrypted_archive,
            })
            .collect()
    }
}

/// What of a stored message's raw form the rules read: its body text, and
/// its attachments' bytes (to judge files by their content). Reading either
/// means reading and parsing the raw message again, so only when a rule
/// needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    pub body: bool,
    pub attachment_content: bool,
}

impl Reads {
    /// What `rules` read, together.
    pub fn of<'r>(rules: impl IntoIterator<Item = &'r crate::CompiledRule>) -> Reads {
        rules.into_iter().fold(Reads::default(), |acc, rule| Reads {
            body: acc.body || needs_body(rule),
            attachment_content: acc.attachment_content || needs_attachment_content(rule),
        })
    }
}

/// The facts of a stored message, with what `reads` asks for decoded from
/// the raw message as on import; messages known only from logs (and
/// messages whose raw form no longer decodes) are judged on what the store
/// says.
pub fn stored_facts(
    store: &dyn Store,
    message: &StoredMessage,
    decode: &mailtrail_ingest::DecodeOptions,
    reads: Reads,
) -> Result<MessageFacts, StoreError> {
    let wants_content = reads.attachment_content && !message.attachments.is_empty();
    if !(reads.body || wants_content) {
        return Ok(MessageFacts::from_stored(message, None));
    }
    let raw = match &message.content_hash {
        Some(hash) => store.raw_message(hash)?,
        None => None,
    };
    let Some(raw) = raw else {
        return Ok(MessageFacts::from_stored(message, None));
    };
    if !wants_content {
        let body = mailtrail_ingest::mime::body_text(&raw, decode)
            .ok()
            .flatten();
        return Ok(MessageFacts::from_stored(message, body));
    }
    let Ok((record, contents)) =
        mailtrail_ingest::mime::parse_with_attachment_content(&raw, decode)
    else {
        return Ok(MessageFacts::from_stored(message, None));
    };
    drop(raw);
    let body = if reads.body { record.body_text } else { None };
    let mut facts = MessageFacts::from_stored(message, body);
    // The stored attachments are the parsed ones; pair them by content hash
    // (the same file twice gets its bytes twice).
    for (parsed, bytes) in record.attachments.iter().zip(contents) {
        if let Some(stored) = facts
            .attachments
            .iter_mut()
            .find(|a| a.content.is_none() && a.blake3 == parsed.blake3)
        {
            stored.content = Some(bytes);
        }
    }
    Ok(facts)
}

/// An alert to record for a match: severity and assignee from the rule's
/// `alert` action (medium when it has none), channels from its `notify`
/// actions.
pub fn new_alert(message: i64, m: &RuleMatch) -> NewAlert {
    let mut severity = None;
    let mut assignee = None;
    let mut channels = Vec::new();
    for action in &m.actions {
        match action {
            Action::Alert {
                severity: s,
                assignee: a,
            } => {
                severity = Some(*s);
                assignee = a.clone();
            }
            Action::Notify { channels: c } => {
                for channel in c {
                    if !channels.contains(channel) {
                        channels.push(channel.clone());
                    }
                }
            }
            Action::Tag { .. } => {}
        }
    }
    NewAlert {
        rule: m.rule_id.clone(),
        rule_name: m.rule_name.clone(),
        message,
        severity: match severity.unwrap_or(Severity::Medium) {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
        .to_string(),
        hits: serde_json::to_value(&m.hits).unwrap_or_default(),
        assignee,
        channels,
    }
}

/// What one round of evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Messages taken off the queue.
    pub evaluated: usize,
    /// Ids of alerts raised for the first time.
    pub raised: Vec<i64>,
    /// Alerts whose matches changed with new facts.
    pub refreshed: usize,
}

/// Evaluate up to `batch` queued messages with `policy` and record the
/// result. A message that has disappeared (merged into another) is just
/// taken off the queue, and so is everything when no rule is enabled.
pub fn evaluate_pending(
    store: &mut SqliteStore,
    policy: &Policy,
    directory: &StoreDirectory,
    decode: &mailtrail_ingest::DecodeOptions,
    batch: u32,
) -> Result<Round, StoreError> {
    evaluate_pending_notifying_since(store, policy, directory, decode, batch, None)
}

/// [`evaluate_pending`], notifying only of messages from `notify_since` on:
/// alerts on older mail (a year of history imported today) are recorded for
/// the inbox but sent to nobody, so an import does not flood the channels.
pub fn evaluate_pending_notifying_since(
    store: &mut SqliteStore,
    policy: &Policy,
    directory: &StoreDirectory,
    decode: &mailtrail_ingest::DecodeOptions,
    batch: u32,
    notify_since: Option<DateTime<Utc>>,
) -> Result<Round, StoreError> {
    let ids = store.pending_evaluations(batch)?;
    if ids.is_empty() {
        return Ok(Round::default());
    }
    let mut alerts = Vec::new();
    let enabled: Vec<&crate::CompiledRule> =
        policy.rules.iter().filter(|r| r.rule.enabled).collect();
    // Bodies are decoded (the raw message read and parsed again) only when
    // an enabled rule reads them; with no rules the queue is just emptied.
    let reads = Reads::of(enabled.iter().copied());
    if !enabled.is_empty() {
        let _snapshot = store.read_snapshot()?;
        let history = StoreHistory::new(&*store);
        for message in store.messages_for_rules(&ids)? {
            let id = message.id;
            let facts = stored_facts(&*store, &message, decode, reads)?;
            let quiet = notify_since.is_some_and(|since| facts.time < since);
            for m in policy.evaluate(&facts, directory, &history) {
                let mut alert = new_alert(id, &m);
                if quiet {
                    alert.channels.clear();
                }
                alerts.push(alert);
            }
        }
    }
    let raised = store.record_evaluations(&ids, &alerts)?;
    Ok(Round {
        evaluated: ids.len(),
        raised: raised.iter().filter(|r| r.new).map(|r| r.id).collect(),
        refreshed: raised.iter().filter(|r| r.refreshed).count(),
    })
}

/// Quote a value for the query language: `"…"` with `"` and `\` escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether a keyword has something the search index can find (a letter,
/// digit or Japanese character); one that has not cannot narrow a search.
fn searchable(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric)
}

/// A search (in the query language) that finds every message `rule` can
/// match and, where the rule allows, far fewer: its directions, and the
/// keywords of its keyword conditions in the fields it reads (the rule's
/// keyword matching *is* the search's, so the index finds a superset).
/// `None` when nothing narrows it: every message is a candidate.
pub fn candidate_query(policy: &Policy, rule: &crate::CompiledRule) -> Option<String> {
    use crate::rules::{Combine, Condition, TextField};
    let mut parts: Vec<String> = Vec::new();
    let directions = &rule.rule.scope.directions;
    if !directions.is_empty() {
        parts.push(format!(
            "({})",
            directions
                .iter()
                .map(|d| format!("direction:{}", d.as_str()))
                .collect::<Vec<_>>()
                .join(" OR ")
        ));
    }
    let narrowing = |c: &Condition| -> Option<String> {
        match c {
            Condition::Keywords {
                words,
                lists,
                fields,
                ..
            } => {
                let mut all: Vec<&str> = words.iter().map(String::as_str).collect();
                for l in lists {
                    all.extend(policy.list(l)?.iter().map(String::as_str));
                }
                if all.is_empty() || !all.iter().all(|w| searchable(w)) {
                    return None;
                }
                let mut operators: Vec<&str> = Vec::new();
                for f in fields {
                    let op = match f {
                        TextField::Subject => "subject",
                        TextField::Body => "body",
                        TextField::AttachmentNames | TextField::InnerNames => "filename",
                    };
                    if !operators.contains(&op) {
                        operators.push(op);
                    }
                }
                let terms: Vec<String> = all
                    .iter()
                    .flat_map(|w| {
                        operators
                            .iter()
                            .map(move |op| format!("{op}:{}", quoted(w)))
                    })
                    .collect();
                Some(format!("({})", terms.join(" OR ")))
            }
            Condition::ExecutableAttachment {}
            | Condition::MacroAttachment {}
            | Condition::EncryptedArchive {}
            | Condition::AttachmentSize { .. } => Some("has:attachment".into()),
            _ => None,
        }
    };
    let conditions: Vec<Option<String>> = rule.rule.conditions.iter().map(narrowing).collect();
    match rule.rule.combine {
        Combine::All => parts.extend(conditions.into_iter().flatten()),
        Combine::Any => {
            if !conditions.is_empty() && conditions.iter().all(Option::is_some) {
                parts.push(format!(
                    "({})",
                    conditions
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" OR ")
                ));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Whether evaluating `rule` needs message bodies (decoded from the raw
/// message, the costly part of a retro-hunt).
pub fn needs_body(rule: &crate::CompiledRule) -> bool {
    use crate::rules::{Condition, TextField};
    rule.rule.conditions.iter().any(|c| match c {
        Condition::Keywords { fields, .. }
        | Condition::Regex { fields, .. }
        | Condition::CreditCard { fields }
        | Condition::MyNumber { fields } => fields.contains(&TextField::Body),
        Condition::Ppap {
            require_password_word,
            ..
        } => *require_password_word,
        _ => false,
    })
}

/// Whether `rule` judges attachments by their bytes (executables and
/// macros are recognised by content, whatever the file is called).
pub fn needs_attachment_content(rule: &crate::CompiledRule) -> bool {
    use crate::rules::Condition;
    rule.rule.conditions.iter().any(|c| {
        matches!(
            c,
            Condition::ExecutableAttachment {} | Condition::MacroAttachment {}
        )
    })
}

/// What a retro-hunt looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HuntStats {
    /// Messages of the period the index left as candidates.
    pub candidates: u64,
    /// Messages that matched.
    pub matched: u64,
}

/// What a retro-hunt reads: the store, the rules, the directory, and how
/// raw messages are decoded.
pub struct Hunt<'a> {
    pub store: &'a SqliteStore,
    pub policy: &'a Policy,
    pub directory: &'a StoreDirectory,
    pub decode: &'a mailtrail_ingest::DecodeOptions,
}

/// Run one rule (enabled or not) over the messages `period` selects,
/// candidates first narrowed by [`candidate_query`] through the index;
/// `on_match` sees each match, oldest first, as the rules read it: without
/// its deliveries ([`SqliteStore::messages_for_rules`]; a caller that shows
/// them loads the message). `parse` turns query text into the store's query
/// (the caller's time zone and clock). Nothing is written.
pub fn retro_hunt(
    hunt: &Hunt<'_>,
    rule_id: &str,
    period: &mailtrail_store::query::Expr,
    parse: &dyn Fn(&str) -> Result<mailtrail_store::query::Expr, String>,
    on_match: &mut dyn FnMut(&StoredMessage, RuleMatch) -> Result<(), StoreError>,
) -> Result<HuntStats, StoreError> {
    let Hunt {
        store,
        policy,
        directory,
        decode,
    } = *hunt;
    use mailtrail_store::query::Expr;
    let Some(rule) = policy.rule(rule_id) else {
        return Err(StoreError::Invalid(format!("no rule {rule_id:?}")));
    };
    let query = match candidate_query(policy, rule) {
        Some(text) => {
            let narrowing = parse(&text).map_err(StoreError::Invalid)?;
            Expr::And(vec![period.clone(), narrowing])
        }
        None => period.clone(),
    };
    let _snapshot = store.read_snapshot()?;
    let ids = store.matching_ids(&query)?;
    let reads = Reads::of([rule]);
    let history = StoreHistory::new(store);
    let mut stats = HuntStats {
        candidates: ids.len() as u64,
        matched: 0,
    };
    // Two stages on two cores: a reader connection loads the candidates in
    // chunks while this thread judges the chunk before (loading is about
    // half of the work). A bounded channel keeps at most a few chunks in
    // memory, and the matches come out in the candidates' order.
    let reader = store.reader()?;
    let (loaded, chunks) =
        std::sync::mpsc::sync_channel::<Result<Vec<StoredMessage>, StoreError>>(2);
    std::thread::scope(|scope| {
        let ids = &ids;
        scope.spawn(move || {
            let snapshot = reader.read_snapshot();
            if let Err(e) = snapshot {
                let _ = loaded.send(Err(e));
                return;
            }
            for chunk in ids.chunks(512) {
                let batch = reader.messages_for_rules(chunk);
                let failed = batch.is_err();
                // The judge stopped (an error): stop loading.
                if loaded.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        for batch in chunks {
            for message in batch? {
                let facts = stored_facts(store, &message, decode, reads)?;
                if let Some(m) = policy.evaluate_rule(rule_id, &facts, directory, &history) {
                    stats.matched += 1;
                    on_match(&message, m)?;
                }
            }
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(stats)
}
