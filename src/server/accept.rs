//! Accept loops. Before a connection costs anything it must get a place at the [`Gate`]
//! (see there). A refused plain-HTTP connection gets a one-line `503`/`429` and is closed at
//! once, so the backlog never fills and nobody waits on a connection that will not be served.
//!
//! [`Gate`]: super::gate::Gate

use super::conn::{self, Ctx};
use super::gate::Refusal;
use crate::tls::Tls;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub(super) enum Kind {
    Plain,
    Tls(Arc<Tls>),
    /// Plain HTTP that only answers `308` to HTTPS on this port.
    Redirect {
        https_port: u16,
    },
}

pub(super) async fn run(listener: TcpListener, kind: Kind, ctx: Arc<Ctx>) {
    let kind = Arc::new(kind);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    ctx.gate.log_accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = ctx.shutdown.cancelled() => return,
        };
        let place = match ctx.gate.enter(peer.ip()) {
            Ok(place) => place,
            Err(refusal) => {
                if !matches!(*kind, Kind::Tls(_)) {
                    tokio::spawn(refuse(stream, refusal));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (ctx2, kind) = (Arc::clone(&ctx), Arc::clone(&kind));
        ctx.connections.spawn(async move {
            match &*kind {
                Kind::Plain => conn::serve_plain(stream, peer, ctx2, place, None).await,
                Kind::Redirect { https_port } => {
                    conn::serve_plain(stream, peer, ctx2, place, Some(*https_port)).await
                }
                Kind::Tls(tls) => conn::serve_tls(stream, peer, ctx2, place, tls).await,
            }
        });
    }
}

/// A minimal HTTP/1.1 answer for a connection we will not serve, then close.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (status, text) = match refusal {
        Refusal::Full => (
            "503 Service Unavailable",
            "too many connections; retry in a moment\n",
        ),
        Refusal::PerClient => (
            "429 Too Many Requests",
            "too many connections from your address; close some first\n",
        ),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 10\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
