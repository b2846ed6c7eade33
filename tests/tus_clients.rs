//! The tus endpoint (`/+tus/`) checked by clients nobody here wrote: tuspy (the tus project's
//! Python client, in the venv `.ci/python-deps.sh` makes) and tus-js-client (its JavaScript
//! client under Node, `tests/clients/tus-node`, `npm ci` there). They create, upload in chunks,
//! stop and resume from their own URL storage in a new process, send checksums, terminate,
//! defer the length, send metadata and authenticate with Basic; each item's SHA-256 is then
//! checked on the server. tus-js-client's IETF mode is checked against `/+upload` too. The
//! protocol step by step is in `tests/tus_protocol.rs`.
//!
//! Without the clients these tests print "skipped: ..." and pass, unless
//! `SFX_REQUIRE_TUS_CLIENTS=1` (set by `.ci/run`), which makes them fail instead.
//! Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const REQUIRE: &str = "SFX_REQUIRE_TUS_CLIENTS";
const TUS: &str = "/+tus/";

// ---------------------------------------------------------------------------------------------
// The clients

/// The venv's python when it has tuspy; otherwise skip (or fail when required).
fn tuspy() -> Option<PathBuf> {
    let python = venv_dir().join("bin/python");
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import tusclient.client, requests"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(
            REQUIRE,
            &format!(
                "no venv with tuspy at {} (run .ci/python-deps.sh)",
                venv_dir().display()
            ),
        );
        return None;
    }
    Some(python)
}

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/tus-node")
}

/// `node` when tus-js-client is installed in tests/clients/tus-node; otherwise skip.
fn tus_js() -> Option<()> {
    let installed = node_dir()
        .join("node_modules/tus-js-client/package.json")
        .exists();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(installed && node) {
        skip_unless_required(
            REQUIRE,
            "no node or no tus-js-client (run `npm ci` in tests/clients/tus-node)",
        );
        return None;
    }
    Some(())
}

/// Runs tests/clients/tuspy_run.py with `spec`; returns its JSON report.
async fn run_tuspy(python: &Path, cwd: &Path, spec: Value) -> Value {
    let run = run_python(python, cwd, "tuspy_run.py", &[&spec.to_string()], None, &[]).await;
    assert!(run.status.success(), "tuspy_run.py: {}", run.stderr);
    last_json(&run.stdout)
}

/// Runs tests/clients/tus-node/run.js under node with `spec`; returns its JSON report.
async fn run_tus_js(cwd: &Path, spec: Value) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(node_dir().join("run.js"))
        .arg(spec.to_string())
        .current_dir(cwd)
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .kill_on_drop(true);
    for var in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] {
        cmd.env_remove(var);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("node finished in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "--- run.js {spec}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "run.js failed");
    last_json(&stdout)
}

fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in {stdout}"));
    serde_json::from_str(line).expect("a JSON report")
}

fn no_error(report: &Value) {
    assert!(
        report.get("error").is_none_or(Value::is_null),
        "the client failed: {}",
        report["error"]
    );
}

fn requests<'a>(report: &'a Value, method: &str) -> Vec<&'a Value> {
    report["trace"]
        .as_array()
        .expect("a trace")
        .iter()
        .filter(|r| r["method"] == method)
        .collect()
}

/// The item a complete upload became: checks the `Sfx-*` headers a client saw (`headers`)
/// against the file and the server's own metadata; returns the item name.
async fn check_item(srv: &TestServer, headers: &Value, file: &Path, filename: &str) -> String {
    let sha = external_sha256(file);
    assert_eq!(headers["sfx-sha256"], sha.as_str(), "Sfx-Sha256: {headers}");
    let item = headers["sfx-item"]
        .as_str()
        .unwrap_or_else(|| panic!("Sfx-Item: {headers}"))
        .to_string();
    let meta = file_meta(srv, &item).await;
    assert_eq!(meta["hash"], sha.as_str(), "{meta}");
    assert_eq!(meta["filename"], filename, "{meta}");
    assert_eq!(
        meta["size"],
        std::fs::metadata(file).unwrap().len(),
        "{meta}"
    );
    assert_eq!(srv.stored_sha256_external(&item).await, sha);
    item
}

