//! Start-up, restart, crash leftovers, background expiry, and the `sfx` binary itself.

mod common;

use common::*;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn upload_text(srv: &TestServer, text: &str) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name("t.txt"),
    );
    let resp = client()
        .post(srv.url("/+upload"))
        .basic_auth("u", Some(CUSTOMER))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    name_from_location(resp.headers()["location"].to_str().unwrap())
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
        vec![tmp.path().join("files").join(&name)],
        "orphan removed, item kept"
    );
    let body = client()
        .get(srv.url(&format!("/{name}/+download")))
        .basic_auth("o", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(body.text().await.unwrap(), "survives restarts");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_removes_expired_items_nobody_touches() {
    let srv = TestServer::start_with("default_lifetime = \"2s\"\nsweep_interval = \"500ms\"").await;
    let expiring = upload_text(&srv, "short-lived").await;
    assert_eq!(srv.item_names(), vec![expiring]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !srv.item_names().is_empty() || !srv.stored_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "expired item still there: {:?}",
            srv.stored_files()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_generate_an_operator_secret_once() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n",
        tmp.path().to_str().unwrap()
    );
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
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(tmp.path().join("session.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let addr = app.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let list = client()
        .get(format!("http://{addr}/+list"))
        .basic_auth("x", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(
        list.status(),
        StatusCode::OK,
        "the generated secret is an operator"
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(&b"x"[..]).file_name("x"),
    );
    let up = client()
        .post(format!("http://{addr}/+upload"))
        .basic_auth("user", Some("support"))
        .multipart(form)
        .send()
        .await
        .unwrap();
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

/// The real binary, started the way the README says.
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(args: &[&str], env: &[(&str, &str)]) -> (Binary, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfx"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("sfx printed its address").unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.to_string();
        }
    };
    (Binary(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut bin, addr) = start_binary(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let health: serde_json::Value = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let out = curl(&[
        "-sS",
        "-i",
        "-F",
        "text=hi",
        &format!("http://user:support@{addr}/+upload"),
    ])
    .await;
    assert!(out.stdout.starts_with("HTTP/1.1 302"), "{}", out.stdout);
    let pid = bin.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = bin.0.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
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
    let config = tmp.path().join("sfx.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n[[secrets]]\nlabel = \"ops\"\nsecret_hash = {:?}\npermissions = [\"list\"]\n",
            tmp.path().join("d").to_str().unwrap(),
            phc
        ),
    )
    .unwrap();
    // SFX_CONFIG names the config file.
    let (_bin, addr) = start_binary(&["serve"], &[("SFX_CONFIG", config.to_str().unwrap())]);
    let ok = client()
        .get(format!("http://{addr}/+list"))
        .basic_auth("x", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = client()
        .get(format!("http://{addr}/+list"))
        .basic_auth("x", Some("correct horse!"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
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
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let srv = TestServer::start_in(tmp.path(), "").await;
    let first = client()
        .post(srv.url("/apis/rest/items"))
        .basic_auth("user", Some(CUSTOMER))
        .header("content-range", "bytes 0-1999/3000")
        .body(b64(&data[..2000]))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let token = first.headers()["transaction-id"]
        .to_str()
        .unwrap()
        .to_string();
    srv.stop().await;
    // A crash right after the completed file was moved into place, before the metadata said so.
    let partial = std::fs::read_dir(tmp.path().join("partial"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::rename(
        partial.path(),
        tmp.path().join("files").join(partial.file_name()),
    )
    .unwrap();
    let srv = TestServer::start_in(tmp.path(), "").await;
    assert!(
        tmp.path()
            .join("partial")
            .join(partial.file_name())
            .exists(),
        "put back"
    );
    let last = client()
        .post(srv.url("/apis/rest/items"))
        .basic_auth("user", Some(CUSTOMER))
        .header("transaction-id", &token)
        .header("content-range", "bytes 2000-2999/3000")
        .body(b64(&data[2000..]))
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), StatusCode::CREATED);
    let location = last.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    let got = client()
        .get(srv.url(&format!("{location}/download")))
        .basic_auth("o", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
    srv.stop().await;
}
