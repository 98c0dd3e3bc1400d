//! Postfix log correlation: fold the lines of one queue file into one
//! [`MessageRecord`].
//!
//! Why it is shaped this way:
//!
//! - Postfix logs one message across several daemons (smtpd / pickup →
//!   cleanup → qmgr → smtp, local, … → qmgr `removed`), linked only by
//!   host + queue id. The correlator keeps one open entry per
//!   `(host, queue id)` and emits it as a record when qmgr says `removed`,
//!   when the input ends, or — to bound memory on logs whose `removed`
//!   lines are missing — when more than [`DEFAULT_MAX_OPEN`] entries are
//!   open (the oldest is emitted as a partial record; the store merges
//!   partial records by key).
//! - Every event becomes a [`Delivery`] with a status, because the store's
//!   statistics count deliveries by status and `mailtrail stats` must agree
//!   with `pflogsumm` on the same file. The mapping follows pflogsumm's
//!   counting rules (read from `/usr/sbin/pflogsumm` 1.1.5):
//!   * received = one per smtpd `client=` line and per pickup `uid=`/`sender=`
//!     line → one `Received` delivery (recipient `""` = the whole message);
//!   * delivered = one per `status=sent` line except `forwarded as` (those
//!     are `Forwarded`) → `Delivered`;
//!   * deferred = **messages** with at least one `status=deferred` line (the
//!     lines themselves are pflogsumm's "deferrals") → one `Deferred`
//!     delivery per queue file, at its first deferral, whose detail says how
//!     often it was deferred;
//!   * bounced = one per `status=bounced` line → `Bounced`;
//!   * rejected = one per smtpd/postscreen `reject:` line (NOQUEUE or queued)
//!     and per cleanup `reject:`/`milter-reject:` of a header, body or
//!     END-OF-MESSAGE → `Rejected`. We also count smtpd `milter-reject:`
//!     lines as `Rejected` (they are rejections); pflogsumm 1.1.5 does not
//!     count those, the one intentional difference.
//!   * `status=expired` (qmgr) → `Expired`, `hold:` → `Quarantined`,
//!     `discard:` → `Failed` (pflogsumm's "held"/"discarded", not in the five).
//! - Lines are matched by plain prefix and substring scans, no regex: the
//!   hot path is a hash lookup and a few `starts_with`.
//! - Child queue files (`forwarded as NEWQID`, a content filter's
//!   `queued as NEWQID` on a loopback relay) carry the parent's key and
//!   Message-ID so the store folds them into the parent message.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Delivery, DeliveryStatus,
    MessageRecord, Recipient, RecipientKind,
};

use crate::syslog::{LineRef, SyslogLine};
use crate::{DecodeOptions, Sink, SinkError};

/// Open queue entries kept before the oldest is emitted as a partial record.
pub const DEFAULT_MAX_OPEN: usize = 200_000;

/// Folds Postfix syslog lines into message records.
pub struct Correlator {
    open: HashMap<String, Entry>,
    /// Insertion order of open entries (key, generation); stale pairs are skipped.
    order: VecDeque<(String, u64)>,
    generation: u64,
    max_open: usize,
    scratch: String,
    /// NOQUEUE rejects of the current second, to number identical ones.
    noqueue_second: i64,
    noqueue_seen: Vec<(String, u32)>,
}

struct Entry {
    generation: u64,
    system: String,
    qid: String,
    first_seen: DateTime<Utc>,
    message_id: Option<String>,
    envelope_from: Option<String>,
    size: Option<u64>,
    subject: Option<String>,
    client_ip: Option<String>,
    client_host: Option<String>,
    recipients: Vec<Recipient>,
    deliveries: Vec<Delivery>,
    extra_keys: Vec<String>,
    deferred_at: Option<usize>,
    deferrals: u32,
}

impl Entry {
    fn key(&self) -> String {
        format!("{}:{}", self.system, self.qid)
    }

    fn delivery(&self, time: DateTime<Utc>, recipient: String, status: DeliveryStatus) -> Delivery {
        Delivery {
            time,
            recipient,
            status,
            detail: None,
            system: self.system.clone(),
            relay: None,
            client_ip: None,
            client_host: None,
            local_id: Some(self.qid.clone()),
            original_recipient: None,
        }
    }

