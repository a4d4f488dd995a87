"""cos-scanner scan as a real subprocess against an emulator subprocess: kill -9, SIGINT,
leases. The store is a real SQLite file; nothing is mocked."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from scanner.emulator import EmulatorState, running, synthetic
from tests.helpers import (
    ENV,
    IN_FLIGHT,
    OBJECTS,
    SEED,
    assert_done_whole,
    db_rows,
    emulator_process,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan

pytestmark = pytest.mark.slow  # real subprocesses killed with real signals


@pytest.fixture
def emulator() -> Iterator[str]:
    with emulator_process(
        "--objects", str(OBJECTS), "--seed", str(SEED), "--latency", "0.04"
    ) as url:
        yield url


def uninterrupted_verdicts(tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    """The verdict set of a scan nobody interrupts (in-process emulator, same album)."""
    store = tmp_path / "clean.db"

    async def run() -> None:
        state = EmulatorState(bucket=synthetic(OBJECTS, SEED), seed=SEED)
        async with running(state) as url:
            cfg = write_config(tmp_path / "clean.toml", url, store, qps=200.0)
            proc = await anyio.run_process(
                [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)],
                env=ENV,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr

    anyio.run(run)
    return {
        r[0]: tuple(r[1:]) for r in db_rows(store, "SELECT key, result, label, score FROM verdicts")
    }


def test_sigkill_at_five_points_then_resume(emulator: str, tmp_path: Path) -> None:
    store = tmp_path / "scan.db"
    cfg = write_config(tmp_path / "c.toml", emulator, store)
    log = tmp_path / "scan.log"
    points: list[Callable[[dict[str, Any]], bool]] = [
        lambda s: s["requests"].get("list", 0) >= 1,  # during listing, before any audit
        lambda s: s["audited_images"] >= 400,
        lambda s: s["audited_images"] >= 1000,
        lambda s: s["audited_images"] >= 1600,
        lambda s: s["audited_images"] >= 2200,
    ]
    for point in points:
        proc = scan(cfg, log)
        wait_until(lambda p=point: p(stats(emulator)), proc)  # type: ignore[misc]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    proc = scan(cfg, log)
    assert proc.wait(timeout=120) == 0, log.read_text()

    assert_done_whole(store, OBJECTS)
    s = stats(emulator, detail=True)
    reaudited = sum(n - 1 for n in s["audits"].values())
    print(f"kills={len(points)} reaudited={reaudited} pages_listed_twice={s['pages_listed_twice']}")
    assert reaudited <= len(points) * IN_FLIGHT, reaudited  # I2: at most what was in flight
    assert s["pages_listed_twice"] <= len(points)  # only a page listed but not yet recorded
    stored = {
        r[0]: tuple(r[1:]) for r in db_rows(store, "SELECT key, result, label, score FROM verdicts")
    }
    assert stored == uninterrupted_verdicts(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_sigint_drains_exits_130_and_resumes(
    emulator: str, tmp_path: Path, signum: signal.Signals
) -> None:
    """The first SIGINT, SIGTERM or SIGHUP (a closed terminal; it killed the scan like
    kill -9 before) drains what is in flight and exits 130; the next run resumes."""
    store = tmp_path / "scan.db"
    cfg = write_config(tmp_path / "c.toml", emulator, store)
    log = tmp_path / "scan.log"
    proc = scan(cfg, log)
    wait_until(lambda: stats(emulator)["audited_images"] >= 300, proc)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 130, log.read_text()
    assert "draining in-flight batches" in log.read_text()
    assert db_rows(store, "SELECT state FROM scans") == [("interrupted",)]
    billed = set(stats(emulator, detail=True)["audits"])
    recorded = {r[0] for r in db_rows(store, "SELECT key FROM verdicts")}
    assert billed == recorded  # every in-flight batch was written before exiting
    proc = scan(cfg, log)
    assert proc.wait(timeout=120) == 0, log.read_text()
    s = stats(emulator)
    assert s["double_audited"] == 0
    assert db_rows(store, "SELECT state FROM scans") == [("done",)]


def test_second_scan_refuses_then_takes_over_a_dead_lease(emulator: str, tmp_path: Path) -> None:
    store = tmp_path / "scan.db"
    cfg = write_config(tmp_path / "c.toml", emulator, store)
    first = scan(cfg, tmp_path / "first.log")
    wait_until(lambda: stats(emulator)["audited_images"] >= 100, first)
    busy = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert busy.returncode == 75
    assert f"being scanned by pid {first.pid}" in busy.stderr
    assert busy.stderr.count("\n") == 1
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = scan(cfg, tmp_path / "second.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()
    assert db_rows(store, "SELECT state FROM scans") == [("done",)]
    assert db_rows(store, "SELECT COUNT(*) FROM leases") == [(0,)]
