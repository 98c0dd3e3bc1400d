//! [`AlertStore`] on SQLite. Every write is one IMMEDIATE transaction, as
//! everywhere in this backend: the mail writer, the console and the
//! evaluator each have their own connection and take turns.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{from_micros, micros, SqliteStore};
use crate::alerts::{
    notification_state, AlertEvent, AlertFilter, AlertState, AlertStore, AlertUpdate, NewAlert,
    Notification, NotificationState, Raised, SentMessage, StoredAlert,
};
use crate::{Page, StoreError};

const ALERT_COLUMNS: &str =
    "id, rule, rule_name, message, severity, hits, state, assignee, raised, updated";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    let hits: String = r.get(5)?;
    let state: String = r.get(6)?;
    Ok(StoredAlert {
        id: r.get(0)?,
        rule: r.get(1)?,
        rule_name: r.get(2)?,
        message: r.get(3)?,
        severity: r.get(4)?,
        hits: serde_json::from_str(&hits).unwrap_or(serde_json::Value::Null),
        state: AlertState::parse(&state).unwrap_or(AlertState::Open),
        assignee: r.get(7)?,
        raised: from_micros(r.get(8)?),
        updated: from_micros(r.get(9)?),
    })
}

const NOTIFICATION_COLUMNS: &str =
    "id, alert, channel, state, attempts, next_attempt, last_error, created, done";

fn notification_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notification> {
    let state: String = r.get(3)?;
    Ok(Notification {
        id: r.get(0)?,
        alert: r.get(1)?,
        channel: r.get(2)?,
        state: notification_state(&state),
        attempts: r.get(4)?,
        next_attempt: from_micros(r.get(5)?),
        last_error: r.get(6)?,
        created: from_micros(r.get(7)?),
        done: r.get::<_, Option<i64>>(8)?.map(from_micros),
    })
}

