//! `GET /readyz`: whether this instance should get traffic now (a load balancer's question):
//! the metadata store answers, there is room for uploads, and it is not shutting down.
//! `GET /healthz`: the metadata store answers, the data directory has room, and alerts are
//! getting through (none failing for `alert_degraded_after`, none given up within
//! `alert_retry_for`). 503 only when the store is down; otherwise `degraded` says what is wrong.

use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::blocking;
use http::StatusCode;

pub async fn check(state: &State, _req: Request) -> Result<Response, AppError> {
    let retry_for = i64::try_from(state.config.alert_retry_for.as_secs()).unwrap_or(i64::MAX);
    let since = crate::now().saturating_sub(retry_for);
    let trouble = blocking(&state.store, move |s| {
        s.ping()?;
        s.alert_trouble(since)
    })
    .await;
    let store_ok = trouble.is_ok();
    let space_ok = has_room(state);
    let threshold = i64::try_from(state.config.alert_degraded_after.as_secs()).unwrap_or(i64::MAX);
    // Failing for too long, or given up recently (support never heard of that delivery).
    let alerts = match trouble {
        Ok((_, gave_up)) if gave_up > 0 => "failed",
        Ok((Some(failing_since), _)) if crate::now() - failing_since >= threshold => "failing",
        _ => "ok",
    };
    let alerts_ok = alerts == "ok";
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let overall = match (store_ok, space_ok && alerts_ok) {
        (false, _) => "down",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let body = serde_json::json!({
        "status": overall,
        "store": if store_ok { "ok" } else { "unavailable" },
        "disk": if space_ok { "ok" } else { "low" },
        "alerts": alerts,
    });
    Ok(response::json(status, &body))
}

pub async fn ready(state: &State, _req: Request) -> Result<Response, AppError> {
    let draining = state.draining.load(std::sync::atomic::Ordering::Acquire);
    let store_ok = blocking(&state.store, |s| s.ping()).await.is_ok();
    let space_ok = has_room(state);
    let ready = store_ok && space_ok && !draining;
    let why = if draining {
        "shutting down"
    } else if !store_ok {
        "the metadata store is unavailable"
    } else if !space_ok {
        "not enough free space for uploads"
    } else {
        "ready"
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "reason": why });
    let mut resp = response::json(status, &body);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The data directory has at least `min_free_space` left (room for uploads).
fn has_room(state: &State) -> bool {
    state
        .blobs
        .free_space_now()
        .is_ok_and(|f| f >= state.config.min_free_space)
}
