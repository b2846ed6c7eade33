//! `SFX_TEST_STORE=postgres`: every [`TestServer`](super::TestServer) keeps its metadata in a
//! PostgreSQL database of its own (made on `SFX_TEST_POSTGRES_URL`'s server), so the
//! integration suites run against the shared store too. The database belongs to the data
//! directory, not to one server: a test that restarts a server on the same directory finds
//! its metadata again. The databases are dropped when the test process exits.

use std::path::Path;
use std::sync::{Mutex, Once};
use tokio_postgres::NoTls;

/// (server URL, database) of every database made by this process.
static MADE: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static CLEANUP: Once = Once::new();

/// The `[metadata]` table pointing `data_dir`'s server at its database (made on first use),
/// when the suites are to run on PostgreSQL; else `None`.
pub fn metadata_toml_for(data_dir: &Path) -> Option<String> {
    if std::env::var("SFX_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    Some(database_toml(data_dir))
}

/// The test PostgreSQL server's admin URL (`SFX_TEST_POSTGRES_URL`), if there is one.
pub fn postgres_url() -> Option<String> {
    std::env::var("SFX_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A `[metadata]` table for a database of `key`'s own (made on first use, dropped at exit):
/// servers given the same key share it.
pub fn database_toml(key: &Path) -> String {
    let admin = postgres_url().expect("PostgreSQL tests need SFX_TEST_POSTGRES_URL");
    // One name per key (a data directory's path is unique while the test runs).
    let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_os_str().as_encoded_bytes());
    let name = format!("sfx_it_{}", &hex::encode(digest)[..24]);
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !made.iter().any(|(_, n)| *n == name) {
        sql(
            &admin,
            &format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"),
        );
        made.push((admin.clone(), name.clone()));
        CLEANUP.call_once(|| {
            // SAFETY: registers a plain function with no arguments; it runs at exit.
            unsafe { libc::atexit(drop_databases) };
        });
    }
    let (server, _) = admin.rsplit_once('/').expect("a postgres://…/db URL");
    format!("\n[metadata]\nurl = \"{server}/{name}\"\nmax_connections = 8\n")
}

extern "C" fn drop_databases() {
    let made = MADE.lock().map(|m| m.clone()).unwrap_or_default();
    for (admin, name) in made {
        let _ = std::panic::catch_unwind(|| {
            sql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
        });
    }
}

/// One statement on a connection of its own, on a thread of its own (callable in async code).
fn sql(url: &str, statement: &str) {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
            let task = tokio::spawn(conn);
            let done = client.batch_execute(&statement).await;
            drop(client);
            let _ = task.await;
            done
        })
    })
    .join()
    .expect("SQL thread")
    .expect("SQL on the test PostgreSQL server");
}
