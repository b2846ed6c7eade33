//! A real HTTP receiver for alert webhooks: records every request, answers per path (fail the
//! first N, delay, redirect). Listens on 127.0.0.1 only.

use super::eventually;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Hit {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    pub fn key(&self) -> String {
        self.header("idempotency-key")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

#[derive(Default, Clone)]
pub struct Rule {
    /// Answer 500 to this many requests first.
    pub fail_first: usize,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer with this redirect (status, Location) instead.
    pub redirect: Option<(u16, String)>,
}

#[derive(Default)]
struct Shared {
    hits: Vec<Hit>,
    rules: HashMap<String, Rule>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let (addr, task) = serve_on("127.0.0.1:0".parse().unwrap(), Arc::clone(&shared)).await;
        Receiver {
            addr,
            shared,
            task: Some(task),
        }
    }

    /// A receiver that is down: its address is known, nothing listens there.
    pub async fn start_down() -> Receiver {
        let mut r = Receiver::start().await;
        r.down().await;
        r
    }

    /// Stops listening and drops every open connection.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn up(&mut self) {
        assert!(self.task.is_none(), "receiver already up");
        let (_, task) = serve_on(self.addr, Arc::clone(&self.shared)).await;
        self.task = Some(task);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn rule(&self, path: &str, rule: Rule) {
        self.shared
            .lock()
            .unwrap()
            .rules
            .insert(path.to_string(), rule);
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.shared
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    pub fn all_hits(&self) -> Vec<Hit> {
        self.shared.lock().unwrap().hits.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve_on(
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    // Rebinding a just-closed port can race with the old socket going away.
    let listener = eventually(
        &format!("binding {addr}"),
        Duration::from_secs(10),
        async || {
            let bound = tokio::net::TcpListener::bind(addr).await;
            bound.map_err(|e| e.to_string())
        },
    )
    .await;
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Dropped with this task when the receiver goes down: every connection is cut.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = Arc::clone(&shared);
            conns.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = Arc::clone(&shared);
                    async move { answer(req, shared).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    (addr, task)
}

async fn answer(
    req: hyper::Request<Incoming>,
    shared: Arc<Mutex<Shared>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (status, delay, redirect) = {
        let mut s = shared.lock().unwrap();
        s.hits.push(Hit {
            at: Instant::now(),
            method: parts.method.to_string(),
            path: path.clone(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let n = s.hits.iter().filter(|h| h.path == path).count();
        let rule = s.rules.get(&path).cloned().unwrap_or_default();
        let status = if n <= rule.fail_first { 500 } else { 200 };
        (status, rule.delay, rule.redirect)
    };
    tokio::time::sleep(delay).await;
    let mut resp = hyper::Response::builder().status(status);
    if let Some((code, location)) = redirect {
        resp = resp.status(code).header("location", location);
    }
    Ok(resp.body(Full::new(Bytes::from_static(b"ok"))).unwrap())
}
