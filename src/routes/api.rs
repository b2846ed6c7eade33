//! bepasty's REST API: `GET /apis/rest` (limits) and item metadata.

use super::{require, visible_item};
use crate::auth::Permission;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Item, ItemState};
use http::StatusCode;
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
    })
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
