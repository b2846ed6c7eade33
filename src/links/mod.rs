//! Per-case upload links: an operator makes a link for one case (a reference such as
//! `CASE-1234`), with optional limits (expiry, total size, number of files) and people to tell;
//! the customer gets a URL holding an unguessable token that grants `create` for that case only.
//! Only a SHA-256 of the token is stored, so the URL is shown once, when the link is made.
//!
//! This module is the domain: what a link is, its token, its limits and their checks. The store
//! keeps links ([`crate::store::LinkStore`]); routes and the CLI make and use them.

pub mod commands;

use crate::audit::{Audit, AuditEvent, Kind};
use crate::config::{parse_duration, parse_size};
use crate::store::MetaStore;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Link tokens start with this, so a request's Bearer token is known to be a link (looked up
/// in the store) and not a secret (checked with Argon2) without trying both.
pub const TOKEN_PREFIX: &str = "sfxl_";
/// Random bytes in a token: 256 bits (the issue asks for at least 128).
const TOKEN_BYTES: usize = 32;
/// 43 base64url characters after the prefix.
const TOKEN_CHARS: usize = 43;
const MAX_NOTE: usize = 2000;
const MAX_NOTIFY: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("a link needs a case reference")]
    NoReference,
    #[error("the note is longer than {MAX_NOTE} characters")]
    NoteTooLong,
    #[error("{0}")]
    Invalid(String),
    #[error("`{0}` is not an e-mail address")]
    BadAddress(String),
    #[error("at most {MAX_NOTIFY} addresses to notify")]
    TooManyAddresses,
    #[error("the system's random number generator failed")]
    Random,
    #[error("`notify` needs an e-mail alert channel ([[alerts]] with smtp_url) to send with")]
    NoEmailChannel,
    #[error("no such link")]
    Unknown,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub reference: String,
    pub note: Option<String>,
    pub created_at: i64,
    /// The label of the operator's credential that made it (or `cli`).
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub max_size: Option<u64>,
    pub max_files: Option<u64>,
    /// E-mail addresses told of each delivery through the link (on top of the e-mail channel's).
    pub notify: Vec<String>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

/// What has been sent through a link: its live items, with the declared length of uploads
/// still running counted in full (they will need it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

/// Why a link refuses an upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this upload link was revoked")]
    Revoked,
    #[error("this upload link expired")]
    Expired,
    #[error("this upload link takes at most {max} files, and {used} have been sent")]
    Files { max: u64, used: u64 },
    #[error("this upload link takes at most {max} bytes in all, and {left} are left")]
    Bytes { max: u64, left: u64 },
}

impl Link {
    pub fn status(&self, now: i64) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The label its uploads are made under: uploads are owned by it, and one link's files are
    /// one delivery.
    pub fn label(&self) -> String {
        format!("link:{}", self.id)
    }

    /// Whether the link may still be used at all. Revoked: never again. Expired: no new
    /// uploads, but one begun before the expiry may finish (a customer 40 GiB into a bundle
    /// should not lose it to the clock); `starting` tells which.
    pub fn usable(&self, now: i64, starting: bool) -> Result<(), Refusal> {
        match self.status(now) {
            Status::Revoked => Err(Refusal::Revoked),
            Status::Expired if starting => Err(Refusal::Expired),
            _ => Ok(()),
        }
    }

    /// Checks `files` more files and `bytes` more bytes against the limits, given what was
    /// sent; returns the bytes still allowed (`None`: no size limit).
    pub fn admit(&self, used: Usage, files: u64, bytes: u64) -> Result<Option<u64>, Refusal> {
        if let Some(max) = self.max_files
            && files > 0
            && used.files.saturating_add(files) > max
        {
            return Err(Refusal::Files {
                max,
                used: used.files,
            });
        }
        let Some(max) = self.max_size else {
            return Ok(None);
        };
        let left = max.saturating_sub(used.bytes);
        if bytes > left {
            return Err(Refusal::Bytes { max, left });
        }
        Ok(Some(left))
    }
}

