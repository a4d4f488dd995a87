-- cos-scanner schema 7: review decisions (a person's approve / block / skip on a verdict).
--
-- Every decision is logged (history kept); `decisions` holds the latest per key, written in
-- the same transaction. A decision belongs to the ETag of the verdict it was made on: when
-- the object changes, the key is undecided again (queries join on the ETag).

CREATE TABLE decision_log (
    id          INTEGER PRIMARY KEY,
    target      TEXT    NOT NULL,            -- the bucket (or URL list), as verdicts.target
    key         TEXT    NOT NULL,
    etag        TEXT    NOT NULL,            -- the ETag of the verdict it was made on
    decision    TEXT    NOT NULL,            -- approve | block | skip | undecided (undone)
    reviewer    TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    decided_at  REAL    NOT NULL
);
CREATE INDEX decision_log_by_key ON decision_log (target, key, id);

CREATE TABLE decisions (
    target      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    etag        TEXT    NOT NULL,
    decision    TEXT    NOT NULL,            -- approve | block | skip
    reviewer    TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    decided_at  REAL    NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE INDEX decisions_by_decision ON decisions (target, decision);

-- A decision on one copy can be applied to every copy of that content: the copies of an audited
-- key are the verdicts whose verdict_from names it.
CREATE INDEX verdicts_by_source ON verdicts (target, verdict_from) WHERE verdict_from IS NOT NULL;

-- The review queue pages by (result, score, key) within a target: one index walk per page.
CREATE INDEX verdicts_queue ON verdicts (target, result, score DESC, key);
