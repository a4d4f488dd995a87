"""Images keep their budget while moderation jobs run beside them (issue 28).

The same album with 5 % videos, 2 % voice notes and 1 % documents (`--media 0.08`) is scanned
twice against an emulator at 100 ms latency that throttles image requests past a QPS cap
(the scanner's `[audit] qps` set to that cap): once with `[scan] media = ["image"]` (the jobs'
objects skipped) and once with every class, the jobs taking `--job-seconds` each under `[jobs]
concurrency` 10. Images/s is read from the emulator's counters over the steady middle of each
run, as a fraction of cap x batch; the jobs' figures are the emulator's (most in flight at once,
submitted, submitted twice).

    .venv/bin/python bench/media_budget.py --cap 10 --seconds 40

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, cpu_seconds, machine, parse, post, start_emulator, stats, write_config

MEDIA = '["image", "video", "audio", "document"]'


def run(
    cap: float, seconds: float, job_seconds: float, media: bool, warm: float
) -> dict[str, float]:
    objects = int(cap * 100 * (seconds + warm + 15) / 0.85)
    emulator, url = start_emulator(
        objects, 0.1, 7, "--media", "0.08", "--job-seconds", str(job_seconds)
    )
    try:
        post(url, "/_emulator/faults", {"qps_cap": cap})
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(Path(tmp, "c.toml"), url, Path(tmp, "s.db"), concurrency=16, qps=cap)
            text = cfg.read_text() + (
                f"[scan]\nmedia = {MEDIA}\n[jobs]\nconcurrency = 10\nqps = 10.0\n"
                "poll_interval = 1.0\npoll_max = 5.0\n"
                if media
                else ""
            )
            cfg.write_text(text)
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            proc = subprocess.Popen(
                argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(warm)  # warm up: listing ahead, budget settled, jobs in flight
            s0, t0, c0 = stats(url), time.monotonic(), cpu_seconds(proc.pid)
            time.sleep(seconds)
            s1, t1, c1 = stats(url), time.monotonic(), cpu_seconds(proc.pid)
            proc.terminate()
            proc.wait(timeout=60)
        span = t1 - t0
        return {
            "images_per_s": (s1["audited_images"] - s0["audited_images"]) / span,
            "throttled": float(s1["faults"].get("throttled", 0)),
            "jobs": float(s1["jobs_submitted"] - s0["jobs_submitted"]),
            "max_jobs_running": float(s1["max_jobs_running"]),
            "jobs_twice": float(s1["jobs_submitted_twice"]),
            "cpu": (c1 - c0) / span,
        }
    finally:
        emulator.kill()
        emulator.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=float, default=10.0, help="image requests per second")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--job-seconds", type=float, default=3.0, help="how long a job runs")
    args = parse(ap, cap=5.0, seconds=3.0, job_seconds=0.5)
    warm = 3.0 if args.smoke else 8.0
    print(machine())
    print(f"emulator latency 100 ms, batch 100, image QPS cap {args.cap:g} = [audit] qps; album "
          f"with 8 % media, jobs {args.job_seconds:g} s each, [jobs] concurrency 10")  # fmt: skip
    budget = args.cap * 100
    for media in (False, True):
        r = run(args.cap, args.seconds, args.job_seconds, media, warm)
        print(
            f"{'images + jobs' if media else 'images only  '}: {r['images_per_s']:8.1f} images/s "
            f"= {r['images_per_s'] / budget:.3f} of cap x batch (target >= 0.95 with jobs); "
            f"throttled {r['throttled']:.0f}; jobs submitted {r['jobs']:.0f}, most in flight "
            f"{r['max_jobs_running']:.0f} (cap 10), submitted twice {r['jobs_twice']:.0f}; "
            f"scanner CPU {r['cpu']:.0%} of a core"
        )


if __name__ == "__main__":
    main()
