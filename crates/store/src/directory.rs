//! The directory in the store: people and devices from every directory
//! source, and the link from mail to them.
//!
//! Why it is shaped this way:
//! - **Applied source by source, never deleted.** A source (`csv`, `ldap`,
//!   `entra`, `google`, or a name the administrator gives an import) always
//!   hands over its whole list ([`DirectorySnapshot`]); what it no longer
//!   lists is marked not present, because last year's mail must still say
//!   who sent it. Applying the same snapshot twice changes nothing and
//!   reports every person unchanged — imports are idempotent.
//! - **Attribution is a join, not a copy.** Messages are linked to people
//!   through the addresses the directory lists *now* (and to devices through
//!   the client IP at the message's time), when a search or a page asks. So
//!   when the directory changes — an alias added, a department renamed —
//!   every stored message is attributed anew, with nothing to rewrite and
//!   nothing to get out of step.
//! - **A trait of its own** ([`DirectoryStore`]), like
//!   [`crate::console::ConsoleStore`]: directory writes come from an import
//!   or a sync, not from the mail writer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailtrail_model::directory::{Device, DirectorySnapshot, Person};
use serde::Serialize;

use crate::StoreError;

/// A person as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPerson {
    /// The directory source that lists them (`csv`, `ldap`, …).
    pub source: String,
    /// Still listed by that source at its last import or sync.
    pub present: bool,
    pub updated: DateTime<Utc>,
    #[serde(flatten)]
    pub person: Person,
}

/// A device as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredDevice {
    pub source: String,
    pub present: bool,
    pub updated: DateTime<Utc>,
    #[serde(flatten)]
    pub device: Device,
}

/// One person (or device) whose facts changed, and which facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The person's id or the device's host name.
    pub key: String,
    /// A name to show beside the key (the person's name), if any.
    pub label: Option<String>,
    /// The fields that differ (`addresses`, `department`, `status`, …).
    pub fields: Vec<&'static str>,
}

/// What applying a snapshot did: the report an import prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectoryChanges {
    pub source: String,
    /// New people (id, name).
    pub added: Vec<Changed>,
    pub changed: Vec<Changed>,
    pub unchanged: u64,
    /// People the source listed before and no longer does (marked not
    /// present; their mail stays attributed).
    pub removed: Vec<Changed>,
    pub devices_added: Vec<Changed>,
    pub devices_changed: Vec<Changed>,
    pub devices_unchanged: u64,
    pub devices_removed: Vec<Changed>,
}

impl DirectoryChanges {
    /// Whether the snapshot changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.devices_added.is_empty()
            && self.devices_changed.is_empty()
            && self.devices_removed.is_empty()
    }
}

/// Who an address belongs to, for showing beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub id: String,
    pub name: Option<String>,
    pub department: Option<String>,
    pub status: mailtrail_model::directory::EmploymentStatus,
    pub present: bool,
}

/// The device a message came from, for showing beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAttribution {
    pub hostname: String,
    /// The owner's id and name, when the directory knows them.
    pub owner: Option<String>,
    pub owner_name: Option<String>,
}

/// One person in a coverage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonCoverage {
    pub id: String,
    pub name: Option<String>,
    pub department: Option<String>,
    pub source: String,
    pub addresses: Vec<String>,
    /// The systems (`postfix@mx1`, `journal`, `m365`, …) that captured mail
    /// sent or received by the person in the period, sorted.
    pub seen_by: Vec<String>,
    /// Their newest captured message in the period.
    pub last_seen: Option<DateTime<Utc>>,
}

/// One device in a coverage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCoverage {
    pub hostname: String,
    pub owner: Option<String>,
    pub source: String,
    /// The newest message from the device in the period.
    pub last_seen: Option<DateTime<Utc>>,
    pub messages: u64,
}

/// Who and what had mail captured in a period, and by which system: the
/// gaps in collection (`mailtrail coverage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub since: Option<DateTime<Utc>>,
    /// Every system that captured mail in the period, sorted.
    pub systems: Vec<String>,
    /// Messages of the period.
    pub messages: u64,
    /// Everyone the directory lists now.
    pub people: Vec<PersonCoverage>,
    /// Every device the directory lists now.
    pub devices: Vec<DeviceCoverage>,
}

/// The directory part of a store.
pub trait DirectoryStore {
    /// Who and what had mail captured since `since`, by which system.
    fn coverage(&self, since: DateTime<Utc>) -> Result<Coverage, StoreError>;

    /// Makes `snapshot` the directory of `source`: adds and updates what it
    /// lists, marks not present what it no longer lists. Idempotent. The
    /// snapshot should be normalised ([`DirectorySnapshot::normalize`]);
    /// a person id or host name listed twice is an error naming it.
    ///
    /// `dry_run`: work out and report the changes, write nothing.
    fn apply_directory(
        &mut self,
        source: &str,
        snapshot: &DirectorySnapshot,
        dry_run: bool,
    ) -> Result<DirectoryChanges, StoreError>;

    /// What changes whenever the people change (their number and the time
    /// of the latest write): a cheap test for "reload the directory".
    fn directory_version(&self) -> Result<(u64, i64), StoreError>;

    /// Every person of every source (present or not), by source then id.
    fn directory_people(&self) -> Result<Vec<StoredPerson>, StoreError>;

    /// Every device of every source.
    fn directory_devices(&self) -> Result<Vec<StoredDevice>, StoreError>;

    /// Who each of these (normalised) addresses belongs to. A person listed
    /// by a source that no longer lists them is used only when no present
    /// person has the address.
    fn attribute_addresses(
        &self,
        addresses: &[&str],
    ) -> Result<BTreeMap<String, Attribution>, StoreError>;

    /// The device that had `ip` at `time`, if the directory knows one.
    fn attribute_device(
        &self,
        ip: &str,
        time: DateTime<Utc>,
    ) -> Result<Option<DeviceAttribution>, StoreError>;
}
