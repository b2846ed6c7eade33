//! `[antivirus]`: scanning finished items with clamd (see `src/scan`). Off when absent.

use super::{ConfigError, field, parse_duration};
use crate::scan::{ClamdAddr, Settings};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAntivirus {
    clamd: String,
    retries: Option<u32>,
    retry_delay: Option<String>,
    timeout: Option<String>,
    concurrency: Option<usize>,
}

impl RawAntivirus {
    pub(super) fn validate(self) -> Result<Settings, ConfigError> {
        let invalid = |e: String| ConfigError::Invalid(format!("antivirus.{e}"));
        let clamd = ClamdAddr::parse(&self.clamd).map_err(|e| invalid(format!("clamd: {e}")))?;
        let attempts = self.retries.unwrap_or(3);
        if attempts == 0 {
            return Err(invalid("retries: must be at least 1".into()));
        }
        let timeout = field(self.timeout, "120s", "antivirus.timeout", parse_duration)?;
        if timeout.is_zero() {
            return Err(invalid("timeout: must be longer than zero".into()));
        }
        Ok(Settings {
            clamd,
            attempts,
            retry_delay: field(
                self.retry_delay,
                "10s",
                "antivirus.retry_delay",
                parse_duration,
            )?,
            timeout,
            concurrency: self.concurrency.unwrap_or(2).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn antivirus_section() {
        assert!(Config::embedded().antivirus.is_none());
        let c = Config::from_toml("[antivirus]\nclamd = \"unix:/run/clamav/clamd.ctl\"\n").unwrap();
        let av = c.antivirus.unwrap();
        assert_eq!((av.attempts, av.concurrency), (3, 2));
        assert_eq!(av.retry_delay.as_secs(), 10);
        for bad in [
            "[antivirus]\nclamd = \"clamd.ctl\"\n",
            "[antivirus]\nclamd = \"tcp:127.0.0.1:3310\"\nretries = 0\n",
            "[antivirus]\nclamd = \"tcp:127.0.0.1:3310\"\ncolour = 1\n",
            "[antivirus]\nretries = 2\n",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
    }
}
