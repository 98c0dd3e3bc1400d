//! The rule model: what a rule file says, typed.
//!
//! These types are the single model behind both the TOML files under the
//! configuration directory and the console's rule editor (which will read
//! and write them through serde as well), so their doc comments are the
//! user documentation of every key. Unknown keys are errors, not warnings: a
//! misspelt `severty` that silently falls back to a default is a rule that
//! does not do what its author believes. Values that need more than serde
//! can check (patterns, list names, times) are validated when a file is
//! compiled ([`crate::Policy::compile`]), again naming the rule and the key.

use std::collections::BTreeMap;

use mailtrail_model::{Direction, RecipientKind};
use serde::{Deserialize, Serialize};

/// One rule file (`rules/*.toml`). Every section is optional.
///
/// ```toml
/// [calendar]
/// work_start = "08:30"
///
/// [lists]
/// project_words = ["プロジェクトX", "Project X"]
///
/// [watch_lists]
/// audit = ["suzuki@example.co.jp"]
///
/// [[rule]]
/// id = "confidential-to-freemail"
/// [[rule.condition]]
/// type = "keywords"
/// lists = ["confidential"]
/// [[rule.action]]
/// type = "alert"
/// severity = "high"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Working hours and holidays for `off_hours`. At most one file of a
    /// policy may set it; without it, 09:00–18:00 Monday to Friday in
    /// Asia/Tokyo with the shipped Japanese holidays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarConfig>,
    /// Named lists of keywords or domains, used by name in conditions. A
    /// list named like a shipped one (`confidential`, `password`,
    /// `freemail`, `carrier`) replaces it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, Vec<String>>,
    /// Named lists of people (addresses). `leavers` is automatic and cannot
    /// be defined here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub watch_lists: BTreeMap<String, Vec<String>>,
    /// How the automatic `leavers` watch-list is drawn from the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leavers: Option<LeaversConfig>,
    /// The rules, in the order they are reported.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// `[leavers]`: who is on the automatic `leavers` watch-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaversConfig {
    /// People whose leave date is at most this many days after the message
    /// (or already past), and everyone whose status is resigned. Default 30.
    #[serde(default = "default_leaver_days")]
    pub within_days: u32,
}

fn default_leaver_days() -> u32 {
    30
}

impl Default for LeaversConfig {
    fn default() -> Self {
        LeaversConfig {
            within_days: default_leaver_days(),
        }
    }
}

/// A date written either as a TOML date (`2026-12-29`) or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DateValue {
    Text(String),
    Toml(toml::value::Datetime),
}

impl std::fmt::Display for DateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DateValue::Text(s) => f.write_str(s),
            DateValue::Toml(d) => write!(f, "{d}"),
        }
    }
}

/// `[calendar]`: what counts as working time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// IANA time zone the hours are in. Default `Asia/Tokyo`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Start of the working day, `HH:MM`. Default `09:00`.
    #[serde(default = "default_work_start")]
    pub work_start: String,
    /// End of the working day, `HH:MM` (exclusive). Default `18:00`.
    #[serde(default = "default_work_end")]
    pub work_end: String,
    /// Working days: `mon` … `sun`. Default Monday to Friday.
    #[serde(default = "default_workdays")]
    pub workdays: Vec<String>,
    /// Use the shipped Japanese public holidays (2025–2027). Default true.
    #[serde(default = "yes")]
    pub japanese_holidays: bool,
    /// Further days off (company holidays, 年末年始, later years' holidays).
    #[serde(default)]
    pub extra_holidays: Vec<DateValue>,
}

fn default_timezone() -> String {
    "Asia/Tokyo".into()
}
fn default_work_start() -> String {
    "09:00".into()
}
fn default_work_end() -> String {
    "18:00".into()
}
fn default_workdays() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn ten() -> u32 {
    10
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            timezone: default_timezone(),
            work_start: default_work_start(),
            work_end: default_work_end(),
            workdays: default_workdays(),
            japanese_holidays: true,
            extra_holidays: Vec::new(),
        }
    }
}

/// How a rule's conditions combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Every condition must match (default).
    #[default]
    All,
    /// At least one condition must match.
    Any,
}

