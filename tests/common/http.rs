//! Talking to the server: reqwest helpers, the real `curl`, and raw sockets.

use super::{ADMIN, CUSTOMER, Endpoint, ITEMS, b64, header_value, name_from_location};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// reqwest

/// A reqwest client that does not follow redirects (we check them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client with a cookie jar (a browser's session), not following redirects; and its jar.
pub fn browser() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .expect("client");
    (client, jar)
}

/// A multipart form with one file part, `file`.
pub fn file_form(filename: &str, body: impl Into<Cow<'static, [u8]>>) -> Form {
    Form::new().part("file", Part::bytes(body).file_name(filename.to_string()))
}

/// POSTs `form` to `/+upload`, with `secret` as Basic auth when given.
pub async fn post_upload(
    srv: &impl Endpoint,
    secret: Option<&str>,
    form: Form,
) -> reqwest::Response {
    let mut req = client().post(srv.url("/+upload")).multipart(form);
    if let Some(s) = secret {
        req = req.basic_auth("user", Some(s));
    }
    req.send().await.expect("upload sent")
}

/// Uploads `form` with the customers' secret; asserts the 302 and returns the new item's name.
pub async fn upload_form(srv: &impl Endpoint, form: Form) -> String {
    let resp = post_upload(srv, Some(CUSTOMER), form).await;
    assert_eq!(resp.status(), reqwest::StatusCode::FOUND, "form upload");
    location_name(&resp)
}

/// POSTs the login form (`token`, and any other `fields`) with `http`: [`client`], or a client
/// with its own cookie jar.
pub async fn post_login(
    http: &reqwest::Client,
    srv: &impl Endpoint,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let req = http.post(srv.url("/+login")).form(fields);
    req.send().await.expect("login sent")
}

/// A header of `resp`, which must be there.
pub fn response_header(resp: &reqwest::Response, name: &str) -> String {
    let value = resp.headers().get(name);
    let value = value.unwrap_or_else(|| panic!("no {name} on the {} answer", resp.status()));
    value.to_str().expect("ASCII header").to_string()
}

/// The item name in a form upload's `Location`.
pub fn location_name(resp: &reqwest::Response) -> String {
    name_from_location(&response_header(resp, "location"))
}

/// One chunk of a bepasty REST upload with the customers' secret: the raw bytes `range` of
/// `data` (base64 in the body), continuing transaction `tid` if given, with `headers` added.
pub async fn rest_chunk(
    srv: &impl Endpoint,
    data: &[u8],
    range: std::ops::Range<usize>,
    tid: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, data.len());
    let mut req = client()
        .post(srv.url(ITEMS))
        .basic_auth("user", Some(CUSTOMER))
        .header("Content-Range", content_range)
        .body(b64(&data[range]));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(t) = tid {
        req = req.header("Transaction-ID", t);
    }
    req.send().await.expect("chunk sent")
}

/// GETs `path`, with `secret` as Basic auth when given.
pub async fn get_as(srv: &impl Endpoint, secret: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = client().get(srv.url(path));
    if let Some(s) = secret {
        req = req.basic_auth("user", Some(s));
    }
    req.send().await.expect("GET sent")
}

/// GETs `path` as the operator (the admin secret) and asserts a 200.
pub async fn admin_get(srv: &impl Endpoint, path: &str) -> reqwest::Response {
    let resp = get_as(srv, Some(ADMIN), path).await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {path}");
    resp
}

pub async fn admin_text(srv: &impl Endpoint, path: &str) -> String {
    admin_get(srv, path).await.text().await.expect("body")
}

pub async fn admin_json(srv: &impl Endpoint, path: &str) -> Value {
    admin_get(srv, path).await.json().await.expect("JSON body")
}

/// An item's stored metadata (`file-meta` of `GET /apis/rest/items/<name>`, as the operator).
pub async fn file_meta(srv: &impl Endpoint, name: &str) -> Value {
    admin_json(srv, &format!("{ITEMS}/{name}")).await["file-meta"].clone()
}

/// `GET /apis/rest/items` as the operator: item name -> `{"file-meta": ..., "uri": ...}`.
pub async fn listing(srv: &impl Endpoint) -> serde_json::Map<String, Value> {
    match admin_json(srv, ITEMS).await {
        Value::Object(m) => m,
        other => panic!("listing is not an object: {other}"),
    }
}

/// `GET /healthz` (no credentials, any status).
pub async fn healthz(srv: &impl Endpoint) -> Value {
    get_as(srv, None, "/healthz")
        .await
        .json()
        .await
        .expect("JSON health")
}

