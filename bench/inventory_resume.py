"""An Inventory scan killed and resumed vs a listing scan of the same bucket.

    .venv/bin/python bench/inventory_resume.py --objects 1000000 --kills 5

The emulator (its own process, 0 latency) writes an Inventory of its bucket (data files of
100,000 rows). A listing scan runs to the end in one store; then a scan from the Inventory in
another store is killed -9 at `--kills` points spread over the run (by images billed) and run
again until it ends. Printed: both scans' counts, whether the two stores hold the same keys in
the same states, how often each data file was downloaded, and images billed twice.

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ENV, machine, parse, post, start_emulator, stats


def config(path: Path, url: str, store: Path) -> Path:
    path.write_text(
        f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
        "[audit]\nconcurrency = 16\nqps = 10000.0\n[scan]\nprogress_interval = 600.0\n"
        f'[store]\npath = "{store}"\n'
    )
    return path


def rows(store: Path) -> tuple[dict[str, str], tuple[int, ...]]:
    with sqlite3.connect(store) as db:
        states = dict(db.execute("SELECT key, state FROM scan_objects"))
        counts = db.execute(
            "SELECT listed, audited, failed, skipped FROM scans ORDER BY id DESC"
        ).fetchone()
    return states, tuple(counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--kills", type=int, default=5)
    args = parse(ap, objects=3000, kills=1)
    print(machine())
    emulator, url = start_emulator(args.objects, 0.0, 3)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            made = post(url, "/_emulator/inventory", {"rows_per_file": 100_000})
            listing, inventory = Path(tmp, "listing.db"), Path(tmp, "inventory.db")
            argv = [sys.executable, "-m", "scanner", "scan", "--config"]
            t0 = time.perf_counter()
            subprocess.run([*argv, str(config(Path(tmp, "a.toml"), url, listing))], env=ENV,
                           check=True, capture_output=True)  # fmt: skip
            print(f"listing scan: {time.perf_counter() - t0:,.0f} s")
            images = stats(url)["audited_images"]
            post(url, "/_emulator/reset", {})
            cfg = str(config(Path(tmp, "b.toml"), url, inventory))
            t0 = time.perf_counter()
            for k in range(1, args.kills + 1):
                proc = subprocess.Popen(
                    [*argv, cfg, "--inventory", made["manifest"]],
                    env=ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                goal = images * k / (args.kills + 1)
                while stats(url)["audited_images"] < goal and proc.poll() is None:
                    time.sleep(0.2)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            done = subprocess.run([*argv, cfg, "--inventory", made["manifest"]], env=ENV,
                                  check=False, capture_output=True)  # fmt: skip
            print(f"inventory scan, killed {args.kills} times: {time.perf_counter() - t0:,.0f} s "
                  f"in all, last run exit {done.returncode}")  # fmt: skip
            s = stats(url, detail=True)
            a_states, a_counts = rows(listing)
            b_states, b_counts = rows(inventory)
            print(f"counts (listed, audited, failed, skipped): listing {a_counts}, "
                  f"inventory {b_counts}")  # fmt: skip
            print(f"same keys: {set(a_states) == set(b_states)} ({len(a_states):,} vs "
                  f"{len(b_states):,}); same states: {a_states == b_states}; states "
                  f"{dict(Counter(b_states.values()))}")  # fmt: skip
            reads = Counter(n for key, n in s["reads"].items() if key.endswith(".csv.gz"))
            print(f"data files ({made['files']}) by times downloaded: {dict(reads)}")
            twice = sum(n - 1 for n in s["audits"].values())
            print(f"images billed twice: {twice} (in flight at each kill: at most 16 x 100)")
    finally:
        emulator.kill()
        emulator.wait()


if __name__ == "__main__":
    main()
