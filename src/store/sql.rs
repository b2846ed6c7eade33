//! SQL text and pure helpers that the SQLite and PostgreSQL stores share word for word.

use super::{AlertRow, AlertStatus};

/// `%`/`_` in a user's search must match themselves.
pub(crate) fn like_pattern(search: &str) -> String {
    let mut p = String::with_capacity(search.len() + 2);
    p.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A delivery is not closed (its alert not sent) while one of its live items is being scanned:
/// the alert tells each file's scan result.
pub(crate) const SCANS_DONE: &str =
    "NOT EXISTS (SELECT 1 FROM items i WHERE i.delivery_id = deliveries.id
    AND i.scan = 'scanning' AND i.deleted_at IS NULL)";

/// One line for a delivery's alert over all its channels: the worst state wins.
pub(crate) fn summarize(closed: Option<i64>, scans_done: bool, alerts: &[AlertRow]) -> AlertStatus {
    let error = |state: &str| {
        alerts
            .iter()
            .find(|a| a.state == state)
            .map(|a| a.last_error.clone().unwrap_or_default())
    };
    if closed.is_none() && !scans_done {
        AlertStatus::Scanning
    } else if closed.is_none() {
        AlertStatus::Collecting
    } else if alerts.is_empty() {
        AlertStatus::NoChannel
    } else if let Some(e) = error("failed") {
        AlertStatus::Failed(e)
    } else if let Some(e) = error("failing") {
        AlertStatus::Failing(e)
    } else if alerts.iter().all(|a| a.state == "delivered") {
        AlertStatus::Delivered
    } else {
        AlertStatus::Pending
    }
}

/// The tail bytes of a ledger from `from` to `to` out of its rows `(start, bytes)` in order;
/// a gap or an overlap means the ledger is damaged.
pub(crate) fn join_tail(
    key: &str,
    from: u64,
    to: u64,
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<Vec<u8>, super::StoreError> {
    let mut tail = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
    for (start, bytes) in rows {
        if u64::try_from(start).ok() != Some(from + tail.len() as u64) {
            break;
        }
        tail.extend_from_slice(&bytes);
    }
    if from + tail.len() as u64 != to {
        return Err(super::StoreError::Backend(format!(
            "ledger of {key}: the tail from {from} to {to} is incomplete"
        )));
    }
    Ok(tail)
}
