//! Requests written by hand on raw sockets (what no well-behaved client would send), from any
//! loopback source address (the whole 127/8 is ours: one address per simulated client).

use base64::Engine;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub const BOUNDARY: &str = "sfxTestBoundary7MA4YWxkTrZu0gW";
/// `user:support` (the customers' secret) as a Basic credential.
pub const CUSTOMER_BASIC: &str = "Basic dXNlcjpzdXBwb3J0";

/// `Basic` of `user:SECRET`.
pub fn basic(secret: &str) -> String {
    let creds = format!("user:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// A TCP connection to `addr` from the loopback address `src` (e.g. "127.1.0.1").
pub async fn connect_from(src: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{src}:0").parse().expect("an IPv4 address"))?;
    socket.connect(addr).await
}

/// The head of a multipart `POST /+upload` with the customers' secret.
pub fn raw_upload_head(content_length: Option<u64>) -> String {
    let length = match content_length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    format!(
        "POST /+upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {CUSTOMER_BASIC}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{length}\r\n"
    )
}

/// The head of a `file` part named `filename`.
pub fn part_head(filename: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
}

/// A whole multipart body with one file part.
pub fn one_file_body(filename: &str, data: &[u8]) -> Vec<u8> {
    let mut body = part_head(filename).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}
