//! One suite of store tests, run against every [`MetaStore`]: SQLite always, PostgreSQL when
//! `SFX_TEST_POSTGRES_URL` is set (each test in a database of its own; without the URL those
//! tests say "skipped: needs PostgreSQL", and fail under `SFX_REQUIRE_POSTGRES=1`).
//!
//! Each case takes a [`Backend`], which opens stores on one fresh database (twice, for the
//! cases about several processes or instances sharing it).

use super::postgres::testing::{TestDb, test_db};
use super::*;
use crate::audit::{AuditEvent, GENESIS, Kind, Verdict, verify};
use crate::links::{NewLink, Refusal, Usage};
use std::sync::Arc;

mod cluster;
mod paging;
use cluster::{
    exclusive_holds_are_one_at_a_time, ledger_commits_and_rolls_back, ledger_leases_are_exclusive,
    shared_keys_keep_the_first,
};
use paging::wide_ranges_page_alike;

pub(crate) struct Backend {
    open: Box<dyn Fn() -> Arc<dyn MetaStore> + Send + Sync>,
    /// Kept until the test ends (the database is dropped with it).
    _db: Option<TestDb>,
    _dir: Option<tempfile::TempDir>,
    /// Made for several instances at once.
    pub(crate) shared: bool,
}

impl Backend {
    /// A new store on this backend's database (running its migrations, if any are due).
    pub(crate) fn open(&self) -> Arc<dyn MetaStore> {
        (self.open)()
    }

    /// Another store on the same database where several may share one (PostgreSQL); the same
    /// store for SQLite, whose data directory has one process (`DataDirLock`).
    fn another(&self, s: &Arc<dyn MetaStore>) -> Arc<dyn MetaStore> {
        if self.shared {
            self.open()
        } else {
            Arc::clone(s)
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        Backend {
            open: Box::new(move || Arc::new(SqliteStore::open(&path).unwrap())),
            _db: None,
            _dir: Some(dir),
            shared: false,
        }
    }

    fn postgres() -> Option<Backend> {
        let db = test_db()?;
        let url = db.url.clone();
        Some(Backend {
            open: Box::new(move || Arc::new(PgStore::open(&url, 4).unwrap())),
            _db: Some(db),
            _dir: None,
            shared: true,
        })
    }
}

/// A `#[test]` per case and backend: `sqlite::case` and `postgres::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $case() {
                super::$case(&super::Backend::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $case() {
                if let Some(b) = super::Backend::postgres() {
                    super::$case(&b);
                }
            })*
        }
    };
}

conformance!(
    insert_list_search_delete,
    every_filter_and_order,
    locked_and_infected_items_are_for_admins,
    sizes_counts_downloads_and_changes,
    resumable_uploads,
    deliveries_batch_items_and_alerts_follow_the_outbox,
    deliveries_wait_for_scans_and_leases_are_released,
    concurrent_claims_never_share_an_alert,
    audit_appends_chain_and_pages_newest_first,
    concurrent_audit_appends_chain,
    links_and_their_limits,
    migrations_run_twice_and_concurrently,
    ledger_commits_and_rolls_back,
    ledger_leases_are_exclusive,
    shared_keys_keep_the_first,
    exclusive_holds_are_one_at_a_time,
    wide_ranges_page_alike,
);

pub(crate) fn item(name: &str, created: i64, filename: &str, reference: Option<&str>) -> Item {
    Item {
        name: ItemName::parse(name).unwrap(),
        filename: filename.into(),
        content_type: "application/octet-stream".into(),
        size: 3,
        sha256: "ab".repeat(32),
        state: ItemState::Complete,
        created_at: created,
        completed_at: Some(created),
        expires_at: Some(created + 10),
        downloaded_at: None,
        locked: false,
        uploader: Uploader {
            label: "customers".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: "curl".into(),
            link: None,
        },
        reference: reference.map(Into::into),
        comment: None,
        scan: None,
    }
}

fn random_item(created: i64) -> Item {
    let mut it = item("AAAAAAAA", created, "f", None);
    it.name = ItemName::random().unwrap();
    it
}

fn names(page: &ListPage) -> Vec<&str> {
    page.items.iter().map(|i| i.name.as_str()).collect()
}

fn all(limit: u64) -> ListQuery {
    ListQuery {
        limit,
        include_locked: true,
        ..Default::default()
    }
}

