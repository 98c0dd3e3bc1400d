//! [`RiskStore`] on SQLite.
//!
//! [`RiskStore::visit_sent`] is a single range scan of `messages_sort`
//! (message time, then number) with three correlated look-ups per row —
//! recipients, attachments and alerts, each by its primary key or the
//! `alerts_message` index — so its cost grows with the messages of the
//! window and nothing else. Which recipients are outside is decided here,
//! with the organisation domains the store was opened with, the same ones
//! that decided the message's direction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;

use super::{from_micros, micros, SqliteStore};
use crate::risk::{RiskStore, SentMessage};
use crate::StoreError;

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl RiskStore for SqliteStore {
    fn visit_sent(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut dyn FnMut(SentMessage) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT m.id, m.sort_time, m.from_addr, m.envelope_from,
                    (SELECT group_concat(r.address, char(10)) FROM recipients r
                     WHERE r.message = m.id),
                    (SELECT coalesce(sum(a.size), 0) FROM attachments a WHERE a.message = m.id),
                    (SELECT count(*) FROM attachments a WHERE a.message = m.id AND a.encrypted),
                    (SELECT count(*) FROM alerts al
                     WHERE al.message = m.id AND al.state IN ('open', 'acknowledged'))
             FROM messages m
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2
               AND m.direction IN ('outbound', 'internal')
             ORDER BY m.sort_time, m.id",
        )?;
        let mut rows = stmt.query([micros(from), micros(to)])?;
        while let Some(row) = rows.next()? {
            let recipients: Option<String> = row.get(4)?;
            let mut external: Vec<String> = recipients
                .as_deref()
                .unwrap_or("")
                .split('\n')
                .filter(|a| !a.is_empty() && !self.org.is_internal(a))
                .map(str::to_string)
                .collect();
            external.sort();
            external.dedup();
            visit(SentMessage {
                id: row.get(0)?,
                time: from_micros(row.get(1)?),
                from: row.get(2)?,
                envelope_from: row.get(3)?,
                external_recipients: external,
                attachment_bytes: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                encrypted_attachments: count(row.get(6)?),
                unresolved_alerts: count(row.get(7)?),
            })?;
        }
        Ok(())
    }

    fn domains_mailed_before(
        &self,
        senders: &[String],
        before: DateTime<Utc>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut out = BTreeSet::new();
        if senders.is_empty() {
            return Ok(out);
        }
        // The senders' `fts_addr` tokens find the person's messages; the
        // recipients' primary key their addresses.
        let tokens: Vec<String> = senders
            .iter()
            .map(|s| super::address_token(super::AddressRole::Sender, s))
            .collect();
        let tokens =
            serde_json::to_string(&tokens).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let sql = "SELECT DISTINCT r.address FROM recipients r WHERE r.message IN (
                 SELECT m.id FROM json_each(?1) t
                     JOIN fts_addr f ON fts_addr MATCH t.value
                     JOIN messages m ON m.id = f.rowid
                 WHERE m.sort_time < ?2 AND m.direction = 'outbound')";
        let values = vec![Value::Text(tokens), Value::Integer(micros(before))];
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
        while let Some(row) = rows.next()? {
            let address: String = row.get(0)?;
            if self.org.is_internal(&address) {
                continue;
            }
            if let Some((_, domain)) = address.rsplit_once('@') {
                out.insert(domain.to_ascii_lowercase());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use mailtrail_model::{
        Attachment, Mailbox, MessageRecord, OrgDomains, Recipient, RecipientKind,
    };

    use super::*;
    use crate::sqlite::SqliteOptions;
    use crate::Store;

    fn record(
        id: &str,
        time: DateTime<Utc>,
        from: &str,
        to: &[&str],
        attach: u64,
    ) -> MessageRecord {
        let mut r = MessageRecord {
            message_id: Some(id.to_string()),
            date: Some(time),
            from: Some(Mailbox {
                address: from.to_string(),
                display_name: None,
            }),
            ..MessageRecord::default()
        };
        for a in to {
            r.recipients.push(Recipient {
                address: a.to_string(),
                kind: RecipientKind::To,
                display_name: None,
            });
        }
        if attach > 0 {
            r.attachments.push(Attachment {
                filename: Some("a.zip".into()),
                content_type: "application/zip".into(),
                size: attach,
                blake3: "00".repeat(32),
                encrypted: true,
                ..Attachment::default()
            });
        }
        r
    }

    #[test]
    fn sent_mail_is_visited_in_time_order_with_its_outside_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(
            dir.path(),
            SqliteOptions {
                org_domains: OrgDomains::new(["example.co.jp"]),
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        let t = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        store
            .write_batch(
                vec![
                    record(
                        "b@x",
                        t(12, 10),
                        "taro@example.co.jp",
                        &["a@partner.example", "hanako@example.co.jp"],
                        5000,
                    ),
                    record(
                        "a@x",
                        t(11, 10),
                        "taro@example.co.jp",
                        &["hanako@example.co.jp"],
                        0,
                    ),
                    record(
                        "c@x",
                        t(13, 10),
                        "buyer@partner.example",
                        &["taro@example.co.jp"],
                        0,
                    ),
                    record(
                        "d@x",
                        t(1, 10),
                        "taro@example.co.jp",
                        &["old@earlier.example"],
                        0,
                    ),
                ],
                Vec::new(),
            )
            .unwrap();
        let mut seen = Vec::new();
        store
            .visit_sent(t(10, 0), t(20, 0), &mut |m| {
                seen.push(m);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].time, t(11, 10));
        assert!(seen[0].external_recipients.is_empty());
        assert_eq!(seen[1].external_recipients, vec!["a@partner.example"]);
        assert_eq!(seen[1].attachment_bytes, 5000);
        assert_eq!(seen[1].encrypted_attachments, 1);
        assert_eq!(seen[1].unresolved_alerts, 0);
        assert_eq!(
            seen[1].senders().collect::<Vec<_>>(),
            vec!["taro@example.co.jp"]
        );
        let before = store
            .domains_mailed_before(&["taro@example.co.jp".to_string()], t(12, 10))
            .unwrap();
        assert_eq!(
            before.into_iter().collect::<Vec<_>>(),
            vec!["earlier.example"]
        );
        let all = store
            .domains_mailed_before(&["taro@example.co.jp".to_string()], t(20, 0))
            .unwrap();
        assert_eq!(all.len(), 2);
    }
}
