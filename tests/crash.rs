//! Nothing acknowledged is ever lost: the real binary under load, `kill -9`ed at random moments
//! (and once during start-up recovery), restarted on the same data directory, and checked.
//!
//! Each round starts the server, runs 24 concurrent clients (12 posting forms of 0 B to 3 MiB,
//! some with several files; 12 sending chunked REST uploads of up to 4 MiB in 64 KiB - 1 MiB
//! chunks), each from its own 127.0.0.x address so that each has its own deliveries, and kills
//! the server at a random moment. After each restart: every upload whose client got a `302` or
//! `201` is listed complete with its size and SHA-256 and downloads byte-identical; every REST
//! upload with an acknowledged chunk (`200`) resumes from at least that offset (`HEAD`); every
//! item listed complete is the bytes of an upload that was attempted (nothing torn, nothing
//! incomplete shown complete); `tmp/` is empty; every file in `files/` has metadata; `sfx check
//! --quick` is clean. Later rounds continue the REST uploads from their offsets; the last one
//! finishes them all. Alerts go to a JSON webhook: each delivery's idempotency key always comes
//! with the same payload (a kill between sending and recording it resends it: at least once,
//! one key), and each acknowledged item is in exactly one delivery. (An alert whose attempt a
//! kill cut short is only sent again once its 120 s lease has run out: then the test waits.)
//!
//! The RNG is seeded (printed; `SFX_CRASH_SEED=N` repeats a run's choices, though not the
//! scheduling); the figures are printed at the end (`cargo test --test crash -- --nocapture`).

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FORM_CLIENTS: usize = 12;
const REST_CLIENTS: usize = 12;
/// Rounds killed under load; the one after `RECOVERY_ROUND` is also killed during start-up.
const ROUNDS: usize = 5;
const RECOVERY_ROUND: usize = 1;
/// Temp files planted for the start-up to remove, so that recovery takes a while.
const PLANTED_TEMP_FILES: usize = 2000;
const KIB: usize = 1 << 10;
/// How long alerts may take after the last start (an attempt cut short by a kill is due again
/// as soon as the server restarts).
const ALERT_WAIT: Duration = Duration::from_secs(20);

/// Bytes a client uploaded: regenerated from the seed when needed, never kept.
#[derive(Debug, Clone, Copy)]
struct Blob {
    seed: u64,
    size: usize,
}

impl Blob {
    /// The bytes, made on a blocking thread: the test's two runtime threads stay free for I/O.
    async fn bytes(self) -> Vec<u8> {
        tokio::task::spawn_blocking(move || random_bytes(self.size, self.seed))
            .await
            .unwrap()
    }
}

/// SHA-256 on a blocking thread.
async fn sha_of(bytes: impl AsRef<[u8]> + Send + 'static) -> String {
    tokio::task::spawn_blocking(move || sha256_hex(bytes.as_ref()))
        .await
        .unwrap()
}

/// A blob's SHA-256, computed once (in verification only: the load stays cheap for clients).
async fn blob_sha(ledger: &Shared, blob: Blob) -> String {
    if let Some(sha) = ledger.lock().unwrap().shas.get(&blob.seed) {
        return sha.clone();
    }
    let sha = sha_of(blob.bytes().await).await;
    ledger.lock().unwrap().shas.insert(blob.seed, sha.clone());
    sha
}

/// A chunked REST upload, across rounds.
#[derive(Debug, Clone)]
struct Rest {
    blob: Blob,
    filename: String,
    tid: Option<String>,
    /// Bytes acknowledged by a `200` (or `201`).
    acked: usize,
    /// Its item, once known to be complete.
    done: Option<String>,
}

