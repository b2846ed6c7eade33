//! `sfx import-bepasty DIR`: moves the items of a bepasty storage directory into an sfx data
//! directory under their bepasty names, so that old links keep working.
//!
//! Kept: name, filename (cleaned by sfx's rules), type, upload and last-download time, lifetime
//! and lock state. Each file is copied through the blob store's writer, which computes the
//! SHA-256 as it writes (checked against bepasty's hash when it has one) and fsyncs; the item's
//! metadata is recorded last, so an interrupted import leaves nothing half-visible. What cannot
//! be imported is skipped with its reason. A second run finds the items already there (same
//! name, same SHA-256) and changes nothing. It takes the data-directory lock, so it never runs
//! beside a server.

pub mod bepasty;
mod item;

pub use item::LABEL;

use crate::audit::Audit;
use crate::blobs::{BlobError, LocalBlobs};
use crate::config::Config;
use crate::lock::{DataDirLock, LockError};
use crate::store::{MetaStore, SqliteStore, StoreError};
use item::{Failure, Outcome, Target};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Report what would happen; change nothing.
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the bepasty storage directory {}: {source}", .dir.display())]
    Source { dir: PathBuf, source: io::Error },
    #[error(
        "a server is using {}: stop it before `sfx import-bepasty`",
        .0.display()
    )]
    ServerRunning(PathBuf),
    #[error(transparent)]
    Lock(LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("file store: {0}")]
    Blob(#[from] BlobError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("no metadata store to record items in")]
    NoStore,
}

impl ImportError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImportError {
        let what = what.into();
        move |source| ImportError::Io { what, source }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Imported now (with `--dry-run`: would be).
    pub imported: usize,
    /// Imported by an earlier run, unchanged.
    pub present: usize,
    pub skipped: usize,
}

impl Summary {
    /// 0: every item is in sfx now; 1: some were skipped. (2, for errors, is the caller's.)
    pub fn exit_code(&self) -> i32 {
        i32::from(self.skipped > 0)
    }
}

/// Imports the bepasty storage directory `source` into `config.data_dir`, writing one line per
/// imported or skipped item and a summary to `out`.
pub async fn run(
    config: &Config,
    source: &Path,
    opts: Options,
    out: &mut dyn Write,
) -> Result<Summary, ImportError> {
    let source_err = |e| ImportError::Source {
        dir: source.to_path_buf(),
        source: e,
    };
    if !std::fs::metadata(source).map_err(source_err)?.is_dir() {
        return Err(source_err(io::Error::other("not a directory")));
    }
    let (entries, orphans) = bepasty::list(source).map_err(source_err)?;
    let dir = &config.data_dir;
    let w = ImportError::io("writing the report");
    let verb = if opts.dry_run {
        "checking"
    } else {
        "importing"
    };
    writeln!(out, "{verb} {} into {}", source.display(), dir.display()).map_err(w)?;
    let mut summary = Summary::default();
    for name in &orphans {
        let w = ImportError::io("writing the report");
        writeln!(
            out,
            "skipped: {name}: a data file without metadata (no item in bepasty either)"
        )
        .map_err(w)?;
        summary.skipped += 1;
    }
    let opened = if opts.dry_run {
        None
    } else {
        Some(open_data_dir(config)?)
    };
    // A dry run only reads the store, if there is one.
    let reader = match (&opened, dir.join("sfx.db")) {
        (None, db) if db.is_file() => Some(SqliteStore::open_reader(&db)?),
        _ => None,
    };
    let target = Target {
        store: match (&opened, &reader) {
            (Some(o), _) => Some(o.store.as_ref()),
            (None, r) => r.as_ref().map(|r| r as &dyn MetaStore),
        },
        write: opened.as_ref().map(|o| (&o.blobs, &o.audit)),
        min_free: config.min_free_space,
        antivirus: config.antivirus.is_some(),
        now: crate::now(),
    };
    for entry in &entries {
        let w = ImportError::io("writing the report");
        match target.import(entry).await {
            Ok(Outcome::Imported(it)) | Ok(Outcome::WouldImport(it)) => {
                let verb = if opts.dry_run {
                    "would import"
                } else {
                    "imported"
                };
                writeln!(
                    out,
                    "{verb}: {}: {:?}, {} bytes{}",
                    it.name,
                    it.filename,
                    it.size,
                    if it.locked { ", locked" } else { "" }
                )
                .map_err(w)?;
                summary.imported += 1;
            }
            Ok(Outcome::Present) => summary.present += 1,
            Err(Failure::Skip(why)) => {
                writeln!(out, "skipped: {}: {why}", entry.name).map_err(w)?;
                summary.skipped += 1;
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
    let verb = if opts.dry_run {
        "would import"
    } else {
        "imported"
    };
    writeln!(
        out,
        "{verb} {}, already present {}, skipped {}",
        summary.imported, summary.present, summary.skipped
    )
    .map_err(ImportError::io("writing the report"))?;
    Ok(summary)
}

/// The data directory, opened as the server opens it (created if need be), and locked.
struct Opened {
    store: Arc<dyn MetaStore>,
    blobs: LocalBlobs,
    audit: Audit,
    _lock: DataDirLock,
}

fn open_data_dir(config: &Config) -> Result<Opened, ImportError> {
    let dir = &config.data_dir;
    // Customers' files: the service user's alone, as everything the server creates.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(dir)
        .and_then(|()| crate::state::make_private(dir))
        .map_err(ImportError::io(format!("cannot create {}", dir.display())))?;
    let lock = DataDirLock::acquire(dir).map_err(|e| match e {
        LockError::Busy { .. } => ImportError::ServerRunning(dir.clone()),
        other => ImportError::Lock(other),
    })?;
    let store: Arc<dyn MetaStore> = Arc::new(SqliteStore::open(&dir.join("sfx.db"))?);
    let audit = Audit::open(store.clone(), config.audit_log.clone())
        .map_err(ImportError::io("audit_log"))?;
    let blobs = LocalBlobs::open(dir).map_err(ImportError::io("cannot open the file store"))?;
    Ok(Opened {
        store,
        blobs,
        audit,
        _lock: lock,
    })
}
