-- cos-scanner schema 5: the uploader of each object ([scan] user_from_key), for per-user reports.
ALTER TABLE verdicts ADD COLUMN user_id TEXT;
CREATE INDEX verdicts_by_user ON verdicts (target, user_id) WHERE user_id IS NOT NULL;
