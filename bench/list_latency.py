"""Listing that never starves the auditors: [cos] list_concurrency and the prefetch.

    .venv/bin/python bench/list_latency.py starve   # 2 s on listing and audits: achieved / cap
    .venv/bin/python bench/list_latency.py listing  # 1,000,000 keys at 20 ms a page: wall time

`starve`: the emulator answers every request (listing pages and audits) after 2 s; the audit
cap is what the budget allows (concurrency 40 in flight, 10 requests/s, 100 images each:
min(10, 40 / 2) x 100 = 1,000 images/s). One listing stream gives at most 1,000 keys per 2 s
page; with list_concurrency 8 the key ranges are listed at once. The rate is the emulator's
audited images over the steady middle of the run.

`listing`: a scan whose filter audits nothing (include matches no key), so its wall time is
the listing's: 1,000,000 objects, 20 ms per page, list_concurrency 1 vs 8.

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, machine, parse, start_emulator, stats


def config(path: Path, url: str, store: Path, lists: int, extra: str = "") -> Path:
    path.write_text(
        f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\nlist_concurrency = {lists}\n'
        f"timeout = 30.0\n[audit]\nconcurrency = 40\nqps = 10.0\nbatch_size = 100\n"
        f'[scan]\nprogress_interval = 600.0\n{extra}[store]\npath = "{store}"\n'
    )
    return path


def starve(lists: int, seconds: float) -> float:
    emulator, url = start_emulator(300_000, 2.0, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config(Path(tmp, "c.toml"), url, Path(tmp, "s.db"), lists)
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            proc = subprocess.Popen(
                argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(20)  # warm up: ranges split, first pages and batches in flight
            s0, t0 = stats(url), time.monotonic()
            time.sleep(seconds)
            s1, t1 = stats(url), time.monotonic()
            n0, n1 = int(s0["audited_images"]), int(s1["audited_images"])
            audits = s1["requests"].get("audit", 0) - s0["requests"].get("audit", 0)
            lists = s1["requests"].get("list", 0) - s0["requests"].get("list", 0)
            views = s1["folder_views"] - s0["folder_views"]
            print(f"  over {t1 - t0:.0f} s: {audits / (t1 - t0):.2f} audit requests/s of "
                  f"{(n1 - n0) / max(1, audits):.1f} images, {lists / (t1 - t0):.2f} list "
                  f"requests/s ({views / (t1 - t0):.2f}/s folder views)", flush=True)  # fmt: skip
            proc.terminate()
            proc.wait(timeout=60)
        return (n1 - n0) / (t1 - t0)
    finally:
        emulator.kill()
        emulator.wait()


def listing(lists: int, objects: int) -> tuple[float, int]:
    emulator, url = start_emulator(objects, 0.02, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config(Path(tmp, "c.toml"), url, Path(tmp, "s.db"), lists,
                         'include = ["no-such-key/*"]\n')  # fmt: skip
            argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]
            started = time.monotonic()
            done = subprocess.run(argv, env=ENV, capture_output=True, text=True, check=False)
            wall = time.monotonic() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
        s = stats(url)
        return wall, int(s["requests"].get("list", 0)), int(s["folder_views"])
    finally:
        emulator.kill()
        emulator.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["starve", "listing"], default="listing")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--lists", default="1,8")
    args = parse(ap, seconds=3.0, objects=3000, lists="1,2")
    print(machine())
    for lists in (int(x) for x in args.lists.split(",")):
        if args.mode == "starve":
            rate = starve(lists, args.seconds)
            share = rate / 1000
            print(f"2 s latency, list_concurrency {lists}: {rate:7.1f} images/s = {share:.3f} "
                  "of the 1,000 images/s audit cap (target >= 0.95)")  # fmt: skip
        else:
            wall, requests, views = listing(lists, args.objects)
            rate = args.objects / wall
            print(f"{args.objects:,} objects at 20 ms a page, list_concurrency {lists}: "
                  f"{wall:6.1f} s ({rate:,.0f} keys/s), {requests:,} list requests "
                  f"({views:,} of them folder views: the split and the rebalancing)")  # fmt: skip


if __name__ == "__main__":
    main()
