//! `curl -T`: the body is the file, stored as one item with the same proof as every upload.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_upload_file_stores_and_prints_the_receipt() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = random_file(dir.path(), "bundle.tar.gz", 5 * MIB + 3, 11);
    let sha = external_sha256(&file);
    // curl appends the file's name to a URL ending in `/`.
    let out = curl(&[
        "-sS",
        "-f",
        "-T",
        file.to_str().unwrap(),
        &srv.url_with_secret(CUSTOMER, "/+upload/?reference=CASE-42"),
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    for expected in ["bundle.tar.gz", sha.as_str(), "5242883 bytes", "link"] {
        assert!(out.stdout.contains(expected), "{expected}: {}", out.stdout);
    }
    let name = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("item"))
        .unwrap()
        .trim()
        .to_string();
    let item = srv.item(&name).unwrap();
    assert_eq!(item.sha256, sha);
    assert_eq!(item.reference.as_deref(), Some("CASE-42"));
    assert_eq!(srv.stored_bytes(&name).await, std::fs::read(&file).unwrap());

    // JSON receipt, and a name given in the path (percent-encoded, path tricks sanitized).
    let out = curl(&[
        "-sS",
        "-f",
        "-H",
        "Accept: application/json",
        "-T",
        file.to_str().unwrap(),
        &srv.url_with_secret(CUSTOMER, "/+upload/..%2F..%2Fetc%2Fpasswd"),
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let it = &v["items"][0];
    assert_eq!(it["sha256"], sha);
    let filename = it["filename"].as_str().unwrap();
    assert!(
        !filename.contains('/') && filename.contains("passwd"),
        "{filename}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_puts_store_nothing() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let big = random_file(dir.path(), "big", 2 * MIB, 1);
    let small = random_file(dir.path(), "small", 1000, 2);
    let before = srv.snapshot();
    for (secret, file, expected) in [("wrong", &small, 403), (CUSTOMER, &big, 413)] {
        let st = curl_status(&[
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "30",
            "-T",
            file.to_str().unwrap(),
            &srv.url_with_secret(secret, "/+upload/x.bin"),
        ])
        .await;
        assert_eq!(st.code, expected, "{}", st.body);
        assert_eq!(
            st.size_upload, 0.0,
            "refused from the head, before the body"
        );
        assert!(
            !st.body.contains("<html"),
            "plain text for curl: {}",
            st.body
        );
    }
    // A body cut short (Content-Length larger than what is sent) stores nothing.
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        format!(
            "PUT /+upload/cut.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {CUSTOMER_BASIC}\r\nContent-Length: 5000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&[7u8; 1000]).await.unwrap();
    drop(s);
    srv.assert_nothing_stored(&before, "refused and cut PUTs")
        .await;
}
