//! Making staged one-shot uploads visible: each durable staged blob gets a fresh name and is
//! published there, the publications are made durable once, then one metadata transaction makes
//! the whole batch visible at once. Until that commit nothing is listed; if it fails, the
//! published blobs are removed again.

use super::{Engine, NAME_ATTEMPTS, UploadError, no_free_name};
use crate::audit::AuditEvent;
use crate::blobs::{BlobStore, Written};
use crate::items::{ItemName, content_type_for, fallback_filename, sanitize_filename};
use crate::store::{Item, ItemState, StoreError, Uploader, blocking};
use std::sync::Arc;
use tracing::Instrument;

/// A fully received file waiting for its commit.
#[derive(Debug)]
pub struct Staged<T> {
    pub written: Written<T>,
    /// The filename the client sent, unsanitized.
    pub filename: Option<String>,
    pub claimed_type: Option<String>,
    /// A pasted text (falls back to `text/plain`) rather than a file.
    pub is_text: bool,
}

/// What applies to every item of one upload request.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub uploader: Uploader,
    pub reference: Option<String>,
    pub comment: Option<String>,
}

impl<B: BlobStore> Engine<B> {
    /// Commits staged files as one batch of items (one delivery), in a task of its own: a
    /// request dropped meanwhile (an HTTP/2 reset) must not stop it between publishing the
    /// blobs and recording them, or undoing that.
    pub async fn commit(
        self: &Arc<Self>,
        staged: Vec<Staged<B::Blob>>,
        meta: UploadMeta,
    ) -> Result<Vec<Item>, UploadError> {
        let engine = Arc::clone(self);
        let task = async move { engine.commit_now(staged, meta).await };
        tokio::spawn(task.instrument(tracing::Span::current())).await?
    }

    async fn commit_now(
        &self,
        staged: Vec<Staged<B::Blob>>,
        meta: UploadMeta,
    ) -> Result<Vec<Item>, UploadError> {
        let join = crate::alerts::delivery_join(
            self.settings.batch_window,
            &meta.uploader,
            meta.reference.as_deref(),
        )?;
        let mut items = Vec::with_capacity(staged.len());
        let result = async {
            for s in staged {
                let name = self.place(s.written.blob).await?;
                let fallback_type = if s.is_text {
                    "text/plain"
                } else {
                    "application/octet-stream"
                };
                let clean = s.filename.as_deref().and_then(sanitize_filename);
                let content_type =
                    content_type_for(s.claimed_type.as_deref(), clean.as_deref(), fallback_type);
                let filename =
                    clean.unwrap_or_else(|| fallback_filename(name.as_str(), &content_type));
                items.push(Item {
                    name,
                    filename,
                    content_type,
                    size: s.written.size,
                    sha256: s.written.sha256,
                    state: ItemState::Complete,
                    created_at: meta.created_at,
                    completed_at: Some(meta.created_at),
                    expires_at: meta.expires_at,
                    downloaded_at: None,
                    locked: false,
                    uploader: meta.uploader.clone(),
                    reference: meta.reference.clone(),
                    comment: meta.comment.clone(),
                    scan: self.initial_scan(),
                });
            }
            // One durability point for all the publications, before the metadata shows them.
            self.blobs.sync_published().await?;
            let batch = items.clone();
            blocking(&self.store, move |s| s.insert(&batch, Some(&join)))
                .await
                .map_err(|e| match e {
                    StoreError::NameTaken(n) => {
                        UploadError::Internal(format!("item name {n} taken concurrently"))
                    }
                    other => other.into(),
                })
        }
        .await;
        if let Err(e) = result {
            for item in &items {
                let _ = self.blobs.remove(&item.name).await;
            }
            return Err(e);
        }
        self.limits
            .stored_changed(items.iter().map(|i| i128::from(i.size)).sum());
        for it in &items {
            tracing::info!(item = %it.name, filename = ?it.filename, size = it.size, sha256 = %it.sha256,
                label = %it.uploader.label, ip = %it.uploader.client_ip, "upload complete");
        }
        self.audit
            .record_all(items.iter().map(AuditEvent::upload_completed).collect())
            .await;
        self.queue_scans();
        Ok(items)
    }

    /// Publishes a staged blob under a fresh, never-used name.
    async fn place(&self, mut blob: B::Blob) -> Result<ItemName, UploadError> {
        // An object store's staged blob already has its name: if it was never used, it is it.
        if let Some(name) = B::staged_name(&blob) {
            let n = name.clone();
            if !blocking(&self.store, move |s| s.name_used(&n)).await? {
                match self.blobs.publish(blob, &name).await? {
                    Ok(()) => return Ok(name),
                    Err(back) => blob = back,
                }
            }
        }
        for _ in 0..NAME_ATTEMPTS {
            let name = self.unused_name().await?;
            match self.blobs.publish(blob, &name).await? {
                Ok(()) => return Ok(name),
                // A blob of that name exists (an orphan): keep this one, try another name.
                Err(back) => blob = back,
            }
        }
        Err(no_free_name())
    }
}
