//! Streams an upload to a temporary file on a blocking thread, computing its SHA-256 as the
//! bytes go by (never by reading the file back). The async side only hands over chunks.
//!
//! Chunks cross threads in batches of about 1 MiB (a handoff per network chunk cost more in
//! context switches than the copying it saved). On the blocking side two threads share the
//! work, so that hashing and writing overlap: the writer thread hands each batch (reference-
//! counted [`Bytes`], not copies) to a hashing thread, then writes it straight from the received
//! buffers with one `writev` (no copy into a write buffer). On Linux the writer also starts the kernel's writeback every few MiB, so the final
//! fsync has little left to flush and an upload does not pile up gigabytes of dirty page cache.

use super::{BlobError, BlobStore, free_space};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::SyncSender;
use tempfile::TempPath;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

/// Batches queued between the network and the disk; with [`BATCH_BYTES`], bounds memory per
/// upload.
const QUEUE_BATCHES: usize = 4;
/// Batches written but not yet hashed: how far hashing may lag behind.
const HASH_QUEUE_BATCHES: usize = 4;
/// A batch is sent once it holds this many bytes (or [`BATCH_CHUNKS`] chunks).
const BATCH_BYTES: usize = 1 << 20;
/// Below the kernel's limit of 1024 slices for one `writev`.
const BATCH_CHUNKS: usize = 256;
/// How often (in bytes written) the kernel is asked to start writing the new data to disk.
#[cfg(any(target_os = "linux", target_os = "android"))]
const WRITEBACK_EVERY: u64 = 8 << 20;
/// How often (in bytes written) the free-space floor is checked again (statvfs is cheap).
const SPACE_CHECK_EVERY: u64 = 8 << 20;

enum Msg {
    Data(Vec<Bytes>),
    Finish,
}

/// A fully written, fsynced temp file: ready for [`BlobStore::commit`].
#[derive(Debug)]
pub struct Written {
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
}

/// Bytes appended (and fsynced) to a resumable upload's partial file, and the hash state after
/// them, to continue with the next chunk.
pub struct Appended {
    pub written: u64,
    pub hasher: Sha256,
}

/// Feeds a file from the async side. `T` is what [`BlobWriter::finish`] gives: [`Written`] for
/// a new upload, [`Appended`] for a chunk of a resumable one.
pub struct BlobWriter<T = Written> {
    tx: mpsc::Sender<Msg>,
    /// The writer thread's result.
    task: oneshot::Receiver<Result<T, BlobError>>,
    /// Chunks gathered for the next batch, and their length.
    batch: Vec<Bytes>,
    batch_len: usize,
}

/// Uploads without a Content-Length were not admitted on size: check the floor now.
fn check_floor(store: &BlobStore, min_free: u64) -> Result<(), BlobError> {
    if min_free > 0 && store.free_space()? < min_free {
        return Err(BlobError::LowSpace);
    }
    Ok(())
}

impl BlobWriter<Written> {
    /// Opens a temp file and starts the writer thread. `min_free` is the free-space floor that
    /// writing must not cross.
    pub fn start(store: &BlobStore, min_free: u64) -> Result<BlobWriter<Written>, BlobError> {
        check_floor(store, min_free)?;
        let temp = store.new_temp()?;
        let dir = store.tmp_dir().to_path_buf();
        let (tx, mut rx) = mpsc::channel(QUEUE_BATCHES);
        let task = spawn_writer(move || {
            let (file, path) = temp.into_parts();
            // On an error `path` drops and deletes the temp file.
            let (hasher, size) = pump(&file, &mut rx, Sha256::new(), 0, &dir, min_free)?;
            Ok(Written {
                temp: path,
                size,
                sha256: hex::encode(hasher.finalize()),
            })
        })?;
        Ok(BlobWriter::new(tx, task))
    }
}

impl BlobWriter<Appended> {
    /// Appends to `file` (already cut to the acknowledged length), continuing `hasher`.
    pub fn append(
        file: File,
        hasher: Sha256,
        store: &BlobStore,
        min_free: u64,
    ) -> Result<BlobWriter<Appended>, BlobError> {
        check_floor(store, min_free)?;
        let dir = store.tmp_dir().to_path_buf();
        let (tx, mut rx) = mpsc::channel(QUEUE_BATCHES);
        let task = spawn_writer(move || {
            let mut file = file;
            let offset = file.seek(SeekFrom::End(0))?;
            let (hasher, end) = pump(&file, &mut rx, hasher, offset, &dir, min_free)?;
            Ok(Appended {
                written: end - offset,
                hasher,
            })
        })?;
        Ok(BlobWriter::new(tx, task))
    }
}

