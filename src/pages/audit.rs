//! The audit trail page (`/+audit`): records as operators read them.

use super::Nav;
use crate::audit::AuditRecord;
use crate::items::ItemName;
use askama::Template;

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<AuditRow>,
    /// The filters as given (shown back in the form).
    pub item: String,
    pub label: String,
    pub kind: String,
    /// (kind name, selected) for the kind filter.
    pub kinds: Vec<(&'static str, bool)>,
    pub total: u64,
    pub newer: Option<String>,
    pub older: Option<String>,
}

/// One record. Every text is shown escaped: filenames and labels are not ours.
pub struct AuditRow {
    pub r: AuditRecord,
    pub hash_short: String,
    /// `/+audit?label=…` for the record's label.
    pub label_href: String,
    /// Set when the item is a real item name (then it links to its records).
    pub item_link: Option<String>,
}

impl From<AuditRecord> for AuditRow {
    fn from(r: AuditRecord) -> Self {
        let query = |key: &str, value: &str| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair(key, value);
            format!("/+audit?{}", q.finish())
        };
        AuditRow {
            hash_short: r.hash.chars().take(12).collect(),
            label_href: query("label", &r.label),
            item_link: ItemName::parse(&r.item).map(|n| query("item", n.as_str())),
            r,
        }
    }
}
