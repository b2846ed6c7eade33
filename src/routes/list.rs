//! Operator listings: the `/+list` page (paginated, searchable) and `GET /apis/rest/items`
//! (every item as one JSON object, streamed page by page so memory stays flat).

use super::require;
use super::rest::item_json;
use crate::auth::Permission;
use crate::items::ItemName;
use crate::pages::{ListPage, Nav, render};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ListQuery, MetaStore, blocking};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use std::sync::Arc;

const PER_PAGE: u64 = 50;
const MAX_PER_PAGE: u64 = 500;
const EXPORT_PAGE: u64 = 1000;

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::List).await?;
    let search = req
        .query("q")
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let per_page = req
        .query("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page_no = req
        .query("page")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let query = ListQuery {
        include_locked: who.can(Permission::Admin),
        search: Some(search.clone()).filter(|s| !s.is_empty()),
        offset: (page_no - 1).saturating_mul(per_page),
        limit: per_page,
    };
    let result = blocking(&state.store, move |s| s.list(&query)).await?;
    let pages = result.total.div_ceil(per_page).max(1);
    let link = |p: u64| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !search.is_empty() {
            q.append_pair("q", &search);
        }
        if per_page != PER_PAGE {
            q.append_pair("per_page", &per_page.to_string());
        }
        q.append_pair("page", &p.to_string());
        format!("/+list?{}", q.finish())
    };
    let page = ListPage {
        nav: Nav::new(&state.config.site_name, &who),
        items: super::item_views(state, &result.items).await?,
        total: result.total,
        page: page_no,
        pages,
        prev: (page_no > 1).then(|| link(page_no - 1)),
        next: (page_no < pages).then(|| link(page_no + 1)),
        can_read: who.can(Permission::Read),
        can_delete: who.can(Permission::Delete),
        search,
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

pub async fn api_items(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::List).await?;
    let include_locked = who.can(Permission::Admin);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(export(Arc::clone(&state.store), include_locked, tx));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (chunk.map(hyper::body::Frame::data), rx))
    });
    let mut resp = http::Response::new(StreamBody::new(frames).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Sends `{"<name>": {...}, ...}` a page at a time; only the page query uses a blocking thread,
/// never the wait for a slow reader. A store error mid-way ends the body with an error, so the
/// client sees a broken transfer, not truncated JSON.
async fn export(
    store: Arc<dyn MetaStore>,
    include_locked: bool,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut after: Option<ItemName> = None;
    let mut first = true;
    if tx.send(Ok(Bytes::from_static(b"{"))).await.is_err() {
        return;
    }
    let now = crate::now();
    loop {
        let from = after.clone();
        let page = match blocking(&store, move |s| {
            s.list_by_name(from.as_ref(), EXPORT_PAGE, include_locked)
        })
        .await
        {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        };
        let mut chunk = Vec::with_capacity(page.len() * 400);
        for item in page.iter().filter(|i| !i.is_expired(now)) {
            if !first {
                chunk.push(b',');
            }
            first = false;
            // Names are from our alphabet: no escaping needed for the key.
            chunk.extend_from_slice(format!("\"{}\":", item.name).as_bytes());
            chunk.extend_from_slice(item_json(item).to_string().as_bytes());
        }
        let done = (page.len() as u64) < EXPORT_PAGE;
        after = page.last().map(|i| i.name.clone());
        if done {
            chunk.push(b'}');
        }
        if tx.send(Ok(chunk.into())).await.is_err() || done {
            return;
        }
    }
}
