//! The real REST clients against the real server: bepasty-client-cli 0.3.0 from PyPI (run
//! unchanged through `tests/clients/bcc_run.py`, which only stringifies its int Content-Length)
//! and a python-requests replay of the OpenSVC agent's upload (`tests/clients/opensvc_replay.py`).
//! Case ids (B1, B2, ...) are those of shared/reference/clients.md section 7.
//!
//! Needs a venv with bepasty-client-cli 0.3.0, python-magic 0.4.6 and requests at
//! `$SFX_TEST_VENV` (default /tmp/sfx-test-venv), made by `.ci/python-deps.sh`. Without it these
//! tests print "skipped: ..." and pass, unless `SFX_REQUIRE_PYTHON_CLIENTS=1`, which makes them
//! fail instead. Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a test of a real client needs: the venv's python, a server, a working directory.
struct ClientTest {
    python: PathBuf,
    srv: TestServer,
    tmp: tempfile::TempDir,
}

impl ClientTest {
    /// A server with `config` (see `TestServer::start_with`); `None` without the venv.
    async fn start(config: &str) -> Option<ClientTest> {
        let python = venv_python()?;
        Some(ClientTest {
            python,
            srv: TestServer::start_with(config).await,
            tmp: tempfile::tempdir().unwrap(),
        })
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Runs `bepasty-cli ARGS` in the working directory.
    async fn cli(&self, args: &[&str], stdin: Option<&Path>) -> Run {
        bepasty_cli(&self.python, self.dir(), args, stdin, &[]).await
    }

    /// Runs the OpenSVC agent's replay in the working directory.
    async fn opensvc(&self, args: &[&str]) -> Run {
        run_python(
            &self.python,
            self.dir(),
            "opensvc_replay.py",
            args,
            None,
            &[],
        )
        .await
    }
}

fn h<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// The two URL lines bepasty-cli prints after a 201; returns the item name.
#[track_caller]
fn printed_item(run: &Run, base: &str) -> String {
    assert!(run.status.success(), "exit status {:?}", run.status);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("File was successfully uploaded and can be found here:"))
        .unwrap_or_else(|| panic!("no success message in:\n{}", run.stdout));
    let api = lines.get(at + 1).expect("REST URL line");
    let page = lines.get(at + 2).expect("page URL line");
    let rest = api
        .strip_prefix(&format!("{base}{ITEMS}/"))
        .unwrap_or_else(|| panic!("{api} is not {base}{ITEMS}/<name>"));
    assert!(!rest.is_empty() && !rest.contains('/'), "{api}");
    assert_eq!(*page, format!("{base}/{rest}"));
    rest.to_string()
}

/// Downloads with the admin secret and compares with the source file.
async fn assert_same(srv: &TestServer, name: &str, source: &Path) -> Value {
    let resp = admin_get(srv, &format!("{ITEMS}/{name}/download")).await;
    let body = resp.bytes().await.unwrap();
    assert!(body == std::fs::read(source).unwrap(), "bytes differ");
    let fm = file_meta(srv, name).await;
    assert_eq!(fm["hash"], external_sha256(source));
    assert_eq!(fm["complete"], true);
    fm
}

// ---------------------------------------------------------------------------------------------
// bepasty-cli 0.3.0

/// The status of each request in a run's trace.
fn statuses(run: &Run) -> Vec<u64> {
    run.trace
        .iter()
        .map(|t| t["status"].as_u64().unwrap())
        .collect()
}

/// B1: a 3000-byte file in one request; the two URL lines; the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_small_file() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    let file = random_file(t.dir(), "small.bin", 3000, 1);
    let base = t.srv.url("");
    let run = t
        .cli(&["-u", &base, "-p", CUSTOMER, "small.bin"], None)
        .await;
    let name = printed_item(&run, &base);
    assert!(run.stdout.contains("guessed filetype: "), "libmagic guess");
    assert_eq!(run.trace.len(), 1);
    let req = &run.trace[0];
    assert_eq!(req["url"], format!("{base}{ITEMS}"));
    let sent = |name| h(&req["headers"], name);
    assert_eq!(sent("content-range"), Some("bytes 0-2999/3000"));
    assert_eq!(sent("content-length"), Some("4000"));
    assert_eq!(sent("content-filename"), Some("small.bin"));
    assert_eq!(sent("authorization"), Some("Basic dXNlcjpzdXBwb3J0"));
    assert!(sent("transaction-id").is_none());
    assert_eq!(req["status"], 201);
    assert!(h(&req["response_headers"], "transaction-id").is_some());
    let fm = assert_same(&t.srv, &name, &file).await;
    assert_eq!(fm["filename"], "small.bin");
    assert_eq!(fm["size"], 3000);
    // The second printed line is the item's web page.
    let page = get_as(&t.srv, Some(READER), &format!("/{name}")).await;
    assert_eq!(page.status(), 200);
    t.srv.stop().await;
}

