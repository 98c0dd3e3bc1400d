//! mailtrail's policy engine (DESIGN.md §5): monitoring rules as data,
//! evaluated as a pure function of one message.
//!
//! # Why it is shaped like this
//!
//! - **Rules are data.** A rule file ([`RuleFile`]) is TOML under the
//!   configuration directory, and the console edits the very same model
//!   through serde; there is no second rule language to keep in step.
//!   [`Policy::compile`] checks everything that could go wrong — unknown
//!   keys, bad patterns, unknown lists — and reports it with file, line,
//!   rule id and key, so a compiled [`Policy`] cannot fail at evaluation.
//! - **Evaluation is pure.** [`Policy::evaluate`] takes [`MessageFacts`]
//!   (built from a `MessageRecord` at ingest or a `StoredMessage` for a dry
//!   run) and answers questions about people and the past only through the
//!   [`Directory`] and [`History`] traits. The store implements those with an
//!   index lookup each; tests use in-memory fakes. The same code therefore
//!   runs on a message as it is stored and over 90 days of history for
//!   `mailtrail rules test`.
//! - **Every match explains itself.** A [`RuleMatch`] lists per condition
//!   what matched, where ([`Location`]), and, for text, the original
//!   characters with byte and character offsets ([`Span`]) so the console
//!   highlights `ＣＯＮＦＩＤＥＮＴＩＡＬ` itself, not its normalised form.
//! - **Text matching is the search's.** Keywords are compared after the
//!   store's own normalisation (`mailtrail_store::tokenize::normalize`: NFKC,
//!   lower case), Japanese as substrings and Latin words as whole words,
//!   so a keyword that finds a message in the console also fires a rule.
//! - **Shipped data is data.** Starter keyword lists, free-mail and carrier
//!   domains, Japanese holidays and example rules are text files under
//!   `data/`, compiled in with `include_str!`, and replaceable from a rule
//!   file.

pub mod checks;
pub mod edit;
mod eval;
mod facts;
mod files;
mod policy;
pub mod risk;
pub mod rules;
pub mod sniff;
pub mod store;
pub mod text;

pub use eval::{local_part_matches_name, normalize_person_name, Hit, Location, RuleMatch};
pub use facts::{
    AttachmentFacts, Directory, Employee, EmployeeStatus, History, MessageFacts, NoHistory,
    PriorMessage,
};
pub use files::{load_rule_paths, rule_files, LoadError};
pub use policy::{
    list_entries, parse_rule_file, Calendar, CompiledRule, Policy, PolicyError, EXAMPLE_RULES,
    JAPANESE_HOLIDAYS, LEAVERS, STARTER_CARRIER, STARTER_CONFIDENTIAL, STARTER_FREEMAIL,
    STARTER_PASSWORD,
};
pub use rules::{Action, Combine, Condition, RuleFile, Scope, Severity, TextField};
pub use text::Span;