    fn add_recipient(&mut self, address: &str) {
        if let Some(r) = Recipient::new(address, None, RecipientKind::Envelope) {
            merge_recipient(&mut self.recipients, r);
        }
    }

    fn into_record(mut self) -> MessageRecord {
        let mut keys = vec![self.key()];
        for k in self.extra_keys {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        if let (Some(i), true) = (self.deferred_at, self.deferrals > 1) {
            if let Some(d) = self.deliveries.get_mut(i) {
                let base = d.detail.take().unwrap_or_default();
                d.detail = Some(format!("{base} [deferred {} times]", self.deferrals));
            }
        }
        MessageRecord {
            keys,
            message_id: self.message_id,
            first_seen: Some(self.first_seen),
            envelope_from: self.envelope_from,
            recipients: self.recipients,
            subject: self.subject,
            size: self.size,
            client_ip: self.client_ip,
            systems: vec![self.system],
            deliveries: self.deliveries,
            ..MessageRecord::default()
        }
    }
}

impl Correlator {
    pub fn new(_opts: &DecodeOptions) -> Self {
        Self::with_max_open(DEFAULT_MAX_OPEN)
    }

    /// A correlator that keeps at most `max_open` queue entries open.
    pub fn with_max_open(max_open: usize) -> Self {
        Correlator {
            open: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            max_open: max_open.max(1),
            scratch: String::new(),
            noqueue_second: i64::MIN,
            noqueue_seen: Vec::new(),
        }
    }

    /// Queue entries currently open.
    pub fn open_messages(&self) -> usize {
        self.open.len()
    }

    /// Fold one Postfix line in; emits records whose life ended.
    pub fn feed(
        &mut self,
        line: &SyslogLine<'_>,
        _at: LineRef<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let daemon = line.program.rsplit('/').next().unwrap_or(line.program);
        let Some((qid, rest)) = split_queue_id(line.message) else {
            return Ok(());
        };
        if qid == "NOQUEUE" {
            return self.noqueue(line, rest, sink);
        }
        if rest == "removed" {
            self.set_key(line.host, qid);
            if let Some(entry) = self.open.remove(self.scratch.as_str()) {
                sink.record(entry.into_record())?;
            }
            return Ok(());
        }
        let _ = self.queued_line(line, daemon, qid, rest);
        self.enforce_cap(sink)
    }

    /// A line of an open queue file (not `removed`, not NOQUEUE).
    fn queued_line(
        &mut self,
        line: &SyslogLine<'_>,
        daemon: &str,
        qid: &str,
        rest: &str,
    ) -> Option<()> {
        let t = line.time;
        if let Some(v) = rest.strip_prefix("to=") {
            self.delivery_line(line, qid, v);
        } else if let Some(v) = rest.strip_prefix("client=") {
            let (host, ip) = split_client(v.split(',').next().unwrap_or(v));
            let sasl = find_value(v, "sasl_username=").map(|u| format!("sasl_username={u}"));
            let received = matches!(daemon, "smtpd" | "qmqpd");
            let e = self.entry(line.host, qid, t)?;
            e.client_ip = e.client_ip.take().or_else(|| ip.map(str::to_string));
            e.client_host = e.client_host.take().or_else(|| host.map(str::to_string));
            if received {
                let mut d = e.delivery(t, String::new(), DeliveryStatus::Received);
                d.client_ip = ip.map(str::to_string);
                d.client_host = host.map(str::to_string);
                d.detail = sasl;
                e.deliveries.push(d);
            }
        } else if daemon == "pickup" && (rest.starts_with("uid=") || rest.starts_with("sender=")) {
            let from = find_angle(rest, "from=<");
            let e = self.entry(line.host, qid, t)?;
            if let Some(f) = from {
                e.envelope_from = e.envelope_from.take().or_else(|| normalize_address(f));
            }
            let mut d = e.delivery(t, String::new(), DeliveryStatus::Received);
            d.detail = Some(format!("pickup {}", rest.split(' ').next().unwrap_or("")));
            e.deliveries.push(d);
        } else if let Some(v) = rest.strip_prefix("message-id=") {
            let e = self.entry(line.host, qid, t)?;
            if e.message_id.is_none() {
                e.message_id = normalize_message_id(v);
            }
        } else if let Some(v) = rest.strip_prefix("from=<") {
            let (from, after) = v.split_once('>').unwrap_or((v, ""));
            let e = self.entry(line.host, qid, t)?;
            let is_queue_active = after.starts_with(", size=");
            // qmgr's sender is the rewritten, qualified one: it wins over pickup's.
            if e.envelope_from.is_none() || is_queue_active {
                e.envelope_from = normalize_address(from);
            }
            if let Some(size) = find_value(after, "size=") {
                e.size = size.parse().ok().or(e.size);
            } else if after.contains("status=expired") {
                let mut d = e.delivery(t, String::new(), DeliveryStatus::Expired);
                d.detail = Some(after.trim_start_matches([',', ' ']).to_string());
                e.deliveries.push(d);
            }
        } else if let Some(v) = rest.strip_prefix("warning: header ") {
            if let Some(value) = header_value(v, "subject") {
                let subject = decode_subject(strip_log_context(value));
                let e = self.entry(line.host, qid, t)?;
                if e.subject.is_none() && !subject.is_empty() {
                    e.subject = Some(subject);
                }
            }
        } else if let Some((kind, text)) = split_action(rest) {
            self.queued_action(line, daemon, qid, kind, text);
        }
        Some(())
    }

