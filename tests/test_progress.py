"""The progress line at 60 and 200 columns (snapshots), and the live counters behind it."""

from __future__ import annotations

import pytest

from scanner.cli.progress import fit, scan_fields, scan_parts
from scanner.clock import MonotonicClock
from scanner.limiter import AuditBudget
from scanner.scan.progress import Progress


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress.rate reads the monotonic clock: 100 s after the start, always."""
    monkeypatch.setattr("scanner.scan.progress.time.monotonic", lambda: 1100.0)


def progress() -> Progress:
    p = Progress(
        listed=120_000, audited=98_765, flagged=2_345, review=3_456, failed=12, retrying=7,
        skipped=9_000, total=1_000_000, done_before=0, phase="scanning",
    )  # fmt: skip
    p.started = 1000.0  # 100 s ago: 987.65 images/s
    budget = AuditBudget(16, 20.0, MonotonicClock())
    budget.rate.throttled = 3
    p.budget = budget
    return p


def test_line_at_200_columns() -> None:
    line = fit(scan_parts(progress(), 5), 200)
    assert line == (
        "scanning: 10.8% | audited 98,765 | flagged 2,345 | failed 12 | 987.6 img/s | "
        "ETA 15m03s | throttled 3 | retrying 7 | listed 120,000 | billed 493,825 u | "
        "review 3,456 | skipped 9,000 | in-flight 0"
    )
    assert len(line) <= 200


def test_line_at_60_columns_keeps_the_most_useful_parts() -> None:
    line = fit(scan_parts(progress(), 5), 60)
    assert line == "scanning: 10.8% | audited 98,765 | flagged 2,345 | failed 12"
    assert len(line) <= 60


def test_no_percent_or_eta_until_the_size_is_known() -> None:
    p = progress()
    p.total = None
    line = fit(scan_parts(p, None), 200)
    assert "%" not in line
    assert "ETA" not in line
    assert "billed" not in line  # scenes unknown: no units
    assert scan_fields(p)["percent"] is None


def test_no_rate_from_nothing() -> None:
    p = Progress(phase="starting")
    assert fit(scan_parts(p, 1), 200).startswith(
        "starting: audited 0 | flagged 0 | failed 0 | - img/s"
    )
