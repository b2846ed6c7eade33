//! Downloads: `/<name>/+download`, `/<name>/+inline` and `/apis/rest/items/<name>/download`.
//! Streamed from the blob store, with `Range` (206/416), `If-Range`, `If-None-Match`, and headers that
//! keep a browser from ever running uploaded content.

use super::{require, visible_item};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Permission, Principal};
use crate::blobs::{BlobStore, ByteStream};
use crate::items::is_inline_safe;
use crate::scan::ScanState;
use crate::server::{AppError, Request, Response, response::Body};
use crate::state::State;
use crate::store::{Item, blocking};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Attachment,
    Inline,
}

pub async fn download(state: &State, req: Request) -> Result<Response, AppError> {
    serve(state, req, Mode::Attachment).await
}

pub async fn inline(state: &State, req: Request) -> Result<Response, AppError> {
    serve(state, req, Mode::Inline).await
}

async fn serve(state: &State, req: Request, mode: Mode) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let name = req.item_name()?;
    let item = visible_item(state, &name, &who).await?;
    let overridden = scan_gate(&item, &req, &who)?;
    // Complete items never change: their recorded size is their blob's.
    let size = item.size;
    let etag = format!("\"{}\"", item.sha256);
    let last_modified = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                item.completed_at.unwrap_or(item.created_at).max(0) as u64
            ),
    );
    let mut resp = http::Response::new(crate::server::response::empty());
    if not_modified(&req.headers, &etag) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    } else {
        let range = match requested_range(&req.headers, &etag, &last_modified, size)? {
            Some((start, end)) => {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                set(
                    resp.headers_mut(),
                    header::CONTENT_RANGE,
                    &format!("bytes {start}-{end}/{size}"),
                );
                (start, end + 1 - start)
            }
            None => (0, size),
        };
        set(
            resp.headers_mut(),
            header::CONTENT_LENGTH,
            &range.1.to_string(),
        );
        if req.method != http::Method::HEAD {
            let stream = state
                .blobs
                .read_range(&name, range.0, range.1)
                .await
                .map_err(|e| match e.kind() {
                    // Deleted between the lookup and here.
                    std::io::ErrorKind::NotFound => AppError::NotFound,
                    _ => AppError::Internal(format!("item {name}: its bytes cannot be read: {e}")),
                })?;
            *resp.body_mut() = stream_body(stream);
            record_download(state, &item);
            let event = AuditEvent::new(Kind::Download, req.client_ip, who.label_or_anonymous());
            let mut detail = download_detail(mode, range, size);
            if let Some(sig) = overridden {
                detail.push_str(&format!(", quarantine overridden (infected: {sig})"));
            }
            state.audit.record(event.item(&name).detail(detail)).await;
        }
    }
    let h = resp.headers_mut();
    let inline = mode == Mode::Inline && is_inline_safe(&item.content_type);
    set(h, header::CONTENT_TYPE, &served_type(&item.content_type));
    set(
        h,
        header::CONTENT_DISPOSITION,
        &content_disposition(if inline { "inline" } else { "attachment" }, &item.filename),
    );
    set(h, header::ETAG, &etag);
    set(h, header::LAST_MODIFIED, &last_modified);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}

/// An admin's `?override=infected` lets a quarantined item through.
fn scan_gate(item: &Item, req: &Request, who: &Principal) -> Result<Option<String>, AppError> {
    let override_ok =
        who.can(Permission::Admin) && req.query("override").as_deref() == Some("infected");
    scan_allows(item, override_ok)
}

