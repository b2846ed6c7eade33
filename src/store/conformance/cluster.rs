//! Conformance cases of what instances sharing a store rely on: the object-store ledger
//! (`store::ledger`) and the shared keys.

use super::Backend;
use crate::store::ledger::{Claim, Commit, LedgerState};

const PS: u64 = 10;

fn commit<'a>(
    key: &'a str,
    start: u64,
    parts: &'a [(u64, String)],
    tail_start: u64,
    tail: &'a [u8],
    end: u64,
    hash: &'a [u8],
) -> Commit<'a> {
    Commit {
        key,
        part_size: PS,
        upload_id: None,
        start,
        parts,
        tail_start,
        tail,
        end,
        hash,
        at: 100,
    }
}

fn taken(c: Claim) -> LedgerState {
    match c {
        Claim::Taken(s) => s,
        other => panic!("not taken: {other:?}"),
    }
}

/// Commits cut parts and keep tails; a claim at an older offset (the metadata never recorded a
/// later commit) finds that offset's state whole, and the next commit from it drops the rest.
pub(crate) fn ledger_commits_and_rolls_back(b: &Backend) {
    let s = b.open();
    let k = "p/files/AAAAAAAA";
    assert!(s.ledger_create(k, true, 1).unwrap());
    assert!(!s.ledger_create(k, true, 1).unwrap(), "exists");
    let fresh = taken(s.ledger_claim(k, 0, PS, "a", 50, 10).unwrap());
    assert_eq!(fresh, LedgerState::default());
    s.ledger_set_upload(k, "UP1", 10).unwrap();
    // 0..4 as a tail.
    s.ledger_commit(&commit(k, 0, &[], 0, b"abcd", 4, b"h4"))
        .unwrap();
    // 4..23: parts 1 and 2 cut, tail 20..23.
    let parts = [(1, "e1".to_string()), (2, "e2".to_string())];
    s.ledger_commit(&commit(k, 4, &parts, 20, b"uvw", 23, b"h23"))
        .unwrap();
    let at23 = s.ledger_state(k, 23, PS).unwrap().unwrap();
    assert_eq!(at23.upload_id.as_deref(), Some("UP1"));
    assert_eq!(at23.parts, ["e1", "e2"]);
    assert_eq!(at23.tail, b"uvw");
    assert_eq!(at23.hash.as_deref(), Some(&b"h23"[..]));
    // The client was only told 4: its state is still there.
    let at4 = taken(s.ledger_claim(k, 4, PS, "a", 50, 11).unwrap());
    assert_eq!(at4.parts, Vec::<String>::new());
    assert_eq!(at4.tail, b"abcd");
    assert_eq!(at4.hash.as_deref(), Some(&b"h4"[..]));
    assert!(
        s.ledger_state(k, 7, PS).unwrap().is_none(),
        "no commit ended at 7"
    );
    // Going on from 4 again replaces what came after it.
    let parts = [(1, "f1".to_string())];
    s.ledger_commit(&commit(k, 4, &parts, 10, b"xy", 12, b"h12"))
        .unwrap();
    assert!(s.ledger_state(k, 23, PS).unwrap().is_none());
    let at12 = s.ledger_state(k, 12, PS).unwrap().unwrap();
    assert_eq!(at12.parts, ["f1"]);
    assert_eq!(at12.tail, b"xy");
    // A commit from 12 forgets the tail of part 1, which no claim can need any more.
    s.ledger_commit(&commit(k, 12, &[], 12, b"z", 13, b"h13"))
        .unwrap();
    assert!(s.ledger_state(k, 4, PS).unwrap().is_none());
    assert_eq!(s.ledger_state(k, 13, PS).unwrap().unwrap().tail, b"xyz");
    s.ledger_published(k, 20).unwrap();
    assert!(s.ledger_state(k, 13, PS).unwrap().unwrap().published);
    s.ledger_reupload(k, "UP2", &["g1".into()], 21).unwrap();
    let again = s.ledger_state(k, 13, PS).unwrap().unwrap();
    assert_eq!(
        (again.upload_id.as_deref(), &again.parts[..]),
        (Some("UP2"), &["g1".to_string()][..])
    );
    assert!(!again.published);
    let gone = s.ledger_remove(k).unwrap().unwrap();
    assert_eq!(gone.upload_id.as_deref(), Some("UP2"));
    assert!(s.ledger_state(k, 13, PS).unwrap().is_none());
    assert!(s.ledger_remove(k).unwrap().is_none());
}

