//! The operator listing's queries: items by any combination of filters in one of three orders,
//! and deliveries with their alerts. Every filter value is a bound parameter; the SQL text is
//! built from fixed pieces only. Same filters as SQLite's (`src/store/sqlite/listing.rs`):
//! `ILIKE` for its case-insensitive `LIKE`, `lower(filename)` for `COLLATE NOCASE`, `seq` for
//! the rowid tie-break.

use super::items::{COLUMNS, NOT_FOR_ALL, items_from_rows};
use super::outbox::alert_rows;
use super::{count, int};
use crate::store::sql::{SCANS_DONE, like_pattern, summarize};
use crate::store::{
    AlertRow, AlertStatus, DeliveryPage, DeliverySummary, ListPage, ListQuery, Sort, StoreError,
    Uploader,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

/// WHERE clause and its positional parameters.
struct Filter {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    /// Binds a value; returns its placeholder (`$n`).
    fn bind(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    fn and(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn filter(q: &ListQuery) -> Filter {
    let mut f = Filter {
        sql: "deleted_at IS NULL".into(),
        params: Vec::new(),
    };
    if !q.include_locked {
        f.and(&format!("NOT ({NOT_FOR_ALL})"));
    }
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(s) = given(&q.search) {
        let p = f.bind(like_pattern(&s));
        f.and(&format!(
            "(filename ILIKE {p} ESCAPE '\\' OR reference ILIKE {p} ESCAPE '\\')"
        ));
    }
    if let Some(s) = given(&q.filename) {
        let p = f.bind(like_pattern(&s));
        f.and(&format!("filename ILIKE {p} ESCAPE '\\'"));
    }
    if let Some(s) = given(&q.reference) {
        let p = f.bind(like_pattern(&s));
        f.and(&format!("reference ILIKE {p} ESCAPE '\\'"));
    }
    if let Some(p) = given(&q.sha256) {
        // Hex digits all sort below 'g' (the column is COLLATE "C"): [p, p+"g") is every hash
        // starting with p, and the range uses the index.
        let hi = f.bind(format!("{p}g"));
        let lo = f.bind(p);
        f.and(&format!("sha256 >= {lo} AND sha256 < {hi}"));
    }
    if let Some(c) = given(&q.client) {
        match c.parse::<std::net::IpAddr>() {
            // A whole address matches exactly (10.0.0.1 is not 10.0.0.10), in the form sfx
            // records it.
            Ok(ip) => {
                let p = f.bind(ip.to_string());
                f.and(&format!("client_ip = {p}"));
            }
            Err(_) => {
                let hi = f.bind(format!("{c}\u{10FFFF}"));
                let lo = f.bind(c);
                f.and(&format!("client_ip >= {lo} AND client_ip < {hi}"));
            }
        }
    }
    if let Some(u) = given(&q.uploader) {
        let p = f.bind(u);
        f.and(&format!("uploader = {p}"));
    }
    if let Some(t) = q.since {
        let p = f.bind(t);
        f.and(&format!("created_at >= {p}"));
    }
    if let Some(t) = q.until {
        let p = f.bind(t);
        f.and(&format!("created_at < {p}"));
    }
    f
}

/// Ties are broken by arrival, in the same direction, so each order is total.
fn order(q: &ListQuery) -> String {
    let dir = if q.ascending { "ASC" } else { "DESC" };
    match q.sort {
        Sort::Time => format!("created_at {dir}, seq {dir}"),
        Sort::Size => format!("size {dir}, seq {dir}"),
        Sort::Name => format!("lower(filename) {dir}, seq {dir}"),
    }
}

pub(super) async fn list(c: &Client, q: &ListQuery) -> Result<ListPage, StoreError> {
    let mut f = filter(q);
    let total: i64 = c
        .query_one(
            format!("SELECT count(*) FROM items WHERE {}", f.sql).as_str(),
            &f.refs(),
        )
        .await?
        .try_get(0)?;
    let limit = f.bind(int(q.limit));
    let offset = f.bind(int(q.offset));
    let sql = format!(
        "SELECT {COLUMNS} FROM items WHERE {} ORDER BY {} LIMIT {limit} OFFSET {offset}",
        f.sql,
        order(q)
    );
    let items = items_from_rows(&c.query(sql.as_str(), &f.refs()).await?)?;
    Ok(ListPage {
        items,
        total: count(total),
    })
}

pub(super) async fn deliveries(
    c: &impl GenericClient,
    offset: u64,
    limit: u64,
    include_locked: bool,
) -> Result<DeliveryPage, StoreError> {
    let total: i64 = c
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await?
        .try_get(0)?;
    let visible = if include_locked {
        String::new()
    } else {
        format!(" AND NOT ({NOT_FOR_ALL})")
    };
    let sql = format!(
        "SELECT id, uploader, client_ip, user_agent, reference, opened_at, closed_at, {SCANS_DONE},
           (SELECT count(*) FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NULL{visible}),
           (SELECT coalesce(sum(size), 0)::BIGINT FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NULL{visible}),
           (SELECT count(*) FROM items WHERE delivery_id = deliveries.id AND deleted_at IS NOT NULL)
         FROM deliveries ORDER BY id DESC LIMIT $1 OFFSET $2"
    );
    let rows = c.query(sql.as_str(), &[&int(limit), &int(offset)]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut d = DeliverySummary {
            id: r.try_get(0)?,
            uploader: Uploader {
                label: r.try_get(1)?,
                client_ip: r.try_get(2)?,
                user_agent: r.try_get(3)?,
                link: None,
            },
            reference: r.try_get(4)?,
            opened_at: r.try_get(5)?,
            closed_at: r.try_get(6)?,
            files: count(r.try_get(8)?),
            bytes: count(r.try_get(9)?),
            deleted: count(r.try_get(10)?),
            status: AlertStatus::Pending,
            alerts: Vec::new(),
        };
        let scans_done: bool = r.try_get(7)?;
        d.alerts = alert_rows(c, d.id).await?;
        d.status = summarize(d.closed_at, scans_done, &d.alerts);
        out.push(d);
    }
    Ok(DeliveryPage {
        deliveries: out,
        total: count(total),
    })
}

pub(super) async fn delivery_alerts(
    c: &impl GenericClient,
    id: i64,
) -> Result<(AlertStatus, Vec<AlertRow>), StoreError> {
    let sql = format!("SELECT closed_at, {SCANS_DONE} FROM deliveries WHERE id = $1");
    let Some(head) = c.query_opt(sql.as_str(), &[&id]).await? else {
        return Ok((AlertStatus::NoChannel, Vec::new()));
    };
    let (closed, scans_done): (Option<i64>, bool) = (head.try_get(0)?, head.try_get(1)?);
    let alerts = alert_rows(c, id).await?;
    Ok((summarize(closed, scans_done, &alerts), alerts))
}
