//! The object-store ledger (migration 8; see `store::ledger`) in SQLite.

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::ledger::{Claim, Commit, Ledger, LedgerEntry, LedgerState, parts_before};
use rusqlite::{Connection, OptionalExtension, params};

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The state at `offset`, or `None` if no commit ended there.
fn state(
    conn: &Connection,
    key: &str,
    offset: u64,
    part_size: u64,
) -> Result<Option<LedgerState>, StoreError> {
    let row: Option<(Option<String>, bool)> = conn
        .query_row(
            "SELECT upload_id, published FROM blob_uploads WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((upload_id, published)) = row else {
        return Ok(None);
    };
    let hash: Option<Vec<u8>> = if offset == 0 {
        None
    } else {
        let found = conn
            .query_row(
                "SELECT hash FROM blob_points WHERE key = ?1 AND at = ?2",
                params![key, int(offset)],
                |r| r.get(0),
            )
            .optional()?;
        match found {
            Some(h) => Some(h),
            None => return Ok(None),
        }
    };
    let n = parts_before(offset, part_size);
    let mut stmt = conn.prepare_cached(
        "SELECT number, etag FROM blob_parts WHERE key = ?1 AND number <= ?2 ORDER BY number",
    )?;
    let parts = stmt
        .query_map(params![key, int(n)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if parts.len() as u64 != n || parts.iter().zip(1..).any(|((got, _), want)| *got != want) {
        return Err(StoreError::Backend(format!(
            "ledger of {key}: parts missing before offset {offset}"
        )));
    }
    let from = n * part_size;
    let mut stmt = conn.prepare_cached(
        "SELECT start, bytes FROM blob_tails WHERE key = ?1 AND start >= ?2 AND start < ?3
         ORDER BY start",
    )?;
    let rows = stmt
        .query_map(params![key, int(from), int(offset)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let tail = crate::store::sql::join_tail(key, from, offset, rows)?;
    Ok(Some(LedgerState {
        upload_id,
        parts: parts.into_iter().map(|(_, e)| e).collect(),
        tail,
        hash,
        published,
    }))
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        key: r.get(0)?,
        upload_id: r.get(1)?,
        resumable: r.get(2)?,
        published: r.get(3)?,
        touched_at: r.get(4)?,
    })
}

impl Ledger for SqliteStore {
    fn ledger_create(&self, key: &str, resumable: bool, at: i64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT INTO blob_uploads (key, resumable, touched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO NOTHING",
            params![key, resumable, at],
        )?;
        Ok(n == 1)
    }

    fn ledger_set_upload(&self, key: &str, upload_id: &str, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE blob_uploads SET upload_id = ?2, touched_at = ?3 WHERE key = ?1",
            params![key, upload_id, at],
        )?;
        Ok(())
    }

    fn ledger_claim(
        &self,
        key: &str,
        offset: u64,
        part_size: u64,
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken = tx.execute(
            "UPDATE blob_uploads SET owner = ?2, lease_until = ?3, touched_at = ?4
             WHERE key = ?1 AND (owner IS NULL OR owner = ?2 OR lease_until < ?4)",
            params![key, owner, until, now],
        )?;
        if taken == 0 {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM blob_uploads WHERE key = ?1)",
                [key],
                |r| r.get(0),
            )?;
            return Ok(if exists { Claim::Busy } else { Claim::Missing });
        }
        let found = state(&tx, key, offset, part_size)?;
        tx.commit()?;
        Ok(found.map_or(Claim::Missing, Claim::Taken))
    }

    fn ledger_state(
        &self,
        key: &str,
        offset: u64,
        part_size: u64,
    ) -> Result<Option<LedgerState>, StoreError> {
        state(&self.conn(), key, offset, part_size)
    }

    fn ledger_renew(&self, key: &str, owner: &str, until: i64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE blob_uploads SET lease_until = ?3 WHERE key = ?1 AND owner = ?2",
            params![key, owner, until],
        )?;
        Ok(n == 1)
    }

    fn ledger_touch(&self, key: &str, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE blob_uploads SET touched_at = ?2 WHERE key = ?1",
            params![key, at],
        )?;
        Ok(())
    }

    fn ledger_release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE blob_uploads SET owner = NULL, lease_until = NULL WHERE key = ?1 AND owner = ?2",
            params![key, owner],
        )?;
        Ok(())
    }

    fn ledger_commit(&self, c: &Commit<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let kept = int(parts_before(c.start, c.part_size));
        let (start, end) = (int(c.start), int(c.end));
        // What a failed earlier writer left past `start`, and what lies wholly before the part
        // that `start` is in (acknowledged: no one goes back behind it any more).
        tx.execute(
            "DELETE FROM blob_points WHERE key = ?1 AND (at > ?2 OR at < ?2)",
            params![c.key, start],
        )?;
        tx.execute(
            "DELETE FROM blob_tails WHERE key = ?1 AND (start >= ?2 OR start < ?3)",
            params![c.key, start, kept * int(c.part_size)],
        )?;
        tx.execute(
            "DELETE FROM blob_parts WHERE key = ?1 AND number > ?2",
            params![c.key, kept],
        )?;
        for (number, etag) in c.parts {
            tx.execute(
                "INSERT INTO blob_parts (key, number, etag) VALUES (?1, ?2, ?3)",
                params![c.key, int(*number), etag],
            )?;
        }
        if !c.tail.is_empty() {
            tx.execute(
                "INSERT INTO blob_tails (key, start, bytes) VALUES (?1, ?2, ?3)",
                params![c.key, int(c.tail_start), c.tail],
            )?;
        }
        tx.execute(
            "INSERT INTO blob_points (key, at, hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (key, at) DO UPDATE SET hash = excluded.hash",
            params![c.key, end, c.hash],
        )?;
        let changed = tx.execute(
            "UPDATE blob_uploads SET upload_id = coalesce(?2, upload_id), touched_at = ?3
             WHERE key = ?1",
            params![c.key, c.upload_id, c.at],
        )?;
        if changed != 1 {
            return Err(StoreError::Gone(c.key.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    fn ledger_published(&self, key: &str, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE blob_uploads SET published = 1, touched_at = ?2 WHERE key = ?1",
            params![key, at],
        )?;
        Ok(())
    }

    fn ledger_reupload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM blob_parts WHERE key = ?1", [key])?;
        for (etag, number) in parts.iter().zip(1i64..) {
            tx.execute(
                "INSERT INTO blob_parts (key, number, etag) VALUES (?1, ?2, ?3)",
                params![key, number, etag],
            )?;
        }
        tx.execute(
            "UPDATE blob_uploads SET upload_id = ?2, published = 0, touched_at = ?3 WHERE key = ?1",
            params![key, upload_id, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn ledger_remove(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let conn = self.conn();
        let found = conn
            .query_row(
                "DELETE FROM blob_uploads WHERE key = ?1
                 RETURNING key, upload_id, resumable, published, touched_at",
                [key],
                entry,
            )
            .optional()?;
        Ok(found)
    }

    fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT key, upload_id, resumable, published, touched_at FROM blob_uploads
                 WHERE key = ?1",
            )?
            .query_row([key], entry)
            .optional()?)
    }

    fn ledger_idle(&self, before: i64, limit: usize) -> Result<Vec<LedgerEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, upload_id, resumable, published, touched_at FROM blob_uploads
             WHERE touched_at < ?1 ORDER BY touched_at LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![before, int(limit as u64)], entry)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
