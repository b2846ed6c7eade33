//! The vendor's curl command and the other form-upload variants, against the real server.

mod common;

use common::*;
use serde_json::Value;

fn single_location(out: &CurlOutput) -> String {
    header_value(&out.stdout, "location")
        .unwrap_or_else(|| panic!("no Location in:\n{}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_curl_command_stores_exact_bytes() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = random_file(dir.path(), "BUNDLE.tar.gz", 3 * 1024 * 1024 + 17, 1);
    let form = format!("file=@{};type=application/octet-stream", file.display());
    let out = curl(&[
        "-sS",
        "-i",
        "-F",
        &form,
        &srv.url_with_secret(CUSTOMER, "/+upload"),
        "-X",
        "POST",
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("HTTP/1.1 302"), "{}", out.stdout);
    let location = single_location(&out);
    let name = name_from_location(&location);
    assert_eq!(location, format!("/{name}#BUNDLE.tar.gz"));
    assert_eq!(name.len(), 8);
    assert!(name.bytes().all(|b| sfx::items::NAME_ALPHABET.contains(&b)));

    // The receipt curl prints: name, filename, size, SHA-256, expiry.
    let sha = external_sha256(&file);
    for expected in [
        name.as_str(),
        "BUNDLE.tar.gz",
        &format!("{} bytes", 3 * 1024 * 1024 + 17),
        &sha,
        "expires",
    ] {
        assert!(
            out.stdout.contains(expected),
            "receipt lacks {expected:?}:\n{}",
            out.stdout
        );
    }

    // Byte-for-byte: the stored file and a download.
    let stored = srv.data_dir.join("files").join(&name);
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let dl = dir.path().join("dl");
    let got = curl(&[
        "-sS",
        "-o",
        dl.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &srv.url_with_secret(ADMIN, &format!("/{name}/+download")),
    ])
    .await;
    assert_eq!(got.stdout, "200");
    assert_eq!(external_sha256(&dl), sha);

    let meta: Value = client()
        .get(srv.url(&format!("/apis/rest/items/{name}")))
        .basic_auth("x", Some(ADMIN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fm = &meta["file-meta"];
    assert_eq!(fm["hash"], sha);
    assert_eq!(fm["filename"], "BUNDLE.tar.gz");
    assert_eq!(fm["type"], "application/octet-stream");
    assert_eq!(fm["complete"], true);
    assert_eq!(fm["uploader"], "customers");
    assert_eq!(fm["client-ip"], "127.0.0.1");
    let upload = fm["timestamp-upload"].as_i64().unwrap();
    assert_eq!(
        fm["timestamp-max-life"].as_i64().unwrap() - upload,
        30 * 86400,
        "default lifetime 30d"
    );
    assert!(srv.temp_files().is_empty());
    srv.stop().await;
}
