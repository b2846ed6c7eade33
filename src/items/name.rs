//! Item names: 8 characters of bepasty's alphabet, drawn from the OS CSPRNG.

use std::fmt;

/// Digits and letters without the easily confused `0 1 5 8 B I l O S`.
pub const NAME_ALPHABET: &[u8; 53] = b"234679ACDEFGHJKLMNPQRTUVWXYZabcdefghijkmnopqrstuvwxyz";
const NAME_LEN: usize = 8;

/// A syntactically valid item name. Only [`ItemName::parse`] and [`ItemName::random`] make one,
/// so a name can be put into a path or URL without further checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemName(String);

impl ItemName {
    pub fn parse(text: &str) -> Option<ItemName> {
        (text.len() == NAME_LEN && text.bytes().all(|b| NAME_ALPHABET.contains(&b)))
            .then(|| ItemName(text.to_string()))
    }

    /// A fresh random name (about 45.8 bits).
    pub fn random() -> std::io::Result<ItemName> {
        let mut name = String::with_capacity(NAME_LEN);
        let mut pool = [0u8; 32];
        while name.len() < NAME_LEN {
            getrandom::fill(&mut pool).map_err(std::io::Error::other)?;
            // Rejection sampling keeps the distribution uniform: 212 = 4 * 53.
            for b in pool.iter().filter(|b| **b < 212) {
                if name.len() == NAME_LEN {
                    break;
                }
                name.push(NAME_ALPHABET[(*b % 53) as usize] as char);
            }
        }
        Ok(ItemName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_parse() {
        for _ in 0..1000 {
            let n = ItemName::random().unwrap();
            assert_eq!(ItemName::parse(n.as_str()), Some(n));
        }
    }

    #[test]
    fn rejects_other_strings() {
        for bad in [
            "",
            "abc",
            "abcdefgh1",
            "abcdefg1",
            "../../x",
            "abcdefg%",
            "ABCDEFGO",
            "+list",
        ] {
            assert!(ItemName::parse(bad).is_none(), "{bad}");
        }
        assert!(ItemName::parse("4qVsTtL9").is_some());
    }
}
