//! Walking a data directory and holding what is there against the metadata. Never follows a
//! symlink: entries are looked at with `lstat`, and files are opened with `O_NOFOLLOW`.

use super::entry::{Entry, lstat};
use super::repair::Fix;
use super::{CheckError, Finding, io_err, layout};
use crate::items::ItemName;
use crate::store::{Item, ItemState, MetaStore};
use sha2::Digest;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// Top-level files that must be regular files (the SQLite store's, the session key, ...).
const REGULAR_FILES: [&str; 6] = [
    "sfx.db",
    "sfx.db-wal",
    "sfx.db-shm",
    "session.key",
    "admin-secret",
    crate::lock::LOCK_FILE,
];
/// Items read from the store at a time.
const PAGE: u64 = 500;

/// SHA-256 of a file, streamed (never the whole file in memory).
fn sha256_file(path: &Path) -> io::Result<String> {
    crate::blobs::hash_file(path, None).map(|h| hex::encode(h.finalize()))
}

pub(super) struct Scan {
    dir: PathBuf,
    files: PathBuf,
    partial: PathBuf,
    quick: bool,
    server_running: bool,
}

impl Scan {
    /// Fails (changing nothing) when `files/` or `partial/` is missing or not a real directory:
    /// judging items by what is (not) in there could then take every one of them out of service.
    pub(super) fn new(dir: &Path, quick: bool, server_running: bool) -> Result<Scan, CheckError> {
        for sub in ["files", "partial"] {
            match lstat(&dir.join(sub)) {
                Ok(Some(Entry::Dir { .. })) => {}
                Ok(Some(e)) => {
                    return Err(layout(format!(
                        "{sub}/ in {} is {} where a directory belongs; sfx check does not follow it",
                        dir.display(),
                        e.kind()
                    )));
                }
                Ok(None) => {
                    return Err(layout(format!(
                        "{} has no {sub}/ directory (a server creates it at start)",
                        dir.display()
                    )));
                }
                Err(e) => return Err(io_err(format!("cannot look at {sub}/"))(e)),
            }
        }
        Ok(Scan {
            dir: dir.to_path_buf(),
            files: dir.join("files"),
            partial: dir.join("partial"),
            quick,
            server_running,
        })
    }

    /// Returns the number of live items and the findings, in a stable order.
    pub(super) fn run(&self, store: &dyn MetaStore) -> Result<(u64, Vec<Finding>), CheckError> {
        let mut out = Vec::new();
        self.top_level(&mut out)?;
        // Directories are listed before the metadata is read: an upload committed in between
        // (file first, metadata second) then has its metadata, and is no orphan.
        let mut orphans: BTreeSet<OsString> = self.names_in(&self.files)?;
        orphans.extend(self.names_in(&self.partial)?);
        let mut items = 0u64;
        let mut after: Option<ItemName> = None;
        loop {
            let page = store.list_by_name(after.as_ref(), PAGE, true)?;
            for item in &page {
                items += 1;
                orphans.remove(OsStr::new(item.name.as_str()));
                out.extend(self.examine(OsStr::new(item.name.as_str()), Some(item))?);
            }
            match page.last() {
                Some(last) if page.len() as u64 == PAGE => after = Some(last.name.clone()),
                _ => break,
            }
        }
        for name in &orphans {
            out.extend(self.examine(name, None)?);
        }
        if self.server_running {
            out = self.look_again(store, out)?;
        }
        Ok((items, out))
    }

    /// With a server running, what looked wrong may have been an upload or a delete in progress:
    /// each item with findings is examined once more, from fresh metadata.
    fn look_again(
        &self,
        store: &dyn MetaStore,
        first: Vec<Finding>,
    ) -> Result<Vec<Finding>, CheckError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for f in first {
            let Some(name) = f.item.clone() else {
                out.push(f);
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let item = match ItemName::parse(&name) {
                Some(n) => store.get(&n)?,
                None => None,
            };
            out.extend(self.examine(OsStr::new(&name), item.as_ref())?);
        }
        Ok(out)
    }

    /// The data directory's own entries: types of the known files, modes of everything (the
    /// contents of `files/` and `partial/` are the items', looked at with them).
    fn top_level(&self, out: &mut Vec<Finding>) -> Result<(), CheckError> {
        let meta = fs::metadata(&self.dir).map_err(io_err("cannot look at the data directory"))?;
        if let Entry::Dir { mode } = Entry::of(&meta) {
            mode_finding(out, ".", &self.dir, mode, DIR_MODE);
        }
        for (name, path) in self.entries(&self.dir)? {
            let rel = name.to_string_lossy().into_owned();
            let entry = lstat(&path).map_err(io_err(format!("cannot look at {rel}")))?;
            let Some(entry) = entry else { continue };
            match rel.as_str() {
                "files" | "partial" => mode_of(out, &rel, &path, entry),
                "tmp" => self.tmp(out, &path, entry)?,
                _ if REGULAR_FILES.contains(&rel.as_str()) => match entry {
                    Entry::Regular { .. } => mode_of(out, &rel, &path, entry),
                    other => out.push(Finding {
                        path: rel,
                        what: format!(
                            "{} where a regular file belongs (never followed)",
                            other.kind()
                        ),
                        fix: Fix::None("replace it by hand"),
                        note: false,
                        item: None,
                    }),
                },
                // quarantine/ and whatever else an operator keeps here: private, all the way
                // down.
                _ => self.modes_below(out, &rel, &path, entry)?,
            }
        }
        Ok(())
    }

