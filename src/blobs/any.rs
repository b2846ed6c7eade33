//! The blob store the configuration names (`[storage] kind`), as one type: each call goes to
//! the backend chosen at start-up.

use super::s3::{S3AppendWriter, S3NewWriter, S3Staged};
use super::{Appended, BlobError, BlobSink, BlobStore, BlobWriter, ByteStream, LocalBlobs};
use super::{S3Blobs, Written};
use crate::items::ItemName;
use bytes::Bytes;
use sha2::Sha256;
use std::io;

#[derive(Clone, Debug)]
pub enum Blobs {
    Local(LocalBlobs),
    S3(S3Blobs),
}

/// A staged blob of either backend.
#[derive(Debug)]
pub enum AnyBlob {
    Local(tempfile::TempPath),
    S3(S3Staged),
}

pub enum AnyNewWriter {
    Local(BlobWriter<Written>),
    S3(Box<S3NewWriter>),
}

pub enum AnyAppendWriter {
    Local(BlobWriter<Appended>),
    S3(Box<S3AppendWriter>),
}

fn mismatch() -> BlobError {
    BlobError::Io(io::Error::other("a blob of another backend"))
}

impl Blobs {
    /// The local file store, when that is the backend (`sfx check`, the reserve file).
    pub fn local(&self) -> Option<&LocalBlobs> {
        match self {
            Blobs::Local(l) => Some(l),
            Blobs::S3(_) => None,
        }
    }

    /// Free space, without waiting on anything but a `statvfs` (`u64::MAX` for S3).
    pub fn free_space_now(&self) -> io::Result<u64> {
        match self {
            Blobs::Local(l) => l.free_space(),
            Blobs::S3(_) => Ok(u64::MAX),
        }
    }
}

impl BlobSink for AnyNewWriter {
    type Done = Written<AnyBlob>;
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        match self {
            AnyNewWriter::Local(w) => BlobSink::write(w, chunk).await,
            AnyNewWriter::S3(w) => w.write(chunk).await,
        }
    }
    async fn flush(&mut self) -> Result<(), BlobError> {
        match self {
            AnyNewWriter::Local(w) => BlobSink::flush(w).await,
            AnyNewWriter::S3(_) => Ok(()),
        }
    }
    async fn finish(self) -> Result<Written<AnyBlob>, BlobError> {
        Ok(match self {
            AnyNewWriter::Local(w) => {
                let d = BlobSink::finish(w).await?;
                Written {
                    blob: AnyBlob::Local(d.blob),
                    size: d.size,
                    sha256: d.sha256,
                }
            }
            AnyNewWriter::S3(w) => {
                let d = (*w).finish().await?;
                Written {
                    blob: AnyBlob::S3(d.blob),
                    size: d.size,
                    sha256: d.sha256,
                }
            }
        })
    }
}

impl BlobSink for AnyAppendWriter {
    type Done = Appended;
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        match self {
            AnyAppendWriter::Local(w) => BlobSink::write(w, chunk).await,
            AnyAppendWriter::S3(w) => w.write(chunk).await,
        }
    }
    async fn flush(&mut self) -> Result<(), BlobError> {
        match self {
            AnyAppendWriter::Local(w) => BlobSink::flush(w).await,
            AnyAppendWriter::S3(_) => Ok(()),
        }
    }
    async fn finish(self) -> Result<Appended, BlobError> {
        match self {
            AnyAppendWriter::Local(w) => BlobSink::finish(w).await,
            AnyAppendWriter::S3(w) => (*w).finish().await,
        }
    }
}

impl BlobStore for Blobs {
    type Blob = AnyBlob;
    type NewWriter = AnyNewWriter;
    type AppendWriter = AnyAppendWriter;

    async fn free_space(&self) -> io::Result<u64> {
        match self {
            Blobs::Local(l) => BlobStore::free_space(l).await,
            // An object store has no limit sfx could see.
            Blobs::S3(_) => Ok(u64::MAX),
        }
    }

