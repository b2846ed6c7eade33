//! The HTTP layer's error type, and the one place where an error becomes a status and a body:
//! JSON `{"error":{"code":N,"message":"..."}}` for API clients, an HTML page otherwise.

use super::response::{self, Response};
use crate::auth::AuthError;
use crate::blobs::BlobError;
use crate::items::MaxLifeError;
use crate::store::StoreError;
use crate::upload::{Limit, ReceiveError, UploadError};
use http::{HeaderValue, StatusCode, header};

/// How an error is told: JSON under `/apis/` (and to clients asking for it), plain text to
/// the upload protocols' clients (tus, IETF, PUT), an HTML page to browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Text,
    Html,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Conflict(String),
    /// `410 Gone`: a revoked or expired upload link.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    UnsupportedRange(String),
    #[error("{0}")]
    InsufficientStorage(String),
    /// Sent with `Retry-After` (seconds).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("{0}")]
    NotImplemented(String),
    /// tus's `460 Checksum Mismatch`.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// `423 Locked`: another request holds the resource (tus clients retry it).
    #[error("{0}")]
    Locked(String),
    /// Sent with `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// The detail is logged, never sent to the client.
    #[error("internal server error")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RangeNotSatisfiable { .. } | AppError::UnsupportedRange(_) => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::ChecksumMismatch(_) => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
            }
            AppError::Locked(_) => StatusCode::LOCKED,
            AppError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body broke off: the connection closed, or it ended before its announced length.
    pub fn interrupted() -> AppError {
        AppError::BadRequest(
            "the upload was interrupted (the body ended early or the connection broke); nothing was stored".into(),
        )
    }

    pub fn forbidden() -> AppError {
        AppError::Forbidden("you don't have the permission to access this resource".into())
    }

    /// Builds the response; `json` selects the API error format.
    pub fn into_response(self, json: bool) -> Response {
        self.into_response_as(if json {
            ErrorFormat::Json
        } else {
            ErrorFormat::Html
        })
    }

    pub fn into_response_as(self, format: ErrorFormat) -> Response {
        let status = self.status();
        match &self {
            AppError::Internal(detail) => tracing::error!(%detail, "request failed"),
            e if status.is_server_error() => tracing::warn!(error = %e, "request failed"),
            e => tracing::debug!(error = %e, "request refused"),
        }
        let message = self.to_string();
        let mut resp = match format {
            ErrorFormat::Json => response::json(
                status,
                &serde_json::json!({ "error": { "code": status.as_u16(), "message": message } }),
            ),
            ErrorFormat::Text => response::text(status, format!("{message}\n")),
            ErrorFormat::Html => response::html(status, crate::pages::error_page(status, &message)),
        };
        let headers = resp.headers_mut();
        match self {
            AppError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            AppError::Busy(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            AppError::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            AppError::ChecksumMismatch(_) => {
                // hyper knows no reason phrase for tus's own status.
                resp.extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"Checksum Mismatch"));
            }
            AppError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Gone(_) => AppError::Conflict("this upload was deleted meanwhile".into()),
            StoreError::LinkRefused(r) => r.into(),
            StoreError::DiskFull => AppError::InsufficientStorage(
                "the server's disk is full; nothing was stored".into(),
            ),
            StoreError::Unavailable(why) => {
                // The reason (host, driver message) is for the log, not for clients.
                tracing::warn!(error = %why, "metadata store unavailable");
                AppError::Busy(
                    "the metadata database is unreachable; nothing was changed; retry in a moment"
                        .into(),
                )
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<BlobError> for AppError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::DiskFull => AppError::InsufficientStorage(
                "the server's disk is full; nothing was stored".into(),
            ),
            BlobError::LowSpace => AppError::InsufficientStorage(
                "not enough free space on the server; nothing was stored".into(),
            ),
            BlobError::Aborted => AppError::interrupted(),
            BlobError::Unavailable(why) => {
                tracing::warn!(error = %why, "blob store unavailable");
                AppError::Busy(format!(
                    "the storage is unreachable; nothing more was stored; retry in a moment ({why})"
                ))
            }
            BlobError::Busy => {
                AppError::Busy("another server is writing to this upload; retry in a moment".into())
            }
            BlobError::Io(e) => AppError::Internal(format!("storage: {e}")),
        }
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        BlobError::from(e).into()
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::LockedOut => AppError::TooManyRequests {
                message: e.to_string(),
                retry_after: 60,
            },
            AuthError::Malformed => AppError::BadRequest(e.to_string()),
            AuthError::WrongSecret => AppError::Forbidden(e.to_string()),
        }
    }
}

