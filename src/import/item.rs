//! One bepasty item: checked, compared with what sfx has, then copied through the blob store's
//! writer (which hashes while it writes and fsyncs) and recorded, metadata last.

use super::ImportError;
use super::bepasty::{self, Entry, Meta};
use crate::audit::{Audit, AuditEvent, Kind};
use crate::blobs::{BlobSink, BlobStore, LocalBlobs, Written};
use crate::items::{ItemName, fallback_filename, sanitize_content_type, sanitize_filename};
use crate::pages::format_time;
use crate::scan::ScanState;
use crate::store::{Item, ItemState, MetaStore, Uploader};
use bytes::BytesMut;
use std::io;
use std::time::UNIX_EPOCH;
use tokio::io::AsyncReadExt;

/// The uploader label of imported items (bepasty knew no uploaders).
pub const LABEL: &str = "bepasty-import";
/// Who the audit trail names for imports.
const BY: &str = "cli";
/// Bytes read from a data file at a time.
const CHUNK: usize = 1 << 20;

pub(super) enum Outcome {
    Imported(Item),
    /// Imported before, with the same content: nothing changed.
    Present,
    /// `--dry-run`: would be imported.
    WouldImport(Item),
}

pub(super) enum Failure {
    /// The item is left out, for this reason; the import goes on.
    Skip(String),
    /// The import stops.
    Fatal(ImportError),
}

impl<E: Into<ImportError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Fatal(e.into())
    }
}

fn skip(reason: impl Into<String>) -> Failure {
    Failure::Skip(reason.into())
}

/// Where items go: `None` parts for a dry run into a data directory without a store yet.
pub(super) struct Target<'a> {
    pub store: Option<&'a dyn MetaStore>,
    /// `None` for a dry run.
    pub write: Option<(&'a LocalBlobs, &'a Audit)>,
    pub min_free: u64,
    pub antivirus: bool,
    pub now: i64,
}

impl Target<'_> {
    pub async fn import(&self, entry: &Entry) -> Result<Outcome, Failure> {
        let name = ItemName::parse(&entry.name).ok_or_else(|| {
            skip("not a name sfx serves (8 characters of bepasty's alphabet), so its old links could not keep working")
        })?;
        let meta = bepasty::read_meta(&entry.meta).map_err(|e| skip(e.to_string()))?;
        if !meta.complete {
            return Err(skip("incomplete upload: bepasty never received all of it"));
        }
        if meta.max_life > 0 && meta.max_life <= self.now {
            return Err(skip(format!(
                "expired at {}",
                format_time(Some(meta.max_life))
            )));
        }
        let file = bepasty::open_data(&entry.data).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => skip("its data file is missing"),
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                skip("its data file is a symlink (never followed)")
            }
            _ => skip(format!("cannot open its data file: {e}")),
        })?;
        let stat = file
            .metadata()
            .map_err(|e| skip(format!("cannot read its data file: {e}")))?;
        let size = meta.size.unwrap_or(stat.len());
        if stat.len() != size {
            return Err(skip(format!(
                "its data file has {} bytes, its metadata says {size}",
                stat.len()
            )));
        }
        let mtime = stat
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let uploaded = meta
            .uploaded
            .unwrap_or_else(|| mtime.map_or(self.now, |d| d.as_secs() as i64));
        let mut item = self.item(name, &meta, size, uploaded);
        if let Some(store) = self.store {
            if let Some(have) = store.get(&item.name)? {
                return self.compare(&have, &meta, entry);
            }
            if store.name_used(&item.name)? {
                return Err(skip(
                    "the name was used in sfx and deleted since; sfx never gives a name out twice",
                ));
            }
        }
        let Some((blobs, audit)) = self.write else {
            return Ok(Outcome::WouldImport(item));
        };
        let written = copy(blobs, file, self.min_free).await?;
        if written.size != size {
            return Err(skip(format!(
                "its data file changed while it was copied ({} bytes instead of {size})",
                written.size
            )));
        }
        if !meta.hash.is_empty() && written.sha256 != meta.hash {
            return Err(skip(format!(
                "its data does not match its recorded SHA-256 (data {}, recorded {})",
                written.sha256, meta.hash
            )));
        }
        item.sha256 = written.sha256;
        self.commit(blobs, written.blob, &item).await?;
        audit
            .record(
                AuditEvent::new(Kind::Import, "", BY)
                    .item(&item.name)
                    .detail(format!(
                        "from bepasty: {} ({} bytes, sha256 {})",
                        item.filename, item.size, item.sha256
                    )),
            )
            .await;
        Ok(Outcome::Imported(item))
    }

    fn item(&self, name: ItemName, meta: &Meta, size: u64, uploaded: i64) -> Item {
        let content_type = meta
            .content_type
            .as_deref()
            .and_then(sanitize_content_type)
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let filename = meta
            .filename
            .as_deref()
            .and_then(sanitize_filename)
            .unwrap_or_else(|| fallback_filename(name.as_str(), &content_type));
        Item {
            name,
            filename,
            content_type,
            size,
            sha256: String::new(),
            state: ItemState::Complete,
            created_at: uploaded,
            completed_at: Some(uploaded),
            expires_at: (meta.max_life > 0).then_some(meta.max_life),
            downloaded_at: (meta.downloaded > 0).then_some(meta.downloaded),
            locked: meta.locked,
            uploader: Uploader {
                label: LABEL.to_string(),
                client_ip: String::new(),
                user_agent: String::new(),
                link: None,
            },
            reference: None,
            comment: None,
            // With antivirus on, imported items are scanned before operators get them.
            scan: self.antivirus.then_some(ScanState::Scanning),
        }
    }

    /// The name is live in sfx: the same content means imported before.
    fn compare(&self, have: &Item, meta: &Meta, entry: &Entry) -> Result<Outcome, Failure> {
        let sha256 = if meta.hash.is_empty() {
            // bepasty never computed it: hash its file (never sfx's copy).
            let h = crate::blobs::hash_file(&entry.data, None)
                .map_err(|e| skip(format!("cannot read its data file: {e}")))?;
            hex::encode(sha2::Digest::finalize(h))
        } else {
            meta.hash.clone()
        };
        if have.sha256 == sha256 {
            return Ok(Outcome::Present);
        }
        Err(skip(format!(
            "the name is taken in sfx by other content ({:?}, {} bytes, sha256 {})",
            have.filename, have.size, have.sha256
        )))
    }

    /// Publishes the blob under the item's name, makes that durable, then records the item.
    async fn commit(
        &self,
        blobs: &LocalBlobs,
        blob: tempfile::TempPath,
        item: &Item,
    ) -> Result<(), ImportError> {
        if let Err(back) = blobs.publish(blob, &item.name).await? {
            // A file without metadata (an interrupted import): nothing names it, replace it.
            BlobStore::remove(blobs, &item.name)
                .await
                .map_err(ImportError::io("removing a leftover file"))?;
            if blobs.publish(back, &item.name).await?.is_err() {
                return Err(ImportError::Io {
                    what: format!("publishing {}", item.name),
                    source: io::Error::from(io::ErrorKind::AlreadyExists),
                });
            }
        }
        blobs
            .sync_published()
            .await
            .map_err(ImportError::io("syncing the file store"))?;
        let store = self.store.ok_or(ImportError::NoStore)?;
        if let Err(e) = store.insert(std::slice::from_ref(item), None) {
            let _ = BlobStore::remove(blobs, &item.name).await;
            return Err(e.into());
        }
        Ok(())
    }
}

