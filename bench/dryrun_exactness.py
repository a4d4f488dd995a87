"""`scan --dry-run --json` against what the scan then sends and bills, config by config.

For each config: the dry run's estimate, then the scan with the same flags, against one
emulator subprocess; prints estimated vs billed units (images x scenes), estimated images vs
distinct images the emulator was sent, and LargeImageDetect compressions. Every row must say
`equal`. The scenes are known from `detect_type` or `billed_scenes` (the emulator's default
policy has five).

    .venv/bin/python bench/dryrun_exactness.py --objects 20000

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import ENV, machine, parse, post, start_emulator, stats, write_config

# (name, [audit] settings, scan flags, emulator change before it: None or a churn spec)
CASES: list[tuple[str, dict[str, Any], list[str], dict[str, Any] | None]] = [
    ("porn,ads (any case)", {"detect_type": "porn,ADS"}, [], None),
    ("all scenes", {"detect_type": "all"}, ["--force"], None),
    ("BizType, billed_scenes 5", {"biz_type": "album", "billed_scenes": 5}, ["--force"], None),
    ("large images", {"detect_type": "Porn", "large_image_detect": True}, ["--force"], None),
    ("GIF options", {"detect_type": "Porn", "interval": 2, "max_frames": 3}, ["--force"], None),
    ("max-images 3000", {"detect_type": "Porn,Ads"}, ["--force", "--max-images", "3000"], None),
    ("resume the paused scan", {"detect_type": "Porn,Ads"}, [], None),
    (
        "incremental after 5% churn",
        {"detect_type": "Porn,Ads"},
        ["--incremental"],
        {"change": 0.03, "add": 0.02, "delete": 0.01, "seed": 3},
    ),
    (
        "incremental, GIF option + large",
        {"detect_type": "Porn,Ads", "interval": 4, "large_image_detect": True},
        ["--incremental"],
        None,
    ),
]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "scanner", "scan", "--config", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    args = parse(ap, objects=800)
    print(machine())
    print(f"synthetic album of {args.objects:,} objects, seed {args.seed}\n")
    head = f"{'config':34} {'est. units':>11} {'billed':>9} {'est. img':>9} {'sent':>7}"
    print(head + f" {'est. large':>10} {'large':>6}  verdict")
    proc, url = start_emulator(args.objects, 0.0, args.seed)
    all_equal = True
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "s.db"
            for name, audit, flags, churn in CASES:
                config = write_config(Path(tmp) / "c.toml", url, store, qps=500.0, **audit)
                if churn:
                    post(url, "/_emulator/objects", {"churn": churn})
                dry = cli(config, *flags, "--dry-run", "--json")
                if dry.returncode:
                    raise SystemExit(f"{name}: dry run failed: {dry.stderr.strip()}")
                est = json.loads(dry.stdout)
                post(url, "/_emulator/reset", {})
                done = cli(config, *flags)
                if done.returncode not in (0, 3, 4):
                    raise SystemExit(f"{name}: scan exited {done.returncode}: {done.stderr}")
                got = stats(url)
                billed_per_sent = (
                    est["billed_units"] == est["images"] * (est["scenes_per_image"] or 0)
                    and est["images"] == got["distinct_sent"]
                )
                equal = billed_per_sent and est["large_image_units"] == got["large_images"]
                all_equal &= equal
                print(
                    f"{name:34} {est['billed_units']:>11,} {got['billed_units']:>9,} "
                    f"{est['images']:>9,} {got['distinct_sent']:>7,} "
                    f"{est['large_image_units']:>10,} {got['large_images']:>6,}  "
                    f"{'equal' if equal else 'DIFFERENT'}"
                )
    finally:
        proc.kill()
    print(
        "\nbilled = units of the images the service audited; images it refused (not found, "
        "corrupt) were sent, not billed: est. units = est. images x scenes = sent x scenes."
    )
    print("all equal" if all_equal else "NOT ALL EQUAL")


if __name__ == "__main__":
    main()
