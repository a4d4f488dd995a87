"""`status` tells the truth (issue 25, item 4): a killed scan is dead, not running; a start
time and a mode column; `status --json` and summary.json are one versioned scan record; and
a signal during the final summary still leaves summary.json (item 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from scanner.cli.commands import signals_deferred
from scanner.render import SCAN_RECORD_VERSION
from tests.helpers import ENV, emulator_process, stats, wait_until, write_config
from tests.helpers import scan_process as scan


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *argv], env=ENV,
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_a_killed_scan_is_dead_and_the_record_is_one_schema(tmp_path: Path) -> None:
    store, log = tmp_path / "s.db", tmp_path / "scan.log"
    with emulator_process("--objects", "3000", "--seed", "61", "--latency", "0.02") as url:
        cfg = write_config(tmp_path / "c.toml", url, store, concurrency=2, batch_size=20)
        proc = scan(cfg, log)
        wait_until(lambda: stats(url)["sent_images"] >= 200, proc)
        running = cli("status", "--config", str(cfg))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        dead = cli("status", "--config", str(cfg))
        dead_json = cli("status", "--config", str(cfg), "--json")
        assert scan(cfg, log).wait(timeout=120) in (0, 3), log.read_text()[-2000:]
        done = cli("status", "--config", str(cfg), "--json")
    head = running.stdout.splitlines()[0].split()
    assert head[:4] == ["scan", "state", "mode", "started"]
    assert running.stdout.splitlines()[1].split()[1:3] == ["running", "full"]
    assert dead.stdout.splitlines()[1].split()[1] == "dead"
    (note,) = [x for x in dead.stdout.splitlines() if x.startswith("scan 1: dead")]
    assert note.startswith("scan 1: dead (last heartbeat ")
    assert note.endswith(" ago; run scan to resume)")
    (record,) = json.loads(dead_json.stdout)
    assert record["state"] == "dead"
    assert record["heartbeat_at"] is not None
    (final,) = json.loads(done.stdout)
    summary = json.loads((tmp_path / "s.db.summary.json").read_text())
    assert final["schema_version"] == summary["schema_version"] == SCAN_RECORD_VERSION
    assert set(summary) - set(final) == {"outcome", "run_seconds"}  # what only a run knows
    assert set(final) <= set(summary)
    same = ("scan_id", "state", "mode", "audited", "flagged", "review", "review_queue")
    assert {k: final[k] for k in same} == {k: summary[k] for k in same}
    assert isinstance(summary["review"], int)  # Result 2 images, in both
    assert summary["review_queue"]["to_review"] >= 0


def test_a_signal_during_the_summary_waits_for_it() -> None:
    """The finishing writes run with SIGTERM and SIGINT noted, not acted on: a real signal
    to this process lands in the list, the body completes, then the old handlers are back."""
    before = signal.getsignal(signal.SIGTERM)
    finished = False
    with signals_deferred() as got:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        finished = True
    assert finished
    assert got == [signal.SIGTERM, signal.SIGHUP]
    assert signal.getsignal(signal.SIGTERM) == before
