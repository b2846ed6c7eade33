//! Streams an upload into a file, computing its SHA-256 as the bytes go by (never by reading
//! the file back), with bounded memory whatever the file size or the client's speed.
//!
//! The async side gathers network chunks into batches of about 1 MiB and hands each batch to
//! two [`Strand`]s on the shared [`Pool`]: one writes it (`pwritev` at its offset, straight
//! from the received buffers), the other hashes it, so both proceed at once. At most
//! [`IN_FLIGHT`] bytes of an upload wait for the disk, and at most
//! [`HELD_BYTES`](super::pool::HELD_BYTES) of all
//! uploads together are held from the moment the writer takes them; a faster client waits
//! instead. When the source has nothing more ready, [`BlobWriter::flush`] hands on what is
//! gathered, so an upload that waits for its client holds none of the shared budget.
//! Tiny chunks (a trickling client) are copied into one buffer, so they do not each pin a
//! network buffer. On Linux the writer also starts the kernel's writeback every few MiB, so the
//! final fsync has little left to flush and an upload does not pile up dirty page cache.

use super::pool::{Pool, Strand};
use super::{BlobError, LocalBlobs, free_space};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::TempPath;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// A batch is handed over once it holds this many bytes (or [`BATCH_CHUNKS`] chunks).
const BATCH_BYTES: usize = 1 << 20;
/// Below the kernel's limit of 1024 slices for one `pwritev`.
const BATCH_CHUNKS: usize = 256;
/// Bytes of one upload handed over but not yet written and hashed.
const IN_FLIGHT: usize = 4 << 20;
/// Chunks smaller than this are copied together instead of kept as received.
const COPY_BELOW: usize = 16 << 10;
/// How often (in bytes written) the kernel is asked to start writing the new data to disk.
#[cfg(any(target_os = "linux", target_os = "android"))]
const WRITEBACK_EVERY: u64 = 8 << 20;
/// How often (in bytes written) the free-space floor is checked again (statvfs is cheap).
const SPACE_CHECK_EVERY: u64 = 8 << 20;

/// A fully written, durable blob not yet published under an item name (for the local store, an
/// fsynced temp file: ready for [`LocalBlobs::commit`]).
#[derive(Debug)]
pub struct Written<T = TempPath> {
    pub blob: T,
    pub size: u64,
    pub sha256: String,
}

/// Bytes appended (and fsynced) to a resumable upload's partial file, and the hash state after
/// them, to continue with the next chunk.
pub struct Appended {
    pub written: u64,
    pub hasher: Sha256,
    /// Held until the caller is done with the upload (an object store's lease on it).
    pub hold: Option<Box<dyn Send>>,
}

/// What [`BlobWriter::finish`] makes of the finished file.
pub trait Finished: Sized {
    fn make(
        temp: Option<TempPath>,
        start: u64,
        end: u64,
        hasher: Sha256,
    ) -> Result<Self, BlobError>;
}

