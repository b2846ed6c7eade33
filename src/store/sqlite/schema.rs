//! The schema, built by numbered migrations (`PRAGMA user_version` records the last one run).

use crate::store::StoreError;
use rusqlite::Connection;

pub(super) const MIGRATIONS: [&str; 10] = [
    // 1: items
    "CREATE TABLE items (
        name          TEXT PRIMARY KEY NOT NULL,
        filename      TEXT NOT NULL,
        content_type  TEXT NOT NULL,
        size          INTEGER NOT NULL,
        sha256        TEXT NOT NULL,
        state         TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        completed_at  INTEGER,
        expires_at    INTEGER,
        downloaded_at INTEGER,
        locked        INTEGER NOT NULL DEFAULT 0,
        uploader      TEXT NOT NULL,
        client_ip     TEXT NOT NULL,
        user_agent    TEXT NOT NULL,
        reference     TEXT,
        comment       TEXT,
        deleted_at    INTEGER,
        deleted_by    TEXT
    );
    CREATE INDEX items_live_newest ON items (created_at DESC) WHERE deleted_at IS NULL;
    CREATE INDEX items_live_expiry ON items (expires_at) WHERE deleted_at IS NULL AND expires_at IS NOT NULL;",
    // 2: resumable REST uploads. Only a SHA-256 of the transaction token is stored.
    "ALTER TABLE items ADD COLUMN tx_hash TEXT;
    ALTER TABLE items ADD COLUMN total INTEGER;
    ALTER TABLE items ADD COLUMN updated_at INTEGER;
    CREATE UNIQUE INDEX items_tx ON items (tx_hash) WHERE tx_hash IS NOT NULL;
    CREATE INDEX items_incomplete ON items (updated_at) WHERE deleted_at IS NULL AND state = 'incomplete';",
    // 3: deliveries (batches of items from one uploader) and their alerts, the outbox.
    "CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        batch_key       TEXT NOT NULL,
        uploader        TEXT NOT NULL,
        client_ip       TEXT NOT NULL,
        user_agent      TEXT NOT NULL,
        reference       TEXT,
        opened_at       INTEGER NOT NULL,
        due_at          INTEGER NOT NULL,
        closed_at       INTEGER
    );
    CREATE INDEX deliveries_open ON deliveries (batch_key, due_at) WHERE closed_at IS NULL;
    ALTER TABLE items ADD COLUMN delivery_id INTEGER REFERENCES deliveries (id);
    CREATE INDEX items_delivery ON items (delivery_id);
    CREATE TABLE alerts (
        delivery_id     INTEGER NOT NULL REFERENCES deliveries (id),
        channel         TEXT NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        delivered_at    INTEGER,
        PRIMARY KEY (delivery_id, channel)
    );
    CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE state IN ('pending', 'failing');",
    // 4: the audit trail (src/audit), hash-chained. AUTOINCREMENT keeps the highest id ever
    // used in sqlite_sequence, so a removal of the newest records shows; the triggers keep sfx
    // itself from ever changing a record.
    "CREATE TABLE audit (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        time      TEXT NOT NULL,
        kind      TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        label     TEXT NOT NULL,
        item      TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE INDEX audit_item ON audit (item, id);
    CREATE INDEX audit_label ON audit (label, id);
    CREATE INDEX audit_kind ON audit (kind, id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;",
    // 5: per-case upload links (src/links). Only a SHA-256 of a link's token is stored;
    // `notify` is a comma-separated list of e-mail addresses.
    "CREATE TABLE links (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash  TEXT NOT NULL UNIQUE,
        reference   TEXT NOT NULL,
        note        TEXT,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        expires_at  INTEGER,
        max_size    INTEGER,
        max_files   INTEGER,
        notify      TEXT NOT NULL DEFAULT '',
        revoked_at  INTEGER,
        revoked_by  TEXT
    );
    ALTER TABLE items ADD COLUMN link_id INTEGER REFERENCES links (id);
    CREATE INDEX items_link ON items (link_id, created_at) WHERE link_id IS NOT NULL;",
    // 6: antivirus (src/scan): `scan` is NULL without antivirus, else scanning, clean,
    // infected or not_scanned; `scan_detail` the signature or the reason.
    "ALTER TABLE items ADD COLUMN scan TEXT;
    ALTER TABLE items ADD COLUMN scan_detail TEXT;
    CREATE INDEX items_scanning ON items (completed_at) WHERE scan = 'scanning' AND deleted_at IS NULL;",
    // 7: the console's searches and orders (src/store/sqlite/listing.rs): each filter that
    // can be a range, and each order, has an index over the live items.
    // items_live_time: (created_at, rowid) ascending, so that the newest-first order with its
    // rowid tie-break is one backward scan (items_live_newest's DESC key left the tie-break
    // to a sort: 53 ms for the last of 2000 pages, 100k items).
    // items_public_time: the same for what non-admins may see; its WHERE repeats the listing's
    // NOT_FOR_ALL term word for word, which is what lets SQLite use it (50 ms -> see
    // bench/README.md for a deep page as a non-admin).
    "CREATE INDEX items_live_time ON items (created_at) WHERE deleted_at IS NULL;
    CREATE INDEX items_public_time ON items (created_at)
        WHERE deleted_at IS NULL AND NOT (locked = 1 OR coalesce(scan = 'infected', 0));
    CREATE INDEX items_live_size ON items (size) WHERE deleted_at IS NULL;
    CREATE INDEX items_live_filename ON items (filename COLLATE NOCASE) WHERE deleted_at IS NULL;
    CREATE INDEX items_live_sha256 ON items (sha256) WHERE deleted_at IS NULL;
    CREATE INDEX items_live_client ON items (client_ip, created_at) WHERE deleted_at IS NULL;
    CREATE INDEX items_live_uploader ON items (uploader, created_at) WHERE deleted_at IS NULL;",
    // 8: the ledger of uploads into an object store (src/store/ledger.rs).
    LEDGER,
    // 9: keys every instance sharing the store must agree on (the session-signing key).
    "CREATE TABLE shared_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);",
    // 10: the console's text searches (filename, reference) through a trigram index instead of
    // a LIKE scan of every item (100k items: 49 ms -> see bench/README.md).
    TEXT_INDEX,
];

