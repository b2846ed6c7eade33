//! Content types: what a client claims is sanitized; what we serve inline is allow-listed.

const MAX_LEN: usize = 100;

/// Keeps `type/subtype` made of `[A-Za-z0-9+.-]`, lower-cased, without parameters.
pub fn sanitize_content_type(raw: &str) -> Option<String> {
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (top, sub) = essence.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    };
    (ok(top) && ok(sub) && essence.len() <= MAX_LEN).then_some(essence)
}

/// The type to store: the client's (if it is a real type), else a guess from the filename,
/// else `fallback`. A generic `application/octet-stream` from the client is kept as is.
pub fn content_type_for(claimed: Option<&str>, filename: Option<&str>, fallback: &str) -> String {
    if let Some(t) = claimed.and_then(sanitize_content_type) {
        return t;
    }
    filename
        .and_then(|f| mime_guess::from_path(f).first())
        .map(|m| m.essence_str().to_string())
        .unwrap_or_else(|| fallback.to_string())
}

/// Types a browser may render inline without running anything: text (served as `text/plain`),
/// raster images and PDF. SVG, HTML, XML and everything else are attachments.
pub fn is_inline_safe(content_type: &str) -> bool {
    let markup = matches!(
        content_type,
        "text/html" | "text/xml" | "text/xsl" | "text/xhtml"
    );
    (content_type.starts_with("text/") && !markup)
        || matches!(
            content_type,
            "image/png"
                | "image/jpeg"
                | "image/gif"
                | "image/webp"
                | "image/avif"
                | "image/bmp"
                | "application/pdf"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes() {
        assert_eq!(
            sanitize_content_type("text/plain; charset=utf-8").unwrap(),
            "text/plain"
        );
        assert_eq!(
            sanitize_content_type("Application/Octet-Stream").unwrap(),
            "application/octet-stream"
        );
        assert!(sanitize_content_type("text/html\r\nX: y").is_none());
        assert!(sanitize_content_type("nonsense").is_none());
        assert!(sanitize_content_type("").is_none());
    }

    #[test]
    fn guesses_and_falls_back() {
        assert_eq!(
            content_type_for(None, Some("a.txt"), "application/octet-stream"),
            "text/plain"
        );
        assert_eq!(
            content_type_for(Some("bogus"), Some("a.png"), "x/y"),
            "image/png"
        );
        assert_eq!(
            content_type_for(None, Some("noext"), "application/octet-stream"),
            "application/octet-stream"
        );
        assert_eq!(
            content_type_for(Some("application/octet-stream"), Some("a.txt"), "x/y"),
            "application/octet-stream"
        );
    }

    #[test]
    fn inline_policy() {
        assert!(is_inline_safe("text/x-python")); // served as text/plain
        assert!(!is_inline_safe("text/html"));
        assert!(!is_inline_safe("text/xml"));
        assert!(is_inline_safe("image/png"));
        assert!(is_inline_safe("application/pdf"));
        assert!(!is_inline_safe("image/svg+xml"));
        assert!(!is_inline_safe("application/xhtml+xml"));
        assert!(!is_inline_safe("application/octet-stream"));
    }
}
