"""Throughput, CPU and peak RSS of a full `cos-scanner scan` against an emulator, and with
--rescan of the incremental rescan of the same, unchanged bucket that follows it.

The emulator runs in its own process (its own event loop); each scanner run is a second
process, measured with os.wait4 when it exits. Both share this machine's cores.

    .venv/bin/python bench/scan_throughput.py --objects 100000 --latency 0 --rescan

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ENV, cpu_seconds, machine, parse, start_emulator, stats, write_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--qps", type=float, default=10_000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rescan", action="store_true", help="then an unchanged incremental rescan")
    ap.add_argument(
        "--workers", default="1", help="comma list: a full scan with each --workers N (fresh store)"
    )
    args = parse(ap, objects=800)
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
            for n in args.workers.split(","):
                Path(tmp, "bench.db").unlink(missing_ok=True)
                measured = run_scan(cfg, ENV, ["--workers", n])
                report(f"full scan, --workers {n}", measured, args.objects, url)
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


MAIN_CPU: list[float] = []  # the scan process's own CPU (without its workers), last reading


def run_scan(cfg: Path, env: dict[str, str], extra: list[str]) -> tuple[float, Any]:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), *extra]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        readings = [0.0]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.2):
                readings.append(cpu_seconds(proc.pid) or readings[-1])

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        done.set()
        poller.join()
        MAIN_CPU.append(max(readings))
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
    images = counts["audited_images"]
    print(
        f"  scanner CPU {cpu:.1f}s (its workers too) -> {cpu / objects * 10_000:.2f} CPU-s per "
        f"10,000 objects, {cpu / max(1, images) * 10_000:.2f} per 10,000 images"
    )
    main = MAIN_CPU[-1] if MAIN_CPU else cpu
    print(
        f"  of which the scan process itself (lister, writer, budget) {main:.1f}s -> "
        f"{main / max(1, images) * 10_000:.2f} CPU-s per 10,000 images"
    )
    print(f"  scanner peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    print(
        f"  audit requests {counts['requests'].get('audit', 0):,}, images billed "
        f"{counts['audited_images']:,}, billed twice {counts['double_audited']}"
    )


if __name__ == "__main__":
    main()
