//! The item page `/<name>` and `POST /<name>/+delete`.

use super::{Use, checked_item, form_value, require, safe_next, small_form, visible_item};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Permission;
use crate::pages::{ItemPage, Nav, render};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use http::StatusCode;

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let name = req.item_name()?;
    let item = visible_item(state, &name, &who).await?;
    let view = super::item_views(state, std::slice::from_ref(&item))
        .await?
        .pop();
    let page = ItemPage {
        nav: Nav::new(&state.config.site_name, &who),
        it: view.ok_or_else(|| AppError::Internal("item view".into()))?,
        can_delete: who.can(Permission::Delete),
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

pub async fn delete(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Delete).await?;
    let name = req.item_name()?;
    let json = req.wants_json();
    let item = checked_item(state, &name, &who, Use::Manage).await?;
    let event = AuditEvent::new(Kind::Delete, req.client_ip, who.label_or_anonymous());
    let form = small_form(req, 8 * 1024).await?;
    if state.delete_item(&name, who.label_or_anonymous()).await? {
        state
            .audit
            .record(event.item(&name).detail(item.filename))
            .await;
    }
    if json {
        return Ok(response::json(StatusCode::OK, &serde_json::json!({})));
    }
    let next = safe_next(form_value(&form, "next")).unwrap_or_else(|| "/+list".into());
    Ok(response::redirect(StatusCode::FOUND, &next))
}
