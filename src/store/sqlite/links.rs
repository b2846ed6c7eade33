//! Queries of upload links (table `links`, migration 5; `items.link_id`).

use super::{COLUMNS, N_COLUMNS, SqliteStore, item_from_row};
use crate::links::{Link, NewLink, Usage};
use crate::store::{Item, LinkStore, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

const FIELDS: &str = "id, reference, note, created_at, created_by, expires_at, max_size, max_files, \
    notify, revoked_at, revoked_by";

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<Link> {
    let notify: String = row.get(8)?;
    Ok(Link {
        id: row.get(0)?,
        reference: row.get(1)?,
        note: row.get(2)?,
        created_at: row.get(3)?,
        created_by: row.get(4)?,
        expires_at: row.get(5)?,
        max_size: count(row.get(6)?),
        max_files: count(row.get(7)?),
        notify: notify
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        revoked_at: row.get(9)?,
        revoked_by: row.get(10)?,
    })
}

/// Live items of a link; a running upload counts with its declared length.
pub(super) fn usage(conn: &Connection, id: i64) -> Result<Usage, StoreError> {
    let (files, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'incomplete' AND total IS NOT NULL
                 THEN MAX(total, size) ELSE size END), 0)
         FROM items WHERE link_id = ?1 AND deleted_at IS NULL",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Usage {
        files: u64::try_from(files).unwrap_or(0),
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

/// The last word on a link's limits, inside the transaction that makes items visible: the
/// checks while streaming let concurrent uploads each see room that only one of them can have.
pub(super) fn check_limits(conn: &Connection, id: i64) -> Result<(), StoreError> {
    let Some(link) = find(conn, "id = ?1", id)? else {
        return Ok(());
    };
    let used = usage(conn, id)?;
    if link.revoked_at.is_some() {
        return Err(StoreError::LinkRefused(crate::links::Refusal::Revoked));
    }
    if let Some(max) = link.max_files
        && used.files > max
    {
        return Err(StoreError::LinkRefused(crate::links::Refusal::Files {
            max,
            used: max,
        }));
    }
    if let Some(max) = link.max_size
        && used.bytes > max
    {
        return Err(StoreError::LinkRefused(crate::links::Refusal::Bytes {
            max,
            left: 0,
        }));
    }
    Ok(())
}

fn find(
    conn: &Connection,
    filter: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<Link>, StoreError> {
    let link = conn
        .prepare_cached(&format!("SELECT {FIELDS} FROM links WHERE {filter}"))?
        .query_row([key], link_from_row)
        .optional()?;
    Ok(link)
}

impl LinkStore for SqliteStore {
    fn create_link(
        &self,
        link: &NewLink,
        token_hash: &str,
        created_by: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO links (token_hash, reference, note, created_at, created_by, expires_at,
                 max_size, max_files, notify)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                token_hash,
                link.reference,
                link.note,
                at,
                created_by,
                link.expires_at,
                link.max_size.map(int),
                link.max_files.map(int),
                link.notify.join(","),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn link_by_token(&self, token_hash: &str) -> Result<Option<Link>, StoreError> {
        find(&self.conn(), "token_hash = ?1", token_hash)
    }

    fn link(&self, id: i64) -> Result<Option<Link>, StoreError> {
        find(&self.conn(), "id = ?1", id)
    }

    fn links(&self, offset: u64, limit: u64) -> Result<(Vec<(Link, Usage)>, u64), StoreError> {
        let conn = self.conn();
        let total: i64 = conn.query_row("SELECT COUNT(*) FROM links", [], |r| r.get(0))?;
        let links = conn
            .prepare_cached(&format!(
                "SELECT {FIELDS} FROM links ORDER BY id DESC LIMIT ?1 OFFSET ?2"
            ))?
            .query_map([int(limit), int(offset)], link_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            let used = usage(&conn, link.id)?;
            out.push((link, used));
        }
        Ok((out, u64::try_from(total).unwrap_or(0)))
    }

    fn revoke_link(&self, id: i64, by: &str, at: i64) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE links SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, at, by],
        )?;
        Ok(changed == 1)
    }

    fn link_usage(&self, id: i64) -> Result<Usage, StoreError> {
        usage(&self.conn(), id)
    }

    fn link_items(&self, id: i64, limit: u64) -> Result<Vec<(Item, Option<i64>)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, deleted_at FROM items WHERE link_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![id, int(limit)], |row| {
                Ok((item_from_row(row)?, row.get(N_COLUMNS)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