/// B2/B8: a 3.5 MiB file in four 1 MiB chunks: 200, 200, 200, 201, one Transaction-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_chunked_file() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    let file = random_file(t.dir(), "big.bin", 3 * MIB + MIB / 2, 2);
    let base = t.srv.url("");
    let path = file.to_str().unwrap();
    let run = t.cli(&["-u", &base, "-p", CUSTOMER, path], None).await;
    let name = printed_item(&run, &base);
    let ranges: Vec<&str> = run
        .trace
        .iter()
        .map(|t| h(&t["headers"], "content-range").unwrap())
        .collect();
    assert_eq!(
        ranges,
        vec![
            "bytes 0-1048575/3670016",
            "bytes 1048576-2097151/3670016",
            "bytes 2097152-3145727/3670016",
            "bytes 3145728-3670015/3670016",
        ]
    );
    assert_eq!(statuses(&run), vec![200, 200, 200, 201]);
    for t in &run.trace[..3] {
        assert_eq!(t["body_len"], 1_398_104);
    }
    let tid = h(&run.trace[0]["response_headers"], "transaction-id")
        .expect("Transaction-ID on the 200")
        .to_string();
    assert!(h(&run.trace[0]["headers"], "transaction-id").is_none());
    for t in &run.trace[1..] {
        assert_eq!(h(&t["headers"], "transaction-id"), Some(tid.as_str()));
        assert_eq!(
            h(&t["response_headers"], "transaction-id"),
            Some(tid.as_str())
        );
    }
    assert_eq!(
        h(&run.trace[3]["response_headers"], "content-location"),
        Some(format!("{ITEMS}/{name}").as_str())
    );
    let fm = assert_same(&t.srv, &name, &file).await;
    // 0.3.0 sends the path as typed; the stored name is its last component.
    assert_eq!(fm["filename"], "big.bin");
    t.srv.stop().await;
}

/// B3: 3.5 MiB from stdin with `-n piped.bin`: totals grow until the last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_stdin_growing_totals() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    let file = random_file(t.dir(), "source.bin", 3 * MIB + MIB / 2, 3);
    let base = t.srv.url("");
    let args = ["-u", &base, "-p", CUSTOMER, "-n", "piped.bin"];
    let run = t.cli(&args, Some(&file)).await;
    let name = printed_item(&run, &base);
    let totals: Vec<&str> = run
        .trace
        .iter()
        .map(|t| {
            h(&t["headers"], "content-range")
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(totals, vec!["1048577", "2097153", "3145729", "3670016"]);
    assert_eq!(statuses(&run), vec![200, 200, 200, 201]);
    for t in &run.trace {
        assert_eq!(h(&t["headers"], "content-filename"), Some("piped.bin"));
    }
    let fm = assert_same(&t.srv, &name, &file).await;
    assert_eq!(fm["filename"], "piped.bin");
    assert_eq!(fm["size"], 3 * MIB as u64 + MIB as u64 / 2);
    t.srv.stop().await;
}

/// B9: `-u http://host:port/` makes the client post to `//apis/rest/items`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_url_with_trailing_slash() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    let file = random_file(t.dir(), "slash.bin", MIB + 5000, 4);
    let base = t.srv.url("/");
    let run = t
        .cli(&["-u", &base, "-p", CUSTOMER, "slash.bin"], None)
        .await;
    for req in &run.trace {
        assert_eq!(req["url"], t.srv.url("//apis/rest/items"));
    }
    assert_eq!(run.trace.len(), 2);
    let name = printed_item(&run, &base);
    assert_same(&t.srv, &name, &file).await;
    t.srv.stop().await;
}

/// B11: `-l` with a list secret prints every item, incomplete ones as INCOMPLETE; without list
/// permission the client cannot parse the 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_list() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    random_file(t.dir(), "small.bin", 3000, 5);
    let base = t.srv.url("");
    let up = t
        .cli(&["-u", &base, "-p", CUSTOMER, "small.bin"], None)
        .await;
    printed_item(&up, &base);
    // An upload left half-way.
    let resp = client()
        .post(t.srv.url(ITEMS))
        .basic_auth("user", Some(CUSTOMER))
        .header("Content-Range", "bytes 0-2/10")
        .header("Content-Filename", "partial.bin")
        .body("YWJj")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let run = t.cli(&["-u", &base, "-p", LISTER, "-l"], None).await;
    assert!(run.status.success());
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let date = |l: &str, prefix: &str| {
        let d = l
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{l:?} does not start with {prefix:?}"));
        assert!(
            d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-',
            "a YYYY-MM-DD date: {l}"
        );
    };
    date(lines[0], "partial.bin: INCOMPLETE at ");
    date(lines[1], "small.bin: 3000B at ");

    let run = t.cli(&["-u", &base, "-p", CUSTOMER, "-l"], None).await;
    assert!(
        run.stdout.contains("Original Response: <Response [403]>"),
        "{}",
        run.stdout
    );
    t.srv.stop().await;
}