#[tokio::test]
async fn tuspy_chunks_checksums_metadata() {
    let Some(python) = tuspy() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "data.bin", MIB + 333, 1);
    let report = run_tuspy(
        &python,
        tmp.path(),
        json!({
            "endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file,
            "chunk_size": 256 * 1024, "checksum": true,
            "metadata": {"filename": "tuspy report.tar.gz", "filetype": "application/gzip",
                         "reference": "CASE-7", "comment": "via tuspy ✓"},
        }),
    )
    .await;
    no_error(&report);
    let patches = requests(&report, "PATCH");
    assert_eq!(patches.len(), 5, "five chunks");
    for p in &patches {
        let sum = p["headers"]["upload-checksum"].as_str().unwrap_or("");
        assert!(sum.starts_with("sha1 "), "tuspy sends sha1 checksums: {p}");
        assert_eq!(p["status"], 204);
        assert_eq!(
            p["headers"]["authorization"],
            format!("Basic {}", b64(format!("user:{CUSTOMER}").as_bytes()))
        );
    }
    let item = check_item(&srv, &report["patch_headers"], &file, "tuspy report.tar.gz").await;
    // HEAD of the complete upload tells the same.
    assert_eq!(report["head_status"], 200);
    assert_eq!(report["head_headers"]["sfx-item"], item.as_str());
    let meta = file_meta(&srv, &item).await;
    assert_eq!(meta["reference"], "CASE-7");
    assert_eq!(meta["comment"], "via tuspy ✓");
    assert_eq!(meta["type"], "application/gzip", "{meta}");
    srv.stop().await;
}

/// Stopped after two of eight chunks, then a new process finds the URL in tuspy's storage,
/// asks the offset and sends only the rest.
#[tokio::test]
async fn tuspy_resumes_in_a_new_process() {
    let Some(python) = tuspy() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = MIB + 4321;
    let chunk = 128 * 1024;
    let file = random_file(tmp.path(), "resume.bin", size, 2);
    let storage = tmp.path().join("tuspy-urls.json");
    let spec = |stop_at: Option<usize>| {
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunk_size": chunk,
               "checksum": true, "storage": storage, "stop_at": stop_at,
               "metadata": {"filename": "resume.bin"}})
    };
    let first = run_tuspy(&python, tmp.path(), spec(Some(2 * chunk))).await;
    no_error(&first);
    assert_eq!(first["offset"], 2 * chunk);
    let url = first["url"].as_str().unwrap().to_string();
    assert_eq!(
        tus_head(&url, CUSTOMER).await,
        (StatusCode::OK, Some(2 * chunk as u64))
    );
    assert!(
        first["head_headers"].get("sfx-sha256").is_none(),
        "not complete yet"
    );

    let second = run_tuspy(&python, tmp.path(), spec(None)).await;
    no_error(&second);
    assert_eq!(second["url"], url.as_str(), "the same upload");
    assert_eq!(second["resumed_offset"], 2 * chunk);
    assert!(requests(&second, "POST").is_empty(), "no new upload");
    let sent: u64 = requests(&second, "PATCH")
        .iter()
        .map(|p| p["body_len"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, (size - 2 * chunk) as u64, "only the rest was sent");
    check_item(&srv, &second["patch_headers"], &file, "resume.bin").await;
    assert_eq!(srv.item_names().len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn tuspy_wrong_password_is_refused() {
    let Some(python) = tuspy() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "x.bin", 1000, 3);
    let report = run_tuspy(
        &python,
        tmp.path(),
        json!({"endpoint": srv.url(TUS), "secret": "wrong", "file": file}),
    )
    .await;
    assert_eq!(report["error"]["status"], 403, "{report}");
    assert!(srv.item_names().is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn tus_js_chunks_metadata_basic_auth() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "js.bin", 3 * 256 * 1024 + 17, 4);
    let report = run_tus_js(
        tmp.path(),
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunkSize": 256 * 1024,
               "metadata": {"filename": "tus-js ünïcode.log", "filetype": "text/plain",
                            "reference": "JS-1"}}),
    )
    .await;
    no_error(&report);
    assert_eq!(requests(&report, "POST").len(), 1);
    assert_eq!(requests(&report, "PATCH").len(), 4);
    let item = check_item(&srv, &report["headers"], &file, "tus-js ünïcode.log").await;
    assert_eq!(file_meta(&srv, &item).await["reference"], "JS-1");
    srv.stop().await;
}

