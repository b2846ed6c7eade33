//! The data-directory lock: an exclusive `flock` on `<data_dir>/lock`, held by a server for its
//! whole life (and by `sfx check --repair` while it runs), so that two processes never change
//! one data directory at once. The kernel releases it when the process dies, even by `kill -9`,
//! so a crash never leaves a stale lock behind. The file is never removed: removing a lock file
//! lets a second process lock a new file of the same name while the first still holds the old.

use rustix::fs::{FlockOperation, flock};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the data directory {} is in use by another sfx process (it holds {}); stop that process first",
        .dir.display(),
        .path.display()
    )]
    Busy { dir: PathBuf, path: PathBuf },
    #[error("cannot lock {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Held while it lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `dir` (which must exist), or fails at once if another process has it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            // A symlink planted as `lock` is never followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(LockError::Busy {
                dir: dir.to_path_buf(),
                path,
            }),
            Err(e) => Err(io_err(e.into())),
        }
    }

    /// True if another process holds the lock of `dir` now (a running server). Changes nothing:
    /// a missing lock file is not created, and the lock is not kept.
    pub fn is_held(dir: &Path) -> Result<bool, LockError> {
        let path = dir.join(LOCK_FILE);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(LockError::Io { path, source }),
        };
        // A shared lock conflicts with the server's exclusive one; dropping `file` releases it.
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            Ok(()) => Ok(false),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
            Err(e) => Err(LockError::Io {
                path,
                source: e.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!DataDirLock::is_held(dir.path()).unwrap());
        let held = DataDirLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts too.
        assert!(DataDirLock::is_held(dir.path()).unwrap());
        assert!(matches!(
            DataDirLock::acquire(dir.path()),
            Err(LockError::Busy { .. })
        ));
        drop(held);
        assert!(!DataDirLock::is_held(dir.path()).unwrap());
        let _again = DataDirLock::acquire(dir.path()).unwrap();
    }
}
