//! Queries of resumable (REST) uploads: incomplete items and their transaction tokens.

use super::int;
use super::items::{COLUMNS, N_COLUMNS, item_from_row};
use crate::items::ItemName;
use crate::store::{StoreError, Transaction};
use tokio_postgres::{Client, GenericClient};

pub(super) async fn attach(
    tx: &tokio_postgres::Transaction<'_>,
    name: &ItemName,
    tx_hash: &str,
    total: Option<u64>,
    at: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE items SET tx_hash = $2, total = $3, updated_at = $4 WHERE name = $1",
        &[&name.as_str(), &tx_hash, &total.map(int), &at],
    )
    .await?;
    Ok(())
}

/// A live upload by `column` (`tx_hash` or `name`, never client input).
pub(super) async fn find(
    c: &impl GenericClient,
    column: &'static str,
    key: &str,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, total, updated_at FROM items WHERE {column} = $1 AND deleted_at IS NULL"
    );
    let Some(row) = c.query_opt(sql.as_str(), &[&key]).await? else {
        return Ok(None);
    };
    let total: Option<i64> = row.try_get(N_COLUMNS)?;
    Ok(Some(Transaction {
        item: item_from_row(&row)?,
        total: total.and_then(|t| u64::try_from(t).ok()),
        updated_at: row.try_get(N_COLUMNS + 1)?,
    }))
}

pub(super) async fn progress(
    c: &Client,
    name: &ItemName,
    size: u64,
    total: Option<u64>,
    at: i64,
) -> Result<(), StoreError> {
    let changed = c
        .execute(
            "UPDATE items SET size = $2, total = $3, updated_at = $4
             WHERE name = $1 AND state = 'incomplete' AND deleted_at IS NULL",
            &[&name.as_str(), &int(size), &total.map(int), &at],
        )
        .await?;
    still_open(changed, name)
}

/// An upload deleted (or completed) by someone else while a chunk was being written.
fn still_open(changed: u64, name: &ItemName) -> Result<(), StoreError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Gone(name.to_string()))
    }
}

pub(super) async fn complete(
    tx: &tokio_postgres::Transaction<'_>,
    name: &ItemName,
    size: u64,
    sha256: &str,
    at: i64,
) -> Result<(), StoreError> {
    let changed = tx
        .execute(
            "UPDATE items SET state = 'complete', size = $2, total = $2, sha256 = $3, completed_at = $4, updated_at = $4
             WHERE name = $1 AND state = 'incomplete' AND deleted_at IS NULL",
            &[&name.as_str(), &int(size), &sha256, &at],
        )
        .await?;
    still_open(changed, name)
}
