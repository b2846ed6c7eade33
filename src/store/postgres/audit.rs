//! Queries of the audit trail (table `audit`, migration 4).

use super::{PgStore, count, int};
use crate::audit::{AuditEvent, AuditRecord, GENESIS, seal};
use crate::store::{AuditPage, AuditQuery, AuditStore, StoreError};
use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

const FIELDS: &str = "id, time, kind, outcome, client_ip, label, item, detail, prev_hash, hash";

/// Held by an append from the moment it reads the chain's end until it commits: appends from
/// every instance take turns, so each record chains onto the one committed before it.
const APPEND_LOCK: i64 = 0x5346_5800_0000_0002;

fn record_from_row(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get(0)?,
        time: row.try_get(1)?,
        kind: row.try_get(2)?,
        outcome: row.try_get(3)?,
        client_ip: row.try_get(4)?,
        label: row.try_get(5)?,
        item: row.try_get(6)?,
        detail: row.try_get(7)?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

fn records(rows: &[Row]) -> Result<Vec<AuditRecord>, StoreError> {
    rows.iter().map(record_from_row).collect()
}

async fn append(
    conn: &mut Object,
    time: &str,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await?;
    // Read committed: these statements see every append committed before the lock was ours.
    let last = tx
        .query_opt("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &[])
        .await?;
    let last: Option<(i64, String)> = match last {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    };
    let high: i64 = tx
        .query_one("SELECT id FROM audit_high_water", &[])
        .await?
        .try_get(0)?;
    // Past the highest id ever used: after a removal of the newest records, the gap stays.
    let mut id = high.max(last.as_ref().map_or(0, |l| l.0));
    let mut prev = last.map_or_else(|| GENESIS.to_string(), |l| l.1);
    let insert =
        format!("INSERT INTO audit ({FIELDS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        id += 1;
        let r = seal(id, time, ev, &prev);
        tx.execute(
            insert.as_str(),
            &[
                &r.id,
                &r.time,
                &r.kind,
                &r.outcome,
                &r.client_ip,
                &r.label,
                &r.item,
                &r.detail,
                &r.prev_hash,
                &r.hash,
            ],
        )
        .await?;
        prev = r.hash.clone();
        out.push(r);
    }
    tx.execute("UPDATE audit_high_water SET id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(out)
}

async fn page(c: &Client, q: &AuditQuery) -> Result<AuditPage, StoreError> {
    let mut filter = vec!["TRUE".to_string()];
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    for (column, value) in [("item", &q.item), ("label", &q.label), ("kind", &q.kind)] {
        if let Some(v) = value {
            args.push(v);
            filter.push(format!("{column} = ${}", args.len()));
        }
    }
    let filter = filter.join(" AND ");
    let total: i64 = c
        .query_one(
            format!("SELECT count(*) FROM audit WHERE {filter}").as_str(),
            &args,
        )
        .await?
        .try_get(0)?;
    let limit = int(q.limit);
    let (bound, order, from) = match (q.before, q.after) {
        (Some(b), _) => ("<", "DESC", Some(b)),
        (None, Some(a)) => (">", "ASC", Some(a)),
        (None, None) => ("", "DESC", None),
    };
    let mut page_args = args.clone();
    page_args.push(&limit);
    let mut sql = format!("SELECT {FIELDS} FROM audit WHERE {filter}");
    if let Some(from) = &from {
        page_args.push(from);
        sql.push_str(&format!(" AND id {bound} ${}", page_args.len()));
    }
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", args.len() + 1));
    let mut recs = records(&c.query(sql.as_str(), &page_args).await?)?;
    if order == "ASC" {
        recs.reverse();
    }
    let exists_sql = |cond: &str| {
        format!(
            "SELECT 1 FROM audit WHERE {filter} AND id {cond} ${} LIMIT 1",
            args.len() + 1
        )
    };
    let (newer, older) = match (recs.first(), recs.last()) {
        (Some(newest), Some(oldest)) => {
            let mut a = args.clone();
            a.push(&newest.id);
            let newer = c.query_opt(exists_sql(">").as_str(), &a).await?.is_some();
            a.pop();
            a.push(&oldest.id);
            let older = c.query_opt(exists_sql("<").as_str(), &a).await?.is_some();
            (newer, older)
        }
        // An empty page past either end: offer the way back.
        _ => (q.before.is_some(), q.after.is_some() && q.before.is_none()),
    };
    Ok(AuditPage {
        records: recs,
        total: count(total),
        older,
        newer,
    })
}

impl AuditStore for PgStore {
    fn append_audit(
        &self,
        time: &str,
        events: &[AuditEvent],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (time, events) = (time.to_string(), events.to_vec());
        self.run(move |mut c| async move { append(&mut c, &time, &events).await })
    }

    fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let query = query.clone();
        self.run(move |c| async move { page(&c, &query).await })
    }

    fn audit_after(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c| async move {
            let sql = format!("SELECT {FIELDS} FROM audit WHERE id > $1 ORDER BY id LIMIT $2");
            records(&c.query(sql.as_str(), &[&after, &int(limit as u64)]).await?)
        })
    }

    fn audit_high_water(&self) -> Result<i64, StoreError> {
        self.run(|c| async move {
            Ok(c.query_one("SELECT id FROM audit_high_water", &[])
                .await?
                .try_get(0)?)
        })
    }
}