fn insert_list_search_delete(b: &Backend) {
    let s = b.open();
    s.insert(
        &[
            item("AAAAAAAA", 1, "one.tgz", Some("CASE-1")),
            item("CCCCCCCC", 2, "two_%.tgz", None),
        ],
        None,
    )
    .unwrap();
    let page = s.list(&all(10)).unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(names(&page), ["CCCCCCCC", "AAAAAAAA"], "newest first");
    let got = s
        .get(&ItemName::parse("AAAAAAAA").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        item("AAAAAAAA", 1, "one.tgz", Some("CASE-1")),
        "stored as given"
    );
    let search = |q: &str| {
        s.list(&ListQuery {
            search: Some(q.into()),
            ..all(10)
        })
        .unwrap()
    };
    assert_eq!(
        names(&search("case-1")),
        ["AAAAAAAA"],
        "references, any case"
    );
    assert_eq!(names(&search("TWO")), ["CCCCCCCC"], "filenames, any case");
    assert_eq!(
        names(&search("_%")),
        ["CCCCCCCC"],
        "% and _ match literally"
    );
    assert!(search("o_e").items.is_empty(), "_ is no wildcard");
    assert!(search("\\").items.is_empty(), "a backslash is a backslash");
    // Quotes and spaces are literal too; a rename is searched by its new name only.
    s.insert(
        &[item("EEEEEEEE", 3, "say \"hi\".log", Some("Ticket 77"))],
        None,
    )
    .unwrap();
    assert_eq!(names(&search("y \"hi\"")), ["EEEEEEEE"]);
    assert_eq!(names(&search("ticket 7")), ["EEEEEEEE"]);
    let e = ItemName::parse("EEEEEEEE").unwrap();
    s.modify(&e, Some("renamed.log"), None).unwrap();
    assert!(search("hi\"").items.is_empty(), "the old name is gone");
    assert_eq!(names(&search("RENAMED")), ["EEEEEEEE"]);
    assert!(s.mark_deleted(&e, 4, "test").unwrap());
    assert!(matches!(
        s.insert(&[item("AAAAAAAA", 3, "x", None)], None),
        Err(StoreError::NameTaken(n)) if n == "AAAAAAAA"
    ));
    // All or none: a taken name in a batch stores nothing of it.
    assert!(
        s.insert(
            &[
                item("DDDDDDDD", 3, "x", None),
                item("CCCCCCCC", 3, "y", None)
            ],
            None
        )
        .is_err()
    );
    assert!(!s.name_used(&ItemName::parse("DDDDDDDD").unwrap()).unwrap());
    let name = ItemName::parse("AAAAAAAA").unwrap();
    assert_eq!(s.expired(10, 10).unwrap(), vec![]);
    assert_eq!(s.expired(11, 10).unwrap(), vec![name.clone()]);
    assert_eq!(s.expired(12, 10).unwrap().len(), 2);
    assert_eq!(s.expired(12, 1).unwrap().len(), 1, "limited");
    assert!(s.mark_deleted(&name, 5, "test").unwrap());
    assert!(!s.mark_deleted(&name, 6, "test").unwrap(), "once");
    assert!(s.get(&name).unwrap().is_none());
    assert!(s.name_used(&name).unwrap(), "deleted names stay used");
    assert_eq!(
        s.expired(12, 10).unwrap().len(),
        1,
        "deleted items do not expire"
    );
    assert_eq!(s.live_names().unwrap().len(), 1);
    let walked = s.list_by_name(None, 1, false).unwrap();
    assert_eq!(walked[0].name.as_str(), "CCCCCCCC");
    assert!(
        s.list_by_name(Some(&walked[0].name), 1, false)
            .unwrap()
            .is_empty()
    );
}

/// Six items differing in every column a filter or an order looks at.
fn listing_fixture(s: &dyn MetaStore) -> Vec<String> {
    let rows = [
        // (created, filename, reference, size, sha256 start, client, uploader)
        (
            100,
            "Report.pdf",
            Some("CASE-7"),
            30,
            "00",
            "10.0.0.1",
            "customers",
        ),
        (200, "alpha.tgz", None, 10, "0a", "10.0.0.10", "customers"),
        (
            300,
            "Beta.log",
            Some("case-8"),
            20,
            "a0",
            "10.1.2.3",
            "link",
        ),
        (
            300,
            "gamma_1.txt",
            Some("x%y"),
            20,
            "ab",
            "2001:db8::1",
            "vip",
        ),
        (400, "delta.bin", None, 50, "ff", "192.0.2.7", "customers"),
        (
            500,
            "ALPHA-2.tgz",
            Some("CASE-7"),
            40,
            "0a",
            "10.0.0.1",
            "vip",
        ),
    ];
    let mut made = Vec::new();
    for (created, filename, reference, size, sha, client, uploader) in rows {
        let mut it = random_item(created);
        it.filename = filename.into();
        it.reference = reference.map(Into::into);
        it.size = size;
        it.sha256 = format!("{sha}{}", "1".repeat(62));
        it.uploader.client_ip = client.into();
        it.uploader.label = uploader.into();
        made.push(it.name.to_string());
        s.insert(&[it], None).unwrap();
    }
    made
}

