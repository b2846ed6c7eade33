//! Who is asking, and what they may do.
//!
//! bepasty's model: a shared secret maps to a permission set; the Basic-auth user name is
//! ignored. A secret can be presented as Basic auth (or Bearer), as a `token` query or form
//! field, or through the login session. Without any, the configured default permissions apply.
//! A secret that is presented but wrong is refused (403), and repeated failures from one
//! address are locked out for a while.

mod lockout;
mod permissions;
mod secrets;
mod session;

pub use lockout::Lockout;
pub use permissions::{Permission, Permissions};
pub use secrets::{Grant, SecretBook, hash_secret};
pub use session::{COOKIE_NAME, Session, Signer, write_private};

use crate::audit::{Audit, AuditEvent};
use base64::Engine;
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("wrong secret")]
    WrongSecret,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("too many failed attempts from this address; try again later")]
    LockedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Anonymous,
    /// `Authorization: Basic` or `Bearer`.
    Header,
    /// `token` in the query string or form.
    Token,
    Session,
}

impl Source {
    /// How a secret was presented, for the audit trail. A secret checked for a session comes
    /// from the login form.
    pub fn how(self) -> &'static str {
        match self {
            Source::Anonymous => "none",
            Source::Header => "Authorization header",
            Source::Token => "token",
            Source::Session => "login form",
        }
    }
}

/// The outcome of authentication for one request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Label of the secret used; `None` for anonymous requests.
    pub label: Option<String>,
    pub permissions: Permissions,
    pub source: Source,
    pub session: Option<Session>,
    /// Set when the credential is a per-case upload link (it grants `create` only).
    pub link: Option<Arc<crate::links::Link>>,
}

impl Principal {
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.has(p)
    }

    /// The upload link this credential is, if it is one.
    pub fn link_id(&self) -> Option<i64> {
        self.link.as_ref().map(|l| l.id)
    }

    pub fn label_or_anonymous(&self) -> &str {
        self.label.as_deref().unwrap_or("anonymous")
    }
}

pub struct Auth {
    pub secrets: Arc<SecretBook>,
    pub signer: Signer,
    pub lockout: Lockout,
    pub default_permissions: Permissions,
    /// Wrong secrets and lockouts are recorded here, however the secret was presented.
    pub audit: Audit,
}

impl Auth {
    /// Authenticates from the request head: Authorization header, then `?token=`, then the
    /// session cookie. A `token` form field is checked later by the upload handler.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        peer: IpAddr,
        now: i64,
    ) -> Result<Principal, AuthError> {
        if let Some(secret) = presented_in_header(headers)? {
            return self.check_secret(&secret, peer, Source::Header).await;
        }
        if let Some(token) = query_token.filter(|t| !t.is_empty()) {
            return self.check_secret(token, peer, Source::Token).await;
        }
        if let Some(session) = self.session_from(headers, now)
            && let Some(grant) = self
                .secrets
                .by_label(&session.label)
                .filter(|g| g.fingerprint == session.fingerprint)
        {
            return Ok(Principal {
                label: Some(grant.label.clone()),
                permissions: grant.permissions,
                source: Source::Session,
                session: Some(session),
                link: None,
            });
        }
        Ok(self.anonymous())
    }

    pub fn anonymous(&self) -> Principal {
        Principal {
            label: None,
            permissions: self.default_permissions,
            source: Source::Anonymous,
            session: None,
            link: None,
        }
    }

    /// Checks one presented secret, counting failures per client address.
    pub async fn check_secret(
        &self,
        secret: &str,
        peer: IpAddr,
        source: Source,
    ) -> Result<Principal, AuthError> {
        // A NUL or control character is never part of a secret: refuse it rather than pass it
        // on to a comparison, a hash or a log line.
        if has_control(secret) {
            return Err(AuthError::Malformed);
        }
        if !self.lockout.begin(peer) {
            return Err(AuthError::LockedOut);
        }
        let grant = self.secrets.verify(secret).await;
        let locked_now = self.lockout.finish(peer, grant.is_none());
        match grant {
            Some(grant) => Ok(Principal {
                label: Some(grant.label),
                permissions: grant.permissions,
                source,
                session: None,
                link: None,
            }),
            None => {
                tracing::info!(%peer, "wrong secret presented");
                let mut events = vec![AuditEvent::login_failure(peer, source.how())];
                if locked_now {
                    tracing::warn!(%peer, "address locked out after repeated wrong secrets");
                    events.push(AuditEvent::lockout(peer, self.lockout.describe()));
                }
                self.audit.record_all(events).await;
                Err(AuthError::WrongSecret)
            }
        }
    }

    /// Before an upload link's token is looked up: refused while the address is locked out,
    /// as for secrets (link tokens cannot be guessed, but trying should cost the same).
    pub fn link_begin(&self, peer: IpAddr) -> Result<(), AuthError> {
        if self.lockout.begin(peer) {
            Ok(())
        } else {
            Err(AuthError::LockedOut)
        }
    }

    /// After the lookup: a link grants `create` for its case, under its own label; an unknown
    /// token counts as a wrong secret.
    pub async fn link_end(
        &self,
        link: Option<crate::links::Link>,
        peer: IpAddr,
        source: Source,
    ) -> Result<Principal, AuthError> {
        let locked_now = self.lockout.finish(peer, link.is_none());
        match link {
            Some(link) => Ok(Principal {
                label: Some(link.label()),
                permissions: [Permission::Create].into_iter().collect(),
                source,
                session: None,
                link: Some(Arc::new(link)),
            }),
            None => {
                tracing::info!(%peer, "unknown upload link presented");
                let mut events = vec![AuditEvent::login_failure(peer, "upload link")];
                if locked_now {
                    events.push(AuditEvent::lockout(peer, self.lockout.describe()));
                }
                self.audit.record_all(events).await;
                Err(AuthError::WrongSecret)
            }
        }
    }

    /// A valid, unexpired session cookie, if the request carries one.
    pub fn session_from(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|c| c.name() == COOKIE_NAME)
            .find_map(|c| self.signer.read_session(c.value(), now))
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn presented_in_header(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    match headers.get(http::header::AUTHORIZATION) {
        Some(value) => parse_authorization(value.as_bytes()),
        None => Ok(None),
    }
}

