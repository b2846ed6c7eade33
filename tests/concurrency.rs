//! Many uploads at once against one server: every one is stored intact under its own name, and
//! clients that disconnect mid-upload leave nothing behind and disturb nobody.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KIB: usize = 1024;

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
    let url = srv.url_with_secret(CUSTOMER, "/+upload");
    let out = curl(&["-sS", "-i", "-F", &form, &url]).await;
    let location = upload_location(&out).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(name_from_location(&location))
}

/// Uploads every source at once; panics unless all of them are stored.
async fn upload_all<'a>(srv: &TestServer, sources: &'a [Source]) -> Vec<(&'a Source, String)> {
    let uploads = sources.iter().map(|s| curl_upload(srv, &s.path));
    let results = futures_util::future::join_all(uploads).await;
    sources
        .iter()
        .zip(results)
        .map(|(src, r)| match r {
            Ok(name) => (src, name),
            Err(e) => panic!("upload of {} bytes failed: {e}", src.size),
        })
        .collect()
}

/// Checks each uploaded source against its stored file (hashed by `sha256sum`) and the listing.
async fn check_stored(srv: &TestServer, uploaded: &[(&Source, String)]) {
    let names: BTreeSet<&String> = uploaded.iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), uploaded.len(), "item names are not distinct");
    for (src, name) in uploaded {
        let stored = srv.stored_path(name);
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
    let mut expected_files: Vec<PathBuf> =
        uploaded.iter().map(|(_, n)| srv.stored_path(n)).collect();
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
    let uploaded = upload_all(&srv, &sources).await;
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
    let answer = read_head(&mut s, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 100"),
        "an answer to Expect: {answer:?}"
    );
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
    let quitters = futures_util::future::join_all(
        (0..5).map(|i| abandon_upload(srv.addr, (i + 1) * 512 * KIB, i % 2 == 1)),
    );
    let (uploaded, _) = tokio::join!(upload_all(&srv, &sources), quitters);
    // check_stored also waits for DATA/tmp to be empty: the quitters' partials are gone.
    check_stored(&srv, &uploaded).await;
    assert_eq!(srv.item_names().len(), 10);
    srv.stop().await;
}
