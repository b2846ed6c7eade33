//! The blob store as the upload engine sees it: stage a new blob, append to a partial one at an
//! offset, publish either under an item name without clobbering, read a range, remove, list.
//! [`LocalBlobs`] implements it on the local filesystem; an object store can implement it too
//! (staging = a multipart upload, append = its next part, publish = completing it) without the
//! engine changing. Every method is async: a backend decides where it blocks.

use super::{Appended, BlobError, BlobWriter, LocalBlobs, Written};
use crate::items::ItemName;
use bytes::Bytes;
use futures_util::Stream;
use sha2::Sha256;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A stream of a blob's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Where an upload's bytes go while it streams in.
pub trait BlobSink: Send + 'static {
    type Done: Send + 'static;
    /// Queues a chunk; waits when the backend is behind (bounded memory).
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), BlobError>> + Send;
    /// The source has nothing more ready: hands on what is gathered rather than hold it while
    /// the client is slow.
    fn flush(&mut self) -> impl Future<Output = Result<(), BlobError>> + Send {
        async { Ok(()) }
    }
    /// Makes everything written durable and returns the result.
    fn finish(self) -> impl Future<Output = Result<Self::Done, BlobError>> + Send;
}

impl<T: super::writer::Finished + Send + 'static> BlobSink for BlobWriter<T> {
    type Done = T;
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), BlobError>> + Send {
        BlobWriter::write(self, chunk)
    }
    fn flush(&mut self) -> impl Future<Output = Result<(), BlobError>> + Send {
        BlobWriter::flush(self)
    }
    fn finish(self) -> impl Future<Output = Result<T, BlobError>> + Send {
        BlobWriter::finish(self)
    }
}

