//! The object-store ledger (migration 8; see `store::ledger`) in PostgreSQL. A claim locks the
//! upload's row (`FOR UPDATE`), so two instances claiming at once take turns.

use super::{PgStore, int};
use crate::store::StoreError;
use crate::store::ledger::{Claim, Commit, Ledger, LedgerEntry, LedgerState, parts_before};
use tokio_postgres::{GenericClient, Row};

async fn state(
    c: &impl GenericClient,
    key: &str,
    offset: u64,
    part_size: u64,
) -> Result<Option<LedgerState>, StoreError> {
    let Some(row) = c
        .query_opt(
            "SELECT upload_id, published FROM blob_uploads WHERE key = $1",
            &[&key],
        )
        .await?
    else {
        return Ok(None);
    };
    let (upload_id, published): (Option<String>, bool) = (row.try_get(0)?, row.try_get(1)?);
    let hash: Option<Vec<u8>> = if offset == 0 {
        None
    } else {
        let found = c
            .query_opt(
                "SELECT hash FROM blob_points WHERE key = $1 AND at = $2",
                &[&key, &int(offset)],
            )
            .await?;
        match found {
            Some(r) => Some(r.try_get(0)?),
            None => return Ok(None),
        }
    };
    let n = parts_before(offset, part_size);
    let rows = c
        .query(
            "SELECT number, etag FROM blob_parts WHERE key = $1 AND number <= $2 ORDER BY number",
            &[&key, &int(n)],
        )
        .await?;
    let mut parts = Vec::with_capacity(rows.len());
    for (r, want) in rows.iter().zip(1i64..) {
        if r.try_get::<_, i64>(0)? != want {
            break;
        }
        parts.push(r.try_get::<_, String>(1)?);
    }
    if parts.len() as u64 != n {
        return Err(StoreError::Backend(format!(
            "ledger of {key}: parts missing before offset {offset}"
        )));
    }
    let from = n * part_size;
    let rows = c
        .query(
            "SELECT start, bytes FROM blob_tails WHERE key = $1 AND start >= $2 AND start < $3
             ORDER BY start",
            &[&key, &int(from), &int(offset)],
        )
        .await?;
    let rows = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(i64, Vec<u8>)>, tokio_postgres::Error>>()?;
    let tail = crate::store::sql::join_tail(key, from, offset, rows)?;
    Ok(Some(LedgerState {
        upload_id,
        parts,
        tail,
        hash,
        published,
    }))
}

fn entry(r: &Row) -> Result<LedgerEntry, tokio_postgres::Error> {
    Ok(LedgerEntry {
        key: r.try_get(0)?,
        upload_id: r.try_get(1)?,
        resumable: r.try_get(2)?,
        published: r.try_get(3)?,
        touched_at: r.try_get(4)?,
    })
}

