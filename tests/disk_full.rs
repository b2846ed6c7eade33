//! A real full disk: the data directory on a small tmpfs. An upload larger than the disk is
//! answered 507, its partial file removed, and the server (and its metadata store) keeps working.
//!
//! Needs root (to mount the tmpfs). Without it the test is skipped, unless
//! `SFX_REQUIRE_TMPFS=1`, which turns the skip into a failure (for CI that runs as root).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// A mounted tmpfs, lazily unmounted on drop (also when the test panics).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn listing(srv: &TestServer) -> serde_json::Map<String, Value> {
    let resp = client()
        .get(srv.url("/apis/rest/items"))
        .basic_auth("x", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "listing");
    match resp.json::<Value>().await.unwrap() {
        Value::Object(m) => m,
        other => panic!("listing is not an object: {other}"),
    }
}

/// curl upload; returns (http code, body, stderr).
async fn curl_upload(srv: &TestServer, file: &Path, body_out: &Path) -> (u16, String, String) {
    let form = format!("file=@{};type=application/octet-stream", file.display());
    let out = curl(&[
        "-sS",
        "-o",
        body_out.to_str().unwrap(),
        "-w",
        "%{http_code}",
        "-F",
        &form,
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await;
    let code = out.stdout.trim().parse().unwrap_or(0);
    let body = std::fs::read_to_string(body_out).unwrap_or_default();
    (code, body, out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_507_and_leaves_nothing() {
    // Declared before the mount guard: dropped (removed) after the unmount.
    let mount_point = tempfile::tempdir().unwrap();
    let _tmpfs = match Tmpfs::mount(mount_point.path(), "8m") {
        Ok(m) => m,
        Err(e) => {
            if std::env::var("SFX_REQUIRE_TMPFS").as_deref() == Ok("1") {
                panic!("SFX_REQUIRE_TMPFS=1 but the tmpfs cannot be mounted: {e}");
            }
            eprintln!("skipped: needs root for tmpfs ({e})");
            return;
        }
    };
    let data = mount_point.path().join("data");
    // start_in sets min_free_space = "0": only the real ENOSPC stops the upload.
    let srv = TestServer::start_in(&data, "").await;

    let work = tempfile::tempdir().unwrap();
    let huge = random_file(work.path(), "huge.bin", 20 * MIB, 61);
    let (code, body, stderr) = curl_upload(&srv, &huge, &work.path().join("out1")).await;
    assert_eq!(code, 507, "upload larger than the disk: {body}\n{stderr}");
    assert!(
        body.contains("disk is full"),
        "507 without a reason: {body}"
    );

    wait_until(
        "the partial upload is removed from DATA/tmp",
        Duration::from_secs(5),
        || srv.temp_files().is_empty(),
    )
    .await;
    assert!(srv.stored_files().is_empty(), "{:?}", srv.stored_files());
    assert!(srv.item_names().is_empty());
    assert!(listing(&srv).await.is_empty());
    // The space is given back.
    let free = sfx_free_space(&data);
    assert!(
        free > 6 * MIB as u64,
        "only {free} bytes free after the 507"
    );

    // The server keeps serving: a small upload succeeds and its metadata is stored and listed.
    let small = random_file(work.path(), "small.bin", 256 * 1024, 62);
    let (code, body, stderr) = curl_upload(&srv, &small, &work.path().join("out2")).await;
    assert_eq!(
        code, 302,
        "small upload after the full disk: {body}\n{stderr}"
    );
    let names = srv.item_names();
    assert_eq!(names.len(), 1);
    let name = &names[0];
    let stored = srv.data_dir.join("files").join(name);
    assert_eq!(external_sha256(&stored), external_sha256(&small));
    let list = listing(&srv).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[name]["file-meta"]["hash"].as_str().unwrap(),
        external_sha256(&small)
    );
    assert_eq!(list[name]["file-meta"]["size"], 256 * 1024);

    // And again: the disk fills a second time, and the store still works afterwards.
    let (code, body, _) = curl_upload(&srv, &huge, &work.path().join("out3")).await;
    assert_eq!(code, 507, "{body}");
    wait_until("DATA/tmp empty again", Duration::from_secs(5), || {
        srv.temp_files().is_empty()
    })
    .await;
    assert_eq!(srv.item_names(), names);
    let resp = client()
        .get(srv.url(&format!("/{name}/+download")))
        .basic_auth("x", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        std::fs::read(&small).unwrap()
    );
    let resp = client()
        .post(srv.url(&format!("/{name}/+delete")))
        .basic_auth("x", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "delete after a full disk");
    assert!(listing(&srv).await.is_empty());
    srv.stop().await;
}

fn sfx_free_space(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}
