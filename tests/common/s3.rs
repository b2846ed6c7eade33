//! `SFX_TEST_BLOBS=s3`: every [`TestServer`](super::TestServer) keeps its items' bytes in the
//! S3 server at `SFX_TEST_S3_ENDPOINT` (moto, started by `.ci/s3.sh`), under a key prefix of its
//! data directory's own in the bucket `sfx-test`, so the integration suites run against the
//! object store too. Like the PostgreSQL database, the prefix belongs to the data directory: a
//! server restarted on it finds its objects again.

use std::path::Path;

/// The bucket `.ci/s3.sh` creates.
pub const BUCKET: &str = "sfx-test";

/// The S3 server's URL, if the tests have one (`SFX_TEST_S3_ENDPOINT`).
pub fn endpoint() -> Option<String> {
    std::env::var("SFX_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// A `[storage]` table for an S3 prefix of its own (5 MiB parts, S3's smallest, so that small
/// test files already span several; a 3 s lease, so that take-overs are quick).
pub fn storage_toml(prefix: &str) -> String {
    let endpoint = endpoint().expect("SFX_TEST_S3_ENDPOINT (run .ci/s3.sh)");
    format!(
        "\n[storage]\nkind = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\nprefix = \"{prefix}\"\npart_size = \"5MiB\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\nlease = \"3s\"\n"
    )
}

/// The `[storage]` table for `data_dir`'s server when the suites are to run on S3; else `None`.
pub fn storage_toml_for(data_dir: &Path) -> Option<String> {
    if std::env::var("SFX_TEST_BLOBS").as_deref() != Ok("s3") {
        return None;
    }
    Some(storage_toml(&prefix_for(data_dir)))
}

/// A key prefix unique to `data_dir` (its path is unique while the test runs).
pub fn prefix_for(data_dir: &Path) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("it-{}/", &hex::encode(digest)[..24])
}

/// Keys of the multipart uploads still open under `prefix`, as the S3 server lists them (moto
/// answers this unsigned).
pub async fn open_multipart_uploads(prefix: &str) -> Vec<String> {
    let endpoint = endpoint().expect("SFX_TEST_S3_ENDPOINT");
    let url = format!("{endpoint}/{BUCKET}?uploads&prefix={prefix}");
    let xml = reqwest::get(&url)
        .await
        .expect("ListMultipartUploads")
        .text()
        .await
        .expect("its answer");
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}
