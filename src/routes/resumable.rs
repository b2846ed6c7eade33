//! What the resumable protocols (tus, the IETF draft) and PUT share: the upload token in the
//! path, the uploader of a request, strict number headers, and the headers that give a client
//! the proof of a finished upload.

use crate::audit::{AuditEvent, Kind};
use crate::auth::Principal;
use crate::items::MaxLife;
use crate::server::{AppError, Request};
use crate::state::State;
use crate::store::{Item, ItemState, Transaction, Uploader};
use crate::upload::UploadError;
use http::{HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986's unreserved characters stay as they are in `Sfx-Filename`.
const FILENAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// The token of `/+tus/<token>` or `/+resumable/<token>`: exactly what
/// [`crate::upload::resumable::new_token`] makes (43 base64url characters); anything else is
/// no upload of ours.
pub fn path_token(req: &Request) -> Result<String, AppError> {
    let token = req.uri.path().rsplit('/').next().unwrap_or("");
    let ok = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(token.to_string())
    } else {
        Err(AppError::NotFound)
    }
}

pub fn uploader(req: &Request, who: &Principal) -> Uploader {
    Uploader {
        label: who.label_or_anonymous().to_string(),
        client_ip: req.client_ip.to_string(),
        user_agent: req.user_agent(),
        link: who.link_id(),
    }
}

/// When a new item expires: the configured default lifetime.
pub fn default_expiry(state: &State) -> Option<i64> {
    expiry(state, None)
}

/// When a new item expires, for a client's bepasty-style lifetime (`maxlife-value`,
/// `maxlife-unit`; capped by `max_lifetime`) or the default one.
pub fn requested_expiry(
    state: &State,
    value: Option<&str>,
    unit: Option<&str>,
) -> Result<Option<i64>, AppError> {
    Ok(expiry(state, MaxLife::parse(value, unit)?))
}

fn expiry(state: &State, requested: Option<MaxLife>) -> Option<i64> {
    MaxLife::effective(
        requested,
        state.config.default_lifetime,
        state.config.max_lifetime,
    )
    .expires_at(crate::now())
}

/// A creation request whose first bytes failed: an interrupted body keeps the upload (the
/// client may resume it), anything else removes it.
pub async fn drop_failed_creation(
    state: &State,
    tx: &Transaction,
    who: &Principal,
    e: &UploadError,
) {
    if !matches!(e, UploadError::Interrupted | UploadError::Idle(_)) {
        let _ = state.engine.cancel(tx, who.label_or_anonymous()).await;
    }
}

/// A non-negative integer header (`Upload-Offset`, `Upload-Length`): digits only.
pub fn number(req: &Request, name: &str) -> Result<Option<u64>, AppError> {
    let Some(raw) = req.headers.get(name) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::BadRequest(format!(
            "{name} must be a non-negative integer"
        )));
    }
    text.parse()
        .map(Some)
        .map_err(|_| AppError::BadRequest(format!("{name} is out of range")))
}

/// When an incomplete upload is removed if nothing more arrives, as an HTTP date.
pub fn expires(state: &State, tx: &Transaction) -> Option<String> {
    if tx.item.state == ItemState::Complete {
        return None;
    }
    expires_after(state, tx.updated_at)
}

/// `incomplete_ttl` after the upload's last activity at `updated_at`, as an HTTP date.
pub fn expires_after(state: &State, updated_at: i64) -> Option<String> {
    let ttl = state.config.incomplete_ttl.as_secs();
    let at = u64::try_from(updated_at).ok()?.saturating_add(ttl);
    Some(httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
    ))
}

/// The proof a client compares with its own: the item name, its SHA-256 and its page.
pub fn insert_receipt(state: &State, h: &mut HeaderMap, item: &Item) {
    let filename = utf8_percent_encode(&item.filename, FILENAME).to_string();
    let url = item_url(state, item);
    for (k, v) in [
        ("sfx-item", item.name.to_string()),
        ("sfx-sha256", item.sha256.clone()),
        ("sfx-item-url", url),
        ("sfx-filename", filename),
        ("sfx-size", item.size.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

/// The item's page: absolute with the configured `public_url` (or a specific bound address);
/// a path when sfx listens on all interfaces under no configured name (the bound `0.0.0.0`
/// would be no address for a client; a path resolves against the one it used).
pub fn item_url(state: &State, item: &Item) -> String {
    if state.config.public_url_is_usable() {
        format!("{}/{}", state.config.public_url, item.name)
    } else {
        format!("/{}", item.name)
    }
}

/// Inserts a header whose value we made (numbers, dates, paths).
pub fn set(h: &mut HeaderMap, name: &'static str, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        h.insert(name, v);
    }
}

/// The uploader ends its incomplete upload (tus termination, IETF cancellation); recorded in
/// the audit trail like every deletion.
pub async fn cancel(
    state: &State,
    req: &Request,
    who: &Principal,
    tx: &Transaction,
    protocol: &str,
) -> Result<(), UploadError> {
    state.engine.cancel(tx, who.label_or_anonymous()).await?;
    let event = AuditEvent::new(Kind::Delete, req.client_ip, who.label_or_anonymous())
        .item(&tx.item.name)
        .detail(format!(
            "incomplete upload {} cancelled by its uploader ({protocol}) at {} bytes",
            tx.item.filename, tx.item.size
        ));
    state.audit.record(event).await;
    Ok(())
}
