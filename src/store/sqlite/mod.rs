//! SQLite (WAL) implementation of [`MetaStore`]: item queries here, resumable-upload queries in
//! [`uploads`], the schema and its migrations in [`schema`].

mod audit;
mod ledger;
mod links;
mod listing;
mod outbox;
mod schema;
mod uploads;

use super::{
    AlertOutcome, AlertRow, AlertStatus, AlertTask, Delivery, DeliveryJoin, DeliveryPage,
    Exclusive, Item, ItemAlert, ItemState, ListPage, ListQuery, MetaStore, Outbox, StoreError,
    Transaction, Uploader,
};
use crate::items::ItemName;
use crate::scan::ScanState;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub(super) const COLUMNS: &str = "name, filename, content_type, size, sha256, state, created_at, completed_at, \
    expires_at, downloaded_at, locked, uploader, client_ip, user_agent, reference, comment, link_id, scan, scan_detail";

/// How many [`COLUMNS`] there are: queries selecting more read theirs after them.
pub(super) const N_COLUMNS: usize = 19;

/// Admins only: locked items, and infected (quarantined) ones.
pub(super) const NOT_FOR_ALL: &str = "locked = 1 OR coalesce(scan = 'infected', 0)";

/// One connection behind a mutex: every statement is short, and WAL keeps commits cheap.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        // First: another process may be opening (and migrating) the same database right now.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit that was acknowledged survives a power cut, not just a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        // Statistics for the planner from the start (see `maintain`), read from a sample of
        // each index so that start-up stays quick whatever the size.
        conn.execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) fn item_from_row(row: &Row<'_>) -> rusqlite::Result<Item> {
    let name: String = row.get(0)?;
    let state: String = row.get(5)?;
    let size: i64 = row.get(3)?;
    Ok(Item {
        name: ItemName::parse(&name)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(format!("bad item name {name:?}")))?,
        filename: row.get(1)?,
        content_type: row.get(2)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: row.get(4)?,
        state: if state == "complete" {
            ItemState::Complete
        } else {
            ItemState::Incomplete
        },
        created_at: row.get(6)?,
        completed_at: row.get(7)?,
        expires_at: row.get(8)?,
        downloaded_at: row.get(9)?,
        locked: row.get(10)?,
        uploader: Uploader {
            label: row.get(11)?,
            client_ip: row.get(12)?,
            user_agent: row.get(13)?,
            link: row.get(16)?,
        },
        reference: row.get(14)?,
        comment: row.get(15)?,
        scan: ScanState::from_columns(row.get::<_, Option<String>>(17)?.as_deref(), row.get(18)?),
    })
}

