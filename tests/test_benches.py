"""Benches that cannot rot: every script in bench/ runs at its `--smoke` size against today's
code (seconds each; its figures are not checked: they are measured by hand, at full size)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ENV

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "common.py")


def test_every_bench_script_has_a_smoke_size() -> None:
    assert SCRIPTS
    assert [s for s in SCRIPTS if "--smoke" not in (BENCH / s).read_text()] == []


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_the_smoke_size_runs(script: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        env=ENV, cwd=BENCH.parent, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.strip(), "a bench prints its figures"
