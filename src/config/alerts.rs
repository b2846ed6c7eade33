//! `[[alerts]]`: where support is told that a delivery has arrived.

use serde::Deserialize;
use std::fmt;

/// A configured value that must never be logged (SMTP URLs carry passwords, webhook URLs are
/// bearer secrets): `Debug` shows only that it is there.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"text": ...}`: Slack, Mattermost, Rocket.Chat and other Slack-compatible hooks.
    Slack,
    /// sfx's own versioned schema (`sfx.delivery.v1`), optionally HMAC-signed.
    Json,
}

#[derive(Debug, Clone)]
pub enum ChannelKind {
    Email {
        smtp_url: Secret,
        from: String,
        to: Vec<String>,
    },
    Webhook {
        url: Secret,
        format: WebhookFormat,
        signing_secret: Option<Secret>,
    },
    Command {
        command: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct AlertChannel {
    /// Stable name: alert state is recorded per channel name.
    pub name: String,
    /// When not empty, only deliveries made with these secret labels are sent here.
    pub only_labels: Vec<String>,
    pub kind: ChannelKind,
}

impl AlertChannel {
    pub fn wants(&self, label: &str) -> bool {
        wants(&self.only_labels, label)
    }
}

/// Whether a channel with these `only_labels` alerts deliveries of `label`; `link:*` stands
/// for every upload link (their labels are `link:<id>`).
pub fn wants(only_labels: &[String], label: &str) -> bool {
    only_labels.is_empty()
        || only_labels
            .iter()
            .any(|l| l == label || (l == "link:*" && label.starts_with("link:")))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum RawChannel {
    Email {
        name: Option<String>,
        #[serde(default)]
        only_labels: Vec<String>,
        smtp_url: Secret,
        from: String,
        to: Vec<String>,
    },
    Webhook {
        name: Option<String>,
        #[serde(default)]
        only_labels: Vec<String>,
        url: Secret,
        format: Option<WebhookFormat>,
        signing_secret: Option<Secret>,
    },
    Command {
        name: Option<String>,
        #[serde(default)]
        only_labels: Vec<String>,
        command: Vec<String>,
    },
}

pub(super) fn validate(raw: Vec<RawChannel>) -> Result<Vec<AlertChannel>, String> {
    let mut out: Vec<AlertChannel> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let (name, only_labels, kind) = match r {
            RawChannel::Email {
                name,
                only_labels,
                smtp_url,
                from,
                to,
            } => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(smtp_url.expose())
                    .map_err(|_| {
                    format!("alerts[{i}]: smtp_url is not a valid smtp:// or smtps:// URL")
                })?;
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("alerts[{i}]: from `{from}`: {e}"))?;
                if to.is_empty() {
                    return Err(format!("alerts[{i}]: `to` needs at least one address"));
                }
                for t in &to {
                    t.parse::<lettre::message::Mailbox>()
                        .map_err(|e| format!("alerts[{i}]: to `{t}`: {e}"))?;
                }
                (
                    name.unwrap_or_else(|| format!("email-{}", i + 1)),
                    only_labels,
                    ChannelKind::Email { smtp_url, from, to },
                )
            }
            RawChannel::Webhook {
                name,
                only_labels,
                url,
                format,
                signing_secret,
            } => {
                let parsed = reqwest::Url::parse(url.expose())
                    .map_err(|_| format!("alerts[{i}]: url is not a URL"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("alerts[{i}]: url must be http:// or https://"));
                }
                let format = format.unwrap_or(WebhookFormat::Json);
                if signing_secret.is_some() && format != WebhookFormat::Json {
                    return Err(format!(
                        "alerts[{i}]: signing_secret applies to format = \"json\" only"
                    ));
                }
                (
                    name.unwrap_or_else(|| format!("webhook-{}", i + 1)),
                    only_labels,
                    ChannelKind::Webhook {
                        url,
                        format,
                        signing_secret,
                    },
                )
            }
            RawChannel::Command {
                name,
                only_labels,
                command,
            } => {
                if command.first().is_none_or(|c| c.is_empty()) {
                    return Err(format!("alerts[{i}]: command needs a program"));
                }
                (
                    name.unwrap_or_else(|| format!("command-{}", i + 1)),
                    only_labels,
                    ChannelKind::Command { command },
                )
            }
        };
        if name.is_empty() || out.iter().any(|c| c.name == name) {
            return Err(format!("alerts[{i}]: name `{name}` is empty or used twice"));
        }
        out.push(AlertChannel {
            name,
            only_labels,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = Secret("smtps://user:hunter2@mail".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
