"""[cos] list_concurrency: the listing cut into key ranges listed at once, each checkpointed
with its own marker; the same objects as one listing, no page listed twice across a pause
and a resume; listing runs ahead of the auditors (prefetch)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio

from scanner.emulator import EmulatorState, running, synthetic
from scanner.models import KeyRange, Page
from scanner.pipeline import Progress
from scanner.ranges import midpoint, within
from scanner.runner import scan_target
from scanner.store import Store
from tests.test_pipeline import config


def test_ranges_list_the_same_objects_and_resume_each_from_its_marker(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(6000, 12), seed=12)

    async def run() -> tuple[
        list[str], list[str], list[KeyRange], list[tuple[str, str | None, bool]]
    ]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            cfg = replace(cfg, cos=replace(cfg.cos, list_concurrency=8, page_size=100))
            paused = await scan_target(cfg, anyio.Event(), Progress(), max_images=1500)
            assert paused.outcome == "paused"
            async with await Store.open(cfg.store.path) as store:
                ranges = await store.ranges(paused.status.id)
            done = await scan_target(cfg, anyio.Event(), Progress())
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
