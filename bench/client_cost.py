"""CPU-seconds per 10,000 objects: cos-scanner versus bench/sdk_baseline.py (official SDK).

Both scan the same 100,000-object album on a zero-latency emulator (a separate process, one
fresh emulator per run); each client's CPU is read with os.wait4 when it exits. The runs
alternate between the two clients, `--repeat` times each, and the medians are compared:
on this shared 2-core machine one run of the same code varies by +-15%.

    .venv/bin/python bench/client_cost.py --objects 100000 --repeat 3

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
from typing import Any

from common import ENV, machine, parse, start_emulator, write_config


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[2:4]} failed")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = parse(ap, objects=600, repeat=1)
    print(machine())
    runs: dict[str, list[tuple[float, float, Any]]] = {"cos-scanner": [], "sdk-baseline": []}
    for _ in range(args.repeat):
        for name, (wall, cpu, usage) in one_round(args).items():
            runs[name].append((wall, cpu, usage))
            print(f"  {name}: {cpu / args.objects * 10_000:.2f} CPU-s / 10k", flush=True)
    results = {name: sorted(r, key=lambda x: x[1])[len(r) // 2] for name, r in runs.items()}
    for name, (wall, cpu, usage) in results.items():
        print(
            f"{name:>13}: median of {args.repeat}: wall {wall:6.1f}s  CPU {cpu:6.1f}s  "
            f"{cpu / args.objects * 10_000:.2f} CPU-s per 10,000 objects  "
            f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
        )
    ratio = results["sdk-baseline"][1] / results["cos-scanner"][1]
    print(f"cos-scanner uses {ratio:.2f}x less CPU per object than the SDK script (target >= 5x)")


def one_round(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("cos-scanner", "sdk-baseline"):
            emulator, url = start_emulator(args.objects, 0.0, 1)
            try:
                if name == "cos-scanner":
                    cfg = write_config(
                        Path(tmp, "c.toml"),
                        url,
                        Path(tmp, "scanner.db"),
                        concurrency=args.concurrency,
                        qps=10000.0,
                    )
                    argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
                else:
                    argv = [
                        sys.executable,
                        str(Path(__file__).with_name("sdk_baseline.py")),
                        "--endpoint",
                        url,
                        "--store",
                        f"{tmp}/sdk.db",
                        "--concurrency",
                        str(args.concurrency),
                    ]
                results[name] = measured(argv, ENV)
            finally:
                emulator.kill()
                emulator.wait()
    return results


if __name__ == "__main__":
    main()
