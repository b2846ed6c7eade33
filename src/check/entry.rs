//! What is at a path in a data directory, looked at without following a symlink (`lstat`), and
//! opened the same way.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What `lstat` says is at a path.
#[derive(Debug, Clone, Copy)]
pub(super) enum Entry {
    Regular {
        len: u64,
        mode: u32,
        dev: u64,
        ino: u64,
    },
    Dir {
        mode: u32,
    },
    /// A symlink, FIFO, socket or device.
    Other(&'static str),
}

impl Entry {
    pub(super) fn of(meta: &fs::Metadata) -> Entry {
        let t = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if t.is_file() {
            Entry::Regular {
                len: meta.len(),
                mode,
                dev: meta.dev(),
                ino: meta.ino(),
            }
        } else if t.is_dir() {
            Entry::Dir { mode }
        } else if t.is_symlink() {
            Entry::Other("a symlink")
        } else if t.is_fifo() {
            Entry::Other("a FIFO")
        } else if t.is_socket() {
            Entry::Other("a socket")
        } else {
            Entry::Other("a device")
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Entry::Regular { .. } => "a file",
            Entry::Dir { .. } => "a directory",
            Entry::Other(kind) => kind,
        }
    }
}

/// `lstat`, with a missing path as `None`.
pub(super) fn lstat(path: &Path) -> io::Result<Option<Entry>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(Entry::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens what must be a regular file (or, read-only, a directory) without following a symlink,
/// and without blocking on a FIFO swapped in after the `lstat`.
pub(super) fn open_nofollow(path: &Path, write: bool) -> io::Result<fs::File> {
    let file = crate::blobs::open_no_follow(path, write)?;
    let t = file.metadata()?.file_type();
    if t.is_file() || (!write && t.is_dir()) {
        Ok(file)
    } else {
        Err(io::Error::other("not a regular file"))
    }
}