/// A link to make, as an operator asked for it (page form or `sfx link create`).
#[derive(Debug, Clone, Default)]
pub struct NewLink {
    pub reference: String,
    pub note: Option<String>,
    pub expires_at: Option<i64>,
    pub max_size: Option<u64>,
    pub max_files: Option<u64>,
    pub notify: Vec<String>,
}

/// The operator's words for a new link, unparsed.
#[derive(Debug, Clone, Default)]
pub struct LinkRequest<'a> {
    pub reference: &'a str,
    pub note: Option<&'a str>,
    /// A duration (`7d`, `12h`); empty: never.
    pub expires: Option<&'a str>,
    /// A size (`50GiB`); empty: no limit.
    pub max_size: Option<&'a str>,
    pub max_files: Option<&'a str>,
    /// Addresses separated by commas, spaces or new lines.
    pub notify: Option<&'a str>,
}

fn filled(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl LinkRequest<'_> {
    pub fn parse(&self, now: i64) -> Result<NewLink, LinkError> {
        let reference = crate::upload::engine::clean_reference(Some(self.reference))
            .map_err(|e| LinkError::Invalid(e.to_string()))?
            .ok_or(LinkError::NoReference)?;
        let note = filled(self.note).map(str::to_string);
        if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
            return Err(LinkError::NoteTooLong);
        }
        let expires_at = match filled(self.expires) {
            None => None,
            Some(text) => {
                let d = parse_duration(text).map_err(LinkError::Invalid)?;
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if secs == 0 {
                    return Err(LinkError::Invalid(
                        "the expiry must be in the future".into(),
                    ));
                }
                Some(now.saturating_add(secs))
            }
        };
        let max_size = filled(self.max_size)
            .map(parse_size)
            .transpose()
            .map_err(LinkError::Invalid)?;
        let max_files = filled(self.max_files)
            .map(|t| {
                t.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| LinkError::Invalid(format!("`{t}` is not a number of files")))
            })
            .transpose()?;
        let notify = parse_addresses(self.notify.unwrap_or(""))?;
        Ok(NewLink {
            reference,
            note,
            expires_at,
            max_size,
            max_files,
            notify,
        })
    }
}

/// E-mail addresses, checked by lettre's parser (the one that will send to them).
pub fn parse_addresses(text: &str) -> Result<Vec<String>, LinkError> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split([',', ' ', '\n', '\r', '\t', ';']) {
        let word = word.trim();
        if word.is_empty() {
            continue;
        }
        word.parse::<lettre::Address>()
            .map_err(|_| LinkError::BadAddress(word.chars().take(100).collect()))?;
        if !out.iter().any(|a| a.eq_ignore_ascii_case(word)) {
            out.push(word.to_string());
        }
    }
    if out.len() > MAX_NOTIFY {
        return Err(LinkError::TooManyAddresses);
    }
    Ok(out)
}

/// Makes a link: stores it under its token's hash, records it in the audit trail and returns
/// it with its token (the only time the token exists outside the customer's hands).
pub fn create(
    store: &dyn MetaStore,
    audit: &Audit,
    new: &NewLink,
    by: &str,
    client_ip: &str,
    now: i64,
) -> Result<(Link, String), LinkError> {
    let (token, hash) = new_token()?;
    let id = store.create_link(new, &hash, by, now)?;
    let link = store.link(id)?.ok_or(LinkError::Unknown)?;
    let detail = format!("case {}", link.reference);
    let event = AuditEvent::new(Kind::LinkCreated, client_ip, by)
        .item(link.label())
        .detail(detail);
    audit.record_blocking(event);
    Ok((link, token))
}

