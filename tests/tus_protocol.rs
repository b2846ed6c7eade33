//! tus 1.0.0 at `/+tus/` step by step with reqwest, for what no real client covers (those are in
//! `tests/tus_clients.rs`): discovery, errors (412, 404, 409, 460, 403, 413, 415),
//! creation-with-upload, `Upload-Expires`, defer-length, termination, metadata and lifetime.
//! Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use std::time::Duration;

const TUS: &str = "/+tus/";
/// A second credential that may create: uploads of one are not the other's.
const PARTNER: &str = "partner-secret";

fn partner_toml() -> &'static str {
    "[[secrets]]\nlabel = \"partners\"\nsecret = \"partner-secret\"\npermissions = [\"create\"]\n"
}

fn tus_req(method: reqwest::Method, url: &str, secret: Option<&str>) -> reqwest::RequestBuilder {
    let mut r = client()
        .request(method, url)
        .header("Tus-Resumable", "1.0.0");
    if let Some(s) = secret {
        r = r.basic_auth("user", Some(s));
    }
    r
}

fn hv(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Creates an upload of `length` bytes as `secret`; returns its absolute URL.
async fn create(srv: &TestServer, secret: &str, length: u64) -> String {
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(secret))
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", format!("filename {}", b64(b"step.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = hv(&resp, "location").expect("Location");
    srv.url(&location)
}

async fn patch(url: &str, secret: &str, offset: u64, body: &[u8]) -> reqwest::RequestBuilder {
    tus_req(reqwest::Method::PATCH, url, Some(secret))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(body.to_vec())
}

