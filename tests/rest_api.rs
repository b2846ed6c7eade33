//! bepasty's REST API (`/apis/rest`): the chunked base64 upload as the real clients send it
//! (the OpenSVC agent's one-shot POST, bepasty-cli's 1 MiB chunks and stdin mode, the Ruby
//! client's line-broken base64), every error answer, resuming (after a 409, after a restart, with
//! the HEAD offset query), incomplete-upload expiry, and the item operations with their
//! permissions. Real clients themselves are run in `rest_clients.rs`.
//!
//! Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// bepasty-cli's read size, and the base64 body of one full chunk.
const CLI_CHUNK: usize = MIB;
const CLI_BODY: usize = 1_398_104;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `bytes B-E/T` for the raw bytes `begin..end` (end exclusive).
fn cr(begin: usize, end: usize, total: usize) -> String {
    format!("bytes {}-{}/{}", begin, end - 1, total)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts the status (showing the body when it differs).
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// The `Transaction-ID` every 200 and 201 must carry (bepasty-cli crashes without it).
    #[track_caller]
    fn tid(&self) -> String {
        let t = self
            .header("transaction-id")
            .unwrap_or_else(|| panic!("no Transaction-ID on a {}", self.status))
            .to_string();
        assert!(!t.is_empty());
        t
    }

    /// A 200 progress answer: `{}`, JSON, Transaction-ID, no Content-Location.
    #[track_caller]
    fn expect_progress(&self) -> String {
        self.expect(200);
        assert_eq!(self.json(), serde_json::json!({}));
        assert!(self.header("content-location").is_none());
        self.tid()
    }

    /// A 201 completion: `{}`, Transaction-ID, and `Content-Location: /apis/rest/items/<name>`
    /// as a path. Returns the item name.
    #[track_caller]
    fn expect_created(&self) -> String {
        self.expect(201);
        assert_eq!(self.json(), serde_json::json!({}));
        self.tid();
        let loc = self
            .header("content-location")
            .expect("Content-Location on 201");
        item_from_location(loc)
    }

    /// bepasty's JSON error: `{"error":{"code":N,"message":"..."}}` with a JSON content type.
    #[track_caller]
    fn expect_error(&self, code: u16, message_part: &str) {
        self.expect(code);
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "error content type: {:?}",
            self.header("content-type")
        );
        let msg = assert_error_body(&self.json(), code);
        assert!(
            msg.contains(message_part),
            "message {msg:?} lacks {message_part:?}"
        );
        assert!(self.header("content-location").is_none());
    }
}

/// The item name of a `Content-Location`, which must be a bare path.
#[track_caller]
fn item_from_location(loc: &str) -> String {
    let name = loc
        .strip_prefix("/apis/rest/items/")
        .unwrap_or_else(|| panic!("Content-Location is not a /apis/rest/items/ path: {loc}"));
    assert!(
        !name.is_empty() && !name.contains('/') && !name.contains(':'),
        "{loc}"
    );
    assert!(
        name.bytes().all(|b| sfx::items::NAME_ALPHABET.contains(&b)),
        "{loc}"
    );
    name.to_string()
}

async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body").to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn with_auth(rb: reqwest::RequestBuilder, secret: Option<&str>) -> reqwest::RequestBuilder {
    match secret {
        Some(s) => rb.basic_auth("user", Some(s)),
        None => rb,
    }
}

/// A POST to `path` with these headers and body.
async fn post_to(
    srv: &TestServer,
    path: &str,
    secret: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut rb = with_auth(client().post(srv.url(path)), secret).body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    send(rb).await
}

async fn post(
    srv: &TestServer,
    secret: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Reply {
    post_to(srv, ITEMS, secret, headers, body).await
}

/// One chunk of `file` (raw `begin..end`) declaring total `total`, as bepasty-cli sends it.
async fn chunk(
    srv: &TestServer,
    secret: &str,
    tid: Option<&str>,
    file: &[u8],
    begin: usize,
    end: usize,
    total: usize,
) -> Reply {
    let range = cr(begin, end, total);
    let mut h = vec![
        ("Content-Range", range.as_str()),
        ("Content-Type", "application/octet-stream"),
        ("Content-Filename", "chunked.bin"),
    ];
    if let Some(t) = tid {
        h.push(("Transaction-ID", t));
    }
    post(srv, Some(secret), &h, b64(&file[begin..end])).await
}

/// Uploads `file` in chunks of `size` raw bytes; returns the item name and Transaction-ID.
async fn upload_chunked(
    srv: &TestServer,
    secret: &str,
    file: &[u8],
    size: usize,
) -> (String, String) {
    let mut tid: Option<String> = None;
    let mut begin = 0;
    loop {
        let end = (begin + size).min(file.len());
        let r = chunk(srv, secret, tid.as_deref(), file, begin, end, file.len()).await;
        if end == file.len() {
            let name = r.expect_created();
            let t = r.tid();
            if let Some(prev) = &tid {
                assert_eq!(&t, prev, "the same Transaction-ID on every answer");
            }
            return (name, t);
        }
        let t = r.expect_progress();
        if let Some(prev) = &tid {
            assert_eq!(&t, prev);
        }
        tid = Some(t);
        begin = end;
    }
}

/// A one-shot upload of `file`; returns the item name.
async fn upload(srv: &TestServer, secret: &str, file: &[u8]) -> String {
    upload_chunked(srv, secret, file, file.len().max(1)).await.0
}

/// Starts an upload with its first chunk only; returns the Transaction-ID.
async fn start_upload(srv: &TestServer, secret: &str, file: &[u8], first: usize) -> String {
    chunk(srv, secret, None, file, 0, first, file.len())
        .await
        .expect_progress()
}

/// A continuation of `tid`: `body` for the raw bytes that `range` (a `Content-Range`) names.
async fn continue_upload(
    srv: &TestServer,
    secret: Option<&str>,
    tid: &str,
    range: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    post(
        srv,
        secret,
        &[("Content-Range", range), ("Transaction-ID", tid)],
        body,
    )
    .await
}

async fn get(srv: &TestServer, path: &str, secret: Option<&str>) -> Reply {
    send(with_auth(client().get(srv.url(path)), secret)).await
}

async fn meta(srv: &TestServer, name: &str, secret: Option<&str>) -> Reply {
    get(srv, &format!("{ITEMS}/{name}"), secret).await
}

async fn file_meta(srv: &TestServer, name: &str) -> Value {
    let r = meta(srv, name, Some(ADMIN)).await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["uri"], format!("{ITEMS}/{name}"));
    v["file-meta"].clone()
}

async fn download(srv: &TestServer, name: &str, secret: Option<&str>) -> Reply {
    get(srv, &format!("{ITEMS}/{name}/download"), secret).await
}

/// Downloads with the admin secret and compares with `expected`, and checks the stored SHA-256.
async fn assert_stored(srv: &TestServer, name: &str, expected: &[u8]) {
    let r = download(srv, name, Some(ADMIN)).await;
    r.expect(200);
    assert_eq!(r.body.len(), expected.len(), "downloaded size");
    assert!(r.body == expected, "downloaded bytes differ");
    let fm = file_meta(srv, name).await;
    assert_eq!(fm["size"], expected.len() as u64);
    assert_eq!(fm["hash"], sha256_hex(expected));
    assert_eq!(fm["complete"], true);
}

async fn head_offset(srv: &TestServer, secret: Option<&str>, tid: &str) -> Reply {
    send(with_auth(client().head(srv.url(ITEMS)), secret).header("Transaction-ID", tid)).await
}

/// (Upload-Offset, Upload-Length, Upload-Complete) of a transaction, asked by `secret`.
#[track_caller]
fn offsets(r: &Reply) -> (u64, u64, bool) {
    r.expect(200);
    let num = |h: &str| {
        r.header(h)
            .unwrap_or_else(|| panic!("no {h}"))
            .parse::<u64>()
            .unwrap()
    };
    let complete = match r.header("upload-complete") {
        Some("true") => true,
        Some("false") => false,
        other => panic!("Upload-Complete: {other:?}"),
    };
    (num("upload-offset"), num("upload-length"), complete)
}

/// [`offsets`] of a transaction the customers' secret started, asked by its owner.
async fn customer_offsets(srv: &TestServer, tid: &str) -> (u64, u64, bool) {
    offsets(&head_offset(srv, Some(CUSTOMER), tid).await)
}

