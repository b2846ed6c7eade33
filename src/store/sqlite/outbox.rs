//! Queries of the outbox: deliveries and their per-channel alerts.

use super::{COLUMNS, item_from_row};
use crate::items::ItemName;
use crate::store::sql::{SCANS_DONE, summarize};
use crate::store::{
    AlertOutcome, AlertRow, AlertTask, Delivery, DeliveryJoin, ItemAlert, StoreError, Uploader,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Adds items to the uploader's open delivery (pushing its due time back), or opens one.
/// Runs inside the caller's transaction.
pub fn join(
    conn: &Connection,
    join: &DeliveryJoin,
    uploader: &Uploader,
    reference: Option<&str>,
    names: &[&ItemName],
) -> Result<(), StoreError> {
    let due = join.now_ms.saturating_add(join.window_ms);
    let open: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE batch_key = ?1 AND closed_at IS NULL AND due_at > ?2
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![join.batch_key, join.now_ms], |r| r.get(0))
        .optional()?;
    let id = match open {
        Some(id) => {
            conn.execute(
                "UPDATE deliveries SET due_at = ?2 WHERE id = ?1",
                params![id, due],
            )?;
            id
        }
        None => {
            conn.execute(
                "INSERT INTO deliveries (idempotency_key, batch_key, uploader, client_ip, user_agent, reference,
                 opened_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    join.new_idempotency_key,
                    join.batch_key,
                    uploader.label,
                    uploader.client_ip,
                    uploader.user_agent,
                    reference,
                    join.now_ms / 1000,
                    due
                ],
            )?;
            conn.last_insert_rowid()
        }
    };
    let mut stmt = conn.prepare_cached("UPDATE items SET delivery_id = ?2 WHERE name = ?1")?;
    for name in names {
        stmt.execute(params![name.as_str(), id])?;
    }
    Ok(())
}

