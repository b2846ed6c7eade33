//! Human-readable sizes ("10GiB") and durations ("30d", "forever") used in the config file.

use std::time::Duration;

/// Parses a size such as `10GiB`, `1 GB`, `512MiB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("`{text}` is not a size ({e}); write e.g. \"10GiB\" or \"500MB\""))
}

/// Parses a duration such as `60s`, `24h`, `30d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"60s\", \"24h\" or \"30d\"")
    })
}

/// How long an item is kept: a duration, or forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Forever,
    For(Duration),
}

impl Lifetime {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("forever") {
            return Ok(Lifetime::Forever);
        }
        match parse_duration(text)? {
            d if d.is_zero() => Err(format!("`{text}`: a lifetime must be longer than zero")),
            d => Ok(Lifetime::For(d)),
        }
    }

    /// The shorter of two lifetimes (`Forever` is the longest).
    pub fn min(self, other: Lifetime) -> Lifetime {
        match (self, other) {
            (Lifetime::Forever, x) | (x, Lifetime::Forever) => x,
            (Lifetime::For(a), Lifetime::For(b)) => Lifetime::For(a.min(b)),
        }
    }

    /// Unix second at which an item created at `now` expires; `None` = never.
    pub fn expires_at(self, now: i64) -> Option<i64> {
        match self {
            Lifetime::Forever => None,
            Lifetime::For(d) => {
                Some(now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("1 MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn lifetimes() {
        assert_eq!(
            Lifetime::parse("30d").unwrap(),
            Lifetime::For(Duration::from_secs(30 * 86400))
        );
        assert_eq!(Lifetime::parse("FOREVER").unwrap(), Lifetime::Forever);
        assert!(Lifetime::parse("0s").is_err());
        let week = Lifetime::For(Duration::from_secs(604800));
        assert_eq!(Lifetime::Forever.min(week), week);
        assert_eq!(week.expires_at(100), Some(604900));
        assert_eq!(Lifetime::Forever.expires_at(100), None);
    }
}
