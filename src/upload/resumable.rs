//! State of resumable (bepasty REST) uploads kept in memory: the running SHA-256 of each
//! incomplete item, so completing an upload never re-reads it. Each item has a slot behind an
//! async mutex, which also keeps two requests from writing the same upload at once. After a
//! restart the slot is empty and the partial file is hashed once up to the stored offset.

use crate::items::ItemName;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub type Slot = Arc<tokio::sync::Mutex<Option<Sha256>>>;
/// Held by the writer of an upload's partial file until its last write has run.
pub type FileLock = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
struct Entry {
    slot: Slot,
    file: FileLock,
    /// Cancelled to ask the request holding the slot to stop (a newer one wants it).
    stop: CancellationToken,
}

#[derive(Default)]
pub struct Resumable {
    slots: Mutex<HashMap<ItemName, Entry>>,
}

impl Resumable {
    fn with<T>(&self, name: &ItemName, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        f(slots.entry(name.clone()).or_default())
    }

    pub fn slot(&self, name: &ItemName) -> Slot {
        self.with(name, |e| Arc::clone(&e.slot))
    }

    /// The lock on the upload's partial file: a request that was dropped mid-chunk may still
    /// have writes queued; the next one waits for them before it cuts the file back.
    pub fn file_lock(&self, name: &ItemName) -> FileLock {
        self.with(name, |e| Arc::clone(&e.file))
    }

    /// Called by the request that just took the slot: the token it watches for [`Self::preempt`].
    pub fn arm(&self, name: &ItemName) -> CancellationToken {
        self.with(name, |e| {
            e.stop = CancellationToken::new();
            e.stop.clone()
        })
    }

    /// Asks the request holding the slot to stop. A client that lost its connection without
    /// the server noticing comes back with a new request; it should not wait for the old one
    /// to time out (the IETF draft's advice: the newer request wins).
    pub fn preempt(&self, name: &ItemName) {
        self.with(name, |e| e.stop.cancel());
    }

    /// Drops an item's state (completed, deleted or abandoned).
    pub fn forget(&self, name: &ItemName) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// A new transaction token (what the client sends back as `Transaction-ID`) and the hash under
/// which it is stored: the token itself is never written anywhere.
pub fn new_token() -> std::io::Result<(String, String)> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("sfx-transaction\0{token}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), ha);
        assert!(!ha.contains(&a));
    }
}