pub trait BlobStore: Clone + Send + Sync + 'static {
    /// A staged blob: durable, not visible under any name yet.
    type Blob: Send + 'static;
    type NewWriter: BlobSink<Done = Written<Self::Blob>>;
    type AppendWriter: BlobSink<Done = Appended>;

    /// Bytes that can still be stored (`u64::MAX` when the backend has no such limit).
    fn free_space(&self) -> impl Future<Output = io::Result<u64>> + Send;
    /// A new blob for a one-shot upload; writing must not push free space below `min_free`.
    fn stage(
        &self,
        min_free: u64,
    ) -> impl Future<Output = Result<Self::NewWriter, BlobError>> + Send;
    /// The name a staged blob is already written under, if the backend chose one (an object
    /// store has no rename): the engine tries it first.
    fn staged_name(_blob: &Self::Blob) -> Option<ItemName> {
        None
    }
    /// Publishes a staged blob under `name`, never replacing anything: `Ok(Err(blob))` hands it
    /// back when the name is taken. Durable only after [`BlobStore::sync_published`].
    fn publish(
        &self,
        blob: Self::Blob,
        name: &ItemName,
    ) -> impl Future<Output = Result<Result<(), Self::Blob>, BlobError>> + Send;
    /// Makes the publications so far durable (once for a batch, before its metadata commit).
    fn sync_published(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Creates the empty partial blob of a resumable upload; `AlreadyExists` if it exists.
    fn create_partial(&self, name: &ItemName) -> impl Future<Output = io::Result<()>> + Send;
    /// Appends to a partial blob at `offset` (its acknowledged length; anything past it is
    /// dropped), continuing `hasher`. `hold` is released after the writer's last write.
    fn append(
        &self,
        name: &ItemName,
        offset: u64,
        hasher: Sha256,
        min_free: u64,
        hold: Box<dyn Send>,
    ) -> impl Future<Output = Result<Self::AppendWriter, BlobError>> + Send;
    /// The SHA-256 state after the first `len` bytes of a partial blob (after a restart only).
    fn hash_partial(
        &self,
        name: &ItemName,
        len: u64,
    ) -> impl Future<Output = io::Result<Sha256>> + Send;
    /// Publishes a complete partial blob of `size` bytes under its own name (durably, never
    /// clobbering).
    fn publish_partial(
        &self,
        name: &ItemName,
        size: u64,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// Undoes [`BlobStore::publish_partial`] when the completion could not be recorded.
    fn unpublish_partial(
        &self,
        name: &ItemName,
        size: u64,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes an item's blob, published or partial; a missing one is not an error.
    fn remove(&self, name: &ItemName) -> impl Future<Output = io::Result<()>> + Send;
    /// `len` bytes of a published blob from `start`.
    fn read_range(
        &self,
        name: &ItemName,
        start: u64,
        len: u64,
    ) -> impl Future<Output = io::Result<ByteStream>> + Send;
    /// Names of every published blob.
    fn list(&self) -> impl Future<Output = io::Result<Vec<ItemName>>> + Send;
    /// The store is full and metadata must record a deletion: give up some kept room (true if
    /// there was any).
    fn make_room(&self) -> bool {
        false
    }
    /// Space was freed: take back the room [`BlobStore::make_room`] gave up.
    fn restore_room(&self) {}
}

/// Runs filesystem work on the blocking pool.
async fn off<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

impl BlobStore for LocalBlobs {
    type Blob = tempfile::TempPath;
    type NewWriter = BlobWriter<Written>;
    type AppendWriter = BlobWriter<Appended>;

    async fn free_space(&self) -> io::Result<u64> {
        let this = self.clone();
        off(move || LocalBlobs::free_space(&this)).await
    }

    async fn stage(&self, min_free: u64) -> Result<Self::NewWriter, BlobError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || BlobWriter::start(&this, min_free))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?
    }

    async fn publish(
        &self,
        blob: Self::Blob,
        name: &ItemName,
    ) -> Result<Result<(), Self::Blob>, BlobError> {
        let (this, name) = (self.clone(), name.clone());
        tokio::task::spawn_blocking(move || this.commit(blob, &name))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?
    }

    async fn sync_published(&self) -> io::Result<()> {
        let this = self.clone();
        off(move || this.sync_files()).await
    }

    async fn create_partial(&self, name: &ItemName) -> io::Result<()> {
        let (this, name) = (self.clone(), name.clone());
        off(move || LocalBlobs::create_partial(&this, &name).map(drop)).await
    }

    async fn append(
        &self,
        name: &ItemName,
        offset: u64,
        hasher: Sha256,
        min_free: u64,
        hold: Box<dyn Send>,
    ) -> Result<Self::AppendWriter, BlobError> {
        let (this, name) = (self.clone(), name.clone());
        let file = off(move || this.open_partial(&name, offset)).await?;
        BlobWriter::append(file, hasher, self, min_free, hold)
    }

    async fn hash_partial(&self, name: &ItemName, len: u64) -> io::Result<Sha256> {
        let path = self.partial_path(name);
        off(move || super::hash_file(&path, Some(len))).await
    }

    async fn publish_partial(&self, name: &ItemName, _size: u64) -> io::Result<()> {
        let (this, name) = (self.clone(), name.clone());
        off(move || this.finish_partial(&name)).await
    }

    async fn unpublish_partial(&self, name: &ItemName, _size: u64) -> io::Result<()> {
        let (this, name) = (self.clone(), name.clone());
        off(move || this.reopen_partial(&name)).await
    }

    async fn remove(&self, name: &ItemName) -> io::Result<()> {
        let (this, name) = (self.clone(), name.clone());
        off(move || {
            LocalBlobs::remove(&this, &name)?;
            this.remove_partial(&name)
        })
        .await
    }

    async fn read_range(&self, name: &ItemName, start: u64, len: u64) -> io::Result<ByteStream> {
        use std::io::{Seek, SeekFrom};
        use tokio::io::AsyncReadExt;
        let (this, name) = (self.clone(), name.clone());
        let mut file = off(move || this.open_item(&name)).await?;
        let file = off(move || {
            file.seek(SeekFrom::Start(start))?;
            Ok(file)
        })
        .await?;
        let reader = tokio::fs::File::from_std(file).take(len);
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            256 << 10,
        )))
    }

    fn make_room(&self) -> bool {
        self.release_reserve()
    }

    fn restore_room(&self) {
        let _ = self.ensure_reserve();
    }

    async fn list(&self) -> io::Result<Vec<ItemName>> {
        let dir = self.files_dir().to_path_buf();
        off(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                if let Some(name) = entry?.file_name().to_str().and_then(ItemName::parse) {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }
}
