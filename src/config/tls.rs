//! `[tls]`: HTTPS on the main listener, from PEM files or a self-signed certificate that sfx
//! makes once and keeps; and `redirect_http_from`, a plain listener that only redirects.

use super::{ConfigError, field, parse_duration};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum CertSource {
    /// A PEM chain and its key (PKCS#8, PKCS#1 or SEC1), re-read on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at first start under `<data_dir>/tls/`, then reused. The names are its SANs
    /// (the listen IP and `localhost` are added).
    SelfSigned { hostnames: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub source: CertSource,
    /// A handshake that has not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once (each costs CPU); more wait for a place.
    pub max_handshakes: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_signed: Option<bool>,
    hostnames: Option<Vec<String>>,
    handshake_timeout: Option<String>,
    max_handshakes: Option<usize>,
}

impl RawTls {
    pub(super) fn validate(self) -> Result<TlsConfig, ConfigError> {
        let invalid = |m: &str| ConfigError::Invalid(format!("tls: {m}"));
        let source = match (self.cert, self.key, self.self_signed.unwrap_or(false)) {
            (Some(cert), Some(key), false) => {
                if self.hostnames.is_some() {
                    return Err(invalid(
                        "`hostnames` is only for `self_signed = true`; the names of a given certificate are in the certificate",
                    ));
                }
                CertSource::Files { cert, key }
            }
            (None, None, true) => {
                let hostnames = self.hostnames.unwrap_or_default();
                if let Some(bad) = hostnames.iter().find(|h| !valid_hostname(h)) {
                    return Err(invalid(&format!("`{bad}` is not a host name")));
                }
                CertSource::SelfSigned { hostnames }
            }
            (Some(_), Some(_), true) => {
                return Err(invalid(
                    "give either `cert` and `key`, or `self_signed = true`",
                ));
            }
            (None, None, false) => {
                return Err(invalid("set `cert` and `key`, or `self_signed = true`"));
            }
            _ => return Err(invalid("`cert` and `key` go together")),
        };
        let handshake_timeout = field(
            self.handshake_timeout,
            "10s",
            "tls.handshake_timeout",
            parse_duration,
        )?;
        if handshake_timeout.is_zero() {
            return Err(invalid("handshake_timeout must be longer than zero"));
        }
        Ok(TlsConfig {
            source,
            handshake_timeout,
            max_handshakes: self.max_handshakes.unwrap_or(256).max(1),
        })
    }
}

/// A DNS name (labels of letters, digits and hyphens; a leading `*.` wildcard) or an IP address.
fn valid_hostname(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(toml: &str) -> Result<TlsConfig, ConfigError> {
        toml::from_str::<RawTls>(toml)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?
            .validate()
    }

    #[test]
    fn sources() {
        assert!(matches!(
            tls("cert = \"/c.pem\"\nkey = \"/k.pem\"").unwrap().source,
            CertSource::Files { .. }
        ));
        let s = tls("self_signed = true\nhostnames = [\"sfx.example.com\", \"10.0.0.1\"]").unwrap();
        assert!(
            matches!(s.source, CertSource::SelfSigned { ref hostnames } if hostnames.len() == 2)
        );
        for bad in [
            "",
            "cert = \"/c.pem\"",
            "self_signed = true\ncert = \"/c\"\nkey = \"/k\"",
            "self_signed = true\nhostnames = [\"bad name\"]",
            "self_signed = true\nhostnames = [\"-x.example\"]",
            "cert = \"/c\"\nkey = \"/k\"\nhostnames = [\"a\"]",
            "self_signed = true\nhandshake_timeout = \"0s\"",
        ] {
            assert!(tls(bad).is_err(), "{bad}");
        }
    }
}
