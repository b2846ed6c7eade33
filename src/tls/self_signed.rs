//! The self-signed certificate of `[tls] self_signed = true`: made at first start, kept in
//! `<data_dir>/tls/{cert,key}.pem` (key 0600), and reused, so its fingerprint stays the same
//! for the customers who checked it. Delete the directory to make a new one.

use super::TlsError;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Paths of the certificate and key, and whether they were made now.
pub(super) fn ensure(
    data_dir: &Path,
    hostnames: &[String],
    listen_ip: IpAddr,
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(write_err(&dir))?;
    }
    let (cert_pem, key_pem) = generate(hostnames, listen_ip)?;
    // Key first: a crash before the certificate is written makes the next start generate both.
    replace_private(&key, key_pem.as_bytes()).map_err(write_err(&key))?;
    replace_private(&cert, cert_pem.as_bytes()).map_err(write_err(&cert))?;
    Ok((cert, key, true))
}

fn generate(hostnames: &[String], listen_ip: IpAddr) -> Result<(String, String), TlsError> {
    let mut names: Vec<String> = hostnames.to_vec();
    if !listen_ip.is_unspecified() {
        names.push(listen_ip.to_string());
    }
    names.push("localhost".into());
    names.dedup();
    let fail = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(fail)?;
    let mut dn = rcgen::DistinguishedName::new();
    let common_name = hostnames.first().map_or("sfx", String::as_str);
    dn.push(rcgen::DnType::CommonName, common_name);
    dn.push(rcgen::DnType::OrganizationName, "sfx self-signed");
    params.distinguished_name = dn;
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let year = i32::from(today.year());
    params.not_before = rcgen::date_time_ymd(year, today.month() as u8, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, today.month() as u8, 1);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `path` (mode 0600) through a temporary file and a rename.
fn replace_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    crate::auth::write_private(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
