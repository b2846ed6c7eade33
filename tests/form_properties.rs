//! Properties of multipart field handling of `POST /+upload`, through the real server on
//! 127.0.0.1: parts in any order store exactly what the credentials allow; cut or garbled
//! bodies are a 4xx and store nothing.

mod common;

use common::{CUSTOMER, TestServer, basic, read_response, status_of};
use proptest::prelude::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Default case counts (or `PROPTEST_CASES`); a failure is printed with its minimal input,
/// not saved to a file.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Fewer cases for properties that go through the server, unless `PROPTEST_CASES` says.
fn server_config() -> ProptestConfig {
    match std::env::var_os("PROPTEST_CASES") {
        Some(_) => config(),
        None => ProptestConfig {
            cases: 64,
            ..config()
        },
    }
}

// ---- Multipart field handling of POST /+upload ------------------------------------------

#[derive(Debug, Clone)]
enum Token {
    Right,
    Wrong,
    Empty,
}

#[derive(Debug, Clone)]
enum Part {
    File {
        filename: Option<String>,
        body: Vec<u8>,
    },
    Text(String),
    Token(Token),
    Field(&'static str, &'static str),
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        3 => (prop::option::of("[a-z]{0,6}(\\.tgz)?"), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(filename, body)| Part::File { filename, body }),
        1 => "[a-z ]{0,10}".prop_map(Part::Text),
        2 => prop_oneof![Just(Token::Right), Just(Token::Wrong), Just(Token::Empty)]
            .prop_map(Part::Token),
        1 => prop::sample::select(vec![
            ("comment", "a comment"),
            ("reference", "case 42"),
            ("maxlife-value", "2"),
            ("maxlife-unit", "days"),
            ("filename", "paste.txt"),
            ("contenttype", "text/plain"),
            ("unknown-field", "ignored"),
        ])
        .prop_map(|(n, v)| Part::Field(n, v)),
    ]
}

const BOUNDARY: &str = "------------------------d74496d66958873e";

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn multipart_body(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let (head, data): (String, Vec<u8>) = match p {
            Part::File {
                filename: Some(f),
                body,
            } => (
                format!(
                    "Content-Disposition: form-data; name=\"file\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream"
                ),
                body.clone(),
            ),
            Part::File {
                filename: None,
                body,
            } => (
                "Content-Disposition: form-data; name=\"file\"".into(),
                body.clone(),
            ),
            Part::Text(t) => (
                "Content-Disposition: form-data; name=\"text\"".into(),
                t.clone().into_bytes(),
            ),
            Part::Token(t) => (
                "Content-Disposition: form-data; name=\"token\"".into(),
                match t {
                    Token::Right => CUSTOMER,
                    Token::Wrong => "not-the-secret",
                    Token::Empty => "",
                }
                .into(),
            ),
            Part::Field(n, v) => (
                format!("Content-Disposition: form-data; name=\"{n}\""),
                v.as_bytes().to_vec(),
            ),
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// What the server must answer, and how many items it must store: the handling the README
/// describes, written out independently of src/routes/upload/form.rs.
fn expected(header_auth: bool, parts: &[Part]) -> (u16, usize) {
    let (mut can_create, mut anonymous) = (header_auth, !header_auth);
    let (mut files, mut text) = (0, None);
    for p in parts {
        match p {
            Part::File { filename, body } => {
                if !can_create {
                    return (403, 0);
                }
                // A browser's "no file chosen" part is skipped.
                if !body.is_empty() || filename.as_deref().is_some_and(|f| !f.is_empty()) {
                    files += 1;
                }
            }
            Part::Text(t) => text = Some(t.clone()),
            // A `token` field counts only for a request that had no other credentials.
            Part::Token(Token::Right) if anonymous => (can_create, anonymous) = (true, false),
            Part::Token(Token::Wrong) if anonymous => return (403, 0),
            Part::Token(_) | Part::Field(..) => {}
        }
    }
    if !can_create {
        return (403, 0);
    }
    let stored = files + usize::from(text.is_some_and(|t| !t.is_empty()));
    if stored == 0 { (400, 0) } else { (302, stored) }
}

/// One server on its own runtime, kept for all of a property's cases. (Fields drop in order:
/// the runtime stops the server first, then its data dir is removed.)
struct Live {
    rt: tokio::runtime::Runtime,
    srv: TestServer,
}

impl Live {
    fn start() -> Live {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let srv = rt.block_on(TestServer::start_with("max_file_size = \"64KiB\""));
        Live { rt, srv }
    }

    /// Posts `body` from a fresh 127.x.y.z (so wrong tokens never add up to a lockout);
    /// returns the status and how many items it stored. DATA/tmp must empty after each.
    fn post(
        &self,
        header_auth: bool,
        content_type: &str,
        body: &[u8],
        source: u32,
    ) -> (u16, usize) {
        let before = self.srv.item_names().len();
        let auth = if header_auth {
            format!("Authorization: {}\r\n", basic(CUSTOMER))
        } else {
            String::new()
        };
        let mut request = format!(
            "POST /+upload HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let raw = self.rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            let [_, b, c, d] = (source | 1).to_be_bytes();
            socket
                .bind(std::net::SocketAddr::from(([127, b, c, d], 0)))
                .unwrap();
            let mut conn = socket.connect(self.srv.addr).await.unwrap();
            let _ = conn.write_all(&request).await;
            read_response(&mut conn, Duration::from_secs(10)).await
        });
        let status = status_of(&raw).unwrap_or_else(|| panic!("no answer: {raw:?}"));
        let tmp = self.srv.data_dir.join("tmp");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_dir(&tmp).map_or(0, |d| d.count()) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "DATA/tmp not emptied after {status}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        (status, self.srv.item_names().len() - before)
    }
}

/// Runs `property` against one server started for it, stopped (and its data dir removed)
/// afterwards, failing or not.
fn with_server<S: Strategy>(
    strategy: S,
    property: impl Fn(&Live, S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let live = Live::start();
    let mut runner = proptest::test_runner::TestRunner::new(server_config());
    if let Err(e) = runner.run(&strategy, |v| property(&live, v)) {
        panic!("{e}");
    }
}

#[test]
fn form_parts_in_any_order() {
    let strategy = (
        any::<bool>(),
        prop::collection::vec(part(), 0..6),
        any::<u32>(),
    );
    with_server(strategy, |live, (header_auth, parts, source)| {
        let got = live.post(
            header_auth,
            &multipart_type(),
            &multipart_body(&parts),
            source,
        );
        prop_assert_eq!(got, expected(header_auth, &parts), "{:?}", parts);
        Ok(())
    });
}

#[test]
fn cut_or_garbled_bodies_store_nothing() {
    let strategy = (
        prop::collection::vec(part(), 1..5),
        any::<prop::sample::Index>(),
        prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        any::<u32>(),
    );
    with_server(strategy, |live, (parts, cut, garble, source)| {
        let mut body = multipart_body(&parts);
        // Anywhere before the end of the closing delimiter, so the body is never complete.
        let close = body.len() - 2;
        body.truncate(cut.index(close));
        if let Some((at, byte)) = garble.filter(|_| !body.is_empty()) {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let (status, stored) = live.post(true, &multipart_type(), &body, source);
        let shown = String::from_utf8_lossy(&body);
        prop_assert!(
            (400..500).contains(&status),
            "status {status} for {shown:?}"
        );
        prop_assert_eq!(stored, 0);
        Ok(())
    });
}