/// After refused chunks, the customers' transaction `tid` for `file` still stands at `offset`;
/// its owner sends the rest and the item is stored whole. Returns the item name.
async fn assert_resumes(srv: &TestServer, tid: &str, file: &[u8], offset: usize) -> String {
    let total = file.len();
    let progress = customer_offsets(srv, tid).await;
    assert_eq!(progress, (offset as u64, total as u64, false));
    let name = chunk(srv, CUSTOMER, Some(tid), file, offset, total, total)
        .await
        .expect_created();
    assert_stored(srv, &name, file).await;
    name
}

/// "Content-Range inconsistent. Last byte on Server: N" -> N.
fn last_byte_on_server(r: &Reply) -> usize {
    r.expect_error(409, "Content-Range inconsistent. Last byte on Server: ");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    msg.rsplit(": ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{msg}"))
}

/// Runs the real `curl`, never through a proxy.
async fn curl_np(args: &[&str]) -> CurlOutput {
    let mut all = vec!["--noproxy", "*"];
    all.extend_from_slice(args);
    curl(&all).await
}

// ---------------------------------------------------------------------------------------------
// Limits and the vendor agent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_is_public_and_a_max_size_file_fits_one_body() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    // The Ruby client asks first, without credentials.
    let r = get(&srv, "/apis/rest", None).await;
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    let max = v["MAX_ALLOWED_FILE_SIZE"].as_u64().expect("integer");
    let body = v["MAX_BODY_SIZE"].as_u64().expect("integer");
    assert_eq!(max, MIB as u64);
    assert!(
        body >= (max.div_ceil(3)) * 4,
        "MAX_BODY_SIZE {body} < base64 of {max}"
    );

    // A max-size file in one request, with Ruby's newline every 60 characters: accepted.
    let file = random_bytes(MIB, 1);
    let ruby = ruby_encode64(&file);
    assert!(
        ruby.len() as u64 <= body,
        "the advertised body size fits Ruby's encoding"
    );
    let range = cr(0, MIB, MIB);
    let name = post(&srv, Some(CUSTOMER), &[("Content-Range", &range)], ruby)
        .await
        .expect_created();
    assert_stored(&srv, &name, &file).await;

    // One byte more is refused at once, from the declared total.
    let range = format!("bytes 0-9/{}", MIB + 1);
    post(
        &srv,
        Some(CUSTOMER),
        &[("Content-Range", &range)],
        b64(&random_bytes(10, 2)),
    )
    .await
    .expect_error(413, "");
    assert_eq!(srv.item_names(), vec![name]);
    srv.stop().await;
}

/// One HTTP/1.1 exchange on a raw socket: the head exactly as given, then the body.
/// Returns the status, the head and the (whole) body.
async fn raw_exchange(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, String, String) {
    let answer = raw_request(addr, &[head.as_bytes(), body].concat()).await;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no whole answer: {answer:?}"));
    let len: usize = header_value(head, "content-length")
        .expect("a Content-Length on the answer")
        .parse()
        .unwrap();
    assert_eq!(body.len(), len, "the whole body");
    (
        status_of(head).expect("a status line"),
        head.to_string(),
        body.to_string(),
    )
}

/// A1/A2/A5: the vendor agent's single POST, byte for byte as python-requests puts it on the wire
/// (header order of requests: session defaults, the agent's dict, then auth). The agent's dict
/// spells `Content-length`; requests replaces its value with the body length, so here it carries
/// the base64 length under the agent's spelling (the real requests run is in rest_clients.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_agent_one_shot_replay() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let tarball = std::fs::read(support_tarball(tmp.path())).unwrap();
    for (namespace, expected_name) in [
        ("", "_svc1_at_node1.tar.gz"),
        ("ns1", "ns1_svc1_at_node1.tar.gz"),
    ] {
        let payload = b64(&tarball);
        let size = tarball.len();
        let head = format!(
            "POST /apis/rest/items HTTP/1.1\r\n\
             Host: {addr}\r\n\
             User-Agent: python-requests/2.32.3\r\n\
             Accept-Encoding: gzip, deflate\r\n\
             Accept: */*\r\n\
             Connection: keep-alive\r\n\
             Content-Type: application/octet-stream\r\n\
             Content-Filename: {namespace}_svc1_at_node1.tar.gz\r\n\
             Content-length: {len}\r\n\
             Content-Range: bytes 0-{last}/{size}\r\n\
             Maxlife-Unit: DAYS\r\n\
             Maxlife-Value: 7\r\n\
             Authorization: Basic dXNlcjpzdXBwb3J0\r\n\r\n",
            addr = srv.addr,
            len = payload.len(),
            last = size - 1,
        );
        let before = sfx::now();
        let (status, head, body) = raw_exchange(srv.addr, &head, payload.as_bytes()).await;
        let h = |n: &str| header_value(&head, n);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body, "{}");
        assert!(h("transaction-id").is_some_and(|t| !t.is_empty()));
        // The agent prints "uploaded as https://sfx.opensvc.com<Content-Location>".
        let loc = h("content-location").expect("Content-Location: the agent's only success test");
        assert!(loc.starts_with('/'), "a path, not a URL: {loc}");
        let name = item_from_location(&loc);
        let printed = format!("uploaded as https://sfx.opensvc.com{loc}");
        assert_eq!(
            printed,
            format!("uploaded as https://sfx.opensvc.com/apis/rest/items/{name}")
        );
        // Support staff open that path with a read secret.
        let r = get(&srv, &loc, Some(READER)).await;
        r.expect(200);
        let fm = &r.json()["file-meta"];
        assert_eq!(fm["filename"], expected_name);
        assert_eq!(fm["type"], "application/octet-stream");
        assert_eq!(fm["size"], size as u64);
        assert_eq!(fm["hash"], sha256_hex(&tarball));
        assert_eq!(fm["complete"], true);
        assert_eq!(fm["locked"], false);
        let uploaded = fm["timestamp-upload"].as_i64().unwrap();
        assert!((before - 1..=sfx::now() + 1).contains(&uploaded));
        let expiry = fm["timestamp-max-life"].as_i64().unwrap();
        assert!(
            (expiry - uploaded - 7 * 86400).abs() <= 2,
            "7-day expiry: {expiry} vs {uploaded}"
        );
        let dl = download(&srv, &name, Some(READER)).await;
        dl.expect(200);
        assert_eq!(dl.body, tarball);
        assert_eq!(srv.stored_bytes(&name).await, tarball);
    }
    assert!(srv.partial_files().is_empty());
    srv.stop().await;
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM in /proc/PID/status")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// A3: a 200 MiB tarball in one POST (a 267 MiB base64 body) to the real binary: 201, the exact
/// bytes and SHA-256, and the server's peak RSS stays far below the body size (the body is
/// decoded as it streams). curl streams the body from a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_one_shot_body_streams_with_flat_memory() {
    const SIZE: usize = 200 * MIB;
    const LIMIT_KIB: u64 = 100 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("big.tar.gz");
    let encoded = tmp.path().join("big.b64");
    // Native tools make the 200 MiB quickly and without holding it in this process.
    let sh = format!(
        "head -c {SIZE} /dev/urandom > '{r}' && base64 -w 0 '{r}' > '{e}'",
        r = raw.display(),
        e = encoded.display()
    );
    assert!(
        Command::new("sh")
            .args(["-c", &sh])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), SIZE as u64);
    let body_len = std::fs::metadata(&encoded).unwrap().len();
    assert_eq!(body_len, (SIZE as u64).div_ceil(3) * 4);
    let sha = external_sha256(&raw);

    let data_dir = tmp.path().join("data");
    let toml = format!(
        "{}max_file_size = \"1GiB\"\n{}",
        base_toml(&data_dir),
        secrets_toml(2)
    );
    let config = write_config(tmp.path(), &toml);
    let bin = Binary::start(
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        Some(&tmp.path().join("sfx.log")),
    )
    .await;
    let pid = bin.pid();
    let idle_kib = vm_hwm_kib(pid);

    let started = Instant::now();
    let range = format!("Content-Range: bytes 0-{}/{SIZE}", SIZE - 1);
    let headers_file = tmp.path().join("headers");
    let out = curl_np(&[
        "-sS",
        "-X",
        "POST",
        "-T",
        encoded.to_str().unwrap(),
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Filename: big.tar.gz",
        "-H",
        &range,
        "-H",
        "Maxlife-Unit: DAYS",
        "-H",
        "Maxlife-Value: 7",
        "-u",
        &format!("user:{CUSTOMER}"),
        "-D",
        headers_file.to_str().unwrap(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &bin.url(ITEMS),
    ])
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "201");
    let head = std::fs::read_to_string(&headers_file).unwrap();
    let loc = header_value(&head, "content-location").expect("Content-Location");
    let name = item_from_location(&loc);
    assert!(header_value(&head, "transaction-id").is_some());

    let peak_kib = vm_hwm_kib(pid);
    println!(
        "{SIZE} bytes in one {body_len}-byte body: {elapsed:?}, server peak RSS {} MiB (idle {} MiB)",
        peak_kib / 1024,
        idle_kib / 1024
    );
    assert!(
        peak_kib < LIMIT_KIB,
        "server peak RSS {peak_kib} KiB for a {body_len}-byte body: the body is being buffered"
    );

    let fm = common::file_meta(&bin, &name).await;
    assert_eq!(fm["size"], SIZE as u64);
    assert_eq!(fm["hash"], sha);
    assert_eq!(fm["filename"], "big.tar.gz");
    let stored = data_dir.join("files").join(&name);
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), SIZE as u64);
    assert_eq!(external_sha256(&stored), sha);
    drop(bin);
}

