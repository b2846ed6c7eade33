//! Turning received bytes into items, shared by every upload route: staging a stream into a
//! temp file ([`receive`]), then naming and committing a batch of staged files ([`commit`]).

mod admission;
mod base64_stream;
mod commit;
mod content_range;
pub mod limits;
mod receive;
pub mod resumable;

pub use admission::{Admission, AdmissionLimits, Refused, Ticket};
pub use base64_stream::{Base64Error, Base64Stream};
pub use commit::{Staged, UploadMeta, commit};
pub use content_range::ChunkRange;
pub use limits::{Account, Limit, Limits, QuotaLimits};
pub use receive::{ReceiveError, receive_chunk};
pub use resumable::Resumable;