/// `[[rule]]`: one monitoring rule (監視ルール).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier, unique across the policy (`confidential-to-freemail`).
    /// Alerts refer to it.
    pub id: String,
    /// Name shown in the console (ルール名).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled rule is parsed and checked but never evaluated (except by
    /// an explicit dry run). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `all` (default) or `any` of the conditions.
    #[serde(default, rename = "match")]
    pub combine: Combine,
    /// Which messages the rule looks at at all.
    #[serde(default)]
    pub scope: Scope,
    /// `[[rule.condition]]`: at least one.
    #[serde(default, rename = "condition")]
    pub conditions: Vec<Condition>,
    /// `[[rule.action]]`: what a match does.
    #[serde(default, rename = "action")]
    pub actions: Vec<Action>,
}

/// `[rule.scope]`: whom and which direction a rule is about. Empty keys do
/// not restrict. The people a rule is about are the sender when the sender
/// is ours, else our recipients; with several keys set, one of those people
/// must satisfy every key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `inbound`, `outbound`, `internal`, `relayed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<Direction>,
    /// Addresses of people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    /// Departments: a whole path (`本社/営業部`), a path prefix, or a single
    /// component (`営業部` matches `本社/営業部/第一課`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// Watch-lists by name (`leavers` is the automatic one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_lists: Vec<String>,
    /// People never in scope (the CEO's assistant who mails everyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_people: Vec<String>,
}

/// A part of the message that text conditions search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextField {
    Subject,
    Body,
    AttachmentNames,
    /// File names inside archives.
    InnerNames,
}

pub(crate) fn all_text_fields() -> Vec<TextField> {
    vec![
        TextField::Subject,
        TextField::Body,
        TextField::AttachmentNames,
        TextField::InnerNames,
    ]
}

/// An authentication check of an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthCheck {
    Spf,
    Dkim,
    Dmarc,
}

fn all_auth_checks() -> Vec<AuthCheck> {
    vec![AuthCheck::Spf, AuthCheck::Dkim, AuthCheck::Dmarc]
}

/// Whom a watch-list condition looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// The sender (default).
    #[default]
    Sender,
    /// Any recipient.
    Recipient,
    /// The sender or any recipient.
    Any,
}

