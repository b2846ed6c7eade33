//! Several sfx instances sharing PostgreSQL and S3 (`[metadata] url`, `[storage] kind = "s3"`):
//! uploads begun on one instance (bepasty REST, tus, the IETF draft) finish on another after the
//! first is killed (`kill -9`), with the right bytes and SHA-256; items, listings and alerts are
//! the same whichever instance is asked; outages of the database and the object store refuse
//! uploads with 503 and lose nothing.
//!
//! Needs `SFX_TEST_POSTGRES_URL` and `SFX_TEST_S3_ENDPOINT` (`.ci/postgres.sh`, `.ci/s3.sh`);
//! without them the tests say "skipped", and fail under `SFX_REQUIRE_S3=1`. Everything talks to
//! 127.0.0.1 only.

mod common;

use common::*;
use std::time::Duration;

/// One bepasty REST chunk (raw `begin..end` of `file`), as bepasty-cli sends it.
async fn rest_chunk(
    at: &impl Endpoint,
    tid: Option<&str>,
    file: &[u8],
    begin: usize,
    end: usize,
) -> reqwest::Response {
    let mut rb = http()
        .post(at.url(ITEMS))
        .basic_auth("user", Some(CUSTOMER))
        .header(
            "Content-Range",
            format!("bytes {}-{}/{}", begin, end - 1, file.len()),
        )
        .header("Content-Type", "application/octet-stream")
        .header("Content-Filename", "bundle.bin")
        .body(b64(&file[begin..end]));
    if let Some(t) = tid {
        rb = rb.header("Transaction-ID", t);
    }
    rb.send().await.unwrap()
}

async fn tus_offset(at: &impl Endpoint, location: &str) -> u64 {
    let r = tus(http().head(at.url(location))).send().await.unwrap();
    assert_eq!(r.status(), 200, "HEAD {location}");
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn download(at: &impl Endpoint, name: &str) -> Vec<u8> {
    let r = http()
        .get(at.url(&format!("{ITEMS}/{name}/download")))
        .basic_auth("user", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "download of {name}");
    r.bytes().await.unwrap().to_vec()
}

async fn assert_item(at: &impl Endpoint, name: &str, file: &[u8]) {
    let fm = file_meta(at, name).await;
    assert_eq!(fm["complete"], true, "{name} complete");
    assert_eq!(fm["size"], file.len() as u64);
    assert_eq!(fm["hash"], sha256_hex(file), "{name}: SHA-256");
    assert!(
        download(at, name).await == file,
        "{name}: downloaded bytes differ"
    );
}

/// A PATCH body that sends `data` and then nothing more (its writer stays on, holding the
/// lease, until the instance dies).
fn stalling_body(data: Vec<u8>) -> reqwest::Body {
    let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(data) });
    let never = futures_util::stream::pending();
    reqwest::Body::wrap_stream(futures_util::StreamExt::chain(first, never))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_begun_on_a_killed_instance_finish_on_another() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let a = cluster.start(1, "", "").await;
    let b = cluster.start(2, "", "").await;
    // 13 MiB: two full 5 MiB parts and a 3 MiB tail.
    let file = random_bytes(13 * MIB, 42);

    // bepasty REST in 1 MiB chunks: seven on A (one part sent, 2 MiB held in the ledger).
    let first = rest_chunk(&a, None, &file, 0, MIB).await;
    assert_eq!(first.status(), 200);
    let tid = first.headers()["transaction-id"]
        .to_str()
        .unwrap()
        .to_string();
    for i in 1..7 {
        let r = rest_chunk(&a, Some(&tid), &file, i * MIB, (i + 1) * MIB).await;
        assert_eq!(r.status(), 200, "chunk {i} on A");
    }

    // tus: 6 MiB acknowledged on A, then a PATCH that stalls after 2 MiB more.
    let created = tus(http().post(a.url("/+tus/")))
        .header("Upload-Length", file.len().to_string())
        .header("Upload-Metadata", format!("filename {}", b64(b"tus.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let r = tus_patch(&a, &location, 0, &file[..6 * MIB]).await;
    assert_eq!(r.status(), 204, "first PATCH on A");
    let stalled = {
        let (url, body) = (
            a.url(&location),
            stalling_body(file[6 * MIB..8 * MIB].to_vec()),
        );
        tokio::spawn(async move {
            let _ = tus(http().patch(url))
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", (6 * MIB).to_string())
                .body(body)
                .send()
                .await;
        })
    };
    // IETF draft (interop 9): 6 MiB acknowledged on A.
    let created = ietf(http().post(a.url("/+upload")))
        .header("Upload-Complete", "?0")
        .header("Upload-Length", file.len().to_string())
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "IETF creation on A");
    let draft = created.headers()["location"].to_str().unwrap().to_string();
    let r = ietf_append(&a, &draft, 0, false, &file[..6 * MIB]).await;
    assert_eq!(r.status(), 204, "IETF append on A");
    tokio::time::sleep(Duration::from_millis(800)).await;
    a.kill_9().await;
    stalled.abort();

    // REST goes on on B where A left off.
    let mut done = None;
    for i in 7..13 {
        let r = rest_chunk(&b, Some(&tid), &file, i * MIB, (i + 1) * MIB).await;
        let status = r.status().as_u16();
        if i < 12 {
            assert_eq!(status, 200, "chunk {i} on B");
        } else {
            assert_eq!(status, 201, "last chunk on B");
            let loc = r.headers()["content-location"]
                .to_str()
                .unwrap()
                .to_string();
            done = Some(loc.rsplit('/').next().unwrap().to_string());
        }
    }
    assert_item(&b, &done.unwrap(), &file).await;

    // tus: B sees what A acknowledged (the stalled request's bytes never were), and takes the
    // upload over once A's lease (3 s) has run out.
    assert_eq!(tus_offset(&b, &location).await, 6 * MIB as u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = tus_patch(&b, &location, 6 * MIB, &file[6 * MIB..]).await;
        if r.status() != 423 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(r.status(), 204, "PATCH on B: {:?}", r.headers());
    let item = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&file).as_str());
    assert_item(&b, &item, &file).await;

    // IETF: the offset A acknowledged, then the rest and the completion on B.
    let head = ietf(http().head(b.url(&draft))).send().await.unwrap();
    assert_eq!(head.status(), 204);
    assert_eq!(
        head.headers()["upload-offset"],
        (6 * MIB).to_string().as_str()
    );
    let r = ietf_append(&b, &draft, 6 * MIB, true, &file[6 * MIB..]).await;
    assert_eq!(r.status(), 200, "IETF completion on B");
    assert_eq!(r.headers()["sfx-sha256"], sha256_hex(&file).as_str());
    let item = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_item(&b, &item, &file).await;
    // Every multipart upload was completed: none is left open in the bucket.
    let prefix = s3::prefix_for(cluster.dir.path());
    assert_eq!(
        s3::open_multipart_uploads(&prefix).await,
        Vec::<String>::new()
    );
    b.stop().await;
}

