//! One connection: HTTP/1.1 or HTTP/2 (by ALPN over TLS, by the client's preface over plain
//! TCP), with the timeouts a public server needs and hyper does not give by itself:
//! - the first byte (or the TLS handshake) must come within `first_byte_timeout`;
//! - a connection with no request in progress is closed after `idle_timeout`, whether it never
//!   finished a request head (slowloris, a stalled HTTP/2 preface), idles between keep-alive
//!   requests, or holds an HTTP/2 connection open with nothing on it;
//! - on shutdown, requests in flight get `shutdown_grace`, then the connection is dropped.

use super::gate::{Busy, Gate, Place};
use super::response::Body;
use super::{handle, redirect};
use crate::state::State;
use crate::tls::Tls;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Sockets kept free for the database, logs, data files and the listener itself.
const FD_RESERVE: u64 = 64;

/// What every connection shares.
pub(super) struct Ctx {
    pub state: Arc<State>,
    pub shutdown: CancellationToken,
    pub connections: TaskTracker,
    pub gate: Arc<Gate>,
    builder: auto::Builder<TokioExecutor>,
}

/// hyper's read buffer per HTTP/1 connection (its default, about 400 KiB, let 50 concurrent
/// uploads hold 25 MiB of it, and as much again in multer's copies).
const READ_BUFFER: usize = 64 << 10;

impl Ctx {
    pub fn new(state: Arc<State>, shutdown: CancellationToken, connections: TaskTracker) -> Ctx {
        let limits = &state.config.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper applies header_read_timeout (and HTTP/2 pings) only when a timer is set.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(100)
            .max_buf_size(READ_BUFFER)
            // A client that shuts down its sending side after a complete request
            // (`nc -N`, socat, `shutdown(SHUT_WR)`) still gets its answer.
            .half_close(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(64)
            .max_header_list_size(64 * 1024)
            // Finds peers that vanished during a long transfer.
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let max_connections = limits.max_connections.min(fd_budget());
        if max_connections < limits.max_connections {
            tracing::warn!(
                configured = limits.max_connections,
                used = max_connections,
                "max_connections lowered to what the open-file limit allows"
            );
        }
        let gate = Arc::new(Gate::new(
            max_connections,
            limits.max_connections_per_client,
            state.config.trusted_proxies.clone(),
        ));
        Ctx {
            state,
            shutdown,
            connections,
            gate,
            builder,
        }
    }
}

/// Connections the open-file limit leaves room for (one socket and up to one file each).
fn fd_budget() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft.saturating_sub(FD_RESERVE) / 2)
        .unwrap_or(usize::MAX)
        .max(16)
}

/// Raises the soft open-file limit to the hard one (1024 by default under systemd, far below
/// what thousands of connections need).
pub fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
}

pub(super) async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    place: Place,
    redirect_to_port: Option<u16>,
) {
    if first_byte(&stream, peer, &ctx, &place).await {
        drive(stream, peer, false, redirect_to_port, &ctx, place).await;
    }
}

pub(super) async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    place: Place,
    tls: &Tls,
) {
    // A silent connection never takes one of the (CPU-bounded) handshake places.
    if !first_byte(&stream, peer, &ctx, &place).await {
        return;
    }
    let accepted = tokio::select! {
        accepted = tls.accept(stream) => accepted,
        () = place.activity.kill.cancelled() => return,
    };
    match accepted {
        Ok(stream) => drive(stream, peer, true, None, &ctx, place).await,
        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
    }
}

/// Waits for the connection's first byte (a request or a TLS hello) for `first_byte_timeout`;
/// false if it closed, stayed silent, or its place was taken back meanwhile.
async fn first_byte(stream: &TcpStream, peer: SocketAddr, ctx: &Ctx, place: &Place) -> bool {
    let mut first = [0u8; 1];
    let timeout = ctx.state.config.limits.first_byte_timeout;
    tokio::select! {
        peeked = tokio::time::timeout(timeout, stream.peek(&mut first)) => match peeked {
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::debug!(%peer, "closed: nothing received within first_byte_timeout");
                false
            }
        },
        () = place.activity.kill.cancelled() => false,
    }
}

/// A response body that keeps its request counted as in progress until it is done.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn drive<I>(
    io: I,
    peer: SocketAddr,
    tls: bool,
    redirect_to_port: Option<u16>,
    ctx: &Arc<Ctx>,
    place: Place,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &ctx.state.config.limits;
    let activity = Arc::clone(&place.activity);
    let service = {
        let (state, activity) = (Arc::clone(&ctx.state), Arc::clone(&activity));
        service_fn(move |req: http::Request<Incoming>| {
            let busy = Busy::start(&activity);
            let state = Arc::clone(&state);
            async move {
                let resp = match redirect_to_port {
                    Some(port) => redirect::answer(&state, &req, port),
                    None => handle::handle(state, req, peer, tls).await,
                };
                let resp = resp.map(|inner| Tracked { inner, _busy: busy }.boxed_unsync());
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let conn = ctx.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    // When an idle connection asked to close (or shutdown's grace ends), it is dropped.
    let mut close_at: Option<Instant> = None;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            // Idle, and its place is needed by a new connection.
            () = activity.kill.cancelled() => return,
            () = ctx.shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
                close_at = Some(Instant::now() + limits.shutdown_grace);
            }
            () = tokio::time::sleep(tick) => {
                let idle = activity.idle_for();
                if let Some(at) = close_at
                    && Instant::now() >= at
                    && (shutting_down || idle.is_some())
                {
                    if shutting_down && idle.is_none() {
                        tracing::warn!(%peer, "shutdown: aborting a request still in progress after shutdown_grace");
                    }
                    return;
                }
                if close_at.is_none() && idle.is_some_and(|d| d >= limits.idle_timeout) {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    close_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
    }
}
