//! Bad input against the real server: every refusal is a clear 4xx/5xx with a reason, nothing is
//! stored (no item, no file under DATA/files or DATA/tmp), and the server keeps serving others.

mod common;

use common::*;
use reqwest::header;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// curl's options for a wrong secret.
const WRONG_SECRET: [&str; 2] = ["-u", "user:wrong"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A normal upload still works (and is then part of the baseline for the next case).
async fn assert_still_serving(srv: &TestServer, case: &str) -> String {
    let body = multipart(&[Part::file(
        "file",
        b"still-serving.txt",
        "text/plain",
        b"the server keeps serving",
    )]);
    let resp = post_multipart(srv, Some(CUSTOMER), body).await;
    assert_eq!(
        resp.status().as_u16(),
        302,
        "{case}: a normal upload afterwards failed"
    );
    let name = location_name(&resp);
    assert!(
        srv.item_names().contains(&name),
        "{case}: the follow-up upload is not listed"
    );
    wait_until(
        &format!("{case}: DATA/tmp empty after the follow-up upload"),
        Duration::from_secs(5),
        || srv.temp_files().is_empty(),
    )
    .await;
    name
}

/// A bad request left nothing behind (see [`TestServer::assert_nothing_stored`]), and the server
/// still serves others.
async fn assert_unharmed(srv: &TestServer, before: &Snapshot, case: &str) {
    srv.assert_nothing_stored(before, case).await;
    assert_still_serving(srv, case).await;
}

struct Part<'a> {
    name: &'a str,
    filename: Option<&'a [u8]>,
    content_type: Option<&'a str>,
    data: &'a [u8],
}

impl<'a> Part<'a> {
    fn file(name: &'a str, filename: &'a [u8], content_type: &'a str, data: &'a [u8]) -> Self {
        Part {
            name,
            filename: Some(filename),
            content_type: Some(content_type),
            data,
        }
    }

    fn field(name: &'a str, value: &'a str) -> Self {
        Part {
            name,
            filename: None,
            content_type: None,
            data: value.as_bytes(),
        }
    }
}

