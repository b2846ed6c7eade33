//! Properties of the parsers that take client input: download ranges, REST `Content-Range`,
//! `Authorization`, filenames and content types, the streaming base64 decoder. Multipart field
//! handling through the real server is in form_properties.rs. The same parsers have
//! `cargo fuzz` targets under fuzz/.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use sfx::auth::{AuthError, parse_authorization};
use sfx::items::{sanitize_content_type, sanitize_filename};
use sfx::routes::download::{RangeOutcome, content_disposition, parse_range};
use sfx::upload::{Base64Stream, ChunkRange};

const ETAG: &str = "\"e3b0c442\"";
const LAST_MODIFIED: &str = "Wed, 02 Dec 2026 02:13:11 GMT";

/// Default case counts (or `PROPTEST_CASES`); a failure is printed with its minimal input,
/// not saved to a file.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- Range ------------------------------------------------------------------------------

fn range(value: &str, size: u64) -> RangeOutcome {
    parse_range(value, None, ETAG, LAST_MODIFIED, size)
}

/// Text that looks like a `Range` value often enough to reach past the first check.
fn range_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "(bytes|BYTES|items)?[ =]{0,2}[0-9]{0,21}-?[0-9]{0,21}(,[ ]?[0-9]{0,5}-[0-9]{0,5}){0,3}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn served_ranges_lie_inside_the_file(value in range_like(), size in 0u64..10_000) {
        if let RangeOutcome::Partial { start, end } = range(&value, size) {
            prop_assert!(start <= end && end < size, "{value:?} on {size}");
        }
    }

    #[test]
    fn a_closed_range_is_clamped_or_unsatisfiable(
        a in 0u64..20_000,
        len in 0u64..20_000,
        size in 0u64..10_000,
    ) {
        let b = a + len;
        let want = if a < size {
            RangeOutcome::Partial { start: a, end: b.min(size - 1) }
        } else {
            RangeOutcome::Unsatisfiable
        };
        prop_assert_eq!(range(&format!("bytes={a}-{b}"), size), want);
    }

    #[test]
    fn open_and_suffix_ranges(a in 0u64..20_000, n in 1u64..20_000, size in 1u64..10_000) {
        let open = if a < size {
            RangeOutcome::Partial { start: a, end: size - 1 }
        } else {
            RangeOutcome::Unsatisfiable
        };
        prop_assert_eq!(range(&format!("bytes={a}-"), size), open);
        let suffix = RangeOutcome::Partial { start: size - n.min(size), end: size - 1 };
        prop_assert_eq!(range(&format!("bytes=-{n}"), size), suffix);
    }

    #[test]
    fn a_reversed_range_is_ignored(a in 1u64..20_000, back in 1u64..20_000, size in 0u64..10_000) {
        let b = a.saturating_sub(back);
        prop_assume!(b < a);
        prop_assert_eq!(range(&format!("bytes={a}-{b}"), size), RangeOutcome::Full);
    }

    #[test]
    fn if_range_must_match_a_validator(
        value in range_like(),
        if_range in "\\PC{0,40}",
        size in 0u64..10_000,
    ) {
        let got = parse_range(&value, Some(&if_range), ETAG, LAST_MODIFIED, size);
        if if_range.trim() == ETAG || if_range.trim() == LAST_MODIFIED {
            prop_assert_eq!(got, range(&value, size));
        } else {
            prop_assert_eq!(got, RangeOutcome::Full);
        }
        for v in [ETAG, LAST_MODIFIED] {
            let got = parse_range(&value, Some(v), ETAG, LAST_MODIFIED, size);
            prop_assert_eq!(got, range(&value, size));
        }
    }
}

