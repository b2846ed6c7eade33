//! Webhook alerts: Slack-compatible `{"text": ...}`, or sfx's JSON schema signed with
//! HMAC-SHA256 over `<timestamp>.<body>` (headers `X-Sfx-Timestamp`, `X-Sfx-Signature: v1=<hex>`).

use super::Payload;
use crate::config::{Secret, WebhookFormat};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

pub async fn send(
    http: &reqwest::Client,
    url: &Secret,
    format: WebhookFormat,
    signing_secret: Option<&Secret>,
    payload: &Payload,
) -> Result<(), String> {
    let body = match format {
        WebhookFormat::Slack => {
            serde_json::json!({ "text": slack_escape(&payload.text()) }).to_string()
        }
        WebhookFormat::Json => serde_json::to_string(payload).map_err(|e| e.to_string())?,
    };
    let mut request = http
        .post(url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &payload.idempotency_key)
        .header("X-Sfx-Schema", super::SCHEMA);
    if let Some(secret) = signing_secret {
        let timestamp = crate::now().to_string();
        request = request.header("X-Sfx-Timestamp", &timestamp).header(
            "X-Sfx-Signature",
            format!("v1={}", sign(secret.expose(), &timestamp, &body)),
        );
    }
    // `without_url`: webhook URLs are secrets and must not reach logs or pages.
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("webhook: {}", error_chain(e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!(
            "webhook answered HTTP {} (a redirect): configure the final URL",
            status.as_u16()
        ))
    } else {
        Err(format!("webhook answered HTTP {}", status.as_u16()))
    }
}

/// Chat formatting must not act on customer text. Slack reads `<...>` as mentions
/// (`<!channel>`) and links and `&` as an entity; Mattermost and Rocket.Chat (which take the same
/// hooks) ping on a plain `@channel`/`@all` and render `[text](url)` links. A word joiner after
/// `@` and between `]` and `(` keeps the text as typed but inert.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('@', "@\u{2060}")
        .replace("](", "]\u{2060}(")
}

/// "error sending request: connection refused" rather than the first line only.
fn error_chain(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Hex HMAC-SHA256 of `<timestamp>.<body>`, what receivers recompute to verify.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            super::slack_escape("<!channel> a&b <https://x|y>"),
            "&lt;!channel&gt; a&amp;b &lt;https://x|y&gt;"
        );
        let mattermost = super::slack_escape("@all see [portal](https://evil)");
        assert!(
            !mattermost.contains("@all") && !mattermost.contains("]("),
            "{mattermost}"
        );
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            super::sign("s3cret", "1700000000", "{}"),
            "97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }
}