fn limit_offset(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

impl AlertStore for SqliteStore {
    fn first_contact(&self, domain: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT first_time FROM contacted_domains WHERE domain = ?1")?
            .query_row([domain.to_lowercase()], |r| r.get::<_, i64>(0))
            .optional()?
            .map(from_micros))
    }

    fn sent_by(
        &self,
        sender: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SentMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, sort_time FROM messages
             WHERE (from_addr = ?1 OR envelope_from = ?1) AND sort_time >= ?2 AND sort_time < ?3
             ORDER BY sort_time, id",
        )?;
        let found = stmt
            .query_map(params![sender, micros(since), micros(until)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut recipients = self
            .conn
            .prepare_cached("SELECT DISTINCT address FROM recipients WHERE message = ?1")?;
        let mut encrypted = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM attachments WHERE message = ?1 AND encrypted = 1)",
        )?;
        let mut out = Vec::with_capacity(found.len());
        for (id, time) in found {
            out.push(SentMessage {
                id,
                time: from_micros(time),
                recipients: recipients
                    .query_map([id], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?,
                encrypted_archive: encrypted.query_row([id], |r| r.get(0))?,
            });
        }
        Ok(out)
    }

    fn pending_evaluations(&self, limit: u32) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT message FROM eval_pending ORDER BY message LIMIT ?1")?;
        let ids = stmt
            .query_map([i64::from(limit)], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    fn pending_evaluation_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM eval_pending")?
            .query_row([], |r| r.get(0))?)
    }

    fn record_evaluations(
        &mut self,
        evaluated: &[i64],
        alerts: &[NewAlert],
    ) -> Result<Vec<Raised>, StoreError> {
        let now = micros(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(alerts.len());
        for a in alerts {
            let hits = a.hits.to_string();
            let existing: Option<(i64, String)> = tx
                .prepare_cached("SELECT id, hits FROM alerts WHERE rule = ?1 AND message = ?2")?
                .query_row(params![a.rule, a.message], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match existing {
                Some((id, old)) => {
                    let refreshed = old != hits;
                    if refreshed {
                        tx.prepare_cached(
                            "UPDATE alerts SET hits = ?2, severity = ?3, rule_name = ?4, updated = ?5
                             WHERE id = ?1",
                        )?
                        .execute(params![id, hits, a.severity, a.rule_name, now])?;
                    }
                    out.push(Raised {
                        id,
                        new: false,
                        refreshed,
                    });
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO alerts (rule, rule_name, message, severity, hits, state,
                                             assignee, raised, updated)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?7)",
                    )?
                    .execute(params![
                        a.rule,
                        a.rule_name,
                        a.message,
                        a.severity,
                        hits,
                        a.assignee,
                        now
                    ])?;
                    let id = tx.last_insert_rowid();
                    let mut notify = tx.prepare_cached(
                        "INSERT OR IGNORE INTO notifications (alert, channel, state, next_attempt, created)
                         VALUES (?1, ?2, 'pending', ?3, ?3)",
                    )?;
                    for channel in &a.channels {
                        notify.execute(params![id, channel, now])?;
                    }
                    out.push(Raised {
                        id,
                        new: true,
                        refreshed: false,
                    });
                }
            }
        }
        {
            let mut done = tx.prepare_cached("DELETE FROM eval_pending WHERE message = ?1")?;
            for id in evaluated {
                done.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn alerts(&self, filter: &AlertFilter) -> Result<(u64, Vec<StoredAlert>), StoreError> {
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(rule) = &filter.rule {
            values.push(Value::Text(rule.clone()));
            clauses.push(format!("rule = ?{}", values.len()));
        }
        if let Some(state) = filter.state {
            values.push(Value::Text(state.as_str().into()));
            clauses.push(format!("state = ?{}", values.len()));
        }
        if filter.unresolved {
            clauses.push("state IN ('open', 'acknowledged')".into());
        }
        if let Some(message) = filter.message {
            values.push(Value::Integer(message));
            clauses.push(format!("message = ?{}", values.len()));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let total: u64 = self.conn.query_row(
            &format!("SELECT count(*) FROM alerts{filter_sql}"),
            params_from_iter(values.iter()),
            |r| r.get(0),
        )?;
        let (limit, offset) = limit_offset(filter.page);
        values.push(Value::Integer(limit));
        values.push(Value::Integer(offset));
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts{filter_sql} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
            values.len() - 1,
            values.len()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(values.iter()), alert_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((total, rows))
    }

    fn alert(&self, id: i64) -> Result<Option<(StoredAlert, Vec<AlertEvent>)>, StoreError> {
        let alert = self
            .conn
            .prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
            .query_row([id], alert_row)
            .optional()?;
        let Some(alert) = alert else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT time, user, state, assignee, comment FROM alert_events
             WHERE alert = ?1 ORDER BY rowid",
        )?;
        let events = stmt
            .query_map([id], |r| {
                let state: Option<String> = r.get(2)?;
                Ok(AlertEvent {
                    time: from_micros(r.get(0)?),
                    user: r.get(1)?,
                    state: state.as_deref().and_then(AlertState::parse),
                    assignee: r.get(3)?,
                    comment: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((alert, events)))
    }

    fn update_alert(
        &mut self,
        id: i64,
        user: &str,
        update: &AlertUpdate,
    ) -> Result<Option<StoredAlert>, StoreError> {
        let now = micros(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx
            .prepare_cached("SELECT id FROM alerts WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        if let Some(state) = update.state {
            tx.prepare_cached("UPDATE alerts SET state = ?2, updated = ?3 WHERE id = ?1")?
                .execute(params![id, state.as_str(), now])?;
        }
        if let Some(assignee) = &update.assignee {
            tx.prepare_cached("UPDATE alerts SET assignee = ?2, updated = ?3 WHERE id = ?1")?
                .execute(params![id, assignee, now])?;
        }
        let comment = update
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if update.state.is_some() || update.assignee.is_some() || comment.is_some() {
            tx.prepare_cached(
                "INSERT INTO alert_events (alert, time, user, state, assignee, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id,
                now,
                user,
                update.state.map(AlertState::as_str),
                update.assignee.clone().flatten(),
                comment
            ])?;
        }
        tx.commit()?;
        Ok(self.alert(id)?.map(|(a, _)| a))
    }

    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![micros(now), i64::from(limit)], notification_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn notification_delivered(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE notifications SET state = 'delivered', attempts = attempts + 1,
                 done = ?2, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![id, micros(now)])?;
        Ok(())
    }

    fn notification_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match retry_at {
            Some(at) => self
                .conn
                .prepare_cached(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?2,
                     next_attempt = ?3 WHERE id = ?1",
                )?
                .execute(params![id, error, micros(at)])?,
            None => self
                .conn
                .prepare_cached(
                    "UPDATE notifications SET state = 'dead', attempts = attempts + 1,
                     last_error = ?2, done = ?3 WHERE id = ?1",
                )?
                .execute(params![id, error, micros(Utc::now())])?,
        };
        Ok(())
    }

    fn notifications(
        &self,
        state: Option<NotificationState>,
        page: Page,
    ) -> Result<Vec<Notification>, StoreError> {
        let (limit, offset) = limit_offset(page);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt
            .query_map(
                params![state.map(NotificationState::as_str), limit, offset],
                notification_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn retry_notification(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE notifications SET state = 'pending', next_attempt = ?2, done = NULL
                 WHERE id = ?1 AND state = 'dead'",
            )?
            .execute(params![id, micros(now)])?;
        Ok(changed == 1)
    }
}
