//! The ledger of uploads into an object store (`[storage] kind = "s3"`): for each object being
//! written, its multipart upload, the parts sent (number and ETag), the bytes of the tail that
//! does not fill a part yet, and the SHA-256 state at every offset a writer committed. It lives
//! in the metadata store, so any instance can continue an upload another one began, and a lease
//! keeps two instances from writing to one upload at once.
//!
//! Parts have a fixed size: part `n` (from 1) holds bytes `[(n-1)·size, n·size)`. A commit from
//! offset `start` to `end` records the parts cut in between, the bytes of `[max(start, last
//! part end), end)` as a tail row and the hash state at `end`. Nothing at or before `start` is
//! touched until a later commit starts past it: the metadata store's offset (what the client was
//! told) may still be `start` if recording `end` there failed, and the upload then goes on from
//! `start` again.

use super::StoreError;

/// What a writer needs to continue an upload at an offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerState {
    /// The object store's id of the multipart upload (`None` until one was created).
    pub upload_id: Option<String>,
    /// ETags of parts 1..=n, every part wholly before the offset.
    pub parts: Vec<String>,
    /// The bytes from the end of the last part to the offset.
    pub tail: Vec<u8>,
    /// The serialized SHA-256 state at the offset (`None` at offset 0).
    pub hash: Option<Vec<u8>>,
    /// The object was completed (see [`Ledger::ledger_published`]).
    pub published: bool,
}

/// The answer to [`Ledger::ledger_claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Taken(LedgerState),
    /// Another instance holds the lease.
    Busy,
    /// No such upload, or no commit ended at that offset.
    Missing,
}

/// One writer's commit (see the module documentation).
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub key: &'a str,
    pub part_size: u64,
    pub upload_id: Option<&'a str>,
    pub start: u64,
    /// Parts cut since `start`: (number, ETag).
    pub parts: &'a [(u64, String)],
    /// Where [`Commit::tail`] starts.
    pub tail_start: u64,
    pub tail: &'a [u8],
    pub end: u64,
    pub hash: &'a [u8],
    pub at: i64,
}

/// A ledger row the sweeper looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: String,
    pub upload_id: Option<String>,
    pub resumable: bool,
    pub published: bool,
    /// When a writer last touched it (Unix seconds).
    pub touched_at: i64,
}

pub trait Ledger {
    /// Starts the ledger of `key`; false if it exists.
    fn ledger_create(&self, key: &str, resumable: bool, at: i64) -> Result<bool, StoreError>;
    /// Records the multipart upload created for `key` (before any part is sent, so that a
    /// crash leaves nothing the sweeper cannot abort).
    fn ledger_set_upload(&self, key: &str, upload_id: &str, at: i64) -> Result<(), StoreError>;
    /// Takes (or renews) the lease of `key` for `owner` until `until` and returns the state at
    /// `offset`; a lease of another owner still running at `now` makes it [`Claim::Busy`].
    fn ledger_claim(
        &self,
        key: &str,
        offset: u64,
        part_size: u64,
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<Claim, StoreError>;
    /// The state at `offset` without a lease (to read the hash state, or to complete).
    fn ledger_state(
        &self,
        key: &str,
        offset: u64,
        part_size: u64,
    ) -> Result<Option<LedgerState>, StoreError>;
    /// Extends `owner`'s lease; false if it lost it.
    fn ledger_renew(&self, key: &str, owner: &str, until: i64) -> Result<bool, StoreError>;
    /// Marks `key` as still in use at `at` (an upload in progress is never idle).
    fn ledger_touch(&self, key: &str, at: i64) -> Result<(), StoreError>;
    fn ledger_release(&self, key: &str, owner: &str) -> Result<(), StoreError>;
    fn ledger_commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;
    /// The multipart upload was completed: the object is whole (kept until the item is).
    fn ledger_published(&self, key: &str, at: i64) -> Result<(), StoreError>;
    /// A new multipart upload holds the first parts again (see `S3Blobs::unpublish_partial`).
    fn ledger_reupload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        at: i64,
    ) -> Result<(), StoreError>;
    /// Forgets `key`; returns what it was, to abort its multipart upload.
    fn ledger_remove(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError>;
    /// The entry of `key`, if there is one.
    fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError>;
    /// Entries not touched since `before`, oldest first.
    fn ledger_idle(&self, before: i64, limit: usize) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// Number of parts wholly before `offset`.
pub fn parts_before(offset: u64, part_size: u64) -> u64 {
    offset / part_size.max(1)
}
