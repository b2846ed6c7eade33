//! `GET /apis/rest/items`: every item as one JSON object, streamed page by page so memory
//! stays flat (the `/+list` page is in [`super::console`]).

use super::require;
use super::rest::item_json;
use crate::auth::Permission;
use crate::items::ItemName;
use crate::server::{AppError, Request, Response};
use crate::state::State;
use crate::store::{MetaStore, blocking};
use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, StreamBody};
use std::sync::Arc;

const EXPORT_PAGE: u64 = 1000;

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
