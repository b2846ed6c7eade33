//! The streaming base64 decoder of REST uploads: `sfx::upload::Base64Stream`.
//! Input: byte 0 picks how the rest is split into chunks; the rest is the body.
//! Property: any split decodes to what `base64::STANDARD` makes of the whole body with ASCII
//! whitespace removed (or `STANDARD_NO_PAD`, for a body without any `=`), and refuses exactly
//! what those refuse.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use sfx::upload::Base64Stream;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let want = STANDARD.decode(&clean).ok().or_else(|| {
        (!clean.contains(&b'='))
            .then(|| STANDARD_NO_PAD.decode(&clean).ok())
            .flatten()
    });
    assert_eq!(streamed(body, seed), want, "split seed {seed}");
});

/// Feeds `body` in pieces of 1..=(seed % 64 + 1) bytes, lengths from a small PRNG.
fn streamed(body: &[u8], seed: u8) -> Option<Vec<u8>> {
    let max = usize::from(seed % 64) + 1;
    let mut state = u32::from(seed) | 1;
    let mut stream = Base64Stream::new();
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        out.extend(stream.feed(piece).ok()?);
        rest = tail;
    }
    out.extend(stream.finish().ok()?);
    Some(out)
}
