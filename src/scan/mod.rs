//! Antivirus: every finished item is streamed to clamd before operators may download it.
//!
//! The metadata store is the queue: items are recorded `scanning` in the transaction that
//! completes them, and [`Scanner::run`] scans whatever is `scanning` (so items a crash or a
//! restart interrupted are simply scanned again). At most `concurrency` scans run at once;
//! when clamd cannot be reached a scan is retried with a doubling delay, and after the last
//! attempt the item is `not scanned: clamd unavailable …` — never clean.

mod clamd;
mod state;

pub use clamd::{Clamd, ClamdAddr, ClamdError, Verdict, parse_reply};
pub use state::ScanState;

use crate::audit::{Audit, AuditEvent};
use crate::blobs::BlobStore;
use crate::items::ItemName;
use crate::store::{Item, MetaStore, StoreError, blocking};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Items fetched per look at the queue.
const BATCH: usize = 64;
/// A look at the queue at least this often, even without a wake-up.
const POLL: Duration = Duration::from_secs(30);

/// The `[antivirus]` configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub clamd: ClamdAddr,
    /// Attempts per item while clamd cannot be reached (at least 1).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub retry_delay: Duration,
    /// For each step of talking to clamd (connect, each write, the answer).
    pub timeout: Duration,
    /// Scans at once.
    pub concurrency: usize,
}

/// What a verdict makes of an item.
pub fn state_for(verdict: Verdict) -> ScanState {
    match verdict {
        Verdict::Clean => ScanState::Clean,
        Verdict::Infected(sig) => ScanState::Infected(sig),
        Verdict::OverLimit(what) => {
            ScanState::NotScanned(format!("over clamd's size limit ({what})"))
        }
    }
}

pub struct Scanner<B: BlobStore> {
    store: Arc<dyn MetaStore>,
    blobs: B,
    audit: Audit,
    settings: Settings,
    clamd: Clamd,
    /// Notified when items were queued (or a scan ended).
    wake: Arc<Notify>,
    in_flight: Mutex<HashSet<ItemName>>,
}

impl<B: BlobStore> Scanner<B> {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: B,
        audit: Audit,
        settings: Settings,
        wake: Arc<Notify>,
    ) -> Arc<Scanner<B>> {
        let clamd = Clamd {
            addr: settings.clamd.clone(),
            timeout: settings.timeout,
        };
        Arc::new(Scanner {
            store,
            blobs,
            audit,
            settings,
            clamd,
            wake,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<ItemName>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scans queued items until shutdown. A scan cut short by shutdown stays `scanning` and is
    /// done again at the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        tracing::info!(clamd = %self.settings.clamd, "antivirus scanning on");
        loop {
            if let Err(e) = self.start_scans(&permits, &shutdown).await {
                tracing::warn!(error = %e, "antivirus: cannot read the scan queue");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => break,
            }
        }
    }

    async fn start_scans(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        if permits.available_permits() == 0 {
            return Ok(());
        }
        let queued = blocking(&self.store, |s| s.scanning(BATCH)).await?;
        for item in queued {
            if self.in_flight().contains(&item.name) {
                continue;
            }
            let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
                break;
            };
            self.in_flight().insert(item.name.clone());
            let (this, stop) = (Arc::clone(self), shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = this.scan(&item) => {}
                    () = stop.cancelled() => {}
                }
                this.in_flight().remove(&item.name);
                drop(permit);
                this.wake.notify_one();
            });
        }
        Ok(())
    }

    /// Scans one item, with retries, and records the outcome.
    async fn scan(&self, item: &Item) {
        let name = &item.name;
        let attempts = self.settings.attempts.max(1);
        let mut delay = self.settings.retry_delay;
        let mut attempt = 1;
        let state = loop {
            let data = match self.blobs.read_range(name, 0, item.size).await {
                Ok(d) => d,
                // Deleted meanwhile: nothing to record.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) => break ScanState::NotScanned(format!("cannot read the item: {e}")),
            };
            match self.clamd.scan(data).await {
                Ok(verdict) => break state_for(verdict),
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(item = %name, attempt, error = %e, retry_in = ?delay, "antivirus: scan failed; will retry");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(e @ ClamdError::Source(_)) => break ScanState::NotScanned(e.to_string()),
                Err(e) => {
                    break ScanState::NotScanned(format!(
                        "clamd unavailable after {attempts} attempt{} ({e})",
                        if attempts == 1 { "" } else { "s" }
                    ));
                }
            }
        };
        let (n, s) = (name.clone(), state.clone());
        if let Err(e) = blocking(&self.store, move |st| st.set_scan(&n, &s)).await {
            // Left `scanning`: scanned again later (or at the next start).
            tracing::error!(item = %name, error = %e, "antivirus: cannot record a scan result");
            return;
        }
        match &state {
            ScanState::Infected(sig) => {
                tracing::warn!(item = %name, filename = ?item.filename, signature = %sig, "antivirus: infected item quarantined")
            }
            ScanState::NotScanned(why) => {
                tracing::warn!(item = %name, why = %why, "antivirus: item not scanned")
            }
            _ => tracing::info!(item = %name, "antivirus: clean"),
        }
        self.audit.record(AuditEvent::scanned(name, &state)).await;
    }
}
