//! Queries of resumable (REST) uploads: incomplete items and their transaction tokens.

use super::{COLUMNS, N_COLUMNS, item_from_row};
use crate::items::ItemName;
use crate::store::{StoreError, Transaction};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn attach(
    conn: &Connection,
    name: &ItemName,
    tx_hash: &str,
    total: Option<u64>,
    at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE items SET tx_hash = ?2, total = ?3, updated_at = ?4 WHERE name = ?1",
        params![name.as_str(), tx_hash, total.map(int), at],
    )?;
    Ok(())
}

/// A live upload by `column` (`tx_hash` or `name`, never client input).
pub fn find(
    conn: &Connection,
    column: &'static str,
    key: &str,
) -> Result<Option<Transaction>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, total, updated_at FROM items WHERE {column} = ?1 AND deleted_at IS NULL"
    ))?;
    let found = stmt
        .query_row([key], |row| {
            let total: Option<i64> = row.get(N_COLUMNS)?;
            Ok(Transaction {
                item: item_from_row(row)?,
                total: total.and_then(|t| u64::try_from(t).ok()),
                updated_at: row.get(N_COLUMNS + 1)?,
            })
        })
        .optional()?;
    Ok(found)
}

pub fn progress(
    conn: &Connection,
    name: &ItemName,
    size: u64,
    total: Option<u64>,
    at: i64,
) -> Result<(), StoreError> {
    let changed = conn.execute(
        "UPDATE items SET size = ?2, total = ?3, updated_at = ?4
         WHERE name = ?1 AND state = 'incomplete' AND deleted_at IS NULL",
        params![name.as_str(), int(size), total.map(int), at],
    )?;
    still_open(changed, name)
}

/// An upload deleted (or completed) by someone else while a chunk was being written.
fn still_open(changed: usize, name: &ItemName) -> Result<(), StoreError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Gone(name.to_string()))
    }
}

pub fn complete(
    conn: &Connection,
    name: &ItemName,
    size: u64,
    sha256: &str,
    at: i64,
) -> Result<(), StoreError> {
    let changed = conn.execute(
        "UPDATE items SET state = 'complete', size = ?2, total = ?2, sha256 = ?3, completed_at = ?4, updated_at = ?4
         WHERE name = ?1 AND state = 'incomplete' AND deleted_at IS NULL",
        params![name.as_str(), int(size), sha256, at],
    )?;
    still_open(changed, name)
}

pub fn stale(
    conn: &Connection,
    idle_since: i64,
    limit: usize,
) -> Result<Vec<ItemName>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM items WHERE deleted_at IS NULL AND state = 'incomplete' AND updated_at <= ?1 LIMIT ?2",
    )?;
    let names = stmt
        .query_map(params![idle_since, int(limit as u64)], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().filter_map(|n| ItemName::parse(n)).collect())
}

pub fn incomplete_names(conn: &Connection) -> Result<HashSet<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name FROM items WHERE deleted_at IS NULL AND state = 'incomplete'")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(names)
}
