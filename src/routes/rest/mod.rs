//! bepasty's REST API under `/apis/rest`: limits, item metadata, and the operations on items
//! (modify, delete, lock, unlock). Uploads are in [`upload`].

pub mod upload;

use super::{Use, checked_item, require, visible_item};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Permission, Principal};
use crate::items::{sanitize_content_type, sanitize_filename};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Item, ItemState, blocking};
use http::{StatusCode, header};
use serde_json::{Value, json};

pub async fn info(state: &State, _req: Request) -> Result<Response, AppError> {
    let max = state.config.max_file_size;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "MAX_ALLOWED_FILE_SIZE": max,
            "MAX_BODY_SIZE": max_body_size(max),
        }),
    ))
}

/// The largest REST body we accept: a whole `max_file_size` file in base64, with room for a line
/// break every 60 characters (Ruby's encoder), so a one-shot upload always fits.
pub fn max_body_size(max_file_size: u64) -> u64 {
    let b64 = max_file_size.div_ceil(3).saturating_mul(4);
    b64.saturating_add(b64 / 60 * 2).saturating_add(2)
}

pub async fn item(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let name = req.item_name()?;
    let item = visible_item(state, &name, &who).await?;
    Ok(response::json(StatusCode::OK, &item_json(&item)))
}

/// `{"file-meta": {...}, "uri": "/apis/rest/items/<name>"}` as bepasty answers.
pub fn item_json(item: &Item) -> Value {
    json!({ "file-meta": file_meta(item), "uri": format!("/apis/rest/items/{}", item.name) })
}

/// bepasty's metadata keys, plus what sfx records about the upload.
pub fn file_meta(item: &Item) -> Value {
    json!({
        "filename": item.filename,
        "size": item.size,
        "type": item.content_type,
        "hash": item.sha256,
        "timestamp-upload": item.created_at,
        "timestamp-download": item.downloaded_at.unwrap_or(0),
        "timestamp-max-life": item.expires_at.unwrap_or(-1),
        "locked": item.locked,
        "complete": item.state == ItemState::Complete,
        "uploader": item.uploader.label,
        "client-ip": item.uploader.client_ip,
        "reference": item.reference,
        "comment": item.comment,
        "scan": item.scan.as_ref().map(crate::scan::ScanState::label),
    })
}

/// An operator's action on an item, for the audit trail.
fn audit_event(kind: Kind, req: &Request, who: &Principal, item: &Item) -> AuditEvent {
    AuditEvent::new(kind, req.client_ip, who.label_or_anonymous()).item(&item.name)
}

/// `filename "a" -> "b", type "x" -> "y"`: what a modify changed.
fn changes_made(item: &Item, filename: Option<&str>, content_type: Option<&str>) -> String {
    [
        ("filename", item.filename.as_str(), filename),
        ("type", item.content_type.as_str(), content_type),
    ]
    .iter()
    .filter_map(|(what, old, new)| new.map(|new| format!("{what} {old:?} -> {new:?}")))
    .collect::<Vec<_>>()
    .join(", ")
}

fn ok() -> Response {
    response::json(StatusCode::OK, &json!({}))
}

/// `POST /apis/rest/items/<name>/modify` with JSON `{"filename": …, "type": …}` (`modify`).
pub async fn modify(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Modify).await?;
    let name = req.item_name()?;
    let is_json = req
        .header(header::CONTENT_TYPE)
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(AppError::UnsupportedMediaType(
            "send the changes as application/json".into(),
        ));
    }
    let item = checked_item(state, &name, &who, Use::Manage).await?;
    let event = audit_event(Kind::Modify, &req, &who, &item);
    let body = super::small_body(req, 64 * 1024).await?;
    let changes: Value = serde_json::from_slice(&body)
        .map_err(|_| AppError::BadRequest("the body is not valid JSON".into()))?;
    let text = |key: &str| {
        changes
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let filename = match text("filename") {
        Some(f) => Some(
            sanitize_filename(f)
                .ok_or_else(|| AppError::BadRequest("filename has no usable characters".into()))?,
        ),
        None => None,
    };
    let content_type = match text("type") {
        Some(t) => Some(
            sanitize_content_type(t)
                .ok_or_else(|| AppError::BadRequest("type is not a media type".into()))?,
        ),
        None => None,
    };
    let changed = changes_made(&item, filename.as_deref(), content_type.as_deref());
    blocking(&state.store, move |s| {
        s.modify(&name, filename.as_deref(), content_type.as_deref())
    })
    .await?;
    state.audit.record(event.detail(changed)).await;
    Ok(ok())
}

/// `POST /apis/rest/items/<name>/delete` (`delete`).
pub async fn delete(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Delete).await?;
    let name = req.item_name()?;
    let item = checked_item(state, &name, &who, Use::Manage).await?;
    if state.delete_item(&name, who.label_or_anonymous()).await? {
        state
            .audit
            .record(audit_event(Kind::Delete, &req, &who, &item).detail(item.filename))
            .await;
    }
    Ok(ok())
}

/// `POST /apis/rest/items/<name>/lock` and `/unlock` (`admin`): a locked item is visible to
/// admins only.
pub async fn lock(state: &State, req: Request) -> Result<Response, AppError> {
    set_lock(state, req, true).await
}

pub async fn unlock(state: &State, req: Request) -> Result<Response, AppError> {
    set_lock(state, req, false).await
}

async fn set_lock(state: &State, req: Request, locked: bool) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Admin).await?;
    let name = req.item_name()?;
    let item = checked_item(state, &name, &who, Use::Manage).await?;
    if item.state != ItemState::Complete {
        return Err(AppError::Conflict(
            "upload incomplete; try again later".into(),
        ));
    }
    if item.locked == locked {
        let word = if locked { "True" } else { "False" };
        return Err(AppError::Conflict(format!("locked already is {word}.")));
    }
    blocking(&state.store, move |s| s.set_locked(&name, locked)).await?;
    let kind = if locked { Kind::Lock } else { Kind::Unlock };
    state
        .audit
        .record(audit_event(kind, &req, &who, &item))
        .await;
    Ok(ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_limit_fits_a_whole_file() {
        let max = 10u64 << 30;
        assert!(super::max_body_size(max) >= max.div_ceil(3) * 4);
        assert_eq!(super::max_body_size(3), 4 + 2);
    }
}
