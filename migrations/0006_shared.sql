-- cos-scanner schema 6: a verdict belongs to the object, not to the scan target; copies share.
--
-- Verdicts, failures, their history and what `act` did were kept per target (bucket + prefix),
-- so a prefix scan re-bought what a full-bucket scan had audited. They now belong to the
-- bucket (the target id with no prefix: cos://<bucket>.<region>/). Where two targets of a
-- bucket held the same key, the newest row wins.

-- substr(t, 1, 6 + instr(substr(t, 7), '/')) is the bucket part of a target id t.
DELETE FROM verdicts WHERE (target, key) IN (
    SELECT target, key FROM (
        SELECT target, key, ROW_NUMBER() OVER (
            PARTITION BY substr(target, 1, 6 + instr(substr(target, 7), '/')), key
            ORDER BY audited_at DESC, target) AS n
        FROM verdicts)
    WHERE n > 1);
UPDATE verdicts SET target = substr(target, 1, 6 + instr(substr(target, 7), '/'))
WHERE target <> substr(target, 1, 6 + instr(substr(target, 7), '/'));

DELETE FROM failures WHERE (target, key) IN (
    SELECT target, key FROM (
        SELECT target, key, ROW_NUMBER() OVER (
            PARTITION BY substr(target, 1, 6 + instr(substr(target, 7), '/')), key
            ORDER BY failed_at DESC, target) AS n
        FROM failures)
    WHERE n > 1);
UPDATE failures SET target = substr(target, 1, 6 + instr(substr(target, 7), '/'))
WHERE target <> substr(target, 1, 6 + instr(substr(target, 7), '/'));
-- a failure older than the key's verdict (from the other target) is not the latest outcome
DELETE FROM failures WHERE EXISTS (
    SELECT 1 FROM verdicts v WHERE v.target = failures.target AND v.key = failures.key
      AND v.audited_at > failures.failed_at);

UPDATE verdict_history SET target = substr(target, 1, 6 + instr(substr(target, 7), '/'))
WHERE target <> substr(target, 1, 6 + instr(substr(target, 7), '/'));

DELETE FROM acted WHERE (target, key) IN (
    SELECT target, key FROM (
        SELECT target, key, ROW_NUMBER() OVER (
            PARTITION BY substr(target, 1, 6 + instr(substr(target, 7), '/')), key
            ORDER BY run_id DESC) AS n
        FROM acted)
    WHERE n > 1);
UPDATE acted SET target = substr(target, 1, 6 + instr(substr(target, 7), '/'))
WHERE target <> substr(target, 1, 6 + instr(substr(target, 7), '/'));

-- A copy's verdict names the key whose audit it shares (NULL: audited itself).
ALTER TABLE verdicts ADD COLUMN verdict_from TEXT;
ALTER TABLE verdict_history ADD COLUMN verdict_from TEXT;
-- Finding an audited object of some content, (ETag, size), within the bucket: only verdicts
-- of their own audit are donors, so copies (most rows, in an album of memes) stay out of it.
CREATE INDEX verdicts_by_content ON verdicts (target, etag, size) WHERE verdict_from IS NULL;

-- Images a scan recorded as audited without paying: copies, and keys another scan audited.
ALTER TABLE scans ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
-- A scan takes the bucket's verdicts made at or after this time (0: any; --force: its start).
ALTER TABLE scans ADD COLUMN reuse_since REAL NOT NULL DEFAULT 0;
-- A URL-list scan (target urls://<path>): the list's SHA-256, so a resume refuses a changed list.
ALTER TABLE scans ADD COLUMN source_digest TEXT NOT NULL DEFAULT '';

-- Keys a live scan has taken to audit (listed, not yet answered), so that a scan of an
-- overlapping target never sends the same key at the same time: it waits for the answer.
-- A claim whose owner holds no live lease is stale and taken over.
CREATE TABLE claims (
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    owner         TEXT    NOT NULL,            -- the lease owner (host:pid:nonce)
    claimed_at    REAL    NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX claims_by_owner ON claims (owner);

DROP TRIGGER verdicts_keep_history;
CREATE TRIGGER verdicts_keep_history BEFORE UPDATE OF audited_at ON verdicts
WHEN OLD.audited_at <> NEW.audited_at
BEGIN
    INSERT INTO verdict_history (target, key, etag, size, policy, result, label, score, category,
                                 sub_label, text, job_id, raw, audited_at, scan_id, replaced_at,
                                 verdict_from)
    VALUES (OLD.target, OLD.key, OLD.etag, OLD.size, OLD.policy, OLD.result, OLD.label,
            OLD.score, OLD.category, OLD.sub_label, OLD.text, OLD.job_id, OLD.raw,
            OLD.audited_at, OLD.scan_id, NEW.audited_at, OLD.verdict_from);
END;
