//! TLS to PostgreSQL, when `[metadata] url` asks for it (`?sslmode=require`, or `prefer`):
//! rustls (aws-lc-rs, as everywhere in sfx), the server's certificate always verified, against
//! `[metadata] ca_file` or else the system's roots. Without `sslmode` in the URL the
//! connection is plain TCP, as before (a database on the same host or a private network);
//! libpq's unverified "prefer" is not offered.

use crate::store::StoreError;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Whether `url` names an `sslmode` at all (tokio-postgres's own default is "prefer").
pub(super) fn asked(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")))
}

pub(super) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let bad = |why: String| StoreError::Backend(format!("metadata TLS: {why}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(bad(format!("{}: no certificate in it", path.display())));
            }
        }
        None => {
            // Unreadable system certificates are skipped; none at all fails the handshake,
            // which names the problem.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sslmode_is_asked_for_by_the_url_only() {
        for (url, asked) in [
            ("postgres://u@h/db", false),
            ("postgres://u@h/db?application_name=x", false),
            ("postgres://u@h/db?sslmode=require", true),
            ("postgres://u@h/db?application_name=x&sslmode=prefer", true),
            ("postgres://u:sslmode=x@h/db", false),
        ] {
            assert_eq!(super::asked(url), asked, "{url}");
        }
    }
}