/// What the clients were told, and what they tried.
#[derive(Default)]
struct Ledger {
    /// Items a client was told are stored (form `302`/`201`, REST `201`).
    acked: BTreeMap<String, Blob>,
    /// Items acknowledged by a 201 whose receipt was cut off: found by their bytes.
    acked_unnamed: Vec<Blob>,
    /// Every upload attempted, by size: each complete item must be one of them.
    attempted: HashMap<usize, Vec<Blob>>,
    /// SHA-256 of blobs by seed, once computed.
    shas: HashMap<u64, String>,
    /// Per REST client, its uploads (the last one may be unfinished).
    rest: Vec<Vec<Rest>>,
    form_files: usize,
    acked_chunks: usize,
    acked_chunk_bytes: usize,
    /// Items already downloaded and compared.
    downloaded: BTreeSet<String>,
    /// What went wrong; the test fails on any, after printing the figures.
    failures: Vec<String>,
    /// Acknowledged bytes not found again.
    lost_bytes: usize,
}

type Shared = Arc<Mutex<Ledger>>;

fn fail(ledger: &Shared, what: String) {
    eprintln!("FAILURE: {what}");
    ledger.lock().unwrap().failures.push(what);
}

struct Run {
    tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    rng: fastrand::Rng,
    ledger: Shared,
    starts: usize,
    kills: usize,
    recovery_kills: usize,
    next_seed: u64,
}

impl Run {
    fn log(&self) -> PathBuf {
        self.tmp.path().join(format!("sfx-{}.log", self.starts))
    }

    /// `sfx serve` under umask 077 (so that `sfx check` finds no mode problems: today the
    /// server leaves sfx.db and partial files to the umask).
    fn spawn(&mut self) -> Starting {
        self.starts += 1;
        let cmd = sfx_command(
            &["serve", "--config", self.config.to_str().unwrap()],
            &[],
            Some("077"),
        );
        Binary::spawn(cmd, Some(&self.log()))
    }

    async fn start(&mut self) -> Binary {
        self.spawn().listening().await
    }

    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }
}