/// bepasty's JSON error body: `{"error":{"code":N,"message":"..."}}` with a non-empty message,
/// which is returned.
#[track_caller]
pub fn assert_error_body(v: &Value, code: u16) -> String {
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no error message: {v}");
    message.to_string()
}

/// A JSON error answer: status `code`, a JSON content type, bepasty's error body.
pub async fn assert_json_error(resp: reqwest::Response, code: u16) -> String {
    assert_eq!(resp.status().as_u16(), code);
    let ct = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        ct.starts_with("application/json"),
        "error content type {ct}"
    );
    assert_error_body(&resp.json().await.expect("JSON error"), code)
}

// ---------------------------------------------------------------------------------------------
// curl

pub struct CurlOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `curl` with these arguments.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let out = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    CurlOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub struct CurlStatus {
    pub code: u16,
    /// Bytes of request body curl sent.
    pub size_upload: f64,
    pub body: String,
    pub stderr: String,
}

/// Runs curl with `-sS -o BODY -w '%{http_code} %{size_upload}'` plus `args`.
pub async fn curl_status(args: &[&str]) -> CurlStatus {
    let tmp = tempfile::tempdir().unwrap();
    let body_path = tmp.path().join("body");
    let mut all = vec![
        "-sS",
        "-o",
        body_path.to_str().unwrap(),
        "-w",
        "%{http_code} %{size_upload}",
    ];
    all.extend_from_slice(args);
    let out = curl(&all).await;
    let mut w = out.stdout.split_whitespace();
    CurlStatus {
        code: w.next().and_then(|c| c.parse().ok()).unwrap_or(0),
        size_upload: w.next().and_then(|c| c.parse().ok()).unwrap_or(-1.0),
        body: std::fs::read_to_string(&body_path).unwrap_or_default(),
        stderr: out.stderr,
    }
}

/// The last header block of a `curl -i` output (past any `100 Continue`).
pub fn final_head(stdout: &str) -> &str {
    let mut rest = stdout;
    while let Some(after) = rest.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n") {
        rest = after;
    }
    rest.split("\r\n\r\n").next().unwrap()
}

/// The `Location` of a form upload's 302 in a `curl -i` output, or what went wrong.
pub fn upload_location(out: &CurlOutput) -> Result<String, String> {
    let head = final_head(&out.stdout);
    if !out.status.success() || !head.starts_with("HTTP/1.1 302") {
        return Err(format!(
            "curl {}: {}\n{}",
            out.status,
            out.stderr,
            out.stdout.chars().take(2000).collect::<String>()
        ));
    }
    header_value(head, "location").ok_or_else(|| format!("no Location in:\n{}", out.stdout))
}

/// A form upload with `curl -sS -i ARGS`: asserts the 302; returns the new item's name.
pub async fn curl_form_upload(args: &[&str]) -> String {
    let mut all = vec!["-sS", "-i"];
    all.extend_from_slice(args);
    let location = upload_location(&curl(&all).await).unwrap_or_else(|e| panic!("{e}"));
    name_from_location(&location)
}

// ---------------------------------------------------------------------------------------------
// Raw sockets

/// Reads until `done` holds for what arrived, the peer closes, or `timeout` passes.
async fn read_until(
    stream: &mut (impl AsyncRead + Unpin),
    timeout: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> String {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 8192];
    while !done(&buf) {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Reads a response head (up to the blank line), or what arrived before a close or `timeout`.
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin), timeout: Duration) -> String {
    read_until(stream, timeout, |b| b.windows(4).any(|w| w == b"\r\n\r\n")).await
}

/// Reads a whole response (the head and `Content-Length` bytes of body), or what arrived before
/// a close or `timeout`.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin), timeout: Duration) -> String {
    read_until(stream, timeout, |b| {
        let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        header_value(&String::from_utf8_lossy(&b[..end]), "content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|len| b.len() >= end + 4 + len)
    })
    .await
}

/// Sends `request` as is on a new connection; returns the response (see [`read_response`]).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s, Duration::from_secs(30)).await
}

/// The status code of a raw response.
pub fn status_of(raw: &str) -> Option<u16> {
    let mut w = raw.lines().next()?.split_whitespace();
    w.next().filter(|v| v.starts_with("HTTP/"))?;
    w.next()?.parse().ok()
}

/// tus `HEAD` of an upload URL as `secret`: status and `Upload-Offset`.
pub async fn tus_head(url: &str, secret: &str) -> (reqwest::StatusCode, Option<u64>) {
    let resp = client()
        .head(url)
        .header("Tus-Resumable", "1.0.0")
        .basic_auth("user", Some(secret))
        .send()
        .await
        .unwrap();
    let offset = resp
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (resp.status(), offset)
}