/// A multipart/form-data body built by hand, so filenames go on the wire byte for byte.
fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{}\"", p.name).as_bytes(),
        );
        if let Some(f) = p.filename {
            body.extend_from_slice(b"; filename=\"");
            body.extend_from_slice(f);
            body.extend_from_slice(b"\"");
        }
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_multipart(
    srv: &TestServer,
    secret: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = client()
        .post(srv.url("/+upload"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(s) = secret {
        req = req.basic_auth("user", Some(s));
    }
    req.send().await.expect("request sent")
}

/// A urlencoded paste (pastebinit) with the customers' secret.
async fn post_paste(srv: &TestServer, body: String) -> reqwest::Response {
    client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads one file with a hand-written filename; returns the item name.
async fn upload_named(srv: &TestServer, filename: &[u8], content_type: &str) -> String {
    let body = multipart(&[Part::file("file", filename, content_type, b"hostile name")]);
    let resp = post_multipart(srv, Some(CUSTOMER), body).await;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        status,
        302,
        "upload of {:?} failed: {text}",
        String::from_utf8_lossy(filename)
    );
    name_from_location(&location.expect("Location"))
}

/// The stored filename of an item.
async fn stored_filename(srv: &TestServer, name: &str) -> String {
    let meta = file_meta(srv, name).await;
    meta["filename"].as_str().expect("filename").to_string()
}

async fn download(srv: &TestServer, name: &str) -> reqwest::Response {
    admin_get(srv, &format!("/{name}/+download")).await
}

/// Checks the download's headers carry no injected header and one well-formed
/// Content-Disposition; returns it.
fn check_disposition(resp: &reqwest::Response, case: &str) -> String {
    let h = resp.headers();
    assert!(
        h.get(header::SET_COOKIE).is_none(),
        "{case}: injected Set-Cookie"
    );
    assert!(h.get("x-evil").is_none(), "{case}: injected X-Evil");
    let all: Vec<_> = h.get_all(header::CONTENT_DISPOSITION).iter().collect();
    assert_eq!(all.len(), 1, "{case}: {all:?}");
    let cd = all[0]
        .to_str()
        .expect("ASCII Content-Disposition")
        .to_string();
    assert!(
        !cd.contains('\r') && !cd.contains('\n'),
        "{case}: line break in {cd:?}"
    );
    assert!(cd.starts_with("attachment; filename=\""), "{case}: {cd}");
    // One quoted `filename="..."` (2 quotes), nothing that breaks out of it.
    assert_eq!(cd.matches('"').count(), 2, "{case}: stray quote in {cd}");
    let quoted = cd
        .strip_prefix("attachment; filename=\"")
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(!quoted.contains('\\'), "{case}: {cd}");
    if let Some((_, ext)) = cd.split_once("; filename*=") {
        assert!(ext.starts_with("UTF-8''"), "{case}: {cd}");
        assert!(
            ext["UTF-8''".len()..]
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';' && b != b'\\'),
            "{case}: filename* is not an RFC 5987 value: {cd}"
        );
    }
    cd
}

/// Every regular file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// curl's form upload of `files` (a `-F file=@PATH` each) to /+upload, `options` first, with
/// `secret` in the URL as the vendor's command has it.
async fn curl_files(
    srv: &TestServer,
    secret: Option<&str>,
    options: &[&str],
    files: &[&Path],
) -> CurlStatus {
    let url = match secret {
        Some(s) => srv.url_with_secret(s, "/+upload"),
        None => srv.url("/+upload"),
    };
    let forms: Vec<String> = files
        .iter()
        .map(|f| format!("file=@{}", f.display()))
        .collect();
    let mut args = options.to_vec();
    for form in &forms {
        args.extend(["-F", form.as_str()]);
    }
    args.push(&url);
    curl_status(&args).await
}

/// Refused with `code`, and the answer gives `reason`.
#[track_caller]
fn assert_refused(r: &CurlStatus, code: u16, reason: &str) {
    assert_eq!(r.code, code, "{}\n{}", r.body, r.stderr);
    assert!(r.body.contains(reason), "no {reason:?} in {}", r.body);
}

/// Head of a multipart upload sent on a raw socket, with the customers' secret.
/// A server whose config is all ours (start_with always adds `min_free_space = "0"`).
async fn start_custom(extra: &str) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra}\n{}",
        tmp.path().to_str().unwrap(),
        secrets_toml(2)
    );
    let srv = TestServer::start_toml(tmp.path(), &toml).await;
    (srv, tmp)
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/// curl sends `Expect: 100-continue` for a body over 1 MiB; a Content-Length over the limit
/// is refused with 413 before curl sends a byte of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_upload_refused_from_content_length_before_the_body() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let file = random_file(dir.path(), "big.bin", 5 * MIB, 11);
    let before = srv.snapshot();
    let r = curl_files(&srv, Some(CUSTOMER), &["-v"], &[&file]).await;
    assert_refused(&r, 413, "larger than the limit");
    assert!(
        r.stderr.contains("Expect: 100-continue"),
        "curl did not ask to continue:\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("100 Continue"),
        "the server let curl send the body:\n{}",
        r.stderr
    );
    assert!(
        r.size_upload < 64.0 * 1024.0,
        "curl sent {} bytes of a refused body",
        r.size_upload
    );
    assert_unharmed(&srv, &before, "over max_file_size (Content-Length)").await;
    srv.stop().await;
}

/// A file just over `max_file_size` whose request still fits `max_request_size`: it can only be
/// caught while reading, but it is caught (413) and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_just_over_the_limit_is_413_and_nothing_stored() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let file = random_file(dir.path(), "big.bin", MIB + MIB / 2, 12);
    let before = srv.snapshot();
    let r = curl_files(&srv, Some(CUSTOMER), &[], &[&file]).await;
    assert_refused(&r, 413, "larger than the limit");
    srv.assert_nothing_stored(&before, "1.5 MiB over a 1 MiB limit")
        .await;
    // Exactly at the limit is fine.
    let ok = random_file(dir.path(), "ok.bin", MIB, 13);
    let r = curl_files(&srv, Some(CUSTOMER), &[], &[&ok]).await;
    assert_eq!(r.code, 302, "{}\n{}", r.body, r.stderr);
    srv.stop().await;
}

/// Without Content-Length (chunked), curl's upload is refused with 413 and the partial removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_upload_with_curl_is_413() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let file = random_file(dir.path(), "big.bin", 4 * MIB, 14);
    let before = srv.snapshot();
    let chunked = ["-H", "Transfer-Encoding: chunked"];
    let r = curl_files(&srv, Some(CUSTOMER), &chunked, &[&file]).await;
    assert_refused(&r, 413, "larger than the limit");
    assert_unharmed(&srv, &before, "chunked over max_file_size").await;
    srv.stop().await;
}

