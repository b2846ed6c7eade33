//! The TOML configuration: parsed strictly (unknown keys are errors), validated once at start-up
//! into a typed [`Config`]. Every key has an embedded default, so sfx runs with no file at all.

mod alerts;
mod antivirus;
mod limits;
mod metadata;
mod storage;
mod tls;
mod units;

pub use alerts::{AlertChannel, ChannelKind, Secret, WebhookFormat, wants};
pub use limits::Limits;
pub use metadata::Postgres;
pub use storage::S3;
pub use tls::{CertSource, TlsConfig};
pub use units::{Lifetime, parse_duration, parse_size};

use crate::auth::{Permission, Permissions};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// One `[[secrets]]` entry: a shared secret (or its Argon2id hash) and what it grants.
#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub label: String,
    pub check: SecretCheck,
    pub permissions: Permissions,
}

#[derive(Debug, Clone)]
pub enum SecretCheck {
    Plain(String),
    /// An Argon2id PHC string.
    Hash(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub site_name: String,
    pub max_file_size: u64,
    pub max_request_size: u64,
    pub max_files_per_request: usize,
    /// Size of the chunks the browser uploader and `/+client.sh` send (one request each), small
    /// enough to pass proxies that cap request bodies.
    pub upload_chunk_size: u64,
    /// Uploads in progress at once, in total and from one client address (IPv6: one /64).
    pub max_concurrent_uploads: usize,
    pub max_uploads_per_client: usize,
    pub min_free_space: u64,
    pub default_lifetime: Lifetime,
    pub max_lifetime: Lifetime,
    pub upload_idle_timeout: Duration,
    pub sweep_interval: Duration,
    /// Incomplete REST uploads untouched this long are removed.
    pub incomplete_ttl: Duration,
    pub session_lifetime: Duration,
    pub default_permissions: Permissions,
    /// `None` when the file has no `[[secrets]]`: start-up then uses the embedded defaults
    /// (`support` for customers, a generated operator secret).
    pub secrets: Option<Vec<SecretSpec>>,
    /// Base of the operator links in alerts (no trailing slash).
    pub public_url: String,
    /// `public_url` was not configured: it is the bound address (set at start).
    pub public_url_is_default: bool,
    /// A delivery ends after this long without a new file from the same uploader.
    pub batch_window: Duration,
    /// How long a failing alert is retried before it is given up.
    pub alert_retry_for: Duration,
    /// Wait after a failed attempt; doubles with each failure (up to 30 minutes).
    pub alert_backoff: Duration,
    /// `/healthz` reports degraded while an alert has been failing for longer than this.
    pub alert_degraded_after: Duration,
    pub alerts: Vec<AlertChannel>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (for the client address), and whose
    /// `X-Forwarded-Proto: https` counts as a secure connection.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// HTTPS on `listen`; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// A plain-HTTP listener that only answers `308` to the HTTPS URL.
    pub redirect_http_from: Option<SocketAddr>,
    pub limits: Limits,
    /// Each audit record is also appended to this file as one JSON line.
    pub audit_log: Option<PathBuf>,
    /// `text` (human lines) or `json` (one object per line, for log shippers).
    pub log_format: LogFormat,
    /// `[antivirus]`: scan every finished item with clamd; `None`: off.
    pub antivirus: Option<crate::scan::Settings>,
    /// `[metadata] url`: item metadata in PostgreSQL; `None`: SQLite in `data_dir`.
    pub metadata: Option<Postgres>,
    /// `[storage] kind = "s3"`: the bytes in an object store; `None`: files in `data_dir`.
    pub storage: Option<S3>,
    /// A plain-HTTP listener that serves only `GET /metrics` (for an internal address).
    pub metrics_listen: Option<SocketAddr>,
    /// With it, `GET /metrics` on the main listener answers to `Authorization: Bearer <token>`
    /// (and to admins); without it, the main listener has no `/metrics`.
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    site_name: Option<String>,
    max_file_size: Option<String>,
    max_request_size: Option<String>,
    max_files_per_request: Option<usize>,
    upload_chunk_size: Option<String>,
    max_concurrent_uploads: Option<usize>,
    max_uploads_per_client: Option<usize>,
    min_free_space: Option<String>,
    default_lifetime: Option<String>,
    max_lifetime: Option<String>,
    upload_idle_timeout: Option<String>,
    sweep_interval: Option<String>,
    incomplete_ttl: Option<String>,
    session_lifetime: Option<String>,
    default_permissions: Option<Vec<Permission>>,
    secrets: Option<Vec<RawSecret>>,
    public_url: Option<String>,
    batch_window: Option<String>,
    alert_retry_for: Option<String>,
    alert_backoff: Option<String>,
    alert_degraded_after: Option<String>,
    alerts: Option<Vec<alerts::RawChannel>>,
    trusted_proxies: Option<Vec<ipnet::IpNet>>,
    tls: Option<tls::RawTls>,
    redirect_http_from: Option<String>,
    // Connection, upload-rate and quota limits (see limits.rs).
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    first_byte_timeout: Option<String>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    shutdown_grace: Option<String>,
    shutdown_delay: Option<String>,
    max_uploads_per_network: Option<usize>,
    min_upload_rate: Option<String>,
    slow_upload_window: Option<String>,
    quota_window: Option<String>,
    quota_items: Option<u64>,
    quota_bytes: Option<String>,
    max_total_size: Option<String>,
    audit_log: Option<PathBuf>,
    log_format: Option<LogFormat>,
    antivirus: Option<antivirus::RawAntivirus>,
    metadata: Option<metadata::RawMetadata>,
    storage: Option<storage::RawStorage>,
    metrics_listen: Option<String>,
    metrics_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    label: String,
    secret: Option<String>,
    secret_hash: Option<String>,
    permissions: Vec<Permission>,
}

impl Config {
    /// Whether `public_url` is an address a client can use: configured, or the bound address
    /// when that is a specific one (the default for `0.0.0.0`/`[::]` is not).
    pub fn public_url_is_usable(&self) -> bool {
        !self.public_url_is_default || !self.listen.ip().is_unspecified()
    }

    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        raw.validate()
    }

