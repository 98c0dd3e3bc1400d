//! Sendmail: `sendmail[]` (the MSP, or the MTA on some systems), `sm-mta[]`,
//! `sm-msp-queue[]` and `sm-acceptingconnections[]` lines carried by syslog.
//!
//! Why it is shaped this way:
//!
//! - Sendmail logs a message as `QID: from=...` (arrival, with `nrcpts=`)
//!   and one `QID: to=a,b,..., stat=...` line per delivery attempt. A
//!   [`Correlator`] keeps one open message per `(host, qid)` and emits it as
//!   soon as `nrcpts` recipients have a final status (sent, bounced,
//!   expired), at [`Correlator::finish`], or when the bounded open set is full
//!   (the oldest is emitted early, never dropped: the store merges records
//!   that share a key). An entry idle for longer than a queue lifetime is
//!   emitted by a periodic sweep, so a live feed does not hold it for ever.
//! - A locally submitted message goes through two queues: the MSP hands it
//!   to the MTA, logging `stat=Sent (<MTA qid> Message accepted for
//!   delivery)`. That line links the two: each record carries the other's key
//!   and the Message-ID is copied across (whichever side knew it), so the
//!   store folds both into ONE message. Links seen before the MTA side
//!   appears, and Message-IDs of recently emitted messages, are remembered in
//!   small bounded maps so the order of the lines does not matter.
//! - `ruleset=check_rcpt/check_mail/check_relay ... reject=` lines and
//!   `<addr>... User unknown` become `Rejected` deliveries: administrators see
//!   refused mail beside accepted mail. Rejections without a queue id get a
//!   key of their own (time + hash of the text).
//! - Sendmail prints far more than message events (STARTTLS, AUTH failures,
//!   `lost input channel`, `did not issue MAIL/EXPN/VRFY/ETRN`); those lines
//!   are ignored, never rejected: a syslog line that reached this correlator
//!   has a valid header, and its text is free-form by design.
//!
//! Keys are `sendmail@{host}:{qid}`; the system is `sendmail@{host}`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Delivery, DeliveryStatus,
    MessageRecord, Recipient, RecipientKind,
};

use crate::exim::{recipient_text, NoIdKeys, OpenMap};
use crate::syslog::{LineRef, SyslogLine};
use crate::{DecodeOptions, Sink, SinkError};

/// The most messages kept open at once.
pub const DEFAULT_MAX_OPEN: usize = 200_000;

/// How many MSP→MTA links and recently emitted Message-IDs are remembered.
const LINK_MEMORY: usize = 65_536;

/// Lines between sweeps of idle entries.
const SWEEP_EVERY: u64 = 65_536;

/// An entry with no line for this long is emitted by the sweep (Sendmail's
/// default queue lifetime is 5 days).
const IDLE_LIMIT_HOURS: i64 = 6 * 24;

/// Whether a syslog program name is one of Sendmail's.
pub fn is_sendmail_program(program: &str) -> bool {
    matches!(
        program,
        "sendmail" | "sm-mta" | "sm-msp-queue" | "sm-acceptingconnections"
    ) || program.starts_with("sm-mta")
}

/// Correlates Sendmail lines into messages.
pub struct Correlator {
    open: OpenMap<Msg>,
    /// MTA key → (MSP key, Message-ID) for links seen before the MTA entry.
    pending_links: OpenMap<(String, Option<String>)>,
    /// Key → Message-ID of recently emitted messages.
    recent_ids: OpenMap<Option<String>>,
    noid: NoIdKeys,
    lines: u64,
}

#[derive(Debug)]
struct Msg {
    host: String,
    qid: String,
    extra_keys: Vec<String>,
    arrived: bool,
    nrcpts: Option<u32>,
    first_seen: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
    envelope_from: Option<String>,
    message_id: Option<String>,
    size: Option<u64>,
    client_ip: Option<String>,
    recipients: Vec<Recipient>,
    deliveries: Vec<Delivery>,
    /// Recipients with a final status.
    finals: Vec<String>,
}

