//! The `sfx` binary: parse the command line, then hand over to the library.

use anyhow::Context;
use clap::Parser;
use sfx::cli::{AuditCommand, Cli, Command};
use std::io::{BufRead, Write};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    tune_malloc();
    let command = Cli::parse().command;
    // The server's log format is configured; the other commands always log text.
    let format = match &command {
        Command::Serve { config, .. } => load_config(config.as_deref())?.log_format,
        _ => sfx::config::LogFormat::Text,
    };
    init_logging(format);
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = load_config(config.as_deref())?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(cfg))
        }
        Command::AlertTest { config } => {
            let cfg = load_config(config.as_deref())?;
            anyhow::ensure!(
                !cfg.alerts.is_empty(),
                "no [[alerts]] channel is configured"
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let results = rt.block_on(sfx::alerts::test_all(&cfg));
            let mut failed = 0;
            for (channel, result) in &results {
                match result {
                    Ok(()) => println!("ok      {channel}"),
                    Err(e) => {
                        failed += 1;
                        println!("FAILED  {channel}: {e}");
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} of {} channels failed", results.len());
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { config, data_dir },
        } => {
            let cfg = load_config(config.as_deref())?;
            audit_verify(&data_dir.unwrap_or(cfg.data_dir))
        }
        Command::Check {
            config,
            data_dir,
            repair,
            quick,
        } => {
            let opts = sfx::check::Options { repair, quick };
            let result = match data_dir {
                Some(d) => Ok(d),
                None => load_config(config.as_deref()).map(|c| c.data_dir),
            }
            .and_then(|dir| Ok(sfx::check::run(&dir, opts, &mut std::io::stdout().lock())?));
            // 1 is for problems found: errors (config, store, a running server) are 2.
            std::process::exit(match result {
                Ok(summary) => summary.exit_code(),
                Err(e) => {
                    eprintln!("sfx check: {e:#}");
                    2
                }
            })
        }
        Command::ImportBepasty {
            dir,
            config,
            data_dir,
            dry_run,
        } => {
            let opts = sfx::import::Options { dry_run };
            let result = load_config(config.as_deref()).and_then(|mut cfg| {
                if let Some(d) = data_dir {
                    cfg.data_dir = d;
                }
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                let mut out = std::io::stdout().lock();
                // The import's own errors already name their cause: printed without the chain.
                rt.block_on(sfx::import::run(&cfg, &dir, opts, &mut out))
                    .map_err(|e| anyhow::anyhow!("{e}"))
            });
            // 1 is for skipped items: errors (config, lock, store, disk) are 2.
            std::process::exit(match result {
                Ok(summary) => summary.exit_code(),
                Err(e) => {
                    eprintln!("sfx import-bepasty: {e:#}");
                    2
                }
            })
        }
        Command::Link {
            config,
            data_dir,
            command,
        } => {
            let mut cfg = load_config(config.as_deref())?;
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            sfx::links::commands::run(&cfg, &command, &mut std::io::stdout().lock())?;
            Ok(())
        }
        Command::HashSecret => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the secret from stdin")?;
            let secret = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!secret.is_empty(), "the secret on stdin is empty");
            println!(
                "{}",
                sfx::auth::hash_secret(secret).map_err(anyhow::Error::msg)?
            );
            Ok(())
        }
    }
}

/// The config file, or the embedded defaults without one.
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<sfx::Config> {
    Ok(match path {
        Some(path) => sfx::Config::from_file(path)?,
        None => sfx::Config::embedded(),
    })
}

async fn serve(config: sfx::Config) -> anyhow::Result<()> {
    let app = sfx::App::bind(config).await?;
    for note in app.notes() {
        println!("{note}");
    }
    if let Some(tls) = app.tls() {
        let kind = if tls.is_self_signed() {
            "self-signed "
        } else {
            ""
        };
        println!(
            "TLS {kind}certificate {} SHA-256 fingerprint {}",
            tls.cert_path().display(),
            tls.fingerprint()
        );
    }
    if let Some(addr) = app.redirect_addr() {
        println!("redirecting http://{addr} to https");
    }
    if let Some(addr) = app.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    // The handlers are in place before "listening" is printed: a supervisor (or a test) that
    // sends SIGTERM as soon as it reads that line must get a clean shutdown, not the default
    // action (a race seen in CI when the handler was set up by a task polled later).
    use tokio::signal::unix::{SignalKind, signal as unix_signal};
    let term = unix_signal(SignalKind::terminate()).ok();
    let int = unix_signal(SignalKind::interrupt()).ok();
    println!("listening on {}://{}", app.scheme(), app.local_addr()?);
    std::io::stdout().flush()?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal(term, int).await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    if let Some(tls) = app.tls() {
        tokio::spawn(reload_on_hangup(tls, app.state()));
    }
    app.run(shutdown).await;
    Ok(())
}

/// SIGHUP re-reads the TLS certificate (e.g. from certbot's deploy hook); established
/// connections carry on, and a bad new certificate leaves the old one in use.
async fn reload_on_hangup(tls: std::sync::Arc<sfx::tls::Tls>, state: std::sync::Arc<sfx::State>) {
    use sfx::audit::AuditEvent;
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: certificates will not be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        let tls = std::sync::Arc::clone(&tls);
        let result = tokio::task::spawn_blocking(move || tls.reload())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match &result {
            Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate NOT reloaded; the old one stays in use")
            }
        }
        let outcome = result.as_ref().map(|_| ()).map_err(String::as_str);
        state
            .audit
            .record(AuditEvent::reload("TLS certificate", outcome))
            .await;
    }
}

/// `sfx audit verify`: a broken chain prints where and exits with status 1.
fn audit_verify(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let db = data_dir.join("sfx.db");
    anyhow::ensure!(db.exists(), "no database at {}", db.display());
    let store = sfx::store::SqliteStore::open_reader(&db)?;
    match sfx::audit::verify(&store)? {
        sfx::audit::Verdict::Intact { records, last } => {
            match last {
                Some((id, hash)) => println!("ok: {records} records (newest: {id}, hash {hash})"),
                None => println!("ok: {records} records"),
            }
            Ok(())
        }
        sfx::audit::Verdict::Broken { id, reason } => {
            println!("broken at record {id}: {reason}");
            std::io::stdout().flush()?;
            std::process::exit(1)
        }
    }
}

/// SIGTERM or SIGINT, with handlers registered by the caller (a missing one never fires).
async fn wait_for_signal(
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
) {
    async fn recv(s: Option<tokio::signal::unix::Signal>) {
        match s {
            Some(mut s) => drop(s.recv().await),
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        () = recv(term) => {}
        () = recv(int) => {}
    }
}

/// Logs to stderr, `RUST_LOG` filtering (default `sfx=info`): readable lines, or one JSON
/// object per line (`log_format = "json"`) with the request's span (its `request_id`) in each.
fn init_logging(format: sfx::config::LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "sfx=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        sfx::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        sfx::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// glibc's malloc gives large freed buffers (upload chunks, several hundred KiB each) back to the
/// kernel and faults fresh ones in for the next chunk: about a tenth of the CPU of a 1 GiB upload
/// here (bench/upload.sh: 0.91 s -> 0.81 s). Keeping them in the heap costs a few MiB of RSS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator parameters, and runs before any other thread exists.
    unsafe {
        // Upload buffers stay well below 16 MiB; Argon2's 19 MiB blocks still go to mmap and
        // are returned to the kernel at once.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
