//! The audit trail: an append-only record of security events and operator actions (logins,
//! wrong secrets, lockouts, uploads, downloads, deletions, changes, reloads).
//!
//! Each [`AuditRecord`] carries `hash = SHA-256(prev_hash || canonical record)` (see
//! [`canonical`]), so an edited, removed or moved record breaks the chain at that point, which
//! [`verify`] finds. Records are kept by an [`AuditStore`](crate::store::AuditStore) and, when
//! `audit_log` is set, also appended to a JSON-lines file for shipping off the machine
//! ([`Audit`]). Writing a record never fails the action it describes.

mod chain;
mod sink;

pub use chain::{GENESIS, Verdict, canonical, record_hash, seal, verify};
pub use sink::Audit;

use crate::scan::ScanState;
use crate::store::Item;
use serde::Serialize;

/// What happened. Each kind has a stable snake_case name (stored, filtered on, shipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    LoginSuccess,
    /// A wrong secret, however it was presented (login form, Basic/Bearer, `token`).
    LoginFailure,
    /// An address reached the failed-secret limit (recorded once per lockout).
    Lockout,
    UploadCompleted,
    Download,
    Delete,
    Modify,
    Lock,
    Unlock,
    /// The configuration or the TLS certificate was reloaded (or a reload was refused).
    Reload,
    /// An upload link was made or revoked (`item` is `link:<id>`).
    LinkCreated,
    LinkRevoked,
    /// An antivirus scan's outcome (clean, infected, not scanned).
    Scan,
    /// An item imported from a bepasty storage directory (`sfx import-bepasty`).
    Import,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::Startup,
        Kind::LoginSuccess,
        Kind::LoginFailure,
        Kind::Lockout,
        Kind::UploadCompleted,
        Kind::Download,
        Kind::Delete,
        Kind::Modify,
        Kind::Lock,
        Kind::Unlock,
        Kind::Reload,
        Kind::LinkCreated,
        Kind::LinkRevoked,
        Kind::Scan,
        Kind::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::LoginSuccess => "login_success",
            Kind::LoginFailure => "login_failure",
            Kind::Lockout => "lockout",
            Kind::UploadCompleted => "upload_completed",
            Kind::Download => "download",
            Kind::LinkCreated => "link_created",
            Kind::LinkRevoked => "link_revoked",
            Kind::Delete => "delete",
            Kind::Modify => "modify",
            Kind::Lock => "lock",
            Kind::Unlock => "unlock",
            Kind::Reload => "reload",
            Kind::Scan => "scan",
            Kind::Import => "import",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused: a wrong secret, a lockout.
    Denied,
    /// Attempted and failed (e.g. a reload that kept the old certificate).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// The label of records made by sfx itself (start-up, expiry, reloads).
pub const SYSTEM: &str = "system";

/// An event to record; [`Audit::record`] stamps it with the time, an id and the chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub kind: Kind,
    pub outcome: Outcome,
    /// The client address; empty for events of sfx itself.
    pub client_ip: String,
    /// The secret's label (`anonymous` without one, [`SYSTEM`] for sfx itself); empty when
    /// nobody is known, as for a wrong secret.
    pub label: String,
    /// The item's name; empty for events about no item.
    pub item: String,
    /// What changed, or why it failed.
    pub detail: String,
}

impl AuditEvent {
    /// An event of `kind` that succeeded, by `label` from `client_ip`.
    pub fn new(kind: Kind, client_ip: impl ToString, label: &str) -> AuditEvent {
        AuditEvent {
            kind,
            outcome: Outcome::Ok,
            client_ip: client_ip.to_string(),
            label: label.to_string(),
            item: String::new(),
            detail: String::new(),
        }
    }

    pub fn item(mut self, name: impl ToString) -> AuditEvent {
        self.item = name.to_string();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEvent {
        self.detail = detail.into();
        self
    }

    /// A wrong secret from `client_ip`; `how` says how it was presented.
    pub fn login_failure(client_ip: impl ToString, how: &str) -> AuditEvent {
        let mut e = AuditEvent::new(Kind::LoginFailure, client_ip, "").detail(how);
        e.outcome = Outcome::Denied;
        e
    }

    /// `client_ip` (and the rest of its /64 for IPv6) reached the failed-secret limit.
    pub fn lockout(client_ip: impl ToString, detail: impl Into<String>) -> AuditEvent {
        let mut e = AuditEvent::new(Kind::Lockout, client_ip, "").detail(detail);
        e.outcome = Outcome::Denied;
        e
    }

    /// An item became complete (form upload, or the last chunk of a REST upload).
    pub fn upload_completed(item: &Item) -> AuditEvent {
        AuditEvent::new(
            Kind::UploadCompleted,
            &item.uploader.client_ip,
            &item.uploader.label,
        )
        .item(&item.name)
        .detail(format!(
            "{} ({} bytes, sha256 {})",
            item.filename, item.size, item.sha256
        ))
    }

    /// sfx removed an expired item (or an abandoned incomplete upload) by itself.
    pub fn expired(name: impl ToString) -> AuditEvent {
        AuditEvent::new(Kind::Delete, "", SYSTEM)
            .item(name)
            .detail("expired")
    }

    /// The outcome of an item's antivirus scan: an infected item is `denied` (quarantined), one
    /// that could not be scanned an `error`.
    pub fn scanned(name: impl ToString, state: &ScanState) -> AuditEvent {
        let mut e = AuditEvent::new(Kind::Scan, "", SYSTEM)
            .item(name)
            .detail(state.label());
        e.outcome = match state {
            ScanState::Infected(_) => Outcome::Denied,
            ScanState::NotScanned(_) => Outcome::Error,
            ScanState::Clean | ScanState::Scanning => Outcome::Ok,
        };
        e
    }

    /// The start of a server process.
    pub fn startup() -> AuditEvent {
        AuditEvent::new(Kind::Startup, "", SYSTEM)
            .detail(format!("sfx {} started", env!("CARGO_PKG_VERSION")))
    }

    /// A reload of `what` (e.g. `"certificate"` or `"config"`) on a signal or command: `Ok`
    /// when the new one is in use, `Err(reason)` when it was refused and the old one kept.
    pub fn reload(what: &str, result: Result<(), &str>) -> AuditEvent {
        let mut e = AuditEvent::new(Kind::Reload, "", SYSTEM);
        match result {
            Ok(()) => e.detail = format!("{what} reloaded"),
            Err(reason) => {
                e.outcome = Outcome::Error;
                e.detail = format!("{what} not reloaded: {reason}");
            }
        }
        e
    }
}

/// A stored record: the event's fields as text, its place in the chain and its hash.
/// Everything here is covered by `hash` except `hash` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// 1, 2, 3…: gap-free, so a removed record shows.
    pub id: i64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T03:41:08.123Z`.
    pub time: String,
    pub kind: String,
    pub outcome: String,
    pub client_ip: String,
    pub label: String,
    pub item: String,
    pub detail: String,
    /// The hash of record `id - 1` ([`GENESIS`] for the first record).
    pub prev_hash: String,
    /// Lower-case hex SHA-256 of `prev_hash` and the canonical record.
    pub hash: String,
}

/// Text fields are bounded and one line each: a shipped record must stay one log line, and a
/// hostile filename cannot forge a second record.
pub(crate) fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}