impl Msg {
    fn new(host: &str, qid: &str, time: DateTime<Utc>) -> Msg {
        Msg {
            host: host.to_string(),
            qid: qid.to_string(),
            extra_keys: Vec::new(),
            arrived: false,
            nrcpts: None,
            first_seen: None,
            last_seen: time,
            envelope_from: None,
            message_id: None,
            size: None,
            client_ip: None,
            recipients: Vec::new(),
            deliveries: Vec::new(),
            finals: Vec::new(),
        }
    }

    fn key(&self) -> String {
        key(&self.host, &self.qid)
    }

    fn system(&self) -> String {
        format!("sendmail@{}", self.host)
    }

    fn seen(&mut self, time: DateTime<Utc>) {
        self.first_seen = Some(self.first_seen.map_or(time, |t| t.min(time)));
        if time > self.last_seen {
            self.last_seen = time;
        }
    }

    fn add_key(&mut self, k: String) {
        if k != self.key() && !self.extra_keys.contains(&k) {
            self.extra_keys.push(k);
        }
    }

    fn add_recipient(&mut self, address: &str) {
        if let Some(r) = Recipient::new(address, None, RecipientKind::Envelope) {
            merge_recipient(&mut self.recipients, r);
        }
    }

    fn complete(&self) -> bool {
        self.arrived && self.nrcpts.is_some_and(|n| self.finals.len() >= n as usize)
    }

    fn into_record(self) -> MessageRecord {
        let system = self.system();
        let mut keys = vec![self.key()];
        keys.extend(self.extra_keys);
        MessageRecord {
            keys,
            message_id: self.message_id,
            first_seen: self.first_seen,
            envelope_from: self.envelope_from,
            recipients: self.recipients,
            size: self.size,
            client_ip: self.client_ip,
            systems: vec![system],
            deliveries: self.deliveries,
            ..Default::default()
        }
    }
}

fn key(host: &str, qid: &str) -> String {
    format!("sendmail@{host}:{qid}")
}

/// Sendmail queue ids: letters and digits, 8 or more (classic 12, 14,
/// 15 with long pids).
fn is_qid(s: &str) -> bool {
    s.len() >= 8 && s.len() <= 32 && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Split `key=value, key=value, ...`. A new field starts at `, ident=`;
/// `stat=` and `reject=` run to the end of the line (their text has commas).
fn fields(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let k = rest[..eq].trim();
        if k.is_empty() || !k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            break;
        }
        let after = &rest[eq + 1..];
        if k == "stat" || k == "reject" {
            out.push((k, after.trim()));
            break;
        }
        let mut end = None;
        let mut search = 0;
        while let Some(i) = after[search..].find(", ") {
            let at = search + i;
            let next = &after[at + 2..];
            let n = next
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            if n > 0 && next.as_bytes().get(n) == Some(&b'=') {
                end = Some(at);
                break;
            }
            search = at + 2;
        }
        match end {
            Some(at) => {
                out.push((k, after[..at].trim()));
                rest = &after[at + 2..];
            }
            None => {
                out.push((k, after.trim()));
                break;
            }
        }
    }
    out
}

fn field<'a>(f: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// `host. [ip] (may be forged)`, `[ip]`, `[ip] [ip]`, `root@localhost`,
/// `host [IPv6:2001:db8::1]` → (host, ip).
fn parse_relay(v: &str) -> (Option<String>, Option<String>) {
    let v = v.trim();
    if v.contains('@') && !v.contains('[') {
        return (None, None);
    }
    let ip = v.rfind('[').and_then(|open| {
        v[open..].find(']').map(|close| {
            let inner = &v[open + 1..open + close];
            inner.strip_prefix("IPv6:").unwrap_or(inner).to_string()
        })
    });
    let first = v.split(' ').next().unwrap_or("");
    let host = (!first.is_empty() && !first.starts_with('['))
        .then(|| first.trim_end_matches('.').to_string());
    (host, ip)
}

