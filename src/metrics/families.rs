//! The metric families and their registration (names, help texts, buckets). The README's
//! "Metrics" section lists the same, one row each.

use super::Snapshot;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProtocolLabels {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FailedLabels {
    pub protocol: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AlertLabels {
    pub channel: &'static str,
    pub outcome: &'static str,
}

/// From 0.1 s, ×4 per bucket, up to about 7 hours.
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.1, 4.0, 10)
}

pub(super) struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub uploads_started: Family<ProtocolLabels, Counter>,
    pub uploads_finished: Family<ProtocolLabels, Counter>,
    pub uploads_failed: Family<FailedLabels, Counter>,
    pub uploaded_bytes: Family<ProtocolLabels, Counter>,
    pub upload_duration: Family<ProtocolLabels, Histogram>,
    pub bytes_received: Counter,
    pub downloads: Counter,
    pub connections_open: Gauge,
    pub alert_attempts: Family<AlertLabels, Counter>,
    pub auth_failures: Counter,
    pub lockouts: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("sfx");
        let m = Metrics {
            http_requests: Family::default(),
            uploads_started: Family::default(),
            uploads_finished: Family::default(),
            uploads_failed: Family::default(),
            uploaded_bytes: Family::default(),
            upload_duration: Family::new_with_constructor(|| Histogram::new(duration_buckets())),
            bytes_received: Counter::default(),
            downloads: Counter::default(),
            connections_open: Gauge::default(),
            alert_attempts: Family::default(),
            auth_failures: Counter::default(),
            lockouts: Counter::default(),
            registry: Registry::default(),
        };
        r.register(
            "http_requests",
            "HTTP requests answered, by route and status code",
            m.http_requests.clone(),
        );
        r.register(
            "uploads_started",
            "Uploads started: one-shot requests (form, put) and resumable uploads created (rest, tus, ietf)",
            m.uploads_started.clone(),
        );
        r.register(
            "uploads_finished",
            "Uploads completed and stored",
            m.uploads_finished.clone(),
        );
        r.register(
            "uploads_failed",
            "Upload requests answered with an error, by status code",
            m.uploads_failed.clone(),
        );
        r.register(
            "uploaded_bytes",
            "Bytes of completed uploads",
            m.uploaded_bytes.clone(),
        );
        r.register(
            "upload_duration_seconds",
            "Time from an upload's start to its completion",
            m.upload_duration.clone(),
        );
        r.register(
            "upload_received_bytes",
            "Upload body bytes received as they arrive, kept or not (REST: its base64 text)",
            m.bytes_received.clone(),
        );
        r.register(
            "downloads",
            "Downloads started (GET answered 200 or 206)",
            m.downloads.clone(),
        );
        r.register(
            "connections_open",
            "Client connections open now (main and redirect listeners)",
            m.connections_open.clone(),
        );
        r.register(
            "alert_attempts",
            "Alert sending attempts, by channel kind and outcome",
            m.alert_attempts.clone(),
        );
        r.register(
            "auth_failures",
            "Wrong secrets presented",
            m.auth_failures.clone(),
        );
        r.register(
            "lockouts",
            "Client addresses locked out after too many wrong secrets",
            m.lockouts.clone(),
        );
        Metrics { registry: r, ..m }
    }

    pub fn encode(&self, s: &Snapshot) -> String {
        let mut out = String::new();
        // The counters, then the gauges of this scrape; formatting into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &snapshot_registry(s));
        let _ = encode_eof(&mut out);
        out
    }
}

/// The scrape-time gauges, each only when it could be read.
fn snapshot_registry(s: &Snapshot) -> Registry {
    let mut r = Registry::with_prefix("sfx");
    let mut gauge = |name: &str, help: &str, value: Option<u64>| {
        if let Some(v) = value {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            r.register(name, help, g);
        }
    };
    gauge(
        "uploads_active",
        "Uploads in progress now (holding an upload slot)",
        Some(s.uploads_active),
    );
    gauge(
        "alerts_pending",
        "Alerts still to send (pending or being retried)",
        s.alerts_pending,
    );
    gauge(
        "alert_oldest_pending_age_seconds",
        "Age of the oldest alert still to send (0 when none)",
        s.alert_oldest_pending_age,
    );
    gauge(
        "store_items",
        "Items stored (complete or in progress)",
        s.store_items,
    );
    gauge("store_bytes", "Bytes of the items stored", s.store_bytes);
    gauge(
        "disk_free_bytes",
        "Free bytes on the file store's file system",
        s.disk_free_bytes,
    );
    gauge(
        "disk_min_free_bytes",
        "min_free_space: uploads are refused below this much free space",
        Some(s.disk_min_free_bytes),
    );
    r
}