    async fn stage(&self, min_free: u64) -> Result<AnyNewWriter, BlobError> {
        match self {
            Blobs::Local(l) => Ok(AnyNewWriter::Local(BlobStore::stage(l, min_free).await?)),
            Blobs::S3(s) => Ok(AnyNewWriter::S3(Box::new(s.stage().await?))),
        }
    }

    fn staged_name(blob: &AnyBlob) -> Option<ItemName> {
        match blob {
            AnyBlob::Local(_) => None,
            AnyBlob::S3(b) => S3Blobs::staged_name(b),
        }
    }

    async fn publish(
        &self,
        blob: AnyBlob,
        name: &ItemName,
    ) -> Result<Result<(), AnyBlob>, BlobError> {
        match (self, blob) {
            (Blobs::Local(l), AnyBlob::Local(b)) => Ok(BlobStore::publish(l, b, name)
                .await?
                .map_err(AnyBlob::Local)),
            (Blobs::S3(s), AnyBlob::S3(b)) => Ok(s.publish(b, name).await?.map_err(AnyBlob::S3)),
            _ => Err(mismatch()),
        }
    }

    async fn sync_published(&self) -> io::Result<()> {
        match self {
            Blobs::Local(l) => BlobStore::sync_published(l).await,
            // A completed multipart upload is durable when S3 answers.
            Blobs::S3(_) => Ok(()),
        }
    }

    async fn create_partial(&self, name: &ItemName) -> io::Result<()> {
        match self {
            Blobs::Local(l) => BlobStore::create_partial(l, name).await,
            Blobs::S3(s) => s.create_partial(name).await,
        }
    }

    async fn append(
        &self,
        name: &ItemName,
        offset: u64,
        hasher: Sha256,
        min_free: u64,
        hold: Box<dyn Send>,
    ) -> Result<AnyAppendWriter, BlobError> {
        match self {
            Blobs::Local(l) => Ok(AnyAppendWriter::Local(
                BlobStore::append(l, name, offset, hasher, min_free, hold).await?,
            )),
            // The ledger's hash state is the truth: another instance may have written since
            // this one cached `hasher`.
            Blobs::S3(s) => Ok(AnyAppendWriter::S3(Box::new(
                s.append(name, offset, hold).await?,
            ))),
        }
    }

    async fn hash_partial(&self, name: &ItemName, len: u64) -> io::Result<Sha256> {
        match self {
            Blobs::Local(l) => BlobStore::hash_partial(l, name, len).await,
            Blobs::S3(s) => s.hash_partial(name, len).await,
        }
    }

    async fn publish_partial(&self, name: &ItemName, size: u64) -> io::Result<()> {
        match self {
            Blobs::Local(l) => BlobStore::publish_partial(l, name, size).await,
            Blobs::S3(s) => s.publish_partial(name, size).await,
        }
    }

    async fn unpublish_partial(&self, name: &ItemName, size: u64) -> io::Result<()> {
        match self {
            Blobs::Local(l) => BlobStore::unpublish_partial(l, name, size).await,
            Blobs::S3(s) => s.unpublish_partial(name, size).await,
        }
    }

    async fn remove(&self, name: &ItemName) -> io::Result<()> {
        match self {
            Blobs::Local(l) => BlobStore::remove(l, name).await,
            Blobs::S3(s) => s.remove(name).await,
        }
    }

    async fn read_range(&self, name: &ItemName, start: u64, len: u64) -> io::Result<ByteStream> {
        match self {
            Blobs::Local(l) => BlobStore::read_range(l, name, start, len).await,
            Blobs::S3(s) => s.read_range(name, start, len).await,
        }
    }

    async fn list(&self) -> io::Result<Vec<ItemName>> {
        match self {
            Blobs::Local(l) => BlobStore::list(l).await,
            Blobs::S3(s) => s.list().await,
        }
    }

    fn make_room(&self) -> bool {
        self.local().is_some_and(BlobStore::make_room)
    }

    fn restore_room(&self) {
        if let Some(l) = self.local() {
            BlobStore::restore_room(l);
        }
    }
}
