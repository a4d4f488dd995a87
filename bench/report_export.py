"""Peak RSS of `cos-scanner report` exporting 100,000 and 1,000,000 rows: constant memory.

Builds each store directly with SQLite (schema from the shipped migrations, synthetic
verdicts with a realistic raw JobsDetail), then runs the real CLI as a subprocess and reads
its peak RSS with os.wait4.

    .venv/bin/python bench/report_export.py

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import parse

from scanner.store import pack_raw
from scanner.store.migrate import available, content_hash

TARGET = "cos://album-1250000000.ap-guangzhou/"
RAW = pack_raw(  # as the scanner stores it: the JobsDetail as received, deflated
    "<JobsDetail><DataId>7</DataId><JobId>si0</JobId><State>Success</State>"
    "<Object>albums/u00001/IMG_00000001.jpg</Object><Label>Porn</Label><Result>1</Result>"
    "<Score>95</Score><Category>Porn</Category><SubLabel>SexBehavior</SubLabel><Text></Text>"
    + "".join(
        f"<{scene}Info><Code>0</Code><Msg>OK</Msg><HitFlag>{int(scene == 'Porn')}</HitFlag>"
        f"<Score>{95 if scene == 'Porn' else 0}</Score><Label>Normal</Label><Category></Category>"
        f"<SubLabel></SubLabel></{scene}Info>"
        for scene in ("Porn", "Terrorism", "Politics", "Ads", "Illegal")
    )
    + "</JobsDetail>"
)


def build(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.create_function("content_hash", 3, content_hash, deterministic=True)  # schema 10
        for number, script in available():
            conn.executescript(script.read_text())
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(
            "INSERT INTO scans (id, target, bucket, region, prefix, policy, state, listed, "
            "audited, started_at, updated_at) VALUES (1, ?, 'album-1250000000', 'ap-guangzhou', "
            "'', 'p', 'done', ?, ?, 0, 0)",
            (TARGET, rows, rows),
        )
        conn.executemany(
            "INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, "
            "category, sub_label, text, job_id, raw, audited_at, scan_id) "
            "VALUES (?, ?, 'e', 1000, 'p', ?, 'Porn', 95, 'Porn', 'x', '', 'si0', ?, 0, 1)",
            ((TARGET, f"albums/u{i % 997:05d}/IMG_{i:08d}.jpg", i % 3, RAW) for i in range(rows)),
        )


def export(store: Path, fmt: str) -> tuple[float, int]:
    argv = [
        sys.executable,
        "-m",
        "scanner",
        "report",
        "--store",
        str(store),
        "--format",
        fmt,
        "--out",
        f"{store}.{fmt}",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("report failed")
    return time.perf_counter() - started, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="100000,1000000", help="store sizes, comma-separated")
    args = parse(ap, rows="2000")
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(n) for n in args.rows.split(",")):
            store = Path(tmp, f"r{rows}.db")
            build(store, rows)
            for fmt in ("csv", "jsonl"):
                wall, rss = export(store, fmt)
                print(
                    f"{rows:>9,} rows {fmt:>5}: {wall:6.1f}s ({rows / wall:,.0f} rows/s), "
                    f"peak RSS {rss / 1024:.0f} MiB"
                )


if __name__ == "__main__":
    main()
