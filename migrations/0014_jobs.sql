-- cos-scanner schema 14: moderation jobs of videos, voice notes and documents (reference 12).
-- A job's row is written in the one transaction that records its submission, as soon as its
-- JobId is known: a resumed scan asks about the stored JobId and never submits that object
-- again. The row keeps what the job was billed for (frames, seconds of sound, pages), read
-- from its final answer.
CREATE TABLE jobs (
    scan_id      INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    target       TEXT    NOT NULL,            -- the bucket's id (as in verdicts)
    kind         TEXT    NOT NULL,            -- video | audio | document
    job_id       TEXT    NOT NULL,
    etag         TEXT    NOT NULL,            -- the object submitted: another upload is a new job
    size         INTEGER NOT NULL,
    policy       TEXT    NOT NULL,            -- the options it was submitted with (fingerprint)
    submitted_at REAL    NOT NULL,
    state        TEXT    NOT NULL,            -- the last state seen; Success | Failed is final
    frames       INTEGER NOT NULL DEFAULT 0,
    seconds      REAL    NOT NULL DEFAULT 0,
    pages        INTEGER NOT NULL DEFAULT 0,
    maybe_double INTEGER NOT NULL DEFAULT 0,  -- submitted again after a lost answer
    finished_at  REAL,
    PRIMARY KEY (scan_id, key)
) WITHOUT ROWID;
CREATE INDEX jobs_by_content ON jobs (etag, size) WHERE state = 'Success';
