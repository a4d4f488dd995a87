"""The service quota as the bottleneck: 100 requests in flight at 0.5 s each.

    .venv/bin/python bench/in_flight_cap.py --workers 1,2

The emulator answers every request after 0.5 s with no QPS cap; the scanner may keep 100
batch requests of 100 images in flight (qps ceiling far above), so the cap is 100 x 100 / 0.5 =
20,000 images/s. Printed per --workers: images/s as a share of that cap over the steady middle,
and the CPU of the scanner's process, of its workers and of the emulator over the same window.

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, children, cpu_seconds, machine, parse, start_emulator, stats

CAP = 100 * 100 / 0.5


def run(workers: int, seconds: float, objects: int, warmup: float) -> str:
    emulator, url = start_emulator(objects, 0.5, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp, "c.toml")
            cfg.write_text(
                f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\nlist_concurrency = 8\n'
                "[audit]\nconcurrency = 100\nqps = 1000.0\n[scan]\nprogress_interval = 600.0\n"
                f'[store]\npath = "{tmp}/s.db"\n'
            )
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            proc = subprocess.Popen(
                [*argv, "--workers", str(workers)],
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(warmup)
            kids = children(proc.pid)
            pids = {"scan": [proc.pid], "workers": kids, "emulator": [emulator.pid]}
            before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            n0, t0 = stats(url)["audited_images"], time.monotonic()
            time.sleep(seconds)
            n1, t1 = stats(url)["audited_images"], time.monotonic()
            after = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            in_flight = stats(url)["max_audits_in_flight"]
            proc.terminate()
            proc.wait(timeout=120)
        rate = (n1 - n0) / (t1 - t0)
        busy = ", ".join(f"{k} {(after[k] - before[k]) / (t1 - t0):.0%}" for k in pids)
        return (f"--workers {workers}: {rate:8,.0f} images/s = {rate / CAP:.3f} of the cap; "
                f"most in flight {in_flight}; CPU (of one core): {busy}")  # fmt: skip
    finally:
        emulator.kill()
        emulator.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--objects", type=int, default=3_000_000)
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    args = parse(ap, workers="1", seconds=2.0, objects=20_000, warmup=2.0)
    print(machine())
    print(f"cap: 100 requests in flight x 100 images / 0.5 s = {CAP:,.0f} images/s")
    for n in (int(x) for x in args.workers.split(",")):
        print(run(n, args.seconds, args.objects, args.warmup), flush=True)


if __name__ == "__main__":
    main()
