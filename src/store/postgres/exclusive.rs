//! [`MetaStore::try_exclusive`](crate::store::MetaStore::try_exclusive) on PostgreSQL: a
//! session-level advisory lock held by one pooled connection for as long as the guard lives.
//! An instance that dies closes its connection, and the server lets go of the lock with it.

use super::PgStore;
use crate::store::{Exclusive, StoreError};
use deadpool_postgres::Object;

/// The first key of sfx's two-key advisory locks (the second is the name's hash).
const EXCLUSIVE_LOCK: i32 = 0x5346_5803;

impl PgStore {
    pub(super) fn hold_exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Backend("the store is closed".into()));
        };
        let handle = runtime.handle().clone();
        let name = name.to_string();
        let held = self.run(move |c| async move {
            let row = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&EXCLUSIVE_LOCK, &name],
                )
                .await?;
            let got: bool = row.try_get(0)?;
            Ok(got.then_some((c, name)))
        })?;
        Ok(held.map(|(conn, name)| {
            Exclusive::new(Held {
                conn: Some(conn),
                name,
                handle,
            })
        }))
    }
}

struct Held {
    conn: Option<Object>,
    name: String,
    handle: tokio::runtime::Handle,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(conn), name) = (self.conn.take(), std::mem::take(&mut self.name)) else {
            return;
        };
        self.handle.spawn(async move {
            let unlocked = conn
                .query_one(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    &[&EXCLUSIVE_LOCK, &name],
                )
                .await
                .and_then(|row| row.try_get::<_, bool>(0));
            if !matches!(unlocked, Ok(true)) {
                // Not back to the pool with the lock perhaps still held: closing the connection
                // lets go of it whatever happened.
                drop(Object::take(conn));
            }
        });
    }
}
