//! The load of the crash test: form and chunked REST clients from their own loopback
//! addresses, and the ledger of what each was told.

use super::*;

/// Bytes a client uploaded: regenerated from the seed when needed, never kept.
#[derive(Debug, Clone, Copy)]
pub struct Blob {
    pub seed: u64,
    pub size: usize,
}

impl Blob {
    /// The bytes, made on a blocking thread: the test's two runtime threads stay free for I/O.
    pub async fn bytes(self) -> Vec<u8> {
        tokio::task::spawn_blocking(move || random_bytes(self.size, self.seed))
            .await
            .unwrap()
    }
}

/// SHA-256 on a blocking thread.
pub async fn sha_of(bytes: impl AsRef<[u8]> + Send + 'static) -> String {
    tokio::task::spawn_blocking(move || sha256_hex(bytes.as_ref()))
        .await
        .unwrap()
}

/// A blob's SHA-256, computed once (in verification only: the load stays cheap for clients).
pub async fn blob_sha(ledger: &Shared, blob: Blob) -> String {
    if let Some(sha) = ledger.lock().unwrap().shas.get(&blob.seed) {
        return sha.clone();
    }
    let sha = sha_of(blob.bytes().await).await;
    ledger.lock().unwrap().shas.insert(blob.seed, sha.clone());
    sha
}

/// A chunked REST upload, across rounds.
#[derive(Debug, Clone)]
pub struct Rest {
    pub blob: Blob,
    pub filename: String,
    pub tid: Option<String>,
    /// Bytes acknowledged by a `200` (or `201`).
    pub acked: usize,
    /// Its item, once known to be complete.
    pub done: Option<String>,
}

/// What the clients were told, and what they tried.
#[derive(Default)]
pub struct Ledger {
    /// Items a client was told are stored (form `302`/`201`, REST `201`).
    pub acked: BTreeMap<String, Blob>,
    /// Items acknowledged by a 201 whose receipt was cut off: found by their bytes.
    pub acked_unnamed: Vec<Blob>,
    /// Every upload attempted, by size: each complete item must be one of them.
    pub attempted: HashMap<usize, Vec<Blob>>,
    /// SHA-256 of blobs by seed, once computed.
    pub shas: HashMap<u64, String>,
    /// Per REST client, its uploads (the last one may be unfinished).
    pub rest: Vec<Vec<Rest>>,
    pub form_files: usize,
    pub acked_chunks: usize,
    pub acked_chunk_bytes: usize,
    /// Items already downloaded and compared.
    pub downloaded: BTreeSet<String>,
    /// What went wrong; the test fails on any, after printing the figures.
    pub failures: Vec<String>,
    /// Acknowledged bytes not found again.
    pub lost_bytes: usize,
}

pub type Shared = Arc<Mutex<Ledger>>;

pub fn fail(ledger: &Shared, what: String) {
    eprintln!("FAILURE: {what}");
    ledger.lock().unwrap().failures.push(what);
}

/// A client from its own loopback address (its own deliveries), not following redirects.
pub fn http_from(i: usize) -> reqwest::Client {
    let ip: IpAddr = format!("127.0.0.{}", 10 + i).parse().unwrap();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Form sizes: empty, small, medium, up to 3 MiB.
pub fn form_size(rng: &mut fastrand::Rng) -> usize {
    match rng.u8(0..10) {
        0 => 0,
        1..=3 => rng.usize(1..4 * KIB),
        4..=7 => rng.usize(64 * KIB..512 * KIB),
        _ => rng.usize(MIB..3 * MIB),
    }
}

/// What each client gets: the server, its own RNG and seeds for its data, the ledger, and
/// whether the server was killed (errors before that are failures).
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub rng: fastrand::Rng,
    pub seed: u64,
    pub ledger: Shared,
    pub killed: Arc<AtomicBool>,
}

impl Client {
    /// An error is a failure unless the server was killed.
    pub fn unless_killed(&self, what: String) {
        if !self.killed.load(Ordering::SeqCst) {
            fail(&self.ledger, format!("{what} before the kill"));
        }
    }
}