fn every_filter_and_order(b: &Backend) {
    let s = b.open();
    let n = listing_fixture(s.as_ref());
    let q = |f: &dyn Fn(&mut ListQuery)| {
        let mut query = all(100);
        f(&mut query);
        let page = s.list(&query).unwrap();
        let got: Vec<usize> = page
            .items
            .iter()
            .map(|i| n.iter().position(|x| x == i.name.as_str()).unwrap())
            .collect();
        got
    };
    // Orders, each with ties broken by arrival in the same direction.
    assert_eq!(q(&|_| {}), [5, 4, 3, 2, 1, 0]);
    assert_eq!(q(&|q| q.ascending = true), [0, 1, 2, 3, 4, 5]);
    assert_eq!(q(&|q| q.sort = Sort::Size), [4, 5, 0, 3, 2, 1]);
    assert_eq!(
        q(&|q| {
            q.sort = Sort::Size;
            q.ascending = true
        }),
        [1, 2, 3, 0, 5, 4]
    );
    assert_eq!(
        q(&|q| {
            q.sort = Sort::Name;
            q.ascending = true
        }),
        [5, 1, 2, 4, 3, 0],
        "filenames case-insensitively: ALPHA-2 < alpha < Beta < delta < gamma < Report"
    );
    assert_eq!(q(&|q| q.sort = Sort::Name), [0, 3, 4, 2, 1, 5]);
    // Pages.
    assert_eq!(
        q(&|q| {
            q.offset = 2;
            q.limit = 3
        }),
        [3, 2, 1]
    );
    let page = s
        .list(&ListQuery {
            offset: 4,
            limit: 3,
            ..all(0)
        })
        .unwrap();
    assert_eq!(
        (page.items.len(), page.total),
        (2, 6),
        "total over all pages"
    );
    // Filters.
    let text = |v: &str| Some(v.to_string());
    assert_eq!(q(&|q| q.search = text("case-7")), [5, 0]);
    assert_eq!(q(&|q| q.search = text("ALPHA")), [5, 1]);
    assert_eq!(q(&|q| q.search = text("%")), [3], "x%y: a literal %");
    assert_eq!(q(&|q| q.search = text("a_1")), [3], "gamma_1: a literal _");
    assert_eq!(
        q(&|q| q.search = text("  ")),
        [5, 4, 3, 2, 1, 0],
        "blank: no filter"
    );
    assert_eq!(q(&|q| q.filename = text("case")), Vec::<usize>::new());
    assert_eq!(q(&|q| q.filename = text(".TGZ")), [5, 1]);
    assert_eq!(q(&|q| q.reference = text("CASE")), [5, 2, 0]);
    assert_eq!(q(&|q| q.reference = text("pdf")), Vec::<usize>::new());
    assert_eq!(q(&|q| q.sha256 = text("0")), [5, 1, 0]);
    assert_eq!(q(&|q| q.sha256 = text("0a")), [5, 1]);
    assert_eq!(q(&|q| q.sha256 = text("a")), [3, 2]);
    assert_eq!(q(&|q| q.sha256 = text("f")), [4]);
    assert_eq!(q(&|q| q.sha256 = text(&"1".repeat(3))), Vec::<usize>::new());
    assert_eq!(
        q(&|q| q.client = text("10.0.0.1")),
        [5, 0],
        "an address exactly"
    );
    assert_eq!(q(&|q| q.client = text("10.0.")), [5, 1, 0], "a prefix");
    assert_eq!(q(&|q| q.client = text("10.")), [5, 2, 1, 0]);
    assert_eq!(
        q(&|q| q.client = text("2001:db8:0::1")),
        [3],
        "in sfx's form"
    );
    assert_eq!(q(&|q| q.client = text("2001:db8:")), [3]);
    assert_eq!(q(&|q| q.uploader = text("vip")), [5, 3]);
    assert_eq!(
        q(&|q| q.uploader = text("VIP")),
        Vec::<usize>::new(),
        "exactly"
    );
    assert_eq!(q(&|q| q.since = Some(300)), [5, 4, 3, 2]);
    assert_eq!(q(&|q| q.until = Some(300)), [1, 0]);
    assert_eq!(
        q(&|q| {
            q.since = Some(200);
            q.until = Some(500);
            q.uploader = text("customers");
            q.sort = Sort::Size
        }),
        [4, 1],
        "filters combine"
    );
}

