//! The outbox: deliveries and their per-channel alerts, and [`Outbox`] for [`PgStore`].

use super::items::{COLUMNS, items_from_rows};
use super::{PgStore, count, int, listing};
use crate::items::ItemName;
use crate::store::sql::{SCANS_DONE, summarize};
use crate::store::{
    AlertOutcome, AlertRow, AlertStatus, AlertTask, Delivery, DeliveryJoin, DeliveryPage,
    ItemAlert, Outbox, StoreError, Uploader,
};
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// With the batch key's hash: two instances receiving files of one uploader at once join one
/// delivery (one alert), instead of each opening its own.
const JOIN_LOCK: i32 = 0x5346_5802;

fn attempts(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Adds items to the uploader's open delivery (pushing its due time back), or opens one.
/// Runs inside the caller's transaction.
pub(super) async fn join(
    tx: &tokio_postgres::Transaction<'_>,
    join: &DeliveryJoin,
    uploader: &Uploader,
    reference: Option<&str>,
    names: &[&ItemName],
) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&JOIN_LOCK, &join.batch_key],
    )
    .await?;
    let due = join.now_ms.saturating_add(join.window_ms);
    let open = tx
        .query_opt(
            "SELECT id FROM deliveries WHERE batch_key = $1 AND closed_at IS NULL AND due_at > $2
             ORDER BY id DESC LIMIT 1",
            &[&join.batch_key, &join.now_ms],
        )
        .await?;
    let id: i64 = match open {
        Some(row) => {
            let id = row.try_get(0)?;
            tx.execute(
                "UPDATE deliveries SET due_at = $2 WHERE id = $1",
                &[&id, &due],
            )
            .await?;
            id
        }
        None => tx
            .query_one(
                "INSERT INTO deliveries (idempotency_key, batch_key, uploader, client_ip, user_agent, reference,
                 opened_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &join.new_idempotency_key,
                    &join.batch_key,
                    &uploader.label,
                    &uploader.client_ip,
                    &uploader.user_agent,
                    &reference,
                    &(join.now_ms / 1000),
                    &due,
                ],
            )
            .await?
            .try_get(0)?,
    };
    for name in names {
        tx.execute(
            "UPDATE items SET delivery_id = $2 WHERE name = $1",
            &[&name.as_str(), &id],
        )
        .await?;
    }
    Ok(())
}

/// `SKIP LOCKED`: a delivery another instance is closing right now is its to close.
async fn close_due(
    tx: &tokio_postgres::Transaction<'_>,
    now_ms: i64,
    channels: &[(String, Vec<String>)],
) -> Result<usize, StoreError> {
    let sql = format!(
        "SELECT id, uploader FROM deliveries WHERE closed_at IS NULL AND due_at <= $1 AND {SCANS_DONE}
         ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    let due = tx.query(sql.as_str(), &[&now_ms]).await?;
    let now = now_ms / 1000;
    for row in &due {
        let (id, label): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        for (channel, only) in channels {
            if crate::config::wants(only, &label) {
                tx.execute(
                    "INSERT INTO alerts (delivery_id, channel, state, created_at, next_attempt_at)
                     VALUES ($1, $2, 'pending', $3, $3) ON CONFLICT DO NOTHING",
                    &[&id, channel, &now],
                )
                .await?;
            }
        }
        tx.execute(
            "UPDATE deliveries SET closed_at = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await?;
    }
    Ok(due.len())
}

/// `FOR UPDATE SKIP LOCKED`: instances claiming at once each get different alerts; once the
/// lease is committed the rows are no longer due for anyone.
async fn claim(
    tx: &tokio_postgres::Transaction<'_>,
    now: i64,
    channel: &str,
    limit: usize,
    lease_until: i64,
) -> Result<Vec<AlertTask>, StoreError> {
    let rows = tx
        .query(
            "SELECT delivery_id, channel, attempts, created_at FROM alerts
             WHERE state IN ('pending', 'failing') AND channel = $1 AND next_attempt_at <= $2
             ORDER BY next_attempt_at, delivery_id LIMIT $3 FOR UPDATE SKIP LOCKED",
            &[&channel, &now, &int(limit as u64)],
        )
        .await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        let task = AlertTask {
            delivery_id: r.try_get(0)?,
            channel: r.try_get(1)?,
            attempts: attempts(r.try_get(2)?),
            created_at: r.try_get(3)?,
        };
        tx.execute(
            "UPDATE alerts SET next_attempt_at = $3 WHERE delivery_id = $1 AND channel = $2",
            &[&task.delivery_id, &task.channel, &lease_until],
        )
        .await?;
        tasks.push(task);
    }
    Ok(tasks)
}

async fn delivery(c: &impl GenericClient, id: i64) -> Result<Option<Delivery>, StoreError> {
    let Some(r) = c
        .query_opt(
            "SELECT idempotency_key, uploader, client_ip, user_agent, reference, opened_at, closed_at
             FROM deliveries WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let sql =
        format!("SELECT {COLUMNS} FROM items WHERE delivery_id = $1 ORDER BY created_at, seq");
    let items = items_from_rows(&c.query(sql.as_str(), &[&id]).await?)?;
    let deleted = c
        .query(
            "SELECT name FROM items WHERE delivery_id = $1 AND deleted_at IS NOT NULL ORDER BY seq",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(Delivery {
        id,
        idempotency_key: r.try_get(0)?,
        uploader: Uploader {
            label: r.try_get(1)?,
            client_ip: r.try_get(2)?,
            user_agent: r.try_get(3)?,
            link: None,
        },
        reference: r.try_get(4)?,
        opened_at: r.try_get(5)?,
        closed_at: r.try_get(6)?,
        items,
        deleted,
    }))
}

/// A delivery's alerts, one per channel.
pub(super) async fn alert_rows(
    c: &impl GenericClient,
    delivery: i64,
) -> Result<Vec<AlertRow>, StoreError> {
    let rows = c
        .query(
            "SELECT channel, state, attempts, created_at, next_attempt_at, delivered_at, last_error
             FROM alerts WHERE delivery_id = $1 ORDER BY channel",
            &[&delivery],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AlertRow {
                channel: r.try_get(0)?,
                state: r.try_get(1)?,
                attempts: attempts(r.try_get(2)?),
                created_at: r.try_get(3)?,
                next_attempt_at: r.try_get(4)?,
                delivered_at: r.try_get(5)?,
                last_error: r.try_get(6)?,
            })
        })
        .collect()
}

