//! A one-shot upload's ledger entry kept fresh for as long as the upload lives (being written,
//! or staged while the rest of its form arrives): the sweeper takes entries idle for
//! `leftover_age` (an hour) for a crash's leftovers, and a 100 GB upload on a slow link takes
//! longer than that.

use super::S3Blobs;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Stops touching when dropped.
pub(super) struct KeepAlive(#[allow(dead_code)] DropGuard);

impl KeepAlive {
    pub(super) fn start(blobs: &S3Blobs, key: &str) -> KeepAlive {
        let token = CancellationToken::new();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (stop, blobs, key) = (token.clone(), blobs.clone(), key.to_string());
            rt.spawn(async move {
                // Well inside the leftover age: a missed touch or two changes nothing.
                let mut tick = tokio::time::interval(blobs.inner.leftover_age / 6);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let k = key.clone();
                    if let Err(e) = blobs
                        .ledger(move |l| l.ledger_touch(&k, crate::now()))
                        .await
                    {
                        tracing::warn!(key, error = %e, "could not mark an upload as in progress");
                    }
                }
            });
        }
        KeepAlive(token.drop_guard())
    }
}
