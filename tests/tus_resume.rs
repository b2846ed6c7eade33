//! What makes tus uploads survive bad networks, over raw sockets: a PATCH whose connection
//! breaks keeps (fsyncs) what arrived, so the client resumes from there instead of resending
//! the chunk; a client that comes back while its old request still hangs takes the upload
//! over at once; and an upload continues after a server restart with the right SHA-256.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn create(srv: &TestServer, len: usize) -> String {
    let c = reqwest::Client::new();
    let r = c
        .post(srv.url("/+tus/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Upload-Length", len.to_string())
        .header("Upload-Metadata", format!("filename {}", b64(b"big.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn offset(srv: &TestServer, location: &str) -> u64 {
    let r = reqwest::Client::new()
        .head(srv.url(location))
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A PATCH announcing the rest of the file, of which only `data` is sent (the socket is
/// returned open).
async fn patch_start(
    srv: &TestServer,
    location: &str,
    at: u64,
    len: usize,
    data: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: {CUSTOMER_BASIC}\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {at}\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(data).await.unwrap();
    s.flush().await.unwrap();
    s
}

async fn patch(srv: &TestServer, location: &str, at: u64, data: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .patch(srv.url(location))
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", at.to_string())
        .body(data)
        .send()
        .await
        .unwrap()
}

async fn wait_offset(srv: &TestServer, location: &str, pred: impl Fn(u64) -> bool) -> u64 {
    for _ in 0..100 {
        let o = offset(srv, location).await;
        if pred(o) {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("offset never reached the expected value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_patch_keeps_what_arrived() {
    let srv = TestServer::start().await;
    let data = random_bytes(8 * MIB, 3);
    let location = create(&srv, data.len()).await;
    // 3 MiB of an 8 MiB PATCH, then the connection breaks.
    let s = patch_start(&srv, &location, 0, data.len(), &data[..3 * MIB]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let kept = wait_offset(&srv, &location, |o| o > 0).await;
    assert!(
        kept > 2 * MIB as u64 && kept <= 3 * MIB as u64,
        "kept {kept}"
    );
    // The client resumes from the stored offset: only the rest crosses the network again.
    let r = patch(&srv, &location, kept, data[kept as usize..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&data).as_str());
    let name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_eq!(srv.stored_bytes(&name).await, data);
    assert_eq!(srv.item(&name).unwrap().filename, "big.bin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_comes_back_takes_over_from_its_hung_request() {
    let srv = TestServer::start().await;
    let data = random_bytes(6 * MIB, 4);
    let location = create(&srv, data.len()).await;
    // The old request hangs with its socket open, as when a network dies without a reset.
    let mut hung = patch_start(&srv, &location, 0, data.len(), &data[..2 * MIB]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The client's new PATCH (from the offset it last knew) stops the old one, which keeps its
    // bytes; the new one is told the offset moved (409), as tus clients expect.
    let r = patch(&srv, &location, 0, data.clone()).await;
    assert_eq!(r.status(), 409, "{:?}", r.text().await);
    let kept = offset(&srv, &location).await;
    assert!(kept > MIB as u64 && kept <= 2 * MIB as u64, "kept {kept}");
    let r = patch(&srv, &location, kept, data[kept as usize..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&data).as_str());
    // The old request was answered and closed.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), hung.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_continues_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(5 * MIB + 11, 5);
    let srv = TestServer::start_in(dir.path(), "").await;
    let location = create(&srv, data.len()).await;
    let r = patch(&srv, &location, 0, data[..2 * MIB].to_vec()).await;
    assert_eq!(r.status(), 204);
    srv.stop().await;
    let srv = TestServer::start_in(dir.path(), "").await;
    assert_eq!(offset(&srv, &location).await, 2 * MIB as u64);
    let r = patch(&srv, &location, 2 * MIB as u64, data[2 * MIB..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&data).as_str());
    let name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_eq!(srv.item(&name).unwrap().sha256, sha256_hex(&data));
}

/// Over HTTPS with HTTP/2 (what browsers use): a PATCH whose stream is reset mid-body (the
/// client's body fails) keeps what arrived, and the upload completes from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_reset_stream_keeps_what_arrived() {
    let srv =
        TestServer::start_with("[tls]\nself_signed = true\nhostnames = [\"sfx.example.com\"]\n")
            .await;
    let c = insecure_client();
    let data = random_bytes(6 * MIB, 8);
    let r = c
        .post(srv.url("/+tus/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Upload-Length", data.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let url = srv.url(r.headers()["location"].to_str().unwrap());

    // 2 MiB in 64 KiB pieces, a pause (so they are on the wire, past flow control), then the
    // body fails: the client resets the stream.
    let pieces: Vec<bytes::Bytes> = data[..2 * MIB]
        .chunks(64 << 10)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let body = futures_util::stream::unfold((pieces, 0), |(pieces, i)| async move {
        if i < pieces.len() {
            let piece = pieces[i].clone();
            Some((Ok(piece), (pieces, i + 1)))
        } else if i == pieces.len() {
            tokio::time::sleep(Duration::from_millis(700)).await;
            Some((Err(std::io::Error::other("network gone")), (pieces, i + 1)))
        } else {
            None
        }
    });
    let broken = c
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(broken.is_err(), "the request failed on the client's side");
    let mut kept = 0;
    for _ in 0..50 {
        let h = c
            .head(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Authorization", CUSTOMER_BASIC)
            .send()
            .await
            .unwrap();
        kept = h.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if kept > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kept > MIB as u64 && kept <= 2 * MIB as u64, "kept {kept}");
    let r = c
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", kept.to_string())
        .body(data[kept as usize..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&data).as_str());
}
