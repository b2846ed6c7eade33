//! Appending one request's body to a resumable upload at its stored offset, and completing the
//! upload when the body reaches its length.

use super::pump::{self, Bounds, Checksum, Encoding};
use super::{Engine, UploadError};
use crate::audit::AuditEvent;
use crate::blobs::{BlobSink, BlobStore};
use crate::store::{Item, ItemState, Transaction, blocking};
use crate::upload::Ticket;
use bytes::Bytes;
use futures_util::Stream;
use sha2::Digest;
use std::sync::Arc;
use tracing::Instrument;

/// How long a request waits for an older one on the same upload to stop.
const PREEMPT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One request's part of an upload, as its protocol declares it.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Where the client says its body starts; must be the stored offset.
    pub offset: u64,
    /// The upload's length, if this request declares it.
    pub total: Option<u64>,
    /// A declared length replaces the stored one (bepasty-cli's stdin mode grows it with each
    /// chunk); otherwise it cannot change once known (tus, IETF).
    pub total_can_change: bool,
    /// This request ends the upload (IETF `Upload-Complete: ?1`): its end is the length.
    pub last: bool,
    /// The body must bring exactly this many file bytes (REST's `Content-Range`).
    pub exact: Option<u64>,
    pub encoding: Encoding,
    /// Network bytes the body may have.
    pub max_body: u64,
    pub checksum: Option<Checksum>,
    /// Keep (fsync and record) what arrived before the body broke off, so the client resumes
    /// from there (tus, IETF); otherwise a request is all or nothing (bepasty REST).
    pub keep_partial: bool,
}

/// Where an upload stands after a request.
#[derive(Debug, Clone)]
pub struct Progress {
    pub offset: u64,
    pub total: Option<u64>,
    /// The item; complete (with its SHA-256) once the upload is.
    pub item: Item,
}

impl Progress {
    pub fn is_complete(&self) -> bool {
        self.item.state == ItemState::Complete
    }
}

impl<B: BlobStore> Engine<B> {
    /// Writes `body` at the upload's stored offset. On failure the stored offset and hash state
    /// stay where they were (bytes past the offset are cut off by the next append), except that
    /// with `keep_partial` an interrupted body keeps what arrived.
    pub async fn append<S, E>(
        &self,
        tx: &Transaction,
        chunk: Chunk,
        mut body: S,
        ticket: &Ticket,
    ) -> Result<Progress, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    {
        let name = tx.item.name.clone();
        let slot = self.resumable.slot(&name);
        let mut guard = match slot.try_lock() {
            Ok(g) => g,
            // A resumable protocol's client is back while its old request still runs (its
            // connection died unnoticed): stop that one, keeping what it received.
            Err(_) if chunk.keep_partial => {
                self.resumable.preempt(&name);
                tokio::time::timeout(PREEMPT_WAIT, slot.lock())
                    .await
                    .map_err(|_| UploadError::Busy)?
            }
            Err(_) => return Err(UploadError::Busy),
        };
        let stop = self.resumable.arm(&name);
        // Re-read under the lock: a request that just finished may have moved the offset.
        let n = name.clone();
        let current = blocking(&self.store, move |s| s.upload(&n))
            .await?
            .ok_or(UploadError::UnknownUpload)?;
        if current.item.state == ItemState::Complete {
            return Err(UploadError::Completed);
        }
        let stored = current.item.size;
        if chunk.offset != stored {
            return Err(UploadError::OffsetMismatch { stored });
        }
        let total = match (current.total, chunk.total) {
            (Some(known), Some(declared)) if known != declared && !chunk.total_can_change => {
                return Err(UploadError::BadLength(format!(
                    "the upload's length is {known} bytes; it cannot change to {declared}"
                )));
            }
            (known, declared) => declared.or(known),
        };
        if let Some(t) = total {
            if t < stored {
                return Err(UploadError::BadLength(format!(
                    "the length {t} is less than the {stored} bytes already stored"
                )));
            }
            if current.total != Some(t) {
                self.check_room(t - stored).await?;
            }
        }
        let limit = self.settings.max_file_size;
        if let Some(t) = total.filter(|t| *t > limit) {
            return Err(UploadError::TooLarge { size: t, limit });
        }
        let room = total.unwrap_or(limit).saturating_sub(stored);
        if let Some(exact) = chunk.exact
            && exact > room
        {
            return Err(UploadError::BeyondLength { remaining: room });
        }
        let hasher = match guard.take() {
            Some(h) => h,
            None => self.blobs.hash_partial(&name, stored).await.map_err(|e| {
                UploadError::Internal(format!("resuming {name}: cannot hash its bytes: {e}"))
            })?,
        };
        let file_lock = self.resumable.file_lock(&name).lock_owned().await;
        let mut sink = self
            .blobs
            .append(
                &name,
                stored,
                hasher.clone(),
                self.settings.min_free_space,
                Box::new(file_lock),
            )
            .await?;
        // With several instances, another one may have moved the upload on between the read
        // above and the blob store's lease (taken by `append`): check again under it.
        let n = name.clone();
        let now_stored = blocking(&self.store, move |s| s.upload(&n))
            .await?
            .map(|t| (t.item.size, t.item.state));
        match now_stored {
            Some((size, ItemState::Incomplete)) if size == stored => {}
            Some((_, ItemState::Complete)) => return Err(UploadError::Completed),
            Some((size, _)) => return Err(UploadError::OffsetMismatch { stored: size }),
            None => return Err(UploadError::UnknownUpload),
        }
        let bounds = Bounds {
            encoding: chunk.encoding,
            max_body: chunk.max_body,
            room,
            exact: chunk.exact,
            checksum: chunk.checksum.as_ref(),
            idle: self.settings.idle_timeout,
            ticket,
            stop: Some(&stop),
        };
        let mut written = 0;
        let pumped = pump::pump(&mut body, &mut sink, &bounds, &mut written).await;
        if let Err(e) = pumped {
            let keep = chunk.keep_partial
                && chunk.checksum.is_none()
                && matches!(
                    e,
                    UploadError::Interrupted
                        | UploadError::Idle(_)
                        | UploadError::TooSlow
                        | UploadError::Superseded
                );
            if keep && written > 0 {
                // The client is gone or stalled: keep what arrived, durably, so it resumes there.
                if let Ok(done) = sink.finish().await {
                    let size = stored + done.written;
                    self.limits.stored_changed(i128::from(done.written));
                    let (n, now) = (name.clone(), crate::now());
                    if blocking(&self.store, move |s| {
                        s.record_progress(&n, size, total, now)
                    })
                    .await
                    .is_ok()
                    {
                        *guard = Some(done.hasher);
                        tracing::info!(item = %name, size, "upload interrupted; kept what arrived");
                        return Err(e);
                    }
                }
            }
            *guard = Some(hasher);
            return Err(e);
        }
        let done = match sink.finish().await {
            Ok(done) => done,
            Err(e) => {
                *guard = Some(hasher);
                return Err(e.into());
            }
        };
        let size = stored + done.written;
        let total = match total {
            Some(t) if chunk.last && t != size => {
                // Not kept: the next append cuts the file back to the stored offset.
                *guard = Some(hasher);
                return Err(UploadError::BadLength(format!(
                    "the upload ends at {size} bytes, but its length is {t}"
                )));
            }
            None if chunk.last => Some(size),
            other => other,
        };
        // Acknowledged or not (a failed completion is retried), these bytes are stored now.
        self.limits.stored_changed(i128::from(done.written));
        if total == Some(size) {
            let item = self.complete(&current.item, size, done.hasher).await;
            drop(guard);
            let item = item?;
            self.resumable.forget(&name);
            return Ok(Progress {
                offset: size,
                total,
                item,
            });
        }
        let (n, now) = (name.clone(), crate::now());
        blocking(&self.store, move |s| {
            s.record_progress(&n, size, total, now)
        })
        .await?;
        *guard = Some(done.hasher);
        let mut item = current.item;
        item.size = size;
        Ok(Progress {
            offset: size,
            total,
            item,
        })
    }

