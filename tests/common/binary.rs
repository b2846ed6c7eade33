//! The real `sfx` binary, started the way the README says.

use super::Endpoint;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

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

/// `sfx ARGS` with `env` added; with `umask` (e.g. `"077"`), run under that umask (through
/// `sh -c 'umask U; exec sfx ARGS'`, so the process is still sfx itself).
pub fn sfx_command(
    args: &[&str],
    env: &[(&str, &str)],
    umask: Option<&str>,
) -> tokio::process::Command {
    let exe = env!("CARGO_BIN_EXE_sfx");
    let mut cmd = match umask {
        None => tokio::process::Command::new(exe),
        Some(mask) => {
            let mut sh = tokio::process::Command::new("sh");
            sh.arg("-c")
                .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
                .arg(exe);
            sh
        }
    };
    cmd.args(args).envs(env.iter().copied());
    cmd
}

/// An `sfx serve` spawned, not yet known to listen.
pub struct Starting {
    child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr_log: Option<PathBuf>,
}

impl Binary {
    /// Runs `sfx ARGS` with `env` added and its stderr in `stderr_log` (or dropped), and waits
    /// (20 s at most) for its `listening on http(s)://ADDR` line. Its stdout is drained afterwards,
    /// so the server never blocks on it.
    pub async fn start(args: &[&str], env: &[(&str, &str)], stderr_log: Option<&Path>) -> Binary {
        Binary::spawn(sfx_command(args, env, None), stderr_log)
            .listening()
            .await
    }

    /// As [`Binary::start`], run by `wrapper` (e.g. `["prlimit", "--nofile=1024:1024"]`).
    pub async fn start_under(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        stderr_log: Option<&Path>,
    ) -> Binary {
        let (program, before) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(before)
            .arg(env!("CARGO_BIN_EXE_sfx"))
            .args(args)
            .envs(env.iter().copied());
        Binary::spawn(cmd, stderr_log).listening().await
    }

    /// Spawns `cmd` (see [`sfx_command`]) with its stderr in `stderr_log` (or dropped).
    pub fn spawn(mut cmd: tokio::process::Command, stderr_log: Option<&Path>) -> Starting {
        let stderr = match stderr_log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("stderr log")),
            None => Stdio::null(),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start sfx");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Starting {
            child,
            lines,
            stderr_log: stderr_log.map(Path::to_path_buf),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("sfx is running")
    }

    /// Sends signal `sig` (e.g. `"HUP"`, `"TERM"`).
    pub fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(st.success(), "kill -{sig}");
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

    /// `kill -9`, and waits until the process is gone.
    pub async fn kill_9(mut self) {
        kill_9(&mut self.child).await;
    }
}

impl Starting {
    /// Waits (20 s at most) for the `listening on http(s)://ADDR` line; what came before it is
    /// the banner.
    pub async fn listening(mut self) -> Binary {
        let log = self.stderr_log.clone();
        let lines = &mut self.lines;
        let mut banner = Vec::new();
        let (scheme, addr) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = lines.next_line().await.unwrap().unwrap_or_else(|| {
                    let log = log.as_deref().map(std::fs::read_to_string);
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
        let mut lines = self.lines;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Binary {
            child: self.child,
            addr,
            scheme,
            banner,
        }
    }

    /// `kill -9` before (or while) it starts; returns its stdout up to then, to tell whether it
    /// got as far as listening.
    pub async fn kill_9(mut self) -> String {
        kill_9(&mut self.child).await;
        let mut out = String::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

async fn kill_9(child: &mut tokio::process::Child) {
    // tokio's kill is SIGKILL on Unix.
    child.start_kill().expect("SIGKILL sent");
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("sfx dies on SIGKILL")
        .unwrap();
}
