//! SQLite-only tests; what both stores must do is in `src/store/conformance.rs`.

use super::*;
use crate::store::conformance::item;

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
