//! Shared test harness: starts the real server in-process on 127.0.0.1:0 with a temporary data
//! directory (or the real `sfx` binary, in `binary`), and offers HTTP helpers over reqwest, the
//! real `curl` and raw sockets (`http`), a webhook receiver (`receiver`), and polling with a
//! deadline (`wait`). Every test talks to 127.0.0.1 only.
#![allow(dead_code)]

mod binary;
mod chromium;
mod clamd;
mod cluster;
mod console;
mod cut_proxy;
mod http;
mod postgres;
mod python;
mod raw;
mod receiver;
pub mod s3;
mod smtp;
mod tls;
mod wait;

// Each test binary uses a subset. `chromium`: Chromium with JavaScript (browser uploads);
// `cut_proxy`: the proxy that throttles, counts, cuts and corrupts (browser uploads, the client
// script).
#[allow(unused_imports)]
pub use {
    binary::*, chromium::*, clamd::*, cluster::*, console::*, cut_proxy::*, http::*, postgres::*,
    python::*, raw::*, receiver::*, smtp::*, tls::*, wait::*,
};

use base64::Engine;
use sha2::Digest;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const MIB: usize = 1 << 20;
/// bepasty's REST collection.
pub const ITEMS: &str = "/apis/rest/items";

/// Upload-only, as printed in the vendor's docs.
pub const CUSTOMER: &str = "support";
pub const ADMIN: &str = "admin-secret-for-tests";
pub const READER: &str = "reader-secret";
pub const LISTER: &str = "lister-secret";
pub const DELETER: &str = "deleter-secret";

/// The test secrets: label, secret, permissions.
const SECRETS: [(&str, &str, &str); 5] = [
    ("customers", CUSTOMER, r#""create""#),
    ("support-team", ADMIN, r#""admin""#),
    ("readers", READER, r#""read""#),
    ("listers", LISTER, r#""list""#),
    ("deleters", DELETER, r#""read", "delete""#),
];

/// `[[secrets]]` tables for the first `n` test secrets: customers (create), support-team (admin),
/// readers, listers, deleters.
pub fn secrets_toml(n: usize) -> String {
    SECRETS[..n]
        .iter()
        .map(|(label, secret, permissions)| {
            format!(
                "[[secrets]]\nlabel = \"{label}\"\nsecret = \"{secret}\"\npermissions = [{permissions}]\n"
            )
        })
        .collect()
}

/// The keys every test config starts with: 127.0.0.1:0, `dir` as the data directory, and no
/// free-space floor.
pub fn base_toml(dir: &Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n",
        dir.to_str().expect("utf-8 path")
    )
}

/// Writes `toml` to `<dir>/sfx.toml`; returns its path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("sfx.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// A config file for the real binary in `dir`: data in `<dir>/data`, the `top` keys, the first
/// two test secrets, then `tables` (e.g. `[tls]`). Returns the config's path and the data dir.
pub fn binary_config(dir: &Path, top: &str, tables: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let toml = format!("{}{top}\n{}{tables}", base_toml(&data), secrets_toml(2));
    (write_config(dir, &toml), data)
}

/// A running sfx (the in-process [`TestServer`] or the real [`Binary`]), or just its address.
pub trait Endpoint {
    fn addr(&self) -> SocketAddr;

    /// `https` for a server with `[tls]`.
    fn scheme(&self) -> &'static str {
        "http"
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme(), self.addr())
    }

    /// `http://user:SECRET@127.0.0.1:PORT/PATH`, as the vendor's curl command spells it.
    fn url_with_secret(&self, secret: &str, path: &str) -> String {
        format!("{}://user:{secret}@{}{path}", self.scheme(), self.addr())
    }
}

impl Endpoint for SocketAddr {
    fn addr(&self) -> SocketAddr {
        *self
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub scheme: &'static str,
    /// The plain listener of `redirect_http_from`, if configured.
    pub redirect: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub state: Arc<sfx::State>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _tmp: Option<tempfile::TempDir>,
}

impl Endpoint for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn scheme(&self) -> &'static str {
        self.scheme
    }
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
        let toml = format!("{}{extra}\n{}", base_toml(dir), secrets_toml(5));
        Self::start_toml(dir, &toml).await
    }

    /// Full control over the config (no test secrets added).
    pub async fn start_toml(dir: &Path, toml: &str) -> TestServer {
        let toml = match metadata_toml_for(dir) {
            Some(metadata) => format!("{toml}{metadata}"),
            None => toml.to_string(),
        };
        let toml = match s3::storage_toml_for(dir) {
            Some(storage) => format!("{toml}{storage}"),
            None => toml,
        };
        let config = sfx::Config::from_toml(&toml).expect("test config is valid");
        let app = sfx::App::bind(config).await.expect("server starts");
        let addr = app.local_addr().expect("bound");
        let scheme = app.scheme();
        let redirect = app.redirect_addr();
        let state = app.state();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        TestServer {
            addr,
            scheme,
            redirect,
            data_dir: dir.to_path_buf(),
            state,
            shutdown,
            task,
            _tmp: None,
        }
    }

    /// Stops the server and waits until it has shut down.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        let _ = self.task.await;
        self._tmp
    }

    /// Files in `<data_dir>/files` (with S3: where its objects would be, one per object).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        match &self.state.blobs {
            sfx::blobs::Blobs::Local(_) => list_dir(&self.data_dir.join("files")),
            sfx::blobs::Blobs::S3(s3) => {
                let s3 = s3.clone();
                let names = on_own_runtime(async move { s3.list().await.expect("S3 list") });
                let dir = self.data_dir.join("files");
                names.iter().map(|n| dir.join(n.as_str())).collect()
            }
        }
    }

    /// Files in `<data_dir>/tmp` (none with S3: uploads stream into multipart uploads).
    pub fn temp_files(&self) -> Vec<PathBuf> {
        list_dir(&self.data_dir.join("tmp"))
    }

    /// Files in `<data_dir>/partial` (incomplete REST uploads; with S3, one per incomplete
    /// item).
    pub fn partial_files(&self) -> Vec<PathBuf> {
        match &self.state.blobs {
            sfx::blobs::Blobs::Local(_) => list_dir(&self.data_dir.join("partial")),
            sfx::blobs::Blobs::S3(_) => {
                let dir = self.data_dir.join("partial");
                let mut v: Vec<PathBuf> = (self.state.store.incomplete_names())
                    .expect("store")
                    .iter()
                    .map(|n| dir.join(n))
                    .collect();
                v.sort();
                v
            }
        }
    }

    /// `sha256sum` of item `name`'s stored bytes (copied out of an object store first).
    pub async fn stored_sha256_external(&self, name: &str) -> String {
        if matches!(self.state.blobs, sfx::blobs::Blobs::Local(_)) {
            return external_sha256(&self.stored_path(name));
        }
        let copy = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(copy.path(), self.stored_bytes(name).await).expect("write copy");
        external_sha256(copy.path())
    }

    /// The stored bytes of item `name`, from whichever blob store the server has.
    pub async fn stored_bytes(&self, name: &str) -> Vec<u8> {
        use futures_util::StreamExt;
        use sfx::blobs::BlobStore;
        let item = sfx::items::ItemName::parse(name).expect("an item name");
        let size = self.item(name).map_or(0, |i| i.size);
        let mut stream = self
            .state
            .blobs
            .read_range(&item, 0, size)
            .await
            .expect("the item's bytes");
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("reading the item"));
        }
        out
    }

    /// Where item `name` keeps its bytes: `<data_dir>/files/<name>`.
    pub fn stored_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("files").join(name)
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

    /// What the server holds now, to compare with later.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            items: self.item_names(),
            files: self.stored_files(),
        }
    }

    /// Nothing new since `before`: the same items and committed files, and DATA/tmp empties
    /// (promptly).
    pub async fn assert_nothing_stored(&self, before: &Snapshot, case: &str) {
        let what = format!("{case}: DATA/tmp empty (left: {:?})", self.temp_files());
        wait_until(&what, Duration::from_secs(5), || {
            self.temp_files().is_empty()
        })
        .await;
        assert_eq!(
            self.item_names(),
            before.items,
            "{case}: an item was stored"
        );
        assert_eq!(
            self.stored_files(),
            before.files,
            "{case}: a file was left under DATA/files"
        );
    }

    /// Item `name` as the store has it.
    pub fn item(&self, name: &str) -> Option<sfx::store::Item> {
        let name = sfx::items::ItemName::parse(name).expect("an item name");
        self.state.store.get(&name).expect("store")
    }
}

