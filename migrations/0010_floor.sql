-- cos-scanner schema 10: back to the floor (what every image costs the scan's writer).

-- Claims live in the scan's memory while it is the only live scan of its bucket; a scan
-- writes them here (and sets `published`) as soon as it sees another live scan of the
-- bucket, and another scan waits for that before it sends anything (store/sharing.py).
ALTER TABLE leases ADD COLUMN published INTEGER NOT NULL DEFAULT 1;

-- The review queue shows flagged verdicts (Result 1 and 2, 12 % of a typical bucket): its
-- index holds only those. Indexing every normal image too rewrote a page of it per verdict
-- at ~100 places per commit (one per score) for a queue that rarely shows them.
DROP INDEX verdicts_queue;
CREATE INDEX verdicts_queue ON verdicts (target, result, score DESC, key) WHERE result > 0;

-- Likewise verdicts by result and label: what reports, the labels' counts and the review
-- filters look up by label are the flagged ones; the normal ones are read in key order.
DROP INDEX verdicts_by_result;
CREATE INDEX verdicts_by_result ON verdicts (target, result, label) WHERE result > 0;
