//! `POST /apis/rest/items`: bepasty's chunked REST upload, as the vendor agent (one request with
//! a whole base64 tarball), bepasty-cli (1 MiB chunks) and the Ruby client send it; plus
//! `HEAD /apis/rest/items` with `Transaction-ID` to ask how much is stored.
//!
//! Each request carries `Content-Range: bytes B-E/T` in decoded bytes. The first creates an
//! incomplete item and answers with an opaque `Transaction-ID`; later ones present it. The body
//! is decoded and hashed as it streams in, written to the item's partial file, fsynced, and
//! only then acknowledged. The request whose range ends at its T completes the item.

use super::chunk::{Done, append};
use super::max_body_size;
use crate::auth::{Permission, Principal};
use crate::config::Lifetime;
use crate::items::{ItemName, MaxLife, content_type_for, fallback_filename, sanitize_filename};
use crate::routes::require;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Item, ItemState, Uploader, blocking};
use crate::upload::ChunkRange;
use crate::upload::resumable::{new_token, token_hash};
use http::{HeaderValue, StatusCode, header};

const TRANSACTION_ID: &str = "transaction-id";

pub async fn upload(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Create).await?;
    let max_body = max_body_size(state.config.max_file_size);
    if req.content_length().is_some_and(|len| len > max_body) {
        return Err(too_large());
    }
    let range = match req.header(header::CONTENT_RANGE) {
        None => return Err(AppError::BadRequest("Content-Range not specified".into())),
        Some(v) => ChunkRange::parse(v)
            .ok_or_else(|| AppError::BadRequest("Content-Range header is incorrect".into()))?,
    };
    if range.total > state.config.max_file_size {
        return Err(too_large());
    }
    let account = state
        .limits
        .account(req.client_ip, who.can(Permission::Admin));
    // A new upload declares its whole size: refuse at once what could never fit.
    let expected = if req.headers.contains_key(TRANSACTION_ID) {
        range.byte_count()
    } else {
        range.total
    };
    account.expect(expected)?;
    let ticket = state.uploads.admit(req.client_ip, account).await?;
    let (item, token, created) = match transaction_id(&req)? {
        None => {
            if range.begin != 0 {
                return Err(inconsistent(0));
            }
            let (item, token) = begin(state, &req, &who, &range).await?;
            (item, token, true)
        }
        Some(token) => (continuation(state, &who, &token).await?, token, false),
    };
    let name = item.name.clone();
    match append(state, &item, &range, req.body, &ticket).await {
        Ok(done) => Ok(answer(&name, &token, done)),
        Err(e) => {
            if created {
                // bepasty removes an item its own first request failed to fill.
                state.delete_item(&name, "failed first chunk").await?;
            }
            Err(e)
        }
    }
}

pub(super) fn too_large() -> AppError {
    AppError::TooLarge("The data value transmitted exceeds the capacity limit.".into())
}

/// bepasty's message, which clients parse to resume.
pub(super) fn inconsistent(stored: u64) -> AppError {
    AppError::Conflict(format!(
        "Content-Range inconsistent. Last byte on Server: {stored}"
    ))
}

fn transaction_id(req: &Request) -> Result<Option<String>, AppError> {
    match req
        .header(TRANSACTION_ID)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Ok(None),
        Some(t) if t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(t.to_string()))
        }
        Some(_) => Err(unknown_transaction()),
    }
}

pub(super) fn unknown_transaction() -> AppError {
    AppError::BadRequest("Could not find storage item for transaction id".into())
}