/// B7: no `-p` sends `user:` (anonymous); with no anonymous create the client prints the 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bepasty_cli_without_password_is_403() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    random_file(t.dir(), "small.bin", 3000, 6);
    let run = t.cli(&["-u", &t.srv.url(""), "small.bin"], None).await;
    assert!(run.status.success(), "the client exits 0 anyway");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("An error occurred: "))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stdout));
    assert!(line.contains("An error occurred: 403"), "{line}");
    let body = line.split_once("403 ").unwrap().1;
    assert_error_body(&serde_json::from_str(body).unwrap(), 403);
    assert_eq!(run.trace.len(), 1);
    assert_eq!(
        h(&run.trace[0]["headers"], "authorization"),
        Some("Basic dXNlcjo=")
    );
    assert!(t.srv.item_names().is_empty());
    t.srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The OpenSVC agent (python-requests replay)

/// A1/A2/A5 with the real python-requests: one POST, `Content-length` in the header dict (the
/// wire carries the base64 length), Basic user:support, DAYS/7; the agent's printed line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensvc_agent_replay() {
    let Some(t) = ClientTest::start("").await else {
        return;
    };
    let tarball = support_tarball(t.dir());
    let raw_len = std::fs::metadata(&tarball).unwrap().len();
    let b64_len = raw_len.div_ceil(3) * 4;
    let url = t.srv.url(ITEMS);
    for (ns, expected) in [
        (None, "_svc1_at_node1.tar.gz"),
        (Some("ns1"), "ns1_svc1_at_node1.tar.gz"),
    ] {
        let mut args = vec![url.as_str(), tarball.to_str().unwrap(), "svc1", "node1"];
        args.extend(ns);
        let run = t.opensvc(&args).await;
        assert!(run.status.success(), "{}", run.stderr);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{}", run.stdout);
        assert_eq!(lines[0], "uploading the support tarball");
        let loc = lines[1]
            .strip_prefix("uploaded as https://sfx.opensvc.com")
            .unwrap_or_else(|| panic!("{}", lines[1]));
        let name = loc
            .strip_prefix("/apis/rest/items/")
            .unwrap_or_else(|| panic!("Content-Location is not a path: {loc}"));
        assert!(!name.contains('/'));
        assert!(
            run.stderr.contains(&format!(
                "replay: status=201 Content-Length={b64_len} Authorization=Basic dXNlcjpzdXBwb3J0"
            )),
            "{}",
            run.stderr
        );
        // Support staff open the printed path with a read secret.
        let meta: Value = get_as(&t.srv, Some(READER), loc)
            .await
            .json()
            .await
            .unwrap();
        let fm = &meta["file-meta"];
        assert_eq!(fm["filename"], expected);
        assert_eq!(fm["type"], "application/octet-stream");
        assert_eq!(fm["size"], raw_len);
        let life =
            fm["timestamp-max-life"].as_i64().unwrap() - fm["timestamp-upload"].as_i64().unwrap();
        assert!((life - 7 * 86400).abs() <= 2, "7 days: {life}");
        assert_same(&t.srv, name, &tarball).await;
    }
    t.srv.stop().await;
}

/// A6: a tarball over the server's maximum: a non-2xx JSON error and no item; the agent has no
/// Content-Location and fails (on Python 3 with its json.dumps(bytes) TypeError).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensvc_agent_replay_too_large() {
    let Some(t) = ClientTest::start("max_file_size = \"64\"").await else {
        return;
    };
    let tarball = support_tarball(t.dir());
    assert!(std::fs::metadata(&tarball).unwrap().len() > 64);
    let url = t.srv.url(ITEMS);
    let run = t
        .opensvc(&[url.as_str(), tarball.to_str().unwrap(), "svc1", "node1"])
        .await;
    assert!(!run.status.success());
    assert!(!run.stdout.contains("uploaded as"), "{}", run.stdout);
    assert!(run.stderr.contains("replay: status=413"), "{}", run.stderr);
    assert!(run.stderr.contains("TypeError"), "{}", run.stderr);
    assert!(t.srv.item_names().is_empty());
    t.srv.stop().await;
}
