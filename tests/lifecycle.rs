//! Start-up, restart, crash leftovers, background expiry, and the `sfx` binary itself.

mod common;

use common::*;
use reqwest::StatusCode;
use std::process::{Command, Stdio};
use std::time::Duration;

async fn upload_text(srv: &TestServer, text: &'static str) -> String {
    upload_form(srv, file_form("t.txt", text.as_bytes())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_items_and_removes_crash_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = TestServer::start_in(tmp.path(), "").await;
    let name = upload_text(&srv, "survives restarts").await;
    srv.stop().await;
    // What a crash can leave: a half-written temp file, and a renamed file whose metadata commit
    // never happened.
    std::fs::write(tmp.path().join("tmp/up-crashed.part"), b"partial").unwrap();
    std::fs::write(tmp.path().join("files/ZZZZZZZZ"), b"never committed").unwrap();
    let srv = TestServer::start_in(tmp.path(), "").await;
    assert!(srv.temp_files().is_empty(), "temp leftovers removed");
    assert_eq!(
        srv.stored_files(),
        vec![srv.stored_path(&name)],
        "orphan removed, item kept"
    );
    assert_eq!(
        admin_text(&srv, &format!("/{name}/+download")).await,
        "survives restarts"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_removes_expired_items_nobody_touches() {
    let srv = TestServer::start_with("default_lifetime = \"2s\"\nsweep_interval = \"500ms\"").await;
    let expiring = upload_text(&srv, "short-lived").await;
    assert_eq!(srv.item_names(), vec![expiring]);
    wait_until(
        "the expired item to be removed",
        Duration::from_secs(15),
        || srv.item_names().is_empty() && srv.stored_files().is_empty(),
    )
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_generate_an_operator_secret_once() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = base_toml(tmp.path());
    let app = sfx::App::bind(sfx::Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let notes = app.notes().join("\n");
    let secret_path = tmp.path().join("admin-secret");
    let secret = std::fs::read_to_string(&secret_path)
        .unwrap()
        .trim()
        .to_string();
    assert!(secret.len() >= 32, "a long random secret");
    assert!(
        notes.contains(&secret) && notes.contains(secret_path.to_str().unwrap()),
        "{notes}"
    );
    for file in [secret_path.clone(), tmp.path().join("session.key")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file:?}");
    }
    let addr = app.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    assert_eq!(
        get_as(&addr, Some(&secret), "/+list").await.status(),
        StatusCode::OK,
        "the generated secret is an operator"
    );
    let up = post_upload(&addr, Some("support"), file_form("x", &b"x"[..])).await;
    assert_eq!(
        up.status(),
        StatusCode::FOUND,
        "customers upload with `support`"
    );
    shutdown.cancel();
    task.await.unwrap();
    // Second start: the secret is kept, and not printed again.
    let app = sfx::App::bind(sfx::Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let notes = app.notes().join("\n");
    assert!(
        !notes.contains(&secret) && notes.contains("admin-secret"),
        "{notes}"
    );
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap().trim(),
        secret
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data];
    let bin = Binary::start(&args, &[], None).await;
    assert_eq!(healthz(&bin).await["status"], "ok");
    curl_form_upload(&["-F", "text=hi", &bin.url_with_secret(CUSTOMER, "/+upload")]).await;
    bin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_secret_and_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfx"))
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let config = write_config(
        tmp.path(),
        &format!(
            "{}[[secrets]]\nlabel = \"ops\"\nsecret_hash = {phc:?}\npermissions = [\"list\"]\n",
            base_toml(&tmp.path().join("d"))
        ),
    );
    // SFX_CONFIG names the config file.
    let env = [("SFX_CONFIG", config.to_str().unwrap())];
    let bin = Binary::start(&["serve"], &env, None).await;
    for (secret, expected) in [
        ("correct horse", StatusCode::OK),
        ("correct horse!", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(
            get_as(&bin, Some(secret), "/+list").await.status(),
            expected
        );
    }
}

#[test]
fn unknown_config_key_is_named_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nmax_fiel_size = \"1GiB\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sfx"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_fiel_size"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_rest_completion_is_restored_at_start() {
    // A crash while a completed upload was being moved into place: after the rename (before
    // the metadata said so), or between the link and the unlink of that move.
    for linked_only in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let srv = TestServer::start_in(tmp.path(), "").await;
        let first = rest_chunk(&srv, &data, 0..2000, None, &[]).await;
        assert_eq!(first.status(), StatusCode::OK);
        let token = response_header(&first, "transaction-id");
        srv.stop().await;
        let partial = std::fs::read_dir(tmp.path().join("partial"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let done = tmp.path().join("files").join(partial.file_name());
        if linked_only {
            std::fs::hard_link(partial.path(), &done).unwrap();
        } else {
            std::fs::rename(partial.path(), &done).unwrap();
        }
        let srv = TestServer::start_in(tmp.path(), "").await;
        assert!(
            partial.path().exists() && !done.exists(),
            "put back (linked_only: {linked_only})"
        );
        let last = rest_chunk(&srv, &data, 2000..3000, Some(&token), &[]).await;
        assert_eq!(
            last.status(),
            StatusCode::CREATED,
            "linked_only: {linked_only}"
        );
        let location = response_header(&last, "content-location");
        let got = admin_get(&srv, &format!("{location}/download")).await;
        assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
        srv.stop().await;
    }
}

/// Every directory and file under the data directory is the service user's alone (0700/0600),
/// even when sfx is started with a permissive umask, and a world-readable file left by an older
/// version is made private at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let audit_log = format!("audit_log = {:?}", tmp.path().join("data/audit.jsonl"));
    let (config, data) = binary_config(tmp.path(), &audit_log, "[tls]\nself_signed = true\n");
    let args = ["serve", "--config", config.to_str().unwrap()];
    let wrapper = ["sh", "-c", "umask 000; exec \"$0\" \"$@\""];
    let bin = Binary::start_under(&wrapper, &args, &[], None).await;
    let http = insecure_client();
    let resp = http
        .post(bin.url("/+upload"))
        .basic_auth("u", Some(CUSTOMER))
        .multipart(file_form("a.bin", vec![1u8; 1000]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let resp = http
        .post(bin.url(ITEMS))
        .basic_auth("u", Some(CUSTOMER))
        .header("content-range", "bytes 0-4/10")
        .body(b64(b"hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a partial upload is under way");
    let check = |what: &str| {
        let mut seen = 0;
        for path in walk_all(&data) {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            let want = if meta.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{what}: {} is {mode:o}", path.display());
            seen += 1;
        }
        assert!(seen > 8, "{what}: only {seen} entries");
    };
    check("first start");
    bin.stop().await;
    // An older sfx left the database world-readable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.join("sfx.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = Binary::start_under(&wrapper, &args, &[], None).await;
    check("after a restart");
    bin.stop().await;
}

/// Every path under `dir`, `dir` included.
fn walk_all(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_all(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
