//! Several sfx instances sharing one PostgreSQL database and one S3 prefix, each with a data
//! directory of its own (`tests/scale_out.rs`, `tests/s3_leftovers.rs`).

use super::*;
use std::path::PathBuf;

/// The PostgreSQL database and S3 prefix the instances of one test share.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub shared: String,
}

impl Cluster {
    /// `None` (after saying why) when PostgreSQL or S3 is missing.
    pub fn new() -> Option<Cluster> {
        Cluster::with_storage("")
    }

    /// With more `[storage]` keys (`leftover_age = "6s"`).
    pub fn with_storage(keys: &str) -> Option<Cluster> {
        if postgres_url().is_none() || s3::endpoint().is_none() {
            skip_unless_required(
                "SFX_REQUIRE_S3",
                "needs PostgreSQL (SFX_TEST_POSTGRES_URL) and S3 (SFX_TEST_S3_ENDPOINT)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let shared = format!(
            "{}{}",
            database_toml(dir.path()),
            s3::storage_toml(&s3::prefix_for(dir.path())),
        );
        let shared = format!("{shared}{keys}\n");
        Some(Cluster { dir, shared })
    }

    /// The config of instance `n`: its own data directory, the shared tables, then `tables`.
    pub fn config(&self, n: usize, top: &str, tables: &str) -> PathBuf {
        let home = self.dir.path().join(format!("i{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let toml = format!(
            "{}{top}\n{}{}{tables}",
            base_toml(&home.join("data")),
            secrets_toml(2),
            self.shared
        );
        write_config(&home, &toml)
    }

    pub async fn start(&self, n: usize, top: &str, tables: &str) -> Binary {
        let config = self.config(n, top, tables);
        let log = self.log(n);
        Binary::start(
            &["serve", "--config", config.to_str().unwrap()],
            &[("RUST_LOG", "sfx=info")],
            Some(&log),
        )
        .await
    }

    pub fn log(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("i{n}.log"))
    }
}

/// A client that opens a new connection for every request (each may go to another instance).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A tus request as the customer.
pub fn tus(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
}

/// A tus PATCH of `data` at `offset`.
pub async fn tus_patch(
    at: &impl Endpoint,
    location: &str,
    offset: usize,
    data: &[u8],
) -> reqwest::Response {
    tus(http().patch(at.url(location)))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}
