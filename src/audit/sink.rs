//! Where records go: the store (chained in one transaction per batch) and, with `audit_log`,
//! one JSON line per record appended to a file. A record that cannot be written (a full disk,
//! a broken store) is logged as a warning; the action it describes goes on regardless.

use super::{AuditEvent, AuditRecord};
use crate::store::{AuditStore, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The audit trail as handlers and the auth layer see it. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AuditStore>,
    file: Option<PathBuf>,
    /// Held from the store append to the file write, so the file's lines stay in id order.
    order: Mutex<()>,
}

impl Audit {
    /// Records to `store`, and to the JSON-lines file `file` if given. The file is created now
    /// (mode 0600) so that a path sfx cannot write stops the start instead of every record.
    pub fn open(store: Arc<dyn AuditStore>, file: Option<PathBuf>) -> std::io::Result<Audit> {
        if let Some(path) = &file {
            open_log(path)?;
        }
        Ok(Audit {
            inner: Arc::new(Inner {
                store,
                file,
                order: Mutex::new(()),
            }),
        })
    }

    /// Records one event (on the blocking pool). Never fails: problems are logged.
    pub async fn record(&self, event: AuditEvent) {
        self.record_all(vec![event]).await;
    }

    /// Records events in one transaction (e.g. every file of one form post).
    pub async fn record_all(&self, events: Vec<AuditEvent>) {
        if events.is_empty() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        // The blocking task runs to its end even if this request is dropped meanwhile, so a
        // client that hangs up cannot keep its action out of the trail.
        if let Err(e) = tokio::task::spawn_blocking(move || inner.append(&events)).await {
            tracing::warn!(error = %e, "audit record task failed");
        }
    }

    /// [`Audit::record`] for code that is not async (start-up).
    pub fn record_blocking(&self, event: AuditEvent) {
        self.inner.append(std::slice::from_ref(&event));
    }
}

impl Inner {
    fn append(&self, events: &[AuditEvent]) {
        let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let records = match self.store.append_audit(&now(), events) {
            Ok(r) => r,
            Err(e) => return warn_lost(events, &e),
        };
        if let Some(path) = &self.file
            && let Err(e) = write_lines(path, &records)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not write audit records to audit_log");
        }
    }
}

fn warn_lost(events: &[AuditEvent], e: &StoreError) {
    for ev in events {
        tracing::warn!(kind = ev.kind.as_str(), label = %ev.label, ip = %ev.client_ip,
            item = %ev.item, error = %e, "could not record an audit event");
    }
}

/// Opened for every batch: after the file is rotated (renamed away), the next record creates
/// a new one. `O_APPEND` keeps each line whole even with another writer.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

fn write_lines(path: &Path, records: &[AuditRecord]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(records.len() * 400);
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    open_log(path)?.write_all(&buf)
}

/// RFC 3339 UTC with milliseconds.
fn now() -> String {
    match jiff::Timestamp::from_millisecond(crate::now_ms()) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => jiff::Timestamp::UNIX_EPOCH.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_has_milliseconds() {
        let t = super::now();
        assert_eq!(t.len(), "2026-11-26T03:41:08.123Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
