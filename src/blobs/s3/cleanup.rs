//! What crashes leave in the bucket, found and removed by the sweeper (`crate::sweeper`):
//! objects without an item, multipart uploads whose ledger entry went idle, open multipart
//! uploads no ledger entry records (S3's list of them, `uploads`), and the ledgers of
//! completed items. Nothing a writer touched within `leftover_age` is taken.

use super::S3Blobs;
use super::io_error;
use super::uploads::OpenUpload;
use object_store::ObjectStoreExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use std::io;

impl S3Blobs {
    /// True once per `leftover_age` (and at the first sweep): time for [`S3Blobs::clean_up`].
    pub fn clean_up_due(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = crate::now();
        let last = self.inner.cleaned_at.load(Ordering::Relaxed);
        let every = i64::try_from(self.inner.leftover_age.as_secs()).unwrap_or(3600);
        now - last >= every
            && self
                .inner
                .cleaned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Removes what a crash left behind: objects no item has and multipart uploads no writer
    /// touched for `leftover_age` (younger ones may be another instance's work in progress),
    /// and the ledgers of uploads that completed or were deleted.
    pub async fn clean_up(
        &self,
        live: &std::collections::HashSet<String>,
        incomplete: &std::collections::HashSet<String>,
    ) -> io::Result<usize> {
        let age = i64::try_from(self.inner.leftover_age.as_secs()).unwrap_or(3600);
        let mut removed = 0;
        for (name, seconds) in self.listing().await? {
            if seconds > age && !live.contains(name.as_str()) {
                self.inner
                    .s3
                    .delete(&self.path(&name))
                    .await
                    .map_err(io_error)?;
                removed += 1;
            }
        }
        let before = crate::now() - age;
        let idle = self
            .ledger(move |l| l.ledger_idle(before, 1000))
            .await
            .map_err(io::Error::other)?;
        let files = format!("{}files/", self.inner.prefix);
        for entry in idle {
            let name = entry.key.strip_prefix(&files).unwrap_or_default();
            // A resumable upload still open keeps its ledger for as long as the item lives.
            if entry.resumable && !entry.published && incomplete.contains(name) {
                continue;
            }
            if entry.published && incomplete.contains(name) {
                continue;
            }
            self.abort(&entry).await?;
            let key = entry.key.clone();
            self.ledger(move |l| l.ledger_remove(&key).map(drop))
                .await
                .map_err(io::Error::other)?;
            removed += 1;
        }
        removed += self.abort_unrecorded(before).await?;
        Ok(removed)
    }

    /// Aborts the multipart uploads under the prefix, created before `before`, that no ledger
    /// entry records (a crash between creating one and recording it, or an abort that failed).
    async fn abort_unrecorded(&self, before: i64) -> io::Result<usize> {
        let mut aborted = 0;
        for open in self.open_uploads().await? {
            if open.initiated >= before {
                continue;
            }
            let key = open.key.clone();
            let entry = self
                .ledger(move |l| l.ledger_entry(&key))
                .await
                .map_err(io::Error::other)?;
            // An entry in use may be between creating an upload and recording it (and S3-like
            // stores do not all tell the true creation time: moto says 2010 for every one).
            if let Some(e) = entry
                && (e.touched_at >= before || e.upload_id.as_deref() == Some(&open.upload_id))
            {
                continue;
            }
            let path = Path::from(open.key.as_str());
            match self.inner.s3.abort_multipart(&path, &open.upload_id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => aborted += 1,
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(aborted)
    }

    /// The multipart uploads open under this store's prefix.
    async fn open_uploads(&self) -> io::Result<Vec<OpenUpload>> {
        let files = format!("{}files/", self.inner.prefix);
        self.inner.lister.list(&self.inner.s3, &files).await
    }
}
