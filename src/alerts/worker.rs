//! The alert worker: closes due deliveries, sends their alerts, retries failures with
//! exponential backoff until `alert_retry_for`, and records every outcome in the outbox.
//! Runs beside the server; uploads never wait for it.

use super::{Payload, describe, http_client, send};
use crate::state::State;
use crate::store::{AlertOutcome, AlertTask, StoreError, blocking};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Attempts running at once on one channel (a stuck channel never holds up the others).
const PER_CHANNEL: usize = 4;
/// Longest pause between two looks at the outbox.
const MAX_NAP: Duration = Duration::from_secs(2);
/// The backoff doubles from `alert_backoff` up to this.
const MAX_BACKOFF: i64 = 30 * 60;

type Permits = HashMap<String, Arc<tokio::sync::Semaphore>>;

pub async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alerts disabled: cannot build the HTTP client");
            return;
        }
    };
    let channels: Vec<(String, Vec<String>)> = state
        .config
        .alerts
        .iter()
        .map(|c| (c.name.clone(), c.only_labels.clone()))
        .collect();
    let in_flight: Arc<Mutex<HashSet<(i64, String)>>> = Arc::default();
    let tracker = TaskTracker::new();
    let permits: Permits = channels
        .iter()
        .map(|(name, _)| {
            (
                name.clone(),
                Arc::new(tokio::sync::Semaphore::new(PER_CHANNEL)),
            )
        })
        .collect();
    loop {
        if let Err(e) = tick(&state, &channels, &http, &in_flight, &tracker, &permits).await {
            tracing::warn!(error = %e, "alert worker: outbox unavailable");
        }
        let nap = match blocking(&state.store, |s| s.next_alert_due_ms()).await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - crate::now_ms()).unwrap_or(0))
                    .min(MAX_NAP)
            }
            _ => MAX_NAP,
        };
        tokio::select! {
            () = tokio::time::sleep(nap.max(Duration::from_millis(50))) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    // Attempts in flight get a moment to finish; an unfinished one is retried after restart.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

async fn tick(
    state: &Arc<State>,
    channels: &[(String, Vec<String>)],
    http: &reqwest::Client,
    in_flight: &Arc<Mutex<HashSet<(i64, String)>>>,
    tracker: &TaskTracker,
    permits: &Permits,
) -> Result<(), StoreError> {
    let now_ms = crate::now_ms();
    let channels = channels.to_vec();
    let closed = blocking(&state.store, move |s| {
        s.close_due_deliveries(now_ms, &channels)
    })
    .await?;
    if closed > 0 {
        tracing::debug!(closed, "deliveries closed");
    }
    let now = now_ms / 1000;
    let tasks = blocking(&state.store, move |s| s.due_alerts(now, 64)).await?;
    for task in tasks {
        let key = (task.delivery_id, task.channel.clone());
        if !in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            continue;
        }
        let permit = permits.get(&task.channel).cloned();
        let (state, http, in_flight) = (Arc::clone(state), http.clone(), Arc::clone(in_flight));
        tracker.spawn(async move {
            // Held for the attempt: at most PER_CHANNEL attempts per channel at once.
            let _permit = match &permit {
                Some(p) => p.acquire().await.ok(),
                None => None,
            };
            if let Err(e) = attempt(&state, &http, &task).await {
                tracing::warn!(error = %e, "alert worker: could not record an attempt");
            }
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }
    Ok(())
}

async fn attempt(
    state: &State,
    http: &reqwest::Client,
    task: &AlertTask,
) -> Result<(), StoreError> {
    let id = task.delivery_id;
    let delivery = blocking(&state.store, move |s| s.delivery(id)).await?;
    let channel = state.config.alerts.iter().find(|c| c.name == task.channel);
    let result = match (&delivery, channel) {
        (None, _) => Err("the delivery no longer exists".to_string()),
        (_, None) => Err("this channel is no longer configured".to_string()),
        (Some(d), Some(c)) => send(c, &Payload::new(d, &state.config.public_url), http).await,
    };
    let now = crate::now();
    let retry_for = i64::try_from(state.config.alert_retry_for.as_secs()).unwrap_or(i64::MAX);
    let outcome = match result {
        Ok(()) => AlertOutcome::Delivered,
        Err(error)
            if channel.is_none() || delivery.is_none() || now - task.created_at >= retry_for =>
        {
            AlertOutcome::GaveUp { error }
        }
        Err(error) => AlertOutcome::Retry {
            error,
            next_attempt_at: now + backoff(state, task.attempts),
        },
    };
    let name = channel.map_or_else(|| task.channel.clone(), describe);
    match &outcome {
        AlertOutcome::Delivered => {
            tracing::info!(delivery = id, channel = %name, "alert delivered")
        }
        AlertOutcome::Retry {
            error,
            next_attempt_at,
        } => {
            tracing::warn!(delivery = id, channel = %name, %error, retry_in_s = next_attempt_at - now, "alert failed; will retry")
        }
        AlertOutcome::GaveUp { error } => {
            tracing::error!(delivery = id, channel = %name, %error, "alert given up")
        }
    }
    let task = task.clone();
    blocking(&state.store, move |s| s.record_alert(&task, &outcome, now)).await
}

/// Seconds to wait after the `attempts`-th failure: `alert_backoff`, doubled each time.
fn backoff(state: &State, attempts: u32) -> i64 {
    let base = i64::try_from(state.config.alert_backoff.as_secs())
        .unwrap_or(1)
        .max(1);
    base.saturating_mul(1i64 << attempts.min(20))
        .min(MAX_BACKOFF)
}
