//! Writing one chunk of a REST upload: at the item's stored offset, decoding and hashing the
//! base64 body as it streams in, fsyncing before the acknowledgement, completing the item when
//! the chunk ends the file.

use super::max_body_size;
use super::upload::{inconsistent, too_large, unknown_transaction};
use crate::audit::AuditEvent;
use crate::blobs::{Appended, BlobWriter};
use crate::server::AppError;
use crate::state::State;
use crate::store::{Item, ItemState, blocking};
use crate::upload::resumable::rehash;
use crate::upload::{Base64Stream, ChunkRange, ReceiveError, Ticket, receive_chunk};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;

pub enum Done {
    Partial,
    Complete,
}

/// Writes one chunk at the item's stored offset. On any failure the stored offset and hash
/// state stay where they were (bytes written past the offset are cut off on the next write).
pub async fn append(
    state: &State,
    item: &Item,
    range: &ChunkRange,
    body: Incoming,
    ticket: &Ticket,
) -> Result<Done, AppError> {
    let name = item.name.clone();
    let slot = state.resumable.slot(&name);
    let mut guard = slot.try_lock().map_err(|_| {
        AppError::Conflict("another request is writing to this upload; retry later".into())
    })?;
    // Re-read under the lock: a request that just finished may have moved the offset.
    let n = name.clone();
    let current = blocking(&state.store, move |s| s.get(&n))
        .await?
        .ok_or_else(unknown_transaction)?;
    if current.state == ItemState::Complete {
        return Err(AppError::Conflict(
            "this upload is complete; it cannot be written to".into(),
        ));
    }
    if range.begin != current.size {
        return Err(inconsistent(current.size));
    }
    let hasher = match guard.take() {
        Some(h) => h,
        None => rehash(state.blobs.partial_path(&name), current.size)
            .await
            .map_err(|e| AppError::Internal(format!("resuming {name}: {e}")))?,
    };
    let file_lock = state.resumable.file_lock(&name).lock_owned().await;
    let file = state.blobs.open_partial(&name, current.size)?;
    let result = receive(
        state,
        range,
        body,
        ticket,
        BlobWriter::append(
            file,
            hasher.clone(),
            &state.blobs,
            state.config.min_free_space,
            Box::new(file_lock),
        )?,
    )
    .await;
    let (written, new_hasher) = match result {
        Ok(done) => done,
        Err(e) => {
            *guard = Some(hasher);
            return Err(e);
        }
    };
    let size = current.size + written;
    let now = crate::now();
    // Acknowledged or not, these bytes are in the store now (partial/ or files/).
    state.limits.stored_changed(i128::from(written));
    if range.is_last() {
        let sha256 = hex::encode(sha2::Digest::finalize(new_hasher));
        let completed = AuditEvent::upload_completed(&Item {
            size,
            sha256: sha256.clone(),
            ..item.clone()
        });
        let (blobs, store, n) = (
            state.blobs.clone(),
            std::sync::Arc::clone(&state.store),
            name.clone(),
        );
        let join = crate::alerts::delivery_join(
            state.config.batch_window,
            &item.uploader,
            item.reference.as_deref(),
        )?;
        tokio::task::spawn_blocking(move || -> Result<(), AppError> {
            blobs.finish_partial(&n)?;
            if let Err(e) = store.complete_upload(&n, size, &sha256, now, Some(&join)) {
                // Not recorded: put the bytes back so a retry of this chunk can complete it.
                if let Err(undo) = blobs.reopen_partial(&n) {
                    tracing::error!(item = %n, error = %undo, "could not move an upload back");
                }
                return Err(e.into());
            }
            Ok(())
        })
        .await
        .map_err(|e| AppError::Internal(format!("completion task: {e}")))??;
        drop(guard);
        state.resumable.forget(&name);
        tracing::info!(item = %name, size, label = %item.uploader.label, ip = %item.uploader.client_ip, "REST upload complete");
        state.audit.record(completed).await;
        Ok(Done::Complete)
    } else {
        let total = range.total;
        let n = name.clone();
        blocking(&state.store, move |s| {
            s.record_progress(&n, size, total, now)
        })
        .await?;
        *guard = Some(new_hasher);
        Ok(Done::Partial)
    }
}

/// Streams the base64 body into the writer; returns the decoded length and the new hash state.
async fn receive(
    state: &State,
    range: &ChunkRange,
    body: Incoming,
    ticket: &Ticket,
    mut writer: BlobWriter<Appended>,
) -> Result<(u64, sha2::Sha256), AppError> {
    let expected = range.byte_count();
    let mut stream = BodyDataStream::new(body);
    let mut decoder = Base64Stream::new();
    let (mut received, mut decoded) = (0u64, 0u64);
    let max_body = max_body_size(state.config.max_file_size);
    let bad = |_| AppError::BadRequest("Could not decode data body".into());
    loop {
        let next = receive_chunk(
            async { stream.next().await.transpose() },
            state.config.upload_idle_timeout,
            &mut received,
            max_body,
            ticket,
        )
        .await
        .map_err(|e| match e {
            ReceiveError::TooLarge(_) => too_large(),
            other => AppError::from_receive(other, "the chunk", |_| AppError::interrupted()),
        })?;
        let out = match next {
            Some(chunk) => decoder.feed(&chunk).map_err(bad)?,
            None => break,
        };
        decoded += out.len() as u64;
        if decoded > expected {
            return Err(length_mismatch(expected));
        }
        if !out.is_empty() {
            writer.write(Bytes::from(out)).await?;
        }
    }
    let tail = std::mem::take(&mut decoder).finish().map_err(bad)?;
    decoded += tail.len() as u64;
    if !tail.is_empty() && decoded <= expected {
        writer.write(Bytes::from(tail)).await?;
    }
    if decoded != expected {
        return Err(length_mismatch(expected));
    }
    let done = writer.finish().await?;
    Ok((done.written, done.hasher))
}

fn length_mismatch(expected: u64) -> AppError {
    AppError::BadRequest(format!(
        "the decoded body does not have the {expected} bytes its Content-Range announces"
    ))
}
