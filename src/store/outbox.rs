//! Deliveries and their alerts: the outbox that makes "support is told" durable.
//!
//! Every completed item joins a *delivery* (what one uploader sends in one go) in the same
//! transaction that makes it visible. A delivery stays open while more items arrive within the
//! batch window; once it is due, closing it creates one alert row per channel. Alert rows are
//! retried until delivered or given up, and survive restarts.

use super::{DeliveryPage, Item, ItemAlert, StoreError, Uploader};
use std::collections::HashMap;

/// How a newly completed item joins a delivery.
#[derive(Debug, Clone)]
pub struct DeliveryJoin {
    /// Items with the same key (credential label, client IP, reference) join one delivery.
    pub batch_key: String,
    /// Unix milliseconds.
    pub now_ms: i64,
    /// Milliseconds of quiet after which the delivery is due.
    pub window_ms: i64,
    /// The idempotency key to use if this item opens a new delivery.
    pub new_idempotency_key: String,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    /// Carried by every attempt to every channel, so receivers can drop duplicates.
    pub idempotency_key: String,
    pub uploader: Uploader,
    pub reference: Option<String>,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// Its items (deleted ones included: the alert still lists what arrived).
    pub items: Vec<Item>,
    /// Names of those items deleted (or expired) since.
    pub deleted: Vec<String>,
}

/// One channel's alert for one delivery, due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTask {
    pub delivery_id: i64,
    pub channel: String,
    pub attempts: u32,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub enum AlertOutcome {
    Delivered,
    Retry { error: String, next_attempt_at: i64 },
    GaveUp { error: String },
}

/// What operators see about the alert of an item's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertStatus {
    /// The delivery is still open (more files may join within the batch window).
    Collecting,
    /// Due, but a file of it is still being scanned for viruses: the alert tells the results.
    Scanning,
    Pending,
    Delivered,
    /// Retrying; the last error.
    Failing(String),
    /// Given up after `alert_retry_for`; the last error.
    Failed(String),
    /// Closed with no channel that wanted it.
    NoChannel,
}

impl AlertStatus {
    pub fn label(&self) -> String {
        match self {
            AlertStatus::Collecting => "waiting for more files".into(),
            AlertStatus::Scanning => "waiting for the antivirus scan".into(),
            AlertStatus::Pending => "pending".into(),
            AlertStatus::Delivered => "delivered".into(),
            AlertStatus::Failing(e) => format!("failing: {e}"),
            AlertStatus::Failed(e) => format!("failed: {e}"),
            AlertStatus::NoChannel => "no alert channel".into(),
        }
    }
}

pub trait Outbox: Send + Sync {
    /// Closes deliveries due at `now_ms`, creating a pending alert for every channel whose label
    /// filter accepts the uploader. `channels` are (name, only_labels). Returns how many closed.
    fn close_due_deliveries(
        &self,
        now_ms: i64,
        channels: &[(String, Vec<String>)],
    ) -> Result<usize, StoreError>;
    /// Takes up to `limit` alerts of `channel` due for an attempt, and leases them until
    /// `lease_until` (they are not due again meanwhile; a crash mid-attempt only delays them).
    fn claim_alerts(
        &self,
        now: i64,
        channel: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<AlertTask>, StoreError>;
    /// Makes every alert still to send due at `now`: at start-up no attempt can be in flight (the
    /// data-directory lock is ours), so an alert leased by a process that died is not left
    /// waiting for its lease to run out.
    fn release_alert_leases(&self, now: i64) -> Result<usize, StoreError>;
    /// When (Unix milliseconds) the next alert attempt or delivery closing is due, if any.
    fn next_alert_due_ms(&self) -> Result<Option<i64>, StoreError>;
    fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError>;
    fn record_alert(
        &self,
        task: &AlertTask,
        outcome: &AlertOutcome,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Alert status of the deliveries of these items (by item name).
    fn alert_status(&self, names: &[String]) -> Result<HashMap<String, ItemAlert>, StoreError>;
    /// Deliveries, newest first, with their live items' count and size and each channel's
    /// alert. Without `include_locked`, locked and quarantined items are not counted.
    fn deliveries(
        &self,
        offset: u64,
        limit: u64,
        include_locked: bool,
    ) -> Result<DeliveryPage, StoreError>;
    /// Each channel's alert of one delivery.
    fn delivery_alerts(&self, id: i64) -> Result<(AlertStatus, Vec<super::AlertRow>), StoreError>;
    /// When the oldest alert still being retried was created, and how many alerts were given
    /// up since `gave_up_since`.
    fn alert_trouble(&self, gave_up_since: i64) -> Result<(Option<i64>, u64), StoreError>;
    /// How many alerts are still to send (pending or being retried), and when the oldest of
    /// them was created.
    fn alert_backlog(&self) -> Result<(u64, Option<i64>), StoreError>;
}
