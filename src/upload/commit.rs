//! Making staged uploads visible: each fsynced temp file gets a fresh name and is renamed into
//! place, the directory is fsynced once, then one metadata transaction makes the whole batch
//! visible at once. Until that commit nothing is listed; if it fails, the renamed files are
//! removed again.

use crate::blobs::{BlobError, BlobStore, Written};
use crate::items::{ItemName, content_type_for, fallback_filename, sanitize_filename};
use crate::server::AppError;
use crate::state::State;
use crate::store::{DeliveryJoin, Item, ItemState, MetaStore, StoreError, Uploader};
use std::sync::Arc;

/// A fully received file waiting for its commit.
#[derive(Debug)]
pub struct Staged {
    pub written: Written,
    /// The filename the client sent, unsanitized.
    pub filename: Option<String>,
    pub claimed_type: Option<String>,
    /// A pasted text (falls back to `text/plain`) rather than a file.
    pub is_text: bool,
}

/// What applies to every item of one upload request.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub uploader: Uploader,
    pub reference: Option<String>,
    pub comment: Option<String>,
}

const NAME_ATTEMPTS: usize = 20;

pub async fn commit(
    state: &State,
    staged: Vec<Staged>,
    meta: UploadMeta,
) -> Result<Vec<Item>, AppError> {
    let (store, blobs) = (Arc::clone(&state.store), state.blobs.clone());
    let join = crate::alerts::delivery_join(
        state.config.batch_window,
        &meta.uploader,
        meta.reference.as_deref(),
    )?;
    let items = tokio::task::spawn_blocking(move || {
        commit_blocking(store.as_ref(), &blobs, staged, &meta, &join)
    })
    .await
    .map_err(|e| AppError::Internal(format!("commit task: {e}")))??;
    state
        .limits
        .stored_changed(items.iter().map(|i| i128::from(i.size)).sum());
    Ok(items)
}

fn commit_blocking(
    store: &dyn MetaStore,
    blobs: &BlobStore,
    staged: Vec<Staged>,
    meta: &UploadMeta,
    join: &DeliveryJoin,
) -> Result<Vec<Item>, AppError> {
    let mut items = Vec::with_capacity(staged.len());
    let mut placed: Vec<ItemName> = Vec::with_capacity(staged.len());
    let result = (|| {
        for s in staged {
            let name = place(store, blobs, s.written.temp)?;
            placed.push(name.clone());
            let fallback_type = if s.is_text {
                "text/plain"
            } else {
                "application/octet-stream"
            };
            let clean = s.filename.as_deref().and_then(sanitize_filename);
            let content_type =
                content_type_for(s.claimed_type.as_deref(), clean.as_deref(), fallback_type);
            let filename = clean.unwrap_or_else(|| fallback_filename(name.as_str(), &content_type));
            items.push(Item {
                name,
                filename,
                content_type,
                size: s.written.size,
                sha256: s.written.sha256,
                state: ItemState::Complete,
                created_at: meta.created_at,
                completed_at: Some(meta.created_at),
                expires_at: meta.expires_at,
                downloaded_at: None,
                locked: false,
                uploader: meta.uploader.clone(),
                reference: meta.reference.clone(),
                comment: meta.comment.clone(),
            });
        }
        // One directory fsync for all the renames, before the metadata makes them visible.
        blobs.sync_files()?;
        store.insert(&items, Some(join)).map_err(|e| match e {
            StoreError::NameTaken(n) => {
                AppError::Internal(format!("item name {n} taken concurrently"))
            }
            other => other.into(),
        })
    })();
    match result {
        Ok(()) => Ok(items),
        Err(e) => {
            for name in &placed {
                let _ = blobs.remove(name);
            }
            Err(e)
        }
    }
}

/// Renames the temp file to a fresh, never-used name.
fn place(
    store: &dyn MetaStore,
    blobs: &BlobStore,
    mut temp: tempfile::TempPath,
) -> Result<ItemName, AppError> {
    for _ in 0..NAME_ATTEMPTS {
        let name = ItemName::random()?;
        if store.name_used(&name)? {
            continue;
        }
        match blobs.commit(temp, &name) {
            Ok(Ok(())) => return Ok(name),
            // A file of that name exists (an orphan): keep the temp file, try another name.
            Ok(Err(back)) => temp = back,
            Err(BlobError::Io(e)) => return Err(AppError::Internal(format!("rename: {e}"))),
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Internal("could not find a free item name".into()))
}
