//! What one client, or a few, may hold or send: upload slots (per address, per network, and
//! slow uploads cut off when slots are short, so a normal upload gets through a trickle
//! attack), quotas of items and bytes per address, and the store's `max_total_size`. Each
//! refusal has its status (with `Retry-After` on 429/503) and stores nothing.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// An upload from `src` that sends its head, then `trickle` bytes of its file every 300 ms.
fn trickling_upload(src: String, addr: std::net::SocketAddr) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let Ok(mut s) = connect_from(&src, addr).await else {
            return String::new();
        };
        let _ = s
            .write_all(raw_upload_head(Some(10 * MIB as u64)).as_bytes())
            .await;
        let _ = s.write_all(part_head("slow.bin").as_bytes()).await;
        for _ in 0..400 {
            if s.write_all(b"abc").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            // The server answered (and stopped reading): read what it said.
            let mut probe = [0u8; 1];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), s.peek(&mut probe)).await
                && n > 0
            {
                break;
            }
        }
        read_response(&mut s, Duration::from_secs(5)).await
    })
}

/// Eight addresses, each in its own /24 (so no per-network limit helps), trickle 10 bytes a
/// second into all the upload slots. A normal upload still succeeds: the slowest trickle is cut
/// off (408) to make room once it has been slow for `slow_upload_window`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_upload_gets_through_a_trickle_attack() {
    let srv = TestServer::start_with(
        "max_concurrent_uploads = 8\nmin_upload_rate = \"16KiB\"\nslow_upload_window = \"2s\"\nupload_idle_timeout = \"60s\"",
    )
    .await;
    let before = srv.snapshot();
    let attackers: Vec<_> = (1..=8)
        .map(|i| trickling_upload(format!("127.{}.0.1", 10 + i), srv.addr))
        .collect();
    wait_until("all slots taken", Duration::from_secs(10), || {
        srv.state.uploads.running() == 8
    })
    .await;
    // Slow, but not yet for a whole window: a newcomer is told to come back.
    let early = post_upload(
        &srv,
        Some(CUSTOMER),
        file_form("early.bin", vec![1u8; 1000]),
    )
    .await;
    assert_eq!(early.status(), 503);
    assert_eq!(response_header(&early, "retry-after"), "30");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let data = random_bytes(2 * MIB, 3);
    let name = upload_form(&srv, file_form("normal.tgz", data.clone())).await;
    assert_eq!(srv.item(&name).unwrap().sha256, sha256_hex(&data));
    // The upload that made room was told why, and left nothing. Its task notices the answer
    // within one trickle period, so wait for it before aborting the others (under CI load an
    // immediate abort could catch it asleep).
    wait_until("a trickle was answered", Duration::from_secs(10), || {
        attackers.iter().any(|a| a.is_finished())
    })
    .await;
    let mut cut = Vec::new();
    for a in attackers {
        a.abort();
        if let Ok(answer) = a.await {
            cut.push(answer);
        }
    }
    let cut: Vec<_> = cut.iter().filter(|a| status_of(a) == Some(408)).collect();
    assert!(!cut.is_empty(), "one trickle was cut off with 408");
    assert!(cut[0].contains("minimum rate"), "{}", cut[0]);
    assert_eq!(srv.item_names().len(), before.items.len() + 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_per_address_and_per_network() {
    let srv =
        TestServer::start_with("max_uploads_per_client = 2\nmax_uploads_per_network = 3").await;
    let mut held = Vec::new();
    for src in ["127.20.0.1", "127.20.0.1", "127.20.0.2"] {
        let mut s = connect_from(src, srv.addr).await.unwrap();
        s.write_all(raw_upload_head(Some(MIB as u64)).as_bytes())
            .await
            .unwrap();
        s.write_all(part_head("held.bin").as_bytes()).await.unwrap();
        s.write_all(b"x").await.unwrap();
        held.push(s);
    }
    wait_until("three uploads running", Duration::from_secs(10), || {
        srv.state.uploads.running() == 3
    })
    .await;
    let body = one_file_body("x.bin", b"x");
    let request = |src: &'static str| {
        let body = body.clone();
        let addr = srv.addr;
        async move {
            let mut s = connect_from(src, addr).await.unwrap();
            s.write_all(raw_upload_head(Some(body.len() as u64)).as_bytes())
                .await
                .unwrap();
            s.write_all(&body).await.unwrap();
            read_response(&mut s, Duration::from_secs(10)).await
        }
    };
    let same_address = request("127.20.0.1").await;
    assert_eq!(status_of(&same_address), Some(429), "{same_address}");
    assert!(same_address.contains("from this address"));
    let same_network = request("127.20.0.9").await;
    assert_eq!(status_of(&same_network), Some(429), "{same_network}");
    assert!(same_network.contains("from this network"));
    assert!(header_value(&same_network, "retry-after").is_some());
    let elsewhere = request("127.21.0.1").await;
    assert_eq!(status_of(&elsewhere), Some(302), "{elsewhere}");
    drop(held);
    srv.stop().await;
}

