//! One request: refuses framing and header tricks before anything else, routes it, and adds
//! the headers every answer carries.

use super::request::accepts_json;
use super::{AppError, ErrorFormat, Request, Response, router};
use crate::client::{client_ip, forwarded_https};
use crate::state::State;
use http::{HeaderMap, HeaderValue, header};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Headers that must appear at most once: a second copy is either an attack (smuggling,
/// credential confusion) or a broken client, and which copy wins is never guessed.
const SINGLE: [&str; 17] = [
    "authorization",
    "content-type",
    "content-range",
    "content-filename",
    "content-disposition",
    "transaction-id",
    "host",
    "range",
    "x-forwarded-proto",
    // The resumable protocols' (tus, IETF draft).
    "tus-resumable",
    "upload-offset",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-checksum",
    "upload-complete",
    "upload-draft-interop-version",
];

pub(super) async fn handle(
    state: Arc<State>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let error_format = error_format(&path, &parts.headers);
    let method = parts.method.clone();
    let trusted = &state.config.trusted_proxies;
    let client = client_ip(peer.ip(), &parts.headers, trusted);
    let secure = tls || forwarded_https(peer.ip(), &parts.headers, trusted);
    let request_id = request_id(&parts.headers, peer.ip(), trusted);
    // Every log line of this request carries its id (the JSON log's span field).
    let span = tracing::info_span!("request", request_id = %request_id);
    let (route_name, traffic, result) = async {
        match refuse_tricks(&parts.headers).and_then(|()| router::resolve(&parts.method, &path)) {
            Ok((route, name)) => {
                let req = Request {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                    client_ip: client,
                    secure,
                    name,
                };
                let traffic = router::traffic(route, &req);
                crate::metrics::request_started(traffic);
                (
                    route.name(),
                    traffic,
                    router::dispatch(&state, route, req).await,
                )
            }
            Err(e) => ("-", crate::metrics::Traffic::Other, Err(e)),
        }
    }
    .instrument(span.clone())
    .await;
    let mut resp = result.unwrap_or_else(|e| e.into_response_as(error_format));
    if is_tus(&path) {
        let version = HeaderValue::from_static(crate::routes::tus::VERSION);
        // tus: on every answer, errors included; a 412 names the versions we speak.
        if resp.status() == http::StatusCode::PRECONDITION_FAILED {
            resp.headers_mut().insert("tus-version", version.clone());
        }
        resp.headers_mut().insert("tus-resumable", version);
    }
    if method == http::Method::HEAD {
        without_body(&mut resp);
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on our own
    // form posts, which the cross-site check must refuse.
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::VARY)
        .or_insert(HeaderValue::from_static("Cookie"));
    if secure {
        // No includeSubDomains: other hosts of the vendor's domain may not be on HTTPS.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    crate::metrics::request_answered(route_name, traffic, resp.status().as_u16());
    // The query string is never logged: it may carry a `token`.
    let _entered = span.enter();
    tracing::info!(
        %peer, %client, %method, path = ?path, route = route_name, status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "request"
    );
    resp
}

/// The request's id: a trusted proxy's `X-Request-Id` (so one id follows a request through
/// both), if it is short and plain; else a new one, unique in this process.
fn request_id(headers: &HeaderMap, peer: std::net::IpAddr, trusted: &[ipnet::IpNet]) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if crate::client::is_trusted_proxy(peer, trusted)
        && let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return id.to_string();
    }
    // A random prefix per process: ids of two runs (or instances) do not collide.
    let prefix = *PREFIX.get_or_init(|| {
        let mut raw = [0u8; 4];
        let _ = getrandom::fill(&mut raw);
        u32::from_be_bytes(raw)
    });
    format!("{prefix:08x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn error_format(path: &str, headers: &HeaderMap) -> ErrorFormat {
    let p = path.trim_start_matches('/');
    if p.starts_with("apis/") || accepts_json(headers) {
        ErrorFormat::Json
    } else if is_tus(path)
        || p.starts_with("+resumable/")
        || p.starts_with("+upload/")
        // `PUT /u/<token>/<filename>`, curl's like `PUT /+upload/<filename>`.
        || p.strip_prefix("u/").is_some_and(|rest| rest.contains('/'))
    {
        ErrorFormat::Text
    } else {
        ErrorFormat::Html
    }
}

fn is_tus(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p == "+tus" || p.starts_with("+tus/")
}

/// A HEAD answer carries the GET answer's headers and no body (over HTTP/2 a body would be a
/// protocol error for the client).
fn without_body(resp: &mut Response) {
    use hyper::body::Body as _;
    if !resp.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(len) = resp.body().size_hint().exact()
    {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = super::response::empty();
}

/// Framing and header tricks, refused before routing so that no handler ever sees them.
fn refuse_tricks(headers: &HeaderMap) -> Result<(), AppError> {
    // hyper reads `gzip, chunked` as chunked and hands us still-gzipped bytes: a coding that
    // is not applied must not be accepted (RFC 9112 §6.1).
    let codings: Vec<String> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if !codings.is_empty() && codings != ["chunked"] {
        return Err(AppError::NotImplemented(format!(
            "Transfer-Encoding `{}` is not supported; send the body plain or chunked",
            codings.join(", ")
        )));
    }
    for name in SINGLE {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(AppError::BadRequest(format!(
                "the {name} header appears more than once"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn tricks() {
        assert!(refuse_tricks(&with(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(refuse_tricks(&with(&[("transfer-encoding", "Chunked")])).is_ok());
        for bad in ["gzip, chunked", "chunked, chunked", "identity", "gzip"] {
            assert!(
                matches!(
                    refuse_tricks(&with(&[("transfer-encoding", bad)])),
                    Err(AppError::NotImplemented(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            refuse_tricks(&with(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])),
            Err(AppError::NotImplemented(_))
        ));
        assert!(matches!(
            refuse_tricks(&with(&[
                ("authorization", "Basic a"),
                ("authorization", "Basic b")
            ])),
            Err(AppError::BadRequest(_))
        ));
        assert!(refuse_tricks(&with(&[("cookie", "a=1"), ("cookie", "b=2")])).is_ok());
    }
}
