//! Item rows, and [`MetaStore`] for [`PgStore`]: each method moves its arguments into a task
//! on the store's runtime (see the module comment of `postgres`).

use super::{PgStore, count, int, links, listing, outbox, uploads, violates};
use crate::items::ItemName;
use crate::scan::ScanState;
use crate::store::{
    DeliveryJoin, Exclusive, Item, ItemState, ListPage, ListQuery, MetaStore, StoreError,
    Transaction, Uploader,
};
use std::collections::HashSet;
use tokio_postgres::{Client, GenericClient, Row};

pub(super) use crate::store::sqlite::COLUMNS;

/// How many [`COLUMNS`] there are: queries selecting more read theirs after them.
pub(super) const N_COLUMNS: usize = 19;

/// Admins only: locked items, and infected (quarantined) ones.
pub(super) const NOT_FOR_ALL: &str = "locked OR coalesce(scan = 'infected', false)";

pub(super) fn item_from_row(row: &Row) -> Result<Item, StoreError> {
    let name: String = row.try_get(0)?;
    let state: String = row.try_get(5)?;
    Ok(Item {
        name: ItemName::parse(&name)
            .ok_or_else(|| StoreError::Backend(format!("bad item name {name:?}")))?,
        filename: row.try_get(1)?,
        content_type: row.try_get(2)?,
        size: count(row.try_get(3)?),
        sha256: row.try_get(4)?,
        state: if state == "complete" {
            ItemState::Complete
        } else {
            ItemState::Incomplete
        },
        created_at: row.try_get(6)?,
        completed_at: row.try_get(7)?,
        expires_at: row.try_get(8)?,
        downloaded_at: row.try_get(9)?,
        locked: row.try_get(10)?,
        uploader: Uploader {
            label: row.try_get(11)?,
            client_ip: row.try_get(12)?,
            user_agent: row.try_get(13)?,
            link: row.try_get(16)?,
        },
        reference: row.try_get(14)?,
        comment: row.try_get(15)?,
        scan: ScanState::from_columns(row.try_get::<_, Option<&str>>(17)?, row.try_get(18)?),
    })
}

pub(super) fn items_from_rows(rows: &[Row]) -> Result<Vec<Item>, StoreError> {
    rows.iter().map(item_from_row).collect()
}

fn names_from_rows(rows: &[Row]) -> Result<Vec<String>, StoreError> {
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(StoreError::from))
        .collect()
}

