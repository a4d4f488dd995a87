"""`scan --shard i/N`: N disjoint parts whose union is the target, each with its own store and
1/N of the quota; `report --store A --store B ...` puts them back together."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from scanner.cli import main
from scanner.config import Config
from scanner.emulator import EmulatorState, running, synthetic
from scanner.errors import ConfigError
from scanner.models import shard_of
from scanner.scan.progress import Progress
from scanner.sources.shard import parse_shard, shard_quota
from scanner.store import Store
from tests.helpers import config, run_dry, run_scan

N = 3


def _store(cfg: Config, path: Path) -> Config:
    return replace(cfg, store=replace(cfg.store, path=str(path)))


def test_shards_are_disjoint_and_their_union_is_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(bucket=synthetic(3000, 41), seed=41)

    estimates: list[tuple[int, int]] = []  # a shard's dry run, and what its scan sent

    async def run() -> tuple[list[set[str]], set[str], list[int]]:
        async with running(state) as url:
            base = config(url, tmp_path, batch_size=50, concurrency=6)
            parts, in_flight = [], []
            for i in range(N):
                state.stats.max_audits_in_flight = 0
                cfg = _store(base, tmp_path / f"shard-{i}.db")
                est = await run_dry(cfg, Progress(), anyio.Event(), shard=(i, N))
                before = sum(state.stats.audits.values())
                result = await run_scan(cfg, anyio.Event(), Progress(), shard=(i, N))
                assert result.outcome == "done"
                estimates.append((est.images, sum(state.stats.audits.values()) - before))
                in_flight.append(state.stats.max_audits_in_flight)
                async with await Store.open(cfg.store.path) as store:
                    rows = await store._all("SELECT key FROM scan_objects", ())
                parts.append({k for (k,) in rows})
            whole = _store(base, tmp_path / "whole.db")
            assert (await run_scan(whole, anyio.Event(), Progress())).outcome == "done"
            async with await Store.open(whole.store.path) as store:
                rows = await store._all("SELECT key FROM scan_objects", ())
            return parts, {k for (k,) in rows}, in_flight

    parts, whole, in_flight = anyio.run(run)
    assert all(dry == sent > 0 for dry, sent in estimates), estimates  # --dry-run --shard
    assert set().union(*parts) == whole == set(state.bucket.keys())
    for a in range(N):
        for b in range(a + 1, N):
            assert not parts[a] & parts[b]
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) < 0.1 * len(whole)  # the hash balances them
    assert max(in_flight) <= 2  # 1/N of 6 in flight
    # the shards' report is the whole scan's report, row for row
    stores = [x for i in range(N) for x in ("--store", str(tmp_path / f"shard-{i}.db"))]
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[cos]\nbucket = "album-1250000000"\n')
    assert main(["report", "--config", str(cfg_file), *stores, "--format", "jsonl"]) == 0
    merged = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main(["report", "--config", str(cfg_file), "--store", str(tmp_path / "whole.db"),
                 "--format", "jsonl"]) == 0  # fmt: skip
    alone = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["key"] for r in merged] == [r["key"] for r in alone]  # key order kept
    view = ("key", "state", "result", "label", "score", "reason")
    assert [[r[f] for f in view] for r in merged] == [[r[f] for f in view] for r in alone]
    assert main(["report", "--config", str(cfg_file), *stores, "--format", "json"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["rows"] == len(whole)
    assert totals["by_state"] == dict(Counter(r["state"] for r in alone))


def test_a_shard_needs_its_own_store(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(200, 42), seed=42)

    async def run() -> None:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            await run_scan(cfg, anyio.Event(), Progress(), shard=(0, 2))
            with pytest.raises(ConfigError, match="needs a store file of its own"):
                await run_scan(cfg, anyio.Event(), Progress(), shard=(1, 2))
            with pytest.raises(ConfigError, match="needs a store file of its own"):
                await run_scan(cfg, anyio.Event(), Progress())

    anyio.run(run)


def test_shard_arithmetic() -> None:
    assert parse_shard("0/4") == (0, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    counts = Counter(shard_of(f"albums/u{i:05d}/IMG_{i}.jpg", 4) for i in range(40_000))
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) < 10_400  # within 4% of 10,000
    cfg = config("http://127.0.0.1:1", Path("/tmp"), concurrency=100, qps=200.0)
    cfg = replace(cfg, scan=replace(cfg.scan, daily_cap=1_000_001))
    part = shard_quota(cfg, 4)
    assert (part.audit.qps, part.audit.concurrency, part.scan.daily_cap) == (50.0, 25, 250_001)
    assert part.cos.qps == cfg.cos.qps / 4  # each shard lists the whole target