/// What a server holds: its live items and the files under DATA/files.
pub struct Snapshot {
    pub items: Vec<String>,
    pub files: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// For a test whose external tool is missing: fails when `$require_var` is `1` (as in CI),
/// otherwise prints `skipped: <reason>`, and the test returns.
pub fn skip_unless_required(require_var: &str, reason: &str) {
    assert!(
        std::env::var(require_var).as_deref() != Ok("1"),
        "{require_var}=1 but {reason}"
    );
    println!("skipped: {reason}");
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

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Standard base64 with padding, no line breaks (what the REST clients send).
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `size` pseudo-random bytes (deterministic per `seed`).
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        // xorshift64*: fast and good enough to defeat compression and accidental equality.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        data.extend_from_slice(&state.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
    }
    data.truncate(size);
    data
}

/// A file of `size` pseudo-random bytes (deterministic per `seed`).
pub fn random_file(dir: &Path, name: &str, size: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, random_bytes(size, seed)).expect("write test file");
    path
}

/// A gzip tarball like the OpenSVC agent's sysreport (a few small logs), as `<dir>/support.tar.gz`.
pub fn support_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("support");
    std::fs::create_dir_all(root.join("var/svc1")).unwrap();
    std::fs::write(root.join("node.log"), "2024-10-01 node1 started\n").unwrap();
    std::fs::write(root.join("var/svc1/status.json"), "{\"avail\": \"up\"}\n").unwrap();
    let out = dir.join("support.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-czf")
        .arg(&out)
        .args(["node.log", "var"])
        .status()
        .expect("tar is installed");
    assert!(st.success());
    assert_eq!(&std::fs::read(&out).unwrap()[..2], &[0x1f, 0x8b], "gzip");
    out
}

/// The item name from a bepasty `Location: /<name>#<filename>`.
pub fn name_from_location(location: &str) -> String {
    let rest = location.strip_prefix('/').expect("relative location");
    rest.split('#').next().expect("name").to_string()
}

/// A header's value in a raw header block (a curl `-i` output, a raw socket's answer).
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Runs `f` to its end on a runtime of its own, on a thread of its own (callable from sync
/// code inside a test's runtime).
pub fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("runtime thread")
}
