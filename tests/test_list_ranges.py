"""[cos] list_concurrency: the listing cut into key ranges listed at once, each checkpointed
with its own marker; the same objects as one listing, no page listed twice across a pause
and a resume; listing runs ahead of the auditors (prefetch)."""

from __future__ import annotations

import bisect
import random
import signal
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from scanner.emulator import EmulatorState, running, synthetic
from scanner.models import KeyRange, ObjectRef, Page
from scanner.scan.progress import Progress
from scanner.scan.ranges import list_target, midpoint, within
from scanner.store import Store
from tests.helpers import (
    IN_FLIGHT,
    config,
    db_rows,
    emulator_process,
    run_scan,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan


def test_ranges_list_the_same_objects_and_resume_each_from_its_marker(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(6000, 12), seed=12)

    async def run() -> tuple[
        list[str], list[str], list[KeyRange], list[tuple[str, str | None, bool]]
    ]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            cfg = replace(cfg, cos=replace(cfg.cos, list_concurrency=8, page_size=100))
            paused = await run_scan(cfg, anyio.Event(), Progress(), max_images=1500)
            assert paused.outcome == "paused"
            async with await Store.open(cfg.store.path) as store:
                ranges = await store.ranges(paused.status.id)
            done = await run_scan(cfg, anyio.Event(), Progress())
            assert done.outcome == "done"
            async with await Store.open(cfg.store.path) as store:
                rows = await store._all("SELECT key FROM scan_objects ORDER BY key", ())
                after = await store.ranges(done.status.id)
            bounds = [(r.after, r.upto, r.done) for r in after]
            return [k for (k,) in rows], state.bucket.keys(), ranges, bounds

    keys, bucket, paused, bounds = anyio.run(run)
    assert keys == bucket  # every object once, none outside the target
    assert len(paused) >= 8  # 8 from the split, more as idle listers took half of a busy one
    assert all(done for _, _, done in bounds)
    ordered = sorted(bounds, key=lambda b: b[0])
    assert [b[0] for b in ordered[1:]] == [b[1] for b in ordered[:-1]]  # contiguous, disjoint
    assert ordered[0][0] == ""
    assert ordered[-1][1] is None
    s = state.stats.as_json(True)
    assert s["double_audited"] == 0
    # listed again: only pages at or after their range's checkpoint at the pause (fetched
    # ahead, not recorded); the splits' folder views (delimiter listings) are counted apart
    again = [m for m, n in s["list_markers"].items() if n > 1]
    for m in again:
        (r,) = [r for r in paused if r.after <= m and (r.upto is None or m <= r.upto)]
        assert m >= r.marker, (m, r)
    assert len(again) <= len(paused) * 5
    assert s["folder_views"] > 0


def test_a_page_is_cut_at_its_range_end() -> None:
    from datetime import UTC, datetime

    from scanner.models import ObjectRef

    refs = tuple(ObjectRef(k, "e", 1, datetime.now(UTC)) for k in ("a/1", "a/2", "b/1"))
    cut = within(Page("", refs, next_marker="b/1"), "a/3")
    assert [r.key for r in cut.objects] == ["a/1", "a/2"]
    assert cut.next_marker is None
    whole = within(Page("", refs[:2], next_marker="a/2"), "b/")
    assert whole.next_marker == "a/2"
    assert within(Page("", refs[:2], next_marker="a/2"), "a/2").next_marker is None


def test_midpoints_lie_strictly_between() -> None:
    cases = [("", None), ("albums/u00001/x.jpg", "summer trip/"), ("a", "b"), ("ab", "ac"),
             ("a/1", None), ("фото/1", None), ("a\U0010fffe", "b")]  # fmt: skip
    for lo, hi in cases:
        m = midpoint(lo, hi)
        assert m is not None, (lo, hi)
        assert lo < m, (lo, hi, m)
        assert hi is None or m < hi, (lo, hi, m)
        m.encode()  # a real string (no surrogate): it goes out as a marker
    assert midpoint("a", "a\x00") is None  # nothing between


@pytest.mark.slow
def test_listers_share_the_cos_request_budget(tmp_path: Path) -> None:
    """[cos] qps holds across 8 listers and their folder views: a bucket that throttles past 20
    listing requests a second throttles none of a scan at 18/s, and does throttle one without
    the budget (so the cap is real)."""

    def run(qps: float, store: str) -> tuple[dict[str, object], float, list[str]]:
        state = EmulatorState(bucket=synthetic(400, 21), seed=21)
        state.faults.list_qps_cap = 20.0

        async def scan() -> tuple[float, list[str]]:
            async with running(state) as url:
                cfg = config(url, tmp_path / store)
                cos = replace(cfg.cos, list_concurrency=8, page_size=20, qps=qps)
                cfg = replace(cfg, cos=cos)
                started = time.monotonic()
                done = await run_scan(cfg, anyio.Event(), Progress())
                assert done.outcome == "done"
                async with await Store.open(cfg.store.path) as st:
                    rows = await st._all("SELECT key FROM scan_objects ORDER BY key", ())
                return time.monotonic() - started, [k for (k,) in rows]

        (tmp_path / store).mkdir()
        took, keys = anyio.run(scan)
        assert keys == state.bucket.keys()
        return state.stats.as_json(False), took, keys

    held, took, _ = run(18.0, "budget")
    requests = held["requests"]["list"]  # type: ignore[index]
    assert held["faults"].get("throttled", 0) == 0  # type: ignore[attr-defined]
    assert requests >= 20  # 20 pages, the folder views of the split and the rebalancing
    assert took >= (requests - 18) / 18  # paced: no second held more than 18
    free, _, _ = run(10_000.0, "free")
    assert free["faults"].get("throttled", 0) > 0  # type: ignore[attr-defined]


def test_a_lane_that_overtakes_a_slow_probe_is_not_split_behind_itself() -> None:
    """An idle lister's probe takes a while; the busy lane lists on meanwhile, past the point
    the probe found. The split must then not happen (or happen past what was taken): every key
    is taken once, and no range records a marker past its bound."""
    keys = [f"k{i:05d}" for i in range(3000)]
    WHEN = datetime(2024, 1, 1, tzinfo=UTC)

    async def fetch(marker: str) -> Page:
        i = bisect.bisect_right(keys, marker)
        chunk = keys[i : i + 10]
        nxt = chunk[-1] if i + 10 < len(keys) else None
        await anyio.sleep(0.001)
        return Page(marker, tuple(ObjectRef(k, "e", 1, WHEN) for k in chunk), next_marker=nxt)

    reach = random.Random(7)

    async def probe(after: str, upto: str | None) -> str | None:
        i = bisect.bisect_right(keys, after)
        await anyio.sleep(0.02)  # the busy lane takes a few pages meanwhile
        mid = keys[min(i + reach.randrange(10, 200), len(keys) - 1)]  # behind it, or not
        return mid if upto is None or mid < upto else None

    bounds = ["", *(f"k{i:05d}" for i in range(100, 900, 100))]  # 8 small ranges, 1 big
    ranges = {
        n: KeyRange(n, b, bounds[n + 1] if n + 1 < len(bounds) else None, b)
        for n, b in enumerate(bounds)
    }
    taken: Counter[str] = Counter()
    past_bound: list[tuple[int, str]] = []

    async def take(page: Page, idx: int | None) -> bool:
        assert idx is not None
        taken.update(o.key for o in page.objects)
        await anyio.sleep(0.002)  # the store's transaction
        r = ranges[idx]
        marker = page.next_marker or r.marker
        if r.upto is not None and marker > r.upto:
            past_bound.append((idx, marker))
        ranges[idx] = replace(r, marker=marker, done=page.next_marker is None)
        return True

    async def split(idx: int, mid: str) -> KeyRange | None:
        await anyio.sleep(0.002)
        r = ranges[idx]
        if r.done or r.marker >= mid or (r.upto is not None and mid >= r.upto):
            return None
        new = KeyRange(max(ranges) + 1, mid, r.upto, mid)
        ranges[idx] = replace(r, upto=mid)
        ranges[new.idx] = new
        return new

    ended = anyio.run(
        list_target, "", list(ranges.values()), fetch, take, split, anyio.Event(), 9, probe
    )
    assert ended
    assert len(ranges) > len(bounds)  # idle listers did split
    assert sorted(taken) == keys
    assert max(taken.values()) == 1
    assert past_bound == []


def _ranges_at(store: Path) -> list[tuple[str, str | None, str]]:
    return [(a, u, m) for a, u, m in db_rows(store, "SELECT after, upto, marker FROM scan_ranges")]


@pytest.mark.slow
def test_sigkill_with_eight_listers_lists_no_finished_page_again(tmp_path: Path) -> None:
    """A real scan process with `list_concurrency = 8`, killed -9 three times while it lists
    and rebalances, then resumed: every object once, none billed twice beyond what was in
    flight, and a page listed twice only at or after its range's checkpoint at a kill
    (fetched ahead, or in flight: not recorded)."""
    objects = 6000
    with emulator_process("--objects", str(objects), "--seed", "31", "--latency", "0.03") as url:
        store = tmp_path / "scan.db"
        cfg = write_config(tmp_path / "c.toml", url, store)
        text = cfg.read_text().replace("[cos]\n", "[cos]\nlist_concurrency = 8\npage_size = 50\n")
        cfg.write_text(text)
        log = tmp_path / "scan.log"
        checkpoints: list[list[tuple[str, str | None, str]]] = []
        for audited in (300, 1500, 3000):
            proc = scan(cfg, log)
            wait_until(lambda n=audited: stats(url)["audited_images"] >= n, proc)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            checkpoints.append(_ranges_at(store))
        proc = scan(cfg, log)
        assert proc.wait(timeout=120) == 0, log.read_text()
        s = stats(url, detail=True)
    state, listed, audited_n, failed, skipped = db_rows(
        store, "SELECT state, listed, audited, failed, skipped FROM scans"
    )[0]
    assert state == "done"
    assert listed == objects == audited_n + failed + skipped
    assert len(db_rows(store, "SELECT key FROM scan_objects")) == objects
    reaudited = sum(n - 1 for n in s["audits"].values())
    assert reaudited <= 3 * IN_FLIGHT, reaudited
    assert all(len(c) >= 8 for c in checkpoints)  # the listing was split before the first kill

    def fetched_ahead(marker: str) -> bool:
        return any(
            a <= marker and (u is None or marker <= u) and marker >= m
            for ranges in checkpoints
            for a, u, m in ranges
        )

    again = [m for m, n in s["list_markers"].items() if n > 1]
    assert [m for m in again if not fetched_ahead(m)] == []
    assert len(again) <= 3 * 8 * 6  # a kill re-lists at most the pages each lane held