/// Status, `Tus-Resumable` present, and the text reason.
async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    assert_eq!(
        hv(&resp, "tus-resumable").as_deref(),
        Some("1.0.0"),
        "Tus-Resumable on the {status} answer"
    );
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn options_discovery_without_auth() {
    let srv = TestServer::start_with("max_file_size = \"3MiB\"").await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, srv.url(TUS))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "tus-resumable").as_deref(), Some("1.0.0"));
    assert_eq!(hv(&resp, "tus-version").as_deref(), Some("1.0.0"));
    assert_eq!(hv(&resp, "tus-max-size").as_deref(), Some("3145728"));
    let ext = hv(&resp, "tus-extension").unwrap_or_default();
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
    ] {
        assert!(ext.split(',').any(|x| x.trim() == e), "{e} in {ext}");
    }
    let algos = hv(&resp, "tus-checksum-algorithm").unwrap_or_default();
    for a in ["sha1", "sha256"] {
        assert!(algos.split(',').any(|x| x.trim() == a), "{a} in {algos}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn creation_location_expires_and_head() {
    let srv = TestServer::start_with("incomplete_ttl = \"2h\"").await;
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Length", "10")
        .header(
            "Upload-Metadata",
            format!("filename {},reference {}", b64(b"a.txt"), b64(b"R-1")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(hv(&resp, "tus-resumable").as_deref(), Some("1.0.0"));
    assert_eq!(hv(&resp, "upload-offset").as_deref(), Some("0"));
    let location = hv(&resp, "location").unwrap();
    let id = location
        .strip_prefix("/+tus/")
        .expect("an absolute path under /+tus/");
    assert_eq!(id.len(), 43, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    // Upload-Expires: an HTTP date about incomplete_ttl from now.
    let expires = hv(&resp, "upload-expires").expect("Upload-Expires");
    let when = httpdate::parse_http_date(&expires).expect("an HTTP date");
    let ahead = when
        .duration_since(std::time::SystemTime::now())
        .expect("in the future");
    assert!(
        ahead > Duration::from_secs(7000) && ahead <= Duration::from_secs(7201),
        "{expires}"
    );

    let url = srv.url(&location);
    let h = tus_req(reqwest::Method::HEAD, &url, Some(CUSTOMER))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    assert_eq!(hv(&h, "upload-offset").as_deref(), Some("0"));
    assert_eq!(hv(&h, "upload-length").as_deref(), Some("10"));
    assert_eq!(hv(&h, "cache-control").as_deref(), Some("no-store"));
    let meta = hv(&h, "upload-metadata").unwrap_or_default();
    assert!(
        meta.contains(&format!("filename {}", b64(b"a.txt"))),
        "{meta}"
    );
    assert!(hv(&h, "sfx-sha256").is_none(), "not complete");
    srv.stop().await;
}

#[tokio::test]
async fn version_precondition_412() {
    let srv = TestServer::start().await;
    for version in [None, Some("0.2.2"), Some("2.0.0")] {
        let mut r = client()
            .post(srv.url(TUS))
            .basic_auth("user", Some(CUSTOMER))
            .header("Upload-Length", "1");
        if let Some(v) = version {
            r = r.header("Tus-Resumable", v);
        }
        let resp = r.send().await.unwrap();
        let (status, reason) = error_of(resp).await;
        assert_eq!(status, 412, "Tus-Resumable {version:?}");
        assert!(!reason.is_empty());
    }
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

/// tus 1.0.0: "the Server MUST respond with 412 and MUST include the Tus-Version header".
#[tokio::test]
async fn version_412_names_the_supported_version() {
    let srv = TestServer::start().await;
    let resp = client()
        .post(srv.url(TUS))
        .basic_auth("user", Some(CUSTOMER))
        .header("Tus-Resumable", "0.2.2")
        .header("Upload-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 412);
    assert_eq!(hv(&resp, "tus-version").as_deref(), Some("1.0.0"));
    srv.stop().await;
}

#[tokio::test]
async fn unknown_upload_404() {
    let srv = TestServer::start().await;
    let unknown = srv.url("/+tus/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for method in [reqwest::Method::HEAD, reqwest::Method::DELETE] {
        let resp = tus_req(method.clone(), &unknown, Some(CUSTOMER))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(resp).await.0, 404, "{method}");
    }
    let resp = patch(&unknown, CUSTOMER, 0, b"abc")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn wrong_offset_409_keeps_nothing() {
    let srv = TestServer::start().await;
    let url = create(&srv, CUSTOMER, 6).await;
    let resp = patch(&url, CUSTOMER, 3, b"def").await.send().await.unwrap();
    let (status, reason) = error_of(resp).await;
    assert_eq!(status, 409);
    assert!(!reason.is_empty());
    assert_eq!(tus_head(&url, CUSTOMER).await.1, Some(0));
    // The right offset works, and so does the next.
    let resp = patch(&url, CUSTOMER, 0, b"abc").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "upload-offset").as_deref(), Some("3"));
    let resp = patch(&url, CUSTOMER, 0, b"abc").await.send().await.unwrap();
    assert_eq!(error_of(resp).await.0, 409, "a replayed chunk");
    let resp = patch(&url, CUSTOMER, 3, b"def").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "sfx-sha256").unwrap(), sha256_hex(b"abcdef"));
    srv.stop().await;
}

#[tokio::test]
async fn checksum_mismatch_460_not_stored() {
    let srv = TestServer::start().await;
    let url = create(&srv, CUSTOMER, 6).await;
    let wrong = b64(&sha2_digest(b"something else"));
    let resp = patch(&url, CUSTOMER, 0, b"abcdef")
        .await
        .header("Upload-Checksum", format!("sha256 {wrong}"))
        .send()
        .await
        .unwrap();
    let (status, reason) = error_of(resp).await;
    assert_eq!(status, 460);
    assert!(!reason.is_empty());
    assert_eq!(
        tus_head(&url, CUSTOMER).await.1,
        Some(0),
        "the chunk was not stored"
    );
    // An algorithm the server does not offer: 400.
    let resp = patch(&url, CUSTOMER, 0, b"abcdef")
        .await
        .header("Upload-Checksum", "md5 6AeS3Bcuz9V3RiVgG3ZU1g==")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 400);
    // The right sha1 is taken.
    let sha1 = sha1sum::digest(b"abcdef");
    let resp = patch(&url, CUSTOMER, 0, b"abcdef")
        .await
        .header("Upload-Checksum", format!("sha1 {}", b64(&sha1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "sfx-sha256").unwrap(), sha256_hex(b"abcdef"));
    srv.stop().await;
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// SHA-1 by `sha1sum`, independently of the server's implementation.
mod sha1sum {
    pub fn digest(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("sha1sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha1sum is installed");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        let hex_digest = String::from_utf8(out.stdout).unwrap();
        hex::decode(hex_digest.split_whitespace().next().unwrap()).unwrap()
    }
}

#[tokio::test]
async fn another_credentials_upload_403() {
    let srv = TestServer::start_with(partner_toml()).await;
    let url = create(&srv, CUSTOMER, 3).await;
    let resp = patch(&url, PARTNER, 0, b"abc").await.send().await.unwrap();
    assert_eq!(error_of(resp).await.0, 403);
    let resp = tus_req(reqwest::Method::HEAD, &url, Some(PARTNER))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 403);
    let resp = tus_req(reqwest::Method::DELETE, &url, Some(PARTNER))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 403);
    // Without credentials, or wrong ones.
    let resp = tus_req(reqwest::Method::HEAD, &url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 403);
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some("nope"))
        .header("Upload-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 403);
    // The owner still can.
    assert_eq!(tus_head(&url, CUSTOMER).await, (StatusCode::OK, Some(0)));
    srv.stop().await;
}

#[tokio::test]
async fn bearer_and_token_auth() {
    let srv = TestServer::start().await;
    let resp = client()
        .post(srv.url(TUS))
        .header("Tus-Resumable", "1.0.0")
        .bearer_auth(CUSTOMER)
        .header("Upload-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = client()
        .post(srv.url(&format!("{TUS}?token={CUSTOMER}")))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    srv.stop().await;
}

#[tokio::test]
async fn creation_with_upload_and_metadata_aliases() {
    let srv = TestServer::start().await;
    let data = random_bytes(70_000, 9);
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Length", data.len().to_string())
        .header("Content-Type", "application/offset+octet-stream")
        // `name`/`type` as Uppy and others send them; a key without a value is allowed.
        .header(
            "Upload-Metadata",
            format!(
                "name {},type {},comment {},empty",
                b64("über.csv".as_bytes()),
                b64(b"text/csv"),
                b64(b"all at once")
            ),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(hv(&resp, "upload-offset"), Some(data.len().to_string()));
    let sha = sha256_hex(&data);
    assert_eq!(hv(&resp, "sfx-sha256").as_deref(), Some(sha.as_str()));
    let item = hv(&resp, "sfx-item").unwrap();
    let meta = file_meta(&srv, &item).await;
    assert_eq!(meta["filename"], "über.csv");
    assert_eq!(meta["type"], "text/csv");
    assert_eq!(meta["comment"], "all at once");
    assert_eq!(meta["hash"], sha.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn defer_length_step_by_step() {
    let srv = TestServer::start().await;
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let url = srv.url(&hv(&resp, "location").unwrap());
    let h = tus_req(reqwest::Method::HEAD, &url, Some(CUSTOMER))
        .send()
        .await
        .unwrap();
    assert_eq!(hv(&h, "upload-defer-length").as_deref(), Some("1"));
    assert!(hv(&h, "upload-length").is_none());
    let resp = patch(&url, CUSTOMER, 0, b"abc").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(hv(&resp, "sfx-sha256").is_none());
    let resp = patch(&url, CUSTOMER, 3, b"de")
        .await
        .header("Upload-Length", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "sfx-sha256").unwrap(), sha256_hex(b"abcde"));
    srv.stop().await;
}

#[tokio::test]
async fn size_and_content_type_refusals() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Length", (2 * MIB).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 413);
    let url = create(&srv, CUSTOMER, 3).await;
    let resp = tus_req(reqwest::Method::PATCH, &url, Some(CUSTOMER))
        .header("Content-Type", "text/plain")
        .header("Upload-Offset", "0")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 415);
    // More than the declared length.
    let resp = patch(&url, CUSTOMER, 0, b"abcd")
        .await
        .send()
        .await
        .unwrap();
    let status = error_of(resp).await.0;
    assert!(matches!(status, 400 | 409 | 413), "{status}");
    assert_eq!(tus_head(&url, CUSTOMER).await.1, Some(0));
    srv.stop().await;
}

#[tokio::test]
async fn termination_step_by_step() {
    let srv = TestServer::start().await;
    let url = create(&srv, CUSTOMER, 10).await;
    let resp = patch(&url, CUSTOMER, 0, b"abc").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = tus_req(reqwest::Method::DELETE, &url, Some(CUSTOMER))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(hv(&resp, "tus-resumable").as_deref(), Some("1.0.0"));
    let (status, _) = tus_head(&url, CUSTOMER).await;
    assert!(matches!(status.as_u16(), 404 | 410), "{status}");
    let resp = patch(&url, CUSTOMER, 3, b"def").await.send().await.unwrap();
    let (status, _) = error_of(resp).await;
    assert!(matches!(status, 404 | 410), "{status}");
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

/// The page's "Keep for" rides in `Upload-Metadata` as the form's `maxlife-*` fields.
#[tokio::test]
async fn lifetime_from_metadata() {
    let srv = TestServer::start().await;
    let meta = format!(
        "filename {},maxlife-value {},maxlife-unit {}",
        b64(b"week.bin"),
        b64(b"7"),
        b64(b"DAYS")
    );
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Length", "3")
        .header("Upload-Metadata", meta)
        .header("Content-Type", "application/offset+octet-stream")
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let name = hv(&resp, "sfx-item").expect("complete at creation");
    let item = srv.item(&name).unwrap();
    let week = item.expires_at.unwrap() - item.created_at;
    assert!((7 * 86400 - 5..=7 * 86400 + 5).contains(&week), "{week}");
    // A unit the form does not know is refused, like on the form.
    let bad = format!("maxlife-unit {}", b64(b"FORTNIGHTS"));
    let resp = tus_req(reqwest::Method::POST, &srv.url(TUS), Some(CUSTOMER))
        .header("Upload-Length", "3")
        .header("Upload-Metadata", bad)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 400);
}
