//! Static assets, embedded in the binary.

use crate::server::{AppError, Request, Response, response};
use http::{HeaderValue, StatusCode, header};

const CSS: &str = include_str!("../../assets/sfx.css");

/// The asset's canonical name, if we have it.
pub fn find(file: &str) -> Option<&'static str> {
    match file {
        "sfx.css" => Some("sfx.css"),
        _ => None,
    }
}

pub fn serve(file: &'static str, _req: &Request) -> Result<Response, AppError> {
    let (body, content_type) = match file {
        "sfx.css" => (CSS, "text/css; charset=utf-8"),
        _ => return Err(AppError::NotFound),
    };
    let mut resp = response::text(StatusCode::OK, body.to_string());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(resp)
}