impl Finished for Written {
    fn make(temp: Option<TempPath>, _: u64, end: u64, hasher: Sha256) -> Result<Self, BlobError> {
        Ok(Written {
            blob: temp.ok_or_else(|| BlobError::Io(io::Error::other("no temp file")))?,
            size: end,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

impl Finished for Appended {
    fn make(_: Option<TempPath>, start: u64, end: u64, hasher: Sha256) -> Result<Self, BlobError> {
        Ok(Appended {
            written: end - start,
            hasher,
            hold: None,
        })
    }
}

/// What the jobs of one upload share.
struct Shared {
    /// Taken (closed) as soon as the upload is abandoned: an unlinked temp file's space is
    /// given back only when its last descriptor closes, and queued jobs must not hold it.
    file: Mutex<Option<File>>,
    hasher: Mutex<Option<Sha256>>,
    /// The first failure (disk full, I/O error); later jobs do nothing.
    error: Mutex<Option<BlobError>>,
    failed: AtomicBool,
    /// The upload was abandoned: queued jobs do nothing.
    cancelled: AtomicBool,
    progress: Mutex<Progress>,
    space_dir: PathBuf,
    min_free: u64,
}

impl Shared {
    fn fail(&self, e: BlobError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Acquire) || self.cancelled.load(Ordering::Acquire)
    }

    fn take_error(&self) -> BlobError {
        self.error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(BlobError::Aborted)
    }

    /// Writes one batch at `offset`; then the writeback hint and the free-space floor.
    fn write(&self, batch: &[Bytes], offset: u64) {
        if self.stopped() {
            return;
        }
        let end = offset + batch.iter().map(|b| b.len() as u64).sum::<u64>();
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = file.as_ref() else { return };
        let result = write_at(f, batch, offset)
            .map_err(BlobError::from)
            .and_then(|()| {
                let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
                p.writeback.advance(f, end);
                p.check_space(end, &self.space_dir, self.min_free)
            });
        if self.cancelled.load(Ordering::Acquire) {
            // Abandoned while this write ran: close now rather than when the queue drains.
            file.take();
        }
        drop(file);
        if let Err(e) = result {
            self.fail(e);
        }
    }

    fn hash(&self, batch: &[Bytes]) {
        if self.cancelled.load(Ordering::Acquire) {
            return;
        }
        if let Some(h) = self
            .hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            for chunk in batch {
                h.update(chunk);
            }
        }
    }
}

struct Progress {
    writeback: Writeback,
    next_space_check: u64,
}

impl Progress {
    /// Every [`SPACE_CHECK_EVERY`] bytes: the free-space floor still holds.
    fn check_space(&mut self, end: u64, dir: &Path, min_free: u64) -> Result<(), BlobError> {
        if end < self.next_space_check {
            return Ok(());
        }
        self.next_space_check = end + SPACE_CHECK_EVERY;
        if min_free > 0 && free_space(dir)? < min_free {
            return Err(BlobError::LowSpace);
        }
        Ok(())
    }
}

/// Feeds a file from the async side. `T` is what [`BlobWriter::finish`] gives: [`Written`] for
/// a new upload, [`Appended`] for a chunk of a resumable one.
pub struct BlobWriter<T: Finished = Written> {
    shared: Arc<Shared>,
    writes: Strand,
    hashes: Strand,
    /// Bytes handed over but not yet written and hashed, in KiB.
    room: Arc<Semaphore>,
    /// The pool's shared budget and its size, and this writer's share of it for the batch it
    /// gathers.
    budget: Arc<Semaphore>,
    budget_max: usize,
    held: Option<OwnedSemaphorePermit>,
    /// A new upload's temp file: removed when the writer is dropped unfinished.
    temp: Option<TempPath>,
    start: u64,
    /// Where the next batch goes.
    offset: u64,
    batch: Vec<Bytes>,
    batch_len: usize,
    small: BytesMut,
    /// Released only once every write of this writer has run (see [`BlobWriter::append`]).
    hold: Option<Box<dyn Send>>,
    finished: bool,
    _out: PhantomData<T>,
}

/// Uploads without a Content-Length were not admitted on size: check the floor now.
fn check_floor(store: &LocalBlobs, min_free: u64) -> Result<(), BlobError> {
    if min_free > 0 && store.free_space()? < min_free {
        return Err(BlobError::LowSpace);
    }
    Ok(())
}

impl BlobWriter<Written> {
    /// Opens a temp file for a new upload. `min_free` is the free-space floor that writing must
    /// not cross.
    pub fn start(store: &LocalBlobs, min_free: u64) -> Result<BlobWriter<Written>, BlobError> {
        check_floor(store, min_free)?;
        let (file, path) = store.new_temp()?.into_parts();
        Ok(BlobWriter::new(
            store,
            file,
            Some(path),
            0,
            Sha256::new(),
            min_free,
            None,
        ))
    }
}

impl BlobWriter<Appended> {
    /// Appends to `file` (already cut to the acknowledged length), continuing `hasher`.
    /// `hold` (e.g. a lock on the upload) is dropped only after the last write of this writer
    /// has run, even if the writer is dropped first: the next writer of the same file can
    /// never race a late write of this one.
    pub fn append(
        file: File,
        hasher: Sha256,
        store: &LocalBlobs,
        min_free: u64,
        hold: Box<dyn Send>,
    ) -> Result<BlobWriter<Appended>, BlobError> {
        check_floor(store, min_free)?;
        let start = file.metadata()?.len();
        Ok(BlobWriter::new(
            store,
            file,
            None,
            start,
            hasher,
            min_free,
            Some(hold),
        ))
    }
}

impl<T: Finished> BlobWriter<T> {
    fn new(
        store: &LocalBlobs,
        file: File,
        temp: Option<TempPath>,
        start: u64,
        hasher: Sha256,
        min_free: u64,
        hold: Option<Box<dyn Send>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            file: Mutex::new(Some(file)),
            hasher: Mutex::new(Some(hasher)),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                writeback: Writeback {
                    previous: start,
                    next: start,
                },
                next_space_check: start + SPACE_CHECK_EVERY,
            }),
            space_dir: store.tmp_dir().to_path_buf(),
            min_free,
        });
        BlobWriter {
            shared,
            writes: Strand::new(store.pool()),
            hashes: Strand::new(store.pool()),
            room: Arc::new(Semaphore::new(IN_FLIGHT >> 10)),
            budget: Arc::clone(store.pool().held().0),
            budget_max: store.pool().held().1,
            held: None,
            temp,
            start,
            offset: start,
            batch: Vec::with_capacity(BATCH_CHUNKS),
            batch_len: 0,
            small: BytesMut::new(),
            hold,
            finished: false,
            _out: PhantomData,
        }
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.take_error());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.take_share(chunk.len()).await?;
        if chunk.len() < COPY_BELOW {
            if self.small.capacity() == 0 {
                self.small.reserve(4 * COPY_BELOW);
            }
            self.small.extend_from_slice(&chunk);
            self.batch_len += chunk.len();
            if self.small.len() >= 4 * COPY_BELOW {
                self.seal_small();
            }
        } else {
            self.seal_small();
            self.batch_len += chunk.len();
            self.batch.push(chunk);
        }
        if self.batch_len >= BATCH_BYTES || self.batch.len() >= BATCH_CHUNKS {
            self.send_batch().await?;
        }
        Ok(())
    }

    /// Takes `len` bytes of the shared budget (all of it at most, so that a larger chunk still
    /// gets through once the others are done). When it is short, the gathered batch goes on
    /// first, so that this writer waits holding nothing.
    async fn take_share(&mut self, len: usize) -> Result<(), BlobError> {
        let n = u32::try_from(len.min(self.budget_max)).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&self.budget).try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                self.send_batch().await?;
                Arc::clone(&self.budget)
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| BlobError::Aborted)?
            }
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Hands on what is gathered now: the source has nothing more ready, and the bytes should
    /// not wait for it (nor hold the shared budget while they do).
    pub async fn flush(&mut self) -> Result<(), BlobError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.take_error());
        }
        self.send_batch().await
    }

    /// Moves the copied small chunks into the batch (keeping the byte order).
    fn seal_small(&mut self) {
        if !self.small.is_empty() {
            self.batch.push(self.small.split().freeze());
        }
    }

    async fn send_batch(&mut self) -> Result<(), BlobError> {
        self.seal_small();
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_CHUNKS));
        let len = std::mem::take(&mut self.batch_len);
        let kib = u32::try_from(len.div_ceil(1024).min(IN_FLIGHT >> 10)).unwrap_or(u32::MAX);
        let room = Arc::clone(&self.room)
            .acquire_many_owned(kib)
            .await
            .map_err(|_| BlobError::Aborted)?;
        // Both go back when the batch is written and hashed.
        let permit = Arc::new((room, self.held.take()));
        let offset = self.offset;
        self.offset += len as u64;
        let (shared, batch2, permit2) =
            (Arc::clone(&self.shared), batch.clone(), Arc::clone(&permit));
        self.hashes.push(move || {
            shared.hash(&batch2);
            drop(permit2);
        });
        let shared = Arc::clone(&self.shared);
        self.writes.push(move || {
            shared.write(&batch, offset);
            drop(permit);
        });
        Ok(())
    }

    /// Writes what is left, fsyncs the file and returns the result (a new upload's temp file
    /// still deletes itself if that is dropped).
    pub async fn finish(mut self) -> Result<T, BlobError> {
        self.send_batch().await?;
        let (synced_tx, synced) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        self.writes.push(move || {
            if !shared.stopped() {
                let file = shared.file.lock().unwrap_or_else(|p| p.into_inner());
                match file.as_ref().map(File::sync_all) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => shared.fail(e.into()),
                    None => shared.fail(BlobError::Aborted),
                }
            }
            let _ = synced_tx.send(());
        });
        let (hashed_tx, hashed) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        self.hashes.push(move || {
            let _ = hashed_tx.send(
                shared
                    .hasher
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(),
            );
        });
        let died = || BlobError::Io(io::Error::other("the upload's writer stopped"));
        synced.await.map_err(|_| died())?;
        let hasher = hashed.await.map_err(|_| died())?.ok_or_else(died)?;
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.take_error());
        }
        self.finished = true;
        T::make(self.temp.take(), self.start, self.offset, hasher)
    }
}

