//! The field's known attacks on upload servers, as tests (shared/reference/peers.md §4, plus
//! the managed-file-transfer incidents of 2025-26). Each case names its incident. Every one is
//! refused with a clear status, stores or changes nothing, and leaves the server serving.
//!
//! Covered elsewhere: hostile filenames and header injection through them, SVG/HTML served
//! back, stalled uploads and brute force (bad_input.rs, downloads.rs); framing, smuggling and
//! multipart tricks (framing.rs); slowloris and floods (connections.rs); NUL bytes in
//! credentials and forged sessions (credentials.rs); appending to a completed or foreign
//! upload (rest_api.rs).

mod common;

use common::*;
use http::StatusCode;

/// copyparty CVE-2023-37474, PsiTransfer CVE-2026-41180, alist #2449: traversal through raw,
/// percent-encoded, double-encoded, overlong-UTF-8, fullwidth and backslash paths, on every
/// kind of route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_spellings_never_reach_a_file() {
    let srv = TestServer::start().await;
    let name = upload_form(&srv, file_form("a.txt", b"hello".to_vec())).await;
    let paths = [
        "/%252e%252e/%252e%252e/etc/passwd",
        "/+static/%252e%252e%252fCargo.toml",
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "/+static/%c0%ae%c0%ae%c0%afCargo.toml",
        "/+static/%e0%80%ae%e0%80%ae/Cargo.toml",
        "/+static/..%ef%bc%8fCargo.toml",
        "/+static/.%2e/Cargo.toml",
        "/+static/%2e./Cargo.toml",
        "/+static/..\\..\\Cargo.toml",
        "/+static/sfx.css/../../Cargo.toml",
        "/+static//etc/passwd",
        "/+static/%2fetc%2fpasswd",
        "//etc/passwd",
        "/apis/rest/items/..%252f..%252fsfx.db",
        "/apis/rest/items/%2e%2e%2fsfx.db/download",
        &format!("/{name}/..%2f..%2fsfx.db"),
        &format!("/{name}%2f..%2f..%2fsfx.db/+download"),
        &format!("/{name}/+download/..%2f..%2fsession.key"),
        "/+receipt/../sfx.db",
    ];
    for path in paths {
        let r = curl_status(&["--path-as-is", "-u", &format!("x:{ADMIN}"), &srv.url(path)]).await;
        assert_eq!(r.code, 404, "{path}: {}", r.body);
        for leak in ["root:", "[package]", "SQLite format", "body {"] {
            assert!(!r.body.contains(leak), "{path} leaked {leak:?}");
        }
    }
    // Raw bytes no client would normalise: backslashes and an overlong slash.
    for raw in [
        &b"GET /+static/..\\..\\..\\etc\\passwd HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET /+static/\xc0\xaf..\xc0\xafCargo.toml HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let answer = raw_request(srv.addr, raw).await;
        assert!(
            matches!(status_of(&answer), Some(400) | Some(404)),
            "{answer}"
        );
        assert!(!answer.contains("root:") && !answer.contains("[package]"));
    }
    srv.stop().await;
}

