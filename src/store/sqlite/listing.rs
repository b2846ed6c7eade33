//! The operator listing's queries: items by any combination of filters in one of three orders,
//! and deliveries with their alerts. Every filter value is a bound parameter; the SQL text is
//! built from fixed pieces only.

use super::outbox::alert_rows;
use super::{COLUMNS, NOT_FOR_ALL, item_from_row};
use crate::store::sql::{SCANS_DONE, like_pattern, summarize};
use crate::store::{
    AlertRow, AlertStatus, DeliveryPage, DeliverySummary, ListPage, ListQuery, Sort, StoreError,
    Uploader,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

/// WHERE clause and its named parameters.
struct Filter {
    sql: String,
    params: Vec<(&'static str, Value)>,
    /// Any of the query's own filters, beyond what the caller may see.
    narrowed: bool,
    /// A range among them (an address or SHA-256 prefix, dates), which can match many items.
    ranges: bool,
    /// A `LIKE` scan among them (a search shorter than a trigram): counted only when needed.
    scans: bool,
}

impl Filter {
    fn and(&mut self, clause: &str, binds: impl IntoIterator<Item = (&'static str, Value)>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.params.extend(binds);
    }

    /// One of the query's filters (not the visibility term).
    fn narrow(&mut self, clause: &str, binds: impl IntoIterator<Item = (&'static str, Value)>) {
        self.narrowed = true;
        self.and(clause, binds);
    }

    /// One of the query's filters that is a range.
    fn range(&mut self, clause: &str, binds: impl IntoIterator<Item = (&'static str, Value)>) {
        self.ranges = true;
        self.narrow(clause, binds);
    }

    fn refs(&self) -> Vec<(&str, &dyn rusqlite::ToSql)> {
        self.params
            .iter()
            .map(|(k, v)| (*k, v as &dyn rusqlite::ToSql))
            .collect()
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Substring searches through the trigram index (migration 10): the items whose text matches
/// the query bound to `param` (one of the fixed names below). Shorter than a trigram, a search
/// is a `LIKE` scan instead.
fn text_match(param: &str) -> String {
    format!("rowid IN (SELECT rowid FROM items_text WHERE items_text MATCH {param})")
}

/// `s` as an FTS5 phrase (every character literal: `%`, `_`, `*`, quotes), if the trigram
/// index can find it (three characters or more); case is ignored as `LIKE` ignores it.
fn trigram_phrase(s: &str) -> Option<String> {
    (s.chars().count() >= 3).then(|| format!("\"{}\"", s.replace('"', "\"\"")))
}

/// Items whose `column` (both text columns for `None`) holds `s`, bound to `param`; `param`
/// and `column` are fixed names, never input.
fn contains(f: &mut Filter, param: &'static str, column: Option<&str>, s: &str) {
    match trigram_phrase(s) {
        Some(p) => {
            let query = column.map_or_else(|| p.clone(), |c| format!("{c} : {p}"));
            f.narrow(&text_match(param), [(param, text(&query))]);
        }
        None => {
            let sql = match column {
                Some(c) => format!("{c} LIKE {param} ESCAPE '\\'"),
                None => format!(
                    "(filename LIKE {param} ESCAPE '\\' OR reference LIKE {param} ESCAPE '\\')"
                ),
            };
            f.narrow(&sql, [(param, text(&like_pattern(s)))]);
            f.scans = true;
        }
    }
}

fn filter(q: &ListQuery) -> Filter {
    let mut f = Filter {
        sql: "deleted_at IS NULL".into(),
        params: Vec::new(),
        narrowed: false,
        ranges: false,
        scans: false,
    };
    if !q.include_locked {
        f.and(&format!("NOT ({NOT_FOR_ALL})"), []);
    }
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(s) = given(&q.search) {
        contains(&mut f, ":search", None, &s);
    }
    if let Some(s) = given(&q.filename) {
        contains(&mut f, ":filename", Some("filename"), &s);
    }
    if let Some(s) = given(&q.reference) {
        contains(&mut f, ":reference", Some("reference"), &s);
    }
    if let Some(p) = given(&q.sha256) {
        // Hex digits all sort below 'g': [p, p+"g") is every hash starting with p, and the
        // range uses the index.
        f.range(
            "sha256 >= :sha_lo AND sha256 < :sha_hi",
            [(":sha_lo", text(&p)), (":sha_hi", text(&format!("{p}g")))],
        );
    }
    if let Some(c) = given(&q.client) {
        match c.parse::<std::net::IpAddr>() {
            // A whole address matches exactly (10.0.0.1 is not 10.0.0.10), in the form sfx
            // records it.
            Ok(ip) => f.narrow("client_ip = :client", [(":client", text(&ip.to_string()))]),
            Err(_) => f.range(
                "client_ip >= :client_lo AND client_ip < :client_hi",
                [
                    (":client_lo", text(&c)),
                    (":client_hi", text(&format!("{c}\u{10FFFF}"))),
                ],
            ),
        }
    }
    if let Some(u) = given(&q.uploader) {
        f.narrow("uploader = :uploader", [(":uploader", text(&u))]);
    }
    if let Some(t) = q.since {
        f.range("created_at >= :since", [(":since", Value::Integer(t))]);
    }
    if let Some(t) = q.until {
        f.range("created_at < :until", [(":until", Value::Integer(t))]);
    }
    f
}

/// Ties are broken by arrival, in the same direction, so each order is total and every index
/// scan stays one-directional.
fn order(q: &ListQuery) -> String {
    let dir = if q.ascending { "ASC" } else { "DESC" };
    match q.sort {
        Sort::Time => format!("created_at {dir}, rowid {dir}"),
        Sort::Size => format!("size {dir}, rowid {dir}"),
        Sort::Name => format!("filename COLLATE NOCASE {dir}, rowid {dir}"),
    }
}

/// The index that holds the live items in `sort`'s order (migration 7); for the time order, the
/// one of what the caller may see.
fn order_index(sort: Sort, include_locked: bool) -> &'static str {
    match (sort, include_locked) {
        (Sort::Time, true) => "items_live_time",
        (Sort::Time, false) => "items_public_time",
        (Sort::Size, _) => "items_live_size",
        (Sort::Name, _) => "items_live_filename",
    }
}

pub fn list(conn: &Connection, q: &ListQuery) -> Result<ListPage, StoreError> {
    let f = filter(q);
    let window = q.offset.saturating_add(q.limit);
    // SQLite counts the visible items by scanning the table unless told to read the time
    // index (desk's first page, 100k items: 13.4 -> 4.8 ms). A search by a range is counted
    // first: how many match decides how its page is read.
    let time_index = order_index(Sort::Time, q.include_locked);
    let count = |index: Option<&str>| -> Result<u64, StoreError> {
        let hint = index.map_or_else(String::new, |i| format!(" INDEXED BY {i}"));
        let n: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM items{hint} WHERE {}", f.sql))?
            .query_row(f.refs().as_slice(), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let total = (f.ranges && !f.scans).then(|| count(None)).transpose()?;
    // SQLite reads a range filter's own index (a client network, a SHA-256 prefix) and sorts
    // every match; when the matches are many and the page is near the front, walking the
    // order's index and skipping the rest finds the page sooner (`client=192.0.2.`, 100k
    // matches: 20.6 -> 5.3 ms). Either way the rows are the same.
    let hint = match total {
        Some(t) if t >= window.saturating_mul(10) => {
            format!(" INDEXED BY {}", order_index(q.sort, q.include_locked))
        }
        _ => String::new(),
    };
    let mut page = f.refs();
    let limit = Value::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX));
    let offset = Value::Integer(i64::try_from(q.offset).unwrap_or(i64::MAX));
    page.push((":limit", &limit));
    page.push((":offset", &offset));
    let items = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items{hint} WHERE {} ORDER BY {} LIMIT :limit OFFSET :offset",
            f.sql,
            order(q)
        ))?
        .query_map(page.as_slice(), item_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let total = match total {
        Some(t) => t,
        // A short page that is not past the end tells the total by itself (a `LIKE` scan
        // that matches little, 100k items: one scan of 35 ms, not two).
        None if (items.len() as u64) < q.limit && (!items.is_empty() || q.offset == 0) => {
            q.offset.saturating_add(items.len() as u64)
        }
        None if f.narrowed => count(None)?,
        None => count(Some(time_index))?,
    };
    Ok(ListPage { items, total })
}

pub fn deliveries(
    conn: &Connection,
    offset: u64,
    limit: u64,
    include_locked: bool,
) -> Result<DeliveryPage, StoreError> {
    let total: i64 = conn.query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))?;
    let visible = if include_locked {
        String::new()
    } else {
        format!(" AND NOT ({NOT_FOR_ALL})")
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, uploader, client_ip, user_agent, reference, opened_at, closed_at, {SCANS_DONE},
           (SELECT count(*) FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NULL{visible}),
           (SELECT coalesce(sum(size), 0) FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NULL{visible}),
           (SELECT count(*) FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NOT NULL)
         FROM deliveries ORDER BY id DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = stmt
        .query_map(
            [
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX),
            ],
            |r| {
                Ok((
                    DeliverySummary {
                        id: r.get(0)?,
                        uploader: Uploader {
                            label: r.get(1)?,
                            client_ip: r.get(2)?,
                            user_agent: r.get(3)?,
                            link: None,
                        },
                        reference: r.get(4)?,
                        opened_at: r.get(5)?,
                        closed_at: r.get(6)?,
                        files: r.get::<_, i64>(8)?.max(0) as u64,
                        bytes: r.get::<_, i64>(9)?.max(0) as u64,
                        deleted: r.get::<_, i64>(10)?.max(0) as u64,
                        status: AlertStatus::Pending,
                        alerts: Vec::new(),
                    },
                    r.get::<_, bool>(7)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (mut d, scans_done) in rows {
        d.alerts = alert_rows(conn, d.id)?;
        d.status = summarize(d.closed_at, scans_done, &d.alerts);
        out.push(d);
    }
    Ok(DeliveryPage {
        deliveries: out,
        total: u64::try_from(total).unwrap_or(0),
    })
}

pub fn delivery_alerts(
    conn: &Connection,
    id: i64,
) -> Result<(AlertStatus, Vec<AlertRow>), StoreError> {
    let head: Option<(Option<i64>, bool)> = conn
        .prepare_cached(&format!(
            "SELECT closed_at, {SCANS_DONE} FROM deliveries WHERE id = ?1"
        ))?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((closed, scans_done)) = head else {
        return Ok((AlertStatus::NoChannel, Vec::new()));
    };
    let alerts = alert_rows(conn, id)?;
    Ok((summarize(closed, scans_done, &alerts), alerts))
}
