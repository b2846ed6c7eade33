//! The support console: the file list with its filters and orders (`/+list`), bulk delete
//! (`/+delete`), a streamed ZIP of many items (`/+zip`) and the deliveries with their alerts
//! (`/+deliveries`). Every page works without JavaScript.

pub mod bulk;
pub mod deliveries;
pub mod filters;
pub mod list;
pub mod zip;

use crate::items::ItemName;
use crate::server::{AppError, Request};

/// Most items one bulk request may name.
pub const MAX_NAMES: usize = 1000;
/// Form bodies of bulk requests: a thousand names and a `next`.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The `name` values of a query string or form, each an item name, without repeats.
pub fn names(pairs: &[(String, String)]) -> Result<Vec<ItemName>, AppError> {
    let mut out: Vec<ItemName> = Vec::new();
    for (k, v) in pairs.iter().filter(|(k, _)| k == "name") {
        let name = ItemName::parse(v.trim())
            .ok_or_else(|| AppError::BadRequest(format!("{k}: {v:?} is not an item name")))?;
        if !out.contains(&name) {
            out.push(name);
        }
        if out.len() > MAX_NAMES {
            return Err(AppError::BadRequest(format!(
                "at most {MAX_NAMES} items at once"
            )));
        }
    }
    if out.is_empty() {
        return Err(AppError::BadRequest("no item selected".into()));
    }
    Ok(out)
}

/// The query string's pairs, percent-decoded.
pub fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}
