//! Reading an upload form (multipart, or urlencoded for pastes) into staged files and fields.
//! File parts are streamed to disk as they arrive; only small fields are held in memory.

use crate::auth::{Permission, Principal, Source};
use crate::blobs::{BlobSink, Written};
use crate::server::{AppError, Request};
use crate::state::{Blob, State};
use crate::upload::{ReceiveError, Staged, Ticket, nothing_to_flush, receive_chunk};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Small text fields (lifetime, reference, comment, token...).
const SMALL_FIELD: u64 = 64 * 1024;
/// A pasted text read before the `token` field authorised it is held in memory up to this.
const UNAUTHORISED_TEXT: u64 = 1 << 20;
/// Urlencoded pastes are read whole; keep them modest.
const URLENCODED_LIMIT: usize = 16 << 20;
/// An urlencoded form from a request without credentials (its `token` field is not checked yet).
const UNAUTHORISED_FORM: usize = 1 << 20;
const MAX_PARTS: usize = 1000;
/// Bytes a client may send after the closing boundary (RFC 2046's epilogue, usually a CRLF).
const MAX_EPILOGUE: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub struct Fields {
    pub filename: Option<String>,
    pub contenttype: Option<String>,
    pub maxlife_value: Option<String>,
    pub maxlife_unit: Option<String>,
    pub reference: Option<String>,
    pub comment: Option<String>,
    pub response: Option<String>,
}

impl Fields {
    /// Where a known small field goes; `None` for names we do not use (bepasty ignores them).
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "filename" => &mut self.filename,
            "contenttype" => &mut self.contenttype,
            "maxlife-value" => &mut self.maxlife_value,
            "maxlife-unit" => &mut self.maxlife_unit,
            "reference" => &mut self.reference,
            "comment" => &mut self.comment,
            "response" => &mut self.response,
            _ => return None,
        })
    }
}

pub struct FormInput {
    pub files: Vec<Staged<Blob>>,
    pub text: Option<Written<Blob>>,
    pub fields: Fields,
    /// The caller, upgraded if a `token` field carried a valid secret.
    pub who: Principal,
}

struct Reader<'a> {
    state: &'a State,
    who: Principal,
    peer: std::net::IpAddr,
    idle: Duration,
    ticket: &'a Ticket,
}

impl Reader<'_> {
    /// A `token` field authenticates only requests that had no other credentials.
    async fn token(&mut self, value: &str) -> Result<(), AppError> {
        if self.who.source == Source::Anonymous && !value.is_empty() {
            self.who = self
                .state
                .auth
                .check_secret(value, self.peer, Source::Token)
                .await?;
        }
        Ok(())
    }

    fn require_create(&self) -> Result<(), AppError> {
        if self.who.can(Permission::Create) {
            Ok(())
        } else {
            Err(AppError::forbidden())
        }
    }

    async fn write_bytes(&self, data: Bytes) -> Result<Written<Blob>, AppError> {
        let mut w = self.state.engine.stage().await?;
        w.write(data).await?;
        Ok(w.finish().await?)
    }
}

fn multipart_error(e: multer::Error) -> AppError {
    match e {
        multer::Error::StreamSizeExceeded { limit } => AppError::TooLarge(format!(
            "the request is larger than the limit of {limit} bytes; nothing was stored"
        )),
        multer::Error::FieldSizeExceeded { limit, .. } => AppError::TooLarge(format!(
            "a file is larger than the limit of {limit} bytes; nothing was stored"
        )),
        multer::Error::StreamReadFailed(_) => AppError::interrupted(),
        other => AppError::BadRequest(format!("malformed multipart body: {other}")),
    }
}

fn receive_error(e: ReceiveError<multer::Error>, what: &str) -> AppError {
    AppError::from_receive(e, what, multipart_error)
}

/// The request body as multer reads it, shared so that what multer leaves after the closing
/// boundary can still be read to the end: only a body that is complete by its HTTP framing
/// (all of `Content-Length`, or the last chunk) is ever committed.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<BodyDataStream<Incoming>>>);

