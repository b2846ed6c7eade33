//! `[metadata] url = "…?sslmode=require"`: sfx talks to PostgreSQL over TLS and verifies the
//! server's certificate (against `[metadata] ca_file`). A PostgreSQL cluster of the test's own
//! (Debian's initdb and pg_ctl, as the `postgres` user) serves TLS only: its pg_hba.conf
//! rejects plain connections, so a working upload proves the connection was encrypted.
//!
//! Needs Debian's PostgreSQL binaries and root (to run them as `postgres`); without them the
//! test says "skipped", and fails under `SFX_REQUIRE_POSTGRES=1`. Talks to 127.0.0.1 only.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio_util::sync::CancellationToken;

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", versions.pop()?));
    bin.join("initdb").exists().then_some(bin)
}

fn as_postgres(args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS-only cluster on 127.0.0.1; stopped when dropped.
struct TlsPostgres {
    pg_ctl: String,
    data: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(dir: &Path, ca: &TestCa) -> TlsPostgres {
        let bin = pg_bin().expect("PostgreSQL binaries");
        let home = dir.join("pg");
        std::fs::create_dir(&home).unwrap();
        let (cert, key) = ca.write(&home, "server", &["127.0.0.1"]);
        let data = home.join("data");
        Command::new("chown")
            .args(["-R", "postgres:", home.to_str().unwrap()])
            .status()
            .unwrap();
        Command::new("chmod")
            .args(["755", dir.to_str().unwrap()])
            .status()
            .unwrap();
        Command::new("chmod")
            .args(["600", key.to_str().unwrap()])
            .status()
            .unwrap();
        let initdb = bin.join("initdb");
        as_postgres(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "--auth=trust",
            "-U",
            "postgres",
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            home.display(),
            cert.display(),
            key.display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let pg_ctl = bin.join("pg_ctl").to_str().unwrap().to_string();
        let log = home.join("log");
        as_postgres(&[
            &pg_ctl,
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ]);
        TlsPostgres { pg_ctl, data, port }
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{query}",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &self.pg_ctl, "-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn config(dir: &Path, metadata: &str) -> sfx::Config {
    let toml = format!(
        "{}{}\n[metadata]\n{metadata}\n",
        base_toml(&dir.join("data")),
        secrets_toml(5)
    );
    sfx::Config::from_toml(&toml).expect("valid config")
}

async fn start_error(dir: &Path, metadata: &str) -> String {
    match sfx::App::bind(config(dir, metadata)).await {
        Ok(_) => panic!("started with {metadata}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_tls_is_verified() {
    let root = rustix::process::geteuid().is_root();
    if pg_bin().is_none() || !root {
        skip_unless_required(
            "SFX_REQUIRE_POSTGRES",
            "needs Debian's PostgreSQL binaries and root",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestCa::new();
    let ca_file = ca.write_ca(dir);
    let pg = TlsPostgres::start(dir, &ca);

    // Plain TCP is refused by this server: the URL must ask for TLS.
    let plain = start_error(dir, &format!("url = {:?}", pg.url(""))).await;
    assert!(plain.contains("no encryption"), "{plain}");
    // TLS, but the test CA is not among the system's roots.
    let untrusted = start_error(dir, &format!("url = {:?}", pg.url("?sslmode=require"))).await;
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );

    let metadata = format!(
        "url = {:?}\nca_file = {:?}",
        pg.url("?sslmode=require"),
        ca_file
    );
    let app = sfx::App::bind(config(dir, &metadata))
        .await
        .expect("starts with the CA");
    let addr = app.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let r = reqwest::Client::new()
        .put(addr.url("/+upload/over-tls.txt"))
        .header("Authorization", CUSTOMER_BASIC)
        .body("stored through an encrypted connection")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let listed = listing(&addr).await;
    assert!(
        listed
            .values()
            .any(|v| v["file-meta"]["filename"] == "over-tls.txt"),
        "{listed:?}"
    );
    shutdown.cancel();
    let _ = task.await;
}
