//! `sfx import-bepasty`, against a storage directory written by the real bepasty 1.2.2 from PyPI:
//! `tests/clients/bepasty_storage.py` uploads through bepasty's own Flask app (form, pasted text,
//! chunked REST, a lifetime, a lock by an admin, an upload left incomplete), the test damages a
//! few items itself, then runs the real `sfx` binary and checks its report and exit status, and
//! what a server on the imported data directory serves under the old names. A second run
//! changes nothing.
//!
//! bepasty comes from the venv `.ci/python-deps.sh` makes beside the clients' one
//! (`$SFX_TEST_VENV-bepasty`). Without it these tests print "skipped: ..." and pass, unless
//! `SFX_REQUIRE_BEPASTY=1` (set by `.ci/run`). Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The bepasty venv's python, if bepasty is there; otherwise skip (or fail when required).
fn bepasty_python() -> Option<PathBuf> {
    let mut venv = venv_dir().into_os_string();
    venv.push("-bepasty");
    let python = PathBuf::from(venv).join("bin/python");
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import bepasty.app"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(
            "SFX_REQUIRE_BEPASTY",
            &format!(
                "no bepasty at {} (run .ci/python-deps.sh)",
                python.display()
            ),
        );
        return None;
    }
    Some(python)
}

/// One item bepasty stored: its name, the bytes sent and the metadata bepasty reads back.
struct Sent {
    name: String,
    content: Vec<u8>,
    meta: Value,
}

/// Fills `storage` through bepasty's own upload code; returns the items by role.
async fn fill_storage(python: &Path, cwd: &Path, storage: &Path) -> BTreeMap<String, Sent> {
    let run = run_python(
        python,
        cwd,
        "bepasty_storage.py",
        &[storage.to_str().unwrap()],
        None,
        &[],
    )
    .await;
    assert!(run.status.success(), "bepasty_storage.py: {}", run.stderr);
    let out: BTreeMap<String, Value> = serde_json::from_str(&run.stdout).expect("JSON manifest");
    out.into_iter()
        .map(|(role, v)| {
            let name = v["name"].as_str().unwrap().to_string();
            let sent = Sent {
                content: std::fs::read(cwd.join("sent").join(&name)).unwrap(),
                name,
                meta: v["meta"].clone(),
            };
            (role, sent)
        })
        .collect()
}

struct Import {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn import(args: &[&str]) -> Import {
    let mut all = vec!["import-bepasty"];
    all.extend_from_slice(args);
    let out = sfx_command(&all, &[], None)
        .output()
        .await
        .expect("sfx runs");
    let run = Import {
        code: out.status.code().expect("an exit status"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "--- sfx {all:?}: {}\n{}{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// The line of `report` about item `name`.
fn line_of<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split(": ").nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no line about {name} in\n{report}"))
}

/// Name, size and mtime of every file sfx stored, and the store's rows as the REST listing
/// shows them: what a second import must leave as it is.
async fn snapshot(data: &Path, srv: &Binary) -> (Vec<(String, u64, std::time::SystemTime)>, Value) {
    let mut files: Vec<_> = std::fs::read_dir(data.join("files"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.modified().unwrap(),
            )
        })
        .collect();
    files.sort();
    (files, Value::Object(listing(srv).await))
}

#[tokio::test]
async fn bepasty_storage_imports_and_old_links_keep_working() {
    let Some(python) = bepasty_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    let sent = fill_storage(&python, tmp.path(), &storage).await;
    let path = |role: &str, ext: &str| storage.join(format!("{}.{ext}", sent[role].name));

    // Damage the spare items as disks and crashes do.
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(path("truncated", "data"))
        .unwrap();
    cut.set_len(800).unwrap();
    std::fs::write(path("garbage", "meta"), b"\x80\x02garbage, not a pickle").unwrap();
    let mut flipped = std::fs::read(path("flipped", "data")).unwrap();
    flipped[0] ^= 0x20;
    std::fs::write(path("flipped", "data"), &flipped).unwrap();
    // A symlink out of the directory, and a pre-0.4 UUID name sfx cannot serve.
    let outside = tmp.path().join("outside-secret");
    std::fs::write(&outside, b"not bepasty's to give").unwrap();
    std::fs::copy(path("form", "meta"), storage.join("AAAAAAAA.meta")).unwrap();
    std::os::unix::fs::symlink(&outside, storage.join("AAAAAAAA.data")).unwrap();
    let uuid = "0a1b2c3d-1234-abcd-9876-0123456789ab";
    std::fs::copy(path("text", "meta"), storage.join(format!("{uuid}.meta"))).unwrap();
    std::fs::copy(path("text", "data"), storage.join(format!("{uuid}.data"))).unwrap();

    let data = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        &format!("{}{}", base_toml(&data), secrets_toml(3)),
    );
    let (cfg, dir) = (config.to_str().unwrap(), storage.to_str().unwrap());

    // A dry run says the same and creates nothing.
    let dry_dir = tmp.path().join("dry");
    let dry = import(&[
        dir,
        "--config",
        cfg,
        "--data-dir",
        dry_dir.to_str().unwrap(),
        "--dry-run",
    ])
    .await;
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    // Without copying, the bytes are not hashed: the flipped one would be imported.
    assert!(
        dry.stdout
            .contains("would import 5, already present 0, skipped 5")
    );
    assert!(!dry_dir.exists(), "a dry run creates nothing");