/// `quota_items` per address per window: refused with 429 and Retry-After, before the body is
/// read, and for a multi-file post that would pass it, all of it; other addresses and admins
/// are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_quota_per_address() {
    let srv = TestServer::start_with("quota_items = 3\nquota_window = \"1h\"").await;
    for i in 0..2 {
        upload_form(&srv, file_form(&format!("{i}.bin"), vec![i as u8; 10])).await;
    }
    let before = srv.snapshot();
    let two = file_form("a.bin", vec![1u8; 10]).part(
        "file",
        reqwest::multipart::Part::bytes(vec![2u8; 10]).file_name("b.bin"),
    );
    let resp = post_upload(&srv, Some(CUSTOMER), two).await;
    assert_eq!(resp.status(), 429, "two more files pass the quota of three");
    let retry: u64 = response_header(&resp, "retry-after").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    let text = resp.text().await.unwrap();
    assert!(text.contains("upload quota"), "{text}");
    srv.assert_nothing_stored(&before, "over the items quota")
        .await;
    upload_form(&srv, file_form("third.bin", vec![3u8; 10])).await;
    let st = curl_status(&[
        "-F",
        "file=@/dev/null;filename=x",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(st.code, 429);
    assert_eq!(
        st.size_upload, 0.0,
        "refused before the body is sent (Expect: 100-continue)"
    );
    // The REST API counts too.
    let r = rest_chunk(&srv, b"hello", 0..5, None, &[]).await;
    assert_eq!(r.status(), 429);
    // Another address, and an operator, still upload.
    let other = client_from("127.30.0.1");
    let resp = other
        .post(srv.url("/+upload"))
        .basic_auth("u", Some(CUSTOMER))
        .multipart(file_form("o.bin", vec![0u8; 10]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let resp = post_upload(&srv, Some(ADMIN), file_form("admin.bin", vec![0u8; 10])).await;
    assert_eq!(resp.status(), 302, "admins are exempt");
    srv.stop().await;
}

/// The vendor's curl upload of `file`, made to ask before it sends the body (curl 7.88 does only
/// for bodies over 1 MiB) and to wait for the answer: what it sent shows an early refusal.
async fn curl_asking_first(srv: &TestServer, file: &std::path::Path) -> CurlStatus {
    curl_status(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "30",
        "-F",
        &format!("file=@{}", file.display()),
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await
}

fn client_from(src: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(src.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `quota_bytes` per address: from the Content-Length before the body, and while streaming a
/// body without one (stopped as soon as the quota is passed, nothing kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_quota_per_address() {
    let srv = TestServer::start_with("quota_bytes = \"1MiB\"").await;
    let tmp = tempfile::tempdir().unwrap();
    let first = random_file(tmp.path(), "first.bin", 600 * 1024, 1);
    assert!(
        curl_form_upload(&[
            "-F",
            &format!("file=@{}", first.display()),
            &srv.url_with_secret(CUSTOMER, "/+upload")
        ])
        .await
        .len()
            == 8
    );
    let before = srv.snapshot();
    let second = random_file(tmp.path(), "second.bin", 600 * 1024, 2);
    let st = curl_asking_first(&srv, &second).await;
    assert_eq!(st.code, 429, "{}", st.body);
    assert_eq!(
        st.size_upload, 0.0,
        "refused from Content-Length, before the body"
    );
    // Chunked (no Content-Length): cut off mid-stream.
    let st = curl_status(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-F",
        &format!("file=@{}", second.display()),
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(st.code, 429, "{}", st.body);
    srv.assert_nothing_stored(&before, "over the bytes quota")
        .await;
    srv.stop().await;
}

/// `max_total_size`: the whole store, uploads in progress included, is capped; 507.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_total_is_capped() {
    let srv = TestServer::start_with("max_total_size = \"2MiB\"").await;
    let a = upload_form(&srv, file_form("a.bin", random_bytes(1200 * 1024, 1))).await;
    let before = srv.snapshot();
    // curl, as customers send it: refused from Content-Length, before the body is sent (a client
    // without `Expect: 100-continue` may see the connection close under its body instead).
    let tmp = tempfile::tempdir().unwrap();
    let b = random_file(tmp.path(), "b.bin", 1200 * 1024, 2);
    let st = curl_asking_first(&srv, &b).await;
    assert_eq!(st.code, 507, "{}", st.body);
    assert!(st.body.contains("storage limit"), "{}", st.body);
    assert_eq!(st.size_upload, 0.0);
    srv.assert_nothing_stored(&before, "over max_total_size")
        .await;
    // A REST upload declaring more than fits is refused at its first chunk.
    let data = random_bytes(1200 * 1024, 3);
    // (A small first chunk: the refusal comes before the body is read.)
    let r = rest_chunk(&srv, &data, 0..1000, None, &[]).await;
    assert_eq!(r.status(), 507);
    // Deleting frees the room.
    let del = client()
        .post(srv.url(&format!("/{a}/+delete")))
        .basic_auth("u", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    upload_form(&srv, file_form("b.bin", random_bytes(1200 * 1024, 2))).await;
    srv.stop().await;
}

/// A stalled upload does not count forever: when its slot is given back, so is its place in
/// the store total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_give_back_what_they_counted() {
    let srv =
        TestServer::start_with("max_total_size = \"1MiB\"\nupload_idle_timeout = \"1s\"").await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(raw_upload_head(None).as_bytes()).await.unwrap();
    let part = part_head("stall.bin");
    let chunk = format!("{:x}\r\n{part}\r\n", part.len());
    s.write_all(chunk.as_bytes()).await.unwrap();
    let payload = vec![7u8; 900 * 1024];
    s.write_all(format!("{:x}\r\n", payload.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(&payload).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
    let answer = read_response(&mut s, Duration::from_secs(20)).await;
    assert_eq!(status_of(&answer), Some(408), "{answer}");
    upload_form(&srv, file_form("after.bin", random_bytes(900 * 1024, 4))).await;
    srv.stop().await;
}
