//! What an alert says. The JSON form is a documented, versioned schema (`sfx.delivery.v1`, see
//! README); e-mail and chat get the same facts as text. No secret, token, cookie or
//! credential-free download link ever goes in: links point at the operator item page.

use crate::pages::{format_time, human_size};
use crate::scan::ScanState;
use crate::store::Delivery;
use serde::Serialize;

pub const SCHEMA: &str = "sfx.delivery.v1";

#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    pub schema: &'static str,
    /// The same on every attempt and every channel for one delivery.
    pub idempotency_key: String,
    /// True for `sfx alert-test`.
    pub test: bool,
    pub delivery: DeliveryInfo,
    pub uploader: UploaderInfo,
    pub files: Vec<FileInfo>,
    /// The upload link the files came through; `null` for other uploads.
    pub link: Option<LinkInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkInfo {
    pub id: i64,
    /// The case the link was made for (also `uploader.reference`).
    pub reference: String,
    /// The link's operator page.
    pub url: String,
    /// Told by e-mail on top of the e-mail channel's own recipients.
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    pub id: i64,
    /// RFC 3339 (UTC).
    pub opened_at: String,
    pub closed_at: Option<String>,
    pub file_count: usize,
    pub total_size: u64,
    /// Files the antivirus scan found infected (quarantined); 0 when antivirus is off.
    pub infected: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct UploaderInfo {
    /// The label of the secret used (never the secret).
    pub label: String,
    pub client_ip: String,
    pub user_agent: String,
    pub reference: Option<String>,
    /// The distinct comments given with the files, in upload order.
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub name: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(rename = "type")]
    pub content_type: String,
    /// The operator page of the item (needs operator credentials).
    pub url: String,
    pub uploaded_at: String,
    /// `null`: kept forever.
    pub expires_at: Option<String>,
    /// Deleted (or expired) before the alert went out.
    pub deleted: bool,
    /// The antivirus result: `clean`, `infected: <signature>`, `not scanned: <why>`; `null`
    /// when antivirus is off.
    pub scan: Option<String>,
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Payload {
    pub fn new(d: &Delivery, public_url: &str) -> Payload {
        let mut comments: Vec<String> = Vec::new();
        for c in d.items.iter().filter_map(|i| i.comment.clone()) {
            if !comments.contains(&c) {
                comments.push(c);
            }
        }
        Payload {
            schema: SCHEMA,
            idempotency_key: d.idempotency_key.clone(),
            test: false,
            delivery: DeliveryInfo {
                id: d.id,
                opened_at: rfc3339(d.opened_at),
                closed_at: d.closed_at.map(rfc3339),
                file_count: d.items.len(),
                total_size: d.items.iter().map(|i| i.size).sum(),
                infected: d.items.iter().filter(|i| i.is_infected()).count(),
            },
            uploader: UploaderInfo {
                label: d.uploader.label.clone(),
                client_ip: d.uploader.client_ip.clone(),
                user_agent: d.uploader.user_agent.clone(),
                reference: d.reference.clone(),
                comments,
            },
            files: d
                .items
                .iter()
                .map(|i| FileInfo {
                    name: i.name.to_string(),
                    filename: i.filename.clone(),
                    size: i.size,
                    sha256: i.sha256.clone(),
                    content_type: i.content_type.clone(),
                    url: format!("{public_url}/{}", i.name),
                    uploaded_at: rfc3339(i.completed_at.unwrap_or(i.created_at)),
                    expires_at: i.expires_at.map(rfc3339),
                    deleted: d.deleted.iter().any(|n| n == i.name.as_str()),
                    scan: i.scan.as_ref().map(ScanState::label),
                })
                .collect(),
            link: None,
        }
    }

    /// Names the upload link the delivery came through.
    pub fn with_link(mut self, link: &crate::links::Link, public_url: &str) -> Payload {
        self.link = Some(LinkInfo {
            id: link.id,
            reference: link.reference.clone(),
            url: format!("{public_url}/+links/{}", link.id),
            notify: link.notify.clone(),
        });
        self
    }

    /// What `sfx alert-test` sends: clearly marked, naming no real item.
    pub fn test(public_url: &str) -> Payload {
        let now = crate::now();
        let mut raw = [0u8; 16];
        let _ = getrandom::fill(&mut raw);
        Payload {
            schema: SCHEMA,
            idempotency_key: format!("test-{}", hex::encode(raw)),
            test: true,
            delivery: DeliveryInfo {
                id: 0,
                opened_at: rfc3339(now),
                closed_at: Some(rfc3339(now)),
                file_count: 1,
                total_size: 0,
                infected: 0,
            },
            uploader: UploaderInfo {
                label: "alert-test".into(),
                client_ip: "127.0.0.1".into(),
                user_agent: concat!("sfx/", env!("CARGO_PKG_VERSION")).into(),
                reference: Some("TEST".into()),
                comments: vec!["This is a test alert: nothing was uploaded.".into()],
            },
            files: vec![FileInfo {
                name: "TESTTEST".into(),
                filename: "example.tar.gz".into(),
                size: 0,
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                content_type: "application/gzip".into(),
                url: format!("{public_url}/TESTTEST"),
                uploaded_at: rfc3339(now),
                expires_at: None,
                deleted: false,
                scan: None,
            }],
            link: None,
        }
    }

    pub fn subject(&self) -> String {
        let n = self.files.len();
        let what = if n == 1 {
            self.files[0].filename.clone()
        } else {
            format!("{n} files")
        };
        let reference = self
            .uploader
            .reference
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        let test = if self.test { "TEST " } else { "" };
        let reference = match &self.link {
            Some(l) => format!(" [case {}, upload link #{}]", l.reference, l.id),
            None => reference,
        };
        let infected = match self.delivery.infected {
            0 => String::new(),
            n => format!("INFECTED ({n}) "),
        };
        // Control characters could fold or inject mail headers.
        clean_line(&format!(
            "[sfx] {infected}{test}{what} from {}{reference}",
            self.uploader.label
        ))
    }

    /// The alert as plain text (e-mail body, chat message).
    pub fn text(&self) -> String {
        let u = &self.uploader;
        let mut out = String::new();
        if self.test {
            out.push_str("This is a test alert from `sfx alert-test`: nothing was uploaded.\n\n");
        }
        if self.delivery.infected > 0 {
            out.push_str(&format!(
                "WARNING: {} file(s) of this delivery are INFECTED and quarantined: only admins \
                 see them, and downloading needs an explicit admin override.\n\n",
                self.delivery.infected
            ));
        }
        let n = self.files.len();
        out.push_str(&format!(
            "{n} file{} ({}) received from {} ({}).\n\n",
            if n == 1 { "" } else { "s" },
            human_size(self.delivery.total_size),
            clean_line(&u.label),
            clean_line(&u.client_ip)
        ));
        for f in &self.files {
            out.push_str(&format!("- {}\n", clean_line(&f.filename)));
            out.push_str(&format!(
                "  size     {} bytes ({})\n",
                f.size,
                human_size(f.size)
            ));
            out.push_str(&format!("  sha256   {}\n", f.sha256));
            if let Some(scan) = &f.scan {
                out.push_str(&format!("  scan     {}\n", clean_line(scan)));
            }
            out.push_str(&format!("  link     {}\n", f.url));
            let expires = f
                .expires_at
                .as_deref()
                .map(|e| e.replace('T', " ").replace('Z', " UTC"))
                .unwrap_or_else(|| format_time(None));
            out.push_str(&format!(
                "  expires  {expires}{}\n",
                if f.deleted { " (already deleted)" } else { "" }
            ));
        }
        out.push_str(&format!(
            "\nUploader:   {} from {}\n",
            clean_line(&u.label),
            clean_line(&u.client_ip)
        ));
        out.push_str(&format!("User agent: {}\n", clean_line(&u.user_agent)));
        if let Some(r) = &u.reference {
            out.push_str(&format!("Reference:  {}\n", clean_line(r)));
        }
        if let Some(l) = &self.link {
            out.push_str(&format!(
                "Case:       {} (through upload link #{}: {})\n",
                clean_line(&l.reference),
                l.id,
                l.url
            ));
        }
        for c in &u.comments {
            out.push_str(&format!("Comment:\n{}\n", indent(c)));
        }
        out.push_str(&format!(
            "\nDelivery {} ({})\n",
            self.delivery.id, self.idempotency_key
        ));
        out
    }
}

fn clean_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {}", clean_line(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::ItemName;
    use crate::store::{Item, ItemState, Uploader};

    fn delivery() -> Delivery {
        let item = |n: &str, f: &str| Item {
            name: ItemName::parse(n).unwrap(),
            filename: f.into(),
            content_type: "application/gzip".into(),
            size: 1000,
            sha256: "ab".repeat(32),
            state: ItemState::Complete,
            created_at: 1_795_000_000,
            completed_at: Some(1_795_000_000),
            expires_at: None,
            downloaded_at: None,
            locked: false,
            uploader: Uploader {
                label: "customers".into(),
                client_ip: "192.0.2.7".into(),
                user_agent: "curl".into(),
                link: None,
            },
            reference: Some("CASE-1".into()),
            comment: Some("line one\nline two".into()),
            scan: None,
        };
        Delivery {
            id: 7,
            idempotency_key: "k".into(),
            uploader: Uploader {
                label: "customers".into(),
                client_ip: "192.0.2.7".into(),
                user_agent: "curl".into(),
                link: None,
            },
            reference: Some("CASE-1".into()),
            opened_at: 1_795_000_000,
            closed_at: Some(1_795_000_060),
            items: vec![
                item("AAAAAAAA", "a.tgz"),
                item("CCCCCCCC", "b\r\nBcc: x.tgz"),
            ],
            deleted: vec!["CCCCCCCC".into()],
        }
    }

    #[test]
    fn payload_lists_files_and_is_header_safe() {
        let p = Payload::new(&delivery(), "https://sfx.example.com");
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].url, "https://sfx.example.com/AAAAAAAA");
        assert!(p.files[1].deleted);
        assert_eq!(p.delivery.total_size, 2000);
        assert_eq!(p.uploader.comments, vec!["line one\nline two".to_string()]);
        assert!(!p.subject().contains('\n'));
        let text = p.text();
        assert!(
            text.contains("b  Bcc: x.tgz") && !text.contains("\r"),
            "{text}"
        );
        assert!(text.contains("https://sfx.example.com/AAAAAAAA"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["schema"], "sfx.delivery.v1");
        assert_eq!(json["files"][0]["type"], "application/gzip");
        assert!(json["files"][0]["scan"].is_null());
    }

    #[test]
    fn infected_files_are_named_prominently() {
        let mut d = delivery();
        d.items[0].scan = Some(ScanState::Infected("Eicar-Test-Signature".into()));
        d.items[1].scan = Some(ScanState::Clean);
        let p = Payload::new(&d, "https://sfx.example.com");
        assert!(
            p.subject().starts_with("[sfx] INFECTED (1) "),
            "{}",
            p.subject()
        );
        let text = p.text();
        assert!(text.starts_with("WARNING: 1 file(s)"), "{text}");
        assert!(
            text.contains("  scan     infected: Eicar-Test-Signature\n"),
            "{text}"
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["delivery"]["infected"], 1);
        assert_eq!(json["files"][1]["scan"], "clean");
    }
}
