//! Pages of per-case upload links: the operators' list and link page, and the customer's
//! upload page at `/u/<token>`.

use super::{ItemView, Nav, format_time, human_size};
use crate::links::{Link, Usage};
use askama::Template;

/// A link as operators see it.
pub struct LinkView {
    pub id: i64,
    pub reference: String,
    pub note: String,
    pub created: String,
    pub created_by: String,
    pub expires: String,
    pub status: &'static str,
    pub limits: String,
    pub usage: String,
    pub notify: String,
    pub revoked: String,
}

impl LinkView {
    pub fn new(link: &Link, used: Usage, now: i64) -> LinkView {
        LinkView {
            id: link.id,
            reference: link.reference.clone(),
            note: link.note.clone().unwrap_or_default(),
            created: format_time(Some(link.created_at)),
            created_by: link.created_by.clone(),
            expires: format_time(link.expires_at),
            status: link.status(now).word(),
            limits: limits(link),
            usage: format!(
                "{} file{}, {}",
                used.files,
                if used.files == 1 { "" } else { "s" },
                human_size(used.bytes)
            ),
            notify: link.notify.join(", "),
            revoked: match (&link.revoked_at, &link.revoked_by) {
                (Some(at), by) => format!(
                    "{} by {}",
                    format_time(Some(*at)),
                    by.as_deref().unwrap_or("?")
                ),
                _ => String::new(),
            },
        }
    }
}

/// "at most 20 files, 50.0 GiB in all", or "no limits".
pub fn limits(link: &Link) -> String {
    let mut parts = Vec::new();
    if let Some(n) = link.max_files {
        parts.push(format!("at most {n} file{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(b) = link.max_size {
        parts.push(format!("{} in all", human_size(b)));
    }
    if parts.is_empty() {
        "no limits".into()
    } else {
        parts.join(", ")
    }
}

#[derive(Template)]
#[template(path = "links.html")]
pub struct LinksPage {
    pub nav: Nav,
    pub links: Vec<LinkView>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// Whether `--notify` can be used (an e-mail alert channel is configured).
    pub can_notify: bool,
    /// The form's values after a refused creation, and why.
    pub error: Option<String>,
    pub form: LinkForm,
}

/// What the create form shows (empty, or what was sent back with an error).
#[derive(Default)]
pub struct LinkForm {
    pub reference: String,
    pub note: String,
    pub expires: String,
    pub max_size: String,
    pub max_files: String,
    pub notify: String,
}

#[derive(Template)]
#[template(path = "link.html")]
pub struct LinkPage {
    pub nav: Nav,
    pub link: LinkView,
    /// The URL, shown once: right after the link was made.
    pub new_url: Option<String>,
    pub arrivals: Vec<(ItemView, String)>,
    pub can_revoke: bool,
    pub host: String,
}

/// The customer's page: the case, the note, the limits, and the uploader.
#[derive(Template)]
#[template(path = "link_upload.html")]
pub struct LinkUploadPage {
    pub nav: Nav,
    pub reference: String,
    pub note: String,
    pub limits: String,
    pub expires: String,
    pub sent: String,
    pub token: String,
    pub public_url: String,
    pub form: super::UploadForm,
}
