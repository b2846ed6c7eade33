//! The bytes of items on disk.
//!
//! ```text
//! <data_dir>/files/<name>   committed items (renamed here only after fsync)
//! <data_dir>/tmp/           uploads in progress; emptied at start-up
//! <data_dir>/partial/<name> resumable (REST) uploads not yet complete; kept across restarts
//! <data_dir>/reserve        a little allocated space, given up so that deletes work on a full disk
//! ```
//! Files are only ever addressed by server-generated [`ItemName`]s, never by client input.

mod any;
mod backend;
mod pool;
pub mod s3;
mod writer;

pub use any::{AnyBlob, Blobs};
pub use backend::{BlobSink, BlobStore, ByteStream};
pub use s3::S3Blobs;
pub use writer::{Appended, BlobWriter, Finished, Written};

use crate::items::ItemName;
use sha2::Sha256;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use tempfile::TempPath;

/// Largest reserve file (see [`LocalBlobs::ensure_reserve`]).
const RESERVE_MAX: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the disk is full")]
    DiskFull,
    #[error("not enough free space: the upload would leave less than the configured minimum")]
    LowSpace,
    #[error("the upload was abandoned")]
    Aborted,
    /// The object store or the ledger cannot be reached: nothing new was stored.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another instance is writing to this upload (it holds the lease).
    #[error("another server is writing to this upload")]
    Busy,
    #[error("storage I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> Self {
        if is_disk_full(&e) {
            BlobError::DiskFull
        } else {
            BlobError::Io(e)
        }
    }
}

pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// What start-up cleaning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub temp_files: usize,
    pub orphans: usize,
}

#[derive(Clone)]
pub struct LocalBlobs {
    files: PathBuf,
    tmp: PathBuf,
    partial: PathBuf,
    reserve: PathBuf,
    /// The threads that write and hash uploads.
    pool: std::sync::Arc<pool::Pool>,
}