impl Stream for SharedBody {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poll_next_unpin(cx)
    }
}

/// Reads the rest of the body after the closing boundary: at most [`MAX_EPILOGUE`] bytes, to
/// its very end, within the idle timeout. A body cut short fails here.
async fn read_to_end(r: &Reader<'_>, mut body: SharedBody) -> Result<(), AppError> {
    let mut received = 0;
    loop {
        let next = async { body.next().await.transpose() };
        let flush = nothing_to_flush();
        match receive_chunk(next, flush, r.idle, &mut received, MAX_EPILOGUE, r.ticket).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(ReceiveError::TooLarge(_)) => {
                return Err(AppError::BadRequest(
                    "data after the closing multipart boundary".into(),
                ));
            }
            Err(e) => {
                return Err(AppError::from_receive(e, "the request", |_| {
                    AppError::interrupted()
                }));
            }
        }
    }
}

/// The boundary of a `multipart/form-data` content type: 1 to 70 characters, no controls
/// (RFC 2046 §5.1.1).
fn boundary(content_type: &str) -> Result<String, AppError> {
    let b = multer::parse_boundary(content_type)
        .map_err(|_| AppError::BadRequest("multipart/form-data without a boundary".into()))?;
    if b.is_empty() || b.len() > 70 || b.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(AppError::BadRequest(
            "the multipart boundary must be 1 to 70 printable ASCII characters".into(),
        ));
    }
    Ok(b)
}

async fn stream_field(
    r: &Reader<'_>,
    field: &mut multer::Field<'_>,
    limit: u64,
) -> Result<Written<Blob>, AppError> {
    let mut writer = r.state.engine.stage().await?;
    let mut received = 0;
    loop {
        let next = field.chunk();
        let chunk = receive_chunk(next, writer.flush(), r.idle, &mut received, limit, r.ticket)
            .await
            .map_err(|e| receive_error(e, "a file"))?;
        let Some(chunk) = chunk else { break };
        writer.write(chunk).await?;
    }
    Ok(writer.finish().await?)
}