/// Chunked, on a raw socket: 1.5 MiB of a file are sent and then nothing more (the connection
/// stays open). The server must answer 413 as soon as the limit is crossed, not wait for the
/// end of a body that never comes (the idle timeout is the default 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_upload_refused_as_soon_as_the_limit_is_crossed() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let before = srv.snapshot();
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    let send = async {
        let result = async {
            let mut first = raw_upload_head(None).into_bytes();
            let head = part_head("chunked.bin");
            first.extend_from_slice(format!("{:x}\r\n{head}\r\n", head.len()).as_bytes());
            wr.write_all(&first).await?;
            let data = vec![0x5au8; 64 * 1024];
            for _ in 0..24 {
                wr.write_all(format!("{:x}\r\n", data.len()).as_bytes())
                    .await?;
                wr.write_all(&data).await?;
                wr.write_all(b"\r\n").await?;
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        // Stall: never send the last chunk (a write error once the server gave up is fine).
        let _ = result;
        std::future::pending::<()>().await
    };
    let answer = tokio::select! {
        () = send => unreachable!("the sender never finishes"),
        a = read_head(&mut rd, Duration::from_secs(10)) => a,
    };
    assert_eq!(
        status_of(&answer),
        Some(413),
        "no 413 while the client kept the over-limit upload open: {answer:?}"
    );
    drop(stream);
    assert_unharmed(&srv, &before, "raw chunked over the limit").await;
    srv.stop().await;
}

/// Two files in one request under `max_request_size`, the second over `max_file_size`: 413 and
/// not even the first, valid file is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_oversized_file_among_several_stores_nothing() {
    let srv =
        TestServer::start_with("max_file_size = \"1MiB\"\nmax_request_size = \"10MiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let small = random_file(dir.path(), "small.bin", 10 * 1024, 21);
    let big = random_file(dir.path(), "big.bin", 2 * MIB, 22);
    let before = srv.snapshot();
    let r = curl_files(&srv, Some(CUSTOMER), &[], &[&small, &big]).await;
    assert_refused(&r, 413, "larger than the limit");
    assert_unharmed(&srv, &before, "one file over the per-file limit").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_files_in_one_request_is_413() {
    let srv = TestServer::start_with("max_files_per_request = 3").await;
    let before = srv.snapshot();
    let parts: Vec<Part<'_>> = (0..4)
        .map(|_| Part::file("file", b"f.txt", "text/plain", b"one of four"))
        .collect();
    let resp = post_multipart(&srv, Some(CUSTOMER), multipart(&parts)).await;
    assert_eq!(resp.status().as_u16(), 413);
    let text = resp.text().await.unwrap();
    assert!(text.contains("more than 3 files"), "{text}");
    srv.assert_nothing_stored(&before, "4 files, max 3").await;
    // Three is fine.
    let resp = post_multipart(&srv, Some(CUSTOMER), multipart(&parts[..3])).await;
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(srv.item_names().len(), 3);
    srv.stop().await;
}

/// A paste is an item like any other: `max_file_size` holds for it, whatever form it comes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pasted_text_over_max_file_size_is_413() {
    let srv = TestServer::start_with("max_file_size = \"1MiB\"").await;
    let text = "x".repeat(MIB + MIB / 2);

    // multipart `text` field.
    let before = srv.snapshot();
    let body = multipart(&[Part::field("text", &text)]);
    let resp = post_multipart(&srv, Some(CUSTOMER), body).await;
    assert_eq!(resp.status().as_u16(), 413, "multipart text");
    srv.assert_nothing_stored(&before, "multipart text over the limit")
        .await;

    // urlencoded paste (pastebinit), 1.5 MiB: under max_request_size, over max_file_size.
    let resp = post_paste(&srv, format!("text={text}")).await;
    let status = resp.status().as_u16();
    let answer = resp.text().await.unwrap();
    assert_eq!(
        status, 413,
        "urlencoded paste over max_file_size accepted: {answer}"
    );
    srv.assert_nothing_stored(&before, "urlencoded paste over the limit")
        .await;
    assert_still_serving(&srv, "paste over the limit").await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Free space
// ---------------------------------------------------------------------------------------------

async fn assert_healthy(srv: &TestServer) {
    let resp = client().get(srv.url("/healthz")).send().await.unwrap();
    assert!(resp.status().is_success(), "healthz: {}", resp.status());
    assert!(listing(srv).await.is_empty(), "nothing is listed");
}

/// `min_free_space` larger than any disk: uploads with a Content-Length are refused with 507.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_free_space_is_507() {
    let (srv, _tmp) = start_custom("min_free_space = \"100TiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let before = srv.snapshot();

    // curl -F, small file.
    let small = random_file(dir.path(), "small.bin", 10 * 1024, 31);
    let r = curl_files(&srv, Some(CUSTOMER), &[], &[&small]).await;
    assert_refused(&r, 507, "free space");
    srv.assert_nothing_stored(&before, "507, small file").await;

    // curl -F, large file: refused before curl sends the body.
    let big = random_file(dir.path(), "big.bin", 3 * MIB, 32);
    let r = curl_files(&srv, Some(CUSTOMER), &["-v"], &[&big]).await;
    assert_refused(&r, 507, "");
    assert!(r.size_upload < 64.0 * 1024.0, "sent {}", r.size_upload);
    srv.assert_nothing_stored(&before, "507, large file").await;

    // A urlencoded paste.
    let resp = post_paste(&srv, "text=hello".into()).await;
    assert_eq!(resp.status().as_u16(), 507);
    srv.assert_nothing_stored(&before, "507, paste").await;
    assert_healthy(&srv).await;
    srv.stop().await;
}

/// The same without Content-Length: the free-space floor must hold for chunked uploads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_free_space_is_507_for_chunked_uploads() {
    let (srv, _tmp) = start_custom("min_free_space = \"100TiB\"").await;
    let dir = tempfile::tempdir().unwrap();
    let before = srv.snapshot();
    let small = random_file(dir.path(), "small.bin", 10 * 1024, 33);
    let chunked = ["-H", "Transfer-Encoding: chunked"];
    let r = curl_files(&srv, Some(CUSTOMER), &chunked, &[&small]).await;
    assert_eq!(
        r.code, 507,
        "chunked upload accepted below min_free_space: {}\n{}",
        r.body, r.stderr
    );
    srv.assert_nothing_stored(&before, "507, chunked").await;
    assert_healthy(&srv).await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Interrupted uploads
// ---------------------------------------------------------------------------------------------

/// Sends the head and the start of a 10 MiB upload, and waits until the server is writing it.
async fn start_partial_upload(srv: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = part_head("partial.bin");
    let total = 10 * MIB as u64;
    s.write_all(raw_upload_head(Some(total)).as_bytes())
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![0xa5u8; 256 * 1024]).await.unwrap();
    wait_until(
        "the server started writing the upload to DATA/tmp",
        Duration::from_secs(5),
        || !srv.temp_files().is_empty(),
    )
    .await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_upload_leaves_nothing() {
    let srv = TestServer::start().await;
    let before = srv.snapshot();

    // Orderly close (FIN) after part of the body.
    let s = start_partial_upload(&srv).await;
    drop(s);
    srv.assert_nothing_stored(&before, "client closed mid-upload")
        .await;
    assert!(listing(&srv).await.is_empty());

    // Abortive close (RST).
    let s = start_partial_upload(&srv).await;
    s.set_zero_linger().unwrap();
    drop(s);
    srv.assert_nothing_stored(&before, "client reset mid-upload")
        .await;

    assert_still_serving(&srv, "client disconnected mid-upload").await;
    srv.stop().await;
}

/// A client that stops sending (without closing) is answered 408 after `upload_idle_timeout`,
/// and its partial file is removed. Others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_times_out() {
    let srv = TestServer::start_with("upload_idle_timeout = \"1s\"").await;
    let before = srv.snapshot();
    let mut s = start_partial_upload(&srv).await;
    let stalled_at = Instant::now();

    // While that client stalls, another one uploads normally.
    let other = multipart(&[Part::file("file", b"other.txt", "text/plain", b"meanwhile")]);
    let resp = post_multipart(&srv, Some(CUSTOMER), other).await;
    assert_eq!(resp.status().as_u16(), 302, "served during the stall");
    let meanwhile = location_name(&resp);

    let answer = read_response(&mut s, Duration::from_secs(10)).await;
    let waited = stalled_at.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(5),
        "answered after {waited:?}: {answer}"
    );
    // 408 with a reason, or at least the connection closed.
    if !answer.is_empty() {
        assert_eq!(status_of(&answer), Some(408), "{answer}");
        assert!(answer.contains("abandoned"), "{answer}");
    }
    drop(s);
    let expected = Snapshot {
        items: {
            let mut v = before.items.clone();
            v.push(meanwhile.clone());
            v.sort();
            v
        },
        files: {
            let mut v = before.files.clone();
            v.push(srv.stored_path(&meanwhile));
            v.sort();
            v
        },
    };
    assert_unharmed(&srv, &expected, "stalled upload").await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Malformed requests, credentials, routes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_refused_with_a_reason() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let small = random_file(dir.path(), "small.bin", 4096, 41);

    struct Case {
        what: &'static str,
        content_type: &'static str,
        body: Vec<u8>,
        extra: Option<(&'static str, &'static str)>,
        status: u16,
        reason: &'static str,
    }
    let garbage_ct: &'static str =
        Box::leak(format!("multipart/form-data; boundary={BOUNDARY}").into_boxed_str());
    let cases = vec![
        Case {
            what: "garbage multipart body",
            content_type: garbage_ct,
            body: b"this is not a multipart body at all\r\n\r\n".to_vec(),
            extra: None,
            status: 400,
            reason: "multipart",
        },
        Case {
            what: "multipart without boundary",
            content_type: "multipart/form-data",
            body: multipart(&[Part::file("file", b"a.txt", "text/plain", b"x")]),
            extra: None,
            status: 400,
            reason: "boundary",
        },
        Case {
            what: "form without file or text",
            content_type: garbage_ct,
            body: multipart(&[Part::field("reference", "CASE-1")]),
            extra: None,
            status: 400,
            reason: "nothing to upload",
        },
        Case {
            what: "JSON body",
            content_type: "application/json",
            body: br#"{"file":"x"}"#.to_vec(),
            extra: None,
            status: 415,
            reason: "multipart/form-data",
        },
        Case {
            what: "Content-Range on /+upload",
            content_type: garbage_ct,
            body: multipart(&[Part::file("file", b"a.txt", "text/plain", b"x")]),
            extra: Some(("content-range", "bytes 0-0/1")),
            status: 416,
            reason: "Content-Range",
        },
    ];
    for c in cases {
        let before = srv.snapshot();
        let mut req = client()
            .post(srv.url("/+upload"))
            .basic_auth("user", Some(CUSTOMER))
            .header(header::CONTENT_TYPE, c.content_type)
            .body(c.body);
        if let Some((k, v)) = c.extra {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), c.status, "{}", c.what);
        let ct = response_header(&resp, "content-type");
        assert!(ct.starts_with("text/html"), "{}: {ct}", c.what);
        let text = resp.text().await.unwrap();
        assert!(
            text.contains(c.reason),
            "{}: no reason ({:?}) in {text}",
            c.what,
            c.reason
        );
        assert_unharmed(&srv, &before, c.what).await;
    }

    // Wrong secret (curl -u user:wrong), also refused before a large body is sent.
    let before = srv.snapshot();
    let r = curl_files(&srv, None, &WRONG_SECRET, &[&small]).await;
    assert_refused(&r, 403, "wrong secret");
    let big = random_file(dir.path(), "big.bin", 3 * MIB, 42);
    let r = curl_files(&srv, None, &WRONG_SECRET, &[&big]).await;
    assert_refused(&r, 403, "");
    assert!(r.size_upload < 64.0 * 1024.0, "sent {}", r.size_upload);
    assert_unharmed(&srv, &before, "wrong secret").await;

    // No credentials at all.
    let before = srv.snapshot();
    let r = curl_files(&srv, None, &[], &[&small]).await;
    assert_refused(&r, 403, "permission");
    assert_unharmed(&srv, &before, "no credentials").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_errors_are_html_or_json() {
    let srv = TestServer::start().await;

    // HTML outside /apis/.
    let resp = get_as(&srv, None, "/no/such/page").await;
    assert_eq!(resp.status().as_u16(), 404);
    let ct = response_header(&resp, "content-type");
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(resp.text().await.unwrap().contains("404"));

    let resp = get_as(&srv, Some(CUSTOMER), "/+upload").await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()[header::ALLOW], "POST, OPTIONS");
    let ct = response_header(&resp, "content-type");
    assert!(ct.starts_with("text/html"), "{ct}");

    // JSON under /apis/.
    assert_json_error(get_as(&srv, Some(ADMIN), "/apis/rest/nope").await, 404).await;
    let resp = client()
        .delete(srv.url("/apis/rest/items"))
        .basic_auth("u", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let allow = response_header(&resp, "allow");
    assert!(allow.contains("GET"), "{allow}");
    assert_json_error(resp, 405).await;

    // An unknown item under /apis/ is a JSON 404 too.
    let resp = get_as(&srv, Some(ADMIN), "/apis/rest/items/AAAAAAAA").await;
    assert_json_error(resp, 404).await;
    assert_still_serving(&srv, "route errors").await;
    srv.stop().await;
}

