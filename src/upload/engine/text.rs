//! The free-text fields of an upload (reference, comment), whatever protocol carried them.

use super::UploadError;

const MAX_REFERENCE_CHARS: usize = 200;
const MAX_COMMENT_CHARS: usize = 4000;

/// A case reference: one line of at most 200 characters.
pub fn clean_reference(raw: Option<&str>) -> Result<Option<String>, UploadError> {
    clean("reference", raw, MAX_REFERENCE_CHARS, false)
}

/// A comment: up to 4000 characters, line breaks kept.
pub fn clean_comment(raw: Option<&str>) -> Result<Option<String>, UploadError> {
    clean("comment", raw, MAX_COMMENT_CHARS, true)
}

/// Trims, drops control characters (keeping line breaks in multi-line fields) and bounds the
/// length. Empty becomes `None`.
fn clean(
    name: &str,
    raw: Option<&str>,
    max_chars: usize,
    multiline: bool,
) -> Result<Option<String>, UploadError> {
    let Some(raw) = raw else { return Ok(None) };
    let cleaned: String = raw
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || (multiline && (*c == '\n' || *c == '\t')))
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() > max_chars {
        return Err(UploadError::BadText(format!(
            "`{name}` is longer than {max_chars} characters"
        )));
    }
    Ok((!cleaned.is_empty()).then(|| cleaned.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields() {
        assert_eq!(
            clean("r", Some("  CASE-1\r\n "), 10, false)
                .unwrap()
                .unwrap(),
            "CASE-1"
        );
        assert_eq!(
            clean("c", Some("a\r\nb\u{1b}[2J"), 10, true)
                .unwrap()
                .unwrap(),
            "a\nb[2J"
        );
        assert_eq!(clean("r", Some("   "), 10, false).unwrap(), None);
        assert!(clean("r", Some("12345678901"), 10, false).is_err());
    }
}