async fn small_field(
    r: &Reader<'_>,
    field: &mut multer::Field<'_>,
    limit: u64,
) -> Result<Bytes, AppError> {
    let name = field.name().unwrap_or("").to_string();
    let mut buf = Vec::new();
    let mut received = 0;
    while let Some(chunk) = receive_chunk(
        field.chunk(),
        nothing_to_flush(),
        r.idle,
        &mut received,
        limit,
        r.ticket,
    )
    .await
    .map_err(|e| receive_error(e, &format!("the field `{name}`")))?
    {
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

fn utf8(name: &str, data: Bytes) -> Result<String, AppError> {
    String::from_utf8(data.to_vec())
        .map_err(|_| AppError::BadRequest(format!("the field `{name}` is not valid UTF-8")))
}

pub async fn read_multipart(
    state: &State,
    req: Request,
    who: Principal,
    content_type: &str,
    ticket: &Ticket,
) -> Result<FormInput, AppError> {
    let boundary = boundary(content_type)?;
    let config = &state.config;
    let limits = multer::SizeLimit::new()
        .whole_stream(config.max_request_size)
        .per_field(config.max_file_size.max(SMALL_FIELD));
    let body = SharedBody(Arc::new(Mutex::new(BodyDataStream::new(req.body))));
    let mut mp = multer::Multipart::with_constraints(
        body.clone(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut r = Reader {
        state,
        who,
        peer: req.client_ip,
        idle: config.upload_idle_timeout,
        ticket,
    };
    let (mut files, mut text, mut pending_text, mut fields) =
        (Vec::new(), None, None, Fields::default());
    let mut parts = 0;
    loop {
        let next = tokio::time::timeout(r.idle, mp.next_field())
            .await
            .map_err(|_| AppError::Timeout("no data received; the upload was abandoned".into()))?
            .map_err(multipart_error)?;
        let Some(mut field) = next else { break };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(AppError::BadRequest(format!(
                "more than {MAX_PARTS} form parts"
            )));
        }
        // RFC 7578: every part names its field in a Content-Disposition header.
        let name = field
            .name()
            .ok_or_else(|| {
                AppError::BadRequest(
                    "malformed multipart body: a part without a Content-Disposition name".into(),
                )
            })?
            .to_string();
        match name.as_str() {
            "file" => {
                r.require_create()?;
                if files.len() >= config.max_files_per_request {
                    let max = config.max_files_per_request;
                    return Err(AppError::TooLarge(format!(
                        "more than {max} files in one request"
                    )));
                }
                let filename = field.file_name().map(str::to_string);
                let claimed_type = field.content_type().map(|m| m.to_string());
                let written = stream_field(&r, &mut field, config.max_file_size).await?;
                // Browsers send an empty, nameless part when no file was chosen.
                if written.size == 0 && filename.as_deref().is_none_or(str::is_empty) {
                    continue;
                }
                files.push(Staged {
                    written,
                    filename,
                    claimed_type,
                    is_text: false,
                });
            }
            "text" if r.who.can(Permission::Create) => {
                // The last `text` wins, also over one held before the token authorised it.
                pending_text = None;
                text = Some(stream_field(&r, &mut field, config.max_file_size).await?)
            }
            "text" => {
                pending_text = Some(
                    small_field(&r, &mut field, UNAUTHORISED_TEXT)
                        .await
                        .map_err(|e| match e {
                            AppError::TooLarge(_) => {
                                AppError::Forbidden("send the `token` field before the text".into())
                            }
                            other => other,
                        })?,
                )
            }
            "token" => {
                let value = utf8(&name, small_field(&r, &mut field, SMALL_FIELD).await?)?;
                r.token(value.trim()).await?;
            }
            _ => {
                let value = small_field(&r, &mut field, SMALL_FIELD).await?;
                if let Some(slot) = fields.slot(&name) {
                    *slot = Some(utf8(&name, value)?);
                }
            }
        }
    }
    drop(mp);
    read_to_end(&r, body).await?;
    if let Some(data) = pending_text {
        r.require_create()?;
        text = Some(r.write_bytes(data).await?);
    }
    Ok(FormInput {
        files,
        text,
        fields,
        who: r.who,
    })
}

/// `application/x-www-form-urlencoded`: a paste (`text`), as pastebinit sends it.
pub async fn read_urlencoded(
    state: &State,
    req: Request,
    who: Principal,
    ticket: &Ticket,
) -> Result<FormInput, AppError> {
    let peer = req.client_ip;
    // Until a secret allows it, a paste is only held in memory up to the size a `token`-carrying
    // form needs; an anonymous flood of 16 MiB bodies must not pile up.
    let cap = if who.can(Permission::Create) {
        URLENCODED_LIMIT
    } else {
        UNAUTHORISED_FORM
    };
    let limit = cap.min(usize::try_from(state.config.max_request_size).unwrap_or(usize::MAX));
    let pairs = super::super::small_form(req, limit).await?;
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    ticket.record(size as u64)?;
    let mut r = Reader {
        state,
        who,
        peer,
        idle: state.config.upload_idle_timeout,
        ticket,
    };
    let mut fields = Fields::default();
    let mut text = None;
    for (k, v) in pairs {
        match k.as_str() {
            "token" => r.token(v.trim()).await?,
            "text" => text = Some(v),
            "file" => {
                return Err(AppError::BadRequest(
                    "files need a multipart/form-data request".into(),
                ));
            }
            _ => {
                if let Some(slot) = fields.slot(&k) {
                    *slot = Some(v);
                }
            }
        }
    }
    let text = match text {
        Some(t) => {
            r.require_create()?;
            let max = state.config.max_file_size;
            if t.len() as u64 > max {
                return Err(AppError::TooLarge(format!(
                    "the text is larger than the limit of {max} bytes; nothing was stored"
                )));
            }
            Some(r.write_bytes(Bytes::from(t)).await?)
        }
        None => None,
    };
    Ok(FormInput {
        files: Vec::new(),
        text,
        fields,
        who: r.who,
    })
}