impl From<crate::upload::Refused> for AppError {
    fn from(r: crate::upload::Refused) -> Self {
        use crate::upload::Refused;
        let per = |whose: &str| AppError::TooManyRequests {
            message: format!("too many uploads in progress from {whose}; finish one first"),
            retry_after: 30,
        };
        match r {
            Refused::Busy => {
                AppError::Busy("too many uploads are in progress; retry in a moment".into())
            }
            Refused::PerClient => per("this address"),
            Refused::PerNetwork => per("this network"),
        }
    }
}

impl From<Limit> for AppError {
    fn from(l: Limit) -> Self {
        let quota = |what: &str, retry_after: std::time::Duration| AppError::TooManyRequests {
            message: format!(
                "upload quota reached: too many {what} from this address recently; nothing more was stored"
            ),
            retry_after: retry_after.as_secs().max(1),
        };
        match l {
            Limit::Items { retry_after } => quota("files", retry_after),
            Limit::Bytes { retry_after } => quota("bytes", retry_after),
            Limit::StoreFull { max } => AppError::InsufficientStorage(format!(
                "the server's storage limit ({max} bytes) is reached; nothing was stored"
            )),
            Limit::Link(r) => r.into(),
        }
    }
}

impl AppError {
    /// A failure while receiving a body; `what` names it ("a file", "the field `x`"), `source`
    /// maps the body's own errors.
    pub fn from_receive<E>(
        e: ReceiveError<E>,
        what: &str,
        source: impl FnOnce(E) -> AppError,
    ) -> AppError {
        match e {
            ReceiveError::Idle(d) => AppError::Timeout(format!(
                "no data for {}s; the upload was abandoned",
                d.as_secs()
            )),
            ReceiveError::TooLarge(limit) => AppError::TooLarge(format!(
                "{what} is larger than the limit of {limit} bytes; nothing was stored"
            )),
            ReceiveError::TooSlow => AppError::Timeout(
                "this upload was cut off: it was slower than the server's minimum rate while every upload slot was taken; nothing was stored, please retry".into(),
            ),
            ReceiveError::Limit(l) => l.into(),
            ReceiveError::Source(e) => source(e),
            ReceiveError::Sink(e) => e.into(),
        }
    }
}

impl From<UploadError> for AppError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::UnknownUpload => AppError::NotFound,
            UploadError::NotOwner => AppError::Forbidden(message),
            UploadError::Completed
            | UploadError::Busy
            | UploadError::Superseded
            | UploadError::OffsetMismatch { .. } => AppError::Conflict(message),
            UploadError::TooLarge { .. } | UploadError::BeyondLength { .. } => {
                AppError::TooLarge(message)
            }
            UploadError::BadLength(_)
            | UploadError::ShortBody { .. }
            | UploadError::BadEncoding(_)
            | UploadError::BadText(_) => AppError::BadRequest(message),
            UploadError::ChecksumMismatch => AppError::ChecksumMismatch(message),
            UploadError::Idle(_) | UploadError::TooSlow => AppError::Timeout(message),
            UploadError::Interrupted => AppError::interrupted(),
            UploadError::NoSpace => AppError::InsufficientStorage(message),
            UploadError::Limit(l) => l.into(),
            UploadError::Blob(b) => b.into(),
            UploadError::Store(s) => s.into(),
            UploadError::Internal(detail) => AppError::Internal(detail),
        }
    }
}

impl From<crate::links::Refusal> for AppError {
    fn from(r: crate::links::Refusal) -> Self {
        use crate::links::Refusal;
        let message = r.to_string();
        match r {
            Refusal::Revoked | Refusal::Expired => AppError::Gone(message),
            Refusal::Files { .. } => AppError::Forbidden(message),
            Refusal::Bytes { .. } => AppError::TooLarge(format!("{message}; nothing was stored")),
        }
    }
}

impl From<crate::links::LinkError> for AppError {
    fn from(e: crate::links::LinkError) -> Self {
        use crate::links::LinkError;
        match e {
            LinkError::Unknown => AppError::NotFound,
            LinkError::Store(s) => s.into(),
            LinkError::Random => AppError::Internal(e.to_string()),
            other => AppError::BadRequest(other.to_string()),
        }
    }
}

impl From<MaxLifeError> for AppError {
    fn from(e: MaxLifeError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}
