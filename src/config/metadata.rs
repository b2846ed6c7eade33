//! `[metadata]`: where item metadata lives. Absent (or without `url`): SQLite in `data_dir`;
//! `url = "postgres://…"`: a PostgreSQL database several instances can share.

use super::ConfigError;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetadata {
    url: Option<String>,
    max_connections: Option<usize>,
    ca_file: Option<std::path::PathBuf>,
}

/// A PostgreSQL metadata store. `Debug` never shows the URL's password.
#[derive(Clone)]
pub struct Postgres {
    /// The connection URL, password included: give it to the store, never to a log.
    pub url: String,
    /// Connections of this instance's pool.
    pub max_connections: usize,
    /// The CA certificates (PEM) the server's TLS certificate is checked against, for
    /// `?sslmode=require`; `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &crate::store::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl RawMetadata {
    pub(super) fn validate(self) -> Result<Option<Postgres>, ConfigError> {
        let invalid = |e: &str| ConfigError::Invalid(format!("metadata.{e}"));
        let max_connections = self.max_connections.unwrap_or(16);
        if max_connections == 0 {
            return Err(invalid("max_connections: must be at least 1"));
        }
        let Some(url) = self.url.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("url: must be a postgres:// URL"));
        }
        // libpq's verify-ca and verify-full are what sfx always does with TLS: taken as
        // `require`, which is all the driver knows.
        let url = match url.split_once('?') {
            Some((base, query)) => format!(
                "{base}?{}",
                query
                    .replace("sslmode=verify-full", "sslmode=require")
                    .replace("sslmode=verify-ca", "sslmode=require")
            ),
            None => url,
        };
        if let Err(e) = url.parse::<tokio_postgres::Config>() {
            // The driver's message names the bad part, never the password.
            return Err(invalid(&format!("url: {e}")));
        }
        Ok(Some(Postgres {
            url,
            max_connections,
            ca_file: self.ca_file,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn metadata_section() {
        assert!(Config::embedded().metadata.is_none(), "SQLite by default");
        let c = Config::from_toml("[metadata]\nurl = \"postgres://sfx:pw@db.example.com/sfx\"\n")
            .unwrap();
        let pg = c.metadata.unwrap();
        assert_eq!(pg.max_connections, 16);
        assert_eq!(pg.url, "postgres://sfx:pw@db.example.com/sfx");
        let shown = format!("{pg:?}");
        assert!(!shown.contains("pw"), "{shown}");
        assert_eq!(pg.ca_file, None);
        let c = Config::from_toml(
            "[metadata]\nurl = \"postgres://db/sfx?sslmode=require\"\nca_file = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        let pg = c.metadata.unwrap();
        assert_eq!(
            pg.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let c = Config::from_toml("[metadata]\nmax_connections = 4\n").unwrap();

        assert!(c.metadata.is_none(), "no url: SQLite");
        for bad in [
            "[metadata]\nurl = \"mysql://db/sfx\"\n",
            "[metadata]\nurl = \"postgres://db/sfx\"\nmax_connections = 0\n",
            "[metadata]\nurl = \"postgres://db:port/sfx\"\n",
            "[metadata]\nurl = \"postgres://db/sfx\"\npool = 1\n",
            "[metadata]\nurl = \"postgres://db/sfx?sslmode=sometimes\"\n",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
    }
}