fn locked_and_infected_items_are_for_admins(b: &Backend) {
    let s = b.open();
    let items: Vec<Item> = (0..3).map(|i| random_item(i + 1)).collect();
    s.insert(&items, None).unwrap();
    s.set_locked(&items[0].name, true).unwrap();
    s.set_scan(&items[1].name, &ScanState::Infected("Eicar".into()))
        .unwrap();
    let public = ListQuery {
        limit: 10,
        ..Default::default()
    };
    let page = s.list(&public).unwrap();
    assert_eq!(
        (names(&page), page.total),
        (vec![items[2].name.as_str()], 1)
    );
    assert_eq!(s.list(&all(10)).unwrap().total, 3);
    let search = ListQuery {
        search: Some("f".into()),
        ..public.clone()
    };
    assert_eq!(s.list(&search).unwrap().total, 1);
    assert_eq!(s.list_by_name(None, 10, false).unwrap().len(), 1);
    assert_eq!(s.list_by_name(None, 10, true).unwrap().len(), 3);
    let got = s.get(&items[1].name).unwrap().unwrap();
    assert!(got.is_infected());
    assert_eq!(got.scan, Some(ScanState::Infected("Eicar".into())));
    assert!(s.get(&items[0].name).unwrap().unwrap().locked);
    s.set_locked(&items[0].name, false).unwrap();
    s.set_scan(&items[1].name, &ScanState::NotScanned("too big".into()))
        .unwrap();
    assert_eq!(s.list(&public.clone()).unwrap().total, 3);
}

fn sizes_counts_downloads_and_changes(b: &Backend) {
    let s = b.open();
    assert_eq!((s.live_size().unwrap(), s.live_count().unwrap()), (0, 0));
    let mut big = random_item(1);
    big.size = 5_000_000_000;
    let small = random_item(2);
    s.insert(&[big.clone(), small.clone()], None).unwrap();
    assert_eq!(s.live_size().unwrap(), 5_000_000_003);
    assert_eq!(s.live_count().unwrap(), 2);
    s.record_download(&big.name, 77).unwrap();
    s.modify(&big.name, None, Some("text/plain")).unwrap();
    let got = s.get(&big.name).unwrap().unwrap();
    assert_eq!(
        (
            got.downloaded_at,
            got.filename.as_str(),
            got.content_type.as_str(),
            got.size
        ),
        (Some(77), "f", "text/plain", 5_000_000_000)
    );
    s.mark_deleted(&big.name, 3, "t").unwrap();
    assert_eq!((s.live_size().unwrap(), s.live_count().unwrap()), (3, 1));
    assert_eq!(
        s.live_names().unwrap(),
        HashSet::from([small.name.to_string()])
    );
    s.ping().unwrap();
}

fn resumable_uploads(b: &Backend) {
    let s = b.open();
    let mut it = item("DDDDDDDD", 100, "big.bin", None);
    it.state = ItemState::Incomplete;
    it.sha256 = String::new();
    it.size = 0;
    s.begin_upload(&it, "txhash", None).unwrap();
    assert!(matches!(
        s.begin_upload(&it, "other", None),
        Err(StoreError::NameTaken(_))
    ));
    assert_eq!(s.find_upload("txhash").unwrap().unwrap().total, None);
    let name = it.name.clone();
    assert_eq!(s.incomplete_names().unwrap().len(), 1);
    s.record_progress(&name, 1000, Some(3001), 150).unwrap();
    let t = s.find_upload("txhash").unwrap().unwrap();
    assert_eq!(
        (t.item.size, t.total, t.updated_at),
        (1000, Some(3001), 150)
    );
    assert_eq!(s.upload(&name).unwrap().unwrap().total, Some(3001));
    assert_eq!(s.stale_uploads(149, 10).unwrap(), vec![]);
    assert_eq!(s.stale_uploads(150, 10).unwrap(), vec![name.clone()]);
    s.complete_upload(&name, 3000, "ff", 160, None).unwrap();
    let t = s.find_upload("txhash").unwrap().unwrap();
    assert_eq!(
        (t.item.state, t.item.size, t.item.sha256.as_str()),
        (ItemState::Complete, 3000, "ff")
    );
    assert_eq!(t.item.completed_at, Some(160));
    assert!(s.incomplete_names().unwrap().is_empty());
    assert!(
        s.stale_uploads(1000, 10).unwrap().is_empty(),
        "complete is not stale"
    );
    assert!(
        matches!(
            s.record_progress(&name, 1, Some(1), 170),
            Err(StoreError::Gone(_))
        ),
        "complete items never change"
    );
    assert!(matches!(
        s.complete_upload(&name, 1, "00", 170, None),
        Err(StoreError::Gone(_))
    ));
    assert_eq!(
        s.find_upload("txhash").unwrap().unwrap().item.size,
        3000,
        "complete items never change"
    );
    assert!(s.find_upload("other").unwrap().is_none());
    s.modify(&name, Some("renamed.bin"), None).unwrap();
    s.set_locked(&name, true).unwrap();
    let got = s.get(&name).unwrap().unwrap();
    assert_eq!((got.filename.as_str(), got.locked), ("renamed.bin", true));
    // A deleted upload is gone for its client.
    let mut other = random_item(200);
    other.state = ItemState::Incomplete;
    s.begin_upload(&other, "tx2", Some(10)).unwrap();
    s.mark_deleted(&other.name, 201, "t").unwrap();
    assert!(s.find_upload("tx2").unwrap().is_none());
    assert!(s.upload(&other.name).unwrap().is_none());
    assert!(matches!(
        s.record_progress(&other.name, 1, None, 202),
        Err(StoreError::Gone(_))
    ));
}