// ---------------------------------------------------------------------------------------------
// What the other clients send

/// B2/B8: bepasty-cli's 1 MiB chunks of a 3.5 MiB file: 200, 200, 200, 201, each with the same
/// Transaction-ID; full chunks are 1,398,104-byte bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_chunks_replay() {
    let srv = TestServer::start().await;
    let file = random_bytes(3 * MIB + MIB / 2, 3);
    let total = file.len();
    let mut tid: Option<String> = None;
    let mut statuses = Vec::new();
    let mut name = None;
    for (i, begin) in (0..total).step_by(CLI_CHUNK).enumerate() {
        let end = (begin + CLI_CHUNK).min(total);
        let body = b64(&file[begin..end]);
        if end - begin == CLI_CHUNK {
            assert_eq!(body.len(), CLI_BODY);
        }
        let range = cr(begin, end, total);
        let len = body.len().to_string();
        let mut h = vec![
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
            ("Content-Filename", "/some/dir/big.bin"),
            ("Content-Length", len.as_str()),
        ];
        if let Some(t) = &tid {
            h.push(("Transaction-ID", t));
        }
        let r = post(&srv, Some(CUSTOMER), &h, body).await;
        statuses.push(r.status.as_u16());
        let t = r.tid();
        if let Some(prev) = &tid {
            assert_eq!(&t, prev, "chunk {i}");
        }
        if end == total {
            name = Some(r.expect_created());
        } else {
            r.expect_progress();
            let progress = customer_offsets(&srv, &t).await;
            assert_eq!(progress, (end as u64, total as u64, false));
        }
        tid = Some(t);
    }
    assert_eq!(statuses, vec![200, 200, 200, 201]);
    let name = name.unwrap();
    assert_stored(&srv, &name, &file).await;
    // The path as typed is reduced to its last component.
    assert_eq!(file_meta(&srv, &name).await["filename"], "big.bin");
    assert!(srv.partial_files().is_empty());
    srv.stop().await;
}

/// B3/B4: bepasty-cli reading stdin declares `offset+len+1` until its last, short chunk:
/// completion is decided per request, never pinned to the first total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_mode_growing_totals() {
    let srv = TestServer::start().await;
    let file = random_bytes(3 * MIB + MIB / 2, 4);
    let mut tid: Option<String> = None;
    let mut totals = Vec::new();
    let mut statuses = Vec::new();
    let mut name = None;
    let mut offset = 0;
    while offset < file.len() {
        let end = (offset + CLI_CHUNK).min(file.len());
        let len = end - offset;
        let total = if len < CLI_CHUNK {
            offset + len
        } else {
            offset + len + 1
        };
        totals.push(total);
        let range = cr(offset, end, total);
        let mut h = vec![
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
            ("Content-Filename", "piped.bin"),
        ];
        if let Some(t) = &tid {
            h.push(("Transaction-ID", t));
        }
        let r = post(&srv, Some(CUSTOMER), &h, b64(&file[offset..end])).await;
        statuses.push(r.status.as_u16());
        if end == file.len() {
            name = Some(r.expect_created());
        } else {
            let t = r.expect_progress();
            // Upload-Length is the latest declared total.
            assert_eq!(
                customer_offsets(&srv, &t).await,
                (end as u64, total as u64, false)
            );
            tid = Some(t);
        }
        offset = end;
    }
    assert_eq!(totals, vec![1048577, 2097153, 3145729, 3670016]);
    assert_eq!(statuses, vec![200, 200, 200, 201]);
    let name = name.unwrap();
    assert_stored(&srv, &name, &file).await;
    assert_eq!(file_meta(&srv, &name).await["filename"], "piped.bin");

    // B4: stdin of exactly 1 MiB never sends a completing chunk: the item stays incomplete,
    // is not downloadable, and is listed as incomplete.
    let exact = random_bytes(MIB, 5);
    let range = cr(0, MIB, MIB + 1);
    let r = post(
        &srv,
        Some(CUSTOMER),
        &[("Content-Range", &range), ("Content-Filename", "exact.bin")],
        b64(&exact),
    )
    .await;
    r.expect_progress();
    let list = get(&srv, ITEMS, Some(LISTER)).await;
    list.expect(200);
    let list = list.json();
    let incomplete: Vec<&Value> = list
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v["file-meta"]["complete"] == false)
        .collect();
    assert_eq!(incomplete.len(), 1, "{list}");
    assert_eq!(incomplete[0]["file-meta"]["filename"], "exact.bin");
    let inc_name = incomplete[0]["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    meta(&srv, &inc_name, Some(ADMIN))
        .await
        .expect_error(409, "incomplete");
    download(&srv, &inc_name, Some(ADMIN))
        .await
        .expect_error(409, "incomplete");
    srv.stop().await;
}

/// B9: `-u http://host/` makes bepasty-cli post to `//apis/rest/items`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_slash_routes_like_single() {
    let srv = TestServer::start().await;
    let file = random_bytes(2500, 6);
    let (r1, r2) = (cr(0, 1000, 2500), cr(1000, 2500, 2500));
    let first = post_to(
        &srv,
        "//apis/rest/items",
        Some(CUSTOMER),
        &[("Content-Range", &r1), ("Content-Filename", "slash.bin")],
        b64(&file[..1000]),
    )
    .await;
    let tid = first.expect_progress();
    let name = post_to(
        &srv,
        "//apis/rest/items",
        Some(CUSTOMER),
        &[("Content-Range", &r2), ("Transaction-ID", &tid)],
        b64(&file[1000..]),
    )
    .await
    .expect_created();
    assert_stored(&srv, &name, &file).await;

    // And with curl, whose path is sent verbatim.
    let tmp = tempfile::tempdir().unwrap();
    let enc = tmp.path().join("x.b64");
    std::fs::write(&enc, b64(&file)).unwrap();
    let out = curl_np(&[
        "-sS",
        "-i",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Range: bytes 0-2499/2500",
        "--data-binary",
        &format!("@{}", enc.display()),
        &format!("http://user:{CUSTOMER}@{}//apis/rest/items", srv.addr),
    ])
    .await;
    assert!(out.stdout.starts_with("HTTP/1.1 201"), "{}", out.stdout);
    let name = item_from_location(&header_value(&out.stdout, "content-location").unwrap());
    assert_stored(&srv, &name, &file).await;
    srv.stop().await;
}

/// Ruby's `Base64.encode64`: a newline every 60 characters and one at the end.
fn ruby_encode64(d: &[u8]) -> String {
    b64(d)
        .as_bytes()
        .chunks(60)
        .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
        .collect()
}