/// Posts forms until the server goes away.
pub async fn form_client(i: usize, mut c: Client) {
    let http = http_from(i);
    loop {
        let count = if c.rng.bool() { 1 } else { c.rng.usize(2..=3) };
        let mut blobs = Vec::new();
        let mut form = Form::new();
        for _ in 0..count {
            c.seed += 1;
            let blob = Blob {
                seed: c.seed,
                size: form_size(&mut c.rng),
            };
            let bytes = blob.bytes().await;
            {
                let mut l = c.ledger.lock().unwrap();
                l.attempted.entry(blob.size).or_default().push(blob);
                l.form_files += 1;
            }
            form = form.part(
                "file",
                Part::bytes(bytes).file_name(format!("f{}.bin", c.seed)),
            );
            blobs.push(blob);
        }
        let mut req = http
            .post(format!("http://{}/+upload", c.addr))
            .basic_auth("user", Some(CUSTOMER))
            .multipart(form);
        // Several files: the JSON receipt (201) names them all; one: bepasty's 302.
        if count > 1 {
            req = req.header("accept", "application/json");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return c.unless_killed(format!("form client {i}: {e}"));
            }
        };
        let names: Vec<String> = match resp.status() {
            StatusCode::FOUND if count == 1 => vec![location_name(&resp)],
            StatusCode::CREATED if count > 1 => match resp.json::<Value>().await {
                Ok(v) => v["items"]
                    .as_array()
                    .map(|a| a.iter().map(|it| it["name"].as_str().unwrap().to_string()))
                    .into_iter()
                    .flatten()
                    .collect(),
                // The 201 arrived: the items are acknowledged even if the receipt was cut off;
                // they are then looked for by their bytes.
                Err(_) => {
                    c.ledger.lock().unwrap().acked_unnamed.extend(&blobs);
                    Vec::new()
                }
            },
            other => {
                return c.unless_killed(format!("form client {i}: status {other}"));
            }
        };
        let mut l = c.ledger.lock().unwrap();
        for (name, blob) in names.into_iter().zip(blobs) {
            l.acked.insert(name, blob);
        }
    }
}

/// One chunk of a REST upload: bytes `range` of `data`, base64 in the body.
pub async fn send_chunk(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    data: &Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
    tid: Option<&str>,
    filename: &str,
) -> reqwest::Result<reqwest::Response> {
    let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, data.len());
    let source = Arc::clone(data);
    let body = tokio::task::spawn_blocking(move || b64(&source[range]))
        .await
        .unwrap();
    let mut req = http
        .post(format!("http://{addr}{ITEMS}"))
        .basic_auth("user", Some(CUSTOMER))
        .header("Content-Range", content_range)
        .body(body);
    req = match tid {
        Some(t) => req.header("Transaction-ID", t),
        None => req.header("Content-Filename", filename),
    };
    req.send().await
}

/// Where an upload stands on the server: `(Upload-Offset, complete item name)`, or `None` if
/// the server does not know the transaction.
pub async fn head_offset(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    tid: &str,
) -> reqwest::Result<Option<(usize, Option<String>)>> {
    let resp = http
        .head(format!("http://{addr}{ITEMS}"))
        .basic_auth("user", Some(CUSTOMER))
        .header("Transaction-ID", tid)
        .send()
        .await?;
    if resp.status() != StatusCode::OK {
        return Ok(None);
    }
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let offset = header("upload-offset").parse().unwrap_or(0);
    let done = (header("upload-complete") == "true")
        .then(|| item_of_location(&header("content-location")));
    Ok(Some((offset, done)))
}

pub fn item_of_location(location: &str) -> String {
    location.rsplit('/').next().unwrap_or_default().to_string()
}

