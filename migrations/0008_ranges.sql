-- cos-scanner schema 8: listing in key ranges ([cos] list_concurrency); images billed per UTC day.
--
-- Each range lists the keys k with after < k <= upto (upto NULL: to the end) from its own
-- marker, recorded with each page in the page's transaction, so every range resumes where it
-- stopped and no finished page is listed again. A scan without ranges uses scans.marker.

CREATE TABLE scan_ranges (
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    idx         INTEGER NOT NULL,
    after       TEXT    NOT NULL,            -- exclusive lower bound: the range's first marker
    upto        TEXT,                        -- inclusive upper bound; NULL = to the end
    marker      TEXT    NOT NULL,            -- where the range's listing goes on
    done        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scan_id, idx)
);

-- Images billed per UTC day ([scan] daily_cap): verdicts paid for (not copies' shared ones),
-- counted in the transaction that records them, whatever scan or target made them.
CREATE TABLE billed_days (
    day         TEXT    PRIMARY KEY,         -- YYYY-MM-DD, UTC
    images      INTEGER NOT NULL
);
