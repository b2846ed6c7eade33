//! The alert worker: closes due deliveries, sends their alerts, retries failures with
//! exponential backoff until `alert_retry_for`, and records every outcome in the outbox.
//! Runs beside the server; uploads never wait for it.

use super::{Payload, describe, http_client, send};
use crate::state::State;
use crate::store::{AlertOutcome, AlertTask, StoreError, blocking};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Attempts running at once on one channel (a stuck channel never holds up the others).
const PER_CHANNEL: usize = 4;
/// Longest and shortest pause between two looks at the outbox (unless an attempt ends).
const MAX_NAP: Duration = Duration::from_secs(2);
const MIN_NAP: Duration = Duration::from_millis(250);
/// An attempt in progress is not due again for this long (longer than any attempt may take).
const LEASE: Duration = Duration::from_secs(120);
/// The backoff doubles from `alert_backoff` up to this.
const MAX_BACKOFF: i64 = 30 * 60;

struct Worker {
    state: Arc<State>,
    http: reqwest::Client,
    /// Per channel: (name, only_labels), and the permits for its attempts.
    channels: Vec<(String, Vec<String>)>,
    permits: HashMap<String, Arc<Semaphore>>,
    tracker: TaskTracker,
    /// Woken when an attempt ends, so that a freed permit is used at once.
    attempt_done: Arc<Notify>,
}

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
    let permits = channels
        .iter()
        .map(|(name, _)| (name.clone(), Arc::new(Semaphore::new(PER_CHANNEL))))
        .collect();
    let worker = Worker {
        state,
        http,
        channels,
        permits,
        tracker: TaskTracker::new(),
        attempt_done: Arc::new(Notify::new()),
    };
    loop {
        if let Err(e) = worker.tick().await {
            tracing::warn!(error = %e, "alert worker: outbox unavailable");
        }
        let nap = match blocking(&worker.state.store, |s| s.next_alert_due_ms()).await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - crate::now_ms()).unwrap_or(0))
                    .min(MAX_NAP)
            }
            _ => MAX_NAP,
        };
        tokio::select! {
            () = tokio::time::sleep(nap.max(MIN_NAP)) => {}
            () = worker.attempt_done.notified() => {}
            () = shutdown.cancelled() => break,
        }
    }
    worker.tracker.close();
    // Attempts in flight get a moment to finish; an unfinished one is retried after restart.
    let _ = tokio::time::timeout(Duration::from_secs(5), worker.tracker.wait()).await;
}

impl Worker {
    async fn tick(&self) -> Result<(), StoreError> {
        let now_ms = crate::now_ms();
        let all = self.channels.clone();
        let closed = blocking(&self.state.store, move |s| {
            s.close_due_deliveries(now_ms, &all)
        })
        .await?;
        if closed > 0 {
            tracing::debug!(closed, "deliveries closed");
        }
        let now = now_ms / 1000;
        let lease_until = now + LEASE.as_secs() as i64;
        for (channel, _) in &self.channels {
            let Some(permits) = self.permits.get(channel) else {
                continue;
            };
            // Only as many as this channel can start now: a stuck channel claims nothing more,
            // and never holds up another channel's alerts. Claimed alerts are leased in the
            // outbox, so they are not claimed twice.
            let free = permits.available_permits();
            if free == 0 {
                continue;
            }
            let name = channel.clone();
            let tasks = blocking(&self.state.store, move |s| {
                s.claim_alerts(now, &name, free, lease_until)
            })
            .await?;
            for task in tasks {
                let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
                    break;
                };
                let (state, http, done) = (
                    Arc::clone(&self.state),
                    self.http.clone(),
                    Arc::clone(&self.attempt_done),
                );
                self.tracker.spawn(async move {
                    if let Err(e) = attempt(&state, &http, &task).await {
                        tracing::warn!(error = %e, "alert worker: could not record an attempt");
                    }
                    drop(permit);
                    done.notify_one();
                });
            }
        }
        Ok(())
    }
}

async fn attempt(
    state: &State,
    http: &reqwest::Client,
    task: &AlertTask,
) -> Result<(), StoreError> {
    let id = task.delivery_id;
    let (delivery, link) = blocking(&state.store, move |s| {
        let d = s.delivery(id)?;
        let link = match d.as_ref().and_then(|d| d.items.first()?.uploader.link) {
            Some(l) => s.link(l)?,
            None => None,
        };
        Ok((d, link))
    })
    .await?;
    let channel = state.config.alerts.iter().find(|c| c.name == task.channel);
    let result = match (&delivery, channel) {
        (None, _) => Err("the delivery no longer exists".to_string()),
        (_, None) => Err("this channel is no longer configured".to_string()),
        (Some(d), Some(c)) => {
            let url = &state.config.public_url;
            let mut payload = Payload::new(d, url);
            if let Some(link) = &link {
                payload = payload.with_link(link, url);
            }
            send(c, &payload, http).await
        }
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
    crate::metrics::alert_attempt(super::kind_name(channel), super::outcome_name(&outcome));
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