/// Streams a data file through the blob store's writer: hashed while written, fsynced.
async fn copy(blobs: &LocalBlobs, file: std::fs::File, min_free: u64) -> Result<Written, Failure> {
    let mut writer = blobs.stage(min_free).await?;
    let mut file = tokio::fs::File::from_std(file);
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        // A bad source file skips the item; the writer's errors (sfx's disk) stop the import.
        let n = file
            .read_buf(&mut buf)
            .await
            .map_err(|e| skip(format!("cannot read its data file: {e}")))?;
        if n == 0 {
            break;
        }
        writer.write(buf.freeze()).await?;
    }
    Ok(BlobSink::finish(writer).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{'filename': '../a\u202eb.txt', 'size': 2, 'timestamp-upload': 1000,
    /// 'timestamp-download': 2000, 'timestamp-max-life': 3000, 'locked': True, ...}`, protocol 2.
    const META: &[u8] = b"\x80\x02}q\x00(X\x08\x00\x00\x00filenameq\x01X\x0c\x00\x00\x00../a\xe2\x80\xaeb.txtq\x02X\x04\x00\x00\x00sizeq\x03K\x02X\x10\x00\x00\x00timestamp-uploadq\x04M\xe8\x03X\x12\x00\x00\x00timestamp-downloadq\x05M\xd0\x07X\x12\x00\x00\x00timestamp-max-lifeq\x06M\xb8\x0bX\x06\x00\x00\x00lockedq\x07\x88X\x08\x00\x00\x00completeq\x08\x88X\x04\x00\x00\x00hashq\x09X\x00\x00\x00\x00q\x0au.";

    fn dry_run(now: i64) -> Target<'static> {
        Target {
            store: None,
            write: None,
            min_free: 0,
            antivirus: true,
            now,
        }
    }

    #[tokio::test]
    async fn keeps_times_and_lock_cleans_the_filename_and_skips_the_expired() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AbCdEfGh.meta"), META).unwrap();
        std::fs::write(dir.path().join("AbCdEfGh.data"), b"hi").unwrap();
        let (entries, orphans) = bepasty::list(dir.path()).unwrap();
        assert!(orphans.is_empty());
        let Ok(Outcome::WouldImport(item)) = dry_run(2999).import(&entries[0]).await else {
            panic!("importable before its expiry");
        };
        assert_eq!(item.filename, "ab.txt", "no directory, no bidi override");
        assert_eq!(item.content_type, "application/octet-stream");
        assert_eq!((item.created_at, item.downloaded_at), (1000, Some(2000)));
        assert_eq!(item.expires_at, Some(3000));
        assert!(item.locked && item.scan == Some(ScanState::Scanning));
        match dry_run(3000).import(&entries[0]).await {
            Err(Failure::Skip(why)) => assert!(why.starts_with("expired at "), "{why}"),
            _ => panic!("an expired item is skipped"),
        }
    }
}
