//! A real full disk: the data directory on a small tmpfs. An upload larger than the disk is
//! answered 507, its partial file removed, and the server (and its metadata store) keeps working.
//!
//! Needs root (to mount the tmpfs). Without it the test is skipped, unless
//! `SFX_REQUIRE_TMPFS=1`, which turns the skip into a failure (for CI that runs as root).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The vendor's curl upload of `file`.
async fn curl_upload(srv: &TestServer, file: &Path) -> CurlStatus {
    let form = format!("file=@{};type=application/octet-stream", file.display());
    curl_status(&["-F", &form, &srv.url_with_secret(CUSTOMER, "/+upload")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_507_and_leaves_nothing() {
    // Declared before the mount guard: dropped (removed) after the unmount.
    let mount_point = tempfile::tempdir().unwrap();
    let _tmpfs = match Tmpfs::mount(mount_point.path(), "8m") {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("the tmpfs cannot be mounted (needs root): {e}");
            skip_unless_required("SFX_REQUIRE_TMPFS", &reason);
            return;
        }
    };
    let data = mount_point.path().join("data");
    // start_in sets min_free_space = "0": only the real ENOSPC stops the upload.
    let srv = TestServer::start_in(&data, "").await;

    let work = tempfile::tempdir().unwrap();
    let huge = random_file(work.path(), "huge.bin", 20 * MIB, 61);
    let empty = srv.snapshot();
    let r = curl_upload(&srv, &huge).await;
    assert_eq!(
        r.code, 507,
        "upload larger than the disk: {}\n{}",
        r.body, r.stderr
    );
    assert!(
        r.body.contains("disk is full"),
        "507 without a reason: {}",
        r.body
    );
    srv.assert_nothing_stored(&empty, "upload larger than the disk")
        .await;
    assert!(listing(&srv).await.is_empty());
    // The space is given back.
    let free = sfx_free_space(&data);
    assert!(
        free > 6 * MIB as u64,
        "only {free} bytes free after the 507"
    );

    // The server keeps serving: a small upload succeeds and its metadata is stored and listed.
    let small = random_file(work.path(), "small.bin", 256 * 1024, 62);
    let r = curl_upload(&srv, &small).await;
    assert_eq!(
        r.code, 302,
        "small upload after the full disk: {}\n{}",
        r.body, r.stderr
    );
    let names = srv.item_names();
    assert_eq!(names.len(), 1);
    let name = &names[0];
    let stored = srv.stored_path(name);
    assert_eq!(external_sha256(&stored), external_sha256(&small));
    let list = listing(&srv).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[name]["file-meta"]["hash"].as_str().unwrap(),
        external_sha256(&small)
    );
    assert_eq!(list[name]["file-meta"]["size"], 256 * 1024);

    // And again: the disk fills a second time, and the store still works afterwards.
    let before = srv.snapshot();
    let r = curl_upload(&srv, &huge).await;
    assert_eq!(r.code, 507, "{}", r.body);
    srv.assert_nothing_stored(&before, "the disk full again")
        .await;
    let resp = admin_get(&srv, &format!("/{name}/+download")).await;
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