/// CrushFTP 2025 (authentication bypass through a second path to the same function), ProjectSend
/// CVE-2024-11680 (operator endpoints without auth): every operator route refuses the public
/// secret and no secret, however it is spelled and whichever protocol carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_have_no_side_door() {
    let srv = TestServer::start().await;
    let name = upload_form(&srv, file_form("secret.txt", b"customer data".to_vec())).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let gets = [
        "/+list".to_string(),
        "/+list?q=secret".into(),
        "/+audit".into(),
        format!("/{name}"),
        format!("/{name}/+download"),
        format!("/{name}/+inline"),
        ITEMS.to_string(),
        format!("{ITEMS}/{name}"),
        format!("{ITEMS}/{name}/download"),
        format!("//apis/rest/items/{name}/download"),
        format!("/{name}?token=wrong"),
    ];
    for path in &gets {
        for (who, secret) in [("customer", Some(CUSTOMER)), ("anonymous", None)] {
            for (proto, http) in [("HTTP/1.1", client()), ("HTTP/2", h2.clone())] {
                for method in [http::Method::GET, http::Method::HEAD] {
                    let mut req = http.request(method.clone(), srv.url(path));
                    if let Some(s) = secret {
                        req = req.basic_auth("u", Some(s));
                    }
                    let resp = req.send().await.unwrap();
                    assert_eq!(
                        resp.status(),
                        StatusCode::FORBIDDEN,
                        "{method} {path} as {who} over {proto}"
                    );
                    let body = resp.text().await.unwrap();
                    assert!(
                        !body.contains("customer data") && !body.contains("secret.txt"),
                        "{path}: {body}"
                    );
                }
            }
        }
    }
    // Case and suffix variants are other routes (404), never the operator page.
    for path in [
        "/+LIST",
        "/+list/",
        "/APIS/rest/items",
        "/apis/rest/items/",
        "/+list;x",
        "/+list%00",
    ] {
        let r = get_as(&srv, Some(CUSTOMER), path).await;
        assert!(
            matches!(r.status(), StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
            "{path}: {}",
            r.status()
        );
        assert!(!r.text().await.unwrap().contains("secret.txt"), "{path}");
    }
    for (path, body) in [
        (format!("/{name}/+delete"), ""),
        (format!("{ITEMS}/{name}/delete"), ""),
        (format!("{ITEMS}/{name}/lock"), ""),
        (format!("{ITEMS}/{name}/modify"), "{\"filename\":\"x\"}"),
    ] {
        let resp = client()
            .post(srv.url(&path))
            .basic_auth("u", Some(CUSTOMER))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    assert!(srv.item(&name).is_some(), "nothing was changed");
    srv.stop().await;
}

/// copyparty CVE-2023-38501 / CVE-2025-54589 (reflected XSS through parameters), SFTPGo 2026
/// (stored XSS through a download parameter): what a client sends never comes back as markup,
/// in pages, in the listing search box, or in the JSON listing embedded nowhere as HTML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_never_comes_back_as_markup() {
    let srv = TestServer::start().await;
    let payloads = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(2)>",
        "</textarea><svg onload=alert(3)>",
        "<!--",
        "\u{2028}</script>",
        "javascript:alert(4)",
    ];
    let mut names = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let form = file_form(&format!("{p}.txt"), format!("x{i}").into_bytes())
            .text("reference", format!("CASE-{i} {p}\r\nX-Injected: 1"))
            .text("comment", format!("{p}\n\u{0}\u{1b}[31mred"));
        names.push(upload_form(&srv, form).await);
    }
    let pages = [
        "/+list".to_string(),
        format!(
            "/+list?q={}",
            percent_encoding::utf8_percent_encode(payloads[0], percent_encoding::NON_ALPHANUMERIC)
        ),
        format!(
            "/+list?q={}",
            percent_encoding::utf8_percent_encode(payloads[1], percent_encoding::NON_ALPHANUMERIC)
        ),
        format!("/{}", names[0]),
        format!("/{}", names[1]),
        format!("/{}?filename=%3Cscript%3Ealert(5)%3C/script%3E", names[2]),
        format!("/{}/+download?filename=%3Cscript%3E", names[2]),
        "/+audit".into(),
    ];
    for page in &pages {
        let resp = get_as(&srv, Some(ADMIN), page).await;
        assert_eq!(resp.status(), 200, "{page}");
        let text = resp.text().await.unwrap();
        for raw in ["<script>", "<img src=x", "<svg onload", "</textarea><svg"] {
            assert!(!text.contains(raw), "{page} reflected {raw:?} unescaped");
        }
    }
    // Stored text keeps no control characters (no header or terminal injection downstream).
    for name in &names {
        let item = srv.item(name).unwrap();
        let reference = item.reference.unwrap();
        let comment = item.comment.unwrap();
        assert!(!reference.chars().any(char::is_control), "{reference:?}");
        assert!(
            !comment.chars().any(|c| c.is_control() && c != '\n'),
            "{comment:?}"
        );
    }
    // A download names the file only inside Content-Disposition's quoting.
    let resp = admin_get(&srv, &format!("/{}/+download", names[1])).await;
    let cd = response_header(&resp, "content-disposition");
    assert!(!cd.contains('"') || cd.matches('"').count() == 2, "{cd}");
    srv.stop().await;
}

/// dufs #690 (Range underflow), and ranges built to overflow or overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_edge_cases() {
    let srv = TestServer::start().await;
    let data = random_bytes(1000, 4);
    let name = upload_form(&srv, file_form("r.bin", data.clone())).await;
    let empty = upload_form(&srv, file_form("empty.bin", Vec::new())).await;
    let get = |name: &str, range: &str| {
        let url = srv.url(&format!("/{name}/+download"));
        let range = range.to_string();
        async move {
            client()
                .get(url)
                .basic_auth("u", Some(ADMIN))
                .header("range", range)
                .send()
                .await
                .unwrap()
        }
    };
    // (range, status, body length)
    for (range, status, len) in [
        ("bytes=-0", 416, None),
        ("bytes=5-2", 200, Some(1000)),
        ("bytes=18446744073709551615-", 416, None),
        ("bytes=0-18446744073709551615", 206, Some(1000)),
        ("bytes=18446744073709551614-18446744073709551615", 416, None),
        ("bytes=-18446744073709551615", 206, Some(1000)),
        ("bytes=0-10,5-15", 200, Some(1000)),
        (
            "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21",
            200,
            Some(1000),
        ),
        ("bytes=999-999", 206, Some(1)),
        ("bytes=1000-1000", 416, None),
        ("bytes=--1", 200, Some(1000)),
        ("bytes=1-2-3", 200, Some(1000)),
    ] {
        let resp = get(&name, range).await;
        assert_eq!(resp.status().as_u16(), status, "{range}");
        if status == 416 {
            assert_eq!(
                response_header(&resp, "content-range"),
                "bytes */1000",
                "{range}"
            );
        }
        if let Some(len) = len {
            assert_eq!(resp.bytes().await.unwrap().len(), len, "{range}");
        }
    }
    let resp = get(&empty, "bytes=0-").await;
    assert_eq!(resp.status(), 416, "any range of an empty file");
    let ranges = "bytes=".to_string()
        + &(0..1000)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
    let resp = get(&name, &ranges).await;
    assert_eq!(resp.status(), 200, "1000 ranges: the whole file once");
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    srv.stop().await;
}

