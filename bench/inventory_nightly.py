"""Scale from an Inventory: a full scan of a big bucket read from its Inventory, then the
nightly rescan from the next day's Inventory after 1% of the objects changed.

    .venv/bin/python bench/inventory_nightly.py --objects 10000000
    .venv/bin/python bench/inventory_nightly.py --objects 100000     # the RSS baseline

The emulator (its own process, 0 latency, no service cap) writes and serves each Inventory
(`POST /_emulator/inventory`: gzip CSV data files of 1,000,000 rows, manifest, checksum). Each
scanner run is a process of its own, measured with wait4: wall time, CPU, peak RSS; and the
emulator's counters: requests of each kind, images billed, data files read.

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, machine, parse, post, start_emulator, stats


def run(cfg: Path, *extra: str) -> tuple[float, float, float, int]:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), *extra]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            err.seek(0)
            raise SystemExit(f"scan failed ({code}): {err.read().decode()[-3000:]}")
    wall = time.perf_counter() - started
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000_000)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    args = parse(ap, objects=3000, rows_per_file=1000)
    print(machine())
    t0 = time.perf_counter()
    emulator, url = start_emulator(args.objects, 0.0, 1)
    print(f"emulator up with {args.objects:,} objects in {time.perf_counter() - t0:.0f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp, "c.toml")
            cfg.write_text(
                f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
                "[audit]\nconcurrency = 16\nqps = 10000.0\n[scan]\nprogress_interval = 600.0\n"
                f'[store]\npath = "{tmp}/s.db"\n'
            )
            t0 = time.perf_counter()
            day1 = post(url, "/_emulator/inventory", {"rows_per_file": args.rows_per_file,
                                                      "day": "20261129"})  # fmt: skip
            print(f"inventory 1: {day1['files']} data files, written in "
                  f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
            wall, cpu, rss, _ = run(cfg, "--inventory", day1["manifest"])
            s = stats(url)
            per = cpu / args.objects * 1e4
            print(f"full scan from the inventory: wall {wall:,.0f} s ({args.objects / wall:,.0f} "
                  f"objects/s), CPU {cpu:,.0f} s ({per:.2f} CPU-s per 10,000), "
                  f"peak RSS {rss:,.0f} MiB; requests {s['requests']}, images billed "
                  f"{s['audited_images']:,}")  # fmt: skip
            post(url, "/_emulator/reset", {})
            changed = post(url, "/_emulator/objects",
                           {"churn": {"change": args.change, "seed": 5}})  # fmt: skip
            print(f"changed {len(changed.get('changed', [])):,} objects")
            day2 = post(url, "/_emulator/inventory", {"rows_per_file": args.rows_per_file,
                                                      "day": "20261130"})  # fmt: skip
            post(url, "/_emulator/reset", {})
            wall, cpu, rss, _ = run(cfg, "--inventory", day2["manifest"], "--incremental")
            s = stats(url, detail=True)
            reads = sum(n for k, n in s["reads"].items() if k.endswith(".csv.gz"))
            print(f"nightly rescan from the next inventory: wall {wall:,.0f} s, CPU {cpu:,.0f} s, "
                  f"peak RSS {rss:,.0f} MiB; list requests {s['requests'].get('list', 0)}, "
                  f"audit requests {s['requests'].get('audit', 0):,}, images billed "
                  f"{s['audited_images']:,}, data files read {reads} of "
                  f"{day2['files']}")  # fmt: skip
    finally:
        emulator.kill()
        emulator.wait()


if __name__ == "__main__":
    main()
