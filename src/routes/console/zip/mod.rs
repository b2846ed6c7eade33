//! `GET|POST /+zip?name=…&name=…` and a delivery's `/+deliveries/<id>/zip`: many items as one
//! ZIP, streamed as it is made (no temporary file, memory flat whatever the sizes). Entries are
//! stored uncompressed (support bundles are compressed already) with data descriptors; an entry
//! of 4 GiB or more gets ZIP64 fields, and so does the archive when it needs them. A last entry,
//! `SHA256SUMS`, lists each file's SHA-256 as recorded at upload, for `sha256sum -c`.
//!
//! Every item is checked before the first byte is sent (visible to the principal, complete, and
//! through the antivirus gate like a single download), so a refusal is a clear 4xx, not a broken
//! archive. A blob that fails mid-way ends the body with an error: the client sees a broken
//! transfer, never a ZIP that looks whole.
//!
//! The archive itself is made in [`pipeline`].

mod pipeline;

use super::{FORM_LIMIT, names, query_pairs};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Permission, Principal};
use crate::items::{ItemName, sanitize_filename};
use crate::routes::download::{record_download, scan_allows};
use crate::routes::{require, small_form, visible_item};
use crate::server::{AppError, Request, Response};
use crate::state::State;
use crate::store::Item;
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use http_body_util::{BodyExt, StreamBody};
use std::io;

/// ZIPs being made at once. Each holds a thread of its own for as long as its client takes to
/// read it (a thread outside tokio's blocking pool, so slow ZIP readers can never starve the
/// metadata store's calls); beyond this many, a new one is a 503 with `Retry-After`.
pub const MAX_ZIPS: usize = 16;

pub async fn download(state: &State, req: Request) -> Result<Response, AppError> {
    let who = require(state, &req, Permission::Read).await?;
    let client_ip = req.client_ip;
    let override_ok = override_asked(&req, &who);
    let pairs = if req.method == Method::POST {
        small_form(req, FORM_LIMIT).await?
    } else {
        query_pairs(&req)
    };
    let mut items = Vec::new();
    for name in names(&pairs)? {
        items.push(visible_item(state, &name, &who).await?);
    }
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    let archive = format!("sfx-{}-files-{stamp}.zip", items.len());
    respond(state, items, &who, client_ip, override_ok, &archive).await
}

/// An admin's `override=infected` lets quarantined items in, as for a single download.
pub fn override_asked(req: &Request, who: &Principal) -> bool {
    who.can(Permission::Admin) && req.query("override").as_deref() == Some("infected")
}

/// The ZIP of `items` (already checked as visible to `who`) as a streamed response.
pub async fn respond(
    state: &State,
    items: Vec<Item>,
    who: &Principal,
    client_ip: std::net::IpAddr,
    override_ok: bool,
    archive: &str,
) -> Result<Response, AppError> {
    let mut overridden = Vec::with_capacity(items.len());
    for item in &items {
        let sig = scan_allows(item, override_ok).map_err(|e| naming(item, e))?;
        overridden.push(sig);
    }
    let Ok(permit) = std::sync::Arc::clone(&state.zips).try_acquire_owned() else {
        return Err(AppError::Busy(format!(
            "{MAX_ZIPS} ZIP downloads are being made already; retry in a moment"
        )));
    };
    let entries = entries(&items);
    let out_rx = pipeline::start(state.blobs.clone(), entries, permit)
        .map_err(|e| AppError::Internal(format!("cannot start a ZIP thread: {e}")))?;
    let count = items.len();
    for (item, sig) in items.iter().zip(overridden) {
        record_download(state, item);
        let mut detail = format!(
            "in a ZIP of {count} file{}",
            if count == 1 { "" } else { "s" }
        );
        if let Some(sig) = sig {
            detail.push_str(&format!(", quarantine overridden (infected: {sig})"));
        }
        let event = AuditEvent::new(Kind::Download, client_ip, who.label_or_anonymous());
        state
            .audit
            .record(event.item(&item.name).detail(detail))
            .await;
    }
    let frames = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk: io::Result<Bytes>| (chunk.map(hyper::body::Frame::data), rx))
    });
    let mut resp = http::Response::new(StreamBody::new(frames).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&crate::routes::download::content_disposition(
        "attachment",
        archive,
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// Says which item a refusal is about.
fn naming(item: &Item, e: AppError) -> AppError {
    let about = |m: String| format!("{} ({}): {m}", item.filename, item.name);
    match e {
        AppError::Conflict(m) => AppError::Conflict(about(m)),
        AppError::Forbidden(m) => AppError::Forbidden(about(m)),
        other => other,
    }
}

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub item: ItemName,
    /// Its name in the archive: the filename, made unique.
    pub path: String,
    pub size: u64,
    pub modified: i64,
    pub sha256: String,
}

/// The archive's members: each item under its filename; a filename already taken (or the
/// manifest's) gets the item name before its extension, so every member keeps a distinct name
/// and the link to its item.
pub fn entries(items: &[Item]) -> std::sync::Arc<[Entry]> {
    let mut taken: Vec<String> = vec![MANIFEST.to_ascii_lowercase()];
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let base = sanitize_filename(&item.filename).unwrap_or_else(|| item.name.to_string());
        let mut path = base.clone();
        if taken.contains(&path.to_lowercase()) {
            // Before the first dot that is not the leading one: bundle-NAME.tar.gz.
            let split = base
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '.')
                .map_or(base.len(), |(i, _)| i);
            path = format!("{}-{}{}", &base[..split], item.name, &base[split..]);
        }
        taken.push(path.to_lowercase());
        out.push(Entry {
            item: item.name.clone(),
            path,
            size: item.size,
            modified: item.completed_at.unwrap_or(item.created_at),
            sha256: item.sha256.clone(),
        });
    }
    out.into()
}

pub(super) const MANIFEST: &str = "SHA256SUMS";

/// `sha256sum -c` input. Member names come from [`sanitize_filename`]: no newline, control
/// character or backslash, so none needs coreutils' escaping.
pub fn manifest(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The store suite's item, at 2026-12-01.
    fn item(name: &str, filename: &str) -> Item {
        crate::store::conformance::item(name, 1_796_083_200, filename, None)
    }

    #[test]
    fn member_names_are_unique() {
        let items = [
            item("AAAAAAAA", "bundle.tar.gz"),
            item("JJJJJJJJ", "bundle.tar.gz"),
            item("CCCCCCCC", "BUNDLE.tar.gz"),
            item("DDDDDDDD", ".bashrc"),
            item("EEEEEEEE", ".bashrc"),
            item("FFFFFFFF", "sha256sums"),
            item("GGGGGGGG", "noext"),
            item("HHHHHHHH", "noext"),
        ];
        let paths: Vec<String> = entries(&items).iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "bundle.tar.gz",
                "bundle-JJJJJJJJ.tar.gz",
                "BUNDLE-CCCCCCCC.tar.gz",
                ".bashrc",
                ".bashrc-EEEEEEEE",
                "sha256sums-FFFFFFFF",
                "noext",
                "noext-HHHHHHHH",
            ]
        );
    }

    #[test]
    fn manifest_lines() {
        let e = entries(&[item("AAAAAAAA", "a b.tgz"), item("JJJJJJJJ", "c\\d")]);
        let ab = "ab".repeat(32);
        // A path in a filename is cut to its last part, as at upload.
        assert_eq!(manifest(&e), format!("{ab}  a b.tgz\n{ab}  d\n"));
    }
}
