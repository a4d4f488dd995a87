"""Claims and `contents` rows kept in memory while a scan is alone on its bucket, written as
rows once another live scan of the bucket shows up, at the scan's end, or (contents) every
`CONTENTS_FLUSH` rows, and made again after a scan died (store/claims.py, store/contents.py):
on two Store objects of one file as two processes would hold them."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner.models import ImageVerdict, ObjectRef, Result, Target
from scanner.store import Admission, Store
from scanner.store import contents as contents_table

WHEN = datetime(2024, 1, 1, tzinfo=UTC)
FULL = Target("b-1250000000", "ap-guangzhou", "")
PART = Target("b-1250000000", "ap-guangzhou", "albums/")
OTHER_BUCKET = Target("c-1250000000", "ap-guangzhou", "")


def etag(key: str) -> str:
    return hashlib.md5(key.encode()).hexdigest()


def content(key: str) -> str:
    return f"\x00content/{etag(key)}/10"


def refs(*keys: str) -> list[ObjectRef]:
    return [ObjectRef(k, etag(k), 10, WHEN) for k in keys]


def ok(ref: ObjectRef) -> ImageVerdict:
    return ImageVerdict(key=ref.key, data_id="0", job_id="j", result=Result.NORMAL, label="L")


def claim_rows(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT owner, key FROM claims ORDER BY owner, key").fetchall()


def published(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT owner, published FROM leases").fetchall())


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store, Path]]:
    db = tmp_path / "s.db"
    async with await Store.open(db) as a, await Store.open(db) as b:
        yield a, b, db


async def lease(store: Store, target: Target, owner: str, pid: int) -> int:
    await store.acquire_lease(
        target, owner, host="h", pid=pid, stale_after=60, is_dead=lambda h, p: False
    )
    return (await store.start_scan(target, "p")).id


async def admit(store: Store, target: Target, owner: str, scan: int, *keys: str) -> Admission:
    return await store.admit(
        scan, target, owner, refs(*keys), holds=lambda p, r: True, dedupe=True, stale_after=60
    )


async def test_a_scan_alone_writes_no_claim_rows(stores: tuple[Store, Store, Path]) -> None:
    a, _, db = stores
    scan = await lease(a, FULL, "A", 1)
    got = await admit(a, FULL, "A", scan, "albums/1.jpg", "albums/2.jpg")
    assert [r.key for r in got.send] == ["albums/1.jpg", "albums/2.jpg"]
    assert claim_rows(db) == []
    assert published(db) == {"A": 0}
    await a.record_results(scan, FULL, "p", [(r, ok(r)) for r in got.send], requests=1,
                           max_attempts=3, owner="A")  # fmt: skip
    assert claim_rows(db) == []


async def test_a_second_scan_waits_until_the_first_publishes_its_flight(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan_a = await lease(a, FULL, "A", 1)
    flying = await admit(a, FULL, "A", scan_a, "albums/1.jpg")  # in A's flight, in memory
    assert [r.key for r in flying.send] == ["albums/1.jpg"]
    # B starts beside A on the same bucket: it claims in rows from its start
    scan_b = await lease(b, PART, "B", 2)
    assert published(db) == {"A": 0, "B": 1}
    # A has not shown its flight yet: B sends nothing (it cannot know what A has in flight)
    got = await admit(b, PART, "B", scan_b, "albums/1.jpg", "albums/3.jpg")
    assert (got.send, got.deferred) == ([], 2)
    # A's heartbeat sees B: A's claims become rows, its lease is marked published
    assert await a.heartbeat(FULL, "A", 60)
    assert published(db) == {"A": 1, "B": 1}
    assert claim_rows(db) == [("A", content("albums/1.jpg")), ("A", "albums/1.jpg")]
    # now B defers only what A has in flight, and claims the rest in rows
    got = await admit(b, PART, "B", scan_b, "albums/1.jpg", "albums/3.jpg")
    assert ([r.key for r in got.send], got.deferred) == (["albums/3.jpg"], 1)
    assert ("B", "albums/3.jpg") in claim_rows(db)
    # A's outcome releases its rows; B then takes the key's verdict, unbilled
    await a.record_results(scan_a, FULL, "p", [(r, ok(r)) for r in flying.send], requests=1,
                           max_attempts=3, owner="A")  # fmt: skip
    assert [k for o, k in claim_rows(db) if o == "A"] == []
    got = await admit(b, PART, "B", scan_b, "albums/1.jpg")
    assert (got.send, [r.key for r, _, _ in got.shared]) == ([], ["albums/1.jpg"])


async def test_an_admission_publishes_what_it_held_before_it_sends_more(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan_a = await lease(a, FULL, "A", 1)
    await admit(a, FULL, "A", scan_a, "a.jpg")
    await lease(b, PART, "B", 2)
    got = await admit(a, FULL, "A", scan_a, "b.jpg")  # A sees B (published): A publishes too
    assert [r.key for r in got.send] == ["b.jpg"]
    assert published(db)["A"] == 1
    assert {k for o, k in claim_rows(db) if o == "A"} == {
        "a.jpg", "b.jpg", content("a.jpg"), content("b.jpg"),
    }  # fmt: skip
    await a.release_claims("A")
    assert [k for o, k in claim_rows(db) if o == "A"] == []


async def test_scans_of_other_buckets_and_act_runs_do_not_count(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan_a = await lease(a, FULL, "A", 1)
    await lease(b, OTHER_BUCKET, "B", 2)
    await b.acquire_lease(
        _Act(FULL), "C", host="h", pid=3, stale_after=60, is_dead=lambda h, p: False
    )
    got = await admit(a, FULL, "A", scan_a, "a.jpg")
    assert [r.key for r in got.send] == ["a.jpg"]
    assert claim_rows(db) == []
    assert await a.heartbeat(FULL, "A", 60)
    assert published(db)["A"] == 0


class _Act:
    def __init__(self, target: Target) -> None:
        self.id = "act:" + target.id
        self.doing = "acted on"


def contents(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [k for (k,) in conn.execute("SELECT key FROM contents ORDER BY key")]


def pending(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [o for (o,) in conn.execute("SELECT owner FROM contents_pending")]


async def audit(store: Store, target: Target, owner: str, scan: int, *keys: str) -> None:
    got = await admit(store, target, owner, scan, *keys)
    await store.record_results(scan, target, "p", [(r, ok(r)) for r in got.send], requests=1,
                               max_attempts=3, owner=owner)  # fmt: skip


async def admit_copy(store: Store, owner: str, scan: int, of: str) -> Admission:
    """Admission of `copy.jpg`, an object with the bytes of `of`."""
    copy = ObjectRef("copy.jpg", etag(of), 10, WHEN)
    return await store.admit(
        scan, FULL, owner, [copy], holds=lambda p, r: True, dedupe=True, stale_after=60
    )


async def test_a_scan_alone_keeps_its_contents_rows_until_its_end_and_finds_them_meanwhile(
    stores: tuple[Store, Store, Path],
) -> None:
    a, _, db = stores
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "a.jpg")
    assert (contents(db), pending(db)) == ([], ["A"])  # held in memory, and said so
    # a copy of a.jpg's bytes under another key: found in what the scan holds, not sent
    got = await admit_copy(a, "A", scan, "a.jpg")
    assert (got.send, [(r.key, d) for r, _, d in got.shared]) == ([], [("copy.jpg", "a.jpg")])
    await a.release_claims("A")  # the scan's end
    assert (contents(db), pending(db)) == (["a.jpg"], [])  # the copy is not a donor


async def test_contents_are_written_in_bulk_every_flush_size(
    stores: tuple[Store, Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, db = stores
    monkeypatch.setattr(contents_table, "CONTENTS_FLUSH", 3)
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "1.jpg", "2.jpg")
    assert contents(db) == []
    await audit(a, FULL, "A", scan, "3.jpg", "4.jpg")
    assert (contents(db), pending(db)) == (["1.jpg", "2.jpg", "3.jpg", "4.jpg"], [])


async def test_the_contents_of_a_scan_that_died_are_made_again_by_the_next_lease(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "a.jpg", "b.jpg")
    assert (contents(db), pending(db)) == ([], ["A"])
    # A dies (kill -9: nothing released, its memory gone); B takes the target over from it
    await b.acquire_lease(FULL, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: p == 1)
    assert (contents(db), pending(db)) == (["a.jpg", "b.jpg"], [])
    got = await admit_copy(b, "B", scan, "b.jpg")
    assert [(r.key, d) for r, _, d in got.shared] == [("copy.jpg", "b.jpg")]


async def test_a_scan_that_sees_another_writes_its_contents_rows(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "a.jpg")
    await lease(b, PART, "B", 2)
    assert await a.heartbeat(FULL, "A", 60)  # A publishes: claims and contents
    assert (contents(db), pending(db)) == (["a.jpg"], [])
    await audit(a, FULL, "A", scan, "b.jpg")  # and writes them as it goes from then on
    assert contents(db) == ["a.jpg", "b.jpg"]


async def test_a_scan_of_another_target_rebuilds_the_contents_of_a_dead_process(
    stores: tuple[Store, Store, Path],
) -> None:
    a, b, db = stores
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "a.jpg")
    # A's lease is fresh (heartbeat now) but its process is gone: B, on another target of the
    # bucket, rebuilds A's rows at once rather than after the lease goes stale
    await b.acquire_lease(PART, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: p == 1)
    assert (contents(db), pending(db)) == (["a.jpg"], [])


async def test_a_live_scans_contents_are_left_to_it(stores: tuple[Store, Store, Path]) -> None:
    a, b, db = stores
    scan = await lease(a, FULL, "A", 1)
    await audit(a, FULL, "A", scan, "a.jpg")
    await b.acquire_lease(PART, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: False)
    assert (contents(db), pending(db)) == ([], ["A"])  # A is alive: it writes them itself
