//! [`DirectoryStore`] on SQLite: people and devices as JSON documents keyed
//! by (source, id), with the columns searches need beside them.
//!
//! The whole [`Person`] is kept as JSON so that "did anything change" is a
//! comparison of two values, and a new field in the model needs no
//! migration; what queries need — addresses, a normalised name key, the
//! department path, the status — is kept in columns and in
//! `person_addresses`, rewritten with the document.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use mailtrail_model::directory::{Device, DirectorySnapshot, Person};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{from_micros, micros, SqliteStore};
use crate::directory::{
    Attribution, Changed, Coverage, DeviceAttribution, DeviceCoverage, DirectoryChanges,
    DirectoryStore, PersonCoverage, StoredDevice, StoredPerson,
};
use crate::StoreError;

/// The text `employee:` compares with: name, kana and romaji, each
/// normalised (NFKC, lower case) without spaces, one per line.
pub(super) fn name_key(p: &Person) -> String {
    [&p.name, &p.kana, &p.romaji]
        .into_iter()
        .flatten()
        .map(|n| compact(n))
        .collect::<Vec<_>>()
        .join("\n")
}

/// NFKC, lower case, no white space: `山田　太郎` = `山田太郎`, `Ｙａｍａｄａ` = `yamada`.
pub(super) fn compact(text: &str) -> String {
    crate::tokenize::normalize(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn person_fields(old: &Person, new: &Person) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            fields.push(name);
        }
    };
    check("name", old.name != new.name);
    check("kana", old.kana != new.kana);
    check("romaji", old.romaji != new.romaji);
    check("addresses", old.addresses != new.addresses);
    check("department", old.department != new.department);
    check("manager", old.manager != new.manager);
    check("status", old.status != new.status);
    check("hire_date", old.hire_date != new.hire_date);
    check("leave_date", old.leave_date != new.leave_date);
    check(
        "private_addresses",
        old.private_addresses != new.private_addresses,
    );
    check("groups", old.groups != new.groups);
    fields
}

fn device_fields(old: &Device, new: &Device) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if old.owner != new.owner {
        fields.push("owner");
    }
    if old.assignments != new.assignments {
        fields.push("assignments");
    }
    fields
}

fn json_error(e: serde_json::Error) -> StoreError {
    StoreError::Invalid(format!("directory document: {e}"))
}

fn write_person_columns(
    tx: &Transaction<'_>,
    row: i64,
    p: &Person,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE people SET data = ?2, name_key = ?3, department = ?4, status = ?5,
                present = 1, updated = ?6 WHERE id = ?1",
    )?
    .execute(params![
        row,
        serde_json::to_string(p).map_err(json_error)?,
        name_key(p),
        p.department,
        p.status.as_str(),
        now
    ])?;
    tx.prepare_cached("DELETE FROM person_addresses WHERE person = ?1")?
        .execute([row])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO person_addresses (address, person) VALUES (?1, ?2)",
    )?;
    for a in &p.addresses {
        insert.execute(params![a, row])?;
    }
    Ok(())
}

fn write_device_columns(
    tx: &Transaction<'_>,
    row: i64,
    d: &Device,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE devices SET owner = ?2, data = ?3, present = 1, updated = ?4 WHERE id = ?1",
    )?
    .execute(params![
        row,
        d.owner,
        serde_json::to_string(d).map_err(json_error)?,
        now
    ])?;
    tx.prepare_cached("DELETE FROM device_addresses WHERE device = ?1")?
        .execute([row])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO device_addresses (device, ip, mac, valid_from, valid_until)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for a in &d.assignments {
        insert.execute(params![
            row,
            a.ip.map(|ip| ip.to_string()),
            a.mac,
            a.from.map(micros),
            a.until.map(micros)
        ])?;
    }
    Ok(())
}

fn duplicate<'a>(keys: impl Iterator<Item = &'a str>, what: &str) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for k in keys {
        if k.is_empty() {
            return Err(StoreError::Invalid(format!("a {what} without an id")));
        }
        if !seen.insert(k) {
            return Err(StoreError::Invalid(format!(
                "{what} {k:?} is listed twice; each must appear once"
            )));
        }
    }
    Ok(())
}

