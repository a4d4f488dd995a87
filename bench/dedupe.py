"""Pay once per picture: units saved and the CPU deduplication costs, on albums with copies.

For each share of copies, one emulator subprocess with a synthetic album of that many copies
(`emulator --copies`), and two full scans of it into fresh stores: `[scan] dedupe = true`
(the default) and `false`. Prints what the emulator billed (images, distinct contents, units:
5 scenes per image), the units saved, and the scanner process's CPU and wall time (os.wait4).

    .venv/bin/python bench/dedupe.py --objects 1000000 --copies 0.1 0.3

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import tempfile
import urllib.request
from pathlib import Path

from common import ENV, machine, parse, start_emulator, stats, write_config
from scan_throughput import run_scan

SCENES = 5  # the emulator's default policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--copies", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--seed", type=int, default=1)
    args = parse(ap, objects=2000, copies=[0.3])
    print(machine())
    print(f"synthetic album of {args.objects:,} objects, seed {args.seed}, latency 0\n")
    for share in args.copies:
        proc, url = start_emulator(args.objects, 0.0, args.seed, "--copies", str(share))
        try:
            runs = {}
            for dedupe in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    cfg = write_config(
                        Path(tmp, "c.toml"),
                        url,
                        Path(tmp, "s.db"),
                        concurrency=16,
                        batch_size=100,
                        qps=10_000.0,
                        billed_scenes=SCENES,
                    )
                    cfg.write_text(cfg.read_text() + f"[scan]\ndedupe = {str(dedupe).lower()}\n")
                    wall, usage = run_scan(cfg, ENV, [])
                    s = stats(url)
                    reset = urllib.request.Request(url + "/_emulator/reset", method="POST")
                    urllib.request.urlopen(reset, timeout=30).close()
                    runs[dedupe] = (wall, usage.ru_utime + usage.ru_stime, s)
            on, off = runs[True], runs[False]
            billed_on, billed_off = on[2]["audited_images"], off[2]["audited_images"]
            print(f"copies {share:.0%} of the images:")
            for name, (wall, cpu, s) in (("dedupe = true ", on), ("dedupe = false", off)):
                print(
                    f"  {name}  billed {s['audited_images']:>9,} images "
                    f"({s['distinct_contents']:,} distinct contents, "
                    f"{s['contents_billed_twice']:,} billed twice)  "
                    f"units {s['billed_units']:>10,}  wall {wall:6.1f}s  CPU {cpu:6.1f}s "
                    f"({cpu / args.objects * 10_000:.2f} CPU-s / 10,000 objects)"
                )
            saved = (billed_off - billed_on) * SCENES
            print(
                f"  saved {billed_off - billed_on:,} images = {saved:,} units "
                f"({saved / (billed_off * SCENES):.1%}); CPU {on[1] - off[1]:+.1f}s "
                f"({(on[1] - off[1]) / args.objects * 10_000:+.2f} CPU-s / 10,000 objects)\n"
            )
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
