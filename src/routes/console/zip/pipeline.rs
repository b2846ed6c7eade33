//! The making of one ZIP: an async task reads the blobs in order and feeds a thread that runs
//! the `zip` crate's synchronous stream writer, whose output goes back to the response body;
//! both channels are bounded, so memory stays flat whatever the sizes.

use super::{Entry, MANIFEST, manifest};
use crate::blobs::{BlobStore, Blobs};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{self, Write};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Output chunks handed to the body; a few in flight keep the socket busy.
const CHUNK: usize = 256 << 10;

/// Starts making the archive of `entries`: a thread of its own for the writer (holding
/// `permit` until it is done) and a task reading the blobs. Returns the archive's chunks; the
/// last one is an error if a blob failed mid-way.
pub fn start(
    blobs: Blobs,
    entries: std::sync::Arc<[Entry]>,
    permit: OwnedSemaphorePermit,
) -> io::Result<mpsc::Receiver<io::Result<Bytes>>> {
    let (pieces_tx, pieces_rx) = mpsc::channel(4);
    let (out_tx, out_rx) = mpsc::channel(4);
    let writer_entries = entries.clone();
    std::thread::Builder::new()
        .name("sfx-zip".into())
        .spawn(move || {
            let _permit = permit;
            write_zip(&writer_entries, pieces_rx, out_tx);
        })?;
    tokio::spawn(feed(blobs, entries, pieces_tx));
    Ok(out_rx)
}

enum Piece {
    /// The next entry begins (its index).
    Entry(usize),
    Data(Bytes),
    /// Every entry was sent whole.
    End,
}

/// Reads each item's blob in order; stops at the first failure (after saying so) or when the
/// writer is gone (the client left).
async fn feed(
    blobs: Blobs,
    entries: std::sync::Arc<[Entry]>,
    tx: mpsc::Sender<Result<Piece, String>>,
) {
    for (i, e) in entries.iter().enumerate() {
        if tx.send(Ok(Piece::Entry(i))).await.is_err() {
            return;
        }
        let mut stream = match blobs.read_range(&e.item, 0, e.size).await {
            Ok(s) => s,
            Err(err) => {
                let _ = tx.send(Err(format!("item {}: {err}", e.item))).await;
                return;
            }
        };
        let mut sent = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    sent += b.len() as u64;
                    if tx.send(Ok(Piece::Data(b))).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(format!("item {}: {err}", e.item))).await;
                    return;
                }
            }
        }
        if sent != e.size {
            let why = format!("item {}: {sent} bytes stored, {} recorded", e.item, e.size);
            let _ = tx.send(Err(why)).await;
            return;
        }
    }
    let _ = tx.send(Ok(Piece::End)).await;
}

/// The blocking side: the pieces in, the archive out. Any failure ends the body with an error.
fn write_zip(
    entries: &[Entry],
    mut pieces: mpsc::Receiver<Result<Piece, String>>,
    out: mpsc::Sender<io::Result<Bytes>>,
) {
    let failed = out.clone();
    if let Err(e) = build(entries, &mut pieces, Chunks::new(out)) {
        tracing::warn!(error = %e, "a ZIP download was cut off");
        let _ = failed.blocking_send(Err(io::Error::other(e)));
    }
}

fn build(
    entries: &[Entry],
    pieces: &mut mpsc::Receiver<Result<Piece, String>>,
    out: Chunks,
) -> Result<(), String> {
    let io_err = |e: io::Error| e.to_string();
    let zip_err = |e: zip::result::ZipError| e.to_string();
    let mut zip = zip::ZipWriter::new_stream(out);
    loop {
        match pieces.blocking_recv() {
            Some(Ok(Piece::Entry(i))) => {
                let e = entries.get(i).ok_or("entry out of range")?;
                zip.start_file(e.path.as_str(), options(e.size, e.modified))
                    .map_err(zip_err)?;
            }
            Some(Ok(Piece::Data(b))) => zip.write_all(&b).map_err(io_err)?,
            Some(Ok(Piece::End)) => break,
            Some(Err(e)) => return Err(e),
            None => return Err("the reader of the items stopped".into()),
        }
    }
    let sums = manifest(entries);
    zip.start_file(MANIFEST, options(sums.len() as u64, crate::now()))
        .map_err(zip_err)?;
    zip.write_all(sums.as_bytes()).map_err(io_err)?;
    let mut out = zip.finish().map_err(zip_err)?.into_inner();
    out.flush().map_err(io_err)
}

fn options(size: u64, modified: i64) -> zip::write::SimpleFileOptions {
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644)
        // ZIP64 fields only where a size needs them: older unzippers read the rest.
        .large_file(size >= zip::ZIP64_BYTES_THR);
    match dos_time(modified) {
        Some(t) => opts.last_modified_time(t),
        None => opts,
    }
}

/// ZIP keeps local time without a zone; we write UTC, as the pages show it.
fn dos_time(unix: i64) -> Option<zip::DateTime> {
    let t = jiff::Timestamp::from_second(unix).ok()?;
    let dt = jiff::tz::Offset::UTC.to_datetime(t);
    zip::DateTime::from_date_and_time(
        u16::try_from(dt.year()).ok()?,
        u8::try_from(dt.month()).ok()?,
        u8::try_from(dt.day()).ok()?,
        u8::try_from(dt.hour()).ok()?,
        u8::try_from(dt.minute()).ok()?,
        u8::try_from(dt.second()).ok()?,
    )
    .ok()
}

/// Collects the writer's small writes into chunks for the body.
struct Chunks {
    buf: Vec<u8>,
    out: mpsc::Sender<io::Result<Bytes>>,
}

impl Chunks {
    fn new(out: mpsc::Sender<io::Result<Bytes>>) -> Chunks {
        Chunks {
            buf: Vec::with_capacity(CHUNK),
            out,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.out
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times() {
        assert!(dos_time(1_796_083_200).is_some());
        // Before 1980 cannot be written: the entry gets the writer's default.
        assert!(dos_time(0).is_none());
    }
}
