//! `GET /healthz`: the metadata store answers, the data directory has room, and alerts are
//! getting through. 503 only when the store is down; otherwise `degraded` names what is wrong.

use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::blocking;
use http::StatusCode;

pub async fn check(state: &State, _req: Request) -> Result<Response, AppError> {
    let failing_since = blocking(&state.store, |s| {
        s.ping()?;
        s.failing_since()
    })
    .await;
    let store_ok = failing_since.is_ok();
    let space_ok = state
        .blobs
        .free_space()
        .is_ok_and(|f| f >= state.config.min_free_space);
    let threshold = i64::try_from(state.config.alert_degraded_after.as_secs()).unwrap_or(i64::MAX);
    let alerts_ok = match failing_since {
        Ok(Some(since)) => crate::now() - since < threshold,
        _ => true,
    };
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
        "alerts": if alerts_ok { "ok" } else { "failing" },
    });
    Ok(response::json(status, &body))
}
