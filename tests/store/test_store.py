"""The Store on a real SQLite file: pages, results, counters, leases."""

from __future__ import annotations

import sqlite3
import subprocess
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner.errors import ScanBusyError, StoreError
from scanner.models import Decision, ImageVerdict, ObjectRef, Result, Target
from scanner.store import ReportFilter, Store

TARGET = Target("b-1250000000", "ap-guangzhou", "")
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def ref(key: str, etag: str = "e") -> ObjectRef:
    return ObjectRef(key, etag, 10, WHEN)


def ok(key: str, result: Result = Result.NORMAL) -> ImageVerdict:
    return ImageVerdict(
        key=key,
        data_id="0",
        job_id="j",
        result=result,
        label="L",
        score=5,
        raw=f"<JobsDetail><Result>{int(result)}</Result></JobsDetail>",
    )


def fail(key: str, code: str, retryable: bool) -> ImageVerdict:
    return ImageVerdict(key=key, data_id="0", code=code, message="m", retryable=retryable)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "s.db") as s:
        yield s


async def test_page_then_results_keep_i1(store: Store) -> None:
    scan = await store.start_scan(TARGET, "p")
    decisions = [
        Decision(ref("a.jpg")),
        Decision(ref("b.jpg")),
        Decision(ref("c/"), "folder"),
        Decision(ref("d.jpg")),
        Decision(ref("e.jpg")),
    ]
    fresh = await store.record_page(scan.id, decisions, "e.jpg")
    assert [r.key for r in fresh] == ["a.jpg", "b.jpg", "d.jpg", "e.jpg"]
    outcomes = [
        (ref("a.jpg"), ok("a.jpg", Result.SENSITIVE)),
        (ref("b.jpg"), fail("b.jpg", "-65007", False)),
        (ref("d.jpg"), fail("d.jpg", "-65010", True)),
        (ref("e.jpg"), ok("e.jpg", Result.SUSPICIOUS)),
    ]
    await store.record_results(scan.id, TARGET, "p", outcomes, requests=1, max_attempts=2)
    s = await store.scan(scan.id)
    assert (s.listed, s.audited, s.flagged, s.review, s.failed, s.skipped, s.pending) == (
        5,
        2,
        1,
        1,
        1,
        1,
        1,
    )
    assert s.marker == "e.jpg"
    assert not s.listing_done
    assert await store.state_counts(scan.id) == {
        "audited": 2,
        "failed": 1,
        "skipped": 1,
        "pending": 1,
    }
    # the retryable failure gets its second and last attempt, and fails for good
    retry = [(ref("d.jpg"), fail("d.jpg", "-65010", True))]
    await store.record_results(scan.id, TARGET, "p", retry, requests=1, max_attempts=2)
    s = await store.scan(scan.id)
    assert (s.failed, s.pending) == (2, 0)
    assert await store.failure_codes(scan.id) == {"-65007": 1, "-65010": 1}
    assert await store.verdict_map(TARGET) == {"a.jpg": (1, "L", 5), "e.jpg": (2, "L", 5)}


async def test_relisted_page_keeps_states_and_counts_once(store: Store) -> None:
    scan = await store.start_scan(TARGET, "p")
    await store.record_page(scan.id, [Decision(ref("a.jpg")), Decision(ref("b.jpg"))], "b.jpg")
    await store.record_results(
        scan.id, TARGET, "p", [(ref("a.jpg"), ok("a.jpg"))], requests=1, max_attempts=3
    )
    page = [Decision(ref("a.jpg")), Decision(ref("b.jpg"))]
    again = await store.record_page(scan.id, page, None)
    assert again == []
    s = await store.scan(scan.id)
    assert (s.listed, s.audited, s.pending, s.listing_done) == (2, 1, 1, True)
    pending = [r.key async for chunk in store.iter_pending(scan.id, chunk=1) for r in chunk]
    assert pending == ["b.jpg"]


