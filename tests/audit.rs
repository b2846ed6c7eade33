//! The audit trail: each security event and operator action leaves a record with the right
//! label, client address, item and outcome; `/+audit` is for admins, filters, pages and escapes;
//! `sfx audit verify` (the real binary) passes on an intact trail and names the record where a
//! tampered one breaks; `audit_log` holds the same records as JSON lines.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;

/// A client whose connections come from `ip` (loopback has the whole 127/8).
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `GET /+audit?QUERY` as JSON, as the admin.
async fn trail(srv: &impl Endpoint, query: &str) -> Value {
    let resp = client()
        .get(srv.url(&format!("/+audit?{query}")))
        .basic_auth("x", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "/+audit?{query}");
    resp.json().await.unwrap()
}

/// Every record after id `after`, oldest first.
async fn records_after(srv: &impl Endpoint, after: i64) -> Vec<Value> {
    let page = trail(srv, &format!("after={after}&per_page=1000")).await;
    let mut records = page["records"].as_array().unwrap().clone();
    records.reverse();
    records
}

/// (kind, outcome, client_ip, label, item) of a record.
fn summary(r: &Value) -> (String, String, String, String, String) {
    let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    (
        f("kind"),
        f("outcome"),
        f("client_ip"),
        f("label"),
        f("item"),
    )
}

fn s(
    kind: &str,
    outcome: &str,
    ip: &str,
    label: &str,
    item: &str,
) -> (String, String, String, String, String) {
    (
        kind.into(),
        outcome.into(),
        ip.into(),
        label.into(),
        item.into(),
    )
}

/// Follows the trail: what was recorded since the last call.
struct Cursor {
    last: i64,
}

impl Cursor {
    async fn new(srv: &impl Endpoint) -> Cursor {
        let page = trail(srv, "per_page=1").await;
        Cursor {
            last: page["records"][0]["id"].as_i64().unwrap_or(0),
        }
    }

    async fn next(&mut self, srv: &impl Endpoint) -> Vec<Value> {
        let records = records_after(srv, self.last).await;
        if let Some(r) = records.last() {
            self.last = r["id"].as_i64().unwrap();
        }
        records
    }

    /// The new records' summaries must be exactly `expected`; returns the records.
    async fn expect(
        &mut self,
        srv: &impl Endpoint,
        what: &str,
        expected: &[(String, String, String, String, String)],
    ) -> Vec<Value> {
        let records = self.next(srv).await;
        let got: Vec<_> = records.iter().map(summary).collect();
        assert_eq!(got, expected, "{what}: {records:#?}");
        records
    }
}