fn join(key: &str, now: i64, idem: &str) -> DeliveryJoin {
    DeliveryJoin {
        batch_key: key.into(),
        now_ms: now * 1000,
        window_ms: 60_000,
        new_idempotency_key: idem.into(),
    }
}

fn deliveries_batch_items_and_alerts_follow_the_outbox(b: &Backend) {
    let s = b.open();
    // Two uploads 30 s apart with the same key: one delivery; another key: its own.
    s.insert(
        &[item("AAAAAAAA", 100, "a", None)],
        Some(&join("k1", 100, "idem1")),
    )
    .unwrap();
    s.insert(
        &[item("CCCCCCCC", 130, "c", None)],
        Some(&join("k1", 130, "unused")),
    )
    .unwrap();
    s.insert(
        &[item("DDDDDDDD", 131, "d", None)],
        Some(&join("k2", 131, "idem2")),
    )
    .unwrap();
    let status = s
        .alert_status(&["AAAAAAAA".into(), "DDDDDDDD".into(), "EEEEEEEE".into()])
        .unwrap();
    assert_eq!(status.len(), 2, "no delivery, no status");
    assert_eq!(status["AAAAAAAA"].status, AlertStatus::Collecting);
    // Nothing is due before the window has passed since the last item.
    assert_eq!(s.next_alert_due_ms().unwrap(), Some(190_000));
    let channels = vec![
        ("all".to_string(), vec![]),
        ("vip".to_string(), vec!["vip".to_string()]),
    ];
    assert_eq!(s.close_due_deliveries(189_999, &channels).unwrap(), 0);
    assert_eq!(s.close_due_deliveries(191_000, &channels).unwrap(), 2);
    assert_eq!(
        s.close_due_deliveries(191_000, &channels).unwrap(),
        0,
        "once"
    );
    assert!(
        s.claim_alerts(191, "vip", 10, 250).unwrap().is_empty(),
        "`vip` wants no `customers` upload"
    );
    let tasks = s.claim_alerts(191, "all", 10, 250).unwrap();
    assert_eq!(tasks.len(), 2, "one per delivery");
    assert!(
        s.claim_alerts(191, "all", 10, 250).unwrap().is_empty(),
        "leased while being sent"
    );
    let first = s.delivery(tasks[0].delivery_id).unwrap().unwrap();
    assert_eq!(first.idempotency_key, "idem1");
    assert_eq!(
        (
            first.opened_at,
            first.closed_at,
            first.uploader.label.as_str()
        ),
        (100, Some(191), "customers")
    );
    let in_order: Vec<_> = first.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(in_order, ["AAAAAAAA", "CCCCCCCC"]);
    assert!(s.delivery(9999).unwrap().is_none());
    s.record_alert(
        &tasks[0],
        &AlertOutcome::Retry {
            error: "down".into(),
            next_attempt_at: 300,
        },
        191,
    )
    .unwrap();
    assert_eq!(s.alert_trouble(0).unwrap(), (Some(191), 0));
    assert_eq!(
        s.alert_backlog().unwrap(),
        (2, Some(191)),
        "one failing, one pending"
    );
    assert_eq!(
        s.alert_status(&["CCCCCCCC".into()]).unwrap()["CCCCCCCC"].status,
        AlertStatus::Failing("down".into())
    );
    assert_eq!(s.next_alert_due_ms().unwrap(), Some(250_000));
    assert_eq!(
        s.claim_alerts(250, "all", 10, 260).unwrap(),
        vec![tasks[1].clone()],
        "the failing one waits for its backoff; the other's lease has run out"
    );
    s.record_alert(&tasks[0], &AlertOutcome::Delivered, 300)
        .unwrap();
    assert_eq!(
        s.alert_status(&["AAAAAAAA".into()]).unwrap()["AAAAAAAA"].status,
        AlertStatus::Delivered
    );
    s.record_alert(
        &tasks[1],
        &AlertOutcome::GaveUp {
            error: "refused".into(),
        },
        400,
    )
    .unwrap();
    assert_eq!(s.alert_trouble(400).unwrap(), (None, 1));
    assert_eq!(s.alert_trouble(401).unwrap(), (None, 0));
    // The deliveries view: newest first, each with its files and its one row per channel.
    let page = s.deliveries(0, 10, true).unwrap();
    assert_eq!(page.total, 2);
    assert!(page.deliveries[0].id > page.deliveries[1].id);
    assert_eq!(
        page.deliveries[0].status,
        AlertStatus::Failed("refused".into())
    );
    assert_eq!(s.deliveries(1, 10, true).unwrap().deliveries.len(), 1);
    let d = page
        .deliveries
        .iter()
        .find(|d| d.id == tasks[0].delivery_id)
        .unwrap();
    assert_eq!((d.files, d.bytes, d.deleted), (2, 6, 0));
    assert_eq!(d.status, AlertStatus::Delivered);
    let channels: Vec<_> = d
        .alerts
        .iter()
        .map(|a| (a.channel.as_str(), a.state.as_str(), a.attempts))
        .collect();
    assert_eq!(channels, [("all", "delivered", 2)]);
    assert_eq!(d.alerts[0].last_error.as_deref(), Some("down"));
    assert_eq!(d.alerts[0].delivered_at, Some(300));
    let (status, rows) = s.delivery_alerts(tasks[0].delivery_id).unwrap();
    assert_eq!((status, rows.len()), (AlertStatus::Delivered, 1));
    assert_eq!(
        s.delivery_alerts(9999).unwrap(),
        (AlertStatus::NoChannel, vec![])
    );
    assert_eq!(
        s.alert_backlog().unwrap(),
        (0, None),
        "neither delivered nor given-up ones are counted"
    );
    assert_eq!(s.next_alert_due_ms().unwrap(), None);
    // Deleted and locked items stay in their delivery; the view counts what is visible.
    s.mark_deleted(&ItemName::parse("CCCCCCCC").unwrap(), 400, "t")
        .unwrap();
    s.set_locked(&ItemName::parse("AAAAAAAA").unwrap(), true)
        .unwrap();
    let again = s.delivery(tasks[0].delivery_id).unwrap().unwrap();
    assert_eq!(
        (again.items.len(), again.deleted.clone()),
        (2, vec!["CCCCCCCC".to_string()])
    );
    let public = s.deliveries(0, 10, false).unwrap();
    let d = public.deliveries.iter().find(|d| d.id == again.id).unwrap();
    assert_eq!((d.files, d.bytes, d.deleted), (0, 0, 1));
}

