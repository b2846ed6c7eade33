//! `POST /+upload`: the vendor's curl command, browser forms and pastes.
//!
//! Authentication and size are decided from the request head when possible, so curl's
//! `Expect: 100-continue` gets its 403/413/507 before sending a byte. File parts are streamed to
//! temp files; only when the whole request has been read and checked are the items committed.

mod form;
pub mod put;
mod receipt;

pub use receipt::receipt_page;

use super::{admit_upload, principal};
use crate::auth::{Permission, Source};
use crate::metrics::{self, Protocol};
use crate::pages::ReceiptItem;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Item, Uploader};
use crate::upload::engine::clean_comment;
use crate::upload::{Staged, UploadMeta};
use form::{FormInput, read_multipart, read_urlencoded};
use http::{HeaderValue, StatusCode, header};

pub async fn form_upload(state: &State, req: Request) -> Result<Response, AppError> {
    if req.headers.contains_key(header::CONTENT_RANGE) {
        // bepasty answers 416 here; chunked uploads belong to the REST API.
        return Err(AppError::UnsupportedRange(
            "Content-Range is not accepted on /+upload; use /apis/rest/items".into(),
        ));
    }
    let who = principal(state, &req).await?;
    // Credentials that were given but do not allow creating: refuse before reading the body.
    // (Anonymous requests may still carry a `token` form field.)
    if who.source != Source::Anonymous && !who.can(Permission::Create) {
        return Err(AppError::forbidden());
    }
    let len = req.content_length();
    if let Some(len) = len {
        admit(state, len).await?;
    }
    // Held until the response: one upload slot of this client's share.
    let ticket = admit_upload(state, &req, &who, len.unwrap_or(0), 0, None).await?;
    let content_type = req.header(header::CONTENT_TYPE).unwrap_or("").to_string();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (json, ip, user_agent) = (
        req.wants_json(),
        req.client_ip.to_string(),
        req.user_agent(),
    );
    let input = match essence.as_str() {
        "multipart/form-data" => read_multipart(state, req, who, &content_type, &ticket).await?,
        "application/x-www-form-urlencoded" => read_urlencoded(state, req, who, &ticket).await?,
        _ if who.can(Permission::Create) => {
            return Err(AppError::UnsupportedMediaType(
                "send multipart/form-data (curl -F) or a urlencoded form".into(),
            ));
        }
        _ => return Err(AppError::forbidden()),
    };
    let FormInput {
        mut files,
        text,
        fields,
        who,
    } = input;
    if !who.can(Permission::Create) {
        return Err(AppError::forbidden());
    }
    // An empty paste box (every browser form sends one) is not an upload.
    let text = text.filter(|t| t.size > 0);
    if files.is_empty() && text.is_none() {
        return Err(AppError::BadRequest(
            "nothing to upload: send a `file` part or a `text` field".into(),
        ));
    }
    if let Some(written) = text {
        files.push(Staged {
            written,
            filename: fields.filename.clone(),
            claimed_type: fields.contenttype.clone(),
            is_text: true,
        });
    }
    let meta = UploadMeta {
        created_at: crate::now(),
        expires_at: super::resumable::requested_expiry(
            state,
            fields.maxlife_value.as_deref(),
            fields.maxlife_unit.as_deref(),
        )?,
        uploader: Uploader {
            label: who.label_or_anonymous().to_string(),
            client_ip: ip,
            user_agent,
            link: who.link_id(),
        },
        reference: super::links::access::case_reference(&who, fields.reference.as_deref())?,
        comment: clean_comment(fields.comment.as_deref())?,
    };
    ticket.account().add_items(files.len() as u64)?;
    let items = state.engine.commit(files, meta).await?;
    metrics::upload_finished(
        Protocol::Form,
        items.iter().map(|i| i.size).sum(),
        ticket.elapsed(),
    );
    let as_page = fields.response.as_deref() == Some("page");
    respond(state, &items, json, as_page, &who)
}

/// Early checks from `Content-Length` alone.
async fn admit(state: &State, len: u64) -> Result<(), AppError> {
    let max = state.config.max_request_size;
    if len > max {
        return Err(AppError::TooLarge(format!(
            "the upload ({len} bytes) is larger than the limit of {max} bytes; nothing was stored"
        )));
    }
    Ok(state.engine.check_free(len).await?)
}

/// bepasty's answer (302 to the first item, with a receipt body for curl to print), a JSON
/// receipt for API clients, or the receipt page for our own upload form.
fn respond(
    state: &State,
    items: &[Item],
    json: bool,
    as_page: bool,
    who: &crate::auth::Principal,
) -> Result<Response, AppError> {
    let receipts: Vec<ReceiptItem> = items.iter().map(ReceiptItem::from).collect();
    let first = items
        .first()
        .ok_or_else(|| AppError::Internal("empty commit".into()))?;
    let location = format!(
        "/{}#{}",
        first.name,
        receipt::quote_fragment(&first.filename)
    );
    let mut resp = if json {
        response::json(
            StatusCode::CREATED,
            &serde_json::json!({ "items": receipts }),
        )
    } else if as_page {
        return Ok(receipt::after_form(state, &receipts, who));
    } else {
        // curl prints this body as is: end it with a newline so the prompt starts on a new line.
        let body = crate::pages::render(&crate::pages::ReceiptBody { items: &receipts }) + "\n";
        response::html(StatusCode::FOUND, body)
    };
    let v = HeaderValue::from_str(&location)
        .map_err(|e| AppError::Internal(format!("location: {e}")))?;
    resp.headers_mut().insert(header::LOCATION, v);
    Ok(resp)
}
