//! Items' bytes in an S3-compatible object store (`[storage] kind = "s3"`), through the
//! object_store crate's low-level multipart API.
//!
//! ```text
//! <prefix>files/<name>   an item's object; written by a multipart upload to this very key,
//!                        completed before the metadata commit that makes the item visible
//! ```
//! Every upload streams into a multipart upload while it is hashed: fixed-size parts go out as
//! they fill. A one-shot upload keeps its parts' ids in memory and completes at publish. A
//! resumable one commits, at the end of every request, the parts it cut, the bytes past the last
//! part (the tail, in the metadata store: at most one part) and its SHA-256 state to the ledger
//! (`store::ledger`), so any instance continues it without reading anything back from the
//! object store; the tail goes out as the last part when the upload completes. Ledger leases
//! keep two instances from writing to one upload at once.

mod cleanup;
mod keep_alive;
mod uploads;
mod writer;

use keep_alive::KeepAlive;
use uploads::Lister;

use writer::S3Writer;
pub use writer::{S3AppendWriter, S3NewWriter, S3Staged};

use super::{Appended, BlobError, ByteStream, Written};
use crate::config::S3;
use crate::items::ItemName;
use crate::store::ledger::{Claim, LedgerEntry, LedgerState};
use crate::store::{MetaStore, StoreError};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use std::io;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct S3Blobs {
    inner: Arc<Inner>,
}

struct Inner {
    s3: AmazonS3,
    ledger: Arc<dyn MetaStore>,
    prefix: String,
    part_size: u64,
    lease: Duration,
    /// Leftovers (objects without an item, multipart uploads without a writer) younger than
    /// this may belong to an upload another instance is committing right now: left alone.
    leftover_age: Duration,
    /// This instance, as the owner of its leases.
    owner: String,
    lister: Lister,
    /// When [`S3Blobs::clean_up`] last ran (0: not yet).
    cleaned_at: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// What went wrong talking to the object store. Any failure to store is "unavailable": the
/// client is told to retry, and nothing it was told is stored is lost.
fn unavailable(e: object_store::Error) -> BlobError {
    BlobError::Unavailable(format!("the object store failed: {e}"))
}

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(other),
    }
}

fn store_error(e: StoreError) -> BlobError {
    match e {
        StoreError::Unavailable(why) => BlobError::Unavailable(why),
        StoreError::DiskFull => BlobError::DiskFull,
        other => BlobError::Io(io::Error::other(other)),
    }
}

pub(crate) fn hash_bytes(h: &Sha256) -> Vec<u8> {
    h.serialize().to_vec()
}

fn hash_from(bytes: &[u8]) -> Result<Sha256, BlobError> {
    let state = SerializedState::<Sha256>::try_from(bytes)
        .map_err(|_| BlobError::Io(io::Error::other("a damaged SHA-256 state in the ledger")))?;
    Sha256::deserialize(&state)
        .map_err(|_| BlobError::Io(io::Error::other("a damaged SHA-256 state in the ledger")))
}

