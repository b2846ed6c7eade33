//! Per-case upload links: the operators' pages (`/+links`, `/+links/<id>`, revoke) and the
//! customer's upload page `/u/<token>`. The form post to `/u/<token>` and `PUT
//! /u/<token>/<filename>` are the ordinary upload handlers: [`access`] makes the link the
//! request's principal.

pub mod access;

use super::{form_value, item_views, path_id, principal, require, small_form};
use crate::auth::Permission;
use crate::config::ChannelKind;
use crate::links::{self, LinkRequest};
use crate::pages::{
    LinkForm, LinkPage, LinkUploadPage, LinkView, LinksPage, Nav, format_time, human_size,
    link_limits, render,
};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ItemState, blocking};
use http::{StatusCode, header};

const PER_PAGE: u64 = 50;
/// Arrivals shown on a link's page.
const ARRIVALS: u64 = 500;
const FORM_LIMIT: usize = 16 * 1024;

fn can_notify(state: &State) -> bool {
    state
        .config
        .alerts
        .iter()
        .any(|c| matches!(c.kind, ChannelKind::Email { .. }))
}

/// `GET /+links`: the links, newest first, and the form to make one.
pub async fn list(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Links).await?;
    let page_no = req
        .query("page")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let page = links_page(state, &who, page_no, None, LinkForm::default()).await?;
    Ok(response::html(StatusCode::OK, render(&page)))
}

async fn links_page(
    state: &State,
    who: &crate::auth::Principal,
    page_no: u64,
    error: Option<String>,
    form: LinkForm,
) -> Result<LinksPage, AppError> {
    let offset = (page_no - 1).saturating_mul(PER_PAGE);
    let (found, total) = blocking(&state.store, move |s| s.links(offset, PER_PAGE)).await?;
    let now = crate::now();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let link = |p: u64| format!("/+links?page={p}");
    Ok(LinksPage {
        nav: Nav::new(&state.config.site_name, who),
        links: found
            .iter()
            .map(|(l, used)| LinkView::new(l, *used, now))
            .collect(),
        total,
        page: page_no,
        pages,
        prev: (page_no > 1).then(|| link(page_no - 1)),
        next: (page_no < pages).then(|| link(page_no + 1)),
        can_notify: can_notify(state),
        error,
        form,
    })
}

/// `POST /+links`: makes a link and shows its URL (the only time it is shown).
pub async fn create(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Links).await?;
    let base = state.config.public_url.clone();
    let ip = req.client_ip.to_string();
    let form = small_form(req, FORM_LIMIT).await?;
    let get = |k: &str| form_value(&form, k).unwrap_or("").to_string();
    let sent = LinkForm {
        reference: get("reference"),
        note: get("note"),
        expires: get("expires"),
        max_size: get("max_size"),
        max_files: get("max_files"),
        notify: get("notify"),
    };
    let parsed = LinkRequest {
        reference: &sent.reference,
        note: Some(&sent.note),
        expires: Some(&sent.expires),
        max_size: Some(&sent.max_size),
        max_files: Some(&sent.max_files),
        notify: Some(&sent.notify),
    }
    .parse(crate::now())
    .and_then(|new| {
        if !new.notify.is_empty() && !can_notify(state) {
            return Err(links::LinkError::NoEmailChannel);
        }
        Ok(new)
    });
    let new = match parsed {
        Ok(new) => new,
        Err(e) => {
            let page = links_page(state, &who, 1, Some(e.to_string()), sent).await?;
            return Ok(response::html(StatusCode::BAD_REQUEST, render(&page)));
        }
    };
    let by = who.label_or_anonymous().to_string();
    let audit = state.audit.clone();
    let (link, token) = on_store(state, move |s| {
        links::create(s, &audit, &new, &by, &ip, crate::now())
    })
    .await?;
    tracing::info!(link = link.id, case = %link.reference, "upload link created");
    let url = format!("{base}/u/{token}");
    let mut page = link_page(state, &who, link.id).await?;
    page.new_url = Some(url);
    let mut resp = response::html(StatusCode::CREATED, render(&page));
    // The page holds a credential: no cache may keep it.
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// Runs a link operation (which uses the store and the audit trail) on the blocking pool.
async fn on_store<T, F>(state: &State, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&dyn crate::store::MetaStore) -> Result<T, links::LinkError> + Send + 'static,
{
    let store = std::sync::Arc::clone(&state.store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| AppError::Internal(format!("link task: {e}")))?
        .map_err(AppError::from)
}

