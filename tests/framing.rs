//! HTTP framing and multipart tricks on raw sockets: a body is committed only when it is
//! complete by its HTTP framing; codings that are not applied, smuggling-shaped heads,
//! duplicated or oversized headers and broken multipart are refused with a clear status. After
//! every case nothing is stored and the server still serves others.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug)]
enum Then {
    /// Keep the connection open and silent.
    Wait,
    /// Close the sending side (EOF).
    Eof,
}

/// Sends `request` raw, then waits or half-closes; returns the answer.
async fn send(srv: &TestServer, request: &[u8], then: Then) -> String {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    if let Then::Eof = then {
        s.shutdown().await.unwrap();
    }
    read_response(&mut s, Duration::from_secs(20)).await
}

fn head(extra: &str, content_type: &str) -> String {
    format!(
        "POST /+upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {CUSTOMER_BASIC}\r\nContent-Type: {content_type}\r\n{extra}\r\n"
    )
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

struct Case {
    what: &'static str,
    request: Vec<u8>,
    then: Then,
    status: u16,
    reason: &'static str,
}

fn cases() -> Vec<Case> {
    let body = one_file_body("f.bin", &[7u8; 5000]);
    let cl = |n: usize| format!("Content-Length: {n}\r\n");
    let with = |h: String, b: &[u8]| [h.into_bytes(), b.to_vec()].concat();
    let mut truncated = part_head("t.bin").into_bytes();
    truncated.extend_from_slice(&[1u8; 3000]);
    let chunked_body = format!("{:x}\r\n", body.len()).into_bytes();
    let chunked_body = [chunked_body, body.clone(), b"\r\n0\r\n\r\n".to_vec()].concat();
    vec![
        Case {
            what: "closing boundary before Content-Length, then silence",
            request: with(head(&cl(body.len() + 100), &multipart_type()), &body),
            then: Then::Wait,
            status: 408,
            reason: "no data",
        },
        Case {
            what: "closing boundary before Content-Length, then EOF",
            request: with(head(&cl(body.len() + 100), &multipart_type()), &body),
            then: Then::Eof,
            status: 400,
            reason: "interrupted",
        },
        Case {
            what: "body cut short before its boundary, then EOF",
            request: with(
                head(&cl(truncated.len() + 500), &multipart_type()),
                &truncated,
            ),
            then: Then::Eof,
            status: 400,
            reason: "interrupted",
        },
        Case {
            what: "Content-Length shorter than the multipart body",
            request: with(head(&cl(body.len() - 40), &multipart_type()), &body),
            then: Then::Wait,
            status: 400,
            reason: "multipart",
        },
        Case {
            what: "Transfer-Encoding: gzip, chunked",
            request: with(
                head("Transfer-Encoding: gzip, chunked\r\n", &multipart_type()),
                &chunked_body,
            ),
            then: Then::Wait,
            status: 501,
            reason: "gzip",
        },
        Case {
            what: "two different Content-Lengths",
            request: with(
                head(
                    &format!("{}{}", cl(body.len()), cl(body.len() + 1)),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "",
        },
        Case {
            what: "empty boundary",
            request: with(
                head(&cl(body.len()), "multipart/form-data; boundary="),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "boundary",
        },
        Case {
            what: "boundary longer than 70 characters",
            request: with(
                head(
                    &cl(body.len()),
                    &format!("multipart/form-data; boundary={}", "b".repeat(71)),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "boundary",
        },
        Case {
            what: "a body without any boundary line",
            request: with(head(&cl(3000), &multipart_type()), &[b'x'; 3000]),
            then: Then::Wait,
            status: 400,
            reason: "multipart",
        },
        Case {
            what: "a part without Content-Disposition",
            request: {
                let b = format!(
                    "--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--\r\n"
                );
                with(head(&cl(b.len()), &multipart_type()), b.as_bytes())
            },
            then: Then::Wait,
            status: 400,
            reason: "multipart",
        },
        Case {
            what: "two Authorization headers",
            request: with(
                head(
                    &format!("Authorization: {}\r\n{}", basic(ADMIN), cl(body.len())),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "authorization header appears more than once",
        },
        Case {
            what: "two Content-Type headers",
            request: with(
                head(
                    &format!("Content-Type: text/plain\r\n{}", cl(body.len())),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "content-type header appears more than once",
        },
        Case {
            what: "200 headers",
            request: with(
                head(
                    &((0..200)
                        .map(|i| format!("X-H{i}: v\r\n"))
                        .collect::<String>()
                        + &cl(body.len())),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 431,
            reason: "",
        },
        Case {
            what: "a 1 MiB header",
            request: with(
                head(
                    &format!("X-Big: {}\r\n{}", "a".repeat(1 << 20), cl(body.len())),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 431,
            reason: "",
        },
        Case {
            what: "an obsolete folded header line",
            request: with(
                head(
                    &format!("X-Fold: a\r\n b\r\n{}", cl(body.len())),
                    &multipart_type(),
                ),
                &body,
            ),
            then: Then::Wait,
            status: 400,
            reason: "",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_tricks_are_refused_and_store_nothing() {
    let srv = TestServer::start_with("upload_idle_timeout = \"1s\"").await;
    for c in cases() {
        let before = srv.snapshot();
        let answer = send(&srv, &c.request, c.then).await;
        assert_eq!(
            status_of(&answer),
            Some(c.status),
            "{}: {}",
            c.what,
            answer.chars().take(600).collect::<String>()
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains(&c.reason.to_ascii_lowercase()),
            "{}: no reason {:?} in {answer}",
            c.what,
            c.reason
        );
        srv.assert_nothing_stored(&before, c.what).await;
        let ok = raw_request(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&ok), Some(200), "{}: still serving", c.what);
    }
    // The same body, framed right, is stored (the cases above fail on framing alone).
    let body = one_file_body("f.bin", &[7u8; 5000]);
    let good = [
        head(
            &format!("Content-Length: {}\r\n", body.len()),
            &multipart_type(),
        )
        .into_bytes(),
        body,
    ]
    .concat();
    assert_eq!(status_of(&send(&srv, &good, Then::Wait).await), Some(302));
    srv.stop().await;
}

/// A file part whose content is itself multipart is opaque bytes: stored as sent and served
/// back only as an attachment of a generic type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_multipart_is_just_bytes() {
    let srv = TestServer::start().await;
    let inner = "--inner\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../x\"\r\n\r\nevil\r\n--inner--\r\n";
    let b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"outer.bin\"\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n{inner}\r\n--{BOUNDARY}--\r\n"
    );
    let req = [
        head(
            &format!("Content-Length: {}\r\n", b.len()),
            &multipart_type(),
        )
        .into_bytes(),
        b.into_bytes(),
    ]
    .concat();
    let answer = send(&srv, &req, Then::Wait).await;
    assert_eq!(status_of(&answer), Some(302), "{answer}");
    let names = srv.item_names();
    assert_eq!(names.len(), 1, "one item, not two");
    let resp = admin_get(&srv, &format!("/{}/+download", names[0])).await;
    assert_eq!(
        response_header(&resp, "content-type"),
        "application/octet-stream"
    );
    assert!(
        response_header(&resp, "content-disposition")
            .starts_with("attachment; filename=\"outer.bin\"")
    );
    assert_eq!(resp.text().await.unwrap(), inner);
    srv.stop().await;
}