impl S3Blobs {
    /// Connects to the bucket (lazily: nothing is sent until the first request).
    pub fn open(cfg: &S3, ledger: Arc<dyn MetaStore>) -> io::Result<S3Blobs> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            // An outage must reach the client as a 503 within seconds, not after the default
            // three minutes of retries.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(300)),
            );
        // Over TLS the payload is protected already: not signing it saves a second SHA-256
        // pass over every part (sfx hashes each byte once, for the receipt). Over plain HTTP
        // (local and test stores) the signature covers the bytes.
        let tls = cfg
            .endpoint
            .as_deref()
            .is_none_or(|e| e.starts_with("https://"));
        b = b.with_unsigned_payload(tls);
        if let Some(endpoint) = &cfg.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        b = b.with_region(cfg.region.as_deref().unwrap_or("us-east-1"));
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        // The lister talks to where object_store does (the endpoint and region may come from
        // the AWS environment variables).
        let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let region = b
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let lister = Lister::new(endpoint.as_deref(), &cfg.bucket, &region)?;
        let s3 = b.build().map_err(io::Error::other)?;
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).map_err(io::Error::other)?;
        Ok(S3Blobs {
            inner: Arc::new(Inner {
                s3,
                ledger,
                prefix: cfg.prefix.clone(),
                part_size: cfg.part_size,
                lease: cfg.lease,
                leftover_age: cfg.leftover_age,
                owner: hex::encode(raw),
                lister,
                cleaned_at: std::sync::atomic::AtomicI64::new(0),
            }),
        })
    }

    fn key(&self, name: &ItemName) -> String {
        format!("{}files/{}", self.inner.prefix, name.as_str())
    }

    fn path(&self, name: &ItemName) -> Path {
        Path::from(self.key(name))
    }

    /// Runs a ledger call on the blocking pool.
    async fn ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn MetaStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, BlobError> {
        crate::store::blocking(&self.inner.ledger, f)
            .await
            .map_err(store_error)
    }

    fn lease_until(&self) -> i64 {
        crate::now() + i64::try_from(self.inner.lease.as_secs()).unwrap_or(30)
    }

    pub async fn stage(&self) -> Result<S3NewWriter, BlobError> {
        let name = ItemName::random().map_err(|e| BlobError::Io(io::Error::other(e)))?;
        let key = self.key(&name);
        let k = key.clone();
        if !self
            .ledger(move |l| l.ledger_create(&k, false, crate::now()))
            .await?
        {
            return Err(BlobError::Io(io::Error::other("staging name taken")));
        }
        let keep_alive = KeepAlive::start(self, &key);
        let mut writer = S3Writer::new(self.clone(), name, key, 0, Sha256::default(), None, None);
        writer.keep_alive = Some(keep_alive);
        Ok(S3NewWriter(writer))
    }

    pub async fn publish(
        &self,
        mut blob: S3Staged,
        name: &ItemName,
    ) -> Result<Result<(), S3Staged>, BlobError> {
        if &blob.name != name {
            // The engine found the staged name taken in the metadata (never in practice: 48
            // random bits): an object store cannot rename, so it must find another way.
            return Ok(Err(blob));
        }
        let path = self.path(name);
        match blob.upload_id.clone() {
            Some(id) => {
                let parts = std::mem::take(&mut blob.parts);
                if let Err(e) = self.inner.s3.complete_multipart(&path, &id, parts).await {
                    // Dropped: aborted.
                    return Err(unavailable(e));
                }
                blob.owner = None;
            }
            None => {
                self.inner
                    .s3
                    .put(&path, PutPayload::new())
                    .await
                    .map_err(unavailable)?;
                blob.owner = None;
            }
        }
        let key = self.key(name);
        self.ledger(move |l| l.ledger_remove(&key).map(drop))
            .await?;
        Ok(Ok(()))
    }

    /// The name a staged blob is written under (its object key is final from the start).
    pub fn staged_name(blob: &S3Staged) -> Option<ItemName> {
        Some(blob.name.clone())
    }

    pub async fn create_partial(&self, name: &ItemName) -> io::Result<()> {
        let key = self.key(name);
        let created = self
            .ledger(move |l| l.ledger_create(&key, true, crate::now()))
            .await
            .map_err(io::Error::other)?;
        if !created {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "an upload of that name exists",
            ));
        }
        Ok(())
    }

    pub async fn append(
        &self,
        name: &ItemName,
        offset: u64,
        hold: Box<dyn Send>,
    ) -> Result<S3AppendWriter, BlobError> {
        let mut state = self.claim(name, offset).await?;
        if state.published {
            // Its completion was not recorded (the metadata store failed, or a crash): the
            // client is retrying its last request, so the upload is opened again.
            let size = self
                .inner
                .s3
                .head(&self.path(name))
                .await
                .map_err(unavailable)?
                .size;
            self.unpublish_partial(name, size).await?;
            state = self.claim(name, offset).await?;
        }
        let lease = Lease {
            blobs: self.clone(),
            key: self.key(name),
        };
        let hasher = match &state.hash {
            Some(h) => hash_from(h)?,
            None => Sha256::default(),
        };
        let mut w = S3Writer::new(
            self.clone(),
            name.clone(),
            self.key(name),
            offset,
            hasher,
            Some(lease),
            Some(hold),
        );
        w.resume(state);
        Ok(S3AppendWriter(w))
    }

    /// Takes the upload's lease and reads its state at `offset`.
    async fn claim(&self, name: &ItemName, offset: u64) -> Result<LedgerState, BlobError> {
        let (key, owner, until, ps) = (
            self.key(name),
            self.inner.owner.clone(),
            self.lease_until(),
            self.inner.part_size,
        );
        let claim = self
            .ledger(move |l| l.ledger_claim(&key, offset, ps, &owner, until, crate::now()))
            .await?;
        match claim {
            Claim::Taken(s) => Ok(s),
            Claim::Busy => Err(BlobError::Busy),
            Claim::Missing => Err(BlobError::Io(io::Error::other(format!(
                "the ledger of {name} has nothing at offset {offset}"
            )))),
        }
    }

    pub async fn hash_partial(&self, name: &ItemName, len: u64) -> io::Result<Sha256> {
        let (key, ps) = (self.key(name), self.inner.part_size);
        let state = self
            .ledger(move |l| l.ledger_state(&key, len, ps))
            .await
            .map_err(io::Error::other)?
            .ok_or_else(|| {
                io::Error::other(format!("the ledger of {name} has no state at {len}"))
            })?;
        match state.hash {
            Some(h) => hash_from(&h).map_err(io::Error::other),
            None => Ok(Sha256::default()),
        }
    }

    /// Sends the tail as the last part and completes the multipart upload. Idempotent: a
    /// retried completion finds it done.
    pub async fn publish_partial(&self, name: &ItemName, size: u64) -> io::Result<()> {
        let (key, ps) = (self.key(name), self.inner.part_size);
        let k = key.clone();
        let state = self
            .ledger(move |l| l.ledger_state(&k, size, ps))
            .await
            .map_err(io::Error::other)?
            .ok_or_else(|| {
                io::Error::other(format!("the ledger of {name} has no state at {size}"))
            })?;
        if state.published {
            return Ok(());
        }
        let path = self.path(name);
        let s3 = &self.inner.s3;
        let id = match state.upload_id {
            Some(id) => id,
            None => {
                let id = s3.create_multipart(&path).await.map_err(io_error)?;
                let (k, i) = (key.clone(), id.clone());
                self.ledger(move |l| l.ledger_set_upload(&k, &i, crate::now()))
                    .await
                    .map_err(io::Error::other)?;
                id
            }
        };
        let mut parts: Vec<PartId> = state
            .parts
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        if !state.tail.is_empty() || parts.is_empty() {
            let last = s3
                .put_part(&path, &id, parts.len(), PutPayload::from(state.tail))
                .await
                .map_err(io_error)?;
            parts.push(last);
        }
        s3.complete_multipart(&path, &id, parts)
            .await
            .map_err(io_error)?;
        self.ledger(move |l| l.ledger_published(&key, crate::now()))
            .await
            .map_err(io::Error::other)
    }

    /// Undoes [`S3Blobs::publish_partial`]: a completed multipart upload cannot be reopened, so
    /// its whole parts are copied into a new one (the bytes pass through this instance; the
    /// hash state stays in the ledger), and the object is removed.
    pub async fn unpublish_partial(&self, name: &ItemName, size: u64) -> io::Result<()> {
        let (key, ps) = (self.key(name), self.inner.part_size);
        let path = self.path(name);
        let s3 = &self.inner.s3;
        let parts = crate::store::ledger::parts_before(size, ps);
        let id = s3.create_multipart(&path).await.map_err(io_error)?;
        let mut etags = Vec::new();
        for i in 0..parts {
            let range = i * ps..(i + 1) * ps;
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..GetOptions::default()
            };
            let got = s3.get_opts(&path, opts).await.map_err(io_error)?;
            let bytes = got.bytes().await.map_err(io_error)?;
            let part = s3
                .put_part(&path, &id, etags.len(), PutPayload::from(bytes))
                .await
                .map_err(io_error)?;
            etags.push(part.content_id);
        }
        let (k, i) = (key, id);
        self.ledger(move |l| l.ledger_reupload(&k, &i, &etags, crate::now()))
            .await
            .map_err(io::Error::other)?;
        s3.delete(&path).await.map_err(io_error)
    }

    /// Removes an item's object and aborts its multipart upload, if any.
    pub async fn remove(&self, name: &ItemName) -> io::Result<()> {
        let key = self.key(name);
        let entry = self
            .ledger(move |l| l.ledger_remove(&key))
            .await
            .map_err(io::Error::other)?;
        if let Some(entry) = entry {
            self.abort(&entry).await?;
        }
        match self.inner.s3.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn abort(&self, entry: &LedgerEntry) -> io::Result<()> {
        let Some(id) = entry.upload_id.as_ref().filter(|_| !entry.published) else {
            return Ok(());
        };
        let path = Path::from(entry.key.as_str());
        match self.inner.s3.abort_multipart(&path, id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    pub async fn read_range(
        &self,
        name: &ItemName,
        start: u64,
        len: u64,
    ) -> io::Result<ByteStream> {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let got = self
            .inner
            .s3
            .get_opts(&self.path(name), opts)
            .await
            .map_err(io_error)?;
        Ok(Box::pin(got.into_stream().map_err(io_error)))
    }

    pub async fn list(&self) -> io::Result<Vec<ItemName>> {
        Ok(self
            .listing()
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every object under `files/` with its age in seconds.
    async fn listing(&self) -> io::Result<Vec<(ItemName, i64)>> {
        let prefix = Path::from(format!("{}files", self.inner.prefix));
        let mut objects = self.inner.s3.list(Some(&prefix));
        let now = crate::now();
        let mut names = Vec::new();
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(io_error)?;
            if let Some(name) = meta.location.filename().and_then(ItemName::parse) {
                names.push((name, now - meta.last_modified.timestamp()));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Gives up a one-shot upload that will never be published: aborts its multipart upload
    /// and forgets its ledger entry, in the background (the sweeper does it if this fails).
    fn abandon(&self, key: String, upload_id: Option<String>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            if let Some(id) = &upload_id {
                let path = Path::from(key.as_str());
                if let Err(e) = this.inner.s3.abort_multipart(&path, id).await {
                    tracing::warn!(key, error = %e, "could not abort an abandoned upload; the sweeper will");
                    return;
                }
            }
            let k = key.clone();
            if let Err(e) = this.ledger(move |l| l.ledger_remove(&k).map(drop)).await {
                tracing::warn!(key, error = %e, "could not forget an abandoned upload");
            }
        });
    }
}

/// An instance's hold on an upload's ledger; given back when dropped.
pub struct Lease {
    blobs: S3Blobs,
    key: String,
}

impl Lease {
    async fn renew(&self) -> Result<(), BlobError> {
        let (key, owner, until) = (
            self.key.clone(),
            self.blobs.inner.owner.clone(),
            self.blobs.lease_until(),
        );
        if self
            .blobs
            .ledger(move |l| l.ledger_renew(&key, &owner, until))
            .await?
        {
            Ok(())
        } else {
            // Another instance took over (this one stalled past its lease): stop writing.
            Err(BlobError::Busy)
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (ledger, key, owner) = (
            Arc::clone(&self.blobs.inner.ledger),
            std::mem::take(&mut self.key),
            self.blobs.inner.owner.clone(),
        );
        let release = move || {
            if let Err(e) = ledger.ledger_release(&key, &owner) {
                tracing::warn!(key, error = %e, "could not release an upload's lease; it runs out");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

/// The result types of the writer, for `blobs::backend`.
pub(crate) fn appended(written: u64, hasher: Sha256, lease: Option<Lease>) -> Appended {
    Appended {
        written,
        hasher,
        hold: lease.map(|l| Box::new(l) as Box<dyn Send>),
    }
}

pub(crate) fn written(blob: S3Staged, size: u64, sha256: String) -> Written<S3Staged> {
    Written { blob, size, sha256 }
}