    /// Emit everything still open (end of input), oldest first.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let mut entries: Vec<Entry> = self.open.drain().map(|(_, e)| e).collect();
        entries.sort_by_key(|e| e.generation);
        self.order.clear();
        for e in entries {
            sink.record(e.into_record())?;
        }
        Ok(())
    }

    fn set_key(&mut self, host: &str, qid: &str) {
        self.scratch.clear();
        self.scratch.push_str(host);
        self.scratch.push('\u{1}');
        self.scratch.push_str(qid);
    }

    /// The open entry of `(host, qid)`, created if absent. (`None` cannot
    /// happen — the key is inserted first — but keeps this panic-free.)
    fn entry(&mut self, host: &str, qid: &str, time: DateTime<Utc>) -> Option<&mut Entry> {
        self.set_key(host, qid);
        if !self.open.contains_key(self.scratch.as_str()) {
            self.generation += 1;
            let key = self.scratch.clone();
            self.order.push_back((key.clone(), self.generation));
            self.open.insert(
                key,
                Entry {
                    generation: self.generation,
                    system: format!("postfix@{host}"),
                    qid: qid.to_string(),
                    first_seen: time,
                    message_id: None,
                    envelope_from: None,
                    size: None,
                    subject: None,
                    client_ip: None,
                    client_host: None,
                    recipients: Vec::new(),
                    deliveries: Vec::new(),
                    extra_keys: Vec::new(),
                    deferred_at: None,
                    deferrals: 0,
                },
            );
        }
        let e = self.open.get_mut(self.scratch.as_str())?;
        if time < e.first_seen {
            e.first_seen = time;
        }
        Some(e)
    }

