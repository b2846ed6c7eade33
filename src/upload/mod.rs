//! Turning received bytes into items, shared by every upload route: staging a stream into a
//! temp file ([`receive`]), then naming and committing a batch of staged files ([`commit`]).

mod commit;
mod receive;

pub use commit::{Staged, UploadMeta, commit};
pub use receive::{ReceiveError, receive_chunk};
