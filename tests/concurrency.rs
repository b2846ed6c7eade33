//! Many uploads at once against one server: every one is stored intact under its own name, and
//! clients that disconnect mid-upload leave nothing behind and disturb nobody.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KIB: usize = 1024;
const MIB: usize = 1 << 20;

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` sizes from `min` to `max`, spaced geometrically (distinct, rounded, odd offsets so no
/// size is a neat power of two).
fn sizes(n: usize, min: usize, max: usize) -> Vec<usize> {
    let ratio = (max as f64 / min as f64).powf(1.0 / (n - 1) as f64);
    (0..n)
        .map(|i| {
            let s = (min as f64 * ratio.powi(i as i32)).round() as usize;
            if i == 0 || i == n - 1 { s } else { s + 7 * i }
        })
        .collect()
}

struct Source {
    path: PathBuf,
    size: usize,
    sha256: String,
}

fn make_sources(dir: &Path, sizes: &[usize], seed: u64) -> Vec<Source> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = random_file(dir, &format!("src-{i:02}.bin"), size, seed + i as u64);
            let sha256 = external_sha256(&path);
            Source { path, size, sha256 }
        })
        .collect()
}

/// The vendor's curl command; returns the new item's name.
async fn curl_upload(srv: &TestServer, file: &Path) -> Result<String, String> {
    let form = format!("file=@{};type=application/octet-stream", file.display());
    let out = curl(&[
        "-sS",
        "-i",
        "-F",
        &form,
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    if !out.status.success() || !out.stdout.contains("HTTP/1.1 302") {
        return Err(format!(
            "{}: {}\n{}",
            file.display(),
            out.stderr,
            out.stdout.chars().take(2000).collect::<String>()
        ));
    }
    let location = header_value(&out.stdout, "location").ok_or("no Location")?;
    Ok(name_from_location(&location))
}

/// GET /apis/rest/items with the admin secret.
async fn listing(srv: &TestServer) -> BTreeMap<String, Value> {
    let resp = client()
        .get(srv.url("/apis/rest/items"))
        .basic_auth("x", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    match resp.json::<Value>().await.unwrap() {
        Value::Object(m) => m.into_iter().collect(),
        other => panic!("listing is not an object: {other}"),
    }
}

/// Checks each uploaded source against its stored file (hashed by `sha256sum`) and the listing.
async fn check_stored(srv: &TestServer, uploaded: &[(&Source, String)]) {
    let names: BTreeSet<&String> = uploaded.iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), uploaded.len(), "item names are not distinct");
    for (src, name) in uploaded {
        let stored = srv.data_dir.join("files").join(name);
        assert_eq!(
            std::fs::metadata(&stored).unwrap().len(),
            src.size as u64,
            "{name}: size"
        );
        assert_eq!(
            external_sha256(&stored),
            src.sha256,
            "{name}: stored bytes differ from {}",
            src.path.display()
        );
    }
    let list = listing(srv).await;
    let listed: BTreeSet<&String> = list.keys().collect();
    assert_eq!(listed, names, "the listing is exactly the uploaded items");
    for (src, name) in uploaded {
        let fm = &list[name.as_str()]["file-meta"];
        assert_eq!(fm["hash"].as_str().unwrap(), src.sha256, "{name}");
        assert_eq!(fm["size"].as_u64().unwrap(), src.size as u64, "{name}");
        assert_eq!(fm["complete"], true, "{name}");
    }
    let mut expected_files: Vec<PathBuf> = uploaded
        .iter()
        .map(|(_, n)| srv.data_dir.join("files").join(n))
        .collect();
    expected_files.sort();
    assert_eq!(srv.stored_files(), expected_files, "files under DATA/files");
    wait_until("DATA/tmp empty", Duration::from_secs(5), || {
        srv.temp_files().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_curl_uploads_are_stored_intact() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sources = make_sources(dir.path(), &sizes(20, KIB, 30 * MIB), 100);
    let uploads: Vec<_> = sources
        .iter()
        .map(|s| {
            let path = s.path.clone();
            let srv = &srv;
            async move { curl_upload(srv, &path).await }
        })
        .collect();
    let results = futures_util::future::join_all(uploads).await;
    let mut uploaded = Vec::new();
    for (src, r) in sources.iter().zip(results) {
        match r {
            Ok(name) => uploaded.push((src, name)),
            Err(e) => panic!("upload of {} bytes failed: {e}", src.size),
        }
    }
    check_stored(&srv, &uploaded).await;
    assert_eq!(srv.item_names().len(), 20);
    srv.stop().await;
}

/// A client that announces a large multipart upload, waits for `100 Continue` (the server is
/// reading its body), sends `send` bytes of the file and disconnects.
async fn abandon_upload(addr: std::net::SocketAddr, send: usize, reset: bool) {
    const B: &str = "abandonBoundary42";
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /+upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic dXNlcjpzdXBwb3J0\r\n\
         Content-Type: multipart/form-data; boundary={B}\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        64 * MIB
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer to Expect")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    let part = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"gone.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    s.write_all(part.as_bytes()).await.unwrap();
    let chunk = vec![0x3cu8; 64 * KIB];
    let mut sent = 0;
    while sent < send {
        // The server may already have given up; that is fine.
        if s.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    if reset {
        let _ = s.set_zero_linger();
    }
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_succeed_while_other_clients_disconnect() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sources = make_sources(dir.path(), &sizes(10, 100 * KIB, 8 * MIB), 200);
    let uploads = futures_util::future::join_all(sources.iter().map(|s| {
        let path = s.path.clone();
        let srv = &srv;
        async move { curl_upload(srv, &path).await }
    }));
    let quitters = futures_util::future::join_all(
        (0..5).map(|i| abandon_upload(srv.addr, (i + 1) * 512 * KIB, i % 2 == 1)),
    );
    let (results, _) = tokio::join!(uploads, quitters);
    let mut uploaded = Vec::new();
    for (src, r) in sources.iter().zip(results) {
        match r {
            Ok(name) => uploaded.push((src, name)),
            Err(e) => panic!("upload of {} bytes failed: {e}", src.size),
        }
    }
    // check_stored also waits for DATA/tmp to be empty: the quitters' partials are gone.
    check_stored(&srv, &uploaded).await;
    assert_eq!(srv.item_names().len(), 10);
    srv.stop().await;
}
