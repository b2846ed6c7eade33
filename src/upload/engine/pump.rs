//! Moving one request's body into a blob: waits for each network chunk with the idle timeout,
//! counts it against the request's limits and the client's account, decodes it (bepasty's
//! base64) and checks the lengths and the chunk checksum on the way.

use super::UploadError;
use crate::blobs::BlobSink;
use crate::upload::{Base64Stream, ReceiveError, Ticket, receive_chunk};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a body carries the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    /// bepasty's REST API.
    Base64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const NAMES: &'static str = "sha1,sha256";

    pub fn parse(name: &str) -> Option<ChecksumAlgorithm> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(ChecksumAlgorithm::Sha1),
            "sha256" => Some(ChecksumAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// A checksum the client sent for this request's body (tus `Upload-Checksum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

enum Running {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Running {
    fn new(a: ChecksumAlgorithm) -> Running {
        match a {
            ChecksumAlgorithm::Sha1 => Running::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Running::Sha256(Sha256::new()),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Running::Sha1(h) => h.update(data),
            Running::Sha256(h) => h.update(data),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Running::Sha1(h) => h.finalize().to_vec(),
            Running::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The bounds of one request body.
pub struct Bounds<'a> {
    pub encoding: Encoding,
    /// Network bytes this request may carry.
    pub max_body: u64,
    /// File bytes it may add (what is left of the declared length, or the size limit).
    pub room: u64,
    /// Exactly this many file bytes must arrive.
    pub exact: Option<u64>,
    pub checksum: Option<&'a Checksum>,
    pub idle: Duration,
    pub ticket: &'a Ticket,
    /// Cancelled when a newer request takes over the upload.
    pub stop: Option<&'a CancellationToken>,
}

/// Streams `body` into `sink`; returns the file bytes written. On an error, what was handed to
/// the sink may be kept (see the callers) but the caller decides.
pub async fn pump<S, E, W>(
    body: &mut S,
    sink: &mut W,
    b: &Bounds<'_>,
    written: &mut u64,
) -> Result<(), UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    W: BlobSink,
{
    let mut received = 0u64;
    let mut decoder = (b.encoding == Encoding::Base64).then(Base64Stream::new);
    let mut check = b.checksum.map(|c| Running::new(c.algorithm));
    let limit = b.exact.unwrap_or(b.room).min(b.room);
    loop {
        let next = tokio::select! {
            next = receive_chunk(
                async { body.next().await.transpose() },
                sink.flush(),
                b.idle,
                &mut received,
                b.max_body,
                b.ticket,
            ) => next,
            () = stopped(b.stop) => return Err(UploadError::Superseded),
        };
        let next = next.map_err(|e| match e {
            ReceiveError::Idle(d) => UploadError::Idle(d),
            ReceiveError::TooLarge(limit) => UploadError::TooLarge {
                size: received,
                limit,
            },
            ReceiveError::TooSlow => UploadError::TooSlow,
            ReceiveError::Limit(l) => UploadError::Limit(l),
            ReceiveError::Source(_) => UploadError::Interrupted,
            ReceiveError::Sink(e) => e.into(),
        })?;
        let Some(chunk) = next else { break };
        let data = match decoder.as_mut() {
            Some(d) => Bytes::from(
                d.feed(&chunk)
                    .map_err(|e| UploadError::BadEncoding(e.to_string()))?,
            ),
            None => chunk,
        };
        write(sink, data, limit, b, written, check.as_mut()).await?;
    }
    if let Some(d) = decoder {
        let tail = d
            .finish()
            .map_err(|e| UploadError::BadEncoding(e.to_string()))?;
        write(sink, Bytes::from(tail), limit, b, written, check.as_mut()).await?;
    }
    if let Some(expected) = b.exact
        && *written != expected
    {
        return Err(UploadError::ShortBody { expected });
    }
    if let (Some(c), Some(running)) = (b.checksum, check)
        && running.finish() != c.digest
    {
        return Err(UploadError::ChecksumMismatch);
    }
    Ok(())
}

async fn stopped(stop: Option<&CancellationToken>) {
    match stop {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn write<W: BlobSink>(
    sink: &mut W,
    data: Bytes,
    limit: u64,
    b: &Bounds<'_>,
    written: &mut u64,
    check: Option<&mut Running>,
) -> Result<(), UploadError> {
    if data.is_empty() {
        return Ok(());
    }
    let n = data.len() as u64;
    if *written + n > limit {
        return Err(match b.exact {
            Some(expected) if expected <= b.room => UploadError::ShortBody { expected },
            _ => UploadError::BeyondLength { remaining: b.room },
        });
    }
    if let Some(c) = check {
        c.update(&data);
    }
    sink.write(data).await?;
    *written += n;
    Ok(())
}