/// Creates the incomplete item of a first chunk.
async fn begin(
    state: &State,
    req: &Request,
    who: &Principal,
    range: &ChunkRange,
) -> Result<(Item, String), AppError> {
    let maxlife =
        MaxLife::parse(req.header("maxlife-value"), req.header("maxlife-unit")).map_err(|e| {
            AppError::BadRequest(match e {
                crate::items::MaxLifeError::Unit => "maxlife-unit header is incorrect".into(),
                crate::items::MaxLifeError::Value => "maxlife-value header is incorrect".into(),
            })
        })?;
    let free = state.blobs.free_space()?;
    if free.saturating_sub(range.total) < state.config.min_free_space {
        return Err(AppError::InsufficientStorage(
            "not enough free space on the server for this upload".into(),
        ));
    }
    let filename = req
        .headers
        .get("content-filename")
        .map(|v| header_text(v.as_bytes()))
        .and_then(|f| sanitize_filename(&f));
    // The body is always base64: a form content type (curl's --data-binary default) says
    // nothing about the file.
    let claimed = req.header(header::CONTENT_TYPE).filter(|t| {
        !t.starts_with("application/x-www-form-urlencoded") && !t.starts_with("multipart/")
    });
    let content_type = content_type_for(claimed, filename.as_deref(), "application/octet-stream");
    let lifetime: Lifetime = MaxLife::effective(
        maxlife,
        state.config.default_lifetime,
        state.config.max_lifetime,
    );
    let now = crate::now();
    let (token, hash) = new_token()?;
    let blobs = state.blobs.clone();
    let store = std::sync::Arc::clone(&state.store);
    let mut item = Item {
        name: ItemName::random()?,
        filename: String::new(),
        content_type,
        size: 0,
        sha256: String::new(),
        state: ItemState::Incomplete,
        created_at: now,
        completed_at: None,
        expires_at: lifetime.expires_at(now),
        downloaded_at: None,
        locked: false,
        uploader: Uploader {
            label: who.label_or_anonymous().into(),
            client_ip: req.client_ip.to_string(),
            user_agent: req.user_agent(),
        },
        reference: None,
        comment: None,
    };
    let total = range.total;
    let item = tokio::task::spawn_blocking(move || -> Result<Item, AppError> {
        for _ in 0..20 {
            item.name = ItemName::random()?;
            if store.name_used(&item.name)? {
                continue;
            }
            match blobs.create_partial(&item.name) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
            item.filename = filename
                .clone()
                .unwrap_or_else(|| fallback_filename(item.name.as_str(), &item.content_type));
            if let Err(e) = store.begin_upload(&item, &hash, total) {
                let _ = blobs.remove_partial(&item.name);
                return Err(e.into());
            }
            return Ok(item);
        }
        Err(AppError::Internal("could not find a free item name".into()))
    })
    .await
    .map_err(|e| AppError::Internal(format!("begin task: {e}")))??;
    Ok((item, token))
}

/// Header values are bytes; bepasty reads them as latin-1. UTF-8 is taken as such.
fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

async fn continuation(state: &State, who: &Principal, token: &str) -> Result<Item, AppError> {
    let hash = token_hash(token);
    let tx = blocking(&state.store, move |s| s.find_upload(&hash))
        .await?
        .ok_or_else(unknown_transaction)?;
    if tx.item.uploader.label != who.label_or_anonymous() {
        return Err(AppError::Forbidden(
            "this transaction belongs to another credential".into(),
        ));
    }
    if tx.item.state == ItemState::Complete {
        return Err(AppError::Conflict(
            "this upload is complete; it cannot be written to".into(),
        ));
    }
    Ok(tx.item)
}

fn answer(name: &ItemName, token: &str, done: Done) -> Response {
    let (status, location) = match done {
        Done::Partial => (StatusCode::OK, None),
        Done::Complete => (
            StatusCode::CREATED,
            Some(format!("/apis/rest/items/{name}")),
        ),
    };
    let mut resp = response::json(status, &serde_json::json!({}));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(token) {
        h.insert(TRANSACTION_ID, v);
    }
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::CONTENT_LOCATION, v);
    }
    resp
}

/// `HEAD /apis/rest/items` with `Transaction-ID`: how many bytes are stored (`Upload-Offset`) of
/// the declared total (`Upload-Length`), so a client can resume without provoking a 409.
pub async fn offset(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Create).await?;
    let token = transaction_id(&req)?.ok_or_else(unknown_transaction)?;
    let hash = token_hash(&token);
    let tx = blocking(&state.store, move |s| s.find_upload(&hash))
        .await?
        .ok_or(AppError::NotFound)?;
    if tx.item.uploader.label != who.label_or_anonymous() {
        return Err(AppError::Forbidden(
            "this transaction belongs to another credential".into(),
        ));
    }
    let mut resp = response::json(StatusCode::OK, &serde_json::json!({}));
    let h = resp.headers_mut();
    for (k, v) in [
        (TRANSACTION_ID, token),
        ("upload-offset", tx.item.size.to_string()),
        ("upload-length", tx.total.to_string()),
        (
            "upload-complete",
            (tx.item.state == ItemState::Complete).to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    if tx.item.state == ItemState::Complete
        && let Ok(v) = HeaderValue::from_str(&format!("/apis/rest/items/{}", tx.item.name))
    {
        h.insert(header::CONTENT_LOCATION, v);
    }
    Ok(resp)
}