/// Revokes a link (its URL answers `410 Gone` from then on); false if it was already.
pub fn revoke(
    store: &dyn MetaStore,
    audit: &Audit,
    id: i64,
    by: &str,
    client_ip: &str,
    now: i64,
) -> Result<bool, LinkError> {
    let link = store.link(id)?.ok_or(LinkError::Unknown)?;
    let revoked = store.revoke_link(id, by, now)?;
    if revoked {
        let event = AuditEvent::new(Kind::LinkRevoked, client_ip, by)
            .item(link.label())
            .detail(format!("case {}", link.reference));
        audit.record_blocking(event);
    }
    Ok(revoked)
}

/// A new token and the hash to store.
pub fn new_token() -> Result<(String, String), LinkError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| LinkError::Random)?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// Whether `text` has the shape of a link token (before any lookup).
pub fn is_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == TOKEN_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            id: 1,
            reference: "CASE-1".into(),
            note: None,
            created_at: 0,
            created_by: "ops".into(),
            expires_at: Some(100),
            max_size: Some(1000),
            max_files: Some(3),
            notify: vec![],
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[test]
    fn limits() {
        let l = link();
        let used = |files, bytes| Usage { files, bytes };
        type Case = (Usage, u64, u64, Result<Option<u64>, Refusal>);
        let cases: &[Case] = &[
            (used(0, 0), 1, 10, Ok(Some(1000))),
            (used(2, 900), 1, 100, Ok(Some(100))),
            (
                used(2, 900),
                1,
                101,
                Err(Refusal::Bytes {
                    max: 1000,
                    left: 100,
                }),
            ),
            (used(3, 0), 1, 0, Err(Refusal::Files { max: 3, used: 3 })),
            // An append to a running upload adds no file.
            (used(3, 10), 0, 5, Ok(Some(990))),
        ];
        for (u, files, bytes, want) in cases {
            assert_eq!(
                &l.admit(*u, *files, *bytes),
                want,
                "{u:?} +{files} files +{bytes}"
            );
        }
    }

    #[test]
    fn expiry_and_revocation() {
        let mut l = link();
        assert_eq!(l.usable(99, true), Ok(()));
        assert_eq!(l.usable(100, true), Err(Refusal::Expired));
        assert_eq!(l.usable(100, false), Ok(()), "a running upload may finish");
        l.revoked_at = Some(50);
        assert_eq!(l.usable(60, false), Err(Refusal::Revoked));
    }

    #[test]
    fn requests() {
        let ok = LinkRequest {
            reference: " CASE-1234 ",
            expires: Some("7d"),
            max_size: Some("50GiB"),
            max_files: Some("20"),
            notify: Some("ops@example.com, Ops@example.com b@example.org"),
            note: Some("Please send the sosreport of node 3"),
        }
        .parse(1000)
        .unwrap();
        assert_eq!(ok.reference, "CASE-1234");
        assert_eq!(ok.expires_at, Some(1000 + 7 * 86400));
        assert_eq!(ok.max_size, Some(50 << 30));
        assert_eq!(ok.max_files, Some(20));
        assert_eq!(ok.notify, vec!["ops@example.com", "b@example.org"]);
        let bad: &[LinkRequest] = &[
            LinkRequest {
                reference: "",
                ..Default::default()
            },
            LinkRequest {
                reference: "C",
                expires: Some("soon"),
                ..Default::default()
            },
            LinkRequest {
                reference: "C",
                max_size: Some("big"),
                ..Default::default()
            },
            LinkRequest {
                reference: "C",
                max_files: Some("0"),
                ..Default::default()
            },
            LinkRequest {
                reference: "C",
                notify: Some("not-an-address"),
                ..Default::default()
            },
        ];
        for r in bad {
            assert!(r.parse(0).is_err(), "{r:?}");
        }
    }

    #[test]
    fn tokens() {
        let (t, h) = new_token().unwrap();
        assert!(is_token(&t), "{t}");
        assert_eq!(h, token_hash(&t));
        assert!(!is_token("support"));
        assert!(!is_token(&format!("{TOKEN_PREFIX}short")));
        assert!(!is_token(&t.replace('_', "/")));
    }
}
