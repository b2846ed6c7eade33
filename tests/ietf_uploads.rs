//! The IETF resumable upload draft, step by step with curl: discovery, creation on `/+upload`,
//! offset retrieval, appends (with a wrong offset on the way), completion with the proof
//! headers, cancellation, and the interop versions 6, 8 and 9.

mod common;

use common::*;

/// `curl -sS -i` plus `args`; returns the final status line and header block, and the body.
async fn call(args: &[&str]) -> (u16, String, String) {
    let mut all = vec!["-sS", "-i"];
    all.extend_from_slice(args);
    let out = curl(&all).await;
    assert!(out.status.success(), "curl failed: {}", out.stderr);
    let head = final_head(&out.stdout).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .stdout
        .rsplit_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, head, body)
}

/// An IETF append: `body` is a curl `--data-binary` argument.
async fn append(
    url: &str,
    interop: &str,
    offset: usize,
    complete: bool,
    body: &str,
) -> (u16, String, String) {
    let complete = if complete { "?1" } else { "?0" };
    call(&[
        "-X",
        "PATCH",
        "-H",
        interop,
        "-H",
        "Content-Type: application/partial-upload",
        "-H",
        &format!("Upload-Offset: {offset}"),
        "-H",
        &format!("Upload-Complete: {complete}"),
        "--data-binary",
        body,
        url,
    ])
    .await
}

