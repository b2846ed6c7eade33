//! The support console's pages: the file list with its filters and bulk actions, the bulk
//! delete confirmation, and the deliveries (what one uploader sent in one go, and its alerts).

use super::{ItemView, Nav, format_time, human_size};
use crate::store::{AlertRow, DeliverySummary};
use askama::Template;

/// A sortable column header: its label, link, and the arrow when it is the current order.
pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub arrow: &'static str,
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub nav: Nav,
    pub items: Vec<ItemView>,
    pub f: FilterView,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// This page's own URL, where bulk actions come back to.
    pub here: String,
    pub by_time: SortLink,
    pub by_size: SortLink,
    pub by_name: SortLink,
    pub can_read: bool,
    pub can_delete: bool,
    /// After a bulk delete: how many were deleted.
    pub deleted: Option<u64>,
}

/// The filter form's current values.
pub struct FilterView {
    pub q: String,
    pub filename: String,
    pub reference: String,
    pub sha256: String,
    pub client: String,
    pub uploader: String,
    pub from: String,
    pub to: String,
    pub sort: &'static str,
    pub order: &'static str,
    pub advanced: bool,
    pub filtered: bool,
}

#[derive(Template)]
#[template(path = "bulk_delete.html")]
pub struct BulkDeletePage {
    pub nav: Nav,
    pub items: Vec<ItemView>,
    /// Requested names that are gone or not visible.
    pub missing: usize,
    pub next: String,
}

/// A delivery as the console shows it.
pub struct DeliveryView {
    pub id: i64,
    pub uploader: String,
    pub client_ip: String,
    pub user_agent: String,
    pub reference: String,
    pub opened: String,
    pub closed: String,
    pub files: u64,
    pub size_human: String,
    pub deleted: u64,
    pub status: String,
    pub alerts: Vec<AlertView>,
}

impl From<&DeliverySummary> for DeliveryView {
    fn from(d: &DeliverySummary) -> Self {
        DeliveryView {
            id: d.id,
            uploader: d.uploader.label.clone(),
            client_ip: d.uploader.client_ip.clone(),
            user_agent: d.uploader.user_agent.clone(),
            reference: d.reference.clone().unwrap_or_default(),
            opened: format_time(Some(d.opened_at)),
            closed: d
                .closed_at
                .map_or_else(|| "open".into(), |t| format_time(Some(t))),
            files: d.files,
            size_human: human_size(d.bytes),
            deleted: d.deleted,
            status: d.status.label(),
            alerts: d.alerts.iter().map(AlertView::from).collect(),
        }
    }
}

/// One channel's alert.
pub struct AlertView {
    pub channel: String,
    pub state: String,
    pub attempts: u32,
    pub created: String,
    pub next_attempt: String,
    pub delivered: String,
    pub last_error: String,
}

impl From<&AlertRow> for AlertView {
    fn from(a: &AlertRow) -> Self {
        let pending = matches!(a.state.as_str(), "pending" | "failing");
        AlertView {
            channel: a.channel.clone(),
            state: a.state.clone(),
            attempts: a.attempts,
            created: format_time(Some(a.created_at)),
            next_attempt: if pending {
                format_time(Some(a.next_attempt_at))
            } else {
                String::new()
            },
            delivered: format_time(a.delivered_at),
            last_error: a.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "deliveries.html")]
pub struct DeliveriesPage {
    pub nav: Nav,
    pub deliveries: Vec<DeliveryView>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "delivery.html")]
pub struct DeliveryPage {
    pub nav: Nav,
    pub d: DeliveryView,
    pub items: Vec<ItemView>,
    /// Names of its items deleted since (the alert listed them).
    pub gone: Vec<String>,
    pub can_read: bool,
    /// Every live item can be downloaded (none is being scanned or quarantined).
    pub zip_ok: bool,
}
