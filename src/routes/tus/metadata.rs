//! tus `Upload-Metadata`: `key base64value` pairs separated by commas; and `Upload-Checksum`:
//! `algorithm base64digest`.

use crate::auth::Principal;
use crate::routes::links::access::case_reference;
use crate::routes::resumable::{requested_expiry, uploader};
use crate::server::{AppError, Request};
use crate::state::State;
use crate::upload::NewUpload;
use crate::upload::engine::clean_comment;
use crate::upload::{Checksum, ChecksumAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Largest `Upload-Metadata` header accepted.
const MAX_METADATA: usize = 8 << 10;

/// The keys sfx uses; others are ignored, as the protocol allows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub filename: Option<String>,
    pub filetype: Option<String>,
    pub reference: Option<String>,
    pub comment: Option<String>,
    /// The lifetime, as the form's fields (`maxlife-value`, `maxlife-unit`).
    pub maxlife_value: Option<String>,
    pub maxlife_unit: Option<String>,
}

pub fn parse_metadata(raw: Option<&[u8]>) -> Result<Metadata, AppError> {
    let mut m = Metadata::default();
    let Some(raw) = raw else { return Ok(m) };
    if raw.len() > MAX_METADATA {
        return Err(bad(format!("longer than {MAX_METADATA} bytes")));
    }
    let text = std::str::from_utf8(raw).map_err(|_| bad("not ASCII".into()))?;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (k, Some(v.trim())),
            None => (pair, None),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!("the key `{key}` is not valid")));
        }
        let decoded = match value {
            None | Some("") => String::new(),
            Some(v) => {
                let bytes = STANDARD
                    .decode(v)
                    .map_err(|_| bad(format!("the value of `{key}` is not base64")))?;
                String::from_utf8(bytes)
                    .map_err(|_| bad(format!("the value of `{key}` is not UTF-8")))?
            }
        };
        let slot = match key {
            "filename" => &mut m.filename,
            // What Uppy and others send.
            "name" if m.filename.is_none() => &mut m.filename,
            "filetype" => &mut m.filetype,
            "type" if m.filetype.is_none() => &mut m.filetype,
            "reference" => &mut m.reference,
            "comment" => &mut m.comment,
            "maxlife-value" => &mut m.maxlife_value,
            "maxlife-unit" => &mut m.maxlife_unit,
            _ => continue,
        };
        *slot = Some(decoded);
    }
    Ok(m)
}

impl Metadata {
    /// The new upload these fields describe.
    pub fn into_upload(
        self,
        state: &State,
        req: &Request,
        who: &Principal,
        total: Option<u64>,
    ) -> Result<NewUpload, AppError> {
        Ok(NewUpload {
            uploader: uploader(req, who),
            filename: self.filename,
            content_type: self.filetype,
            total,
            expires_at: requested_expiry(
                state,
                self.maxlife_value.as_deref(),
                self.maxlife_unit.as_deref(),
            )?,
            reference: case_reference(who, self.reference.as_deref())?,
            comment: clean_comment(self.comment.as_deref())?,
        })
    }
}

fn bad(why: String) -> AppError {
    AppError::BadRequest(format!("Upload-Metadata: {why}"))
}

/// What an item tells about itself in `Upload-Metadata`.
pub fn format_metadata(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {}", STANDARD.encode(v))))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn parse_checksum(raw: Option<&str>) -> Result<Option<Checksum>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let (name, digest) = raw.trim().split_once(' ').ok_or_else(|| {
        AppError::BadRequest("Upload-Checksum: expected `algorithm digest`".into())
    })?;
    let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
        AppError::BadRequest(format!(
            "Upload-Checksum: unsupported algorithm `{name}`; use one of {}",
            ChecksumAlgorithm::NAMES
        ))
    })?;
    let digest = STANDARD
        .decode(digest.trim())
        .map_err(|_| AppError::BadRequest("Upload-Checksum: the digest is not base64".into()))?;
    Ok(Some(Checksum { algorithm, digest }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_table() {
        let m = parse_metadata(Some(
            b"filename YnVuZGxlLnRhci5neg==,filetype YXBwbGljYXRpb24vZ3ppcA==,is_confidential,reference Q0FTRS0x",
        ))
        .unwrap();
        assert_eq!(m.filename.as_deref(), Some("bundle.tar.gz"));
        assert_eq!(m.filetype.as_deref(), Some("application/gzip"));
        assert_eq!(m.reference.as_deref(), Some("CASE-1"));
        let m = parse_metadata(Some(b"maxlife-value Nw==,maxlife-unit REFZUw==")).unwrap();
        assert_eq!(
            (m.maxlife_value.as_deref(), m.maxlife_unit.as_deref()),
            (Some("7"), Some("DAYS"))
        );
        assert_eq!(
            parse_metadata(Some(b"name YQ=="))
                .unwrap()
                .filename
                .as_deref(),
            Some("a")
        );
        for bad in [
            &b"filename !!!"[..],
            b"filename /w==",
            b"k\x01 YQ==",
            &[b'a'; 9000],
        ] {
            assert!(parse_metadata(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(
            format_metadata(&[("filename", Some("a")), ("comment", None)]),
            "filename YQ=="
        );
    }

    #[test]
    fn checksum_table() {
        let c = parse_checksum(Some("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="))
            .unwrap()
            .unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest.len(), 20);
        assert!(parse_checksum(Some("md5 abc=")).is_err());
        assert!(parse_checksum(Some("sha256")).is_err());
        assert!(parse_checksum(Some("sha256 %%%")).is_err());
        assert!(parse_checksum(None).unwrap().is_none());
    }
}
