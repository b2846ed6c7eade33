//! Item metadata formatted for people.

use crate::scan::ScanState;
use crate::store::Item;
use serde::Serialize;

/// `2026-11-26 03:00:00 UTC`, or `never` for `None`.
pub fn format_time(unix: Option<i64>) -> String {
    match unix.map(jiff::Timestamp::from_second) {
        None => "never".into(),
        Some(Ok(t)) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Some(Err(_)) => "invalid time".into(),
    }
}

pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// One line of an upload receipt (HTML, text and JSON share it).
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptItem {
    pub name: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(rename = "type")]
    pub content_type: String,
    /// Unix seconds; `null` when kept forever.
    pub expires_at: Option<i64>,
    /// Human form of `expires_at`.
    pub expires: String,
    /// The item page (for operators).
    pub url: String,
}

impl From<&Item> for ReceiptItem {
    fn from(it: &Item) -> Self {
        ReceiptItem {
            name: it.name.to_string(),
            filename: it.filename.clone(),
            size: it.size,
            sha256: it.sha256.clone(),
            content_type: it.content_type.clone(),
            expires_at: it.expires_at,
            expires: format_time(it.expires_at),
            url: format!("/{}", it.name),
        }
    }
}

/// An item as operators see it in the listing and on its page.
pub struct ItemView {
    pub name: String,
    pub filename: String,
    pub size: u64,
    pub size_human: String,
    pub sha256: String,
    pub sha256_short: String,
    pub content_type: String,
    pub uploaded: String,
    pub expires: String,
    pub downloaded: String,
    pub state: &'static str,
    pub uploader: String,
    pub client_ip: String,
    pub user_agent: String,
    pub reference: String,
    pub comment: String,
    /// Alert state of the item's delivery, and the delivery (filled in by the handler).
    pub alert: String,
    pub delivery: Option<i64>,
    /// The antivirus result (`clean`, `infected: …`); empty when antivirus is off.
    pub scan: String,
    /// `scanning` or `infected`: the download link is withheld (or needs the override).
    pub scanning: bool,
    pub infected: bool,
}

impl From<&Item> for ItemView {
    fn from(it: &Item) -> Self {
        ItemView {
            name: it.name.to_string(),
            filename: it.filename.clone(),
            size: it.size,
            size_human: human_size(it.size),
            sha256: it.sha256.clone(),
            sha256_short: it.sha256.chars().take(16).collect(),
            content_type: it.content_type.clone(),
            uploaded: format_time(Some(it.created_at)),
            expires: format_time(it.expires_at),
            downloaded: format_time(it.downloaded_at),
            state: if it.locked {
                "locked"
            } else {
                it.state.as_str()
            },
            uploader: it.uploader.label.clone(),
            client_ip: it.uploader.client_ip.clone(),
            user_agent: it.uploader.user_agent.clone(),
            reference: it.reference.clone().unwrap_or_default(),
            comment: it.comment.clone().unwrap_or_default(),
            alert: String::new(),
            delivery: None,
            scan: it.scan.as_ref().map(ScanState::label).unwrap_or_default(),
            scanning: it.scan == Some(ScanState::Scanning),
            infected: it.is_infected(),
        }
    }
}
