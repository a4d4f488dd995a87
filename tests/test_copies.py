"""Pay once per picture: copies (same ETag and size) share one audit, and a verdict belongs to
the bucket, whatever target produced it. Against the emulator over real HTTP, real SQLite.

Before this change a bucket with 30 % copies billed every copy; `scan --incremental --prefix P`
after a full scan re-billed every unchanged image under P (its verdicts were the full scan's
target's); a prefix scan running beside a full scan billed the keys both listed twice.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest

from scanner.cli import main
from scanner.config import Config
from scanner.emulator import EmulatorState, from_folder, running, synthetic
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.models import ImageVerdict, ObjectRef, Result, Target, content_key
from scanner.scan.copies import WAIT, Copies
from scanner.scan.dryrun import Estimate
from scanner.scan.filter import ObjectFilter
from scanner.scan.progress import Progress
from scanner.store import Store
from scanner.store.migrate import apply_migrations, migrations_dir
from tests.helpers import (
    IN_FLIGHT,
    OBJECTS,
    SEED,
    assert_exact,
    config,
    db_rows,
    emulator_process,
    run_dry,
    run_scan,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan

SCENES = len(DEFAULT_SCENES)
MD5 = "0cc175b9c0f1b6a831c399e269772661"


def test_content_key_forms() -> None:
    assert content_key(MD5, 10) == f"{MD5}/10"
    assert content_key(f'"{MD5.upper()}"', 10) == f"{MD5}/10"  # quoted, any case
    assert content_key(f"{MD5}-12", 10) == f"{MD5}-12/10"  # multipart kept as it is
    for etag in (f"{MD5}-0", "not-an-md5", MD5[:-1], f"{MD5}x", "", f"{MD5}-123456"):
        assert content_key(etag, 10) is None, etag  # e.g. SSE-C: no sharing
    assert content_key(MD5, 0) is None


def _ref(key: str, etag: str = MD5, size: int = 100) -> ObjectRef:
    return ObjectRef(key, etag, size, datetime(2024, 1, 1, tzinfo=UTC))


def test_copies_wait_for_the_first_and_share_its_outcome() -> None:
    copies = Copies(lambda ref: "p", enabled=True)
    a, b, c = _ref("a.jpg"), _ref("b.jpg"), _ref("c.jpg")
    assert copies.route(a) is None  # sent
    assert copies.route(b) == WAIT
    assert copies.route(c) == WAIT
    assert copies.waiting == 2
    got = copies.settle(a, ImageVerdict("a.jpg", "0", result=Result.SENSITIVE, forbid_state=1))
    assert [(r.key, v.key, v.shared_from, v.forbid_state) for r, v in got] == [
        ("b.jpg", "b.jpg", "a.jpg", None),  # the service froze only what it audited
        ("c.jpg", "c.jpg", "a.jpg", None),
    ]
    late = copies.route(_ref("d.jpg"))  # the answer was just written: taken from memory
    assert isinstance(late, ImageVerdict)
    assert late.shared_from == "a.jpg"
    other = _ref("e.jpg", etag=MD5.replace("0", "1"))
    assert copies.route(other) is None  # other content
    assert copies.route(_ref("f.jpg", size=101)) is None  # same ETag, other size


def test_a_retryable_failure_releases_the_copies_and_bad_etags_never_wait() -> None:
    copies = Copies(lambda ref: "p", enabled=True)
    a, b = _ref("a.jpg"), _ref("b.jpg")
    copies.route(a)
    assert copies.route(b) == WAIT
    assert copies.settle(a, ImageVerdict("a.jpg", "0", code="-65010", retryable=True)) == []
    assert copies.waiting == 0  # b stays pending in the store: a later pass admits it again
    assert copies.route(b) is None  # and then it may audit the content itself
    sse = [_ref(k, etag="opaque-etag") for k in ("x.jpg", "y.jpg")]
    assert [copies.route(r) for r in sse] == [None, None]
    off = Copies(lambda ref: "p", enabled=False)
    assert [off.route(_ref(k)) for k in ("a.jpg", "b.jpg")] == [None, None]


def _auditable(state: EmulatorState, cfg: Config, prefix: str = "") -> dict[str, Any]:
    """key -> the emulator's verdict, for every key under `prefix` a scan audits."""
    flt = ObjectFilter.from_settings(cfg.scan, cfg.audit)
    out = {}
    for key, obj in state.bucket.objects.items():
        ref = ObjectRef(key, obj.etag, obj.size, obj.last_modified, obj.storage_class)
        if not key.startswith(prefix) or flt.reason(ref):
            continue
        verdict = verdict_for(key, obj, scenes=DEFAULT_SCENES)
        if not verdict.code:
            out[key] = verdict
    return out


