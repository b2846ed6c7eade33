//! Decodes a base64 body as it streams in, so a multi-GB one-shot REST upload never has to be
//! held in memory. Line breaks and other ASCII whitespace are skipped (Ruby's `encode64` puts a
//! newline every 60 characters); anything else outside the standard alphabet is an error.
//! The decoding itself is base64-simd's (AVX2/SSE4.1/NEON, picked at run time); this only
//! regroups input into whole quads.
//!
//! Why SIMD: the vendor agent's one-shot REST POST is a 1.43 GB base64 body per GiB, decoded
//! on the task that reads the socket. The `base64` crate's scalar decoder plus a per-byte
//! whitespace filter took about 1.3 s of it; base64-simd decodes a body without line breaks
//! straight from the received chunk (see `bench/README.md`).

use base64_simd::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the body is not valid base64")]
pub struct Base64Error;

/// A character of the alphabet (not padding, not whitespace).
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

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
        if self.finished {
            return self.general(input);
        }
        // The common case (no line breaks, no padding yet): the chunk's whole quads decoded
        // where they lie, after the quad begun by the previous chunk (network chunks seldom
        // end on a quad). Anything unusual fails here and takes the general path below, which
        // judges it (`Base64Stream::general` on every chunk: 39% of the REST path's CPU).
        let need = (4 - self.carry.len()) % 4;
        let mut out = Vec::new();
        let mut rest = input;
        if need > 0 {
            match input.get(..need) {
                Some(head) if head.iter().all(|&b| plain(b)) => {
                    let mut quad = std::mem::take(&mut self.carry);
                    quad.extend_from_slice(head);
                    STANDARD
                        .decode_append(&quad, &mut out)
                        .map_err(|_| Base64Error)?;
                    rest = &input[need..];
                }
                _ => return self.general(input),
            }
        }
        let whole = rest.len() / 4 * 4;
        let body = &rest[..whole];
        let start = out.len();
        out.reserve(whole / 4 * 3);
        // Padding can only end a body that decodes (mid-body it fails the decode): only the
        // last byte needs a look (a full scan for it was 6% of the REST path's CPU).
        if body.last() == Some(&b'=') || STANDARD.decode_append(body, &mut out).is_err() {
            out.truncate(start);
            out.extend(self.general(rest)?);
            return Ok(out);
        }
        out.extend(self.general(&rest[whole..])?);
        Ok(out)
    }

    /// Skips whitespace, carries partial quads over, checks where padding is.
    fn general(&mut self, input: &[u8]) -> Result<Vec<u8>, Base64Error> {
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
            .decode_to_vec(&self.scratch[..whole])
            .map_err(|_| Base64Error)?;
        self.carry = self.scratch[whole..].to_vec();
        Ok(out)
    }

    /// Ends the body: whatever is left must decode (unpadded tails are accepted).
    pub fn finish(self) -> Result<Vec<u8>, Base64Error> {
        if self.carry.is_empty() {
            return Ok(Vec::new());
        }
        base64_simd::STANDARD_NO_PAD
            .decode_to_vec(&self.carry)
            .map_err(|_| Base64Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

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
    fn big_bodies_in_network_sized_pieces() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let enc = STANDARD.encode(&data);
        for piece in [4093, 16 * 1024 + 1, 65_535, 400_000] {
            assert_eq!(decode_in_pieces(enc.as_bytes(), piece).unwrap(), data);
        }
        // A line break right where a carried quad continues.
        let mut odd = enc.clone().into_bytes();
        odd.insert(4094, b'\n');
        assert_eq!(decode_in_pieces(&odd, 4093).unwrap(), data);
        odd[5000] = b'*';
        assert_eq!(decode_in_pieces(&odd, 4093), Err(Base64Error));
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
        for bad in [
            "a",
            "ab$d",
            "YQ==YQ==",
            "YQ==x",
            "Y===",
            "!!!!",
            "YWJjYQ==YWJj",
        ] {
            for piece in [2, 5, 100] {
                assert_eq!(
                    decode_in_pieces(bad.as_bytes(), piece),
                    Err(Base64Error),
                    "{bad} in pieces of {piece}"
                );
            }
        }
    }
}
