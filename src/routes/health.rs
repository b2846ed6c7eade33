//! `GET /healthz`: the metadata store answers and the data directory has room.

use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::blocking;
use http::StatusCode;

pub async fn check(state: &State, _req: Request) -> Result<Response, AppError> {
    let store_ok = blocking(&state.store, |s| s.ping()).await.is_ok();
    let free = state.blobs.free_space().ok();
    let space_ok = free.is_some_and(|f| f >= state.config.min_free_space);
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if !store_ok { "down" } else if !space_ok { "degraded" } else { "ok" },
        "store": if store_ok { "ok" } else { "unavailable" },
        "disk": if space_ok { "ok" } else { "low" },
    });
    Ok(response::json(status, &body))
}
