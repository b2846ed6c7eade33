//! Shared test harness: starts the real server in-process on 127.0.0.1:0 with a temporary data
//! directory, and offers a reqwest client and a real `curl`. Every test talks to 127.0.0.1 only.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Upload-only, as printed in the vendor's docs.
pub const CUSTOMER: &str = "support";
pub const ADMIN: &str = "admin-secret-for-tests";
pub const READER: &str = "reader-secret";
pub const LISTER: &str = "lister-secret";
pub const DELETER: &str = "deleter-secret";

const SECRETS: &str = r#"
[[secrets]]
label = "customers"
secret = "support"
permissions = ["create"]
[[secrets]]
label = "support-team"
secret = "admin-secret-for-tests"
permissions = ["admin"]
[[secrets]]
label = "readers"
secret = "reader-secret"
permissions = ["read"]
[[secrets]]
label = "listers"
secret = "lister-secret"
permissions = ["list"]
[[secrets]]
label = "deleters"
secret = "deleter-secret"
permissions = ["read", "delete"]
"#;

pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub state: Arc<sfx::State>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server with the test secrets and no free-space floor.
    pub async fn start() -> TestServer {
        Self::start_with("").await
    }

    /// `extra` is TOML for top-level keys (e.g. `max_file_size = "1MiB"`).
    pub async fn start_with(extra: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, extra).await;
        s._tmp = Some(tmp);
        s
    }

    /// Uses `dir` as the data directory (kept after the server stops: for restart tests).
    pub async fn start_in(dir: &Path, extra: &str) -> TestServer {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n{extra}\n{SECRETS}",
            dir.to_str().expect("utf-8 temp path")
        );
        Self::start_toml(dir, &toml).await
    }

    /// Full control over the config (no test secrets added).
    pub async fn start_toml(dir: &Path, toml: &str) -> TestServer {
        let config = sfx::Config::from_toml(toml).expect("test config is valid");
        let app = sfx::App::bind(config).await.expect("server starts");
        let addr = app.local_addr().expect("bound");
        let state = app.state();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        TestServer {
            addr,
            data_dir: dir.to_path_buf(),
            state,
            shutdown,
            task,
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://user:SECRET@127.0.0.1:PORT/PATH`, as the vendor's curl command spells it.
    pub fn url_with_secret(&self, secret: &str, path: &str) -> String {
        format!("http://user:{secret}@{}{}", self.addr, path)
    }

    /// Stops the server and waits until it has shut down.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        let _ = self.task.await;
        self._tmp
    }

    /// Files in `<data_dir>/files` and `<data_dir>/tmp`.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        list_dir(&self.data_dir.join("files"))
    }

    pub fn temp_files(&self) -> Vec<PathBuf> {
        list_dir(&self.data_dir.join("tmp"))
    }

    /// All live item names, via the store.
    pub fn item_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .store
            .live_names()
            .expect("store")
            .into_iter()
            .collect();
        v.sort();
        v
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A reqwest client that does not follow redirects (we check them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub struct CurlOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `curl` with these arguments.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let out = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    CurlOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// SHA-256 computed independently of sfx, by `sha256sum`.
pub fn external_sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum is installed");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

/// A file of `size` pseudo-random bytes (deterministic per `seed`).
pub fn random_file(dir: &Path, name: &str, size: usize, seed: u64) -> PathBuf {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        // xorshift64*: fast and good enough to defeat compression and accidental equality.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        data.extend_from_slice(&state.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
    }
    data.truncate(size);
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write test file");
    path
}

/// The item name from a bepasty `Location: /<name>#<filename>`.
pub fn name_from_location(location: &str) -> String {
    let rest = location.strip_prefix('/').expect("relative location");
    rest.split('#').next().expect("name").to_string()
}

/// `Location` header of a curl `-i` output (or of any header block).
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
