-- How each run of a scan ended, for monitoring: the last run's exit code and end time are in
-- every metrics file (a failed nightly must say so, not leave the last success's file).
ALTER TABLE scans ADD COLUMN exit_code INTEGER;
ALTER TABLE scans ADD COLUMN run_ended_at REAL;