impl<T: Finished> Drop for BlobWriter<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.cancelled.store(true, Ordering::Release);
            // Close the file now unless a write holds it (that write closes it when done).
            if let Ok(mut file) = self.shared.file.try_lock() {
                file.take();
            }
        }
        if let Some(hold) = self.hold.take() {
            // After every queued write: released when the strand reaches it.
            self.writes.push(move || drop(hold));
        }
    }
}

/// Writes all of `chunks` at `offset` with as few `pwritev` calls as the kernel allows.
fn write_at(file: &File, chunks: &[Bytes], mut offset: u64) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match rustix::io::pwritev(file, rest, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Starts writeback of each finished [`WRITEBACK_EVERY`] window as soon as it is written,
/// instead of leaving all of it to the final fsync. `POSIX_FADV_DONTNEED` does that on Linux
/// (it starts writing dirty pages without waiting) and also drops the previous window's pages
/// that are clean by then, so a large upload keeps only a few MiB of page cache. Purely
/// advisory: errors are ignored, and fsync still decides durability.
struct Writeback {
    /// Where the window whose writeback was started last begins.
    previous: u64,
    /// Where the next window begins.
    next: u64,
}

impl Writeback {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn advance(&mut self, file: &File, written: u64) {
        if written.saturating_sub(self.next) < WRITEBACK_EVERY {
            return;
        }
        let len = std::num::NonZeroU64::new(written - self.previous);
        let _ = rustix::fs::fadvise(file, self.previous, len, rustix::fs::Advice::DontNeed);
        self.previous = self.next;
        self.next = written;
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn advance(&mut self, _file: &File, _written: u64) {}
}

/// Pool threads for a store: see [`Pool`].
pub(super) fn new_pool() -> io::Result<Arc<Pool>> {
    Pool::new(Pool::default_size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HELLO_WORLD: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    #[tokio::test]
    async fn hashes_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let mut w = BlobWriter::start(&store, 0).unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        let done = w.finish().await.unwrap();
        assert_eq!(done.size, 11);
        assert_eq!(done.sha256, HELLO_WORLD);
        assert_eq!(std::fs::read(&done.blob).unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn mixed_chunk_sizes_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = BlobWriter::start(&store, 0).unwrap();
        let mut at = 0;
        for (i, size) in [1usize, 3, 70_000, 5, 16_383, 16_384, 1 << 20, 2, 300_000]
            .iter()
            .cycle()
            .enumerate()
        {
            let end = (at + size).min(data.len());
            w.write(Bytes::copy_from_slice(&data[at..end]))
                .await
                .unwrap();
            at = end;
            if at == data.len() || i > 10_000 {
                break;
            }
        }
        let done = w.finish().await.unwrap();
        assert_eq!(done.size, at as u64);
        assert_eq!(std::fs::read(&done.blob).unwrap(), &data[..at]);
        assert_eq!(done.sha256, hex::encode(Sha256::digest(&data[..at])));
    }

    /// A writer short of the shared budget hands on its own batch and waits; it goes on once
    /// another writer hands on the bytes it gathered (what `receive_chunk` makes it do when its
    /// client pauses), and a chunk larger than the whole budget still gets through.
    #[tokio::test]
    async fn the_shared_budget_waits_for_gathered_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalBlobs::open(dir.path()).unwrap();
        store.pool = Pool::with_budget(2, 64 << 10).unwrap();
        let budget = Arc::clone(store.pool.held().0);
        let mut a = BlobWriter::start(&store, 0).unwrap();
        a.write(Bytes::from(vec![1u8; 48 << 10])).await.unwrap();
        assert_eq!(budget.available_permits(), 16 << 10);
        let mut b = BlobWriter::start(&store, 0).unwrap();
        let second = async {
            b.write(Bytes::from(vec![2u8; 32 << 10])).await.unwrap();
            b.write(Bytes::from(vec![3u8; 100 << 10])).await.unwrap();
            b.finish().await.unwrap()
        };
        tokio::pin!(second);
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
        assert!(waited.is_err(), "b went on while a held the budget");
        a.flush().await.unwrap();
        let b_done = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("b waited on after a handed its bytes on");
        assert_eq!(b_done.size, (32 + 100) << 10);
        let a_done = a.finish().await.unwrap();
        assert_eq!(a_done.size, 48 << 10);
        // Everything written and hashed: the whole budget is back.
        assert_eq!(budget.available_permits(), 64 << 10);
    }

    #[tokio::test]
    async fn appends_continue_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"hello XXX").unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.set_len(6).unwrap();
        let mut first = Sha256::new();
        first.update(b"hello ");
        let (held_tx, mut held) = tokio::sync::oneshot::channel::<()>();
        let mut w = BlobWriter::append(file, first, &store, 0, Box::new(held_tx)).unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert!(held.try_recv().is_err(), "held while writing");
        let done = w.finish().await.unwrap();
        assert_eq!(done.written, 5);
        assert_eq!(hex::encode(done.hasher.finalize()), HELLO_WORLD);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert!(held.await.is_err(), "released after the last write");
    }

    #[tokio::test]
    async fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let mut w = BlobWriter::start(&store, 0).unwrap();
        w.write(Bytes::from(vec![1u8; 3 << 20])).await.unwrap();
        drop(w);
        assert!(
            std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
            "temp file removed at once"
        );
    }
}
