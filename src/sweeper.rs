//! Expiry is enforced in the background, not only when an item is touched; abandoned
//! incomplete uploads are removed after `incomplete_ttl` without activity.

use crate::audit::AuditEvent;
use crate::state::State;
use crate::store::blocking;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 500;

pub async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // One sweeper at a time among instances sharing a store; the others skip this tick.
        let hold = match blocking(&state.store, |s| s.try_exclusive("sweeper")).await {
            Ok(Some(hold)) => hold,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep skipped");
                continue;
            }
        };
        match sweep_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired items removed"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
        if let Err(e) = blocking(&state.store, |s| s.maintain()).await {
            tracing::warn!(error = %e, "store maintenance failed");
        }
        if let crate::blobs::Blobs::S3(s3) = &state.blobs
            && s3.clean_up_due()
        {
            clean_object_store(&state, s3).await;
        }
        drop(hold);
    }
}

/// Removes every item whose expiry has passed, and every incomplete upload idle for longer than
/// `incomplete_ttl`; returns how many.
pub async fn sweep_once(state: &State) -> Result<usize, crate::store::StoreError> {
    let ttl = i64::try_from(state.config.incomplete_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut removed = 0;
    loop {
        let now = crate::now();
        let idle_since = now.saturating_sub(ttl);
        let names = blocking(&state.store, move |s| {
            let mut names = s.expired(now, BATCH)?;
            names.extend(s.stale_uploads(idle_since, BATCH)?);
            Ok(names)
        })
        .await?;
        let batch = names.len();
        for name in names {
            if state.delete_item(&name, "expiry").await? {
                removed += 1;
                state.audit.record(AuditEvent::expired(&name)).await;
            }
        }
        if batch < BATCH {
            return Ok(removed);
        }
    }
}

/// What crashes left in the object store (see `S3Blobs::clean_up`), at most once per
/// `leftover_age`, by the instance sweeping: it only touches what no writer touched for as
/// long, so uploads in progress on other instances are left alone.
async fn clean_object_store(state: &State, s3: &crate::blobs::S3Blobs) {
    let names = blocking(&state.store, |s| {
        Ok((s.live_names()?, s.incomplete_names()?))
    })
    .await;
    let (live, incomplete) = match names {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "object store clean-up skipped");
            return;
        }
    };
    match s3.clean_up(&live, &incomplete).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(removed = n, "removed leftovers in the object store"),
        Err(e) => tracing::warn!(error = %e, "object store clean-up failed"),
    }
}
