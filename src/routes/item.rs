//! The item page `/<name>` (its metadata and its history from the audit trail) and
//! `POST /<name>/+delete`.

use super::{Use, checked_item, form_value, require, safe_next, small_form, visible_item};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Permission;
use crate::pages::{ItemPage, Nav, render};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{AuditQuery, blocking};
use http::StatusCode;

/// Audit records shown on an item's page (the rest are on `/+audit` for admins).
const HISTORY: u64 = 50;

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let name = req.item_name()?;
    let item = visible_item(state, &name, &who).await?;
    let view = super::item_views(state, std::slice::from_ref(&item))
        .await?
        .pop();
    let query = AuditQuery {
        item: Some(name.to_string()),
        limit: HISTORY,
        ..AuditQuery::default()
    };
    let history = blocking(&state.store, move |s| s.audit_page(&query)).await?;
    let history_more = (history.older && who.can(Permission::Admin)).then(|| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("item", name.as_str());
        format!("/+audit?{}", q.finish())
    });
    let page = ItemPage {
        nav: Nav::new(&state.config.site_name, &who),
        it: view.ok_or_else(|| AppError::Internal("item view".into()))?,
        can_delete: who.can(Permission::Delete),
        history: history.records,
        history_total: history.total,
        history_more,
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
