//! The listing's query string: filters, order and page, parsed into a [`ListQuery`] and turned
//! back into links (every link of the page keeps the other parameters). A value that cannot
//! mean anything is a 400 with the parameter's name, never silently ignored.

use crate::server::AppError;
use crate::store::{ListQuery, Sort};

pub const PER_PAGE: u64 = 50;
const MAX_PER_PAGE: u64 = 500;
/// Longer search text is cut: no filename or reference is longer than this.
const MAX_TEXT: usize = 250;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub q: String,
    pub filename: String,
    pub reference: String,
    pub sha256: String,
    pub client: String,
    pub uploader: String,
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 time, as given.
    pub from: String,
    pub to: String,
    pub sort: Sort,
    pub ascending: bool,
    pub per_page: u64,
    pub page: u64,
}

impl Filters {
    /// From `(key, value)` pairs of a query string; unknown keys are ignored.
    pub fn parse(pairs: &[(String, String)]) -> Result<Filters, AppError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim().chars().take(MAX_TEXT).collect::<String>())
                .unwrap_or_default()
        };
        let bad = |k: &str, why: &str| AppError::BadRequest(format!("{k}: {why}"));
        let sha256 = get("sha256").to_ascii_lowercase();
        if sha256.len() > 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256", "not a SHA-256 or its start (hex digits)"));
        }
        let sort = match get("sort").as_str() {
            "" => Sort::Time,
            s => Sort::parse(s).ok_or_else(|| bad("sort", "must be time, size or name"))?,
        };
        let ascending = match get("order").as_str() {
            "" => sort == Sort::Name,
            "asc" => true,
            "desc" => false,
            _ => return Err(bad("order", "must be asc or desc")),
        };
        let number = |k: &str, default: u64| match get(k).as_str() {
            "" => Ok(default),
            s => s
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(k, "not a positive number")),
        };
        let f = Filters {
            q: get("q"),
            filename: get("filename"),
            reference: get("reference"),
            sha256,
            client: get("client"),
            uploader: get("uploader"),
            from: get("from"),
            to: get("to"),
            sort,
            ascending,
            per_page: number("per_page", PER_PAGE)?.min(MAX_PER_PAGE),
            page: number("page", 1)?,
        };
        // Checked here, so that a bad date is a 400 before any query.
        f.since()?;
        f.until()?;
        Ok(f)
    }

    fn since(&self) -> Result<Option<i64>, AppError> {
        bound("from", &self.from, false)
    }

    fn until(&self) -> Result<Option<i64>, AppError> {
        bound("to", &self.to, true)
    }

    pub fn query(&self, include_locked: bool) -> ListQuery {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        ListQuery {
            search: opt(&self.q),
            filename: opt(&self.filename),
            reference: opt(&self.reference),
            sha256: opt(&self.sha256),
            client: opt(&self.client),
            uploader: opt(&self.uploader),
            since: self.since().ok().flatten(),
            until: self.until().ok().flatten(),
            sort: self.sort,
            ascending: self.ascending,
            offset: (self.page - 1).saturating_mul(self.per_page),
            limit: self.per_page,
            include_locked,
        }
    }

    /// Whether any filter beyond the free-text search is set (the page then shows them open).
    pub fn advanced(&self) -> bool {
        [
            &self.filename,
            &self.reference,
            &self.sha256,
            &self.client,
            &self.uploader,
            &self.from,
            &self.to,
        ]
        .iter()
        .any(|s| !s.is_empty())
    }

    pub fn filtered(&self) -> bool {
        !self.q.is_empty() || self.advanced()
    }

    /// `/+list?…` with these filters, another page, order or both; defaults are left out.
    pub fn href(&self, page: u64, sort: Sort, ascending: bool) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("filename", &self.filename),
            ("reference", &self.reference),
            ("sha256", &self.sha256),
            ("client", &self.client),
            ("uploader", &self.uploader),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if sort != Sort::Time {
            q.append_pair("sort", sort.as_str());
        }
        if ascending != (sort == Sort::Name) {
            q.append_pair("order", if ascending { "asc" } else { "desc" });
        }
        if self.per_page != PER_PAGE {
            q.append_pair("per_page", &self.per_page.to_string());
        }
        if page != 1 {
            q.append_pair("page", &page.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            "/+list".into()
        } else {
            format!("/+list?{q}")
        }
    }

    /// This page again.
    pub fn here(&self) -> String {
        self.href(self.page, self.sort, self.ascending)
    }

    /// A column header's link: its order, first page; the current column flips direction.
    pub fn sorted_by(&self, sort: Sort) -> String {
        let ascending = if sort == self.sort {
            !self.ascending
        } else {
            sort == Sort::Name
        };
        self.href(1, sort, ascending)
    }
}