    let first = import(&[dir, "--config", cfg]).await;
    assert_eq!(first.code, 1, "skips make the status 1: {}", first.stderr);
    let report = &first.stdout;
    assert!(
        report.contains("imported 4, already present 0, skipped 6"),
        "{report}"
    );
    for role in ["form", "text", "rest", "locked"] {
        assert!(line_of(report, &sent[role].name).starts_with("imported: "));
    }
    let skipped = |role: &str, why: &str| {
        let line = line_of(report, &sent[role].name);
        assert!(
            line.starts_with("skipped: ") && line.contains(why),
            "{line}"
        );
    };
    skipped("incomplete", "incomplete upload");
    skipped("truncated", "has 800 bytes, its metadata says 1600");
    skipped("garbage", "corrupt metadata");
    skipped("flipped", "does not match its recorded SHA-256");
    assert!(line_of(report, "AAAAAAAA").contains("symlink (never followed)"));
    assert!(line_of(report, uuid).contains("not a name sfx serves"));

    let log = tmp.path().join("serve.log");
    let srv = Binary::start(&["serve", "--config", cfg], &[], Some(&log)).await;
    // Never beside a server.
    let busy = import(&[dir, "--config", cfg]).await;
    assert_eq!(busy.code, 2);
    assert!(busy.stderr.contains("a server is using"), "{}", busy.stderr);

    for role in ["form", "text", "rest", "locked"] {
        let Sent {
            name,
            content,
            meta,
        } = &sent[role];
        let resp = get_as(&srv, Some(ADMIN), &format!("/{name}/+download")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{role}");
        let disposition = response_header(&resp, "content-disposition");
        let filename = meta["filename"].as_str().unwrap();
        assert!(disposition.contains(filename), "{disposition}");
        let body = resp.bytes().await.unwrap();
        assert!(body[..] == content[..], "{role}: the same bytes");
        let sha256 = hex::encode(sha2::Sha256::digest(&body));
        assert_eq!(meta["hash"], sha256.as_str(), "{role}: bepasty's own hash");
        let fm = file_meta(&srv, name).await;
        assert_eq!(fm["hash"], sha256.as_str(), "{role}");
        for key in [
            "filename",
            "type",
            "size",
            "timestamp-upload",
            "timestamp-max-life",
            "locked",
        ] {
            assert_eq!(fm[key], meta[key], "{role}: {key}");
        }
        assert_eq!(fm["uploader"], "bepasty-import");
    }
    assert_eq!(sent["form"].meta["timestamp-max-life"], -1, "kept forever");
    assert!(sent["text"].meta["timestamp-max-life"].as_i64().unwrap() > 0);
    // Locked is for admins only; an unlocked item reads as before.
    let locked = &sent["locked"].name;
    let as_reader = get_as(&srv, Some(READER), &format!("/{locked}/+download")).await;
    assert_eq!(as_reader.status(), StatusCode::FORBIDDEN);
    let open = get_as(
        &srv,
        Some(READER),
        &format!("/{}/+download", sent["rest"].name),
    )
    .await;
    assert_eq!(open.status(), StatusCode::OK);
    for role in ["incomplete", "truncated", "garbage", "flipped"] {
        let resp = get_as(&srv, Some(ADMIN), &format!("/{}", sent[role].name)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{role} was skipped");
    }
    let audit = admin_text(&srv, "/+audit?kind=import").await;
    assert!(
        audit.contains(&sent["rest"].name),
        "an import record per item"
    );
    let before = snapshot(&data, &srv).await;
    srv.stop().await;

    // Idempotent: the same skips, everything else already there, nothing changed.
    let second = import(&[dir, "--config", cfg]).await;
    assert_eq!(second.code, 1);
    assert!(
        second
            .stdout
            .contains("imported 0, already present 4, skipped 6"),
        "{}",
        second.stdout
    );
    // A name sfx has with other content is never overwritten.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let taken = &sent["form"].name;
    std::fs::copy(path("text", "meta"), other.join(format!("{taken}.meta"))).unwrap();
    std::fs::copy(path("text", "data"), other.join(format!("{taken}.data"))).unwrap();
    let clash = import(&[other.to_str().unwrap(), "--config", cfg]).await;
    assert_eq!(clash.code, 1);
    assert!(line_of(&clash.stdout, taken).contains("taken in sfx by other content"));

    let srv = Binary::start(&["serve", "--config", cfg], &[], Some(&log)).await;
    assert!(
        before == snapshot(&data, &srv).await,
        "the second run changed nothing"
    );
    srv.stop().await;
    let check = sfx_command(&["check", "--config", cfg], &[], None)
        .output()
        .await
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// An import into an empty bepasty directory is all fine (status 0); a missing one is an
/// error (status 2).
#[tokio::test]
async fn exit_status_zero_when_nothing_is_skipped_and_two_on_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let empty = import(&[storage.to_str().unwrap(), "--data-dir", data]).await;
    assert_eq!(empty.code, 0);
    assert!(
        empty
            .stdout
            .contains("imported 0, already present 0, skipped 0")
    );
    let missing = tmp.path().join("no-such-dir");
    let gone = import(&[missing.to_str().unwrap(), "--data-dir", data]).await;
    assert_eq!(gone.code, 2);
    assert!(
        gone.stderr
            .contains("cannot read the bepasty storage directory")
    );
}