    fn enforce_cap(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        while self.open.len() > self.max_open {
            let Some((key, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .open
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                if let Some(e) = self.open.remove(&key) {
                    sink.record(e.into_record())?;
                }
            }
        }
        // Drop stale order pairs (entries already emitted) now and then.
        if self.order.len() > 2 * self.open.len() + 4096 {
            let open = &self.open;
            self.order
                .retain(|(k, g)| open.get(k).is_some_and(|e| e.generation == *g));
        }
        Ok(())
    }

    /// `to=<…>, [orig_to=<…>,] relay=…, …, dsn=…, status=… (text)`
    fn delivery_line(&mut self, line: &SyslogLine<'_>, qid: &str, fields: &str) -> Option<()> {
        let d = parse_delivery(fields);
        let status = match d.status {
            "sent" if d.text.starts_with("forwarded as ") => DeliveryStatus::Forwarded,
            "sent" => DeliveryStatus::Delivered,
            "deferred" => DeliveryStatus::Deferred,
            "bounced" => DeliveryStatus::Bounced,
            "expired" => DeliveryStatus::Expired,
            // `deliverable` / `undeliverable` are address-verification probes, not mail.
            _ => return None,
        };
        let child = match status {
            DeliveryStatus::Forwarded => d.text.strip_prefix("forwarded as ").map(first_word),
            DeliveryStatus::Delivered => queued_as(d.text),
            _ => None,
        };
        let to = normalize_address(d.to).unwrap_or_default();
        let orig = d.orig_to.and_then(normalize_address);
        let detail = match (d.dsn, d.text.is_empty()) {
            (Some(dsn), false) => format!("{dsn} ({})", d.text),
            (Some(dsn), true) => dsn.to_string(),
            (None, _) => d.text.to_string(),
        };
        let relay = d.relay.filter(|r| *r != "none").map(str::to_string);
        let loopback = d.relay.is_some_and(is_loopback_relay);
        let t = line.time;
        let e = self.entry(line.host, qid, t)?;
        e.add_recipient(&to);
        if let Some(o) = &orig {
            e.add_recipient(o);
        }
        if status == DeliveryStatus::Deferred {
            e.deferrals += 1;
            if e.deferred_at.is_some() {
                return Some(());
            }
            e.deferred_at = Some(e.deliveries.len());
        }
        let mut dl = e.delivery(t, to, status);
        dl.detail = (!detail.is_empty()).then_some(detail);
        dl.relay = relay;
        dl.original_recipient = orig;
        e.deliveries.push(dl);
        let parent_key = e.key();
        let parent_mid = e.message_id.clone();
        if let Some(child) = child.filter(|c| is_queue_id(c)) {
            self.set_key(line.host, child);
            let known = self.open.contains_key(self.scratch.as_str());
            if status == DeliveryStatus::Forwarded || loopback || known {
                let c = self.entry(line.host, child, t)?;
                if !c.extra_keys.contains(&parent_key) {
                    c.extra_keys.push(parent_key);
                }
                if c.message_id.is_none() {
                    c.message_id = parent_mid;
                }
            }
        }
        Some(())
    }

    /// `QID: reject: …`, `milter-reject: …`, `hold: …`, `discard: …`.
    fn queued_action(
        &mut self,
        line: &SyslogLine<'_>,
        daemon: &str,
        qid: &str,
        kind: &str,
        text: &str,
    ) -> Option<()> {
        let status = match kind {
            "reject" | "milter-reject" => DeliveryStatus::Rejected,
            "hold" => DeliveryStatus::Quarantined,
            "discard" => DeliveryStatus::Failed,
            _ => return None,
        };
        // cleanup acts on header / body / END-OF-MESSAGE checks only.
        if daemon == "cleanup"
            && !(text.starts_with("header ")
                || text.starts_with("body ")
                || text.starts_with("END-OF-MESSAGE"))
        {
            return None;
        }
        let r = parse_smtp_event(text);
        let t = line.time;
        let e = self.entry(line.host, qid, t)?;
        if let Some(f) = r.from {
            if e.envelope_from.is_none() {
                e.envelope_from = normalize_address(f);
            }
        }
        if e.subject.is_none() {
            if let Some(v) = text
                .strip_prefix("header ")
                .and_then(|h| header_value(h, "subject"))
            {
                let subject = decode_subject(strip_log_context(v));
                e.subject = (!subject.is_empty()).then_some(subject);
            }
        }
        let to = r.to.and_then(normalize_address).unwrap_or_default();
        e.add_recipient(&to);
        let mut d = e.delivery(t, to, status);
        d.detail = Some(format!("{kind}: {}", r.detail));
        d.client_ip = r.client_ip.map(str::to_string);
        d.client_host = r.client_host.map(str::to_string);
        e.deliveries.push(d);
        Some(())
    }

    /// `NOQUEUE: reject: RCPT from host[ip]: 554 …; from=<a> to=<b> proto=… helo=<…>`:
    /// one record per line.
    fn noqueue(
        &mut self,
        line: &SyslogLine<'_>,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let Some((kind, text)) = split_action(rest) else {
            return Ok(());
        };
        if kind != "reject" && kind != "milter-reject" {
            return Ok(());
        }
        let r = parse_smtp_event(text);
        let system = format!("postfix@{}", line.host);
        let from = r.from.and_then(normalize_address);
        let to = r.to.and_then(normalize_address).unwrap_or_default();
        let micros = line.time.timestamp_micros();
        let mut key = format!(
            "{system}:NOQUEUE:{micros}:{}:{to}:{}",
            from.as_deref().unwrap_or(""),
            line.pid.unwrap_or(0)
        );
        // Identical rejects in one second stay distinct events (and stable on re-import).
        if micros != self.noqueue_second {
            self.noqueue_second = micros;
            self.noqueue_seen.clear();
        }
        let n = match self.noqueue_seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.noqueue_seen.push((key.clone(), 1));
                1
            }
        };
        let local_id = (n > 1).then(|| format!("NOQUEUE#{n}"));
        if n > 1 {
            key.push_str(&format!("#{n}"));
        }
        let mut recipients = Vec::new();
        if let Some(r) = Recipient::new(&to, None, RecipientKind::Envelope) {
            recipients.push(r);
        }
        let delivery = Delivery {
            time: line.time,
            recipient: to,
            status: DeliveryStatus::Rejected,
            detail: Some(format!("{kind}: {}", r.detail)),
            system: system.clone(),
            relay: None,
            client_ip: r.client_ip.map(str::to_string),
            client_host: r.client_host.map(str::to_string),
            local_id,
            original_recipient: None,
        };
        sink.record(MessageRecord {
            keys: vec![key],
            first_seen: Some(line.time),
            envelope_from: from,
            recipients,
            client_ip: r.client_ip.map(str::to_string),
            systems: vec![system],
            deliveries: vec![delivery],
            ..MessageRecord::default()
        })
    }
}

