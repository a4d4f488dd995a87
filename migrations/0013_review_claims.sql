-- cos-scanner schema 13: the cards a reviewer has on screen, held for them so that two
-- reviewers never get the same card; released on a decision, or when `expires_at` passes.
CREATE TABLE review_claims (
    target      TEXT    NOT NULL,            -- the verdicts' scope
    key         TEXT    NOT NULL,
    holder      TEXT    NOT NULL,            -- one page (a browser tab), random
    reviewer    TEXT    NOT NULL,
    expires_at  REAL    NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE INDEX review_claims_by_holder ON review_claims (holder);
