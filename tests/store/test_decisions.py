"""Review decisions in the store: bound to the verdict's ETag, logged, latest wins, used by
`report --decision`, `act --decision` and `status` (the review page's ledger)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from scanner.cli import main
from scanner.emulator import EmulatorState, running, synthetic
from scanner.models import Target
from scanner.scan.progress import Progress
from scanner.store import ReportFilter, Store
from tests.helpers import config, run_scan


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[EmulatorState, str, str]:
    state = EmulatorState(bucket=synthetic(600, 61), seed=61)

    async def run() -> str:
        async with running(state) as url:
            cfg = config(url, tmp_path)
            assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
            return url

    url = anyio.run(run)
    return state, str(tmp_path / "scan.db"), Target.of(config(url, tmp_path).cos).id


async def flagged(store: Store, target: str) -> list[tuple[str, str]]:
    rows = []
    async for chunk in store.iter_report(target, ReportFilter(results=(1, 2))):
        rows += [(r[0], r[1]) for r in chunk]
    return rows


def test_decisions_belong_to_the_etag_and_keep_their_history(
    scanned: tuple[EmulatorState, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _state, db, target = scanned

    async def decide() -> tuple[list[tuple[str, str]], dict[str, int]]:
        async with await Store.open(db) as store:
            keys = await flagged(store, target)
            assert len(keys) > 20
            done = await store.decide(target, keys[:10], "block", "alice")
            assert len(done.applied) == 10
            assert not done.stale
            await store.decide(target, keys[10:15], "approve", "bob", note="a beach photo")
            stale = await store.decide(target, [(keys[20][0], "not-its-etag")], "block", "bob")
            assert stale.stale == (keys[20][0],)
            # latest wins, history kept; an undo goes back to what it was before
            await store.decide(target, keys[:1], "approve", "bob")
            assert await store.previous_decision(target, *keys[0]) == "block"
            await store.decide(target, keys[:1], "block", "alice")
            history = await store.decision_history(target, keys[0][0])
            assert [h[:2] for h in history] == [("block", "alice"), ("approve", "bob"),
                                                ("block", "alice")]  # fmt: skip
            return keys, await store.review_counts(target)

    keys, counts = anyio.run(decide)
    assert counts == {"reviewed": 15, "to_review": len(keys) - 15, "approve": 5, "block": 10,
                      "skip": 0}  # fmt: skip
    assert main(["report", "--store", db, "--decision", "block", "--format", "jsonl"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["key"] for r in rows} == {k for k, _ in keys[:10]}
    assert {r["decision"] for r in rows} == {"block"}
    assert {r["reviewer"] for r in rows} == {"alice"}
    assert main(["report", "--store", db, "--decision", "undecided", "--result", "1,2",
                 "--format", "jsonl"]) == 0  # fmt: skip
    undecided = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(undecided) == len(keys) - 15
    assert main(["report", "--store", db, "--decision", "maybe"]) == 2
    assert "--decision: unknown ['maybe']" in capsys.readouterr().err
    assert main(["status", "--store", db, "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["review_queue"]["block"] == 10


def test_a_changed_object_is_undecided_again(scanned: tuple[EmulatorState, str, str]) -> None:
    _state, db, target = scanned

    async def run() -> None:
        async with await Store.open(db) as store:
            keys = await flagged(store, target)
            await store.decide(target, keys[:3], "block", "alice")
            async with store._tx() as conn:  # a later scan re-audited a changed object
                await conn.execute(
                    "UPDATE verdicts SET etag = 'changed' WHERE key = ?", (keys[0][0],)
                )
            blocked = await flagged_with(store, target, "block")
            assert blocked == {k for k, _ in keys[1:3]}
            assert (await store.review_counts(target))["block"] == 2

    anyio.run(run)


async def flagged_with(store: Store, target: str, decision: str) -> set[str]:
    out: set[str] = set()
    async for chunk in store.iter_report(target, ReportFilter(decisions=(decision,))):
        out |= {r[0] for r in chunk}
    return out


def test_two_reviewers_at_once_lose_nothing(scanned: tuple[EmulatorState, str, str]) -> None:
    _state, db, target = scanned

    async def reviewer(name: str, keys: list[tuple[str, str]]) -> None:
        async with await Store.open(db) as store:
            for pair in keys:
                await store.decide(target, [pair], "block" if name == "a" else "approve", name)

    async def run() -> dict[str, int]:
        async with await Store.open(db) as store:
            keys = await flagged(store, target)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reviewer, "a", keys[0::2])
            tg.start_soon(reviewer, "b", keys[1::2])
        async with await Store.open(db) as store:
            counts = await store.review_counts(target)
            assert counts["block"] == len(keys[0::2])
            assert counts["approve"] == len(keys[1::2])
            return counts

    assert anyio.run(run)["to_review"] == 0


def test_act_takes_the_decisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`act private --decision block` acts on exactly what reviewers blocked."""
    from scanner.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
    from tests.helpers import emulator_process, stats

    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
    with emulator_process("--objects", "500", "--seed", "62") as url:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
                       f'[store]\npath = "{tmp_path / "s.db"}"\n')  # fmt: skip
        assert main(["scan", "--config", str(cfg)]) in (0, 3)
        target = "cos://album-1250000000.ap-guangzhou/"

        async def block() -> list[str]:
            async with await Store.open(tmp_path / "s.db") as store:
                keys = await flagged(store, target)
                await store.decide(target, keys[:4], "block", "alice")
                await store.decide(target, keys[4:8], "approve", "alice")
                return sorted(k for k, _ in keys[:4])

        blocked = anyio.run(block)
        assert main(["act", "private", "--decision", "block", "--config", str(cfg),
                     "--apply"]) == 0  # fmt: skip
        written = stats(url, detail=True)["writes"]
    assert sorted(k.split("/", 1)[1] for k in written) == blocked
