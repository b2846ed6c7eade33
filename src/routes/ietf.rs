//! IETF "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload, interop versions 6,
//! 8 and 9): creation by `POST /+upload` with the draft's headers and any body, the upload
//! resource at `/+resumable/<token>` (`HEAD` for the offset, `PATCH` to append, `DELETE` to
//! cancel). An adapter over the upload engine.
//!
//! hyper cannot send informational responses yet, so there is no `104 (Upload Resumption
//! Supported)`: a client learns the upload's URL from the final answer of its creation
//! request. The mode that works is therefore "create, then append": create with
//! `Upload-Complete: ?0` (and little or no body), then `PATCH` the bytes. The 104 would go out
//! in [`create`] right after [`crate::upload::Engine::begin`], carrying `Location` and
//! `Upload-Limit`, before the body is read.

use super::resumable::{cancel, drop_failed_creation, insert_receipt, number, path_token, set};
use super::tus::metadata::parse_metadata;
use super::{admit_upload, require};
use crate::auth::Permission;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ItemState, Transaction};
use crate::upload::{Chunk, Encoding, Progress, Ticket, UploadError};
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyDataStream;

const INTEROP: &str = "upload-draft-interop-version";
/// The interop versions we speak: 6 (draft -05: tusd, tus-js-client `ietf-draft-05`), 8 (iOS
/// 26 URLSession) and 9 (the latest drafts).
const VERSIONS: [&str; 3] = ["6", "8", "9"];
const PROBLEM: &str = "https://iana.org/assignments/http-problem-types#";

/// A `POST /+upload` that speaks the draft (rather than a form).
pub fn is_creation(req: &Request) -> bool {
    req.headers.contains_key(INTEROP) || req.headers.contains_key("upload-complete")
}

fn version(req: &Request) -> Result<&'static str, AppError> {
    match req.header(INTEROP).map(str::trim) {
        None => Ok("9"),
        Some(v) => VERSIONS.iter().find(|k| **k == v).copied().ok_or_else(|| {
            AppError::BadRequest(format!(
                "Upload-Draft-Interop-Version {v} is not supported; use one of {}",
                VERSIONS.join(", ")
            ))
        }),
    }
}

/// `Upload-Complete`: a structured-field boolean, `?1` or `?0`.
fn complete_flag(req: &Request) -> Result<bool, AppError> {
    match req.header("upload-complete").map(str::trim) {
        Some("?1") => Ok(true),
        Some("?0") => Ok(false),
        _ => Err(AppError::BadRequest(
            "Upload-Complete must be ?1 or ?0".into(),
        )),
    }
}

fn limit(state: &State) -> String {
    format!(
        "max-size={}, min-size=0, max-age={}",
        state.config.max_file_size,
        state.config.incomplete_ttl.as_secs()
    )
}

/// `OPTIONS /+upload`: the limits uploads must respect.
pub fn options(state: &State, _req: Request) -> Result<Response, AppError> {
    let mut resp = response::empty_status(StatusCode::NO_CONTENT);
    set(resp.headers_mut(), "upload-limit", limit(state));
    Ok(resp)
}

/// `POST /+upload` with the draft's headers: creates the upload and takes the body.
pub async fn create(state: &State, req: Request) -> Result<Response, AppError> {
    let v = version(&req)?;
    let who = require(state, &req, Permission::Create).await?;
    let complete = complete_flag(&req)?;
    let declared = number(&req, "upload-length")?;
    let len = req.content_length();
    let total = match (declared, complete, len) {
        (Some(t), true, Some(l)) if t != l => {
            return Err(AppError::BadRequest(
                "Upload-Length and Content-Length differ on a complete upload".into(),
            ));
        }
        (Some(t), _, _) => Some(t),
        (None, true, l) => l,
        (None, false, _) => None,
    };
    let ticket = admit_upload(state, &req, &who, total.or(len).unwrap_or(0), 1, None).await?;
    // The draft has no metadata of its own: tus's `Upload-Metadata` (tus-js-client sends it in
    // its IETF mode too), else `Content-Disposition`, `Content-Type` and, as for PUT, the query.
    let mut meta = parse_metadata(req.headers.get("upload-metadata").map(|v| v.as_bytes()))?;
    meta.filetype = meta.filetype.or_else(|| {
        req.header(header::CONTENT_TYPE)
            .filter(|t| !t.starts_with("application/partial-upload"))
            .map(str::to_string)
    });
    meta.filename = meta.filename.or_else(|| disposition_filename(&req.headers));
    meta.reference = meta.reference.or_else(|| req.query("reference"));
    meta.comment = meta.comment.or_else(|| req.query("comment"));
    let new = meta.into_upload(state, &req, &who, total)?;
    let (tx, token) = state.engine.begin(new).await?;
    let location = format!("/+resumable/{token}");
    let progress = match append(state, req, &tx, 0, total, complete, ticket).await {
        Ok(p) => p,
        Err(e) => {
            drop_failed_creation(state, &tx, &who, &e).await;
            return Err(e.into());
        }
    };
    let mut resp = answer(state, StatusCode::CREATED, v, &progress);
    set(resp.headers_mut(), "location", &location);
    Ok(resp)
}

