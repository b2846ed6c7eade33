//! Helpers of the console tests (`console_list`, `console_zip`, `console_deliveries`): items
//! registered with known metadata, the list's rows, pages after the list's redirect, form
//! posts, and ZIPs saved and read back by Python's zipfile.

use super::*;
use sfx::items::ItemName;
use sfx::store::{Item, ItemState, Uploader};
use std::path::Path;

/// 2026-12-01T00:00:00Z.
pub const DEC_1: i64 = 1_796_083_200;
pub const DAY: i64 = 86_400;

pub fn meta_item(name: &str, filename: &str, size: u64, created: i64) -> Item {
    Item {
        name: ItemName::parse(name).unwrap(),
        filename: filename.into(),
        content_type: "application/gzip".into(),
        size,
        sha256: format!(
            "{:0<64}",
            name.to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_hexdigit(), "")
        ),
        state: ItemState::Complete,
        created_at: created,
        completed_at: Some(created),
        expires_at: None,
        downloaded_at: None,
        locked: false,
        uploader: Uploader {
            label: "customers".into(),
            client_ip: "10.0.0.1".into(),
            user_agent: "curl/8.5.0".into(),
            link: None,
        },
        reference: None,
        comment: None,
        scan: None,
    }
}

/// Item names of a `/+list` page, in order.
pub fn listed(html: &str) -> Vec<String> {
    html.split("<code class=\"name\">")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .map(str::to_string)
        .collect()
}

/// A page, after the list's one redirect to its short address if it makes one.
pub async fn page_as(srv: &TestServer, secret: &str, path: &str) -> (u16, String) {
    let mut resp = get_as(srv, Some(secret), path).await;
    if resp.status() == 303 {
        let to = response_header(&resp, "location");
        assert!(to.starts_with("/+list"), "{path} -> {to}");
        resp = get_as(srv, Some(secret), &to).await;
    }
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Uploads `n` files named `file{i}.bin` with the customers' secret; returns (name, bytes).
pub async fn uploads(srv: &TestServer, files: &[(&str, usize)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, (filename, size)) in files.iter().enumerate() {
        let data = random_bytes(*size, i as u64 + 7);
        let name = upload_form(srv, file_form(filename, data.clone())).await;
        out.push((name, data));
    }
    out
}

pub fn form_of(names: &[&str], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = names
        .iter()
        .map(|n| ("name".to_string(), n.to_string()))
        .collect();
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    form
}

pub async fn post_form(
    srv: &TestServer,
    secret: &str,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    client()
        .post(srv.url(path))
        .basic_auth("user", Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Python's zipfile reads the archive: CRCs checked, members extracted to `dest` ("-": not).
pub async fn zip_check(archive: &Path, dest: &str) -> serde_json::Value {
    let python = venv_python().unwrap_or_else(|| "python3".into());
    let out = tokio::process::Command::new(python)
        .arg(script("zip_check.py"))
        .arg(archive)
        .arg(dest)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "zipfile refused the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["bad"].is_null(), "a member failed its CRC: {report}");
    report
}

/// Streams a response body into a file. Runs of zeros become holes, so the ZIP of a sparse
/// 4 GiB member takes no more disk than its headers (CI machines have little to spare).
pub async fn save(resp: reqwest::Response, path: &Path) -> u64 {
    use futures_util::StreamExt;
    use std::io::SeekFrom;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut file = tokio::fs::File::create(path).await.unwrap();
    let mut stream = resp.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("the body ended with an error");
        n += chunk.len() as u64;
        if chunk.iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(chunk.len() as i64))
                .await
                .unwrap();
        } else {
            file.write_all(&chunk).await.unwrap();
        }
    }
    file.flush().await.unwrap();
    file.set_len(n).await.unwrap();
    n
}

/// A valid item name that is not stored.
pub fn fake_name(i: usize) -> String {
    let alphabet = sfx::items::NAME_ALPHABET;
    (0..8)
        .map(|k| alphabet[(i / 53usize.pow(k as u32)) % 53] as char)
        .collect()
}
