//! `Range` / `If-Range` of downloads: `sfx::routes::download::parse_range`.
//! Input: `SIZE\nRANGE[\nIF-RANGE]` (text; other inputs are skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfx::routes::download::{RangeOutcome, parse_range};

const ETAG: &str = "\"e3b0c442\"";
const LAST_MODIFIED: &str = "Wed, 02 Dec 2026 02:13:11 GMT";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let Some(size) = lines.next().and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    let range = lines.next().unwrap_or("");
    let if_range = lines.next();
    let got = parse_range(range, if_range, ETAG, LAST_MODIFIED, size);
    if let RangeOutcome::Partial { start, end } = got {
        assert!(start <= end && end < size, "{range:?} on {size}: {got:?}");
    }
    // A matching validator is the same as none; any other serves the whole file.
    let unconditional = parse_range(range, None, ETAG, LAST_MODIFIED, size);
    match if_range.map(str::trim) {
        Some(v) if v != ETAG && v != LAST_MODIFIED => assert_eq!(got, RangeOutcome::Full),
        _ => assert_eq!(got, unconditional),
    }
    // The plain `bytes=A-B` form, with A <= B, has one right answer. (Over 30 digits,
    // http-range-header refuses a number, so the whole file is served: RFC 9110 allows that.)
    if let Some((a, b)) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .filter(|(a, b)| digits(a) && digits(b))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .filter(|(a, b)| a <= b)
    {
        let want = if a < size {
            RangeOutcome::Partial {
                start: a,
                end: b.min(size - 1),
            }
        } else {
            RangeOutcome::Unsatisfiable
        };
        assert_eq!(unconditional, want, "{range:?} on {size}");
    }
});

fn digits(s: &str) -> bool {
    (1..=30).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}
