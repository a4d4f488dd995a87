"""A page whose keys are not a slice of the key order (an Inventory's rows need not be sorted):
the store finds the recorded keys and the priors of exactly that page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scanner.models import Decision, ImageVerdict, ObjectRef, Result, Target
from scanner.store import Store

T = Target("b-1250000000", "ap-guangzhou")


def ref(key: str) -> ObjectRef:
    return ObjectRef(key, "e" * 32, 10, datetime(2024, 1, 1, tzinfo=UTC))


async def test_scattered_pages_find_their_own_keys(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        scan = await store.start_scan(T, "p", "full")
        middle = [ref(f"m/{i:05d}") for i in range(500)]
        await store.record_page(scan.id, [Decision(r) for r in middle], "1:0")
        verdicts = [(r, ImageVerdict(r.key, "0", result=Result.NORMAL)) for r in middle]
        await store.record_results(scan.id, T, "p", verdicts, requests=1, max_attempts=3)
        # a page from a to z: its range holds the 500 keys above, none of them its own
        page = [ref("a/1"), ref("m/00007"), ref("z/1")]
        fresh = await store.record_page(scan.id, [Decision(r) for r in page], "2:0")
        assert [r.key for r in fresh] == ["a/1", "z/1"]  # m/00007 was recorded already
        priors = await store.priors(T, [r.key for r in page])
        assert set(priors) == {"m/00007"}
        listed = await store.priors(T, [r.key for r in middle[10:20]])  # a slice: one range
        assert set(listed) == {r.key for r in middle[10:20]}
