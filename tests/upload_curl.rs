//! The vendor's curl command and the other form-upload variants, against the real server.

mod common;

use common::*;
use serde_json::Value;

fn single_location(out: &CurlOutput) -> String {
    upload_location(out).unwrap_or_else(|e| panic!("{e}"))
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
    assert_eq!(srv.stored_bytes(&name).await, std::fs::read(&file).unwrap());
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

    let fm = file_meta(&srv, &name).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_in_one_request() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = random_file(dir.path(), "a.log", 1000, 2);
    let b = random_file(dir.path(), "b.tar.gz", 200_000, 3);
    let (fa, fb) = (
        format!("file=@{}", a.display()),
        format!("file=@{};type=application/gzip", b.display()),
    );
    let out = curl(&[
        "-sS",
        "-i",
        "-F",
        &fa,
        "-F",
        &fb,
        "-F",
        "reference=CASE-7",
        "-F",
        "comment=two files",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    let location = single_location(&out);
    assert!(
        location.ends_with("#a.log"),
        "Location points at the first file: {location}"
    );
    assert!(out.stdout.contains("2 file(s) received"), "{}", out.stdout);
    for (path, fname) in [(&a, "a.log"), (&b, "b.tar.gz")] {
        assert!(
            out.stdout.contains(&external_sha256(path)),
            "receipt lists {fname}"
        );
        assert!(out.stdout.contains(fname));
    }
    let names = srv.item_names();
    assert_eq!(names.len(), 2);
    for n in &names {
        let it = srv.item(n).unwrap();
        assert_eq!(it.reference.as_deref(), Some("CASE-7"));
        assert_eq!(it.comment.as_deref(), Some("two files"));
        let src = if it.filename == "a.log" { &a } else { &b };
        assert_eq!(it.sha256, external_sha256(src));
        assert_eq!(srv.stored_bytes(n).await, std::fs::read(src).unwrap());
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_receipt() {
    let srv = TestServer::start().await;
    let part = reqwest::multipart::Part::bytes(&b"hello"[..]).file_name("h.txt");
    let resp = client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = response_header(&resp, "location");
    let body: Value = resp.json().await.unwrap();
    let it = &body["items"][0];
    assert_eq!(location, format!("/{}#h.txt", it["name"].as_str().unwrap()));
    assert_eq!(it["filename"], "h.txt");
    assert_eq!(it["size"], 5);
    assert_eq!(
        it["sha256"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(it["type"], "text/plain");
    assert!(it["expires_at"].as_i64().unwrap() > 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paste_and_lifetime_fields() {
    let srv = TestServer::start_with("max_lifetime = \"7d\"").await;
    let url = srv.url_with_secret(CUSTOMER, "/+upload");
    // A paste with filename and type, kept 2 hours.
    let name = curl_form_upload(&[
        "-F",
        "text=line one\nline two",
        "-F",
        "filename=notes.md",
        "-F",
        "contenttype=text/markdown",
        "-F",
        "maxlife-value=2",
        "-F",
        "maxlife-unit=hours",
        &url,
    ])
    .await;
    let it = srv.item(&name).unwrap();
    assert_eq!(
        (it.filename.as_str(), it.content_type.as_str(), it.size),
        ("notes.md", "text/markdown", 17)
    );
    assert_eq!(it.expires_at.unwrap() - it.created_at, 7200);
    assert_eq!(srv.stored_bytes(&name).await, b"line one\nline two");
    // A paste without a filename gets bepasty's <name>.txt.
    let out = curl(&["-sS", "-i", "-F", "text=x", &url]).await;
    let name = name_from_location(&single_location(&out));
    assert!(out.stdout.contains(&format!("{name}.txt")));
    // FOREVER is capped by max_lifetime (7 days), not refused; units are case-insensitive.
    let name = curl_form_upload(&["-F", "text=y", "-F", "maxlife-unit=Forever", &url]).await;
    let it = srv.item(&name).unwrap();
    assert_eq!(it.expires_at.unwrap() - it.created_at, 7 * 86400);
    // Invalid lifetime: 400 and nothing stored.
    let before = srv.item_names().len();
    for (v, u) in [
        ("1", "FORTNIGHT"),
        ("x", "DAYS"),
        ("0", "DAYS"),
        ("-5", "MINUTES"),
    ] {
        let (value, unit) = (format!("maxlife-value={v}"), format!("maxlife-unit={u}"));
        let r = curl_status(&["-F", "text=z", "-F", &value, "-F", &unit, &url]).await;
        assert_eq!(r.code, 400, "{v} {u}");
    }
    assert_eq!(srv.item_names().len(), before);
    assert!(srv.temp_files().is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file_is_an_item_but_an_empty_form_part_is_not() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    let out = curl(&[
        "-sS",
        "-i",
        "-F",
        &format!("file=@{}", empty.display()),
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert!(
        out.stdout
            .contains("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        "{}",
        out.stdout
    );
    // A browser with no file chosen sends a nameless empty part: with nothing else, that is a 400.
    let part = reqwest::multipart::Part::bytes(Vec::new()).file_name("");
    let resp = client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .multipart(
            reqwest::multipart::Form::new()
                .part("file", part)
                .text("text", ""),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(srv.item_names().len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    for (extra, expected) in [
        ("", "127.0.0.1"),
        ("trusted_proxies = [\"127.0.0.1/32\"]", "203.0.113.5"),
    ] {
        let srv = TestServer::start_with(extra).await;
        let name = curl_form_upload(&[
            "-H",
            "X-Forwarded-For: 198.51.100.1, 203.0.113.5",
            "-F",
            "text=via proxy",
            &srv.url_with_secret(CUSTOMER, "/+upload"),
        ])
        .await;
        let it = srv.item(&name).unwrap();
        assert_eq!(it.uploader.client_ip, expected, "config: {extra:?}");
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_urlencoded_forms_are_bounded_before_the_token_is_checked() {
    let srv = TestServer::start().await;
    let big = "x".repeat(2 << 20);
    let with_token = client()
        .post(srv.url("/+upload"))
        .form(&[("text", big.as_str()), ("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_token.status(),
        413,
        "held in memory before the token is known: capped"
    );
    let small = client()
        .post(srv.url("/+upload"))
        .form(&[("text", "small paste"), ("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 302);
    let authed = client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .form(&[("text", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        authed.status(),
        302,
        "with Basic auth the larger limit applies"
    );
    srv.stop().await;
}
