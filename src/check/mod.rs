//! `sfx check`: verifies a data directory against its metadata and, with `--repair`, fixes what
//! can be fixed without losing anything that was acknowledged to a client.
//!
//! Problems (each makes the exit status 1): a complete item whose file is missing, has another
//! size, or (unless `--quick`) another SHA-256 than recorded; entries in `files/` or `partial/`
//! without the metadata they belong to; an incomplete upload without its partial file, or with
//! fewer bytes than were acknowledged; an interrupted completion; leftovers in `tmp/`; a symlink,
//! FIFO, socket, device or directory where a regular file belongs (never followed); modes other
//! than 0700 for directories and 0600 for files. Notes change nothing in the exit status: bytes
//! of a partial file past its acknowledged offset (the next chunk cuts them off anyway).
//!
//! A plain check only reads (the SQLite store may add its `-wal`/`-shm` files), so it may run
//! beside a server; it then leaves out what uploads in progress look like (`tmp/` files, partial
//! bytes being written) and looks again at each problem before reporting it. `--repair` takes
//! the data-directory lock, so it never runs beside a server.

mod entry;
mod repair;
mod scan;

use crate::lock::{DataDirLock, LockError};
use crate::store::{SqliteStore, StoreError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who repairs record this as `deleted_by`.
pub const DELETED_BY: &str = "sfx check";
/// Where `--repair` moves the bytes of items it takes out of service (never deleted).
pub const QUARANTINE: &str = "quarantine";

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Fix what can be fixed safely.
    pub repair: bool,
    /// Compare sizes only, without re-hashing.
    pub quick: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Not something to check (or repair) item by item: missing, or laid out unlike a data
    /// directory. Nothing is changed.
    #[error("{0}")]
    Layout(String),
    #[error(
        "a server is using {}: stop it before `sfx check --repair` (a plain `sfx check` may run beside it)",
        .0.display()
    )]
    ServerRunning(PathBuf),
    #[error(transparent)]
    Lock(LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CheckError {
    let what = what.into();
    move |source| CheckError::Io { what, source }
}

/// What a check found (and repaired).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Live items (complete or not) in the metadata store.
    pub items: u64,
    pub problems: usize,
    pub repaired: usize,
}

impl Summary {
    /// 0: clean (or every problem repaired), 1: problems remain. (2, for errors, is the
    /// caller's.)
    pub fn exit_code(&self) -> i32 {
        if self.problems > self.repaired { 1 } else { 0 }
    }
}

/// One thing wrong (or worth a note), with what `--repair` would do about it.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// Relative to the data directory, e.g. `files/AbCdEfGh`.
    pub path: String,
    pub what: String,
    pub fix: repair::Fix,
    /// A note does not count as a problem.
    pub note: bool,
    /// The item it concerns, to look at again when a server is running.
    pub item: Option<String>,
}

/// Checks (and with `opts.repair`, repairs) the data directory `dir`, writing one line per
/// finding and a summary to `out`.
pub fn run(dir: &Path, opts: Options, out: &mut dyn Write) -> Result<Summary, CheckError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(layout(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(io_err(format!("cannot open {}", dir.display()))(e)),
    }
    let db = dir.join("sfx.db");
    match std::fs::symlink_metadata(&db) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(layout(format!("{} is not a regular file", db.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(layout(format!(
                "{} has no sfx.db: not an sfx data directory",
                dir.display()
            )));
        }
        Err(e) => return Err(io_err(format!("cannot open {}", db.display()))(e)),
    }
    let (_lock, server_running) = if opts.repair {
        let lock = DataDirLock::acquire(dir).map_err(|e| match e {
            LockError::Busy { .. } => CheckError::ServerRunning(dir.to_path_buf()),
            other => CheckError::Lock(other),
        })?;
        (Some(lock), false)
    } else {
        (None, DataDirLock::is_held(dir).map_err(CheckError::Lock)?)
    };
    let w = |e| io_err("writing the report")(e);
    writeln!(out, "checking {}", dir.display()).map_err(w)?;
    if server_running {
        writeln!(
            out,
            "note: a server is running on this data directory: only reading; uploads in progress are left out"
        )
        .map_err(w)?;
    }
    let store = SqliteStore::open(&db)?;
    let scan = scan::Scan::new(dir, opts.quick, server_running)?;
    let (items, findings) = scan.run(&store)?;
    let mut summary = Summary {
        items,
        ..Summary::default()
    };
    for f in &findings {
        let kind = if f.note { "note" } else { "problem" };
        writeln!(out, "{kind}: {}: {}", f.path, f.what).map_err(w)?;
        summary.problems += usize::from(!f.note);
    }
    if opts.repair {
        let mut fixer = repair::Repairer::new(dir, &store);
        for f in &findings {
            match fixer.apply(&f.fix) {
                Ok(Some(done)) => {
                    writeln!(out, "repaired: {}: {done}", f.path).map_err(w)?;
                    summary.repaired += usize::from(!f.note);
                }
                Ok(None) => {}
                Err(why) => writeln!(out, "not repaired: {}: {why}", f.path).map_err(w)?,
            }
        }
    }
    let mut line = format!(
        "checked {} items, {} problems",
        summary.items, summary.problems
    );
    if opts.repair {
        line.push_str(&format!(", {} repaired", summary.repaired));
    }
    writeln!(out, "{line}").map_err(w)?;
    Ok(summary)
}

fn layout(msg: String) -> CheckError {
    CheckError::Layout(msg)
}
