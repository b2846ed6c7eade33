//! The one upload engine: every protocol (the form post, PUT, bepasty REST, tus, the IETF
//! resumable draft) is a thin adapter over it. It knows items, blobs and the metadata store, never
//! HTTP: adapters parse their headers into the calls below and map [`UploadError`] back.
//!
//! One-shot uploads are staged ([`Engine::stage`], [`Engine::receive`]) and committed together
//! ([`Engine::commit`]). Resumable ones are begun ([`Engine::begin`]), found again by their
//! token ([`Engine::open`]), appended to at their stored offset ([`Engine::append`]) and
//! completed by the append that reaches their length; [`Engine::cancel`] ends one.
//! Guarantees kept for all: bytes are fsynced before they are acknowledged, SHA-256 is computed
//! as they stream in (a resumed upload's hash state is kept in memory; after a restart the
//! partial blob is hashed once), and the metadata commit that makes an item visible comes last,
//! joined to its delivery (alerts) in the same transaction.

mod append;
mod commit;
mod error;
mod pump;
mod text;

pub use append::{Chunk, Progress};
pub use commit::{Staged, UploadMeta};
pub use error::UploadError;
pub use pump::{Checksum, ChecksumAlgorithm, Encoding};
pub use text::{clean_comment, clean_reference};

use super::resumable::{Resumable, new_token, token_hash};
use super::{Limits, Ticket};
use crate::audit::Audit;
use crate::blobs::{BlobSink, BlobStore, Blobs, Written};
use crate::items::{ItemName, content_type_for, fallback_filename, sanitize_filename};
use crate::scan::ScanState;
use crate::store::{Item, ItemState, MetaStore, StoreError, Transaction, Uploader, blocking};
use bytes::Bytes;
use futures_util::Stream;
use std::sync::Arc;
use std::time::Duration;

/// Attempts at a fresh random item name before giving up (names are 48 random bits).
const NAME_ATTEMPTS: usize = 20;

/// The engine's share of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_file_size: u64,
    pub min_free_space: u64,
    /// Items of one uploader within this window are one delivery (one alert).
    pub batch_window: Duration,
    /// A body that sends nothing for this long is abandoned.
    pub idle_timeout: Duration,
    /// `[antivirus]` is on: items complete as `scanning` (see `crate::scan`).
    pub antivirus: bool,
}

pub struct Engine<B: BlobStore = Blobs> {
    store: Arc<dyn MetaStore>,
    blobs: B,
    resumable: Resumable,
    limits: Arc<Limits>,
    audit: Audit,
    settings: Settings,
    /// Told when items were queued for their antivirus scan.
    scans_queued: Arc<tokio::sync::Notify>,
}

/// A new resumable upload, as a protocol adapter parsed it.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub uploader: Uploader,
    /// As the client sent it (sanitized here).
    pub filename: Option<String>,
    /// The type the client claims (checked here).
    pub content_type: Option<String>,
    /// `None`: not known yet (tus `Upload-Defer-Length`, IETF without `Upload-Length`).
    pub total: Option<u64>,
    pub expires_at: Option<i64>,
    pub reference: Option<String>,
    pub comment: Option<String>,
}

fn no_free_name() -> UploadError {
    UploadError::Internal("could not find a free item name".into())
}