/// The link id in `/+links/<id>[/revoke]`.
async fn link_page(
    state: &State,
    who: &crate::auth::Principal,
    id: i64,
) -> Result<LinkPage, AppError> {
    let (link, used, arrivals) = blocking(&state.store, move |s| {
        let Some(link) = s.link(id)? else {
            return Ok(None);
        };
        Ok(Some((link, s.link_usage(id)?, s.link_items(id, ARRIVALS)?)))
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let admin = who.can(Permission::Admin);
    // Locked and quarantined items stay hidden from those who may not see them in the
    // listing either.
    let arrivals: Vec<_> = arrivals
        .into_iter()
        .filter(|(it, _)| {
            admin || !(it.locked || matches!(it.scan, Some(crate::scan::ScanState::Infected(_))))
        })
        .collect();
    let items: Vec<_> = arrivals.iter().map(|(it, _)| it.clone()).collect();
    let views = item_views(state, &items).await?;
    let host = state.config.public_url.clone();
    Ok(LinkPage {
        nav: Nav::new(&state.config.site_name, who),
        link: LinkView::new(&link, used, crate::now()),
        new_url: None,
        arrivals: views
            .into_iter()
            .zip(
                arrivals
                    .iter()
                    .map(|(_, d)| d.map(|t| format_time(Some(t))).unwrap_or_default()),
            )
            .collect(),
        can_revoke: who.can(Permission::Links),
        host,
    })
}

/// `GET /+links/<id>`: the link and what arrived through it.
pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Links).await?;
    let id = path_id(&req)?;
    let page = link_page(state, &who, id).await?;
    Ok(response::html(StatusCode::OK, render(&page)))
}

/// `POST /+links/<id>/revoke`: from now on the URL answers `410 Gone`, also to uploads in
/// progress.
pub async fn revoke(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Links).await?;
    let id = path_id(&req)?;
    let by = who.label_or_anonymous().to_string();
    let ip = req.client_ip.to_string();
    let audit = state.audit.clone();
    let revoked = on_store(state, move |s| {
        links::revoke(s, &audit, id, &by, &ip, crate::now())
    })
    .await?;
    if revoked {
        tracing::info!(link = id, "upload link revoked");
        cancel_uploads(state, id).await?;
    }
    Ok(response::redirect(
        StatusCode::SEE_OTHER,
        &format!("/+links/{id}"),
    ))
}

/// `GET /u/<token>`: the customer's upload page, without any login.
pub async fn upload_page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = principal(state, &req).await?;
    let link = who.link.clone().ok_or(AppError::NotFound)?;
    link.usable(crate::now(), true)?;
    let id = link.id;
    let used = blocking(&state.store, move |s| s.link_usage(id)).await?;
    let token = access::path_token(req.uri.path())
        .ok_or(AppError::NotFound)?
        .to_string();
    let mut form = super::index::upload_form(state, format!("/u/{token}"));
    form.bearer = Some(token.clone());
    form.fixed_reference = Some(link.reference.clone());
    let mut nav = Nav::new(&state.config.site_name, &who);
    // The link grants uploads here only: no menu of pages it cannot open.
    nav.can_create = false;
    let page = LinkUploadPage {
        nav,
        reference: link.reference.clone(),
        note: link.note.clone().unwrap_or_default(),
        limits: link_limits(&link),
        expires: format_time(link.expires_at),
        sent: format!("{} file(s), {}", used.files, human_size(used.bytes)),
        token,
        public_url: state.config.public_url.clone(),
        form,
    };
    let mut resp = response::html(StatusCode::OK, render(&page));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    // The token is in the URL: never send it on in a Referer.
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

/// A revoked link's uploads still in progress can never finish (every request of theirs now
/// gets 410): their partial bytes go at once rather than wait for the idle-upload sweeper.
async fn cancel_uploads(state: &State, id: i64) -> Result<(), AppError> {
    let items = blocking(&state.store, move |s| s.link_items(id, u64::MAX)).await?;
    for (item, _) in items
        .iter()
        .filter(|(i, deleted)| deleted.is_none() && i.state != ItemState::Complete)
    {
        if state.delete_item(&item.name, "link revoked").await? {
            tracing::info!(link = id, item = %item.name, "cancelled an upload of a revoked link");
        }
    }
    Ok(())
}