    /// The embedded defaults (what `sfx serve` uses without a config file).
    pub fn embedded() -> Config {
        match RawConfig::default().validate() {
            Ok(config) => config,
            Err(e) => unreachable!("embedded defaults are valid: {e}"),
        }
    }
}

fn field<T>(
    value: Option<String>,
    default: &str,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    parse(text).map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))
}

/// `upload_chunk_size`: 50 MiB by default; at least 64 KiB so a chunk is worth a request.
fn chunk_size(value: Option<String>) -> Result<u64, ConfigError> {
    let size = field(value, "50MiB", "upload_chunk_size", parse_size)?;
    if size < 64 << 10 {
        return Err(ConfigError::Invalid(
            "upload_chunk_size: must be at least 64KiB".into(),
        ));
    }
    Ok(size)
}

fn address(text: &str, key: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{key}: `{text}` is not an address like 127.0.0.1:8000"
        ))
    })
}

impl RawConfig {
    fn validate(mut self) -> Result<Config, ConfigError> {
        let limits = self.limits()?;
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8000".into());
        let listen = address(&listen_text, "listen")?;
        let tls = self.tls.map(tls::RawTls::validate).transpose()?;
        let redirect_http_from = match self.redirect_http_from {
            Some(text) if tls.is_none() => {
                return Err(ConfigError::Invalid(format!(
                    "redirect_http_from = \"{text}\" needs a [tls] section: it redirects to HTTPS"
                )));
            }
            Some(text) => Some(address(&text, "redirect_http_from")?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let max_file_size = field(self.max_file_size, "50GiB", "max_file_size", parse_size)?;
        if max_file_size == 0 {
            return Err(ConfigError::Invalid(
                "max_file_size: must be more than zero".into(),
            ));
        }
        // Room for the multipart framing and the small form fields around one file.
        let default_request = (max_file_size.saturating_add(1 << 20)).to_string();
        let max_request_size = field(
            self.max_request_size,
            &default_request,
            "max_request_size",
            parse_size,
        )?;
        let default_lifetime = field(
            self.default_lifetime,
            "30d",
            "default_lifetime",
            Lifetime::parse,
        )?;
        let max_lifetime = field(self.max_lifetime, "365d", "max_lifetime", Lifetime::parse)?;
        let secrets = self.secrets.map(validate_secrets).transpose()?;
        let public_url_is_default = self.public_url.is_none();
        let public_url = self
            .public_url
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        let public_url = public_url.trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public_url: `{public_url}` must start with http:// or https://"
            )));
        }
        let alerts =
            alerts::validate(self.alerts.unwrap_or_default()).map_err(ConfigError::Invalid)?;
        Ok(Config {
            listen,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("sfx-data")),
            site_name: self.site_name.unwrap_or_else(|| "sfx".into()),
            max_file_size,
            max_request_size,
            max_files_per_request: self.max_files_per_request.unwrap_or(100).max(1),
            upload_chunk_size: chunk_size(self.upload_chunk_size)?,
            max_concurrent_uploads: self.max_concurrent_uploads.unwrap_or(1024).max(1),
            max_uploads_per_client: self.max_uploads_per_client.unwrap_or(32).max(1),
            min_free_space: field(self.min_free_space, "1GiB", "min_free_space", parse_size)?,
            default_lifetime: default_lifetime.min(max_lifetime),
            max_lifetime,
            upload_idle_timeout: field(
                self.upload_idle_timeout,
                "60s",
                "upload_idle_timeout",
                parse_duration,
            )?,
            sweep_interval: field(self.sweep_interval, "60s", "sweep_interval", parse_duration)?,
            incomplete_ttl: field(self.incomplete_ttl, "24h", "incomplete_ttl", parse_duration)?,
            session_lifetime: field(
                self.session_lifetime,
                "12h",
                "session_lifetime",
                parse_duration,
            )?,
            default_permissions: self
                .default_permissions
                .unwrap_or_default()
                .into_iter()
                .collect(),
            secrets,
            public_url,
            public_url_is_default,
            batch_window: field(self.batch_window, "60s", "batch_window", parse_duration)?,
            alert_retry_for: field(
                self.alert_retry_for,
                "24h",
                "alert_retry_for",
                parse_duration,
            )?,
            alert_backoff: field(self.alert_backoff, "10s", "alert_backoff", parse_duration)?,
            alert_degraded_after: field(
                self.alert_degraded_after,
                "15m",
                "alert_degraded_after",
                parse_duration,
            )?,
            alerts,
            trusted_proxies: self.trusted_proxies.unwrap_or_default(),
            tls,
            redirect_http_from,
            limits,
            audit_log: self.audit_log,
            log_format: self.log_format.unwrap_or_default(),
            metadata: self.metadata.unwrap_or_default().validate()?,
            storage: self.storage.unwrap_or_default().validate()?,
            antivirus: self
                .antivirus
                .map(antivirus::RawAntivirus::validate)
                .transpose()?,
            metrics_listen: self
                .metrics_listen
                .map(|t| address(&t, "metrics_listen"))
                .transpose()?,
            metrics_token: self.metrics_token.map(metrics_token).transpose()?,
        })
    }
}

