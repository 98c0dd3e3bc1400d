//! The directory (社員情報): who the people and PCs behind the addresses are
//! (DESIGN.md §5).
//!
//! Every way into the directory — a CSV exported from Excel, an Active
//! Directory / LDAP sync, Microsoft Entra ID, Google Workspace — produces the
//! same [`DirectorySnapshot`]: the complete list of people (and devices) as
//! that source knows them *now*. The store applies a snapshot source by
//! source: what the source no longer lists is marked gone from it, never
//! deleted, because mail from last year must still say who sent it. That is
//! why these types carry a stable [`Person::id`] from the source (employee
//! number, `objectGUID`, Entra object id, Google user id) and not only an
//! address: addresses change, people keep their number.
//!
//! The types are plain data with no behaviour beyond normalisation, so that
//! decoders and sync clients can be tested by comparing snapshots.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::normalize_address;

/// An employee's standing, as the source states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmploymentStatus {
    /// 在籍: employed and working.
    #[default]
    Active,
    /// 休職: on leave, still an employee.
    OnLeave,
    /// 退職: resigned or left; on the automatic `leavers` watch-list.
    Resigned,
    /// The account is disabled (AD `userAccountControl` bit 2, Entra
    /// `accountEnabled: false`, Google `suspended`) and no other status is
    /// known: treated as a leaver by policies.
    Disabled,
}

impl EmploymentStatus {
    pub const ALL: [EmploymentStatus; 4] = [
        EmploymentStatus::Active,
        EmploymentStatus::OnLeave,
        EmploymentStatus::Resigned,
        EmploymentStatus::Disabled,
    ];

    /// The stable key used in the store, JSON and CSV (`active`, `on-leave`,
    /// `resigned`, `disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            EmploymentStatus::Active => "active",
            EmploymentStatus::OnLeave => "on-leave",
            EmploymentStatus::Resigned => "resigned",
            EmploymentStatus::Disabled => "disabled",
        }
    }

    /// Reads a status as administrators write it in a spreadsheet: the key,
    /// or the Japanese word (在籍, 休職, 退職, 無効), case-insensitive,
    /// surrounding spaces ignored. `None` for anything else.
    pub fn parse(text: &str) -> Option<EmploymentStatus> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        Some(match lower.as_str() {
            "active" | "在籍" | "在職" | "有効" | "" => EmploymentStatus::Active,
            "on-leave" | "onleave" | "leave" | "休職" | "休職中" => EmploymentStatus::OnLeave,
            "resigned" | "left" | "retired" | "退職" | "退職済" | "退社" => {
                EmploymentStatus::Resigned
            }
            "disabled" | "無効" | "停止" => EmploymentStatus::Disabled,
            _ => return None,
        })
    }

    /// Whether policies treat the person as leaving or gone.
    pub fn is_leaver(self) -> bool {
        matches!(
            self,
            EmploymentStatus::Resigned | EmploymentStatus::Disabled
        )
    }
}

/// One person as one source knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The source's stable key: employee number (社員番号), `objectGUID`,
    /// Entra object id, Google user id. Unique within a source.
    pub id: String,
    /// The name as written at the company (山田 太郎).
    pub name: Option<String>,
    /// The reading in kana (ヤマダ タロウ).
    pub kana: Option<String>,
    /// The name in Latin letters (Taro Yamada): compared with local parts of
    /// private addresses.
    pub romaji: Option<String>,
    /// Mail addresses, the primary first, then aliases; normalised by
    /// [`Person::normalize`].
    pub addresses: Vec<String>,
    /// Department path from the top, `/`-separated (`本社/営業部/第一課`).
    pub department: Option<String>,
    /// The manager's [`Person::id`] in the same source.
    pub manager: Option<String>,
    pub status: EmploymentStatus,
    /// 入社日.
    pub hire_date: Option<NaiveDate>,
    /// 退職日 (or the planned last day).
    pub leave_date: Option<NaiveDate>,
    /// Private addresses the company knows (registered for emergencies).
    pub private_addresses: Vec<String>,
    /// Groups the person belongs to (LDAP/AD group names, Entra/Google
    /// groups): usable as watch-lists.
    pub groups: Vec<String>,
}

