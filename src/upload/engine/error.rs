//! What can go wrong with an upload, named after the domain; the HTTP layer maps each variant to
//! a status in one place (`server/error.rs`), protocol adapters only reword a few.

use crate::blobs::BlobError;
use crate::store::StoreError;
use crate::upload::Limit;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no such upload")]
    UnknownUpload,
    #[error("this upload belongs to another credential")]
    NotOwner,
    #[error("this upload is complete; it cannot be written to")]
    Completed,
    #[error("another request is writing to this upload; retry later")]
    Busy,
    #[error("the offset does not match: the server has {stored} bytes of this upload")]
    OffsetMismatch { stored: u64 },
    #[error(
        "the upload ({size} bytes) is larger than the limit of {limit} bytes; nothing was stored"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("the body is longer than the {remaining} bytes left of the upload's declared length")]
    BeyondLength { remaining: u64 },
    #[error("{0}")]
    BadLength(String),
    #[error("the body does not have the {expected} bytes announced; nothing was stored")]
    ShortBody { expected: u64 },
    #[error("the checksum of this chunk does not match; it was not stored")]
    ChecksumMismatch,
    #[error("could not decode the body: {0}")]
    BadEncoding(String),
    #[error("{0}")]
    BadText(String),
    #[error("no data received for {}s; the upload was abandoned", .0.as_secs())]
    Idle(Duration),
    #[error(
        "this upload was cut off: it was slower than the server's minimum rate while every upload slot was taken; please retry"
    )]
    TooSlow,
    #[error("the upload was interrupted (the body ended early or the connection broke)")]
    Interrupted,
    #[error("a newer request took over this upload; what arrived before it is kept")]
    Superseded,
    #[error("not enough free space on the server for this upload")]
    NoSpace,
    #[error("a quota or the store's size limit was reached")]
    Limit(Limit),
    #[error(transparent)]
    Blob(BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<BlobError> for UploadError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Busy => UploadError::Busy,
            other => UploadError::Blob(other),
        }
    }
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Blob(BlobError::from(e))
    }
}

impl From<Limit> for UploadError {
    fn from(l: Limit) -> Self {
        UploadError::Limit(l)
    }
}

impl From<tokio::task::JoinError> for UploadError {
    fn from(e: tokio::task::JoinError) -> Self {
        UploadError::Internal(format!("task: {e}"))
    }
}
