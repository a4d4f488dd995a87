-- cos-scanner schema 12: wrong verdicts told to the service (CI POST /report/badcase).
-- One row per object version and what the reviewer said it is: sent once, retried until then.
CREATE TABLE badcases (
    target          TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    etag            TEXT    NOT NULL,
    label           TEXT    NOT NULL,            -- the service's label
    suggested_label TEXT    NOT NULL,            -- Normal (an approve) or the reviewer's label
    job_id          TEXT    NOT NULL DEFAULT '',
    moderated_at    REAL,                        -- the verdict's audit time
    reviewer        TEXT    NOT NULL,
    queued_at       REAL    NOT NULL,
    state           TEXT    NOT NULL,            -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         REAL    NOT NULL,            -- pending: not before
    error           TEXT,
    request_id      TEXT,
    sent_at         REAL,
    PRIMARY KEY (target, key, etag, suggested_label)
) WITHOUT ROWID;
CREATE INDEX badcases_due ON badcases (next_at) WHERE state = 'pending';
