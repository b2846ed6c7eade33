//! Every protocol ends in the same engine: a customer's delivery made with tus, PUT, the IETF
//! draft and the form post is one delivery, announced by one alert that lists every file with
//! the SHA-256 each protocol reported.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_protocols_one_delivery_one_alert() {
    let rx = Receiver::start().await;
    let extra = format!(
        "batch_window = \"3s\"\nalert_backoff = \"1s\"\n[[alerts]]\nkind = \"webhook\"\nname = \"json\"\nurl = \"{}\"\nformat = \"json\"\n",
        rx.url("/d")
    );
    let srv = TestServer::start_with(&extra).await;
    // Not following the form post's 302 (to the item page, which customers may not read).
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut expected = Vec::new();

    // tus, with the reference in its metadata.
    let tus_data = random_bytes(300_000, 1);
    let r = c
        .post(srv.url("/+tus/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Authorization", CUSTOMER_BASIC)
        .header("Upload-Length", tus_data.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {},reference {}", b64(b"a.tgz"), b64(b"CASE-1")),
        )
        .header("Content-Type", "application/offset+octet-stream")
        .body(tus_data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expected.push((
        "a.tgz",
        r.headers()["sfx-sha256"].to_str().unwrap().to_string(),
    ));
    assert_eq!(expected[0].1, sha256_hex(&tus_data));

    // PUT and the IETF draft, with the reference in the query.
    let put_data = random_bytes(200_000, 2);
    let r = c
        .put(srv.url("/+upload/b.log?reference=CASE-1"))
        .header("Authorization", CUSTOMER_BASIC)
        .body(put_data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expected.push(("b.log", sha256_hex(&put_data)));
    let ietf_data = random_bytes(100_000, 3);
    let r = c
        .post(srv.url("/+upload?reference=CASE-1"))
        .header("Authorization", CUSTOMER_BASIC)
        .header("Upload-Complete", "?1")
        .header("Content-Disposition", "attachment; filename=\"c.bin\"")
        .body(ietf_data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expected.push(("c.bin", sha256_hex(&ietf_data)));

    // And the vendor's form post.
    let form_data = random_bytes(50_000, 4);
    let form = reqwest::multipart::Form::new()
        .text("reference", "CASE-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(form_data.clone()).file_name("d.txt"),
        );
    let r = c
        .post(srv.url("/+upload"))
        .header("Authorization", CUSTOMER_BASIC)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_redirection(),
        "{status}: {}",
        r.text().await.unwrap_or_default()
    );
    expected.push(("d.txt", sha256_hex(&form_data)));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rx.hits("/d").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no alert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let hits = rx.hits("/d");
    assert_eq!(hits.len(), 1, "one alert for the whole delivery");
    let alert = hits[0].json();
    assert_eq!(alert["uploader"]["reference"], "CASE-1");
    let files = alert["files"].as_array().unwrap();
    let mut got: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f["filename"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = expected
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    assert_eq!(got, want);
}
