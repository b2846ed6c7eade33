//! A TCP proxy on 127.0.0.1 that a test controls, to play the network between a client (e.g.
//! Chromium) and the server: it counts the bytes it forwards upstream, can throttle them, and
//! can cut every live connection and refuse new ones for a while (a network outage).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct CutProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    /// Client→server bytes written to the server.
    forwarded_up: AtomicU64,
    /// Upstream bytes per second, all connections together; 0: unlimited.
    rate: AtomicU64,
    /// Set by `corrupt_once`: the next full read forwarded upstream has its last byte flipped.
    corrupt: AtomicBool,
    net: Mutex<Net>,
}

struct Net {
    /// Cancelled by `cut`: every connection opened before it ends.
    generation: CancellationToken,
    /// Until then, new connections are closed as soon as accepted.
    down_until: Option<Instant>,
    /// When the throttle lets the next byte through.
    next_slot: Instant,
}

impl super::Endpoint for CutProxy {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared
            .net
            .lock()
            .expect("proxy state")
            .generation
            .cancel();
    }
}

impl CutProxy {
    /// A proxy on 127.0.0.1:0 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            upstream,
            forwarded_up: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            corrupt: AtomicBool::new(false),
            net: Mutex::new(Net {
                generation: CancellationToken::new(),
                down_until: None,
                next_slot: Instant::now(),
            }),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let token = {
                    let net = s.net.lock().expect("proxy state");
                    if net.down_until.is_some_and(|t| Instant::now() < t) {
                        // Network down: the connection dies at once.
                        drop(client);
                        continue;
                    }
                    net.generation.clone()
                };
                tokio::spawn(pipe(s.clone(), client, token));
            }
        });
        CutProxy { addr, shared, task }
    }

    /// Client→server bytes forwarded so far (request heads included).
    pub fn forwarded_up(&self) -> u64 {
        self.shared.forwarded_up.load(Ordering::SeqCst)
    }

    /// Starts counting [`CutProxy::forwarded_up`] from zero again.
    pub fn reset_count(&self) {
        self.shared.forwarded_up.store(0, Ordering::SeqCst);
    }

    /// Limits client→server traffic to `bytes_per_sec` (0: no limit).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// A corrupting middlebox: flips one byte of the next full 64 KiB read from a client (the
    /// last byte: body data, past any request head), then forwards faithfully again.
    pub fn corrupt_once(&self) {
        self.shared.corrupt.store(true, Ordering::SeqCst);
    }

    /// An outage: ends every live connection now, and closes new ones for `down_for`.
    pub fn cut(&self, down_for: Duration) {
        let mut net = self.shared.net.lock().expect("proxy state");
        net.generation.cancel();
        net.generation = CancellationToken::new();
        net.down_until = Some(Instant::now() + down_for);
    }

    /// Whether the outage of the last `cut` is over.
    pub fn is_up(&self) -> bool {
        let net = self.shared.net.lock().expect("proxy state");
        net.down_until.is_none_or(|t| Instant::now() >= t)
    }
}

async fn pipe(s: Arc<Shared>, client: TcpStream, token: CancellationToken) {
    let Ok(server) = TcpStream::connect(s.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if n == buf.len() && s.corrupt.swap(false, Ordering::SeqCst) {
                buf[n - 1] ^= 0x55;
            }
            throttle(&s, n).await;
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            s.forwarded_up.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    // Dropping the halves on a cut closes both sockets mid-transfer, as an outage would.
    tokio::select! {
        _ = token.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// Waits until `n` more upstream bytes fit in the configured rate.
async fn throttle(s: &Shared, n: usize) {
    let rate = s.rate.load(Ordering::SeqCst);
    if rate == 0 {
        return;
    }
    let start = {
        let mut net = s.net.lock().expect("proxy state");
        let now = Instant::now();
        let start = net.next_slot.max(now);
        net.next_slot = start + Duration::from_secs_f64(n as f64 / rate as f64);
        start
    };
    tokio::time::sleep_until(start).await;
}