// ---- Content-Range of REST chunks -------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chunk_ranges_parse(
        b in any::<u64>(),
        len in any::<u64>(),
        after in any::<u64>(),
        eq in any::<bool>(),
    ) {
        let e = b.saturating_add(len);
        let Some(t) = e.checked_add(1).map(|t| t.saturating_add(after)) else {
            return Ok(());
        };
        let sep = if eq { "=" } else { " " };
        let r = ChunkRange::parse(&format!(" bytes{sep}{b}-{e}/{t} ")).expect("valid range");
        prop_assert_eq!((r.begin, r.end, r.total), (b, e, t));
        prop_assert_eq!(r.byte_count(), e - b + 1);
        prop_assert_eq!(r.is_last(), e + 1 == t);
    }

    #[test]
    fn impossible_chunk_ranges_are_refused(b in 0u64..1000, e in 0u64..1000, t in 0u64..1000) {
        prop_assume!(b > e || e >= t);
        prop_assert_eq!(ChunkRange::parse(&format!("bytes {b}-{e}/{t}")), None);
    }

    #[test]
    fn accepted_chunk_ranges_mean_their_canonical_form(
        value in prop_oneof![
            "\\PC{0,30}",
            "(bytes)?[ =+-]{0,2}[0-9 +-]{0,12}[-/][0-9*+ -]{0,12}/?[0-9* ]{0,12}",
        ]
    ) {
        if let Some(r) = ChunkRange::parse(&value) {
            prop_assert!(r.begin <= r.end && r.end < r.total, "{value:?}");
            let canonical = format!("bytes {}-{}/{}", r.begin, r.end, r.total);
            prop_assert_eq!(ChunkRange::parse(&canonical), Some(r));
        }
    }
}

// ---- Authorization ----------------------------------------------------------------------

fn basic(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn basic_gives_the_password(
        user in "[^:\\p{Cc}]{0,20}",
        password in "[^\\p{Cc}]{1,40}",
        scheme in "[bB][aA][sS][iI][cC]",
    ) {
        let value = format!("{scheme} {}", STANDARD.encode(format!("{user}:{password}")));
        prop_assert_eq!(parse_authorization(value.as_bytes()), Ok(Some(password)));
    }

    #[test]
    fn an_empty_password_is_anonymous(user in "[^:\\p{Cc}]{0,20}") {
        prop_assert_eq!(parse_authorization(basic(&format!("{user}:")).as_bytes()), Ok(None));
    }

    #[test]
    fn control_characters_are_never_passed_on(
        user in "[^:]{0,10}",
        password in "[^:]{0,10}",
        ctl in "\\p{Cc}",
        at in any::<prop::sample::Index>(),
        in_user in any::<bool>(),
    ) {
        let (mut user, mut password) = (user, password);
        let target = if in_user { &mut user } else { &mut password };
        let boundaries: Vec<usize> =
            target.char_indices().map(|(i, _)| i).chain([target.len()]).collect();
        let at = boundaries[at.index(boundaries.len())];
        target.insert_str(at, &ctl);
        prop_assert_eq!(
            parse_authorization(basic(&format!("{user}:{password}")).as_bytes()),
            Err(AuthError::Malformed)
        );
        prop_assert_eq!(
            // Inside the token: at its ends, whitespace controls are header padding, trimmed.
            parse_authorization(format!("Bearer a{user}{password}z").as_bytes()),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn bearer_gives_the_token(token in "[!-~][ -~]{0,40}[!-~]") {
        prop_assert_eq!(parse_authorization(format!("Bearer {token}").as_bytes()), Ok(Some(token)));
    }

    #[test]
    fn any_accepted_secret_is_clean(
        value in prop::collection::vec(any::<u8>(), 0..60),
        b64 in any::<bool>(),
    ) {
        let value = if b64 { basic(&String::from_utf8_lossy(&value)).into_bytes() } else { value };
        if let Ok(Some(secret)) = parse_authorization(&value) {
            prop_assert!(!secret.is_empty() && !secret.chars().any(char::is_control), "{secret:?}");
        }
    }
}

// ---- Filenames and content types --------------------------------------------------------

/// Names with the parts that matter: separators, dots, controls, bidi and other invisible
/// characters, whitespace of all kinds, and non-ASCII text.
fn hostile_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9_.-]{1,8}",
        Just("/".to_string()),
        Just("\\".to_string()),
        Just("..".to_string()),
        "\\p{Cc}",
        "[\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2060}-\u{2064}\u{2066}-\u{2069}\u{FEFF}]",
        "\\s{1,3}",
        "[é日本語🎉]{1,4}",
        "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn clean_filenames(raw in hostile_name()) {
        if let Some(name) = sanitize_filename(&raw) {
            prop_assert!(!name.is_empty() && name.len() <= 250);
            prop_assert!(!name.chars().all(|c| c == '.'), "{name:?}");
            prop_assert!(!name.contains(['/', '\\']), "{name:?}");
            prop_assert!(!name.chars().any(char::is_control), "{name:?}");
            prop_assert!(name.trim() == name, "{name:?}");
            // Whitespace is single plain spaces.
            prop_assert!(!name.contains("  "), "{name:?}");
            prop_assert!(!name.contains(|c: char| c.is_whitespace() && c != ' '), "{name:?}");
            prop_assert_eq!(sanitize_filename(&name), Some(name.clone()), "idempotent");
            for kind in ["attachment", "inline"] {
                let cd = content_disposition(kind, &name);
                prop_assert!(http::HeaderValue::from_str(&cd).is_ok(), "{cd:?}");
                prop_assert_eq!(cd.matches('"').count(), 2, "{}", cd);
            }
        }
    }

    #[test]
    fn format_characters_are_dropped(a in "[a-z]{1,5}", cf in "\\p{Cf}{1,3}", b in "[a-z]{1,5}") {
        prop_assert_eq!(sanitize_filename(&format!("{a}{cf}{b}")), Some(format!("{a}{b}")));
    }

    #[test]
    fn directories_never_reach_the_name(
        dir in hostile_name(),
        sep in "[/\\\\]",
        name in hostile_name(),
    ) {
        prop_assert_eq!(sanitize_filename(&format!("{dir}{sep}{name}")), sanitize_filename(&name));
    }

    #[test]
    fn long_names_are_cut_on_a_character(name in "[a-zé日🎉 ]{200,400}") {
        if let Some(clean) = sanitize_filename(&name) {
            prop_assert!(clean.len() <= 250);
            let squeezed = name.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert!(squeezed.starts_with(&clean), "a prefix of what was sent");
        }
    }

    #[test]
    fn content_types_are_plain_tokens(
        raw in prop_oneof![
            "\\PC{0,40}",
            "[A-Za-z0-9+.-]{0,10}/[A-Za-z0-9+. -]{0,10}(;.{0,10})?",
        ]
    ) {
        if let Some(t) = sanitize_content_type(&raw) {
            let (top, sub) = t.split_once('/').expect("type/subtype");
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b)
                    })
            };
            prop_assert!(token(top) && token(sub) && t.len() <= 100, "{t:?}");
            prop_assert_eq!(sanitize_content_type(&t), Some(t.clone()));
        }
    }
}

