//! `sfx check [--quick] [--repair]` on data directories made by a real server run, with problems
//! planted by hand; and the data-directory lock (a second server, `--repair` beside a server).
//! Everything runs the real binary.

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What `sfx check` printed and its exit status.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn assert_line(&self, needle: &str) {
        assert!(
            self.stdout.lines().any(|l| l.contains(needle)),
            "no line with {needle:?} in:\n{}",
            self.stdout
        );
    }

    /// Lines starting with `prefix` (`problem:`, `repaired:`, `note:` ...).
    fn lines(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

async fn sfx(args: &[&str]) -> Run {
    let out = sfx_command(args, &[], None)
        .output()
        .await
        .expect("run sfx");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A config (outside the data directory) with the customers' and the admin secret.
fn config(root: &Path) -> (PathBuf, PathBuf) {
    let data = root.join("data");
    let path = root.join("sfx.toml");
    std::fs::write(&path, format!("{}{}", base_toml(&data), secrets_toml(2))).unwrap();
    (path, data)
}

/// `sfx serve --config CONFIG` (the server keeps its data directory private whatever the
/// umask: a permissive one here proves it).
async fn serve(config: &Path) -> Binary {
    let cmd = sfx_command(
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        Some("000"),
    );
    Binary::spawn(cmd, None).listening().await
}

async fn check(config: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    sfx(&args).await
}

/// The incomplete REST upload named by `filename`, from the operator's listing.
async fn incomplete_named(srv: &impl Endpoint, filename: &str) -> String {
    let found = listing(srv).await.into_iter().find(|(_, v)| {
        v["file-meta"]["filename"] == filename && v["file-meta"]["complete"] == false
    });
    found.expect("the upload is listed").0
}

/// Starts a REST upload of `data` and sends its first `sent` bytes; returns (transaction id,
/// item name).
async fn rest_begin(
    srv: &impl Endpoint,
    data: &[u8],
    sent: usize,
    filename: &str,
) -> (String, String) {
    let resp = rest_chunk(srv, data, 0..sent, None, &[("Content-Filename", filename)]).await;
    assert_eq!(resp.status(), StatusCode::OK, "first chunk of {filename}");
    let tid = response_header(&resp, "transaction-id");
    (tid, incomplete_named(srv, filename).await)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    /// Complete items, by filename `a`..`f`: (name, bytes).
    complete: Vec<(String, Vec<u8>)>,
    /// Incomplete REST uploads `p1`..`p5`: (transaction id, name), 64 KiB of 128 KiB sent.
    incomplete: Vec<(String, String)>,
    /// What the REST uploads upload.
    rest_data: Vec<u8>,
}

const HALF: usize = 64 << 10;

impl Fixture {
    fn files(&self, name: &str) -> PathBuf {
        self.data.join("files").join(name)
    }

    fn partial(&self, name: &str) -> PathBuf {
        self.data.join("partial").join(name)
    }

    fn item(&self, i: usize) -> &str {
        &self.complete[i].0
    }

    fn upload(&self, i: usize) -> &str {
        &self.incomplete[i].1
    }
}

/// A data directory made by a real server: six complete items (one form post) and five
/// incomplete REST uploads, then a clean stop. `sfx check` finds nothing wrong with it.
async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = config(tmp.path());
    let srv = serve(&config).await;
    let mut form = Form::new();
    let mut bodies = Vec::new();
    for (i, filename) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        let body = random_bytes(10_000 + i * 3_000, i as u64);
        form = form.part("file", Part::bytes(body.clone()).file_name(filename));
        bodies.push(body);
    }
    let resp = client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let receipt: serde_json::Value = resp.json().await.unwrap();
    let complete = receipt["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(bodies)
        .map(|(it, body)| (it["name"].as_str().unwrap().to_string(), body))
        .collect();
    let rest_data = random_bytes(2 * HALF, 99);
    let mut incomplete = Vec::new();
    for p in ["p1", "p2", "p3", "p4", "p5"] {
        incomplete.push(rest_begin(&srv, &rest_data, HALF, p).await);
    }
    srv.stop().await;
    let fx = Fixture {
        _tmp: tmp,
        config,
        data,
        complete,
        incomplete,
        rest_data,
    };
    let clean = check(&fx.config, &[]).await;
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    clean.assert_line("checked 11 items, 0 problems");
    fx
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo").arg(path).status();
    assert!(st.expect("mkfifo is installed").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_problems_are_reported_then_repaired_safely() {
    let fx = fixture().await;
    let outside = fx._tmp.path().join("outside.bin");
    std::fs::write(&outside, b"not sfx's to touch").unwrap();
    // Complete items: a missing, b corrupted (same size), c one byte longer, d a symlink,
    // e a FIFO, f healthy but world-readable.
    std::fs::remove_file(fx.files(fx.item(0))).unwrap();
    // ... and its bytes left in partial/ only: maybe the only copy, so kept.
    std::fs::write(fx.partial(fx.item(0)), &fx.complete[0].1).unwrap();
    let mut b = fx.complete[1].1.clone();
    b[5000] ^= 0xff;
    std::fs::write(fx.files(fx.item(1)), &b).unwrap();
    let mut c = fx.complete[2].1.clone();
    c.push(0);
    std::fs::write(fx.files(fx.item(2)), &c).unwrap();
    std::fs::remove_file(fx.files(fx.item(3))).unwrap();
    std::os::unix::fs::symlink(&outside, fx.files(fx.item(3))).unwrap();
    std::fs::remove_file(fx.files(fx.item(4))).unwrap();
    mkfifo(&fx.files(fx.item(4)));
    chmod(&fx.files(fx.item(5)), 0o644);
    // Incomplete uploads: p1 lost acknowledged bytes, p2 lost its partial file, p3 has bytes
    // past its offset, p4's partial is a directory, p5's completion was interrupted.
    std::fs::OpenOptions::new()
        .write(true)
        .open(fx.partial(fx.upload(0)))
        .unwrap()
        .set_len(100)
        .unwrap();
    std::fs::remove_file(fx.partial(fx.upload(1))).unwrap();
    let mut p3 = std::fs::OpenOptions::new()
        .append(true)
        .open(fx.partial(fx.upload(2)))
        .unwrap();
    std::io::Write::write_all(&mut p3, b"never acknowledged").unwrap();
    std::fs::remove_file(fx.partial(fx.upload(3))).unwrap();
    std::fs::create_dir(fx.partial(fx.upload(3))).unwrap();
    std::fs::rename(fx.partial(fx.upload(4)), fx.files(fx.upload(4))).unwrap();
    // Orphans: files and partials without metadata, temp leftovers.
    std::fs::write(fx.files("zzzzzzzz"), b"never committed").unwrap();
    std::fs::write(fx.files("stray.bin"), b"not even an item name").unwrap();
    std::fs::write(fx.partial("yyyyyyyy"), b"upload gone").unwrap();
    std::fs::write(fx.data.join("tmp/up-123.part"), b"interrupted").unwrap();
    std::fs::create_dir_all(fx.data.join("tmp/left/inner")).unwrap();
    // Modes.
    chmod(&fx.data.join("files"), 0o755);
    chmod(&fx.data.join("session.key"), 0o644);

    let expected = [
        (
            format!("files/{}", fx.item(0)),
            "complete item (10000 bytes): its file is missing",
        ),
        (
            format!("partial/{}", fx.item(0)),
            "a file left beside a complete item",
        ),
        (format!("files/{}", fx.item(1)), "SHA-256 is "),
        (
            format!("files/{}", fx.item(2)),
            "has 16001 bytes, its metadata says 16000",
        ),
        (
            format!("files/{}", fx.item(3)),
            "a symlink where the item's file belongs",
        ),
        (
            format!("files/{}", fx.item(4)),
            "a FIFO where the item's file belongs",
        ),
        (format!("files/{}", fx.item(5)), "mode 0644, should be 0600"),
        (
            format!("partial/{}", fx.upload(0)),
            "has 100 bytes, 65536 were acknowledged",
        ),
        (
            format!("partial/{}", fx.upload(1)),
            "incomplete upload (65536 bytes acknowledged) without a partial file",
        ),
        (
            format!("partial/{}", fx.upload(3)),
            "a directory where the partial file belongs",
        ),
        (
            format!("files/{}", fx.upload(4)),
            "the upload's completion was interrupted",
        ),
        ("files/zzzzzzzz".into(), "a file without live metadata"),
        ("files/stray.bin".into(), "a file without live metadata"),
        (
            "partial/yyyyyyyy".into(),
            "a file without an incomplete upload",
        ),
        (
            "tmp/up-123.part".into(),
            "a file left by an interrupted upload",
        ),
        (
            "tmp/left".into(),
            "a directory left by an interrupted upload",
        ),
        ("files".into(), "mode 0755, should be 0700"),
        ("session.key".into(), "mode 0644, should be 0600"),
    ];
    let run = check(&fx.config, &[]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    for (path, what) in &expected {
        run.assert_line(&format!("problem: {path}: {what}"));
    }
    assert_eq!(
        run.lines("problem:").len(),
        expected.len(),
        "{}",
        run.stdout
    );
    run.assert_line(&format!(
        "note: partial/{}: 18 bytes past the 65536 acknowledged",
        fx.upload(2)
    ));
    run.assert_line(&format!("checked 11 items, {} problems", expected.len()));

    // --quick: the same, except the corruption that only re-hashing sees.
    let quick = check(&fx.config, &["--quick"]).await;
    assert_eq!(quick.code, 1);
    assert_eq!(
        quick.lines("problem:").len(),
        expected.len() - 1,
        "{}",
        quick.stdout
    );
    assert!(!quick.stdout.contains("SHA-256"), "{}", quick.stdout);

    let repair = check(&fx.config, &["--repair"]).await;
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    for i in [0, 1, 2, 3, 4] {
        repair.assert_line(&format!(
            "item {} marked deleted by \"sfx check\"",
            fx.item(i)
        ));
    }
    for i in [0, 1, 3] {
        repair.assert_line(&format!(
            "item {} marked deleted by \"sfx check\"",
            fx.upload(i)
        ));
    }
    repair.assert_line(&format!(
        "repaired: partial/{}: cut to the 65536 acknowledged bytes",
        fx.upload(2)
    ));
    repair.assert_line(&format!(
        "repaired: files/{}: moved back to partial/",
        fx.upload(4)
    ));
    repair.assert_line("repaired: tmp/left: removed");
    repair.assert_line(&format!(
        "repaired: partial/{0}: moved to quarantine/{0}",
        fx.item(0)
    ));
    repair.assert_line("repaired: session.key: mode set to 0600");
    repair.assert_line(&format!(
        "checked 11 items, {n} problems, {n} repaired",
        n = expected.len()
    ));

    let again = check(&fx.config, &[]).await;
    assert_eq!(again.code, 0, "{}", again.stdout);
    again.assert_line("checked 3 items, 0 problems");

    // Nothing was followed, no acknowledged byte deleted: the symlink's target is intact, and
    // the bytes taken out of service are in quarantine/.
    assert_eq!(std::fs::read(&outside).unwrap(), b"not sfx's to touch");
    let quarantine = fx.data.join("quarantine");
    assert_eq!(
        std::fs::read(quarantine.join(fx.item(0))).unwrap(),
        fx.complete[0].1
    );
    assert_eq!(std::fs::read(quarantine.join(fx.item(1))).unwrap(), b);
    assert_eq!(std::fs::read(quarantine.join(fx.item(2))).unwrap(), c);
    assert_eq!(
        std::fs::read(quarantine.join(fx.upload(0))).unwrap().len(),
        100
    );
    let db = rusqlite::Connection::open(fx.data.join("sfx.db")).unwrap();
    let by: String = db
        .query_row(
            "SELECT deleted_by FROM items WHERE name = ?1",
            [fx.item(1)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by, "sfx check");
    drop(db);

    // The server agrees: the taken-out items are gone, the healthy one downloads, and the
    // restored upload completes with the client's retry of its last chunk.
    let srv = serve(&fx.config).await;
    for i in 0..5 {
        let resp = get_as(&srv, Some(ADMIN), &format!("/{}/+download", fx.item(i))).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "item {i}");
    }
    let f = admin_get(&srv, &format!("/{}/+download", fx.item(5))).await;
    assert_eq!(f.bytes().await.unwrap(), fx.complete[5].1);
    let (tid, name) = &fx.incomplete[4];
    let data = &fx.rest_data;
    let last = rest_chunk(&srv, data, HALF..data.len(), Some(tid), &[]).await;
    assert_eq!(last.status(), StatusCode::CREATED);
    let got = admin_get(&srv, &format!("/{name}/+download")).await;
    assert_eq!(got.bytes().await.unwrap(), &data[..]);
    srv.stop().await;
    let end = check(&fx.config, &[]).await;
    assert_eq!(end.code, 0, "{}", end.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_has_one_server_and_repair_never_runs_beside_it() {
    let fx = fixture().await;
    let srv = serve(&fx.config).await;
    let second = sfx(&["serve", "--config", fx.config.to_str().unwrap()]).await;
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("is in use by another sfx process"),
        "{}",
        second.stderr
    );
    let repair = check(&fx.config, &["--repair"]).await;
    assert_eq!(repair.code, 2, "{}", repair.stdout);
    assert!(
        repair.stderr.contains("a server is using") && repair.stderr.contains("stop it"),
        "{}",
        repair.stderr
    );
    assert!(repair.lines("repaired:").is_empty());
    // A plain check reads beside it, and says so.
    let plain = check(&fx.config, &[]).await;
    assert_eq!(plain.code, 0, "{}{}", plain.stdout, plain.stderr);
    plain.assert_line("note: a server is running on this data directory");
    // The first server was never disturbed.
    assert_eq!(healthz(&srv).await["status"], "ok");
    srv.stop().await;
    let after = check(&fx.config, &["--repair"]).await;
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
}

/// Sends `head` and the start of its body, `body`; the caller holds the connection open.
async fn hold_upload(srv: &impl Endpoint, head: &str, body: &[u8]) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_progress_are_no_problems_beside_a_server() {
    let fx = fixture().await;
    let srv = serve(&fx.config).await;
    let auth = format!("Basic {}", b64(format!("user:{CUSTOMER}").as_bytes()));
    // A form upload stalled in the middle of its file: a temp file in tmp/.
    let part_head =
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\n";
    let form_head = format!(
        "POST /+upload HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n{part_head}",
        part_head.len() + 4 * MIB + 10
    );
    let _form = hold_upload(&srv, &form_head, &random_bytes(2 * MIB, 7)).await;
    // A REST chunk stalled after 1.5 MiB of its 2 MiB: bytes past the offset in partial/.
    let (tid, name) = &fx.incomplete[2];
    let chunk = b64(&random_bytes(2 * MIB, 8));
    let rest_head = format!(
        "POST {ITEMS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransaction-ID: {tid}\r\nContent-Range: bytes {HALF}-{}/{}\r\nContent-Length: {}\r\n\r\n",
        HALF + 2 * MIB - 1,
        HALF + 2 * MIB,
        chunk.len()
    );
    let _rest = hold_upload(&srv, &rest_head, &chunk.as_bytes()[..2 * MIB]).await;
    let partial = fx.partial(name);
    wait_until(
        "bytes in tmp/ and partial/",
        Duration::from_secs(20),
        || {
            let tmp_bytes: u64 = std::fs::read_dir(fx.data.join("tmp"))
                .unwrap()
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum();
            let partial_len = std::fs::metadata(&partial).map_or(0, |m| m.len());
            tmp_bytes > 0 && partial_len > HALF as u64
        },
    )
    .await;
    let run = check(&fx.config, &[]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.assert_line("note: tmp: 1 uploads in progress");
    run.assert_line("checked 11 items, 0 problems");
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_data_directory_is_an_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let run = sfx(&["check", "--data-dir", missing.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!missing.exists(), "check created the directory");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = sfx(&["check", "--data-dir", empty.to_str().unwrap(), "--repair"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not an sfx data directory"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // files/ as a symlink to elsewhere: never followed, nothing taken out of service.
    let fx = fixture().await;
    let files = fx.data.join("files");
    let moved = fx._tmp.path().join("files-elsewhere");
    std::fs::rename(&files, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &files).unwrap();
    let run = check(&fx.config, &["--repair"]).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("files/ in"), "{}", run.stderr);
    assert!(
        run.stderr.contains("a symlink where a directory belongs"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&moved).unwrap().count(), 6);
}
