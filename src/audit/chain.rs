//! The hash chain: the canonical form of a record that is hashed, sealing a new record onto the
//! chain, and verifying a stored chain from its first record.
//!
//! `hash = SHA-256(prev_hash || canonical)`, where `prev_hash` is the previous record's hash
//! as 64 lower-case hex characters ([`GENESIS`] for the first record) and `canonical` is
//! `sfx-audit-v1` followed by each of id (decimal), time, kind, outcome, client_ip, label, item
//! and detail as an 8-byte big-endian length and the UTF-8 bytes. Length prefixes make the form
//! unambiguous whatever the fields contain; the id in it means a record cannot be moved.

use super::{AuditEvent, AuditRecord, clean};
use crate::store::{AuditStore, StoreError};
use sha2::{Digest, Sha256};

/// The `prev_hash` of record 1.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const TAG: &[u8] = b"sfx-audit-v1";
const MAX_FIELD: usize = 300;
const MAX_DETAIL: usize = 1000;

/// The bytes that are hashed (after `prev_hash`).
pub fn canonical(r: &AuditRecord) -> Vec<u8> {
    let id = r.id.to_string();
    let fields = [
        id.as_str(),
        &r.time,
        &r.kind,
        &r.outcome,
        &r.client_ip,
        &r.label,
        &r.item,
        &r.detail,
    ];
    let mut out = Vec::with_capacity(TAG.len() + fields.iter().map(|f| 8 + f.len()).sum::<usize>());
    out.extend_from_slice(TAG);
    for f in fields {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// What `r.hash` must be.
pub fn record_hash(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(r.prev_hash.as_bytes());
    h.update(canonical(r));
    hex::encode(h.finalize())
}

/// The record `id` made of `event` at `time`, chained after `prev_hash`.
pub fn seal(id: i64, time: &str, event: &AuditEvent, prev_hash: &str) -> AuditRecord {
    let mut r = AuditRecord {
        id,
        time: time.to_string(),
        kind: event.kind.as_str().to_string(),
        outcome: event.outcome.as_str().to_string(),
        client_ip: clean(&event.client_ip, MAX_FIELD),
        label: clean(&event.label, MAX_FIELD),
        item: clean(&event.item, MAX_FIELD),
        detail: clean(&event.detail, MAX_DETAIL),
        prev_hash: prev_hash.to_string(),
        hash: String::new(),
    };
    r.hash = record_hash(&r);
    r
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record chains to the one before; `last` is the newest record's id and hash (note
    /// it somewhere else to detect a later rewrite of the whole chain).
    Intact {
        records: u64,
        last: Option<(i64, String)>,
    },
    /// The first record (by id) where the chain breaks, and how.
    Broken { id: i64, reason: String },
}

/// Follows the chain record by record.
struct Walk {
    next_id: i64,
    prev_hash: String,
    records: u64,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            next_id: 1,
            prev_hash: GENESIS.to_string(),
            records: 0,
        }
    }

    fn check(&mut self, r: &AuditRecord) -> Result<(), String> {
        if r.id != self.next_id {
            return Err(match r.id - self.next_id {
                1 => format!("record {} is missing", self.next_id),
                _ => format!("records {} to {} are missing", self.next_id, r.id - 1),
            });
        }
        if r.prev_hash != self.prev_hash {
            return Err(match r.id {
                1 => "it is the first record but does not start the chain".to_string(),
                id => format!("its prev_hash is not the hash of record {}", id - 1),
            });
        }
        if record_hash(r) != r.hash {
            return Err("its contents do not match its hash (edited or moved)".to_string());
        }
        self.next_id += 1;
        self.prev_hash = r.hash.clone();
        self.records += 1;
        Ok(())
    }
}

const PAGE: usize = 1000;

/// Walks every stored record from the first, in pages (works while the server appends).
/// Also compares the newest record with the highest id the store ever handed out, which
/// catches a naive removal of the newest records.
pub fn verify(store: &dyn AuditStore) -> Result<Verdict, StoreError> {
    // Read before walking: records appended meanwhile only raise it.
    let high_water = store.audit_high_water()?;
    let mut walk = Walk::new();
    let mut last: Option<(i64, String)> = None;
    loop {
        let after = last.as_ref().map_or(0, |(id, _)| *id);
        let page = store.audit_after(after, PAGE)?;
        for r in &page {
            if let Err(reason) = walk.check(r) {
                return Ok(Verdict::Broken { id: r.id, reason });
            }
            last = Some((r.id, r.hash.clone()));
        }
        if page.len() < PAGE {
            break;
        }
    }
    let newest = last.as_ref().map_or(0, |(id, _)| *id);
    if high_water > newest {
        return Ok(Verdict::Broken {
            id: newest + 1,
            reason: format!(
                "the newest records are missing: the trail ends at {newest} but ids up to {high_water} were used"
            ),
        });
    }
    Ok(Verdict::Intact {
        records: walk.records,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Kind;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let ev = AuditEvent::new(Kind::Download, "192.0.2.1", "support-team")
                    .item("4qVsTtL9")
                    .detail(format!("download {id}"));
                let r = seal(id, "2026-11-26T03:41:08.123Z", &ev, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn first_break(records: &[AuditRecord]) -> Option<(i64, String)> {
        let mut walk = Walk::new();
        records
            .iter()
            .find_map(|r| walk.check(r).err().map(|e| (r.id, e)))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(first_break(&chain(5)), None);
    }

    #[test]
    fn an_edited_field_breaks_at_that_record() {
        for edit in [
            |r: &mut AuditRecord| r.label = "someone-else".into(),
            |r: &mut AuditRecord| r.time = "2026-11-26T03:41:09.123Z".into(),
            |r: &mut AuditRecord| r.outcome = "denied".into(),
            |r: &mut AuditRecord| r.detail.push('!'),
        ] {
            let mut c = chain(5);
            edit(&mut c[2]);
            assert_eq!(first_break(&c).unwrap().0, 3);
        }
    }

    #[test]
    fn a_rehashed_edit_breaks_at_the_next_record() {
        let mut c = chain(5);
        c[2].item = "xxxxxxxx".into();
        c[2].hash = record_hash(&c[2]);
        let (id, why) = first_break(&c).unwrap();
        assert_eq!(id, 4);
        assert!(why.contains("prev_hash"), "{why}");
    }

    #[test]
    fn a_removed_record_breaks_at_the_one_after() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(first_break(&c).unwrap(), (4, "record 3 is missing".into()));
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(first_break(&c).unwrap(), (2, "record 1 is missing".into()));
    }

    #[test]
    fn swapped_records_break() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(first_break(&c).unwrap().0, 3, "ids out of sequence");
        // The same, with the ids swapped back so the sequence looks right.
        let mut c = chain(5);
        c.swap(1, 2);
        c[1].id = 2;
        c[2].id = 3;
        assert_eq!(first_break(&c).unwrap().0, 2);
    }

    #[test]
    fn canonical_form_is_unambiguous() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.label = "ab".into();
        a.item = "c".into();
        b.label = "a".into();
        b.item = "bc".into();
        assert_ne!(canonical(&a), canonical(&b));
    }

    #[test]
    fn fields_are_one_bounded_line() {
        let ev = AuditEvent::new(Kind::Modify, "192.0.2.1", "ops\nkind=lock")
            .detail("x".repeat(5000) + "\r\n");
        let r = seal(1, "t", &ev, GENESIS);
        assert_eq!(r.label, "opskind=lock");
        assert_eq!(r.detail.len(), MAX_DETAIL);
        assert_eq!(r.hash, record_hash(&r));
    }
}
