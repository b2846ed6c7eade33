//! Tests of the SQLite store.

use super::*;

fn item(name: &str, created: i64, filename: &str, reference: Option<&str>) -> Item {
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

#[test]
fn insert_list_search_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    s.insert(
        &[
            item("AAAAAAAA", 1, "one.tgz", Some("CASE-1")),
            item("CCCCCCCC", 2, "two_%.tgz", None),
        ],
        None,
    )
    .unwrap();
    let all = s
        .list(&ListQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.total, 2);
    assert_eq!(all.items[0].name.as_str(), "CCCCCCCC", "newest first");
    let by_ref = s
        .list(&ListQuery {
            search: Some("case-1".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_ref.items.len(), 1);
    let literal = s
        .list(&ListQuery {
            search: Some("_%".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(literal.items.len(), 1, "% and _ match literally");
    assert!(matches!(
        s.insert(&[item("AAAAAAAA", 3, "x", None)], None),
        Err(StoreError::NameTaken(_))
    ));
    let name = ItemName::parse("AAAAAAAA").unwrap();
    assert_eq!(s.expired(11, 10).unwrap(), vec![name.clone()]);
    assert!(s.mark_deleted(&name, 5, "test").unwrap());
    assert!(s.get(&name).unwrap().is_none());
    assert!(s.name_used(&name).unwrap(), "deleted names stay used");
    assert_eq!(s.live_names().unwrap().len(), 1);
    let walked = s.list_by_name(None, 1, false).unwrap();
    assert_eq!(walked[0].name.as_str(), "CCCCCCCC");
    assert!(
        s.list_by_name(Some(&walked[0].name), 1, false)
            .unwrap()
            .is_empty()
    );
    // Locked items are listed for admins only.
    s.set_locked(&walked[0].name, true).unwrap();
    let query = |include_locked| ListQuery {
        limit: 10,
        include_locked,
        ..Default::default()
    };
    assert_eq!(s.list(&query(false)).unwrap().total, 0);
    assert_eq!(s.list(&query(true)).unwrap().total, 1);
    let search = ListQuery {
        search: Some("two".into()),
        ..query(false)
    };
    assert_eq!(s.list(&search).unwrap().total, 0);
    assert!(s.list_by_name(None, 10, false).unwrap().is_empty());
    assert_eq!(s.list_by_name(None, 10, true).unwrap().len(), 1);
}

#[test]
fn resumable_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    let mut it = item("DDDDDDDD", 100, "big.bin", None);
    it.state = ItemState::Incomplete;
    it.sha256 = String::new();
    it.size = 0;
    s.begin_upload(&it, "txhash", None).unwrap();
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
    assert!(s.incomplete_names().unwrap().is_empty());
    assert!(
        matches!(
            s.record_progress(&name, 1, Some(1), 170),
            Err(StoreError::Gone(_))
        ),
        "complete items never change"
    );
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
}

#[test]
fn migrates_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    s.insert(&[item("EEEEEEEE", 1, "x", None)], None).unwrap();
    assert!(s.find_upload("none").unwrap().is_none());
}

fn join(key: &str, now: i64, idem: &str) -> DeliveryJoin {
    DeliveryJoin {
        batch_key: key.into(),
        now_ms: now * 1000,
        window_ms: 60_000,
        new_idempotency_key: idem.into(),
    }
}

#[test]
fn deliveries_batch_items_and_alerts_follow_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("m.db")).unwrap();
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
        .alert_status(&["AAAAAAAA".into(), "DDDDDDDD".into()])
        .unwrap();
    assert_eq!(status["AAAAAAAA"].status, AlertStatus::Collecting);
    // Nothing is due before the window has passed since the last item.
    assert_eq!(s.next_alert_due_ms().unwrap(), Some(190_000));
    let channels = vec![
        ("all".to_string(), vec![]),
        ("vip".to_string(), vec!["vip".to_string()]),
    ];
    assert_eq!(s.close_due_deliveries(189_999, &channels).unwrap(), 0);
    assert_eq!(s.close_due_deliveries(191_000, &channels).unwrap(), 2);
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
    assert_eq!(first.items.len(), 2);
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
    assert_eq!(s.alert_backlog().unwrap().0, 2, "one failing, one pending");
    assert_eq!(
        s.alert_status(&["CCCCCCCC".into()]).unwrap()["CCCCCCCC"].status,
        AlertStatus::Failing("down".into())
    );
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
    // The deliveries view: newest first, each with its files and its one row per channel.
    let page = s.deliveries(0, 10, true).unwrap();
    assert_eq!(page.total, 2);
    assert!(page.deliveries[0].id > page.deliveries[1].id);
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
    let (status, rows) = s.delivery_alerts(tasks[0].delivery_id).unwrap();
    assert_eq!((status, rows.len()), (AlertStatus::Delivered, 1));
    assert_eq!(s.alert_trouble(0).unwrap(), (None, 0));
    assert_eq!(
        s.alert_backlog().unwrap().0,
        1,
        "the delivered one is no longer counted"
    );
    // Deleted items stay in their delivery, marked deleted.
    s.mark_deleted(&ItemName::parse("CCCCCCCC").unwrap(), 400, "t")
        .unwrap();
    let again = s.delivery(tasks[0].delivery_id).unwrap().unwrap();
    assert_eq!(
        (again.items.len(), again.deleted.clone()),
        (2, vec!["CCCCCCCC".to_string()])
    );
}