/// D1/D2/D3: the Ruby client (bepastyrb): GET /apis/rest without auth, chunks of MAX_BODY_SIZE
/// raw bytes, `encode64` bodies, empty Content-Type, user `bepasty`, upper-case Maxlife-Unit,
/// Transaction-ID from the first answer only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_client_replay() {
    let srv = TestServer::start_with("max_file_size = \"256KiB\"").await;
    let info = get(&srv, "/apis/rest", None).await;
    info.expect(200);
    let info = info.json();
    let chunk_size = info["MAX_BODY_SIZE"].as_u64().unwrap() as usize;
    let max = info["MAX_ALLOWED_FILE_SIZE"].as_u64().unwrap() as usize;
    let file = random_bytes(max - 1234, 7);
    assert!(file.len() <= chunk_size);
    let mut first_tid: Option<String> = None;
    let mut location = None;
    for begin in (0..file.len()).step_by(chunk_size) {
        let end = (begin + chunk_size).min(file.len());
        let range = cr(begin, end, file.len());
        let mut h = vec![
            ("Content-Range", range.as_str()),
            ("Content-Type", ""),
            ("Content-Filename", "dump.bin"),
            ("Maxlife-Unit", "DAYS"),
            ("Maxlife-Value", "1"),
        ];
        if let Some(t) = &first_tid {
            h.push(("Transaction-ID", t));
        }
        let rb = client()
            .post(srv.url(ITEMS))
            .basic_auth("bepasty", Some(CUSTOMER))
            .body(ruby_encode64(&file[begin..end]));
        let rb = h.iter().fold(rb, |rb, (k, v)| rb.header(*k, *v));
        let r = send(rb).await;
        assert!(r.status.is_success(), "{}", r.text());
        if first_tid.is_none() {
            first_tid = Some(r.tid());
        }
        if let Some(l) = r.header("content-location") {
            location = Some(l.to_string());
        }
    }
    let name = item_from_location(&location.expect("a Content-Location"));
    assert_stored(&srv, &name, &file).await;
    let fm = file_meta(&srv, &name).await;
    assert_eq!(fm["type"], "application/octet-stream", "empty Content-Type");
    assert_eq!(fm["filename"], "dump.bin");
    let life =
        fm["timestamp-max-life"].as_i64().unwrap() - fm["timestamp-upload"].as_i64().unwrap();
    assert!((life - 86400).abs() <= 2, "{life}");

    // The same encoding split into several chunks, and with CRLF line breaks (MIME style).
    let file = random_bytes(100_000, 8);
    let mut tid: Option<String> = None;
    let mut name = None;
    for begin in (0..file.len()).step_by(30_000) {
        let end = (begin + 30_000).min(file.len());
        let body: String = b64(&file[begin..end])
            .as_bytes()
            .chunks(76)
            .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
            .collect();
        let range = cr(begin, end, file.len());
        let mut h = vec![("Content-Range", range.as_str()), ("Content-Type", "")];
        if let Some(t) = &tid {
            h.push(("Transaction-ID", t));
        }
        let r = post(&srv, Some(CUSTOMER), &h, body).await;
        if end == file.len() {
            name = Some(r.expect_created());
        } else {
            tid = Some(r.expect_progress());
        }
    }
    let name = name.unwrap();
    assert_stored(&srv, &name, &file).await;
    // No filename: bepasty's `<name>.bin`.
    assert_eq!(
        file_meta(&srv, &name).await["filename"],
        format!("{name}.bin")
    );
    srv.stop().await;
}

/// The body's Content-Type never changes how it is read: curl's `--data-binary` default
/// (form-urlencoded, which makes bepasty store an empty file) still stores the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_content_type_does_not_change_parsing() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_bytes(5000, 9);
    let enc = tmp.path().join("x.b64");
    std::fs::write(&enc, b64(&file)).unwrap();
    for ct in [
        None,
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
    ] {
        let mut args = vec![
            "-sS".to_string(),
            "-i".into(),
            "-H".into(),
            "Content-Range: bytes 0-4999/5000".into(),
            "-H".into(),
            "Content-Filename: notes.bin".into(),
            "--data-binary".into(),
            format!("@{}", enc.display()),
            srv.url_with_secret(CUSTOMER, ITEMS),
        ];
        if let Some(ct) = ct {
            args.push("-H".into());
            args.push(format!("Content-Type: {ct}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = curl_np(&args).await;
        assert!(
            out.stdout.starts_with("HTTP/1.1 201"),
            "{ct:?}: {}",
            out.stdout
        );
        let name = item_from_location(&header_value(&out.stdout, "content-location").unwrap());
        assert_stored(&srv, &name, &file).await;
        let fm = file_meta(&srv, &name).await;
        assert!(
            !fm["type"].as_str().unwrap().contains("form"),
            "a form type is not the file's type: {}",
            fm["type"]
        );
    }
    srv.stop().await;
}

/// curl with `-T` on a chunk over 1 MiB sends `Expect: 100-continue`; two chunks, the second
/// with the first answer's Transaction-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_chunked_upload_with_expect_continue() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_bytes(3 * MIB, 10);
    let half = 3 * MIB / 2;
    let (a, b) = (tmp.path().join("a.b64"), tmp.path().join("b.b64"));
    std::fs::write(&a, b64(&file[..half])).unwrap();
    std::fs::write(&b, b64(&file[half..])).unwrap();
    let url = srv.url_with_secret(CUSTOMER, ITEMS);
    let run = |path: std::path::PathBuf, range: String, tid: Option<String>| {
        let url = url.clone();
        async move {
            let mut args = vec![
                "-sS".to_string(),
                "-i".into(),
                "-X".into(),
                "POST".into(),
                "-T".into(),
                path.display().to_string(),
                "-H".into(),
                format!("Content-Range: {range}"),
                "-H".into(),
                "Content-Type: application/octet-stream".into(),
            ];
            if let Some(t) = tid {
                args.push("-H".into());
                args.push(format!("Transaction-ID: {t}"));
            }
            args.push(url);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl_np(&args).await
        }
    };
    let started = Instant::now();
    let first = run(a, cr(0, half, file.len()), None).await;
    assert!(
        first.stdout.contains("HTTP/1.1 100 Continue"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("HTTP/1.1 200"), "{}", first.stdout);
    let tid = header_value(final_head(&first.stdout), "transaction-id").expect("Transaction-ID");
    let second = run(b, cr(half, file.len(), file.len()), Some(tid.clone())).await;
    assert!(second.stdout.contains("HTTP/1.1 201"), "{}", second.stdout);
    assert_eq!(
        header_value(final_head(&second.stdout), "transaction-id"),
        Some(tid)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no waiting out curl's 1 s expect timeout per request: {:?}",
        started.elapsed()
    );
    let loc = header_value(final_head(&second.stdout), "content-location").unwrap();
    assert_stored(&srv, &item_from_location(&loc), &file).await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Resuming

/// D6: a wrong offset is a 409 whose message tells where to resume; the client resumes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_409() {
    let srv = TestServer::start().await;
    let file = random_bytes(3000, 11);
    // A first chunk must start at 0; nothing is created otherwise.
    let r = chunk(&srv, CUSTOMER, None, &file, 1000, 2000, 3000).await;
    assert_eq!(last_byte_on_server(&r), 0);
    assert!(srv.item_names().is_empty());

    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    // Skipping ahead.
    let r = chunk(&srv, CUSTOMER, Some(&tid), &file, 2000, 3000, 3000).await;
    assert_eq!(last_byte_on_server(&r), 1000);
    // Resending the first chunk (a retry whose answer was lost).
    let r = chunk(&srv, CUSTOMER, Some(&tid), &file, 0, 1000, 3000).await;
    let resume_at = last_byte_on_server(&r);
    assert_eq!(resume_at, 1000);
    // Overlapping the stored part.
    let r = chunk(&srv, CUSTOMER, Some(&tid), &file, 500, 3000, 3000).await;
    assert_eq!(last_byte_on_server(&r), 1000);
    // Nothing of the refused chunks was kept.
    assert_eq!(customer_offsets(&srv, &tid).await, (1000, 3000, false));
    let r = chunk(&srv, CUSTOMER, Some(&tid), &file, resume_at, 3000, 3000).await;
    let name = r.expect_created();
    assert_eq!(r.tid(), tid);
    assert_stored(&srv, &name, &file).await;
    srv.stop().await;
}

/// An incomplete transaction survives a restart: the offset is kept, the SHA-256 is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_resumes_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let file = random_bytes(2 * MIB + 12345, 12);
    let srv = TestServer::start_in(tmp.path(), "").await;
    let tid = start_upload(&srv, CUSTOMER, &file, MIB).await;
    chunk(&srv, CUSTOMER, Some(&tid), &file, MIB, 2 * MIB, file.len())
        .await
        .expect_progress();
    srv.stop().await;

    let srv = TestServer::start_in(tmp.path(), "").await;
    assert_eq!(
        customer_offsets(&srv, &tid).await,
        (2 * MIB as u64, file.len() as u64, false)
    );
    // A wrong offset after the restart still names the stored size.
    let r = chunk(&srv, CUSTOMER, Some(&tid), &file, MIB, 2 * MIB, file.len()).await;
    assert_eq!(last_byte_on_server(&r), 2 * MIB);
    let name = chunk(
        &srv,
        CUSTOMER,
        Some(&tid),
        &file,
        2 * MIB,
        file.len(),
        file.len(),
    )
    .await
    .expect_created();
    assert_stored(&srv, &name, &file).await;
    assert!(srv.partial_files().is_empty());
    srv.stop().await;
}

/// `HEAD /apis/rest/items` with a Transaction-ID: stored bytes, latest total, completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_offset_query() {
    let srv = TestServer::start().await;
    let file = random_bytes(5000, 13);
    let tid = start_upload(&srv, CUSTOMER, &file, 2000).await;
    let r = head_offset(&srv, Some(CUSTOMER), &tid).await;
    assert_eq!(offsets(&r), (2000, 5000, false));
    assert_eq!(r.tid(), tid);
    assert!(r.body.is_empty(), "HEAD has no body");
    // Only the credential that created it may ask; unknown tokens are not found.
    head_offset(&srv, Some(ADMIN), &tid).await.expect(403);
    head_offset(&srv, Some(READER), &tid).await.expect(403);
    head_offset(&srv, None, &tid).await.expect(403);
    head_offset(&srv, Some(CUSTOMER), "no-such-transaction")
        .await
        .expect(404);
    // HEAD without a Transaction-ID is the list's HEAD (list permission).
    send(client().head(srv.url(ITEMS)).basic_auth("u", Some(LISTER)))
        .await
        .expect(200);

    let name = chunk(&srv, CUSTOMER, Some(&tid), &file, 2000, 5000, 5000)
        .await
        .expect_created();
    let r = head_offset(&srv, Some(CUSTOMER), &tid).await;
    assert_eq!(offsets(&r), (5000, 5000, true));
    assert_eq!(
        r.header("content-location"),
        Some(format!("{ITEMS}/{name}").as_str())
    );
    srv.stop().await;
}

