//! Request handlers, one module per area. Each handler is a plain
//! `async fn(&State, Request) -> Result<Response, AppError>`.

pub mod assets;
pub mod audit;
pub mod client_script;
pub mod console;
pub mod download;
pub mod health;
pub mod ietf;
pub mod index;
pub mod item;
pub mod links;
pub mod list;
pub mod login;
pub mod metrics;
pub mod rest;
pub mod resumable;
pub mod tus;
pub mod upload;

use crate::audit::AuditEvent;
use crate::auth::{Permission, Principal, Source};
use crate::items::ItemName;
use crate::pages::ItemView;
use crate::server::{AppError, Request};
use crate::state::State;
use crate::store::{Item, ItemState, blocking};
use http::header;

/// Authenticates the request from its head (header, `?token=`, session). Every state-changing
/// request that rides on the session cookie must also come from our own pages (CSRF), so that no
/// route can forget the check.
pub async fn principal(state: &State, req: &Request) -> Result<Principal, AppError> {
    if let Some((token, source)) = links::access::presented(req)? {
        return links::access::principal(state, req, &token, source).await;
    }
    let token = req.query("token");
    let who = state
        .auth
        .resolve(&req.headers, token.as_deref(), req.client_ip, crate::now())
        .await?;
    if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
        check_origin(req, &who)?;
    }
    Ok(who)
}

/// Authenticates and requires a permission. Callers check permissions before looking anything
/// up, so a refusal never tells whether an item exists.
pub async fn require(state: &State, req: &Request, p: Permission) -> Result<Principal, AppError> {
    let who = principal(state, req).await?;
    if !who.can(p) {
        return Err(AppError::forbidden());
    }
    Ok(who)
}

/// Admits one upload request: the client's account must have room for `bytes` more (and
/// `items` more files), and an upload link its limits (a new file unless `resuming` one of its
/// uploads); then it takes an upload slot, held as long as the ticket lives.
pub async fn admit_upload(
    state: &State,
    req: &Request,
    who: &Principal,
    bytes: u64,
    items: u64,
    resuming: Option<&crate::store::Transaction>,
) -> Result<crate::upload::Ticket, AppError> {
    let mut account = state
        .limits
        .account(req.client_ip, who.can(Permission::Admin));
    if let Some((max, room)) = links::access::admit(state, who, bytes, resuming).await? {
        account.cap(max, room);
    }
    account.expect(bytes)?;
    if items > 0 {
        account.add_items(items)?;
    }
    Ok(state.uploads.admit(req.client_ip, account).await?)
}

/// What a request may do with an incomplete upload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read it (page, download, metadata): only complete items, for everybody.
    Read,
    /// Change it (delete, modify, lock): admins may touch incomplete uploads too.
    Manage,
}

/// The item a request is about, with bepasty's checks in one place: expired items are removed
/// on the spot (the sweeper would soon anyway) and reported missing (404); locked items are for
/// admins (403); incomplete uploads answer 409 (except admins managing them).
pub async fn checked_item(
    state: &State,
    name: &ItemName,
    who: &Principal,
    usage: Use,
) -> Result<Item, AppError> {
    let n = name.clone();
    let item = blocking(&state.store, move |s| s.get(&n))
        .await?
        .ok_or(AppError::NotFound)?;
    let admin = who.can(Permission::Admin);
    if item.is_expired(crate::now()) {
        if state.delete_item(name, "expiry").await? {
            state.audit.record(AuditEvent::expired(name)).await;
        }
        return Err(AppError::NotFound);
    }
    // Quarantined items are for admins only, like locked ones (and not even they download
    // them without an override: see `download`).
    if (item.locked || item.is_infected()) && !admin {
        return Err(AppError::forbidden());
    }
    if item.state != ItemState::Complete && (usage == Use::Read || !admin) {
        return Err(AppError::Conflict(
            "upload incomplete; try again later".into(),
        ));
    }
    Ok(item)
}

/// A live, complete item the principal may read.
pub async fn visible_item(
    state: &State,
    name: &ItemName,
    who: &Principal,
) -> Result<Item, AppError> {
    checked_item(state, name, who, Use::Read).await
}

/// Items as operators see them, with the alert state of each one's delivery.
pub async fn item_views(state: &State, items: &[Item]) -> Result<Vec<ItemView>, AppError> {
    let names: Vec<String> = items.iter().map(|i| i.name.to_string()).collect();
    let alerts = blocking(&state.store, move |s| s.alert_status(&names)).await?;
    Ok(items
        .iter()
        .map(|it| {
            let mut view = ItemView::from(it);
            if let Some(a) = alerts.get(it.name.as_str()) {
                view.alert = a.status.label();
                view.delivery = Some(a.delivery);
            } else {
                view.alert = "-".into();
            }
            view
        })
        .collect())
}

/// Cross-site request forgery guard for state-changing requests that ride on the session
/// cookie: besides SameSite=Strict, the browser must say the request comes from our own pages.
pub fn check_origin(req: &Request, who: &Principal) -> Result<(), AppError> {
    if who.source == Source::Session && is_cross_site(req) {
        return Err(AppError::Forbidden("cross-site request refused".into()));
    }
    Ok(())
}

/// What a browser tells about where a request comes from: `Sec-Fetch-Site` when it sends it,
/// else `Origin` (which must be this host; `null` is another site). Non-browser clients send
/// neither and are not cross-site.
pub fn is_cross_site(req: &Request) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = req.header(header::ORIGIN) else {
        return false;
    };
    // HTTP/2 carries the host in the URI (`:authority`), HTTP/1.1 in `Host`.
    let host = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.header(header::HOST))
        .unwrap_or("");
    origin.split_once("://").map(|(_, h)| h) != Some(host)
}

/// A redirect target from a form's `next`: only a local absolute path of ours (never `//host`,
/// a scheme, a backslash or a control character), so it cannot become an open redirect.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next
            .chars()
            .all(|c| !c.is_control() && c.is_ascii_graphic());
    ok.then(|| next.to_string())
}

/// The number after the first path segment (`/+links/<id>/…`, `/+deliveries/<id>/…`); the
/// router let only positive decimal numbers through.
pub fn path_id(req: &Request) -> Result<i64, AppError> {
    req.uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)
}

/// Reads a small body whole (forms, JSON), with a size limit and a timeout.
pub async fn small_body(req: Request, limit: usize) -> Result<bytes::Bytes, AppError> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(req.body, limit);
    let collected = tokio::time::timeout(std::time::Duration::from_secs(30), body.collect())
        .await
        .map_err(|_| AppError::Timeout("timed out reading the request body".into()))?
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => AppError::TooLarge("request body too large".into()),
                None => AppError::BadRequest("could not read the request body".into()),
            },
        )?;
    Ok(collected.to_bytes())
}

/// Reads a small `application/x-www-form-urlencoded` body (login, delete buttons).
pub async fn small_form(req: Request, limit: usize) -> Result<Vec<(String, String)>, AppError> {
    let bytes = small_body(req, limit).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

pub fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets() {
        assert_eq!(safe_next(Some("/+list")).unwrap(), "/+list");
        assert_eq!(safe_next(Some("/+list?q=a%20b")).unwrap(), "/+list?q=a%20b");
        for bad in [
            "//evil.example/",
            "http://evil.example/",
            "/\\evil",
            "/a\r\nSet-Cookie:x",
            "+list",
            "/a b",
        ] {
            assert!(safe_next(Some(bad)).is_none(), "{bad}");
        }
    }
}