    /// [`Engine::append`] in a task of its own, which runs to its end even if the request that
    /// started it is dropped: hyper drops an HTTP/2 request's handler when the client resets its
    /// stream or the connection dies, and what arrived until then must still be kept.
    pub async fn append_detached<S, E>(
        self: &Arc<Self>,
        tx: &Transaction,
        chunk: Chunk,
        body: S,
        ticket: Ticket,
    ) -> Result<Progress, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
        E: Send + 'static,
    {
        let (engine, tx) = (Arc::clone(self), tx.clone());
        let task = async move { engine.append(&tx, chunk, body, &ticket).await };
        // The request's span (its id) goes with the work.
        tokio::spawn(task.instrument(tracing::Span::current())).await?
    }

    /// Publishes the upload's bytes and records the item complete (joined to its delivery);
    /// if the record fails, the bytes go back, so a retry of the last request completes it.
    async fn complete(
        &self,
        item: &Item,
        size: u64,
        hasher: sha2::Sha256,
    ) -> Result<Item, UploadError> {
        let name = item.name.clone();
        let sha256 = hex::encode(hasher.finalize());
        let now = crate::now();
        let join = crate::alerts::delivery_join(
            self.settings.batch_window,
            &item.uploader,
            item.reference.as_deref(),
        )?;
        let scan = self.scan_at_completion(item).await?;
        self.blobs.publish_partial(&name, size).await?;
        let (n, sha) = (name.clone(), sha256.clone());
        let recorded = blocking(&self.store, move |s| {
            s.complete_upload(&n, size, &sha, now, Some(&join))
        })
        .await;
        if let Err(e) = recorded {
            if let Err(undo) = self.blobs.unpublish_partial(&name, size).await {
                tracing::error!(item = %name, error = %undo, "could not move an upload back");
            }
            return Err(e.into());
        }
        let done = Item {
            size,
            sha256,
            state: ItemState::Complete,
            completed_at: Some(now),
            scan,
            ..item.clone()
        };
        tracing::info!(item = %name, size, sha256 = %done.sha256, label = %done.uploader.label,
            ip = %done.uploader.client_ip, "resumable upload complete");
        self.audit.record(AuditEvent::upload_completed(&done)).await;
        self.queue_scans();
        Ok(done)
    }
}