/// Sends REST uploads chunk by chunk until the server goes away, resuming the client's
/// unfinished upload first. With `finish_only`, only finishes that one.
pub async fn rest_client(i: usize, mut c: Client, finish_only: bool) {
    let http = http_from(FORM_CLIENTS + i);
    loop {
        let current = {
            let l = c.ledger.lock().unwrap();
            l.rest[i].last().filter(|r| r.done.is_none()).cloned()
        };
        let mut up = match current {
            Some(up) => up,
            None if finish_only => return,
            None => {
                c.seed += 1;
                let blob = Blob {
                    seed: c.seed,
                    size: c.rng.usize(64 * KIB..4 * MIB),
                };
                let up = Rest {
                    blob,
                    filename: format!("rest-{}.bin", c.seed),
                    tid: None,
                    acked: 0,
                    done: None,
                };
                let mut l = c.ledger.lock().unwrap();
                l.attempted.entry(blob.size).or_default().push(blob);
                l.rest[i].push(up.clone());
                up
            }
        };
        let data = Arc::new(up.blob.bytes().await);
        let mut offset = 0;
        if let Some(tid) = &up.tid {
            match head_offset(&http, c.addr, tid).await {
                Err(e) => return c.unless_killed(format!("REST client {i}: HEAD: {e}")),
                // Verified after each restart; here it only says where to go on.
                Ok(None) => {
                    fail(
                        &c.ledger,
                        format!("REST client {i}: {} is gone", up.filename),
                    );
                    return;
                }
                Ok(Some((_, Some(name)))) => {
                    record_done(&c.ledger, i, name, up.blob);
                    continue;
                }
                Ok(Some((o, None))) => offset = o,
            }
        }
        while up.done.is_none() {
            if offset >= data.len() {
                return fail(
                    &c.ledger,
                    format!(
                        "REST client {i}: {} is stored whole but not complete",
                        up.filename
                    ),
                );
            }
            let len = c.rng.usize(64 * KIB..=MIB).min(data.len() - offset);
            let range = offset..offset + len;
            let resp = match send_chunk(
                &http,
                c.addr,
                &data,
                range,
                up.tid.as_deref(),
                &up.filename,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => return c.unless_killed(format!("REST client {i}: chunk: {e}")),
            };
            match resp.status() {
                StatusCode::OK => {
                    offset += len;
                    up.tid = Some(response_header(&resp, "transaction-id"));
                    let mut l = c.ledger.lock().unwrap();
                    l.acked_chunks += 1;
                    l.acked_chunk_bytes += len;
                    let last = l.rest[i].last_mut().unwrap();
                    last.tid = up.tid.clone();
                    last.acked = offset;
                }
                StatusCode::CREATED => {
                    let name = item_of_location(&response_header(&resp, "content-location"));
                    let mut l = c.ledger.lock().unwrap();
                    l.acked_chunks += 1;
                    l.acked_chunk_bytes += len;
                    drop(l);
                    record_done(&c.ledger, i, name.clone(), up.blob);
                    up.done = Some(name);
                }
                other => {
                    let body = resp.text().await.unwrap_or_default();
                    return c.unless_killed(format!(
                        "REST client {i}: chunk at {offset}: {other} {body}"
                    ));
                }
            }
        }
    }
}

pub fn record_done(ledger: &Shared, i: usize, name: String, blob: Blob) {
    let mut l = ledger.lock().unwrap();
    let last = l.rest[i].last_mut().unwrap();
    last.done = Some(name.clone());
    last.acked = blob.size;
    l.acked.insert(name, blob);
}

/// Runs the clients against `bin` and kills it after `kill_after`; with `None`, runs only
/// the REST clients, until their uploads are finished.
pub async fn load(run: &mut Run, bin: Binary, kill_after: Option<Duration>) -> Option<Binary> {
    let killed = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    let addr = bin.addr();
    let finish_only = kill_after.is_none();
    let mut client = || Client {
        addr,
        rng: fastrand::Rng::with_seed(run.rng.u64(..)),
        seed: run.seed() << 24,
        ledger: Arc::clone(&run.ledger),
        killed: Arc::clone(&killed),
    };
    if !finish_only {
        for i in 0..FORM_CLIENTS {
            clients.spawn(form_client(i, client()));
        }
    }
    for i in 0..REST_CLIENTS {
        clients.spawn(rest_client(i, client(), finish_only));
    }
    let Some(after) = kill_after else {
        while clients.join_next().await.is_some() {}
        return Some(bin);
    };
    tokio::time::sleep(after).await;
    killed.store(true, Ordering::SeqCst);
    bin.kill_9().await;
    run.kills += 1;
    while clients.join_next().await.is_some() {}
    None
}
