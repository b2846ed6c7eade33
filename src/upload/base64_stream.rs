//! Decodes a base64 body as it streams in, so a multi-GB one-shot REST upload never has to be
//! held in memory. Line breaks and other ASCII whitespace are skipped (Ruby's `encode64` puts a
//! newline every 60 characters); anything else outside the standard alphabet is an error.
//! The decoding itself is the `base64` crate's; this only regroups input into whole quads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the body is not valid base64")]
pub struct Base64Error;

#[derive(Default)]
pub struct Base64Stream {
    /// Up to 3 characters carried over from the previous chunk.
    carry: Vec<u8>,
    /// Padding was seen: only whitespace may follow.
    finished: bool,
    scratch: Vec<u8>,
}

impl Base64Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes as much of `input` as forms whole quads; the rest waits for the next chunk.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<u8>, Base64Error> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.carry);
        for &b in input {
            if b.is_ascii_whitespace() {
                continue;
            }
            if self.finished {
                return Err(Base64Error);
            }
            self.scratch.push(b);
        }
        let whole = self.scratch.len() / 4 * 4;
        if whole > 0 && self.scratch[..whole].contains(&b'=') {
            // Padding may only close the body: it must be in the last quad, with nothing after.
            if self.scratch.len() != whole || self.scratch[..whole - 4].contains(&b'=') {
                return Err(Base64Error);
            }
            self.finished = true;
        }
        let out = STANDARD
            .decode(&self.scratch[..whole])
            .map_err(|_| Base64Error)?;
        self.carry = self.scratch[whole..].to_vec();
        Ok(out)
    }

    /// Ends the body: whatever is left must decode (unpadded tails are accepted).
    pub fn finish(self) -> Result<Vec<u8>, Base64Error> {
        if self.carry.is_empty() {
            return Ok(Vec::new());
        }
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&self.carry)
            .map_err(|_| Base64Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(encoded: &[u8], piece: usize) -> Result<Vec<u8>, Base64Error> {
        let mut s = Base64Stream::new();
        let mut out = Vec::new();
        for chunk in encoded.chunks(piece.max(1)) {
            out.extend(s.feed(chunk)?);
        }
        out.extend(s.finish()?);
        Ok(out)
    }

    #[test]
    fn any_split_decodes_the_same() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 99, 1000] {
            let enc = STANDARD.encode(&data[..len]);
            for piece in [1, 2, 3, 4, 5, 7, 64, 5000] {
                assert_eq!(
                    decode_in_pieces(enc.as_bytes(), piece).unwrap(),
                    &data[..len],
                    "len {len} piece {piece}"
                );
            }
        }
    }

    #[test]
    fn ruby_line_breaks_and_crlf() {
        let data = vec![7u8; 200];
        let enc = STANDARD.encode(&data);
        let ruby: String = enc
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_in_pieces(ruby.as_bytes(), 13).unwrap(), data);
        let crlf = ruby.replace('\n', "\r\n");
        assert_eq!(decode_in_pieces(crlf.as_bytes(), 17).unwrap(), data);
    }

    #[test]
    fn rejects_junk() {
        for bad in ["a", "ab$d", "YQ==YQ==", "YQ==x", "Y===", "!!!!"] {
            assert_eq!(
                decode_in_pieces(bad.as_bytes(), 2),
                Err(Base64Error),
                "{bad}"
            );
        }
    }
}
