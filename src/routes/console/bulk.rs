//! `POST /+delete` with many `name`s: first a page that lists what would be deleted (a form
//! cannot ask "are you sure?" without JavaScript), then, with `confirm=yes`, the deletion of
//! each, audited one by one, and back to the list it came from.

use super::{FORM_LIMIT, names};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Permission;
use crate::pages::{BulkDeletePage, Nav, render};
use crate::routes::{Use, checked_item, form_value, item_views, require, safe_next, small_form};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use http::StatusCode;

pub async fn delete(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Delete).await?;
    let client_ip = req.client_ip;
    let form = small_form(req, FORM_LIMIT).await?;
    let wanted = names(&form)?;
    let next = safe_next(form_value(&form, "next")).unwrap_or_else(|| "/+list".into());
    // Only what this principal may manage; anything else (gone meanwhile, locked for a
    // non-admin) is counted, never named.
    let mut items = Vec::with_capacity(wanted.len());
    for name in &wanted {
        match checked_item(state, name, &who, Use::Manage).await {
            Ok(item) => items.push(item),
            Err(AppError::NotFound | AppError::Forbidden(_) | AppError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if form_value(&form, "confirm") != Some("yes") {
        let page = BulkDeletePage {
            nav: Nav::new(&state.config.site_name, &who),
            missing: wanted.len() - items.len(),
            items: item_views(state, &items).await?,
            next,
        };
        return Ok(response::html(StatusCode::OK, render(&page)));
    }
    let by = who.label_or_anonymous();
    let mut deleted = 0u64;
    for item in items {
        if state.delete_item(&item.name, by).await? {
            deleted += 1;
            let event = AuditEvent::new(Kind::Delete, client_ip, by);
            state
                .audit
                .record(
                    event
                        .item(&item.name)
                        .detail(format!("{} (bulk delete)", item.filename)),
                )
                .await;
        }
    }
    let sep = if next.contains('?') { '&' } else { '?' };
    Ok(response::redirect(
        StatusCode::SEE_OTHER,
        &format!("{next}{sep}deleted={deleted}"),
    ))
}