/// One writer at a time, across instances: a running lease makes others busy; it can be
/// renewed by its owner only; released or run out, another instance takes over.
pub(crate) fn ledger_leases_are_exclusive(b: &Backend) {
    let a = b.open();
    let other = b.another(&a);
    let k = "p/files/BBBBBBBB";
    assert_eq!(
        a.ledger_claim(k, 0, PS, "a", 50, 10).unwrap(),
        Claim::Missing
    );
    a.ledger_create(k, true, 1).unwrap();
    taken(a.ledger_claim(k, 0, PS, "a", 50, 10).unwrap());
    assert_eq!(
        other.ledger_claim(k, 0, PS, "b", 60, 20).unwrap(),
        Claim::Busy
    );
    assert!(a.ledger_renew(k, "a", 70).unwrap());
    assert!(!other.ledger_renew(k, "b", 80).unwrap());
    assert_eq!(
        other.ledger_claim(k, 0, PS, "b", 90, 65).unwrap(),
        Claim::Busy
    );
    // Run out at 70: b takes over at 71, and a has lost it.
    taken(other.ledger_claim(k, 0, PS, "b", 90, 71).unwrap());
    assert!(!a.ledger_renew(k, "a", 100).unwrap());
    other.ledger_release(k, "b").unwrap();
    taken(a.ledger_claim(k, 0, PS, "a", 120, 72).unwrap());
    // Idle entries, oldest first, for the sweeper.
    a.ledger_create("p/files/CCCCCCCC", false, 5).unwrap();
    let idle = a.ledger_idle(80, 10).unwrap();
    let keys: Vec<&str> = idle.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["p/files/CCCCCCCC", k]);
    assert!(!idle[0].resumable && idle[1].resumable);
    assert_eq!(a.ledger_idle(5, 10).unwrap(), vec![]);
    // A touched entry is no longer idle.
    a.ledger_touch("p/files/CCCCCCCC", 90).unwrap();
    let c = other.ledger_entry("p/files/CCCCCCCC").unwrap().unwrap();
    assert_eq!((c.touched_at, c.resumable, c.upload_id), (90, false, None));
    assert_eq!(other.ledger_entry("p/files/nothing").unwrap(), None);
    let idle = a.ledger_idle(80, 10).unwrap();
    assert_eq!(idle.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), [k]);
}

/// The first key stored under a name is the one every instance gets.
pub(crate) fn shared_keys_keep_the_first(b: &Backend) {
    let a = b.open();
    let other = b.another(&a);
    assert_eq!(a.shared_key("session", &[1; 32]).unwrap(), [1; 32]);
    assert_eq!(other.shared_key("session", &[2; 32]).unwrap(), [1; 32]);
    assert_eq!(other.shared_key("other", &[3; 4]).unwrap(), [3; 4]);
}

/// One holder at a time among instances (the sweeper); let go on drop, and per name.
pub(crate) fn exclusive_holds_are_one_at_a_time(b: &Backend) {
    let a = b.open();
    let other = b.another(&a);
    let held = a.try_exclusive("sweeper").unwrap().expect("free at first");
    if b.shared {
        assert!(
            other.try_exclusive("sweeper").unwrap().is_none(),
            "held by a"
        );
        assert!(
            a.try_exclusive("sweeper").unwrap().is_none(),
            "a's other connections too"
        );
        let elsewhere = other.try_exclusive("another").unwrap();
        assert!(elsewhere.is_some(), "names are separate");
    }
    drop(held);
    // Let go on another thread: poll until it lands.
    let again = (0..100).find_map(|_| {
        let got = other.try_exclusive("sweeper").unwrap();
        if got.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        got
    });
    assert!(again.is_some(), "free again once dropped");
}