def _rows(cfg: Config, sql: str, *args: Any) -> list[Any]:
    with sqlite3.connect(cfg.store.path) as conn:
        return conn.execute(sql, args).fetchall()


async def _scan(cfg: Config, **kw: Any) -> str:
    with anyio.fail_after(120):
        return (await run_scan(cfg, anyio.Event(), Progress(), **kw)).outcome


def test_thirty_percent_copies_bill_each_content_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(bucket=synthetic(3000, 3, copies=0.3), seed=3)

    async def scan() -> tuple[Config, Estimate]:
        async with running(state) as url:
            cfg = config(url, tmp_path, billed_scenes=SCENES)
            est = await assert_exact(state, cfg, SCENES)  # the dry run counts distinct content
            assert await _scan(cfg) == "nothing"
        return cfg, est

    cfg, est = anyio.run(scan)
    expected = _auditable(state, cfg)
    contents = {(state.bucket.objects[k].etag, state.bucket.objects[k].size) for k in expected}
    copies = len(expected) - len(contents)
    assert copies > 500  # the album has copies to share
    assert est.copies == copies
    assert est.images == len(contents)
    billed = state.stats.contents
    assert set(billed) == {f"{e}/{s}" for e, s in contents}
    assert max(billed.values()) == 1  # each content paid once
    assert state.stats.billed_units == SCENES * len(contents)
    verdicts = {
        k: (r, label, s, src)
        for k, r, label, s, src in _rows(
            cfg, "SELECT key, result, label, score, verdict_from FROM verdicts"
        )
    }
    assert set(verdicts) == set(expected)  # every key has a verdict
    for key, (result, label, score, src) in verdicts.items():
        v = expected[key]
        assert (result, label, score) == (v.result, v.label, v.score), key
        if src is not None:  # a shared verdict came from an audited key of the same content
            mine, theirs = state.bucket.objects[key], state.bucket.objects[src]
            assert (mine.etag, mine.size) == (theirs.etag, theirs.size)
            assert verdicts[src][3] is None
    assert sum(src is not None for *_, src in verdicts.values()) == copies
    ((shared, audited, _requests),) = _rows(cfg, "SELECT shared, audited, requests FROM scans")
    assert (shared, audited) == (copies, len(expected))
    assert main(["report", "--store", cfg.store.path, "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["key"]: r["verdict_from"] for r in rows if r["state"] == "audited"} == {
        k: v[3] for k, v in verdicts.items()
    }
    assert main(["status", "--store", cfg.store.path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["shared"] == copies


async def test_dedupe_off_bills_every_key(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(1500, 3, copies=0.3), seed=3)
    async with running(state) as url:
        cfg = config(url, tmp_path, billed_scenes=SCENES)
        cfg = replace(cfg, scan=replace(cfg.scan, dedupe=False))
        est = await assert_exact(state, cfg, SCENES)
    expected = _auditable(state, cfg)
    assert est.copies == 0
    assert set(state.stats.audits) == set(expected)
    assert max(state.stats.audits.values()) == 1
    assert max(state.stats.contents.values()) > 1  # copies were paid for
    assert _rows(cfg, "SELECT COUNT(verdict_from), MAX(shared) FROM verdicts, scans") == [(0, 0)]


async def test_incremental_prefix_after_a_full_scan_sends_nothing(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(3000, 1), seed=1)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert await _scan(cfg) == "done"
        sent = sum(state.stats.sent.values())
        prefix = "albums/u0002"
        under = replace(cfg, cos=replace(cfg.cos, prefix=prefix))
        est = await run_dry(under, Progress(), anyio.Event())  # a plain scan of P: the same
        assert est.images == 0
        assert est.reused == len(_auditable(state, cfg, prefix))
        assert await _scan(under, mode="incremental") == "done"
        assert sum(state.stats.sent.values()) == sent  # nothing re-billed
        ((listed, _skipped),) = _rows(
            cfg, "SELECT listed, skipped FROM scans WHERE prefix = ?", prefix
        )
        assert listed > 100
        assert listed == sum(1 for k in state.bucket.objects if k.startswith(prefix))
        # and the prefix target's report shows the full scan's verdicts
        async with await Store.open(cfg.store.path) as store:
            mine = await store.verdict_map(Target.of(under.cos))
        assert set(mine) == set(_auditable(state, cfg, prefix))


async def test_a_prefix_scan_beside_a_full_scan_bills_no_key_twice(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(3000, 1, copies=0.2), seed=1)
    state.faults.latency = 0.03
    async with running(state) as url:
        full = config(url, tmp_path, concurrency=4, batch_size=20)
        part = replace(full, cos=replace(full.cos, prefix="albums/"))
        outcomes: list[str] = []

        async def run(cfg: Config) -> None:
            outcomes.append(await _scan(cfg))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, full)
            with anyio.fail_after(30):
                await state.stats.changes.until(lambda: sum(state.stats.audits.values()) >= 300)
            tg.start_soon(run, part)
    assert outcomes == ["done", "done"]
    expected = _auditable(state, full)
    objs = state.bucket.objects
    assert set(state.stats.contents) == {f"{objs[k].etag}/{objs[k].size}" for k in expected}
    twice = [k for k, n in state.stats.audits.items() if n > 1]
    print(
        "TWICE",
        len(twice),
        twice[:5],
        _rows(full, "SELECT id, prefix, started_at, shared, requests FROM scans"),
    )
    assert twice == []
    assert max(state.stats.contents.values()) == 1
    stored = {k for (k,) in _rows(full, "SELECT key FROM verdicts")}
    assert stored == set(expected)
    states = _rows(full, "SELECT prefix, state, listed, audited + failed + skipped FROM scans")
    assert all(s == "done" and listed == done for _, s, listed, done in states), states


async def test_migration_moves_verdicts_to_the_bucket_newest_first(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for path in sorted(migrations_dir().glob("000[1-5]_*.sql")):
        shutil.copy(path, folder)
    db = tmp_path / "s.db"
    row = "INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, " \
          "category, sub_label, text, job_id, raw, audited_at, scan_id) VALUES " \
          "(?, ?, 'e', 1, 'p', ?, 'L', 0, '', '', '', '', '', ?, 1)"  # fmt: skip
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn, folder) == [1, 2, 3, 4, 5]
        for target, key, result, when in (
            ("cos://b-1.ap-guangzhou/", "albums/a.jpg", 0, 10.0),
            ("cos://b-1.ap-guangzhou/albums/", "albums/a.jpg", 1, 20.0),  # newer: wins
            ("cos://b-1.ap-guangzhou/albums/", "albums/b.jpg", 2, 5.0),
            ("cos://c-1.ap-guangzhou/", "albums/a.jpg", 0, 30.0),  # another bucket
        ):
            await conn.execute(row, (target, key, result, when))
        await conn.execute(
            "INSERT INTO failures VALUES ('cos://b-1.ap-guangzhou/', 'albums/a.jpg', 'e', 1, "
            "'2024-01-01T00:00:00+00:00', 'STANDARD', 'p', 'x', 'm', 1, 1, 15.0, NULL)"
        )  # older than the verdict the prefix target got later: not the latest outcome
        assert await apply_migrations(conn) == [6, 7, 8, 9, 10, 11, 12, 13, 14]
    with sqlite3.connect(db) as conn:
        got = conn.execute("SELECT target, key, result FROM verdicts ORDER BY 1, 2").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM failures").fetchone() == (0,)
    assert got == [
        ("cos://b-1.ap-guangzhou/", "albums/a.jpg", 1),
        ("cos://b-1.ap-guangzhou/", "albums/b.jpg", 2),
        ("cos://c-1.ap-guangzhou/", "albums/a.jpg", 0),
    ]


def test_folder_etags_are_the_md5_of_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.jpg").write_bytes(b"a")
    (tmp_path / "two.jpg").write_bytes(b"a")
    (tmp_path / "three.jpg").write_bytes(b"b")
    bucket = from_folder(tmp_path)
    tags = Counter(o.etag for o in bucket.objects.values())
    assert bucket.objects["two.jpg"].etag == MD5  # md5(b"a")
    assert sorted(tags.values()) == [1, 2]


def test_emulator_copies_share_etags_sizes_and_verdicts() -> None:
    plain, copied = synthetic(2000, 1), synthetic(2000, 1, copies=0.2)
    copies = [(k, o) for k, o in copied.objects.items() if o.content]
    images = sum(1 for k, o in copied.objects.items() if o.size and "." in k.rsplit("/", 1)[-1])
    assert 0.1 < len(copies) / images < 0.3
    for key, obj in copies:
        source = copied.objects[obj.content or ""]
        assert (obj.etag, obj.size) == (source.etag, source.size)
        assert verdict_for(key, obj) == verdict_for(obj.content or "", source)
    originals = {k for k, o in copied.objects.items() if not o.content}
    assert originals <= set(plain.objects)  # the rest of the album is unchanged


@pytest.mark.slow
def test_sigkill_at_five_points_with_copies_then_resume(tmp_path: Path) -> None:
    """kill -9 while copies wait for their content's verdict: after the resume every key has
    its verdict and no content was paid for more than what was in flight at the kills."""
    store = tmp_path / "scan.db"
    log = tmp_path / "scan.log"
    args = ("--objects", str(OBJECTS), "--seed", str(SEED), "--latency", "0.04")
    with emulator_process(*args, "--copies", "0.3") as url:
        cfg = write_config(tmp_path / "c.toml", url, store)
        points = [
            lambda s: s["requests"].get("list", 0) >= 1,
            *(lambda s, n=n: s["audited_images"] >= n for n in (300, 700, 1100, 1500)),
        ]
        for point in points:
            proc = scan(cfg, log)
            wait_until(lambda p=point: p(stats(url)), proc)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        proc = scan(cfg, log)
        assert proc.wait(timeout=120) == 0, log.read_text()
        s = stats(url, detail=True)
    state = EmulatorState(bucket=synthetic(OBJECTS, SEED, copies=0.3), seed=SEED)
    expected = _auditable(state, config("http://unused", tmp_path))
    verdicts = {
        k: (r, label) for k, r, label in db_rows(store, "SELECT key, result, label FROM verdicts")
    }
    assert set(verdicts) == set(expected)  # no key without its verdict
    assert all(verdicts[k] == (v.result, v.label) for k, v in expected.items())
    ((listed, audited, failed, skipped, pending),) = db_rows(
        store, "SELECT listed, audited, failed, skipped, "
        "(SELECT COUNT(*) FROM scan_objects WHERE state = 'pending') FROM scans"
    )  # fmt: skip
    assert listed == OBJECTS == audited + failed + skipped
    assert pending == 0
    distinct = {(state.bucket.objects[k].etag, state.bucket.objects[k].size) for k in expected}
    assert len(s["contents"]) == len(distinct) < len(expected)
    paid_again = sum(n - 1 for n in s["contents"].values())
    assert paid_again <= len(points) * IN_FLIGHT, paid_again  # only what was in flight
    assert db_rows(store, "SELECT COUNT(*) FROM claims") == [(0,)]
    assert db_rows(store, "PRAGMA integrity_check") == [("ok",)]


async def test_a_decision_on_one_copy_reaches_every_copy(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(800, 4, copies=0.3), seed=4)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert await _scan(cfg) == "done"
    objs = state.bucket.objects
    rows = _rows(cfg, "SELECT key, etag, verdict_from FROM verdicts WHERE verdict_from IS NOT NULL")
    key, etag, source = rows[0]
    same = {k for k in _rows_keys(cfg) if (objs[k].etag, objs[k].size) ==
            (objs[key].etag, objs[key].size)}  # fmt: skip
    assert len(same) >= 2
    target = Target.of(cfg.cos).id
    async with await Store.open(cfg.store.path) as store:
        group = await store.with_copies(target, [(key, etag)])
        assert {k for k, _ in group} == same
        assert source in same
        done = await store.decide(target, group, "block", "alice")
        assert set(done.applied) == same
        assert (await store.review_counts(target))["block"] == sum(
            1 for k in same if _rows(cfg, "SELECT result FROM verdicts WHERE key = ?", k)[0][0]
        )


def _rows_keys(cfg: Config) -> list[str]:
    return [k for (k,) in _rows(cfg, "SELECT key FROM verdicts")]
