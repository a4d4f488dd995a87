"""A throttle storm and the recovery after it, against the emulator over real HTTP.

The emulator allows `--ceiling` audit requests per second and the scanner's `qps` is the same
ceiling. `--calm` seconds into the scan, every audit request is throttled for `--storm`
seconds (the emulator's QPS cap drops to almost nothing), then the quota comes back. Prints
the audit requests answered per second around the storm, the time from the storm's end to 90%
of the ceiling, the throttled share after that, and images billed twice.

    .venv/bin/python bench/throttle_storm.py --ceiling 10 --storm 30

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
from typing import Any

from common import ENV, machine, parse, start_emulator, stats, write_config


def faults(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        url + "/_emulator/faults", json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()


def sample(url: str) -> tuple[float, int, int]:
    got = stats(url)["statuses"]
    return time.monotonic(), got.get("audit 200", 0), got.get("audit 503", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ceiling", type=float, default=10.0)
    ap.add_argument("--storm", type=float, default=30.0)
    ap.add_argument("--calm", type=float, default=20.0, help="seconds before the storm")
    ap.add_argument("--after", type=float, default=120.0, help="seconds watched after it")
    ap.add_argument("--objects", type=int, default=300_000)
    args = parse(ap, ceiling=10.0, storm=2.0, calm=1.0, after=3.0, objects=3000)
    print(machine())
    proc, url = start_emulator(args.objects, 0.05, 1)
    faults(url, {"qps_cap": args.ceiling})
    samples: list[tuple[float, int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "c.toml", url, Path(tmp) / "s.db", qps=args.ceiling,
                           concurrency=16)  # fmt: skip
        argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
        scanner = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            start = time.monotonic()
            phases = [
                (args.calm, {"qps_cap": 0.001}),
                (args.calm + args.storm, {"qps_cap": args.ceiling}),
                (args.calm + args.storm + args.after, None),
            ]
            for until, change in phases:
                while time.monotonic() - start < until and scanner.poll() is None:
                    samples.append(sample(url))
                    time.sleep(0.5)
                if change is not None:
                    faults(url, change)
        finally:
            scanner.terminate()
            scanner.wait(timeout=120)
            end_stats = stats(url)
            proc.kill()
    report(samples, samples[0][0], args, end_stats)


def rate(samples: list[tuple[float, int, int]], i: int, span: int = 6) -> tuple[float, float]:
    """Answered and throttled requests per second over the `span` samples before i."""
    j = max(0, i - span)
    dt = samples[i][0] - samples[j][0] or 1.0
    return (samples[i][1] - samples[j][1]) / dt, (samples[i][2] - samples[j][2]) / dt


def report(
    samples: list[tuple[float, int, int]], t0: float, args: argparse.Namespace, end: dict[str, Any]
) -> None:
    storm_end = args.calm + args.storm
    print(f"ceiling {args.ceiling:g} QPS, storm {args.calm:g}-{storm_end:g} s, latency 50 ms")
    print(f"{'t (s)':>6} {'ok/s':>6} {'throttled/s':>12}")
    recovered = None
    for i, (t, *_rest) in enumerate(samples):
        ok, th = rate(samples, i)
        if int((t - t0) * 2) % 10 == 0:
            print(f"{t - t0:6.1f} {ok:6.1f} {th:12.1f}")
        if recovered is None and t - t0 > storm_end and ok >= 0.9 * args.ceiling:
            recovered = t - t0 - storm_end
    print(f"\ntime from the storm's end to 90% of the ceiling: "
          f"{'not reached' if recovered is None else f'{recovered:.1f} s'}")  # fmt: skip
    if recovered is not None:
        after = [s for s in samples if s[0] - t0 >= storm_end + recovered]
        ok = after[-1][1] - after[0][1]
        th = after[-1][2] - after[0][2]
        print(f"after that: {ok:,} answered, {th:,} throttled ({th / max(1, ok + th):.2%})")
    print(f"images billed twice: {end['double_audited']}")


if __name__ == "__main__":
    main()
