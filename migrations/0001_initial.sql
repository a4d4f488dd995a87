-- cos-scanner schema 1: scans, their per-object checkpoints, the latest verdict per key, leases.

-- One row per scan of a target (bucket + region + prefix).
CREATE TABLE scans (
    id            INTEGER PRIMARY KEY,
    target        TEXT    NOT NULL,            -- cos://<bucket>.<region>/<prefix>
    bucket        TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    prefix        TEXT    NOT NULL,
    mode          TEXT    NOT NULL DEFAULT 'full',   -- full | incremental | retry-failed
    policy        TEXT    NOT NULL,            -- fingerprint of BizType, DetectType, input options
    state         TEXT    NOT NULL,            -- running | paused | interrupted | failed | done
    marker        TEXT    NOT NULL DEFAULT '', -- where listing goes on
    listing_done  INTEGER NOT NULL DEFAULT 0,
    listed        INTEGER NOT NULL DEFAULT 0,  -- counters, kept in the same transactions as rows
    audited       INTEGER NOT NULL DEFAULT 0,
    flagged       INTEGER NOT NULL DEFAULT 0,  -- Result 1
    review        INTEGER NOT NULL DEFAULT 0,  -- Result 2
    failed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,  -- audit requests answered
    error         TEXT,
    started_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL,
    finished_at   REAL,
    run_started_at REAL,                       -- this run (a resume starts a new run)
    run_audited   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scans_by_target ON scans (target, id);

-- Every listed object of a scan, in exactly one state.
CREATE TABLE scan_objects (
    scan_id       INTEGER NOT NULL REFERENCES scans (id),
    key           TEXT    NOT NULL,
    etag          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    last_modified TEXT    NOT NULL,
    storage_class TEXT    NOT NULL,
    state         TEXT    NOT NULL,            -- pending | audited | failed | skipped
    reason        TEXT,                        -- skip reason, or failure code
    message       TEXT,                        -- failure message
    attempts      INTEGER NOT NULL DEFAULT 0,  -- audit attempts answered for this object
    PRIMARY KEY (scan_id, key)
) WITHOUT ROWID;
CREATE INDEX scan_objects_by_state ON scan_objects (scan_id, state, key);

-- The latest verdict of each key of a target (upserted: re-auditing is idempotent).
CREATE TABLE verdicts (
    target        TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    etag          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    policy        TEXT    NOT NULL,
    result        INTEGER NOT NULL,
    label         TEXT    NOT NULL,
    score         INTEGER NOT NULL,
    category      TEXT    NOT NULL,
    sub_label     TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    job_id        TEXT    NOT NULL,
    raw           TEXT    NOT NULL,            -- the JobsDetail element as received (XML)
    audited_at    REAL    NOT NULL,
    scan_id       INTEGER NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE INDEX verdicts_by_result ON verdicts (target, result, label);

-- One live scan per target: the holder's identity and heartbeat.
CREATE TABLE leases (
    target        TEXT    PRIMARY KEY,
    owner         TEXT    NOT NULL,            -- host:pid:nonce
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    acquired_at   REAL    NOT NULL,
    heartbeat_at  REAL    NOT NULL
);
