-- cos-scanner schema 2: what nightly rescans compare against, and deletions.

-- The latest failure of each key of a target (removed when the key is audited).
CREATE TABLE failures (
    target        TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    etag          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    last_modified TEXT    NOT NULL,
    storage_class TEXT    NOT NULL,
    policy        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    retryable     INTEGER NOT NULL,            -- 1: a later scan tries again
    scan_id       INTEGER NOT NULL,
    failed_at     REAL    NOT NULL,
    deleted_scan  INTEGER,                     -- the scan that found the key gone
    PRIMARY KEY (target, key)
) WITHOUT ROWID;

-- Keys gone from the bucket are marked, not forgotten.
ALTER TABLE verdicts ADD COLUMN deleted_scan INTEGER;
ALTER TABLE scans ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