/// A person's or device's row: its source, whether listed, when written,
/// and the decoded document.
struct Document<T> {
    source: String,
    present: bool,
    updated: DateTime<Utc>,
    document: T,
}

/// The rows of a `SELECT source, data, present, updated` over people or
/// devices, their documents decoded.
fn documents<T: serde::de::DeserializeOwned>(
    conn: &rusqlite::Connection,
    sql: &str,
) -> Result<Vec<Document<T>>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (source, data, present, updated) = row?;
        out.push(Document {
            source,
            present,
            updated: from_micros(updated),
            document: serde_json::from_str(&data).map_err(json_error)?,
        });
    }
    Ok(out)
}

/// What a source lists now, by key (person id or host name): row id,
/// document, present.
fn listed<T: serde::de::DeserializeOwned>(
    tx: &Transaction<'_>,
    sql: &str,
    source: &str,
) -> Result<HashMap<String, (i64, T, bool)>, StoreError> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map([source], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (row, key, data, present) = row?;
        let document = serde_json::from_str(&data).map_err(json_error)?;
        out.insert(key, (row, document, present));
    }
    Ok(out)
}

fn apply_people(
    tx: &Transaction<'_>,
    source: &str,
    people: &[Person],
    now: i64,
    out: &mut DirectoryChanges,
) -> Result<(), StoreError> {
    let mut existing: HashMap<String, (i64, Person, bool)> = listed(
        tx,
        "SELECT id, source_id, data, present FROM people WHERE source = ?1",
        source,
    )?;
    let label = |p: &Person| p.name.clone().or_else(|| p.addresses.first().cloned());
    for p in people {
        match existing.remove(&p.id) {
            None => {
                tx.prepare_cached(
                    "INSERT INTO people (source, source_id, data, name_key, status, present, updated)
                     VALUES (?1, ?2, '', '', '', 1, ?3)",
                )?
                .execute(params![source, p.id, now])?;
                let row = tx.last_insert_rowid();
                write_person_columns(tx, row, p, now)?;
                out.added.push(Changed {
                    key: p.id.clone(),
                    label: label(p),
                    fields: Vec::new(),
                });
            }
            Some((row, old, present)) => {
                let mut fields = person_fields(&old, p);
                if !present {
                    fields.insert(0, "present");
                }
                if fields.is_empty() {
                    out.unchanged += 1;
                } else {
                    write_person_columns(tx, row, p, now)?;
                    out.changed.push(Changed {
                        key: p.id.clone(),
                        label: label(p),
                        fields,
                    });
                }
            }
        }
    }
    let mut gone: Vec<_> = existing.into_iter().filter(|(_, e)| e.2).collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, (row, old, _)) in gone {
        tx.prepare_cached("UPDATE people SET present = 0, updated = ?2 WHERE id = ?1")?
            .execute(params![row, now])?;
        out.removed.push(Changed {
            key: id,
            label: label(&old),
            fields: Vec::new(),
        });
    }
    Ok(())
}

fn apply_devices(
    tx: &Transaction<'_>,
    source: &str,
    devices: &[Device],
    now: i64,
    out: &mut DirectoryChanges,
) -> Result<(), StoreError> {
    let mut existing: HashMap<String, (i64, Device, bool)> = listed(
        tx,
        "SELECT id, hostname, data, present FROM devices WHERE source = ?1",
        source,
    )?;
    for d in devices {
        match existing.remove(&d.hostname) {
            None => {
                tx.prepare_cached(
                    "INSERT INTO devices (source, hostname, data, present, updated)
                     VALUES (?1, ?2, '', 1, ?3)",
                )?
                .execute(params![source, d.hostname, now])?;
                let row = tx.last_insert_rowid();
                write_device_columns(tx, row, d, now)?;
                out.devices_added.push(Changed {
                    key: d.hostname.clone(),
                    label: d.owner.clone(),
                    fields: Vec::new(),
                });
            }
            Some((row, old, present)) => {
                let mut fields = device_fields(&old, d);
                if !present {
                    fields.insert(0, "present");
                }
                if fields.is_empty() {
                    out.devices_unchanged += 1;
                } else {
                    write_device_columns(tx, row, d, now)?;
                    out.devices_changed.push(Changed {
                        key: d.hostname.clone(),
                        label: d.owner.clone(),
                        fields,
                    });
                }
            }
        }
    }
    let mut gone: Vec<_> = existing.into_iter().filter(|(_, e)| e.2).collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (host, (row, old, _)) in gone {
        tx.prepare_cached("UPDATE devices SET present = 0, updated = ?2 WHERE id = ?1")?
            .execute(params![row, now])?;
        out.devices_removed.push(Changed {
            key: host,
            label: old.owner,
            fields: Vec::new(),
        });
    }
    Ok(())
}

