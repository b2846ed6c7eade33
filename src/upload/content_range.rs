//! bepasty's `Content-Range: bytes B-E/T` on REST uploads, in decoded (raw) bytes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub begin: u64,
    /// Inclusive.
    pub end: u64,
    pub total: u64,
}

impl ChunkRange {
    /// Decoded bytes this chunk must carry.
    pub fn byte_count(&self) -> u64 {
        self.end - self.begin + 1
    }

    /// The last chunk: the upload is complete once it is written.
    pub fn is_last(&self) -> bool {
        self.end + 1 == self.total
    }

    /// Parses `bytes B-E/T` with `B <= E < T`. `bytes */T` and `bytes B-E/*` are not accepted
    /// (bepasty refuses them too), nor is an empty file (`0--1/0`).
    pub fn parse(value: &str) -> Option<ChunkRange> {
        let rest = value.trim().strip_prefix("bytes")?;
        let rest = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('='))?
            .trim_start();
        let (span, total) = rest.split_once('/')?;
        let (begin, end) = span.split_once('-')?;
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (begin, end, total) = (num(begin)?, num(end)?, num(total)?);
        (begin <= end && end < total).then_some(ChunkRange { begin, end, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bepasty_ranges() {
        let r = ChunkRange::parse("bytes 0-1048575/3670016").unwrap();
        assert_eq!(
            (r.begin, r.end, r.total, r.byte_count()),
            (0, 1048575, 3670016, 1048576)
        );
        assert!(!r.is_last());
        assert!(
            ChunkRange::parse("bytes 3145728-3670015/3670016")
                .unwrap()
                .is_last()
        );
        assert!(ChunkRange::parse("bytes=0-9/10").unwrap().is_last());
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            "",
            "bytes",
            "bytes 0-10/10",
            "bytes 5-2/10",
            "bytes */10",
            "bytes 0-9/*",
            "items 0-9/10",
            "bytes 0--1/0",
            "bytes -1-5/10",
            "bytes +0-5/10",
            "bytes 0-5/99999999999999999999999",
            "bytes 0-5/10/11",
        ] {
            assert_eq!(ChunkRange::parse(bad), None, "{bad}");
        }
    }
}