impl<T> BlobWriter<T> {
    fn new(tx: mpsc::Sender<Msg>, task: oneshot::Receiver<Result<T, BlobError>>) -> Self {
        BlobWriter {
            tx,
            task,
            batch: Vec::with_capacity(BATCH_CHUNKS),
            batch_len: 0,
        }
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.batch_len += chunk.len();
        self.batch.push(chunk);
        if self.batch_len >= BATCH_BYTES || self.batch.len() >= BATCH_CHUNKS {
            self.send_batch().await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self) -> Result<(), BlobError> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_CHUNKS));
        self.batch_len = 0;
        if self.tx.send(Msg::Data(batch)).await.is_err() {
            // The thread stopped early: its result says why.
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Flushes and fsyncs the file (a new upload's temp file still deletes itself if dropped).
    pub async fn finish(mut self) -> Result<T, BlobError> {
        if !self.batch.is_empty() {
            self.send_batch().await?;
        }
        let _ = self.tx.send(Msg::Finish).await;
        self.task.await.map_err(|_| writer_died())?
    }

    async fn failure(&mut self) -> BlobError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => BlobError::Aborted,
            Err(_) => writer_died(),
        }
    }
}

fn writer_died() -> BlobError {
    BlobError::Io(io::Error::other("the writer thread stopped"))
}

/// Runs `work` on a thread of its own. Not tokio's blocking pool: an upload waiting on a slow
/// client would hold a pool thread for its whole life, and enough of them would starve every
/// metadata query (they share the pool). Upload admission bounds how many of these exist.
fn spawn_writer<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<oneshot::Receiver<Result<T, BlobError>>, BlobError> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name("sfx-write".into())
        .spawn(move || {
            let _ = done.send(work());
        })?;
    Ok(result)
}

/// Writes what arrives on `rx` to `file` (whose cursor is at `offset`) until `Finish`, hashing
/// it on a second thread that continues `hasher`; fsyncs; returns the hash state and the end
/// offset.
fn pump(
    file: &File,
    rx: &mut mpsc::Receiver<Msg>,
    hasher: Sha256,
    offset: u64,
    dir: &Path,
    min_free: u64,
) -> Result<(Sha256, u64), BlobError> {
    let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Vec<Bytes>>(HASH_QUEUE_BATCHES);
    std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .name("sfx-hash".into())
            .spawn_scoped(scope, move || {
                let mut hasher = hasher;
                for batch in hash_rx {
                    for chunk in &batch {
                        hasher.update(chunk);
                    }
                }
                hasher
            })?;
        // On any early return the sender is dropped, so the hashing thread ends and the scope
        // can join it.
        let end = receive_and_write(file, rx, hash_tx, offset, dir, min_free)?;
        // The hashing thread finishes its last chunks during the fsync.
        file.sync_all()?;
        let hasher = hashing
            .join()
            .map_err(|_| BlobError::Io(io::Error::other("the hashing thread panicked")))?;
        Ok((hasher, end))
    })
}

/// Writes every batch until `Finish` (handing each to `hash` first); returns the end offset.
fn receive_and_write(
    file: &File,
    rx: &mut mpsc::Receiver<Msg>,
    hash: SyncSender<Vec<Bytes>>,
    offset: u64,
    dir: &Path,
    min_free: u64,
) -> Result<u64, BlobError> {
    let mut size: u64 = offset;
    let mut next_check = offset + SPACE_CHECK_EVERY;
    let mut writeback = Writeback {
        previous: offset,
        next: offset,
    };
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(batch)) => {
                let len: usize = batch.iter().map(Bytes::len).sum();
                hash.send(batch.clone())
                    .map_err(|_| BlobError::Io(io::Error::other("the hashing thread stopped")))?;
                write_batch(file, &batch)?;
                size += len as u64;
                writeback.advance(file, size);
                if size >= next_check {
                    next_check = size + SPACE_CHECK_EVERY;
                    if min_free > 0 && free_space(dir)? < min_free {
                        return Err(BlobError::LowSpace);
                    }
                }
            }
            Some(Msg::Finish) => return Ok(size),
            // The upload was dropped (client gone, error elsewhere): the temp file is deleted.
            None => return Err(BlobError::Aborted),
        }
    }
}

/// Writes all of `chunks` with as few `writev` calls as the kernel allows.
fn write_batch(mut file: &File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writeback of each finished [`WRITEBACK_EVERY`] window as soon as it is written,
/// instead of leaving all of it to the final fsync. `POSIX_FADV_DONTNEED` does that on Linux
/// (it starts writing dirty pages without waiting) and also drops the previous window's pages
/// that are clean by then, so a large upload keeps only a few MiB of page cache. Purely
/// advisory: errors are ignored, and fsync still decides durability.
#[derive(Default)]
struct Writeback {
    /// Where the window whose writeback was started last begins.
    previous: u64,
    /// Where the next window begins.
    next: u64,
}

impl Writeback {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn advance(&mut self, file: &File, written: u64) {
        if written - self.next < WRITEBACK_EVERY {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = BlobWriter::start(&store, 0).unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        let done = w.finish().await.unwrap();
        assert_eq!(done.size, 11);
        assert_eq!(
            done.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(std::fs::read(&done.temp).unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn appends_continue_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
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
        let mut w = BlobWriter::append(file, first, &store, 0).unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        let done = w.finish().await.unwrap();
        assert_eq!(done.written, 5);
        assert_eq!(
            hex::encode(done.hasher.finalize()),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = BlobWriter::start(&store, 0).unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        drop(w);
        for _ in 0..100 {
            if std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("temp file left behind");
    }
}