/// Aborted after a chunk, then a new process finds the upload in tus-js-client's
/// FileUrlStorage (fingerprint: path, size, mtime), resumes it and forgets it when done.
#[tokio::test]
async fn tus_js_resumes_from_its_url_storage() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = MIB + 99;
    let chunk = 256 * 1024;
    let file = random_file(tmp.path(), "again.bin", size, 5);
    let storage = tmp.path().join("tus-urls.json");
    let spec = |abort: Option<usize>| {
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunkSize": chunk,
               "storage": storage, "abortAfter": abort, "metadata": {"filename": "again.bin"}})
    };
    let first = run_tus_js(tmp.path(), spec(Some(chunk))).await;
    assert_eq!(first["aborted"], true, "{first}");
    let url = first["url"].as_str().unwrap().to_string();
    let (status, offset) = tus_head(&url, CUSTOMER).await;
    assert_eq!(status, StatusCode::OK);
    let kept = offset.unwrap();
    assert!(kept >= chunk as u64 && kept < size as u64, "{kept}");

    let second = run_tus_js(tmp.path(), spec(None)).await;
    no_error(&second);
    assert_eq!(second["previous"], 1, "found in its storage");
    assert_eq!(second["url"], url.as_str(), "the same upload");
    assert!(requests(&second, "POST").is_empty(), "no new upload");
    assert_eq!(requests(&second, "HEAD").len(), 1, "asked the offset");
    let first_patch = requests(&second, "PATCH")[0];
    assert_eq!(first_patch["headers"]["upload-offset"], kept.to_string());
    check_item(&srv, &second["headers"], &file, "again.bin").await;
    let stored = std::fs::read_to_string(&storage).unwrap_or_default();
    assert!(!stored.contains("tus::"), "forgotten when done: {stored}");
    srv.stop().await;
}

#[tokio::test]
async fn tus_js_terminate() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "gone.bin", MIB, 6);
    let report = run_tus_js(
        tmp.path(),
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunkSize": 256 * 1024,
               "abortAfter": 256 * 1024, "terminate": true}),
    )
    .await;
    assert_eq!(report["aborted"], true, "{report}");
    no_error(&report);
    let delete = requests(&report, "DELETE");
    assert_eq!(delete.len(), 1, "abort(true) terminates");
    assert_eq!(delete[0]["status"], 204);
    let url = report["url"].as_str().unwrap();
    let (status, _) = tus_head(url, CUSTOMER).await;
    assert!(
        matches!(status.as_u16(), 404 | 410),
        "after termination: {status}"
    );
    assert!(srv.item_names().is_empty());
    wait_until("partial data removed", Duration::from_secs(5), || {
        srv.partial_files().is_empty() && srv.temp_files().is_empty()
    })
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn tus_js_deferred_length() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = 600 * 1024 + 5;
    let file = random_file(tmp.path(), "stream.bin", size, 7);
    let report = run_tus_js(
        tmp.path(),
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunkSize": 256 * 1024,
               "deferred": true, "metadata": {"filename": "stream.bin"}}),
    )
    .await;
    no_error(&report);
    let post = requests(&report, "POST")[0];
    assert_eq!(post["headers"]["upload-defer-length"], "1", "{post}");
    assert!(post["headers"].get("upload-length").is_none());
    let told: Vec<_> = requests(&report, "PATCH")
        .iter()
        .filter_map(|p| p["headers"]["upload-length"].as_str())
        .collect();
    assert_eq!(
        told,
        vec![size.to_string().as_str()],
        "the length, once, at the end"
    );
    check_item(&srv, &report["headers"], &file, "stream.bin").await;
    srv.stop().await;
}

