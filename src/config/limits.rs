//! Connection, upload-rate and quota limits: what keeps one client (or a few) from holding what
//! every other customer needs. Each key is flat in the TOML file, like the older limits.

use super::{ConfigError, field, parse_duration, parse_size};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at once (capped at start by the file-descriptor limit).
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64). Trusted proxies are exempt.
    pub max_connections_per_client: usize,
    /// A new connection must send its first byte (or TLS hello) within this.
    pub first_byte_timeout: Duration,
    /// An HTTP/1 request head must arrive whole within this.
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this long (keep-alive, HTTP/2).
    pub idle_timeout: Duration,
    /// On SIGTERM, requests in flight may finish for this long; then they are aborted.
    pub shutdown_grace: Duration,
    /// On SIGTERM, `/readyz` says 503 for this long while sfx still accepts and serves, so a
    /// load balancer takes the instance out before connections are refused.
    pub shutdown_delay: Duration,
    /// Uploads in progress from one network (IPv4 /24, IPv6 /48).
    pub max_uploads_per_network: usize,
    /// While upload slots are short, an upload slower than this (bytes per second, measured
    /// over `slow_upload_window`) is cut off so a waiting one can start.
    pub min_upload_rate: u64,
    pub slow_upload_window: Duration,
    /// Per client address (IPv6: /64) and `quota_window`: items created and bytes received.
    /// 0 means no limit. Secrets with `admin` are exempt.
    pub quota_window: Duration,
    pub quota_items: u64,
    pub quota_bytes: u64,
    /// Total size of all stored items and uploads in progress; 0 means no limit.
    pub max_total_size: u64,
}

fn positive(d: Duration, key: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::Invalid(format!(
            "{key}: must be longer than zero"
        )));
    }
    Ok(d)
}

impl super::RawConfig {
    /// Takes the limit keys out of the raw file.
    pub(super) fn limits(&mut self) -> Result<Limits, ConfigError> {
        let duration = |v: Option<String>, default: &str, key: &str| {
            positive(field(v, default, key, parse_duration)?, key)
        };
        Ok(Limits {
            max_connections: self.max_connections.take().unwrap_or(4096).max(1),
            max_connections_per_client: self
                .max_connections_per_client
                .take()
                .unwrap_or(128)
                .max(1),
            first_byte_timeout: duration(
                self.first_byte_timeout.take(),
                "10s",
                "first_byte_timeout",
            )?,
            header_timeout: duration(self.header_timeout.take(), "20s", "header_timeout")?,
            idle_timeout: duration(self.idle_timeout.take(), "60s", "idle_timeout")?,
            shutdown_grace: field(
                self.shutdown_grace.take(),
                "30s",
                "shutdown_grace",
                parse_duration,
            )?,
            shutdown_delay: field(
                self.shutdown_delay.take(),
                "0s",
                "shutdown_delay",
                parse_duration,
            )?,
            max_uploads_per_network: self.max_uploads_per_network.take().unwrap_or(128).max(1),
            min_upload_rate: field(
                self.min_upload_rate.take(),
                "8KiB",
                "min_upload_rate",
                parse_size,
            )?,
            slow_upload_window: duration(
                self.slow_upload_window.take(),
                "30s",
                "slow_upload_window",
            )?,
            quota_window: duration(self.quota_window.take(), "1h", "quota_window")?,
            quota_items: self.quota_items.take().unwrap_or(1000),
            quota_bytes: field(self.quota_bytes.take(), "200GiB", "quota_bytes", parse_size)?,
            max_total_size: field(
                self.max_total_size.take(),
                "0",
                "max_total_size",
                parse_size,
            )?,
        })
    }
}
