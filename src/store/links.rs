//! Storage of per-case upload links (see [`crate::links`]).

use super::{Item, StoreError};
use crate::links::{Link, NewLink, Usage};

pub trait LinkStore: Send + Sync {
    /// Stores a new link under the hash of its token; returns its id.
    fn create_link(
        &self,
        link: &NewLink,
        token_hash: &str,
        created_by: &str,
        at: i64,
    ) -> Result<i64, StoreError>;
    /// The link of a token's hash (revoked and expired ones too: they answer 410, not 404).
    fn link_by_token(&self, token_hash: &str) -> Result<Option<Link>, StoreError>;
    fn link(&self, id: i64) -> Result<Option<Link>, StoreError>;
    /// Links, newest first, with what each has received.
    fn links(&self, offset: u64, limit: u64) -> Result<(Vec<(Link, Usage)>, u64), StoreError>;
    /// Revokes a link; false if it was revoked already (or does not exist).
    fn revoke_link(&self, id: i64, by: &str, at: i64) -> Result<bool, StoreError>;
    fn link_usage(&self, id: i64) -> Result<Usage, StoreError>;
    /// Items sent through a link (deleted ones included: operators see what arrived),
    /// newest first, with their deletion time.
    fn link_items(&self, id: i64, limit: u64) -> Result<Vec<(Item, Option<i64>)>, StoreError>;
}
