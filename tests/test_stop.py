"""The first stop signal stops sending (issue "Faults cost nothing", item 2).

Each case sets `stop` the way the CLI's first SIGINT/SIGTERM does, against the in-process
emulator. The time bounds are an order of magnitude above what the fixed code needs and far
below what the code before needed (minutes at a low QPS, the retry deadline in a 5xx storm,
the listing latency), so they test behaviour, not speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio

from scanner.config import Config
from scanner.emulator import EmulatorState, running, synthetic
from scanner.models import Target
from scanner.scan.progress import Progress
from scanner.scan.runner import ScanResult
from scanner.store import Store
from scanner.watch import Changes
from tests.helpers import check_i1, config, run_scan


async def stopped_when(
    cfg: Config, ready: Callable[[Progress], bool], within: float, watch: Changes | None = None
) -> tuple[ScanResult, float]:
    """Run a scan, set stop once `ready(progress)` (looked at whenever `watch` changes: the
    progress's own, unless given), and return how it ended and the seconds from the stop to
    the end."""
    stop, progress = anyio.Event(), Progress()
    stopped_at = 0.0
    result: ScanResult | None = None

    async def trigger() -> None:
        nonlocal stopped_at
        await (watch or progress.changes).until(lambda: ready(progress))
        stopped_at = anyio.current_time()
        stop.set()

    async def run() -> None:
        nonlocal result
        result = await run_scan(cfg, stop, progress)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(trigger)
            await run()
            tg.cancel_scope.cancel()
    assert result is not None
    took = anyio.current_time() - stopped_at
    assert took < within, f"took {took:.1f}s after the stop"
    return result, took


async def test_queued_batches_are_abandoned_at_a_low_qps(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(2000, 12), seed=12)
    async with running(state) as url:
        cfg = config(url, tmp_path, qps=1.0, concurrency=16, batch_size=20)
        result, _ = await stopped_when(cfg, lambda p: p.audited > 0, within=5.0)
        assert result.outcome == "interrupted"
        billed = sum(state.stats.audits.values())
        assert billed <= 3 * 20  # what had left by then; before: every queued batch, at 1 QPS
        assert result.status.pending > 500
        fast = replace(cfg, audit=replace(cfg.audit, qps=500.0))
        assert (await run_scan(fast, anyio.Event(), Progress())).outcome == "done"
        await check_i1(fast, state)


async def test_no_retry_after_the_stop_in_a_5xx_storm(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(600, 13), seed=13)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        cfg = replace(cfg, retry=replace(cfg.retry, wait_initial=0.5, wait_max=2.0))
        state.faults.error_rate = 1.0
        state.faults.targets = ["audit"]
        result, _ = await stopped_when(
            cfg, lambda p: state.stats.requests["audit"] >= 8, 5.0, state.stats.changes
        )
        assert result.outcome == "interrupted"
        assert result.status.audited == 0
        state.faults.error_rate = 0.0
        assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
        await check_i1(cfg, state)


async def test_a_slow_listing_request_is_cancelled(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(300, 14), seed=14)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        state.faults.latency = 30.0  # every answer, the listing's first
        result, _ = await stopped_when(cfg, lambda p: p.phase == "scanning", within=3.0)
        assert result.outcome == "interrupted"
        assert result.status.listed == 0


async def test_a_stop_during_the_final_drain_ends_done(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(150, 15), seed=15)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        state.faults.latency = 0.5
        state.faults.targets = ["audit"]

        def all_on_the_wire(p: Progress) -> bool:  # both batches reached the emulator
            return state.stats.requests["audit"] >= 2 and p.pages >= 1

        result, _ = await stopped_when(cfg, all_on_the_wire, within=10.0)
        # before: interrupted, with nothing pending
        assert result.outcome == "done", (result, state.stats.as_json(False))
        async with await Store.open(cfg.store.path) as store:
            status = await store.latest_scan(Target.of(cfg.cos))
        assert status is not None
        assert status.state == "done"
        assert status.pending == 0