impl Person {
    /// Normalises addresses (lower case, trimmed, duplicates and unusable
    /// ones removed, keeping the first), trims text fields and drops empty ones, and sorts groups,
    /// so that two snapshots of the same facts compare equal.
    pub fn normalize(&mut self) {
        fn addresses(list: &mut Vec<String>) {
            let mut seen = std::collections::HashSet::new();
            let kept = std::mem::take(list)
                .into_iter()
                .filter_map(|a| normalize_address(&a))
                .filter(|a| seen.insert(a.clone()))
                .collect();
            *list = kept;
        }
        fn text(field: &mut Option<String>) {
            if let Some(t) = field {
                let trimmed = t.trim();
                if trimmed.is_empty() {
                    *field = None;
                } else if trimmed.len() != t.len() {
                    *field = Some(trimmed.to_string());
                }
            }
        }
        self.id = self.id.trim().to_string();
        text(&mut self.name);
        text(&mut self.kana);
        text(&mut self.romaji);
        text(&mut self.manager);
        if let Some(d) = &self.department {
            let path: Vec<&str> = d
                .split('/')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            self.department = (!path.is_empty()).then(|| path.join("/"));
        }
        addresses(&mut self.addresses);
        addresses(&mut self.private_addresses);
        self.groups
            .iter_mut()
            .for_each(|g| *g = g.trim().to_string());
        self.groups.retain(|g| !g.is_empty());
        self.groups.sort();
        self.groups.dedup();
    }

    /// The primary address, if any.
    pub fn primary_address(&self) -> Option<&str> {
        self.addresses.first().map(String::as_str)
    }
}

/// A time range in which a device had an address. Open ends are unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAssignment {
    pub ip: Option<IpAddr>,
    /// MAC address, lower case, `:`-separated.
    pub mac: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A PC or phone that sends or receives mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Host name, lower case (`pc-0123`), unique within a source.
    pub hostname: String,
    /// The owner's [`Person::id`].
    pub owner: Option<String>,
    pub assignments: Vec<DeviceAssignment>,
}

/// Everything one source knows, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySnapshot {
    pub people: Vec<Person>,
    pub devices: Vec<Device>,
}

impl DirectorySnapshot {
    /// Normalises every person (see [`Person::normalize`]) and lower-cases
    /// host names and MACs.
    pub fn normalize(&mut self) {
        self.people.iter_mut().for_each(Person::normalize);
        for d in &mut self.devices {
            d.hostname = d.hostname.trim().to_lowercase();
            for a in &mut d.assignments {
                if let Some(mac) = &mut a.mac {
                    *mac = mac.trim().to_lowercase().replace('-', ":");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_spreadsheets_write_them() {
        assert_eq!(
            EmploymentStatus::parse(" 退職 "),
            Some(EmploymentStatus::Resigned)
        );
        assert_eq!(
            EmploymentStatus::parse("On-Leave"),
            Some(EmploymentStatus::OnLeave)
        );
        assert_eq!(EmploymentStatus::parse(""), Some(EmploymentStatus::Active));
        assert_eq!(EmploymentStatus::parse("maybe"), None);
        for s in EmploymentStatus::ALL {
            assert_eq!(EmploymentStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn normalising_makes_equal_facts_compare_equal() {
        let mut a = Person {
            id: " 1001 ".into(),
            name: Some("山田 太郎 ".into()),
            kana: Some("  ".into()),
            addresses: vec![
                "Taro.Yamada@Example.co.jp".into(),
                "taro.yamada@example.co.jp".into(),
                "t-yamada@example.co.jp".into(),
            ],
            department: Some("/本社/ 営業部 /".into()),
            groups: vec!["b".into(), "a".into(), "a".into()],
            ..Person::default()
        };
        a.normalize();
        assert_eq!(a.id, "1001");
        assert_eq!(a.name.as_deref(), Some("山田 太郎"));
        assert_eq!(a.kana, None);
        assert_eq!(
            a.addresses,
            vec!["taro.yamada@example.co.jp", "t-yamada@example.co.jp"]
        );
        assert_eq!(a.department.as_deref(), Some("本社/営業部"));
        assert_eq!(a.groups, vec!["a", "b"]);
    }
}
