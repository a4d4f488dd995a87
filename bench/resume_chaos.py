"""Resume chaos: SIGKILL one scan at 20 random instants, resume each time, then compare.

Reports re-audited images per kill (target <= concurrency x batch size), pages listed twice,
split into finished pages listed again (target 0: the page's next marker was committed) and
the page in flight at a stop (listed but not yet recorded, so listed again on resume), and
whether the final verdicts equal an uninterrupted scan of the same album.

    .venv/bin/python bench/resume_chaos.py --kills 20

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, machine, parse, start_emulator, stats, write_config


def reaudited(url: str) -> int:
    audits: dict[str, int] = stats(url, detail=True)["audits"]
    return sum(n - 1 for n in audits.values())


def config(
    tmp: Path, name: str, url: str, concurrency: int, batch: int, qps: float = 200.0
) -> Path:
    return write_config(
        tmp / f"{name}.toml",
        url,
        tmp / f"{name}.db",
        concurrency=concurrency,
        batch_size=batch,
        qps=qps,
    )


def committed_marker(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT marker FROM scans ORDER BY id DESC LIMIT 1").fetchone()
    return str(row[0]) if row else ""


def verdicts(db: Path) -> dict[str, tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, result, label, score FROM verdicts").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def scan(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--objects", type=int, default=60_000)
    ap.add_argument("--qps", type=float, default=20.0, help="slow enough for 20 kills")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = parse(ap, kills=1, objects=6000)
    print(machine())
    rng = random.Random(args.seed)
    bound = args.concurrency * args.batch_size
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        emulator, url = start_emulator(args.objects, 0.02, 5)
        try:
            cfg = config(tmp, "chaos", url, args.concurrency, args.batch_size, args.qps)
            per_kill = []
            resume_points = {""}  # markers a run resumed from: the page there was in flight
            for _ in range(args.kills):
                before = reaudited(url)
                proc = scan(cfg)
                time.sleep(rng.uniform(0.8, 2.5))
                if proc.poll() is not None:
                    print("the scan finished before all kills; use more --objects")
                    break
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                resume_points.add(committed_marker(tmp / "chaos.db"))
                resumed = scan(cfg)  # the resume re-audits what the kill left in flight
                time.sleep(1.0)
                resumed.send_signal(signal.SIGINT)
                resumed.wait()
                resume_points.add(committed_marker(tmp / "chaos.db"))
                per_kill.append(reaudited(url) - before)
            final = scan(cfg)
            assert final.wait() == 0, "final run failed"
            s = stats(url, detail=True)
        finally:
            emulator.kill()
            emulator.wait()
        clean_emulator, clean_url = start_emulator(args.objects, 0.0, 5)
        try:
            clean = config(tmp, "clean", clean_url, args.concurrency, args.batch_size)
            assert scan(clean).wait() == 0
        finally:
            clean_emulator.kill()
            clean_emulator.wait()
        same = verdicts(tmp / "chaos.db") == verdicts(tmp / "clean.db")
    print(
        f"{len(per_kill)} kills of a {args.objects:,}-object scan (concurrency "
        f"{args.concurrency} x batch {args.batch_size} = {bound} in flight at most)"
    )
    print(
        f"re-audited images per kill: max {max(per_kill)}, mean "
        f"{sum(per_kill) / len(per_kill):.1f} (target <= {bound}); "
        f"{sum(1 for n in per_kill if n > bound)} over the target"
    )
    markers: dict[str, int] = s["list_markers"]
    relisted = [m for m, n in markers.items() if n > 1]
    finished = [m for m in relisted if m not in resume_points]
    in_flight = len(relisted) - len(finished)
    print(
        f"pages listed: {s['pages_listed']}, listed twice: {len(relisted)}: finished pages "
        f"listed again {len(finished)} (target 0), in flight at a stop {in_flight}"
    )
    audits: dict[str, int] = s["audits"]
    print(f"final verdicts equal an uninterrupted run: {same} ({len(audits):,} keys audited)")


if __name__ == "__main__":
    main()