fn deliveries_wait_for_scans_and_leases_are_released(b: &Backend) {
    let s = b.open();
    let mut it = random_item(100);
    it.scan = Some(ScanState::Scanning);
    let other = random_item(101);
    s.insert(&[it.clone(), other], Some(&join("k", 100, "i")))
        .unwrap();
    let name = it.name.to_string();
    assert_eq!(
        s.alert_status(std::slice::from_ref(&name)).unwrap()[&name].status,
        AlertStatus::Scanning
    );
    assert_eq!(s.next_alert_due_ms().unwrap(), None, "waits for the scan");
    let channels = vec![("all".to_string(), vec![])];
    assert_eq!(s.close_due_deliveries(1_000_000, &channels).unwrap(), 0);
    let scanning = s.scanning(10).unwrap();
    assert_eq!(scanning.len(), 1);
    assert_eq!(scanning[0].name, it.name);
    s.set_scan(&it.name, &ScanState::Clean).unwrap();
    assert!(s.scanning(10).unwrap().is_empty());
    assert_eq!(s.next_alert_due_ms().unwrap(), Some(160_000));
    assert_eq!(s.close_due_deliveries(1_000_000, &channels).unwrap(), 1);
    let tasks = s.claim_alerts(1000, "all", 10, 5000).unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(s.claim_alerts(1001, "all", 10, 5000).unwrap().is_empty());
    assert_eq!(s.release_alert_leases(1001).unwrap(), 1);
    assert_eq!(s.claim_alerts(1001, "all", 10, 5000).unwrap(), tasks);
}

