//! The real `sfx` binary, started the way the README says.

use super::Endpoint;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `sfx`, killed when dropped.
pub struct Binary {
    child: tokio::process::Child,
    addr: SocketAddr,
    scheme: &'static str,
    /// What it printed before `listening on` (notes, the TLS fingerprint).
    pub banner: Vec<String>,
}

impl Endpoint for Binary {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn scheme(&self) -> &'static str {
        self.scheme
    }
}

impl Binary {
    /// Runs `sfx ARGS` with `env` added and its stderr in `stderr_log` (or dropped), and waits
    /// (20 s at most) for its `listening on http(s)://ADDR` line. Its stdout is drained afterwards,
    /// so the server never blocks on it.
    pub async fn start(args: &[&str], env: &[(&str, &str)], stderr_log: Option<&Path>) -> Binary {
        Self::start_under(&[], args, env, stderr_log).await
    }

    /// As [`Binary::start`], run by `wrapper` (e.g. `["prlimit", "--nofile=1024:1024"]`).
    pub async fn start_under(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        stderr_log: Option<&Path>,
    ) -> Binary {
        let stderr = match stderr_log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("stderr log")),
            None => Stdio::null(),
        };
        let sfx = env!("CARGO_BIN_EXE_sfx");
        let (program, before) = match wrapper.split_first() {
            Some((w, rest)) => (*w, [rest, &[sfx]].concat()),
            None => (sfx, Vec::new()),
        };
        let mut child = tokio::process::Command::new(program)
            .args(before)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start sfx");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let (scheme, addr) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = lines.next_line().await.unwrap().unwrap_or_else(|| {
                    let log = stderr_log.map(std::fs::read_to_string);
                    panic!("sfx exited before printing its address: {log:?}")
                });
                if let Some(a) = line.strip_prefix("listening on http://") {
                    break ("http", a.parse().expect("an address"));
                }
                if let Some(a) = line.strip_prefix("listening on https://") {
                    break ("https", a.parse().expect("an address"));
                }
                banner.push(line);
            }
        })
        .await
        .expect("sfx printed its address");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Binary {
            child,
            addr,
            scheme,
            banner,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("sfx is running")
    }

    /// Waits for the process to exit by itself (after a signal sent elsewhere); asserts a clean
    /// exit.
    pub async fn wait_exit(mut self, within: Duration) {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("sfx exited in time")
            .unwrap();
        assert!(status.success(), "clean exit: {status:?}");
    }

    /// Sends SIGTERM and asserts a clean exit (within 20 s).
    pub async fn stop(mut self) {
        let pid = self.pid().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("sfx stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }
}
