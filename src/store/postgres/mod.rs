//! PostgreSQL implementation of [`MetaStore`] (`[metadata] url`): the same tables and the same
//! semantics as [`super::SqliteStore`], shared by several sfx instances. Item queries in
//! [`items`], resumable uploads in [`uploads`], the outbox in [`outbox`], the listing in
//! [`listing`], the audit trail in [`audit`], upload links in [`links`], the schema in [`schema`].
//!
//! The store traits are synchronous and tokio-postgres is async. The store owns a small runtime
//! of its own and every call is spawned onto it, the calling thread waiting on a channel for the
//! answer. That works from a blocking thread (`store::blocking`) and from inside an async task
//! alike: `Handle::block_on` / `Runtime::block_on` would panic inside a runtime, and a pool
//! bound to the caller's runtime would die with it. The cost is one thread hop per call.

mod audit;
mod exclusive;
mod items;
mod ledger;
mod links;
mod listing;
mod outbox;
mod schema;
mod tls;
mod uploads;

use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use std::future::Future;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// How long to wait for a connection (to open one, or for one of the pool to be free) before
/// the call fails as [`StoreError::Unavailable`] rather than hanging a request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: Pool,
    /// `None` only while dropping (see [`Drop`]).
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgStore {
    /// Connects (lazily: the pool opens connections as calls need them) and brings the schema
    /// up to date, safely when several instances start at once.
    pub fn open(url: &str, max_connections: usize) -> Result<PgStore, StoreError> {
        PgStore::open_with_ca(url, max_connections, None)
    }

    /// [`PgStore::open`], the server's TLS certificate (`?sslmode=require`) verified against
    /// the PEM certificates in `ca_file` rather than the system's roots.
    pub fn open_with_ca(
        url: &str,
        max_connections: usize,
        ca_file: Option<&std::path::Path>,
    ) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("metadata.url: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("sfx");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sfx-postgres")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the PostgreSQL runtime: {e}"))
            })?;
        let recycling = ManagerConfig {
            // A connection the server closed (restart, idle timeout) is noticed and replaced.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if tls::asked(url) {
            Manager::from_config(config, tls::connector(ca_file)?, recycling)
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::from_config(config, NoTls, recycling)
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("metadata pool: {e}")))?;
        let store = PgStore {
            pool,
            runtime: Some(runtime),
        };
        store.run(|mut c| async move { schema::migrate(&mut c).await })?;
        Ok(store)
    }

    /// Runs `f` with a pooled connection on the store's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Backend("the store is closed".into()));
        };
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = match pool.get().await {
                Ok(conn) => f(conn).await,
                Err(e) => Err(pool_error(e)),
            };
            // The caller waits on `rx` until this send; it cannot be gone.
            let _ = tx.send(result);
        });
        rx.recv()
            .map_err(|_| StoreError::Backend("a PostgreSQL store task failed".into()))?
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context (a store dropped by
        // a task); in-flight calls have all been answered by now, so nothing is lost.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `url` with its password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let shown = if user.len() < userinfo.len() {
        format!("{user}:***")
    } else {
        user.to_string()
    };
    // A password in the query (`?password=`) is hidden whole.
    let tail = match tail.find("password=") {
        Some(i) => format!("{}password=***", &tail[..i]),
        None => tail.to_string(),
    };
    format!("{scheme}://{shown}@{host}{tail}")
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => e.into(),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no connection to PostgreSQL in time".into())
        }
        other => StoreError::Unavailable(format!("PostgreSQL connection pool: {other}")),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No answer from the server at all: the connection broke or never opened. The
            // driver's message leaves out why ("error performing TLS handshake"): its causes
            // say it ("invalid peer certificate: UnknownIssuer").
            let mut why = format!("PostgreSQL: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why.push_str(&format!(": {c}"));
                cause = c.source();
            }
            return StoreError::Unavailable(why);
        };
        let code = db.code();
        if *code == SqlState::DISK_FULL {
            StoreError::DiskFull
        } else if code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
        {
            StoreError::Unavailable(format!("PostgreSQL: {db}"))
        } else {
            StoreError::Backend(format!("PostgreSQL: {db}"))
        }
    }
}

/// Whether `e` is a violation of the unique constraint or index `constraint`.
fn violates(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// Counts and sizes are `u64` in sfx and `BIGINT` in the database.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
