//! A real clamd (Debian's clamav-daemon) of the test's own: a temporary config and a signature
//! database the test writes itself (no signature download is possible here): the EICAR test
//! file's MD5 in an `.hdb`. Small limits, so that the limit paths are cheap to reach:
//! `StreamMaxLength 10M` (clamd then answers `INSTREAM size limit exceeded`) and
//! `MaxFileSize`/`MaxScanSize 4M` with `AlertExceedsMax yes` (then
//! `Heuristics.Limits.Exceeded.MaxFileSize FOUND`). Without clamd the tests print a skip
//! message, or fail when `SFX_REQUIRE_CLAMD=1`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The 68-byte EICAR anti-virus test file (harmless; every scanner detects it).
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// What clamd calls it with our database (`.UNOFFICIAL`: not a signed ClamAV database).
pub const EICAR_SIGNATURE: &str = "Eicar-Test-Signature";
/// Sizes past clamd's limits in our config.
pub const OVER_MAX_FILE_SIZE: usize = 6 << 20;
pub const OVER_STREAM_MAX: usize = 12 << 20;

fn clamd_binary() -> Option<PathBuf> {
    ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub struct ClamdServer {
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub tcp_port: u16,
    child: Option<tokio::process::Child>,
}

impl ClamdServer {
    /// A running clamd on a Unix socket and on 127.0.0.1 TCP, or `None` after a skip message.
    pub async fn start(test: &str) -> Option<ClamdServer> {
        if clamd_binary().is_none() {
            let reason = format!("{test} needs clamd (apt-get install -y clamav-daemon)");
            super::skip_unless_required("SFX_REQUIRE_CLAMD", &reason);
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let md5 = md5_hex(EICAR);
        std::fs::write(
            db.join("eicar.hdb"),
            format!("{md5}:{}:{EICAR_SIGNATURE}\n", EICAR.len()),
        )
        .expect("write the signature database");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let socket = dir.path().join("clamd.sock");
        let p = |name: &str| dir.path().join(name).display().to_string();
        let conf = format!(
            "LocalSocket {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
             Foreground yes\nStreamMaxLength 10M\nMaxFileSize 4M\nMaxScanSize 4M\n\
             AlertExceedsMax yes\nLogFile {}\nPidFile {}\n",
            socket.display(),
            db.display(),
            p("clamd.log"),
            p("clamd.pid"),
        );
        std::fs::write(dir.path().join("clamd.conf"), conf).expect("write clamd.conf");
        let mut server = ClamdServer {
            dir,
            socket,
            tcp_port: port,
            child: None,
        };
        server.up().await;
        Some(server)
    }

    /// `unix:<socket>` for sfx's config.
    pub fn unix_addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn tcp_addr(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.tcp_port)
    }

    /// Starts clamd (again) and waits until it answers `zPING` with `PONG`.
    pub async fn up(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::File::create(self.dir.path().join("clamd.out")).expect("log");
        let child = tokio::process::Command::new(clamd_binary().expect("clamd"))
            .arg("--foreground")
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("clamd.conf").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("clamd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.pings().await {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("clamd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "clamd never answered: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills clamd (as if it crashed): its socket stays, nobody answers.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Whether both sockets answer `zPING` with `PONG`.
    async fn pings(&self) -> bool {
        async fn ping<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) -> bool {
            let mut reply = Vec::new();
            s.write_all(b"zPING\0").await.is_ok()
                && s.read_to_end(&mut reply).await.is_ok()
                && reply == b"PONG\0"
        }
        let unix = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => ping(s).await,
            Err(_) => false,
        };
        let tcp = match tokio::net::TcpStream::connect(("127.0.0.1", self.tcp_port)).await {
            Ok(s) => ping(s).await,
            Err(_) => false,
        };
        unix && tcp
    }

    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("clamd.out"), read("clamd.log"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// MD5 of `data` (the `.hdb` format), by `md5sum`, independent of sfx.
fn md5_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum is installed");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(data).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("md5sum");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
