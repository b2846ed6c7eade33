//! What `--repair` does about a finding. Only safe things: it removes what was never
//! acknowledged (temp files, orphans, bytes past an acknowledged offset), takes items whose
//! bytes are missing or wrong out of service (marked deleted by `sfx check`), and moves bytes
//! it takes out of service to `quarantine/` instead of deleting them: they may be the only copy
//! of something a client was told had arrived.

use super::entry::{lstat, open_nofollow};
use super::{DELETED_BY, QUARANTINE};
use crate::blobs::{LocalBlobs, remove_entry};
use crate::items::ItemName;
use crate::store::MetaStore;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) enum Fix {
    /// Nothing safe to do; the text says what a human should (empty: nothing to say).
    None(&'static str),
    /// Never acknowledged (a temp file, an orphan): removed, without following a symlink.
    Remove(PathBuf),
    /// The item's bytes are missing or wrong: it is marked deleted, after its bytes (if any)
    /// are moved to quarantine/ and a non-regular entry in their place is removed.
    MarkDeleted {
        name: ItemName,
        quarantine: Option<PathBuf>,
        remove: Option<PathBuf>,
    },
    /// Bytes that belong to no item as they are, but might be the only copy of some: moved to
    /// quarantine/.
    Quarantine(PathBuf),
    /// Bytes past an acknowledged offset.
    Truncate {
        path: PathBuf,
        len: u64,
    },
    /// An interrupted completion: the bytes go back to partial/, cut to the acknowledged
    /// offset, so that the client's retry of its last chunk completes the upload (what server
    /// start-up does too).
    Restore {
        name: ItemName,
        offset: u64,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
}

pub(super) struct Repairer<'a> {
    dir: &'a Path,
    store: &'a dyn MetaStore,
}

impl<'a> Repairer<'a> {
    pub(super) fn new(dir: &'a Path, store: &'a dyn MetaStore) -> Repairer<'a> {
        Repairer { dir, store }
    }

    /// What was done (`None`: nothing to do), or why nothing was.
    pub(super) fn apply(&mut self, fix: &Fix) -> Result<Option<String>, String> {
        let io = |e: io::Error| e.to_string();
        match fix {
            Fix::None("") => Ok(None),
            Fix::None(why) => Err((*why).to_string()),
            Fix::Remove(path) => {
                remove_entry(path).map_err(io)?;
                sync_parent(path).map_err(io)?;
                Ok(Some("removed".into()))
            }
            Fix::MarkDeleted {
                name,
                quarantine,
                remove,
            } => {
                let mut done = Vec::new();
                // Bytes first: a crash before the metadata change leaves a live item without
                // its file (reported again), never bytes that the next start-up deletes.
                if let Some(bytes) = quarantine {
                    let to = self.quarantine(bytes).map_err(io)?;
                    done.push(format!("bytes moved to {}", self.shown(&to)));
                }
                let marked = self
                    .store
                    .mark_deleted(name, crate::now(), DELETED_BY)
                    .map_err(|e| e.to_string())?;
                if marked {
                    done.insert(0, format!("item {name} marked deleted by \"{DELETED_BY}\""));
                } else {
                    done.insert(0, format!("item {name} was deleted meanwhile"));
                }
                if let Some(path) = remove {
                    remove_entry(path).map_err(io)?;
                    sync_parent(path).map_err(io)?;
                    done.push("the entry in its place removed (not followed)".into());
                }
                Ok(Some(done.join("; ")))
            }
            Fix::Quarantine(path) => {
                let to = self.quarantine(path).map_err(io)?;
                Ok(Some(format!("moved to {}", self.shown(&to))))
            }
            Fix::Truncate { path, len } => {
                let file = open_nofollow(path, true).map_err(io)?;
                file.set_len(*len).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Some(format!("cut to the {len} acknowledged bytes")))
            }
            Fix::Restore { name, offset } => {
                // Both directories are real (checked before the scan): opening the blob store
                // follows no planted link, and only sets the modes they must have anyway.
                let blobs = LocalBlobs::open(self.dir).map_err(io)?;
                blobs.reopen_partial(name).map_err(io)?;
                let file = open_nofollow(&blobs.partial_path(name), true).map_err(io)?;
                file.set_len(*offset).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Some(format!(
                    "moved back to partial/{name}, cut to the {offset} acknowledged bytes; the client can resume"
                )))
            }
            Fix::Chmod { path, mode } => {
                set_mode(path, *mode).map_err(io)?;
                Ok(Some(format!("mode set to {mode:04o}")))
            }
        }
    }

    /// A path as shown: relative to the data directory.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(self.dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Moves `path` to `quarantine/` under a name not taken yet; returns where it went.
    fn quarantine(&self, path: &Path) -> io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.dir.join(QUARANTINE);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let base = path
            .file_name()
            .ok_or_else(|| io::Error::other("no file name"))?
            .to_string_lossy()
            .into_owned();
        let mut target = dir.join(&base);
        let mut n = 1;
        while lstat(&target)?.is_some() {
            target = dir.join(format!("{base}.{n}"));
            n += 1;
        }
        fs::rename(path, &target)?;
        // Private like everything in the data directory, whatever mode it had.
        set_mode(&target, 0o600)?;
        fs::File::open(&dir)?.sync_all()?;
        sync_parent(path)?;
        Ok(target)
    }
}

/// fchmod on what was opened without following a link, never chmod on a path.
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    open_nofollow(path, false)?.set_permissions(fs::Permissions::from_mode(mode))
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