    /// `tmp/`: every entry is a crash's leftover, or (with a server running) an upload in
    /// progress.
    fn tmp(&self, out: &mut Vec<Finding>, path: &Path, entry: Entry) -> Result<(), CheckError> {
        let Entry::Dir { .. } = entry else {
            out.push(Finding {
                path: "tmp".into(),
                what: format!("{} where a directory belongs", entry.kind()),
                fix: Fix::None("move it away by hand; the server recreates tmp/"),
                note: false,
                item: None,
            });
            return Ok(());
        };
        mode_of(out, "tmp", path, entry);
        let entries = self.entries(path)?;
        if self.server_running {
            if !entries.is_empty() {
                out.push(Finding {
                    path: "tmp".into(),
                    what: format!("{} uploads in progress", entries.len()),
                    fix: Fix::None(""),
                    note: true,
                    item: None,
                });
            }
            return Ok(());
        }
        for (name, p) in entries {
            let kind = lstat(&p).ok().flatten().map_or("an entry", |e| e.kind());
            out.push(Finding {
                path: format!("tmp/{}", name.to_string_lossy()),
                what: format!("{kind} left by an interrupted upload"),
                fix: Fix::Remove(p),
                note: false,
                item: None,
            });
        }
        Ok(())
    }

    fn modes_below(
        &self,
        out: &mut Vec<Finding>,
        rel: &str,
        path: &Path,
        entry: Entry,
    ) -> Result<(), CheckError> {
        mode_of(out, rel, path, entry);
        if let Entry::Dir { .. } = entry {
            for (name, p) in self.entries(path)? {
                let child = format!("{rel}/{}", name.to_string_lossy());
                if let Some(e) = lstat(&p).map_err(io_err(format!("cannot look at {child}")))? {
                    self.modes_below(out, &child, &p, e)?;
                }
            }
        }
        Ok(())
    }

