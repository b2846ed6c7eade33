//! The `metrics_listen` listener: plain HTTP/1.1 that answers only `GET /metrics`, for an
//! internal address a Prometheus server scrapes. It shares nothing with the main listener's
//! connection places, so a flood of clients there never hides the metrics that would show it;
//! it has a small cap of its own and short timeouts instead.

use super::response::{self, Response};
use crate::state::State;
use http::{HeaderValue, Method, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Scrapers at once; more are closed at once (Prometheus uses one connection per target).
const MAX_CONNECTIONS: usize = 16;
/// A connection is closed after this long, kept alive or not (the scraper reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub(super) async fn run(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            continue;
        };
        let (state, shutdown) = (Arc::clone(&state), shutdown.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(answer(&state, req.method(), req.uri().path()).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                () = shutdown.cancelled() => {}
            }
            drop(place);
        });
    }
}

async fn answer(state: &State, method: &Method, path: &str) -> Response {
    match (path, method) {
        ("/metrics", &Method::GET) => crate::routes::metrics::scrape(state).await,
        ("/metrics", _) => {
            let mut resp =
                response::text(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n".into());
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            resp
        }
        _ => response::text(
            StatusCode::NOT_FOUND,
            "this listener serves only /metrics\n".into(),
        ),
    }
}
