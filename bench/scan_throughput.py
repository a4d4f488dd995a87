"""Throughput, CPU and peak RSS of one full `cos-scanner scan` against an emulator.

The emulator runs in its own process (its own event loop); the scanner is a second process,
measured with getrusage once it exits. Both share this machine's cores (see the header line).

    .venv/bin/python bench/scan_throughput.py --objects 100000 --latency 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

EMULATOR_ID = "AKIDemulator0000000000000000000000000"
EMULATOR_KEY = "emulator-secret-key-000000000000"


def machine() -> str:
    libs = ", ".join(f"{n} {version(n)}" for n in ("aiohttp", "anyio", "aiosqlite"))
    return (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{libs}; emulator and scanner in separate processes sharing the cores"
    )


def start_emulator(objects: int, latency: float, seed: int) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable,
        "-m",
        "scanner",
        "emulator",
        "--port",
        "0",
        "--objects",
        str(objects),
        "--seed",
        str(seed),
        "--latency",
        str(latency),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--qps", type=float, default=10_000.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(machine())
    emulator, url = start_emulator(args.objects, args.latency, args.seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp, "bench.toml")
            cfg.write_text(
                f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n[audit]\n'
                f"concurrency = {args.concurrency}\nbatch_size = {args.batch_size}\n"
                f'qps = {args.qps}\n[store]\npath = "{tmp}/bench.db"\n'
            )
            env = dict(
                os.environ, TENCENTCLOUD_SECRET_ID=EMULATOR_ID, TENCENTCLOUD_SECRET_KEY=EMULATOR_KEY
            )
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"scan failed ({done.returncode}): {done.stderr.strip()}")
        with urllib.request.urlopen(url + "/_emulator/stats") as resp:
            stats = json.load(resp)
    finally:
        emulator.kill()
        emulator.wait()
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"objects {args.objects:,}  latency {args.latency:g}s  concurrency {args.concurrency}  "
        f"batch {args.batch_size}  qps ceiling {args.qps:g}"
    )
    print(
        f"wall {wall:.1f}s  -> {args.objects / wall:,.0f} objects/s listed+checkpointed, "
        f"{stats['audited_images'] / wall:,.0f} images/s audited"
    )
    print(f"scanner CPU {cpu:.1f}s  -> {cpu / args.objects * 10_000:.2f} CPU-s per 10,000 objects")
    print(f"scanner peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    print(
        f"audit requests {stats['requests'].get('audit', 0):,}, images billed "
        f"{stats['audited_images']:,}, billed twice {stats['double_audited']}"
    )


if __name__ == "__main__":
    main()