    fn entries(&self, dir: &Path) -> Result<Vec<(OsString, PathBuf)>, CheckError> {
        let what = || format!("cannot list {}", dir.display());
        let mut v = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(what()))? {
            let entry = entry.map_err(io_err(what()))?;
            v.push((entry.file_name(), entry.path()));
        }
        v.sort();
        Ok(v)
    }

    fn names_in(&self, dir: &Path) -> Result<BTreeSet<OsString>, CheckError> {
        Ok(self.entries(dir)?.into_iter().map(|(n, _)| n).collect())
    }

    /// Everything about one name: its metadata (if live), `files/<name>` and `partial/<name>`.
    fn examine(&self, name: &OsStr, item: Option<&Item>) -> Result<Vec<Finding>, CheckError> {
        let shown = name.to_string_lossy().into_owned();
        let (fpath, ppath) = (self.files.join(name), self.partial.join(name));
        let (frel, prel) = (format!("files/{shown}"), format!("partial/{shown}"));
        let look = |p: &Path, rel: &str| lstat(p).map_err(io_err(format!("cannot look at {rel}")));
        let (file, part) = (look(&fpath, &frel)?, look(&ppath, &prel)?);
        let mut out = Vec::new();
        let mut add = |path: &str, what: String, fix: Fix| {
            out.push(Finding {
                path: path.to_string(),
                what,
                fix,
                note: false,
                item: Some(shown.clone()),
            })
        };
        let Some(item) = item else {
            if let Some(e) = file {
                add(
                    &frel,
                    format!(
                        "{} without live metadata (never acknowledged, or deleted)",
                        e.kind()
                    ),
                    Fix::Remove(fpath),
                );
            }
            if let Some(e) = part {
                add(
                    &prel,
                    format!("{} without an incomplete upload", e.kind()),
                    Fix::Remove(ppath),
                );
            }
            return Ok(out);
        };
        let name = item.name.clone();
        let mark = |bytes: Option<PathBuf>, remove: Option<PathBuf>| Fix::MarkDeleted {
            name: name.clone(),
            quarantine: bytes,
            remove,
        };
        let mut modes = Vec::new();
        match item.state {
            ItemState::Complete => {
                match file {
                    None => add(
                        &frel,
                        format!("complete item ({} bytes): its file is missing", item.size),
                        mark(None, None),
                    ),
                    Some(Entry::Regular { len, mode, .. }) => {
                        mode_finding(&mut modes, &frel, &fpath, mode, FILE_MODE);
                        if len != item.size {
                            add(
                                &frel,
                                format!("has {len} bytes, its metadata says {}", item.size),
                                mark(Some(fpath.clone()), None),
                            );
                        } else if !self.quick {
                            match sha256_file(&fpath) {
                                Ok(sha) if sha != item.sha256 => add(
                                    &frel,
                                    format!("SHA-256 is {sha}, its metadata says {}", item.sha256),
                                    mark(Some(fpath.clone()), None),
                                ),
                                Ok(_) => {}
                                Err(e) if e.kind() == io::ErrorKind::NotFound => add(
                                    &frel,
                                    "complete item: its file is missing".into(),
                                    mark(None, None),
                                ),
                                Err(e) => add(
                                    &frel,
                                    format!("cannot be read: {e}"),
                                    Fix::None("look at it by hand"),
                                ),
                            }
                        }
                    }
                    Some(e) => add(
                        &frel,
                        format!(
                            "{} where the item's file belongs (never followed)",
                            e.kind()
                        ),
                        mark(None, Some(fpath.clone())),
                    ),
                }
                if let Some(e) = part {
                    // Only a leftover if the item's own file is there in full; otherwise
                    // it may be the only copy of the bytes.
                    let whole =
                        matches!(file, Some(Entry::Regular { len, .. }) if len == item.size);
                    let fix = match e {
                        Entry::Regular { .. } if !whole => Fix::Quarantine(ppath),
                        _ => Fix::Remove(ppath),
                    };
                    add(
                        &prel,
                        format!("{} left beside a complete item", e.kind()),
                        fix,
                    );
                }
            }
            ItemState::Incomplete => {
                let offset = item.size;
                match (file, part) {
                    // The completion moved the bytes to files/ but was not recorded.
                    (Some(Entry::Regular { len, .. }), None) => {
                        if len < offset {
                            add(
                                &frel,
                                format!("has {len} bytes, {offset} were acknowledged"),
                                mark(Some(fpath.clone()), None),
                            );
                        } else {
                            add(
                                &frel,
                                format!(
                                    "the upload's completion was interrupted ({offset} bytes acknowledged)"
                                ),
                                Fix::Restore {
                                    name: name.clone(),
                                    offset,
                                },
                            );
                        }
                        return Ok(out);
                    }
                    (
                        Some(Entry::Regular { dev, ino, .. }),
                        Some(Entry::Regular {
                            dev: pdev,
                            ino: pino,
                            ..
                        }),
                    ) if (dev, ino) == (pdev, pino) => add(
                        &frel,
                        "the upload's completion was interrupted (both names left)".into(),
                        Fix::Restore {
                            name: name.clone(),
                            offset,
                        },
                    ),
                    (Some(e), _) => add(
                        &frel,
                        format!(
                            "{} in files/ although its upload is incomplete (never acknowledged as complete)",
                            e.kind()
                        ),
                        match e {
                            Entry::Regular { .. } => Fix::Quarantine(fpath.clone()),
                            _ => Fix::Remove(fpath.clone()),
                        },
                    ),
                    (None, _) => {}
                }
                match part {
                    None => add(
                        &prel,
                        format!(
                            "incomplete upload ({offset} bytes acknowledged) without a partial file"
                        ),
                        mark(None, None),
                    ),
                    Some(Entry::Regular { len, mode, .. }) => {
                        mode_finding(&mut modes, &prel, &ppath, mode, FILE_MODE);
                        if len < offset {
                            add(
                                &prel,
                                format!("has {len} bytes, {offset} were acknowledged"),
                                mark(Some(ppath.clone()), None),
                            );
                        } else if len > offset && !self.server_running {
                            out.push(Finding {
                                path: prel.clone(),
                                what: format!(
                                    "{} bytes past the {offset} acknowledged (the next chunk cuts them off)",
                                    len - offset
                                ),
                                fix: Fix::Truncate { path: ppath.clone(), len: offset },
                                note: true,
                                item: Some(shown.clone()),
                            });
                        }
                    }
                    Some(e) => add(
                        &prel,
                        format!(
                            "{} where the partial file belongs (never followed)",
                            e.kind()
                        ),
                        mark(None, Some(ppath.clone())),
                    ),
                }
            }
        }
        for mut m in modes {
            m.item = Some(shown.clone());
            out.push(m);
        }
        Ok(out)
    }
}

fn mode_of(out: &mut Vec<Finding>, rel: &str, path: &Path, entry: Entry) {
    match entry {
        Entry::Regular { mode, .. } => mode_finding(out, rel, path, mode, FILE_MODE),
        Entry::Dir { mode } => mode_finding(out, rel, path, mode, DIR_MODE),
        Entry::Other(_) => {}
    }
}

fn mode_finding(out: &mut Vec<Finding>, rel: &str, path: &Path, mode: u32, want: u32) {
    if mode != want {
        out.push(Finding {
            path: rel.to_string(),
            what: format!("mode {mode:04o}, should be {want:04o}"),
            fix: Fix::Chmod {
                path: path.to_path_buf(),
                mode: want,
            },
            note: false,
            item: None,
        });
    }
}
