//! Storage of the audit trail: append-only, chained records (see [`crate::audit`]).

use super::StoreError;
use crate::audit::{AuditEvent, AuditRecord};

/// Which records an operator asks for: exact filters (empty = any), newest first, one page
/// before or after a record id (keyset paging: appends never shift a page).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub item: Option<String>,
    pub label: Option<String>,
    pub kind: Option<String>,
    /// Only records older than this id (the "older" link).
    pub before: Option<i64>,
    /// Only records newer than this id (the "newer" link); ignored with `before`.
    pub after: Option<i64>,
    pub limit: u64,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Records matching the filters, over all pages.
    pub total: u64,
    /// Whether matching records exist past either end of this page.
    pub older: bool,
    pub newer: bool,
}

pub trait AuditStore: Send + Sync {
    /// Seals `events` (all stamped `time`) onto the end of the chain, in one transaction that
    /// also reads the chain's end, so concurrent appends (even from other processes) chain
    /// correctly.
    fn append_audit(
        &self,
        time: &str,
        events: &[AuditEvent],
    ) -> Result<Vec<AuditRecord>, StoreError>;
    fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Up to `limit` records with ids above `after`, in id order (for verification).
    fn audit_after(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// The highest record id ever handed out (0 for none), even if that record is gone.
    fn audit_high_water(&self) -> Result<i64, StoreError>;
}
