"""IMS ImageModeration at one image per request: requests/s as a fraction of the QPS budget,
and the scanner's CPU per image beside CI batch auditing's.

The emulator answers after `latency` (100 ms, then 1 s) and throttles past a QPS cap equal to
the budget ([ims] qps, what a user configures from the account's quota); [ims] concurrency is
enough to keep the budget busy at that latency (budget x latency x 1.5). The rate and the CPU
are measured over the steady middle of the run, from the emulator's counters and /proc.

    .venv/bin/python bench/ims_saturation.py --qps 50 --latencies 0.1,1.0 --seconds 40

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ENV, cpu_seconds, machine, parse, start_emulator, stats, write_config


def images(url: str) -> int:
    return int(stats(url)["audited_images"])


def measure(
    service: str, latency: float, qps: float, seconds: float, concurrency: int, warmup: float
) -> tuple[float, int, float]:
    """(images/s, throttled answers, scanner CPU-s per image) in the steady middle."""
    per_request = 1 if service == "ims" else 100
    objects = int(qps * per_request * (seconds + 25) / 0.85)
    emulator, url = start_emulator(objects, latency, 1)
    try:
        body = json.dumps({"qps_cap": qps}).encode()
        post = urllib.request.Request(url + "/_emulator/faults", method="POST", data=body)
        urllib.request.urlopen(post).close()
        with tempfile.TemporaryDirectory() as tmp:
            if service == "ims":
                cfg = write_config(Path(tmp, "c.toml"), url, Path(tmp, "s.db"), service="ims")
                ims = f'[ims]\nendpoint = "{url}"\nqps = {qps}\nconcurrency = {concurrency}\n'
                cfg.write_text(cfg.read_text() + ims)
            else:
                cfg = write_config(
                    Path(tmp, "c.toml"), url, Path(tmp, "s.db"),
                    qps=qps, concurrency=concurrency, batch_size=100,
                )  # fmt: skip
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(warmup + latency * 2)  # listing ahead, budget settled
            n0, t0, c0 = images(url), time.monotonic(), cpu_seconds(proc.pid)
            time.sleep(seconds)
            n1, t1, c1 = images(url), time.monotonic(), cpu_seconds(proc.pid)
            throttled = int(stats(url)["faults"].get("throttled", 0))
            proc.terminate()
            proc.wait(timeout=60)
        return (n1 - n0) / (t1 - t0), throttled, (c1 - c0) / max(1, n1 - n0)
    finally:
        emulator.kill()
        emulator.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qps", type=float, default=50.0)
    ap.add_argument("--latencies", default="0.1,1.0")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    args = parse(ap, latencies="0.05", seconds=2.0, warmup=1.0)
    print(machine())
    print(f"budget {args.qps:g} requests/s = the emulator's cap; one image per IMS request\n")
    for latency in (float(x) for x in args.latencies.split(",")):
        concurrency = max(4, math.ceil(args.qps * latency * 1.5))
        rate, throttled, cpu = measure(
            "ims", latency, args.qps, args.seconds, concurrency, args.warmup
        )
        print(
            f"IMS latency {latency:g}s, {concurrency} in flight: {rate:7.1f} requests/s = "
            f"{rate / args.qps:.3f} of the budget (target >= 0.95); throttled {throttled}; "
            f"scanner CPU {cpu * 1000:.2f} ms per image"
        )
    rate, throttled, cpu = measure("ci", 0.1, 2.0, args.seconds, 4, args.warmup)
    print(
        f"CI batch (100 images a request) latency 0.1s, 2 requests/s: {rate:7.1f} images/s; "
        f"throttled {throttled}; scanner CPU {cpu * 1000:.2f} ms per image"
    )


if __name__ == "__main__":
    main()
