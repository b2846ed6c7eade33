//! What an operator asks of the item listing (filters, order, page) and of the deliveries
//! view. Plain values: the page and API adapters parse their parameters into these, each store
//! turns them into its own query.

use super::outbox::AlertStatus;
use super::{Item, Uploader};

/// Which column the listing is ordered by (ties broken by arrival, newest first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Time,
    Size,
    /// The filename, case-insensitively.
    Name,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "time" => Some(Sort::Time),
            "size" => Some(Sort::Size),
            "name" => Some(Sort::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Time => "time",
            Sort::Size => "size",
            Sort::Name => "name",
        }
    }
}

/// Every filter narrows the result (they combine with AND); `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Case-insensitive substring of the filename or the reference.
    pub search: Option<String>,
    /// Case-insensitive substring of the filename.
    pub filename: Option<String>,
    /// Case-insensitive substring of the reference.
    pub reference: Option<String>,
    /// Lower-case hex prefix of the SHA-256.
    pub sha256: Option<String>,
    /// The client address, or its start (`10.1.` matches a network).
    pub client: Option<String>,
    /// The uploader's credential label, exactly (`link` for upload links' uploads).
    pub uploader: Option<String>,
    /// Arrived at or after (Unix seconds).
    pub since: Option<i64>,
    /// Arrived before (Unix seconds).
    pub until: Option<i64>,
    pub sort: Sort,
    pub ascending: bool,
    pub offset: u64,
    pub limit: u64,
    /// Locked and infected (quarantined) items are for admins only.
    pub include_locked: bool,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Item>,
    /// Items matching the query, over all pages.
    pub total: u64,
}

/// The alert state of an item's delivery, and which delivery it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAlert {
    pub delivery: i64,
    pub status: AlertStatus,
}

/// One channel's alert of a delivery, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub channel: String,
    /// `pending`, `failing`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// A delivery in the deliveries view: who sent what, and what became of its alert.
#[derive(Debug, Clone)]
pub struct DeliverySummary {
    pub id: i64,
    pub uploader: Uploader,
    pub reference: Option<String>,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// Its items still live, and their total size.
    pub files: u64,
    pub bytes: u64,
    /// Its items deleted since.
    pub deleted: u64,
    pub status: AlertStatus,
    pub alerts: Vec<AlertRow>,
}

#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliverySummary>,
    pub total: u64,
}
