//! Login sessions and other server-signed tokens.
//!
//! A session is a stateless cookie `v1.<sid>.<label>.<expires>.<fingerprint>.<mac>`; the MAC is
//! HMAC-SHA256 under a key kept in the data directory (so logins survive restarts). The cookie
//! names the secret's label, not its permissions: permissions are looked up in the current
//! config each time, and a changed secret (new fingerprint) ends its sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use std::io::{self, Write};
use std::path::Path;

pub const COOKIE_NAME: &str = "sfx_session";

type HmacSha256 = hmac::Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random per login; binds receipts to the browser that made the uploads.
    pub sid: String,
    pub label: String,
    pub expires: i64,
    pub fingerprint: String,
}

pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    /// Loads the key from `path`, creating it (mode 0600) on first start.
    /// A signer of a key kept elsewhere (the shared metadata store); 32 bytes.
    pub fn from_key(bytes: &[u8]) -> io::Result<Signer> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| io::Error::other("a session key must hold exactly 32 bytes"))?;
        Ok(Signer { key })
    }

    pub fn load_or_create(path: &Path) -> io::Result<Signer> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    io::Error::other(format!("{} must hold exactly 32 bytes", path.display()))
                })?;
                Ok(Signer { key })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(io::Error::other)?;
                write_private(path, &key)?;
                Ok(Signer { key })
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, purpose: &str, data: &str) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        // Domain separation: a token made for one purpose never verifies for another.
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        mac
    }

    /// `data.<mac>` for `purpose`.
    pub fn sign(&self, purpose: &str, data: &str) -> String {
        let tag = self.mac(purpose, data).finalize().into_bytes();
        format!("{data}.{}", B64.encode(tag))
    }

    /// The data of a token made by [`Signer::sign`] for `purpose`, if its MAC is right.
    pub fn verify<'a>(&self, purpose: &str, token: &'a str) -> Option<&'a str> {
        let (data, tag) = token.rsplit_once('.')?;
        let tag = B64.decode(tag).ok()?;
        self.mac(purpose, data).verify_slice(&tag).ok()?;
        Some(data)
    }

    pub fn new_session(
        &self,
        label: &str,
        fingerprint: &str,
        expires: i64,
    ) -> io::Result<(Session, String)> {
        let mut sid = [0u8; 16];
        getrandom::fill(&mut sid).map_err(io::Error::other)?;
        let session = Session {
            sid: B64.encode(sid),
            label: label.to_string(),
            expires,
            fingerprint: fingerprint.to_string(),
        };
        let data = format!(
            "v1.{}.{}.{}.{}",
            session.sid,
            B64.encode(label),
            expires,
            fingerprint
        );
        Ok((session, self.sign("session", &data)))
    }

    pub fn read_session(&self, cookie: &str, now: i64) -> Option<Session> {
        let data = self.verify("session", cookie)?;
        let mut parts = data.split('.');
        let (Some("v1"), Some(sid), Some(label), Some(expires), Some(fp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expires: i64 = expires.parse().ok()?;
        let label = String::from_utf8(B64.decode(label).ok()?).ok()?;
        (expires > now).then(|| Session {
            sid: sid.to_string(),
            label,
            expires,
            fingerprint: fp.to_string(),
        })
    }
}

/// Writes a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_roundtrip_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(&dir.path().join("k")).unwrap();
        let (s, cookie) = signer.new_session("support-team", "fp1", 100).unwrap();
        assert_eq!(signer.read_session(&cookie, 50), Some(s));
        assert_eq!(signer.read_session(&cookie, 100), None, "expired");
        let forged = cookie.replace(&B64.encode("support-team"), &B64.encode("admins"));
        assert_eq!(signer.read_session(&forged, 50), None);
        assert!(
            signer.verify("receipt", &cookie).is_none(),
            "purposes are separated"
        );
        let again = Signer::load_or_create(&dir.path().join("k")).unwrap();
        assert!(again.read_session(&cookie, 50).is_some(), "key persists");
    }
}