fn relay_text(v: &str) -> Option<String> {
    match parse_relay(v) {
        (Some(h), Some(ip)) => Some(format!("{h}[{ip}]")),
        (None, Some(ip)) => Some(format!("[{ip}]")),
        (Some(h), None) => Some(h),
        (None, None) => {
            let t = v.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
    }
}

/// Split a `to=` list: commas outside quotes and angle brackets.
fn split_recipients(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The status of a `to=` line: the DSN class decides when there is one.
fn delivery_status(dsn: Option<&str>, stat: &str) -> Option<DeliveryStatus> {
    if stat.starts_with("queued") {
        return None;
    }
    match dsn.and_then(|d| d.chars().next()) {
        Some('2') => return Some(DeliveryStatus::Delivered),
        Some('4') => return Some(DeliveryStatus::Deferred),
        Some('5') => return Some(DeliveryStatus::Bounced),
        _ => {}
    }
    if stat.starts_with("Sent") {
        Some(DeliveryStatus::Delivered)
    } else if stat.starts_with("Deferred") {
        Some(DeliveryStatus::Deferred)
    } else {
        Some(DeliveryStatus::Bounced)
    }
}

/// `Sent (r9M124TR023797 Message accepted for delivery)` → the MTA's queue id.
fn accepted_qid(stat: &str) -> Option<&str> {
    let inner = stat.strip_prefix("Sent (")?;
    let (qid, rest) = inner.split_once(' ')?;
    (is_qid(qid) && rest.starts_with("Message accepted for delivery")).then_some(qid)
}

impl Correlator {
    pub fn new(_opts: &DecodeOptions) -> Self {
        Correlator::with_capacity(DEFAULT_MAX_OPEN)
    }

    /// A correlator keeping at most `max_open` messages open.
    pub fn with_capacity(max_open: usize) -> Self {
        Correlator {
            open: OpenMap::new(max_open),
            pending_links: OpenMap::new(LINK_MEMORY),
            recent_ids: OpenMap::new(LINK_MEMORY),
            noid: NoIdKeys::new(),
            lines: 0,
        }
    }

    /// One syslog line whose program is Sendmail's.
    pub fn feed(
        &mut self,
        line: &SyslogLine<'_>,
        _at: LineRef<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        self.lines += 1;
        if self.lines.is_multiple_of(SWEEP_EVERY) {
            self.sweep(line.time, sink)?;
        }
        let text = line.message.trim();
        let (qid, rest) = match text.split_once(": ") {
            Some((q, r)) if is_qid(q) => (Some(q), r.trim()),
            _ => (None, text),
        };
        let Some(qid) = qid else {
            // Rejections before a queue id exists (`ruleset=check_relay`).
            if rest.starts_with("ruleset=") && rest.contains("reject=") {
                self.noqueue_reject(line, rest, sink)?;
            }
            return Ok(());
        };
        if rest.starts_with("from=") {
            self.arrival(line, qid, rest, sink)
        } else if rest.starts_with("to=") {
            self.delivery(line, qid, rest, sink)
        } else if (rest.starts_with("ruleset=") || rest.starts_with("Milter"))
            && rest.contains("reject=")
        {
            self.rule_reject(line, qid, rest, sink)
        } else if let Some((addr, text)) = rcpt_refusal(rest) {
            let system = format!("sendmail@{}", line.host);
            let msg = self.entry(line.host, qid, line.time, sink)?;
            msg.seen(line.time);
            let recipient = recipient_text(addr);
            if recipient.contains('@') {
                msg.add_recipient(&recipient);
            }
            msg.deliveries.push(Delivery {
                time: line.time,
                recipient,
                status: DeliveryStatus::Rejected,
                detail: Some(text.to_string()),
                system,
                relay: None,
                client_ip: None,
                client_host: None,
                local_id: Some(qid.to_string()),
                original_recipient: None,
            });
            Ok(())
        } else if let Some((new_qid, kind, text)) = notification(rest) {
            self.notification(line, qid, new_qid, kind, text, sink)
        } else {
            Ok(())
        }
    }

    /// Emit every message still open (end of input).
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        for msg in self.open.drain() {
            sink.record(msg.into_record())?;
        }
        Ok(())
    }

    /// Emit entries that have seen no line for longer than a queue lifetime.
    fn sweep(&mut self, now: DateTime<Utc>, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let limit = now - Duration::hours(IDLE_LIMIT_HOURS);
        let mut keep = Vec::with_capacity(self.open.len());
        let mut idle = Vec::new();
        for msg in self.open.drain() {
            if msg.last_seen < limit {
                idle.push(msg);
            } else {
                keep.push(msg);
            }
        }
        for msg in keep {
            let k = msg.key();
            for evicted in self.open.insert(k, msg) {
                idle.push(evicted);
            }
        }
        for msg in idle {
            self.emit(msg, sink)?;
        }
        Ok(())
    }

    fn emit(&mut self, msg: Msg, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.recent_ids.insert(msg.key(), msg.message_id.clone());
        sink.record(msg.into_record())
    }

    fn entry(
        &mut self,
        host: &str,
        qid: &str,
        time: DateTime<Utc>,
        sink: &mut dyn Sink,
    ) -> Result<&mut Msg, SinkError> {
        let k = key(host, qid);
        if !self.open.contains(&k) {
            let mut msg = Msg::new(host, qid, time);
            if let Some((msp_key, msgid)) = self.pending_links.remove(&k) {
                msg.add_key(msp_key);
                msg.message_id = msgid;
            }
            for old in self.open.insert(k.clone(), msg) {
                self.emit(old, sink)?;
            }
        }
        match self.open.get_mut(&k) {
            Some(m) => Ok(m),
            None => Err(SinkError(format!("sendmail: open message {k} vanished"))),
        }
    }

    fn finish_if_complete(&mut self, k: &str, sink: &mut dyn Sink) -> Result<(), SinkError> {
        if self.open.get(k).is_some_and(Msg::complete) {
            if let Some(msg) = self.open.remove(k) {
                self.emit(msg, sink)?;
            }
        }
        Ok(())
    }

    fn arrival(
        &mut self,
        line: &SyslogLine<'_>,
        qid: &str,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let k = key(line.host, qid);
        // A second arrival under an open, already arrived qid is a new message.
        if self.open.get(&k).is_some_and(|m| m.arrived) {
            if let Some(old) = self.open.remove(&k) {
                self.emit(old, sink)?;
            }
        }
        let f = fields(rest);
        let msg = self.entry(line.host, qid, line.time, sink)?;
        msg.arrived = true;
        msg.seen(line.time);
        if let Some(from) = field(&f, "from") {
            msg.envelope_from = normalize_address(from);
        }
        msg.size = field(&f, "size").and_then(|s| s.parse().ok());
        msg.nrcpts = field(&f, "nrcpts").and_then(|s| s.parse().ok());
        if let Some(id) = field(&f, "msgid").and_then(normalize_message_id) {
            msg.message_id = Some(id);
        }
        let (client_host, client_ip) = field(&f, "relay").map_or((None, None), parse_relay);
        if msg.client_ip.is_none() {
            msg.client_ip = client_ip.clone();
        }
        let mut detail: Vec<String> = Vec::new();
        for name in ["proto", "daemon", "relay"] {
            if let Some(v) = field(&f, name) {
                if name != "relay" || v.contains('@') {
                    detail.push(format!("{name}={v}"));
                }
            }
        }
        let system = msg.system();
        msg.deliveries.push(Delivery {
            time: line.time,
            recipient: String::new(),
            status: DeliveryStatus::Received,
            detail: (!detail.is_empty()).then(|| detail.join(", ")),
            system,
            relay: None,
            client_ip,
            client_host,
            local_id: Some(qid.to_string()),
            original_recipient: None,
        });
        self.finish_if_complete(&k, sink)
    }

    fn delivery(
        &mut self,
        line: &SyslogLine<'_>,
        qid: &str,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let f = fields(rest);
        let Some(to) = field(&f, "to") else {
            return Ok(());
        };
        let stat = field(&f, "stat").unwrap_or("");
        let dsn = field(&f, "dsn");
        let status = delivery_status(dsn, stat);
        let relay = field(&f, "relay")
            .and_then(relay_text)
            .or_else(|| field(&f, "mailer").map(str::to_string));
        let mut detail = match dsn {
            Some(d) => format!("{d} {stat}"),
            None => stat.to_string(),
        };
        if let Some(delay) = field(&f, "delay") {
            detail.push_str(&format!("; delay={delay}"));
        }
        let k = key(line.host, qid);
        let msg = self.entry(line.host, qid, line.time, sink)?;
        msg.seen(line.time);
        let system = msg.system();
        for raw in split_recipients(to) {
            let recipient = recipient_text(raw);
            if recipient.contains('@') {
                msg.add_recipient(&recipient);
            }
            let Some(status) = status else { continue };
            if matches!(
                status,
                DeliveryStatus::Delivered | DeliveryStatus::Bounced | DeliveryStatus::Expired
            ) && !msg.finals.contains(&recipient)
            {
                msg.finals.push(recipient.clone());
            }
            msg.deliveries.push(Delivery {
                time: line.time,
                recipient,
                status,
                detail: (!detail.is_empty()).then(|| detail.clone()),
                system: system.clone(),
                relay: relay.clone(),
                client_ip: None,
                client_host: None,
                local_id: Some(qid.to_string()),
                original_recipient: None,
            });
        }
        if let Some(mta_qid) = accepted_qid(stat) {
            self.link(line.host, qid, mta_qid);
        }
        self.finish_if_complete(&k, sink)
    }

    /// The MSP `msp_qid` handed its message to the MTA as `mta_qid`.
    fn link(&mut self, host: &str, msp_qid: &str, mta_qid: &str) {
        let msp_key = key(host, msp_qid);
        let mta_key = key(host, mta_qid);
        if msp_key == mta_key {
            return;
        }
        let mta_id = match self.open.get(&mta_key) {
            Some(m) => m.message_id.clone(),
            None => self.recent_ids.get(&mta_key).cloned().flatten(),
        };
        let mut msp_id = None;
        if let Some(msp) = self.open.get_mut(&msp_key) {
            msp.add_key(mta_key.clone());
            if msp.message_id.is_none() {
                msp.message_id = mta_id;
            }
            msp_id = msp.message_id.clone();
        }
        if let Some(mta) = self.open.get_mut(&mta_key) {
            mta.add_key(msp_key);
            if mta.message_id.is_none() {
                mta.message_id = msp_id;
            }
        } else {
            self.pending_links.insert(mta_key, (msp_key, msp_id));
        }
    }

    /// `ruleset=check_rcpt, arg1=<x>, relay=..., reject=550 ...` (and
    /// `check_mail`, Milter rejects) under a queue id.
    fn rule_reject(
        &mut self,
        line: &SyslogLine<'_>,
        qid: &str,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let facts = RuleReject::parse(rest);
        let msg = self.entry(line.host, qid, line.time, sink)?;
        msg.seen(line.time);
        facts.apply(msg, line.time, Some(qid));
        Ok(())
    }

    fn noqueue_reject(
        &mut self,
        line: &SyslogLine<'_>,
        rest: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let facts = RuleReject::parse(rest);
        let prefix = format!("sendmail@{}", line.host);
        let k = self.noid.key(&prefix, line.time, rest);
        let id = k
            .split_once(':')
            .map_or(k.as_str(), |(_, id)| id)
            .to_string();
        let mut msg = Msg::new(line.host, &id, line.time);
        msg.seen(line.time);
        facts.apply(&mut msg, line.time, None);
        sink.record(msg.into_record())
    }

    /// `QID: NEWQID: DSN: text` and friends: NEWQID is the notification
    /// (a new message from `<>`); a "Cannot send message" notice also ends
    /// the original's deferred recipients as expired.
    fn notification(
        &mut self,
        line: &SyslogLine<'_>,
        qid: &str,
        new_qid: &str,
        kind: &str,
        text: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let k = key(line.host, qid);
        if text.starts_with("Cannot send message") {
            if let Some(msg) = self.open.get_mut(&k) {
                msg.seen(line.time);
                let mut last: HashMap<String, DeliveryStatus> = HashMap::new();
                for d in &msg.deliveries {
                    if !d.recipient.is_empty() {
                        last.insert(d.recipient.clone(), d.status);
                    }
                }
                let mut expired: Vec<String> = last
                    .into_iter()
                    .filter(|(_, s)| *s == DeliveryStatus::Deferred)
                    .map(|(r, _)| r)
                    .collect();
                expired.sort();
                let system = msg.system();
                for recipient in expired {
                    if !msg.finals.contains(&recipient) {
                        msg.finals.push(recipient.clone());
                    }
                    msg.deliveries.push(Delivery {
                        time: line.time,
                        recipient,
                        status: DeliveryStatus::Expired,
                        detail: Some(format!("{kind}: {text}")),
                        system: system.clone(),
                        relay: None,
                        client_ip: None,
                        client_host: None,
                        local_id: Some(qid.to_string()),
                        original_recipient: None,
                    });
                }
            }
        }
        if new_qid != qid {
            let bounce = self.entry(line.host, new_qid, line.time, sink)?;
            bounce.seen(line.time);
            let system = bounce.system();
            bounce.deliveries.push(Delivery {
                time: line.time,
                recipient: String::new(),
                status: DeliveryStatus::Received,
                detail: Some(format!("{kind} for {qid}: {text}")),
                system,
                relay: None,
                client_ip: None,
                client_host: None,
                local_id: Some(new_qid.to_string()),
                original_recipient: None,
            });
        }
        self.finish_if_complete(&k, sink)
    }
}

/// `<addr>... User unknown` (a recipient refused during the SMTP dialogue).
fn rcpt_refusal(rest: &str) -> Option<(&str, &str)> {
    let (addr, text) = rest.split_once("... ")?;
    (addr.starts_with('<') && addr.ends_with('>') && !addr.contains(' '))
        .then_some((addr, text.trim()))
}

/// `NEWQID: DSN: text`, `NEWQID: return to sender: text`, `NEWQID:
/// postmaster notify: text`, `NEWQID: sender notify: text`.
fn notification(rest: &str) -> Option<(&str, &str, &str)> {
    let (new_qid, after) = rest.split_once(": ")?;
    if !is_qid(new_qid) {
        return None;
    }
    for kind in [
        "DSN",
        "return to sender",
        "postmaster notify",
        "sender notify",
    ] {
        if let Some(text) = after.strip_prefix(kind).and_then(|t| t.strip_prefix(": ")) {
            return Some((new_qid, kind, text.trim()));
        }
    }
    None
}

struct RuleReject {
    ruleset: String,
    arg1: Option<String>,
    to: Option<String>,
    client_host: Option<String>,
    client_ip: Option<String>,
    reject: String,
}

impl RuleReject {
    fn parse(rest: &str) -> RuleReject {
        let f = fields(rest.strip_prefix("Milter: ").unwrap_or(rest));
        let (client_host, mut client_ip) = field(&f, "relay").map_or((None, None), parse_relay);
        if client_ip.is_none() {
            client_ip = field(&f, "arg2")
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                .map(str::to_string);
        }
        RuleReject {
            ruleset: field(&f, "ruleset").unwrap_or("milter").to_string(),
            arg1: field(&f, "arg1").map(str::to_string),
            to: field(&f, "to").map(str::to_string),
            client_host,
            client_ip,
            reject: field(&f, "reject").unwrap_or("").to_string(),
        }
    }

    fn apply(self, msg: &mut Msg, time: DateTime<Utc>, qid: Option<&str>) {
        let mut recipient = String::new();
        match self.ruleset.as_str() {
            "check_rcpt" => {
                if let Some(a) = &self.arg1 {
                    recipient = recipient_text(a);
                }
            }
            "check_mail" => {
                if msg.envelope_from.is_none() {
                    msg.envelope_from = self.arg1.as_deref().and_then(normalize_address);
                }
            }
            _ => {
                if let Some(t) = &self.to {
                    recipient = recipient_text(t);
                }
            }
        }
        if recipient.contains('@') {
            msg.add_recipient(&recipient);
        }
        if msg.client_ip.is_none() {
            msg.client_ip = self.client_ip.clone();
        }
        let system = msg.system();
        msg.deliveries.push(Delivery {
            time,
            recipient,
            status: DeliveryStatus::Rejected,
            detail: Some(format!("{}: {}", self.ruleset, self.reject)),
            system,
            relay: None,
            client_ip: self.client_ip,
            client_host: self.client_host,
            local_id: qid.map(str::to_string),
            original_recipient: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtrail_model::Reject;

    #[derive(Default)]
    struct VecSink {
        records: Vec<MessageRecord>,
    }

    impl Sink for VecSink {
        fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
            self.records.push(record);
            Ok(())
        }
        fn reject(&mut self, _reject: Reject) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn feed(c: &mut Correlator, sink: &mut VecSink, secs: i64, host: &str, prog: &str, msg: &str) {
        let line = SyslogLine {
            time: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            host,
            program: prog,
            pid: Some(1),
            message: msg,
        };
        let at = LineRef {
            source: "test",
            line: 1,
            raw: msg.as_bytes(),
        };
        c.feed(&line, at, sink).unwrap();
    }

    #[test]
    fn fields_split_on_key_boundaries_only() {
        let f = fields("to=<a@x>,<b@y>, ctladdr=<r@h> (0/0), delay=00:00:01, relay=h. [1.2.3.4], dsn=2.0.0, stat=Sent (ok, fine, x=y)");
        assert_eq!(field(&f, "to"), Some("<a@x>,<b@y>"));
        assert_eq!(field(&f, "ctladdr"), Some("<r@h> (0/0)"));
        assert_eq!(field(&f, "stat"), Some("Sent (ok, fine, x=y)"));
        assert_eq!(split_recipients("<a@x>,<b@y>"), vec!["<a@x>", "<b@y>"]);
    }

    #[test]
    fn relay_forms() {
        assert_eq!(
            parse_relay("mx1.nmamail.net. [50.116.38.92]"),
            (Some("mx1.nmamail.net".into()), Some("50.116.38.92".into()))
        );
        assert_eq!(
            parse_relay("[192.168.1.45]"),
            (None, Some("192.168.1.45".into()))
        );
        assert_eq!(
            parse_relay("host [192.0.2.1] (may be forged)"),
            (Some("host".into()), Some("192.0.2.1".into()))
        );
        assert_eq!(
            parse_relay("example.com [IPv6:2001:DB8::1]").1.as_deref(),
            Some("2001:DB8::1")
        );
        assert_eq!(parse_relay("root@localhost"), (None, None));
    }

    #[test]
    fn msp_link_seen_before_mta_arrival() {
        let mut c = Correlator::with_capacity(100);
        let mut s = VecSink::default();
        feed(&mut c, &mut s, 0, "h", "sendmail", "AAAAAAAA0001: from=user, size=10, class=0, nrcpts=1, msgid=<m@h>, relay=user@localhost");
        feed(&mut c, &mut s, 1, "h", "sendmail", "AAAAAAAA0001: to=a@x, ctladdr=user (1/1), delay=00:00:01, mailer=relay, pri=1, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (BBBBBBBB0002 Message accepted for delivery)");
        assert_eq!(s.records.len(), 1);
        assert!(s.records[0]
            .keys
            .contains(&"sendmail@h:BBBBBBBB0002".to_string()));
        feed(&mut c, &mut s, 1, "h", "sm-mta", "BBBBBBBB0002: from=<user@h>, size=12, class=0, nrcpts=1, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]");
        feed(&mut c, &mut s, 2, "h", "sm-mta", "BBBBBBBB0002: to=<a@x>, delay=00:00:01, mailer=esmtp, pri=1, relay=mx.x. [192.0.2.1], dsn=2.0.0, stat=Sent (ok)");
        assert_eq!(s.records.len(), 2);
        let mta = &s.records[1];
        assert!(mta.keys.contains(&"sendmail@h:AAAAAAAA0001".to_string()));
        assert_eq!(mta.message_id.as_deref(), Some("m@h"));
    }
}
