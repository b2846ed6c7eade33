//! Downloads: headers, ranges (206/416, suffix, If-Range), conditional requests, curl resume,
//! and what may be shown inline.

mod common;

use common::*;
use reqwest::StatusCode;

async fn put(srv: &TestServer, filename: &str, content_type: &str, body: Vec<u8>) -> String {
    let part = reqwest::multipart::Part::bytes(body)
        .file_name(filename.to_string())
        .mime_str(content_type)
        .unwrap();
    upload_form(srv, reqwest::multipart::Form::new().part("file", part)).await
}

fn get(srv: &TestServer, path: &str) -> reqwest::RequestBuilder {
    client().get(srv.url(path)).basic_auth("op", Some(ADMIN))
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_download_headers() {
    let srv = TestServer::start().await;
    let body = data(100_000);
    let name = put(
        &srv,
        "bundle.tar.gz",
        "application/octet-stream",
        body.clone(),
    )
    .await;
    for path in [
        format!("/{name}/+download"),
        format!("/apis/rest/items/{name}/download"),
    ] {
        let resp = get(&srv, &path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers().clone();
        assert_eq!(
            h["content-disposition"],
            "attachment; filename=\"bundle.tar.gz\""
        );
        assert_eq!(h["content-length"], "100000");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "sandbox");
        assert!(h.contains_key("last-modified"));
        let etag = h["etag"].to_str().unwrap().to_string();
        assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)));
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..]);
        // HEAD: the same headers, no body.
        let head = client()
            .head(srv.url(&path))
            .basic_auth("op", Some(ADMIN))
            .send()
            .await
            .unwrap();
        assert_eq!(head.headers()["content-length"], "100000");
        assert!(head.bytes().await.unwrap().is_empty());
        // If-None-Match: 304.
        let cached = get(&srv, &path)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges() {
    let srv = TestServer::start().await;
    let body = data(1000);
    let name = put(&srv, "r.bin", "application/octet-stream", body.clone()).await;
    let path = format!("/{name}/+download");
    let ranged = async |range: &str, if_range: Option<&str>| {
        let mut req = get(&srv, &path).header("range", range);
        if let Some(validator) = if_range {
            req = req.header("if-range", validator);
        }
        req.send().await.unwrap()
    };
    let cases: [(&str, usize, usize); 4] = [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=500-5000", 500, 999),
    ];
    for (range, start, end) in cases {
        let resp = ranged(range, None).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {start}-{end}/1000")
        );
        assert_eq!(
            resp.headers()["content-length"],
            (end - start + 1).to_string()
        );
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            &body[start..=end],
            "{range}"
        );
    }
    let unsat = ranged("bytes=1000-", None).await;
    assert_eq!(unsat.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(unsat.headers()["content-range"], "bytes */1000");
    // Malformed or multiple ranges: the whole file (RFC 9110 lets a server ignore Range).
    for ignored in ["bytes=5-2", "lines=1-2", "bytes=0-1,5-6", "bytes=abc"] {
        let resp = ranged(ignored, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{ignored}");
        assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    }
    // If-Range with a stale validator: the whole file; with the current ETag: the range.
    let stale = ranged("bytes=0-9", Some("\"old\"")).await;
    assert_eq!(stale.status(), StatusCode::OK);
    let etag = response_header(&stale, "etag");
    let fresh = ranged("bytes=0-9", Some(&etag)).await;
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_resumes_an_interrupted_download() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = random_file(dir.path(), "big.bin", 2 * 1024 * 1024 + 5, 9);
    let form = format!("file=@{}", src.display());
    let name = curl_form_upload(&["-F", &form, &srv.url_with_secret(CUSTOMER, "/+upload")]).await;
    // A download that stopped after the first 700000 bytes...
    let partial = dir.path().join("partial.bin");
    std::fs::write(&partial, &std::fs::read(&src).unwrap()[..700_000]).unwrap();
    // ...is finished by `curl -C -`, which sends Range: bytes=700000-.
    let url = srv.url_with_secret(ADMIN, &format!("/{name}/+download"));
    let out = curl(&[
        "-sS",
        "-C",
        "-",
        "-o",
        partial.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &url,
    ])
    .await;
    assert_eq!(out.stdout, "206", "{}", out.stderr);
    assert_eq!(external_sha256(&partial), external_sha256(&src));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_only_for_harmless_types() {
    let srv = TestServer::start().await;
    let cases = [
        (
            "notes.txt",
            "text/plain",
            "inline",
            "text/plain; charset=utf-8",
        ),
        (
            "script.py",
            "text/x-python",
            "inline",
            "text/plain; charset=utf-8",
        ),
        ("pic.png", "image/png", "inline", "image/png"),
        ("doc.pdf", "application/pdf", "inline", "application/pdf"),
        (
            "evil.svg",
            "image/svg+xml",
            "attachment",
            "application/octet-stream",
        ),
        (
            "evil.html",
            "text/html",
            "attachment",
            "text/plain; charset=utf-8",
        ),
        (
            "evil.xhtml",
            "application/xhtml+xml",
            "attachment",
            "application/octet-stream",
        ),
        (
            "data.bin",
            "application/octet-stream",
            "attachment",
            "application/octet-stream",
        ),
    ];
    for (filename, ctype, disposition, served) in cases {
        let name = put(
            &srv,
            filename,
            ctype,
            b"<svg onload=alert(1)><script>alert(1)</script>".to_vec(),
        )
        .await;
        let resp = get(&srv, &format!("/{name}/+inline")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(
            h["content-disposition"],
            format!("{disposition}; filename=\"{filename}\""),
            "{filename}"
        );
        assert_eq!(h["content-type"], served, "{filename}");
        assert_eq!(h["content-security-policy"], "sandbox");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_filenames_use_rfc6266() {
    let srv = TestServer::start().await;
    let name = put(
        &srv,
        "rapport été 2026.pdf",
        "application/pdf",
        b"%PDF-1.4".to_vec(),
    )
    .await;
    let resp = get(&srv, &format!("/{name}/+download"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"rapport _t_ 2026.pdf\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9%202026.pdf"
    );
    assert_eq!(
        file_meta(&srv, &name).await["filename"],
        "rapport été 2026.pdf",
        "non-ASCII is kept, unlike bepasty"
    );
    srv.stop().await;
}
