//! E-mail alerts through SMTP (lettre: `smtp://`, `smtps://`, `?tls=required`).

use super::Payload;
use crate::config::Secret;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

pub async fn send(
    smtp_url: &Secret,
    from: &str,
    to: &[String],
    payload: &Payload,
) -> Result<(), String> {
    let from: Mailbox = from.parse().map_err(|e| format!("from address: {e}"))?;
    // The delivery's idempotency key as Message-ID: a retried alert is recognisably the same mail.
    let mut message = Message::builder()
        .from(from)
        .subject(payload.subject())
        .message_id(Some(format!("<{}@sfx>", payload.idempotency_key)));
    for t in to {
        message = message.to(t
            .parse::<Mailbox>()
            .map_err(|e| format!("to address: {e}"))?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(payload.text())
        .map_err(|e| format!("building the mail: {e}"))?;
    // Configuration was validated at start-up; this error text never includes the URL.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.expose())
        .map_err(|_| "invalid smtp_url".to_string())?
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}
