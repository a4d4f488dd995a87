-- cos-scanner schema 4: auto-freeze results, and the journal of actions on objects (act).

-- What the service reported for auto-freeze at audit time (ForbidState), as reported.
ALTER TABLE verdicts ADD COLUMN forbid_state INTEGER;
ALTER TABLE scans ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;

-- One row per `act` run: what it does, to which selection, how it ended.
CREATE TABLE act_runs (
    id            INTEGER PRIMARY KEY,
    target        TEXT    NOT NULL,            -- the scanned target whose verdicts were selected
    action        TEXT    NOT NULL,            -- private | quarantine | delete | restore
    params        TEXT    NOT NULL,            -- JSON: the filters, the quarantine location
    undoes        INTEGER,                     -- restore: the run it undoes
    state         TEXT    NOT NULL,            -- running | interrupted | failed | done
    selected      INTEGER NOT NULL DEFAULT 0,
    started_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL,
    finished_at   REAL
);

-- One row per object per run: written before its request is sent and after the answer.
CREATE TABLE journal (
    run_id        INTEGER NOT NULL REFERENCES act_runs (id),
    key           TEXT    NOT NULL,
    etag          TEXT    NOT NULL,            -- the audited ETag (the object must still have it)
    size          INTEGER NOT NULL,
    state         TEXT    NOT NULL,            -- pending | intent | copied | done | failed | skipped
    reason        TEXT,                        -- skip reason or failure code
    message       TEXT,
    prior_acl     TEXT,                        -- private/quarantine: the ACL to put back
    location      TEXT,                        -- quarantine: bucket/key of the copy
    undo_action   TEXT,                        -- restore: the action it undoes on this object
    updated_at    REAL    NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX journal_by_state ON journal (run_id, state, key);
CREATE INDEX journal_by_key ON journal (key, state);

-- What is in effect now per object: the last completed action (a restore removes its row), so a
-- second identical act run selects nothing and an object is never acted on twice.
CREATE TABLE acted (
    target        TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    run_id        INTEGER NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
