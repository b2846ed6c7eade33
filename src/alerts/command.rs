//! Command alerts: runs the configured program (no shell, so nothing in an upload can become
//! part of a command line) with the delivery's JSON on stdin. Exit status 0 means delivered.

use super::Payload;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const STDERR_TAIL: usize = 300;

pub async fn run(command: &[String], payload: &Payload) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("SFX_IDEMPOTENCY_KEY", &payload.idempotency_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(&body).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(STDERR_TAIL)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(format!(
        "{program} exited with {}: {}",
        out.status,
        tail.replace(['\n', '\r'], " ")
    ))
}