/// A Postfix queue id: short (hex, upper case) or long (`3mPVKl0Mhjz7sXv`).
fn is_queue_id(s: &str) -> bool {
    let b = s.as_bytes();
    (5..=20).contains(&b.len())
        && b.iter().all(u8::is_ascii_alphanumeric)
        && (b.iter().any(u8::is_ascii_digit) || b.iter().all(|c| matches!(c, b'A'..=b'F')))
}

/// `QID: rest` → (QID, rest); `NOQUEUE: rest` too.
fn split_queue_id(message: &str) -> Option<(&str, &str)> {
    let (qid, rest) = message.split_once(": ")?;
    if qid == "NOQUEUE" || is_queue_id(qid) {
        Some((qid, rest))
    } else {
        None
    }
}

/// `reject: text` / `milter-reject: text` / `hold: text` / `discard: text`.
fn split_action(rest: &str) -> Option<(&str, &str)> {
    let (kind, text) = rest.split_once(": ")?;
    matches!(kind, "reject" | "milter-reject" | "hold" | "discard").then_some((kind, text))
}

fn first_word(s: &str) -> &str {
    s.split([' ', ')', ',', ';']).next().unwrap_or(s)
}

/// The queue id in `250 2.0.0 Ok: queued as 4F9D1`.
fn queued_as(text: &str) -> Option<&str> {
    let i = text.rfind("queued as ")?;
    Some(first_word(&text[i + "queued as ".len()..]))
}

fn is_loopback_relay(relay: &str) -> bool {
    relay.starts_with("127.")
        || relay.contains("[127.")
        || relay.contains("[::1]")
        || relay.starts_with("localhost")
}

/// The value after `name` up to `,`, `;`, space or the end.
fn find_value<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let i = s.find(name)?;
    let v = &s[i + name.len()..];
    Some(v.split([',', ';', ' ']).next().unwrap_or(v))
}

/// The text between `prefix` (ending in `<`) and the next `>`.
fn find_angle<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let i = s.find(prefix)?;
    let v = &s[i + prefix.len()..];
    v.split_once('>').map(|(a, _)| a)
}