// ---- The streaming base64 decoder -------------------------------------------------------

/// Decodes `body` fed in pieces cut at `cuts` (positions, any order, duplicates allowed).
fn decode_cut(
    body: &[u8],
    cuts: &[prop::sample::Index],
) -> Result<Vec<u8>, sfx::upload::Base64Error> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut stream = Base64Stream::new();
    let mut out = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain([body.len()]) {
        out.extend(stream.feed(&body[from..to])?);
        from = to;
    }
    out.extend(stream.finish()?);
    Ok(out)
}

/// `encoded` with whitespace (space, tab, CR, LF, CRLF) inserted at the given places.
fn with_whitespace(encoded: &str, spaces: &[(prop::sample::Index, &str)]) -> Vec<u8> {
    let mut body = encoded.as_bytes().to_vec();
    for (at, ws) in spaces {
        let i = at.index(body.len() + 1);
        body.splice(i..i, ws.bytes());
    }
    body
}

fn whitespace() -> impl Strategy<Value = Vec<(prop::sample::Index, &'static str)>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![" ", "\t", "\r", "\n", "\r\n"]),
        ),
        0..20,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_decodes_like_the_whole(
        data in prop::collection::vec(any::<u8>(), 0..300),
        spaces in whitespace(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let body = with_whitespace(&STANDARD.encode(&data), &spaces);
        prop_assert_eq!(decode_cut(&body, &cuts), Ok(data));
    }

    #[test]
    fn junk_is_refused(
        data in prop::collection::vec(any::<u8>(), 0..100),
        junk in any::<u8>().prop_filter("not base64 or whitespace", |b| {
            !b.is_ascii_alphanumeric() && !b"+/=".contains(b) && !b.is_ascii_whitespace()
        }),
        at in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut body = STANDARD.encode(&data).into_bytes();
        let i = at.index(body.len() + 1);
        body.insert(i, junk);
        prop_assert!(decode_cut(&body, &cuts).is_err());
    }

    #[test]
    fn any_bytes_decode_as_the_whole_would(
        body in prop::collection::vec(prop::sample::select(b"AZaz09+/=  \r\nQwe!".to_vec()), 0..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        prop_assert_eq!(decode_cut(&body, &cuts).ok(), decode_whole(&clean));
    }
}

/// The whole body at once: standard base64 with canonical padding, or with none at all.
fn decode_whole(clean: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    STANDARD.decode(clean).ok().or_else(|| {
        (!clean.contains(&b'='))
            .then(|| STANDARD_NO_PAD.decode(clean).ok())
            .flatten()
    })
}
