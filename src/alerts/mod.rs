//! Telling support that files have arrived: one alert per *delivery* (what one uploader sent
//! in one go), to every configured channel (e-mail, chat webhook, command), never lost.
//!
//! Items join deliveries in the metadata store's outbox in the same transaction that makes them
//! visible ([`delivery_join`]); the [`worker`] closes deliveries after the batch window, sends
//! their alerts, and retries failures with backoff until `alert_retry_for` has passed.

mod command;
mod email;
mod payload;
mod webhook;
pub mod worker;

pub use payload::{Payload, SCHEMA};

use crate::config::{AlertChannel, ChannelKind};
use crate::store::{DeliveryJoin, Uploader};
use std::time::Duration;

/// Longest a single attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How an item completed by `uploader` now joins a delivery: same secret label, client IP and
/// reference within `window` of each other make one delivery.
pub fn delivery_join(
    window: Duration,
    uploader: &Uploader,
    reference: Option<&str>,
) -> std::io::Result<DeliveryJoin> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
    Ok(DeliveryJoin {
        batch_key: format!(
            "{}\n{}\n{}",
            uploader.label,
            uploader.client_ip,
            reference.unwrap_or("")
        ),
        now_ms: crate::now_ms(),
        window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        new_idempotency_key: hex::encode(raw),
    })
}

/// What a channel is, for logs and `sfx alert-test` (never its URL or password).
pub fn describe(channel: &AlertChannel) -> String {
    let kind = match &channel.kind {
        ChannelKind::Email { to, .. } => format!("email to {}", to.join(", ")),
        ChannelKind::Webhook { format, .. } => format!("webhook ({format:?})").to_lowercase(),
        ChannelKind::Command { command } => format!("command {}", command[0]),
    };
    format!("{} [{kind}]", channel.name)
}

/// The channel's kind, for metrics: `email`, `webhook`, `command`; `unknown` for a channel no
/// longer configured.
pub fn kind_name(channel: Option<&AlertChannel>) -> &'static str {
    match channel.map(|c| &c.kind) {
        Some(ChannelKind::Email { .. }) => "email",
        Some(ChannelKind::Webhook { .. }) => "webhook",
        Some(ChannelKind::Command { .. }) => "command",
        None => "unknown",
    }
}

/// An attempt's outcome, for metrics: `delivered`, `retry`, `given_up`.
pub fn outcome_name(outcome: &crate::store::AlertOutcome) -> &'static str {
    use crate::store::AlertOutcome;
    match outcome {
        AlertOutcome::Delivered => "delivered",
        AlertOutcome::Retry { .. } => "retry",
        AlertOutcome::GaveUp { .. } => "given_up",
    }
}

/// One attempt to deliver `payload` on `channel`. The error text is safe to log and to show
/// operators: it never contains a URL, password or signing secret.
pub async fn send(
    channel: &AlertChannel,
    payload: &Payload,
    http: &reqwest::Client,
) -> Result<(), String> {
    let attempt = async {
        match &channel.kind {
            ChannelKind::Email { smtp_url, from, to } => {
                // An upload link's own recipients get the same message.
                let mut to = to.clone();
                if let Some(link) = &payload.link {
                    to.extend(
                        link.notify
                            .iter()
                            .filter(|a| !to.contains(a))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                }
                email::send(smtp_url, from, &to, payload).await
            }
            ChannelKind::Webhook {
                url,
                format,
                signing_secret,
            } => webhook::send(http, url, *format, signing_secret.as_ref(), payload).await,
            ChannelKind::Command { command } => command::run(command, payload).await,
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

/// Sends a test alert to every configured channel; one result per channel, in config order.
pub async fn test_all(config: &crate::Config) -> Vec<(String, Result<(), String>)> {
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            return config
                .alerts
                .iter()
                .map(|c| (describe(c), Err(e.clone())))
                .collect();
        }
    };
    let payload = Payload::test(&config.public_url);
    let mut results = Vec::with_capacity(config.alerts.len());
    for channel in &config.alerts {
        results.push((describe(channel), send(channel, &payload, &http).await));
    }
    results
}

/// The HTTP client for webhooks: bounded time, few redirects.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        // A redirect would turn the POST into a GET without the alert and still end in 200:
        // a 3xx is reported as a failure instead ("configure the final URL").
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sfx/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.without_url().to_string())
}
