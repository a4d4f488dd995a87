"""Quotas over time: the window's arithmetic (spanning midnight too), the daily cap (pauses
with when it resets, and a second run the same day sends nothing), and the window pausing and
waiting a real scan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from scanner.clock import span
from scanner.config.window import Window
from scanner.emulator import EmulatorState, running, synthetic
from scanner.errors import ConfigError
from scanner.scan.progress import Progress
from scanner.scan.quota import remaining_images, until_utc_midnight
from tests.helpers import config, run_scan


def at(hh: int, mm: int, day: int = 10) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


def test_window_arithmetic() -> None:
    w = Window.parse("01:00-06:00")
    assert w.opens_in(at(0, 30)) == 30 * 60
    assert w.opens_in(at(3, 0)) == 0
    assert w.closes_in(at(3, 0)) == 3 * 3600
    assert w.opens_in(at(6, 0)) == 19 * 3600  # closed at 06:00; tomorrow 01:00
    night = Window.parse("22:00-06:00")  # spans midnight
    assert night.opens_in(at(23, 0)) == 0
    assert night.closes_in(at(23, 0)) == 7 * 3600
    assert night.opens_in(at(2, 0)) == 0
    assert night.closes_in(at(2, 0)) == 4 * 3600
    assert night.opens_in(at(12, 0)) == 10 * 3600
    for bad in ("1-6", "25:00-06:00", "01:00-01:00", "01:00", "01:60-02:00"):
        with pytest.raises(ConfigError):
            Window.parse(bad)


def test_cap_arithmetic() -> None:
    assert remaining_images(1000, 0, 2) == 500
    assert remaining_images(1000, 499, 2) == 1
    assert remaining_images(1000, 500, 2) == 0
    assert remaining_images(1000, 900, None) == 100  # scenes unknown: a unit is an image
    assert until_utc_midnight(at(23, 0)) == 3600
    assert span(3 * 3600 + 5 * 60) == "3 h 05 min"


def test_the_daily_cap_pauses_and_holds_for_the_day(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(3000, 21), seed=21)

    async def run() -> tuple[list[tuple[str, str]], int, int]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50, detect_type="porn,ads")
            cfg = replace(cfg, scan=replace(cfg.scan, daily_cap=1000))  # 500 images x 2 scenes
            first = await run_scan(cfg, anyio.Event(), Progress())
            billed = sum(state.stats.audits.values())
            second = await run_scan(cfg, anyio.Event(), Progress())
            again = sum(state.stats.audits.values())
            return [(first.outcome, first.note), (second.outcome, second.note)], billed, again

    outcomes, billed, again = anyio.run(run)
    assert billed == 500
    assert again == 500  # the second run of the day sends nothing
    for outcome, note in outcomes:
        assert outcome == "paused"
        assert "daily cap of 1,000 units" in note
        assert "00:00 UTC" in note
    assert "1,000 billed today" in outcomes[1][1]


def test_the_window_closing_pauses_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = EmulatorState(bucket=synthetic(20000, 22), seed=22)
    state.faults.latency = 0.05
    monkeypatch.setattr(Window, "opens_in", lambda self, now: 0.0)
    monkeypatch.setattr(Window, "closes_in", lambda self, now: 1.0)

    async def run() -> tuple[str, str, int]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50, concurrency=2, qps=20.0)
            window = Window.parse("01:00-06:00")
            result = await run_scan(cfg, anyio.Event(), Progress(), window=window)
            return result.outcome, result.note, result.status.pending

    outcome, note, pending = anyio.run(run)
    assert outcome == "paused"
    assert note.startswith("paused at the end of the window 01:00-06:00")
    assert pending > 0


def test_outside_the_window_the_scan_waits_and_a_stop_ends_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = EmulatorState(bucket=synthetic(500, 23), seed=23)
    monkeypatch.setattr(Window, "opens_in", lambda self, now: 3600.0)

    async def run() -> tuple[str, str]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            stop, progress = anyio.Event(), Progress()
            async with anyio.create_task_group() as tg:

                async def later() -> None:
                    await anyio.sleep(0.5)
                    stop.set()

                tg.start_soon(later)
                with anyio.fail_after(10):
                    result = await run_scan(cfg, stop, progress, window=Window.parse("01:00-02:00"))
            return result.outcome, progress.phase

    outcome, phase = anyio.run(run)
    assert outcome == "interrupted"
    assert phase == "waiting for the window 01:00-02:00"
    assert sum(state.stats.audits.values()) == 0
