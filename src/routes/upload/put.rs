//! `PUT /+upload/<filename>`: `curl -T bundle.tar.gz https://user:support@HOST/+upload/` (curl
//! appends the file's name). The body is the file: no multipart framing, streamed and hashed
//! like every upload, committed as one item. Optional `?reference=` and `?comment=`, and
//! bepasty's `Maxlife-Value`/`Maxlife-Unit` headers. Answers `201` with a text receipt, or JSON
//! for `Accept: application/json`.

use super::super::links::access::case_reference;
use super::super::resumable::{insert_receipt, item_url, requested_expiry, uploader};
use super::super::{admit_upload, require};
use crate::auth::Permission;
use crate::metrics::{self, Protocol};
use crate::pages::ReceiptItem;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::Item;
use crate::upload::engine::clean_comment;
use crate::upload::{Staged, UploadMeta};
use http::{StatusCode, header};
use http_body_util::BodyDataStream;

pub async fn put(state: &State, req: Request) -> Result<Response, AppError> {
    if req.headers.contains_key(header::CONTENT_RANGE) {
        return Err(AppError::UnsupportedRange(
            "PUT takes a whole file; resume with tus (/+tus/) or the REST API".into(),
        ));
    }
    let who = require(state, &req, Permission::Create).await?;
    let filename = path_filename(&req)?;
    let len = req.content_length();
    state.engine.check_room(len.unwrap_or(0)).await?;
    let meta = UploadMeta {
        created_at: crate::now(),
        expires_at: requested_expiry(
            state,
            req.header("maxlife-value"),
            req.header("maxlife-unit"),
        )?,
        uploader: uploader(&req, &who),
        reference: case_reference(&who, req.query("reference").as_deref())?,
        comment: clean_comment(req.query("comment").as_deref())?,
    };
    let claimed = req
        .header(header::CONTENT_TYPE)
        .filter(|t| {
            !t.starts_with("application/x-www-form-urlencoded") && !t.starts_with("multipart/")
        })
        .map(str::to_string);
    let json = req.wants_json();
    let ticket = admit_upload(state, &req, &who, len.unwrap_or(0), 1, None).await?;
    let body = BodyDataStream::new(req.body);
    let written = state
        .engine
        .receive(body, state.config.max_file_size, &ticket)
        .await?;
    if len.is_some_and(|l| l != written.size) {
        return Err(AppError::interrupted());
    }
    let staged = Staged {
        written,
        filename: Some(filename),
        claimed_type: claimed,
        is_text: false,
    };
    let items = state.engine.commit(vec![staged], meta).await?;
    metrics::upload_finished(
        Protocol::Put,
        items.iter().map(|i| i.size).sum(),
        ticket.elapsed(),
    );
    let receipts: Vec<ReceiptItem> = items.iter().map(ReceiptItem::from).collect();
    let first = receipts
        .first()
        .ok_or_else(|| AppError::Internal("empty commit".into()))?;
    let mut resp = if json {
        response::json(
            StatusCode::CREATED,
            &serde_json::json!({ "items": receipts }),
        )
    } else {
        response::text(StatusCode::CREATED, text_receipt(state, &items))
    };
    if let Ok(v) = http::HeaderValue::from_str(&first.url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(item) = items.first() {
        insert_receipt(state, resp.headers_mut(), item);
    }
    Ok(resp)
}

/// The last path segment, percent-decoded; it must be UTF-8 (it is sanitized when committed).
fn path_filename(req: &Request) -> Result<String, AppError> {
    let raw = req.uri.path().rsplit('/').next().unwrap_or("");
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| AppError::BadRequest("the file name in the path is not UTF-8".into()))
}

/// What curl prints: the proof, line by line.
fn text_receipt(state: &State, items: &[Item]) -> String {
    let mut out = format!("Upload complete: {} file(s) received.\n", items.len());
    for item in items {
        let it = ReceiptItem::from(item);
        out.push_str(&format!(
            "item     {}\nfile     {}\nsize     {} bytes\nsha256   {}\nexpires  {}\nlink     {}\n",
            it.name,
            it.filename.escape_debug(),
            it.size,
            it.sha256,
            it.expires,
            item_url(state, item)
        ));
    }
    out
}