/// Stores opened twice on one database (two processes or instances) claiming at once: every
/// alert goes to exactly one of them.
fn concurrent_claims_never_share_an_alert(b: &Backend) {
    let s = b.open();
    let n = 40;
    for i in 0..n {
        s.insert(
            &[random_item(i)],
            Some(&join(&format!("k{i}"), 100, &format!("idem{i}"))),
        )
        .unwrap();
    }
    let channels = vec![("all".to_string(), vec![])];
    assert_eq!(
        s.close_due_deliveries(1_000_000, &channels).unwrap(),
        n as usize
    );
    let claimers: Vec<_> = [s.clone(), b.another(&s), s.clone(), b.another(&s)]
        .into_iter()
        .map(|store| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let tasks = store.claim_alerts(1000, "all", 3, 5000).unwrap();
                    if tasks.is_empty() {
                        break got;
                    }
                    got.extend(tasks.into_iter().map(|t| t.delivery_id));
                }
            })
        })
        .collect();
    let mut all: Vec<i64> = claimers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((claimed, all.len()), (n as usize, n as usize), "each once");
}

fn event(n: usize) -> AuditEvent {
    let label = if n.is_multiple_of(2) { "even" } else { "odd" };
    AuditEvent::new(Kind::Download, "192.0.2.1", label).item(format!("item{n:04}"))
}

fn ids(p: &AuditPage) -> Vec<i64> {
    p.records.iter().map(|r| r.id).collect()
}