/// `HEAD`, `PATCH`, `DELETE` on `/+resumable/<token>`; `OPTIONS` gives the limits.
pub async fn resource(state: &State, req: Request) -> Result<Response, AppError> {
    if req.method == Method::OPTIONS {
        return options(state, req);
    }
    let v = version(&req)?;
    let token = path_token(&req)?;
    let who = require(state, &req, Permission::Create).await?;
    let tx = state.engine.open(&token, who.label_or_anonymous()).await?;
    match req.method {
        Method::HEAD => {
            let progress = Progress {
                offset: tx.item.size,
                total: tx.total,
                item: tx.item.clone(),
            };
            let mut resp = answer(state, StatusCode::NO_CONTENT, v, &progress);
            set(resp.headers_mut(), "cache-control", "no-store");
            Ok(resp)
        }
        Method::PATCH => {
            let offset = number(&req, "upload-offset")?
                .ok_or_else(|| AppError::BadRequest("Upload-Offset is missing".into()))?;
            let complete = complete_flag(&req)?;
            let total = number(&req, "upload-length")?;
            let len = req.content_length().unwrap_or(0);
            let ticket = admit_upload(state, &req, &who, len, 0, Some(&tx)).await?;
            match append(state, req, &tx, offset, total, complete, ticket).await {
                Ok(p) => {
                    let status = if p.is_complete() {
                        StatusCode::OK
                    } else {
                        StatusCode::NO_CONTENT
                    };
                    Ok(answer(state, status, v, &p))
                }
                Err(UploadError::OffsetMismatch { stored }) => {
                    Ok(mismatch(state, v, &tx, stored, offset))
                }
                Err(UploadError::Completed) => Ok(problem(
                    StatusCode::BAD_REQUEST,
                    "completed-upload",
                    "the upload is already complete",
                    serde_json::json!({}),
                )),
                Err(e) => Err(e.into()),
            }
        }
        Method::DELETE => {
            cancel(state, &req, &who, &tx, "IETF").await?;
            Ok(response::empty_status(StatusCode::NO_CONTENT))
        }
        _ => Err(AppError::MethodNotAllowed {
            allow: "HEAD, PATCH, DELETE, OPTIONS",
        }),
    }
}

async fn append(
    state: &State,
    req: Request,
    tx: &Transaction,
    offset: u64,
    total: Option<u64>,
    last: bool,
    ticket: Ticket,
) -> Result<Progress, UploadError> {
    let chunk = Chunk {
        offset,
        total,
        total_can_change: false,
        last,
        exact: None,
        encoding: Encoding::Raw,
        max_body: u64::MAX,
        checksum: None,
        keep_partial: true,
    };
    let body = BodyDataStream::new(req.body);
    state
        .engine
        .append_detached(tx, chunk, body, ticket)
        .await
        .inspect(|p| crate::metrics::resumable_progress(crate::metrics::Protocol::Ietf, p))
}

/// The draft's headers on every answer about an upload.
fn answer(state: &State, status: StatusCode, v: &str, p: &Progress) -> Response {
    let mut resp = response::empty_status(status);
    let h = resp.headers_mut();
    set(h, INTEROP, v);
    set(h, "upload-offset", p.offset.to_string());
    set(h, "upload-limit", limit(state));
    if let Some(t) = p.total {
        set(h, "upload-length", t.to_string());
    }
    let complete = p.item.state == ItemState::Complete;
    set(h, "upload-complete", if complete { "?1" } else { "?0" });
    if complete {
        insert_receipt(state, h, &p.item);
    }
    resp
}

/// `409` with the draft's problem document, and the offset to resume from.
fn mismatch(state: &State, v: &str, tx: &Transaction, stored: u64, provided: u64) -> Response {
    let mut resp = problem(
        StatusCode::CONFLICT,
        "mismatching-upload-offset",
        "the offset does not match the upload's",
        serde_json::json!({ "expected-offset": stored, "provided-offset": provided }),
    );
    let h = resp.headers_mut();
    set(h, INTEROP, v);
    set(h, "upload-offset", stored.to_string());
    set(h, "upload-limit", limit(state));
    set(h, "upload-complete", "?0");
    if let Some(t) = tx.total {
        set(h, "upload-length", t.to_string());
    }
    resp
}

fn problem(status: StatusCode, kind: &str, title: &str, extra: serde_json::Value) -> Response {
    let mut doc = serde_json::json!({ "type": format!("{PROBLEM}{kind}"), "title": title });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let mut resp = response::json(status, &doc);
    set(
        resp.headers_mut(),
        "content-type",
        "application/problem+json",
    );
    resp
}

/// `Content-Disposition: attachment; filename="x"` (RFC 6266) names the file, if present.
fn disposition_filename(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    v.split(';').find_map(|part| {
        let (k, val) = part.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| val.trim().trim_matches('"').to_string())
    })
}