/// Two uploads at once, interleaved and truly concurrent, do not interfere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_transactions() {
    let srv = TestServer::start().await;
    let a = random_bytes(3 * MIB, 14);
    let b = random_bytes(3 * MIB - 7, 15);
    // Interleaved, one request at a time.
    let ta = start_upload(&srv, CUSTOMER, &a, MIB).await;
    let tb = start_upload(&srv, CUSTOMER, &b, MIB).await;
    assert_ne!(ta, tb);
    chunk(&srv, CUSTOMER, Some(&tb), &b, MIB, 2 * MIB, b.len())
        .await
        .expect_progress();
    chunk(&srv, CUSTOMER, Some(&ta), &a, MIB, 2 * MIB, a.len())
        .await
        .expect_progress();
    // The last chunks at the same time.
    let (ra, rb) = tokio::join!(
        chunk(&srv, CUSTOMER, Some(&ta), &a, 2 * MIB, a.len(), a.len()),
        chunk(&srv, CUSTOMER, Some(&tb), &b, 2 * MIB, b.len(), b.len()),
    );
    let (na, nb) = (ra.expect_created(), rb.expect_created());
    assert_ne!(na, nb);
    assert_stored(&srv, &na, &a).await;
    assert_stored(&srv, &nb, &b).await;

    // Whole uploads in parallel.
    let c = random_bytes(2 * MIB + 1, 16);
    let d = random_bytes(2 * MIB + 2, 17);
    let ((nc, tc), (nd, td)) = tokio::join!(
        upload_chunked(&srv, CUSTOMER, &c, 300_000),
        upload_chunked(&srv, CUSTOMER, &d, 300_000),
    );
    assert_ne!(tc, td);
    assert_stored(&srv, &nc, &c).await;
    assert_stored(&srv, &nd, &d).await;
    srv.stop().await;
}

/// Incomplete uploads idle longer than `incomplete_ttl` are removed with their partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_incomplete_uploads_are_removed() {
    let srv = TestServer::start_with("incomplete_ttl = \"1s\"\nsweep_interval = \"200ms\"").await;
    let done = random_bytes(1000, 18);
    let kept = upload(&srv, CUSTOMER, &done).await;
    let file = random_bytes(4000, 19);
    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    assert_eq!(srv.item_names().len(), 2);
    assert_eq!(srv.partial_files().len(), 1);
    wait_until(
        "the idle incomplete upload to be removed",
        Duration::from_secs(10),
        || srv.item_names().len() == 1 && srv.partial_files().is_empty(),
    )
    .await;
    assert_eq!(srv.item_names(), vec![kept.clone()], "complete items stay");
    chunk(&srv, CUSTOMER, Some(&tid), &file, 1000, 4000, 4000)
        .await
        .expect_error(400, "transaction");
    head_offset(&srv, Some(CUSTOMER), &tid).await.expect(404);
    assert_stored(&srv, &kept, &done).await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Transactions belong to one item and one credential

/// The token is random, long, and says nothing about the item name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_id_is_opaque() {
    let srv = TestServer::start().await;
    let file = random_bytes(100, 20);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = chunk(&srv, CUSTOMER, None, &file, 0, 100, 100).await;
        let name = r.expect_created();
        let tid = r.tid();
        assert!(tid.len() >= 32, "{tid}");
        assert!(!tid.contains(&name));
        assert_ne!(tid, b64(name.as_bytes()), "not bepasty's base64(name)");
        assert!(!seen.contains(&tid));
        seen.push(tid);
    }
    // bepasty's guessable form (base64 of a name) opens nothing.
    let name = srv.item_names()[0].clone();
    let r = chunk(
        &srv,
        CUSTOMER,
        Some(&b64(name.as_bytes())),
        &file,
        0,
        100,
        100,
    )
    .await;
    r.expect_error(400, "transaction");
    srv.stop().await;
}

/// Another credential's Transaction-ID is refused (403) even with create permission, and
/// nothing is written; the owner then finishes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_credentials_transaction_is_403() {
    let srv = TestServer::start().await;
    let file = random_bytes(3000, 21);
    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    // ADMIN has create (admin implies it) but did not start this upload.
    chunk(&srv, ADMIN, Some(&tid), &file, 1000, 2000, 3000)
        .await
        .expect_error(403, "");
    // No create at all.
    chunk(&srv, READER, Some(&tid), &file, 1000, 2000, 3000)
        .await
        .expect_error(403, "");
    let other = random_bytes(1000, 22);
    let range = cr(1000, 2000, 3000);
    continue_upload(&srv, None, &tid, &range, b64(&other))
        .await
        .expect_error(403, "");
    assert_resumes(&srv, &tid, &file, 1000).await;
    srv.stop().await;
}

/// A completed transaction cannot be written to (bepasty appended to it): 409, item unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_transaction_is_409() {
    let srv = TestServer::start().await;
    let file = random_bytes(3000, 23);
    let (name, tid) = upload_chunked(&srv, CUSTOMER, &file, 1000).await;
    let extra = random_bytes(4, 24);
    let range = cr(3000, 3004, 3004);
    continue_upload(&srv, Some(CUSTOMER), &tid, &range, b64(&extra))
        .await
        .expect_error(409, "");
    // Resending the last chunk (a retry) and rewriting from 0 are refused too.
    chunk(&srv, CUSTOMER, Some(&tid), &file, 2000, 3000, 3000)
        .await
        .expect_error(409, "");
    chunk(&srv, CUSTOMER, Some(&tid), &file, 0, 3000, 3000)
        .await
        .expect_error(409, "");
    // Not even the admin can use the token to overwrite.
    chunk(&srv, ADMIN, Some(&tid), &file, 0, 3000, 3000)
        .await
        .expect(403);
    assert_stored(&srv, &name, &file).await;
    assert_eq!(srv.item_names(), vec![name]);
    srv.stop().await;
}

/// Anonymous uploads (when `default_permissions` grants create) must be able to continue their
/// own transaction: bepasty-cli without `-p` sends every chunk without a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_create_can_continue_its_own_transaction() {
    let srv = TestServer::start_with("default_permissions = [\"create\"]").await;
    let file = random_bytes(3000, 25);
    let r1 = cr(0, 1000, 3000);
    let tid = post(&srv, None, &[("Content-Range", &r1)], b64(&file[..1000]))
        .await
        .expect_progress();
    // A secret's holder cannot take it over.
    chunk(&srv, CUSTOMER, Some(&tid), &file, 1000, 3000, 3000)
        .await
        .expect_error(403, "");
    let r2 = cr(1000, 3000, 3000);
    let name = continue_upload(&srv, None, &tid, &r2, b64(&file[1000..]))
        .await
        .expect_created();
    assert_stored(&srv, &name, &file).await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_malformed_content_range_is_400() {
    let srv = TestServer::start().await;
    let body = b64(b"0123456789");
    post(&srv, Some(CUSTOMER), &[], body.clone())
        .await
        .expect_error(400, "Content-Range not specified");
    for bad in [
        "",
        "bytes",
        "bytes 0-10/10",
        "bytes 5-2/10",
        "bytes */10",
        "bytes 0-9/*",
        "items 0-9/10",
        "bytes 0--1/0",
        "bytes -1-8/10",
        "bytes 0-9/99999999999999999999999",
        "garbage",
    ] {
        post(
            &srv,
            Some(CUSTOMER),
            &[("Content-Range", bad)],
            body.clone(),
        )
        .await
        .expect_error(400, "Content-Range");
    }
    // The same on a continuation.
    let file = random_bytes(20, 26);
    let tid = start_upload(&srv, CUSTOMER, &file, 10).await;
    post(
        &srv,
        Some(CUSTOMER),
        &[("Transaction-ID", &tid)],
        b64(&file[10..]),
    )
    .await
    .expect_error(400, "Content-Range");
    assert_eq!(customer_offsets(&srv, &tid).await, (10, 20, false));
    assert_eq!(srv.item_names().len(), 1, "only the started upload");
    srv.stop().await;
}

