//! Connections that never make a request: silent, stalled in the HTTP/2 preface, idle after
//! one, or trickling a header (slowloris). Each is closed after a bound; thousands of them from
//! one address, or hundreds from many, do not stop another client from uploading (with the
//! server's open-file limit at 1024, as under systemd). Also: the per-address cap answers
//! `429`, a half-closed request still gets its answer, and SIGTERM lets uploads finish for
//! `shutdown_grace`, then aborts them cleanly.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// True once the server has closed `s` (EOF or reset), waiting at most `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // HTTP/2 SETTINGS or GOAWAY frames before the close.
            Ok(Ok(_)) => {}
        }
    }
}

/// The vendor's curl upload of `size` random bytes; returns the HTTP status (000: no answer).
async fn curl_upload(srv: &impl Endpoint, size: usize, seed: u64) -> (u16, String) {
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "bundle.tgz", size, seed);
    let st = curl_status(&[
        "--max-time",
        "30",
        "-F",
        &format!("file=@{};type=application/octet-stream", file.display()),
        &srv.url_with_secret(CUSTOMER, "/+upload"),
        "-X",
        "POST",
    ])
    .await;
    (st.code, format!("{}{}", st.body, st.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_useless_connections_do_not_lock_out_an_upload() {
    // The attacker's sockets live in this process.
    sfx::server::raise_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = binary_config(tmp.path(), "upload_idle_timeout = \"5s\"", "");
    // The open-file limit systemd gives a service (soft and hard): sfx cannot raise it.
    let bin = Binary::start_under(
        &["prlimit", "--nofile=1024:1024"],
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    let addr = bin.addr();
    let mut held = Vec::new();
    // 3000 silent connections from one address.
    for _ in 0..3000 {
        if let Ok(s) = connect_from("127.1.0.1", addr).await {
            held.push(s);
        }
    }
    // 500 slowloris connections from 20 addresses: a header line that never ends.
    let mut trickle = Vec::new();
    for a in 0..20 {
        for _ in 0..25 {
            if let Ok(mut s) = connect_from(&format!("127.2.{a}.1"), addr).await {
                let _ = s
                    .write_all(b"POST /+upload HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await;
                trickle.push(s);
            }
        }
    }
    let trickler = tokio::spawn(async move {
        loop {
            for s in trickle.iter_mut() {
                let _ = s.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // HTTP/2 prefaces, half of them stopping inside it, then idle.
    for i in 0..100 {
        if let Ok(mut s) = connect_from("127.3.0.1", addr).await {
            let bytes = if i % 2 == 0 {
                &H2_PREFACE[..10]
            } else {
                H2_PREFACE
            };
            let _ = s.write_all(bytes).await;
            if i % 2 == 1 {
                let _ = s.write_all(H2_SETTINGS).await;
            }
            held.push(s);
        }
    }
    // Meanwhile a customer uploads, and the health probe answers.
    for seed in 0..3 {
        let (code, detail) = curl_upload(&bin, 2 * MIB, seed).await;
        assert_eq!(code, 302, "upload during the flood: {detail}");
    }
    let health = client()
        .get(bin.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("health probe answered during the flood");
    assert_eq!(health.status(), 200);
    trickler.abort();
    drop(held);
    let (code, detail) = curl_upload(&bin, MIB, 9).await;
    assert_eq!(code, 302, "after the flood: {detail}");
    bin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn useless_connections_are_closed_after_their_bound() {
    let srv = TestServer::start_with(
        "first_byte_timeout = \"1s\"\nidle_timeout = \"1s\"\nheader_timeout = \"1s\"",
    )
    .await;
    let bound = Duration::from_secs(15);
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        closed_by_server(&mut silent, bound).await,
        "silent connection"
    );
    let mut preface = TcpStream::connect(srv.addr).await.unwrap();
    preface.write_all(&H2_PREFACE[..12]).await.unwrap();
    assert!(
        closed_by_server(&mut preface, bound).await,
        "stopped inside the HTTP/2 preface"
    );
    let mut h2 = TcpStream::connect(srv.addr).await.unwrap();
    h2.write_all(H2_PREFACE).await.unwrap();
    h2.write_all(H2_SETTINGS).await.unwrap();
    assert!(
        closed_by_server(&mut h2, bound).await,
        "HTTP/2 preface and SETTINGS, then idle"
    );
    let mut loris = TcpStream::connect(srv.addr).await.unwrap();
    loris
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..40 {
            if loris.write_all(b"X-A: b\r\n").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(
        trickle.await,
        "slowloris: cut off while it trickles its header"
    );
    // After a request: an idle keep-alive connection is closed too.
    let mut keep = TcpStream::connect(srv.addr).await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut keep, Duration::from_secs(10)).await;
    assert_eq!(status_of(&answer), Some(200));
    assert!(
        closed_by_server(&mut keep, bound).await,
        "idle keep-alive connection"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_from_one_address_get_429() {
    let srv = TestServer::start_with("max_connections_per_client = 4").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.4.0.1", srv.addr).await.unwrap());
    }
    // The accept loop takes them in order: wait until the four have their places.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fifth = connect_from("127.4.0.1", srv.addr).await.unwrap();
    let answer = read_response(&mut fifth, Duration::from_secs(10)).await;
    assert_eq!(status_of(&answer), Some(429), "{answer}");
    assert!(answer.contains("Retry-After"), "{answer}");
    // Another address is served.
    let ok = raw_request_from(
        "127.4.0.2",
        srv.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), Some(200));
    drop(held);
    srv.stop().await;
}

async fn raw_request_from(src: &str, addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = connect_from(src, addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s, Duration::from_secs(20)).await
}

/// `nc -N`, socat and `shutdown(SHUT_WR)`: the request is complete, then the client closes its
/// sending side and waits for the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_requests_get_their_answer() {
    let srv = TestServer::start().await;
    let data = random_bytes(100_000, 5);
    let body = one_file_body("half.bin", &data);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(raw_upload_head(Some(body.len() as u64)).as_bytes())
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
    s.shutdown().await.unwrap();
    let answer = read_response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(status_of(&answer), Some(302), "{answer}");
    let name = name_from_location(&header_value(&answer, "location").unwrap());
    assert_eq!(srv.item(&name).unwrap().sha256, sha256_hex(&data));

    // A REST first chunk sent that way gets its Transaction-ID (no orphan upload).
    let chunk = b64(&data[..60_000]);
    let head = format!(
        "POST {ITEMS} HTTP/1.1\r\nHost: x\r\nAuthorization: {CUSTOMER_BASIC}\r\nContent-Range: bytes 0-59999/100000\r\nContent-Length: {}\r\n\r\n",
        chunk.len()
    );
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(chunk.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let answer = read_response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let tid = header_value(&answer, "transaction-id").expect("a Transaction-ID");
    let last = rest_chunk(&srv, &data, 60_000..100_000, Some(&tid), &[]).await;
    assert_eq!(last.status(), 201, "the upload continues and completes");
    srv.stop().await;
}

/// SIGTERM: no new connections; an upload in flight may finish within `shutdown_grace`; one
/// that does not is aborted then, leaving nothing in tmp/ (a REST upload stays resumable at its
/// acknowledged offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_uploads_finish_then_aborts_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data_dir) = binary_config(tmp.path(), "shutdown_grace = \"3s\"", "");
    let args = ["serve", "--config", config.to_str().unwrap()];
    let data = random_bytes(3 * MIB, 11);
    let body = one_file_body("late.bin", &data);

    // 1. An upload that finishes within the grace period.
    let bin = Binary::start(&args, &[], None).await;
    let mut s = TcpStream::connect(bin.addr()).await.unwrap();
    s.write_all(raw_upload_head(Some(body.len() as u64)).as_bytes())
        .await
        .unwrap();
    s.write_all(&body[..MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    bin.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(bin.addr()).await.is_err(),
        "no new connections after SIGTERM"
    );
    s.write_all(&body[MIB..]).await.unwrap();
    let answer = read_response(&mut s, Duration::from_secs(10)).await;
    assert_eq!(
        status_of(&answer),
        Some(302),
        "finished within the grace: {answer}"
    );
    let name = name_from_location(&header_value(&answer, "location").unwrap());
    bin.wait_exit(Duration::from_secs(10)).await;

    // 2. Uploads that do not finish: aborted after the grace period.
    let bin = Binary::start(&args, &[], None).await;
    let stored = client()
        .get(bin.url(&format!("/{name}/+download")))
        .basic_auth("u", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert!(
        stored.bytes().await.unwrap() == data,
        "the first upload was kept"
    );
    let mut form = TcpStream::connect(bin.addr()).await.unwrap();
    form.write_all(raw_upload_head(Some(body.len() as u64)).as_bytes())
        .await
        .unwrap();
    form.write_all(&body[..MIB]).await.unwrap();
    let first = rest_chunk(&bin, &data, 0..MIB, None, &[]).await;
    assert_eq!(first.status(), 200);
    let tid = response_header(&first, "transaction-id");
    let mut chunk = TcpStream::connect(bin.addr()).await.unwrap();
    let rest = b64(&data[MIB..]);
    chunk
        .write_all(
            format!(
                "POST {ITEMS} HTTP/1.1\r\nHost: x\r\nAuthorization: {CUSTOMER_BASIC}\r\nTransaction-ID: {tid}\r\nContent-Range: bytes {MIB}-{}/{}\r\nContent-Length: {}\r\n\r\n",
                data.len() - 1,
                data.len(),
                rest.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    chunk.write_all(&rest.as_bytes()[..1000]).await.unwrap();
    wait_until("both uploads under way", Duration::from_secs(10), || {
        std::fs::read_dir(data_dir.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 1
    })
    .await;
    bin.signal("TERM");
    bin.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(
        std::fs::read_dir(data_dir.join("tmp")).unwrap().count(),
        0,
        "tmp/ is empty"
    );
    drop((form, chunk));
    // The REST upload resumes from its acknowledged offset after the restart.
    let bin = Binary::start(&args, &[], None).await;
    let head = client()
        .head(bin.url(ITEMS))
        .basic_auth("u", Some(CUSTOMER))
        .header("transaction-id", &tid)
        .send()
        .await
        .unwrap();
    assert_eq!(response_header(&head, "upload-offset"), MIB.to_string());
    let last = rest_chunk(&bin, &data, MIB..data.len(), Some(&tid), &[]).await;
    assert_eq!(last.status(), 201);
    bin.stop().await;
}
