//! Queries of the audit trail (table `audit`, migration 4), and a read-only opening of the
//! database for `sfx audit verify` while a server runs.

use super::SqliteStore;
use crate::audit::{AuditEvent, AuditRecord, GENESIS, seal};
use crate::store::{AuditPage, AuditQuery, AuditStore, StoreError};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use std::path::Path;
use std::sync::Mutex;

const FIELDS: &str = "id, time, kind, outcome, client_ip, label, item, detail, prev_hash, hash";

impl SqliteStore {
    /// Opens an existing database read-only, without migrating it: WAL lets it read while the
    /// server writes. Fails if the database has no audit trail yet.
    pub fn open_reader(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 4 {
            return Err(StoreError::Backend(format!(
                "{} has no audit trail (schema version {version}); start this sfx once to add it",
                path.display()
            )));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.get(0)?,
        time: row.get(1)?,
        kind: row.get(2)?,
        outcome: row.get(3)?,
        client_ip: row.get(4)?,
        label: row.get(5)?,
        item: row.get(6)?,
        detail: row.get(7)?,
        prev_hash: row.get(8)?,
        hash: row.get(9)?,
    })
}

fn high_water(conn: &Connection) -> Result<i64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0))
}

fn append(
    conn: &mut Connection,
    time: &str,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    // IMMEDIATE: take the write lock before reading the end of the chain.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    // Past the highest id ever used: after a removal of the newest records, the gap stays.
    let mut id = high_water(&tx)?.max(last.as_ref().map_or(0, |l| l.0));
    let mut prev = last.map_or_else(|| GENESIS.to_string(), |l| l.1);
    let mut records = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO audit ({FIELDS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        for ev in events {
            id += 1;
            let r = seal(id, time, ev, &prev);
            insert.execute(params![
                r.id,
                r.time,
                r.kind,
                r.outcome,
                r.client_ip,
                r.label,
                r.item,
                r.detail,
                r.prev_hash,
                r.hash
            ])?;
            prev = r.hash.clone();
            records.push(r);
        }
    }
    tx.commit()?;
    Ok(records)
}

fn page(conn: &Connection, q: &AuditQuery) -> Result<AuditPage, StoreError> {
    let mut filter = vec!["1"];
    let mut args: Vec<(&str, &dyn ToSql)> = Vec::new();
    for (column, value, param) in [
        ("item = :item", &q.item, ":item"),
        ("label = :label", &q.label, ":label"),
        ("kind = :kind", &q.kind, ":kind"),
    ] {
        if let Some(v) = value {
            filter.push(column);
            args.push((param, v));
        }
    }
    let filter = filter.join(" AND ");
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM audit WHERE {filter}"),
        args.as_slice(),
        |r| r.get(0),
    )?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let (bound, order, from) = match (q.before, q.after) {
        (Some(b), _) => ("AND id < :from", "DESC", b),
        (None, Some(a)) => ("AND id > :from", "ASC", a),
        (None, None) => ("", "DESC", 0),
    };
    let mut page_args = args.clone();
    page_args.push((":limit", &limit));
    if !bound.is_empty() {
        page_args.push((":from", &from));
    }
    let mut records = conn
        .prepare_cached(&format!(
            "SELECT {FIELDS} FROM audit WHERE {filter} {bound} ORDER BY id {order} LIMIT :limit"
        ))?
        .query_map(page_args.as_slice(), record_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    if order == "ASC" {
        records.reverse();
    }
    let exists = |cond: &str, id: i64| -> Result<bool, StoreError> {
        let mut a = args.clone();
        a.push((":id", &id));
        let found: Option<i64> = conn
            .query_row(
                &format!("SELECT 1 FROM audit WHERE {filter} AND id {cond} :id LIMIT 1"),
                a.as_slice(),
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    };
    let (newer, older) = match (records.first(), records.last()) {
        (Some(newest), Some(oldest)) => (exists(">", newest.id)?, exists("<", oldest.id)?),
        // An empty page past either end: offer the way back.
        _ => (q.before.is_some(), q.after.is_some() && q.before.is_none()),
    };
    Ok(AuditPage {
        records,
        total: u64::try_from(total).unwrap_or(0),
        older,
        newer,
    })
}

impl AuditStore for SqliteStore {
    fn append_audit(
        &self,
        time: &str,
        events: &[AuditEvent],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        append(&mut self.conn(), time, events)
    }

    fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        page(&self.conn(), query)
    }

    fn audit_after(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {FIELDS} FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let records = stmt
            .query_map(
                params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                record_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(records)
    }

    fn audit_high_water(&self) -> Result<i64, StoreError> {
        high_water(&self.conn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Kind, Verdict, verify};

    fn event(n: usize) -> AuditEvent {
        let label = if n.is_multiple_of(2) { "even" } else { "odd" };
        AuditEvent::new(Kind::Download, "192.0.2.1", label).item(format!("item{n:04}"))
    }

    #[test]
    fn records_cannot_be_changed_through_sql() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store.append_audit("t", &[event(1)]).unwrap();
        let conn = store.conn();
        assert!(conn.execute("UPDATE audit SET label = 'x'", []).is_err());
        assert!(conn.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn a_removed_newest_record_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store
            .append_audit("t", &[event(1), event(2), event(3)])
            .unwrap();
        {
            let conn = store.conn();
            conn.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 3;")
                .unwrap();
        }
        assert!(matches!(
            verify(&store).unwrap(),
            Verdict::Broken { id: 3, .. }
        ));
        // A record appended afterwards keeps the gap: the removal stays visible.
        let next = store.append_audit("t", &[event(4)]).unwrap();
        assert_eq!(next[0].id, 4);
        assert_eq!(
            verify(&store).unwrap(),
            Verdict::Broken {
                id: 4,
                reason: "record 3 is missing".into()
            }
        );
    }
}