/// Undecodable base64: 400, and a first chunk leaves no item (bepasty left an orphan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_base64_is_400_and_leaves_nothing() {
    let srv = TestServer::start().await;
    for (range, bad) in [
        ("bytes 0-0/1", "a"),
        ("bytes 0-2/3", "ab$d"),
        ("bytes 0-2/3", "YWJj!"),
        ("bytes 0-1/2", "YQ==YQ=="),
        ("bytes 0-0/1", "YQ==x"),
        ("bytes 0-0/1", "Y==="),
        ("bytes 0-2/3", "@@@@"),
        ("bytes 0-2/3", "YW Jj\n\t-"),
    ] {
        post(&srv, Some(CUSTOMER), &[("Content-Range", range)], bad)
            .await
            .expect_error(400, "Could not decode data body");
    }
    assert!(srv.item_names().is_empty());
    assert!(srv.partial_files().is_empty());
    // On a continuation the stored part stays and the transaction goes on.
    let file = random_bytes(30, 27);
    let tid = start_upload(&srv, CUSTOMER, &file, 15).await;
    continue_upload(
        &srv,
        Some(CUSTOMER),
        &tid,
        "bytes 15-29/30",
        "!!!!not base64!!!!",
    )
    .await
    .expect_error(400, "Could not decode data body");
    assert_resumes(&srv, &tid, &file, 15).await;
    srv.stop().await;
}