/// `host[ip]` / `host[ip]:port` / `[ip]:port` → (host, ip).
fn split_client(s: &str) -> (Option<&str>, Option<&str>) {
    match (s.find('['), s.rfind(']')) {
        (Some(o), Some(c)) if o < c => {
            let host = s[..o].trim();
            let ip = &s[o + 1..c];
            (
                (!host.is_empty()).then_some(host),
                (!ip.is_empty()).then_some(ip),
            )
        }
        _ => {
            let host = s.trim();
            ((!host.is_empty()).then_some(host), None)
        }
    }
}

struct DeliveryFields<'a> {
    to: &'a str,
    orig_to: Option<&'a str>,
    relay: Option<&'a str>,
    dsn: Option<&'a str>,
    status: &'a str,
    text: &'a str,
}

/// Parse `to=<a>, orig_to=<b>, relay=r, delay=1, delays=…, dsn=2.0.0, status=sent (text)`
/// (`fields` starts after `to=`).
fn parse_delivery(fields: &str) -> DeliveryFields<'_> {
    let mut out = DeliveryFields {
        to: "",
        orig_to: None,
        relay: None,
        dsn: None,
        status: "",
        text: "",
    };
    let mut rest = fields;
    let mut key = "to";
    loop {
        let (value, after) = if let Some(v) = rest.strip_prefix('<') {
            match v.split_once('>') {
                Some((a, b)) => (a, b),
                None => (v, ""),
            }
        } else {
            match rest.find(", ") {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        match key {
            "to" => out.to = value,
            "orig_to" => out.orig_to = Some(value),
            "relay" => out.relay = Some(value),
            "dsn" => out.dsn = Some(value),
            _ => {}
        }
        let Some(next) = after.strip_prefix(", ") else {
            break;
        };
        if let Some(st) = next.strip_prefix("status=") {
            let (status, text) = st.split_once(' ').unwrap_or((st, ""));
            out.status = status.trim_end_matches(',');
            let text = text.trim();
            out.text = text
                .strip_prefix('(')
                .map(|t| t.strip_suffix(')').unwrap_or(t))
                .unwrap_or(text);
            break;
        }
        let Some((k, v)) = next.split_once('=') else {
            break;
        };
        key = k;
        rest = v;
    }
    out
}

struct SmtpEvent<'a> {
    detail: String,
    from: Option<&'a str>,
    to: Option<&'a str>,
    client_ip: Option<&'a str>,
    client_host: Option<&'a str>,
}

/// `RCPT from host[ip]: 554 5.7.1 <x>: text; from=<a> to=<b> proto=ESMTP helo=<h>`
/// (also cleanup's `header Subject: … from host[ip]; from=<a> to=<b> …: text`).
fn parse_smtp_event(text: &str) -> SmtpEvent<'_> {
    let from = find_angle(text, "from=<");
    let to = find_angle(text, "to=<");
    let (mut client_ip, mut client_host) = (None, None);
    let mut detail = text;
    // Cut the `; from=<…> to=<…> proto=… helo=<…>` tail (postscreen uses `, `).
    for tail in ["; from=<", ", from=<", "; proto=", ", proto="] {
        if let Some(i) = detail.find(tail) {
            detail = &detail[..i];
            break;
        }
    }
    // `STAGE from CLIENT: reply` → client and reply.
    if let Some(i) = detail.find(" from ") {
        let after = &detail[i + " from ".len()..];
        let stage = &detail[..i];
        if !stage.contains(' ') {
            if let Some((client, _reply)) = after.split_once(": ") {
                let (h, ip) = split_client(client);
                client_host = h;
                client_ip = ip;
            }
        }
    }
    // cleanup puts its reply text after the helo: `… helo=<h>: 5.7.1 text`.
    let detail = match text.rfind(">: ") {
        Some(i) if i >= detail.len() => format!("{detail}: {}", &text[i + 3..]),
        _ => detail.to_string(),
    };
    SmtpEvent {
        detail,
        from,
        to,
        client_ip,
        client_host,
    }
}

/// `Subject: value` (case-insensitive header name) → value.
fn header_value<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let (h, v) = s.split_once(':')?;
    h.eq_ignore_ascii_case(name)
        .then(|| v.strip_prefix(' ').unwrap_or(v))
}

