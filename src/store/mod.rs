//! Item metadata. The [`MetaStore`] trait is what the rest of sfx sees; [`SqliteStore`] is the
//! embedded implementation, [`PgStore`] the shared one (`[metadata] url`, several instances).
//!
//! The trait is synchronous on purpose: implementations block, and async callers go through
//! [`blocking`], which runs the call on tokio's blocking pool.

mod audit;
#[cfg(test)]
pub(crate) mod conformance;
pub mod ledger;
mod links;
mod outbox;
mod postgres;
mod query;
mod sql;
mod sqlite;

pub use audit::{AuditPage, AuditQuery, AuditStore};
pub use ledger::Ledger;
pub use links::LinkStore;
pub use outbox::{AlertOutcome, AlertStatus, AlertTask, Delivery, DeliveryJoin, Outbox};
pub use postgres::{PgStore, redact_url};
pub use query::{AlertRow, DeliveryPage, DeliverySummary, ItemAlert, ListPage, ListQuery, Sort};
pub use sqlite::SqliteStore;

use crate::items::ItemName;
use crate::scan::ScanState;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("item name {0} is already taken")]
    NameTaken(String),
    #[error("upload {0} was deleted or completed meanwhile")]
    Gone(String),
    /// The database cannot grow: its disk is full.
    #[error("metadata store: the disk is full")]
    DiskFull,
    #[error("metadata store: {0}")]
    Backend(String),
    /// The database cannot be reached (PostgreSQL down, the network, no free connection in
    /// time): nothing was changed, and a retry later may succeed.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// The upload link's limits or revocation refuse the items (checked as they are committed).
    #[error("{0}")]
    LinkRefused(crate::links::Refusal),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Still receiving data (resumable uploads); never downloadable.
    Incomplete,
    Complete,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Incomplete => "incomplete",
            ItemState::Complete => "complete",
        }
    }
}

/// Who sent an item: the label of the secret used, the client address and user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploader {
    pub label: String,
    pub client_ip: String,
    pub user_agent: String,
    /// The upload link it came through (see [`crate::links`]).
    pub link: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: ItemName,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Lower-case hex SHA-256; present whenever the item is complete.
    pub sha256: String,
    pub state: ItemState,
    /// Unix seconds.
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// `None`: kept forever.
    pub expires_at: Option<i64>,
    pub downloaded_at: Option<i64>,
    pub locked: bool,
    pub uploader: Uploader,
    pub reference: Option<String>,
    pub comment: Option<String>,
    /// The antivirus state; `None` when antivirus is off (or was, when the item arrived).
    pub scan: Option<ScanState>,
}

impl Item {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Quarantined by the antivirus scan.
    pub fn is_infected(&self) -> bool {
        self.scan.as_ref().is_some_and(ScanState::is_infected)
    }
}

/// A resumable upload: its (possibly still incomplete) item and its declared length (`None`
/// until the client tells it: tus `Upload-Defer-Length`, IETF without `Upload-Length`).
#[derive(Debug, Clone)]
pub struct Transaction {
    pub item: Item,
    pub total: Option<u64>,
    pub updated_at: i64,
}

pub trait MetaStore: Outbox + AuditStore + LinkStore + Ledger + Send + Sync {
    /// Makes items visible, all or none (one transaction), joining them to a delivery.
    fn insert(&self, items: &[Item], join: Option<&DeliveryJoin>) -> Result<(), StoreError>;
    /// True if the name was ever used (deleted names are never handed out again).
    fn name_used(&self, name: &ItemName) -> Result<bool, StoreError>;
    /// A live (not deleted) item.
    fn get(&self, name: &ItemName) -> Result<Option<Item>, StoreError>;
    /// Live items, newest first.
    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError>;
    /// Live items in name order after `after`: a stable way to walk every item in pages.
    fn list_by_name(
        &self,
        after: Option<&ItemName>,
        limit: u64,
        include_locked: bool,
    ) -> Result<Vec<Item>, StoreError>;
    /// Marks an item deleted; false if it was not live.
    fn mark_deleted(&self, name: &ItemName, at: i64, by: &str) -> Result<bool, StoreError>;
    /// Live items whose expiry is at or before `now`.
    fn expired(&self, now: i64, limit: usize) -> Result<Vec<ItemName>, StoreError>;
    fn record_download(&self, name: &ItemName, at: i64) -> Result<(), StoreError>;
    /// Total size of all live items, complete or not.
    fn live_size(&self) -> Result<u64, StoreError>;
    /// Items not deleted (complete or in progress).
    fn live_count(&self) -> Result<u64, StoreError>;
    /// Names of all live items (start-up uses it to find orphaned files).
    fn live_names(&self) -> Result<HashSet<String>, StoreError>;
    /// Creates an incomplete item for a resumable upload, found again by `tx_hash`.
    fn begin_upload(
        &self,
        item: &Item,
        tx_hash: &str,
        total: Option<u64>,
    ) -> Result<(), StoreError>;
    /// The upload (complete or not, but not deleted) of a transaction token's hash.
    fn find_upload(&self, tx_hash: &str) -> Result<Option<Transaction>, StoreError>;
    /// The upload of a live item, by name.
    fn upload(&self, name: &ItemName) -> Result<Option<Transaction>, StoreError>;
    /// Records the bytes durably stored so far (`size`) of an incomplete item.
    fn record_progress(
        &self,
        name: &ItemName,
        size: u64,
        total: Option<u64>,
        at: i64,
    ) -> Result<(), StoreError>;
    /// Makes an incomplete item complete, with its final size and SHA-256, joining it to a
    /// delivery in the same transaction.
    fn complete_upload(
        &self,
        name: &ItemName,
        size: u64,
        sha256: &str,
        at: i64,
        join: Option<&DeliveryJoin>,
    ) -> Result<(), StoreError>;
    /// Incomplete items without activity since `idle_since`.
    fn stale_uploads(&self, idle_since: i64, limit: usize) -> Result<Vec<ItemName>, StoreError>;
    /// Names of all live incomplete items (start-up matches them with partial files).
    fn incomplete_names(&self) -> Result<HashSet<String>, StoreError>;
    fn set_locked(&self, name: &ItemName, locked: bool) -> Result<(), StoreError>;
    /// Renames or retypes an item (`None` keeps the current value).
    fn modify(
        &self,
        name: &ItemName,
        filename: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Live complete items waiting for their antivirus scan, oldest first.
    fn scanning(&self, limit: usize) -> Result<Vec<Item>, StoreError>;
    /// Records an item's antivirus state.
    fn set_scan(&self, name: &ItemName, state: &ScanState) -> Result<(), StoreError>;
    fn ping(&self) -> Result<(), StoreError>;
    /// The key stored under `name`, storing `candidate` first if there is none: every instance
    /// sharing the store gets the one the first of them stored (the session-signing key).
    fn shared_key(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Holds `name` exclusively among the instances sharing this store until the guard is
    /// dropped, or `None` while another holds it (the sweeper: one at a time). The hold dies
    /// with the instance holding it.
    fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError>;
    /// Keeps the query planner's statistics current (run by the sweeper each tick; cheap when
    /// little changed). PostgreSQL's autovacuum does it by itself.
    fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A hold taken by [`MetaStore::try_exclusive`]; let go when dropped.
pub struct Exclusive(#[allow(dead_code)] Box<dyn Send>);

impl Exclusive {
    pub fn new(hold: impl Send + 'static) -> Exclusive {
        Exclusive(Box::new(hold))
    }
}

/// Runs a store call on the blocking pool.
pub async fn blocking<T, F>(store: &Arc<dyn MetaStore>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn MetaStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
}
