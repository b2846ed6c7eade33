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
//! The `zip` crate's writer is synchronous: it runs on a blocking thread, fed through a bounded
//! channel by an async task that reads the blobs, and its output goes back to the body through
//! another bounded channel.

use super::{FORM_LIMIT, names, query_pairs};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Permission, Principal};
use crate::blobs::{BlobStore, Blobs};
use crate::items::{ItemName, sanitize_filename};
use crate::routes::download::{record_download, scan_allows};
use crate::routes::{require, small_form, visible_item};
use crate::server::{AppError, Request, Response};
use crate::state::State;
use crate::store::Item;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Method, header};
use http_body_util::{BodyExt, StreamBody};
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Output chunks handed to the body; a few in flight keep the socket busy.
const CHUNK: usize = 256 << 10;

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
    let (pieces_tx, pieces_rx) = mpsc::channel(4);
    let (out_tx, out_rx) = mpsc::channel(4);
    let writer = {
        let entries = entries.clone();
        std::thread::Builder::new()
            .name("sfx-zip".into())
            .spawn(move || {
                let _permit = permit;
                write_zip(&entries, pieces_rx, out_tx);
            })
    };
    if let Err(e) = writer {
        return Err(AppError::Internal(format!(
            "cannot start a ZIP thread: {e}"
        )));
    }
    tokio::spawn(feed(state.blobs.clone(), entries, pieces_tx));
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

const MANIFEST: &str = "SHA256SUMS";

/// `sha256sum -c` input. Member names come from [`sanitize_filename`]: no newline, control
/// character or backslash, so none needs coreutils' escaping.
pub fn manifest(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.path))
        .collect()
}

enum Piece {
    /// The next entry begins (its index).
    Entry(usize),
    Data(Bytes),
    /// Every entry was sent whole.
    End,
}

/// Reads each item's blob in order; stops at the first failure (after saying so) or when the
/// writer is gone (the client left).
async fn feed(
    blobs: Blobs,
    entries: std::sync::Arc<[Entry]>,
    tx: mpsc::Sender<Result<Piece, String>>,
) {
    for (i, e) in entries.iter().enumerate() {
        if tx.send(Ok(Piece::Entry(i))).await.is_err() {
            return;
        }
        let mut stream = match blobs.read_range(&e.item, 0, e.size).await {
            Ok(s) => s,
            Err(err) => {
                let _ = tx.send(Err(format!("item {}: {err}", e.item))).await;
                return;
            }
        };
        let mut sent = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    sent += b.len() as u64;
                    if tx.send(Ok(Piece::Data(b))).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(format!("item {}: {err}", e.item))).await;
                    return;
                }
            }
        }
        if sent != e.size {
            let why = format!("item {}: {sent} bytes stored, {} recorded", e.item, e.size);
            let _ = tx.send(Err(why)).await;
            return;
        }
    }
    let _ = tx.send(Ok(Piece::End)).await;
}

/// The blocking side: the pieces in, the archive out. Any failure ends the body with an error.
fn write_zip(
    entries: &[Entry],
    mut pieces: mpsc::Receiver<Result<Piece, String>>,
    out: mpsc::Sender<io::Result<Bytes>>,
) {
    let failed = out.clone();
    if let Err(e) = build(entries, &mut pieces, Chunks::new(out)) {
        tracing::warn!(error = %e, "a ZIP download was cut off");
        let _ = failed.blocking_send(Err(io::Error::other(e)));
    }
}

fn build(
    entries: &[Entry],
    pieces: &mut mpsc::Receiver<Result<Piece, String>>,
    out: Chunks,
) -> Result<(), String> {
    let io_err = |e: io::Error| e.to_string();
    let zip_err = |e: zip::result::ZipError| e.to_string();
    let mut zip = zip::ZipWriter::new_stream(out);
    loop {
        match pieces.blocking_recv() {
            Some(Ok(Piece::Entry(i))) => {
                let e = entries.get(i).ok_or("entry out of range")?;
                zip.start_file(e.path.as_str(), options(e.size, e.modified))
                    .map_err(zip_err)?;
            }
            Some(Ok(Piece::Data(b))) => zip.write_all(&b).map_err(io_err)?,
            Some(Ok(Piece::End)) => break,
            Some(Err(e)) => return Err(e),
            None => return Err("the reader of the items stopped".into()),
        }
    }
    let sums = manifest(entries);
    zip.start_file(MANIFEST, options(sums.len() as u64, crate::now()))
        .map_err(zip_err)?;
    zip.write_all(sums.as_bytes()).map_err(io_err)?;
    let mut out = zip.finish().map_err(zip_err)?.into_inner();
    out.flush().map_err(io_err)
}

fn options(size: u64, modified: i64) -> zip::write::SimpleFileOptions {
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644)
        // ZIP64 fields only where a size needs them: older unzippers read the rest.
        .large_file(size >= zip::ZIP64_BYTES_THR);
    match dos_time(modified) {
        Some(t) => opts.last_modified_time(t),
        None => opts,
    }
}

/// ZIP keeps local time without a zone; we write UTC, as the pages show it.
fn dos_time(unix: i64) -> Option<zip::DateTime> {
    let t = jiff::Timestamp::from_second(unix).ok()?;
    let dt = jiff::tz::Offset::UTC.to_datetime(t);
    zip::DateTime::from_date_and_time(
        u16::try_from(dt.year()).ok()?,
        u8::try_from(dt.month()).ok()?,
        u8::try_from(dt.day()).ok()?,
        u8::try_from(dt.hour()).ok()?,
        u8::try_from(dt.minute()).ok()?,
        u8::try_from(dt.second()).ok()?,
    )
    .ok()
}

/// Collects the writer's small writes into chunks for the body.
struct Chunks {
    buf: Vec<u8>,
    out: mpsc::Sender<io::Result<Bytes>>,
}

impl Chunks {
    fn new(out: mpsc::Sender<io::Result<Bytes>>) -> Chunks {
        Chunks {
            buf: Vec::with_capacity(CHUNK),
            out,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.out
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ItemState, Uploader};

    fn item(name: &str, filename: &str) -> Item {
        Item {
            name: ItemName::parse(name).unwrap(),
            filename: filename.into(),
            content_type: "application/gzip".into(),
            size: 1,
            sha256: "ab".repeat(32),
            state: ItemState::Complete,
            created_at: 1_796_083_200,
            completed_at: Some(1_796_083_200),
            expires_at: None,
            downloaded_at: None,
            locked: false,
            uploader: Uploader {
                label: "customers".into(),
                client_ip: "127.0.0.1".into(),
                user_agent: "curl".into(),
                link: None,
            },
            reference: None,
            comment: None,
            scan: None,
        }
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

    #[test]
    fn dos_times() {
        assert!(dos_time(1_796_083_200).is_some());
        // Before 1980 cannot be written: the entry gets the writer's default.
        assert!(dos_time(0).is_none());
    }
}
