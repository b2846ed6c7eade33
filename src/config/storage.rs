//! `[storage]`: where the bytes of items live. `kind = "local"` (the default): files in
//! `data_dir`; `kind = "s3"`: an S3-compatible object store several instances can share.

use super::ConfigError;
use super::units::{parse_duration, parse_size};
use serde::Deserialize;
use std::time::Duration;

/// S3 allows at most this many parts per upload, each at least 5 MiB but the last.
const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    kind: Option<String>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    part_size: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    lease: Option<String>,
    leftover_age: Option<String>,
}

/// An S3 bucket. `Debug` never shows the secret key.
#[derive(Clone)]
pub struct S3 {
    pub bucket: String,
    /// `None`: AWS (from the region).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Put before every key (`prod/`), so that several services can share a bucket.
    pub prefix: String,
    /// Every part but the last has exactly this size (Cloudflare R2 needs equal parts).
    pub part_size: u64,
    /// `None`: the standard AWS environment variables and metadata services.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How long an instance's hold on an upload lasts without being renewed: another instance
    /// takes over an upload whose writer died after this long.
    pub lease: Duration,
    /// What no writer touched for this long (objects without an item, multipart uploads no
    /// ledger records, idle ledger entries) is a crash's leftover, removed by the sweeper,
    /// which looks this often.
    pub leftover_age: Duration,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl RawStorage {
    pub(super) fn validate(self) -> Result<Option<S3>, ConfigError> {
        let invalid = |e: &str| ConfigError::Invalid(format!("storage.{e}"));
        match self.kind.as_deref().unwrap_or("local") {
            "local" => {
                if self.bucket.is_some() || self.endpoint.is_some() {
                    return Err(invalid("kind: bucket and endpoint need kind = \"s3\""));
                }
                return Ok(None);
            }
            "s3" => {}
            other => {
                return Err(invalid(&format!(
                    "kind: {other:?} is not \"local\" or \"s3\""
                )));
            }
        }
        let bucket = self
            .bucket
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| invalid("bucket: required with kind = \"s3\""))?;
        if let Some(e) = &self.endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(invalid("endpoint: must be an http:// or https:// URL"));
        }
        let part_size = match self.part_size {
            Some(s) => parse_size(&s).map_err(|e| invalid(&format!("part_size: {e}")))?,
            None => 16 << 20,
        };
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(invalid(
                "part_size: must be between 5MiB and 5GiB (S3's limits)",
            ));
        }
        let mut prefix = self.prefix.unwrap_or_default();
        if prefix.starts_with('/') || prefix.contains("..") {
            return Err(invalid("prefix: must be relative, without .."));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(invalid(
                "access_key_id and secret_access_key: give both or neither",
            ));
        }
        let lease = match self.lease {
            Some(s) => parse_duration(&s).map_err(|e| invalid(&format!("lease: {e}")))?,
            None => Duration::from_secs(30),
        };
        if lease < Duration::from_secs(2) {
            return Err(invalid("lease: must be at least 2s"));
        }
        let leftover_age = match self.leftover_age {
            Some(s) => parse_duration(&s).map_err(|e| invalid(&format!("leftover_age: {e}")))?,
            None => Duration::from_secs(3600),
        };
        // An upload's writer must touch its entry well before it counts as left over.
        if leftover_age < lease * 2 {
            return Err(invalid("leftover_age: must be at least twice the lease"));
        }
        Ok(Some(S3 {
            bucket,
            endpoint: self.endpoint,
            region: self.region,
            prefix,
            part_size,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            lease,
            leftover_age,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn storage_section() {
        assert!(
            Config::embedded().storage.is_none(),
            "local files by default"
        );
        let c = Config::from_toml(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n\
             prefix = \"prod\"\naccess_key_id = \"k\"\nsecret_access_key = \"very-secret\"\n",
        )
        .unwrap();
        let s3 = c.storage.unwrap();
        assert_eq!(s3.prefix, "prod/");
        assert_eq!(s3.part_size, 16 << 20);
        assert!(!format!("{s3:?}").contains("very-secret"));
        let cases = [
            "[storage]\nkind = \"s3\"\n",
            "[storage]\nkind = \"ftp\"\n",
            "[storage]\nbucket = \"b\"\n",
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\npart_size = \"1MiB\"\n",
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"s3.example.com\"\n",
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nprefix = \"/abs\"\n",
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"k\"\n",
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nregion = \"x\"\nsize = 1\n",
        ];
        for bad in cases {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
    }
}
