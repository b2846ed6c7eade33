//! bepasty's lifetime fields (`maxlife-value` + `maxlife-unit`, or the REST `Maxlife-*` headers).

use crate::config::Lifetime;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaxLifeError {
    #[error("maxlife-unit must be one of MINUTES, HOURS, DAYS, WEEKS, MONTHS, YEARS, FOREVER")]
    Unit,
    #[error("maxlife-value must be a positive whole number")]
    Value,
}

/// What the client asked for; turned into a [`Lifetime`] and capped by the server's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxLife(pub Lifetime);

impl MaxLife {
    /// Parses the pair. The unit is case-insensitive; with FOREVER the value is ignored.
    /// `None` for both means "use the server default".
    pub fn parse(value: Option<&str>, unit: Option<&str>) -> Result<Option<MaxLife>, MaxLifeError> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        let unit = unit.map(str::trim).filter(|u| !u.is_empty());
        let Some(unit) = unit else {
            return match value {
                None => Ok(None),
                // bepasty's default unit is MONTHS when only a value is given.
                Some(v) => Self::parse(Some(v), Some("MONTHS")),
            };
        };
        let seconds_per_unit: u64 = match unit.to_ascii_uppercase().as_str() {
            "FOREVER" => return Ok(Some(MaxLife(Lifetime::Forever))),
            "MINUTES" => 60,
            "HOURS" => 3600,
            "DAYS" => 86400,
            "WEEKS" => 7 * 86400,
            "MONTHS" => 30 * 86400,
            "YEARS" => 365 * 86400,
            _ => return Err(MaxLifeError::Unit),
        };
        let count: u64 = value
            .unwrap_or("1")
            .parse()
            .map_err(|_| MaxLifeError::Value)?;
        if count == 0 {
            return Err(MaxLifeError::Value);
        }
        let secs = count
            .checked_mul(seconds_per_unit)
            .ok_or(MaxLifeError::Value)?;
        Ok(Some(MaxLife(Lifetime::For(Duration::from_secs(secs)))))
    }

    /// The lifetime to apply: the request's (or the default), never beyond the maximum.
    pub fn effective(requested: Option<MaxLife>, default: Lifetime, max: Lifetime) -> Lifetime {
        requested.map_or(default, |m| m.0).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(m: Option<MaxLife>) -> Option<u64> {
        match m.unwrap().0 {
            Lifetime::For(d) => Some(d.as_secs()),
            Lifetime::Forever => None,
        }
    }

    #[test]
    fn units() {
        assert_eq!(
            secs(MaxLife::parse(Some("7"), Some("DAYS")).unwrap()),
            Some(604800)
        );
        assert_eq!(
            secs(MaxLife::parse(Some("2"), Some("weeks")).unwrap()),
            Some(1209600)
        );
        assert_eq!(
            secs(MaxLife::parse(Some("1"), Some("Forever")).unwrap()),
            None
        );
        assert_eq!(
            secs(MaxLife::parse(None, Some("HOURS")).unwrap()),
            Some(3600)
        );
        assert_eq!(MaxLife::parse(None, None).unwrap(), None);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            MaxLife::parse(Some("1"), Some("FORTNIGHT")),
            Err(MaxLifeError::Unit)
        );
        assert_eq!(
            MaxLife::parse(Some("x"), Some("DAYS")),
            Err(MaxLifeError::Value)
        );
        assert_eq!(
            MaxLife::parse(Some("-5"), Some("MINUTES")),
            Err(MaxLifeError::Value)
        );
        assert_eq!(
            MaxLife::parse(Some("0"), Some("DAYS")),
            Err(MaxLifeError::Value)
        );
        assert_eq!(
            MaxLife::parse(Some("99999999999999999"), Some("YEARS")),
            Err(MaxLifeError::Value)
        );
    }

    #[test]
    fn capped_by_max() {
        let max = Lifetime::For(Duration::from_secs(86400));
        let forever = MaxLife::parse(None, Some("FOREVER")).unwrap();
        assert_eq!(MaxLife::effective(forever, Lifetime::Forever, max), max);
        assert_eq!(
            MaxLife::effective(None, Lifetime::Forever, Lifetime::Forever),
            Lifetime::Forever
        );
    }
}
