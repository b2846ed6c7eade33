//! An item's antivirus state, as stored and as shown to operators.

/// `None` on an item (antivirus off) means no scan state at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// Queued or being scanned: not downloadable yet, its delivery's alert waits.
    Scanning,
    Clean,
    /// Quarantined: admins only, never downloaded without an explicit override. The signature.
    Infected(String),
    /// Downloadable, but marked: no scan result exists. Why (over clamd's limit, clamd down).
    NotScanned(String),
}

impl ScanState {
    /// The stored state word (`scan` column).
    pub fn word(&self) -> &'static str {
        match self {
            ScanState::Scanning => "scanning",
            ScanState::Clean => "clean",
            ScanState::Infected(_) => "infected",
            ScanState::NotScanned(_) => "not_scanned",
        }
    }

    /// The signature or the reason (`scan_detail` column).
    pub fn detail(&self) -> Option<&str> {
        match self {
            ScanState::Infected(d) | ScanState::NotScanned(d) => Some(d),
            ScanState::Scanning | ScanState::Clean => None,
        }
    }

    /// Back from the stored columns; an unknown word is shown, never taken for clean.
    pub fn from_columns(word: Option<&str>, detail: Option<String>) -> Option<ScanState> {
        let detail = detail.unwrap_or_default();
        Some(match word? {
            "scanning" => ScanState::Scanning,
            "clean" => ScanState::Clean,
            "infected" => ScanState::Infected(detail),
            "not_scanned" => ScanState::NotScanned(detail),
            other => ScanState::NotScanned(format!("unknown scan state {other:?}")),
        })
    }

    /// What pages, the REST JSON and alerts say: `clean`, `scanning`,
    /// `infected: Eicar-Test-Signature`, `not scanned: over clamd's size limit`.
    pub fn label(&self) -> String {
        match self {
            ScanState::Scanning => "scanning".into(),
            ScanState::Clean => "clean".into(),
            ScanState::Infected(sig) => format!("infected: {sig}"),
            ScanState::NotScanned(why) => format!("not scanned: {why}"),
        }
    }

    pub fn is_infected(&self) -> bool {
        matches!(self, ScanState::Infected(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        for s in [
            ScanState::Scanning,
            ScanState::Clean,
            ScanState::Infected("Eicar-Test-Signature".into()),
            ScanState::NotScanned("clamd unavailable".into()),
        ] {
            let back = ScanState::from_columns(Some(s.word()), s.detail().map(String::from));
            assert_eq!(back, Some(s));
        }
        assert_eq!(ScanState::from_columns(None, None), None);
        assert!(matches!(
            ScanState::from_columns(Some("bogus"), None),
            Some(ScanState::NotScanned(_))
        ));
    }
}
