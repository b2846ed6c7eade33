//! Turning received bytes into items. [`engine`] is the one upload engine every protocol adapter
//! uses; around it: admission of uploads (slots), per-client limits, and the small parsers the
//! protocols share.

mod admission;
mod base64_stream;
mod content_range;
pub mod engine;
pub mod limits;
mod receive;
pub mod resumable;

pub use admission::{Admission, AdmissionLimits, Refused, Ticket};
pub use base64_stream::{Base64Error, Base64Stream};
pub use content_range::ChunkRange;
pub use engine::{
    Checksum, ChecksumAlgorithm, Chunk, Encoding, Engine, NewUpload, Progress, Settings, Staged,
    UploadError, UploadMeta,
};
pub use limits::{Account, Limit, Limits, QuotaLimits};
pub use receive::{ReceiveError, nothing_to_flush, receive_chunk};
pub use resumable::Resumable;