async fn status(
    c: &impl GenericClient,
    names: &[String],
) -> Result<HashMap<String, ItemAlert>, StoreError> {
    let sql = format!(
        "SELECT deliveries.id, deliveries.closed_at, {SCANS_DONE} FROM items it
         JOIN deliveries ON deliveries.id = it.delivery_id WHERE it.name = $1"
    );
    let mut out = HashMap::new();
    for name in names {
        let Some(r) = c.query_opt(sql.as_str(), &[name]).await? else {
            continue;
        };
        let (id, closed, scans_done): (i64, Option<i64>, bool) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let alerts = alert_rows(c, id).await?;
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

impl Outbox for PgStore {
    fn close_due_deliveries(
        &self,
        now_ms: i64,
        channels: &[(String, Vec<String>)],
    ) -> Result<usize, StoreError> {
        let channels = channels.to_vec();
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let n = close_due(&tx, now_ms, &channels).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    fn claim_alerts(
        &self,
        now: i64,
        channel: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<AlertTask>, StoreError> {
        let channel = channel.to_string();
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let tasks = claim(&tx, now, &channel, limit, lease_until).await?;
            tx.commit().await?;
            Ok(tasks)
        })
    }

    fn release_alert_leases(&self, now: i64) -> Result<usize, StoreError> {
        self.run(move |c| async move {
            let n = c
                .execute(
                    "UPDATE alerts SET next_attempt_at = $1
                     WHERE state IN ('pending', 'failing') AND next_attempt_at > $1",
                    &[&now],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Milliseconds (deliveries' `due_at` is in ms; alert attempts are planned in seconds).
    fn next_alert_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.run(|c| async move {
            let sql = format!(
                "SELECT min(t) FROM (
                    SELECT min(next_attempt_at) * 1000 AS t FROM alerts WHERE state IN ('pending', 'failing')
                    UNION ALL SELECT min(due_at) FROM deliveries WHERE closed_at IS NULL AND {SCANS_DONE}) AS due"
            );
            Ok(c.query_one(sql.as_str(), &[]).await?.try_get(0)?)
        })
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        self.run(move |c| async move { delivery(&**c, id).await })
    }

    fn record_alert(
        &self,
        task: &AlertTask,
        outcome: &AlertOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, error, next, delivered) = match outcome {
            AlertOutcome::Delivered => ("delivered", None, now, Some(now)),
            AlertOutcome::Retry {
                error,
                next_attempt_at,
            } => ("failing", Some(error.clone()), *next_attempt_at, None),
            AlertOutcome::GaveUp { error } => ("failed", Some(error.clone()), now, None),
        };
        let task = task.clone();
        self.run(move |c| async move {
            c.execute(
                "UPDATE alerts SET state = $3, attempts = attempts + 1, last_error = coalesce($4, last_error),
                 next_attempt_at = $5, delivered_at = $6 WHERE delivery_id = $1 AND channel = $2",
                &[&task.delivery_id, &task.channel, &state, &error, &next, &delivered],
            )
            .await?;
            Ok(())
        })
    }

    fn alert_status(&self, names: &[String]) -> Result<HashMap<String, ItemAlert>, StoreError> {
        let names = names.to_vec();
        self.run(move |c| async move { status(&**c, &names).await })
    }

    fn deliveries(
        &self,
        offset: u64,
        limit: u64,
        include_locked: bool,
    ) -> Result<DeliveryPage, StoreError> {
        self.run(
            move |c| async move { listing::deliveries(&**c, offset, limit, include_locked).await },
        )
    }

    fn delivery_alerts(&self, id: i64) -> Result<(AlertStatus, Vec<AlertRow>), StoreError> {
        self.run(move |c| async move { listing::delivery_alerts(&**c, id).await })
    }

    fn alert_trouble(&self, gave_up_since: i64) -> Result<(Option<i64>, u64), StoreError> {
        self.run(move |c| async move {
            let failing: Option<i64> = c
                .query_one(
                    "SELECT min(created_at) FROM alerts WHERE state = 'failing'",
                    &[],
                )
                .await?
                .try_get(0)?;
            // A given-up alert's next_attempt_at is when it was given up.
            let gave_up: i64 = c
                .query_one(
                    "SELECT count(*) FROM alerts WHERE state = 'failed' AND next_attempt_at >= $1",
                    &[&gave_up_since],
                )
                .await?
                .try_get(0)?;
            Ok((failing, count(gave_up)))
        })
    }

    fn alert_backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        self.run(|c| async move {
            let r = c
                .query_one(
                    "SELECT count(*), min(created_at) FROM alerts WHERE state IN ('pending', 'failing')",
                    &[],
                )
                .await?;
            Ok((count(r.try_get(0)?), r.try_get(1)?))
        })
    }
}
