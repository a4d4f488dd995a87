"""Rate-limit saturation: images/s audited as a fraction of cap x batch size.

The emulator answers after 100 ms and throttles past a QPS cap; the scanner's budget ceiling
is set to the cap (what a user configures from the account's quota). The rate is measured
from the emulator's counters over the steady middle of the run.

    .venv/bin/python bench/saturation.py --caps 5,10,20
    .venv/bin/python bench/saturation.py --caps 10 --over 4   # qps set 4x the real quota

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ENV, cpu_seconds, machine, parse, start_emulator, stats, write_config


def audited(url: str) -> int:
    return int(stats(url)["audited_images"])


def run(cap: float, ceiling: float, seconds: float, concurrency: int) -> tuple[float, int, float]:
    objects = int(cap * 100 * (seconds + 20) / 0.9)
    emulator, url = start_emulator(objects, 0.1, 1)
    try:
        post = urllib.request.Request(
            url + "/_emulator/faults", method="POST", data=json.dumps({"qps_cap": cap}).encode()
        )
        urllib.request.urlopen(post).close()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(
                Path(tmp, "c.toml"), url, Path(tmp, "s.db"), concurrency=concurrency, qps=ceiling
            )
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            proc = subprocess.Popen(
                argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(8)  # warm up: listing ahead, budget settled
            n0, t0, c0 = audited(url), time.monotonic(), cpu_seconds(proc.pid)
            time.sleep(seconds)
            n1, t1, c1 = audited(url), time.monotonic(), cpu_seconds(proc.pid)
            throttled = int(stats(url)["faults"].get("throttled", 0))
            proc.terminate()
            proc.wait(timeout=60)
        return (n1 - n0) / (t1 - t0), throttled, (c1 - c0) / (t1 - t0)
    finally:
        emulator.kill()
        emulator.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caps", default="5,10,20")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--over",
        type=float,
        default=1.0,
        help="scanner ceiling = cap x this (> 1: the budget must learn the quota)",
    )
    args = parse(ap, caps="20", seconds=3.0)
    print(machine())
    print(f"emulator latency 100 ms, batch 100, scanner ceiling = cap x {args.over:g}")
    for cap in (float(c) for c in args.caps.split(",")):
        rate, throttled, busy = run(cap, cap * args.over, args.seconds, args.concurrency)
        print(
            f"cap {cap:>5g} QPS: {rate:8.1f} images/s = {rate / (cap * 100):.3f} of cap x batch "
            f"(target >= 0.95); throttled answers {throttled}; scanner CPU {busy:.0%} of a core"
        )


if __name__ == "__main__":
    main()
