//! `GET /+deliveries` (newest first, with each channel's alert state), `/+deliveries/<id>`
//! (the files of one delivery as its alert described them, and what became of each channel's
//! alert) and `/+deliveries/<id>/zip` (its files as one ZIP).

use super::filters::PER_PAGE;
use super::zip;
use crate::auth::{Permission, Principal};
use crate::pages::{DeliveriesPage, DeliveryPage, DeliveryView, Nav, render};
use crate::routes::download::scan_allows;
use crate::routes::{item_views, path_id, require};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Delivery, DeliverySummary, Item, ItemState, blocking};
use http::StatusCode;

pub async fn list(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::List).await?;
    let page_no = match req.query("page") {
        None => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| AppError::BadRequest("page: not a positive number".into()))?,
    };
    let admin = who.can(Permission::Admin);
    let offset = (page_no - 1).saturating_mul(PER_PAGE);
    let result = blocking(&state.store, move |s| s.deliveries(offset, PER_PAGE, admin)).await?;
    let pages = result.total.div_ceil(PER_PAGE).max(1);
    let href = |p: u64| format!("/+deliveries?page={p}");
    let page = DeliveriesPage {
        nav: Nav::new(&state.config.site_name, &who),
        deliveries: result.deliveries.iter().map(DeliveryView::from).collect(),
        total: result.total,
        page: page_no,
        pages,
        prev: (page_no > 1).then(|| href(page_no - 1)),
        next: (page_no < pages).then(|| href(page_no + 1)),
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

/// The delivery and its items this principal may see (live, complete, not expired; locked and
/// quarantined ones for admins only).
async fn visible(
    state: &State,
    req: &Request,
    who: &Principal,
) -> Result<(Delivery, Vec<Item>), AppError> {
    let id = path_id(req)?;
    let delivery = blocking(&state.store, move |s| s.delivery(id))
        .await?
        .ok_or(AppError::NotFound)?;
    let admin = who.can(Permission::Admin);
    let now = crate::now();
    let items = delivery
        .items
        .iter()
        .filter(|i| !delivery.deleted.contains(&i.name.to_string()))
        .filter(|i| i.state == ItemState::Complete && !i.is_expired(now))
        .filter(|i| admin || !(i.locked || i.is_infected()))
        .cloned()
        .collect();
    Ok((delivery, items))
}

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::List).await?;
    let (delivery, items) = visible(state, &req, &who).await?;
    let id = delivery.id;
    let (status, alerts) = blocking(&state.store, move |s| s.delivery_alerts(id)).await?;
    let summary = DeliverySummary {
        id,
        uploader: delivery.uploader.clone(),
        reference: delivery.reference.clone(),
        opened_at: delivery.opened_at,
        closed_at: delivery.closed_at,
        files: items.len() as u64,
        bytes: items.iter().map(|i| i.size).sum(),
        deleted: delivery.deleted.len() as u64,
        status,
        alerts,
    };
    let page = DeliveryPage {
        nav: Nav::new(&state.config.site_name, &who),
        d: DeliveryView::from(&summary),
        zip_ok: !items.is_empty() && items.iter().all(|i| scan_allows(i, false).is_ok()),
        items: item_views(state, &items).await?,
        gone: delivery.deleted.clone(),
        can_read: who.can(Permission::Read),
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

pub async fn zip(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let (delivery, items) = visible(state, &req, &who).await?;
    if items.is_empty() {
        return Err(AppError::NotFound);
    }
    let override_ok = zip::override_asked(&req, &who);
    let archive = format!("delivery-{}.zip", delivery.id);
    zip::respond(state, items, &who, req.client_ip, override_ok, &archive).await
}