/// What the antivirus state allows: nothing while it is being scanned (409); nothing of an
/// infected item (403) unless overridden (then the signature, for the audit trail). Clean and
/// not-scanned items are served.
pub fn scan_allows(item: &Item, override_ok: bool) -> Result<Option<String>, AppError> {
    match &item.scan {
        Some(ScanState::Scanning) => Err(AppError::Conflict(
            "being scanned for viruses; try again shortly".into(),
        )),
        Some(ScanState::Infected(sig)) if override_ok => Ok(Some(sig.clone())),
        Some(ScanState::Infected(sig)) => Err(AppError::Forbidden(format!(
            "quarantined: {sig} (an admin may download it with ?override=infected)"
        ))),
        _ => Ok(None),
    }
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    // Every value here is built from sanitized metadata; an invalid one is skipped, not sent raw.
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn stream_body(stream: ByteStream) -> Body {
    let frames = futures_util::StreamExt::map(stream, |chunk| chunk.map(hyper::body::Frame::data));
    StreamBody::new(frames).boxed_unsync()
}

/// `bytes 0-99 of 100`, and whether it was shown inline.
fn download_detail(mode: Mode, (start, len): (u64, u64), size: u64) -> String {
    let how = if mode == Mode::Inline { ", inline" } else { "" };
    match len {
        0 => format!("0 bytes of {size}{how}"),
        _ => format!("bytes {start}-{} of {size}{how}", start + len - 1),
    }
}

pub fn record_download(state: &State, item: &Item) {
    let name = item.name.clone();
    let now = crate::now();
    let store = std::sync::Arc::clone(&state.store);
    tokio::spawn(async move {
        if let Err(e) = blocking(&store, move |s| s.record_download(&name, now)).await {
            tracing::warn!(error = %e, "could not record a download time");
        }
    });
}

/// Text is always served as `text/plain` (never rendered as HTML); active types (SVG, HTML,
/// XML...) get a generic type, so not even a saved file opens as a page.
fn served_type(content_type: &str) -> String {
    if content_type.starts_with("text/") {
        "text/plain; charset=utf-8".into()
    } else if is_inline_safe(content_type) {
        content_type.into()
    } else {
        "application/octet-stream".into()
    }
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// What a `Range` request asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole file (200): no range we honour was asked for.
    Full,
    /// Serve `start..=end` (206); always `start <= end < size`.
    Partial { start: u64, end: u64 },
    /// 416: the only range asked for lies entirely past the end.
    Unsatisfiable,
}

/// The single byte range to serve for a `Range` value (and `If-Range`, if sent). Invalid or
/// multiple ranges are ignored (the whole file is served, as RFC 9110 allows); a range entirely
/// past the end is unsatisfiable. An `If-Range` that matches neither validator serves it all.
pub fn parse_range(
    range: &str,
    if_range: Option<&str>,
    etag: &str,
    last_modified: &str,
    size: u64,
) -> RangeOutcome {
    if let Some(if_range) = if_range
        && if_range.trim() != etag
        && if_range.trim() != last_modified
    {
        return RangeOutcome::Full;
    }
    use http_range_header::RangeUnsatisfiableError as E;
    let validated = match http_range_header::parse_range_header(range) {
        Ok(parsed) => parsed.validate(size),
        Err(_) => return RangeOutcome::Full,
    };
    match validated {
        Ok(ranges) if ranges.len() == 1 => RangeOutcome::Partial {
            start: *ranges[0].start(),
            end: *ranges[0].end(),
        },
        Ok(_) => RangeOutcome::Full,
        Err(E::Unsatisfiable) => RangeOutcome::Unsatisfiable,
        Err(_) => RangeOutcome::Full,
    }
}

/// [`parse_range`] on the request's headers; a value that is not visible ASCII counts as absent.
fn requested_range(
    headers: &HeaderMap,
    etag: &str,
    last_modified: &str,
    size: u64,
) -> Result<Option<(u64, u64)>, AppError> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    // An If-Range that is not even text matches nothing: the whole file (RFC 9110 §13.1.5).
    let if_range = match headers.get(header::IF_RANGE).map(|v| v.to_str()) {
        Some(Err(_)) => return Ok(None),
        Some(Ok(v)) => Some(v),
        None => None,
    };
    match parse_range(range, if_range, etag, last_modified, size) {
        RangeOutcome::Full => Ok(None),
        RangeOutcome::Partial { start, end } => Ok(Some((start, end))),
        RangeOutcome::Unsatisfiable => Err(AppError::RangeNotSatisfiable { size }),
    }
}

/// RFC 5987 `attr-char`s stay as they are; everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="..."` with an ASCII fallback, plus RFC 6266 `filename*=` when the
/// name is not plain ASCII. Quotes, backslashes and control characters never reach the header.
pub fn content_disposition(kind: &str, filename: &str) -> String {
    let plain =
        |c: char| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' && c != '%';
    let fallback: String = filename
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    if filename.chars().all(plain) {
        format!("{kind}; filename=\"{fallback}\"")
    } else {
        format!(
            "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
            utf8_percent_encode(filename, ATTR_CHAR)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("attachment", "a b.tgz"),
            "attachment; filename=\"a b.tgz\""
        );
        assert_eq!(
            content_disposition("attachment", "été.txt"),
            "attachment; filename=\"_t_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
        );
        let evil = content_disposition("attachment", "x\"; filename=evil.html");
        assert!(
            evil.starts_with("attachment; filename=\"x_; filename=evil.html\""),
            "{evil}"
        );
    }

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, AppError> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        requested_range(&h, "\"e\"", "d", size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(range("bytes=50-500", 100).unwrap(), Some((50, 99)));
        assert!(matches!(
            range("bytes=100-", 100),
            Err(AppError::RangeNotSatisfiable { size: 100 })
        ));
        assert_eq!(range("bytes=5-2", 100).unwrap(), None);
        assert_eq!(range("items=0-1", 100).unwrap(), None);
        assert_eq!(range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(
            range("bytes=18446744073709551615-", 100).ok().flatten(),
            None
        );
    }

    #[test]
    fn parse_range_outcomes() {
        let p =
            |v: &str, if_range: Option<&str>, size| parse_range(v, if_range, "\"e\"", "d", size);
        assert_eq!(
            p("bytes=0-9", Some("\"e\""), 100),
            RangeOutcome::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            p("bytes=0-9", Some(" d "), 100),
            RangeOutcome::Partial { start: 0, end: 9 }
        );
        assert_eq!(p("bytes=0-9", Some("\"other\""), 100), RangeOutcome::Full);
        assert_eq!(p("bytes=0-0", None, 0), RangeOutcome::Unsatisfiable);
        // Found by the fuzz target: over 30 digits http-range-header refuses the number, so the
        // whole file is served (RFC 9110 allows ignoring a Range), never a misread range.
        let zeros = "0".repeat(31);
        assert_eq!(p(&format!("bytes={zeros}-5"), None, 0), RangeOutcome::Full);
        assert_eq!(
            p(&format!("bytes={}-5", &zeros[..30]), None, 100),
            RangeOutcome::Partial { start: 0, end: 5 }
        );
    }
}