/// uploadDataDuringCreation: a small file in the POST itself, whose 201 is the receipt.
#[tokio::test]
async fn tus_js_creation_with_upload() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "small.txt", 5000, 8);
    let report = run_tus_js(
        tmp.path(),
        json!({"endpoint": srv.url(TUS), "secret": CUSTOMER, "file": file, "chunkSize": 256 * 1024,
               "withUpload": true, "metadata": {"filename": "small.txt"}}),
    )
    .await;
    no_error(&report);
    assert_eq!(report["trace"].as_array().unwrap().len(), 1, "one POST");
    assert_eq!(report["status"], 201);
    check_item(&srv, &report["headers"], &file, "small.txt").await;
    srv.stop().await;
}

/// tus-js-client's `ietf-draft-05` protocol (interop version 6, as tusd speaks it) against
/// `/+upload`: creation, `application/partial-upload` appends with `Upload-Complete`, stopping
/// and resuming in a new process, and the metadata it sends in this mode too.
#[tokio::test]
async fn tus_js_ietf_draft_05_creates_appends_and_resumes() {
    let Some(()) = tus_js() else { return };
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "ietf.bin", 5 * 256 * 1024 + 3, 21);
    let storage = tmp.path().join("urls.json");
    let spec = |abort: Option<u64>| {
        json!({"endpoint": srv.url("/+upload"), "secret": CUSTOMER, "file": file,
               "chunkSize": 256 * 1024, "protocol": "ietf-draft-05", "storage": storage,
               "metadata": {"filename": "ietf ünïcode.bin", "reference": "IETF-6"},
               "abortAfter": abort})
    };
    let first = run_tus_js(tmp.path(), spec(Some(512 * 1024))).await;
    assert_eq!(first["aborted"], true, "{first}");
    let create = requests(&first, "POST");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0]["headers"]["upload-draft-interop-version"], "6");
    assert_eq!(create[0]["status"], 201);
    let location = create[0]["response_headers"]["location"].as_str().unwrap();
    assert!(location.starts_with("/+resumable/"), "{location}");
    for p in requests(&first, "PATCH") {
        assert_eq!(p["headers"]["content-type"], "application/partial-upload");
        assert_eq!(p["headers"]["upload-complete"], "?0");
    }

    let second = run_tus_js(tmp.path(), spec(None)).await;
    no_error(&second);
    assert!(
        requests(&second, "POST").is_empty(),
        "resumed, not created again"
    );
    let heads = requests(&second, "HEAD");
    assert_eq!(heads.len(), 1);
    let resumed_at: u64 = heads[0]["response_headers"]["upload-offset"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(resumed_at >= 512 * 1024, "{resumed_at}");
    let patches = requests(&second, "PATCH");
    // The client may not flag its last chunk (it does not know it is the last); the server
    // completes the upload when its declared length is reached, and says so.
    let last = patches.last().unwrap();
    assert_eq!(last["response_headers"]["upload-complete"], "?1", "{last}");
    assert_eq!(
        patches[0]["headers"]["upload-offset"],
        resumed_at.to_string().as_str()
    );
    let item = check_item(&srv, &second["headers"], &file, "ietf ünïcode.bin").await;
    assert_eq!(file_meta(&srv, &item).await["reference"], "IETF-6");
    srv.stop().await;
}