async def test_raw_verdicts_are_stored_deflated_and_read_back_as_xml(
    store: Store, tmp_path: Path
) -> None:
    scan = await store.start_scan(TARGET, "p")
    await store.record_page(scan.id, [Decision(ref("a.jpg")), Decision(ref("b.jpg"))], None)
    keys = ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
    await store.record_page(scan.id, [Decision(ref(k)) for k in keys[2:]], None)
    outcomes = [(ref(k), ok(k, Result.SENSITIVE)) for k in keys]
    await store.record_results(scan.id, TARGET, "p", outcomes, requests=1, max_attempts=3)
    raw = ok("a.jpg", Result.SENSITIVE).raw
    with sqlite3.connect(tmp_path / "s.db") as conn:
        stored = dict(conn.execute("SELECT key, raw FROM verdicts"))
        assert all(isinstance(v, bytes) and v[:1] == b"\xd1" for v in stored.values())
        assert len(stored["a.jpg"]) < len(zlib.compress(raw.encode(), 1)) < len(raw)
        # rows written before: as text, and deflated without the dictionary, read the same
        conn.execute("UPDATE verdicts SET raw = ? WHERE key = 'b.jpg'", (raw,))
        conn.execute(
            "UPDATE verdicts SET raw = ? WHERE key = 'c.jpg'", (zlib.compress(raw.encode(), 1),)
        )
        conn.execute("UPDATE verdicts SET raw = ? WHERE key = 'd.jpg'", (b"\xd1garbage",))
    rows = [r async for chunk in store.iter_report(TARGET.id, ReportFilter()) for r in chunk]
    assert [(r[0], r[-1]) for r in rows] == [
        ("a.jpg", "<JobsDetail><Result>1</Result></JobsDetail>"),
        ("b.jpg", "<JobsDetail><Result>1</Result></JobsDetail>"),
        ("c.jpg", "<JobsDetail><Result>1</Result></JobsDetail>"),
        ("d.jpg", "\ufffdgarbage"),  # damaged: shown as what it is, never a traceback
    ]


async def test_recording_a_result_twice_is_idempotent(store: Store) -> None:
    scan = await store.start_scan(TARGET, "p")
    await store.record_page(scan.id, [Decision(ref("a.jpg"))], None)
    for _ in range(2):
        await store.record_results(
            scan.id, TARGET, "p", [(ref("a.jpg"), ok("a.jpg"))], requests=1, max_attempts=3
        )
    s = await store.scan(scan.id)
    assert (s.audited, s.pending) == (1, 0)


async def test_lease_refuses_live_and_takes_over_stale(store: Store) -> None:
    await store.acquire_lease(
        TARGET, "A", host="h", pid=1, stale_after=60, is_dead=lambda h, p: False
    )
    with pytest.raises(ScanBusyError, match="pid 1 on h"):
        await store.acquire_lease(
            TARGET, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: False
        )
    await store.acquire_lease(
        TARGET, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: p == 1
    )
    assert not await store.heartbeat(TARGET, "A")
    assert await store.heartbeat(TARGET, "B")
    await store.release_lease(TARGET, "B")
    await store.acquire_lease(
        TARGET, "C", host="h", pid=3, stale_after=60, is_dead=lambda h, p: False
    )


async def test_old_heartbeat_is_stale(store: Store) -> None:
    await store.acquire_lease(
        TARGET, "A", host="other", pid=1, stale_after=60, is_dead=lambda h, p: False
    )
    with pytest.raises(ScanBusyError):
        await store.acquire_lease(
            TARGET, "B", host="h", pid=2, stale_after=60, is_dead=lambda h, p: False
        )
    await store.acquire_lease(
        TARGET, "B", host="h", pid=2, stale_after=-1, is_dead=lambda h, p: False
    )


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable dir, the same dir mounted read-only): real read-only media, as root."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    bind = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, check=False)
    if bind.returncode:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        remount = ["mount", "-o", "remount,ro,bind", str(ro)]
        if subprocess.run(remount, capture_output=True, check=False).returncode:
            pytest.skip("cannot remount read-only here")
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


async def test_store_on_read_only_media_can_be_read(
    read_only_dir: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # before: "unable to open database file" (SQLite wants a WAL index beside the file)
    src, ro = read_only_dir
    async with await Store.open(src / "s.db") as store:
        scan = await store.start_scan(TARGET, "p")
        await store.record_page(scan.id, [Decision(ref("a.jpg"))], None)
    async with await Store.open(ro / "s.db", readonly=True) as store:
        (status,) = await store.scans()
        assert (status.id, status.listed) == (scan.id, 1)
        with pytest.raises(StoreError):
            await store.start_scan(TARGET, "p")  # and it stays read-only
