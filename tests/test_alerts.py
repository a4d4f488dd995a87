"""The shipped alert rules (issue 26, item 3), checked by Prometheus' own `promtool`: they
parse, and `rules.test.yml` proves they fire for a nightly failed with a wrong key, no nightly
for 26 h and a throttle storm, and stay silent for a healthy week. Skipped in one line where
promtool is missing (Debian: apt-get install prometheus), unless PROMTOOL_REQUIRED=1 (CI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools import required_tool

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def promtool() -> str:
    reason = "alert rule tests skipped: no promtool (apt-get install prometheus)"
    return required_tool(shutil.which("promtool"), reason, "PROMTOOL_REQUIRED")


@pytest.mark.parametrize("verb", [["check", "rules", "rules.yml"],
                                  ["test", "rules", "rules.test.yml"]])  # fmt: skip
def test_promtool(verb: list[str]) -> None:
    done = subprocess.run([promtool(), *verb], cwd=RULES, capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_name_only_metrics_the_scanner_writes() -> None:
    """Every metric an alert reads is one `cos_scanner_*` writes (a renamed metric would
    leave an alert that never fires)."""
    import re

    from prometheus_client.parser import text_string_to_metric_families

    from scanner.config import AuditSettings
    from scanner.metrics import ScanMetrics

    metrics = ScanMetrics("cos://b.ap-guangzhou/", AuditSettings(billed_scenes=3, unit_price=1.0))
    metrics.refresh({"listed": 1, "audited": 1, "flagged": 0, "review": 0, "failed": 0,
                     "skipped": 0, "shared": 0, "maybe_double": 0, "requests": 1, "billed": 1,
                     "last_success": 1.0, "last_exit_code": 0, "last_run_end": 2.0,
                     "review_queue": 0, "review_oldest_seconds": 0.0})  # fmt: skip
    from prometheus_client import generate_latest

    written = {
        s.name
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in f.samples
    }
    used = set(re.findall(r"cos_scanner_[a-z_]+", (RULES / "rules.yml").read_text()))
    assert used <= written, used - written
