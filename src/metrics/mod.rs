//! Prometheus metrics: one registry for the process, counters bumped by plain functions where
//! things happen (no HTTP types here), gauges set from the live state at scrape time
//! ([`Snapshot`], filled in by `routes::metrics`). Every label value comes from a fixed set
//! (enums, route names, status codes the server itself sends): never a filename, item name,
//! address or secret.
//!
//! The encoding is `prometheus-client`'s (the Prometheus project's own Rust client): OpenMetrics
//! text, which Prometheus scrapes natively and which is the Prometheus text format plus `# EOF`.

mod families;

use families::{AlertLabels, FailedLabels, Metrics, ProtocolLabels, RequestLabels};
use std::sync::LazyLock;
use std::time::Duration;

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How an upload arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /+upload` (curl `-F`, browser forms, pastes).
    Form,
    /// `PUT /+upload/<filename>`.
    Put,
    /// bepasty's chunked REST API.
    Rest,
    Tus,
    /// The IETF resumable upload draft.
    Ietf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Form => "form",
            Protocol::Put => "put",
            Protocol::Rest => "rest",
            Protocol::Tus => "tus",
            Protocol::Ietf => "ietf",
        }
    }
}

/// What a request is, for the counters: part of an upload (`new`: it starts one), a download,
/// or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    Upload { protocol: Protocol, new: bool },
    Download,
    Other,
}

/// A request arrived (before it is authenticated): counts the uploads it starts.
pub fn request_started(traffic: Traffic) {
    if let Traffic::Upload {
        protocol,
        new: true,
    } = traffic
    {
        METRICS
            .uploads_started
            .get_or_create(&protocol.into())
            .inc();
    }
}

/// A request was answered with `status`.
pub fn request_answered(route: &'static str, traffic: Traffic, status: u16) {
    let m = &*METRICS;
    m.http_requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    match traffic {
        Traffic::Upload { protocol, .. } if status >= 400 => {
            m.uploads_failed
                .get_or_create(&FailedLabels {
                    protocol: protocol.as_str(),
                    status,
                })
                .inc();
        }
        Traffic::Download if status == 200 || status == 206 => {
            m.downloads.inc();
        }
        _ => {}
    }
}

/// An upload is complete: `bytes` stored, `took` from its start.
pub fn upload_finished(protocol: Protocol, bytes: u64, took: Duration) {
    let m = &*METRICS;
    let labels = protocol.into();
    m.uploads_finished.get_or_create(&labels).inc();
    m.uploaded_bytes.get_or_create(&labels).inc_by(bytes);
    m.upload_duration
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
}

/// A request of a resumable upload went through; counts the upload if that completed it (its
/// duration is from its creation, to the second).
pub fn resumable_progress(protocol: Protocol, p: &crate::upload::Progress) {
    if p.is_complete() {
        let ms = crate::now_ms().saturating_sub(p.item.created_at.saturating_mul(1000));
        let took = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        upload_finished(protocol, p.item.size, took);
    }
}

/// Body bytes received by any upload, as they arrive, kept or not (file data; for the REST API
/// its base64 text, for a urlencoded paste the form).
pub fn bytes_received(n: u64) {
    METRICS.bytes_received.inc_by(n);
}

/// A connection was accepted (`+1`) or closed (`-1`).
pub fn connection(delta: i64) {
    METRICS.connections_open.inc_by(delta);
}

/// One attempt to send an alert: `channel` is the channel's kind (`email`, `webhook`,
/// `command`, or `unknown` for a channel no longer configured); `outcome` is `delivered`,
/// `retry` or `given_up`.
pub fn alert_attempt(channel: &'static str, outcome: &'static str) {
    METRICS
        .alert_attempts
        .get_or_create(&AlertLabels { channel, outcome })
        .inc();
}

/// A wrong secret was presented; `locked_out`: it locked its client address out.
pub fn wrong_secret(locked_out: bool) {
    METRICS.auth_failures.inc();
    if locked_out {
        METRICS.lockouts.inc();
    }
}

/// The gauges, read from the live state at scrape time. `None`: could not be read now (the
/// gauge is left out rather than reported wrong).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub uploads_active: u64,
    pub alerts_pending: Option<u64>,
    /// Seconds since the oldest alert still to send was created (0 when none).
    pub alert_oldest_pending_age: Option<u64>,
    pub store_items: Option<u64>,
    pub store_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub disk_min_free_bytes: u64,
}

/// The metrics in the text format, with the gauges of `snapshot`.
pub fn encode(snapshot: &Snapshot) -> String {
    METRICS.encode(snapshot)
}

impl From<Protocol> for ProtocolLabels {
    fn from(p: Protocol) -> Self {
        ProtocolLabels {
            protocol: p.as_str(),
        }
    }
}

#[cfg(test)]
mod tests;
