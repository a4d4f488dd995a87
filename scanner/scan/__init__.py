"""The scan engine: a `ScanRequest` becomes one `ScanPlan` (`plan`), run by `runner` under the
target's lease (`scanner.lease`) through the pipeline's passes (`pipeline`: source -> batcher ->
auditors -> writer), listing key ranges at once (`ranges`), sharing copies' verdicts
(`copies`), skipping by rule (`filter`), auditing in worker processes (`workers`), within the
window and the daily cap (`quota`); `dryrun` asks the same decisions with counters."""
