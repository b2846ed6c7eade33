//! A real SMTP server for the alert tests: tests/clients/smtp_sink.py (aiosmtpd), which writes
//! each accepted message as JSON.

use super::skip_unless_required;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const SMTP_SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/smtp_sink.py");

pub fn python_with_aiosmtpd() -> Option<String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("SFX_PYTHON") {
        candidates.push(p);
    }
    candidates.extend(
        [
            "/usr/bin/python3",
            "/tmp/sfx-alert-venv/bin/python",
            "python3",
        ]
        .map(String::from),
    );
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `None` (after a skip message) when aiosmtpd is not installed, unless `SFX_REQUIRE_SMTP=1`.
pub fn smtp_python(test: &str) -> Option<String> {
    let python = python_with_aiosmtpd();
    if python.is_none() {
        let reason = format!("{test} needs aiosmtpd (apt-get install -y python3-aiosmtpd)");
        skip_unless_required("SFX_REQUIRE_SMTP", &reason);
    }
    python
}

pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl SmtpSink {
    /// Starts the sink; with `auth` ("login:password") it only accepts that login.
    pub async fn start(python: &str, dir: &Path, auth: Option<&str>) -> SmtpSink {
        let mail_dir = dir.join("mail");
        let mut cmd = tokio::process::Command::new(python);
        cmd.arg(SMTP_SINK).arg(&mail_dir);
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let log = std::fs::File::create(dir.join("smtp-sink.log")).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start smtp_sink.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("smtp sink starts within 20 s")
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "smtp sink exited: {}",
                    std::fs::read_to_string(dir.join("smtp-sink.log")).unwrap_or_default()
                )
            });
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected sink output: {line}"));
        SmtpSink {
            port,
            dir: mail_dir,
            _child: child,
        }
    }

    /// Accepted messages, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter_map(|p| {
                        let n = p.file_name()?.to_str()?;
                        let i = n
                            .strip_prefix("msg-")?
                            .strip_suffix(".json")?
                            .parse()
                            .ok()?;
                        Some((i, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}
