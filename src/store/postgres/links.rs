//! Queries of upload links (table `links`, migration 5; `items.link_id`).

use super::items::{COLUMNS, N_COLUMNS, item_from_row};
use super::{PgStore, count, int};
use crate::links::{Link, NewLink, Refusal, Usage};
use crate::store::{Item, LinkStore, StoreError};
use tokio_postgres::{GenericClient, Row};

const FIELDS: &str = "id, reference, note, created_at, created_by, expires_at, max_size, max_files, \
    notify, revoked_at, revoked_by";

fn limit(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn link_from_row(row: &Row) -> Result<Link, StoreError> {
    let notify: String = row.try_get(8)?;
    Ok(Link {
        id: row.try_get(0)?,
        reference: row.try_get(1)?,
        note: row.try_get(2)?,
        created_at: row.try_get(3)?,
        created_by: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        max_size: limit(row.try_get(6)?),
        max_files: limit(row.try_get(7)?),
        notify: notify
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        revoked_at: row.try_get(9)?,
        revoked_by: row.try_get(10)?,
    })
}

/// Live items of a link; a running upload counts with its declared length.
async fn usage(c: &impl GenericClient, id: i64) -> Result<Usage, StoreError> {
    let row = c
        .query_one(
            "SELECT count(*), coalesce(sum(CASE WHEN state = 'incomplete' AND total IS NOT NULL
                 THEN greatest(total, size) ELSE size END), 0)::BIGINT
             FROM items WHERE link_id = $1 AND deleted_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(Usage {
        files: count(row.try_get(0)?),
        bytes: count(row.try_get(1)?),
    })
}

/// The last word on a link's limits, inside the transaction that makes items visible. The
/// link's row is locked first (`FOR UPDATE`): concurrent commits through one link, from any
/// instance, take turns, and each counts what the ones before it committed.
pub(super) async fn check_limits(
    tx: &tokio_postgres::Transaction<'_>,
    id: i64,
) -> Result<(), StoreError> {
    let Some(link) = find(tx, "id = $1 FOR UPDATE", &id).await? else {
        return Ok(());
    };
    let used = usage(tx, id).await?;
    if link.revoked_at.is_some() {
        return Err(StoreError::LinkRefused(Refusal::Revoked));
    }
    if let Some(max) = link.max_files
        && used.files > max
    {
        return Err(StoreError::LinkRefused(Refusal::Files { max, used: max }));
    }
    if let Some(max) = link.max_size
        && used.bytes > max
    {
        return Err(StoreError::LinkRefused(Refusal::Bytes { max, left: 0 }));
    }
    Ok(())
}

async fn find(
    c: &impl GenericClient,
    filter: &str,
    key: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<Link>, StoreError> {
    let sql = format!("SELECT {FIELDS} FROM links WHERE {filter}");
    c.query_opt(sql.as_str(), &[key])
        .await?
        .as_ref()
        .map(link_from_row)
        .transpose()
}

impl LinkStore for PgStore {
    fn create_link(
        &self,
        link: &NewLink,
        token_hash: &str,
        created_by: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let (link, token_hash, created_by) =
            (link.clone(), token_hash.to_string(), created_by.to_string());
        self.run(move |c| async move {
            let row = c
                .query_one(
                    "INSERT INTO links (token_hash, reference, note, created_at, created_by, expires_at,
                         max_size, max_files, notify)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &token_hash,
                        &link.reference,
                        &link.note,
                        &at,
                        &created_by,
                        &link.expires_at,
                        &link.max_size.map(int),
                        &link.max_files.map(int),
                        &link.notify.join(","),
                    ],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn link_by_token(&self, token_hash: &str) -> Result<Option<Link>, StoreError> {
        let token_hash = token_hash.to_string();
        self.run(move |c| async move { find(&**c, "token_hash = $1", &token_hash).await })
    }

    fn link(&self, id: i64) -> Result<Option<Link>, StoreError> {
        self.run(move |c| async move { find(&**c, "id = $1", &id).await })
    }

    fn links(&self, offset: u64, limit: u64) -> Result<(Vec<(Link, Usage)>, u64), StoreError> {
        self.run(move |c| async move {
            let total: i64 = c
                .query_one("SELECT count(*) FROM links", &[])
                .await?
                .try_get(0)?;
            let sql = format!("SELECT {FIELDS} FROM links ORDER BY id DESC LIMIT $1 OFFSET $2");
            let rows = c.query(sql.as_str(), &[&int(limit), &int(offset)]).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let link = link_from_row(row)?;
                let used = usage(&**c, link.id).await?;
                out.push((link, used));
            }
            Ok((out, count(total)))
        })
    }

    fn revoke_link(&self, id: i64, by: &str, at: i64) -> Result<bool, StoreError> {
        let by = by.to_string();
        self.run(move |c| async move {
            let changed = c
                .execute(
                    "UPDATE links SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &at, &by],
                )
                .await?;
            Ok(changed == 1)
        })
    }

    fn link_usage(&self, id: i64) -> Result<Usage, StoreError> {
        self.run(move |c| async move { usage(&**c, id).await })
    }

    fn link_items(&self, id: i64, limit: u64) -> Result<Vec<(Item, Option<i64>)>, StoreError> {
        self.run(move |c| async move {
            let sql = format!(
                "SELECT {COLUMNS}, deleted_at FROM items WHERE link_id = $1
                 ORDER BY created_at DESC, seq DESC LIMIT $2"
            );
            let rows = c.query(sql.as_str(), &[&id, &int(limit)]).await?;
            rows.iter()
                .map(|row| Ok((item_from_row(row)?, row.try_get(N_COLUMNS)?)))
                .collect()
        })
    }
}
