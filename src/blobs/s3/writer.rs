//! The writer of one request's bytes into a multipart upload: hashes every chunk as it comes,
//! sends a part each time one fills, and at the end either sends the last part (one-shot) or
//! commits the parts, the tail and the hash state to the ledger (resumable).

use super::keep_alive::KeepAlive;
use super::{Lease, S3Blobs, appended, hash_bytes as serialize_hash, unavailable, written};
use crate::blobs::{Appended, BlobError, BlobSink, Written};
use crate::items::ItemName;
use crate::store::ledger::{Commit, LedgerState};
use bytes::Bytes;
use object_store::PutPayload;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::time::Instant;

/// A staged one-shot upload: every part sent, not completed yet (so not visible). Dropped
/// unpublished (a later file of the form failed, the commit failed), its upload is aborted.
pub struct S3Staged {
    pub(super) name: ItemName,
    pub(super) upload_id: Option<String>,
    pub(super) parts: Vec<PartId>,
    /// `None` once published.
    pub(super) owner: Option<S3Blobs>,
    /// Held, not read: touching stops when the staged blob goes.
    #[allow(dead_code)]
    pub(super) keep_alive: Option<KeepAlive>,
}

impl std::fmt::Debug for S3Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Staged")
            .field("name", &self.name)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if let Some(blobs) = self.owner.take() {
            blobs.abandon(blobs.key(&self.name), self.upload_id.take());
        }
    }
}

pub struct S3Writer {
    blobs: S3Blobs,
    name: ItemName,
    key: String,
    path: Path,
    upload_id: Option<String>,
    /// ETags of the parts before this writer began (resumable) and of those it sent.
    parts: Vec<PartId>,
    /// Parts sent by this writer: (number from 1, ETag), for the ledger.
    sent: Vec<(u64, String)>,
    /// Bytes after the last part, not sent yet: the ledger's tail, then this request's.
    pending: VecDeque<Bytes>,
    pending_len: u64,
    start: u64,
    end: u64,
    hasher: Sha256,
    lease: Option<Lease>,
    renewed: Instant,
    /// Released once the last byte is written (the engine's per-upload lock).
    _hold: Option<Box<dyn Send>>,
    /// Set when finished: a one-shot writer dropped before is abandoned (its upload aborted).
    done: bool,
    /// One-shot: its ledger entry is in use (see `keep_alive`).
    pub(super) keep_alive: Option<KeepAlive>,
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A resumable writer's unrecorded parts are simply sent again by the next request.
        if !self.done && self.lease.is_none() {
            self.blobs
                .abandon(std::mem::take(&mut self.key), self.upload_id.take());
        }
    }
}

impl S3Writer {
    pub(super) fn new(
        blobs: S3Blobs,
        name: ItemName,
        key: String,
        start: u64,
        hasher: Sha256,
        lease: Option<Lease>,
        hold: Option<Box<dyn Send>>,
    ) -> S3Writer {
        S3Writer {
            blobs,
            name,
            path: Path::from(key.as_str()),
            key,
            upload_id: None,
            parts: Vec::new(),
            sent: Vec::new(),
            pending: VecDeque::new(),
            pending_len: 0,
            start,
            end: start,
            hasher,
            lease,
            renewed: Instant::now(),
            _hold: hold,
            done: false,
            keep_alive: None,
        }
    }

    /// Continues from the ledger's state at `start`.
    pub(super) fn resume(&mut self, state: LedgerState) {
        self.upload_id = state.upload_id;
        self.parts = state
            .parts
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        if !state.tail.is_empty() {
            self.pending_len = state.tail.len() as u64;
            self.pending.push_back(Bytes::from(state.tail));
        }
    }

    fn part_size(&self) -> u64 {
        self.blobs.inner.part_size
    }

    /// Takes exactly `len` pending bytes (no copy: the chunks as received).
    fn take(&mut self, len: u64) -> PutPayload {
        let mut left = len;
        let mut chunks = Vec::new();
        while left > 0 {
            let Some(mut chunk) = self.pending.pop_front() else {
                break;
            };
            if chunk.len() as u64 > left {
                let rest = chunk.split_off(left as usize);
                self.pending.push_front(rest);
            }
            left -= chunk.len() as u64;
            chunks.push(chunk);
        }
        self.pending_len -= len - left;
        chunks.into_iter().collect()
    }