impl std::fmt::Debug for LocalBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlobs")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl LocalBlobs {
    pub fn open(data_dir: &Path) -> io::Result<LocalBlobs> {
        let store = LocalBlobs {
            files: data_dir.join("files"),
            tmp: data_dir.join("tmp"),
            partial: data_dir.join("partial"),
            reserve: data_dir.join("reserve"),
            pool: writer::new_pool()?,
        };
        for dir in [&store.files, &store.tmp, &store.partial] {
            fs::create_dir_all(dir)?;
            restrict_dir(dir)?;
        }
        if let Err(e) = store.ensure_reserve() {
            tracing::warn!(error = %e, "no space for the reserve file: deletes on a full disk may fail");
        }
        Ok(store)
    }

    /// Creates the reserve file if it is missing: real, allocated space (1/64 of the
    /// filesystem, at most 8 MiB) that nothing else uses.
    pub fn ensure_reserve(&self) -> io::Result<()> {
        let st = rustix::fs::statvfs(&self.files).map_err(io::Error::from)?;
        let size = (st.f_blocks.saturating_mul(st.f_frsize) / 64).min(RESERVE_MAX);
        if fs::metadata(&self.reserve).is_ok_and(|m| m.len() >= size) {
            return Ok(());
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.reserve)?;
        let made = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
            .map_err(io::Error::from)
            .and_then(|()| file.sync_all());
        if let Err(e) = made {
            drop(file);
            let _ = fs::remove_file(&self.reserve);
            return Err(e);
        }
        Ok(())
    }

    /// Gives the reserve's space back to the filesystem (the disk is full and the metadata
    /// store must record a deletion). True if there was a reserve.
    pub fn release_reserve(&self) -> bool {
        fs::remove_file(&self.reserve).is_ok()
    }

    /// Removes what a crash can leave behind: temporary files, committed files whose metadata
    /// never became visible (or was deleted), and partial files of no incomplete upload.
    /// `live` names every live item, `incomplete` those of them still being uploaded.
    pub fn clean_up(
        &self,
        live: &HashSet<String>,
        incomplete: &HashSet<String>,
    ) -> io::Result<Cleanup> {
        let mut report = Cleanup::default();
        for entry in fs::read_dir(&self.tmp)? {
            remove_entry(&entry?.path())?;
            report.temp_files += 1;
        }
        for (dir, keep) in [(&self.files, live), (&self.partial, incomplete)] {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.file_name().to_str().is_some_and(|n| keep.contains(n)) {
                    remove_entry(&entry.path())?;
                    report.orphans += 1;
                }
            }
        }
        Ok(report)
    }

    /// Creates the (empty) partial file of a new resumable upload.
    pub fn create_partial(&self, name: &ItemName) -> io::Result<fs::File> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.partial_path(name))?;
        fs::File::open(&self.partial)?.sync_all()?;
        Ok(file)
    }

    /// Opens a partial file to append at `offset`: bytes past it were never acknowledged (a
    /// crash or failed request after writing them) and are cut off.
    pub fn open_partial(&self, name: &ItemName, offset: u64) -> io::Result<fs::File> {
        let file = open_regular(&self.partial_path(name), true)?;
        if file.metadata()?.len() != offset {
            file.set_len(offset)?;
        }
        Ok(file)
    }

    /// Moves a completed partial file to its final place (never replacing anything).
    pub fn finish_partial(&self, name: &ItemName) -> io::Result<()> {
        let (source, target) = (self.partial_path(name), self.path(name));
        // link + unlink: atomic, and fails instead of replacing an existing file, unless that
        // file is this very one (a crash between the two steps left both names).
        match fs::hard_link(&source, &target) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && same_file(&source, &target)? => {}
            other => other?,
        }
        fs::remove_file(&source)?;
        fs::File::open(&self.files)?.sync_all()?;
        fs::File::open(&self.partial)?.sync_all()
    }

    /// Undoes [`LocalBlobs::finish_partial`] (when the item could not be recorded complete):
    /// the bytes go back to `partial/`, so the client's retry of its last chunk completes it.
    pub fn reopen_partial(&self, name: &ItemName) -> io::Result<()> {
        let (source, target) = (self.path(name), self.partial_path(name));
        if target.exists() {
            // Both names left by a crash between link and unlink: drop the extra one.
            if same_file(&source, &target)? {
                fs::remove_file(&source)?;
                return fs::File::open(&self.files)?.sync_all();
            }
            return Err(io::Error::other(format!(
                "{} and its partial file differ",
                name
            )));
        }
        fs::rename(&source, &target)?;
        fs::File::open(&self.partial)?.sync_all()?;
        fs::File::open(&self.files)?.sync_all()
    }

    pub fn remove_partial(&self, name: &ItemName) -> io::Result<()> {
        match fs::remove_file(self.partial_path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn partial_path(&self, name: &ItemName) -> PathBuf {
        self.partial.join(name.as_str())
    }

    /// A new, empty temporary file on the same filesystem as the committed files.
    pub fn new_temp(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("up-")
            .suffix(".part")
            .tempfile_in(&self.tmp)
    }

    /// Moves a fully written (and fsynced) temp file to its final name without replacing
    /// anything. The rename is durable only after [`LocalBlobs::sync_files`], which the caller
    /// runs once for all the files it commits together, before recording them.
    /// `Ok(Err(temp))` hands the temp file back when a file of that name exists already.
    pub fn commit(
        &self,
        temp: TempPath,
        name: &ItemName,
    ) -> Result<Result<(), TempPath>, BlobError> {
        match temp.persist_noclobber(self.path(name)) {
            Ok(()) => {}
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(Err(e.path)),
            Err(e) => return Err(e.error.into()),
        }
        Ok(Ok(()))
    }

    /// Makes the renames into `files/` durable (fsync of the directory).
    pub fn sync_files(&self) -> io::Result<()> {
        fs::File::open(&self.files)?.sync_all()
    }

    pub fn path(&self, name: &ItemName) -> PathBuf {
        self.files.join(name.as_str())
    }

    /// Opens a committed item's file for reading (see [`open_regular`]).
    pub fn open_item(&self, name: &ItemName) -> io::Result<fs::File> {
        open_regular(&self.path(name), false)
    }

    /// Removes an item's file; a missing file is not an error.
    pub fn remove(&self, name: &ItemName) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes available to us on the data filesystem.
    pub fn free_space(&self) -> io::Result<u64> {
        free_space(&self.files)
    }

    pub(crate) fn files_dir(&self) -> &Path {
        &self.files
    }

    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    fn pool(&self) -> &std::sync::Arc<pool::Pool> {
        &self.pool
    }
}

/// Opens `path` without ever following a symlink (`O_NOFOLLOW`) and without blocking on a FIFO
/// someone planted (`O_NONBLOCK`; it changes nothing for regular files), whatever it is.
pub fn open_no_follow(path: &Path, write: bool) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Opens `path` only if it is a regular file (see [`open_no_follow`]).
pub fn open_regular(path: &Path, write: bool) -> io::Result<fs::File> {
    let file = open_no_follow(path, write)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// The SHA-256 state after the first `len` bytes of a regular file (all of it for `None`),
/// streamed; with a `len`, a shorter file is an error. Only for what has no hash state in
/// memory: a resumed upload after a restart, `sfx check`.
pub fn hash_file(path: &Path, len: Option<u64>) -> io::Result<Sha256> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = open_regular(path, false)?.take(len.unwrap_or(u64::MAX));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(len) = len
        && read != len
    {
        return Err(io::Error::other(format!(
            "{} has {read} bytes, {len} were expected",
            path.display()
        )));
    }
    Ok(hasher)
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Removes a file, a symlink (not its target) or a directory tree; a missing path is fine.
pub(crate) fn remove_entry(path: &Path) -> io::Result<()> {
    // symlink_metadata: never follow a link planted in our directories.
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn restrict_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_never_replaces_and_cleanup_removes_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let name = ItemName::parse("AAAAAAAA").unwrap();
        let t1 = store.new_temp().unwrap().into_temp_path();
        assert!(store.commit(t1, &name).unwrap().is_ok());
        let t2 = store.new_temp().unwrap().into_temp_path();
        let back = store
            .commit(t2, &name)
            .unwrap()
            .expect_err("an existing file is never replaced");
        assert!(back.exists(), "the temp file is handed back intact");
        drop(back);
        let _left = store.new_temp().unwrap().keep().unwrap();
        let report = store.clean_up(&HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(
            report,
            Cleanup {
                temp_files: 1,
                orphans: 1
            }
        );
        assert!(!store.path(&name).exists());
    }
}
