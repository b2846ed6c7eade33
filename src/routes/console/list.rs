//! `GET /+list`: every filter of [`Filters`], three orders, pages, and the bulk form.

use super::filters::Filters;
use super::query_pairs;
use crate::auth::Permission;
use crate::pages::ItemView;
use crate::pages::{FilterView, ListPage, Nav, SortLink, render};
use crate::routes::rest::item_json;
use crate::routes::{item_views, require};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{Item, Sort, blocking};
use http::StatusCode;

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::List).await?;
    let pairs = query_pairs(&req);
    let f = Filters::parse(&pairs)?;
    let deleted: Option<u64> = pairs
        .iter()
        .find(|(k, _)| k == "deleted")
        .and_then(|(_, v)| v.parse().ok());
    // The filter form sends every field, empty or not: one redirect to the short form keeps
    // addresses readable and bookmarks stable (compared decoded, so it cannot loop).
    let canonical = match deleted {
        Some(n) if f.here().contains('?') => format!("{}&deleted={n}", f.here()),
        Some(n) => format!("{}?deleted={n}", f.here()),
        None => f.here(),
    };
    let decoded = |q: &str| -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    };
    let json = req.wants_json();
    if !json && decoded(canonical.split_once('?').map_or("", |(_, q)| q)) != pairs {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &canonical));
    }
    let query = f.query(who.can(Permission::Admin));
    let result = blocking(&state.store, move |s| s.list(&query)).await?;
    let pages = result.total.div_ceil(f.per_page).max(1);
    let views = item_views(state, &result.items).await?;
    if json {
        return Ok(as_json(&f, &result.items, &views, result.total, pages));
    }
    let sort_link = |label, sort| SortLink {
        label,
        href: f.sorted_by(sort),
        arrow: match (f.sort == sort, f.ascending) {
            (false, _) => "",
            (true, true) => " ▲",
            (true, false) => " ▼",
        },
    };
    let page = ListPage {
        nav: Nav::new(&state.config.site_name, &who),
        items: views,
        total: result.total,
        page: f.page,
        pages,
        prev: (f.page > 1).then(|| f.href(f.page - 1, f.sort, f.ascending)),
        next: (f.page < pages).then(|| f.href(f.page + 1, f.sort, f.ascending)),
        here: f.here(),
        by_time: sort_link("Uploaded (UTC)", Sort::Time),
        by_size: sort_link("Size", Sort::Size),
        by_name: sort_link("File", Sort::Name),
        can_read: who.can(Permission::Read),
        can_delete: who.can(Permission::Delete),
        deleted,
        f: FilterView {
            q: f.q.clone(),
            filename: f.filename.clone(),
            reference: f.reference.clone(),
            sha256: f.sha256.clone(),
            client: f.client.clone(),
            uploader: f.uploader.clone(),
            from: f.from.clone(),
            to: f.to.clone(),
            sort: f.sort.as_str(),
            order: if f.ascending { "asc" } else { "desc" },
            advanced: f.advanced(),
            filtered: f.filtered(),
        },
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

/// The same page for scripts (`Accept: application/json`): the items in order, each in the
/// REST API's shape plus its delivery and alert state, and the link to the next page.
fn as_json(f: &Filters, items: &[Item], views: &[ItemView], total: u64, pages: u64) -> Response {
    let items: Vec<serde_json::Value> = items
        .iter()
        .zip(views)
        .map(|(item, view)| {
            let mut v = item_json(item);
            v["name"] = item.name.as_str().into();
            v["delivery"] = view.delivery.into();
            v["alert"] = view.alert.clone().into();
            v
        })
        .collect();
    let body = serde_json::json!({
        "total": total,
        "page": f.page,
        "pages": pages,
        "per_page": f.per_page,
        "next": (f.page < pages).then(|| f.href(f.page + 1, f.sort, f.ascending)),
        "items": items,
    });
    response::json(StatusCode::OK, &body)
}
