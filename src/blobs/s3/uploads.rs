//! The multipart uploads open under sfx's prefix (S3's ListMultipartUploads, which
//! object_store does not offer), so that the sweeper can abort those no ledger knows: a crash
//! between creating one and recording it in the ledger leaves one behind. Signed with
//! object_store's own SigV4 signer and the same credentials as every other request.

use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use serde::Deserialize;
use std::io;
use std::time::Duration;

/// One open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was created (Unix seconds).
    pub initiated: i64,
}

pub(super) struct Lister {
    http: reqwest::Client,
    /// `…/<bucket>` (path style) or `https://<bucket>.s3.<region>.amazonaws.com`.
    bucket_url: reqwest::Url,
    region: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Page {
    #[serde(default)]
    upload: Vec<Upload>,
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
    initiated: String,
}

impl Lister {
    pub(super) fn new(endpoint: Option<&str>, bucket: &str, region: &str) -> io::Result<Lister> {
        let base = match endpoint {
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let bucket_url = reqwest::Url::parse(&base)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{base}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(io::Error::other)?;
        Ok(Lister {
            http,
            bucket_url,
            region: region.to_string(),
        })
    }

    /// Every upload open under `prefix`, page after page.
    pub(super) async fn list(&self, s3: &AmazonS3, prefix: &str) -> io::Result<Vec<OpenUpload>> {
        let mut found = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self.page(s3, prefix, after.as_ref()).await?;
            for u in page.upload {
                let initiated = u
                    .initiated
                    .parse::<jiff::Timestamp>()
                    .map_err(|e| io::Error::other(format!("Initiated {:?}: {e}", u.initiated)))?
                    .as_second();
                found.push(OpenUpload {
                    key: u.key,
                    upload_id: u.upload_id,
                    initiated,
                });
            }
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(key), Some(id)) => after = Some((key, id)),
                _ => return Ok(found),
            }
        }
    }

    async fn page(
        &self,
        s3: &AmazonS3,
        prefix: &str,
        after: Option<&(String, String)>,
    ) -> io::Result<Page> {
        let mut url = self.bucket_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("uploads", "").append_pair("prefix", prefix);
            if let Some((key, id)) = after {
                q.append_pair("key-marker", key)
                    .append_pair("upload-id-marker", id);
            }
        }
        let credential = s3
            .credentials()
            .get_credential()
            .await
            .map_err(io::Error::other)?;
        let mut signed: HttpRequest = http::Request::get(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(io::Error::other)?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut signed, None)
            .map_err(io::Error::other)?;
        let mut request = self.http.get(url);
        for (name, value) in signed.headers() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(io::Error::other)?;
        let status = response.status();
        let body = response.text().await.map_err(io::Error::other)?;
        if !status.is_success() {
            return Err(io::Error::other(format!(
                "ListMultipartUploads: {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        quick_xml::de::from_str(&body)
            .map_err(|e| io::Error::other(format!("ListMultipartUploads answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn pages_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/files/BBBBBBBB</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/files/AAAAAAAA</Key><UploadId>id1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-12-03T08:00:00.000Z</Initiated></Upload>
  <Upload><Key>p/files/BBBBBBBB</Key><UploadId>id2</UploadId>
    <Initiated>2026-12-03T08:00:01.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page: Page = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.upload.len(), 2);
        assert_eq!(page.upload[1].upload_id, "id2");
        assert_eq!(page.next_key_marker.as_deref(), Some("p/files/BBBBBBBB"));
        let empty: Page = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.upload.is_empty() && !empty.is_truncated);
    }
}
