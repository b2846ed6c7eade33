//! Accept loops. Before a connection costs anything it must get a place: at most
//! `max_connections` in total and `max_connections_per_client` from one address (IPv6: /64;
//! trusted proxies are exempt, their clients are counted per request). A refused plain-HTTP
//! connection gets a one-line `503`/`429` and is closed at once, so the backlog never fills
//! and nobody waits on a connection that will not be served.

use super::conn::{self, Ctx};
use crate::client::client_key;
use crate::tls::Tls;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
            let _place = place;
            match &*kind {
                Kind::Plain => conn::serve_plain(stream, peer, ctx2, None).await,
                Kind::Redirect { https_port } => {
                    conn::serve_plain(stream, peer, ctx2, Some(*https_port)).await
                }
                Kind::Tls(tls) => conn::serve_tls(stream, peer, ctx2, tls).await,
            }
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `max_connections` reached.
    Full,
    /// This address has `max_connections_per_client` open.
    PerClient,
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

/// Counts open connections, in total and per client address.
pub(super) struct Gate {
    max_total: usize,
    max_per_client: usize,
    exempt: Vec<ipnet::IpNet>,
    counts: Mutex<Counts>,
    log: Mutex<LogThrottle>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// A connection's place; given back on drop.
pub(super) struct Place {
    gate: Arc<Gate>,
    key: Option<IpAddr>,
}

impl Gate {
    pub(super) fn new(max_total: usize, max_per_client: usize, exempt: Vec<ipnet::IpNet>) -> Self {
        Gate {
            max_total,
            max_per_client,
            exempt,
            counts: Mutex::new(Counts::default()),
            log: Mutex::new(LogThrottle::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn enter(self: &Arc<Self>, peer: IpAddr) -> Result<Place, Refusal> {
        let key = (!self.exempt.iter().any(|n| n.contains(&peer))).then(|| client_key(peer));
        let mut c = self.counts();
        let refusal = if c.total >= self.max_total {
            Some(Refusal::Full)
        } else if key
            .is_some_and(|k| c.per_client.get(&k).copied().unwrap_or(0) >= self.max_per_client)
        {
            Some(Refusal::PerClient)
        } else {
            None
        };
        if let Some(r) = refusal {
            drop(c);
            self.log_refusal(peer, r);
            return Err(r);
        }
        c.total += 1;
        if let Some(k) = key {
            *c.per_client.entry(k).or_insert(0) += 1;
        }
        Ok(Place {
            gate: Arc::clone(self),
            key,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.counts().total
    }

    fn log_refusal(&self, peer: IpAddr, r: Refusal) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(suppressed) = log.ready() {
            match r {
                Refusal::Full => tracing::warn!(%peer, max = self.max_total, suppressed,
                    "connection refused: max_connections reached"),
                Refusal::PerClient => tracing::warn!(%peer, max = self.max_per_client, suppressed,
                    "connection refused: max_connections_per_client reached"),
            }
        }
    }

    fn log_accept_error(&self, e: &std::io::Error) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(suppressed) = log.ready() {
            tracing::warn!(error = %e, suppressed, "accept failed");
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        c.total -= 1;
        if let Some(k) = self.key
            && let Some(n) = c.per_client.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&k);
            }
        }
    }
}

/// At most one log line a second for a flood of the same event, saying how many it stands for.
#[derive(Default)]
struct LogThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// `Some(suppressed since the last line)` when a line may be written now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_client() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let gate = Arc::new(Gate::new(3, 2, vec![proxy]));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let p1 = gate.enter(a).unwrap();
        let _p2 = gate.enter(a).unwrap();
        assert_eq!(gate.enter(a).err(), Some(Refusal::PerClient));
        drop(p1);
        let _p3 = gate.enter(a).unwrap();
        let proxy_ip: IpAddr = "10.1.2.3".parse().unwrap();
        let _p4 = gate.enter(proxy_ip).unwrap();
        assert_eq!(
            gate.enter(proxy_ip).err(),
            Some(Refusal::Full),
            "a trusted proxy is not capped per client, but counts in total"
        );
        assert_eq!(gate.open(), 3);
    }
}