/// Migration 10: an FTS5 trigram index over the items' filename and reference, kept by
/// triggers (an external-content table: the text is stored once, in `items`).
const TEXT_INDEX: &str = "CREATE VIRTUAL TABLE items_text USING fts5(
        filename, reference, content = 'items', content_rowid = 'rowid',
        tokenize = 'trigram case_sensitive 0'
    );
    INSERT INTO items_text (items_text) VALUES ('rebuild');
    CREATE TRIGGER items_text_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_text (rowid, filename, reference)
            VALUES (new.rowid, new.filename, new.reference);
    END;
    CREATE TRIGGER items_text_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_text (items_text, rowid, filename, reference)
            VALUES ('delete', old.rowid, old.filename, old.reference);
    END;
    CREATE TRIGGER items_text_update AFTER UPDATE OF filename, reference ON items BEGIN
        INSERT INTO items_text (items_text, rowid, filename, reference)
            VALUES ('delete', old.rowid, old.filename, old.reference);
        INSERT INTO items_text (rowid, filename, reference)
            VALUES (new.rowid, new.filename, new.reference);
    END;";

/// Migration 8, the same on PostgreSQL but for its types.
const LEDGER: &str = "CREATE TABLE blob_uploads (
        key         TEXT PRIMARY KEY,
        upload_id   TEXT,
        resumable   INTEGER NOT NULL,
        published   INTEGER NOT NULL DEFAULT 0,
        owner       TEXT,
        lease_until INTEGER,
        touched_at  INTEGER NOT NULL
    );
    CREATE INDEX blob_uploads_touched ON blob_uploads (touched_at);
    CREATE TABLE blob_parts (
        key    TEXT NOT NULL REFERENCES blob_uploads (key) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        etag   TEXT NOT NULL,
        PRIMARY KEY (key, number)
    );
    CREATE TABLE blob_tails (
        key   TEXT NOT NULL REFERENCES blob_uploads (key) ON DELETE CASCADE,
        start INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (key, start)
    );
    CREATE TABLE blob_points (
        key  TEXT NOT NULL REFERENCES blob_uploads (key) ON DELETE CASCADE,
        at   INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (key, at)
    );";

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: the write lock before the version is read, so that processes opening a new
    // database at once take turns, and the second finds the schema made.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than this sfx understands ({known})"
        )));
    }
    if version < known {
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", known)?;
    }
    tx.commit()?;
    Ok(())
}