/// A date (`YYYY-MM-DD`, a whole UTC day: `to` includes it) or an RFC 3339 time, as Unix seconds.
fn bound(key: &str, value: &str, end: bool) -> Result<Option<i64>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || {
        AppError::BadRequest(format!(
            "{key}: not a date (YYYY-MM-DD) or a time (RFC 3339)"
        ))
    };
    if let Ok(t) = value.parse::<jiff::Timestamp>() {
        return Ok(Some(t.as_second()));
    }
    let date: jiff::civil::Date = value.parse().map_err(|_| bad())?;
    let day = if end {
        date.tomorrow().map_err(|_| bad())?
    } else {
        date
    };
    let start = jiff::tz::Offset::UTC
        .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
        .map_err(|_| bad())?;
    Ok(Some(start.as_second()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Filters, AppError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        Filters::parse(&pairs)
    }

    #[test]
    fn parses_and_refuses() {
        for (q, ok) in [
            ("", true),
            ("sha256=ABCdef01", true),
            ("sha256=xyz", false),
            (&format!("sha256={}", "a".repeat(65)), false),
            ("sort=size&order=asc", true),
            ("sort=owner", false),
            ("order=up", false),
            ("page=0", false),
            ("page=-1", false),
            ("per_page=99999", true),
            ("from=2026-12-01&to=2026-12-02", true),
            ("from=2026-13-01", false),
            ("to=yesterday", false),
            ("from=2026-12-01T10:00:00Z", true),
        ] {
            assert_eq!(parse(q).is_ok(), ok, "{q}");
        }
    }

    #[test]
    fn builds_the_store_query() {
        let f =
            parse("q=%20CASE-1%20&sha256=ABC&per_page=99999&page=3&from=2026-12-01&to=2026-12-01")
                .unwrap();
        let q = f.query(false);
        assert_eq!(q.search.as_deref(), Some("CASE-1"));
        assert_eq!(q.sha256.as_deref(), Some("abc"));
        assert_eq!((q.limit, q.offset), (500, 1000));
        // 2026-12-01T00:00:00Z, and the whole of that day.
        assert_eq!(q.since, Some(1_796_083_200));
        assert_eq!(q.until, Some(1_796_083_200 + 86_400));
        assert_eq!(q.sort, Sort::Time);
        assert!(!q.ascending);
        assert!(parse("sort=name").unwrap().ascending);
    }

    #[test]
    fn links_keep_the_other_parameters() {
        let f = parse("q=a b&client=10.1.&sort=size").unwrap();
        assert_eq!(
            f.href(2, f.sort, f.ascending),
            "/+list?q=a+b&client=10.1.&sort=size&page=2"
        );
        // The current column flips, another starts in its natural direction.
        assert_eq!(
            f.sorted_by(Sort::Size),
            "/+list?q=a+b&client=10.1.&sort=size&order=asc"
        );
        assert_eq!(
            f.sorted_by(Sort::Name),
            "/+list?q=a+b&client=10.1.&sort=name"
        );
        assert_eq!(parse("").unwrap().here(), "/+list");
        assert_eq!(
            parse("page=1&sort=time&order=desc").unwrap().here(),
            "/+list"
        );
    }
}
