"""`act` on many objects: how much of the COS request budget it uses, and its CPU per action.

Scans a synthetic album (zero latency), then runs `act private` (or `--action quarantine`) on
every audited verdict (`--result 0,1,2`) with `[act] qps` = `--qps` against an emulator with
`--latency` per answer, and prints the object requests per second as a share of the budget
(private: a HEAD, a GET ?acl and a PUT ?acl; quarantine: a HEAD, a GET ?acl, the copy, the HEAD
right before the DELETE and the DELETE), the act process's CPU-seconds per 1,000 actions, and
the journal. `--smoke`: 600 objects, seconds, figures not checked (the suite runs it).

    .venv/bin/python bench/act_throughput.py --objects 120000 --qps 300 --latency 0.02
    .venv/bin/python bench/act_throughput.py --objects 12000 --qps 450 --action quarantine
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, machine, start_emulator, stats, write_config

QUARANTINE = "quarantine-1250000000"


def run(argv: list[str]) -> tuple[int, float, float]:
    """Exit code, wall seconds and CPU seconds (user + system) of a child process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=120_000)
    ap.add_argument("--qps", type=float, default=300.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--action", choices=("private", "quarantine"), default="private")
    ap.add_argument("--smoke", action="store_true", help="a few hundred objects, seconds")
    args = ap.parse_args()
    if args.smoke:
        args.objects, args.latency = 600, 0.0
    print(machine())
    proc, url = start_emulator(args.objects, 0.0, 4, "--extra-bucket", QUARANTINE)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "s.db"
            cfg = write_config(Path(tmp) / "c.toml", url, store, qps=1000.0, concurrency=16)
            cfg.write_text(
                cfg.read_text() + f"[act]\nqps = {args.qps}\nconcurrency = {args.concurrency}\n"
            )
            code, wall, _ = run([sys.executable, "-m", "scanner", "scan", "--config", str(cfg)])
            print(f"scan of {args.objects:,} objects: exit {code}, {wall:.0f} s")
            import json
            import urllib.request

            body = json.dumps({"latency": args.latency}).encode()
            req = urllib.request.Request(url + "/_emulator/faults", body, method="POST")
            urllib.request.urlopen(req, timeout=10).close()
            before = stats(url)["requests"].get("object", 0)
            argv = [sys.executable, "-m", "scanner", "act", args.action, "--result", "0,1,2",
                    "--config", str(cfg), "--apply"]  # fmt: skip
            if args.action == "quarantine":
                argv += ["--to", f"cos://{QUARANTINE}/q/"]
            code, wall, cpu = run(argv)
            requests = stats(url)["requests"].get("object", 0) - before
            with sqlite3.connect(store) as db:
                (done,) = db.execute("SELECT COUNT(*) FROM journal WHERE state = 'done'").fetchone()
            rate = requests / wall
            print(f"act {args.action} on {done:,} objects: exit {code}, {wall:.1f} s, "
                  f"{requests:,} object requests")  # fmt: skip
            print(f"  {rate:.1f} requests/s = {rate / args.qps:.3f} of the budget "
                  f"({args.qps:g} QPS, {args.concurrency} in flight, {args.latency * 1000:g} ms "
                  "per answer; target >= 0.95)")  # fmt: skip
            each = "3 requests and 2 journal commits" if args.action == "private" else (
                "5 requests and 3 journal commits")  # fmt: skip
            print(f"  act process CPU: {cpu:.1f} s = {cpu / max(1, done) * 1000:.2f} CPU-s per "
                  f"1,000 actions ({each} each)")  # fmt: skip
            if code != 0:
                raise SystemExit(f"act exited {code}")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
