//! Antivirus with a real clamd (Debian's clamav-daemon, started by the test with its own
//! config and signature database: `common::ClamdServer`), end to end over HTTP: clean files
//! are downloadable, EICAR is quarantined (admins only, 403 for everyone without the audited
//! override), files over clamd's limits and files scanned while clamd is down are
//! `not scanned: …` (never clean), the alert waits for the scans and tells each result, and a
//! restart scans what was left `scanning`. Skipped without clamd unless `SFX_REQUIRE_CLAMD=1`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn antivirus(clamd: &str, keys: &str) -> String {
    format!("[antivirus]\nclamd = \"{clamd}\"\n{keys}\n")
}

/// `PUT /+upload/<filename>` with the real curl, as the customer; returns the item name.
async fn put_file(srv: &TestServer, dir: &Path, filename: &str, data: &[u8]) -> String {
    let file = dir.join(filename);
    std::fs::write(&file, data).unwrap();
    let url = srv.url_with_secret(CUSTOMER, &format!("/+upload/{filename}"));
    let out = curl(&[
        "-sS",
        "-f",
        "-H",
        "Accept: application/json",
        "-T",
        file.to_str().unwrap(),
        &url,
    ])
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["items"][0]["name"].as_str().unwrap().to_string()
}

/// The `scan` field of an item's REST metadata (as the admin).
async fn scan_of(srv: &TestServer, name: &str) -> Value {
    file_meta(srv, name).await["scan"].clone()
}

/// Waits until an item's scan is over; returns its final `scan`.
async fn scanned(srv: &TestServer, name: &str, secs: u64) -> String {
    eventually(
        &format!("{name} scanned"),
        Duration::from_secs(secs),
        async || match scan_of(srv, name).await {
            Value::String(s) if s != "scanning" => Ok(s),
            other => Err(format!("scan is {other}")),
        },
    )
    .await
}

async fn download(srv: &TestServer, secret: &str, name: &str, query: &str) -> reqwest::Response {
    get_as(srv, Some(secret), &format!("/{name}/+download{query}")).await
}

