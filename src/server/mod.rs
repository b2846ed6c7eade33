//! The HTTP server: listeners ([`accept`]: caps on connections, TLS handshakes), connections
//! ([`conn`]: HTTP/1.1 and HTTP/2, timeouts for silent and idle peers, graceful shutdown),
//! requests ([`handle`]: hardening checks, routing, the headers every answer carries), and the
//! one place errors become responses ([`error`]).

mod accept;
mod conn;
mod error;
mod gate;
mod handle;
mod metrics_listen;
mod redirect;
mod request;
pub mod response;
mod router;

pub use conn::raise_fd_limit;
pub use error::{AppError, ErrorFormat};
pub use request::{Request, accepts_json, query_param};
pub use response::{Body, Response};
pub use router::Route;

use crate::state::State;
use crate::tls::Tls;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The bound sockets: the main one (HTTPS when `tls` is set) and the optional plain listener
/// that only redirects to HTTPS.
pub struct Listeners {
    pub main: TcpListener,
    pub tls: Option<Arc<Tls>>,
    pub redirect: Option<TcpListener>,
    /// `metrics_listen`: plain HTTP, `GET /metrics` only.
    pub metrics: Option<TcpListener>,
}

/// Serves until `shutdown` is cancelled (and `shutdown_delay` more, while `/readyz` says 503);
/// then stops accepting, lets requests in flight finish for
/// `shutdown_grace`, and aborts what is left (a form upload's temp file is removed; a REST
/// upload stays resumable at its last acknowledged chunk).
pub async fn serve(state: Arc<State>, listeners: Listeners, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    // What the listeners and connections obey: `shutdown`, after `shutdown_delay` of saying
    // "not ready" while still serving.
    let stop = CancellationToken::new();
    let lame_duck = tokio::spawn(lame_duck(Arc::clone(&state), shutdown, stop.clone()));
    let shutdown = stop;
    let ctx = Arc::new(conn::Ctx::new(
        Arc::clone(&state),
        shutdown.clone(),
        connections.clone(),
    ));
    let https_port = listeners.main.local_addr().map(|a| a.port()).unwrap_or(443);
    let main = accept::run(
        listeners.main,
        match listeners.tls {
            Some(tls) => accept::Kind::Tls(tls),
            None => accept::Kind::Plain,
        },
        Arc::clone(&ctx),
    );
    let redirect = async {
        if let Some(l) = listeners.redirect {
            accept::run(l, accept::Kind::Redirect { https_port }, Arc::clone(&ctx)).await;
        }
    };
    let metrics = async {
        if let Some(l) = listeners.metrics {
            metrics_listen::run(l, Arc::clone(&state), shutdown.clone()).await;
        }
    };
    tokio::join!(main, redirect, metrics);
    lame_duck.abort();
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    connections.close();
    let grace = state.config.limits.shutdown_grace;
    // Connections abort their own requests at the end of the grace period; this bound only
    // guards against one that does not.
    let waited = tokio::time::timeout(
        grace + std::time::Duration::from_secs(5),
        connections.wait(),
    )
    .await;
    if waited.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown: connections still open after the grace period, closing"
        );
    }
}

/// From `shutdown` on, `/readyz` answers 503; `stop` follows `shutdown_delay` later, so that a
/// load balancer polling `/readyz` takes the instance out before it refuses connections.
async fn lame_duck(state: Arc<State>, shutdown: CancellationToken, stop: CancellationToken) {
    shutdown.cancelled().await;
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    let delay = state.config.limits.shutdown_delay;
    if !delay.is_zero() {
        tracing::info!(
            seconds = delay.as_secs_f64(),
            "shutting down: /readyz answers 503 until the listeners close"
        );
        tokio::time::sleep(delay).await;
    }
    stop.cancel();
}