/// Traversal attempts never reach a file: 404, never a file's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_are_404() {
    let srv = TestServer::start().await;
    // Control: the one static asset exists.
    let r = curl_status(&["--path-as-is", &srv.url("/+static/sfx.css")]).await;
    assert_eq!(r.code, 200);
    for path in [
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
        "/../../etc/passwd",
        "/+static/..%2fCargo.toml",
        "/+static/../../Cargo.toml",
        "/+static/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/+static/..%5c..%5cCargo.toml",
        "/+static/sfx.css%00",
        "/+static/sfx.css%00.txt",
        "/%00",
        "/AAAAAAA%00/+download",
        "/apis/rest/items/%00/download",
        "/apis/rest/items/..%2f..%2fsfx.db/download",
    ] {
        let r = curl_status(&["--path-as-is", "-u", &format!("x:{ADMIN}"), &srv.url(path)]).await;
        assert_eq!(r.code, 404, "{path}: {}", r.body);
        for leak in ["root:", "[package]", "SQLite format", "body {"] {
            assert!(!r.body.contains(leak), "{path} leaked {leak:?}");
        }
    }
    // Same on a raw socket (no client-side normalisation at all), with a raw NUL-free path.
    let answer = raw_request(
        srv.addr,
        b"GET /+static/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(404), "{answer}");
    assert!(!answer.contains("root:"));
    srv.stop().await;
}

