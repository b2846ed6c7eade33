//! Static assets, embedded in the binary: the stylesheet, the upload page's scripts and the
//! vendored browser libraries (`assets/vendor/`, copied from npm by `scripts/vendor-assets.sh`).
//! Nothing is fetched from elsewhere at run time.

use crate::server::{AppError, Request, Response, response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// (name under `/+static/`, body, content type).
const ASSETS: [(&str, &str, &str); 6] = [
    ("sfx.css", include_str!("../../assets/sfx.css"), CSS),
    ("upload.js", include_str!("../../assets/upload.js"), JS),
    ("console.js", include_str!("../../assets/console.js"), JS),
    (
        "sha256-worker.js",
        include_str!("../../assets/sha256-worker.js"),
        JS,
    ),
    (
        "tus.min.js",
        include_str!("../../assets/vendor/tus.min.js"),
        JS,
    ),
    (
        "sha256.umd.min.js",
        include_str!("../../assets/vendor/sha256.umd.min.js"),
        JS,
    ),
];

/// A Web Worker runs under the policy delivered with its own script, not the page's: the
/// scripts carry one that lets the hashing worker load its library and compile its wasm, and
/// nothing else.
const SCRIPT_CSP: &str =
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'";

/// The asset's canonical name, if we have it.
pub fn find(file: &str) -> Option<&'static str> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|a| a.0)
}

pub fn serve(file: &'static str, _req: &Request) -> Result<Response, AppError> {
    let Some(&(_, body, content_type)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return Err(AppError::NotFound);
    };
    let mut resp = response::text(StatusCode::OK, String::new());
    *resp.body_mut() = response::full(Bytes::from_static(body.as_bytes()));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    if content_type == JS {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SCRIPT_CSP),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_by_name() {
        for (name, body, _) in ASSETS {
            assert_eq!(find(name), Some(name));
            assert!(!body.is_empty(), "{name}");
        }
        assert_eq!(find("../sfx.css"), None);
        assert_eq!(find("VERSIONS"), None);
    }
}