/// bepasty's Transaction-ID was base64 of the item name: anyone could append to anyone's
/// upload. Guessed, forged, reused and foreign transaction ids are refused, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_cannot_be_forged_or_borrowed() {
    let srv = TestServer::start().await;
    let data = random_bytes(200_000, 6);
    let first = rest_chunk(&srv, &data, 0..100_000, None, &[]).await;
    assert_eq!(first.status(), 200);
    let tid = response_header(&first, "transaction-id");
    let name = srv.item_names().pop().unwrap();
    use base64::Engine;
    let bepasty_style = base64::engine::general_purpose::STANDARD.encode(&name);
    for (what, forged) in [
        ("bepasty's base64 of the item name", bepasty_style.as_str()),
        ("the item name", name.as_str()),
        ("truncated", &tid[..tid.len() - 1]),
        (
            "another random token",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        ("path-like", "../../sfx.db"),
    ] {
        let r = rest_chunk(&srv, &data, 100_000..200_000, Some(forged), &[]).await;
        assert_eq!(r.status(), 400, "{what}");
    }
    assert_eq!(
        srv.item(&name).unwrap().size,
        100_000,
        "nothing was appended"
    );
    // The real id, by another credential: 403 (rest_api.rs covers more).
    let r = client()
        .post(srv.url(ITEMS))
        .basic_auth("u", Some(ADMIN))
        .header("transaction-id", &tid)
        .header("content-range", "bytes 100000-199999/200000")
        .body(b64(&data[100_000..]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Completed, then reused: 409.
    assert_eq!(
        rest_chunk(&srv, &data, 100_000..200_000, Some(&tid), &[])
            .await
            .status(),
        201
    );
    assert_eq!(
        rest_chunk(&srv, &data, 100_000..200_000, Some(&tid), &[])
            .await
            .status(),
        409
    );
    assert_eq!(srv.item(&name).unwrap().sha256, sha256_hex(&data));
    srv.stop().await;
}

/// miniserve 0.19.5/0.20.0, CVE-2025-67124, SFTPGo CVE-2026-10031: symlinks (and FIFOs) planted
/// in the data directory are never followed: no read of another file, no write through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlinks_are_not_followed() {
    let srv = TestServer::start().await;
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // A committed item whose file is replaced by a link.
    let name = upload_form(&srv, file_form("a.bin", b"item bytes".to_vec())).await;
    let path = srv.stored_path(&name);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let resp = get_as(&srv, Some(ADMIN), &format!("/{name}/+download")).await;
    assert!(
        resp.status().is_server_error() || resp.status() == 404,
        "{}",
        resp.status()
    );
    assert!(!resp.text().await.unwrap().contains("precious"));
    // An incomplete upload whose partial file is replaced by a link: no write through it.
    let data = random_bytes(100_000, 8);
    let first = rest_chunk(&srv, &data, 0..50_000, None, &[]).await;
    let tid = response_header(&first, "transaction-id");
    let partial = srv.partial_files().pop().unwrap();
    std::fs::remove_file(&partial).unwrap();
    std::os::unix::fs::symlink(&victim, &partial).unwrap();
    let r = rest_chunk(&srv, &data, 50_000..100_000, Some(&tid), &[]).await;
    assert!(!r.status().is_success(), "{}", r.status());
    // A FIFO where an item's file should be does not hang the download.
    let fifo_item = upload_form(&srv, file_form("b.bin", b"more".to_vec())).await;
    let fifo = srv.stored_path(&fifo_item);
    std::fs::remove_file(&fifo).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let resp = client()
        .get(srv.url(&format!("/{fifo_item}/+download")))
        .basic_auth("u", Some(ADMIN))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("answered, not hung on the FIFO");
    assert!(!resp.status().is_success());
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "the victim is untouched"
    );
    assert_eq!(healthz(&srv).await["store"], "ok");
    srv.stop().await;
}