impl<B: BlobStore> Engine<B> {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: B,
        limits: Arc<Limits>,
        audit: Audit,
        settings: Settings,
    ) -> Engine<B> {
        Engine {
            store,
            blobs,
            resumable: Resumable::default(),
            limits,
            audit,
            settings,
            scans_queued: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Notified whenever completed items wait for their antivirus scan.
    pub fn scans_queued(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.scans_queued)
    }

    /// The scan state a newly completed item starts with.
    fn initial_scan(&self) -> Option<ScanState> {
        self.settings.antivirus.then_some(ScanState::Scanning)
    }

    /// The scan state a resumable upload completes with. It got one when it began; if
    /// `[antivirus]` was switched on or off since (a restart), it is set right before the
    /// completion (harmless if that fails: only complete items are scanned or served).
    async fn scan_at_completion(&self, item: &Item) -> Result<Option<ScanState>, UploadError> {
        let want = match (&item.scan, self.settings.antivirus) {
            (None, true) => ScanState::Scanning,
            (Some(ScanState::Scanning), false) => {
                ScanState::NotScanned("antivirus was turned off before its scan".into())
            }
            _ => return Ok(item.scan.clone()),
        };
        let (n, s) = (item.name.clone(), want.clone());
        blocking(&self.store, move |st| st.set_scan(&n, &s)).await?;
        Ok(Some(want))
    }

    /// Items just completed: the scanner may start on them.
    fn queue_scans(&self) {
        if self.settings.antivirus {
            self.scans_queued.notify_one();
        }
    }

    /// Refuses at once what could never be stored: larger than the limit, or more than the
    /// free space allows.
    pub async fn check_room(&self, size: u64) -> Result<(), UploadError> {
        if size > self.settings.max_file_size {
            return Err(UploadError::TooLarge {
                size,
                limit: self.settings.max_file_size,
            });
        }
        self.check_free(size).await
    }

    /// Refuses what would leave less than `min_free_space` in the blob store.
    pub async fn check_free(&self, size: u64) -> Result<(), UploadError> {
        let free = self.blobs.free_space().await?;
        if free.saturating_sub(size) < self.settings.min_free_space {
            return Err(UploadError::NoSpace);
        }
        Ok(())
    }

    /// Creates an incomplete item with an empty partial blob; returns its upload and the token
    /// that finds it again (shown to the client once, stored only as a hash).
    pub async fn begin(&self, new: NewUpload) -> Result<(Transaction, String), UploadError> {
        self.check_room(new.total.unwrap_or(0)).await?;
        let filename = new.filename.as_deref().and_then(sanitize_filename);
        let content_type = content_type_for(
            new.content_type.as_deref(),
            filename.as_deref(),
            "application/octet-stream",
        );
        let now = crate::now();
        let (token, hash) = new_token()?;
        let mut item = Item {
            // Set by the name that is claimed below.
            name: ItemName::random()?,
            filename: String::new(),
            content_type,
            size: 0,
            sha256: String::new(),
            state: ItemState::Incomplete,
            created_at: now,
            completed_at: None,
            expires_at: new.expires_at,
            downloaded_at: None,
            locked: false,
            uploader: new.uploader,
            reference: new.reference,
            comment: new.comment,
            // Incomplete items are never served; the state matters once the upload completes.
            scan: self.initial_scan(),
        };
        for _ in 0..NAME_ATTEMPTS {
            let name = self.unused_name().await?;
            match self.blobs.create_partial(&name).await {
                Ok(()) => {}
                // A blob of that name exists (an orphan): try another name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
            item.filename = filename
                .clone()
                .unwrap_or_else(|| fallback_filename(name.as_str(), &item.content_type));
            item.name = name;
            let (it, h, total) = (item.clone(), hash.clone(), new.total);
            if let Err(e) = blocking(&self.store, move |s| s.begin_upload(&it, &h, total)).await {
                let _ = self.blobs.remove(&item.name).await;
                return Err(e.into());
            }
            let tx = Transaction {
                item,
                total: new.total,
                updated_at: now,
            };
            return Ok((tx, token));
        }
        Err(no_free_name())
    }

    /// A random item name never used before (deleted names are never handed out again).
    async fn unused_name(&self) -> Result<ItemName, UploadError> {
        for _ in 0..NAME_ATTEMPTS {
            let name = ItemName::random()?;
            let n = name.clone();
            if !blocking(&self.store, move |s| s.name_used(&n)).await? {
                return Ok(name);
            }
        }
        Err(no_free_name())
    }

    /// The upload of a token, if `owner` (a credential's label) created it.
    pub async fn open(&self, token: &str, owner: &str) -> Result<Transaction, UploadError> {
        let hash = token_hash(token);
        let tx = blocking(&self.store, move |s| s.find_upload(&hash))
            .await?
            .ok_or(UploadError::UnknownUpload)?;
        if tx.item.uploader.label != owner {
            return Err(UploadError::NotOwner);
        }
        Ok(tx)
    }

    /// Ends an incomplete upload and removes its bytes.
    pub async fn cancel(&self, tx: &Transaction, by: &str) -> Result<(), UploadError> {
        if tx.item.state == ItemState::Complete {
            return Err(UploadError::Completed);
        }
        self.delete(&tx.item.name, by).await?;
        Ok(())
    }

    /// Hides an item, then removes its bytes. A crash in between leaves an orphan blob, which
    /// start-up removes. On a full disk the metadata store cannot record even that: the blob
    /// store is asked for a little room first.
    pub async fn delete(&self, name: &ItemName, by: &str) -> Result<bool, StoreError> {
        let now = crate::now();
        let (n, who) = (name.clone(), by.to_string());
        let mark = move |s: &dyn MetaStore| {
            let size = s.get(&n)?.map_or(0, |i| i.size);
            Ok((s.mark_deleted(&n, now, &who)?, size))
        };
        let (deleted, size) = match blocking(&self.store, mark.clone()).await {
            Err(StoreError::DiskFull) if self.blobs.make_room() => {
                tracing::warn!(item = %name, "the disk is full: reserve space given up to record a deletion");
                blocking(&self.store, mark).await?
            }
            other => other?,
        };
        self.resumable.forget(name);
        if deleted {
            self.limits.stored_changed(-i128::from(size));
            if let Err(e) = self.blobs.remove(name).await {
                tracing::warn!(item = %name, error = %e, "could not remove the bytes of a deleted item; start-up will");
            }
            tracing::info!(item = %name, by, "item deleted");
            self.blobs.restore_room();
        }
        Ok(deleted)
    }

    /// A new blob for one file of a one-shot upload (the form streams into it itself).
    pub async fn stage(&self) -> Result<B::NewWriter, UploadError> {
        Ok(self.blobs.stage(self.settings.min_free_space).await?)
    }

    /// Streams a whole one-shot body (PUT) into a new blob.
    pub async fn receive<S, E>(
        &self,
        mut body: S,
        max: u64,
        ticket: &Ticket,
    ) -> Result<Written<B::Blob>, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    {
        let mut sink = self.stage().await?;
        let bounds = pump::Bounds {
            encoding: Encoding::Raw,
            max_body: max,
            room: max,
            exact: None,
            checksum: None,
            idle: self.settings.idle_timeout,
            ticket,
            stop: None,
        };
        let mut written = 0;
        pump::pump(&mut body, &mut sink, &bounds, &mut written).await?;
        Ok(sink.finish().await?)
    }
}
