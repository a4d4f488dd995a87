-- cos-scanner schema 3: verdicts replaced by a re-audit are kept (report --history), and
-- images possibly billed twice are counted per scan.

CREATE TABLE verdict_history (
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
    raw           TEXT    NOT NULL,
    audited_at    REAL    NOT NULL,
    scan_id       INTEGER NOT NULL,
    replaced_at   REAL    NOT NULL             -- when a newer audit of the key replaced it
);
CREATE INDEX verdict_history_by_key ON verdict_history (target, key, audited_at);

-- Only a re-audit (a new audited_at) is history; marking a key deleted is not.
CREATE TRIGGER verdicts_keep_history BEFORE UPDATE OF audited_at ON verdicts
WHEN OLD.audited_at <> NEW.audited_at
BEGIN
    INSERT INTO verdict_history (target, key, etag, size, policy, result, label, score, category,
                                 sub_label, text, job_id, raw, audited_at, scan_id, replaced_at)
    VALUES (OLD.target, OLD.key, OLD.etag, OLD.size, OLD.policy, OLD.result, OLD.label,
            OLD.score, OLD.category, OLD.sub_label, OLD.text, OLD.job_id, OLD.raw,
            OLD.audited_at, OLD.scan_id, NEW.audited_at);
END;

-- Images possibly billed twice: resent after a lost answer, or re-audited by --retry-failed
-- after one (failure code timeout-maybe-billed).
ALTER TABLE scans ADD COLUMN maybe_double INTEGER NOT NULL DEFAULT 0;