fn insert_items(conn: &Connection, items: &[Item]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO items ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    ))?;
    for it in items {
        let res = stmt.execute(params![
            it.name.as_str(),
            it.filename,
            it.content_type,
            i64::try_from(it.size).unwrap_or(i64::MAX),
            it.sha256,
            it.state.as_str(),
            it.created_at,
            it.completed_at,
            it.expires_at,
            it.downloaded_at,
            it.locked,
            it.uploader.label,
            it.uploader.client_ip,
            it.uploader.user_agent,
            it.reference,
            it.comment,
            it.uploader.link,
            it.scan.as_ref().map(ScanState::word),
            it.scan.as_ref().and_then(ScanState::detail),
        ]);
        match res {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::NameTaken(it.name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl MetaStore for SqliteStore {
    fn insert(&self, items: &[Item], join: Option<&DeliveryJoin>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_items(&tx, items)?;
        if let Some(link) = items.first().and_then(|i| i.uploader.link) {
            links::check_limits(&tx, link)?;
        }
        if let (Some(join), Some(first)) = (join, items.first()) {
            let names: Vec<&ItemName> = items.iter().map(|i| &i.name).collect();
            outbox::join(
                &tx,
                join,
                &first.uploader,
                first.reference.as_deref(),
                &names,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn name_used(&self, name: &ItemName) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM items WHERE name = ?1",
                [name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    fn get(&self, name: &ItemName) -> Result<Option<Item>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items WHERE name = ?1 AND deleted_at IS NULL"
        ))?;
        Ok(stmt.query_row([name.as_str()], item_from_row).optional()?)
    }

    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        listing::list(&self.conn(), query)
    }

    fn list_by_name(
        &self,
        after: Option<&ItemName>,
        limit: u64,
        include_locked: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items WHERE deleted_at IS NULL AND name > ?1 AND (?3 OR NOT ({NOT_FOR_ALL}))
             ORDER BY name LIMIT ?2"
        ))?;
        let after = after.map_or("", ItemName::as_str);
        let items = stmt
            .query_map(
                params![
                    after,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    include_locked
                ],
                item_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(items)
    }

    fn mark_deleted(&self, name: &ItemName, at: i64, by: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE items SET deleted_at = ?2, deleted_by = ?3 WHERE name = ?1 AND deleted_at IS NULL",
            params![name.as_str(), at, by],
        )?;
        Ok(n == 1)
    }

    fn expired(&self, now: i64, limit: usize) -> Result<Vec<ItemName>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM items WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2",
        )?;
        let names = stmt
            .query_map(
                params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| r.get::<_, String>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names.iter().filter_map(|n| ItemName::parse(n)).collect())
    }

    fn record_download(&self, name: &ItemName, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE items SET downloaded_at = ?2 WHERE name = ?1",
            params![name.as_str(), at],
        )?;
        Ok(())
    }

    fn live_size(&self) -> Result<u64, StoreError> {
        let total: f64 = self.conn().query_row(
            "SELECT total(size) FROM items WHERE deleted_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(total as u64)
    }

    fn live_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM items WHERE deleted_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn live_names(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name FROM items WHERE deleted_at IS NULL")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(names)
    }

    fn begin_upload(
        &self,
        item: &Item,
        tx_hash: &str,
        total: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_items(&tx, std::slice::from_ref(item))?;
        uploads::attach(&tx, &item.name, tx_hash, total, item.created_at)?;
        tx.commit()?;
        Ok(())
    }

    fn find_upload(&self, tx_hash: &str) -> Result<Option<Transaction>, StoreError> {
        uploads::find(&self.conn(), "tx_hash", tx_hash)
    }

    fn upload(&self, name: &ItemName) -> Result<Option<Transaction>, StoreError> {
        uploads::find(&self.conn(), "name", name.as_str())
    }

    fn record_progress(
        &self,
        name: &ItemName,
        size: u64,
        total: Option<u64>,
        at: i64,
    ) -> Result<(), StoreError> {
        uploads::progress(&self.conn(), name, size, total, at)
    }

    fn complete_upload(
        &self,
        name: &ItemName,
        size: u64,
        sha256: &str,
        at: i64,
        join: Option<&DeliveryJoin>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        uploads::complete(&tx, name, size, sha256, at)?;
        let item = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE name = ?1"))?
            .query_row([name.as_str()], item_from_row)?;
        if let Some(link) = item.uploader.link {
            links::check_limits(&tx, link)?;
        }
        if let Some(join) = join {
            outbox::join(
                &tx,
                join,
                &item.uploader,
                item.reference.as_deref(),
                &[name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn stale_uploads(&self, idle_since: i64, limit: usize) -> Result<Vec<ItemName>, StoreError> {
        uploads::stale(&self.conn(), idle_since, limit)
    }

    fn incomplete_names(&self) -> Result<HashSet<String>, StoreError> {
        uploads::incomplete_names(&self.conn())
    }

    fn set_locked(&self, name: &ItemName, locked: bool) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE items SET locked = ?2 WHERE name = ?1",
            params![name.as_str(), locked],
        )?;
        Ok(())
    }

    fn modify(
        &self,
        name: &ItemName,
        filename: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE items SET filename = coalesce(?2, filename), content_type = coalesce(?3, content_type) WHERE name = ?1",
            params![name.as_str(), filename, content_type],
        )?;
        Ok(())
    }

    fn scanning(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items WHERE scan = 'scanning' AND state = 'complete'
             AND deleted_at IS NULL ORDER BY completed_at, rowid LIMIT ?1"
        ))?;
        let items = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], item_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(items)
    }

    fn set_scan(&self, name: &ItemName, state: &ScanState) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE items SET scan = ?2, scan_detail = ?3 WHERE name = ?1",
            params![name.as_str(), state.word(), state.detail()],
        )?;
        Ok(())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    fn shared_key(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO shared_keys (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, candidate],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM shared_keys WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?)
    }

    fn try_exclusive(&self, _name: &str) -> Result<Option<Exclusive>, StoreError> {
        // A SQLite store has one process (the data-dir lock): nobody to exclude.
        Ok(Some(Exclusive::new(())))
    }

    fn maintain(&self) -> Result<(), StoreError> {
        // Without statistics SQLite guessed the uploader index for `client=A&uploader=B`
        // (10,000 rows sorted, 13 ms at 100k items; with them the client's 400: 1 ms).
        // `optimize` analyzes only tables that changed much since their last analysis.
        self.conn().execute_batch("PRAGMA optimize;")?;
        Ok(())
    }
}

impl Outbox for SqliteStore {
    fn close_due_deliveries(
        &self,
        now_ms: i64,
        channels: &[(String, Vec<String>)],
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = outbox::close_due(&tx, now_ms, channels)?;
        tx.commit()?;
        Ok(n)
    }

    fn claim_alerts(
        &self,
        now: i64,
        channel: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<AlertTask>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let tasks = outbox::claim(&tx, now, channel, limit, lease_until)?;
        tx.commit()?;
        Ok(tasks)
    }

    fn release_alert_leases(&self, now: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE alerts SET next_attempt_at = ?1
             WHERE state IN ('pending', 'failing') AND next_attempt_at > ?1",
            [now],
        )?)
    }

    fn next_alert_due_ms(&self) -> Result<Option<i64>, StoreError> {
        outbox::next_due(&self.conn())
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        outbox::delivery(&self.conn(), id)
    }

    fn record_alert(
        &self,
        task: &AlertTask,
        outcome: &AlertOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        outbox::record(&self.conn(), task, outcome, now)
    }

    fn alert_status(&self, names: &[String]) -> Result<HashMap<String, ItemAlert>, StoreError> {
        outbox::status(&self.conn(), names)
    }

    fn deliveries(
        &self,
        offset: u64,
        limit: u64,
        include_locked: bool,
    ) -> Result<DeliveryPage, StoreError> {
        listing::deliveries(&self.conn(), offset, limit, include_locked)
    }

    fn delivery_alerts(&self, id: i64) -> Result<(AlertStatus, Vec<AlertRow>), StoreError> {
        listing::delivery_alerts(&self.conn(), id)
    }

    fn alert_trouble(&self, gave_up_since: i64) -> Result<(Option<i64>, u64), StoreError> {
        outbox::trouble(&self.conn(), gave_up_since)
    }

    fn alert_backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        outbox::backlog(&self.conn())
    }
}

#[cfg(test)]
mod tests;
