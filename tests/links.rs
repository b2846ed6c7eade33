//! Per-case upload links over real sockets: made on `/+links` and with `sfx link create`, used by
//! curl (`-T`, `-F`), tus with the token as Bearer and the served client script (`-t`); their
//! limits, expiry and revocation; what operators see; and the alert to the link's `notify`.

mod common;

use common::*;
use reqwest::StatusCode;
use std::process::Stdio;
use std::time::Duration;

/// Makes a link on the operators' page; returns its id and token.
async fn make_link(srv: &TestServer, fields: &[(&str, &str)]) -> (i64, String) {
    let resp = client()
        .post(srv.url("/+links"))
        .basic_auth("user", Some(ADMIN))
        .form(fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(response_header(&resp, "cache-control"), "no-store");
    let page = resp.text().await.unwrap();
    let token = token_in(&page).unwrap_or_else(|| panic!("no link URL in:\n{page}"));
    let id = page
        .split("/+links/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.parse().ok())
        .expect("the page names the link's id");
    (id, token)
}

/// The first `/u/<token>` in a text.
fn token_in(text: &str) -> Option<String> {
    let at = text.find("/u/sfxl_")? + 3;
    Some(
        text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect(),
    )
}

fn tus(method: reqwest::Method, url: &str, token: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, url)
        .header("Tus-Resumable", "1.0.0")
        .bearer_auth(token)
}

/// A tus upload of `body` in one creation + one PATCH; returns the PATCH's status and the upload.
async fn tus_upload(srv: &TestServer, token: &str, name: &str, body: &[u8]) -> (u16, String) {
    let meta = format!(
        "filename {},reference {}",
        b64(name.as_bytes()),
        b64(b"OTHER-CASE")
    );
    let resp = tus(reqwest::Method::POST, &srv.url("/+tus/"), token)
        .header("Upload-Length", body.len().to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap();
    if resp.status() != StatusCode::CREATED {
        return (resp.status().as_u16(), String::new());
    }
    let url = srv.url(&response_header(&resp, "location"));
    let status = tus_patch(&url, token, 0, body).await;
    (status, url)
}

async fn tus_patch(url: &str, token: &str, offset: u64, body: &[u8]) -> u16 {
    tus(reqwest::Method::PATCH, url, token)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Items of the store sent through link `id`.
fn arrivals(srv: &TestServer, id: i64) -> Vec<sfx::store::Item> {
    srv.state
        .store
        .link_items(id, 100)
        .unwrap()
        .into_iter()
        .filter(|(_, deleted)| deleted.is_none())
        .map(|(it, _)| it)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sends_through_a_link_into_its_case_only() {
    let srv = TestServer::start().await;
    let note = "Please send the sosreport of node 3";
    let (id, token) = make_link(
        &srv,
        &[
            ("reference", "CASE-1234"),
            ("expires", "7d"),
            ("note", note),
        ],
    )
    .await;
    assert!(sfx::links::is_token(&token), "{token}");

    // The page needs no login and shows the case, the note and the limits.
    let page = client()
        .get(srv.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(response_header(&page, "referrer-policy"), "no-referrer");
    let html = page.text().await.unwrap();
    for want in [
        "CASE-1234",
        note,
        "no limits",
        &format!("data-bearer=\"{token}\""),
    ] {
        assert!(html.contains(want), "{want} in the link page");
    }

    let tmp = tempfile::tempdir().unwrap();
    let put = random_file(tmp.path(), "put.tgz", 300_001, 1);
    let form = random_file(tmp.path(), "form.tgz", 200_003, 2);
    let script_file = random_file(tmp.path(), "script.tgz", 150_007, 3);
    // curl -T into /u/<token>/ (curl appends the name), a reference in the query is ignored.
    let out = curl(&[
        "-sS",
        "-f",
        "-T",
        put.to_str().unwrap(),
        &srv.url(&format!("/u/{token}/?reference=OTHER-CASE")),
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains(&external_sha256(&put)),
        "{}",
        out.stdout
    );
    // curl -F to /u/<token>.
    let form_arg = format!("file=@{}", form.to_str().unwrap());
    curl_form_upload(&[
        "-F",
        &form_arg,
        "-F",
        "reference=OTHER-CASE",
        &srv.url(&format!("/u/{token}")),
    ])
    .await;
    // tus with the token as Bearer.
    let tus_body = random_bytes(100_000, 4);
    assert_eq!(tus_upload(&srv, &token, "tus.bin", &tus_body).await.0, 204);
    // The served client script with -t.
    let script = tmp.path().join("client.sh");
    let got = curl(&[
        "-fsS",
        "-o",
        script.to_str().unwrap(),
        &srv.url("/+client.sh"),
    ])
    .await;
    assert!(got.status.success());
    let run = tokio::process::Command::new("sh")
        .arg(&script)
        .args(["-t", &token, script_file.to_str().unwrap()])
        .env("SFX_URL", srv.url(""))
        .env("HOME", tmp.path())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let items = arrivals(&srv, id);
    let mut names: Vec<&str> = items.iter().map(|i| i.filename.as_str()).collect();
    names.sort();
    assert_eq!(names, ["form.tgz", "put.tgz", "script.tgz", "tus.bin"]);
    for it in &items {
        assert_eq!(
            it.reference.as_deref(),
            Some("CASE-1234"),
            "{}",
            it.filename
        );
        assert_eq!(it.uploader.label, format!("link:{id}"));
        assert_eq!(it.uploader.link, Some(id));
    }
    let tus_item = items.iter().find(|i| i.filename == "tus.bin").unwrap();
    assert_eq!(tus_item.sha256, sha256_hex(&tus_body));

    // The token uploads and nothing else: no listing, no reading, not even its own files.
    let item = &items[0].name;
    for path in [
        "/+list",
        "/apis/rest/items",
        &format!("/{item}/+download"),
        "/+links",
    ] {
        let st = client()
            .get(srv.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}");
    }
    // Nor can a customer with the public password make or see links.
    assert_eq!(
        get_as(&srv, Some(CUSTOMER), "/+links").await.status(),
        StatusCode::FORBIDDEN
    );

    // Operators see the arrivals on the link's page and the link in the list.
    let link_page = admin_text(&srv, &format!("/+links/{id}")).await;
    for it in &items {
        assert!(
            link_page.contains(&it.filename),
            "{} on the link page",
            it.filename
        );
    }
    assert!(!link_page.contains(&token), "the token is shown only once");
    let list = admin_text(&srv, "/+links").await;
    assert!(
        list.contains("CASE-1234") && list.contains("4 files"),
        "{list}"
    );
    // An unknown token is no page at all.
    let (_, other) = sfx::links::new_token().unwrap();
    let resp = client()
        .get(srv.url(&format!("/u/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_and_file_limits_hold_while_streaming() {
    let srv = TestServer::start().await;
    let (id, token) = make_link(
        &srv,
        &[
            ("reference", "CASE-7"),
            ("max_size", "3MiB"),
            ("max_files", "2"),
        ],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let one = random_file(tmp.path(), "one.bin", MIB, 1);
    let big = random_file(tmp.path(), "big.bin", 3 * MIB, 2);
    let put = |file: &std::path::Path, chunked: bool| {
        let mut args = vec!["-T".to_string(), file.to_str().unwrap().to_string()];
        if chunked {
            // No Content-Length: only the count while streaming can stop it.
            args.extend(["-H".into(), "Transfer-Encoding: chunked".into()]);
        }
        args.push(srv.url(&format!("/u/{token}/")));
        args
    };
    let status = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl_status(&refs).await
    };
    assert_eq!(status(put(&one, false)).await.code, 201);
    let before = srv.snapshot();
    for chunked in [false, true] {
        let st = status(put(&big, chunked)).await;
        assert_eq!(st.code, 413, "chunked {chunked}: {}", st.body);
        assert!(st.body.contains("at most 3145728 bytes"), "{}", st.body);
        srv.assert_nothing_stored(&before, "over the link's size")
            .await;
    }
    // A tus upload declaring too much is refused at creation.
    assert_eq!(
        tus_upload(&srv, &token, "t", &random_bytes(3 * MIB, 3))
            .await
            .0,
        413
    );
    assert_eq!(status(put(&one, false)).await.code, 201);
    let st = status(put(&one, false)).await;
    assert_eq!(st.code, 403, "{}", st.body);
    assert!(st.body.contains("at most 2 files"), "{}", st.body);
    assert_eq!(arrivals(&srv, id).len(), 2);
    let page = admin_text(&srv, &format!("/+links/{id}")).await;
    assert!(page.contains("2 files, 2.0 MiB"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_links_answer_410() {
    let srv = TestServer::start().await;
    let (_, short) = make_link(&srv, &[("reference", "CASE-8"), ("expires", "2s")]).await;
    let (id, token) = make_link(&srv, &[("reference", "CASE-9")]).await;
    // Begun before the expiry: may finish after it.
    let half = random_bytes(2000, 1);
    let resp = tus(reqwest::Method::POST, &srv.url("/+tus/"), &short)
        .header("Upload-Length", "2000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let running = srv.url(&response_header(&resp, "location"));
    assert_eq!(tus_patch(&running, &short, 0, &half[..1000]).await, 204);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = client()
        .get(srv.url(&format!("/u/{short}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("expired"));
    assert_eq!(tus_upload(&srv, &short, "late", b"late").await.0, 410);
    assert_eq!(tus_patch(&running, &short, 1000, &half[1000..]).await, 204);

    // Revoked: gone at once, also for an upload in progress.
    let (status, url) = {
        let resp = tus(reqwest::Method::POST, &srv.url("/+tus/"), &token)
            .header("Upload-Length", "10")
            .send()
            .await
            .unwrap();
        (resp.status(), srv.url(&response_header(&resp, "location")))
    };
    assert_eq!(status, StatusCode::CREATED);
    let resp = client()
        .post(srv.url(&format!("/+links/{id}/revoke")))
        .basic_auth("user", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(response_header(&resp, "location"), format!("/+links/{id}"));
    let page = admin_text(&srv, &format!("/+links/{id}")).await;
    assert!(
        page.contains("revoked") && !page.contains("Revoke this link"),
        "{page}"
    );
    assert_eq!(tus_patch(&url, &token, 0, b"0123456789").await, 410);
    // Its upload in progress was cancelled with the revocation: nothing of it is kept.
    assert!(
        srv.state
            .store
            .link_items(id, 100)
            .unwrap()
            .iter()
            .all(|(_, deleted)| deleted.is_some()),
        "an upload of the revoked link is still live"
    );
    assert!(srv.partial_files().is_empty(), "{:?}", srv.partial_files());
    let st = curl_status(&[
        "--data-binary",
        "x",
        "-X",
        "PUT",
        &srv.url(&format!("/u/{token}/x")),
    ])
    .await;
    assert_eq!(st.code, 410, "{}", st.body);
    assert!(st.body.contains("revoked"), "{}", st.body);
    let audit = admin_text(&srv, "/+audit?kind=link_revoked").await;
    assert!(audit.contains(&format!("link:{id}")), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_makes_a_link_beside_the_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = TestServer::start_in(tmp.path(), "public_url = \"https://files.example.test\"").await;
    std::fs::create_dir_all(tmp.path().join("cli")).unwrap();
    let config = write_config(
        &tmp.path().join("cli"),
        &format!(
            "{}public_url = \"https://files.example.test\"\n{}",
            base_toml(&srv.data_dir),
            // The server's metadata store, wherever it is.
            metadata_toml_for(&srv.data_dir).unwrap_or_default()
        ),
    );
    let out = sfx_command(
        &[
            "link",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--reference",
            "CASE-55",
            "--expires",
            "1d",
            "--max-files",
            "1",
            "--note",
            "node 3, please",
        ],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("https://files.example.test/u/sfxl_"),
        "{stdout}"
    );
    let token = token_in(&stdout).unwrap();
    // The running server knows it at once.
    let html = client()
        .get(srv.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("CASE-55") && html.contains("at most 1 file"),
        "{html}"
    );
    let bad = sfx_command(
        &[
            "link",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--reference",
            "C",
            "--notify",
            "ops@example.test",
        ],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("e-mail alert channel"));
    let list = sfx_command(
        &["link", "list", "--config", config.to_str().unwrap()],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("active\tCASE-55"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_goes_to_the_links_notify_addresses_and_names_the_case() {
    let Some(python) = smtp_python("the_alert_goes_to_the_links_notify_addresses") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(&python, tmp.path(), None).await;
    let srv = TestServer::start_with(&format!(
        "batch_window = \"1s\"\n[[alerts]]\nkind = \"email\"\nname = \"mail\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"sfx@example.test\"\nto = [\"oncall@example.test\"]\n",
        smtp.port
    ))
    .await;
    let (id, token) = make_link(
        &srv,
        &[
            ("reference", "CASE-77"),
            ("notify", "engineer@example.test, lead@example.test"),
        ],
    )
    .await;
    let file = random_file(tmp.path(), "logs.tgz", 10_000, 1);
    let st = curl_status(&[
        "-T",
        file.to_str().unwrap(),
        &srv.url(&format!("/u/{token}/")),
    ])
    .await;
    assert_eq!(st.code, 201);
    let mails = eventually("one mail", Duration::from_secs(30), async || {
        let m = smtp.messages();
        if m.is_empty() {
            Err("no mail".into())
        } else {
            Ok(m)
        }
    })
    .await;
    let mail = &mails[0];
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!([
            "oncall@example.test",
            "engineer@example.test",
            "lead@example.test"
        ])
    );
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.contains(&format!("case CASE-77, upload link #{id}")),
        "{subject}"
    );
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("logs.tgz") && text.contains(&format!("/+links/{id}")),
        "{text}"
    );
}

/// The link page in a real Chromium: with JavaScript, the resumable uploader sends the token as
/// Bearer and verifies the SHA-256; without, the plain form posts to `/u/<token>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_page_uploads_in_chromium_with_and_without_javascript() {
    if !chromium_available() {
        return;
    }
    let srv = TestServer::start_with("upload_chunk_size = \"1MiB\"").await;
    let (id, token) = make_link(
        &srv,
        &[("reference", "CASE-31"), ("note", "Logs of node 2")],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let scripted = random_file(tmp.path(), "scripted.tgz", 3 * MIB + 17, 1);
    let plain = random_file(tmp.path(), "plain.tgz", 70_001, 2);
    let driver = ChromeDriver::start().await;
    let page = srv.url(&format!("/u/{token}"));

    let c = driver.session(true).await;
    c.goto(&page).await.unwrap();
    wait_for(&c, "form.upload.tus[data-bearer]").await;
    assert!(text_of(&c, "main").await.contains("Logs of node 2"));
    find(&c, "form.upload.tus input[type=file][multiple]")
        .await
        .send_keys(scripted.to_str().unwrap())
        .await
        .unwrap();
    wait_for(&c, "ul.queue li.transfer").await;
    find(&c, "form.upload button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    eventually("the upload verified", Duration::from_secs(60), async || {
        let state: serde_json::Value = c
            .execute(
                "const li = document.querySelector('ul.transfers li.transfer');
                 return li ? li.dataset.state : null;",
                vec![],
            )
            .await
            .unwrap();
        match state.as_str() {
            Some("verified") => Ok(()),
            Some("error") | Some("mismatch") => panic!("upload failed: {state}"),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.close().await.unwrap();

    let c = driver.session(false).await;
    c.goto(&page).await.unwrap();
    find(&c, "form.upload input[type=file]")
        .await
        .send_keys(plain.to_str().unwrap())
        .await
        .unwrap();
    find(&c, "form.upload button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    // The upload page holds a hidden receipt table of its own (the script's): wait for the
    // receipt page's.
    wait_for(&c, "table.receipt:not(.tus-receipt)").await;
    assert!(text_of(&c, "main").await.contains(&external_sha256(&plain)));
    c.close().await.unwrap();

    let items = arrivals(&srv, id);
    let mut got: Vec<(String, String)> = items
        .iter()
        .map(|i| (i.filename.clone(), i.sha256.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("plain.tgz".to_string(), external_sha256(&plain)),
            ("scripted.tgz".to_string(), external_sha256(&scripted)),
        ]
    );
    assert!(
        items
            .iter()
            .all(|i| i.reference.as_deref() == Some("CASE-31"))
    );
}
