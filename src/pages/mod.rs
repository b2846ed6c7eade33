//! HTML pages (askama templates under `templates/`, escaped by default) and the view models
//! that format item metadata for them.

mod audit;
mod console;
mod links;
mod views;

pub use audit::{AuditPage, AuditRow};
pub use console::{
    AlertView, BulkDeletePage, DeliveriesPage, DeliveryPage, DeliveryView, FilterView, ListPage,
    SortLink,
};
pub use links::{LinkForm, LinkPage, LinkUploadPage, LinkView, LinksPage, limits as link_limits};
pub use views::{ItemView, ReceiptItem, format_time, human_size};

use crate::auth::{Permission, Principal};
use askama::Template;
use http::StatusCode;

/// What the page header needs: the site name, the login state, and which links to show.
pub struct Nav {
    pub site: String,
    pub session_label: Option<String>,
    pub can_create: bool,
    pub can_list: bool,
    pub can_audit: bool,
    pub can_links: bool,
}

impl Nav {
    pub fn new(site: &str, who: &Principal) -> Nav {
        Nav {
            site: site.to_string(),
            session_label: who.session.as_ref().map(|s| s.label.clone()),
            can_create: who.can(Permission::Create),
            can_list: who.can(Permission::List),
            can_audit: who.can(Permission::Admin),
            can_links: who.can(Permission::Links),
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub nav: Nav,
    pub login_failed: bool,
    pub host: String,
    pub form: UploadForm,
}

/// What `templates/upload_form.html` (the form and its resumable uploader) needs.
pub struct UploadForm {
    /// Where the form posts without JavaScript.
    pub action: String,
    /// An upload link's token, sent as `Authorization: Bearer` by the script.
    pub bearer: Option<String>,
    /// An upload link's case: shown instead of the reference field.
    pub fixed_reference: Option<String>,
    pub lifetime_value: u64,
    /// (form value, label, selected)
    pub lifetime_units: Vec<(&'static str, &'static str, bool)>,
    pub max_file_size: String,
    pub max_lifetime: String,
    /// Bytes per tus PATCH of the browser uploader (`upload_chunk_size`), for its script.
    pub upload_chunk_size: u64,
    /// `max_file_size` in bytes, so that the script refuses a too large file before sending it.
    pub max_file_bytes: u64,
}

#[derive(Template)]
#[template(path = "receipt.html")]
pub struct ReceiptPage {
    pub nav: Nav,
    pub items: Vec<ReceiptItem>,
}

/// The body of the 302 answering a curl upload: readable as HTML and as raw text in a terminal.
#[derive(Template)]
#[template(path = "receipt_body.html")]
pub struct ReceiptBody<'a> {
    pub items: &'a [ReceiptItem],
}

#[derive(Template)]
#[template(path = "item.html")]
pub struct ItemPage {
    pub nav: Nav,
    pub it: ItemView,
    pub can_delete: bool,
    /// The item's audit records, newest first (uploads, downloads, changes: who, when, from
    /// where).
    pub history: Vec<crate::audit::AuditRecord>,
    /// How many records the item has in all.
    pub history_total: u64,
    /// `/+audit?item=…` when there are more than shown and the reader may see the trail.
    pub history_more: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    code: u16,
    reason: &'a str,
    message: &'a str,
}

/// Renders a template; a failure (which would be a bug in a template) becomes a plain page.
pub fn render<T: Template>(page: &T) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed to render");
        "<!doctype html><title>Error</title><p>internal error</p>".to_string()
    })
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    render(&ErrorPage {
        code: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        message,
    })
}
