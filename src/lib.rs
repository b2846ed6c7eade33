//! sfx: a secure file exchange server. Customers upload (curl, browser, bepasty clients);
//! operators list, download and delete.
//!
//! Where a request goes: [`server`] accepts it and routes it ([`server::Route`]) to a handler
//! in [`routes`]; handlers use [`auth`] (who is asking), [`store`] (item metadata),
//! [`blobs`] (item bytes on disk) and [`pages`] (HTML).

pub mod alerts;
pub mod auth;
pub mod blobs;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod items;
pub mod lock;
pub mod pages;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use state::{StartupError, State};

/// Current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Current Unix time in milliseconds (delivery batching needs better than whole seconds).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A started, bound server: [`App::run`] serves until the token is cancelled.
pub struct App {
    state: Arc<State>,
    listener: TcpListener,
    notes: Vec<String>,
}

impl App {
    /// Opens the data directory and binds the listening socket.
    pub async fn bind(config: Config) -> Result<App, StartupError> {
        let listen = config.listen;
        let (state, notes) = tokio::task::spawn_blocking(move || State::open(config))
            .await
            .map_err(|e| StartupError::Io {
                what: "start-up".into(),
                source: std::io::Error::other(e),
            })??;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartupError::Io {
                what: format!("cannot listen on {listen}"),
                source,
            })?;
        Ok(App {
            state: Arc::new(state),
            listener,
            notes,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Lines to show the operator once (e.g. a newly generated operator secret).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn state(&self) -> Arc<State> {
        Arc::clone(&self.state)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let sweeper = tokio::spawn(sweeper::run(Arc::clone(&self.state), shutdown.clone()));
        let alerts = tokio::spawn(alerts::worker::run(
            Arc::clone(&self.state),
            shutdown.clone(),
        ));
        server::serve(self.state, self.listener, shutdown).await;
        let _ = sweeper.await;
        let _ = alerts.await;
    }
}