pub fn close_due(
    conn: &Connection,
    now_ms: i64,
    channels: &[(String, Vec<String>)],
) -> Result<usize, StoreError> {
    let due: Vec<(i64, String)> = conn
        .prepare_cached(&format!(
            "SELECT id, uploader FROM deliveries WHERE closed_at IS NULL AND due_at <= ?1 AND {SCANS_DONE}"
        ))?
        .query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO alerts (delivery_id, channel, state, created_at, next_attempt_at)
         VALUES (?1, ?2, 'pending', ?3, ?3)",
    )?;
    let now = now_ms / 1000;
    for (id, label) in &due {
        for (channel, only) in channels {
            if crate::config::wants(only, label) {
                insert.execute(params![id, channel, now])?;
            }
        }
        conn.execute(
            "UPDATE deliveries SET closed_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    Ok(due.len())
}

pub fn claim(
    conn: &Connection,
    now: i64,
    channel: &str,
    limit: usize,
    lease_until: i64,
) -> Result<Vec<AlertTask>, StoreError> {
    let tasks: Vec<AlertTask> = conn
        .prepare_cached(
            "SELECT delivery_id, channel, attempts, created_at FROM alerts
             WHERE state IN ('pending', 'failing') AND channel = ?1 AND next_attempt_at <= ?2
             ORDER BY next_attempt_at LIMIT ?3",
        )?
        .query_map(params![channel, now, limit as i64], |r| {
            Ok(AlertTask {
                delivery_id: r.get(0)?,
                channel: r.get(1)?,
                attempts: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut lease = conn.prepare_cached(
        "UPDATE alerts SET next_attempt_at = ?3 WHERE delivery_id = ?1 AND channel = ?2",
    )?;
    for t in &tasks {
        lease.execute(params![t.delivery_id, t.channel, lease_until])?;
    }
    Ok(tasks)
}

/// Milliseconds (deliveries' `due_at` is in ms; alert attempts are planned in seconds).
pub fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    let next: Option<i64> = conn.query_row(
        &format!("SELECT min(t) FROM (
            SELECT min(next_attempt_at) * 1000 AS t FROM alerts WHERE state IN ('pending', 'failing')
            UNION ALL SELECT min(due_at) FROM deliveries WHERE closed_at IS NULL AND {SCANS_DONE})"),
        [],
        |r| r.get(0),
    )?;
    Ok(next)
}

pub fn delivery(conn: &Connection, id: i64) -> Result<Option<Delivery>, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT idempotency_key, uploader, client_ip, user_agent, reference, opened_at, closed_at
             FROM deliveries WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(Delivery {
                id,
                idempotency_key: r.get(0)?,
                uploader: Uploader { label: r.get(1)?, client_ip: r.get(2)?, user_agent: r.get(3)?, link: None },
                reference: r.get(4)?,
                opened_at: r.get(5)?,
                closed_at: r.get(6)?,
                items: Vec::new(),
                deleted: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut delivery) = head else {
        return Ok(None);
    };
    delivery.items = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items WHERE delivery_id = ?1 ORDER BY created_at, rowid"
        ))?
        .query_map([id], item_from_row)?
        .collect::<Result<_, _>>()?;
    delivery.deleted = conn
        .prepare_cached("SELECT name FROM items WHERE delivery_id = ?1 AND deleted_at IS NOT NULL")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(delivery))
}

pub fn record(
    conn: &Connection,
    task: &AlertTask,
    outcome: &AlertOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let (state, error, next, delivered) = match outcome {
        AlertOutcome::Delivered => ("delivered", None, now, Some(now)),
        AlertOutcome::Retry {
            error,
            next_attempt_at,
        } => ("failing", Some(error.as_str()), *next_attempt_at, None),
        AlertOutcome::GaveUp { error } => ("failed", Some(error.as_str()), now, None),
    };
    conn.execute(
        "UPDATE alerts SET state = ?3, attempts = attempts + 1, last_error = coalesce(?4, last_error),
         next_attempt_at = ?5, delivered_at = ?6 WHERE delivery_id = ?1 AND channel = ?2",
        params![task.delivery_id, task.channel, state, error, next, delivered],
    )?;
    Ok(())
}

pub fn status(
    conn: &Connection,
    names: &[String],
) -> Result<HashMap<String, ItemAlert>, StoreError> {
    let mut out = HashMap::new();
    let mut item_stmt = conn.prepare_cached(&format!(
        "SELECT deliveries.id, deliveries.closed_at, {SCANS_DONE} FROM items it
         JOIN deliveries ON deliveries.id = it.delivery_id WHERE it.name = ?1"
    ))?;
    for name in names {
        let Some((id, closed, scans_done)) = item_stmt
            .query_row([name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        let alerts = alert_rows(conn, id)?;
        let status = summarize(closed, scans_done, &alerts);
        out.insert(
            name.clone(),
            ItemAlert {
                delivery: id,
                status,
            },
        );
    }
    Ok(out)
}

/// A delivery's alerts, one per channel.
pub fn alert_rows(conn: &Connection, delivery: i64) -> Result<Vec<AlertRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT channel, state, attempts, created_at, next_attempt_at, delivered_at, last_error
             FROM alerts WHERE delivery_id = ?1 ORDER BY channel",
        )?
        .query_map([delivery], |r| {
            Ok(AlertRow {
                channel: r.get(0)?,
                state: r.get(1)?,
                attempts: r.get(2)?,
                created_at: r.get(3)?,
                next_attempt_at: r.get(4)?,
                delivered_at: r.get(5)?,
                last_error: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

pub fn trouble(conn: &Connection, gave_up_since: i64) -> Result<(Option<i64>, u64), StoreError> {
    let failing: Option<i64> = conn.query_row(
        "SELECT min(created_at) FROM alerts WHERE state = 'failing'",
        [],
        |r| r.get(0),
    )?;
    // A given-up alert's next_attempt_at is when it was given up.
    let gave_up: i64 = conn.query_row(
        "SELECT count(*) FROM alerts WHERE state = 'failed' AND next_attempt_at >= ?1",
        [gave_up_since],
        |r| r.get(0),
    )?;
    Ok((failing, u64::try_from(gave_up).unwrap_or(0)))
}

/// Alerts still to send, and when the oldest of them was created.
pub fn backlog(conn: &Connection) -> Result<(u64, Option<i64>), StoreError> {
    let (count, oldest): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), min(created_at) FROM alerts WHERE state IN ('pending', 'failing')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((u64::try_from(count).unwrap_or(0), oldest))
}