impl Ledger for PgStore {
    fn ledger_create(&self, key: &str, resumable: bool, at: i64) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.run(move |c| async move {
            let n = c
                .execute(
                    "INSERT INTO blob_uploads (key, resumable, touched_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING",
                    &[&key, &resumable, &at],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn ledger_set_upload(&self, key: &str, upload_id: &str, at: i64) -> Result<(), StoreError> {
        let (key, id) = (key.to_string(), upload_id.to_string());
        self.run(move |c| async move {
            c.execute(
                "UPDATE blob_uploads SET upload_id = $2, touched_at = $3 WHERE key = $1",
                &[&key, &id, &at],
            )
            .await?;
            Ok(())
        })
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
        let (key, owner) = (key.to_string(), owner.to_string());
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT owner, lease_until FROM blob_uploads WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .await?
            else {
                return Ok(Claim::Missing);
            };
            let (held, lease): (Option<String>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
            if held.is_some_and(|h| h != owner) && lease.is_some_and(|l| l >= now) {
                return Ok(Claim::Busy);
            }
            tx.execute(
                "UPDATE blob_uploads SET owner = $2, lease_until = $3, touched_at = $4
                 WHERE key = $1",
                &[&key, &owner, &until, &now],
            )
            .await?;
            let found = state(&*tx, &key, offset, part_size).await?;
            tx.commit().await?;
            Ok(found.map_or(Claim::Missing, Claim::Taken))
        })
    }

    fn ledger_state(
        &self,
        key: &str,
        offset: u64,
        part_size: u64,
    ) -> Result<Option<LedgerState>, StoreError> {
        let key = key.to_string();
        self.run(move |c| async move { state(&**c, &key, offset, part_size).await })
    }

    fn ledger_renew(&self, key: &str, owner: &str, until: i64) -> Result<bool, StoreError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        self.run(move |c| async move {
            let n = c
                .execute(
                    "UPDATE blob_uploads SET lease_until = $3 WHERE key = $1 AND owner = $2",
                    &[&key, &owner, &until],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn ledger_touch(&self, key: &str, at: i64) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run(move |c| async move {
            c.execute(
                "UPDATE blob_uploads SET touched_at = $2 WHERE key = $1",
                &[&key, &at],
            )
            .await?;
            Ok(())
        })
    }

    fn ledger_release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        self.run(move |c| async move {
            c.execute(
                "UPDATE blob_uploads SET owner = NULL, lease_until = NULL
                 WHERE key = $1 AND owner = $2",
                &[&key, &owner],
            )
            .await?;
            Ok(())
        })
    }

    fn ledger_commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let key = commit.key.to_string();
        let upload_id = commit.upload_id.map(str::to_string);
        let parts = commit.parts.to_vec();
        let tail = commit.tail.to_vec();
        let hash = commit.hash.to_vec();
        let (part_size, start, tail_start, end, at) = (
            commit.part_size,
            commit.start,
            commit.tail_start,
            commit.end,
            commit.at,
        );
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let kept = int(parts_before(start, part_size));
            let (s, e) = (int(start), int(end));
            // See the SQLite version for why these and no others.
            tx.execute(
                "DELETE FROM blob_points WHERE key = $1 AND at <> $2",
                &[&key, &s],
            )
            .await?;
            tx.execute(
                "DELETE FROM blob_tails WHERE key = $1 AND (start >= $2 OR start < $3)",
                &[&key, &s, &(kept * int(part_size))],
            )
            .await?;
            tx.execute(
                "DELETE FROM blob_parts WHERE key = $1 AND number > $2",
                &[&key, &kept],
            )
            .await?;
            for (number, etag) in &parts {
                tx.execute(
                    "INSERT INTO blob_parts (key, number, etag) VALUES ($1, $2, $3)",
                    &[&key, &int(*number), etag],
                )
                .await?;
            }
            if !tail.is_empty() {
                tx.execute(
                    "INSERT INTO blob_tails (key, start, bytes) VALUES ($1, $2, $3)",
                    &[&key, &int(tail_start), &tail],
                )
                .await?;
            }
            tx.execute(
                "INSERT INTO blob_points (key, at, hash) VALUES ($1, $2, $3)
                 ON CONFLICT (key, at) DO UPDATE SET hash = excluded.hash",
                &[&key, &e, &hash],
            )
            .await?;
            let changed = tx
                .execute(
                    "UPDATE blob_uploads SET upload_id = coalesce($2, upload_id), touched_at = $3
                     WHERE key = $1",
                    &[&key, &upload_id, &at],
                )
                .await?;
            if changed != 1 {
                return Err(StoreError::Gone(key));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn ledger_published(&self, key: &str, at: i64) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run(move |c| async move {
            c.execute(
                "UPDATE blob_uploads SET published = true, touched_at = $2 WHERE key = $1",
                &[&key, &at],
            )
            .await?;
            Ok(())
        })
    }

    fn ledger_reupload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        let (key, id, parts) = (key.to_string(), upload_id.to_string(), parts.to_vec());
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            tx.execute("DELETE FROM blob_parts WHERE key = $1", &[&key])
                .await?;
            for (etag, number) in parts.iter().zip(1i64..) {
                tx.execute(
                    "INSERT INTO blob_parts (key, number, etag) VALUES ($1, $2, $3)",
                    &[&key, &number, etag],
                )
                .await?;
            }
            tx.execute(
                "UPDATE blob_uploads SET upload_id = $2, published = false, touched_at = $3
                 WHERE key = $1",
                &[&key, &id, &at],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn ledger_remove(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let key = key.to_string();
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "DELETE FROM blob_uploads WHERE key = $1
                     RETURNING key, upload_id, resumable, published, touched_at",
                    &[&key],
                )
                .await?;
            Ok(row.as_ref().map(entry).transpose()?)
        })
    }

    fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let key = key.to_string();
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT key, upload_id, resumable, published, touched_at FROM blob_uploads
                     WHERE key = $1",
                    &[&key],
                )
                .await?;
            Ok(row.as_ref().map(entry).transpose()?)
        })
    }

    fn ledger_idle(&self, before: i64, limit: usize) -> Result<Vec<LedgerEntry>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT key, upload_id, resumable, published, touched_at FROM blob_uploads
                     WHERE touched_at < $1 ORDER BY touched_at LIMIT $2",
                    &[&before, &int(limit as u64)],
                )
                .await?;
            Ok(rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?)
        })
    }
}