fn part(dir: &std::path::Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    format!("@{}", p.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_append_in_every_interop_version() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (code, head, _) = call(&["-X", "OPTIONS", &srv.url("/+upload")]).await;
    assert_eq!(code, 204);
    let limit = header_value(&head, "upload-limit").expect("Upload-Limit in OPTIONS");
    assert!(
        limit.contains("max-size=") && limit.contains("min-size=0"),
        "{limit}"
    );

    for (i, version) in ["6", "8", "9"].into_iter().enumerate() {
        let data = random_bytes(3 * MIB + 123, 40 + i as u64);
        let (a, b) = data.split_at(MIB + 7);
        let interop = format!("Upload-Draft-Interop-Version: {version}");
        let (code, head, _) = call(&[
            "-X",
            "POST",
            "-H",
            &interop,
            "-H",
            "Upload-Complete: ?0",
            "-H",
            &format!("Upload-Length: {}", data.len()),
            "-H",
            "Content-Disposition: attachment; filename=\"case 7.tar.gz\"",
            "--data-binary",
            "",
            &srv.url_with_secret(CUSTOMER, "/+upload"),
        ])
        .await;
        assert_eq!(code, 201, "{head}");
        let location = header_value(&head, "location").expect("Location");
        assert!(location.starts_with("/+resumable/"), "{location}");
        assert_eq!(
            header_value(&head, "upload-complete").as_deref(),
            Some("?0")
        );
        assert_eq!(
            header_value(&head, "upload-draft-interop-version").as_deref(),
            Some(version)
        );
        assert!(header_value(&head, "upload-limit").is_some());
        let url = srv.url_with_secret(CUSTOMER, &location);

        let (code, head, _) = call(&["-I", "-H", &interop, &url]).await;
        assert_eq!(code, 204, "{head}");
        assert_eq!(header_value(&head, "upload-offset").as_deref(), Some("0"));
        assert_eq!(
            header_value(&head, "cache-control").as_deref(),
            Some("no-store")
        );

        let body_a = part(dir.path(), "a", a);
        let (code, head, _) = append(&url, &interop, 0, false, &body_a).await;
        assert_eq!(code, 204, "{head}");
        assert_eq!(
            header_value(&head, "upload-offset"),
            Some(a.len().to_string())
        );

        // A wrong offset: 409 with the draft's problem document telling the right one.
        let body_b = part(dir.path(), "b", b);
        let (code, head, body) = append(&url, &interop, 5, true, &body_b).await;
        assert_eq!(code, 409, "{head}");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("problem JSON");
        assert_eq!(doc["expected-offset"], a.len() as u64);
        assert_eq!(doc["provided-offset"], 5);
        assert!(
            doc["type"]
                .as_str()
                .unwrap()
                .ends_with("mismatching-upload-offset")
        );
        assert_eq!(
            header_value(&head, "upload-offset"),
            Some(a.len().to_string())
        );

        let (code, head, _) = append(&url, &interop, a.len(), true, &body_b).await;
        assert_eq!(code, 200, "{head}");
        assert_eq!(
            header_value(&head, "upload-complete").as_deref(),
            Some("?1")
        );
        assert_eq!(header_value(&head, "sfx-sha256"), Some(sha256_hex(&data)));
        let name = header_value(&head, "sfx-item").expect("Sfx-Item");
        let item = srv.item(&name).expect("an ordinary item");
        assert_eq!(item.filename, "case 7.tar.gz");
        assert_eq!(item.size, data.len() as u64);
        assert_eq!(srv.stored_bytes(&name).await, data);

        // Appending to a finished upload is refused with the draft's problem type.
        let (code, _, body) = append(&url, &interop, data.len(), true, "").await;
        assert_eq!(code, 400);
        assert!(body.contains("completed-upload"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_uploads_cancellation_and_refusals() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2 * MIB, 9);
    let body = part(dir.path(), "whole", &data);
    // The whole file in the creation request.
    let (code, head, _) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Draft-Interop-Version: 6",
        "-H",
        "Upload-Complete: ?1",
        "-H",
        "Content-Type: application/gzip",
        "--data-binary",
        &body,
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(code, 201, "{head}");
    assert_eq!(
        header_value(&head, "upload-complete").as_deref(),
        Some("?1")
    );
    assert_eq!(header_value(&head, "sfx-sha256"), Some(sha256_hex(&data)));
    let name = header_value(&head, "sfx-item").unwrap();
    assert_eq!(srv.item(&name).unwrap().content_type, "application/gzip");

    // Cancel an upload: it is gone, and its token finds nothing.
    let (code, head, _) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Complete: ?0",
        "--data-binary",
        "partial",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(code, 201, "{head}");
    assert_eq!(header_value(&head, "upload-offset").as_deref(), Some("7"));
    let url = srv.url_with_secret(CUSTOMER, &header_value(&head, "location").unwrap());
    let before = srv.partial_files().len();
    let (code, _, _) = call(&["-X", "DELETE", &url]).await;
    assert_eq!(code, 204);
    assert_eq!(srv.partial_files().len(), before - 1);
    let (code, _, _) = call(&["-I", &url]).await;
    assert_eq!(code, 404);

    // Refusals: an unknown interop version, a bad Upload-Complete, wrong credentials, another
    // credential's upload, a made-up token.
    let (code, _, body) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Draft-Interop-Version: 3",
        "-H",
        "Upload-Complete: ?1",
        "--data-binary",
        "x",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("6, 8, 9"), "{body}");
    let (code, _, _) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Complete: yes",
        "--data-binary",
        "x",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    assert_eq!(code, 400);
    let (code, _, _) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Complete: ?1",
        "--data-binary",
        "x",
        &srv.url_with_secret("wrong", "/+upload"),
    ])
    .await;
    assert_eq!(code, 403);
    let (_, head, _) = call(&[
        "-X",
        "POST",
        "-H",
        "Upload-Complete: ?0",
        "--data-binary",
        "",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    let location = header_value(&head, "location").unwrap();
    let (code, _, _) = call(&["-I", &srv.url_with_secret(ADMIN, &location)]).await;
    assert_eq!(
        code, 403,
        "an upload belongs to the credential that made it"
    );
    let fake = format!("/+resumable/{}", "A".repeat(43));
    let (code, _, _) = call(&["-I", &srv.url_with_secret(CUSTOMER, &fake)]).await;
    assert_eq!(code, 404);
    let (code, _, _) = call(&["-I", &srv.url_with_secret(CUSTOMER, "/+resumable/..%2F..")]).await;
    assert_eq!(code, 404);
}
