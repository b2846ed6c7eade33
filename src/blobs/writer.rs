//! Streams an upload to a temporary file on a blocking thread, computing its SHA-256 as the
//! bytes go by (never by reading the file back). The async side only hands over chunks.

use super::{BlobError, BlobStore, free_space};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use tempfile::TempPath;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks queued between the network and the disk; bounds memory per upload.
const QUEUE_CHUNKS: usize = 16;
const WRITE_BUFFER: usize = 1 << 20;
/// How often (in bytes written) the free-space floor is checked again (statvfs is cheap).
const SPACE_CHECK_EVERY: u64 = 8 << 20;

enum Msg {
    Data(Bytes),
    Finish,
}

/// A fully written, fsynced temp file: ready for [`BlobStore::commit`].
#[derive(Debug)]
pub struct Written {
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
}

pub struct BlobWriter {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Result<Written, BlobError>>,
}

impl BlobWriter {
    /// Opens a temp file and starts the writer thread. `min_free` is the free-space floor that
    /// writing must not cross.
    pub fn start(store: &BlobStore, min_free: u64) -> Result<BlobWriter, BlobError> {
        // Uploads without a Content-Length were not admitted on size: check the floor now.
        if min_free > 0 && store.free_space()? < min_free {
            return Err(BlobError::LowSpace);
        }
        let temp = store.new_temp()?;
        let dir = store.tmp_dir().to_path_buf();
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let task = tokio::task::spawn_blocking(move || write_loop(temp, rx, dir, min_free));
        Ok(BlobWriter { tx, task })
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.tx.send(Msg::Data(chunk)).await.is_err() {
            // The thread stopped early: its result says why.
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Flushes and fsyncs the file; the returned temp file still deletes itself if dropped.
    pub async fn finish(self) -> Result<Written, BlobError> {
        let _ = self.tx.send(Msg::Finish).await;
        self.task
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    async fn failure(&mut self) -> BlobError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => BlobError::Aborted,
            Err(e) => BlobError::Io(std::io::Error::other(e)),
        }
    }
}

fn write_loop(
    temp: tempfile::NamedTempFile,
    mut rx: mpsc::Receiver<Msg>,
    dir: PathBuf,
    min_free: u64,
) -> Result<Written, BlobError> {
    let (file, path) = temp.into_parts();
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut next_check = SPACE_CHECK_EVERY;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                size += chunk.len() as u64;
                if size >= next_check {
                    next_check = size + SPACE_CHECK_EVERY;
                    if min_free > 0 && free_space(&dir)? < min_free {
                        return Err(BlobError::LowSpace);
                    }
                }
            }
            Some(Msg::Finish) => break,
            // The upload was dropped (client gone, error elsewhere): `path` deletes the file.
            None => return Err(BlobError::Aborted),
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Written {
        temp: path,
        size,
        sha256: hex::encode(hasher.finalize()),
    })
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