fn ietf(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("Upload-Draft-Interop-Version", "9")
        .basic_auth("user", Some(CUSTOMER))
}

async fn ietf_append(
    at: &impl Endpoint,
    url: &str,
    offset: usize,
    complete: bool,
    data: &[u8],
) -> reqwest::Response {
    ietf(http().patch(at.url(url)))
        .header("Content-Type", "application/partial-upload")
        .header("Upload-Offset", offset.to_string())
        .header("Upload-Complete", if complete { "?1" } else { "?0" })
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// Webhook alerts (JSON) to `/d` on `rx`, with a 3 s batch window.
fn alert_tables(rx: &Receiver) -> String {
    format!(
        "[[alerts]]\nkind = \"webhook\"\nname = \"json\"\nurl = \"{}\"\nformat = \"json\"\n",
        rx.url("/d")
    )
}

async fn form_post(at: &impl Endpoint, name: &str, data: &[u8]) -> String {
    let part = reqwest::multipart::Part::bytes(data.to_vec())
        .file_name(name.to_string())
        .mime_str("application/octet-stream")
        .unwrap();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(at.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    name_from_location(r.headers()["location"].to_str().unwrap())
}

async fn listing(at: &impl Endpoint) -> serde_json::Value {
    let r = http()
        .get(at.url(ITEMS))
        .basic_auth("user", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_items_listings_and_one_alert() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let rx = Receiver::start().await;
    let top =
        "batch_window = \"3s\"\nalert_backoff = \"1s\"\npublic_url = \"https://sfx.example/\"";
    let a = cluster.start(1, top, &alert_tables(&rx)).await;
    let b = cluster.start(2, top, &alert_tables(&rx)).await;
    // Three files of one customer, on A, B and A, within the batch window.
    let one = random_bytes(7 * MIB, 1);
    let two = random_bytes(300_000, 2);
    let first = form_post(&a, "one.bin", &one).await;
    let put = http()
        .put(b.url("/+upload/two.bin"))
        .basic_auth("user", Some(CUSTOMER))
        .body(two.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT on B: {}", put.status());
    let third = form_post(&a, "three.bin", b"three").await;
    // A form post on A is downloadable from B, and the other way round.
    assert_item(&b, &first, &one).await;
    assert_item(&b, &third, b"three").await;
    assert_eq!(
        listing(&a).await,
        listing(&b).await,
        "the same listing on both"
    );
    // An operator logged in on A is logged in on B (one session key, in the database).
    let login = post_login(&client(), &a, &[("token", ADMIN)]).await;
    let cookie = response_header(&login, "set-cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = http()
        .get(b.url("/+list"))
        .header("Cookie", &cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "B knows A's session");
    // One delivery, one alert (whichever instance sends it), naming all three files.
    wait_until("the alert", Duration::from_secs(30), || {
        !rx.hits("/d").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hits = rx.hits("/d");
    assert_eq!(
        hits.len(),
        1,
        "exactly one alert: {:?}",
        hits.iter().map(|h| h.json()).collect::<Vec<_>>()
    );
    let files = hits[0].json()["files"].as_array().unwrap().len();
    assert_eq!(files, 3, "{}", hits[0].json());
    a.stop().await;
    b.stop().await;
}

/// A TCP proxy to `url`'s host and port; returns the proxy and `url` pointed at it.
async fn proxied(url: &str) -> (CutProxy, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let upstream: std::net::SocketAddr = hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("host:port");
    let proxy = CutProxy::start(upstream).await;
    let url = format!("{scheme}://{userinfo}{}/{path}", proxy.addr);
    (proxy, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_object_store_outages_refuse_uploads_and_lose_nothing() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    // The instance reaches both through proxies this test cuts.
    let metadata = database_toml(cluster.dir.path());
    let pg_url = metadata.split('"').nth(1).unwrap().to_string();
    let (pg, pg_proxied) = proxied(&pg_url).await;
    let endpoint = s3::endpoint().unwrap();
    let (s3p, s3_proxied) = proxied(&endpoint).await;
    let shared = format!(
        "{}{}",
        metadata.replace(&pg_url, &pg_proxied),
        s3::storage_toml(&s3::prefix_for(cluster.dir.path()))
            .replace(&endpoint, s3_proxied.trim_end_matches('/'))
    );
    let cluster = Cluster { shared, ..cluster };
    let srv = cluster.start(1, "", "").await;
    let kept = random_bytes(6 * MIB, 7);
    let before = form_post(&srv, "before.bin", &kept).await;

    // A resumable upload with 5 MiB acknowledged, then the object store goes away.
    let file = random_bytes(11 * MIB, 8);
    let created = tus(http().post(srv.url("/+tus/")))
        .header("Upload-Length", file.len().to_string())
        .send()
        .await
        .unwrap();
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        tus_patch(&srv, &location, 0, &file[..5 * MIB])
            .await
            .status(),
        204
    );
    s3p.cut(Duration::from_secs(6));
    let r = tus_patch(&srv, &location, 5 * MIB, &file[5 * MIB..]).await;
    assert_eq!(r.status(), 503, "PATCH while S3 is down");
    let r = http()
        .put(srv.url("/+upload/down.bin"))
        .basic_auth("user", Some(CUSTOMER))
        .body(random_bytes(6 * MIB, 9))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "PUT while S3 is down");
    let reason = r.text().await.unwrap();
    assert!(reason.contains("storage"), "{reason}");
    wait_until("S3 back", Duration::from_secs(10), || s3p.is_up()).await;
    // Back: the upload goes on from what was acknowledged.
    assert_eq!(tus_offset(&srv, &location).await, 5 * MIB as u64);
    let r = tus_patch(&srv, &location, 5 * MIB, &file[5 * MIB..]).await;
    assert_eq!(r.status(), 204);
    let item = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_item(&srv, &item, &file).await;

    // The database goes away mid-upload: uploads are refused with 503, then work again by
    // themselves, the interrupted one from its acknowledged offset.
    let created = tus(http().post(srv.url("/+tus/")))
        .header("Upload-Length", file.len().to_string())
        .send()
        .await
        .unwrap();
    let second = created.headers()["location"].to_str().unwrap().to_string();
    let r = tus_patch(&srv, &second, 0, &file[..6 * MIB]).await;
    assert_eq!(r.status(), 204);
    pg.cut(Duration::from_secs(3));
    let r = tus_patch(&srv, &second, 6 * MIB, &file[6 * MIB..]).await;
    assert_eq!(r.status(), 503, "PATCH while PostgreSQL is down");
    let r = http()
        .put(srv.url("/+upload/db-down.bin"))
        .basic_auth("user", Some(CUSTOMER))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "PUT while PostgreSQL is down");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = form_post(&srv, "after.bin", b"after").await;
    assert_eq!(tus_offset(&srv, &second).await, 6 * MIB as u64);
    let r = tus_patch(&srv, &second, 6 * MIB, &file[6 * MIB..]).await;
    assert_eq!(r.status(), 204, "the rest once PostgreSQL is back");
    let name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_item(&srv, &name, &file).await;
    // A cancelled upload aborts its multipart upload.
    let created = tus(http().post(srv.url("/+tus/")))
        .header("Upload-Length", file.len().to_string())
        .send()
        .await
        .unwrap();
    let third = created.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        tus_patch(&srv, &third, 0, &file[..6 * MIB]).await.status(),
        204
    );
    let prefix = s3::prefix_for(cluster.dir.path());
    assert_eq!(s3::open_multipart_uploads(&prefix).await.len(), 1);
    let r = tus(http().delete(srv.url(&third))).send().await.unwrap();
    assert_eq!(r.status(), 204, "tus termination");
    assert_eq!(
        s3::open_multipart_uploads(&prefix).await,
        Vec::<String>::new()
    );
    assert_item(&srv, &before, &kept).await;
    assert_item(&srv, &after, b"after").await;
    srv.stop().await;
}
