//! Throw-away PostgreSQL databases for tests. `SFX_TEST_POSTGRES_URL` names a server and a role
//! allowed to create databases (`.ci/postgres.sh` makes one); each test gets a database of its
//! own, dropped afterwards.

use tokio_postgres::NoTls;

pub(crate) struct TestDb {
    admin: String,
    name: String,
    /// The test database's URL.
    pub url: String,
}

/// A fresh database, or `None` (after saying so) when no server is configured; with
/// `SFX_REQUIRE_POSTGRES=1` a missing server fails the test instead.
pub(crate) fn test_db() -> Option<TestDb> {
    let Ok(admin) = std::env::var("SFX_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SFX_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "SFX_REQUIRE_POSTGRES=1 but SFX_TEST_POSTGRES_URL is not set"
        );
        eprintln!(
            "skipped: needs PostgreSQL (SFX_TEST_POSTGRES_URL=postgres://sfx:sfx@127.0.0.1:5432/postgres)"
        );
        return None;
    };
    let name = format!("sfx_test_{:016x}", fastrand::u64(..));
    // template0: a UTF-8 database whatever template1's encoding is.
    execute(
        &admin,
        &format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"),
    );
    let url = with_database(&admin, &name);
    Some(TestDb { admin, name, url })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Retried: the server can refuse while it is still ending the test's own connections
        // (seen once in CI as a bare "db error" while tests drop their databases at once).
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let mut last = String::new();
        for _ in 0..5 {
            match try_execute(&self.admin, &sql) {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        panic!("{sql}: {last}");
    }
}

/// `url` with its database (the path) replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[end..].find('?').map_or("", |i| &rest[end + i..]);
    format!("{scheme}://{}/{db}{query}", &rest[..end])
}

/// Runs SQL on its own connection, on a thread and runtime of its own (callable anywhere).
pub(crate) fn execute(url: &str, sql: &str) {
    let (url, text) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, NoTls)
                .await
                .expect("connect to SFX_TEST_POSTGRES_URL");
            let task = tokio::spawn(conn);
            let res = client.batch_execute(&text).await;
            drop(client);
            let _ = task.await;
            res
        })
    })
    .join()
    .expect("the SQL thread")
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Like [`execute`], but returns the error instead of failing.
pub(crate) fn try_execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let task = tokio::spawn(conn);
            let res = client.batch_execute(&sql).await.map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            });
            drop(client);
            let _ = task.await;
            res
        })
    })
    .join()
    .map_err(|_| "the SQL thread panicked".to_string())?
}