async fn rest_upload_from(
    srv: &TestServer,
    ip: &str,
    data: &[u8],
    chunk: usize,
) -> (String, String) {
    let http = from(ip);
    let mut tid: Option<String> = None;
    let mut start = 0;
    let mut last = None;
    while start < data.len() {
        let end = (start + chunk).min(data.len());
        let mut req = http
            .post(srv.url(ITEMS))
            .basic_auth("user", Some(CUSTOMER))
            .header(
                "content-range",
                format!("bytes {start}-{}/{}", end - 1, data.len()),
            )
            .header("content-filename", "agent-bundle.tar.gz")
            .body(b64(&data[start..end]));
        if let Some(t) = &tid {
            req = req.header("transaction-id", t);
        }
        let resp = req.send().await.unwrap();
        tid = Some(response_header(&resp, "transaction-id"));
        last = Some(resp);
        start = end;
        if start < data.len() {
            assert_eq!(last.as_ref().unwrap().status(), StatusCode::OK);
        }
    }
    let resp = last.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = response_header(&resp, "content-location");
    let name = location.rsplit('/').next().unwrap().to_string();
    (name, tid.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_recorded_with_who_where_and_what() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = trail(&srv, "").await;
    assert_eq!(
        summary(&first["records"][0]),
        s("startup", "ok", "", "system", "")
    );
    let mut cur = Cursor::new(&srv).await;

    // A form post with two files (the vendor's curl, from another address): one record each.
    let a = random_file(dir.path(), "report.txt", 3000, 1);
    let b = random_file(dir.path(), "second.bin", 10, 2);
    let form_a = format!("file=@{};type=application/octet-stream", a.display());
    let form_b = format!("file=@{}", b.display());
    let url = srv.url_with_secret(CUSTOMER, "/+upload");
    let out = curl(&[
        "-sS",
        "-i",
        "--interface",
        "127.0.0.5",
        "-F",
        &form_a,
        "-F",
        &form_b,
        &url,
    ])
    .await;
    upload_location(&out).unwrap();
    let names = srv.item_names();
    let recs = cur.next(&srv).await;
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let mut uploaded = Vec::new();
    for r in &recs {
        let (kind, outcome, ip, label, item) = summary(r);
        assert_eq!(
            (kind.as_str(), outcome.as_str(), ip.as_str(), label.as_str()),
            ("upload_completed", "ok", "127.0.0.5", "customers")
        );
        assert!(names.contains(&item), "{item} in {names:?}");
        uploaded.push(item);
    }
    let name = srv
        .item_names()
        .into_iter()
        .find(|n| srv.item(n).unwrap().filename == "report.txt")
        .unwrap();
    let detail = recs.iter().find(|r| r["item"] == name.as_str()).unwrap()["detail"].clone();
    let sha = external_sha256(&a);
    assert_eq!(detail, format!("report.txt (3000 bytes, sha256 {sha})"));

    // A REST upload in two chunks: one record, when the last chunk completes it (the cursor
    // sees everything since the form post, so the first chunk recorded nothing).
    let data = random_bytes(5000, 3);
    let (rest_name, _) = rest_upload_from(&srv, "127.0.0.6", &data, 3000).await;
    let recs = cur
        .expect(
            &srv,
            "REST completion",
            &[s(
                "upload_completed",
                "ok",
                "127.0.0.6",
                "customers",
                &rest_name,
            )],
        )
        .await;
    assert_eq!(
        recs[0]["detail"],
        format!(
            "agent-bundle.tar.gz (5000 bytes, sha256 {})",
            sha256_hex(&data)
        )
    );

    // Downloads of the bytes (whole, a range, the REST route) are recorded; HEAD and 304 are not.
    let reader = from("127.0.0.7");
    let get = |path: String| reader.get(srv.url(&path)).basic_auth("x", Some(DELETER));
    let resp = get(format!("/{name}/+download")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = response_header(&resp, "etag");
    assert_eq!(resp.bytes().await.unwrap().len(), 3000);
    let resp = get(format!("/{name}/+download"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let resp = get(format!("{ITEMS}/{rest_name}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let head = reader
        .head(srv.url(&format!("/{name}/+download")))
        .basic_auth("x", Some(DELETER))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let resp = get(format!("/{name}/+download"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let recs = cur
        .expect(
            &srv,
            "downloads",
            &[
                s("download", "ok", "127.0.0.7", "deleters", &name),
                s("download", "ok", "127.0.0.7", "deleters", &name),
                s("download", "ok", "127.0.0.7", "deleters", &rest_name),
            ],
        )
        .await;
    assert_eq!(recs[0]["detail"], "bytes 0-2999 of 3000");
    assert_eq!(recs[1]["detail"], "bytes 10-19 of 3000");

    // Modify, lock, unlock (admin, REST).
    let admin = from("127.0.0.8");
    let post = |path: String| admin.post(srv.url(&path)).basic_auth("x", Some(ADMIN));
    let resp = post(format!("{ITEMS}/{name}/modify"))
        .json(&json!({"filename": "renamed.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for op in ["lock", "unlock"] {
        assert_eq!(
            post(format!("{ITEMS}/{name}/{op}"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    // Refused operations change nothing and record nothing.
    assert_eq!(
        post(format!("{ITEMS}/{name}/unlock"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT
    );
    let recs = cur
        .expect(
            &srv,
            "modify, lock, unlock",
            &[
                s("modify", "ok", "127.0.0.8", "support-team", &name),
                s("lock", "ok", "127.0.0.8", "support-team", &name),
                s("unlock", "ok", "127.0.0.8", "support-team", &name),
            ],
        )
        .await;
    assert_eq!(
        recs[0]["detail"],
        r#"filename "report.txt" -> "renamed.txt""#
    );

    // Deletes: REST (deleters) and the web form (admin).
    let resp = reader
        .post(srv.url(&format!("{ITEMS}/{name}/delete")))
        .basic_auth("x", Some(DELETER))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post(format!("/{rest_name}/+delete"))
        .form(&[("next", "/+list")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let recs = cur
        .expect(
            &srv,
            "deletes",
            &[
                s("delete", "ok", "127.0.0.7", "deleters", &name),
                s("delete", "ok", "127.0.0.8", "support-team", &rest_name),
            ],
        )
        .await;
    assert_eq!(recs[0]["detail"], "renamed.txt");

    // Logins, and wrong secrets however they are presented.
    let browser = from("127.0.0.9");
    let ok = post_login(&browser, &srv, &[("token", ADMIN)]).await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert!(ok.headers().contains_key("set-cookie"));
    let failed = post_login(&browser, &srv, &[("token", "not-the-secret")]).await;
    assert_eq!(response_header(&failed, "location"), "/?login=failed");
    let basic = browser
        .get(srv.url("/+list"))
        .basic_auth("x", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::FORBIDDEN);
    let token = browser
        .get(srv.url("/+list?token=guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::FORBIDDEN);
    let recs = cur
        .expect(
            &srv,
            "logins",
            &[
                s("login_success", "ok", "127.0.0.9", "support-team", ""),
                s("login_failure", "denied", "127.0.0.9", "", ""),
                s("login_failure", "denied", "127.0.0.9", "", ""),
                s("login_failure", "denied", "127.0.0.9", "", ""),
            ],
        )
        .await;
    let how: Vec<_> = recs[1..]
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(how, ["login form", "Authorization header", "token"]);
    // Successful requests with a secret are not logins; reading the trail records nothing.
    cur.expect(&srv, "nothing else", &[]).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_is_recorded_once() {
    let srv = TestServer::start().await;
    let mut cur = Cursor::new(&srv).await;
    let attacker = from("127.0.0.20");
    let guess = async |i: usize| {
        attacker
            .get(srv.url(ITEMS))
            .basic_auth("x", Some(&format!("guess-{i}")))
            .send()
            .await
            .unwrap()
            .status()
    };
    for i in 0..20 {
        assert_eq!(guess(i).await, StatusCode::FORBIDDEN, "guess {i}");
    }
    for i in 20..25 {
        assert_eq!(guess(i).await, StatusCode::TOO_MANY_REQUESTS, "guess {i}");
    }
    let mut expected = vec![s("login_failure", "denied", "127.0.0.20", "", ""); 20];
    expected.push(s("lockout", "denied", "127.0.0.20", "", ""));
    let recs = cur
        .expect(&srv, "20 wrong secrets, then refusals", &expected)
        .await;
    assert_eq!(recs[20]["detail"], "20 wrong secrets within 300s");
    srv.stop().await;
}

const HOSTILE_LABEL: &str = "<img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_filters_pages_and_escapes() {
    let extra = format!(
        "[[secrets]]\nlabel = {HOSTILE_LABEL:?}\nsecret = \"hostile-secret\"\npermissions = [\"create\"]\n"
    );
    let srv = TestServer::start_with(&extra).await;
    let hostile_file = "\"'><svg onload=alert(2)>.txt";
    let resp = post_upload(
        &srv,
        Some("hostile-secret"),
        file_form(hostile_file, &b"x"[..]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let hostile_item = location_name(&resp);
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(upload_form(&srv, file_form(&format!("f{i}.txt"), vec![b'a'; i + 1])).await);
    }
    admin_get(&srv, &format!("/{}/+download", names[2])).await;

    // The page: every value escaped, the filters shown back escaped.
    let page = admin_text(&srv, "/+audit").await;
    assert!(page.contains("upload_completed") && page.contains(&hostile_item));
    for raw in [HOSTILE_LABEL, "<svg", "onload=alert(2)>"] {
        assert!(!page.contains(raw), "{raw} unescaped in the page");
    }
    assert!(
        page.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{page}"
    );
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("label", HOSTILE_LABEL)
        .finish();
    let filtered = admin_text(&srv, &format!("/+audit?{q}")).await;
    assert!(!filtered.contains(HOSTILE_LABEL));
    assert!(filtered.contains("value=\"&#60;img src=x onerror=alert(1)&#62;\""));
    let by_label = trail(&srv, &q).await;
    let items: Vec<_> = by_label["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(summary)
        .collect();
    assert_eq!(
        items,
        [s(
            "upload_completed",
            "ok",
            "127.0.0.1",
            HOSTILE_LABEL,
            &hostile_item
        )]
    );
    assert_eq!(by_label["total"], 1);

    // By item: its upload and its download, newest first.
    let by_item = trail(&srv, &format!("item={}", names[2])).await;
    let kinds: Vec<_> = by_item["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].clone())
        .collect();
    assert_eq!(kinds, ["download", "upload_completed"]);
    let by_kind = trail(&srv, "kind=download").await;
    assert_eq!(by_kind["total"], 1);
    assert!(
        trail(&srv, "item=nosuchit").await["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Pages of 3: following "older" from the newest reaches every record once, and "newer"
    // leads back.
    let all = trail(&srv, "per_page=1000").await;
    let all_ids: Vec<i64> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        all_ids,
        (1..=8).rev().collect::<Vec<_>>(),
        "startup, 6 uploads, 1 download"
    );
    assert_eq!(all["total"], 8);
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut next = Some("/+audit?per_page=3".to_string());
    while let Some(link) = next {
        let page = trail(&srv, link.split_once('?').unwrap().1).await;
        assert_eq!(page["total"], 8);
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        pages.push(page.clone());
        next = page["older"].as_str().map(String::from);
    }
    assert_eq!(seen, all_ids);
    assert_eq!(pages.len(), 3);
    assert!(pages[0]["newer"].is_null());
    let back = pages[2]["newer"].as_str().unwrap();
    let newer = trail(&srv, back.split_once('?').unwrap().1).await;
    assert_eq!(newer["records"], pages[1]["records"]);
    // The HTML page has the same links.
    let html = admin_text(&srv, "/+audit?per_page=3").await;
    assert!(
        html.contains("href=\"/+audit?per_page=3&#38;before=6\""),
        "{html}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_read_the_audit_trail() {
    let srv = TestServer::start().await;
    let refused = get_as(&srv, None, "/+audit").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.text().await.unwrap();
    for secret in [CUSTOMER, READER, LISTER, DELETER] {
        let resp = get_as(&srv, Some(secret), "/+audit?label=customers").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{secret}");
        assert_eq!(
            resp.text().await.unwrap(),
            body,
            "the same 403 for {secret}"
        );
    }
    assert_eq!(
        get_as(&srv, Some("wrong"), "/+audit").await.status(),
        StatusCode::FORBIDDEN
    );
    // Admins, by session too; the menu links the page for them only.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    post_login(&browser, &srv, &[("token", ADMIN)]).await;
    let page = browser.get(srv.url("/+audit")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("login_success"));
    assert!(
        admin_text(&srv, "/+list")
            .await
            .contains("href=\"/+audit\"")
    );
    let lister = get_as(&srv, Some(LISTER), "/+list")
        .await
        .text()
        .await
        .unwrap();
    assert!(!lister.contains("/+audit"));
    srv.stop().await;
}

struct Verified {
    code: Option<i32>,
    stdout: String,
}

/// Runs the real `sfx audit verify --data-dir DIR`.
async fn verify(dir: &Path) -> Verified {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sfx"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .await
        .unwrap();
    Verified {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// A consistent copy of the live database in a new data directory, changed by `sql` (run with
/// the append-only triggers dropped, as an intruder would).
fn tampered_copy(db: &Path, sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sfx.db");
    let live = rusqlite::Connection::open(db).unwrap();
    live.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_and_names_the_first_broken_record() {
    let srv = TestServer::start().await;
    for i in 0..5 {
        upload_form(&srv, file_form(&format!("f{i}.txt"), vec![b'v'; 10])).await;
    }
    // While the server runs.
    let ok = verify(&srv.data_dir).await;
    assert_eq!(ok.code, Some(0), "{}", ok.stdout);
    let newest = trail(&srv, "per_page=1").await["records"][0].clone();
    assert_eq!(
        ok.stdout.trim(),
        format!(
            "ok: 6 records (newest: 6, hash {})",
            newest["hash"].as_str().unwrap()
        )
    );
    let db = srv.data_dir.join("sfx.db");
    for (what, sql, expected) in [
        ("intact copy", "", "ok: 6 records"),
        (
            "an edited field",
            "UPDATE audit SET label = 'nobody' WHERE id = 3;",
            "broken at record 3: its contents do not match its hash",
        ),
        (
            "a changed hash",
            "UPDATE audit SET hash = '00' || substr(hash, 3) WHERE id = 3;",
            "broken at record 3: its contents do not match its hash",
        ),
        (
            "a removed record in the middle",
            "DELETE FROM audit WHERE id = 3;",
            "broken at record 4: record 3 is missing",
        ),
        (
            "two records swapped",
            "UPDATE audit SET id = -1 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = 4;
             UPDATE audit SET id = 4 WHERE id = -1;",
            "broken at record 3: its prev_hash is not the hash of record 2",
        ),
        (
            "the newest record removed",
            "DELETE FROM audit WHERE id = 6;",
            "broken at record 6: the newest records are missing",
        ),
    ] {
        let copy = tampered_copy(&db, sql);
        let v = verify(copy.path()).await;
        assert!(v.stdout.starts_with(expected), "{what}: {}", v.stdout);
        assert_eq!(v.code, Some(if sql.is_empty() { 0 } else { 1 }), "{what}");
    }
    srv.stop().await;
    let missing = tempfile::tempdir().unwrap();
    assert_ne!(verify(missing.path()).await.code, Some(0), "no database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_has_the_same_records_as_json_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let extra = format!("audit_log = {:?}", log.to_str().unwrap());
    let srv = TestServer::start_with(&extra).await;
    let name = upload_form(&srv, file_form("a \"quoted\"\\ name.txt", &b"x"[..])).await;
    admin_get(&srv, &format!("/{name}/+download")).await;
    post_login(&client(), &srv, &[("token", "wrong")]).await;
    let records = records_after(&srv, 0).await;
    assert_eq!(records.len(), 4, "{records:#?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines, records,
        "one JSON line per record, the same fields and hashes"
    );
    assert!(text.ends_with('\n'));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The chain is checkable from the file alone, as README describes it.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/audit_chain.py");
    let out = match std::process::Command::new("python3")
        .arg(&script)
        .arg(&log)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            return skip_unless_required("SFX_REQUIRE_PYTHON_CLIENTS", &format!("python3: {e}"));
        }
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        said.trim(),
        format!("ok 4 {}", records[3]["hash"].as_str().unwrap())
    );
    // A rotated file (renamed away) is created again by the next record.
    std::fs::rename(&log, dir.path().join("audit.jsonl.1")).unwrap();
    admin_get(&srv, &format!("/{name}/+download")).await;
    let again = std::fs::read_to_string(&log).unwrap();
    assert_eq!(again.lines().count(), 1);
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    srv.stop().await;
}

/// Expiry is sfx's own doing: a `delete` by `system`, whether the sweeper or a request finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_recorded_as_a_system_delete() {
    let srv = TestServer::start_with("default_lifetime = \"1s\"\nsweep_interval = \"200ms\"").await;
    let mut cur = Cursor::new(&srv).await;
    let name = upload_form(&srv, file_form("short.txt", &b"x"[..])).await;
    cur.expect(
        &srv,
        "upload",
        &[s("upload_completed", "ok", "127.0.0.1", "customers", &name)],
    )
    .await;
    let recs = eventually(
        "the expiry record",
        std::time::Duration::from_secs(30),
        async || {
            let recs = records_after(&srv, cur.last).await;
            if recs.is_empty() {
                Err("none yet".into())
            } else {
                Ok(recs)
            }
        },
    )
    .await;
    let got: Vec<_> = recs.iter().map(summary).collect();
    assert_eq!(got, [s("delete", "ok", "", "system", &name)]);
    assert_eq!(recs[0]["detail"], "expired");
    srv.stop().await;
}

/// The item page shows the item's own history from the trail: its upload, and each download
/// with who and from where, newest first; nothing of other items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_page_shows_its_history() {
    let srv = TestServer::start().await;
    let put = |name: &'static str| {
        from("127.0.0.5")
            .put(srv.url(&format!("/+upload/{name}")))
            .header("Authorization", basic(CUSTOMER))
            .body("payload")
            .send()
    };
    let r = put("%3Ci%3Ecase.log").await.unwrap();
    assert_eq!(r.status(), 201);
    let name = r.headers()["sfx-item"].to_str().unwrap().to_string();
    let other = put("other.log").await.unwrap();
    let other = other.headers()["sfx-item"].to_str().unwrap().to_string();
    for ip in ["127.0.0.7", "127.0.0.8"] {
        let d = from(ip)
            .get(srv.url(&format!("/{name}/+download")))
            .header("Authorization", basic(READER))
            .send()
            .await
            .unwrap();
        assert_eq!(d.status(), 200);
    }
    let page = from("127.0.0.9")
        .get(srv.url(&format!("/{name}")))
        .header("Authorization", basic(READER))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let history = html
        .split("id=\"history-title\"")
        .nth(1)
        .expect("a history section");
    assert!(history.contains("3 event(s)"), "{history}");
    let order: Vec<usize> = ["127.0.0.8", "127.0.0.7", "127.0.0.5"]
        .iter()
        .map(|ip| {
            history
                .find(ip)
                .unwrap_or_else(|| panic!("{ip} in {history}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first: {order:?}"
    );
    assert_eq!(history.matches("<td>download</td>").count(), 2);
    assert_eq!(history.matches("<td>upload_completed</td>").count(), 1);
    assert!(history.contains("<td>readers</td>") && history.contains("<td>customers</td>"));
    assert!(
        history.contains("case.log") && !history.contains("<i>case"),
        "the filename, escaped: {history}"
    );
    assert!(!history.contains(&other), "only this item's records");
}