async fn audit_of(srv: &TestServer, name: &str) -> Vec<Value> {
    let resp = client()
        .get(srv.url(&format!("/+audit?item={name}")))
        .basic_auth("user", Some(ADMIN))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    v["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn clean_infected_and_over_limit_files() {
    let Some(clamd) = ClamdServer::start("antivirus").await else {
        return;
    };
    let srv = TestServer::start_with(&antivirus(&clamd.unix_addr(), "")).await;
    let tmp = tempfile::tempdir().unwrap();
    let clean = put_file(&srv, tmp.path(), "notes.txt", b"nothing to see here\n").await;
    let form = file_form("eicar.com", EICAR.to_vec());
    let infected = upload_form(&srv, form).await;
    let big = vec![b'a'; OVER_MAX_FILE_SIZE];
    let over_file_max = put_file(&srv, tmp.path(), "big.bin", &big).await;
    let huge = vec![b'b'; OVER_STREAM_MAX];
    let over_stream_max = put_file(&srv, tmp.path(), "huge.bin", &huge).await;

    assert_eq!(scanned(&srv, &clean, 30).await, "clean");
    let resp = download(&srv, READER, &clean, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        b"nothing to see here\n"
    );

    let sig = scanned(&srv, &infected, 30).await;
    assert!(
        sig.starts_with(&format!("infected: {EICAR_SIGNATURE}")),
        "{sig}"
    );
    // Invisible to everybody but admins: not listed for a list-only operator, refused to a reader.
    let as_lister = get_as(&srv, Some(LISTER), ITEMS).await;
    let listed: Value = as_lister.json().await.unwrap();
    assert!(listed.get(&infected).is_none(), "{listed}");
    assert!(listed.get(&clean).is_some(), "{listed}");
    assert!(listing(&srv).await.contains_key(&infected));
    let page = admin_text(&srv, &format!("/{infected}")).await;
    assert!(page.contains("Quarantined"), "{page}");
    // Nobody downloads it without the override, not even an admin.
    for secret in [READER, ADMIN] {
        let resp = download(&srv, secret, &infected, "").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{secret}");
    }
    let refused = download(&srv, ADMIN, &infected, "")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        refused.contains("quarantined: Eicar-Test-Signature"),
        "{refused}"
    );
    let resp = download(&srv, READER, &infected, "?override=infected").await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the override is for admins"
    );
    let resp = download(&srv, ADMIN, &infected, "?override=infected").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), EICAR);
    let trail = audit_of(&srv, &infected).await;
    let has = |kind: &str, outcome: &str, text: &str| {
        trail.iter().any(|r| {
            r["kind"] == kind
                && r["outcome"] == outcome
                && r["detail"].as_str().unwrap_or("").contains(text)
        })
    };
    assert!(
        has("scan", "denied", "infected: Eicar-Test-Signature"),
        "{trail:?}"
    );
    assert!(has("download", "ok", "quarantine overridden"), "{trail:?}");

    // Over clamd's limits: explicitly not scanned (never clean), and still downloadable.
    for (name, size, what) in [
        (&over_file_max, big.len(), "Heuristics.Limits.Exceeded"),
        (&over_stream_max, huge.len(), "INSTREAM size limit exceeded"),
    ] {
        let state = scanned(&srv, name, 60).await;
        assert!(
            state.starts_with("not scanned: over clamd's size limit") && state.contains(what),
            "{state}"
        );
        let resp = download(&srv, READER, name, "").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().len(), size);
        let page = admin_text(&srv, &format!("/{name}")).await;
        assert!(page.contains("not scanned: over clamd"), "{page}");
    }
    let trail = audit_of(&srv, &over_stream_max).await;
    assert!(
        trail
            .iter()
            .any(|r| r["kind"] == "scan" && r["outcome"] == "error"),
        "{trail:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn alert_waits_for_the_scans_over_tcp() {
    let Some(mut clamd) = ClamdServer::start("antivirus").await else {
        return;
    };
    // clamd is down when the files arrive: the scans wait in retries meanwhile.
    clamd.kill().await;
    let rx = Receiver::start().await;
    let keys = "retries = 5\nretry_delay = \"1s\"\n";
    let toml = format!(
        "batch_window = \"300ms\"\nalert_backoff = \"1s\"\n{}[[alerts]]\nkind = \"webhook\"\nname = \"json\"\nurl = \"{}\"\nformat = \"json\"\n",
        antivirus(&clamd.tcp_addr(), keys),
        rx.url("/d")
    );
    let srv = TestServer::start_with(&toml).await;
    let form = file_form("report.txt", b"all fine\n".to_vec()).part(
        "file",
        reqwest::multipart::Part::bytes(EICAR.to_vec()).file_name("eicar.com"),
    );
    let resp = post_upload(&srv, Some(CUSTOMER), form).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let names = srv.item_names();
    assert_eq!(names.len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rx.hits("/d").is_empty(),
        "the alert went out before the scans"
    );
    let list = admin_text(&srv, "/+list").await;
    assert!(list.contains("waiting for the antivirus scan"), "{list}");
    for name in &names {
        assert_eq!(scan_of(&srv, name).await, "scanning");
        let resp = download(&srv, ADMIN, name, "").await;
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert!(resp.text().await.unwrap().contains("being scanned"));
    }
    clamd.up().await;
    let hits = eventually("the alert", Duration::from_secs(30), async || {
        let hits = rx.hits("/d");
        if hits.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(hits)
        }
    })
    .await;
    let alert = hits[0].json();
    assert_eq!(alert["delivery"]["infected"], 1, "{alert}");
    let scans: Vec<String> = alert["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}={}",
                f["filename"].as_str().unwrap(),
                f["scan"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(scans[0], "report.txt=clean", "{scans:?}");
    assert!(
        scans[1].starts_with("eicar.com=infected: Eicar-Test-Signature"),
        "{scans:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn clamd_down_means_not_scanned_after_retries() {
    let Some(mut clamd) = ClamdServer::start("antivirus").await else {
        return;
    };
    clamd.kill().await;
    let keys = "retries = 2\nretry_delay = \"300ms\"\ntimeout = \"2s\"\n";
    let srv = TestServer::start_with(&antivirus(&clamd.unix_addr(), keys)).await;
    let tmp = tempfile::tempdir().unwrap();
    let name = put_file(&srv, tmp.path(), "a.txt", b"unscanned\n").await;
    let state = scanned(&srv, &name, 20).await;
    assert!(
        state.starts_with("not scanned: clamd unavailable after 2 attempts"),
        "{state}"
    );
    assert_eq!(
        download(&srv, READER, &name, "").await.status(),
        StatusCode::OK
    );
    let list = admin_text(&srv, "/+list").await;
    assert!(list.contains("not scanned: clamd unavailable"), "{list}");
    srv.stop().await;
}

#[tokio::test]
async fn restart_scans_what_was_left_scanning() {
    let Some(mut clamd) = ClamdServer::start("antivirus").await else {
        return;
    };
    clamd.kill().await;
    let dir = tempfile::tempdir().unwrap();
    let av = antivirus(&clamd.unix_addr(), "retries = 10\nretry_delay = \"1h\"\n");
    let srv = TestServer::start_in(dir.path(), &av).await;
    let tmp = tempfile::tempdir().unwrap();
    let name = put_file(&srv, tmp.path(), "eicar.com", EICAR).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(scan_of(&srv, &name).await, "scanning");
    srv.stop().await;
    clamd.up().await;
    let srv = TestServer::start_in(dir.path(), &av).await;
    let state = scanned(&srv, &name, 30).await;
    assert!(
        state.starts_with("infected: Eicar-Test-Signature"),
        "{state}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn without_antivirus_items_have_no_scan_state() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let name = put_file(&srv, tmp.path(), "eicar.com", EICAR).await;
    assert!(scan_of(&srv, &name).await.is_null());
    assert_eq!(
        download(&srv, READER, &name, "").await.status(),
        StatusCode::OK
    );
    srv.stop().await;
}

/// A resumable (bepasty REST) upload begun while antivirus was off and finished after a restart
/// with it on is scanned all the same.
#[tokio::test]
async fn resumable_upload_finished_after_antivirus_was_switched_on() {
    let Some(clamd) = ClamdServer::start("antivirus").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start_in(dir.path(), "").await;
    let first = rest_chunk(&srv, EICAR, 0..30, None, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tid = response_header(&first, "transaction-id");
    srv.stop().await;
    let srv = TestServer::start_in(dir.path(), &antivirus(&clamd.unix_addr(), "")).await;
    let last = rest_chunk(&srv, EICAR, 30..EICAR.len(), Some(&tid), &[]).await;
    assert_eq!(last.status(), StatusCode::CREATED);
    let location = response_header(&last, "content-location");
    let name = location.rsplit('/').next().unwrap().to_string();
    let state = scanned(&srv, &name, 30).await;
    assert!(
        state.starts_with("infected: Eicar-Test-Signature"),
        "{state}"
    );
    srv.stop().await;
}