/// The decoded length must be exactly E-B+1; otherwise 400 and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_length_must_match_the_range() {
    let srv = TestServer::start().await;
    let file = random_bytes(40, 28);
    // First chunk shorter / longer than announced: no item.
    for (range, body) in [
        ("bytes 0-19/40", b64(&file[..10])),
        ("bytes 0-9/40", b64(&file[..20])),
        ("bytes 0-39/40", b64(&file[..39])),
    ] {
        post(&srv, Some(CUSTOMER), &[("Content-Range", range)], body)
            .await
            .expect_error(400, "");
    }
    assert!(srv.item_names().is_empty());
    assert!(srv.partial_files().is_empty());
    // Continuation: too long, too short; the offset does not move and no junk is kept.
    let tid = start_upload(&srv, CUSTOMER, &file, 10).await;
    for body in [
        b64(&file[10..30]),
        b64(&file[10..15]),
        b64(&random_bytes(25, 29)),
    ] {
        continue_upload(&srv, Some(CUSTOMER), &tid, "bytes 10-19/40", body)
            .await
            .expect_error(400, "");
        assert_eq!(customer_offsets(&srv, &tid).await, (10, 40, false));
    }
    chunk(&srv, CUSTOMER, Some(&tid), &file, 10, 20, 40)
        .await
        .expect_progress();
    let name = chunk(&srv, CUSTOMER, Some(&tid), &file, 20, 40, 40)
        .await
        .expect_created();
    assert_stored(&srv, &name, &file).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxlife_headers() {
    let srv = TestServer::start_with("max_lifetime = \"forever\"").await;
    let file = random_bytes(10, 30);
    let body = b64(&file);
    for (unit, value, msg) in [
        ("FORTNIGHT", "1", "maxlife-unit"),
        ("DAYS", "x", "maxlife-value"),
        ("DAYS", "-5", "maxlife-value"),
        ("DAYS", "0", "maxlife-value"),
    ] {
        post(
            &srv,
            Some(CUSTOMER),
            &[
                ("Content-Range", "bytes 0-9/10"),
                ("Maxlife-Unit", unit),
                ("Maxlife-Value", value),
            ],
            body.clone(),
        )
        .await
        .expect_error(400, msg);
    }
    assert!(
        srv.item_names().is_empty(),
        "no orphans (bepasty left some)"
    );
    assert!(srv.partial_files().is_empty());
    // Case-insensitive unit; FOREVER is -1; nothing given is the default (30 days).
    for (unit, value, expected) in [
        (Some("days"), Some("2"), 2 * 86400),
        (Some("Weeks"), Some("1"), 7 * 86400),
        (Some("HOURS"), Some("3"), 3 * 3600),
        (Some("FOREVER"), Some("1"), -1),
        (None, None, 30 * 86400),
    ] {
        let mut h = vec![("Content-Range", "bytes 0-9/10")];
        if let Some(u) = unit {
            h.push(("Maxlife-Unit", u));
        }
        if let Some(v) = value {
            h.push(("Maxlife-Value", v));
        }
        let name = post(&srv, Some(CUSTOMER), &h, body.clone())
            .await
            .expect_created();
        let fm = file_meta(&srv, &name).await;
        let max = fm["timestamp-max-life"].as_i64().unwrap();
        if expected < 0 {
            assert_eq!(max, -1, "{unit:?}");
        } else {
            let life = max - fm["timestamp-upload"].as_i64().unwrap();
            assert!((life - expected).abs() <= 2, "{unit:?}: {life}");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_transaction_is_400() {
    let srv = TestServer::start().await;
    for tid in [
        "bm9uZXhpc3Q=",
        "x",
        &"A".repeat(43),
        "two words",
        &"y".repeat(300),
    ] {
        post(
            &srv,
            Some(CUSTOMER),
            &[("Content-Range", "bytes 0-2/3"), ("Transaction-ID", tid)],
            b64(b"abc"),
        )
        .await
        .expect_error(400, "Could not find storage item for transaction id");
    }
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_create_permission_is_403() {
    let srv = TestServer::start().await;
    let body = b64(b"abc");
    let h = [("Content-Range", "bytes 0-2/3")];
    for secret in [
        None,
        Some(""),
        Some("wrong"),
        Some(READER),
        Some(LISTER),
        Some(DELETER),
    ] {
        let mut rb = client().post(srv.url(ITEMS)).body(body.clone());
        if let Some(s) = secret {
            rb = rb.basic_auth("user", Some(s));
        }
        let r = send(rb.header(h[0].0, h[0].1)).await;
        r.expect_error(403, "");
        assert!(
            r.header("www-authenticate").is_none(),
            "bepasty never asks (403, not 401)"
        );
    }
    assert!(srv.item_names().is_empty());
    // The username is ignored.
    for user in ["user", "bepasty", "x", ""] {
        let rb = client()
            .post(srv.url(ITEMS))
            .basic_auth(user, Some(CUSTOMER))
            .header(h[0].0, h[0].1)
            .body(body.clone());
        send(rb).await.expect_created();
    }
    srv.stop().await;
}

/// T over max_file_size is refused at the first chunk (413) and on a continuation that grows T
/// past it; a body over the base64 size of max_file_size too. Nothing stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_413() {
    let srv = TestServer::start_with("max_file_size = \"64KiB\"").await;
    let max = 64 * 1024;
    let over = format!("bytes 0-9/{}", max + 1);
    post(
        &srv,
        Some(CUSTOMER),
        &[("Content-Range", &over)],
        b64(&random_bytes(10, 31)),
    )
    .await
    .expect_error(413, "");
    assert!(srv.item_names().is_empty());
    assert!(srv.partial_files().is_empty());

    // A continuation may grow T (stdin mode), but not past the maximum.
    let file = random_bytes(max, 32);
    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    let grow = format!("bytes 1000-1999/{}", max + 10);
    continue_upload(&srv, Some(CUSTOMER), &tid, &grow, b64(&file[1000..2000]))
        .await
        .expect_error(413, "");
    let name = assert_resumes(&srv, &tid, &file, 1000).await;

    // A body far larger than any allowed file (curl waits for 100-continue and gets the 413).
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.b64");
    std::fs::write(&big, b64(&random_bytes(2 * MIB, 33))).unwrap();
    let out = curl_np(&[
        "-sS",
        "-X",
        "POST",
        "-T",
        big.to_str().unwrap(),
        "-H",
        "Content-Range: bytes 0-9/10",
        "-w",
        "\n%{http_code}",
        &srv.url_with_secret(CUSTOMER, ITEMS),
    ])
    .await;
    let (body, code) = out.stdout.rsplit_once('\n').unwrap();
    assert_eq!(code, "413", "{}", out.stderr);
    assert_error_body(&serde_json::from_str(body).unwrap(), 413);
    assert_eq!(srv.item_names(), vec![name]);
    assert!(srv.partial_files().is_empty());
    srv.stop().await;
}

/// Everything under /apis/ answers errors as bepasty's JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json() {
    let srv = TestServer::start().await;
    meta(&srv, "ZZZZZZZZ", Some(ADMIN))
        .await
        .expect_error(404, "");
    meta(&srv, "not-a-name!", Some(ADMIN))
        .await
        .expect_error(404, "");
    download(&srv, "ZZZZZZZZ", Some(ADMIN))
        .await
        .expect_error(404, "");
    meta(&srv, "ZZZZZZZZ", Some(CUSTOMER))
        .await
        .expect_error(403, "");
    get(&srv, ITEMS, Some(CUSTOMER)).await.expect_error(403, "");
    get(&srv, "/apis/rest/nothing", None)
        .await
        .expect_error(404, "");
    let r = send(client().put(srv.url(ITEMS)).basic_auth("u", Some(CUSTOMER))).await;
    r.expect_error(405, "");
    let r = send(client().get(srv.url(&format!("{ITEMS}/ZZZZZZZZ/modify")))).await;
    r.expect_error(405, "");
    let r = send(client().post(srv.url(&format!("{ITEMS}/ZZZZZZZZ")))).await;
    r.expect_error(405, "");
    for action in ["modify", "delete", "lock", "unlock"] {
        op(&srv, "ZZZZZZZZ", action, None)
            .await
            .expect_error(403, "");
    }
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Items: metadata, download, operations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_keys_and_hash_at_completion() {
    let srv = TestServer::start_with("max_lifetime = \"forever\"").await;
    let file = random_bytes(70_000, 34);
    let r = post(
        &srv,
        Some(CUSTOMER),
        &[
            ("Content-Range", "bytes 0-69999/70000"),
            ("Content-Type", "application/gzip"),
            ("Content-Filename", "logs.tar.gz"),
            ("Maxlife-Unit", "FOREVER"),
            ("Maxlife-Value", "1"),
        ],
        b64(&file),
    )
    .await;
    let name = r.expect_created();
    // Right away, no background hashing.
    let fm = file_meta(&srv, &name).await;
    for key in [
        "filename",
        "size",
        "type",
        "hash",
        "timestamp-upload",
        "timestamp-download",
        "timestamp-max-life",
        "locked",
        "complete",
    ] {
        assert!(fm.get(key).is_some(), "file-meta lacks {key}: {fm}");
    }
    assert_eq!(fm["filename"], "logs.tar.gz");
    assert_eq!(fm["size"], 70_000);
    assert_eq!(fm["type"], "application/gzip");
    assert_eq!(fm["hash"], sha256_hex(&file));
    assert_eq!(fm["timestamp-max-life"], -1);
    assert_eq!(fm["timestamp-download"], 0);
    assert_eq!(fm["locked"], false);
    assert_eq!(fm["complete"], true);
    assert!((fm["timestamp-upload"].as_i64().unwrap() - sfx::now()).abs() <= 5);

    let dl = download(&srv, &name, Some(READER)).await;
    dl.expect(200);
    assert_eq!(dl.body, file);
    assert!(
        dl.header("content-disposition")
            .unwrap()
            .contains("logs.tar.gz")
    );
    // The download time is recorded.
    eventually("timestamp-download", Duration::from_secs(5), async || {
        let fm = file_meta(&srv, &name).await;
        if fm["timestamp-download"].as_i64().unwrap() > 0 {
            Ok(())
        } else {
            Err(fm.to_string())
        }
    })
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_ranges_206_and_416() {
    let srv = TestServer::start().await;
    let file = random_bytes(10_000, 35);
    let name = upload(&srv, CUSTOMER, &file).await;
    let path = format!("{ITEMS}/{name}/download");
    let ranged = |r: &'static str| {
        send(
            client()
                .get(srv.url(&path))
                .basic_auth("u", Some(READER))
                .header("Range", r),
        )
    };
    let r = ranged("bytes=0-9").await;
    r.expect(206);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/10000"));
    assert_eq!(r.body, &file[..10]);
    let r = ranged("bytes=9990-").await;
    r.expect(206);
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body, &file[9990..]);
    let r = ranged("bytes=-5").await;
    r.expect(206);
    assert_eq!(r.body, &file[9995..]);
    let r = ranged("bytes=20000-").await;
    r.expect(416);
    assert_eq!(r.header("content-range"), Some("bytes */10000"));
    let r = ranged("bytes=20000-").await;
    r.expect_error(416, "");
    let r = download(&srv, &name, Some(READER)).await;
    r.expect(200);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.body, file);
    srv.stop().await;
}

/// bepasty: detail and download of an incomplete item are 409 ("Upload incomplete"), even for
/// an admin; so are delete (non-admin) and lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_item_is_409() {
    let srv = TestServer::start().await;
    let file = random_bytes(2000, 36);
    start_upload(&srv, CUSTOMER, &file, 1000).await;
    let names = srv.item_names();
    assert_eq!(names.len(), 1);
    let name = &names[0];
    for secret in [READER, ADMIN] {
        meta(&srv, name, Some(secret))
            .await
            .expect_error(409, "incomplete");
        download(&srv, name, Some(secret))
            .await
            .expect_error(409, "incomplete");
    }
    op(&srv, name, "delete", Some(DELETER))
        .await
        .expect_error(409, "incomplete");
    // The web delete button applies the same rule.
    let web = client()
        .post(srv.url(&format!("/{name}/+delete")))
        .basic_auth("x", Some(DELETER))
        .form(&[("next", "/+list")])
        .send()
        .await
        .unwrap();
    assert_eq!(web.status(), StatusCode::CONFLICT);
    assert_eq!(srv.item_names().len(), 1);
    op(&srv, name, "lock", Some(ADMIN))
        .await
        .expect_error(409, "incomplete");
    // Permission is checked first: no hint that the item exists.
    meta(&srv, name, Some(CUSTOMER)).await.expect_error(403, "");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_item_is_404() {
    let srv = TestServer::start_with("default_lifetime = \"1s\"\nsweep_interval = \"1h\"").await;
    let file = random_bytes(100, 37);
    let name = upload(&srv, CUSTOMER, &file).await;
    let gone = eventually("the item to expire", Duration::from_secs(10), async || {
        let r = meta(&srv, &name, Some(ADMIN)).await;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(r);
        }
        r.expect(200);
        Err(r.text())
    })
    .await;
    gone.expect_error(404, "");
    download(&srv, &name, Some(ADMIN))
        .await
        .expect_error(404, "");
    op(&srv, &name, "delete", Some(ADMIN))
        .await
        .expect_error(404, "");
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

async fn op(srv: &TestServer, name: &str, action: &str, secret: Option<&str>) -> Reply {
    post_to(srv, &format!("{ITEMS}/{name}/{action}"), secret, &[], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_unlock_are_for_admins() {
    let srv = TestServer::start().await;
    let file = random_bytes(500, 38);
    let name = upload(&srv, CUSTOMER, &file).await;
    for secret in [
        None,
        Some(CUSTOMER),
        Some(READER),
        Some(LISTER),
        Some(DELETER),
    ] {
        op(&srv, &name, "lock", secret).await.expect_error(403, "");
    }
    let r = op(&srv, &name, "lock", Some(ADMIN)).await;
    r.expect(200);
    assert_eq!(r.json(), serde_json::json!({}));
    op(&srv, &name, "lock", Some(ADMIN))
        .await
        .expect_error(409, "locked already is True.");
    // Locked: readable by admins only.
    meta(&srv, &name, Some(READER)).await.expect_error(403, "");
    download(&srv, &name, Some(READER))
        .await
        .expect_error(403, "");
    assert_eq!(file_meta(&srv, &name).await["locked"], true);
    let dl = download(&srv, &name, Some(ADMIN)).await;
    dl.expect(200);
    assert_eq!(dl.body, file);
    // ... and cannot be deleted or modified by non-admins.
    op(&srv, &name, "delete", Some(DELETER))
        .await
        .expect_error(403, "");
    for secret in [None, Some(CUSTOMER), Some(READER), Some(DELETER)] {
        op(&srv, &name, "unlock", secret)
            .await
            .expect_error(403, "");
    }
    op(&srv, &name, "unlock", Some(ADMIN)).await.expect(200);
    op(&srv, &name, "unlock", Some(ADMIN))
        .await
        .expect_error(409, "locked already is False.");
    meta(&srv, &name, Some(READER)).await.expect(200);
    assert_eq!(file_meta(&srv, &name).await["locked"], false);
    srv.stop().await;
}

const EDITOR: &str = "editor-secret";

async fn modify_item(
    srv: &TestServer,
    name: &str,
    secret: Option<&str>,
    content_type: &str,
    body: &'static str,
) -> Reply {
    let path = format!("{ITEMS}/{name}/modify");
    post_to(srv, &path, secret, &[("Content-Type", content_type)], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_needs_modify_permission() {
    let srv = TestServer::start_with(&format!(
        "[[secrets]]\nlabel = \"editors\"\nsecret = \"{EDITOR}\"\npermissions = [\"read\", \"modify\"]\n"
    ))
    .await;
    let file = random_bytes(500, 39);
    let name = upload(&srv, CUSTOMER, &file).await;
    let modify = |secret: Option<&'static str>, ct: &'static str, body: &'static str| {
        modify_item(&srv, &name, secret, ct, body)
    };
    let change = r#"{"filename": "renamed.log", "type": "text/plain"}"#;
    // A create-only secret never changes anything (bepasty let `create` modify).
    for secret in [
        None,
        Some(CUSTOMER),
        Some(READER),
        Some(LISTER),
        Some(DELETER),
    ] {
        modify(secret, "application/json", change)
            .await
            .expect_error(403, "");
    }
    let fm = file_meta(&srv, &name).await;
    assert_eq!(fm["filename"], "chunked.bin");
    modify(Some(EDITOR), "text/plain", change)
        .await
        .expect_error(415, "");
    modify(Some(EDITOR), "application/json", "{not json")
        .await
        .expect_error(400, "");
    let r = modify(Some(EDITOR), "application/json", change).await;
    r.expect(200);
    assert_eq!(r.json(), serde_json::json!({}));
    let fm = file_meta(&srv, &name).await;
    assert_eq!(fm["filename"], "renamed.log");
    assert_eq!(fm["type"], "text/plain");
    assert_eq!(fm["hash"], sha256_hex(&file), "content untouched");
    let dl = download(&srv, &name, Some(EDITOR)).await;
    assert!(
        dl.header("content-disposition")
            .unwrap()
            .contains("renamed.log")
    );
    assert_eq!(dl.body, file);
    // Empty values are ignored; a path is reduced like an upload's filename.
    modify(
        Some(EDITOR),
        "application/json",
        r#"{"filename": "", "type": "application/pdf"}"#,
    )
    .await
    .expect(200);
    let fm = file_meta(&srv, &name).await;
    assert_eq!(fm["filename"], "renamed.log");
    assert_eq!(fm["type"], "application/pdf");
    // Locked: only an admin may modify.
    op(&srv, &name, "lock", Some(ADMIN)).await.expect(200);
    modify(Some(EDITOR), "application/json", change)
        .await
        .expect_error(403, "");
    modify(
        Some(ADMIN),
        "application/json",
        r#"{"filename": "by-admin.log"}"#,
    )
    .await
    .expect(200);
    assert_eq!(file_meta(&srv, &name).await["filename"], "by-admin.log");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_needs_delete_permission() {
    let srv = TestServer::start().await;
    let file = random_bytes(500, 40);
    let name = upload(&srv, CUSTOMER, &file).await;
    for secret in [None, Some(CUSTOMER), Some(READER), Some(LISTER)] {
        op(&srv, &name, "delete", secret)
            .await
            .expect_error(403, "");
    }
    assert_eq!(srv.item_names(), vec![name.clone()]);
    let r = op(&srv, &name, "delete", Some(DELETER)).await;
    r.expect(200);
    assert_eq!(r.json(), serde_json::json!({}));
    meta(&srv, &name, Some(ADMIN)).await.expect_error(404, "");
    op(&srv, &name, "delete", Some(DELETER))
        .await
        .expect_error(404, "");
    assert!(srv.item_names().is_empty());
    assert!(srv.stored_files().is_empty());

    // Admins may delete incomplete and locked items; the transaction is then gone.
    let file = random_bytes(2000, 41);
    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    let inc = srv.item_names()[0].clone();
    op(&srv, &inc, "delete", Some(ADMIN)).await.expect(200);
    chunk(&srv, CUSTOMER, Some(&tid), &file, 1000, 2000, 2000)
        .await
        .expect_error(400, "transaction");
    assert!(srv.partial_files().is_empty());
    let locked = upload(&srv, CUSTOMER, &file).await;
    op(&srv, &locked, "lock", Some(ADMIN)).await.expect(200);
    op(&srv, &locked, "delete", Some(DELETER))
        .await
        .expect_error(403, "");
    op(&srv, &locked, "delete", Some(ADMIN)).await.expect(200);
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

/// A chunk whose connection drops half-way (or stalls past `upload_idle_timeout`) leaves the
/// stored offset and the running SHA-256 as they were; the client resends and finishes. An
/// interrupted first chunk leaves no item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_chunk_keeps_offset_and_hash() {
    let srv = TestServer::start_with("upload_idle_timeout = \"1s\"").await;
    let auth = format!("Basic {}", b64(format!("user:{CUSTOMER}").as_bytes()));
    let file = random_bytes(3000, 42);
    let head = |range: &str, tid: Option<&str>, len: usize| {
        let tid = tid
            .map(|t| format!("Transaction-ID: {t}\r\n"))
            .unwrap_or_default();
        format!(
            "POST {ITEMS} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Range: {range}\r\n\
             {tid}Content-Length: {len}\r\n\r\n",
            srv.addr
        )
    };
    // Opens a chunk request and sends only the first `sent` bytes of its body.
    let send_part = async |range: &str, tid: Option<&str>, body: &str, sent: usize| {
        let mut sock = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let head = head(range, tid, body.len());
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&body.as_bytes()[..sent]).await.unwrap();
        sock
    };
    // Chunks are refused as "another request" while the server still holds a cut-off one.
    let busy = |r: &Reply| r.status == StatusCode::CONFLICT && r.text().contains("another request");

    // First chunk cut off: no item stays.
    drop(send_part("bytes 0-999/3000", None, &b64(&file[..1000]), 600).await);
    wait_until(
        "the interrupted first chunk to leave no item",
        Duration::from_secs(10),
        || srv.item_names().is_empty() && srv.partial_files().is_empty(),
    )
    .await;

    let tid = start_upload(&srv, CUSTOMER, &file, 1000).await;
    // A continuation cut off after 600 of its 1336 body bytes (with junk-free data before).
    let body = b64(&file[1000..2000]);
    drop(send_part("bytes 1000-1999/3000", Some(&tid), &body, 600).await);
    // Wait until the server has let go of the cut-off request: a chunk at a wrong offset is
    // then the usual 409 (checked under the upload's lock), not "another request".
    let r = eventually(
        "the upload to be free",
        Duration::from_secs(10),
        async || {
            let r = chunk(&srv, CUSTOMER, Some(&tid), &file, 0, 1000, 3000).await;
            if busy(&r) { Err(r.text()) } else { Ok(r) }
        },
    )
    .await;
    assert_eq!(last_byte_on_server(&r), 1000);
    assert_eq!(customer_offsets(&srv, &tid).await, (1000, 3000, false));
    // A stalled chunk: the server gives up after upload_idle_timeout (1 s) with a 408.
    let other = b64(&random_bytes(1000, 43));
    let mut sock = send_part("bytes 1000-1999/3000", Some(&tid), &other, 700).await;
    let started = Instant::now();
    let answer = read_head(&mut sock, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    drop(sock);

    // The owner resends the chunk; while the server still tears down the cut-off request the
    // upload may be busy (409 "another request"), never moved.
    let r = eventually(
        "the upload to be free",
        Duration::from_secs(10),
        async || {
            assert_eq!(customer_offsets(&srv, &tid).await, (1000, 3000, false));
            let r = chunk(&srv, CUSTOMER, Some(&tid), &file, 1000, 2000, 3000).await;
            if busy(&r) { Err(r.text()) } else { Ok(r) }
        },
    )
    .await;
    r.expect_progress();
    let name = chunk(&srv, CUSTOMER, Some(&tid), &file, 2000, 3000, 3000)
        .await
        .expect_created();
    assert_stored(&srv, &name, &file).await;
    srv.stop().await;
}
