//! tus 1.0.0 at `/+tus/` (creation) and `/+tus/<token>` (the upload), with the extensions
//! creation, creation-with-upload, creation-defer-length, expiration, checksum and termination.
//! An adapter over the upload engine: it parses tus headers into engine calls and answers in
//! tus terms. `Tus-Resumable` is added to every answer under `/+tus/` where answers are finished
//! (`server/handle.rs`), errors included.

pub(super) mod metadata;

use super::resumable::{
    cancel, drop_failed_creation, expires, expires_after, insert_receipt, number, path_token, set,
};
use super::{admit_upload, require};
use crate::auth::{Permission, Principal};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ItemState, Transaction};
use crate::upload::{ChecksumAlgorithm, Chunk, Encoding, Progress, Ticket, UploadError};
use http::{Method, StatusCode, header};
use http_body_util::BodyDataStream;
use metadata::{format_metadata, parse_checksum, parse_metadata};

pub const VERSION: &str = "1.0.0";
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// `OPTIONS`: what this server supports (no credentials needed).
pub fn options(state: &State, _req: Request) -> Result<Response, AppError> {
    let mut resp = response::empty_status(StatusCode::NO_CONTENT);
    let h = resp.headers_mut();
    set(h, "tus-version", VERSION);
    set(h, "tus-extension", EXTENSIONS);
    set(h, "tus-max-size", state.config.max_file_size.to_string());
    set(h, "tus-checksum-algorithm", ChecksumAlgorithm::NAMES);
    Ok(resp)
}

/// Every request but `OPTIONS` must speak our version (412 otherwise, with the versions we do).
fn check_version(req: &Request) -> Result<(), AppError> {
    match req.header("tus-resumable") {
        Some(VERSION) => Ok(()),
        _ => Err(AppError::PreconditionFailed(format!(
            "Tus-Resumable must be {VERSION}"
        ))),
    }
}

/// `POST /+tus/`: creates an upload (and, with a body, takes its first bytes).
pub async fn create(state: &State, req: Request) -> Result<Response, AppError> {
    check_version(&req)?;
    let who = require(state, &req, Permission::Create).await?;
    let total = number(&req, "upload-length")?;
    let deferred = match req.header("upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return Err(AppError::BadRequest("Upload-Defer-Length must be 1".into())),
    };
    if total.is_some() == deferred {
        return Err(AppError::BadRequest(
            "send either Upload-Length or Upload-Defer-Length: 1".into(),
        ));
    }
    let meta = parse_metadata(req.headers.get("upload-metadata").map(|v| v.as_bytes()))?;
    let has_body = is_offset_stream(&req)?;
    let ticket = admit_upload(state, &req, &who, total.unwrap_or(0), 1, None).await?;
    let new = meta.into_upload(state, &req, &who, total)?;
    let (tx, token) = state.engine.begin(new).await?;
    let location = format!("/+tus/{token}");
    // An empty upload is complete at once; a body is its first bytes.
    let progress = if has_body || total == Some(0) {
        let checksum = parse_checksum(req.header("upload-checksum"))?;
        match append(state, &chunk_at(0, None, checksum), &tx, req, ticket).await {
            Ok(p) => Some(p),
            Err(e) => {
                drop_failed_creation(state, &tx, &who, &e).await;
                return Err(tus_error(e));
            }
        }
    } else {
        None
    };
    let mut resp = response::empty_status(StatusCode::CREATED);
    let h = resp.headers_mut();
    set(h, "location", &location);
    match progress {
        Some(p) => progress_headers(state, h, &p),
        None => {
            set(h, "upload-offset", "0");
            if let Some(at) = expires(state, &tx) {
                set(h, "upload-expires", at);
            }
        }
    }
    Ok(resp)
}

/// `HEAD`, `PATCH` and `DELETE` on `/+tus/<token>`.
pub async fn resource(state: &State, req: Request) -> Result<Response, AppError> {
    check_version(&req)?;
    let token = path_token(&req)?;
    let who = require(state, &req, Permission::Create).await?;
    let tx = state
        .engine
        .open(&token, who.label_or_anonymous())
        .await
        .map_err(tus_error)?;
    match req.method {
        Method::HEAD => Ok(head(state, &tx)),
        Method::PATCH => patch(state, req, &who, &tx).await,
        Method::DELETE => {
            cancel(state, &req, &who, &tx, "tus")
                .await
                .map_err(|e| match e {
                    UploadError::Completed => AppError::Conflict(
                        "this upload is complete and delivered; only operators can delete items"
                            .into(),
                    ),
                    other => tus_error(other),
                })?;
            Ok(response::empty_status(StatusCode::NO_CONTENT))
        }
        _ => Err(AppError::MethodNotAllowed {
            allow: "HEAD, PATCH, DELETE, OPTIONS",
        }),
    }
}

