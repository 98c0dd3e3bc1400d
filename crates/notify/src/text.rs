//! The words people read: one list of labelled facts per notice, in
//! Japanese or English, that the mail body, the Slack blocks and the Teams
//! card all lay out in their own way.
//!
//! One list keeps the channels consistent (an administrator who reads the
//! mail and the Teams card sees the same facts under the same names), and
//! the labels are the ones Japanese administrators know from their mail
//! log and Microsoft 365 screens (重要度, ルール, 件名, 差出人, 宛先 …).
//! Everything taken from a message is made one line and shortened here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::Lang;
use crate::notice::{direction_label, one_line, shorten, AlertNotice};

/// Recipients listed before "and N more".
pub(crate) const MAX_RECIPIENTS: usize = 20;
/// Characters of a matched text shown.
pub(crate) const MAX_MATCHED: usize = 300;
/// Characters of a subject shown in full-fact lists.
pub(crate) const MAX_SUBJECT: usize = 200;

/// `2026/11/27 14:05 (JST)`.
pub(crate) fn time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y/%m/%d %H:%M (%Z)")
        .to_string()
}

/// The fixed phrases of a notice.
pub(crate) struct Words {
    pub severity: &'static str,
    pub rule: &'static str,
    pub condition: &'static str,
    pub matched: &'static str,
    pub subject: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub direction: &'static str,
    pub time: &'static str,
    pub message_id: &'static str,
    pub message_number: &'static str,
    pub alert_id: &'static str,
    pub raised_at: &'static str,
    pub console: &'static str,
    pub open: &'static str,
    pub intro: &'static str,
    pub footer: &'static str,
    pub alert: &'static str,
    pub no_subject: &'static str,
}

pub(crate) fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Ja => &Words {
            severity: "重要度",
            rule: "ルール",
            condition: "一致した条件",
            matched: "一致した内容",
            subject: "件名",
            from: "差出人",
            to: "宛先",
            direction: "方向",
            time: "日時",
            message_id: "メッセージID",
            message_number: "メッセージ番号",
            alert_id: "アラートID",
            raised_at: "検出日時",
            console: "コンソール",
            open: "コンソールで開く",
            intro: "mailtrail が監視ルールに一致するメールを検出しました。",
            footer: "このメールは mailtrail が自動送信しています。",
            alert: "アラート",
            no_subject: "（件名なし）",
        },
        Lang::En => &Words {
            severity: "Severity",
            rule: "Rule",
            condition: "Matched condition",
            matched: "Matched text",
            subject: "Subject",
            from: "From",
            to: "To",
            direction: "Direction",
            time: "Date",
            message_id: "Message-ID",
            message_number: "Message number",
            alert_id: "Alert ID",
            raised_at: "Raised at",
            console: "Console",
            open: "Open in console",
            intro: "mailtrail found a message that matches a monitoring rule.",
            footer: "This mail was sent automatically by mailtrail.",
            alert: "Alert",
            no_subject: "(no subject)",
        },
    }
}

/// The message's subject for one line, or "(no subject)".
pub(crate) fn subject(notice: &AlertNotice, lang: Lang, max: usize) -> String {
    let s = one_line(notice.message.subject.trim());
    if s.trim().is_empty() {
        words(lang).no_subject.to_string()
    } else {
        shorten(&s, max)
    }
}

/// `名前 (id)`, or the id alone when the rule has no other name.
pub(crate) fn rule(notice: &AlertNotice) -> String {
    let name = one_line(notice.rule_name.trim());
    let id = one_line(notice.rule_id.trim());
    if name.is_empty() || name == id {
        id
    } else {
        format!("{name} ({id})")
    }
}

/// The rule's display name (its id when it has none), for titles.
pub(crate) fn rule_name(notice: &AlertNotice) -> String {
    let name = one_line(notice.rule_name.trim());
    if name.is_empty() {
        one_line(notice.rule_id.trim())
    } else {
        name
    }
}

/// Recipients joined by `, `, at most `max`, then "ほか N 件".
pub(crate) fn recipients(notice: &AlertNotice, lang: Lang, max: usize) -> String {
    let all = &notice.message.recipients;
    let mut out = all
        .iter()
        .take(max)
        .map(|r| one_line(r))
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > max {
        let more = all.len() - max;
        match lang {
            Lang::Ja => out.push_str(&format!(" ほか {more} 件")),
            Lang::En => out.push_str(&format!(" and {more} more")),
        }
    }
    out
}

/// The labelled facts of a notice, in reading order.
pub(crate) fn facts(notice: &AlertNotice, lang: Lang, tz: Tz) -> Vec<(&'static str, String)> {
    let w = words(lang);
    let m = &notice.message;
    let mut facts = vec![
        (w.severity, notice.severity.label(lang).to_string()),
        (w.rule, rule(notice)),
        (w.condition, one_line(&notice.condition)),
        (
            w.matched,
            shorten(&one_line(&notice.matched_text), MAX_MATCHED),
        ),
        (w.subject, subject(notice, lang, MAX_SUBJECT)),
        (w.from, one_line(&m.from)),
        (w.to, recipients(notice, lang, MAX_RECIPIENTS)),
        (w.direction, direction_label(m.direction, lang).to_string()),
        (w.time, time(m.time, tz)),
    ];
    if let Some(id) = &m.message_id {
        facts.push((w.message_id, format!("<{}>", bare_message_id(id))));
    }
    facts.push((w.message_number, m.id.to_string()));
    facts.push((w.alert_id, notice.alert_id.to_string()));
    facts.push((w.raised_at, time(notice.raised_at, tz)));
    facts
}

/// A Message-ID without its angle brackets, on one line.
pub(crate) fn bare_message_id(id: &str) -> String {
    one_line(id.trim().trim_start_matches('<').trim_end_matches('>'))
}
