//! The zero-install client: `GET /+client.sh` fetched from the real server over 127.0.0.1, run
//! with `dash` and with `bash`, uploading over tus. Checks the receipt against the server's own
//! items (SHA-256, filename, reference, comment as the operator sees them), an interruption
//! (the script's process group killed mid-upload behind a slow proxy) and its resume, refusals
//! with the server's reason, and a file changed between the two runs.
//! Needs `curl`, `sha256sum`, `dash` and `bash` (Debian's own).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const SHELLS: [&str; 2] = ["dash", "bash"];

/// A server, a fetched script and a private HOME/cache/TMPDIR for it.
struct ScriptTest {
    srv: TestServer,
    tmp: tempfile::TempDir,
    script: PathBuf,
}

struct ScriptRun {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl ScriptRun {
    /// `key: value` of the receipt's indented lines, one map per uploaded file.
    fn receipts(&self) -> Vec<std::collections::HashMap<String, String>> {
        let mut out = Vec::new();
        for line in self.stdout.lines() {
            if line.starts_with("uploaded ") {
                out.push(std::collections::HashMap::new());
            } else if let (Some(last), Some((k, v))) = (out.last_mut(), line.split_once(':')) {
                last.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        out
    }
}

impl ScriptTest {
    async fn start(config: &str) -> ScriptTest {
        let srv = TestServer::start_with(config).await;
        let tmp = tempfile::tempdir().unwrap();
        for d in ["home", "cache", "tmp", "files"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let script = tmp.path().join("client.sh");
        let out = curl(&[
            "-fsS",
            "-o",
            script.to_str().unwrap(),
            &srv.url("/+client.sh"),
        ])
        .await;
        assert!(out.status.success(), "GET /+client.sh: {}", out.stderr);
        ScriptTest { srv, tmp, script }
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.tmp.path().join(sub)
    }

    fn file(&self, name: &str, size: usize, seed: u64) -> PathBuf {
        random_file(&self.dir("files"), name, size, seed)
    }

    /// The state files the script keeps between runs.
    fn state_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir("cache").join("sfx-client"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// `SHELL client.sh ARGS` in its own process group, with `env` added.
    fn command(&self, shell: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(shell);
        cmd.arg(&self.script).args(args);
        self.prepare(&mut cmd, env);
        cmd
    }

    /// The script's surroundings: in `files/`, a private HOME, cache and TMPDIR, no proxy.
    fn prepare(&self, cmd: &mut tokio::process::Command, env: &[(&str, &str)]) {
        cmd.current_dir(self.dir("files"))
            .env("HOME", self.dir("home"))
            .env("XDG_CACHE_HOME", self.dir("cache"))
            .env("TMPDIR", self.dir("tmp"))
            .env_remove("SFX_URL")
            .env_remove("SFX_PASSWORD")
            .env_remove("SFX_CURL_OPTS")
            .env("NO_PROXY", "*")
            .env("no_proxy", "*")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
    }

    async fn run(&self, shell: &str, args: &[&str], env: &[(&str, &str)]) -> ScriptRun {
        let child = self.command(shell, args, env).spawn().expect("shell runs");
        finish(child, &format!("{shell} client.sh {args:?}")).await
    }
}

async fn finish(child: tokio::process::Child, what: &str) -> ScriptRun {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the script finished in time")
        .expect("the script ran");
    let run = ScriptRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "--- {what}: {}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    run
}

/// Kills the whole process group of `child` (the shell, its curl and dd).
fn kill_group(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("still running");
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} -{pid}");
}

/// The item named in a receipt's `item:` URL.
fn item_of(receipt: &std::collections::HashMap<String, String>) -> String {
    let url = receipt.get("item").expect("an item URL in the receipt");
    url.rsplit('/').next().unwrap().to_string()
}

/// Checks a receipt against the file and the server's metadata of its item; returns the item.
async fn check_receipt(
    srv: &TestServer,
    receipt: &std::collections::HashMap<String, String>,
    path: &Path,
) -> String {
    let sha = external_sha256(path);
    let size = std::fs::metadata(path).unwrap().len();
    assert_eq!(receipt["sha256"], sha, "{receipt:?}");
    assert_eq!(receipt["size"], format!("{size} bytes"));
    let filename = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(receipt["filename"], filename);
    let item = item_of(receipt);
    assert!(
        receipt["item"].starts_with(&srv.url("/")),
        "item URL on this server: {receipt:?}"
    );
    let meta = file_meta(srv, &item).await;
    assert_eq!(meta["hash"], sha.as_str(), "the server's SHA-256: {meta}");
    assert_eq!(meta["filename"], filename, "{meta}");
    assert_eq!(meta["size"], size, "{meta}");
    // Independently of the metadata: the bytes on disk.
    assert_eq!(srv.stored_sha256_external(&item).await, sha);
    item
}

/// The upload offset the server reports for the upload in the (only) state file.
async fn server_offset(t: &ScriptTest, secret: &str) -> Option<u64> {
    let state = t
        .state_files()
        .into_iter()
        .find(|p| p.extension().is_none_or(|e| e.to_str() != Some("tmp")))?;
    let text = std::fs::read_to_string(state).ok()?;
    let url = text.lines().nth(1)?.to_string();
    let resp = client()
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .basic_auth("user", Some(secret))
        .send()
        .await
        .ok()?;
    response_header(&resp, "upload-offset").parse().ok()
}

/// The server's offset once it has not changed for a second. (The HEADs go through the proxy
/// too, so its count cannot tell.)
async fn settled_offset(t: &ScriptTest, proxy: &CutProxy, secret: &str) -> u64 {
    proxy.set_rate(0);
    let mut last = u64::MAX;
    let mut same = 0;
    for _ in 0..100 {
        let now = server_offset(t, secret)
            .await
            .expect("the upload is still there");
        same = if now == last { same + 1 } else { 0 };
        if same == 4 {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the upload never settled: {last}");
}

#[tokio::test]
async fn served_with_this_servers_url_and_no_auth() {
    let t = ScriptTest::start("upload_chunk_size = \"128KiB\"").await;
    let resp = client().get(t.srv.url("/+client.sh")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        response_header(&resp, "content-type"),
        "text/x-shellscript; charset=utf-8"
    );
    assert_eq!(response_header(&resp, "cache-control"), "no-store");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("#!/bin/sh\n"));
    let base = t.srv.url("");
    assert!(
        body.contains(&format!("SFX_DEFAULT_URL='{base}'")),
        "the server's URL is filled in"
    );
    assert!(body.contains("SFX_DEFAULT_CHUNK='131072'"));
    assert!(!body.contains("@SFX_"), "no placeholder left");
    let head = client()
        .head(t.srv.url("/+client.sh"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
    for shell in SHELLS {
        // Parses, and -h prints usage naming this server.
        let st = std::process::Command::new(shell)
            .arg("-n")
            .arg(&t.script)
            .status()
            .unwrap();
        assert!(st.success(), "{shell} -n");
        let run = t.run(shell, &["-h"], &[]).await;
        assert!(run.status.success());
        assert!(run.stdout.contains(&base), "{}", run.stdout);
        let run = t.run(shell, &[], &[]).await;
        assert_eq!(run.status.code(), Some(2), "no file: usage error");
    }
    // shellcheck, when installed (CI does not need it; a developer runs it).
    if let Ok(out) = std::process::Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&t.script)
        .output()
    {
        assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    t.srv.stop().await;
}

#[tokio::test]
async fn uploads_files_in_chunks_with_dash_and_bash() {
    let t = ScriptTest::start("").await;
    for (i, shell) in SHELLS.into_iter().enumerate() {
        let seed = i as u64 * 10;
        // Five chunks and a bit, and an odd size that is no multiple of dd's block.
        let big = t.file(
            &format!("bundle-{shell}.tar.gz"),
            5 * 256 * 1024 + 12_345,
            seed,
        );
        let small = t.file(&format!("my notes ({shell}) é.txt"), 1000, seed + 1);
        let run = t
            .run(
                shell,
                &[
                    "-p",
                    CUSTOMER,
                    "-r",
                    "TICKET-42 'x' $HOME",
                    "-c",
                    "from the \"client\", café",
                    "-s",
                    "256K",
                    big.to_str().unwrap(),
                    small.file_name().unwrap().to_str().unwrap(),
                ],
                &[],
            )
            .await;
        assert!(run.status.success(), "{shell}: {}", run.stderr);
        let receipts = run.receipts();
        assert_eq!(receipts.len(), 2, "{}", run.stdout);
        for (receipt, path) in receipts.iter().zip([&big, &small]) {
            let item = check_receipt(&t.srv, receipt, path).await;
            let meta = file_meta(&t.srv, &item).await;
            assert_eq!(meta["reference"], "TICKET-42 'x' $HOME", "{meta}");
            assert_eq!(meta["comment"], "from the \"client\", café", "{meta}");
        }
        // Chunked: the progress shows each of the six PATCHes.
        assert!(run.stderr.matches("% (").count() >= 6, "{}", run.stderr);
        assert!(t.state_files().is_empty(), "state removed when done");
    }
    // Nothing left in TMPDIR (the credentials file and the answers).
    assert!(
        std::fs::read_dir(t.dir("tmp")).unwrap().next().is_none(),
        "temporary files removed"
    );
    t.srv.stop().await;
}

#[tokio::test]
async fn piped_into_sh_as_the_docs_say() {
    let t = ScriptTest::start("").await;
    let file = t.file("sysreport.tar.gz", 300_000, 7);
    let cmd = format!(
        "curl -fsS '{}' | sh -s -- -p {CUSTOMER} sysreport.tar.gz",
        t.srv.url("/+client.sh")
    );
    let mut sh = tokio::process::Command::new("sh");
    sh.arg("-c").arg(&cmd);
    t.prepare(&mut sh, &[]);
    let run = finish(sh.spawn().unwrap(), &cmd).await;
    assert!(run.status.success(), "{}", run.stderr);
    let receipts = run.receipts();
    assert_eq!(receipts.len(), 1, "{}", run.stdout);
    check_receipt(&t.srv, &receipts[0], &file).await;
    t.srv.stop().await;
}

#[tokio::test]
async fn empty_file() {
    let t = ScriptTest::start("").await;
    let file = t.file("empty.log", 0, 1);
    let run = t.run("dash", &["empty.log"], &[]).await;
    assert!(run.status.success(), "{}", run.stderr);
    check_receipt(&t.srv, &run.receipts()[0], &file).await;
    t.srv.stop().await;
}

/// Killed mid-upload (SIGKILL to the process group: the shell, curl and dd), then run again:
/// it continues from what the server has, re-sending at most the chunk that was cut.
#[tokio::test]
async fn interrupted_then_resumed() {
    let t = ScriptTest::start("").await;
    let proxy = CutProxy::start(t.srv.addr).await;
    let size = 3 * MIB + 777;
    let chunk = 256 * 1024;
    let file = t.file("big.bin", size, 99);
    let via_proxy = proxy.url("");
    let env = [("SFX_URL", via_proxy.as_str()), ("SFX_PASSWORD", ADMIN)];
    let args = ["-s", "256K", "big.bin"];

    for shell in SHELLS {
        proxy.reset_count();
        proxy.set_rate(1024 * 1024);
        let child = t.command(shell, &args, &env).spawn().unwrap();
        // Until the server holds more than a MiB (the state file names the upload).
        let mut reached = 0;
        for _ in 0..400 {
            if let Some(o) = server_offset(&t, ADMIN).await {
                reached = o;
                if o > MIB as u64 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            reached > MIB as u64,
            "{shell}: the upload got going ({reached})"
        );
        // The secret is nowhere on a command line (SFX_PASSWORD, then a curl config file).
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                assert!(
                    !String::from_utf8_lossy(&cmdline).contains(ADMIN),
                    "the password is on a command line: {:?}",
                    String::from_utf8_lossy(&cmdline)
                );
            }
        }
        // Its credentials file is private.
        let private = std::fs::read_dir(t.dir("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.path().join("curl.conf"))
            .find(|p| p.exists())
            .expect("the curl config exists while running");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        kill_group(&child, "KILL");
        let killed = finish(child, &format!("{shell}: killed")).await;
        assert!(!killed.status.success());
        // What the killed client's kernel had sent still drains through the proxy and may
        // complete the chunk on the server: wait until nothing moves.
        let kept = settled_offset(&t, &proxy, ADMIN).await;
        // Less the settling HEADs' few hundred bytes each: within the slack below.
        let first = proxy.forwarded_up();
        assert!(first < size as u64, "{shell}: killed before the end");
        assert_eq!(
            t.state_files().len(),
            1,
            "{shell}: state kept for the resume"
        );

        proxy.reset_count();
        proxy.set_rate(0);
        let run = t.run(shell, &args, &env).await;
        assert!(run.status.success(), "{shell}: {}", run.stderr);
        let resumed_at: u64 = run
            .stderr
            .split("resuming the interrupted upload at ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{shell}: it said it resumed: {}", run.stderr));
        assert_eq!(resumed_at, kept, "{shell}: resumed where the server was");
        let second = proxy.forwarded_up();
        // Headers are small; the cut chunk is sent again at most once.
        let slack = (chunk + 64 * 1024) as u64;
        assert!(
            second <= size as u64 - resumed_at + slack,
            "{shell}: the second run sent {second} bytes for {} left",
            size as u64 - resumed_at
        );
        assert!(
            first + second <= size as u64 + slack,
            "{shell}: bytes did not double: {first} + {second} for {size}"
        );
        let receipts = run.receipts();
        assert_eq!(receipts.len(), 1);
        let item = check_receipt(&t.srv, &receipts[0], &file).await;
        assert!(
            t.state_files().is_empty(),
            "{shell}: state removed when done"
        );
        // Exactly one item for the file.
        let sha = external_sha256(&file);
        let same: Vec<_> = listing(&t.srv)
            .await
            .into_iter()
            .filter(|(_, v)| v["file-meta"]["hash"] == sha.as_str())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(same, vec![item.clone()], "{shell}: one item");
        // The next shell uploads it again from the start: a new item.
        let _ = reqwest::Client::new()
            .post(t.srv.url(&format!("{ITEMS}/{item}/delete")))
            .basic_auth("user", Some(ADMIN))
            .send()
            .await;
    }
    t.srv.stop().await;
}

/// A file changed between the interrupted run and the next is uploaded anew, not appended to
/// the old upload (which is terminated). SIGTERM this time: the trap cleans TMPDIR.
#[tokio::test]
async fn changed_file_is_not_mis_resumed() {
    let t = ScriptTest::start("").await;
    let proxy = CutProxy::start(t.srv.addr).await;
    let file = t.file("report.bin", 2 * MIB, 5);
    let via_proxy = proxy.url("");
    let env = [("SFX_URL", via_proxy.as_str())];
    let args = ["-s", "128K", "report.bin"];
    proxy.set_rate(512 * 1024);
    let child = t.command("dash", &args, &env).spawn().unwrap();
    let mut reached = 0;
    for _ in 0..400 {
        reached = server_offset(&t, CUSTOMER).await.unwrap_or(0);
        if reached > 256 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reached > 256 * 1024, "the upload got going");
    let old_url = std::fs::read_to_string(&t.state_files()[0])
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    kill_group(&child, "TERM");
    let killed = finish(child, "dash: terminated").await;
    assert!(!killed.status.success());
    assert!(
        std::fs::read_dir(t.dir("tmp")).unwrap().next().is_none(),
        "the TERM trap removed the temporary files"
    );

    // Same size, other bytes, a later mtime.
    std::fs::write(&file, random_bytes(2 * MIB, 6)).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    proxy.set_rate(0);
    let run = t.run("dash", &args, &env).await;
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("changed since the interrupted upload"));
    assert!(!run.stderr.contains("resuming"));
    let receipts = run.receipts();
    check_receipt(&t.srv, &receipts[0], &file).await;
    // The old upload was terminated.
    let old = client()
        .head(&old_url)
        .header("Tus-Resumable", "1.0.0")
        .basic_auth("user", Some(CUSTOMER))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(old.status().as_u16(), 404 | 410),
        "old upload: {}",
        old.status()
    );
    t.srv.stop().await;
}

#[tokio::test]
async fn wrong_password_fails_with_the_servers_reason() {
    let t = ScriptTest::start("").await;
    let before = t.srv.snapshot();
    t.file("a.txt", 100, 1);
    for shell in SHELLS {
        let run = t
            .run(shell, &["-p", "not-the-password", "a.txt"], &[])
            .await;
        assert!(!run.status.success(), "{shell}");
        assert!(run.stdout.is_empty(), "no receipt: {}", run.stdout);
        assert!(
            run.stderr.contains("HTTP 403") || run.stderr.contains("HTTP 401"),
            "{shell}: {}",
            run.stderr
        );
        assert!(t.state_files().is_empty());
    }
    t.srv.assert_nothing_stored(&before, "wrong password").await;
    t.srv.stop().await;
}

#[tokio::test]
async fn too_large_fails_with_the_servers_reason() {
    let t = ScriptTest::start("max_file_size = \"1MiB\"").await;
    let before = t.srv.snapshot();
    t.file("huge.bin", 2 * MIB, 1);
    let run = t.run("dash", &["huge.bin"], &[]).await;
    assert!(!run.status.success());
    assert!(run.stderr.contains("HTTP 413"), "{}", run.stderr);
    // The server's reason, then the script's advice.
    assert!(
        run.stderr.contains("limit of 1048576 bytes"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("larger than the server accepts"));
    t.srv.assert_nothing_stored(&before, "too large").await;
    t.srv.stop().await;
}

#[tokio::test]
async fn missing_file_and_bad_size() {
    let t = ScriptTest::start("").await;
    let run = t.run("dash", &["no-such-file"], &[]).await;
    assert!(!run.status.success());
    assert!(run.stderr.contains("not a readable file"), "{}", run.stderr);
    let run = t.run("dash", &["-s", "lots", "x"], &[]).await;
    assert!(!run.status.success());
    assert!(run.stderr.contains("-s lots"), "{}", run.stderr);
    t.srv.stop().await;
}