/// A bearer token long enough not to be guessed, and plain enough for a header.
fn metrics_token(token: String) -> Result<String, ConfigError> {
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid(
            "metrics_token: must be at least 16 printable ASCII characters, no spaces".into(),
        ));
    }
    Ok(token)
}

fn validate_secrets(raw: Vec<RawSecret>) -> Result<Vec<SecretSpec>, ConfigError> {
    let mut out: Vec<SecretSpec> = Vec::with_capacity(raw.len());
    for s in raw {
        let label = s.label.trim().to_string();
        if label.is_empty() {
            return Err(ConfigError::Invalid(
                "secrets: every secret needs a non-empty label".into(),
            ));
        }
        if label == "anonymous" {
            return Err(ConfigError::Invalid(
                "secrets: the label `anonymous` is reserved for requests without a secret".into(),
            ));
        }
        if out.iter().any(|o| o.label == label) {
            return Err(ConfigError::Invalid(format!(
                "secrets: label `{label}` is used twice"
            )));
        }
        let check = match (s.secret, s.secret_hash) {
            (Some(plain), None) if !plain.is_empty() => SecretCheck::Plain(plain),
            (None, Some(hash)) => {
                argon2::PasswordHash::new(&hash).map_err(|e| {
                    ConfigError::Invalid(format!("secrets `{label}`: secret_hash is not a PHC string ({e}); make one with `sfx hash-secret`"))
                })?;
                SecretCheck::Hash(hash)
            }
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "secrets `{label}`: give exactly one of `secret` (non-empty) or `secret_hash`"
                )));
            }
        };
        let permissions: Permissions = s.permissions.into_iter().collect();
        if permissions.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "secrets `{label}`: permissions is empty"
            )));
        }
        out.push(SecretSpec {
            label,
            check,
            permissions,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults() {
        let c = Config::embedded();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.data_dir, PathBuf::from("sfx-data"));
        assert_eq!(c.max_file_size, 50 << 30);
        assert!(c.secrets.is_none());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::from_toml("listen = \"127.0.0.1:1\"\nmax_fiel_size = \"1GiB\"\n").unwrap_err();
        assert!(err.to_string().contains("max_fiel_size"), "{err}");
    }

    #[test]
    fn secrets_are_validated() {
        let ok = Config::from_toml(
            "[[secrets]]\nlabel = \"customers\"\nsecret = \"support\"\npermissions = [\"create\"]\n",
        )
        .unwrap();
        let secrets = ok.secrets.unwrap();
        assert!(secrets[0].permissions.has(Permission::Create));
        assert!(!secrets[0].permissions.has(Permission::Read));
        let both = "[[secrets]]\nlabel = \"x\"\nsecret = \"a\"\nsecret_hash = \"b\"\npermissions = [\"read\"]\n";
        assert!(Config::from_toml(both).is_err());
        let bad_perm = "[[secrets]]\nlabel = \"x\"\nsecret = \"a\"\npermissions = [\"sudo\"]\n";
        assert!(Config::from_toml(bad_perm).is_err());
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sfx.example.toml");
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.secrets.unwrap().len(), 2);
    }

    #[test]
    fn metrics_keys() {
        let c = Config::from_toml(
            "metrics_listen = \"127.0.0.1:9464\"\nmetrics_token = \"0123456789abcdef\"\n",
        )
        .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        for bad in [
            "metrics_token = \"short\"",
            "metrics_token = \"with a space inside it\"",
            "metrics_listen = \"nowhere\"",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
        assert!(Config::embedded().metrics_token.is_none());
    }

    #[test]
    fn default_lifetime_is_capped() {
        let c =
            Config::from_toml("default_lifetime = \"forever\"\nmax_lifetime = \"7d\"\n").unwrap();
        assert_eq!(
            c.default_lifetime,
            Lifetime::For(Duration::from_secs(7 * 86400))
        );
    }
}
