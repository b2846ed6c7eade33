//! `GET /+client.sh` (no auth): the zero-install resumable upload client, `assets/client.sh`,
//! with this server's URL and chunk size filled in. Customers run it with
//! `curl -fsS https://HOST/+client.sh | sh -s -- FILE`; it uploads over tus (`/+tus/`).

use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use http::{HeaderValue, StatusCode, header};

const TEMPLATE: &str = include_str!("../../assets/client.sh");
const URL_PLACEHOLDER: &str = "@SFX_PUBLIC_URL@";
const CHUNK_PLACEHOLDER: &str = "@SFX_CHUNK_SIZE@";

pub async fn serve(state: &State, req: Request) -> Result<Response, AppError> {
    let url = base_url(state, &req);
    // The URL lands inside single quotes (and comments) of a script people pipe into `sh`:
    // anything that could end the quoting or smuggle a command is refused, never escaped.
    if !shell_safe(&url) {
        return Err(AppError::Internal(format!(
            "public_url `{url}` has characters that cannot go into the client script"
        )));
    }
    let script = render(&url, state.config.upload_chunk_size);
    let mut resp = response::text(StatusCode::OK, script);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"client.sh\""),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

fn render(url: &str, chunk_size: u64) -> String {
    TEMPLATE
        .replace(URL_PLACEHOLDER, url)
        .replace(CHUNK_PLACEHOLDER, &chunk_size.to_string())
}

/// The configured `public_url`. An unconfigured one is the bound address, which is useless to
/// customers when it is `0.0.0.0`/`[::]`: then the host the request was sent to, if it is a
/// plain `host[:port]`.
fn base_url(state: &State, req: &Request) -> String {
    let config = &state.config;
    if config.public_url_is_usable() {
        return config.public_url.clone();
    }
    let host = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.header(header::HOST));
    match host.filter(|h| plain_host(h)) {
        Some(h) => format!("{}://{h}", if req.secure { "https" } else { "http" }),
        None => config.public_url.clone(),
    }
}

fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

/// `http(s)://` and then only URL characters that mean nothing to `sh` inside single quotes
/// nor to `sed`/`printf` in the script: no quote, backslash, `$`, backtick, space or control.
fn shell_safe(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b':'
                        | b'/'
                        | b'['
                        | b']'
                        | b'@'
                        | b'%'
                        | b'+'
                        | b'='
                        | b','
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_urls() {
        for ok in [
            "https://files.example.com",
            "http://127.0.0.1:8080",
            "https://[::1]:8443/sfx",
            "https://host/a-b_c~d%20",
        ] {
            assert!(shell_safe(ok), "{ok}");
        }
        for bad in [
            "https://x/'; rm -rf ~; '",
            "https://x/$(id)",
            "https://x/`id`",
            "https://x/a\\b",
            "https://x/a b",
            "https://x/a\nb",
            "https://x/\"",
            "https://x/a;b",
            "https://x/a&b",
            "https://x/a|b",
            "ftp://x",
            "https://h\u{e9}",
        ] {
            assert!(!shell_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn rendered() {
        let s = render("https://files.example.com", 1234);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("SFX_DEFAULT_URL='https://files.example.com'"));
        assert!(s.contains("SFX_DEFAULT_CHUNK='1234'"));
        assert!(!s.contains(URL_PLACEHOLDER) && !s.contains(CHUNK_PLACEHOLDER));
    }

    #[test]
    fn hosts() {
        assert!(plain_host("files.example.com:8443"));
        assert!(plain_host("[::1]:80"));
        assert!(!plain_host("a'b"));
        assert!(!plain_host("a/b"));
        assert!(!plain_host(""));
    }
}
