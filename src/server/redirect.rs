//! `redirect_http_from`: a plain-HTTP listener that answers every request with `308` to the same
//! path on HTTPS. The body is never read, and says why: an upload sent there is refused loudly,
//! never silently lost (curl without `-L` prints this text).

use super::response::{self, Response};
use crate::state::State;
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;

pub(super) fn answer(state: &State, req: &http::Request<Incoming>, https_port: u16) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    // A default public_url is the bound address (perhaps 0.0.0.0): only a configured one names
    // the host customers use.
    let configured =
        (!state.config.public_url_is_default).then_some(state.config.public_url.as_str());
    let target = match target_base(configured, host, https_port) {
        Some(base) => format!("{base}{path}"),
        None => {
            return response::text(
                StatusCode::BAD_REQUEST,
                "this server only accepts HTTPS; send the request there (nothing was stored)\n"
                    .into(),
            );
        }
    };
    let mut resp = response::text(
        StatusCode::PERMANENT_REDIRECT,
        format!("this server only accepts HTTPS: use {target} (nothing was stored)\n"),
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&target) {
        h.insert(header::LOCATION, v);
    }
    // The body of an upload is not read: the connection cannot be reused.
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    tracing::info!(path = ?req.uri().path(), "redirected to HTTPS");
    resp
}

/// `https://host[:port]`: the configured `public_url` when it is HTTPS, else the request's
/// host name (if it is a plain host name, never anything that could smuggle a URL) with the
/// HTTPS port.
fn target_base(public_url: Option<&str>, host: Option<&str>, https_port: u16) -> Option<String> {
    if let Some(url) = public_url.filter(|u| u.starts_with("https://")) {
        return Some(url.trim_end_matches('/').to_string());
    }
    let host = host?;
    // The host without its port: `name:80`, `[v6]:80`.
    let name = match host.strip_prefix('[') {
        Some(v6) => &host[..v6.find(']')? + 2],
        None => host.split(':').next().unwrap_or(host),
    };
    let clean = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !clean {
        return None;
    }
    Some(match https_port {
        443 => format!("https://{name}"),
        p => format!("https://{name}:{p}"),
    })
}

#[cfg(test)]
mod tests {
    use super::target_base;

    #[test]
    fn targets() {
        assert_eq!(
            target_base(Some("https://sfx.example.com/"), Some("evil"), 8443).unwrap(),
            "https://sfx.example.com"
        );
        assert_eq!(
            target_base(Some("http://127.0.0.1:8000"), Some("sfx.example.com"), 443).unwrap(),
            "https://sfx.example.com"
        );
        assert_eq!(
            target_base(Some("http://x"), Some("sfx.example.com:80"), 8443).unwrap(),
            "https://sfx.example.com:8443"
        );
        assert_eq!(
            target_base(Some("http://x"), Some("[::1]:80"), 8443).unwrap(),
            "https://[::1]:8443"
        );
        assert_eq!(target_base(Some("http://x"), Some("a/b@evil"), 443), None);
        assert_eq!(target_base(Some("http://x"), None, 443), None);
        assert_eq!(
            target_base(None, Some("sfx.example.com"), 443).unwrap(),
            "https://sfx.example.com",
            "an unconfigured public_url (the bound address) is not used"
        );
    }
}