impl DirectoryStore for SqliteStore {
    fn coverage(&self, since: DateTime<Utc>) -> Result<Coverage, StoreError> {
        let since_micros = micros(since);
        // Every message of the period once, in time order: which addresses
        // it names, which systems saw it, which client sent it.
        let mut seen: HashMap<String, (HashSet<String>, i64)> = HashMap::new();
        let mut systems_all: HashSet<String> = HashSet::new();
        let mut by_ip: HashMap<String, Vec<i64>> = HashMap::new();
        let mut messages = 0u64;
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT m.id, m.sort_time, m.systems, m.from_addr, m.envelope_from, m.client_ip,
                        (SELECT group_concat(address, ' ') FROM recipients WHERE message = m.id)
                 FROM messages m WHERE m.sort_time >= ?1",
            )?;
            let mut rows = stmt.query([since_micros])?;
            while let Some(r) = rows.next()? {
                messages += 1;
                let time: i64 = r.get(1)?;
                let systems: String = r.get(2)?;
                let systems: Vec<&str> = systems.split_whitespace().collect();
                for s in &systems {
                    systems_all.insert((*s).to_string());
                }
                let mut addresses: Vec<String> = Vec::new();
                for i in [3, 4] {
                    if let Some(a) = r.get::<_, Option<String>>(i)? {
                        addresses.push(a);
                    }
                }
                if let Some(list) = r.get::<_, Option<String>>(6)? {
                    addresses.extend(list.split(' ').map(str::to_string));
                }
                for a in addresses {
                    let entry = seen.entry(a).or_insert_with(|| (HashSet::new(), 0));
                    for s in &systems {
                        entry.0.insert((*s).to_string());
                    }
                    entry.1 = entry.1.max(time);
                }
                if let Some(ip) = r.get::<_, Option<String>>(5)? {
                    by_ip.entry(ip).or_default().push(time);
                }
            }
        }
        let mut people = Vec::new();
        for stored in self.directory_people()? {
            if !stored.present {
                continue;
            }
            let mut seen_by: HashSet<String> = HashSet::new();
            let mut last = 0i64;
            for a in &stored.person.addresses {
                if let Some((systems, time)) = seen.get(a) {
                    seen_by.extend(systems.iter().cloned());
                    last = last.max(*time);
                }
            }
            let mut seen_by: Vec<String> = seen_by.into_iter().collect();
            seen_by.sort();
            people.push(PersonCoverage {
                id: stored.person.id,
                name: stored.person.name,
                department: stored.person.department,
                source: stored.source,
                addresses: stored.person.addresses,
                seen_by,
                last_seen: (last > 0).then(|| from_micros(last)),
            });
        }
        let mut devices = Vec::new();
        for stored in self.directory_devices()? {
            if !stored.present {
                continue;
            }
            let (mut last, mut count) = (0i64, 0u64);
            for a in &stored.device.assignments {
                let Some(ip) = a.ip else { continue };
                let from = a.from.map(micros).unwrap_or(i64::MIN);
                let until = a.until.map(micros).unwrap_or(i64::MAX);
                for &t in by_ip.get(&ip.to_string()).into_iter().flatten() {
                    if t >= from && t < until {
                        count += 1;
                        last = last.max(t);
                    }
                }
            }
            devices.push(DeviceCoverage {
                hostname: stored.device.hostname,
                owner: stored.device.owner,
                source: stored.source,
                last_seen: (last > 0).then(|| from_micros(last)),
                messages: count,
            });
        }
        let mut systems: Vec<String> = systems_all.into_iter().collect();
        systems.sort();
        Ok(Coverage {
            since: Some(since),
            systems,
            messages,
            people,
            devices,
        })
    }

    fn apply_directory(
        &mut self,
        source: &str,
        snapshot: &DirectorySnapshot,
        dry_run: bool,
    ) -> Result<DirectoryChanges, StoreError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(StoreError::Invalid(
                "a directory source needs a name".into(),
            ));
        }
        duplicate(snapshot.people.iter().map(|p| p.id.as_str()), "person")?;
        duplicate(
            snapshot.devices.iter().map(|d| d.hostname.as_str()),
            "device",
        )?;
        let now = micros(Utc::now());
        let mut out = DirectoryChanges {
            source: source.to_string(),
            ..DirectoryChanges::default()
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        apply_people(&tx, source, &snapshot.people, now, &mut out)?;
        apply_devices(&tx, source, &snapshot.devices, now, &mut out)?;
        if dry_run {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok(out)
    }

    fn directory_version(&self) -> Result<(u64, i64), StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*), coalesce(max(updated), 0) FROM people")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    fn directory_people(&self) -> Result<Vec<StoredPerson>, StoreError> {
        Ok(documents(
            &self.conn,
            "SELECT source, data, present, updated FROM people ORDER BY source, source_id",
        )?
        .into_iter()
        .map(|d| StoredPerson {
            source: d.source,
            present: d.present,
            updated: d.updated,
            person: d.document,
        })
        .collect())
    }

    fn directory_devices(&self) -> Result<Vec<StoredDevice>, StoreError> {
        Ok(documents(
            &self.conn,
            "SELECT source, data, present, updated FROM devices ORDER BY source, hostname",
        )?
        .into_iter()
        .map(|d| StoredDevice {
            source: d.source,
            present: d.present,
            updated: d.updated,
            device: d.document,
        })
        .collect())
    }

    fn attribute_addresses(
        &self,
        addresses: &[&str],
    ) -> Result<BTreeMap<String, Attribution>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.data, p.present FROM person_addresses pa JOIN people p ON p.id = pa.person
             WHERE pa.address = ?1 ORDER BY p.present DESC, p.updated DESC LIMIT 1",
        )?;
        let mut out = BTreeMap::new();
        for address in addresses {
            if out.contains_key(*address) {
                continue;
            }
            let found = stmt
                .query_row([address], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
                })
                .optional()?;
            if let Some((data, present)) = found {
                let p: Person = serde_json::from_str(&data).map_err(json_error)?;
                out.insert(
                    address.to_string(),
                    Attribution {
                        id: p.id,
                        name: p.name,
                        department: p.department,
                        status: p.status,
                        present,
                    },
                );
            }
        }
        Ok(out)
    }

    fn attribute_device(
        &self,
        ip: &str,
        time: DateTime<Utc>,
    ) -> Result<Option<DeviceAttribution>, StoreError> {
        let t = micros(time);
        let found = self
            .conn
            .prepare_cached(
                "SELECT d.hostname, d.owner, d.source FROM device_addresses da
                 JOIN devices d ON d.id = da.device
                 WHERE da.ip = ?1 AND (da.valid_from IS NULL OR da.valid_from <= ?2)
                   AND (da.valid_until IS NULL OR da.valid_until > ?2)
                 ORDER BY d.present DESC, da.valid_from DESC LIMIT 1",
            )?
            .query_row(params![ip, t], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        let Some((hostname, owner, source)) = found else {
            return Ok(None);
        };
        let owner_name = match &owner {
            None => None,
            Some(id) => {
                let data: Option<String> = self
                    .conn
                    .prepare_cached(
                        "SELECT data FROM people WHERE source_id = ?1
                         ORDER BY source = ?2 DESC, present DESC LIMIT 1",
                    )?
                    .query_row(params![id, source], |r| r.get(0))
                    .optional()?;
                match data {
                    Some(d) => {
                        let p: Person = serde_json::from_str(&d).map_err(json_error)?;
                        p.name
                    }
                    None => None,
                }
            }
        };
        Ok(Some(DeviceAttribution {
            hostname,
            owner,
            owner_name,
        }))
    }
}
