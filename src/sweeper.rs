//! Expiry is enforced in the background, not only when an item is touched.

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
        match sweep_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired items removed"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
    }
}

/// Removes every item whose expiry has passed; returns how many.
pub async fn sweep_once(state: &State) -> Result<usize, crate::store::StoreError> {
    let mut removed = 0;
    loop {
        let now = crate::now();
        let names = blocking(&state.store, move |s| s.expired(now, BATCH)).await?;
        let batch = names.len();
        for name in names {
            if state.delete_item(&name, "expiry").await? {
                removed += 1;
            }
        }
        if batch < BATCH {
            return Ok(removed);
        }
    }
}
