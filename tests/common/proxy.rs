//! A TCP proxy on 127.0.0.1 in front of a server that counts the bytes clients send through it
//! and can slow them down, so a test can stop a client mid-upload and tell how much it re-sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    /// Bytes written to the server (client → server), all connections.
    upstream: Arc<AtomicU64>,
    /// Client → server bytes per second; 0 = as fast as they come.
    rate: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl super::Endpoint for Proxy {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(AtomicU64::new(0));
        let (up, r) = (upstream.clone(), rate.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, r) = (up.clone(), r.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, up, r).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            upstream,
            rate,
            task,
        }
    }

    pub fn upstream_bytes(&self) -> u64 {
        self.upstream.load(Ordering::SeqCst)
    }

    pub fn reset_count(&self) {
        self.upstream.store(0, Ordering::SeqCst);
    }

    /// Limits client → server traffic to `bytes_per_sec` (0: no limit).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::SeqCst);
    }
}

async fn pipe(client: TcpStream, server: TcpStream, up: Arc<AtomicU64>, rate: Arc<AtomicU64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let to_server = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let r = rate.load(Ordering::SeqCst);
            // Small reads when throttled, so the rate holds within a fraction of a second.
            let want = if r == 0 {
                buf.len()
            } else {
                buf.len().min((r / 20).max(1) as usize)
            };
            let n = match cr.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            up.fetch_add(n as u64, Ordering::SeqCst);
            if r > 0 {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / r as f64)).await;
            }
        }
        // The client went away (or was killed): the server sees the body end here.
        let _ = sw.shutdown().await;
    };
    let to_client = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}