/// Strip cleanup's ` from CLIENT; from=<…> to=<…> proto=… helo=<…>[: text]` tail.
fn strip_log_context(value: &str) -> &str {
    let Some(i) = value.rfind("; from=<") else {
        return value;
    };
    let head = &value[..i];
    match head.rfind(" from ") {
        Some(j) => &head[..j],
        None => head,
    }
}

/// Decode RFC 2047 encoded words (`=?ISO-2022-JP?B?…?=`) of a logged header.
fn decode_subject(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let mut buf = Vec::with_capacity(raw.len() + 2);
    buf.extend_from_slice(raw.as_bytes());
    buf.extend_from_slice(b"\r\n");
    match mail_parser::parsers::MessageStream::new(&buf).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.trim().to_string(),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids() {
        for ok in [
            "4F9D1",
            "ED36AD08054",
            "3mPVKl0Mhjz7sXv",
            "44JCRG5tYPzCqt2",
            "ABCDEF",
        ] {
            assert!(is_queue_id(ok), "{ok}");
        }
        for bad in [
            "warning",
            "statistics",
            "NOQUEUE",
            "connect from x",
            "abc",
            "a-b-c1",
        ] {
            assert!(!is_queue_id(bad), "{bad}");
        }
    }

    #[test]
    fn delivery_fields() {
        let d = parse_delivery(
            "<jos@example.com>, orig_to=<bestuur@example.com>, relay=mail1.example.net[10.74.103.11]:25, delay=11, delays=5.4/0.06/5.1/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as F12DF84004)",
        );
        assert_eq!(d.to, "jos@example.com");
        assert_eq!(d.orig_to, Some("bestuur@example.com"));
        assert_eq!(d.relay, Some("mail1.example.net[10.74.103.11]:25"));
        assert_eq!(d.dsn, Some("2.0.0"));
        assert_eq!(d.status, "sent");
        assert_eq!(d.text, "250 2.0.0 Ok: queued as F12DF84004");
        assert_eq!(queued_as(d.text), Some("F12DF84004"));
        let d = parse_delivery(
            "user@hostname.example.com, orig_to=root@localhost, relay=local, delay=0.07, delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: procmail -a \"$EXTENSION\")",
        );
        assert_eq!(d.to, "user@hostname.example.com");
        assert_eq!(d.orig_to, Some("root@localhost"));
        assert_eq!(d.text, "delivered to command: procmail -a \"$EXTENSION\"");
    }

    #[test]
    fn smtp_event_fields() {
        let r = parse_smtp_event("RCPT from unknown[192.168.1.1]: 454 4.7.1 <a@b.tld>: Relay access denied; from=<s@d.tld> to=<a@b.tld> proto=ESMTP helo=<X>");
        assert_eq!(
            r.detail,
            "RCPT from unknown[192.168.1.1]: 454 4.7.1 <a@b.tld>: Relay access denied"
        );
        assert_eq!((r.from, r.to), (Some("s@d.tld"), Some("a@b.tld")));
        assert_eq!(
            (r.client_host, r.client_ip),
            (Some("unknown"), Some("192.168.1.1"))
        );
        let r = parse_smtp_event("RCPT from [216.245.194.173]:60591: 550 5.7.1 Service unavailable; client [216.245.194.173] blocked using rbl.example.com; from=<x@y>, to=<g@e.com>, proto=ESMTP, helo=<b>");
        assert_eq!(r.client_ip, Some("216.245.194.173"));
        assert_eq!(r.client_host, None);
        assert_eq!(r.to, Some("g@e.com"));
    }

    #[test]
    fn subject_context_is_stripped_and_decoded() {
        let v = "=?UTF-8?B?5Lya6K2w?= from a.example[192.0.2.1]; from=<a@x> to=<b@y> proto=ESMTP helo=<a>";
        assert_eq!(decode_subject(strip_log_context(v)), "会議");
        assert_eq!(
            strip_log_context("Hi from Bob from local; from=<root@h> to=<u@h>"),
            "Hi from Bob"
        );
    }
}