fn tmp_entries(data: &Path) -> usize {
    std::fs::read_dir(data.join("tmp")).map_or(0, |d| d.count())
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A client from its own loopback address (its own deliveries), not following redirects.
fn http_from(i: usize) -> reqwest::Client {
    let ip: IpAddr = format!("127.0.0.{}", 10 + i).parse().unwrap();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Form sizes: empty, small, medium, up to 3 MiB.
fn form_size(rng: &mut fastrand::Rng) -> usize {
    match rng.u8(0..10) {
        0 => 0,
        1..=3 => rng.usize(1..4 * KIB),
        4..=7 => rng.usize(64 * KIB..512 * KIB),
        _ => rng.usize(MIB..3 * MIB),
    }
}

/// What each client gets: the server, its own RNG and seeds for its data, the ledger, and
/// whether the server was killed (errors before that are failures).
struct Client {
    addr: std::net::SocketAddr,
    rng: fastrand::Rng,
    seed: u64,
    ledger: Shared,
    killed: Arc<AtomicBool>,
}

impl Client {
    /// An error is a failure unless the server was killed.
    fn unless_killed(&self, what: String) {
        if !self.killed.load(Ordering::SeqCst) {
            fail(&self.ledger, format!("{what} before the kill"));
        }
    }
}

/// Posts forms until the server goes away.
async fn form_client(i: usize, mut c: Client) {
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
async fn send_chunk(
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
async fn head_offset(
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

fn item_of_location(location: &str) -> String {
    location.rsplit('/').next().unwrap_or_default().to_string()
}

/// Sends REST uploads chunk by chunk until the server goes away, resuming the client's
/// unfinished upload first. With `finish_only`, only finishes that one.
async fn rest_client(i: usize, mut c: Client, finish_only: bool) {
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

fn record_done(ledger: &Shared, i: usize, name: String, blob: Blob) {
    let mut l = ledger.lock().unwrap();
    let last = l.rest[i].last_mut().unwrap();
    last.done = Some(name.clone());
    last.acked = blob.size;
    l.acked.insert(name, blob);
}

/// Runs the clients against `bin` and kills it after `kill_after`; with `None`, runs only
/// the REST clients, until their uploads are finished.
async fn load(run: &mut Run, bin: Binary, kill_after: Option<Duration>) -> Option<Binary> {
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

/// Everything the clients were told still holds on the restarted server `bin`.
async fn verify(run: &Run, bin: &Binary, when: &str) {
    let ledger = &run.ledger;
    let listed = listing(bin).await;
    let meta = |name: &str| listed.get(name).map(|v| v["file-meta"].clone());
    // Nothing left in tmp/, no file without metadata, no partial without an incomplete upload.
    let left = tmp_entries(&run.data);
    if left > 0 {
        fail(ledger, format!("{when}: {left} entries left in tmp/"));
    }
    for name in names_in(&run.data.join("files")) {
        if meta(&name).is_none() {
            fail(ledger, format!("{when}: files/{name} has no metadata"));
        }
    }
    for name in names_in(&run.data.join("partial")) {
        if meta(&name).is_none_or(|m| m["complete"] != false) {
            fail(
                ledger,
                format!("{when}: partial/{name} of no incomplete upload"),
            );
        }
    }
    // Every item listed complete is the bytes of some upload attempted: nothing torn, nothing
    // incomplete passed off as complete.
    let attempted = ledger.lock().unwrap().attempted.clone();
    for (name, v) in &listed {
        let m = &v["file-meta"];
        if m["complete"] == true {
            let sha = m["hash"].as_str().unwrap_or_default();
            let size = m["size"].as_u64().unwrap_or(u64::MAX) as usize;
            let mut found = false;
            for blob in attempted.get(&size).into_iter().flatten() {
                if blob_sha(ledger, *blob).await == sha {
                    found = true;
                    break;
                }
            }
            if !found {
                fail(
                    ledger,
                    format!(
                        "{when}: {name} listed complete ({size} bytes, {sha}) is no upload's bytes"
                    ),
                );
            }
        }
    }
    // Acknowledged items: listed complete with their size and SHA-256; new ones downloaded.
    let (acked, downloaded, unnamed) = {
        let l = ledger.lock().unwrap();
        (
            l.acked.clone(),
            l.downloaded.clone(),
            l.acked_unnamed.clone(),
        )
    };
    let complete: BTreeSet<(String, u64)> = listed
        .values()
        .map(|v| &v["file-meta"])
        .filter(|m| m["complete"] == true)
        .map(|m| {
            (
                m["hash"].as_str().unwrap_or_default().to_string(),
                m["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for blob in &unnamed {
        if !complete.contains(&(blob_sha(ledger, *blob).await, blob.size as u64)) {
            fail(
                ledger,
                format!(
                    "{when}: an acknowledged file of {} bytes is not listed",
                    blob.size
                ),
            );
            ledger.lock().unwrap().lost_bytes += blob.size;
        }
    }
    for (name, blob) in &acked {
        let sha = blob_sha(ledger, *blob).await;
        let ok = meta(name).is_some_and(|m| {
            m["complete"] == true && m["size"] == blob.size as u64 && m["hash"] == sha.as_str()
        });
        if !ok {
            fail(
                ledger,
                format!(
                    "{when}: acknowledged {name} ({} bytes) is listed as {:?}",
                    blob.size,
                    meta(name)
                ),
            );
            ledger.lock().unwrap().lost_bytes += blob.size;
            continue;
        }
        if downloaded.contains(name) {
            continue;
        }
        let got = admin_get(bin, &format!("/{name}/+download")).await;
        let body = got.bytes().await.unwrap();
        if body.len() != blob.size || sha_of(body).await != sha {
            fail(ledger, format!("{when}: {name} downloads other bytes"));
            ledger.lock().unwrap().lost_bytes += blob.size;
        } else {
            ledger.lock().unwrap().downloaded.insert(name.clone());
        }
    }
    // REST uploads with acknowledged chunks: resumable from at least there (or complete).
    let http = client();
    let rest: Vec<(usize, Rest)> = {
        let l = ledger.lock().unwrap();
        l.rest
            .iter()
            .enumerate()
            .flat_map(|(i, ups)| ups.iter().map(move |u| (i, u.clone())))
            .filter(|(_, u)| u.done.is_none() && u.tid.is_some())
            .collect()
    };
    for (i, up) in rest {
        let tid = up.tid.as_deref().unwrap();
        match head_offset(&http, bin.addr(), tid).await.unwrap() {
            None => {
                fail(
                    ledger,
                    format!(
                        "{when}: {} ({} bytes acknowledged) is gone",
                        up.filename, up.acked
                    ),
                );
                ledger.lock().unwrap().lost_bytes += up.acked;
            }
            Some((offset, None)) if offset < up.acked => {
                fail(
                    ledger,
                    format!(
                        "{when}: {} resumes at {offset}, {} were acknowledged",
                        up.filename, up.acked
                    ),
                );
                ledger.lock().unwrap().lost_bytes += up.acked - offset;
            }
            // Completed by a chunk whose 201 was lost: acknowledged now.
            Some((_, Some(name))) => record_done(ledger, i, name, up.blob),
            Some(_) => {}
        }
    }
    let check = sfx_command(
        &["check", "--quick", "--config", run.config.to_str().unwrap()],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    if !check.status.success() {
        fail(
            ledger,
            format!(
                "{when}: sfx check --quick: {}",
                String::from_utf8_lossy(&check.stdout)
            ),
        );
    }
    let failures = ledger.lock().unwrap().failures.clone();
    assert!(failures.is_empty(), "{when}: {failures:#?}");
}

/// Acknowledged items in no alert received so far.
fn unalerted(rx: &Receiver, acked: &BTreeSet<String>) -> Vec<String> {
    let alerted: BTreeSet<String> = rx
        .hits("/d")
        .iter()
        .flat_map(|h| {
            let v = h.json();
            let files = v["files"].as_array().cloned().unwrap_or_default();
            files
                .into_iter()
                .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    acked.difference(&alerted).cloned().collect()
}

/// Plants what makes start-up recovery take a while (temp files) and an interrupted REST
/// completion (a partial file moved to files/), then kills the server while it recovers.
async fn kill_during_recovery(run: &mut Run) {
    // An unfinished upload with acknowledged bytes: its partial goes to files/, as if its
    // completion had been cut short.
    let names = names_in(&run.data.join("partial"));
    let tmp = run.data.join("tmp");
    let mut planted = PLANTED_TEMP_FILES;
    for attempt in 0.. {
        assert!(attempt < 5, "never caught the server during recovery");
        for n in 0..planted {
            std::fs::write(tmp.join(format!("up-planted-{attempt}-{n}.part")), b"x").unwrap();
        }
        let mut interrupted = "";
        if let Some(name) = names.iter().nth(attempt) {
            let from = run.data.join("partial").join(name);
            if from.exists() {
                std::fs::rename(&from, run.data.join("files").join(name)).unwrap();
                interrupted = " and an interrupted REST completion";
            }
        }
        let total = tmp_entries(&run.data);
        let starting = run.spawn();
        // Kill once the clean-up is under way, a little later at random.
        let started = Instant::now();
        while tmp_entries(&run.data) == total && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(run.rng.u64(0..10))).await;
        let stdout = starting.kill_9().await;
        run.kills += 1;
        let left = tmp_entries(&run.data);
        if !stdout.contains("listening on") && left > 0 {
            run.recovery_kills += 1;
            println!(
                "killed during start-up recovery of {total} temp files{interrupted}: {left} were left (attempt {attempt})"
            );
            return;
        }
        planted *= 2;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_killed_under_load() {
    let began = Instant::now();
    let seed = std::env::var("SFX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed: {seed} (SFX_CRASH_SEED={seed} repeats its choices)");
    let rx = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("sfx.toml");
    std::fs::write(
        &config,
        format!(
            "{}batch_window = \"300ms\"\n# Operator links in alerts must not change with the port of each restart.\npublic_url = \"https://sfx.example.com\"\nalert_backoff = \"1s\"\n{}[[alerts]]\nkind = \"webhook\"\nname = \"json\"\nurl = \"{}\"\nformat = \"json\"\n",
            base_toml(&data),
            secrets_toml(2),
            rx.url("/d")
        ),
    )
    .unwrap();
    let mut run = Run {
        tmp,
        config,
        data,
        rng: fastrand::Rng::with_seed(seed),
        ledger: Arc::new(Mutex::new(Ledger {
            rest: vec![Vec::new(); REST_CLIENTS],
            ..Ledger::default()
        })),
        starts: 0,
        kills: 0,
        recovery_kills: 0,
        next_seed: 0,
    };
    for round in 0..ROUNDS {
        let bin = run.start().await;
        if round > 0 {
            verify(&run, &bin, &format!("after kill {round}")).await;
        }
        let after = Duration::from_millis(run.rng.u64(300..2500));
        println!("round {round}: kill -9 after {after:?}");
        load(&mut run, bin, Some(after)).await;
        if round == RECOVERY_ROUND {
            kill_during_recovery(&mut run).await;
        }
    }
    // Last start: check, finish every REST upload, then wait for the alerts.
    let bin = run.start().await;
    verify(&run, &bin, "after the last kill").await;
    let bin = load(&mut run, bin, None).await.unwrap();
    verify(&run, &bin, "with all uploads finished").await;
    let acked: BTreeSet<String> = run.ledger.lock().unwrap().acked.keys().cloned().collect();
    let began_waiting = Instant::now();
    loop {
        let missing = unalerted(&rx, &acked);
        if missing.is_empty() {
            break;
        }
        assert!(
            began_waiting.elapsed() < ALERT_WAIT,
            "{} acknowledged items never alerted: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = rx.hits("/d");
    bin.stop().await;
    // One payload per key, whatever the number of attempts; each item in one delivery.
    let mut by_key: BTreeMap<String, Value> = BTreeMap::new();
    for h in &hits {
        let v = h.json();
        assert_eq!(h.key(), v["idempotency_key"], "header and payload agree");
        if let Some(first) = by_key.get(&h.key()) {
            assert_eq!(first, &v, "key {} resent with another payload", h.key());
        } else {
            by_key.insert(h.key(), v);
        }
    }
    let mut deliveries_of: HashMap<String, usize> = HashMap::new();
    for v in by_key.values() {
        for f in v["files"].as_array().unwrap() {
            *deliveries_of
                .entry(f["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for name in &acked {
        assert_eq!(
            deliveries_of.get(name),
            Some(&1),
            "{name} is in one delivery"
        );
    }
    // Offline, a full check (re-hashing every file) is clean too.
    let full = sfx_command(
        &["check", "--config", run.config.to_str().unwrap()],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&full.stdout);
    assert!(full.status.success(), "{report}");

    let l = run.ledger.lock().unwrap();
    let rest_uploads: usize = l.rest.iter().map(Vec::len).sum();
    let acked_bytes: usize = l.acked.values().map(|b| b.size).sum();
    println!("crash test figures (seed {seed}):");
    println!(
        "  rounds: {ROUNDS} killed under load + {} killed during start-up recovery; {} starts, {} kill -9",
        run.recovery_kills, run.starts, run.kills
    );
    println!(
        "  uploads attempted: {} form files, {rest_uploads} REST uploads",
        l.form_files
    );
    println!(
        "  acknowledged: {} items ({acked_bytes} bytes), {} REST chunks ({} bytes)",
        l.acked.len(),
        l.acked_chunks,
        l.acked_chunk_bytes
    );
    println!("  acknowledged bytes lost: {}", l.lost_bytes);
    println!(
        "  alerts: {} deliveries, {} requests ({} repeats of a key)",
        by_key.len(),
        hits.len(),
        hits.len() - by_key.len()
    );
    println!("  {}", report.lines().last().unwrap_or_default());
    println!("  wall time: {:.1} s", began.elapsed().as_secs_f64());
    assert_eq!(l.lost_bytes, 0);
    assert!(l.failures.is_empty(), "{:#?}", l.failures);
}
