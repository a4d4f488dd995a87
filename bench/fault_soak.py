"""A long scan under mixed faults: I1 exact, and every image billed twice counted.

The emulator serves `--objects` objects with 5xx answers, connection resets, truncated
(billed, then lost) answers, stalls past the client's timeout, malformed listing pages and
audit answers, per-image failures, and a QPS cap well under the scanner's `qps` (so it is
throttled all along and learns the quota). The cap is chosen so the scan takes about
`--minutes`. At the end: the store's accounting (listed = audited + failed + skipped, from the
counters and from the rows), the emulator's double bills against the scan's `maybe_double`,
and the failures by reason.

    .venv/bin/python bench/fault_soak.py --objects 200000 --minutes 30

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ENV, machine, parse, start_emulator, stats, write_config

FAULTS = {
    "error_rate": 0.04,
    "reset_rate": 0.02,
    "truncate_rate": 0.01,
    "stall_rate": 0.01,
    "stall": 4.0,
    "malformed_rate": 0.01,
    "image_failure_rate": 0.005,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--minutes", type=float, default=30.0)
    args = parse(ap, objects=1500, minutes=0.1)
    print(machine())
    images = args.objects * 0.88  # the synthetic album's share of auditable images
    cap = max(0.2, images / 100 / (args.minutes * 60) * 1.15)  # retries and faults cost time
    faults = {**FAULTS, "qps_cap": round(cap, 2)}
    print(f"{args.objects:,} objects, ~{args.minutes:g} min; emulator faults {faults}")
    proc, url = start_emulator(args.objects, 0.02, 3)
    req = urllib.request.Request(url + "/_emulator/faults", json.dumps(faults).encode(),
                                 method="POST")  # fmt: skip
    urllib.request.urlopen(req, timeout=10).close()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "soak.db"
        cfg = write_config(Path(tmp) / "c.toml", url, store, qps=cap * 4, concurrency=8,
                           timeout=2.0)  # fmt: skip
        cfg.write_text(cfg.read_text().replace("[cos]\n", "[cos]\ntimeout = 2.0\n")
                       + "[retry]\nattempts = 8\nwait_max = 5.0\n")  # fmt: skip
        started = time.monotonic()
        argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, check=False)
        took = time.monotonic() - started
        s = stats(url)
        proc.kill()
        print(f"scan exited {done.returncode} after {took / 60:.1f} min")
        print("\n".join(done.stdout.splitlines()[-14:]))
        check(store, s)


def check(store: Path, s: dict[str, Any]) -> None:
    with sqlite3.connect(store) as db:
        state, listed, audited, failed, skipped, maybe = db.execute(
            "SELECT state, listed, audited, failed, skipped, maybe_double FROM scans"
        ).fetchone()
        rows = dict(db.execute("SELECT state, COUNT(*) FROM scan_objects GROUP BY state"))
        reasons = dict(db.execute("SELECT code, COUNT(*) FROM failures GROUP BY code"))
    i1 = listed == audited + failed + skipped
    by_rows = rows.get("audited", 0) == audited and rows.get("failed", 0) == failed
    print(f"\nstate {state}: listed {listed:,} = audited {audited:,} + failed {failed:,} + "
          f"skipped {skipped:,}: {'yes' if i1 else 'NO'}")  # fmt: skip
    print(f"rows by state {rows}: match the counters: {'yes' if by_rows else 'NO'}")
    print(f"failures by reason: {reasons}")
    explained = "explained" if s["double_audited"] <= maybe else "NOT EXPLAINED"
    print(
        f"emulator: {s['audited_images']:,} billed images, {s['double_audited']:,} keys billed "
        f"twice; the scan counted {maybe:,} images possibly billed twice: {explained}"
    )
    print(f"faults injected: {s['faults']}")


if __name__ == "__main__":
    main()