/// After 20 wrong secrets from one address, that address is locked out (429), even with the
/// right secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_secrets_lock_out_the_address() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let small = random_file(dir.path(), "small.bin", 1024, 51);
    for i in 0..20 {
        let code = if i % 4 == 0 {
            curl_files(&srv, None, &WRONG_SECRET, &[&small]).await.code
        } else {
            client()
                .get(srv.url("/apis/rest/items"))
                .basic_auth("x", Some(&format!("guess-{i}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(code, 403, "attempt {}", i + 1);
    }
    let r = curl_files(&srv, None, &WRONG_SECRET, &[&small]).await;
    assert_refused(&r, 429, "too many");
    // The right secret does not help while locked out.
    let r = curl_files(&srv, Some(CUSTOMER), &[], &[&small]).await;
    assert_refused(&r, 429, "");
    assert_json_error(get_as(&srv, Some(ADMIN), "/apis/rest/items").await, 429).await;
    assert!(srv.item_names().is_empty());
    assert!(srv.temp_files().is_empty());
    srv.stop().await;
}

/// A burst of parallel guesses against an Argon2 `secret_hash` cannot get more than the limit
/// past the lockout (checks in flight count), and does not run unbounded Argon2 in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_do_not_bypass_the_lockout() {
    let hash = sfx::auth::hash_secret("the-real-ops-secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}[[secrets]]\nlabel = \"ops\"\nsecret_hash = {hash:?}\npermissions = [\"list\"]\n",
        base_toml(dir.path())
    );
    let srv = TestServer::start_toml(dir.path(), &toml).await;
    // One client (its pool opens the connections): building 100 TLS-capable clients inside the
    // futures would stall this runtime between their connects and their requests.
    let http = client();
    let guesses = (0..100).map(|i| {
        let url = srv.url("/+list");
        let http = http.clone();
        async move {
            http.get(url)
                .basic_auth("x", Some(&format!("guess-{i}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let codes = futures_util::future::join_all(guesses).await;
    let wrong = codes.iter().filter(|c| **c == 403).count();
    let locked = codes.iter().filter(|c| **c == 429).count();
    assert!(wrong <= 20, "{wrong} guesses were checked, the limit is 20");
    assert_eq!(wrong + locked, 100, "{codes:?}");
    assert_eq!(
        get_as(&srv, Some("the-real-ops-secret"), "/+list")
            .await
            .status()
            .as_u16(),
        429
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Hostile filenames
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filenames_are_sanitized() {
    let srv = TestServer::start().await;
    let long_ascii = format!("{}.txt", "a".repeat(3996));
    let long_utf8 = "é".repeat(2000);
    // (sent filename, part content type, expected stored filename; None = `<name>.bin`)
    let cases: Vec<(&[u8], &str, Option<&str>)> = vec![
        (
            b"../../etc/passwd",
            "application/octet-stream",
            Some("passwd"),
        ),
        (b"C:\\x\\evil.txt", "text/plain", Some("evil.txt")),
        (b"..\\..\\boot.ini", "text/plain", Some("boot.ini")),
        (
            "été rapport.pdf".as_bytes(),
            "application/pdf",
            Some("été rapport.pdf"),
        ),
        (b"..", "application/octet-stream", None),
        (b"...", "application/octet-stream", None),
        (b"/", "application/octet-stream", None),
        (
            "invoice\u{202E}fdp.exe".as_bytes(),
            "application/octet-stream",
            Some("invoicefdp.exe"),
        ),
        (
            "日本語\u{200B}.txt".as_bytes(),
            "text/plain",
            Some("日本語.txt"),
        ),
        (
            b"tab\there  two.log",
            "text/plain",
            Some("tab here two.log"),
        ),
    ];
    for (sent, ct, expected) in cases {
        let case = String::from_utf8_lossy(sent).into_owned();
        let before = srv.stored_files();
        let name = upload_named(&srv, sent, ct).await;
        assert_eq!(name.len(), 8, "{case}");
        let stored = stored_filename(&srv, &name).await;
        match expected {
            Some(e) => assert_eq!(stored, e, "{case}"),
            None => assert_eq!(stored, format!("{name}.bin"), "{case}"),
        }
        // The only new file is DATA/files/<name>.
        let mut expect_files = before.clone();
        expect_files.push(srv.stored_path(&name));
        expect_files.sort();
        assert_eq!(srv.stored_files(), expect_files, "{case}");
        let resp = download(&srv, &name).await;
        let cd = check_disposition(&resp, &case);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hostile name");
        if stored == "été rapport.pdf" {
            assert!(
                cd.contains("filename*=UTF-8''%C3%A9t%C3%A9%20rapport.pdf"),
                "{cd}"
            );
        }
    }

    // Long names are cut to at most 250 bytes (on a character boundary).
    for (sent, ch) in [(long_ascii.as_str(), 'a'), (long_utf8.as_str(), 'é')] {
        let name = upload_named(&srv, sent.as_bytes(), "text/plain").await;
        let stored = stored_filename(&srv, &name).await;
        assert!(
            !stored.is_empty() && stored.len() <= 250,
            "{} bytes",
            stored.len()
        );
        assert!(stored.starts_with(ch), "{stored}");
        check_disposition(&download(&srv, &name).await, "long name");
    }

    // Nothing was ever written outside DATA/files/<8-char name> (and the db / key files).
    for p in walk(&srv.data_dir) {
        let rel = p.strip_prefix(&srv.data_dir).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        if first == "files" {
            let leaf = rel.file_name().unwrap().to_str().unwrap();
            assert_eq!(rel.components().count(), 2, "{rel:?}");
            assert_eq!(leaf.len(), 8, "{rel:?}");
        } else {
            assert!(
                first.starts_with("sfx.db") || ["session.key", "reserve", "lock"].contains(&first),
                "unexpected file {rel:?}"
            );
        }
    }
    assert!(!srv.data_dir.join("files/../../etc/passwd").exists());
    assert!(!srv.data_dir.join("../etc").exists());
    assert!(srv.temp_files().is_empty());
    srv.stop().await;
}

/// Quotes, CR/LF (raw and percent-encoded) and parameter tricks in a filename never change the
/// download's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filenames_never_inject_headers() {
    let srv = TestServer::start().await;
    let cases: [&[u8]; 6] = [
        br#"a\"b.txt"#,
        br#"x\"; filename=\"evil.html"#,
        b"report%0d%0aSet-Cookie: evil=1%0d%0aX-Evil: 1.txt",
        b"report%0D%0A%0D%0A<html>.txt",
        b"a\\\r\nSet-Cookie: evil=1.txt",
        b"semi;colon, comma 'single'.txt",
    ];
    for sent in cases {
        let case = String::from_utf8_lossy(sent).into_owned();
        let name = upload_named(&srv, sent, "text/plain").await;
        let stored = stored_filename(&srv, &name).await;
        assert!(
            !stored.contains('\r') && !stored.contains('\n'),
            "{case}: stored {stored:?}"
        );
        let resp = download(&srv, &name).await;
        check_disposition(&resp, &case);
    }

    // A raw CR LF inside the quoted filename ends the part header line: the rest becomes other
    // part headers. Either refused (400) or stored without the injected text in any header.
    let raw = b"a\r\nSet-Cookie: evil=1\r\nX-Evil: b.txt";
    let body = multipart(&[Part::file("file", raw, "text/plain", b"hostile name")]);
    let resp = post_multipart(&srv, Some(CUSTOMER), body).await;
    let status = resp.status().as_u16();
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    assert!(resp.headers().get("x-evil").is_none());
    if status == 302 {
        let name = location_name(&resp);
        let resp = download(&srv, &name).await;
        check_disposition(&resp, "raw CRLF");
    } else {
        assert_eq!(status, 400, "raw CRLF in filename");
    }
    assert_still_serving(&srv, "header injection").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filenames_are_html_escaped_in_pages() {
    let srv = TestServer::start().await;
    let script = upload_named(&srv, b"<script>alert(1)</script>.txt", "text/plain").await;
    let img = upload_named(
        &srv,
        // The quote is escaped on the wire, as browsers and curl do.
        br#"<img src=x onerror=alert(1)>&\"'.txt"#,
        "text/plain",
    )
    .await;
    let script_name = stored_filename(&srv, &script).await;
    let img_name = stored_filename(&srv, &img).await;
    assert_eq!(img_name, "<img src=x onerror=alert(1)>&\"'.txt");

    // askama writes numeric entities (`&#60;`); either spelling is a correct escape.
    let named = |page: String| {
        page.replace("&#60;", "&lt;")
            .replace("&#62;", "&gt;")
            .replace("&#38;", "&amp;")
            .replace("&#34;", "&quot;")
    };
    let list = named(admin_text(&srv, "/+list").await);
    let img_page = named(admin_text(&srv, &format!("/{img}")).await);
    let script_page = named(admin_text(&srv, &format!("/{script}")).await);
    for (what, page) in [
        ("/+list", &list),
        ("item page", &img_page),
        ("item page", &script_page),
    ] {
        assert!(!page.contains("<script>alert"), "{what}: raw <script>");
        assert!(!page.contains("<img src=x"), "{what}: raw <img>");
        assert!(!page.contains("script>.txt"), "{what}: unescaped >");
    }
    for (what, page) in [("/+list", &list), ("item page", &img_page)] {
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;"),
            "{what}: escaped name missing: {}",
            page.lines()
                .filter(|l| l.contains("onerror"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The script name lost its directory part (`<script>alert(1)<` is a "directory"), and what
    // is left is escaped too.
    assert_eq!(script_name, "script>.txt");
    for page in [&list, &script_page] {
        assert!(
            page.contains("script&gt;.txt"),
            "escaped script name missing"
        );
    }
    srv.stop().await;
}

/// Stalled uploads hold a writer thread and a temp file each: their number is bounded per
/// client (429) and in total (503 with Retry-After), and they never starve other requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_cannot_exhaust_the_server() {
    let srv =
        TestServer::start_with("max_uploads_per_client = 2\nmax_concurrent_uploads = 3").await;
    let curl_upload = || async {
        curl(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-D",
            "-",
            "-F",
            "text=late",
            &srv.url_with_secret(CUSTOMER, "/+upload"),
        ])
        .await
        .stdout
    };
    let first = start_partial_upload(&srv).await;
    let second = start_partial_upload(&srv).await;
    let refused = curl_upload().await;
    assert!(
        refused.ends_with("429"),
        "third upload from one client: {refused}"
    );
    // Another client address (loopback has the whole 127/8) still gets the last slot...
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(srv.addr).await.unwrap();
    other
        .write_all(raw_upload_head(Some(10 * MIB as u64)).as_bytes())
        .await
        .unwrap();
    other
        .write_all(part_head("third.bin").as_bytes())
        .await
        .unwrap();
    other.write_all(&[1u8; 4096]).await.unwrap();
    wait_until("three uploads in progress", Duration::from_secs(5), || {
        srv.temp_files().len() == 3
    })
    .await;
    // ...after which every slot is taken, for anybody: 503 with Retry-After.
    let busy = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-D",
        "-",
        "--interface",
        "127.0.0.3",
        "-F",
        "text=late",
        &srv.url_with_secret(CUSTOMER, "/+upload"),
    ])
    .await
    .stdout;
    assert!(
        busy.ends_with("503") && busy.to_ascii_lowercase().contains("retry-after: 30"),
        "{busy}"
    );
    // Meanwhile everything else is served at once.
    let started = Instant::now();
    assert_eq!(healthz(&srv).await["status"], "ok");
    assert_eq!(admin_get(&srv, "/+list").await.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop((first, second, other));
    wait_until("slots freed", Duration::from_secs(5), || {
        srv.temp_files().is_empty()
    })
    .await;
    let mut code = String::new();
    for _ in 0..50 {
        code = curl_upload().await;
        if code.ends_with("302") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(code.ends_with("302"), "slots are given back: {code}");
    srv.stop().await;
}

/// Many stalled uploads (more than tokio's blocking pool would survive if each parked one of
/// its threads) leave metadata queries answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_stalled_uploads_do_not_starve_metadata_queries() {
    let srv =
        TestServer::start_with(
            "max_uploads_per_client = 600\nmax_concurrent_uploads = 600\nmax_uploads_per_network = 600\nmax_connections_per_client = 600",
        )
        .await;
    let mut stalled = Vec::new();
    for _ in 0..520 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(raw_upload_head(Some(MIB as u64)).as_bytes())
            .await
            .unwrap();
        s.write_all(part_head("stall.bin").as_bytes())
            .await
            .unwrap();
        s.write_all(b"1234").await.unwrap();
        stalled.push(s);
    }
    wait_until("520 uploads in progress", Duration::from_secs(30), || {
        srv.temp_files().len() >= 520
    })
    .await;
    let started = Instant::now();
    assert_eq!(healthz(&srv).await["store"], "ok");
    assert_eq!(admin_get(&srv, "/+list").await.status().as_u16(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    drop(stalled);
    wait_until("partials removed", Duration::from_secs(30), || {
        srv.temp_files().is_empty()
    })
    .await;
    srv.stop().await;
}
