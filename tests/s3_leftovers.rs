//! What a crash leaves in the object store is found and removed by the sweeper, and nothing
//! in progress is taken for a leftover: a multipart upload no ledger records (found by
//! listing the open multipart uploads), an object without an item; beside them a one-shot
//! upload that lasts longer than `leftover_age` and a resumable one left idle both finish
//! intact.
//!
//! Needs PostgreSQL and S3 like `tests/scale_out.rs`; talks to 127.0.0.1 only.

mod common;

use common::*;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use std::time::{Duration, Instant};

/// The sweeper looks every second; what is 6 s old and untouched is left over.
const TOP: &str = "sweep_interval = \"1s\"";
const STORAGE: &str = "leftover_age = \"6s\"";

/// The bucket as a crashed instance would have left it, through the S3 API directly.
fn bucket() -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_bucket_name(s3::BUCKET)
        .with_endpoint(s3::endpoint().unwrap())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap()
}

/// A body that sends `first`, then `trickle` 1 KiB pieces every 500 ms: a slow customer.
fn slow_body(first: Vec<u8>, trickle: Vec<u8>) -> reqwest::Body {
    let pieces: Vec<Vec<u8>> = std::iter::once(first)
        .chain(trickle.chunks(1024).map(<[u8]>::to_vec))
        .collect();
    let stream =
        futures_util::stream::unfold((pieces.into_iter(), true), |(mut it, first)| async move {
            let piece = it.next()?;
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Some((Ok::<_, std::io::Error>(piece), (it, false)))
        });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_removes_leftovers_and_spares_uploads_in_progress() {
    let Some(cluster) = Cluster::with_storage(STORAGE) else {
        return;
    };
    let prefix = s3::prefix_for(cluster.dir.path());
    let s3 = bucket();
    // A crash between creating a multipart upload and recording it, and an object whose
    // metadata commit never happened.
    let orphan_upload = Path::from(format!("{prefix}files/ZZZZZZZZ"));
    s3.create_multipart(&orphan_upload).await.unwrap();
    let orphan_object = Path::from(format!("{prefix}files/YYYYYYYY"));
    s3.put(&orphan_object, b"no item".to_vec().into())
        .await
        .unwrap();

    let a = cluster.start(1, TOP, "").await;
    let b = cluster.start(2, TOP, "").await;

    // One-shot on A: 6 MiB at once (a part goes out), then 1 KiB every 500 ms for ~12 s.
    let file = random_bytes(6 * MIB + 24 * 1024, 7);
    let body = slow_body(file[..6 * MIB].to_vec(), file[6 * MIB..].to_vec());
    let put = http()
        .put(a.url("/+upload/slow.bin"))
        .header("Authorization", CUSTOMER_BASIC)
        .header("Content-Length", file.len().to_string())
        .body(body)
        .send();
    let put = tokio::spawn(put);

    // Resumable on B: 6 MiB acknowledged, then idle longer than `leftover_age`.
    let tus_file = random_bytes(7 * MIB, 8);
    let created = tus(http().post(b.url("/+tus/")))
        .header("Upload-Length", tus_file.len().to_string())
        .header("Upload-Metadata", format!("filename {}", b64(b"idle.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let r = tus_patch(&b, &location, 0, &tus_file[..6 * MIB]).await;
    assert_eq!(r.status(), 204);

    let started = Instant::now();
    eventually(
        "the leftovers removed",
        Duration::from_secs(40),
        async || {
            let open = s3::open_multipart_uploads(&prefix).await;
            let object = s3.head(&orphan_object).await;
            match (open.iter().any(|k| k.ends_with("ZZZZZZZZ")), object) {
                (false, Err(object_store::Error::NotFound { .. })) => Ok(()),
                (upload, object) => Err(format!(
                    "orphan upload open: {upload}, orphan object: {:?}",
                    object.map(|m| m.size)
                )),
            }
        },
    )
    .await;
    // At least one clean-up pass ran past `leftover_age` while both uploads were in progress.
    let waited = Duration::from_secs(7).saturating_sub(started.elapsed());
    tokio::time::sleep(waited).await;

    let r = put.await.unwrap().unwrap();
    assert!(r.status().is_success(), "slow PUT: {}", r.status());
    let name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_eq!(file_meta(&b, &name).await["hash"], sha256_hex(&file));
    let r = tus_patch(&a, &location, 6 * MIB, &tus_file[6 * MIB..]).await;
    assert_eq!(
        r.status(),
        204,
        "the idle tus upload goes on, on the other instance"
    );
    let tus_name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    assert_eq!(
        file_meta(&a, &tus_name).await["hash"],
        sha256_hex(&tus_file)
    );
    assert_eq!(
        s3::open_multipart_uploads(&prefix).await,
        Vec::<String>::new()
    );
    a.stop().await;
    b.stop().await;
}
