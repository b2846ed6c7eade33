//! PostgreSQL-only tests; what both stores must do is in `src/store/conformance.rs`.

use super::testing::{execute, test_db, try_execute};
use super::{PgStore, redact_url};
use crate::audit::{AuditEvent, Kind, Verdict, verify};
use crate::store::{AuditStore, StoreError};

#[test]
fn urls_are_logged_without_their_password() {
    assert_eq!(
        redact_url("postgres://sfx:s3cret@db.example.com:5432/sfx"),
        "postgres://sfx:***@db.example.com:5432/sfx"
    );
    assert_eq!(
        redact_url("postgres://sfx@db/sfx?password=x&sslmode=disable"),
        "postgres://sfx@db/sfx?password=***"
    );
    assert_eq!(redact_url("postgres://db/sfx"), "postgres://db/sfx");
    assert_eq!(redact_url("postgres://a:b:c@db"), "postgres://a:***@db");
}

#[test]
fn an_unreachable_database_is_unavailable() {
    // Nothing listens on port 1 of loopback.
    let err = PgStore::open("postgres://sfx:sfx@127.0.0.1:1/sfx", 2).err();
    assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
}

#[test]
fn records_cannot_be_changed_through_sql() {
    let Some(db) = test_db() else { return };
    let store = PgStore::open(&db.url, 2).unwrap();
    store
        .append_audit("t", &[AuditEvent::new(Kind::Download, "192.0.2.1", "a")])
        .unwrap();
    for sql in [
        "UPDATE audit SET label = 'x'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = try_execute(&db.url, sql).unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn a_removed_newest_record_is_found() {
    let Some(db) = test_db() else { return };
    let store = PgStore::open(&db.url, 2).unwrap();
    let ev = |n: u32| AuditEvent::new(Kind::Download, "192.0.2.1", "a").item(format!("i{n}"));
    store.append_audit("t", &[ev(1), ev(2), ev(3)]).unwrap();
    execute(
        &db.url,
        "ALTER TABLE audit DISABLE TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 3;",
    );
    assert!(matches!(
        verify(&store).unwrap(),
        Verdict::Broken { id: 3, .. }
    ));
    let next = store.append_audit("t", &[ev(4)]).unwrap();
    assert_eq!(next[0].id, 4, "the gap stays");
    assert_eq!(
        verify(&store).unwrap(),
        Verdict::Broken {
            id: 4,
            reason: "record 3 is missing".into()
        }
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(db) = test_db() else { return };
    drop(PgStore::open(&db.url, 2).unwrap());
    execute(&db.url, "UPDATE schema_version SET version = 99");
    let err = PgStore::open(&db.url, 2).err();
    assert!(
        matches!(&err, Some(StoreError::Backend(m)) if m.contains("newer")),
        "{err:?}"
    );
}

#[tokio::test]
async fn calls_and_drops_inside_an_async_context() {
    use crate::store::MetaStore;
    let Some(db) = test_db() else { return };
    // Opening, calling and dropping from a task of another runtime: no nested block_on.
    let store = PgStore::open(&db.url, 2).unwrap();
    store.ping().unwrap();
    assert_eq!(store.live_count().unwrap(), 0);
    drop(store);
}
