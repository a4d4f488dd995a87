"""Throughput, CPU and peak RSS of a full `cos-scanner scan` against an emulator, and with
--rescan of the incremental rescan of the same, unchanged bucket that follows it.

The emulator runs in its own process (its own event loop); each scanner run is a second
process, measured with os.wait4 when it exits. Both share this machine's cores.

    .venv/bin/python bench/scan_throughput.py --objects 100000 --latency 0 --rescan
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ENV, machine, start_emulator, stats, write_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--qps", type=float, default=10_000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rescan", action="store_true", help="then an unchanged incremental rescan")
    args = ap.parse_args()
    print(machine())
    emulator, url = start_emulator(args.objects, args.latency, args.seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(
                Path(tmp, "bench.toml"),
                url,
                Path(tmp, "bench.db"),
                concurrency=args.concurrency,
                batch_size=args.batch_size,
                qps=args.qps,
            )
            print(
                f"objects {args.objects:,}  latency {args.latency:g}s  concurrency "
                f"{args.concurrency}  batch {args.batch_size}  qps ceiling {args.qps:g}"
            )
            report("full scan", run_scan(cfg, ENV, []), args.objects, url)
            if args.rescan:
                report(
                    "incremental rescan (unchanged)",
                    run_scan(cfg, ENV, ["--incremental"]),
                    args.objects,
                    url,
                )
    finally:
        emulator.kill()
        emulator.wait()


def run_scan(cfg: Path, env: dict[str, str], extra: list[str]) -> tuple[float, Any]:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), *extra]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"scan failed ({proc.returncode}): {err.read().decode().strip()}")
    return wall, usage


def report(name: str, measured: tuple[float, Any], objects: int, url: str) -> None:
    wall, usage = measured
    counts = stats(url)
    with urllib.request.urlopen(urllib.request.Request(url + "/_emulator/reset", method="POST")):
        pass
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{name}:")
    print(
        f"  wall {wall:.1f}s  -> {objects / wall:,.0f} objects/s listed+checkpointed, "
        f"{counts['audited_images'] / wall:,.0f} images/s audited"
    )
    print(f"  scanner CPU {cpu:.1f}s  -> {cpu / objects * 10_000:.2f} CPU-s per 10,000 objects")
    print(f"  scanner peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    print(
        f"  audit requests {counts['requests'].get('audit', 0):,}, images billed "
        f"{counts['audited_images']:,}, billed twice {counts['double_audited']}"
    )


if __name__ == "__main__":
    main()