fn head(state: &State, tx: &Transaction) -> Response {
    let mut resp = response::empty_status(StatusCode::OK);
    let h = resp.headers_mut();
    set(h, "upload-offset", tx.item.size.to_string());
    match tx.total {
        Some(t) => set(h, "upload-length", t.to_string()),
        None => set(h, "upload-defer-length", "1"),
    }
    let item = &tx.item;
    set(
        h,
        "upload-metadata",
        format_metadata(&[
            ("filename", Some(&item.filename)),
            ("filetype", Some(&item.content_type)),
            ("reference", item.reference.as_deref()),
            ("comment", item.comment.as_deref()),
        ]),
    );
    set(h, "cache-control", "no-store");
    if let Some(at) = expires(state, tx) {
        set(h, "upload-expires", at);
    }
    if item.state == ItemState::Complete {
        insert_receipt(state, h, item);
    }
    resp
}

async fn patch(
    state: &State,
    req: Request,
    who: &Principal,
    tx: &Transaction,
) -> Result<Response, AppError> {
    if !is_offset_stream(&req)? {
        return Err(AppError::UnsupportedMediaType(format!(
            "PATCH needs Content-Type: {OFFSET_OCTET_STREAM}"
        )));
    }
    let offset = number(&req, "upload-offset")?
        .ok_or_else(|| AppError::BadRequest("Upload-Offset is missing".into()))?;
    let total = number(&req, "upload-length")?;
    let checksum = parse_checksum(req.header("upload-checksum"))?;
    let ticket = admit_upload(
        state,
        &req,
        who,
        req.content_length().unwrap_or(0),
        0,
        Some(tx),
    )
    .await?;
    let parts = chunk_at(offset, total, checksum);
    let p = append(state, &parts, tx, req, ticket)
        .await
        .map_err(tus_error)?;
    let mut resp = response::empty_status(StatusCode::NO_CONTENT);
    progress_headers(state, resp.headers_mut(), &p);
    Ok(resp)
}

/// The chunk a tus request declares: raw bytes at `offset`; what arrives before a break is kept.
fn chunk_at(offset: u64, total: Option<u64>, checksum: Option<crate::upload::Checksum>) -> Chunk {
    Chunk {
        offset,
        total,
        total_can_change: false,
        last: false,
        exact: None,
        encoding: Encoding::Raw,
        max_body: u64::MAX,
        checksum,
        keep_partial: true,
    }
}

async fn append(
    state: &State,
    chunk: &Chunk,
    tx: &Transaction,
    req: Request,
    ticket: Ticket,
) -> Result<Progress, UploadError> {
    let body = BodyDataStream::new(req.body);
    state
        .engine
        .append_detached(tx, chunk.clone(), body, ticket)
        .await
        .inspect(|p| crate::metrics::resumable_progress(crate::metrics::Protocol::Tus, p))
}

/// After a request that just wrote to the upload (so its last activity is now).
fn progress_headers(state: &State, h: &mut http::HeaderMap, p: &Progress) {
    set(h, "upload-offset", p.offset.to_string());
    if p.is_complete() {
        insert_receipt(state, h, &p.item);
    } else if let Some(at) = expires_after(state, crate::now()) {
        set(h, "upload-expires", at);
    }
}

/// Whether the body is tus data: `application/offset+octet-stream`; another type is refused.
fn is_offset_stream(req: &Request) -> Result<bool, AppError> {
    let Some(ct) = req.header(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(OFFSET_OCTET_STREAM) {
        Ok(true)
    } else {
        Err(AppError::UnsupportedMediaType(format!(
            "tus bodies are {OFFSET_OCTET_STREAM}"
        )))
    }
}

/// tus's statuses for the engine's errors: a busy upload is `423 Locked` (clients retry it),
/// an unknown one `404`.
fn tus_error(e: UploadError) -> AppError {
    match e {
        UploadError::Busy => AppError::Locked(e.to_string()),
        other => other.into(),
    }
}
