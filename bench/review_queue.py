"""The review queue at 10^6 verdicts: server time of the first page, a filter change, a deep
page and the counts, straight from the store the page reads (keyset pages, no OFFSET).

A store is filled with `--verdicts` synthetic verdicts (5 % Result 1, 7 % Result 2, labels and
scores like the emulator's; 2 % of the flagged acted on), then each query is timed `--repeat`
times; the median is printed. The default filter is the page's: the backlog (every scan),
undecided, not acted on, not gone.

    .venv/bin/python bench/review_queue.py --verdicts 1000000

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from common import machine, parse

from scanner.store import Cursor, QueueFilter, Store

TARGET = "cos://album-1250000000.ap-guangzhou/"


async def fill(store: Store, n: int) -> None:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        roll = rng.random()
        result, label, score = 0, "Normal", rng.randint(0, 60)
        if roll < 0.05:
            result, label, score = 1, rng.choice(["Porn", "Illegal"]), rng.randint(61, 100)
        elif roll < 0.12:
            result, label, score = 2, "Ads", rng.randint(61, 90)
        rows.append((TARGET, f"albums/u{i % 5000:05d}/IMG_{i:08d}.jpg", f"{i:032x}", 50_000,
                     "p", result, label, score, "", "", "", "", "", 1.0, 1))  # fmt: skip
    async with store._tx() as conn:
        await conn.execute(
            "INSERT INTO scans (id, target, bucket, region, prefix, policy, state, started_at, "
            "updated_at) VALUES (1, ?, 'album-1250000000', 'ap-guangzhou', '', 'p', 'done', 1, 1)",
            (TARGET,),
        )
        await conn.executemany(
            "INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, "
            "category, sub_label, text, job_id, raw, audited_at, scan_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await conn.execute(
            "INSERT INTO act_runs (id, target, action, params, state, started_at, updated_at) "
            "VALUES (1, ?, 'private', '{}', 'done', 1, 1)",
            (TARGET,),
        )
        acted = [(TARGET, r[1], "private", 1) for r in rows if r[5] > 0 and rng.random() < 0.02]
        await conn.executemany(
            "INSERT INTO acted (target, key, action, run_id) VALUES (?, ?, ?, ?)", acted
        )


async def timed(repeat: int, call: object) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def main(n: int, repeat: int) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        async with await Store.open(Path(tmp, "s.db")) as store:
            t = time.perf_counter()
            await fill(store, n)
            print(f"{n:,} verdicts written in {time.perf_counter() - t:.1f}s\n")
            default = QueueFilter()
            porn = QueueFilter(labels=("Porn",), min_score=91, max_score=100)
            _rows, cursor = await store.queue(TARGET, default)
            deep = cursor
            for _ in range(500):  # 500 pages in: 30,000 rows down the queue
                _, deep = await store.queue(TARGET, default, deep)
            assert isinstance(deep, Cursor)
            cases = [
                ("first page (undecided 2 then 1, 60 cards)", lambda: store.queue(TARGET, default)),
                ("filter change (Porn, score 91-100)", lambda: store.queue(TARGET, porn)),
                (
                    "page 501 (after 30,000 rows, keyset)",
                    lambda: store.queue(TARGET, default, deep),
                ),
                ("counts of the default filter", lambda: store.queue_counts(TARGET, default)),
                ("counts of the filter change", lambda: store.queue_counts(TARGET, porn)),
                (
                    "choice counts (decision, acted, gone)",
                    lambda: store.filter_counts(TARGET, default),
                ),
            ]
            for name, call in cases:
                ms = await timed(repeat, call)
                verdict = "" if "counts" in name else ("  (target < 200 ms)")
                print(f"{name:45} {ms:8.1f} ms{verdict}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verdicts", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = parse(ap, verdicts=3000, repeat=1)
    anyio.run(main, args.verdicts, args.repeat)
