//! HTTPS: the certificate (from PEM files, or self-signed once and kept under
//! `<data_dir>/tls/`), reloadable without dropping connections, and bounded handshakes.
//!
//! The certificate sits behind a resolver that every handshake asks, so a reload swaps it for
//! new connections while established ones carry on. A bad new certificate leaves the old one.

mod self_signed;

use crate::config::{CertSource, TlsConfig};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

pub use tokio_rustls::server::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the key in {path} is not usable: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Installs aws-lc-rs as the process's one rustls provider (reqwest and lettre use it too);
/// idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The certificate every new handshake gets.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    current: Arc<Current>,
    cert_path: PathBuf,
    key_path: PathBuf,
    self_signed: bool,
    handshake_timeout: Duration,
    handshakes: Semaphore,
}

impl Tls {
    /// Loads (or, for `self_signed`, makes on first start) the certificate. Returns lines for
    /// the operator (where a generated certificate is kept).
    pub fn open(
        config: &TlsConfig,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> Result<(Tls, Vec<String>), TlsError> {
        install_crypto_provider();
        let mut notes = Vec::new();
        let (cert_path, key_path, self_signed) = match &config.source {
            CertSource::Files { cert, key } => (cert.clone(), key.clone(), false),
            CertSource::SelfSigned { hostnames } => {
                let (cert, key, made) = self_signed::ensure(data_dir, hostnames, listen.ip())?;
                if made {
                    notes.push(format!(
                        "generated a self-signed TLS certificate: {}",
                        cert.display()
                    ));
                }
                (cert, key, true)
            }
        };
        let key = load(&cert_path, &key_path)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok((
            Tls {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
                current,
                cert_path,
                key_path,
                self_signed,
                handshake_timeout: config.handshake_timeout,
                handshakes: Semaphore::new(config.max_handshakes),
            },
            notes,
        ))
    }

    /// Re-reads the certificate and key; on any problem the current pair stays in use.
    /// Returns the new certificate's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = load(&self.cert_path, &self.key_path)?;
        let fingerprint = fingerprint_of(&key);
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(fingerprint)
    }

    /// SHA-256 of the certificate in use, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.current.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The TLS handshake of a new connection: at most `max_handshakes` at once, each within
    /// `handshake_timeout` (waiting for a place counts).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake");
        tokio::time::timeout(self.handshake_timeout, async {
            let _place = self
                .handshakes
                .acquire()
                .await
                .map_err(|_| std::io::Error::other("closed"))?;
            self.acceptor.accept(tcp).await
        })
        .await
        .map_err(|_| timed_out())?
    }
}

fn fingerprint_of(key: &CertifiedKey) -> String {
    let der = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads a PEM chain and its key (PKCS#8, PKCS#1 or SEC1) and checks that they belong together.
fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.into(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read(cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(cert_path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| read(key_path, &e))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Key {
        path: key_path.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(source: CertSource) -> TlsConfig {
        TlsConfig {
            source,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 4,
        }
    }

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let cfg = config(CertSource::SelfSigned {
            hostnames: vec!["sfx.example.com".into()],
        });
        let (first, notes) = Tls::open(&cfg, dir.path(), listen).unwrap();
        assert_eq!(notes.len(), 1);
        let (again, notes) = Tls::open(&cfg, dir.path(), listen).unwrap();
        assert!(notes.is_empty());
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let (made, _) = Tls::open(
            &config(CertSource::SelfSigned { hostnames: vec![] }),
            dir.path(),
            listen,
        )
        .unwrap();
        let before = made.fingerprint();
        let (cert, key) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        );
        let files = config(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        });
        let (tls, _) = Tls::open(&files, dir.path(), listen).unwrap();
        assert_eq!(tls.fingerprint(), before);
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.fingerprint(), before, "old certificate kept");
        // A key that does not belong to the certificate is refused too.
        let other = tempfile::tempdir().unwrap();
        Tls::open(
            &config(CertSource::SelfSigned { hostnames: vec![] }),
            other.path(),
            listen,
        )
        .unwrap();
        std::fs::copy(other.path().join("tls/cert.pem"), &cert).unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Key { .. })));
        std::fs::copy(other.path().join("tls/key.pem"), &key).unwrap();
        let new = tls.reload().unwrap();
        assert_ne!(new, before);
        assert_eq!(tls.fingerprint(), new);
    }
}
