//! Client filenames are untrusted text. We keep what a human would recognise (non-ASCII
//! included, unlike bepasty) and drop what could hurt: directories, control and bidi
//! characters, and names that are only dots.

const MAX_BYTES: usize = 250;

/// Cleans a client-supplied filename. Returns `None` when nothing usable is left.
///
/// The last path component is kept (`/some/dir/x.tgz` and `C:\dir\x.tgz` give `x.tgz`), so a
/// name never carries a directory; control characters (C0, C1, DEL), bidirectional overrides and
/// other invisible format characters are removed; whitespace runs become one space.
pub fn sanitize_filename(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(base.len().min(MAX_BYTES));
    let mut last_space = true;
    for c in base.chars() {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        if c.is_control() || is_invisible_format(c) {
            continue;
        }
        last_space = false;
        if out.len() + c.len_utf8() > MAX_BYTES {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end().to_string();
    if trimmed.chars().all(|c| c == '.') {
        return None;
    }
    Some(trimmed)
}

/// bepasty's fallback when no filename was given: `<name>.txt` for text, else `<name>.bin`.
pub fn fallback_filename(item_name: &str, content_type: &str) -> String {
    let ext = if content_type.starts_with("text/") {
        "txt"
    } else {
        "bin"
    };
    format!("{item_name}.{ext}")
}

/// Unicode's format characters (General Category Cf, as of Unicode 15): invisible, and some of
/// them reorder or hide text. Besides the bidi controls and zero-width characters these are
/// the Arabic letter mark, the tag characters (they can carry hidden ASCII), the soft hyphen,
/// and the like.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                   // soft hyphen
        | '\u{0600}'..='\u{0605}'    // Arabic number signs
        | '\u{061C}'                 // Arabic letter mark (bidi)
        | '\u{06DD}' | '\u{070F}' | '\u{0890}'..='\u{0891}' | '\u{08E2}'
        | '\u{180E}'                 // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'    // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'    // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'    // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'    // bidi isolates, deprecated format controls
        | '\u{FEFF}'                 // byte order mark
        | '\u{FFF9}'..='\u{FFFB}'    // interlinear annotations
        | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}' // language tag, tag characters
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_human_names() {
        assert_eq!(sanitize_filename("BUNDLE.tar.gz").unwrap(), "BUNDLE.tar.gz");
        assert_eq!(
            sanitize_filename("été rapport.pdf").unwrap(),
            "été rapport.pdf"
        );
        assert_eq!(
            sanitize_filename("my bundle (1).tar.gz").unwrap(),
            "my bundle (1).tar.gz"
        );
        assert_eq!(sanitize_filename("日本語.txt").unwrap(), "日本語.txt");
    }

    #[test]
    fn drops_directories() {
        assert_eq!(sanitize_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitize_filename("/some/dir/big.bin").unwrap(), "big.bin");
        assert_eq!(sanitize_filename("..\\..\\win.ini").unwrap(), "win.ini");
        assert_eq!(sanitize_filename("C:\\x\\y.txt").unwrap(), "y.txt");
        assert_eq!(sanitize_filename(".."), None);
        assert_eq!(sanitize_filename("a/.."), None);
        assert_eq!(sanitize_filename(""), None);
        assert_eq!(sanitize_filename("dir/"), None);
    }

    #[test]
    fn drops_control_and_bidi() {
        assert_eq!(
            sanitize_filename("a\r\nSet-Cookie: x").unwrap(),
            "a Set-Cookie: x"
        );
        assert_eq!(
            sanitize_filename("evil\u{202E}fdp.exe").unwrap(),
            "evilfdp.exe"
        );
        assert_eq!(sanitize_filename("a\u{0}b\u{1b}[31m").unwrap(), "ab[31m");
        // Also the format characters outside the bidi/zero-width blocks: the Arabic letter
        // mark (bidi), tag characters (hidden ASCII), the soft hyphen, deprecated controls.
        assert_eq!(
            sanitize_filename("a\u{061C}b\u{E0041}\u{E0042}c\u{00AD}d\u{206A}.txt").unwrap(),
            "abcd.txt"
        );
        assert_eq!(
            sanitize_filename("  lots   of\tspace  ").unwrap(),
            "lots of space"
        );
    }

    #[test]
    fn bounded_length() {
        let long = "é".repeat(1000);
        let s = sanitize_filename(&long).unwrap();
        assert!(s.len() <= MAX_BYTES);
        assert!(s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn fallback() {
        assert_eq!(fallback_filename("kJ6JgXLZ", "text/plain"), "kJ6JgXLZ.txt");
        assert_eq!(
            fallback_filename("kJ6JgXLZ", "application/octet-stream"),
            "kJ6JgXLZ.bin"
        );
    }
}
