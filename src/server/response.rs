//! Response bodies and the few response shapes every handler uses.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use serde::Serialize;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Response = http::Response<Body>;

/// Pages load nothing from elsewhere, run no script and cannot be framed.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn with_body(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An answer with only a status and headers.
pub fn empty_status(status: StatusCode) -> Response {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

pub fn html(status: StatusCode, page: String) -> Response {
    let mut resp = with_body(status, "text/html; charset=utf-8", full(page));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // Serializing our own plain structs cannot fail; an empty object is the safe fallback.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    with_body(status, "application/json", full(body))
}

pub fn text(status: StatusCode, message: String) -> Response {
    with_body(status, "text/plain; charset=utf-8", full(message))
}

/// A redirect; `location` must already be a safe, encoded URL (we only build relative paths).
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut resp = http::Response::new(empty());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
