//! Client filenames and content types: `sfx::items::sanitize_filename`,
//! `sanitize_content_type`, and the `Content-Disposition` built from a cleaned name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfx::items::{content_type_for, sanitize_content_type, sanitize_filename};
use sfx::routes::download::content_disposition;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(name) = sanitize_filename(&text) {
        assert!(!name.is_empty() && name.len() <= 250, "{name:?}");
        assert!(!name.chars().all(|c| c == '.'), "{name:?}");
        assert!(!name.contains(['/', '\\']), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(
            !name.starts_with(char::is_whitespace) && !name.ends_with(char::is_whitespace),
            "{name:?}"
        );
        assert!(!name.contains("  "), "{name:?}");
        assert_eq!(sanitize_filename(&name).as_deref(), Some(name.as_str()));
        for kind in ["attachment", "inline"] {
            let cd = content_disposition(kind, &name);
            // Always a header value, so it is never silently dropped, and always one quoted name.
            assert!(http::HeaderValue::from_str(&cd).is_ok(), "{cd:?}");
            assert_eq!(cd.matches('"').count(), 2, "{cd:?}");
        }
    }
    if let Some(t) = sanitize_content_type(&text) {
        let (top, sub) = t.split_once('/').expect("type/subtype");
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b))
        };
        assert!(ok(top) && ok(sub) && t.len() <= 100, "{t:?}");
        assert_eq!(sanitize_content_type(&t).as_deref(), Some(t.as_str()));
    }
    let stored = content_type_for(Some(&text), Some(&text), "application/octet-stream");
    assert!(sanitize_content_type(&stored).is_some(), "{stored:?}");
});
