//! `POST /apis/rest/items`: bepasty's chunked REST upload, as the vendor agent (one request with
//! a whole base64 tarball), bepasty-cli (1 MiB chunks) and the Ruby client send it; plus
//! `HEAD /apis/rest/items` with `Transaction-ID` to ask how much is stored. An adapter over the
//! upload engine.
//!
//! Each request carries `Content-Range: bytes B-E/T` in decoded bytes. The first creates an
//! incomplete item and answers with an opaque `Transaction-ID`; later ones present it. A chunk
//! is all or nothing: what a broken request wrote is dropped, and bepasty clients resend it.

use super::max_body_size;
use crate::auth::{Permission, Principal};
use crate::items::{MaxLife, MaxLifeError};
use crate::routes::{admit_upload, require};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ItemState, Transaction, Uploader};
use crate::upload::{Chunk, ChunkRange, Encoding, NewUpload, Progress, UploadError};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyDataStream;

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
    // A new upload declares its whole size: refuse at once what could never fit.
    let expected = if req.headers.contains_key(TRANSACTION_ID) {
        range.byte_count()
    } else {
        range.total
    };
    let (tx, token, created, ticket) = match transaction_id(&req)? {
        None => {
            if range.begin != 0 {
                return Err(inconsistent(0));
            }
            let ticket = admit_upload(state, &req, &who, expected, 0, None).await?;
            let (tx, token) = begin(state, &req, &who, &range).await?;
            (tx, token, true, ticket)
        }
        Some(token) => {
            let tx = state
                .engine
                .open(&token, who.label_or_anonymous())
                .await
                .map_err(rest_error)?;
            let ticket = admit_upload(state, &req, &who, expected, 0, Some(&tx)).await?;
            (tx, token, false, ticket)
        }
    };
    let chunk = Chunk {
        offset: range.begin,
        total: Some(range.total),
        total_can_change: true,
        last: false,
        exact: Some(range.byte_count()),
        encoding: Encoding::Base64,
        max_body,
        checksum: None,
        keep_partial: false,
    };
    let body = BodyDataStream::new(req.body);
    // Detached: a completion must not stop halfway when an HTTP/2 request is dropped.
    match state.engine.append_detached(&tx, chunk, body, ticket).await {
        Ok(progress) => {
            crate::metrics::resumable_progress(crate::metrics::Protocol::Rest, &progress);
            Ok(answer(&token, &progress))
        }
        Err(e) => {
            if created {
                // bepasty removes an item its own first request failed to fill.
                state
                    .delete_item(&tx.item.name, "failed first chunk")
                    .await?;
            }
            Err(rest_error(e))
        }
    }
}

/// bepasty's wording of the engine's errors, which its clients parse.
fn rest_error(e: UploadError) -> AppError {
    match e {
        UploadError::UnknownUpload => unknown_transaction(),
        UploadError::NotOwner => {
            AppError::Forbidden("this transaction belongs to another credential".into())
        }
        UploadError::OffsetMismatch { stored } => inconsistent(stored),
        UploadError::TooLarge { .. } => too_large(),
        UploadError::ShortBody { expected } => length_mismatch(expected),
        UploadError::BeyondLength { remaining } => length_mismatch(remaining),
        UploadError::BadEncoding(_) => AppError::BadRequest("Could not decode data body".into()),
        other => other.into(),
    }
}

fn too_large() -> AppError {
    AppError::TooLarge("The data value transmitted exceeds the capacity limit.".into())
}

/// bepasty's message, which clients parse to resume.
fn inconsistent(stored: u64) -> AppError {
    AppError::Conflict(format!(
        "Content-Range inconsistent. Last byte on Server: {stored}"
    ))
}

fn length_mismatch(expected: u64) -> AppError {
    AppError::BadRequest(format!(
        "the decoded body does not have the {expected} bytes its Content-Range announces"
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

fn unknown_transaction() -> AppError {
    AppError::BadRequest("Could not find storage item for transaction id".into())
}

/// Creates the incomplete item of a first chunk.
async fn begin(
    state: &State,
    req: &Request,
    who: &Principal,
    range: &ChunkRange,
) -> Result<(Transaction, String), AppError> {
    let maxlife =
        MaxLife::parse(req.header("maxlife-value"), req.header("maxlife-unit")).map_err(|e| {
            AppError::BadRequest(match e {
                MaxLifeError::Unit => "maxlife-unit header is incorrect".into(),
                MaxLifeError::Value => "maxlife-value header is incorrect".into(),
            })
        })?;
    let filename = req
        .headers
        .get("content-filename")
        .map(|v| header_text(v.as_bytes()));
    // The body is always base64: a form content type (curl's --data-binary default) says
    // nothing about the file.
    let claimed = req
        .header(header::CONTENT_TYPE)
        .filter(|t| {
            !t.starts_with("application/x-www-form-urlencoded") && !t.starts_with("multipart/")
        })
        .map(str::to_string);
    let lifetime = MaxLife::effective(
        maxlife,
        state.config.default_lifetime,
        state.config.max_lifetime,
    );
    let new = NewUpload {
        uploader: Uploader {
            label: who.label_or_anonymous().into(),
            client_ip: req.client_ip.to_string(),
            user_agent: req.user_agent(),
            link: who.link_id(),
        },
        filename,
        content_type: claimed,
        total: Some(range.total),
        expires_at: lifetime.expires_at(crate::now()),
        reference: crate::routes::links::access::case_reference(who, None)?,
        comment: None,
    };
    state.engine.begin(new).await.map_err(rest_error)
}

/// Header values are bytes; bepasty reads them as latin-1. UTF-8 is taken as such.
pub fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn answer(token: &str, progress: &Progress) -> Response {
    let (status, location) = if progress.is_complete() {
        (
            StatusCode::CREATED,
            Some(format!("/apis/rest/items/{}", progress.item.name)),
        )
    } else {
        (StatusCode::OK, None)
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
    let tx = state
        .engine
        .open(&token, who.label_or_anonymous())
        .await
        .map_err(|e| match e {
            UploadError::UnknownUpload => AppError::NotFound,
            other => rest_error(other),
        })?;
    let mut resp = response::json(StatusCode::OK, &serde_json::json!({}));
    let h = resp.headers_mut();
    let complete = tx.item.state == ItemState::Complete;
    for (k, v) in [
        (TRANSACTION_ID, token),
        ("upload-offset", tx.item.size.to_string()),
        (
            "upload-length",
            tx.total.unwrap_or(tx.item.size).to_string(),
        ),
        ("upload-complete", complete.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    if complete && let Ok(v) = HeaderValue::from_str(&format!("/apis/rest/items/{}", tx.item.name))
    {
        h.insert(header::CONTENT_LOCATION, v);
    }
    Ok(resp)
}
