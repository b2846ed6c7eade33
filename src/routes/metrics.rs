//! `GET /metrics`: the Prometheus metrics ([`crate::metrics`]), with the gauges read from the
//! live state now. Served on `metrics_listen` to anyone who can reach it (an internal address),
//! and on the main listener only when `metrics_token` is set: then to `Authorization: Bearer
//! <metrics_token>` or an admin's credentials. Anything else presented there is checked as a
//! secret (so guessing counts towards the lockout); no credentials at all get 403.

use super::require;
use crate::auth::{Permission, parse_authorization};
use crate::metrics::{self, Snapshot};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::blocking;
use http::{HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

/// `GET /metrics` on the main listener.
pub async fn guarded(state: &State, req: Request) -> Result<Response, AppError> {
    let Some(token) = &state.config.metrics_token else {
        return Err(AppError::NotFound);
    };
    let presented = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_authorization(v.as_bytes()).ok().flatten());
    let is_token = presented
        .as_deref()
        .is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.as_bytes())));
    if !is_token {
        require(state, &req, Permission::Admin).await?;
    }
    Ok(scrape(state).await)
}

/// The metrics, as text.
pub async fn scrape(state: &State) -> Response {
    let snapshot = snapshot(state).await;
    let mut resp = response::text(StatusCode::OK, metrics::encode(&snapshot));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn snapshot(state: &State) -> Snapshot {
    let now = crate::now();
    let store = blocking(&state.store, |s| {
        Ok((s.live_count()?, s.live_size()?, s.alert_backlog()?))
    })
    .await;
    let blobs = state.blobs.clone();
    let free = tokio::task::spawn_blocking(move || blobs.free_space_now().ok())
        .await
        .ok()
        .flatten();
    let (items, bytes, backlog) = match store {
        Ok((items, bytes, backlog)) => (Some(items), Some(bytes), Some(backlog)),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store is unavailable");
            (None, None, None)
        }
    };
    Snapshot {
        uploads_active: state.uploads.running() as u64,
        alerts_pending: backlog.map(|(n, _)| n),
        alert_oldest_pending_age: backlog
            .map(|(_, oldest)| oldest.map_or(0, |at| u64::try_from(now - at).unwrap_or(0))),
        store_items: items,
        store_bytes: bytes,
        disk_free_bytes: free,
        disk_min_free_bytes: state.config.min_free_space,
    }
}
