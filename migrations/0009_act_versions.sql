-- cos-scanner schema 9: acting on object versions.

-- The version an act run wrote to (x-cos-version-id at its HEAD), on a bucket that keeps
-- versions: the copy is taken from it and exactly it is deleted, whatever was uploaded since.
ALTER TABLE journal ADD COLUMN version_id TEXT;