/// `[[rule.condition]]`: one building block, chosen by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Keywords in the text, matched like the console's search: after NFKC
    /// and lower-casing (全角/半角, half-width kana), Japanese as substrings,
    /// Latin words as whole words.
    Keywords {
        /// Keywords written in the rule.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        words: Vec<String>,
        /// Named lists (`confidential` is shipped).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lists: Vec<String>,
        /// Where to look; default everywhere.
        #[serde(default = "all_text_fields")]
        fields: Vec<TextField>,
        /// Matches needed in total (default 1).
        #[serde(default = "one")]
        min_count: usize,
    },
    /// Regular expressions (Rust `regex` syntax, linear time) over the
    /// normalised text: NFKC and lower case, so write `[0-9]` for digits of
    /// either width and lower-case letters.
    Regex {
        patterns: Vec<String>,
        #[serde(default = "all_text_fields")]
        fields: Vec<TextField>,
        #[serde(default = "one")]
        min_count: usize,
    },
    /// Credit-card numbers: 13–19 digits, optionally grouped by spaces or
    /// hyphens, with a valid Luhn digit and a card issuer's first digit.
    CreditCard {
        #[serde(default = "all_text_fields")]
        fields: Vec<TextField>,
    },
    /// Japanese individual numbers (マイナンバー): 12 digits (or 4-4-4) with
    /// a valid check digit.
    MyNumber {
        #[serde(default = "all_text_fields")]
        fields: Vec<TextField>,
    },
    /// A recipient at a listed domain or its subdomain (free-mail, carrier,
    /// competitors).
    RecipientDomain {
        /// Named domain lists (`freemail` and `carrier` are shipped).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lists: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        domains: Vec<String>,
        /// Only recipients of these kinds (`to`, `cc`, `bcc`, `envelope`); default all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<RecipientKind>,
    },
    /// A recipient that is likely the sender's own private address: one the
    /// directory lists, or an outside address whose local part spells the
    /// sender's romaji name (`taro.yamada`, `yamada_t`, `tyamada1985`).
    PrivateAddress {
        /// Only recipients at these named domain lists count for the name
        /// match (default: any outside domain).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lists: Vec<String>,
    },
    /// An outside recipient domain nobody of ours has mailed before.
    FirstContact {},
    /// At least `min` distinct outside recipients.
    ExternalRecipients { min: usize },
    /// Blind copies: at least `min` (default 1) Bcc recipients.
    Bcc {
        #[serde(default = "one")]
        min: usize,
        /// Count only outside Bcc recipients.
        #[serde(default)]
        external_only: bool,
    },
    /// A party is on a watch-list (監視対象者リスト).
    WatchList {
        lists: Vec<String>,
        #[serde(default)]
        party: Party,
    },
    /// An executable or script: by content (PE, ELF, Mach-O, `#!`, .lnk,
    /// HTA, Windows Script Host text) or by name, also inside zip archives.
    ExecutableAttachment {},
    /// A macro-enabled Office document (OOXML with `vbaProject.bin`, OLE with
    /// a VBA storage, .xlsm/.docm …).
    MacroAttachment {},
    /// A password-protected archive or encrypted document.
    EncryptedArchive {},
    /// PPAP (パスワード付きZIP送信): this message has no attachment and follows,
    /// within `within_minutes`, a message from the same sender that carried
    /// an encrypted archive and went to every recipient of this one (the
    /// password mail may go to fewer people, never to others). The match
    /// links to that message.
    Ppap {
        #[serde(default = "ten")]
        within_minutes: u32,
        /// Also require a password word (list `password`) in the subject or
        /// body. Default true.
        #[serde(default = "yes")]
        require_password_word: bool,
    },
    /// An attachment at least `min_bytes` large (or all together with `total`).
    AttachmentSize {
        min_bytes: u64,
        #[serde(default)]
        total: bool,
    },
    /// Sent outside working time (時間外送信), per `[calendar]`.
    OffHours {
        /// Before the start or after the end of the working day. Default true.
        #[serde(default = "yes")]
        outside_hours: bool,
        /// On a day that is not a working day. Default true.
        #[serde(default = "yes")]
        weekends: bool,
        /// On a holiday. Default true.
        #[serde(default = "yes")]
        holidays: bool,
    },
    /// Failed SPF / DKIM / DMARC (`fail`, `softfail`, `permerror`).
    AuthFailure {
        #[serde(default = "all_auth_checks")]
        checks: Vec<AuthCheck>,
    },
    /// An outside sender whose display name is an employee's name (なりすまし).
    DisplayNameImpersonation {},
    /// A sender, Reply-To or recipient domain that imitates one of ours
    /// (類似ドメイン): within `max_distance` edits (default 1), or the same
    /// after confusable characters are folded (Cyrillic `а`, `1` for `l`).
    LookalikeDomain {
        #[serde(default = "one")]
        max_distance: usize,
    },
    /// Reply-To at a different domain than From.
    ReplyToDiffers {},
}

impl Condition {
    /// The `type` name, as written in rule files.
    pub fn type_name(&self) -> &'static str {
        match self {
            Condition::Keywords { .. } => "keywords",
            Condition::Regex { .. } => "regex",
            Condition::CreditCard { .. } => "credit_card",
            Condition::MyNumber { .. } => "my_number",
            Condition::RecipientDomain { .. } => "recipient_domain",
            Condition::PrivateAddress { .. } => "private_address",
            Condition::FirstContact {} => "first_contact",
            Condition::ExternalRecipients { .. } => "external_recipients",
            Condition::Bcc { .. } => "bcc",
            Condition::WatchList { .. } => "watch_list",
            Condition::ExecutableAttachment {} => "executable_attachment",
            Condition::MacroAttachment {} => "macro_attachment",
            Condition::EncryptedArchive {} => "encrypted_archive",
            Condition::Ppap { .. } => "ppap",
            Condition::AttachmentSize { .. } => "attachment_size",
            Condition::OffHours { .. } => "off_hours",
            Condition::AuthFailure { .. } => "auth_failure",
            Condition::DisplayNameImpersonation {} => "display_name_impersonation",
            Condition::LookalikeDomain { .. } => "lookalike_domain",
            Condition::ReplyToDiffers {} => "reply_to_differs",
        }
    }
}

/// Alert severity (重要度).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// `[[rule.action]]`: what a match does. Carried as data in the result;
/// the server performs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Raise an alert (アラート).
    Alert {
        severity: Severity,
        /// Who handles it (a console user or group).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
    },
    /// Send a notice to named channels (configured elsewhere: mail, webhook, syslog).
    Notify { channels: Vec<String> },
    /// Tag the message (shown and searchable in the console).
    Tag { tags: Vec<String> },
}