async fn insert_items(c: &impl GenericClient, items: &[Item]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO items ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    );
    for it in items {
        let res = c
            .execute(
                sql.as_str(),
                &[
                    &it.name.as_str(),
                    &it.filename,
                    &it.content_type,
                    &int(it.size),
                    &it.sha256,
                    &it.state.as_str(),
                    &it.created_at,
                    &it.completed_at,
                    &it.expires_at,
                    &it.downloaded_at,
                    &it.locked,
                    &it.uploader.label,
                    &it.uploader.client_ip,
                    &it.uploader.user_agent,
                    &it.reference,
                    &it.comment,
                    &it.uploader.link,
                    &it.scan.as_ref().map(ScanState::word),
                    &it.scan.as_ref().and_then(ScanState::detail),
                ],
            )
            .await;
        match res {
            Ok(_) => {}
            // The primary key: names are unique across every instance sharing the database.
            Err(e) if violates(&e, "items_pkey") => {
                return Err(StoreError::NameTaken(it.name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn item_names(
    c: &Client,
    sql: &str,
    limit: usize,
    at: i64,
) -> Result<Vec<ItemName>, StoreError> {
    let rows = c.query(sql, &[&at, &int(limit as u64)]).await?;
    Ok(names_from_rows(&rows)?
        .iter()
        .filter_map(|n| ItemName::parse(n))
        .collect())
}

async fn name_set(c: &Client, sql: &str) -> Result<HashSet<String>, StoreError> {
    Ok(names_from_rows(&c.query(sql, &[]).await?)?
        .into_iter()
        .collect())
}

impl MetaStore for PgStore {
    fn insert(&self, items: &[Item], join: Option<&DeliveryJoin>) -> Result<(), StoreError> {
        let (items, join) = (items.to_vec(), join.cloned());
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            insert_items(&*tx, &items).await?;
            if let Some(link) = items.first().and_then(|i| i.uploader.link) {
                links::check_limits(&tx, link).await?;
            }
            if let (Some(join), Some(first)) = (&join, items.first()) {
                let names: Vec<&ItemName> = items.iter().map(|i| &i.name).collect();
                outbox::join(
                    &tx,
                    join,
                    &first.uploader,
                    first.reference.as_deref(),
                    &names,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn name_used(&self, name: &ItemName) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.run(move |c| async move {
            let found = c
                .query_opt("SELECT 1 FROM items WHERE name = $1", &[&name])
                .await?;
            Ok(found.is_some())
        })
    }

    fn get(&self, name: &ItemName) -> Result<Option<Item>, StoreError> {
        let name = name.to_string();
        self.run(move |c| async move {
            let sql = format!("SELECT {COLUMNS} FROM items WHERE name = $1 AND deleted_at IS NULL");
            c.query_opt(sql.as_str(), &[&name])
                .await?
                .as_ref()
                .map(item_from_row)
                .transpose()
        })
    }

    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        let query = query.clone();
        self.run(move |c| async move { listing::list(&c, &query).await })
    }

    fn list_by_name(
        &self,
        after: Option<&ItemName>,
        limit: u64,
        include_locked: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let after = after.map_or_else(String::new, ItemName::to_string);
        self.run(move |c| async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM items WHERE deleted_at IS NULL AND name > $1 AND ($3 OR NOT ({NOT_FOR_ALL}))
                 ORDER BY name LIMIT $2"
            );
            let rows = c
                .query(sql.as_str(), &[&after, &int(limit), &include_locked])
                .await?;
            items_from_rows(&rows)
        })
    }

    fn mark_deleted(&self, name: &ItemName, at: i64, by: &str) -> Result<bool, StoreError> {
        let (name, by) = (name.to_string(), by.to_string());
        self.run(move |c| async move {
            let n = c
                .execute(
                    "UPDATE items SET deleted_at = $2, deleted_by = $3 WHERE name = $1 AND deleted_at IS NULL",
                    &[&name, &at, &by],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn expired(&self, now: i64, limit: usize) -> Result<Vec<ItemName>, StoreError> {
        self.run(move |c| async move {
            item_names(
                &c,
                "SELECT name FROM items WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2",
                limit,
                now,
            )
            .await
        })
    }

    fn record_download(&self, name: &ItemName, at: i64) -> Result<(), StoreError> {
        let name = name.to_string();
        self.run(move |c| async move {
            c.execute(
                "UPDATE items SET downloaded_at = $2 WHERE name = $1",
                &[&name, &at],
            )
            .await?;
            Ok(())
        })
    }

    fn live_size(&self) -> Result<u64, StoreError> {
        self.run(|c| async move {
            let row = c
                .query_one(
                    "SELECT coalesce(sum(size), 0)::BIGINT FROM items WHERE deleted_at IS NULL",
                    &[],
                )
                .await?;
            Ok(count(row.try_get(0)?))
        })
    }

    fn live_count(&self) -> Result<u64, StoreError> {
        self.run(|c| async move {
            let row = c
                .query_one("SELECT count(*) FROM items WHERE deleted_at IS NULL", &[])
                .await?;
            Ok(count(row.try_get(0)?))
        })
    }

    fn live_names(&self) -> Result<HashSet<String>, StoreError> {
        self.run(|c| async move {
            name_set(&c, "SELECT name FROM items WHERE deleted_at IS NULL").await
        })
    }

    fn begin_upload(
        &self,
        item: &Item,
        tx_hash: &str,
        total: Option<u64>,
    ) -> Result<(), StoreError> {
        let (item, tx_hash) = (item.clone(), tx_hash.to_string());
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            insert_items(&*tx, std::slice::from_ref(&item)).await?;
            uploads::attach(&tx, &item.name, &tx_hash, total, item.created_at).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn find_upload(&self, tx_hash: &str) -> Result<Option<Transaction>, StoreError> {
        let key = tx_hash.to_string();
        self.run(move |c| async move { uploads::find(&**c, "tx_hash", &key).await })
    }

    fn upload(&self, name: &ItemName) -> Result<Option<Transaction>, StoreError> {
        let key = name.to_string();
        self.run(move |c| async move { uploads::find(&**c, "name", &key).await })
    }

    fn record_progress(
        &self,
        name: &ItemName,
        size: u64,
        total: Option<u64>,
        at: i64,
    ) -> Result<(), StoreError> {
        let name = name.clone();
        self.run(move |c| async move { uploads::progress(&c, &name, size, total, at).await })
    }

    fn complete_upload(
        &self,
        name: &ItemName,
        size: u64,
        sha256: &str,
        at: i64,
        join: Option<&DeliveryJoin>,
    ) -> Result<(), StoreError> {
        let (name, sha256, join) = (name.clone(), sha256.to_string(), join.cloned());
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            uploads::complete(&tx, &name, size, &sha256, at).await?;
            let sql = format!("SELECT {COLUMNS} FROM items WHERE name = $1");
            let item = item_from_row(&tx.query_one(sql.as_str(), &[&name.as_str()]).await?)?;
            if let Some(link) = item.uploader.link {
                links::check_limits(&tx, link).await?;
            }
            if let Some(join) = &join {
                outbox::join(
                    &tx,
                    join,
                    &item.uploader,
                    item.reference.as_deref(),
                    &[&name],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn stale_uploads(&self, idle_since: i64, limit: usize) -> Result<Vec<ItemName>, StoreError> {
        self.run(move |c| async move {
            item_names(
                &c,
                "SELECT name FROM items WHERE deleted_at IS NULL AND state = 'incomplete' AND updated_at <= $1 LIMIT $2",
                limit,
                idle_since,
            )
            .await
        })
    }

    fn incomplete_names(&self) -> Result<HashSet<String>, StoreError> {
        self.run(|c| async move {
            name_set(
                &c,
                "SELECT name FROM items WHERE deleted_at IS NULL AND state = 'incomplete'",
            )
            .await
        })
    }

    fn set_locked(&self, name: &ItemName, locked: bool) -> Result<(), StoreError> {
        let name = name.to_string();
        self.run(move |c| async move {
            c.execute(
                "UPDATE items SET locked = $2 WHERE name = $1",
                &[&name, &locked],
            )
            .await?;
            Ok(())
        })
    }

    fn modify(
        &self,
        name: &ItemName,
        filename: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        let filename = filename.map(str::to_string);
        let content_type = content_type.map(str::to_string);
        self.run(move |c| async move {
            c.execute(
                "UPDATE items SET filename = coalesce($2, filename), content_type = coalesce($3, content_type) WHERE name = $1",
                &[&name, &filename, &content_type],
            )
            .await?;
            Ok(())
        })
    }

    fn scanning(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.run(move |c| async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM items WHERE scan = 'scanning' AND state = 'complete'
                 AND deleted_at IS NULL ORDER BY completed_at, seq LIMIT $1"
            );
            items_from_rows(&c.query(sql.as_str(), &[&int(limit as u64)]).await?)
        })
    }

    fn set_scan(&self, name: &ItemName, state: &ScanState) -> Result<(), StoreError> {
        let (name, state) = (name.to_string(), state.clone());
        self.run(move |c| async move {
            c.execute(
                "UPDATE items SET scan = $2, scan_detail = $3 WHERE name = $1",
                &[&name, &state.word(), &state.detail()],
            )
            .await?;
            Ok(())
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| async move {
            c.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
    }

    fn shared_key(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, candidate) = (name.to_string(), candidate.to_vec());
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO shared_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate],
            )
            .await?;
            let row = c
                .query_one("SELECT value FROM shared_keys WHERE name = $1", &[&name])
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        self.hold_exclusive(name)
    }
}
