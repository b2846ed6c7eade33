//! The HTTP server: accepts connections (HTTP/1.1 and HTTP/2), routes each request, turns
//! errors into responses in one place, and drains in-flight requests on shutdown.

mod error;
mod request;
pub mod response;
mod router;

pub use error::AppError;
pub use request::{Request, accepts_json, query_param};
pub use response::{Body, Response};
pub use router::Route;

use crate::client::client_ip;
use crate::state::State;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for requests in flight (e.g. a large upload) before giving up.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

pub async fn serve(state: Arc<State>, listener: TcpListener, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper applies header_read_timeout only when a timer is set.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| handle(Arc::clone(&state), req, peer));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("shutdown: requests still running after {DRAIN_DEADLINE:?}, closing"),
    }
}

async fn handle(
    state: Arc<State>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let json_errors =
        path.trim_start_matches('/').starts_with("apis/") || accepts_json(&parts.headers);
    let method = parts.method.clone();
    let client = client_ip(peer.ip(), &parts.headers, &state.config.trusted_proxies);
    let (route_name, result) = match router::resolve(&parts.method, &path) {
        Ok((route, name)) => {
            let client_ip = client;
            let req = Request {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
                client_ip,
                name,
            };
            (route.name(), router::dispatch(&state, route, req).await)
        }
        Err(e) => ("-", Err(e)),
    };
    let mut resp = result.unwrap_or_else(|e| e.into_response(json_errors));
    let h = resp.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on our own
    // form posts, which the cross-site check must refuse.
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::VARY)
        .or_insert(HeaderValue::from_static("Cookie"));
    // The query string is never logged: it may carry a `token`.
    tracing::info!(
        %peer, %client, %method, path = ?path, route = route_name, status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "request"
    );
    Ok(resp)
}