/// The secret in an `Authorization` value: `Basic` (password part; the user is ignored but must
/// be clean text too) or `Bearer`. An empty password counts as no credentials, as bepasty
/// clients send `user:` for anonymous. NUL and control characters anywhere are malformed.
pub fn parse_authorization(value: &[u8]) -> Result<Option<String>, AuthError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| AuthError::Malformed)?
        .trim();
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let secret = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthError::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
        let (_user, password) = text.split_once(':').ok_or(AuthError::Malformed)?;
        if has_control(&text) {
            return Err(AuthError::Malformed);
        }
        password.to_string()
    } else if scheme.eq_ignore_ascii_case("bearer") && !has_control(rest) {
        rest.trim().to_string()
    } else {
        return Err(AuthError::Malformed);
    };
    Ok((!secret.is_empty()).then_some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn header_forms() {
        assert_eq!(
            presented_in_header(&with_auth("Basic dXNlcjpzdXBwb3J0"))
                .unwrap()
                .unwrap(),
            "support"
        );
        assert_eq!(
            presented_in_header(&with_auth("basic eDpzdXBwb3J0"))
                .unwrap()
                .unwrap(),
            "support"
        );
        assert_eq!(
            presented_in_header(&with_auth("Bearer abc"))
                .unwrap()
                .unwrap(),
            "abc"
        );
        assert_eq!(
            presented_in_header(&with_auth("Basic dXNlcjo=")).unwrap(),
            None,
            "user: is anonymous"
        );
        assert_eq!(
            presented_in_header(&with_auth("Basic !!!")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            presented_in_header(&with_auth("Digest x")),
            Err(AuthError::Malformed)
        );
        assert_eq!(presented_in_header(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn control_characters_are_malformed() {
        use base64::engine::general_purpose::STANDARD;
        for creds in [
            "user:sup\0port",
            "us\0er:support",
            "user:support\r\n",
            "u\x1b:x",
            "user:\x7f",
        ] {
            let value = format!("Basic {}", STANDARD.encode(creds));
            assert_eq!(
                parse_authorization(value.as_bytes()),
                Err(AuthError::Malformed),
                "{creds:?}"
            );
        }
        assert_eq!(
            parse_authorization(b"Bearer ab\x01c"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            parse_authorization(b"Basic \xff"),
            Err(AuthError::Malformed)
        );
    }
}
