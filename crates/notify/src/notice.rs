//! What one alert says, in one value that every channel renders.
//!
//! The notice is a self-contained snapshot, not a reference into the store:
//! the outbox keeps it as JSON and may send it hours later (retries) or to a
//! receiver that cannot reach mailtrail. It therefore carries the facts an
//! administrator needs to decide whether to look (rule, severity, what
//! matched, who sent what to whom, when) and a link to the console for the
//! rest. Mail content beyond the subject and the matched text never leaves
//! mailtrail through a notice.

use chrono::{DateTime, Utc};
use mailtrail_model::Direction;
use serde::{Deserialize, Serialize};

use crate::config::Lang;

/// Alert severity (重要度). Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// `low`, `medium`, `high`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The word administrators read: 低 / 中 / 高 / 緊急, or Low … Critical.
    pub fn label(self, lang: Lang) -> &'static str {
        match (lang, self) {
            (Lang::Ja, Severity::Low) => "低",
            (Lang::Ja, Severity::Medium) => "中",
            (Lang::Ja, Severity::High) => "高",
            (Lang::Ja, Severity::Critical) => "緊急",
            (Lang::En, Severity::Low) => "Low",
            (Lang::En, Severity::Medium) => "Medium",
            (Lang::En, Severity::High) => "High",
            (Lang::En, Severity::Critical) => "Critical",
        }
    }

    /// CEF severity (0–10): 3, 5, 8, 10.
    pub fn cef(self) -> u8 {
        match self {
            Severity::Low => 3,
            Severity::Medium => 5,
            Severity::High => 8,
            Severity::Critical => 10,
        }
    }

    /// Syslog severity (RFC 5424 §6.2.1): notice, warning, error, critical.
    pub fn syslog(self) -> u8 {
        match self {
            Severity::Low => 5,
            Severity::Medium => 4,
            Severity::High => 3,
            Severity::Critical => 2,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message that caused an alert, as much as a notice may tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// mailtrail's message number (the console's `/messages/{id}`).
    pub id: i64,
    /// The `Message-ID` header, without angle brackets, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// When the message was sent or first seen (UTC).
    pub time: DateTime<Utc>,
    pub subject: String,
    /// The sender as shown (`山田 太郎 <yamada@example.co.jp>` or an address).
    pub from: String,
    /// To, Cc and Bcc recipients, as shown.
    pub recipients: Vec<String>,
    pub direction: Direction,
}

/// One alert, ready to be delivered to any channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// The alert's number in mailtrail.
    pub alert_id: i64,
    /// The rule's stable identifier (`confidential-to-freemail`); CEF's
    /// event class.
    pub rule_id: String,
    /// The rule's display name (ルール名); the id when it has none.
    pub rule_name: String,
    pub severity: Severity,
    /// Which condition matched, in words (`keywords in attachment name`).
    pub condition: String,
    /// What matched, as it appears in the message (`社外秘_顧客リスト.xlsx`).
    pub matched_text: String,
    pub message: MessageSummary,
    /// The alert in the web console, when the console's address is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// When the alert was raised (UTC).
    pub raised_at: DateTime<Utc>,
}

/// How a direction is named: 社外から / 社外宛 / 社内 / 中継, or the English word.
pub fn direction_label(direction: Direction, lang: Lang) -> &'static str {
    match (lang, direction) {
        (Lang::Ja, Direction::Inbound) => "社外から",
        (Lang::Ja, Direction::Outbound) => "社外宛",
        (Lang::Ja, Direction::Internal) => "社内",
        (Lang::Ja, Direction::Relayed) => "中継",
        (Lang::En, Direction::Inbound) => "inbound",
        (Lang::En, Direction::Outbound) => "outbound",
        (Lang::En, Direction::Internal) => "internal",
        (Lang::En, Direction::Relayed) => "relayed",
    }
}

/// Text from a message made safe for one line: control characters (CR, LF,
/// tabs, escapes) become spaces, so a hostile subject cannot add header
/// lines or fake log lines anywhere it is shown.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_shorten() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        assert_eq!(shorten("社外秘の資料", 4), "社外秘…");
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[test]
    fn severity_orders_and_maps() {
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::High.cef(), 8);
        assert_eq!(Severity::High.label(Lang::Ja), "高");
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
    }
}
