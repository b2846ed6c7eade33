//! The real Python clients (bepasty-client-cli 0.3.0 through `tests/clients/bcc_run.py`, the
//! OpenSVC agent's python-requests replay) from the venv `.ci/python-deps.sh` makes.

use super::skip_unless_required;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub fn venv_dir() -> PathBuf {
    std::env::var_os("SFX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/sfx-test-venv"))
}

/// The venv's python, if it has the clients; otherwise skip (or fail when required).
pub fn venv_python() -> Option<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let usable = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import bepasty_cli.cli, magic, requests"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !usable {
        let reason = format!(
            "no Python client venv with bepasty-client-cli, python-magic and requests at {} \
             (run .ci/python-deps.sh)",
            venv.display()
        );
        skip_unless_required("SFX_REQUIRE_PYTHON_CLIENTS", &reason);
        return None;
    }
    Some(python)
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// One entry per request (bcc_run.py's BCC_TRACE).
    pub trace: Vec<Value>,
}

/// Runs a Python script of tests/clients with the venv's python, in `cwd`, never through a
/// proxy (unless `env` sets one), with stdin from `stdin` (or empty) and `env` added.
pub async fn run_python(
    python: &Path,
    cwd: &Path,
    script_name: &str,
    args: &[&str],
    stdin: Option<&Path>,
    env: &[(&str, &str)],
) -> Run {
    let trace = cwd.join(format!("trace-{}.jsonl", rand_suffix()));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script(script_name))
        .args(args)
        .current_dir(cwd)
        .env("BCC_TRACE", &trace)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the client finished in time")
        .expect("python runs");
    let trace = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let run = Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        trace,
    };
    println!(
        "--- {script_name} {args:?}\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

pub fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// Runs `bepasty-cli` (0.3.0, through the launcher).
pub async fn bepasty_cli(
    python: &Path,
    cwd: &Path,
    args: &[&str],
    stdin: Option<&Path>,
    env: &[(&str, &str)],
) -> Run {
    run_python(python, cwd, "bcc_run.py", args, stdin, env).await
}
