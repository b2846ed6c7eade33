//! sfx: a secure file exchange server. Customers upload (curl, browser, bepasty clients);
//! operators list, download and delete.
//!
//! Where a request goes: [`server`] accepts it and routes it ([`server::Route`]) to a handler
//! in [`routes`]; handlers use [`auth`] (who is asking), [`store`] (item metadata),
//! [`blobs`] (item bytes on disk) and [`pages`] (HTML).

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod import;
pub mod items;
pub mod links;
pub mod lock;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod scan;
pub mod server;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod tls;
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
    listeners: server::Listeners,
    notes: Vec<String>,
}

impl App {
    /// Opens the data directory, loads (or makes) the TLS certificate and binds the sockets.
    pub async fn bind(mut config: Config) -> Result<App, StartupError> {
        tls::install_crypto_provider();
        server::raise_fd_limit();
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Io {
                    what: format!("cannot listen on {addr}"),
                    source,
                })
        };
        let main = bind(config.listen).await?;
        let redirect = match config.redirect_http_from {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        if config.public_url_is_default {
            // The bound address, not `listen` (whose port may be 0).
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            if let Ok(addr) = main.local_addr() {
                config.public_url = format!("{scheme}://{addr}");
            }
        }
        let (state, tls, notes) = tokio::task::spawn_blocking(move || {
            let tls = match &config.tls {
                Some(t) => Some(tls::Tls::open(t, &config.data_dir, config.listen)?),
                None => None,
            };
            let (state, mut notes) = State::open(config)?;
            let tls = tls.map(|(tls, more)| {
                notes.extend(more);
                Arc::new(tls)
            });
            Ok::<_, StartupError>((state, tls, notes))
        })
        .await
        .map_err(|e| StartupError::Io {
            what: "start-up".into(),
            source: std::io::Error::other(e),
        })??;
        Ok(App {
            state: Arc::new(state),
            listeners: server::Listeners {
                main,
                tls,
                redirect,
                metrics,
            },
            notes,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.main.local_addr()
    }

    /// `https` when TLS is on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.listeners.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The TLS setup (to print its fingerprint, or reload it on SIGHUP).
    pub fn tls(&self) -> Option<Arc<tls::Tls>> {
        self.listeners.tls.clone()
    }

    /// The plain listener that redirects to HTTPS, if configured.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .redirect
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The `metrics_listen` listener, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .metrics
            .as_ref()
            .and_then(|l| l.local_addr().ok())
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
        let scanner = self.state.config.antivirus.clone().map(|settings| {
            let st = &self.state;
            let scanner = scan::Scanner::new(
                Arc::clone(&st.store),
                st.blobs.clone(),
                st.audit.clone(),
                settings,
                st.engine.scans_queued(),
            );
            tokio::spawn(scanner.run(shutdown.clone()))
        });
        server::serve(self.state, self.listeners, shutdown).await;
        let _ = sweeper.await;
        let _ = alerts.await;
        if let Some(scanner) = scanner {
            let _ = scanner.await;
        }
    }
}
