//! `GET /+audit`: the audit trail for admins, newest first, filtered by item, secret label or
//! event kind, paged by record id. HTML, or JSON for `Accept: application/json`.

use super::require;
use crate::audit::Kind;
use crate::auth::Permission;
use crate::pages::{AuditPage, AuditRow, Nav, render};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{AuditQuery, blocking};
use http::StatusCode;

const PER_PAGE: u64 = 100;
const MAX_PER_PAGE: u64 = 1000;

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Admin).await?;
    let filter = |key: &str| {
        let v: String = req.query(key)?.trim().chars().take(300).collect();
        (!v.is_empty()).then_some(v)
    };
    let id = |key: &str| req.query(key).and_then(|v| v.parse::<i64>().ok());
    let per_page = req
        .query("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let query = AuditQuery {
        item: filter("item"),
        label: filter("label"),
        kind: filter("kind"),
        before: id("before"),
        after: id("after"),
        limit: per_page,
    };
    let q = query.clone();
    let page = blocking(&state.store, move |s| s.audit_page(&q)).await?;
    // Links keep the filters and move past the ends of this page.
    let link = |key: &str, at: i64| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("item", &query.item),
            ("label", &query.label),
            ("kind", &query.kind),
        ] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        if per_page != PER_PAGE {
            s.append_pair("per_page", &per_page.to_string());
        }
        s.append_pair(key, &at.to_string());
        format!("/+audit?{}", s.finish())
    };
    let newer = page
        .records
        .first()
        .map(|r| r.id)
        .or(query.before.map(|b| b - 1))
        .filter(|_| page.newer)
        .map(|id| link("after", id));
    let older = page
        .records
        .last()
        .map(|r| r.id)
        .or(query.after.map(|a| a + 1))
        .filter(|_| page.older)
        .map(|id| link("before", id));
    if req.wants_json() {
        return Ok(response::json(
            StatusCode::OK,
            &serde_json::json!({
                "records": page.records,
                "total": page.total,
                "newer": newer,
                "older": older,
            }),
        ));
    }
    let kind = query.kind.clone().unwrap_or_default();
    let view = AuditPage {
        nav: Nav::new(&state.config.site_name, &who),
        kinds: Kind::ALL
            .iter()
            .map(|k| (k.as_str(), k.as_str() == kind))
            .collect(),
        rows: page.records.into_iter().map(AuditRow::from).collect(),
        item: query.item.unwrap_or_default(),
        label: query.label.unwrap_or_default(),
        kind,
        total: page.total,
        newer,
        older,
    };
    Ok(response::html(StatusCode::OK, render(&view)))
}
