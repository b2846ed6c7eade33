//! `Content-Range: bytes B-E/T` of REST uploads: `sfx::upload::ChunkRange::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfx::upload::ChunkRange;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(r) = ChunkRange::parse(text) {
        assert!(r.begin <= r.end && r.end < r.total, "{text:?}: {r:?}");
        assert!(r.byte_count() >= 1 && r.byte_count() <= r.total);
        assert_eq!(r.is_last(), r.end == r.total - 1);
        // What was accepted means what its canonical spelling means.
        let canonical = format!("bytes {}-{}/{}", r.begin, r.end, r.total);
        assert_eq!(ChunkRange::parse(&canonical), Some(r), "{text:?}");
    }
});