fn audit_appends_chain_and_pages_newest_first(b: &Backend) {
    let store = b.open();
    assert_eq!(store.audit_high_water().unwrap(), 0);
    let events: Vec<_> = (1..=7).map(event).collect();
    let first = store.append_audit("t1", &events[..1]).unwrap();
    assert_eq!(first[0].prev_hash, GENESIS);
    let rest = store.append_audit("t2", &events[1..]).unwrap();
    assert_eq!(rest[0].prev_hash, first[0].hash);
    assert_eq!(rest.last().unwrap().id, 7);
    assert_eq!(store.audit_high_water().unwrap(), 7);
    let q = |before, after, label: Option<&str>| AuditQuery {
        label: label.map(String::from),
        before,
        after,
        limit: 2,
        ..Default::default()
    };
    let p = store.audit_page(&q(None, None, None)).unwrap();
    assert_eq!(
        (ids(&p), p.total, p.newer, p.older),
        (vec![7, 6], 7, false, true)
    );
    assert_eq!(p.records[0], rest[5], "stored as sealed");
    let p = store.audit_page(&q(Some(6), None, None)).unwrap();
    assert_eq!((ids(&p), p.newer, p.older), (vec![5, 4], true, true));
    let p = store.audit_page(&q(None, Some(5), None)).unwrap();
    assert_eq!((ids(&p), p.newer, p.older), (vec![7, 6], false, true));
    let p = store.audit_page(&q(Some(2), None, Some("odd"))).unwrap();
    assert_eq!(
        (ids(&p), p.total, p.newer, p.older),
        (vec![1], 4, true, false)
    );
    let p = store.audit_page(&q(Some(1), None, None)).unwrap();
    assert_eq!((ids(&p), p.newer, p.older), (vec![], true, false));
    let p = store.audit_page(&q(None, Some(7), None)).unwrap();
    assert_eq!((ids(&p), p.newer, p.older), (vec![], false, true));
    let p = store
        .audit_page(&AuditQuery {
            item: Some("item0003".into()),
            kind: Some("download".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((ids(&p), p.total), (vec![3], 1));
    let after: Vec<i64> = store
        .audit_after(4, 2)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(after, [5, 6]);
    assert_eq!(
        verify(store.as_ref()).unwrap(),
        Verdict::Intact {
            records: 7,
            last: Some((7, rest[5].hash.clone()))
        }
    );
}

fn concurrent_audit_appends_chain(b: &Backend) {
    let a = b.open();
    let other = b.open();
    let threads: Vec<_> = [a.clone(), other, a.clone(), a.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            std::thread::spawn(move || {
                for n in 0..25 {
                    s.append_audit("t", &[event(t * 100 + n), event(t * 100 + 50 + n)])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(matches!(
        verify(a.as_ref()).unwrap(),
        Verdict::Intact { records: 200, .. }
    ));
}

fn links_and_their_limits(b: &Backend) {
    let s = b.open();
    let new = NewLink {
        reference: "CASE-9".into(),
        note: Some("for Ann".into()),
        expires_at: Some(1000),
        max_size: Some(100),
        max_files: Some(2),
        notify: vec!["a@example.com".into(), "b@example.com".into()],
    };
    let id = s.create_link(&new, "tokhash", "admin", 10).unwrap();
    let other = s
        .create_link(&NewLink::default(), "tokhash2", "cli", 11)
        .unwrap();
    assert!(other > id);
    let link = s.link_by_token("tokhash").unwrap().unwrap();
    assert_eq!(
        (
            link.id,
            link.reference.as_str(),
            link.note.as_deref(),
            link.created_at,
            link.created_by.as_str(),
            link.expires_at,
            link.max_size,
            link.max_files,
            link.notify.len(),
        ),
        (
            id,
            "CASE-9",
            Some("for Ann"),
            10,
            "admin",
            Some(1000),
            Some(100),
            Some(2),
            2
        )
    );
    assert_eq!(s.link(id).unwrap(), Some(link));
    assert!(s.link_by_token("nope").unwrap().is_none());
    assert!(s.link(other).unwrap().unwrap().notify.is_empty());
    let through = |created: i64, size: u64| {
        let mut it = random_item(created);
        it.size = size;
        it.uploader.link = Some(id);
        it.uploader.label = format!("link:{id}");
        it
    };
    let first = through(20, 60);
    s.insert(std::slice::from_ref(&first), None).unwrap();
    assert_eq!(
        s.link_usage(id).unwrap(),
        Usage {
            files: 1,
            bytes: 60
        }
    );
    assert!(
        matches!(
            s.insert(&[through(21, 41)], None),
            Err(StoreError::LinkRefused(Refusal::Bytes { max: 100, .. }))
        ),
        "over the size limit"
    );
    // A running upload counts with its declared length, and is checked as it completes.
    let mut running = through(22, 0);
    running.state = ItemState::Incomplete;
    s.begin_upload(&running, "tx", Some(30)).unwrap();
    assert_eq!(
        s.link_usage(id).unwrap(),
        Usage {
            files: 2,
            bytes: 90
        }
    );
    assert!(matches!(
        s.complete_upload(&running.name, 50, "00", 23, None),
        Err(StoreError::LinkRefused(Refusal::Bytes { .. }))
    ));
    assert_eq!(
        s.upload(&running.name).unwrap().unwrap().item.state,
        ItemState::Incomplete,
        "refused: nothing changed"
    );
    s.complete_upload(&running.name, 30, "00", 23, None)
        .unwrap();
    assert!(matches!(
        s.insert(&[through(24, 1)], None),
        Err(StoreError::LinkRefused(Refusal::Files { max: 2, .. }))
    ));
    s.mark_deleted(&first.name, 25, "t").unwrap();
    assert_eq!(
        s.link_usage(id).unwrap(),
        Usage {
            files: 1,
            bytes: 30
        }
    );
    let items = s.link_items(id, 10).unwrap();
    let listed: Vec<_> = items
        .iter()
        .map(|(i, deleted)| (i.name.clone(), *deleted))
        .collect();
    assert_eq!(
        listed,
        [(running.name.clone(), None), (first.name.clone(), Some(25))],
        "newest first, deleted ones too"
    );
    let (page, total) = s.links(0, 1).unwrap();
    assert_eq!((page.len(), total, page[0].0.id), (1, 2, other));
    let (page, _) = s.links(1, 10).unwrap();
    assert_eq!(
        (page[0].0.id, page[0].1),
        (
            id,
            Usage {
                files: 1,
                bytes: 30
            }
        )
    );
    assert!(s.revoke_link(id, "admin", 30).unwrap());
    assert!(!s.revoke_link(id, "admin", 31).unwrap(), "once");
    assert!(!s.revoke_link(9999, "admin", 31).unwrap());
    let revoked = s.link(id).unwrap().unwrap();
    assert_eq!(
        (revoked.revoked_at, revoked.revoked_by.as_deref()),
        (Some(30), Some("admin"))
    );
    assert!(matches!(
        s.insert(&[through(32, 1)], None),
        Err(StoreError::LinkRefused(Refusal::Revoked))
    ));
}

/// Opening runs the migrations: twice in a row, and from two threads at once (two instances
/// starting together), each store then works on the same data.
fn migrations_run_twice_and_concurrently(b: &Backend) {
    // At once only where several instances may share the database: an SQLite data directory
    // has one process (`DataDirLock`), and SQLite may answer "database is locked" to two
    // connections switching a new file to WAL at the same moment.
    let stores: Vec<Arc<dyn MetaStore>> = if b.shared {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..2).map(|_| scope.spawn(|| b.open())).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    } else {
        vec![b.open(), b.open()]
    };
    stores[0]
        .insert(&[item("AAAAAAAA", 1, "a", None)], None)
        .unwrap();
    assert!(matches!(
        stores[1].insert(&[item("AAAAAAAA", 2, "b", None)], None),
        Err(StoreError::NameTaken(_))
    ));
    drop(stores);
    let again = b.open();
    assert_eq!(again.live_count().unwrap(), 1, "data survives a re-open");
}
