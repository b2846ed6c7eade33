//! Checking a presented secret against the configured ones, in constant time.
//!
//! Plain secrets are compared as SHA-256 digests with `subtle` (equal lengths, no early exit).
//! Argon2id hashes cost ~25 ms each, and curl sends Basic auth on every request, so a secret
//! that verified once is remembered (keyed by an HMAC under a per-process key, never the
//! secret itself).

use super::Permissions;
use crate::config::{SecretCheck, SecretSpec};
use argon2::PasswordVerifier;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

const CACHE_LIMIT: usize = 1024;

/// What a valid secret grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub label: String,
    pub permissions: Permissions,
    /// Changes whenever the secret or its permissions change; sessions carry it, so editing
    /// the config invalidates old logins (a bepasty security fix we keep).
    pub fingerprint: String,
}

struct Entry {
    grant: Grant,
    plain_digest: Option<[u8; 32]>,
    hash: Option<String>,
}

pub struct SecretBook {
    entries: Vec<Entry>,
    /// Argon2 verifications at once: each takes ~25 ms of CPU and 19 MiB.
    hashing: tokio::sync::Semaphore,
    cache_key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], usize>>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

impl SecretBook {
    pub fn new(specs: &[SecretSpec]) -> std::io::Result<SecretBook> {
        let mut cache_key = [0u8; 32];
        getrandom::fill(&mut cache_key).map_err(std::io::Error::other)?;
        let entries = specs
            .iter()
            .map(|s| {
                let material = match &s.check {
                    SecretCheck::Plain(p) => format!("plain:{p}"),
                    SecretCheck::Hash(h) => format!("hash:{h}"),
                };
                let fingerprint = hex::encode(
                    &sha256(format!("{}\n{}\n{material}", s.label, s.permissions).as_bytes())[..12],
                );
                Entry {
                    grant: Grant {
                        label: s.label.clone(),
                        permissions: s.permissions,
                        fingerprint,
                    },
                    plain_digest: match &s.check {
                        SecretCheck::Plain(p) => Some(sha256(p.as_bytes())),
                        SecretCheck::Hash(_) => None,
                    },
                    hash: match &s.check {
                        SecretCheck::Hash(h) => Some(h.clone()),
                        SecretCheck::Plain(_) => None,
                    },
                }
            })
            .collect();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(SecretBook {
            entries,
            hashing: tokio::sync::Semaphore::new(cpus),
            cache_key,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The grant of the secret with this label (used to revalidate sessions).
    pub fn by_label(&self, label: &str) -> Option<&Grant> {
        self.entries
            .iter()
            .map(|e| &e.grant)
            .find(|g| g.label == label)
    }

    /// The grant for a presented secret, or `None` if it matches nothing.
    pub async fn verify(self: &Arc<Self>, presented: &str) -> Option<Grant> {
        let digest = sha256(presented.as_bytes());
        let mut found = None;
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(d) = &e.plain_digest {
                // No early exit: every plain secret is compared.
                if bool::from(d.ct_eq(&digest)) && found.is_none() {
                    found = Some(i);
                }
            }
        }
        if let Some(i) = found {
            return Some(self.entries[i].grant.clone());
        }
        if !self.entries.iter().any(|e| e.hash.is_some()) {
            return None;
        }
        let key = self.cache_key_for(presented);
        let cached = self.lock_cache().get(&key).copied();
        if let Some(i) = cached {
            return Some(self.entries[i].grant.clone());
        }
        let _permit = self.hashing.acquire().await.ok()?;
        let book = Arc::clone(self);
        let presented = presented.to_string();
        let index = tokio::task::spawn_blocking(move || book.verify_hashes(&presented))
            .await
            .ok()
            .flatten()?;
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, index);
        Some(self.entries[index].grant.clone())
    }

    fn verify_hashes(&self, presented: &str) -> Option<usize> {
        let argon = argon2::Argon2::default();
        self.entries.iter().position(|e| {
            e.hash
                .as_deref()
                .is_some_and(|h| argon.verify_password(presented.as_bytes(), h).is_ok())
        })
    }

    fn cache_key_for(&self, presented: &str) -> [u8; 32] {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.cache_key)
            .expect("HMAC takes any key length");
        mac.update(presented.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], usize>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An Argon2id PHC string for `secret` (what `sfx hash-secret` prints).
pub fn hash_secret(secret: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permission;

    fn spec(label: &str, check: SecretCheck, p: Permission) -> SecretSpec {
        SecretSpec {
            label: label.into(),
            check,
            permissions: [p].into_iter().collect(),
        }
    }

    #[tokio::test]
    async fn plain_and_hashed() {
        let hash = hash_secret("s3cret-admin").unwrap();
        let book = Arc::new(
            SecretBook::new(&[
                spec(
                    "customers",
                    SecretCheck::Plain("support".into()),
                    Permission::Create,
                ),
                spec("ops", SecretCheck::Hash(hash), Permission::Admin),
            ])
            .unwrap(),
        );
        assert_eq!(book.verify("support").await.unwrap().label, "customers");
        assert_eq!(book.verify("s3cret-admin").await.unwrap().label, "ops");
        assert_eq!(
            book.verify("s3cret-admin").await.unwrap().label,
            "ops",
            "cached"
        );
        assert!(book.verify("wrong").await.is_none());
        assert!(book.verify("").await.is_none());
        assert!(book.verify("Support").await.is_none());
    }
}
