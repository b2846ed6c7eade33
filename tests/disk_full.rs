//! A real full disk: the data directory on a small tmpfs. An upload larger than the disk is
//! answered 507, its partial file removed, and the server (and its metadata store) keeps working.
//! On a disk filled to the last byte every write answers 507 (form and REST uploads, the
//! metadata store's own writes), reads still work, and operators (and the sweeper) can still
//! delete, which gives the space back.
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

/// A tmpfs of `size`, or `None` (skipped) where it cannot be mounted.
fn tmpfs(mount_point: &Path, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(mount_point, size) {
        Ok(m) => Some(m),
        Err(e) => {
            let reason = format!("the tmpfs cannot be mounted (needs root): {e}");
            skip_unless_required("SFX_REQUIRE_TMPFS", &reason);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_507_and_leaves_nothing() {
    // Declared before the mount guard: dropped (removed) after the unmount.
    let mount_point = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = tmpfs(mount_point.path(), "8m") else {
        return;
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

/// Fills the filesystem of `dir` to the last byte (a file outside the data directory).
fn fill_up(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    // The last partial block.
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
}

async fn post_json(srv: &TestServer, path: &str) -> u16 {
    client()
        .post(srv.url(path))
        .basic_auth("x", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_to_the_last_byte_still_serves_reads_and_deletes() {
    let mount_point = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = tmpfs(mount_point.path(), "16m") else {
        return;
    };
    let data = mount_point.path().join("data");
    let srv = TestServer::start_in(&data, "sweep_interval = \"1s\"").await;
    let files: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(MIB, 70 + i)).collect();
    let mut names = Vec::new();
    for (i, f) in files.iter().enumerate() {
        names.push(upload_form(&srv, file_form(&format!("f{i}.bin"), f.clone())).await);
    }
    // The last one expires in a few seconds: the sweeper must delete it on the full disk.
    let expires = sfx::now() + 3;
    let db = rusqlite::Connection::open(data.join("sfx.db")).unwrap();
    db.execute(
        "UPDATE items SET expires_at = ?1 WHERE name = ?2",
        rusqlite::params![expires, names[3]],
    )
    .unwrap();
    drop(db);
    fill_up(mount_point.path());
    assert_eq!(sfx_free_space(&data), 0, "the disk is full");
    let before = srv.snapshot();

    // Every write is 507 with a reason, and leaves nothing.
    let resp = post_upload(
        &srv,
        Some(CUSTOMER),
        file_form("more.bin", vec![1u8; 100_000]),
    )
    .await;
    assert_eq!(resp.status(), 507);
    let r = rest_chunk(&srv, b"hello world", 0..5, None, &[]).await;
    assert_eq!(r.status(), 507, "REST first chunk on a full disk");
    assert!(r.text().await.unwrap().contains("disk is full"));
    let lock = post_json(&srv, &format!("{ITEMS}/{}/lock", names[0])).await;
    assert_eq!(lock, 507, "lock needs the metadata store to write");
    srv.assert_nothing_stored(&before, "writes on a full disk")
        .await;

    // Reads work.
    let resp = admin_get(&srv, &format!("/{}/+download", names[0])).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == files[0]);
    assert_eq!(
        admin_get(&srv, &format!("/{}", names[1])).await.status(),
        200
    );

    // Deletes work (REST and web), and so does the sweeper.
    assert_eq!(
        post_json(&srv, &format!("{ITEMS}/{}/delete", names[0])).await,
        200
    );
    assert_eq!(
        post_json(&srv, &format!("/{}/+delete", names[1])).await,
        200
    );
    wait_until(
        "the sweeper removed the expired item",
        std::time::Duration::from_secs(20),
        || srv.item(&names[3]).is_none(),
    )
    .await;
    let left: Vec<String> = listing(&srv).await.keys().cloned().collect();
    assert_eq!(left, vec![names[2].clone()]);
    for gone in [&names[0], &names[1], &names[3]] {
        assert!(
            !srv.stored_path(gone).exists(),
            "{gone}'s bytes were removed"
        );
    }
    // The freed space takes uploads again.
    let again = upload_form(&srv, file_form("again.bin", files[0].clone())).await;
    assert_eq!(srv.item(&again).unwrap().sha256, sha256_hex(&files[0]));
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