    async fn upload_id(&mut self) -> Result<String, BlobError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let id = self
            .blobs
            .inner
            .s3
            .create_multipart(&self.path)
            .await
            .map_err(unavailable)?;
        // Recorded before any part is sent: the sweeper can always abort it.
        let (key, i) = (self.key.clone(), id.clone());
        self.blobs
            .ledger(move |l| l.ledger_set_upload(&key, &i, crate::now()))
            .await?;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send(&mut self, len: u64) -> Result<(), BlobError> {
        let id = self.upload_id().await?;
        let payload = self.take(len);
        let index = self.parts.len();
        let part = self
            .blobs
            .inner
            .s3
            .put_part(&self.path, &id, index, payload)
            .await
            .map_err(unavailable)?;
        self.sent.push((index as u64 + 1, part.content_id.clone()));
        self.parts.push(part);
        Ok(())
    }

    async fn keep_lease(&mut self) -> Result<(), BlobError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if self.renewed.elapsed() >= self.blobs.inner.lease / 3 {
            lease.renew().await?;
            self.renewed = Instant::now();
        }
        Ok(())
    }
}

impl S3Writer {
    async fn write_chunk(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if chunk.is_empty() {
            return Ok(());
        }
        // Hashing a chunk (up to a few hundred KiB) takes well under a millisecond.
        self.hasher.update(&chunk);
        self.end += chunk.len() as u64;
        self.pending_len += chunk.len() as u64;
        self.pending.push_back(chunk);
        let size = self.part_size();
        while self.pending_len >= size {
            self.send(size).await?;
        }
        self.keep_lease().await
    }

    /// One-shot: sends the last part; the upload is completed when published.
    async fn finish_staged(mut self) -> Result<Written<S3Staged>, BlobError> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        if self.pending_len > 0 {
            let len = self.pending_len;
            self.send(len).await?;
        }
        self.done = true;
        let blob = S3Staged {
            name: self.name.clone(),
            upload_id: self.upload_id.take(),
            parts: std::mem::take(&mut self.parts),
            owner: Some(self.blobs.clone()),
            keep_alive: self.keep_alive.take(),
        };
        Ok(written(blob, self.end, sha256))
    }

    /// Resumable: commits this request's parts, its tail and the hash state to the ledger.
    async fn finish_append(mut self) -> Result<Appended, BlobError> {
        let hash = serialize_hash(&self.hasher);
        let size = self.part_size();
        let tail_start = self.start.max(self.parts.len() as u64 * size);
        let tail_len = self.end - tail_start;
        // `pending` holds [parts·size, end); the tail row is its last `tail_len` bytes.
        let skip = self.pending_len - tail_len;
        let mut tail = Vec::with_capacity(usize::try_from(tail_len).unwrap_or(0));
        let mut seen = 0u64;
        for chunk in &self.pending {
            let from = seen;
            seen += chunk.len() as u64;
            if seen > skip {
                let lo = usize::try_from(skip.saturating_sub(from)).unwrap_or(0);
                tail.extend_from_slice(&chunk[lo..]);
            }
        }
        let (key, upload_id, sent) = (self.key.clone(), self.upload_id.clone(), self.sent.clone());
        let (start, end) = (self.start, self.end);
        self.blobs
            .ledger(move |l| {
                l.ledger_commit(&Commit {
                    key: &key,
                    part_size: size,
                    upload_id: upload_id.as_deref(),
                    start,
                    parts: &sent,
                    tail_start,
                    tail: &tail,
                    end,
                    hash: &hash,
                    at: crate::now(),
                })
            })
            .await?;
        self.done = true;
        let hasher = self.hasher.clone();
        Ok(appended(self.end - self.start, hasher, self.lease.take()))
    }
}

/// A one-shot upload's writer.
pub struct S3NewWriter(pub(super) S3Writer);
/// A resumable upload's writer for one request.
pub struct S3AppendWriter(pub(super) S3Writer);

impl BlobSink for S3NewWriter {
    type Done = Written<S3Staged>;
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.0.write_chunk(chunk).await
    }
    async fn finish(self) -> Result<Written<S3Staged>, BlobError> {
        self.0.finish_staged().await
    }
}

impl BlobSink for S3AppendWriter {
    type Done = Appended;
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.0.write_chunk(chunk).await
    }
    async fn finish(self) -> Result<Appended, BlobError> {
        self.0.finish_append().await
    }
}
